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

wit_bindgen::generate!({ path: "../../wit", world: "tokenizer" });

use std::sync::OnceLock;

use edgenlu::nlu::config;
use edgenlu::nlu::models::{MetaValue, Model};
use edgenlu::nlu::types::{Error, TokenSpan};
use exports::edgenlu::nlu::tokenize::Guest;
use wordpiece::{Options, WordPiece};

/// The tokenizer, built once per instance. A failed build is kept too, so every call reports
/// the same error instead of reopening the model.
static TOKENIZER: OnceLock<Result<WordPiece, Error>> = OnceLock::new();

fn tokenizer() -> Result<&'static WordPiece, Error> {
    TOKENIZER.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn load() -> Result<WordPiece, Error> {
    let name = config::get("model").ok_or_else(|| invalid("config key \"model\" is not set"))?;
    let model = Model::open(&name)?;
    let vocab = match model.meta("tokenizer.ggml.tokens") {
        Some(MetaValue::Texts(tokens)) => tokens,
        _ => {
            return Err(invalid(format!(
                "model {name:?} has no tokenizer.ggml.tokens list"
            )))
        }
    };
    let token = |key: &str| -> Result<Option<String>, Error> {
        match model.meta(key) {
            None => Ok(None),
            Some(MetaValue::Int(id)) => usize::try_from(id)
                .ok()
                .and_then(|i| vocab.get(i))
                .cloned()
                .map(Some)
                .ok_or_else(|| invalid(format!("{key} = {id} is not a token id of {name:?}"))),
            Some(_) => Err(invalid(format!("{key} of {name:?} is not an integer"))),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool, Error> {
        match model.meta(key) {
            None => Ok(default),
            Some(MetaValue::Flag(b)) => Ok(b),
            Some(_) => Err(invalid(format!("{key} of {name:?} is not a bool"))),
        }
    };

    let mut options = Options::default();
    options.lowercase = flag("edgenlu.tokenizer.lowercase", options.lowercase)?;
    // Absent means "follow lowercase", as in Hugging Face's BertNormalizer.
    options.strip_accents = match model.meta("edgenlu.tokenizer.strip_accents") {
        None => None,
        Some(MetaValue::Flag(b)) => Some(b),
        Some(_) => return Err(invalid("edgenlu.tokenizer.strip_accents is not a bool")),
    };
    options.handle_chinese_chars = flag(
        "edgenlu.tokenizer.handle_chinese_chars",
        options.handle_chinese_chars,
    )?;
    options.clean_text = flag("edgenlu.tokenizer.clean_text", options.clean_text)?;
    options.max_input_chars_per_word =
        match model.meta("edgenlu.tokenizer.max_input_chars_per_word") {
            None => options.max_input_chars_per_word,
            Some(MetaValue::Int(n)) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => {
                return Err(invalid(
                    "edgenlu.tokenizer.max_input_chars_per_word is not a count",
                ))
            }
        };
    match model.meta("edgenlu.tokenizer.continuing_subword_prefix") {
        None => {}
        Some(MetaValue::Text(p)) => options.continuing_subword_prefix = p,
        Some(_) => {
            return Err(invalid(
                "edgenlu.tokenizer.continuing_subword_prefix is not text",
            ))
        }
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

struct Component;

impl Guest for Component {
    fn encode(text: String) -> Result<Vec<u32>, Error> {
        Ok(tokenizer()?.encode(&text))
    }

    fn encode_spans(text: String) -> Result<Vec<TokenSpan>, Error> {
        let offset = |at: usize| u32::try_from(at).map_err(|_| invalid("text longer than 4 GiB"));
        tokenizer()?
            .encode_spans(&text)
            .into_iter()
            .map(|t| {
                Ok(TokenSpan {
                    id: t.id,
                    start: offset(t.start)?,
                    end: offset(t.end)?,
                })
            })
            .collect()
    }

    fn decode(ids: Vec<u32>) -> Result<String, Error> {
        let t = tokenizer()?;
        // Out-of-range ids are a caller bug worth reporting, not something to skip silently.
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= t.vocab_len()) {
            return Err(invalid(format!(
                "token id {bad} is outside the vocabulary ({} tokens)",
                t.vocab_len()
            )));
        }
        Ok(t.decode(&ids))
    }

    fn decode_bytes(ids: Vec<u32>) -> Result<Vec<u8>, Error> {
        // WordPiece tokens are whole characters: the bytes are those of the decoded text.
        Ok(Self::decode(ids)?.into_bytes())
    }
}

export!(Component);
