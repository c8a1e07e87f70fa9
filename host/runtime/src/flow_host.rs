//! What a flow component's imports reach: [`FlowHost`], the device's side of one utterance
//! (its router, skills, policy, phraser and uplink), implemented by whoever embeds the runtime,
//! and the per-utterance record the flow's store keeps around it ([`FlowCalls`]): the calls
//! made, the bound on them, and the policy's failure, which ends the utterance.

use crate::bindings::flow::edgenlu::nlu::flow_host::{Routing, TemplateReason};
use crate::bindings::{Response, Signals, Slot, Verdict, WitError};
use crate::error::{HostError, SkillError};
use std::any::Any;
use std::time::Instant;

/// The device's side of one utterance, as a flow component asks for it: one method per
/// import of `flow-host` (and `policy.decide`). The runtime checks the flow's budgets (its
/// deadline, its bound on calls, the `uplink` capability) before it calls any of these; an
/// implementation answers for the device: which skills exist, how they are asked, whether a
/// skill may use the uplink.
///
/// One value serves one utterance (it may keep what the utterance needs between calls, e.g. the
/// encoding `route` made, for `ask`), and is handed back when the flow is done, so the device
/// can read what it kept (e.g. the typed error behind a failed call).
pub trait FlowHost: Any + Send {
    /// The router's ranking of every installed skill for `text` (best first), the
    /// out-of-scope distance and the routing stages' times; keeps `text`'s encoding for
    /// [`ask`](Self::ask).
    fn route(&mut self, text: &str) -> Result<Routing, WitError>;
    /// Installed skill `skill`'s response to `text`, from a fresh instance under its own
    /// budgets (with the kept encoding if `text` was routed), stopped at the flow's
    /// `deadline` if that comes before the skill's own.
    fn ask(&mut self, skill: &str, text: &str, deadline: Instant) -> Result<Response, WitError>;
    /// Whether `skill` may have a query sent over the device's uplink (the device has one and
    /// the skill's manifest grants it). The runtime adds the flow's own capability.
    fn uplink_allowed(&mut self, skill: &str) -> bool;
    /// Sends `text` over the uplink on behalf of `skill`; only called for a flow with the
    /// `uplink` capability.
    fn offload(&mut self, skill: &str, text: &str) -> Result<String, WitError>;
    /// The vendor policy's verdict on `signals`. A failure ends the utterance: a flow gets no
    /// guessed verdict.
    fn decide(&mut self, signals: &Signals) -> Result<Verdict, SkillError>;
    /// A reply phrased by the device's decoder and checked, or why there is none.
    fn phrase(
        &mut self,
        text: &str,
        intent: &str,
        slots: &[Slot],
    ) -> Result<String, TemplateReason>;
    /// The device's plain reply for `intent` and `slots`.
    fn template_reply(&mut self, intent: &str, slots: &[Slot]) -> String;
    /// The device decoder's log-probability of each of `options` as the whole answer to
    /// `question` (the runtime checked their counts and sizes: [`MAX_OPTIONS`],
    /// [`MAX_OPTION_BYTES`], [`MAX_QUESTION_BYTES`]). Work past `deadline` stops; memory
    /// held for the call is charged with `charge` (to the flow's host-memory budget, given
    /// back when the call returns) before it is allocated.
    fn choose(
        &mut self,
        question: &str,
        options: &[String],
        deadline: Instant,
        charge: &mut dyn FnMut(usize) -> Result<(), WitError>,
    ) -> Result<Vec<f32>, WitError>;
}

/// Largest question (`choose`) a flow may give the decoder, bytes.
pub const MAX_QUESTION_BYTES: usize = 1024;
/// Most options a flow's `choose` may score.
pub const MAX_OPTIONS: usize = 8;
/// Largest option of `choose`, bytes.
pub const MAX_OPTION_BYTES: usize = 64;

/// What a flow may do beyond its component's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    /// Calls per utterance that run another component or the network (`route`, `ask`,
    /// `offload`, `phrase`, `policy.decide`); past it a call fails with `budget-exceeded`.
    pub max_calls: u32,
    /// The `uplink` capability: without it `offload` is refused (`not-allowed`) and
    /// `uplink-allowed` is false.
    pub uplink: bool,
}

impl Default for FlowLimits {
    /// Room for a flow that routes, asks two or three skills, decides, phrases and offloads;
    /// no uplink (a capability is granted, never assumed).
    fn default() -> Self {
        FlowLimits {
            max_calls: 16,
            uplink: false,
        }
    }
}

/// The flow's store's record of one utterance: the device's host, and what the runtime
/// counts and keeps for it.
pub(crate) struct FlowCalls {
    pub(crate) host: Box<dyn FlowHost>,
    pub(crate) limits: FlowLimits,
    /// When the utterance's flow started (`elapsed-micros`).
    pub(crate) started: Instant,
    pub(crate) calls: u32,
    /// The policy's failure, which ended the utterance (the trap's cause).
    pub(crate) failure: Option<SkillError>,
}

impl FlowCalls {
    /// Counts one more call that runs a component or the network, within the bound.
    pub(crate) fn charge(&mut self, what: &str) -> Result<(), HostError> {
        if self.calls >= self.limits.max_calls {
            return Err(HostError::budget(format!(
                "{what}: the flow already made {} calls for this utterance, its limit",
                self.calls
            )));
        }
        self.calls += 1;
        Ok(())
    }
}
