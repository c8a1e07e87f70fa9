//! Helpers shared by the kernel test files (included with `mod common;`).
#![allow(dead_code)]

use edgenlu_kernels::formats::quantize;
use edgenlu_kernels::{DType, WeightView};

/// `x` encoded as `dtype` bytes.
pub fn encode(dtype: DType, x: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::new();
    quantize(dtype, x, &mut bytes).unwrap();
    bytes
}

/// A view over bytes the caller keeps alive.
pub fn view(dtype: DType, rows: usize, cols: usize, bytes: &[u8]) -> WeightView<'_> {
    WeightView::new(dtype, rows, cols, bytes).unwrap()
}

/// Asserts elementwise `|a - b| <= tol`.
#[track_caller]
pub fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y} (tol {tol})\n{a:?}\n{b:?}"
        );
    }
}
