//! Differential tests at the shapes the models run: every kernel form the decoder (SmolLM2:
//! 576 → 576 / 192 / 1536 and back, q4_1 and q8_0) and the encoder (MiniLM: 384 → 384 / 1536
//! and back, q8_0) reach — one-row, four-weight-row, four-activation-row, two-row remainder
//! and tile forms, the thread split of large matrices, activations quantized per block and
//! per row — at the prompt lengths they see, in every variant this CPU runs, against the
//! scalar reference. Attention over many positions, as a prompt and as a cache, likewise.
//!
//! Inputs carry a few outlier channels (20x the typical magnitude), as transformer
//! activations do: a block holding one keeps few steps for its other values, which is where
//! a kernel that mishandles a scale or a saturation would show.

mod common;

use common::{encode, view};
use edgenlu_kernels::dispatch::{set_max_threads, with_variant};
use edgenlu_kernels::formats::{dequantize, QK};
use edgenlu_kernels::matmul::{matmul_reference, matmul_with, Activations};
use edgenlu_kernels::ops::{self, KvCache};
use edgenlu_kernels::{DType, Variant};

const EPS: f64 = f32::EPSILON as f64;

/// Activation rows of the prompt lengths the models see: a decode step, short utterances and
/// remainders of four, and prompts.
const ALL_BATCHES: &[usize] = &[1, 2, 3, 5, 8, 13, 16, 33, 64];

/// (rows, k) of the matrices of SmolLM2 and MiniLM, with the batches each is tried at: every
/// batch on one square matrix per model (all kernel forms and remainders), a sample on the
/// others (their `k`, their row tails, the thread split from n = 8), so the test stays short
/// under qemu on the ARM check.
const SHAPES: [((usize, usize), &[usize]); 6] = [
    ((576, 576), ALL_BATCHES),
    ((192, 576), &[1, 8]),
    ((1536, 576), &[1, 16]),
    ((576, 1536), &[1, 5]),
    ((384, 384), ALL_BATCHES),
    ((1536, 384), &[2, 13]),
];

/// The weight formats and activation modes the models use, and the float ones.
const MODES: [(DType, Activations); 7] = [
    (DType::Q4_1, Activations::Quantized),
    (DType::Q4_0, Activations::Quantized),
    (DType::Q8_0, Activations::Quantized),
    (DType::Q8_0, Activations::Int16),
    (DType::Q8_0, Activations::F32),
    (DType::F16, Activations::F32),
    (DType::F32, Activations::F32),
];

/// Deterministic values in [−scale, scale), every 37th column 20x larger.
fn values(len: usize, cols: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            let outlier = if (i % cols) % 37 == 5 { 20.0 } else { 1.0 };
            u * scale * outlier
        })
        .collect()
}

fn run(
    v: Variant,
    acts: Activations,
    dt: DType,
    w: &[u8],
    shape: (usize, usize),
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let (rows, k) = shape;
    let mut out = vec![f32::NAN; n * rows];
    matmul_with(v, acts, &mut out, x, n, &view(dt, rows, k, w), None).unwrap();
    out
}

/// Σ|x·ŵ| per output (ŵ the dequantized weights): the scale every tolerance is relative to.
fn magnitudes(dt: DType, w: &[u8], (rows, k): (usize, usize), x: &[f32], n: usize) -> Vec<f64> {
    let mut wd = vec![0f32; rows * k];
    dequantize(dt, w, &mut wd).unwrap();
    let mut m = vec![0f64; n * rows];
    for i in 0..n {
        for r in 0..rows {
            m[i * rows + r] = x[i * k..(i + 1) * k]
                .iter()
                .zip(&wd[r * k..(r + 1) * k])
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
        }
    }
    m
}

/// The variants compared, and a line saying which ran (a machine without AVX-512 cannot
/// test those kernels, and must say so rather than pass silently).
fn variants(test: &str) -> Vec<Variant> {
    let ran = Variant::supported();
    let missing: Vec<&str> = Variant::ALL
        .iter()
        .filter(|v| !ran.contains(v))
        .map(|v| v.name())
        .collect();
    eprintln!(
        "{test}: variants run: {}; not on this CPU: {}",
        ran.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
        missing.join(", ")
    );
    ran
}

/// Every matmul form at model shapes: each variant within (2·nb + 16)·ε·Σ|x·ŵ| of the scalar
/// path in the same activation mode (integer block products are exact; only the f32 scaling
/// and summation order differ), f32 activations within 2·(k + 1)·ε·Σ|x·ŵ| of the
/// dequantize-then-dot reference; one and two threads.
#[test]
fn matmul_forms_at_model_shapes_match_the_scalar_path() {
    let vs = variants("matmul at model shapes");
    for (si, &(shape, batches)) in SHAPES.iter().enumerate() {
        let (rows, k) = shape;
        let wf = values(rows * k, k, 0.05, si as u64 + 1);
        for (dt, acts) in MODES {
            let w = encode(dt, &wf);
            for &n in batches {
                let x = values(n * k, k, 1.5, (si * 100 + n) as u64);
                let mag = magnitudes(dt, &w, shape, &x, n);
                let (want, tol_of): (Vec<f32>, Box<dyn Fn(f64) -> f64>) =
                    if acts == Activations::F32 {
                        let mut r = vec![0f32; n * rows];
                        matmul_reference(&mut r, &x, n, &view(dt, rows, k, &w), None).unwrap();
                        (r, Box::new(move |m| 2.0 * (k as f64 + 1.0) * EPS * m))
                    } else {
                        let nb = (k / QK) as f64;
                        // Σ|x·ŵ| bounds the quantized magnitudes up to the activations' rounding.
                        (
                            run(Variant::Scalar, acts, dt, &w, shape, &x, n),
                            Box::new(move |m| (2.0 * nb + 16.0) * EPS * m * 1.1),
                        )
                    };
                for &v in &vs {
                    for threads in [1, 2] {
                        set_max_threads(threads);
                        let got = run(v, acts, dt, &w, shape, &x, n);
                        set_max_threads(0);
                        for (j, ((g, r), m)) in got.iter().zip(&want).zip(&mag).enumerate() {
                            let tol = tol_of(*m) + 1e-30;
                            assert!(
                                (*g as f64 - *r as f64).abs() <= tol,
                                "{v} {dt:?} {acts:?} {rows}x{k} n={n} threads={threads} out[{j}]: {g} vs {r} (tol {tol:e})"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Attention as the models run it, over many positions: SmolLM2's 9 query heads on 3 kv heads
/// of 64, MiniLM's 12 heads of 32; a prompt (causal, every query at once), a decode step
/// (one query), an encoder (not causal). Within 1e-5 · max|v| of the scalar reference (only
/// the softmax's exp differs).
#[test]
fn attention_over_many_positions_matches_the_reference() {
    let vs = variants("attention over many positions");
    for (heads, kv_heads, head_dim) in [(9, 3, 64), (12, 12, 32)] {
        for (n, m, causal) in [
            (64, 64, true),
            (1, 300, true),
            (7, 200, true),
            (128, 128, false),
            (16, 16, false),
        ] {
            let q = values(n * heads * head_dim, head_dim, 3.0, (n * m) as u64);
            let k = values(m * kv_heads * head_dim, head_dim, 3.0, (n + m) as u64);
            let val = values(m * kv_heads * head_dim, head_dim, 2.0, m as u64);
            let max_v = val.iter().fold(0f32, |a, b| a.max(b.abs()));
            let attend = |v: Variant| {
                let mut out = vec![f32::NAN; q.len()];
                with_variant(v, || {
                    ops::attention(
                        &mut out, &q, &k, &val, n, m, heads, kv_heads, head_dim, causal,
                    )
                })
                .unwrap()
                .unwrap();
                out
            };
            let want = attend(Variant::Scalar);
            for &v in &vs {
                let got = attend(v);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * max_v,
                        "{v} heads {heads}/{kv_heads}x{head_dim} n={n} m={m} causal={causal} out[{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// A KV cache filled by a prompt in chunks and then one token at a time gives, in every
/// variant, what attention over the whole sequence at once gives for the same queries.
#[test]
fn kv_cache_in_chunks_equals_attention_at_once() {
    let vs = variants("kv cache in chunks");
    let (heads, kv_heads, head_dim, m) = (9, 3, 64, 150);
    let (qc, kc) = (heads * head_dim, kv_heads * head_dim);
    let q = values(m * qc, head_dim, 3.0, 11);
    let k = values(m * kc, head_dim, 3.0, 12);
    let val = values(m * kc, head_dim, 2.0, 13);
    for &v in &vs {
        let mut whole = vec![0f32; m * qc];
        with_variant(v, || {
            ops::attention(
                &mut whole, &q, &k, &val, m, m, heads, kv_heads, head_dim, true,
            )
        })
        .unwrap()
        .unwrap();
        let mut cache = KvCache::new(1, m, kc).unwrap();
        let mut pos = 0;
        for chunk in [128, 1, 1, 20] {
            let mut out = vec![0f32; chunk * qc];
            with_variant(v, || {
                cache.attend(
                    0,
                    &mut out,
                    &q[pos * qc..(pos + chunk) * qc],
                    &k[pos * kc..(pos + chunk) * kc],
                    &val[pos * kc..(pos + chunk) * kc],
                    heads,
                    kv_heads,
                )
            })
            .unwrap()
            .unwrap();
            cache.advance(chunk).unwrap();
            for (i, (g, w)) in out.iter().zip(&whole[pos * qc..]).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6,
                    "{v} positions {pos}+{chunk} out[{i}]: {g} vs {w}"
                );
            }
            pos += chunk;
        }
    }
}
