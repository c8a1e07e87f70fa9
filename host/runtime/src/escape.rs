//! Guest text shown to people (log lines, terminals): which characters would not show as
//! themselves on one line, and a visible, unambiguous form for them.
//!
//! The classes come from `str::escape_debug`, which already escapes every control character
//! (C0, C1, DEL), the bidi controls and other format characters (U+202A–U+202E,
//! U+2066–U+2069, U+200B–U+200F, U+061C, U+FEFF, ...), the line and paragraph separators,
//! unassigned and private-use code points: one table, kept by the standard library with its
//! Unicode version, instead of a hand-written one.

/// Whether `c` would not show as itself on one line of text: a control or format character
/// (including the bidi controls), a line or paragraph separator, an unassigned or private-use
/// code point. Ordinary printable text, spaces of every script (U+00A0, U+3000, ...) and
/// combining marks are not hidden.
pub(crate) fn is_hidden(c: char) -> bool {
    // `str::escape_debug` leaves combining marks alone except as a string's first character,
    // so ask about `c` after a space; quotes and backslashes it escapes for Rust's syntax, not
    // because they are hidden.
    let mut buf = [0u8; 5];
    buf[0] = b' ';
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    let text = std::str::from_utf8(&buf[..len]).expect("a space and one char are UTF-8");
    let escaped = text.escape_debug().nth(1) != Some(c);
    let space_separator =
        c.is_whitespace() && !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}');
    escaped && !matches!(c, '"' | '\'') && !space_separator
}

/// `text` as one line with every [hidden](is_hidden) character in a visible escape (`\n`,
/// `\r`, `\t`, `\0`, `\u{202e}`, ...), and `\` doubled so an escape cannot be forged by
/// writing one; everything else is kept as is.
pub(crate) fn escape_for_log(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_hidden(c) => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_other_c0_controls_are_escaped() {
        assert_eq!(escape_for_log("a\nb\rc\td\0e"), r"a\nb\rc\td\0e");
        assert_eq!(escape_for_log("\u{1b}[31mred\u{7}"), r"\u{1b}[31mred\u{7}");
        assert_eq!(escape_for_log("x\u{b}\u{c}y"), r"x\u{b}\u{c}y");
    }

    #[test]
    fn del_and_c1_controls_are_escaped() {
        assert_eq!(escape_for_log("a\u{7f}b"), r"a\u{7f}b");
        assert_eq!(escape_for_log("\u{85}\u{9b}"), r"\u{85}\u{9b}");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        for c in ['\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}'] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['\u{200e}', '\u{200f}', '\u{061c}'] {
            assert!(is_hidden(c), "{c:?}");
        }
        assert_eq!(escape_for_log("abc\u{202e}fed"), r"abc\u{202e}fed");
    }

    #[test]
    fn other_format_characters_and_separators_are_escaped() {
        for c in [
            '\u{ad}',
            '\u{200b}',
            '\u{200d}',
            '\u{2060}',
            '\u{feff}',
            '\u{e0041}',
        ] {
            assert!(is_hidden(c), "{c:?}");
        }
        assert_eq!(escape_for_log("a\u{2028}b\u{2029}"), r"a\u{2028}b\u{2029}");
        // Private use and unassigned code points have no agreed look either.
        assert!(is_hidden('\u{e000}'));
    }

    #[test]
    fn backslashes_are_doubled_so_escapes_cannot_be_forged() {
        assert_eq!(escape_for_log(r"a\nb"), r"a\\nb");
        assert_ne!(escape_for_log(r"\n"), escape_for_log("\n"));
    }

    #[test]
    fn printable_utf8_passes_unchanged() {
        for text in [
            "play some jazz",
            "Cita Romántica — naïve café, 中文, 日本語　テキスト, عربى, 😀👍🏽",
            "quotes \"double\" and 'single', non\u{a0}breaking",
            // A combining acute accent after its letter.
            "cafe\u{301}",
            "",
        ] {
            assert_eq!(escape_for_log(text), text);
            assert!(!text.chars().any(is_hidden), "{text:?}");
        }
    }
}
