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

wit_bindgen::generate!({ path: "../../wit", world: "tokenizer" });

use std::sync::OnceLock;

use bpe::Bpe;
use edgenlu::nlu::config;
use edgenlu::nlu::models::{MetaValue, Model};
use edgenlu::nlu::types::{Error, TokenSpan};
use exports::edgenlu::nlu::tokenize::Guest;

/// The tokenizer, built once per instance. A failed build is kept too, so every call reports
/// the same error instead of reopening the model.
static TOKENIZER: OnceLock<Result<Bpe, Error>> = OnceLock::new();

/// GGUF token types that are matched verbatim (llama.cpp's CONTROL and USER_DEFINED).
const VERBATIM_TOKEN_TYPES: [i64; 2] = [3, 4];

fn tokenizer() -> Result<&'static Bpe, Error> {
    TOKENIZER.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn load() -> Result<Bpe, Error> {
    let name = config::get("model").ok_or_else(|| invalid("config key \"model\" is not set"))?;
    let model = Model::open(&name)?;
    let text = |key: &str| match model.meta(key) {
        Some(MetaValue::Text(t)) => Ok(Some(t)),
        None => Ok(None),
        Some(_) => Err(invalid(format!("{key} of {name:?} is not text"))),
    };
    let texts = |key: &str| match model.meta(key) {
        Some(MetaValue::Texts(t)) => Ok(t),
        _ => Err(invalid(format!("model {name:?} has no {key} list"))),
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
    let specials: Vec<u32> = match model.meta("tokenizer.ggml.token_type") {
        None => Vec::new(),
        Some(MetaValue::Ints(types)) => types
            .iter()
            .enumerate()
            .filter(|(_, t)| VERBATIM_TOKEN_TYPES.contains(t))
            .map(|(id, _)| id as u32)
            .collect(),
        Some(_) => {
            return Err(invalid(format!(
                "tokenizer.ggml.token_type of {name:?} is not a list of integers"
            )))
        }
    };
    Bpe::new(tokens, &merges, &specials).map_err(|e| invalid(format!("model {name:?}: {e}")))
}

/// Out-of-range ids are a caller bug worth reporting, not something to skip silently.
fn check_ids(t: &Bpe, ids: &[u32]) -> Result<(), Error> {
    match ids.iter().find(|&&id| id as usize >= t.vocab_len()) {
        Some(&bad) => Err(invalid(format!(
            "token id {bad} is outside the vocabulary ({} tokens)",
            t.vocab_len()
        ))),
        None => Ok(()),
    }
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
            .map(|(id, range)| {
                Ok(TokenSpan {
                    id,
                    start: offset(range.start)?,
                    end: offset(range.end)?,
                })
            })
            .collect()
    }

    fn decode(ids: Vec<u32>) -> Result<String, Error> {
        let t = tokenizer()?;
        check_ids(t, &ids)?;
        Ok(t.decode(&ids))
    }

    fn decode_bytes(ids: Vec<u32>) -> Result<Vec<u8>, Error> {
        let t = tokenizer()?;
        check_ids(t, &ids)?;
        // Byte-level tokens: a character split across ids comes back as its partial bytes.
        Ok(t.decode_bytes(&ids))
    }
}

export!(Component);
