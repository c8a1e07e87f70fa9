//! Ops that read weights row by row (`matmul`, `embed`) and the broadcasting elementwise
//! ops (`add`, `mul`, `scale`).

use super::{expect_len, expect_weight_dtype, size_mul};
use crate::dispatch::{active_variant, vectorize};
use crate::{KernelError, WeightView};

/// `out[n, rows] = x[n, k] · w[rows, k]ᵀ (+ bias[rows])`, with `k = w.cols()` and
/// `rows = w.rows()`; `w` is F32, F16, Q8_0, Q4_0 or Q4_1.
///
/// Runs the active [`crate::Variant`] with the activation mode
/// [`crate::matmul::default_activations`] picks for the format: f32 activations for F32, F16
/// and Q8_0 weights (no error beyond the weights' own rounding), Q8_0/Q8_1-quantized
/// activations for Q4_0/Q4_1 (ggml's way). The scalar reference is
/// [`crate::matmul::matmul_reference`]; tolerances are in `kernels/README.md`.
pub fn matmul(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightView,
    bias: Option<&[f32]>,
) -> Result<(), KernelError> {
    crate::matmul::matmul(out, x, n, w, bias)
}

/// `out[i, :] = table[ids[i], :]`, dequantizing rows of an F32, F16 or Q8_0 table;
/// `out` is `[ids.len(), table.cols()]`. An id that is negative or not below `table.rows()` is
/// an `InvalidArgument`, reported before anything is written.
pub fn embed(out: &mut [f32], table: &WeightView, ids: &[i32]) -> Result<(), KernelError> {
    expect_weight_dtype(table, "embed")?;
    let cols = table.cols();
    expect_len(
        "embed out",
        out.len(),
        size_mul(ids.len(), cols, "embed out")?,
    )?;
    if let Some((i, id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| usize::try_from(id).map_or(true, |id| id >= table.rows()))
    {
        return Err(KernelError::InvalidArgument(format!(
            "embed: ids[{i}] = {id} is outside a table of {} rows",
            table.rows()
        )));
    }
    if cols == 0 {
        return Ok(());
    }
    for (o, &id) in out.chunks_exact_mut(cols).zip(ids) {
        table.dequantize_row(id as usize, o)?;
    }
    Ok(())
}

/// `out = a + b`, where `b` repeats over `a` (e.g. a bias row added to every row):
/// `out[i] = a[i] + b[i % b.len()]`. `b` must be nonempty and its length must divide `a`'s.
pub fn add(out: &mut [f32], a: &[f32], b: &[f32]) -> Result<(), KernelError> {
    broadcast("add", out, a, b, |x, y| x + y)
}

/// `out = a · b` elementwise, with `b` repeating over `a` as in [`add`].
pub fn mul(out: &mut [f32], a: &[f32], b: &[f32]) -> Result<(), KernelError> {
    broadcast("mul", out, a, b, |x, y| x * y)
}

/// `x *= s` in place; `s` must be finite.
pub fn scale(x: &mut [f32], s: f32) -> Result<(), KernelError> {
    if !s.is_finite() {
        return Err(KernelError::InvalidArgument(format!("scale: factor {s}")));
    }
    vectorize!(active_variant(), x.iter_mut().for_each(|v| *v *= s));
    Ok(())
}

/// `out[i] = f(a[i], b[i % b.len()])` after checking the lengths, vectorized for the active
/// variant (elementwise, so bit-identical in every variant).
#[inline(always)]
fn broadcast(
    op: &str,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32,
) -> Result<(), KernelError> {
    expect_len(&format!("{op} out"), out.len(), a.len())?;
    if b.is_empty() {
        return Err(KernelError::InvalidArgument(format!("{op}: b is empty")));
    }
    if !a.len().is_multiple_of(b.len()) {
        return Err(KernelError::ShapeMismatch(format!(
            "{op}: b of {} elements does not divide a of {}",
            b.len(),
            a.len()
        )));
    }
    vectorize!(active_variant(), {
        for (o_row, a_row) in out.chunks_exact_mut(b.len()).zip(a.chunks_exact(b.len())) {
            for ((o, &x), &y) in o_row.iter_mut().zip(a_row).zip(b) {
                *o = f(x, y);
            }
        }
    });
    Ok(())
}
