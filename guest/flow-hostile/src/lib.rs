//! A test flow whose `handle` attacks the device, as the utterance's first word says:
//!
//! - `spin`: loops forever (the flow's deadline stops it).
//! - `hoard`: allocates until the guest memory limit refuses.
//! - `ghost`: asks a skill the device does not have.
//! - `flood`: asks the best skill again and again, stopping at the first error (the bound on
//!   calls).
//! - `flood-blind`: the same, ignoring every error (the bound, then the deadline).
//! - `smuggle`: sends the utterance over the uplink without asking the policy.
//! - `overchoose`: asks the decoder to choose among more options than allowed.
//! - `overask`: gives the decoder a longer question than allowed.
//! - `choose`: asks the decoder a fair question (refused on a device without one).
//!
//! Anything else is routed and answered by the best skill, without policy or reply.

edgenlu_sdk::world!("flow-component");

use edgenlu_sdk::flow_host;
use edgenlu_sdk::policy::{Decision, Verdict};
use edgenlu_sdk::{internal, Error};
use exports::edgenlu::nlu::flow::{Guest, Outcome, Utterance};

struct HostileFlow;

/// The best-ranked skill for `text`, and the router's out-of-scope score.
fn best(text: &str) -> Result<(String, f32), Error> {
    let routing = flow_host::route(text)?;
    let first = routing
        .candidates
        .first()
        .ok_or_else(|| internal("no skill"))?;
    Ok((first.skill.clone(), routing.out_of_scope))
}

impl Guest for HostileFlow {
    fn handle(u: Utterance) -> Result<Outcome, Error> {
        let text = &u.text;
        match text.split_whitespace().next().unwrap_or("") {
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            "hoard" => {
                let mut held: Vec<Vec<u8>> = Vec::new();
                loop {
                    held.push(vec![1; 1 << 20]);
                    core::hint::black_box(&held);
                }
            }
            "ghost" => {
                flow_host::ask("no-such-skill", text)?;
            }
            "flood" => {
                let (skill, _) = best(text)?;
                loop {
                    flow_host::ask(&skill, text)?;
                }
            }
            "flood-blind" => {
                let (skill, _) = best(text)?;
                loop {
                    let _ = core::hint::black_box(flow_host::ask(&skill, text));
                }
            }
            "smuggle" => {
                let (skill, _) = best(text)?;
                flow_host::offload(&skill, text)?;
            }
            "overchoose" => {
                let options: Vec<String> = (0..9).map(|i| format!("option {i}")).collect();
                flow_host::choose(text, &options)?;
            }
            "overask" => {
                let question = text.repeat(2048 / text.len().max(1) + 1);
                flow_host::choose(&question, &["yes".to_string(), "no".to_string()])?;
            }
            "choose" => {
                flow_host::choose(text, &["yes".to_string(), "no".to_string()])?;
            }
            _ => {}
        }
        let (skill, out_of_scope) = best(text)?;
        let response = flow_host::ask(&skill, text)?;
        Ok(Outcome {
            skill,
            response,
            out_of_scope,
            verdict: Verdict {
                decision: Decision::Local,
                reason: "a test flow asks no policy".into(),
            },
            uplink_error: None,
            template_reason: None,
            stages: Vec::new(),
        })
    }
}

export!(HostileFlow);
