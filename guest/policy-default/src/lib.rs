//! The default vendor policy: answer on the device when the skill is sure enough, send the
//! query over the uplink when it is not (and the uplink can be used), refuse otherwise.
//!
//! Rules, in order (config keys in parentheses, defaults after them):
//! 1. An utterance longer than `max-chars` (1000) is refused: nothing on the device is sized
//!    for it, and sending it off would be a way to exfiltrate data through the skill.
//! 2. An answer is out of scope when the skill says `oos` or the router's out-of-scope score
//!    (1 − the cosine of the nearest example of any skill) is above `max-out-of-scope`
//!    ([`MAX_OUT_OF_SCOPE`]). An in-scope answer with confidence at least `min-confidence`
//!    (0.5) stays local.
//! 3. Otherwise (out of scope, or unsure) it is offloaded when the skill may use the uplink,
//!    the network is up, and the battery is above `min-battery` (10 %, radio time costs
//!    charge) or on mains power.
//! 4. Otherwise an unsure in-scope answer stays local (better than nothing, and the response
//!    says how sure it was); an out-of-scope one is refused.

edgenlu_sdk::world!("policy-component");

use edgenlu_sdk::config;
use edgenlu_sdk::log::{self, Level};
use exports::edgenlu::nlu::policy::{Decision, Guest, Signals, Verdict};

/// The intent skills answer for utterances outside their scope.
const OUT_OF_SCOPE: &str = "oos";

/// The default `max-out-of-scope`, chosen on validation data (`edgenlu eval` reports the best
/// cut for a dataset with `oos` examples): the value maximizing overall accuracy (in-scope
/// right, out-of-scope refused) over CLINC150 val through a skill built on CLINC150 train, and
/// a tenth of SNIPS train (every tenth line) with CLINC150 val's `oos` queries through a skill
/// built on the other nine tenths. A skill's confidence cannot do this job: a head trained
/// without out-of-scope examples is sure of gibberish too.
const MAX_OUT_OF_SCOPE: f32 = 0.57;

struct DefaultPolicy;

/// A config value, or `default` when it is missing or not a number (a policy must always
/// decide; a bad value is logged).
fn setting(key: &str, default: f32) -> f32 {
    match config::get(key) {
        None => default,
        Some(v) => v.trim().parse().unwrap_or_else(|_| {
            log::log(
                Level::Warn,
                &format!("policy config {key}={v:?} is not a number; using {default}"),
            );
            default
        }),
    }
}

fn verdict(decision: Decision, reason: String) -> Verdict {
    Verdict { decision, reason }
}

impl Guest for DefaultPolicy {
    fn decide(s: Signals) -> Verdict {
        let max_chars = setting("max-chars", 1000.0);
        let min_confidence = setting("min-confidence", 0.5);
        let min_battery = setting("min-battery", 10.0);
        let max_out_of_scope = setting("max-out-of-scope", MAX_OUT_OF_SCOPE);
        if s.utterance_chars as f32 > max_chars {
            return verdict(
                Decision::Reject,
                format!("{} characters, more than {max_chars}", s.utterance_chars),
            );
        }
        let far = s.out_of_scope > max_out_of_scope;
        let in_scope = s.intent != OUT_OF_SCOPE && !far;
        if in_scope && s.confidence >= min_confidence {
            return verdict(
                Decision::Local,
                format!("confidence {:.2} ≥ {min_confidence:.2}", s.confidence),
            );
        }
        let why = if in_scope {
            format!("confidence {:.2} < {min_confidence:.2}", s.confidence)
        } else if far {
            format!(
                "out of scope ({:.2} from every skill's examples > {max_out_of_scope:.2})",
                s.out_of_scope
            )
        } else {
            "out of scope".to_string()
        };
        let battery_ok = s.battery_percent.is_none_or(|b| b as f32 > min_battery);
        if s.uplink_allowed && s.network_up && battery_ok {
            return verdict(Decision::Offload, why);
        }
        let blocked = if !s.uplink_allowed {
            "no uplink for this skill"
        } else if !s.network_up {
            "network down"
        } else {
            "battery low"
        };
        if in_scope {
            verdict(Decision::Local, format!("{why}, but {blocked}"))
        } else {
            verdict(Decision::Reject, format!("{why} and {blocked}"))
        }
    }
}

export!(DefaultPolicy);
