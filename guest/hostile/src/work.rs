//! Attacks on the host's work and memory inside single calls: kernels whose cost grows
//! faster than their inputs (each call must stop at the deadline, not when it is done), and
//! model weights passed where the host would expand them to f32 (each expansion must be
//! charged to the host-memory budget before it is allocated, or refused by a shape check
//! before anything is read).

use crate::{model, ok, Response};
use edgenlu_sdk::kernels::{self, KvCache};
use edgenlu_sdk::tensor::f32s;
use edgenlu_sdk::{Error, Tensor};
use std::hint::black_box;

/// Positions of the quadratic attacks: a few MiB of tensors, hours of work in one call.
const POSITIONS: u32 = 1 << 18;

/// The MiniLM token embedding: 30,522 × 384 Q8_0, 47 MB as f32.
fn big_weight() -> Result<Tensor, Error> {
    model()?.weight("token_embd.weight")
}

/// Runs the attack `name` if it is one of this module's.
pub(crate) fn attack(name: &str) -> Option<Result<Response, Error>> {
    Some(match name {
        "attention-quadratic" => attention_quadratic(),
        "attention-wide-heads" => attention_wide_heads(),
        "attend-quadratic" => attend_quadratic(),
        "matmul-many-rows" => matmul_many_rows(),
        "dequantize-add" => dequantize_add(),
        "dequantize-rms-norm" => dequantize_rms_norm(),
        "dequantize-mean-pool" => dequantize_mean_pool(),
        "dequantize-matmul-x" => dequantize_matmul_x(),
        "dequantize-attention-kv" => dequantize_attention_kv(),
        "dequantize-charge-released" => dequantize_charge_released(),
        "dequantize-argmax" => big_weight()
            .and_then(|w| kernels::argmax(&w))
            .map(|i| ok(&i.to_string())),
        _ => return None,
    })
}

/// One head of width 1 over 2^18 positions, every query seeing every key: 7·10^10
/// multiply-adds in one call.
fn attention_quadratic() -> Result<Response, Error> {
    let q = f32s(&[POSITIONS, 1])?;
    let out = f32s(&[POSITIONS, 1])?;
    kernels::attention(&out, &q, &q, &q, 1, 1, false).map(|_| ok("attended"))
}

/// A single query row of 2^18 heads of width 1, all sharing one kv head of 2^18 positions:
/// few rows, but every row is quadratic.
fn attention_wide_heads() -> Result<Response, Error> {
    let q = f32s(&[1, POSITIONS])?;
    let kv = f32s(&[POSITIONS, 1])?;
    let out = f32s(&[1, POSITIONS])?;
    kernels::attention(&out, &q, &kv, &kv, POSITIONS, 1, false).map(|_| ok("attended"))
}

/// The cache's causal attention over 2^18 new positions in one call.
fn attend_quadratic() -> Result<Response, Error> {
    let cache = KvCache::create(1, POSITIONS, 1)?;
    let x = f32s(&[POSITIONS, 1])?;
    let out = f32s(&[POSITIONS, 1])?;
    kernels::attend(&cache, 0, &out, &x, &x, &x, 1, 1).map(|_| ok("attended"))
}

/// Square f32 matmuls whose cost is the cube of their side, one after another, ignoring
/// every error: whether a call stops inside or the next one is refused, time runs out.
fn matmul_many_rows() -> Result<Response, Error> {
    let x = f32s(&[900, 900])?;
    let out = f32s(&[900, 900])?;
    loop {
        let _ = black_box(kernels::matmul(&out, &x, &x, None));
    }
}

/// A weight as `b` of an `add` whose `a` it cannot repeat over: refused before the weight
/// is read.
fn dequantize_add() -> Result<Response, Error> {
    let a = f32s(&[384])?;
    let out = f32s(&[384])?;
    kernels::add(&out, &a, &big_weight()?).map(|_| ok("added"))
}

/// A weight as the scale of an `rms-norm` of one row: refused by its shape.
fn dequantize_rms_norm() -> Result<Response, Error> {
    let x = f32s(&[1, 384])?;
    let out = f32s(&[1, 384])?;
    kernels::rms_norm(&out, &x, &big_weight()?, 1e-6).map(|_| ok("normed"))
}

/// The whole embedding table mean-pooled: a 47 MB expansion.
fn dequantize_mean_pool() -> Result<Response, Error> {
    let out = f32s(&[384])?;
    kernels::mean_pool(&out, &big_weight()?, 30_522).map(|_| ok("pooled"))
}

/// The embedding table as the activations of a matmul with a one-row weight.
fn dequantize_matmul_x() -> Result<Response, Error> {
    let w = Tensor::from_f32(&[1, 384], &[0.5; 384])?;
    let out = f32s(&[30_522, 1])?;
    kernels::matmul(&out, &big_weight()?, &w, None).map(|_| ok("multiplied"))
}

/// The embedding table as the keys and values of one query.
fn dequantize_attention_kv() -> Result<Response, Error> {
    let q = f32s(&[1, 384])?;
    let out = f32s(&[1, 384])?;
    let kv = big_weight()?;
    kernels::attention(&out, &q, &kv, &kv, 12, 12, false).map(|_| ok("attended"))
}

/// A 590 KB expansion a hundred times over, 59 MB in all: within a 16 MiB budget only if
/// each call's charge is given back when the call ends.
fn dequantize_charge_released() -> Result<Response, Error> {
    let w = model()?.weight("blk.0.attn_q.weight")?;
    let out = f32s(&[384])?;
    for _ in 0..100 {
        kernels::mean_pool(&out, &w, 384)?;
    }
    Ok(ok("released"))
}
