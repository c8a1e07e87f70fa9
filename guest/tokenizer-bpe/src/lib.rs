//! The byte-level BPE tokenizer (GPT-2 style, SmolLM2's "smollm" pre-tokenizer) as a component
//! of the `tokenizer` world.
//!
//! On first use it opens the model named by the config key `model` and builds the tokenizer
//! from the model's GGUF metadata:
//! - `tokenizer.ggml.tokens` (the vocabulary, id order);
//! - `tokenizer.ggml.merges` ("left right" strings, highest priority first);
//! - `tokenizer.ggml.token_type`, if present: control (3) and user-defined (4) tokens are
//!   matched verbatim in the text before pre-tokenization, like Hugging Face's added tokens.
//!
//! `tokenizer.ggml.pre` must be absent or "smollm" (the only pre-tokenizer implemented), and
//! `tokenizer.ggml.model` "gpt2". No BOS is added: Hugging Face's SmolLM2 tokenizer adds none.

use std::ops::Range;

use bpe::Bpe;
use edgenlu_sdk::tokenizer::Tokenizer;
use edgenlu_sdk::{invalid, meta, settings, Model, Result};

/// Byte-level BPE as the component's tokenizer.
struct ByteLevel(Bpe);

edgenlu_sdk::export_tokenizer!(ByteLevel);

impl Tokenizer for ByteLevel {
    fn load() -> Result<Self> {
        load().map(ByteLevel)
    }

    fn vocab_len(&self) -> usize {
        self.0.vocab_len()
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        self.0.encode(text)
    }

    fn encode_spans(&self, text: &str) -> Vec<(u32, Range<usize>)> {
        self.0.encode_spans(text)
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids)
    }

    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        // Byte-level tokens: a character split across ids comes back as its partial bytes.
        self.0.decode_bytes(ids)
    }
}

/// GGUF token types that are matched verbatim (llama.cpp's CONTROL and USER_DEFINED).
const VERBATIM_TOKEN_TYPES: [i64; 2] = [3, 4];

fn load() -> Result<Bpe> {
    let name = settings::require("model")?;
    let model = Model::open(&name)?;
    let text = |key: &str| meta::text(&model, key);
    let texts = |key: &str| {
        meta::texts(&model, key)
            .ok()
            .flatten()
            .ok_or_else(|| invalid(format!("model {name:?} has no {key} list")))
    };
    // Refuse what this component would tokenize differently from the model's own tokenizer.
    match text("tokenizer.ggml.model")?.as_deref() {
        Some("gpt2") => {}
        other => {
            return Err(invalid(format!(
                "model {name:?}: tokenizer.ggml.model is {other:?}, not \"gpt2\" (byte-level BPE)"
            )))
        }
    }
    match text("tokenizer.ggml.pre")?.as_deref() {
        None | Some("smollm") => {}
        Some(other) => {
            return Err(invalid(format!(
                "model {name:?}: pre-tokenizer {other:?} is not supported (only \"smollm\")"
            )))
        }
    }
    let tokens = texts("tokenizer.ggml.tokens")?;
    let merges = texts("tokenizer.ggml.merges")?;
    let specials: Vec<u32> = meta::ints(&model, "tokenizer.ggml.token_type")?
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter(|(_, t)| VERBATIM_TOKEN_TYPES.contains(t))
        .map(|(id, _)| id as u32)
        .collect();
    Bpe::new(tokens, &merges, &specials).map_err(|e| invalid(format!("model {name:?}: {e}")))
}
