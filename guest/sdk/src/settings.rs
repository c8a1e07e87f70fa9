//! The component's settings (the `config` interface): required keys, parsed values, and the
//! models they name.

use std::str::FromStr;

use crate::{config, invalid, Model, Result};

/// The value of `key`, or `config key "{key}" is not set`.
pub fn require(key: &str) -> Result<String> {
    config::get(key).ok_or_else(|| invalid(format!("config key {key:?} is not set")))
}

/// The value of `key` parsed as a `T`, `default` when it is not set; a value that does not
/// parse is an error (`config {key}={value:?} is not a number`).
pub fn parse_or<T: FromStr>(key: &str, default: T) -> Result<T> {
    match config::get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(format!("config {key}={v:?} is not a number"))),
    }
}

/// The model named by the config key `key` (e.g. `model`), opened.
pub fn model(key: &str) -> Result<Model> {
    Model::open(&require(key)?)
}
