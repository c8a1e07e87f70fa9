//! Hand-computed cases for every scalar reference op, plus the error cases each must refuse.

mod common;

use common::{assert_close, encode, view};
use edgenlu_kernels::ops::{self, Hit};
use edgenlu_kernels::{DType, KernelError, WeightView};

fn is_shape(r: Result<impl std::fmt::Debug, KernelError>) -> bool {
    matches!(r, Err(KernelError::ShapeMismatch(_)))
}
fn is_invalid(r: Result<impl std::fmt::Debug, KernelError>) -> bool {
    matches!(r, Err(KernelError::InvalidArgument(_)))
}

// ---- dot -------------------------------------------------------------------------------

#[test]
fn dot_sums_products_including_the_tail() {
    let a: Vec<f32> = (1..=11).map(|i| i as f32).collect();
    let b = vec![1.0; 11];
    assert_eq!(ops::dot(&a, &b), 66.0);
    assert_eq!(ops::dot(&[], &[]), 0.0);
}

// ---- matmul ----------------------------------------------------------------------------

#[test]
fn matmul_f32_with_bias() {
    // x [2, 3], w [2, 3]: out[i, r] = x[i] · w[r] + bias[r].
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let w = encode(DType::F32, &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]);
    let w = view(DType::F32, 2, 3, &w);
    let mut out = [0.0; 4];
    ops::matmul(&mut out, &x, 2, &w, Some(&[10.0, 20.0])).unwrap();
    assert_eq!(
        out,
        [1.0 - 3.0 + 10.0, 3.0 + 20.0, 4.0 - 6.0 + 10.0, 7.5 + 20.0]
    );
    ops::matmul(&mut out, &x, 2, &w, None).unwrap();
    assert_eq!(out, [-2.0, 3.0, -2.0, 7.5]);
}

#[test]
fn matmul_f16_and_q8_0_on_exactly_representable_weights() {
    // Integers with a block max of 127 give q8_0 a scale of exactly 1, so f16 and q8_0 both
    // store these weights exactly and all three formats must agree bit for bit.
    let k = 32;
    let mut w: Vec<f32> = (0..2 * k).map(|i| i as f32 - 31.0).collect();
    w[0] = -127.0;
    w[k] = 127.0;
    let x: Vec<f32> = (0..k).map(|i| (i % 3) as f32 - 1.0).collect();
    let expect: Vec<f32> = w
        .chunks(k)
        .map(|r| r.iter().zip(&x).map(|(a, b)| a * b).sum())
        .collect();
    for dtype in [DType::F32, DType::F16, DType::Q8_0] {
        let bytes = encode(dtype, &w);
        let mut out = [0.0; 2];
        ops::matmul(&mut out, &x, 1, &view(dtype, 2, k, &bytes), None).unwrap();
        assert_eq!(out.as_slice(), expect.as_slice(), "{dtype:?}");
    }
}

#[test]
fn matmul_refuses_bad_shapes_and_formats() {
    let w = encode(DType::F32, &[0.0; 6]);
    let w = view(DType::F32, 2, 3, &w);
    let mut out = [0.0; 4];
    assert!(is_shape(ops::matmul(&mut out, &[0.0; 5], 2, &w, None)));
    assert!(is_shape(ops::matmul(&mut out[..3], &[0.0; 6], 2, &w, None)));
    assert!(is_shape(ops::matmul(
        &mut out,
        &[0.0; 6],
        2,
        &w,
        Some(&[0.0; 3])
    )));
    assert!(is_invalid(ops::matmul(
        &mut out,
        &[0.0; 6],
        usize::MAX,
        &w,
        None
    )));
    let ints = [0u8; 4];
    let ints = WeightView::new(DType::I32, 1, 1, &ints).unwrap();
    assert!(matches!(
        ops::matmul(&mut [0.0], &[0.0; 1], 1, &ints, None),
        Err(KernelError::Unsupported(DType::I32, _))
    ));
}

#[test]
fn matmul_with_zero_dims() {
    // k = 0: out is the bias. n = 0 with a huge (empty-row) weight must return at once.
    let w = view(DType::F32, 2, 0, &[]);
    let mut out = [9.0; 2];
    ops::matmul(&mut out, &[], 1, &w, Some(&[1.0, 2.0])).unwrap();
    assert_eq!(out, [1.0, 2.0]);
    let huge = view(DType::F32, usize::MAX, 0, &[]);
    ops::matmul(&mut [], &[], 0, &huge, None).unwrap();
    assert!(is_shape(ops::matmul(&mut [], &[], 1, &huge, None)));
}

// ---- embed -----------------------------------------------------------------------------

#[test]
fn embed_gathers_rows() {
    let t = encode(DType::F16, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let t = view(DType::F16, 3, 2, &t);
    let mut out = [0.0; 6];
    ops::embed(&mut out, &t, &[2, 0, 2]).unwrap();
    assert_eq!(out, [4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
}

#[test]
fn embed_refuses_out_of_range_ids_without_writing() {
    let t = encode(DType::F32, &[1.0, 2.0]);
    let t = view(DType::F32, 2, 1, &t);
    let mut out = [7.0; 2];
    assert!(is_invalid(ops::embed(&mut out, &t, &[0, 2])));
    assert!(is_invalid(ops::embed(&mut out, &t, &[0, -1])));
    assert!(is_invalid(ops::embed(&mut out, &t, &[i32::MIN, 0])));
    assert_eq!(out, [7.0; 2]);
    assert!(is_shape(ops::embed(&mut out, &t, &[0])));
}

// ---- add -------------------------------------------------------------------------------

#[test]
fn add_broadcasts_b() {
    let mut out = [0.0; 6];
    ops::add(
        &mut out,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        &[10.0, 20.0, 30.0],
    )
    .unwrap();
    assert_eq!(out, [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    ops::add(&mut out, &[1.0; 6], &[1.0; 6]).unwrap();
    assert_eq!(out, [2.0; 6]);
    assert!(is_invalid(ops::add(&mut out, &[1.0; 6], &[])));
    assert!(is_shape(ops::add(&mut out, &[1.0; 6], &[1.0; 4])));
    assert!(is_shape(ops::add(&mut out[..5], &[1.0; 6], &[1.0])));
    ops::add(&mut [], &[], &[1.0]).unwrap();
}

// ---- layer_norm ------------------------------------------------------------------------

#[test]
fn layer_norm_normalizes_rows() {
    // Row [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
    let x = [1.0, 2.0, 3.0, 4.0];
    let mut out = [0.0; 4];
    ops::layer_norm(
        &mut out,
        &x,
        4,
        &[1.0, 1.0, 2.0, 1.0],
        &[0.0, 0.0, 0.0, 1.0],
        0.0,
    )
    .unwrap();
    let s = 1.25f32.sqrt();
    assert_close(
        &out,
        &[-1.5 / s, -0.5 / s, 2.0 * 0.5 / s, 1.5 / s + 1.0],
        1e-6,
    );
    // A constant row: 0 / sqrt(eps) leaves exactly beta (with eps = 0 it would be NaN).
    let mut out = [0.0; 8];
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0];
    ops::layer_norm(&mut out, &x, 4, &[1.0; 4], &[0.5; 4], 1e-12).unwrap();
    assert_eq!(&out[4..], &[0.5; 4]);
}

#[test]
fn layer_norm_refuses_bad_arguments() {
    let mut out = [0.0; 4];
    let x = [0.0; 4];
    assert!(is_invalid(ops::layer_norm(&mut out, &x, 0, &[], &[], 0.0)));
    assert!(is_shape(ops::layer_norm(
        &mut out, &x, 3, &[0.0; 3], &[0.0; 3], 0.0
    )));
    assert!(is_shape(ops::layer_norm(
        &mut out, &x, 2, &[0.0; 3], &[0.0; 2], 0.0
    )));
    assert!(is_shape(ops::layer_norm(
        &mut out, &x, 2, &[0.0; 2], &[0.0; 1], 0.0
    )));
    assert!(is_invalid(ops::layer_norm(
        &mut out, &x, 2, &[0.0; 2], &[0.0; 2], -1.0
    )));
    assert!(is_invalid(ops::layer_norm(
        &mut out,
        &x,
        2,
        &[0.0; 2],
        &[0.0; 2],
        f32::NAN
    )));
}

// ---- gelu ------------------------------------------------------------------------------

#[test]
fn gelu_matches_the_erf_form() {
    // 0.5·x·(1 + erf(x/√2)) computed in float64 with Python's math.erf.
    let mut x = [0.0, 1.0, -1.0, 3.0, -3.0, 10.0, -10.0];
    ops::gelu(&mut x).unwrap();
    let expect = [
        0.0,
        0.841_344_8,
        -0.158_655_25,
        2.995_950_5,
        -0.004_049_5,
        10.0,
        0.0,
    ];
    assert_close(&x, &expect, 1e-6);
}

// ---- softmax ---------------------------------------------------------------------------

#[test]
fn softmax_rows_sum_to_one_and_survive_large_logits() {
    let mut x = [0.0, 0.0, 1000.0, 1000.0, 1.0, 2.0];
    ops::softmax(&mut x, 2).unwrap();
    let e = std::f32::consts::E;
    assert_close(
        &x,
        &[0.5, 0.5, 0.5, 0.5, 1.0 / (1.0 + e), e / (1.0 + e)],
        1e-6,
    );
    let mut masked = [f32::NEG_INFINITY; 3];
    ops::softmax(&mut masked, 3).unwrap();
    assert_eq!(masked, [0.0; 3]);
    assert!(is_invalid(ops::softmax(&mut [1.0], 0)));
    assert!(is_shape(ops::softmax(&mut [1.0; 3], 2)));
}

// ---- attention -------------------------------------------------------------------------

#[test]
fn attention_one_head_by_hand() {
    // head_dim 1, scale 1: scores q·k; keys 0 and ln 3, so weights 1/4 and 3/4.
    let ln3 = 3f32.ln();
    let (q, k, v) = ([1.0], [0.0, ln3], [4.0, 8.0]);
    let mut out = [0.0];
    ops::attention(&mut out, &q, &k, &v, 1, 2, 1, 1, 1, false).unwrap();
    assert_close(&out, &[0.25 * 4.0 + 0.75 * 8.0], 1e-5);
}

#[test]
fn attention_scales_by_root_head_dim() {
    // head_dim 4: q·k = 4 ln 3 · ... scaled by 1/2 gives ln 3.
    let ln3 = 3f32.ln();
    let q = [1.0; 4];
    let k = [
        0.0,
        0.0,
        0.0,
        0.0,
        ln3 / 2.0,
        ln3 / 2.0,
        ln3 / 2.0,
        ln3 / 2.0,
    ];
    let v = [4.0, 0.0, 0.0, 0.0, 8.0, 0.0, 0.0, 1.0];
    let mut out = [0.0; 4];
    ops::attention(&mut out, &q, &k, &v, 1, 2, 1, 1, 4, false).unwrap();
    assert_close(&out, &[7.0, 0.0, 0.0, 0.75], 1e-5);
}

#[test]
fn attention_causal_aligns_queries_to_the_end() {
    // 2 queries over 3 keys, all scores equal: query 0 (position 1) averages v0, v1;
    // query 1 (position 2) averages all three.
    let q = [0.0; 2];
    let k = [0.0; 3];
    let v = [3.0, 6.0, 9.0];
    let mut out = [0.0; 2];
    ops::attention(&mut out, &q, &k, &v, 2, 3, 1, 1, 1, true).unwrap();
    assert_close(&out, &[4.5, 6.0], 1e-6);
    ops::attention(&mut out, &q, &k, &v, 2, 3, 1, 1, 1, false).unwrap();
    assert_close(&out, &[6.0, 6.0], 1e-6);
    // More queries than keys cannot be causal.
    assert!(is_invalid(ops::attention(
        &mut [0.0; 4],
        &[0.0; 4],
        &k,
        &v,
        4,
        3,
        1,
        1,
        1,
        true
    )));
}

#[test]
fn attention_grouped_query_heads_share_kv_heads() {
    // 4 query heads, 2 kv heads, head_dim 1, one key: each head copies its kv head's value.
    let q = [1.0, 2.0, 3.0, 4.0];
    let k = [0.5, -0.5];
    let v = [10.0, 20.0];
    let mut out = [0.0; 4];
    ops::attention(&mut out, &q, &k, &v, 1, 1, 4, 2, 1, false).unwrap();
    assert_eq!(out, [10.0, 10.0, 20.0, 20.0]);
}

#[test]
fn attention_refuses_bad_arguments() {
    let mut out = [0.0; 2];
    let x = [0.0; 2];
    assert!(is_invalid(ops::attention(
        &mut out, &x, &x, &x, 1, 1, 0, 1, 2, false
    )));
    assert!(is_invalid(ops::attention(
        &mut out, &x, &x, &x, 1, 1, 2, 0, 1, false
    )));
    assert!(is_invalid(ops::attention(
        &mut out, &x, &x, &x, 1, 1, 1, 1, 0, false
    )));
    assert!(is_invalid(ops::attention(
        &mut out, &x, &x, &x, 1, 1, 3, 2, 1, false
    )));
    assert!(is_shape(ops::attention(
        &mut out, &x, &x, &x, 1, 3, 2, 1, 1, false
    )));
    assert!(is_shape(ops::attention(
        &mut out[..1],
        &x,
        &x,
        &x,
        1,
        1,
        2,
        2,
        1,
        false
    )));
    assert!(is_invalid(ops::attention(
        &mut out,
        &x,
        &[],
        &[],
        1,
        0,
        2,
        2,
        1,
        false
    )));
    assert!(is_invalid(ops::attention(
        &mut out,
        &x,
        &x,
        &x,
        1,
        1,
        usize::MAX,
        1,
        2,
        false
    )));
    ops::attention(&mut [], &[], &[], &[], 0, 0, 2, 1, 3, true).unwrap();
}

// ---- mean_pool -------------------------------------------------------------------------

/// A stop check is asked while a long attention runs: it ends the call with `Interrupted`
/// (in every variant), and a check that never stops changes nothing in the result.
#[test]
fn attention_until_stops_when_asked_and_otherwise_equals_attention() {
    let (n, heads, d) = (600, 2, 4);
    let x: Vec<f32> = (0..n * heads * d)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let mut want = vec![0f32; x.len()];
    ops::attention(&mut want, &x, &x, &x, n, n, heads, heads, d, true).unwrap();
    let asked = std::cell::Cell::new(0);
    let mut got = vec![0f32; x.len()];
    let never = || {
        asked.set(asked.get() + 1);
        false
    };
    ops::attention_until(&mut got, &x, &x, &x, n, n, heads, heads, d, true, &never).unwrap();
    assert_eq!(got, want);
    assert!(asked.get() > 0, "a call of {n}² work never asked to stop");
    let stop_now = || true;
    let r = ops::attention_until(&mut got, &x, &x, &x, n, n, heads, heads, d, true, &stop_now);
    assert_eq!(r, Err(KernelError::Interrupted("attention")));
    let mut cache = ops::KvCache::new(1, n, heads * d).unwrap();
    let r = cache.attend_until(0, &mut got, &x, &x, &x, heads, heads, usize::MAX, &stop_now);
    assert_eq!(r, Err(KernelError::Interrupted("attention")));
    assert_eq!(cache.len(), 0, "an interrupted attend commits nothing");
}

#[test]
fn mean_pool_averages_the_first_rows() {
    let x = [1.0, 2.0, 3.0, 6.0, 100.0, 100.0];
    let mut out = [0.0; 2];
    ops::mean_pool(&mut out, &x, 3, 2, 2).unwrap();
    assert_eq!(out, [2.0, 4.0]);
    ops::mean_pool(&mut out, &x, 3, 2, 3).unwrap();
    assert_eq!(out, [104.0 / 3.0, 108.0 / 3.0]);
    assert!(is_invalid(ops::mean_pool(&mut out, &x, 3, 2, 0)));
    assert!(is_invalid(ops::mean_pool(&mut out, &x, 3, 2, 4)));
    assert!(is_shape(ops::mean_pool(&mut out, &x, 2, 2, 1)));
    assert!(is_shape(ops::mean_pool(&mut out[..1], &x, 3, 2, 1)));
    // Zero columns with a huge row count must not loop over the rows.
    ops::mean_pool(&mut [], &[], usize::MAX, 0, usize::MAX).unwrap();
}

// ---- l2_normalize ----------------------------------------------------------------------

#[test]
fn l2_normalize_rows_and_keeps_zero_rows() {
    let mut x = [3.0, 4.0, 0.0, 0.0, 1e-30, 0.0];
    ops::l2_normalize(&mut x, 2).unwrap();
    assert_close(&x, &[0.6, 0.8, 0.0, 0.0, 1.0, 0.0], 1e-7);
    assert!(is_invalid(ops::l2_normalize(&mut x, 0)));
    assert!(is_shape(ops::l2_normalize(&mut x, 4)));
}

// ---- nn_search -------------------------------------------------------------------------

#[test]
fn nn_search_ranks_by_cosine_with_ties_by_row() {
    // Rows: parallel (1), same direction scaled (1), orthogonal (0), zero (0), opposite (-1).
    let rows = [1.0, 0.0, 5.0, 0.0, 0.0, 2.0, 0.0, 0.0, -3.0, 0.0];
    for dtype in [DType::F32, DType::F16] {
        let bytes = encode(dtype, &rows);
        let idx = view(dtype, 5, 2, &bytes);
        let hits = ops::nn_search(&idx, &[2.0, 0.0], 10).unwrap();
        let order: Vec<u32> = hits.iter().map(|h| h.row).collect();
        assert_eq!(order, [0, 1, 2, 3, 4], "{dtype:?}");
        let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
        assert_close(&scores, &[1.0, 1.0, 0.0, 0.0, -1.0], 1e-6);
        assert_eq!(
            ops::nn_search(&idx, &[2.0, 0.0], 1).unwrap(),
            [Hit { row: 0, score: 1.0 }]
        );
        assert!(ops::nn_search(&idx, &[2.0, 0.0], 0).unwrap().is_empty());
        // A zero query scores every row 0, so row order decides.
        let zero: Vec<u32> = ops::nn_search(&idx, &[0.0, 0.0], 3)
            .unwrap()
            .iter()
            .map(|h| h.row)
            .collect();
        assert_eq!(zero, [0, 1, 2]);
    }
}

#[test]
fn nn_search_on_q8_0() {
    // Row 1 is row 0 reversed in sign; row 2 is row 0 itself.
    let base: Vec<f32> = (0..32).map(|i| (i as f32 - 15.5) / 8.0).collect();
    let rows: Vec<f32> = base
        .iter()
        .map(|v| -v)
        .chain(base.iter().map(|v| v * 0.5))
        .chain(base.iter().copied())
        .collect();
    let bytes = encode(DType::Q8_0, &rows);
    let idx = view(DType::Q8_0, 3, 32, &bytes);
    let hits = ops::nn_search(&idx, &base, 3).unwrap();
    assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), [1, 2, 0]);
    assert!(hits[0].score > 0.999 && hits[2].score < -0.999, "{hits:?}");
}

#[test]
fn nn_search_refuses_bad_arguments() {
    let bytes = encode(DType::F32, &[1.0, 2.0]);
    let idx = view(DType::F32, 1, 2, &bytes);
    assert!(is_shape(ops::nn_search(&idx, &[1.0], 1)));
    let empty = view(DType::F32, usize::MAX, 0, &[]);
    assert!(is_invalid(ops::nn_search(&empty, &[], 1)));
}

// ---- argmax ----------------------------------------------------------------------------

#[test]
fn argmax_picks_the_first_max_and_ignores_nan() {
    assert_eq!(ops::argmax(&[1.0, 3.0, 2.0, 3.0]).unwrap(), 1);
    assert_eq!(ops::argmax(&[f32::NAN, -1.0, f32::NAN, -0.5]).unwrap(), 3);
    assert_eq!(ops::argmax(&[f32::NEG_INFINITY]).unwrap(), 0);
    assert_eq!(ops::argmax(&[1.0, f32::INFINITY, f32::NAN]).unwrap(), 1);
    assert!(is_invalid(ops::argmax(&[])));
    assert!(is_invalid(ops::argmax(&[f32::NAN])));
}

// ---- decoder ops: rms_norm, silu, swiglu, geglu_tanh, mul, scale, rope, kv cache ----------------------

#[test]
fn rms_norm_scales_rows_by_their_root_mean_square() {
    // Row [3, 4]: mean square 12.5; row [0, 0] stays zero.
    let x = [3.0, 4.0, 0.0, 0.0];
    let mut out = [9.0; 4];
    ops::rms_norm(&mut out, &x, 2, &[1.0, 2.0], 0.0).unwrap();
    let r = 12.5f32.sqrt();
    assert_close(&out, &[3.0 / r, 8.0 / r, 0.0, 0.0], 1e-6);
    assert!(is_shape(ops::rms_norm(&mut out, &x, 3, &[1.0; 3], 0.0)));
    assert!(is_shape(ops::rms_norm(&mut out, &x, 2, &[1.0; 3], 0.0)));
    assert!(is_invalid(ops::rms_norm(
        &mut out,
        &x,
        2,
        &[1.0; 2],
        f32::NAN
    )));
    assert!(is_invalid(ops::rms_norm(&mut out, &x, 0, &[], 0.0)));
}

#[test]
fn silu_and_swiglu_match_the_definition() {
    let mut x = [0.0, 1.0, -2.0, 30.0, -100.0];
    ops::silu(&mut x).unwrap();
    let s = |v: f32| v / (1.0 + (-v).exp());
    assert_close(&x, &[0.0, s(1.0), s(-2.0), 30.0, 0.0], 1e-6);
    let mut gate = [1.0, -2.0];
    ops::swiglu(&mut gate, &[3.0, 0.5]).unwrap();
    assert_close(&gate, &[3.0 * s(1.0), 0.5 * s(-2.0)], 1e-6);
    assert!(is_shape(ops::swiglu(&mut gate, &[1.0])));
}

#[test]
fn geglu_tanh_matches_the_definition() {
    let g = |v: f64| {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
        (0.5 * v * (1.0 + u.tanh())) as f32
    };
    let mut gate = [0.0, 1.0, -2.0, 12.0, -30.0];
    let up = [5.0, 3.0, 0.5, -1.0, 2.0];
    ops::geglu_tanh(&mut gate, &up).unwrap();
    let want = [0.0, 3.0 * g(1.0), 0.5 * g(-2.0), -g(12.0), 2.0 * g(-30.0)];
    assert_close(&gate, &want, 1e-6);
    assert!(is_shape(ops::geglu_tanh(&mut gate, &[1.0])));
}

#[test]
fn mul_broadcasts_and_scale_refuses_non_finite() {
    let mut out = [0.0; 4];
    ops::mul(&mut out, &[1.0, 2.0, 3.0, 4.0], &[10.0, -1.0]).unwrap();
    assert_eq!(out, [10.0, -2.0, 30.0, -4.0]);
    assert!(is_shape(ops::mul(&mut out, &[1.0; 4], &[1.0; 3])));
    assert!(is_invalid(ops::mul(&mut out, &[1.0; 4], &[])));
    ops::scale(&mut out, 0.5).unwrap();
    assert_eq!(out, [5.0, -1.0, 15.0, -2.0]);
    assert!(is_invalid(ops::scale(&mut out, f32::INFINITY)));
    assert_eq!(out, [5.0, -1.0, 15.0, -2.0]);
}

#[test]
fn rope_rotates_pairs_by_position_times_frequency() {
    // One head of 4 at position 2, base 100: pair 0 turns by 2 rad, pair 1 by 2/10 rad.
    let x0 = [1.0, 0.0, 0.0, 1.0];
    let (a, b) = (2f32, 0.2f32);
    let mut x = x0;
    ops::rope(&mut x, 1, 4, 2, 100.0, ops::RopeLayout::Interleaved).unwrap();
    assert_close(&x, &[a.cos(), a.sin(), -b.sin(), b.cos()], 1e-6);
    // The halves layout pairs (0, 2) and (1, 3).
    let mut x = x0;
    ops::rope(&mut x, 1, 4, 2, 100.0, ops::RopeLayout::Halves).unwrap();
    assert_close(&x, &[a.cos(), -b.sin(), a.sin(), b.cos()], 1e-6);
    // Position 0 leaves rows alone; the second row is at position 1.
    let mut x = [1.0, 2.0, 3.0, 4.0, 1.0, 0.0, 1.0, 0.0];
    ops::rope(&mut x, 2, 2, 0, 10.0, ops::RopeLayout::Interleaved).unwrap();
    assert_close(
        &x,
        &[
            1.0,
            2.0,
            3.0,
            4.0,
            1f32.cos(),
            1f32.sin(),
            1f32.cos(),
            1f32.sin(),
        ],
        1e-6,
    );
    assert!(is_invalid(ops::rope(
        &mut x,
        1,
        3,
        0,
        10.0,
        ops::RopeLayout::Interleaved
    )));
    assert!(is_invalid(ops::rope(
        &mut x,
        2,
        2,
        0,
        1.0,
        ops::RopeLayout::Interleaved
    )));
    assert!(is_invalid(ops::rope(
        &mut x,
        2,
        2,
        usize::MAX,
        10.0,
        ops::RopeLayout::Interleaved
    )));
    assert!(is_shape(ops::rope(
        &mut x,
        3,
        2,
        0,
        10.0,
        ops::RopeLayout::Interleaved
    )));
}

#[test]
fn sliding_window_attention_sees_only_the_window() {
    // 4 query heads over 2 kv heads of 16 (enough queries that the vectorized variants
    // transpose the keys), 9 positions in two chunks, a window of 3: each position's output
    // equals plain attention of its query over its own and the two keys before it.
    let (heads, kv_heads, d, window) = (4, 2, 16, 3);
    let (q_cols, kv_cols) = (heads * d, kv_heads * d);
    let seq = |n: usize, seed: f32| -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.731).sin()).collect()
    };
    let (q, k, v) = (
        seq(9 * q_cols, 0.0),
        seq(9 * kv_cols, 1.0),
        seq(9 * kv_cols, 2.0),
    );
    let mut cache = ops::KvCache::new(1, 9, kv_cols).unwrap();
    let mut got = vec![0.0; 9 * q_cols];
    for (first, n) in [(0, 6), (6, 3)] {
        let rows = first..first + n;
        cache
            .attend_until(
                0,
                &mut got[rows.start * q_cols..rows.end * q_cols],
                &q[rows.start * q_cols..rows.end * q_cols],
                &k[rows.start * kv_cols..rows.end * kv_cols],
                &v[rows.start * kv_cols..rows.end * kv_cols],
                heads,
                kv_heads,
                window,
                &|| false,
            )
            .unwrap();
        cache.advance(n).unwrap();
    }
    for p in 0..9usize {
        let keys = p.saturating_sub(window - 1)..p + 1;
        let mut want = vec![0.0; q_cols];
        ops::attention(
            &mut want,
            &q[p * q_cols..(p + 1) * q_cols],
            &k[keys.start * kv_cols..keys.end * kv_cols],
            &v[keys.start * kv_cols..keys.end * kv_cols],
            1,
            keys.len(),
            heads,
            kv_heads,
            d,
            false,
        )
        .unwrap();
        assert_close(&got[p * q_cols..(p + 1) * q_cols], &want, 1e-6);
    }
    let mut empty = ops::KvCache::new(1, 9, kv_cols).unwrap();
    let zero_window = empty.attend_until(
        0,
        &mut vec![0.0; q_cols],
        &q[..q_cols],
        &k[..kv_cols],
        &v[..kv_cols],
        heads,
        kv_heads,
        0,
        &|| false,
    );
    assert!(is_invalid(zero_window));
}

#[test]
fn kv_cache_attention_equals_attention_over_the_whole_sequence() {
    // Two layers, 2 query heads over 1 kv head of 2: feeding 3 positions then 2 must give the
    // same outputs as causal attention over all 5 at once.
    let (heads, kv_heads, d) = (2, 1, 2);
    let seq = |n: usize, seed: f32| -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.731).sin()).collect()
    };
    let (q, k, v) = (seq(5 * 4, 0.0), seq(5 * 2, 1.0), seq(5 * 2, 2.0));
    let mut whole = vec![0.0; 5 * 4];
    ops::attention(&mut whole, &q, &k, &v, 5, 5, heads, kv_heads, d, true).unwrap();

    let mut cache = ops::KvCache::new(2, 5, 2).unwrap();
    let mut got = vec![0.0; 5 * 4];
    for (first, n) in [(0, 3), (3, 2)] {
        for layer in 0..2 {
            let out = &mut got[first * 4..(first + n) * 4];
            let (kk, vv) = (
                &k[first * 2..(first + n) * 2],
                &v[first * 2..(first + n) * 2],
            );
            cache
                .attend(
                    layer,
                    out,
                    &q[first * 4..(first + n) * 4],
                    kk,
                    vv,
                    heads,
                    kv_heads,
                )
                .unwrap();
        }
        cache.advance(n).unwrap();
    }
    assert_close(&got, &whole, 1e-6);
    assert_eq!(cache.len(), 5);
    // Full: one more position is refused, and so is committing positions no layer saw.
    assert!(is_invalid(cache.attend(
        0,
        &mut [0.0; 4],
        &[0.0; 4],
        &[0.0; 2],
        &[0.0; 2],
        2,
        1
    )));
    assert!(is_invalid(cache.advance(1)));
    let mut fresh = ops::KvCache::new(2, 5, 2).unwrap();
    fresh
        .attend(0, &mut [0.0; 4], &[0.0; 4], &[0.0; 2], &[0.0; 2], 2, 1)
        .unwrap();
    assert!(
        is_invalid(fresh.advance(1)),
        "layer 1 has not seen the position"
    );
    assert!(is_invalid(fresh.attend(
        2,
        &mut [0.0; 4],
        &[0.0; 4],
        &[0.0; 2],
        &[0.0; 2],
        2,
        1
    )));
    assert!(is_invalid(ops::KvCache::new(usize::MAX, 2, 2)));
}
