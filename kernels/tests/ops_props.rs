//! Property tests: no argument values make an op panic, and quantized matmul agrees with the
//! F32 reference within the tolerances stated in `kernels/README.md`.

mod common;

use common::{encode, view};
use edgenlu_kernels::formats::dequantize;
use edgenlu_kernels::matmul::matmul_reference;
use edgenlu_kernels::ops;
use edgenlu_kernels::{DType, WeightView};
use proptest::prelude::*;

/// Dimensions: mostly small, sometimes ones whose products overflow.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0..6usize,
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2 + 1),
        1 => Just(1usize << 32),
    ]
}

fn vec_f32(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-4.0f32..4.0, 0..max_len)
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::F32),
        Just(DType::F16),
        Just(DType::Q8_0),
        Just(DType::Q4_0),
        Just(DType::Q4_1)
    ]
}

/// Backing bytes for a `rows × cols` weight when that is small enough to allocate, else
/// empty (the view constructor then refuses it unless the weight really is empty).
fn weight_bytes(dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    match dtype.row_bytes(cols).and_then(|r| r.checked_mul(rows)) {
        Some(len) if len <= 1 << 16 => vec![0x3c; len],
        _ => Vec::new(),
    }
}

/// `rows × k` random weights in [-4, 4] and `n × k` random activations, `k` a multiple of 32
/// (quantized rows are whole blocks).
fn matmul_case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>)> {
    (0..4usize, 0..5usize, 0..4usize).prop_flat_map(|(n, rows, blocks)| {
        let k = blocks * 32;
        (
            Just(n),
            Just(rows),
            Just(k),
            prop::collection::vec(-4.0f32..4.0, rows * k),
            prop::collection::vec(-4.0f32..4.0, n * k),
        )
    })
}

/// `x · wᵀ` in f64, and `Σ |x_i w_i|` per output (the scale of the rounding error).
fn matmul_f64(x: &[f32], n: usize, w: &[f32], rows: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; n * rows];
    let mut mag = vec![0.0; n * rows];
    for i in 0..n {
        for r in 0..rows {
            for j in 0..k {
                let p = x[i * k + j] as f64 * w[r * k + j] as f64;
                out[i * rows + r] += p;
                mag[i * rows + r] += p.abs();
            }
        }
    }
    (out, mag)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn weight_ops_never_panic(
        dt in dtype(), rows in dim(), cols in prop_oneof![dim(), Just(32usize), Just(64usize)],
        n in dim(), x in vec_f32(200), out_len in 0..200usize, bias in prop::option::of(vec_f32(8)),
        ids in prop::collection::vec(any::<i32>().prop_map(|i| i % 8), 0..6), k in dim(),
    ) {
        let bytes = weight_bytes(dt, rows, cols);
        if let Ok(w) = WeightView::new(dt, rows, cols, &bytes) {
            let mut out = vec![0.0; out_len];
            let _ = ops::matmul(&mut out, &x, n, &w, bias.as_deref());
            let _ = ops::embed(&mut out, &w, &ids);
            let _ = ops::nn_search(&w, &x, k);
        }
    }

    #[test]
    fn row_ops_never_panic(
        x in vec_f32(64), b in vec_f32(8), cols in dim(), rows in dim(), count in dim(),
        out_len in 0..64usize, eps in prop_oneof![Just(1e-12f32), Just(-1.0), Just(f32::NAN)],
    ) {
        let mut out = vec![0.0; out_len];
        let _ = ops::add(&mut out, &x, &b);
        let _ = ops::layer_norm(&mut out, &x, cols, &b, &b, eps);
        let _ = ops::mean_pool(&mut out, &x, rows, cols, count);
        let mut y = x.clone();
        let _ = ops::gelu(&mut y);
        let _ = ops::softmax(&mut y, cols);
        let _ = ops::l2_normalize(&mut y, cols);
        let _ = ops::argmax(&y);
    }

    #[test]
    fn attention_never_panics(
        q in vec_f32(48), k in vec_f32(48), v in vec_f32(48), out_len in 0..48usize,
        n in dim(), m in dim(), heads in dim(), kv_heads in dim(), head_dim in dim(),
        causal in any::<bool>(),
    ) {
        let mut out = vec![0.0; out_len];
        let _ = ops::attention(&mut out, &q, &k, &v, n, m, heads, kv_heads, head_dim, causal);
    }

    #[test]
    fn attention_with_consistent_shapes_is_a_convex_mix_of_values(
        (n, m, heads, kv_heads, d) in (1..4usize, 1..5usize, 1..3usize, 1..4usize)
            .prop_flat_map(|(n, extra, groups, kv)| (Just(n), Just(n + extra - 1), Just(kv * groups), Just(kv), 1..5usize)),
        causal in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = seed;
        let mut next = || { rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((rng >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0 };
        let q: Vec<f32> = (0..n * heads * d).map(|_| next()).collect();
        let k: Vec<f32> = (0..m * kv_heads * d).map(|_| next()).collect();
        let v: Vec<f32> = (0..m * kv_heads * d).map(|_| next()).collect();
        let mut out = vec![0.0; q.len()];
        ops::attention(&mut out, &q, &k, &v, n, m, heads, kv_heads, d, causal).unwrap();
        // Each output element is a weighted mean of the same element of the visible values.
        let group = heads / kv_heads;
        for i in 0..n {
            let visible = if causal { m - n + i + 1 } else { m };
            for h in 0..heads {
                for e in 0..d {
                    let col = (h / group) * d + e;
                    let vals = (0..visible).map(|j| v[j * kv_heads * d + col]);
                    let lo = vals.clone().fold(f32::INFINITY, f32::min);
                    let hi = vals.fold(f32::NEG_INFINITY, f32::max);
                    let o = out[i * heads * d + h * d + e];
                    prop_assert!(o >= lo - 1e-5 && o <= hi + 1e-5, "{o} outside [{lo}, {hi}]");
                }
            }
        }
    }

    #[test]
    fn softmax_and_l2_normalize_rows_are_normalized(x in prop::collection::vec(-50.0f32..50.0, 1..40), cols in 1..8usize) {
        let len = x.len() / cols * cols;
        let mut s = x[..len].to_vec();
        ops::softmax(&mut s, cols).unwrap();
        for row in s.chunks(cols) {
            prop_assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let mut l = x[..len].to_vec();
        ops::l2_normalize(&mut l, cols).unwrap();
        for row in l.chunks(cols) {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            prop_assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
    }

    /// The F32 reference is within k·ε of Σ|x·w| of the exact (f64) product.
    #[test]
    fn matmul_f32_is_close_to_exact((n, rows, k, w, x) in matmul_case()) {
        let bytes = encode(DType::F32, &w);
        let mut out = vec![0.0; n * rows];
        ops::matmul(&mut out, &x, n, &view(DType::F32, rows, k, &bytes), None).unwrap();
        let (exact, mag) = matmul_f64(&x, n, &w, rows, k);
        for ((o, e), m) in out.iter().zip(&exact).zip(&mag) {
            let tol = (k as f64 + 1.0) * f32::EPSILON as f64 * m;
            prop_assert!((*o as f64 - e).abs() <= tol, "{o} vs {e} (tol {tol})");
        }
    }

    /// In the scalar reference, F16 and Q8_0 weights give exactly the F32 matmul of their
    /// dequantized weights, and stay within their format's rounding of the F32 matmul of the
    /// original weights. (SIMD variants are compared with this reference in `variants.rs`.)
    #[test]
    fn quantized_matmul_matches_dequantized_f32((n, rows, k, w, x) in matmul_case(), bias in prop::collection::vec(-1.0f32..1.0, 4)) {
        let bias: Vec<f32> = (0..rows).map(|r| bias[r % 4]).collect();
        let f32_bytes = encode(DType::F32, &w);
        let mut reference = vec![0.0; n * rows];
        matmul_reference(&mut reference, &x, n, &view(DType::F32, rows, k, &f32_bytes), Some(&bias)).unwrap();
        for dt in [DType::F16, DType::Q8_0] {
            let bytes = encode(dt, &w);
            let mut out = vec![0.0; n * rows];
            matmul_reference(&mut out, &x, n, &view(dt, rows, k, &bytes), Some(&bias)).unwrap();

            let mut deq = vec![0.0; w.len()];
            dequantize(dt, &bytes, &mut deq).unwrap();
            let deq_bytes = encode(DType::F32, &deq);
            let mut via_f32 = vec![0.0; n * rows];
            matmul_reference(&mut via_f32, &x, n, &view(DType::F32, rows, k, &deq_bytes), Some(&bias)).unwrap();
            prop_assert_eq!(&out, &via_f32, "{:?} vs F32 of its dequantized weights", dt);

            // Per-weight error: f16 rounds to 11 significant bits; q8_0 is off by at most half
            // a step (amax/254) plus the f16 rounding of the scale (127 · d · 2^-11).
            for i in 0..n {
                for r in 0..rows {
                    let xi = &x[i * k..(i + 1) * k];
                    let wr = &w[r * k..(r + 1) * k];
                    let mut tol = (k as f32 + 1.0) * f32::EPSILON * xi.iter().zip(wr).map(|(a, b)| (a * b).abs()).sum::<f32>();
                    for (xb, wb) in xi.chunks(32).zip(wr.chunks(32)) {
                        let per_weight: Vec<f32> = match dt {
                            DType::F16 => wb.iter().map(|v| v.abs() * 2f32.powi(-11) + 2f32.powi(-25)).collect(),
                            _ => {
                                let amax = wb.iter().fold(0f32, |m, v| m.max(v.abs()));
                                vec![amax / 254.0 + amax * 2f32.powi(-11); 32]
                            }
                        };
                        tol += xb.iter().zip(&per_weight).map(|(a, e)| a.abs() * e).sum::<f32>();
                    }
                    let (o, e) = (out[i * rows + r], reference[i * rows + r]);
                    prop_assert!((o - e).abs() <= tol * 1.01 + 1e-6, "{:?}: {} vs {} (tol {})", dt, o, e, tol);
                }
            }
        }
    }

    /// nn_search returns the brute-force ranking: sorted descending, ties by row, k capped.
    #[test]
    fn nn_search_is_sorted_top_k(rows in 0..12usize, k in 0..16usize, seed in any::<u64>(), dt in prop_oneof![Just(DType::F32), Just(DType::F16), Just(DType::Q8_0)]) {
        let cols = 32;
        let mut rng = seed;
        // Few distinct values so ties are common.
        let mut next = || { rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((rng >> 61) as f32) - 3.0 };
        let w: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
        let q: Vec<f32> = (0..cols).map(|_| next()).collect();
        let bytes = encode(dt, &w);
        let hits = ops::nn_search(&view(dt, rows, cols, &bytes), &q, k).unwrap();
        prop_assert_eq!(hits.len(), k.min(rows));
        for pair in hits.windows(2) {
            prop_assert!(pair[0].score > pair[1].score || (pair[0].score == pair[1].score && pair[0].row < pair[1].row), "{:?}", pair);
        }
        for h in &hits {
            prop_assert!((-1.0001..=1.0001).contains(&h.score));
        }
        // No row left out scores better than the last one kept.
        if let Some(last) = hits.last() {
            let all = ops::nn_search(&view(dt, rows, cols, &bytes), &q, rows).unwrap();
            for h in &all[hits.len()..] {
                prop_assert!(h.score < last.score || (h.score == last.score && h.row > last.row));
            }
        }
    }
}

/// An index of `rows` random rows of `cols` values (whole blocks for Q8_0), a query, and k.
fn search_case() -> impl Strategy<Value = (DType, usize, usize, Vec<f32>, Vec<f32>, usize)> {
    (
        prop_oneof![Just(DType::F32), Just(DType::F16), Just(DType::Q8_0)],
        1..300usize,
        1..3usize,
        1..40usize,
    )
        .prop_flat_map(|(dtype, rows, blocks, ragged)| {
            // Float formats take any width (ragged SIMD tails); Q8_0 whole blocks.
            let cols = if dtype == DType::Q8_0 {
                blocks * 32
            } else {
                ragged
            };
            (
                Just(dtype),
                Just(rows),
                Just(cols),
                prop::collection::vec(-1.0f32..1.0, rows * cols),
                prop::collection::vec(-1.0f32..1.0, cols),
                0..rows + 3,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The cached-norm search (SIMD dot products) finds what the scalar reference finds: the
    /// same top-k scores in order, each hit's score within the format's tolerance of the
    /// reference's score for that row (f32/f16: 1e-5; q8_0, whose activations are quantized
    /// to 8 bits: 2e-2).
    #[test]
    fn nn_search_with_norms_matches_the_reference(
        (dtype, rows, cols, data, query, k) in search_case()
    ) {
        let bytes = encode(dtype, &data);
        let idx = view(dtype, rows, cols, &bytes);
        let tol = if dtype == DType::Q8_0 { 2e-2 } else { 1e-5 };
        let norms = ops::row_norms(&idx).unwrap();
        let fast = ops::nn_search_with_norms(&idx, &norms, &query, k).unwrap();
        let all = ops::nn_search(&idx, &query, rows).unwrap();
        let reference = &all[..k.min(rows)];
        prop_assert_eq!(fast.len(), reference.len());
        let by_row: std::collections::HashMap<u32, f32> =
            all.iter().map(|h| (h.row, h.score)).collect();
        for (f, r) in fast.iter().zip(reference) {
            prop_assert!((f.score - r.score).abs() <= tol, "{:?} vs {:?}", f, r);
            prop_assert!((f.score - by_row[&f.row]).abs() <= tol, "{:?}", f);
        }
        prop_assert!(fast.windows(2).all(|w| w[0].score >= w[1].score));
    }
}
