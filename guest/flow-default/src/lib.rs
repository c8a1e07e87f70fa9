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
//! The steps are the SDK's ([`edgenlu_sdk::flow`]), which other flows reuse.

edgenlu_sdk::world!("flow-component");

use edgenlu_sdk::{flow, Error};
use exports::edgenlu::nlu::flow::{Guest, Outcome, Utterance};

struct DefaultFlow;

impl Guest for DefaultFlow {
    fn handle(u: Utterance) -> Result<Outcome, Error> {
        Ok(flow::answer(&u.text, (&u).into())?.into())
    }
}

export!(DefaultFlow);
