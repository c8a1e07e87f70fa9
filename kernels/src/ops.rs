//! Scalar reference kernels: plain functions over slices, one per op the `kernels` WIT
//! interface exposes. They are written for clarity rather than speed; SIMD variants are
//! tested against them.
//!
//! Conventions shared by every op:
//! - Shapes are row-major, outermost dimension first; a "row" is the innermost dimension.
//! - Each op validates every length and dimension itself (with checked arithmetic) and returns
//!   [`KernelError`] instead of panicking, whatever the arguments. Validation happens before
//!   anything is written, so on error the outputs are untouched.
//! - Loops are bounded by the lengths of the slices passed in, never by a bare dimension, so a
//!   huge dimension paired with empty data cannot make an op spin.
//! - Reductions that feed a division (means, variances, norms) accumulate in f64; dot products
//!   accumulate in f32 over [`DOT_LANES`] partial sums (see `README.md` for tolerances).

mod activation;
mod approx;
mod attention;
mod linear;
mod norm;
mod rope;
mod search;

pub use activation::{geglu_tanh, gelu, silu, softmax, swiglu};
pub use attention::{attention, attention_scratch_bytes, attention_until, KvCache};
pub use linear::{add, embed, matmul, mul, scale};
pub use norm::{l2_normalize, layer_norm, mean_pool, rms_norm};
pub use rope::{rope, RopeLayout};
pub use search::{
    argmax, nn_search, nn_search_scratch_bytes, nn_search_with_norms, row_norms, Hit,
};

use crate::{DType, KernelError, WeightView};

/// Number of independent partial sums in [`dot`]. Eight f32 lanes let the compiler keep the
/// loop in vector registers without reassociating floating-point adds itself, and fix the
/// summation order so results are reproducible across builds.
pub const DOT_LANES: usize = 8;

/// Dot product of two equally long slices (the shorter length wins if they differ; callers
/// check lengths). Lane `j` sums elements `j, j + 8, j + 16, ...`; the lanes are then added in
/// order, followed by the tail of fewer than eight elements. Always inlined, so it runs in the
/// instruction set of the vectorized op that calls it.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0f32; DOT_LANES];
    let mut ca = a.chunks_exact(DOT_LANES);
    let mut cb = b.chunks_exact(DOT_LANES);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for ((s, x), y) in acc.iter_mut().zip(xa).zip(xb) {
            *s += x * y;
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    sum
}

/// `a * b`, or an error naming what overflowed.
fn size_mul(a: usize, b: usize, what: &str) -> Result<usize, KernelError> {
    a.checked_mul(b)
        .ok_or_else(|| KernelError::InvalidArgument(format!("{what}: {a} x {b} overflows")))
}

/// Errors unless `got == want`.
fn expect_len(what: &str, got: usize, want: usize) -> Result<(), KernelError> {
    if got == want {
        Ok(())
    } else {
        Err(KernelError::ShapeMismatch(format!(
            "{what} has {got} elements, expected {want}"
        )))
    }
}

/// Number of rows of `len` elements split into rows of `cols`; `cols` must be nonzero and
/// divide `len`.
fn rows_of(what: &str, len: usize, cols: usize) -> Result<usize, KernelError> {
    if cols == 0 {
        return Err(KernelError::InvalidArgument(format!(
            "{what}: zero columns"
        )));
    }
    if !len.is_multiple_of(cols) {
        return Err(KernelError::ShapeMismatch(format!(
            "{what}: {len} elements is not a whole number of rows of {cols}"
        )));
    }
    Ok(len / cols)
}

/// Errors unless `w` is in one of the formats the v0 kernels read.
fn expect_weight_dtype(w: &WeightView, op: &'static str) -> Result<(), KernelError> {
    match w.dtype() {
        DType::I32 => Err(KernelError::Unsupported(DType::I32, op)),
        _ => Ok(()),
    }
}
