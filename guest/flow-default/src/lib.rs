//! The default flow: the device's pipeline as it has always been, as a component.
//!
//! 1. Route the utterance (the router's shared encoder; its stages `tokenize`, `embed`,
//!    `search` are the host's) and ask the best-ranked skill (`head`).
//! 2. Ask the vendor's policy (`policy`) with the skill's answer, the router's out-of-scope
//!    distance and the device's state.
//! 3. Reject: no reply. Offload: the uplink's reply (`uplink`); if the uplink fails or may not
//!    be used, a local answer with the reason in `uplink-error`. Local: the skill's own reply
//!    if it gave one (`skill-reply`), else a reply phrased by the device's decoder (`phrase`),
//!    else the template reply with the reason (`phrase`, or `template` when the device has no
//!    phraser).
//!
//! Each stage is timed with the host's clock around the call, so a stage includes this
//! component's own time around it.

edgenlu_sdk::world!("flow-component");

use edgenlu::nlu::flow_host::{self, TemplateReason};
use edgenlu::nlu::nlu::{Path, Response, Timing};
use edgenlu::nlu::policy::{self, Decision, Signals};
use edgenlu_sdk::{internal, Error};
use exports::edgenlu::nlu::flow::{Guest, Outcome, Utterance};

/// The stage of a local answer whose reply is the skill's own.
const SKILL_REPLY_STAGE: &str = "skill-reply";
/// The stage of a local answer phrased by the decoder (or templated when phrasing failed).
const PHRASE_STAGE: &str = "phrase";
/// The stage of a local answer given the template reply, with no phraser configured.
const TEMPLATE_STAGE: &str = "template";

/// The stages of one utterance, timed by the host's clock.
struct Stages(Vec<Timing>);

impl Stages {
    /// Runs `f` as stage `stage`.
    fn time<R>(&mut self, stage: &str, f: impl FnOnce() -> R) -> R {
        let start = flow_host::elapsed_micros();
        let r = f();
        self.0.push(Timing {
            stage: stage.into(),
            micros: flow_host::elapsed_micros().saturating_sub(start),
        });
        r
    }
}

/// The text of an error, without its kind (what the device shows as an uplink error).
fn message(e: Error) -> String {
    match e {
        Error::InvalidArgument(m)
        | Error::ShapeMismatch(m)
        | Error::NotFound(m)
        | Error::NotAllowed(m)
        | Error::BudgetExceeded(m)
        | Error::Internal(m) => m,
    }
}

/// Gives a local answer its reply and path: the skill's own reply when it gave one, else a
/// phrased one or the template. Returns the stage to time it as, and why the template was used.
fn reply_locally(text: &str, response: &mut Response) -> (&'static str, Option<TemplateReason>) {
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

struct DefaultFlow;

impl Guest for DefaultFlow {
    fn handle(u: Utterance) -> Result<Outcome, Error> {
        let text = &u.text;
        let routing = flow_host::route(text)?;
        let mut stages = Stages(routing.timings);
        let skill = routing
            .candidates
            .first()
            .ok_or_else(|| internal("the router ranked no skill"))?
            .skill
            .clone();
        let mut response = stages.time("head", || flow_host::ask(&skill, text))?;
        let signals = Signals {
            skill: skill.clone(),
            intent: response.intent.clone(),
            confidence: response.confidence,
            out_of_scope: routing.out_of_scope,
            utterance_chars: text.chars().count().min(u32::MAX as usize) as u32,
            network_up: u.network_up,
            battery_percent: u.battery_percent,
            uplink_allowed: flow_host::uplink_allowed(&skill),
        };
        let verdict = stages.time("policy", || policy::decide(&signals));
        let mut uplink_error = None;
        let mut template_reason = None;
        // Offload first; whatever the uplink does not answer is answered locally.
        let mut local = verdict.decision == Decision::Local;
        match verdict.decision {
            Decision::Reject => {
                response.path = Path::Rejected;
                response.reply = None;
            }
            Decision::Offload => match stages.time("uplink", || flow_host::offload(&skill, text)) {
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
            let start = flow_host::elapsed_micros();
            let (stage, reason) = reply_locally(text, &mut response);
            template_reason = reason;
            stages.0.push(Timing {
                stage: stage.into(),
                micros: flow_host::elapsed_micros().saturating_sub(start),
            });
        }
        Ok(Outcome {
            skill,
            response,
            out_of_scope: routing.out_of_scope,
            verdict,
            uplink_error,
            template_reason,
            stages: stages.0,
        })
    }
}

export!(DefaultFlow);
