//! `encode` and `decode` never panic, on any text or ids, with a small vocabulary that makes
//! [UNK], continuation pieces and special tokens all common.

use proptest::prelude::*;
use wordpiece::{Options, WordPiece};

fn tokenizer(options: Options) -> WordPiece {
    let vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "a",
        "##a",
        "b",
        "##b",
        "ab",
        "é",
        "##\u{301}",
        "σ",
        "中",
        "!",
        ".",
        "'",
        "##",
        "###",
    ];
    WordPiece::new(vocab.map(String::from).to_vec(), options).unwrap()
}

/// Text mixing the awkward cases: combining marks, controls, CJK, emoji, specials.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("\u{301}".to_string()),
        Just("\u{0}\u{1b}\u{85}\u{200b}\u{feff}".to_string()),
        Just("[SEP]".to_string()),
        Just("[CL".to_string()),
        Just("中文".to_string()),
        Just("👨\u{200d}👩\u{200d}👧".to_string()),
        Just("İΣ".to_string()),
        Just("##".to_string()),
        "[ab. !'\t\n]{0,8}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn encode_never_panics(text in hostile_text(), lowercase: bool, strip: Option<bool>, chinese: bool, clean: bool, max in 0usize..6) {
        let options = Options {
            lowercase,
            strip_accents: strip,
            handle_chinese_chars: chinese,
            clean_text: clean,
            max_input_chars_per_word: max,
            ..Options::default()
        };
        let t = tokenizer(options);
        let ids = t.encode(&text);
        prop_assert_eq!(ids.first(), Some(&t.cls_id()));
        prop_assert_eq!(ids.last(), Some(&t.sep_id()));
        prop_assert!(ids.iter().all(|&id| (id as usize) < t.vocab_len()));
        let _ = t.decode(&ids);
    }

    #[test]
    fn decode_never_panics(ids in prop::collection::vec(any::<u32>(), 0..64), small in prop::collection::vec(0u32..25, 0..64)) {
        let t = tokenizer(Options::default());
        let _ = t.decode(&ids);
        let _ = t.decode(&small);
    }
}

#[test]
fn long_inputs() {
    let t = tokenizer(Options::default());
    let big: String = "ab é中 👍🏽\u{301}\u{301}! ".repeat(800);
    assert!(big.len() > 10_000);
    assert!(t.encode(&big).len() > 1000);
    assert_eq!(t.encode(&"a".repeat(10_000)), [2, 1, 3]);
    assert_eq!(t.encode(&"\u{301}".repeat(5_000)), [2, 3]);
}

#[test]
fn prefix_edge_cases() {
    // An empty continuation prefix and a prefix that is itself a token must not loop or panic.
    for prefix in ["", "##", "a"] {
        let t = tokenizer(Options {
            continuing_subword_prefix: prefix.into(),
            ..Options::default()
        });
        let _ = t.encode("aab ##a ###");
    }
}
