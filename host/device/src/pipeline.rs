//! One utterance through the device's whole pipeline: the router embeds it once and picks the
//! installed skill whose examples are nearest ([`Router`]); that skill answers (intent,
//! confidence, slots) from the shared encoding; the vendor's policy component decides what
//! happens to the answer. A local answer keeps the reply the skill gave, if it gave one; else it
//! gets a reply phrased by the tiny decoder (SmolLM2 through the `chat` skill), checked before
//! it is used ([`check_reply`]) — or, when phrasing fails, runs out of time or tokens, or the
//! reply fails the check, a template reply marked as such ([`AnswerPath::Template`]) with the
//! reason ([`TemplateReason`]). An offloaded query goes to the device owner's
//! uplink ([`Uplink`]) if the answering skill's manifest grants it; when that fails, the device
//! answers locally and the response says why. Each stage is timed.
//!
//! That orchestration is a component, the pipeline's [`Flow`] (the bundled default flow unless
//! the pipeline was built with another: `PipelineBuilder::flow`), which asks for each part by
//! name through the device's [`edgenlu::flow::FlowHost`]; [`Pipeline::answer_native`] is the
//! same orchestration in the host's own code, the reference the default flow is compared and
//! measured against.

use crate::flow::UtteranceHost;
use crate::reply_check::{check_reply, ReplyRejection};
use crate::router::{Router, RouterError};
use crate::uplink::{Uplink, UplinkError};
use edgenlu::error::SkillError;
use edgenlu::flow::{Flow, FlowError, Utterance};
use edgenlu::policy::Policy;
use edgenlu::{Answer, Skill};
use edgenlu::{
    AnswerPath, ChatRequest, Decision, FinishReason, Forward, Response, SamplingParams, Signals,
    Slot, Timing, Verdict,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an utterance got no answer at all (a failed offload or phrasing still answers).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("routing: {0}")]
    Route(#[from] RouterError),
    #[error(transparent)]
    Skill(#[from] SkillError),
    /// The flow component failed (trapped, ran out of time or memory, passed its bound on
    /// calls, or returned an error or an outcome the host refused).
    #[error("flow: {0}")]
    Flow(SkillError),
}

/// The device's state when an utterance arrives, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceState {
    pub network_up: bool,
    /// None on mains power.
    pub battery_percent: Option<u8>,
}

/// Most tokens a phrased reply may take.
pub const REPLY_TOKENS: u32 = 24;

/// The skills and components one utterance goes through.
pub struct Pipeline {
    /// The installed intent skills, behind their shared encoder (shared with the utterances
    /// in flight).
    pub router: Arc<Router>,
    pub policy: Policy,
    /// The chat skill that phrases replies; none: template replies only.
    pub phraser: Option<Arc<Skill>>,
    /// The owner's uplink, if configured.
    pub uplink: Option<Uplink>,
    /// The flow component that handles each utterance with the parts above.
    pub flow: Flow,
}

/// Most tokens an offloaded answer may take.
pub const UPLINK_TOKENS: u32 = 96;

/// How the uplink is asked to answer.
const UPLINK_SYSTEM: &str = "You are a helpful voice assistant. Answer in one or two sentences.";

/// The stage of a local answer whose reply is the skill's own.
const SKILL_REPLY_STAGE: &str = "skill-reply";
/// The stage of a local answer phrased by the decoder (or templated when phrasing failed).
const PHRASE_STAGE: &str = "phrase";
/// The stage of a local answer given the template reply, with no phraser configured.
const TEMPLATE_STAGE: &str = "template";

/// What the pipeline answered: the skill's answer with `path` and `reply` set by the pipeline
/// (a local answer keeps the skill's own reply), the policy's verdict, and the time of each
/// stage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineAnswer {
    /// The skill that answered.
    pub skill: String,
    #[serde(flatten)]
    pub answer: Answer,
    /// The router's out-of-scope score (1 − similarity of the nearest example of any skill).
    pub out_of_scope: f32,
    pub verdict: Verdict,
    /// Why an offload fell back to a local answer.
    pub uplink_error: Option<String>,
    /// Why a local answer's reply is the template when a phraser was configured.
    #[serde(serialize_with = "display")]
    pub template_reason: Option<TemplateReason>,
    pub stages: Vec<Timing>,
}

/// Why a local answer got the template reply although a phraser is configured.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateReason {
    /// The utterance is out of scope: there is nothing to phrase.
    #[error("out of scope: nothing to phrase")]
    OutOfScope,
    /// The chat skill failed (e.g. a broken decoder, a deadline).
    #[error("phrasing failed: {0}")]
    PhrasingFailed(String),
    /// The decoder did not finish a sentence within [`REPLY_TOKENS`].
    #[error("the phrased reply did not finish a sentence within {REPLY_TOKENS} tokens")]
    Unfinished,
    /// The phrased reply failed [`check_reply`].
    #[error("the phrased reply {reply:?} was not used: {why}")]
    Rejected { reply: String, why: ReplyRejection },
}

impl PipelineAnswer {
    /// The answer as JSON with every time zeroed (stage and host timings): what two ways of
    /// answering the same utterance (the flow and the host's own path) must agree on.
    pub fn without_times(&self) -> serde_json::Value {
        fn zero(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m.iter_mut() {
                        if k == "micros" {
                            *v = serde_json::Value::from(0);
                        } else {
                            zero(v);
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(zero),
                _ => {}
            }
        }
        let mut v = serde_json::to_value(self).expect("an answer serializes");
        zero(&mut v);
        v
    }

    /// Whether the reply is one the decoder phrased (and the check passed): not the skill's
    /// own, the uplink's or the template.
    pub fn phrased(&self) -> bool {
        self.answer.response.path == AnswerPath::Local
            && self.stages.iter().any(|t| t.stage == PHRASE_STAGE)
    }
}

fn display<S: serde::Serializer, T: std::fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

impl Pipeline {
    /// The same pipeline (policy, phraser, uplink) over another router.
    pub fn with_router(&self, router: Router) -> Pipeline {
        self.with_router_arc(Arc::new(router))
    }

    /// The same pipeline (router, policy, phraser, uplink) run by another flow.
    pub fn with_flow(&self, flow: Flow) -> Pipeline {
        Pipeline {
            flow,
            ..self.with_router_arc(self.router.clone())
        }
    }

    fn with_router_arc(&self, router: Arc<Router>) -> Pipeline {
        Pipeline {
            router,
            policy: self.policy.clone(),
            phraser: self.phraser.clone(),
            uplink: self.uplink.clone(),
            flow: self.flow.clone(),
        }
    }

    /// Runs `text` through the pipeline's flow component, which asks this pipeline's router,
    /// skills, policy, phraser and uplink for what it needs. With the bundled default flow the
    /// answer is [`answer_native`](Self::answer_native)'s.
    pub fn answer(&self, text: &str, device: DeviceState) -> Result<PipelineAnswer, PipelineError> {
        let utterance = Utterance {
            text: text.into(),
            network_up: device.network_up,
            battery_percent: device.battery_percent,
        };
        let (outcome, host) = self.flow.handle(UtteranceHost::new(self), &utterance);
        let o = match outcome {
            Ok(o) => o,
            Err(FlowError::Policy(e)) => return Err(PipelineError::Skill(e)),
            // The device's own error behind a call the flow gave up on, if there was one.
            Err(FlowError::Flow(e)) => return Err(host.failure.unwrap_or(PipelineError::Flow(e))),
        };
        Ok(PipelineAnswer {
            skill: o.skill,
            answer: Answer {
                response: o.response,
                weight_bytes_read: host.weight_bytes_read,
            },
            out_of_scope: o.out_of_scope,
            verdict: o.verdict,
            uplink_error: o.uplink_error,
            template_reason: o.template_reason.and_then(crate::flow::template_reason),
            stages: o.stages,
        })
    }

    /// The reference pipeline in the host's own code, what the bundled default flow
    /// reproduces: runs `text` through the router, the skill it picks, the policy and, for a
    /// local answer whose skill gave no reply of its own, phrasing (or the template). A local
    /// answer after a failed offload is answered the same way. Kept to compare the flow's
    /// answers and cost with.
    pub fn answer_native(
        &self,
        text: &str,
        device: DeviceState,
    ) -> Result<PipelineAnswer, PipelineError> {
        let mut stages = Vec::new();
        let mut timed = |stage: &str, took: Duration| {
            stages.push(Timing {
                stage: stage.into(),
                micros: took.as_micros() as u64,
            })
        };
        let routed = self.router.route(text)?;
        timed("tokenize", routed.tokenize);
        timed("embed", routed.embed);
        timed("search", routed.search);
        let route = routed.route;
        let start = Instant::now();
        let mut answer = route.answer(text, routed.encoded)?;
        timed("head", start.elapsed());
        let may_uplink = self.uplink.is_some() && route.may_uplink;
        let r = &answer.response;
        let start = Instant::now();
        let verdict = self.policy.decide(&Signals {
            skill: route.name.clone(),
            intent: r.intent.clone(),
            confidence: r.confidence,
            out_of_scope: routed.out_of_scope,
            utterance_chars: text.chars().count().min(u32::MAX as usize) as u32,
            network_up: device.network_up,
            battery_percent: device.battery_percent,
            uplink_allowed: may_uplink,
        })?;
        timed("policy", start.elapsed());
        let response = &mut answer.response;
        let mut uplink_error = None;
        let mut template_reason = None;
        // Offload first; whatever the uplink does not answer is answered locally.
        let mut local = verdict.decision == Decision::Local;
        match verdict.decision {
            Decision::Reject => {
                response.path = AnswerPath::Rejected;
                response.reply = None;
            }
            Decision::Offload => {
                let start = Instant::now();
                let result = offload(self.uplink.as_ref(), route.may_uplink, text)
                    .map_err(|e| e.to_string());
                timed("uplink", start.elapsed());
                match result {
                    Ok(reply) => {
                        response.reply = Some(reply);
                        response.path = AnswerPath::Offload;
                    }
                    Err(e) => {
                        uplink_error = Some(e);
                        local = true;
                    }
                }
            }
            Decision::Local => {}
        }
        if local {
            let start = Instant::now();
            let (stage, reason) = self.reply_locally(text, response);
            template_reason = reason;
            timed(stage, start.elapsed());
        }
        Ok(PipelineAnswer {
            skill: route.name.clone(),
            out_of_scope: routed.out_of_scope,
            answer,
            verdict,
            uplink_error,
            template_reason,
            stages,
        })
    }

    /// Gives a local answer its reply and path: the skill's own reply when it gave one (the
    /// skill's words, checked at the boundary like the rest of its response), else a phrased
    /// one or the template. Returns the stage to time it as, and why the template was used.
    fn reply_locally(
        &self,
        text: &str,
        response: &mut Response,
    ) -> (&'static str, Option<TemplateReason>) {
        if response.reply.is_some() {
            response.path = AnswerPath::Local;
            return (SKILL_REPLY_STAGE, None);
        }
        let mut template_reason = None;
        (response.reply, response.path) = match self.phrase(text, &response.intent, &response.slots)
        {
            Ok(reply) => (Some(reply), AnswerPath::Local),
            Err(reason) => {
                template_reason = reason;
                let template = template_reply(&response.intent, &response.slots);
                (Some(template), AnswerPath::Template)
            }
        };
        // Without a phraser the reply is the template: timed under its own name.
        let stage = if self.phraser.is_some() {
            PHRASE_STAGE
        } else {
            TEMPLATE_STAGE
        };
        (stage, template_reason)
    }

    /// A reply from the decoder that passes [`check_reply`]; else why the template reply is
    /// used instead (None: no phraser).
    fn phrase(
        &self,
        text: &str,
        intent: &str,
        slots: &[Slot],
    ) -> Result<String, Option<TemplateReason>> {
        phrase(self.phraser.as_deref(), text, intent, slots)
    }
}

/// Why a query was not offloaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OffloadError {
    /// No uplink, or the skill's manifest does not grant it: a policy asking for an uplink the
    /// skill may not use is not obeyed.
    #[error("the skill may not use an uplink")]
    NotAllowed,
    #[error(transparent)]
    Failed(#[from] UplinkError),
}

/// The uplink's answer to `text`, for a skill that `may_uplink`.
pub(crate) fn offload(
    uplink: Option<&Uplink>,
    may_uplink: bool,
    text: &str,
) -> Result<String, OffloadError> {
    match (uplink, may_uplink) {
        (Some(uplink), true) => {
            Ok(uplink.complete(&[("system", UPLINK_SYSTEM), ("user", text)], UPLINK_TOKENS)?)
        }
        _ => Err(OffloadError::NotAllowed),
    }
}

/// A reply from `phraser`'s decoder that passes [`check_reply`]; else why the template reply
/// is used instead (None: no phraser).
pub(crate) fn phrase(
    phraser: Option<&Skill>,
    text: &str,
    intent: &str,
    slots: &[Slot],
) -> Result<String, Option<TemplateReason>> {
    let Some(phraser) = phraser else {
        return Err(None);
    };
    if intent == edgenlu_train::datastore::OUT_OF_SCOPE {
        return Err(Some(TemplateReason::OutOfScope));
    }
    let request = ChatRequest {
        prompt: phrasing_prompt(text, intent, slots),
        template: true,
        system: None,
        max_tokens: REPLY_TOKENS,
        sampling: SamplingParams::GREEDY,
        forward: Forward::Fused,
        constraint: None,
    };
    let r = phraser.chat(&request, None).map_err(|e| {
        tracing::debug!("phrasing failed, template reply: {e}");
        TemplateReason::PhrasingFailed(e.to_string())
    })?;
    let reply = match r.finish {
        FinishReason::Stop => Some(r.text.trim().to_string()),
        // Cut at the last full sentence, if there is one.
        _ => r
            .text
            .rfind(['.', '!', '?'])
            .map(|end| r.text[..=end].trim().to_string()),
    };
    let reply = reply.ok_or(TemplateReason::Unfinished)?;
    match check_reply(&reply, slots, &PHRASING_INSTRUCTIONS) {
        Ok(()) => Ok(reply),
        Err(why) => Err(Some(TemplateReason::Rejected { reply, why })),
    }
}

/// The fixed text of the phrasing prompt, around the utterance, the intent and the slots (what
/// a reply must not echo).
pub const PHRASING_INSTRUCTIONS: [&str; 4] = [
    "You are a voice assistant. The user said: \"",
    "\". You understood the request ",
    ", with these details: ",
    ". Reply to the user in one short sentence saying what you will do.",
];

/// What the decoder is asked: the utterance and what the skill understood.
pub fn phrasing_prompt(text: &str, intent: &str, slots: &[Slot]) -> String {
    let understood = if slots.is_empty() {
        String::from("none")
    } else {
        slots
            .iter()
            .map(|s| format!("{} = {}", s.name, s.value))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let [a, b, c, d] = PHRASING_INSTRUCTIONS;
    format!("{a}{text}{b}{intent}{c}{understood}{d}")
}

/// The reply when there is no phrasing: the intent and its slots, plainly; for an
/// out-of-scope utterance, that the device cannot help.
pub fn template_reply(intent: &str, slots: &[Slot]) -> String {
    if intent == edgenlu_train::datastore::OUT_OF_SCOPE {
        return "Sorry, I can't help with that here.".into();
    }
    let mut reply = format!("OK: {intent}");
    for (i, s) in slots.iter().enumerate() {
        reply.push_str(if i == 0 { " (" } else { ", " });
        reply.push_str(&format!("{}: {}", s.name, s.value));
    }
    if !slots.is_empty() {
        reply.push(')');
    }
    reply.push('.');
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_intent_and_slots() {
        let slot = |name: &str, value: &str| Slot {
            name: name.into(),
            value: value.into(),
            start: 0,
            end: 0,
        };
        assert_eq!(template_reply("GetWeather", &[]), "OK: GetWeather.");
        assert!(template_reply("oos", &[]).starts_with("Sorry"));
        assert_eq!(
            template_reply(
                "PlayMusic",
                &[slot("artist", "Adele"), slot("year", "2015")]
            ),
            "OK: PlayMusic (artist: Adele, year: 2015)."
        );
        let p = phrasing_prompt("play Adele", "PlayMusic", &[slot("artist", "Adele")]);
        assert!(
            p.contains("\"play Adele\"") && p.contains("artist = Adele"),
            "{p}"
        );
    }
}
