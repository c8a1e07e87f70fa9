//! Scaled dot-product attention without a cache.

use super::activation::softmax_row;
use super::{dot, expect_len, size_mul, DOT_LANES};
use crate::dispatch::{active_variant, vectorize};
use crate::{KernelError, StopCheck, Variant, NEVER_STOP};

/// Multiply-adds [`attention_until`] does between two calls of its stop check: about a
/// millisecond of work, so a stop is noticed promptly and checking costs nothing.
const WORK_BETWEEN_CHECKS: usize = 1 << 21;

/// Upper bound of the scratch memory [`attention`] allocates for `m` keys of `head_dim`
/// (the scores of one query, and one kv head's keys transposed), so a host can charge it
/// before the call.
pub fn attention_scratch_bytes(m: usize, head_dim: usize) -> usize {
    m.saturating_mul(head_dim.saturating_add(1))
        .saturating_mul(std::mem::size_of::<f32>())
}

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
    attention_until(
        out, q, k, v, n, m, heads, kv_heads, head_dim, causal, NEVER_STOP,
    )
}

/// [`attention`], asking `stop` after every [`WORK_BETWEEN_CHECKS`] multiply-adds or so:
/// its cost is quadratic in the positions, so a caller with a deadline must be able to cut
/// one call short. On [`KernelError::Interrupted`] `out` is incomplete.
#[allow(clippy::too_many_arguments)] // mirrors the WIT call plus the shapes it derives
pub fn attention_until(
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
    stop: StopCheck,
) -> Result<(), KernelError> {
    attention_windowed(
        out,
        q,
        k,
        v,
        [n, m, heads, kv_heads, head_dim],
        causal,
        usize::MAX,
        stop,
    )
}

/// [`attention_until`] where, when `causal`, a query at position `p` sees only the keys at
/// positions `j` with `p − j < window` (a sliding window of `window` positions ending at its
/// own, ggml's standard window; nonzero); `usize::MAX` sees every earlier key. `dims` = n, m,
/// heads, kv_heads, head_dim.
#[allow(clippy::too_many_arguments)]
fn attention_windowed(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    [n, m, heads, kv_heads, head_dim]: [usize; 5],
    causal: bool,
    window: usize,
    stop: StopCheck,
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
    let q_cols = size_mul(heads, head_dim, "attention q row")?;
    let kv_cols = size_mul(kv_heads, head_dim, "attention kv row")?;
    expect_len("attention q", q.len(), size_mul(n, q_cols, "attention q")?)?;
    expect_len("attention out", out.len(), q.len())?;
    let kv_len = size_mul(m, kv_cols, "attention k")?;
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

    let variant = active_variant();
    let mut scores = vec![0f32; m];
    let window = if causal { window } else { usize::MAX };
    vectorize!(variant, {
        attend_heads(
            variant,
            out,
            q,
            k,
            v,
            &mut scores,
            [n, m, heads, kv_heads, head_dim, window],
            causal,
            stop,
        )
    })
}

/// Queries sharing one kv head (query rows × heads per kv head) from which the vectorized
/// variants transpose that head's keys (see [`attend_heads`]).
const TRANSPOSE_MIN_QUERIES: usize = 8;

/// The arithmetic of [`attention`] once its shapes are checked (`dims` = n, m, heads,
/// kv_heads, head_dim, window: see [`attention_windowed`]); inlined into the variant's vectorized body. `stop` is asked between
/// queries once [`WORK_BETWEEN_CHECKS`] multiply-adds have been done since the last ask.
///
/// The scalar reference dots each query with each key. Outside it, when many queries share a
/// kv head (a prompt, an encoder), that head's keys are first transposed to
/// `[head_dim, m]`: a query's scores are then multiply-adds along contiguous keys, which fill
/// the registers, instead of one short dot and a horizontal sum per key, with the same sums
/// ([`transposed_scores`]). A decode step (one query per head) keeps the dots: its transpose
/// would cost more than it saves.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_heads(
    variant: Variant,
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scores: &mut [f32],
    [n, m, heads, kv_heads, head_dim, window]: [usize; 6],
    causal: bool,
    stop: StopCheck,
) -> Result<(), KernelError> {
    let mut work = 0usize;
    let mut account = |units: usize| {
        work += units;
        if work >= WORK_BETWEEN_CHECKS {
            work = 0;
            if stop() {
                return Err(KernelError::Interrupted("attention"));
            }
        }
        Ok(())
    };
    let (q_cols, kv_cols) = (heads * head_dim, kv_heads * head_dim);
    let group = heads / kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let transpose = variant != Variant::Scalar && n * group >= TRANSPOSE_MIN_QUERIES;
    let mut kt = vec![0f32; if transpose { head_dim * m } else { 0 }];
    for g in 0..kv_heads {
        if transpose {
            for (j, row) in k.chunks_exact(kv_cols).enumerate() {
                for (d, &x) in row[g * head_dim..][..head_dim].iter().enumerate() {
                    kt[d * m + j] = x;
                }
            }
            account(head_dim * m)?;
        }
        for h in g * group..(g + 1) * group {
            for i in 0..n {
                // Keys query i may see, `first..end`; n <= m when causal, so this cannot
                // underflow.
                let end = if causal { m - n + i + 1 } else { m };
                let first = end.saturating_sub(window);
                let visible = end - first;
                let qh = &q[i * q_cols + h * head_dim..][..head_dim];
                let s = &mut scores[..visible];
                if transpose {
                    transposed_scores(s, qh, &kt, m, first, scale);
                } else {
                    for (j, s) in s.iter_mut().enumerate() {
                        let kh = &k[(first + j) * kv_cols + g * head_dim..][..head_dim];
                        *s = dot(qh, kh) * scale;
                    }
                }
                softmax_row(variant, s);
                let oh = &mut out[i * q_cols + h * head_dim..][..head_dim];
                weighted_rows(
                    oh,
                    visible,
                    |j| s[j],
                    |j| &v[(first + j) * kv_cols + g * head_dim..],
                );
                // Scores, softmax and the weighted sum: about three passes over the keys.
                account(visible * (2 * head_dim + 1))?;
            }
        }
    }
    Ok(())
}

/// Lanes of one register of f32 under AVX2, the unit [`weighted_rows`] accumulates in.
const LANES: usize = 8;

/// A query's scores against the `s.len()` keys from `first` on, from keys transposed to
/// `kt [head_dim, m]`, eight keys at a time. Each score is summed exactly as [`dot`] sums
/// (lane l takes dimensions l, l + 8, …; then the lanes in order; then the tail) and then
/// scaled, so it equals the reference's bit for bit: the transpose changes only the speed.
#[inline(always)]
fn transposed_scores(s: &mut [f32], qh: &[f32], kt: &[f32], m: usize, from: usize, scale: f32) {
    let full = qh.len() / DOT_LANES * DOT_LANES;
    for (c, sc) in s.chunks_mut(LANES).enumerate() {
        let first = from + c * LANES;
        let sums = match <&mut [f32; LANES]>::try_from(&mut *sc) {
            Ok(_) => lane_sums::<LANES>(qh, kt, m, first, full),
            // The last, partial chunk: only its keys are read.
            Err(_) => {
                let mut sums = [0f32; LANES];
                for (j, s) in sums.iter_mut().take(sc.len()).enumerate() {
                    *s = lane_sums::<1>(qh, kt, m, first + j, full)[0];
                }
                sums
            }
        };
        for (j, out) in sc.iter_mut().enumerate() {
            let mut sum = sums[j];
            for (d, &qd) in qh.iter().enumerate().skip(full) {
                sum += qd * kt[d * m + first + j];
            }
            *out = sum * scale;
        }
    }
}

/// For keys `first..first + K` of `kt`, [`dot`]'s lane sums over dimensions `0..full`:
/// lane l of a key accumulates dimensions l, l + 8, …, then the lanes are added in order from
/// `Sum`'s own starting value. One `[f32; K]` per lane keeps K keys side by side in a
/// register, and the final sums too.
#[inline(always)]
fn lane_sums<const K: usize>(
    qh: &[f32],
    kt: &[f32],
    m: usize,
    first: usize,
    full: usize,
) -> [f32; K] {
    let mut lanes = [[0f32; K]; DOT_LANES];
    for base in (0..full).step_by(DOT_LANES) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            let qd = qh[base + l];
            let row: &[f32; K] = kt[(base + l) * m + first..][..K]
                .try_into()
                .expect("K keys");
            for j in 0..K {
                lane[j] += qd * row[j];
            }
        }
    }
    let mut sums = [std::iter::empty::<f32>().sum::<f32>(); K];
    for lane in &lanes {
        for j in 0..K {
            sums[j] += lane[j];
        }
    }
    sums
}

/// `out[c] = Σ_t coef(t) · row(t)[c]` for t in `0..terms`, each element summed in order of
/// t from 0 (the reference's order). Up to four registers of elements are accumulated side
/// by side, so consecutive terms do not wait on one another's adds and nothing goes through
/// memory between terms. `row(t)` must hold at least `out.len()` elements.
#[inline(always)]
fn weighted_rows<'a>(
    out: &mut [f32],
    terms: usize,
    coef: impl Fn(usize) -> f32,
    row: impl Fn(usize) -> &'a [f32],
) {
    let mut done = 0;
    while out.len() - done >= 4 * LANES {
        weighted_group::<{ 4 * LANES }>(&mut out[done..], done, terms, &coef, &row);
        done += 4 * LANES;
    }
    if out.len() - done >= 2 * LANES {
        weighted_group::<{ 2 * LANES }>(&mut out[done..], done, terms, &coef, &row);
        done += 2 * LANES;
    }
    if out.len() - done >= LANES {
        weighted_group::<LANES>(&mut out[done..], done, terms, &coef, &row);
        done += LANES;
    }
    for (c, o) in out.iter_mut().enumerate().skip(done) {
        *o = (0..terms).fold(0.0, |acc, t| acc + coef(t) * row(t)[c]);
    }
}

/// [`weighted_rows`] for the `W` elements of `out` from `start` of each row.
#[inline(always)]
fn weighted_group<'a, const W: usize>(
    out: &mut [f32],
    start: usize,
    terms: usize,
    coef: &impl Fn(usize) -> f32,
    row: &impl Fn(usize) -> &'a [f32],
) {
    let mut acc = [0f32; W];
    for t in 0..terms {
        let p = coef(t);
        let r: &[f32; W] = row(t)[start..start + W].try_into().expect("W elements");
        for k in 0..W {
            acc[k] += p * r[k];
        }
    }
    out[..W].copy_from_slice(&acc);
}

/// Keys and values of past positions for every layer of a decoder, so each generated token
/// attends to the prompt without recomputing it.
///
/// Positions `0..len()` are committed. A call to [`KvCache::attend`] for a layer writes the
/// keys and values of the `n` new positions after them and attends over all `len() + n`;
/// once every layer has seen those positions, [`KvCache::advance`] commits them. Storage
/// grows with the positions used (f32, `[position, kv_cols]` per layer), up to `capacity`.
#[derive(Debug, Clone)]
pub struct KvCache {
    kv_cols: usize,
    capacity: usize,
    len: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl KvCache {
    /// An empty cache for `layers` layers of `kv_cols` (kv heads · head dim) per position,
    /// holding at most `capacity` positions. Nothing is allocated until positions arrive.
    pub fn new(layers: usize, capacity: usize, kv_cols: usize) -> Result<Self, KernelError> {
        if layers == 0 || kv_cols == 0 {
            return Err(KernelError::InvalidArgument(format!(
                "kv cache: {layers} layers of {kv_cols} columns"
            )));
        }
        Self::bytes_for(layers, capacity, kv_cols).ok_or_else(|| {
            KernelError::InvalidArgument(format!(
                "kv cache: {layers} layers x {capacity} positions x {kv_cols} overflows"
            ))
        })?;
        Ok(KvCache {
            kv_cols,
            capacity,
            len: 0,
            k: vec![Vec::new(); layers],
            v: vec![Vec::new(); layers],
        })
    }

    /// Bytes a full cache of this shape holds (keys and values, f32), or `None` on overflow.
    pub fn bytes_for(layers: usize, capacity: usize, kv_cols: usize) -> Option<usize> {
        layers
            .checked_mul(capacity)?
            .checked_mul(kv_cols)?
            .checked_mul(2 * std::mem::size_of::<f32>())
    }

    /// Committed positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no position is committed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most positions this cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.k.len()
    }

    /// Keys (or values) per position and layer.
    pub fn kv_cols(&self) -> usize {
        self.kv_cols
    }

    /// Drops positions from `len` on (e.g. to reuse a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Causal attention of `n` new positions at layer `layer`: stores their keys `k` and
    /// values `v` (`[n, kv_cols]`) after the committed ones, then computes
    /// `out [n, heads·head_dim]` from queries `q` over all `len() + n` positions, as
    /// [`attention`] with `causal`. Fails without changing anything if the positions do not
    /// fit in the capacity or memory cannot be had.
    #[allow(clippy::too_many_arguments)] // mirrors the WIT call plus the shapes it derives
    pub fn attend(
        &mut self,
        layer: usize,
        out: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        heads: usize,
        kv_heads: usize,
    ) -> Result<(), KernelError> {
        self.attend_until(layer, out, q, k, v, heads, kv_heads, usize::MAX, NEVER_STOP)
    }

    /// [`KvCache::attend`], asking `stop` as [`attention_until`] does, each new position
    /// seeing only the last `window` positions up to its own (a sliding-window layer, as
    /// ggml's standard window: position `p` sees `j` when `p − j < window`; `usize::MAX` for
    /// all; 0 is refused). When stopped, the new positions' keys and values may be stored but
    /// are not committed (as after any call before [`KvCache::advance`]).
    #[allow(clippy::too_many_arguments)] // mirrors the WIT call plus the shapes it derives
    pub fn attend_until(
        &mut self,
        layer: usize,
        out: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        heads: usize,
        kv_heads: usize,
        window: usize,
        stop: StopCheck,
    ) -> Result<(), KernelError> {
        if window == 0 {
            return Err(KernelError::InvalidArgument(
                "kv cache: a sliding window of 0 positions".into(),
            ));
        }
        let kv_cols = self.kv_cols;
        if layer >= self.k.len() {
            return Err(KernelError::InvalidArgument(format!(
                "kv cache: layer {layer} of {}",
                self.k.len()
            )));
        }
        if kv_heads == 0 || !kv_cols.is_multiple_of(kv_heads) {
            return Err(KernelError::InvalidArgument(format!(
                "kv cache: {kv_heads} kv heads do not divide {kv_cols} columns"
            )));
        }
        let head_dim = kv_cols / kv_heads;
        let n = super::rows_of("kv cache k", k.len(), kv_cols)?;
        expect_len("kv cache v", v.len(), k.len())?;
        let m = self.len + n;
        if m > self.capacity {
            return Err(KernelError::InvalidArgument(format!(
                "kv cache: {} + {n} positions exceed its capacity of {}",
                self.len, self.capacity
            )));
        }
        let (start, end) = (self.len * kv_cols, m * kv_cols);
        for (store, new) in [(&mut self.k[layer], k), (&mut self.v[layer], v)] {
            store.truncate(start);
            store.try_reserve(new.len()).map_err(|_| {
                KernelError::InvalidArgument(format!("kv cache: cannot allocate {end} floats"))
            })?;
            store.extend_from_slice(new);
        }
        attention_windowed(
            out,
            q,
            &self.k[layer][..end],
            &self.v[layer][..end],
            [n, m, heads, kv_heads, head_dim],
            true,
            window,
            stop,
        )
    }

    /// Commits `n` positions every layer has attended; an error if some layer has not.
    pub fn advance(&mut self, n: usize) -> Result<(), KernelError> {
        let m = self.len.checked_add(n).filter(|&m| m <= self.capacity);
        let need = m.and_then(|m| m.checked_mul(self.kv_cols));
        match need {
            Some(need) if self.k.iter().chain(&self.v).all(|s| s.len() >= need) => {
                self.len += n;
                Ok(())
            }
            _ => Err(KernelError::InvalidArgument(format!(
                "kv cache: cannot commit {n} positions after {}: not every layer has them",
                self.len
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores from transposed keys equal `dot(q, k) · scale` bit for bit, for head sizes with
    /// and without a tail past the dot's lanes and key counts ragged against the registers.
    #[test]
    fn transposed_scores_equal_the_dots() {
        let value = |i: usize| ((i * 7919 % 1000) as f32 - 500.0) * 0.0137;
        for head_dim in [1, 7, 8, 13, 32, 64, 67] {
            for m in [1, 5, 8, 16, 23] {
                let q: Vec<f32> = (0..head_dim).map(|i| value(i + 3)).collect();
                let k: Vec<f32> = (0..m * head_dim).map(|i| value(i * 31 + 1)).collect();
                let mut kt = vec![0f32; head_dim * m];
                for j in 0..m {
                    for d in 0..head_dim {
                        kt[d * m + j] = k[j * head_dim + d];
                    }
                }
                let scale = 0.173;
                let mut got = vec![0f32; m];
                transposed_scores(&mut got, &q, &kt, m, 0, scale);
                for (j, g) in got.iter().enumerate() {
                    let want = dot(&q, &k[j * head_dim..][..head_dim]) * scale;
                    assert_eq!(g.to_bits(), want.to_bits(), "d {head_dim} m {m} key {j}");
                }
            }
        }
    }
}
