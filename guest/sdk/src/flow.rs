//! The steps of the device's default flow, for flow components: a vendor's flow changes the
//! step it cares about and keeps the others, so its answers differ from the default only
//! where it means them to.
//!
//! The default flow ([`answer`]) routes the utterance, asks the best-ranked skill, asks the
//! vendor's policy, and then rejects, offloads or answers locally ([`decide_and_reply`]).
//! Each stage is timed with the host's clock around the call ([`Stages`]), so a stage
//! includes the flow's own time around it.
//!
//! `world!("flow-component")` makes an [`Answer`] the component's `outcome` and an
//! `utterance` a [`Device`], so the default flow is:
//!
//! ```no_run
//! edgenlu_sdk::world!("flow-component");
//!
//! use edgenlu_sdk::{flow, Error};
//! use exports::edgenlu::nlu::flow::{Guest, Outcome, Utterance};
//!
//! struct MyFlow;
//!
//! impl Guest for MyFlow {
//!     fn handle(u: Utterance) -> Result<Outcome, Error> {
//!         Ok(flow::answer(&u.text, (&u).into())?.into())
//!     }
//! }
//!
//! export!(MyFlow);
//! # fn main() {}
//! ```

use crate::flow_host::{self, Routing, TemplateReason};
use crate::nlu::{Path, Response, Timing};
use crate::policy::{self, Decision, Signals, Verdict};
use crate::{internal, Error};

/// The stage of a local answer whose reply is the skill's own.
pub const SKILL_REPLY_STAGE: &str = "skill-reply";
/// The stage of a local answer phrased by the decoder (or templated when phrasing failed).
pub const PHRASE_STAGE: &str = "phrase";
/// The stage of a local answer given the template reply, with no phraser configured.
pub const TEMPLATE_STAGE: &str = "template";

/// The stages of one utterance, timed by the host's clock.
pub struct Stages(pub Vec<Timing>);

impl Stages {
    /// Runs `f` as stage `stage`.
    pub fn time<R>(&mut self, stage: &str, f: impl FnOnce() -> R) -> R {
        let start = flow_host::elapsed_micros();
        let r = f();
        self.push(stage, start);
        r
    }

    /// Records stage `stage` as having run from `start` (an `elapsed-micros` reading) to now.
    pub fn push(&mut self, stage: &str, start: u64) {
        self.0.push(Timing {
            stage: stage.into(),
            micros: flow_host::elapsed_micros().saturating_sub(start),
        });
    }
}

/// The device's state when the utterance arrived (the `utterance` record's fields).
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// Whether the device has a network connection.
    pub network_up: bool,
    /// Battery charge in percent; none on mains power.
    pub battery_percent: Option<u8>,
}

/// The text of an error, without its kind (what the device shows as an uplink error).
pub fn message(e: Error) -> String {
    match e {
        Error::InvalidArgument(m)
        | Error::ShapeMismatch(m)
        | Error::NotFound(m)
        | Error::NotAllowed(m)
        | Error::BudgetExceeded(m)
        | Error::Internal(m) => m,
    }
}

/// Routes `text` and asks the best-ranked skill (stage `head`): the routing, the skill's
/// name, its response, and the stages so far.
pub fn route_and_ask(text: &str) -> Result<(Routing, String, Response, Stages), Error> {
    let routing = flow_host::route(text)?;
    let mut stages = Stages(routing.timings.clone());
    let skill = routing
        .candidates
        .first()
        .ok_or_else(|| internal("the router ranked no skill"))?
        .skill
        .clone();
    let response = stages.time("head", || flow_host::ask(&skill, text))?;
    Ok((routing, skill, response, stages))
}

/// The policy's signals for `skill`'s `response` to `text`.
pub fn signals(
    text: &str,
    skill: &str,
    response: &Response,
    out_of_scope: f32,
    device: Device,
) -> Signals {
    Signals {
        skill: skill.to_string(),
        intent: response.intent.clone(),
        confidence: response.confidence,
        out_of_scope,
        utterance_chars: text.chars().count().min(u32::MAX as usize) as u32,
        network_up: device.network_up,
        battery_percent: device.battery_percent,
        uplink_allowed: flow_host::uplink_allowed(skill),
    }
}

/// Gives a local answer its reply and path: the skill's own reply when it gave one, else a
/// phrased one or the template (stage `skill-reply`, `phrase` or `template`). Returns why the
/// template was used, when a phraser was configured.
pub fn reply_locally(
    text: &str,
    response: &mut Response,
    stages: &mut Stages,
) -> Option<TemplateReason> {
    let start = flow_host::elapsed_micros();
    let (stage, reason) = local_reply(text, response);
    stages.push(stage, start);
    reason
}

fn local_reply(text: &str, response: &mut Response) -> (&'static str, Option<TemplateReason>) {
    if response.reply.is_some() {
        response.path = Path::Local;
        return (SKILL_REPLY_STAGE, None);
    }
    match flow_host::phrase(text, &response.intent, &response.slots) {
        Ok(reply) => {
            response.reply = Some(reply);
            response.path = Path::Local;
            (PHRASE_STAGE, None)
        }
        Err(reason) => {
            response.reply = Some(flow_host::template_reply(&response.intent, &response.slots));
            response.path = Path::Template;
            match reason {
                TemplateReason::NoPhraser => (TEMPLATE_STAGE, None),
                reason => (PHRASE_STAGE, Some(reason)),
            }
        }
    }
}

/// What the policy decided and what came of it.
pub struct Decided {
    /// The policy's verdict.
    pub verdict: Verdict,
    /// Why an offload fell back to a local answer.
    pub uplink_error: Option<String>,
    /// Why a local answer's reply is the template although a phraser is configured.
    pub template_reason: Option<TemplateReason>,
}

/// Asks the vendor's policy about `skill`'s `response` to `text` (stage `policy`).
pub fn decide(
    text: &str,
    skill: &str,
    out_of_scope: f32,
    device: Device,
    response: &Response,
    stages: &mut Stages,
) -> Verdict {
    let signals = signals(text, skill, response, out_of_scope, device);
    stages.time("policy", || policy::decide(&signals))
}

/// Carries out `verdict` on `skill`'s `response` to `text`: reject (no reply), offload (the
/// uplink's reply, stage `uplink`; if the uplink fails or may not be used, a local answer
/// with the reason), or local ([`reply_locally`]).
pub fn carry_out(
    text: &str,
    skill: &str,
    verdict: Verdict,
    response: &mut Response,
    stages: &mut Stages,
) -> Decided {
    let mut uplink_error = None;
    let mut template_reason = None;
    // Offload first; whatever the uplink does not answer is answered locally.
    let mut local = verdict.decision == Decision::Local;
    match verdict.decision {
        Decision::Reject => {
            response.path = Path::Rejected;
            response.reply = None;
        }
        Decision::Offload => match stages.time("uplink", || flow_host::offload(skill, text)) {
            Ok(reply) => {
                response.reply = Some(reply);
                response.path = Path::Offload;
            }
            Err(e) => {
                uplink_error = Some(message(e));
                local = true;
            }
        },
        Decision::Local => {}
    }
    if local {
        template_reason = reply_locally(text, response, stages);
    }
    Decided {
        verdict,
        uplink_error,
        template_reason,
    }
}

/// [`decide`], then [`carry_out`].
pub fn decide_and_reply(
    text: &str,
    skill: &str,
    out_of_scope: f32,
    device: Device,
    response: &mut Response,
    stages: &mut Stages,
) -> Decided {
    let verdict = decide(text, skill, out_of_scope, device, response, stages);
    carry_out(text, skill, verdict, response, stages)
}

/// An intent as words a person (and a decoder) reads: `PlayMusic` and `play_music` are
/// "play music".
pub fn intent_words(intent: &str) -> String {
    let mut words = String::new();
    let mut previous: Option<char> = None;
    for c in intent.chars() {
        let boundary = matches!(c, '_' | '-' | ' ' | '.');
        let camel =
            c.is_uppercase() && previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
        if (boundary || camel) && !words.is_empty() && !words.ends_with(' ') {
            words.push(' ');
        }
        if !boundary {
            words.extend(c.to_lowercase());
        }
        previous = Some(c);
    }
    words.trim_end().to_string()
}

/// One utterance's answer, before it becomes the component's `outcome`.
pub struct Answer {
    /// The skill that answered.
    pub skill: String,
    /// Its response, with the flow's path and reply.
    pub response: Response,
    /// The router's out-of-scope score.
    pub out_of_scope: f32,
    /// The policy's verdict and what came of it.
    pub decided: Decided,
    /// The stages, timed.
    pub stages: Stages,
}

/// The default flow's answer to `text`: [`route_and_ask`], then [`decide_and_reply`].
pub fn answer(text: &str, device: Device) -> Result<Answer, Error> {
    let (routing, skill, mut response, mut stages) = route_and_ask(text)?;
    let decided = decide_and_reply(
        text,
        &skill,
        routing.out_of_scope,
        device,
        &mut response,
        &mut stages,
    );
    Ok(Answer {
        skill,
        response,
        out_of_scope: routing.out_of_scope,
        decided,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::intent_words;

    #[test]
    fn intents_read_as_words() {
        assert_eq!(intent_words("PlayMusic"), "play music");
        assert_eq!(intent_words("AddToPlaylist"), "add to playlist");
        assert_eq!(intent_words("play_music"), "play music");
        assert_eq!(intent_words("set-timer"), "set timer");
        assert_eq!(intent_words("oos"), "oos");
        assert_eq!(
            intent_words("SearchScreeningEvent"),
            "search screening event"
        );
    }
}
