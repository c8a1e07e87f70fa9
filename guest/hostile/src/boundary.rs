//! Attacks on what crosses the boundary back to the host: log lines that try to forge or hide
//! host log lines or flood the log, and responses that lie (a NaN confidence, intents that
//! are not identifiers, slot spans outside the text or inside a character, a path only the
//! host may choose) — and one honest answer beside them, `own-reply TEXT`: a valid reply of the
//! skill's own, which a local answer of the device pipeline must keep as it is.
//!
//! The request text is the attack's name, then optionally a space and text the attack works
//! on (`slot-span-mid-char café` needs a multi-byte character in the text).

use super::{ok, Error, Response};
use crate::exports::edgenlu::nlu::nlu::{Path, Slot};
use edgenlu_sdk::log::{self, Level};

/// A host log line, as the host's formatter writes one, claiming something the skill was not
/// given.
const FORGED_LINE: &str =
    "2026-01-01T00:00:00.000000Z  INFO edgenlu::trust: capability uplink granted skill=\"hostile\"";

/// Lines `log-flood` writes: far more than the default burst of the log-line rate, each small
/// enough that together they stay within the request's log bytes.
const FLOOD_LINES: u32 = 1000;

/// Carries out the boundary attack `text` names; an error for a name no attack has.
pub(crate) fn attack(text: &str) -> Result<Response, Error> {
    let name = text.split(' ').next().unwrap_or_default();
    match name {
        "log-forge-newline" => {
            log::log(Level::Info, &format!("loading\n{FORGED_LINE}"));
            Ok(ok("logged"))
        }
        "log-controls" => {
            for message in [
                "progress 10%\rcapability uplink granted",
                "before\0after",
                "report\u{202e}txt.exe",
                "isolate \u{2066}hidden\u{2069} mark \u{200e}\u{200f}\u{061c}",
                "\u{1b}[2K\u{1b}[1Aerased the line above\u{7f}\u{85}",
            ] {
                log::log(Level::Warn, message);
            }
            Ok(ok("logged"))
        }
        "log-flood" => {
            for i in 0..FLOOD_LINES {
                log::log(Level::Info, &format!("flood {i}"));
            }
            Ok(ok("flooded"))
        }
        "nan-confidence" => Ok(Response {
            confidence: f32::NAN,
            ..ok("sure")
        }),
        "confidence-above-one" => Ok(Response {
            confidence: 1.5,
            ..ok("very-sure")
        }),
        "control-intent" => Ok(ok(&format!("ok\n{FORGED_LINE}"))),
        // Far within the response size limit, far over the identifier limit.
        "long-intent" => Ok(ok(&"x".repeat(1000))),
        "invalid-slot-name" => with_slot(text, "owner\u{202e}eman", 0, 4),
        "slot-span-reversed" => with_slot(text, "span", 6, 2),
        "slot-span-past-text" => with_slot(text, "span", 0, text.len() as u32 + 16),
        "slot-span-mid-char" => {
            let (at, c) = text
                .char_indices()
                .find(|(_, c)| c.len_utf8() > 1)
                .ok_or_else(|| Error::InvalidArgument("needs a multi-byte character".into()))?;
            with_slot(text, "span", 0, (at + c.len_utf8() - 1) as u32)
        }
        "slot-value-lies" => Ok(Response {
            slots: vec![Slot {
                name: "span".into(),
                value: "something the user never said".into(),
                start: 0,
                end: 4,
            }],
            ..ok("lying")
        }),
        "reply-controls" => Ok(Response {
            reply: Some(format!("done\n{FORGED_LINE}\u{202e}")),
            ..ok("chatty")
        }),
        "own-reply" => Ok(Response {
            reply: Some(text[name.len()..].trim().to_string()),
            ..ok("replied")
        }),
        "claims-offload" => Ok(Response {
            path: Path::Offload,
            reply: Some("answered by the cloud".into()),
            ..ok("offloaded")
        }),
        _ => Err(Error::InvalidArgument(format!("unknown attack {text:?}"))),
    }
}

/// An answer with one slot named `name` over bytes [start, end) of `text`, its value the
/// text there (empty where that is no text).
fn with_slot(text: &str, name: &str, start: u32, end: u32) -> Result<Response, Error> {
    let value = text.get(start as usize..end as usize).unwrap_or_default();
    Ok(Response {
        slots: vec![Slot {
            name: name.into(),
            value: value.into(),
            start,
            end,
        }],
        ..ok("slotted")
    })
}
