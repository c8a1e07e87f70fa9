//! edgenlu-kernels: GGUF/ggml-compatible tensor formats and the transformer kernels the host
//! exposes to guests. Every kernel here is the scalar reference: written for clarity, it is
//! what SIMD variants ([kernels]) are tested against. Nothing in this crate knows about Wasm.
//!
//! Kernels validate shapes themselves and return [`KernelError`], so a caller that forgot a
//! check gets an error instead of a panic or an out-of-bounds access.

pub mod formats;
pub mod ops;

pub use formats::{BlockQ8_0, DType, WeightView};

/// Why a kernel refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// Lengths or dimensions that do not fit together.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// A value out of range (an index past a table, a zero dimension, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A format this kernel has no implementation for.
    #[error("unsupported dtype {0:?} for {1}")]
    Unsupported(DType, &'static str),
}
