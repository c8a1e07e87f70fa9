//! Golden test: the Wasm BPE tokenizer (SmolLM2-135M-Instruct's GGUF vocabulary and merges)
//! against Hugging Face `tokenizers` built from the same GGUF (scripts/golden/bpe_ids.py), on
//! every dataset text, the hostile strings, ChatML prompts and every code point; and
//! decode(encode(s)) == s for each of them whose bytes all have a byte token (the rest, only
//! in the code point sweep, must decode as Hugging Face decodes them).

use edgenlu::bundled::{bpe_tokenize_only, bpe_tokenizer, open_tokenizer};
use edgenlu::Limits;
use edgenlu_tests::{assert_same_ids, golden_lines, require_model, runtime};
use std::time::Duration;

const MODEL: &str = "smollm2-135m-instruct.q4_1";

fn generous() -> Limits {
    Limits {
        deadline: Duration::from_secs(1800),
        ..Limits::default()
    }
}

#[derive(serde::Deserialize)]
struct TokenGolden {
    /// datasets, hostile, chat or code-points.
    source: String,
    text: String,
    ids: Vec<u32>,
    /// Hugging Face's decode of `ids`, special tokens kept.
    decoded: String,
    /// Every byte of `text` has a byte token, so decode(encode(text)) must give it back.
    lossless: bool,
}

#[test]
fn bpe_component_matches_hf_tokenizers_and_round_trips() {
    require_model(MODEL);
    let golden: Vec<TokenGolden> = golden_lines("bpe_ids.jsonl");
    let france = golden
        .iter()
        .find(|g| g.text == "The capital of France is Paris.")
        .expect("the golden file has the France example");
    assert_eq!(france.ids, [504, 3575, 282, 4649, 314, 7042, 30]);

    // Encoding through a skill, as skills reach their tokenizer.
    let skill = runtime()
        .load_skill(bpe_tokenize_only(MODEL, generous()))
        .unwrap();
    let pairs: Vec<_> = golden
        .iter()
        .map(|g| (g.text.clone(), g.ids.clone()))
        .collect();
    assert_same_ids(&skill, &pairs, "BPE");

    // Decoding through the component on its own (skills have no decode entry point here).
    // A text with a byte the vocabulary cannot encode (BPE drops it, as Hugging Face does)
    // cannot come back; it must still decode exactly as Hugging Face decodes it.
    let mut tok = open_tokenizer(&runtime(), &bpe_tokenizer(MODEL, generous())).unwrap();
    let (mut bad, mut lossy) = (0, 0);
    for g in &golden {
        let text = tok.decode(&g.ids).expect("decoding");
        lossy += usize::from(!g.lossless);
        let expected = if g.lossless { &g.text } else { &g.decoded };
        if &text != expected || text != g.decoded {
            bad += 1;
            if bad <= 5 {
                eprintln!(
                    "decode: {:?}\n  hf:   {:?}\n  ours: {:?}",
                    g.text, g.decoded, text
                );
            }
        }
    }
    eprintln!(
        "BPE round trip: {} of {} texts come back exactly; the other {lossy} hold bytes without \
         a byte token (code point sweep) and decode as Hugging Face decodes them",
        golden.len() - lossy,
        golden.len()
    );
    assert_eq!(bad, 0, "{bad} of {} texts decoded wrongly", golden.len());
    // Every dataset, hostile and ChatML text is lossless; only the code point sweep is not.
    let lossy_not_sweep = golden
        .iter()
        .filter(|g| !g.lossless && g.source != "code-points")
        .count();
    assert_eq!(
        lossy_not_sweep, 0,
        "texts outside the code point sweep lost bytes"
    );
}

#[test]
fn bpe_decode_rejects_ids_outside_the_vocabulary_and_replaces_split_characters() {
    require_model(MODEL);
    let mut tok = open_tokenizer(&runtime(), &bpe_tokenizer(MODEL, generous())).unwrap();
    assert!(tok.decode(&[49152]).is_err());
    let ids = tok.encode("é").unwrap();
    assert_eq!(ids.len(), 1, "é is one token in SmolLM2's vocabulary");
    let ids = tok.encode("🦀").unwrap();
    assert!(ids.len() > 1, "a rare emoji is split into byte tokens");
    assert_eq!(tok.decode(&ids[..1]).unwrap(), "\u{fffd}");
    assert_eq!(tok.decode(&ids).unwrap(), "🦀");
    let chat = "<|im_start|>user\nHi<|im_end|>\n";
    let ids = tok.encode(chat).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is id 1");
    assert_eq!(tok.decode(&ids).unwrap(), chat);
}
