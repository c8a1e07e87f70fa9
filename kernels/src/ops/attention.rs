//! Scaled dot-product attention without a cache.

use super::activation::softmax_row;
use super::{dot, expect_len, mul};
use crate::KernelError;

/// Multi-head scaled dot-product attention with grouped-query support.
///
/// Shapes: `q [n, heads·head_dim]`, `k` and `v [m, kv_heads·head_dim]`,
/// `out [n, heads·head_dim]`. `heads` must be a multiple of `kv_heads`; query head `h` reads
/// kv head `h / (heads / kv_heads)` (consecutive query heads share a kv head, as in llama).
/// Scores are scaled by `1/√head_dim`.
///
/// With `causal`, the `n` queries are the *last* `n` of the `m` positions (a prompt continuing
/// a cache): query `i` sits at position `m - n + i` and sees keys `0..=m - n + i`. That needs
/// `n <= m`; otherwise the first queries would see no key at all, which is refused.
/// Without `causal` every query sees all `m` keys, and `m` must be nonzero when `n` is.
#[allow(clippy::too_many_arguments)] // mirrors the WIT call plus the shapes it derives
pub fn attention(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    m: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    causal: bool,
) -> Result<(), KernelError> {
    if heads == 0 || kv_heads == 0 || head_dim == 0 {
        return Err(KernelError::InvalidArgument(format!(
            "attention: heads {heads}, kv_heads {kv_heads}, head_dim {head_dim} must be nonzero"
        )));
    }
    if !heads.is_multiple_of(kv_heads) {
        return Err(KernelError::InvalidArgument(format!(
            "attention: {heads} heads is not a multiple of {kv_heads} kv heads"
        )));
    }
    let q_cols = mul(heads, head_dim, "attention q row")?;
    let kv_cols = mul(kv_heads, head_dim, "attention kv row")?;
    expect_len("attention q", q.len(), mul(n, q_cols, "attention q")?)?;
    expect_len("attention out", out.len(), q.len())?;
    let kv_len = mul(m, kv_cols, "attention k")?;
    expect_len("attention k", k.len(), kv_len)?;
    expect_len("attention v", v.len(), kv_len)?;
    if n > 0 && m == 0 {
        return Err(KernelError::InvalidArgument(
            "attention: queries but no keys".into(),
        ));
    }
    if causal && n > m {
        return Err(KernelError::InvalidArgument(format!(
            "attention: causal with {n} queries but only {m} keys"
        )));
    }

    let group = heads / kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut scores = vec![0f32; m];
    for i in 0..n {
        // Number of keys query i may see; n <= m when causal, so this cannot underflow.
        let visible = if causal { m - n + i + 1 } else { m };
        for h in 0..heads {
            let g = h / group;
            let qh = &q[i * q_cols + h * head_dim..][..head_dim];
            let s = &mut scores[..visible];
            for (j, s) in s.iter_mut().enumerate() {
                let kh = &k[j * kv_cols + g * head_dim..][..head_dim];
                *s = dot(qh, kh) * scale;
            }
            softmax_row(s);
            let oh = &mut out[i * q_cols + h * head_dim..][..head_dim];
            oh.fill(0.0);
            for (j, &p) in s.iter().enumerate() {
                let vh = &v[j * kv_cols + g * head_dim..][..head_dim];
                for (o, &x) in oh.iter_mut().zip(vh) {
                    *o += p * x;
                }
            }
        }
    }
    Ok(())
}
