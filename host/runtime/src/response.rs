//! What the host accepts from a skill's `handle`: its response is checked at the boundary,
//! before the policy, a template reply, `/v1/nlu` or a terminal sees any of it. A response
//! that breaks a rule is refused with [`SkillError::InvalidResponse`] naming the field, never
//! repaired: a skill that says something false about its answer is misbehaving.
//!
//! The rules:
//! - `confidence` is a finite number in [0, 1].
//! - `intent`, each slot's `name` and each timing's `stage` are identifiers: 1 to
//!   [`MAX_IDENTIFIER_BYTES`] ASCII letters, digits, `_`, `-`, `.` or `:` (what the datasets
//!   the skills are built from use: SNIPS `AddToPlaylist`, CLINC150 `change_speed`, `oos`,
//!   slots such as `playlist_owner`). Stages starting `host:` are the host's own timings.
//! - Each slot's span `[start, end)` has `start <= end`, lies inside the request text, starts
//!   and ends on UTF-8 character boundaries, and its `value` is exactly that part of the text.
//! - `reply`, free text for people, holds no hidden character ([`is_hidden`]: controls, bidi
//!   and other format characters, line separators), except the zero-width joiner and
//!   non-joiner that emoji sequences and some scripts need.
//! - `path` is `local`: offloading, rejecting and template replies are the host's decisions.

use crate::bindings::{AnswerPath, Response, Slot};
use crate::error::SkillError;
use crate::escape::is_hidden;

/// Longest intent, slot name or timing stage a skill may return, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 64;

/// Checks `response` to a request of `text` against the rules of this module.
pub(crate) fn validate(text: &str, response: &Response) -> Result<(), SkillError> {
    validate_answer(text, response)?;
    let path = match response.path {
        AnswerPath::Local => None,
        AnswerPath::Offload => Some("offload"),
        AnswerPath::Rejected => Some("rejected"),
        AnswerPath::Template => Some("template"),
    };
    if let Some(path) = path {
        return Err(invalid(
            "path",
            format!("is {path}; a skill answers local, the host decides anything else"),
        ));
    }
    for (i, timing) in response.timings.iter().enumerate() {
        if timing.stage.starts_with("host:") {
            return Err(invalid(
                format!("timings[{i}].stage"),
                "names a host timing",
            ));
        }
    }
    Ok(())
}

/// Checks what a flow's outcome carries of a skill's response to `text`: the rules of this
/// module except two, as a flow passes on the response it got (the host's own timings in it)
/// and chooses the path.
pub(crate) fn validate_outcome(text: &str, response: &Response) -> Result<(), SkillError> {
    validate_answer(text, response)
}

/// The rules a response meets whoever produced it: confidence, identifiers, slot spans, reply
/// and timing stages.
fn validate_answer(text: &str, response: &Response) -> Result<(), SkillError> {
    let c = response.confidence;
    if !(c.is_finite() && (0.0..=1.0).contains(&c)) {
        return Err(invalid(
            "confidence",
            format!("is {c}, not a finite number in [0, 1]"),
        ));
    }
    identifier(&response.intent).map_err(|reason| invalid("intent", reason))?;
    for (i, slot) in response.slots.iter().enumerate() {
        identifier(&slot.name).map_err(|reason| invalid(format!("slots[{i}].name"), reason))?;
        span(text, slot).map_err(|reason| invalid(format!("slots[{i}]"), reason))?;
    }
    if let Some(reply) = &response.reply {
        let hidden = reply
            .char_indices()
            .find(|&(_, c)| is_hidden(c) && !matches!(c, '\u{200c}' | '\u{200d}'));
        if let Some((at, c)) = hidden {
            return Err(invalid(
                "reply",
                format!("has the hidden character {c:?} at byte {at}"),
            ));
        }
    }
    for (i, timing) in response.timings.iter().enumerate() {
        identifier(&timing.stage)
            .map_err(|reason| invalid(format!("timings[{i}].stage"), reason))?;
    }
    Ok(())
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SkillError {
    SkillError::InvalidResponse {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Why `name` is not an identifier, if it is not.
fn identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!(
            "is {} bytes, more than the {MAX_IDENTIFIER_BYTES} an identifier may have",
            name.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    match name.char_indices().find(|&(_, c)| !allowed(c)) {
        Some((at, c)) => Err(format!(
            "has {c:?} at byte {at}; an identifier has only ASCII letters, digits, '_', '-', \
             '.' and ':'"
        )),
        None => Ok(()),
    }
}

/// Why `slot`'s span and value do not fit `text`, if they do not.
fn span(text: &str, slot: &Slot) -> Result<(), String> {
    let (start, end) = (slot.start as usize, slot.end as usize);
    if start > end {
        return Err(format!("starts at byte {start}, after its end {end}"));
    }
    if end > text.len() {
        return Err(format!(
            "ends at byte {end}, past the text's {} bytes",
            text.len()
        ));
    }
    if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return Err(format!(
            "[{start}, {end}) does not start and end on character boundaries"
        ));
    }
    if slot.value != text[start..end] {
        return Err(format!(
            "value is not the text of its span [{start}, {end})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Timing;

    const TEXT: &str = "add clem burke to my playlist Café Tacvba";

    fn slot(name: &str, start: u32, end: u32) -> Slot {
        let value = TEXT
            .get(start as usize..end as usize)
            .unwrap_or("")
            .to_string();
        Slot {
            name: name.into(),
            value,
            start,
            end,
        }
    }

    fn good() -> Response {
        Response {
            intent: "AddToPlaylist".into(),
            confidence: 0.93,
            slots: vec![slot("artist", 4, 14), slot("playlist_owner", 18, 20)],
            reply: Some("Adding it — «Café Tacvba» 👨‍👩‍👧 日本語".into()),
            path: AnswerPath::Local,
            timings: vec![Timing {
                stage: "search".into(),
                micros: 12,
            }],
        }
    }

    /// The field `r` is refused for.
    fn refused(r: &Response) -> String {
        match validate(TEXT, r) {
            Err(SkillError::InvalidResponse { field, .. }) => field,
            other => panic!("expected an invalid response, got {other:?}"),
        }
    }

    #[test]
    fn an_honest_response_passes() {
        validate(TEXT, &good()).unwrap();
        for intent in ["oos", "change_speed", "PlayMusic", "music:play", "v1.2-x"] {
            let r = Response {
                intent: intent.into(),
                ..good()
            };
            validate(TEXT, &r).unwrap();
        }
        // The whole text, an empty span at its end, and a span ending in a multi-byte char.
        let r = Response {
            slots: vec![
                slot("all", 0, TEXT.len() as u32),
                slot("empty", TEXT.len() as u32, TEXT.len() as u32),
                slot("playlist", 30, 35),
            ],
            reply: None,
            ..good()
        };
        validate(TEXT, &r).unwrap();
    }

    #[test]
    fn confidence_must_be_finite_and_in_zero_to_one() {
        for c in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.01, 1.01] {
            let r = Response {
                confidence: c,
                ..good()
            };
            assert_eq!(refused(&r), "confidence", "{c}");
        }
        for c in [0.0, 1.0] {
            validate(
                TEXT,
                &Response {
                    confidence: c,
                    ..good()
                },
            )
            .unwrap();
        }
    }

    #[test]
    fn intents_are_bounded_printable_identifiers() {
        for intent in [
            "",
            "play\nmusic",
            "Play\u{202e}cisum",
            "play music",
            "café",
            "a/b",
            &"x".repeat(MAX_IDENTIFIER_BYTES + 1),
        ] {
            let r = Response {
                intent: intent.into(),
                ..good()
            };
            assert_eq!(refused(&r), "intent", "{intent:?}");
        }
        let longest = Response {
            intent: "x".repeat(MAX_IDENTIFIER_BYTES),
            ..good()
        };
        validate(TEXT, &longest).unwrap();
    }

    #[test]
    fn slot_names_are_identifiers() {
        let mut r = good();
        r.slots[1].name = "owner\u{0}".into();
        assert_eq!(refused(&r), "slots[1].name");
    }

    #[test]
    fn a_span_that_does_not_fit_the_text_is_refused() {
        // "é" is bytes 33 and 34 of TEXT.
        assert_eq!(&TEXT[30..35], "Café");
        let past = TEXT.len() as u32 + 1;
        for (why, bad) in [
            (
                "reversed",
                Slot {
                    start: 14,
                    end: 4,
                    ..slot("artist", 4, 14)
                },
            ),
            (
                "past the text",
                Slot {
                    end: past,
                    ..slot("artist", 4, past - 1)
                },
            ),
            (
                "far past the text",
                Slot {
                    start: u32::MAX,
                    end: u32::MAX,
                    ..slot("a", 0, 0)
                },
            ),
            ("inside a character", slot("playlist", 30, 34)),
            (
                "a value not its text",
                Slot {
                    value: "someone else".into(),
                    ..slot("artist", 4, 14)
                },
            ),
        ] {
            let mut r = good();
            r.slots[0] = bad;
            assert_eq!(refused(&r), "slots[0]", "{why}");
        }
    }

    #[test]
    fn a_reply_with_hidden_characters_is_refused() {
        for reply in [
            "one\nline",
            "bell\u{7}",
            "\u{202e}desrever",
            "a\u{2028}b",
            "nul\0",
        ] {
            let r = Response {
                reply: Some(reply.into()),
                ..good()
            };
            assert_eq!(refused(&r), "reply", "{reply:?}");
        }
    }

    #[test]
    fn only_the_host_decides_a_path_other_than_local() {
        for path in [
            AnswerPath::Offload,
            AnswerPath::Rejected,
            AnswerPath::Template,
        ] {
            let r = Response { path, ..good() };
            assert_eq!(refused(&r), "path");
        }
    }

    #[test]
    fn timing_stages_are_identifiers_and_not_the_hosts() {
        for stage in ["host:total", "two words", ""] {
            let mut r = good();
            r.timings[0].stage = stage.into();
            assert_eq!(refused(&r), "timings[0].stage", "{stage:?}");
        }
    }

    #[test]
    fn the_error_names_the_field_and_what_was_wrong() {
        let r = Response {
            confidence: f32::NAN,
            ..good()
        };
        let message = validate(TEXT, &r).unwrap_err().to_string();
        assert!(
            message.contains("confidence") && message.contains("NaN"),
            "{message}"
        );
    }
}
