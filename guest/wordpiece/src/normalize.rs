//! BERT normalization and pre-tokenization, character class by character class.
//!
//! Every class below was checked against the reference (`tokenizers` 0.23 from PyPI) on all
//! 1,112,064 scalar values, see scripts/golden/wordpiece_ids.py's `--all-code-points`.

use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

/// Which normalization steps run, in the reference's order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Steps {
    pub clean_text: bool,
    pub handle_chinese_chars: bool,
    pub strip_accents: bool,
    pub lowercase: bool,
}

/// Whitespace for BERT: Unicode White_Space, where tab, newline and carriage return count too.
pub fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// Characters `clean_text` drops: categories Cc, Cf and Co, except tab, newline and carriage
/// return (which become spaces).
pub fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    // The reference drops every private-use code point; the `unicode_categories` table lists
    // only the ends of the private-use ranges, so test the ranges directly.
    let private_use = matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}');
    private_use || c.is_other_control() || c.is_other_format()
}

/// Punctuation BERT splits off as its own word: ASCII punctuation (which includes symbols such
/// as `$`, `+`, `^`) and every Unicode punctuation category.
pub fn is_bert_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// CJK ideographs, which BERT treats as one word each (the CJK Unified Ideographs blocks and
/// extensions A–E, and the compatibility ideographs).
fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// The normalized text; every step works on the output of the one before.
pub(crate) fn normalize(text: &str, steps: Steps) -> String {
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if steps.clean_text {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if is_whitespace(c) {
                s.push(' ');
                continue;
            }
        }
        if steps.handle_chinese_chars && is_chinese_char(c) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    if steps.strip_accents {
        // NFD must see the whole string: it reorders runs of combining marks.
        s = s.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
    }
    if steps.lowercase {
        // Per character, like the reference: `str::to_lowercase` would turn a word-final Σ
        // into ς, which the reference never does.
        s = s.chars().flat_map(char::to_lowercase).collect();
    }
    s
}

/// Words of normalized text: split on whitespace (dropped), then every punctuation character
/// becomes a word of its own.
pub(crate) fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_whitespace)
        .filter(|w| !w.is_empty())
        .flat_map(split_punctuation)
}

/// Splits `word` so each punctuation character stands alone; never yields empty pieces.
fn split_punctuation(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        let len = if is_bert_punctuation(c) {
            c.len_utf8()
        } else {
            rest.find(is_bert_punctuation).unwrap_or(rest.len())
        };
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        Some(piece)
    })
}
