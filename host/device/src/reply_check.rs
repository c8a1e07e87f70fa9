//! What a phrased reply must be before the device says it: a tiny decoder can leak its prompt
//! ("I'll respond to the user in one short sentence: …") or drift off the request ("I'll just
//! have to be prepared for a long conversation." for a table booking), and a user cannot tell.
//! A reply that names every slot value, repeats no run of the instructions' words and is one
//! sentence of bounded length passes; any other is replaced by the template reply, with the
//! reason in the answer.

use edgenlu::Slot;

/// Most characters a phrased reply may have (a spoken sentence; [`crate::pipeline::REPLY_TOKENS`]
/// tokens rarely reach it).
pub const MAX_REPLY_CHARS: usize = 160;

/// A run of this many words of the instructions in a reply is an echo of the prompt.
pub const ECHO_WORDS: usize = 4;

/// Why a phrased reply was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyRejection {
    /// A slot value the skill understood is not in the reply (case-insensitively).
    #[error("it does not name {slot} {value:?}")]
    MissingSlotValue { slot: String, value: String },
    /// The reply repeats [`ECHO_WORDS`] or more consecutive words of the instructions.
    #[error("it repeats the instructions ({0:?})")]
    EchoesInstructions(String),
    /// More than one sentence, or a line break.
    #[error("it is not one sentence")]
    NotOneSentence,
    /// Longer than [`MAX_REPLY_CHARS`].
    #[error("{0} characters, more than {MAX_REPLY_CHARS}")]
    TooLong(usize),
    /// Nothing but whitespace.
    #[error("it is empty")]
    Empty,
}

impl ReplyRejection {
    /// A short name for counting rejections by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplyRejection::MissingSlotValue { .. } => "missing slot value",
            ReplyRejection::EchoesInstructions(_) => "echoes instructions",
            ReplyRejection::NotOneSentence => "not one sentence",
            ReplyRejection::TooLong(_) => "too long",
            ReplyRejection::Empty => "empty",
        }
    }
}

/// Lowercase words: runs of letters, digits and apostrophes.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('’', "'"))
        .collect()
}

/// How a reply addressing the user may say a first-person slot value ("my playlist" → "your
/// playlist").
fn second_person(value: &str) -> Option<&'static str> {
    Some(match value.to_lowercase().as_str() {
        "i" | "me" => "you",
        "my" => "your",
        "mine" => "yours",
        "myself" => "yourself",
        "we" | "us" => "you",
        "our" => "your",
        _ => return None,
    })
}

fn names(reply_lower: &str, reply_words: &[String], value: &str) -> bool {
    let value = value.trim().to_lowercase();
    reply_lower.contains(&value)
        || second_person(&value).is_some_and(|you| reply_words.iter().any(|w| w == you))
}

/// The first run of [`ECHO_WORDS`] words of `instructions` that `reply` repeats.
fn echo(reply: &[String], instructions: &[&str]) -> Option<String> {
    let said: std::collections::HashSet<&[String]> = reply.windows(ECHO_WORDS).collect();
    instructions.iter().find_map(|part| {
        words(part)
            .windows(ECHO_WORDS)
            .find(|w| said.contains(w))
            .map(|w| w.join(" "))
    })
}

/// Whether `reply` has a sentence end followed by more text (slot values, which may hold a
/// period as in "St. Louis", aside), or a line break.
fn several_sentences(reply: &str, slots: &[Slot]) -> bool {
    let mut text = reply.to_string();
    for s in slots.iter().filter(|s| !s.value.trim().is_empty()) {
        text = text.replace(s.value.trim(), "x");
    }
    let text = text.trim();
    text.contains('\n')
        || text.char_indices().any(|(i, c)| {
            matches!(c, '.' | '!' | '?')
                && text[i + c.len_utf8()..].starts_with(char::is_whitespace)
                && !text[i + c.len_utf8()..].trim().is_empty()
        })
}

/// Checks a phrased `reply` to an answer with `slots`, phrased from a prompt whose fixed text
/// is `instructions` (the parts that are neither the user's words nor the slots).
pub fn check_reply(
    reply: &str,
    slots: &[Slot],
    instructions: &[&str],
) -> Result<(), ReplyRejection> {
    let reply = reply.trim();
    if reply.is_empty() {
        return Err(ReplyRejection::Empty);
    }
    let chars = reply.chars().count();
    if chars > MAX_REPLY_CHARS {
        return Err(ReplyRejection::TooLong(chars));
    }
    let lower = reply.to_lowercase();
    let reply_words = words(reply);
    if let Some(missing) = slots
        .iter()
        .find(|s| !s.value.trim().is_empty() && !names(&lower, &reply_words, &s.value))
    {
        return Err(ReplyRejection::MissingSlotValue {
            slot: missing.name.clone(),
            value: missing.value.clone(),
        });
    }
    if let Some(run) = echo(&reply_words, instructions) {
        return Err(ReplyRejection::EchoesInstructions(run));
    }
    if several_sentences(reply, slots) {
        return Err(ReplyRejection::NotOneSentence);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PHRASING_INSTRUCTIONS;

    fn slot(name: &str, value: &str) -> Slot {
        Slot {
            name: name.into(),
            value: value.into(),
            start: 0,
            end: 0,
        }
    }

    fn check(reply: &str, slots: &[Slot]) -> Result<(), ReplyRejection> {
        check_reply(reply, slots, &PHRASING_INSTRUCTIONS)
    }

    #[test]
    fn a_reply_leaking_the_prompt_is_rejected() {
        let r = check(
            "I'll respond to the user in one short sentence: I will play Adele.",
            &[slot("artist", "Adele")],
        );
        assert!(
            matches!(r, Err(ReplyRejection::EchoesInstructions(_))),
            "{r:?}"
        );
    }

    #[test]
    fn a_reply_unrelated_to_the_request_is_rejected() {
        let slots = [
            slot("party_size_number", "four"),
            slot("restaurant_type", "restaurant"),
            slot("timeRange", "tonight"),
        ];
        let r = check(
            "I'll just have to be prepared for a long conversation.",
            &slots,
        );
        assert!(
            matches!(r, Err(ReplyRejection::MissingSlotValue { ref slot, .. }) if slot == "party_size_number"),
            "{r:?}"
        );
    }

    #[test]
    fn a_reply_of_several_sentences_or_too_long_is_rejected() {
        assert_eq!(
            check("Sure. I will play Adele.", &[]),
            Err(ReplyRejection::NotOneSentence)
        );
        assert_eq!(
            check("Playing Adele\nnow.", &[]),
            Err(ReplyRejection::NotOneSentence)
        );
        let long = format!("I will {}.", "play ".repeat(40));
        assert!(matches!(check(&long, &[]), Err(ReplyRejection::TooLong(_))));
        assert_eq!(check("  ", &[]), Err(ReplyRejection::Empty));
    }

    #[test]
    fn a_reply_naming_every_slot_in_one_sentence_passes() {
        let slots = [
            slot("music_item", "song"),
            slot("playlist_owner", "my"),
            slot("playlist", "Workout"),
            slot("city", "St. Louis"),
        ];
        assert_eq!(
            check(
                "I'll add this song to your workout playlist for St. Louis!",
                &slots
            ),
            Ok(())
        );
        assert_eq!(check("The weather is 3.5 degrees warmer.", &[]), Ok(()));
    }
}
