//! Creating the host tensors a forward pass works in.

use crate::{Dtype, Result, Tensor};

/// A zero-filled f32 tensor of `shape` (outermost first), e.g. activations or logits.
pub fn f32s(shape: &[u32]) -> Result<Tensor> {
    Tensor::zeros(Dtype::F32, shape)
}

/// Token ids as the i32 tensor [`kernels::embed`](crate::kernels::embed) reads. An id beyond
/// `i32::MAX` becomes -1, which the host refuses as out of the table.
pub fn ids(ids: &[u32]) -> Result<Tensor> {
    let ids: Vec<i32> = ids
        .iter()
        .map(|&id| i32::try_from(id).unwrap_or(-1))
        .collect();
    Tensor::from_i32(&[ids.len() as u32], &ids)
}

/// The positions `0..n` as an i32 tensor, for a position-embedding table.
pub fn positions(n: u32) -> Result<Tensor> {
    let positions: Vec<i32> = (0..n).map(|p| p as i32).collect();
    Tensor::from_i32(&[n], &positions)
}
