//! The "smollm" pre-tokenizer: Hugging Face's `Digits(individual_digits = true)` followed by
//! `ByteLevel(add_prefix_space = false, use_regex = true)`, written as a scanner instead of a
//! regex because the GPT-2 pattern needs a look-ahead (`\s+(?!\S)`) the `regex` crate lacks.
//!
//! The GPT-2 pattern, whose alternatives are tried in order at each position (first match wins,
//! as in Oniguruma, which Hugging Face uses):
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// `\p{L}`: general category Lu, Ll, Lt, Lm or Lo (Unicode 16.0, as Oniguruma's tables).
pub fn is_letter(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
}

/// `\p{N}`: general category Nd, Nl or No. Hugging Face's `Digits` splits on
/// `char::is_numeric`, which is the same category set; one table serves both so the two
/// steps cannot disagree about a character.
pub fn is_number(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::DecimalNumber | G::LetterNumber | G::OtherNumber
    )
}

/// `\s` in Oniguruma's Unicode mode: the White_Space property, which `char::is_whitespace`
/// implements (the set has not changed across recent Unicode versions).
pub fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Every piece of `text` that BPE sees, in order; concatenated they give back `text`.
pub fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for piece in split_digits(text) {
        split_gpt2(piece, &mut out);
    }
    out
}

/// `Digits(individual_digits = true)`: every numeric character becomes a piece of its own
/// (Hugging Face's `Isolated` behaviour); the runs between them stay whole.
fn split_digits(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if is_number(c) {
            if start < i {
                out.push(&text[start..i]);
            }
            let end = i + c.len_utf8();
            out.push(&text[i..end]);
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The contractions the pattern lists first, after the apostrophe; case-sensitive, as the
/// pattern has no `(?i)`.
const CONTRACTIONS: [&str; 7] = ["s", "t", "re", "ve", "m", "ll", "d"];

/// Byte length of the run of characters satisfying `pred` at the start of `s`.
fn run(s: &str, pred: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !pred(c))
        .map_or(s.len(), |(i, _)| i)
}

/// Length in bytes of the GPT-2 pattern's match at the start of `s` (never 0 for non-empty `s`:
/// the alternatives cover every character).
fn match_len(s: &str) -> usize {
    let mut chars = s.chars();
    let Some(c) = chars.next() else { return 0 };
    // 's|'t|'re|'ve|'m|'ll|'d
    if c == '\'' {
        if let Some(k) = CONTRACTIONS.iter().find(|k| s[1..].starts_with(**k)) {
            return 1 + k.len();
        }
    }
    // ` ?` is an optional U+0020 only, not any whitespace.
    let (lead, body) = if c == ' ' { (1, &s[1..]) } else { (0, s) };
    if let Some(b) = body.chars().next() {
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let n = if is_letter(b) {
            run(body, is_letter)
        } else if is_number(b) {
            run(body, is_number)
        } else if !is_space(b) {
            run(body, |c| !is_space(c) && !is_letter(c) && !is_number(c))
        } else {
            0
        };
        if n > 0 {
            return lead + n;
        }
    }
    // Only whitespace is left at this position.
    let n = run(s, is_space);
    debug_assert!(n > 0);
    if n == s.len() {
        // `\s+(?!\S)` takes the whole run at the end of the text.
        return n;
    }
    // Followed by a non-space: `\s+(?!\S)` backs off one character so that the last space
    // can prefix the next word; a run of one cannot back off, and `\s+` takes it.
    let last = s[..n].chars().next_back().map_or(0, char::len_utf8);
    if n > last {
        n - last
    } else {
        n
    }
}

/// Splits `piece` with the GPT-2 pattern, appending the matches to `out`.
fn split_gpt2<'a>(piece: &'a str, out: &mut Vec<&'a str>) {
    let mut rest = piece;
    while !rest.is_empty() {
        let n = match_len(rest);
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::pre_tokenize;

    #[test]
    fn gpt2_pattern_and_digits() {
        assert_eq!(
            pre_tokenize("Hello world, it's 2024!"),
            ["Hello", " world", ",", " it", "'s", " ", "2", "0", "2", "4", "!"]
        );
        // A run of spaces leaves its last one to the next word; at the end it stays whole.
        assert_eq!(pre_tokenize("a   b  "), ["a", "  ", " b", "  "]);
        assert_eq!(pre_tokenize("a\n\nb"), ["a", "\n", "\n", "b"]);
        // `?'s` is one punctuation run: the contraction only wins where a match starts.
        assert_eq!(pre_tokenize("?'s x'S"), ["?'", "s", " x", "'", "S"]);
        assert_eq!(pre_tokenize(""), Vec::<&str>::new());
        assert_eq!(pre_tokenize(" "), [" "]);
        assert_eq!(pre_tokenize("½Ⅻ٣"), ["½", "Ⅻ", "٣"]);
    }
}
