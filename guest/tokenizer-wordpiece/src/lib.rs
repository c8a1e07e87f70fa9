//! The WordPiece (BERT uncased) tokenizer as a component of the `tokenizer` world.
//!
//! On first use it opens the model named by the config key `model` and builds the tokenizer
//! from the model's GGUF metadata:
//! - `tokenizer.ggml.tokens` (the vocabulary, id order);
//! - `tokenizer.ggml.unknown_token_id`, `tokenizer.ggml.cls_token_id`,
//!   `tokenizer.ggml.seperator_token_id` (llama.cpp's spelling), and optionally
//!   `tokenizer.ggml.padding_token_id` and `tokenizer.ggml.mask_token_id`;
//! - `edgenlu.tokenizer.{lowercase, strip_accents, handle_chinese_chars, clean_text,
//!   max_input_chars_per_word, continuing_subword_prefix}`, each defaulting to BERT uncased.

use std::ops::Range;

use edgenlu_sdk::tokenizer::Tokenizer;
use edgenlu_sdk::{invalid, meta, settings, Model, Result};
use wordpiece::{Options, WordPiece};

/// WordPiece as the component's tokenizer.
struct Bert(WordPiece);

edgenlu_sdk::export_tokenizer!(Bert);

impl Tokenizer for Bert {
    fn load() -> Result<Self> {
        load().map(Bert)
    }

    fn vocab_len(&self) -> usize {
        self.0.vocab_len()
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        self.0.encode(text)
    }

    fn encode_spans(&self, text: &str) -> Vec<(u32, Range<usize>)> {
        self.0
            .encode_spans(text)
            .into_iter()
            .map(|t| (t.id, t.start..t.end))
            .collect()
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids)
    }
    // WordPiece tokens are whole characters: the bytes are those of the decoded text.
}

fn load() -> Result<WordPiece> {
    let name = settings::require("model")?;
    let model = Model::open(&name)?;
    let vocab = meta::texts(&model, "tokenizer.ggml.tokens")
        .ok()
        .flatten()
        .ok_or_else(|| invalid(format!("model {name:?} has no tokenizer.ggml.tokens list")))?;
    let token = |key: &str| -> Result<Option<String>> {
        match meta::int(&model, key)? {
            None => Ok(None),
            Some(id) => usize::try_from(id)
                .ok()
                .and_then(|i| vocab.get(i))
                .cloned()
                .map(Some)
                .ok_or_else(|| invalid(format!("{key} = {id} is not a token id of {name:?}"))),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool> {
        Ok(meta::flag(&model, key)?.unwrap_or(default))
    };

    let mut options = Options::default();
    options.lowercase = flag("edgenlu.tokenizer.lowercase", options.lowercase)?;
    // Absent means "follow lowercase", as in Hugging Face's BertNormalizer.
    options.strip_accents = meta::flag(&model, "edgenlu.tokenizer.strip_accents")?;
    options.handle_chinese_chars = flag(
        "edgenlu.tokenizer.handle_chinese_chars",
        options.handle_chinese_chars,
    )?;
    options.clean_text = flag("edgenlu.tokenizer.clean_text", options.clean_text)?;
    if let Some(n) = meta::u64(&model, "edgenlu.tokenizer.max_input_chars_per_word")? {
        options.max_input_chars_per_word = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(p) = meta::text(&model, "edgenlu.tokenizer.continuing_subword_prefix")? {
        options.continuing_subword_prefix = p;
    }
    if let Some(t) = token("tokenizer.ggml.unknown_token_id")? {
        options.unk_token = t;
    }
    if let Some(t) = token("tokenizer.ggml.cls_token_id")? {
        options.cls_token = t;
    }
    if let Some(t) = token("tokenizer.ggml.seperator_token_id")? {
        options.sep_token = t;
    }
    // The GGUF names the special tokens by id; the BERT defaults cover a model that does not.
    for key in [
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.mask_token_id",
    ] {
        if let Some(t) = token(key)? {
            options.special_tokens.push(t);
        }
    }
    WordPiece::new(vocab, options).map_err(|e| invalid(format!("model {name:?}: {e}")))
}
