//! Differential tests of the 5-bit and k-quant weights: every kernel variant this CPU runs
//! against the scalar reference (ggml's dot-product semantics, itself checked against ggml in
//! `gguf_golden.rs`), on random blocks — random bytes with finite f16 scales, so every bit
//! pattern of the packed scales, fifth bits and Q6_K high bits occurs — and random shapes.

mod common;

use common::view;
use edgenlu_kernels::formats::kquants::{
    dequantize_q8_k, quantize_q8_k_blocks, scales_mins_k4, K_SCALE_SIZE,
};
use edgenlu_kernels::formats::{
    dequantize, quantize_q8_0_blocks, quantize_q8_1_blocks, BlockQ6K, QK, QK_K,
};
use edgenlu_kernels::matmul::{matmul_with, Activations};
use edgenlu_kernels::{DType, Variant};
use half::f16;
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64;

/// Byte offsets of a block's f16 fields (scales, minimums), which random bytes must not
/// make infinite or NaN.
fn f16_fields(dt: DType) -> &'static [usize] {
    match dt {
        DType::Q5_0 => &[0],
        DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
        DType::Q6_K => &[208],
        _ => unreachable!("not a format of this test"),
    }
}

/// Random bytes as `rows` rows of `dt`, each f16 field replaced by one of `halves`.
fn random_blocks(dt: DType, rows: usize, k: usize, bytes: &[u8], halves: &[f32]) -> Vec<u8> {
    let len = dt.row_bytes(k).unwrap() * rows;
    let mut out: Vec<u8> = (0..len).map(|i| bytes[i % bytes.len()]).collect();
    for (b, block) in out.chunks_exact_mut(dt.block_bytes()).enumerate() {
        for (f, &at) in f16_fields(dt).iter().enumerate() {
            let h = f16::from_f32(halves[(2 * b + f) % halves.len()]);
            block[at..at + 2].copy_from_slice(&h.to_le_bytes());
        }
    }
    out
}

/// The activations as the kernels see them (quantized, then decoded), for the bound.
fn decoded_activations(dt: DType, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    match dt {
        DType::Q4_K | DType::Q5_K | DType::Q6_K => {
            let mut q = Vec::new();
            quantize_q8_k_blocks(x, &mut q);
            for (b, o) in q.iter().zip(out.chunks_exact_mut(QK_K)) {
                dequantize_q8_k(b, o);
            }
        }
        DType::Q5_0 => {
            let mut q = Vec::new();
            quantize_q8_0_blocks(x, &mut q);
            dequantize(DType::Q8_0, bytemuck::cast_slice(&q), &mut out).unwrap();
        }
        _ => {
            let mut q = Vec::new();
            quantize_q8_1_blocks(x, &mut q);
            for (b, o) in q.iter().zip(out.chunks_exact_mut(QK)) {
                let d = f16::from_bits(b.d).to_f32();
                for (o, &q) in o.iter_mut().zip(&b.qs) {
                    *o = d * q as f32;
                }
            }
        }
    }
    out
}

/// Per element, the magnitude of the part of a weight the kernels fold into an offset or
/// minimum term (so an intermediate sum may be that much larger than the result): Q4_K/Q5_K
/// dmin·m, Q6_K 32·|d·sc|, Q5_0 16·|d|, Q5_1 |m|.
fn offsets(dt: DType, row: &[u8]) -> Vec<f64> {
    let h = |b: &[u8], at: usize| f16::from_le_bytes([b[at], b[at + 1]]).to_f64().abs();
    let mut out = Vec::new();
    for b in row.chunks_exact(dt.block_bytes()) {
        match dt {
            DType::Q4_K | DType::Q5_K => {
                let scales: &[u8; K_SCALE_SIZE] = b[4..16].try_into().unwrap();
                let (_, m) = scales_mins_k4(scales);
                out.extend((0..QK_K).map(|e| h(b, 2) * m[e / 32] as f64));
            }
            DType::Q6_K => {
                let block: BlockQ6K = bytemuck::pod_read_unaligned(b);
                out.extend(
                    (0..QK_K).map(|e| 32.0 * h(b, 208) * (block.scales[e / 16] as f64).abs()),
                );
            }
            DType::Q5_0 => out.extend((0..QK).map(|_| 16.0 * h(b, 0))),
            _ => out.extend((0..QK).map(|_| h(b, 2))),
        }
    }
    out
}

fn case() -> impl Strategy<Value = (DType, usize, usize, usize, Vec<u8>, Vec<f32>, Vec<f32>)> {
    (
        prop_oneof![
            Just(DType::Q4_K),
            Just(DType::Q5_K),
            Just(DType::Q6_K),
            Just(DType::Q5_0),
            Just(DType::Q5_1)
        ],
        prop_oneof![3 => 1..3usize, 1 => 3..10usize],
        1..24usize,
        1..4usize,
    )
        .prop_flat_map(|(dt, n, rows, blocks)| {
            let k = blocks * dt.block_elems();
            (
                Just(dt),
                Just(n),
                Just(rows),
                Just(k),
                prop::collection::vec(any::<u8>(), 64..2048),
                prop::collection::vec(-2.0f32..2.0, 1..16),
                prop::collection::vec(-3.0f32..3.0, n * k),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Every variant within (4·nb + 32)·ε·M of the scalar quantized-activation path, M =
    /// Σ (|ŵ| + offset)·|x̂| over the row (ŵ, x̂ as decoded): the integer sums are exact, only
    /// the f32 scaling, the order of the sums and the conversions of partial sums differ.
    #[test]
    fn kquant_and_q5_variants_match_the_scalar_path(
        (dt, n, rows, k, bytes, halves, x) in case(),
    ) {
        let w = random_blocks(dt, rows, k, &bytes, &halves);
        let wv = view(dt, rows, k, &w);
        let mut scalar = vec![f32::NAN; n * rows];
        matmul_with(Variant::Scalar, Activations::Quantized, &mut scalar, &x, n, &wv, None).unwrap();
        let mut wd = vec![0f32; rows * k];
        dequantize(dt, &w, &mut wd).unwrap();
        let rb = dt.row_bytes(k).unwrap();
        let nb = (k / dt.block_elems()) as f64;
        let mut mags = vec![0f64; n * rows];
        for i in 0..n {
            let xd = decoded_activations(dt, &x[i * k..(i + 1) * k]);
            for r in 0..rows {
                let off = offsets(dt, &w[r * rb..(r + 1) * rb]);
                mags[i * rows + r] = (0..k)
                    .map(|j| ((wd[r * k + j] as f64).abs() + off[j]) * (xd[j] as f64).abs())
                    .sum();
            }
        }
        for v in Variant::supported() {
            let mut out = vec![f32::NAN; n * rows];
            matmul_with(v, Activations::Quantized, &mut out, &x, n, &wv, None).unwrap();
            for (j, ((o, s), m)) in out.iter().zip(&scalar).zip(&mags).enumerate() {
                let tol = (4.0 * nb + 32.0) * EPS * m + 1e-30;
                prop_assert!((*o as f64 - *s as f64).abs() <= tol,
                    "{v} {dt:?} n={n} rows={rows} k={k} out[{j}]: {o} vs scalar {s} (tol {tol:e})");
            }
            // The default activations for these formats are the quantized ones.
            let mut default = vec![f32::NAN; n * rows];
            edgenlu_kernels::with_variant(v, || {
                edgenlu_kernels::matmul::matmul(&mut default, &x, n, &wv, None)
            })
            .unwrap()
            .unwrap();
            prop_assert_eq!(
                default.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
                out.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
