//! Typed getters for a model's GGUF metadata.
//!
//! Each returns `Ok(None)` when the key is absent and an [`Error::InvalidArgument`] naming the
//! key when its value has another type (or is out of range), so a guest can tell "not set" from
//! "set wrong" and report the latter. [`required`] turns an absent key into an error.

use crate::{invalid, Error, MetaValue, Model, Result};

fn wrong(key: &str, what: &str) -> Error {
    invalid(format!("{key} is not {what}"))
}

/// An absent metadata key as an error: `the model has no {key}`.
pub fn missing(key: &str) -> Error {
    invalid(format!("the model has no {key}"))
}

/// The value of a getter, or [`missing`] when the key is absent.
pub fn required<T>(key: &str, value: Result<Option<T>>) -> Result<T> {
    value?.ok_or_else(|| missing(key))
}

/// A text value, e.g. `tokenizer.ggml.model`.
pub fn text(model: &Model, key: &str) -> Result<Option<String>> {
    match model.meta(key) {
        None => Ok(None),
        Some(MetaValue::Text(t)) => Ok(Some(t)),
        Some(_) => Err(wrong(key, "text")),
    }
}

/// A list of texts, e.g. `tokenizer.ggml.tokens`.
pub fn texts(model: &Model, key: &str) -> Result<Option<Vec<String>>> {
    match model.meta(key) {
        None => Ok(None),
        Some(MetaValue::Texts(t)) => Ok(Some(t)),
        Some(_) => Err(wrong(key, "a list of texts")),
    }
}

/// A list of integers, e.g. `tokenizer.ggml.token_type`.
pub fn ints(model: &Model, key: &str) -> Result<Option<Vec<i64>>> {
    match model.meta(key) {
        None => Ok(None),
        Some(MetaValue::Ints(v)) => Ok(Some(v)),
        Some(_) => Err(wrong(key, "a list of integers")),
    }
}

/// A boolean, e.g. `edgenlu.tokenizer.lowercase`.
pub fn flag(model: &Model, key: &str) -> Result<Option<bool>> {
    match model.meta(key) {
        None => Ok(None),
        Some(MetaValue::Flag(b)) => Ok(Some(b)),
        Some(_) => Err(wrong(key, "a bool")),
    }
}

/// An integer of any sign, e.g. `tokenizer.ggml.eos_token_id`.
pub fn int(model: &Model, key: &str) -> Result<Option<i64>> {
    match model.meta(key) {
        None => Ok(None),
        Some(MetaValue::Int(v)) => Ok(Some(v)),
        Some(_) => Err(wrong(key, "an integer")),
    }
}

/// A count or size: an integer of at least 0, e.g. `bert.block_count`.
pub fn u64(model: &Model, key: &str) -> Result<Option<u64>> {
    match model.meta(key) {
        None => Ok(None),
        Some(MetaValue::Int(v)) => u64::try_from(v)
            .map(Some)
            .map_err(|_| wrong(key, "a count")),
        Some(_) => Err(wrong(key, "a count")),
    }
}

/// A finite number, e.g. `llama.rope.freq_base`. GGUF stores these as f32, so the f64 that
/// carries them converts back exactly.
pub fn f32(model: &Model, key: &str) -> Result<Option<f32>> {
    match model.meta(key) {
        None => Ok(None),
        Some(MetaValue::Float(v)) if v.is_finite() => Ok(Some(v as f32)),
        Some(_) => Err(wrong(key, "a number")),
    }
}
