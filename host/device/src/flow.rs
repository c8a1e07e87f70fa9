//! The device's side of a flow component ([`edgenlu::flow::FlowHost`]): for one utterance, the
//! pipeline's router, skills, policy, phraser and uplink, asked by name. A skill is found among
//! the router's routes only (a flow names skills, never files); the text the router encoded is
//! handed to every skill asked about the same text; an offload goes out only for a skill
//! whose route may use the uplink, as in the host's own pipeline.

use crate::pipeline::{
    offload, phrase, template_reply, OffloadError, Pipeline, PipelineError, TemplateReason,
};
use crate::reply_check::ReplyRejection;
use crate::router::{Route, Router};
use crate::uplink::Uplink;
use edgenlu::error::SkillError;
use edgenlu::flow::{
    Candidate, FlowHost, MissingSlotValue, RejectedReply, ReplyRejection as WitRejection, Routing,
    TemplateReason as WitReason,
};
use edgenlu::policy::Policy;
use edgenlu::{Encoded, Request, Response, Signals, Skill, Slot, Timing, Verdict, WitError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One utterance's view of a [`Pipeline`], for its flow.
pub(crate) struct UtteranceHost {
    router: Arc<Router>,
    policy: Policy,
    phraser: Option<Arc<Skill>>,
    uplink: Option<Uplink>,
    /// The text `route` encoded, and its encoding.
    routed: Option<(String, Encoded)>,
    /// Weight bytes the skills asked read, summed.
    pub(crate) weight_bytes_read: u64,
    /// The device's error behind the last call that failed (what the utterance fails with if
    /// the flow then gives up).
    pub(crate) failure: Option<PipelineError>,
}

impl UtteranceHost {
    pub(crate) fn new(p: &Pipeline) -> UtteranceHost {
        UtteranceHost {
            router: p.router.clone(),
            policy: p.policy.clone(),
            phraser: p.phraser.clone(),
            uplink: p.uplink.clone(),
            routed: None,
            weight_bytes_read: 0,
            failure: None,
        }
    }

    /// The route of installed skill `skill`.
    fn route_named(&self, skill: &str) -> Option<&Route> {
        self.router.routes().iter().find(|r| r.name == skill)
    }

    /// Keeps `e` as the utterance's failure and gives the flow its WIT form.
    fn fail(&mut self, e: PipelineError) -> WitError {
        let wit = match &e {
            PipelineError::Skill(SkillError::Guest(w))
            | PipelineError::Route(crate::router::RouterError::Skill(SkillError::Guest(w))) => {
                w.clone()
            }
            other => WitError::Internal(other.to_string()),
        };
        self.failure = Some(e);
        wit
    }
}

fn timing(stage: &str, took: Duration) -> Timing {
    Timing {
        stage: stage.into(),
        micros: took.as_micros() as u64,
    }
}

impl FlowHost for UtteranceHost {
    fn route(&mut self, text: &str) -> Result<Routing, WitError> {
        let ranked = self
            .router
            .rank(text)
            .map_err(|e| self.fail(PipelineError::Route(e)))?;
        let routes = self.router.routes();
        let candidates = ranked
            .scores
            .iter()
            .map(|&(i, score)| Candidate {
                skill: routes[i].name.clone(),
                score,
            })
            .collect();
        let timings = vec![
            timing("tokenize", ranked.tokenize),
            timing("embed", ranked.embed),
            timing("search", ranked.search),
        ];
        self.routed = Some((text.to_string(), ranked.encoded));
        Ok(Routing {
            candidates,
            out_of_scope: ranked.out_of_scope,
            timings,
        })
    }

    fn ask(&mut self, skill: &str, text: &str, deadline: Instant) -> Result<Response, WitError> {
        let router = self.router.clone();
        let route = router
            .routes()
            .iter()
            .find(|r| r.name == skill)
            .ok_or_else(|| WitError::NotFound(format!("no installed skill {skill:?}")))?;
        // The routed text's encoding is lent to the request and taken back, not copied.
        let routed = self.routed.take_if(|(routed, _)| routed == text);
        let (routed_text, encoded) = routed.map_or((None, None), |(t, e)| (Some(t), Some(e)));
        let mut request = Request {
            text: text.into(),
            locale: None,
            encoded,
        };
        let answer = route.skill.handle_request_until(&request, Some(deadline));
        if let (Some(t), Some(e)) = (routed_text, request.encoded.take()) {
            self.routed = Some((t, e));
        }
        let answer = answer.map_err(|e| self.fail(PipelineError::Skill(e)))?;
        self.weight_bytes_read += answer.weight_bytes_read;
        Ok(answer.response)
    }

    fn uplink_allowed(&mut self, skill: &str) -> bool {
        self.uplink.is_some() && self.route_named(skill).is_some_and(|r| r.may_uplink)
    }

    fn offload(&mut self, skill: &str, text: &str) -> Result<String, WitError> {
        let may_uplink = self.route_named(skill).is_some_and(|r| r.may_uplink);
        offload(self.uplink.as_ref(), may_uplink, text).map_err(|e| match e {
            OffloadError::NotAllowed => WitError::NotAllowed(e.to_string()),
            OffloadError::Failed(_) => WitError::Internal(e.to_string()),
        })
    }

    fn decide(&mut self, signals: &Signals) -> Result<Verdict, SkillError> {
        self.policy.decide(signals)
    }

    fn phrase(&mut self, text: &str, intent: &str, slots: &[Slot]) -> Result<String, WitReason> {
        phrase(self.phraser.as_deref(), text, intent, slots).map_err(|reason| match reason {
            None => WitReason::NoPhraser,
            Some(reason) => wit_reason(reason),
        })
    }

    fn template_reply(&mut self, intent: &str, slots: &[Slot]) -> String {
        template_reply(intent, slots)
    }

    fn choose(
        &mut self,
        question: &str,
        options: &[String],
        deadline: Instant,
        charge: &mut dyn FnMut(usize) -> Result<(), WitError>,
    ) -> Result<Vec<f32>, WitError> {
        crate::decoder_use::choose(self.phraser.as_deref(), question, options, deadline, charge)
    }
}

/// A template reason as a flow sees it.
fn wit_reason(reason: TemplateReason) -> WitReason {
    match reason {
        TemplateReason::OutOfScope => WitReason::OutOfScope,
        TemplateReason::PhrasingFailed(why) => WitReason::PhrasingFailed(why),
        TemplateReason::Unfinished => WitReason::Unfinished,
        TemplateReason::Rejected { reply, why } => WitReason::Rejected(RejectedReply {
            reply,
            why: match why {
                ReplyRejection::MissingSlotValue { slot, value } => {
                    WitRejection::MissingSlotValue(MissingSlotValue { slot, value })
                }
                ReplyRejection::EchoesInstructions(run) => WitRejection::EchoesInstructions(run),
                ReplyRejection::NotOneSentence => WitRejection::NotOneSentence,
                ReplyRejection::TooLong(chars) => {
                    WitRejection::TooLong(chars.min(u32::MAX as usize) as u32)
                }
                ReplyRejection::Empty => WitRejection::Empty,
            },
        }),
    }
}

/// The reason a flow gave for a template reply, as the pipeline reports it (none for
/// `no-phraser`: a device without a phraser always answers with the template).
pub(crate) fn template_reason(reason: WitReason) -> Option<TemplateReason> {
    Some(match reason {
        WitReason::NoPhraser => return None,
        WitReason::OutOfScope => TemplateReason::OutOfScope,
        WitReason::PhrasingFailed(why) => TemplateReason::PhrasingFailed(why),
        WitReason::Unfinished => TemplateReason::Unfinished,
        WitReason::Rejected(RejectedReply { reply, why }) => TemplateReason::Rejected {
            reply,
            why: match why {
                WitRejection::MissingSlotValue(MissingSlotValue { slot, value }) => {
                    ReplyRejection::MissingSlotValue { slot, value }
                }
                WitRejection::EchoesInstructions(run) => ReplyRejection::EchoesInstructions(run),
                WitRejection::NotOneSentence => ReplyRejection::NotOneSentence,
                WitRejection::TooLong(chars) => ReplyRejection::TooLong(chars as usize),
                WitRejection::Empty => ReplyRejection::Empty,
            },
        },
    })
}
