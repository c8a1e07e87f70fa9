//! edgenlu-kernels: GGUF/ggml-compatible tensor formats and the transformer kernels the host
//! exposes to guests. Nothing in this crate knows about Wasm.
//!
//! Every op has a scalar reference written for clarity; `matmul` (the hot path) also has
//! AVX2, AVX-512 and NEON variants, chosen at run time ([`dispatch`]), and the other ops run
//! their code compiled for the chosen variant's registers (with branch-free `exp`/`erf`
//! outside the scalar variant). All are tested against the reference within the bounds stated
//! in `kernels/README.md`.
//!
//! Kernels validate shapes themselves and return [`KernelError`], so a caller that forgot a
//! check gets an error instead of a panic or an out-of-bounds access.

#![warn(missing_docs)]

pub mod bench;
pub mod dispatch;
pub mod formats;
pub mod matmul;
pub mod ops;
mod pool;

pub use dispatch::{active_variant, with_variant, Variant};
pub use formats::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0,
    BlockQ8_1, DType, WeightView,
};

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
    /// The caller's stop check (e.g. a request's deadline) asked a long kernel to stop; its
    /// output is incomplete.
    #[error("interrupted: the caller asked {0} to stop")]
    Interrupted(&'static str),
}

/// Asked by a long kernel between bounded units of work: `true` stops it with
/// [`KernelError::Interrupted`]. A host bounds a call's time with it (a request's deadline)
/// without the kernel knowing about clocks.
pub type StopCheck<'a> = &'a dyn Fn() -> bool;

/// Never stops: what the plain (uninterruptible) forms of the kernels pass.
pub const NEVER_STOP: StopCheck<'static> = &|| false;
