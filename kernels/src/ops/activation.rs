//! Elementwise and row-wise activations: `gelu`, `silu`, `swiglu`, `geglu_tanh`, `softmax`.
//!
//! The scalar variant is the reference (libm's `erff`/`expf`); the others run the same loops
//! over the branch-free approximations of [`super::approx`], vectorized for their registers.

use super::{approx, expect_len, rows_of};
use crate::dispatch::{active_variant, vectorize};
use crate::{KernelError, Variant};

/// GELU in its exact erf form, `0.5 · x · (1 + erf(x / √2))`, in place: Hugging Face's
/// `"gelu"` as BERT uses it (not the tanh approximation). Never fails; it returns a `Result`
/// so every op has the same shape for the host bindings.
pub fn gelu(x: &mut [f32]) -> Result<(), KernelError> {
    match active_variant() {
        Variant::Scalar => {
            for v in x.iter_mut() {
                *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
        v => vectorize!(v, x.iter_mut().for_each(|v| *v = approx::gelu(*v))),
    }
    Ok(())
}

/// SiLU (swish), `x · σ(x) = x / (1 + e^-x)`, in place. Never fails.
pub fn silu(x: &mut [f32]) -> Result<(), KernelError> {
    match active_variant() {
        Variant::Scalar => x.iter_mut().for_each(|v| *v = silu_one(*v)),
        v => vectorize!(v, x.iter_mut().for_each(|v| *v = approx::silu(*v))),
    }
    Ok(())
}

/// The gated FFN activation of llama, in place on the gate: `gate = silu(gate) · up`,
/// elementwise over slices of one length.
pub fn swiglu(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    gated("swiglu up", gate, up, silu_one, approx::silu)
}

/// The GELU-gated FFN activation of Gemma, in place on the gate:
/// `gate = gelu_tanh(gate) · up`, elementwise over slices of one length, with GELU in its tanh
/// form `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` (ggml's `gelu`, Hugging Face's
/// `"gelu_pytorch_tanh"`), not the erf form of [`gelu`].
pub fn geglu_tanh(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    gated("geglu_tanh up", gate, up, gelu_tanh_one, approx::gelu_tanh)
}

/// `gate = act(gate) · up`: `reference` on the scalar variant, `approximate` (inlined into the
/// variant's vectorized loop) on the others.
#[inline(always)]
fn gated(
    what: &str,
    gate: &mut [f32],
    up: &[f32],
    reference: impl Fn(f32) -> f32,
    approximate: impl Fn(f32) -> f32,
) -> Result<(), KernelError> {
    expect_len(what, up.len(), gate.len())?;
    match active_variant() {
        Variant::Scalar => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = reference(*g) * u;
            }
        }
        v => vectorize!(v, {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = approximate(*g) * u;
            }
        }),
    }
    Ok(())
}

/// The reference GELU (tanh form) of one value, with libm's `tanhf`.
#[inline]
fn gelu_tanh_one(x: f32) -> f32 {
    let inner = approx::GELU_TANH_SCALE * x * (1.0 + approx::GELU_TANH_CUBIC * x * x);
    0.5 * x * (1.0 + libm::tanhf(inner))
}

#[inline]
fn silu_one(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Softmax over each row of `cols`, in place, computed as `exp(x - max) / Σ exp(x - max)` so
/// large logits cannot overflow. A row whose elements are all `-inf` (everything masked)
/// becomes all zeros rather than NaN.
pub fn softmax(x: &mut [f32], cols: usize) -> Result<(), KernelError> {
    rows_of("softmax x", x.len(), cols)?;
    let v = active_variant();
    vectorize!(v, {
        for row in x.chunks_exact_mut(cols) {
            softmax_row(v, row);
        }
    });
    Ok(())
}

/// Lanes of the vectorized row reductions (max and sum): one AVX2 register of f32.
const LANES: usize = 8;

/// `f` over eight lanes as a balanced tree: (0·4, 1·5, 2·6, 3·7), then pairs, then one.
#[inline(always)]
fn tree(l: [f32; LANES], f: impl Fn(f32, f32) -> f32) -> f32 {
    let h = [f(l[0], l[4]), f(l[1], l[5]), f(l[2], l[6]), f(l[3], l[7])];
    f(f(h[0], h[2]), f(h[1], h[3]))
}

/// Softmax of one row in place (shared with `attention`): the reference (libm `exp`, a
/// sequential f64 sum) for the scalar variant, else [`approx::exp`] with the max and the sum
/// over [`LANES`] partial results, combined as a tree (short rows, as an encoder's 16 keys,
/// would otherwise wait on a chain of dependent adds).
#[inline(always)]
pub(super) fn softmax_row(v: Variant, row: &mut [f32]) {
    if v == Variant::Scalar {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            row.fill(0.0);
            return;
        }
        let mut sum = 0f64;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v as f64;
        }
        let inv = (1.0 / sum) as f32;
        for v in row.iter_mut() {
            *v *= inv;
        }
        return;
    }
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .copied()
        .fold(tree(lanes, f32::max), f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, x) in sums.iter_mut().zip(c) {
            *x = approx::exp(*x - max);
            *s += *x;
        }
    }
    let mut sum = tree(sums, |a, b| a + b);
    for x in chunks.into_remainder() {
        *x = approx::exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}
