//! What the host keeps behind each WIT resource handle (`tensor`, `model`, `kv-cache`,
//! `generation`). The bindings name these types, so they sit below the bindings and name no
//! WIT type; each interface module implements their behaviour and converts at its interface.

use edgenlu_kernels::ops::KvCache;
use edgenlu_kernels::DType;
use edgenlu_models::gguf::GgufFile;
use edgenlu_models::{Llama, Sampler, TokenConstraint};
use std::sync::Arc;
use std::time::Duration;

/// A host-owned tensor. Shapes are outermost first.
pub struct Tensor {
    pub(crate) shape: Vec<usize>,
    pub(crate) data: TensorData,
}

/// A tensor's elements: owned by the guest's request, or a weight of a mapped model.
pub(crate) enum TensorData {
    F32(Vec<f32>),
    I32(Vec<i32>),
    /// A weight inside a mapped model file, found by name on each use.
    Mapped {
        file: Arc<GgufFile>,
        name: String,
        dtype: DType,
    },
}

/// A model a guest opened.
pub struct ModelHandle {
    pub(crate) file: Arc<GgufFile>,
}

/// A guest's `kv-cache`: the kernels' cache plus the bytes of host memory charged for it
/// (its full capacity, up front, so a cache can never grow past the skill's budget).
pub struct KvCacheHandle {
    pub(crate) cache: KvCache,
    pub(crate) charged: usize,
}

/// Why a generation ended (the `llm` interface reports it as its `finish-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop token was sampled, or no token could be.
    Stop,
    /// The generation produced its maximum of tokens.
    Length,
    /// The guest cancelled it.
    Cancelled,
}

/// A generation in progress: the model, its cache, and the token chosen to come next.
pub struct Generation {
    pub(crate) model: Llama,
    pub(crate) cache: KvCache,
    pub(crate) logits: Vec<f32>,
    pub(crate) sampler: Sampler,
    /// What the text must match, if the generation is constrained.
    pub(crate) constraint: Option<TokenConstraint>,
    pub(crate) stop: Vec<u32>,
    pub(crate) max_tokens: usize,
    pub(crate) prompt_tokens: usize,
    pub(crate) generated: usize,
    /// The next token, already sampled (so the token before it knows whether it is the last
    /// and can flush a dangling partial character).
    pub(crate) upcoming: Option<u32>,
    /// Bytes of a character not yet complete.
    pub(crate) pending: Vec<u8>,
    pub(crate) finish: Option<Finish>,
    pub(crate) prefill: Duration,
    pub(crate) decode: Duration,
    /// Host memory charged for the cache and logits, released on drop.
    pub(crate) charged: usize,
}
