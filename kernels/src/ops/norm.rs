//! Row normalizations and pooling: `layer_norm`, `rms_norm`, `mean_pool`, `l2_normalize`.
//!
//! One code path for every variant, compiled for the variant's registers
//! ([`crate::dispatch::vectorized`]): the compiler does not reorder floating-point sums, so
//! every variant gives the reference's results bit for bit.

use super::{expect_len, rows_of, size_mul};
use crate::dispatch::{active_variant, vectorize};
use crate::KernelError;

/// Layer normalization over rows of `cols`: `out = (x - mean) / sqrt(var + eps) · gamma + beta`,
/// with the biased variance (as PyTorch's `LayerNorm`). `x` and `out` are `[rows, cols]`,
/// `gamma` and `beta` are `[cols]`, and `eps` must be finite and non-negative.
pub fn layer_norm(
    out: &mut [f32],
    x: &[f32],
    cols: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<(), KernelError> {
    rows_of("layer_norm x", x.len(), cols)?;
    expect_len("layer_norm out", out.len(), x.len())?;
    expect_len("layer_norm gamma", gamma.len(), cols)?;
    expect_len("layer_norm beta", beta.len(), cols)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(KernelError::InvalidArgument(format!(
            "layer_norm: eps = {eps}"
        )));
    }
    vectorize!(active_variant(), {
        for (o, row) in out.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
            // Two passes in f64: BERT uses eps = 1e-12, far below f32's resolution of a variance
            // computed as E[x²] - E[x]², so the one-pass form would lose the small-variance rows.
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            for (((o, &v), &g), &b) in o.iter_mut().zip(row).zip(gamma).zip(beta) {
                *o = ((v as f64 - mean) * inv) as f32 * g + b;
            }
        }
    });
    Ok(())
}

/// RMS normalization over rows of `cols` (llama's norm): `out = x / sqrt(mean(x²) + eps) · w`.
/// `x` and `out` are `[rows, cols]`, `w` is `[cols]`, and `eps` must be finite and
/// non-negative. The mean of squares accumulates in f64.
pub fn rms_norm(
    out: &mut [f32],
    x: &[f32],
    cols: usize,
    w: &[f32],
    eps: f32,
) -> Result<(), KernelError> {
    rows_of("rms_norm x", x.len(), cols)?;
    expect_len("rms_norm out", out.len(), x.len())?;
    expect_len("rms_norm w", w.len(), cols)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(KernelError::InvalidArgument(format!(
            "rms_norm: eps = {eps}"
        )));
    }
    vectorize!(active_variant(), {
        for (o, row) in out.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
            let denom = (ms + eps as f64).sqrt();
            // An all-zero row with eps 0 has nothing to scale: keep it zero, not NaN.
            let inv = if denom > 0.0 {
                (1.0 / denom) as f32
            } else {
                0.0
            };
            for ((o, &v), &g) in o.iter_mut().zip(row).zip(w) {
                *o = v * inv * g;
            }
        }
    });
    Ok(())
}

/// `out[cols]` = the mean of the first `count` rows of `x [rows, cols]`; `1 <= count <= rows`.
/// Encoders pass the number of real (unpadded) tokens as `count`.
pub fn mean_pool(
    out: &mut [f32],
    x: &[f32],
    rows: usize,
    cols: usize,
    count: usize,
) -> Result<(), KernelError> {
    expect_len("mean_pool x", x.len(), size_mul(rows, cols, "mean_pool x")?)?;
    expect_len("mean_pool out", out.len(), cols)?;
    if count == 0 || count > rows {
        return Err(KernelError::InvalidArgument(format!(
            "mean_pool: count {count} outside 1..={rows}"
        )));
    }
    // Zero columns: nothing to average, and `rows` is then not bounded by `x`'s length.
    if cols == 0 {
        return Ok(());
    }
    let mut sum = vec![0f64; cols];
    vectorize!(active_variant(), {
        for row in x.chunks_exact(cols).take(count) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64;
            }
        }
        for (o, s) in out.iter_mut().zip(&sum) {
            *o = (s / count as f64) as f32;
        }
    });
    Ok(())
}

/// Scales every row of `x [rows, cols]` to unit L2 norm, in place. A row of zeros stays zero
/// (there is no direction to keep).
pub fn l2_normalize(x: &mut [f32], cols: usize) -> Result<(), KernelError> {
    rows_of("l2_normalize x", x.len(), cols)?;
    vectorize!(active_variant(), {
        for row in x.chunks_exact_mut(cols) {
            let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            if norm > 0.0 {
                for v in row.iter_mut() {
                    *v = (*v as f64 / norm) as f32;
                }
            }
        }
    });
    Ok(())
}
