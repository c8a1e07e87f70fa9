//! The `timers` example skill: set, cancel and check timers and alarms. Intent and slots
//! (`duration`, `time`) come from its datastore; the replies are templates written here, so
//! the device uses them as they are.

edgenlu_sdk::world!("skill");

use edgenlu_sdk::datastore::{Datastore, Understanding};
use edgenlu_sdk::encoder::EncodedText;
use edgenlu_sdk::Error;
use exports::edgenlu::nlu::nlu::{Guest, Request, Response};

struct Timers;

impl Guest for Timers {
    fn handle(req: Request) -> Result<Response, Error> {
        let encoded = EncodedText::for_request(&req.text, req.encoded)?;
        let understood = Datastore::configured()?.understand(&req.text, &encoded)?;
        Ok(Response {
            reply: reply(&understood),
            ..understood.into()
        })
    }
}

/// The reply for an understood utterance; `None` (out of scope) leaves it to the device.
fn reply(u: &Understanding) -> Option<String> {
    let text = match (u.intent.as_str(), u.slot("duration"), u.slot("time")) {
        ("set_timer", Some(duration), _) => format!("Timer set for {duration}."),
        ("set_timer", None, _) => "For how long should I set the timer?".to_string(),
        ("set_alarm", _, Some(time)) => format!("Alarm set for {time}."),
        ("set_alarm", _, None) => "What time should the alarm go off?".to_string(),
        ("cancel_timer", _, _) => "Cancelled.".to_string(),
        ("time_left", _, _) => "Your timer is still running.".to_string(),
        _ => return None,
    };
    Some(text)
}

export!(Timers);

#[cfg(test)]
mod tests {
    use super::*;
    use edgenlu_sdk::datastore::Slot;

    fn understood(intent: &str, slot: Option<(&str, &str)>) -> Understanding {
        Understanding {
            intent: intent.into(),
            confidence: 0.9,
            slots: slot
                .into_iter()
                .map(|(name, value)| Slot {
                    name: name.into(),
                    value: value.into(),
                    start: 0,
                    end: value.len() as u32,
                })
                .collect(),
        }
    }

    #[test]
    fn a_timer_reply_names_its_duration() {
        let u = understood("set_timer", Some(("duration", "ten minutes")));
        assert_eq!(reply(&u).as_deref(), Some("Timer set for ten minutes."));
    }

    #[test]
    fn a_missing_slot_is_asked_for() {
        assert_eq!(
            reply(&understood("set_alarm", None)).as_deref(),
            Some("What time should the alarm go off?")
        );
    }

    #[test]
    fn out_of_scope_is_left_to_the_device() {
        assert_eq!(reply(&understood("oos", None)), None);
    }
}
