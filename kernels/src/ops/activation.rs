//! Elementwise and row-wise activations: `gelu`, `silu`, `swiglu`, `softmax`.

use super::{expect_len, rows_of};
use crate::KernelError;

/// GELU in its exact erf form, `0.5 · x · (1 + erf(x / √2))`, in place: Hugging Face's
/// `"gelu"` as BERT uses it (not the tanh approximation). Never fails; it returns a `Result`
/// so every op has the same shape for the host bindings.
pub fn gelu(x: &mut [f32]) -> Result<(), KernelError> {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
    Ok(())
}

/// SiLU (swish), `x · σ(x) = x / (1 + e^-x)`, in place. Never fails.
pub fn silu(x: &mut [f32]) -> Result<(), KernelError> {
    for v in x.iter_mut() {
        *v = silu_one(*v);
    }
    Ok(())
}

/// The gated FFN activation of llama, in place on the gate: `gate = silu(gate) · up`,
/// elementwise over slices of one length.
pub fn swiglu(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    expect_len("swiglu up", up.len(), gate.len())?;
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu_one(*g) * u;
    }
    Ok(())
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
    for row in x.chunks_exact_mut(cols) {
        softmax_row(row);
    }
    Ok(())
}

/// Softmax of one row in place (shared with `attention`).
pub(super) fn softmax_row(row: &mut [f32]) {
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
}
