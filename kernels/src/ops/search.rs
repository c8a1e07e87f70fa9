//! Picking results: `nn_search` over an index of vectors, `argmax` over logits.

use super::{dot, expect_len, expect_weight_dtype};
use crate::{KernelError, WeightView};
use std::cmp::Ordering;

/// A nearest-neighbour result: a row of the index and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Row of the index.
    pub row: u32,
    /// Cosine similarity in [-1, 1] (0 when the row or the query has zero norm).
    pub score: f32,
}

/// Upper bound of the scratch memory [`nn_search`] allocates for an index of `rows` rows of
/// `cols` values: a hit per row and one dequantized row. A host charges it before the call.
pub fn nn_search_scratch_bytes(rows: usize, cols: usize) -> usize {
    rows.saturating_mul(std::mem::size_of::<Hit>())
        .saturating_add(cols.saturating_mul(std::mem::size_of::<f32>()))
}

/// The `k` rows of `index [rows, cols]` (F32, F16 or Q8_0) most similar to `query [cols]` by
/// cosine, best first; equal scores are ordered by row. `k` larger than `rows` returns every
/// row. A zero-norm row (or query) scores 0; a NaN score sorts after every number.
///
/// The row norms are computed from the dequantized rows, so a quantized index needs no
/// separate norm table and its scores stay true cosines of what is stored.
pub fn nn_search(index: &WeightView, query: &[f32], k: usize) -> Result<Vec<Hit>, KernelError> {
    expect_weight_dtype(index, "nn_search")?;
    let cols = index.cols();
    if cols == 0 {
        // Also what keeps `rows` bounded by the index's bytes below.
        return Err(KernelError::InvalidArgument(
            "nn_search: zero-length vectors".into(),
        ));
    }
    expect_len("nn_search query", query.len(), cols)?;
    if u32::try_from(index.rows()).is_err() {
        return Err(KernelError::InvalidArgument(format!(
            "nn_search: {} rows do not fit a u32 row id",
            index.rows()
        )));
    }
    let q_norm = norm(query);
    let mut row = vec![0f32; cols];
    let mut hits = Vec::with_capacity(index.rows());
    for r in 0..index.rows() {
        index.dequantize_row(r, &mut row)?;
        let denom = q_norm * norm(&row);
        let score = if denom > 0.0 {
            (dot(query, &row) as f64 / denom) as f32
        } else {
            0.0
        };
        hits.push(Hit {
            row: r as u32,
            score,
        });
    }
    hits.sort_by(|a, b| by_score_desc(a.score, b.score).then(a.row.cmp(&b.row)));
    hits.truncate(k);
    Ok(hits)
}

/// Each row's Euclidean norm, from the dequantized row as [`nn_search`] computes it: for
/// [`nn_search_with_norms`], which searches the same index many times.
pub fn row_norms(index: &WeightView) -> Result<Vec<f32>, KernelError> {
    expect_weight_dtype(index, "row_norms")?;
    let mut row = vec![0f32; index.cols()];
    (0..index.rows())
        .map(|r| {
            index.dequantize_row(r, &mut row)?;
            Ok(norm(&row) as f32)
        })
        .collect()
}

/// [`nn_search`] for an index searched many times: its row norms computed once
/// ([`row_norms`]), and the dot products by the active variant's matrix-vector kernel (SIMD,
/// and split across threads for a large index) instead of row by row. Scores equal
/// [`nn_search`]'s within that kernel's tolerance for the index format (the activations are
/// quantized for a Q8_0 index), so rows whose scores are that close may swap places.
pub fn nn_search_with_norms(
    index: &WeightView,
    norms: &[f32],
    query: &[f32],
    k: usize,
) -> Result<Vec<Hit>, KernelError> {
    expect_weight_dtype(index, "nn_search")?;
    expect_len("nn_search query", query.len(), index.cols())?;
    expect_len("nn_search norms", norms.len(), index.rows())?;
    let mut dots = vec![0f32; index.rows()];
    crate::matmul::matmul(&mut dots, query, 1, index, None)?;
    let q_norm = norm(query);
    let mut hits: Vec<Hit> = dots
        .iter()
        .zip(norms)
        .enumerate()
        .map(|(r, (&d, &n))| {
            let denom = q_norm * n as f64;
            Hit {
                row: r as u32,
                score: if denom > 0.0 {
                    (d as f64 / denom) as f32
                } else {
                    0.0
                },
            }
        })
        .collect();
    let order = |a: &Hit, b: &Hit| by_score_desc(a.score, b.score).then(a.row.cmp(&b.row));
    if k < hits.len() && k > 0 {
        hits.select_nth_unstable_by(k - 1, order);
    }
    hits.truncate(k);
    hits.sort_by(order);
    Ok(hits)
}

/// Descending order of scores with NaN last.
fn by_score_desc(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (a_nan, b_nan) => a_nan.cmp(&b_nan),
    }
}

/// Euclidean norm, accumulated in f64 so long rows of small values keep their precision.
fn norm(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

/// Index of the largest element; the first one if several are equal. NaN never wins; an
/// empty slice, or one of only NaNs, is an `InvalidArgument`.
pub fn argmax(x: &[f32]) -> Result<usize, KernelError> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in x.iter().enumerate() {
        // `>` is false for NaN on either side, so NaN neither wins nor displaces a winner.
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i).ok_or_else(|| {
        KernelError::InvalidArgument(format!("argmax of {} elements, none a number", x.len()))
    })
}
