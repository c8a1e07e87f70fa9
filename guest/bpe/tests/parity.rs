//! Native parity with Hugging Face `tokenizers` on golden ids from scripts/golden/bpe_ids.py
//! (the host's tests/tests/bpe_parity.rs checks the same file through the Wasm component).
//!
//! Reads SmolLM2's GGUF from `$EDGENLU_SMOLLM2_GGUF`, else from the model store
//! (`$EDGENLU_HOME`, `$XDG_DATA_HOME/edgenlu` or `~/.local/share/edgenlu`, as the host resolves
//! it), and bpe_ids.jsonl from `$EDGENLU_GOLDEN_DIR`; fails rather than skips without them.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use bpe::Bpe;

/// A GGUF metadata value, as far as this test needs one.
enum Meta {
    Int(i64),
    Text(String),
    Ints(Vec<i64>),
    Texts(Vec<String>),
    Other,
}

/// The metadata of a GGUF file (v2/v3); tensors are not read.
fn gguf_metadata(path: &PathBuf) -> HashMap<String, Meta> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = BufReader::new(file);
    let mut bytes = |n: usize| {
        let mut b = vec![0; n];
        r.read_exact(&mut b).expect("a complete GGUF header");
        b
    };
    assert_eq!(bytes(4), b"GGUF", "{} is not a GGUF file", path.display());
    let u32_at = |b: Vec<u8>| u32::from_le_bytes(b.try_into().unwrap());
    let u64_at = |b: Vec<u8>| u64::from_le_bytes(b.try_into().unwrap());
    assert!(u32_at(bytes(4)) >= 2, "GGUF v1 is not supported");
    let _tensors = u64_at(bytes(8));
    let kv_count = u64_at(bytes(8));

    // Scalar value types and their sizes (ggml's gguf.h); 8 is a string, 9 an array.
    fn size(t: u32) -> usize {
        match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            _ => panic!("GGUF value type {t} is not a scalar"),
        }
    }
    fn int(t: u32, b: &[u8]) -> Option<i64> {
        Some(match t {
            0 => b[0] as i64,
            1 => b[0] as i8 as i64,
            2 => u16::from_le_bytes([b[0], b[1]]) as i64,
            3 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => u32::from_le_bytes(b.try_into().ok()?) as i64,
            5 => i32::from_le_bytes(b.try_into().ok()?) as i64,
            10 => u64::from_le_bytes(b.try_into().ok()?) as i64,
            11 => i64::from_le_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }
    let string = |bytes: &mut dyn FnMut(usize) -> Vec<u8>| {
        let n = u64_at(bytes(8)) as usize;
        String::from_utf8(bytes(n)).expect("GGUF strings are UTF-8")
    };
    let mut meta = HashMap::new();
    for _ in 0..kv_count {
        let key = string(&mut bytes);
        let t = u32_at(bytes(4));
        let value = match t {
            8 => Meta::Text(string(&mut bytes)),
            9 => {
                let et = u32_at(bytes(4));
                let n = u64_at(bytes(8)) as usize;
                if et == 8 {
                    Meta::Texts((0..n).map(|_| string(&mut bytes)).collect())
                } else {
                    let raw = bytes(n * size(et));
                    let ints: Option<Vec<i64>> = raw.chunks(size(et)).map(|c| int(et, c)).collect();
                    ints.map_or(Meta::Other, Meta::Ints)
                }
            }
            t => int(t, &bytes(size(t))).map_or(Meta::Other, Meta::Int),
        };
        meta.insert(key, value);
    }
    meta
}

fn gguf_path() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("EDGENLU_SMOLLM2_GGUF") {
        return p;
    }
    let root = env("EDGENLU_HOME")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("edgenlu")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/edgenlu")))
        .expect("set EDGENLU_SMOLLM2_GGUF to SmolLM2's GGUF");
    root.join("models/smollm2-135m-instruct.q4_1.gguf")
}

fn tokenizer() -> Bpe {
    let path = gguf_path();
    let mut meta = gguf_metadata(&path);
    let mut take = |key: &str| {
        meta.remove(key)
            .unwrap_or_else(|| panic!("{} has no {key}", path.display()))
    };
    let (Meta::Texts(tokens), Meta::Texts(merges), Meta::Ints(types)) = (
        take("tokenizer.ggml.tokens"),
        take("tokenizer.ggml.merges"),
        take("tokenizer.ggml.token_type"),
    ) else {
        panic!("unexpected tokenizer metadata types in {}", path.display())
    };
    assert!(matches!(take("tokenizer.ggml.pre"), Meta::Text(p) if p == "smollm"));
    assert!(matches!(take("tokenizer.ggml.bos_token_id"), Meta::Int(1)));
    let specials: Vec<u32> = (0..types.len() as u32)
        .filter(|&i| types[i as usize] == 3)
        .collect();
    assert_eq!(specials.len(), 17, "SmolLM2 has 17 control tokens");
    Bpe::new(tokens, &merges, &specials).expect("SmolLM2's merges are in its vocabulary")
}

struct Golden {
    text: String,
    ids: Vec<u32>,
    decoded: String,
    lossless: bool,
}

fn goldens() -> Vec<Golden> {
    let dir = std::env::var_os("EDGENLU_GOLDEN_DIR").unwrap_or_else(|| {
        panic!("EDGENLU_GOLDEN_DIR is not set: point it at the folder holding bpe_ids.jsonl")
    });
    let path = PathBuf::from(dir).join("bpe_ids.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (run scripts/golden/bpe_ids.py)",
            path.display()
        )
    });
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a golden line parses");
            Golden {
                text: v["text"].as_str().expect("text").to_owned(),
                ids: v["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|i| i.as_u64().expect("id") as u32)
                    .collect(),
                decoded: v["decoded"].as_str().expect("decoded").to_owned(),
                lossless: v["lossless"].as_bool().expect("lossless"),
            }
        })
        .collect()
}

#[test]
fn ids_and_decode_match_hugging_face() {
    let tok = tokenizer();
    assert_eq!(
        tok.encode("The capital of France is Paris."),
        [504, 3575, 282, 4649, 314, 7042, 30]
    );
    let goldens = goldens();
    assert!(
        goldens.len() > 30_000,
        "only {} golden lines",
        goldens.len()
    );
    let mut bad = Vec::new();
    for g in &goldens {
        let ids = tok.encode(&g.text);
        let decoded = tok.decode(&g.ids);
        if ids != g.ids || decoded != g.decoded || (g.lossless && decoded != g.text) {
            bad.push(format!(
                "{:?}\n  ours {ids:?} {decoded:?}\n  HF   {:?} {:?}",
                g.text.chars().take(80).collect::<String>(),
                g.ids,
                g.decoded
            ));
        }
    }
    println!(
        "{} of {} texts identical",
        goldens.len() - bad.len(),
        goldens.len()
    );
    assert!(
        bad.is_empty(),
        "{} texts differ; first ones:\n{}",
        bad.len(),
        bad[..bad.len().min(5)].join("\n")
    );
}

/// Generated text arrives one id at a time: each id's raw bytes, concatenated, are the text's
/// UTF-8 even where an id ends inside a character, and `decode` is those bytes made text.
#[test]
fn decode_bytes_one_id_at_a_time_is_the_text() {
    let tok = tokenizer();
    let (mut lossless, mut split) = (0, 0);
    for g in goldens() {
        let pieces: Vec<Vec<u8>> = g.ids.iter().map(|&id| tok.decode_bytes(&[id])).collect();
        split += pieces
            .iter()
            .filter(|p| std::str::from_utf8(p).is_err())
            .count();
        let bytes = pieces.concat();
        assert_eq!(bytes, tok.decode_bytes(&g.ids));
        assert_eq!(tok.decode(&g.ids), String::from_utf8_lossy(&bytes));
        if g.lossless {
            assert_eq!(bytes, g.text.as_bytes(), "{:?}", g.text);
            lossless += 1;
        }
    }
    assert!(lossless > 0);
    // The goldens include characters the vocabulary spells with more than one token.
    assert!(split > 0, "no id ends inside a character");
}
