//! Rotary position embedding.

use super::size_mul;
use crate::KernelError;

/// Which elements of a head rope rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs `(x[2i], x[2i+1])`: ggml's normal mode, which llama GGUF files need
    /// (llama.cpp's converter permutes the q/k weight rows of Hugging Face checkpoints so).
    Interleaved,
    /// The two halves `(x[i], x[i + d/2])`: Hugging Face's `rotate_half` and ggml's NeoX mode.
    Halves,
}

/// Rotates every head of `x [n, heads·head_dim]` in place; row `i` sits at position
/// `first_pos + i`. Pair `i` of a head turns by `pos · base^(−2i/head_dim)`, the angle computed
/// in f64. `head_dim` must be even and nonzero, and `base` finite and above 1.
pub fn rope(
    x: &mut [f32],
    heads: usize,
    head_dim: usize,
    first_pos: usize,
    base: f32,
    layout: RopeLayout,
) -> Result<(), KernelError> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) || heads == 0 {
        return Err(KernelError::InvalidArgument(format!(
            "rope: {heads} heads of {head_dim} (head_dim must be even, both nonzero)"
        )));
    }
    if !(base.is_finite() && base > 1.0) {
        return Err(KernelError::InvalidArgument(format!("rope: base {base}")));
    }
    let cols = size_mul(heads, head_dim, "rope row")?;
    let rows = super::rows_of("rope x", x.len(), cols)?;
    // Positions beyond what f64 counts exactly would make the angles meaningless.
    if first_pos.checked_add(rows).is_none_or(|end| end > 1 << 40) {
        return Err(KernelError::InvalidArgument(format!(
            "rope: position {first_pos} + {rows}"
        )));
    }
    let half = head_dim / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|i| (base as f64).powf(-2.0 * i as f64 / head_dim as f64))
        .collect();
    let mut cos_sin = vec![(0f32, 0f32); half];
    for (r, row) in x.chunks_exact_mut(cols).enumerate() {
        let pos = (first_pos + r) as f64;
        for (cs, f) in cos_sin.iter_mut().zip(&freqs) {
            let (s, c) = (pos * f).sin_cos();
            *cs = (c as f32, s as f32);
        }
        for head in row.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cos_sin.iter().enumerate() {
                let (a, b) = match layout {
                    RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                    RopeLayout::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
    Ok(())
}
