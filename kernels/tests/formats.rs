//! Quantize/dequantize round trips within ggml's own bounds (its `test-quantize-fns`), block
//! layouts byte for byte, and the element-wise error of each reference quantizer.

mod common;

use common::encode;
use edgenlu_kernels::formats::{
    dequantize, quantize_block_q4_0, quantize_block_q4_1, quantize_q8_0_blocks,
    quantize_q8_1_blocks, QK,
};
use edgenlu_kernels::matmul::{matmul_with, Activations};
use edgenlu_kernels::{DType, Variant, WeightView};
use half::f16;
use proptest::prelude::*;

/// ggml's `generate_data`: 0.1 + 2·cos(i + offset).
fn ggml_data(offset: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.1 + 2.0 * (i as f32 + offset).cos())
        .collect()
}

/// ggml's `array_rmse`: sqrt(Σ diff²) / n (sic: divided by n, not √n).
fn ggml_rmse(a: &[f32], b: &[f32]) -> f32 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    (s.sqrt() / a.len() as f64) as f32
}

const TEST_SIZE: usize = 32 * 128;

#[test]
fn round_trip_error_is_within_ggml_bounds() {
    // test-quantize-fns: MAX_QUANTIZATION_TOTAL_ERROR = 0.002 for these formats.
    let x = ggml_data(0.0, TEST_SIZE);
    for dt in [DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_1] {
        let bytes = encode(dt, &x);
        assert_eq!(bytes.len(), dt.row_bytes(TEST_SIZE).unwrap());
        let mut y = vec![0f32; TEST_SIZE];
        dequantize(dt, &bytes, &mut y).unwrap();
        let err = ggml_rmse(&x, &y);
        assert!(err < 0.002, "{dt:?}: total error {err}");
    }
}

#[test]
fn dot_product_error_is_within_ggml_bounds() {
    // test-quantize-fns: |vec_dot(q(x), q8(y)) − x·y| / n < MAX_DOT_PRODUCT_ERROR = 0.02.
    let x = ggml_data(0.0, TEST_SIZE);
    let y = ggml_data(1.0, TEST_SIZE);
    let exact: f64 = x.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
    for dt in [DType::Q8_0, DType::Q4_0, DType::Q4_1] {
        let bytes = encode(dt, &x);
        let w = WeightView::new(dt, 1, TEST_SIZE, &bytes).unwrap();
        for v in Variant::supported() {
            let mut out = [0f32];
            matmul_with(v, Activations::Quantized, &mut out, &y, 1, &w, None).unwrap();
            let err = (out[0] as f64 - exact).abs() / TEST_SIZE as f64;
            assert!(err < 0.02, "{v} {dt:?}: dot product error {err}");
        }
    }
}

#[test]
fn q4_layouts_match_ggml_byte_for_byte() {
    // Elements 0..16 in the low nibbles, 16..32 in the high ones. The first value of largest
    // magnitude (−8, element 0) fixes d = max / −8 = 1, so q = x + 8.
    let x: [f32; QK] = std::array::from_fn(|i| (i % 16) as f32 - 8.0);
    let b = quantize_block_q4_0(&x);
    assert_eq!(f16::from_bits(b.d).to_f32(), 1.0);
    for j in 0..16 {
        assert_eq!(b.qs[j] & 15, (x[j] + 8.0) as u8, "low nibble {j}");
        assert_eq!(b.qs[j] >> 4, (x[j + 16] + 8.0) as u8, "high nibble {j}");
    }
    let bytes = bytemuck::bytes_of(&b);
    assert_eq!(bytes.len(), 18);
    assert_eq!(&bytes[..2], &f16::from_f32(1.0).to_le_bytes());

    let b = quantize_block_q4_1(&std::array::from_fn(|i| (i % 16) as f32 * 0.5 + 3.0));
    let bytes = bytemuck::bytes_of(&b);
    assert_eq!(bytes.len(), 20);
    assert_eq!(&bytes[..2], &f16::from_f32(0.5).to_le_bytes(), "d");
    assert_eq!(&bytes[2..4], &f16::from_f32(3.0).to_le_bytes(), "m");
    for (j, &q) in b.qs.iter().enumerate() {
        assert_eq!(q, (j as u8) | ((j as u8) << 4));
    }
}

#[test]
fn activation_blocks_follow_ggml() {
    let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 3.0).collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    quantize_q8_0_blocks(&x, &mut a);
    quantize_q8_1_blocks(&x, &mut b);
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for (qa, qb) in a.iter().zip(&b) {
        assert_eq!(qa.qs, qb.qs);
        assert_eq!(qa.d, qb.d);
        let sum: i32 = qb.qs.iter().map(|&q| q as i32).sum();
        let s = f16::from_bits(qb.s).to_f32();
        let expect = sum as f32 * f16::from_bits(qb.d).to_f32();
        assert!(
            (s - expect).abs() <= expect.abs() * 2e-3 + 1e-3,
            "{s} vs {expect}"
        );
    }
    assert_eq!(a[0].qs.iter().map(|q| q.unsigned_abs()).max(), Some(127));
}

#[test]
fn zero_blocks_stay_zero() {
    for dt in [DType::Q8_0, DType::Q4_0, DType::Q4_1] {
        let bytes = encode(dt, &[0.0; 64]);
        let mut y = vec![1f32; 64];
        dequantize(dt, &bytes, &mut y).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{dt:?}");
    }
}

proptest! {
    /// Element-wise bounds of the reference quantizers, d the block's f32 step:
    /// Q8_0 ≤ d/2; Q4_0 ≤ d/2, except values clamped at q = 15 (the side opposite the
    /// largest magnitude) which are ≤ d; Q4_1 ≤ d/2; each plus the f16 rounding of d (and m).
    #[test]
    fn element_error_is_bounded(x in prop::collection::vec(-100.0f32..100.0, QK..=4 * QK), scale in 1e-3f32..10.0) {
        let len = x.len() / QK * QK;
        let x: Vec<f32> = x[..len].iter().map(|v| v * scale).collect();
        for dt in [DType::Q8_0, DType::Q4_0, DType::Q4_1] {
            let bytes = encode(dt, &x);
            let mut y = vec![0f32; len];
            dequantize(dt, &bytes, &mut y).unwrap();
            for (xb, yb) in x.chunks(QK).zip(y.chunks(QK)) {
                let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                let (lo, hi) = xb.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                let (step, f16_err) = match dt {
                    DType::Q8_0 => (amax / 127.0 * 0.5, amax * 2f32.powi(-11)),
                    DType::Q4_0 => (amax / 8.0, amax * 2f32.powi(-11)),
                    _ => ((hi - lo) / 15.0 * 0.5, (hi - lo) * 2f32.powi(-11) + lo.abs().max(hi.abs()) * 2f32.powi(-11)),
                };
                for (a, b) in xb.iter().zip(yb) {
                    let tol = step * 1.0001 + f16_err + 1e-6 * amax;
                    prop_assert!((a - b).abs() <= tol, "{:?}: {} vs {} (tol {})", dt, a, b, tol);
                }
            }
        }
    }
}

proptest! {
    /// The libm-free rounding equals `f32::round` (checked exhaustively for |y| ≤ 40000 when
    /// it was written; sampled here).
    #[test]
    fn round_half_away_is_roundf(y in -40000.0f32..40000.0, k in -300i32..300) {
        prop_assert_eq!(edgenlu_kernels::formats::round_half_away(y), y.round() as i32);
        let half = k as f32 + 0.5;
        prop_assert_eq!(edgenlu_kernels::formats::round_half_away(half), half.round() as i32);
    }
}

proptest! {
    /// `abs_max` is the NaN-ignoring fold of |x|.
    #[test]
    fn abs_max_is_the_max_magnitude(x in prop::collection::vec(prop_oneof![8 => -1e30f32..1e30, 1 => Just(f32::NAN), 1 => Just(f32::INFINITY), 1 => Just(-0.0f32)], 0..40)) {
        let expect = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        prop_assert_eq!(edgenlu_kernels::formats::abs_max(&x).to_bits(), expect.to_bits());
    }
}
