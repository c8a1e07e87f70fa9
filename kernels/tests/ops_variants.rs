//! Differential tests of the row and elementwise ops: every variant this CPU runs against the
//! scalar reference, on random lengths (ragged against the 8/16-lane registers).
//!
//! Ops that only rearrange the reference's arithmetic into registers (norms, pooling,
//! add/mul/scale) must match bit for bit: the compiler does not reorder floating-point sums.
//! Ops on `exp`/`erf` use branch-free approximations outside the scalar variant and must stay
//! within the bounds stated here and in `kernels/README.md`.

use edgenlu_kernels::dispatch::with_variant;
use edgenlu_kernels::{ops, Variant};
use proptest::prelude::*;

/// The variants to compare with the reference.
fn vector_variants() -> Vec<Variant> {
    Variant::supported()
        .into_iter()
        .filter(|&v| v != Variant::Scalar)
        .collect()
}

/// `f` run under `v`, on its own copy of the inputs.
fn under<T>(v: Variant, f: impl FnOnce() -> T) -> T {
    with_variant(v, f).expect("a supported variant")
}

fn values(max_len: usize, scale: f32) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-1.0f32..1.0, 1..max_len)
        .prop_map(move |v| v.into_iter().map(|x| x * scale).collect())
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Largest `|a − b| / max(1, |x|)` over the elements.
fn scaled_error(a: &[f32], b: &[f32], x: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .zip(x)
        .map(|((a, b), x)| (a - b).abs() / x.abs().max(1.0))
        .fold(0.0, f32::max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// GELU (erf and tanh forms) and SiLU: |Δ| ≤ 1e-6 · max(1, |x|) (the approximations' own
    /// bounds are 5e-7, 1e-6 and 1e-6 relative; the reference adds libm's rounding).
    #[test]
    fn activations_match_the_reference(x in values(300, 12.0)) {
        let mut want_gelu = x.clone();
        under(Variant::Scalar, || ops::gelu(&mut want_gelu)).unwrap();
        let mut want_silu = x.clone();
        under(Variant::Scalar, || ops::silu(&mut want_silu)).unwrap();
        let up: Vec<f32> = x.iter().map(|v| v * 0.5 - 1.0).collect();
        let mut want_swiglu = x.clone();
        under(Variant::Scalar, || ops::swiglu(&mut want_swiglu, &up)).unwrap();
        let mut want_geglu = x.clone();
        under(Variant::Scalar, || ops::geglu_tanh(&mut want_geglu, &up)).unwrap();
        for v in vector_variants() {
            let mut got = x.clone();
            under(v, || ops::gelu(&mut got)).unwrap();
            prop_assert!(scaled_error(&got, &want_gelu, &x) <= 1e-6, "{v} gelu");
            let mut got = x.clone();
            under(v, || ops::silu(&mut got)).unwrap();
            prop_assert!(scaled_error(&got, &want_silu, &x) <= 1e-6, "{v} silu");
            let mut got = x.clone();
            under(v, || ops::swiglu(&mut got, &up)).unwrap();
            let scale: Vec<f32> = x.iter().zip(&up).map(|(a, b)| a * b).collect();
            prop_assert!(scaled_error(&got, &want_swiglu, &scale) <= 1e-6, "{v} swiglu");
            let mut got = x.clone();
            under(v, || ops::geglu_tanh(&mut got, &up)).unwrap();
            prop_assert!(scaled_error(&got, &want_geglu, &scale) <= 1e-6, "{v} geglu_tanh");
        }
    }

    /// Softmax rows: every probability within 1e-6 of the reference's (relative error of the
    /// approximate exp ≤ 4e-7, summed in f32 lanes), masked (−inf) entries exactly 0.
    #[test]
    fn softmax_matches_the_reference(
        (cols, x) in (1..70usize, 1..5usize).prop_flat_map(|(cols, rows)| {
            (Just(cols), prop::collection::vec(
                prop_oneof![9 => -30.0f32..30.0, 1 => Just(f32::NEG_INFINITY)], cols * rows))
        })
    ) {
        let mut want = x.clone();
        under(Variant::Scalar, || ops::softmax(&mut want, cols)).unwrap();
        for v in vector_variants() {
            let mut got = x.clone();
            under(v, || ops::softmax(&mut got, cols)).unwrap();
            for ((g, w), xi) in got.iter().zip(&want).zip(&x) {
                prop_assert!((g - w).abs() <= 1e-6, "{v}: {g} vs {w}");
                if *xi == f32::NEG_INFINITY {
                    prop_assert_eq!(*g, 0.0);
                }
            }
        }
    }

    /// Attention (grouped-query, causal or not): outputs within 1e-5 · max|v| of the reference;
    /// only the softmax's exp differs.
    #[test]
    fn attention_matches_the_reference(
        n in 1..6usize, extra in 0..12usize, kv_heads in 1..3usize, group in 1..4usize,
        head_dim in 1..40usize, causal: bool, seed in any::<u64>(),
    ) {
        let (m, heads) = (n + extra, kv_heads * group);
        let mut rng = seed;
        let mut fill = |len: usize, scale: f32| -> Vec<f32> {
            (0..len).map(|_| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            }).collect()
        };
        let q = fill(n * heads * head_dim, 3.0);
        let k = fill(m * kv_heads * head_dim, 3.0);
        let val = fill(m * kv_heads * head_dim, 2.0);
        let run = |variant: Variant| {
            let mut out = vec![f32::NAN; q.len()];
            under(variant, || {
                ops::attention(&mut out, &q, &k, &val, n, m, heads, kv_heads, head_dim, causal)
            }).unwrap();
            out
        };
        let want = run(Variant::Scalar);
        for v in vector_variants() {
            let got = run(v);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-5 * 2.0, "{v}: {g} vs {w}");
            }
        }
    }

    /// Norms, pooling and the elementwise arithmetic: bit-identical in every variant.
    #[test]
    fn row_ops_are_bit_identical(
        (cols, x) in (1..90usize, 1..5usize).prop_flat_map(|(cols, rows)| {
            (Just(cols), prop::collection::vec(-50.0f32..50.0, cols * rows))
        })
    ) {
        let rows = x.len() / cols;
        let gamma: Vec<f32> = (0..cols).map(|i| 0.5 + i as f32 * 0.01).collect();
        let beta: Vec<f32> = (0..cols).map(|i| i as f32 * -0.02).collect();
        let all = |variant: Variant| {
            under(variant, || {
                let mut ln = vec![0f32; x.len()];
                ops::layer_norm(&mut ln, &x, cols, &gamma, &beta, 1e-12).unwrap();
                let mut rms = vec![0f32; x.len()];
                ops::rms_norm(&mut rms, &x, cols, &gamma, 1e-6).unwrap();
                let mut pool = vec![0f32; cols];
                ops::mean_pool(&mut pool, &x, rows, cols, rows).unwrap();
                let mut l2 = x.clone();
                ops::l2_normalize(&mut l2, cols).unwrap();
                let mut sum = vec![0f32; x.len()];
                ops::add(&mut sum, &x, &beta).unwrap();
                let mut prod = vec![0f32; x.len()];
                ops::mul(&mut prod, &x, &gamma).unwrap();
                let mut scaled = x.clone();
                ops::scale(&mut scaled, 0.37).unwrap();
                [ln, rms, pool, l2, sum, prod, scaled].map(|r| bits(&r))
            })
        };
        let want = all(Variant::Scalar);
        for v in vector_variants() {
            prop_assert_eq!(&all(v), &want, "{}", v);
        }
    }
}

#[test]
fn with_variant_restores_the_previous_choice() {
    let before = edgenlu_kernels::active_variant();
    let inside = under(Variant::Scalar, edgenlu_kernels::active_variant);
    assert_eq!(inside, Variant::Scalar);
    assert_eq!(edgenlu_kernels::active_variant(), before);
}
