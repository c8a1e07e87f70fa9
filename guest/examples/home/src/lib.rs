//! The `home` example skill: devices in rooms, switched on and off, and their state. Intent
//! and slots (`device`, `room`) come from its datastore. A command without a device is
//! answered here with a question; every other reply is left to the device, which phrases it
//! with its decoder.

edgenlu_sdk::world!("skill");

use edgenlu_sdk::datastore::{Datastore, Understanding};
use edgenlu_sdk::encoder::EncodedText;
use edgenlu_sdk::Error;
use exports::edgenlu::nlu::nlu::{Guest, Request, Response};

struct Home;

impl Guest for Home {
    fn handle(req: Request) -> Result<Response, Error> {
        let encoded = EncodedText::for_request(&req.text, req.encoded)?;
        let understood = Datastore::configured()?.understand(&req.text, &encoded)?;
        Ok(Response {
            reply: question(&understood),
            ..understood.into()
        })
    }
}

/// What to ask back when the utterance does not say which device; `None` otherwise.
fn question(u: &Understanding) -> Option<String> {
    let command = matches!(u.intent.as_str(), "turn_on" | "turn_off" | "device_status");
    (command && u.slot("device").is_none()).then(|| match u.slot("room") {
        Some(room) => format!("Which device in the {room}?"),
        None => "Which device do you mean?".to_string(),
    })
}

export!(Home);

#[cfg(test)]
mod tests {
    use super::*;
    use edgenlu_sdk::datastore::Slot;

    fn understood(intent: &str, slots: &[(&str, &str)]) -> Understanding {
        Understanding {
            intent: intent.into(),
            confidence: 0.9,
            slots: slots
                .iter()
                .map(|(name, value)| Slot {
                    name: name.to_string(),
                    value: value.to_string(),
                    start: 0,
                    end: value.len() as u32,
                })
                .collect(),
        }
    }

    #[test]
    fn a_command_without_a_device_is_asked_about() {
        let u = understood("turn_on", &[("room", "kitchen")]);
        assert_eq!(question(&u).as_deref(), Some("Which device in the kitchen?"));
    }

    #[test]
    fn a_full_command_is_left_to_the_device_to_phrase() {
        let u = understood("turn_off", &[("device", "fan"), ("room", "office")]);
        assert_eq!(question(&u), None);
    }
}
