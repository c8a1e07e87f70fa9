//! Differential tests: every kernel variant this CPU runs against the scalar reference, on
//! random shapes with ragged row counts and (for F32/F16) ragged `k`, with the tolerance per
//! format stated in `kernels/README.md`.

mod common;

use common::{encode, view};
use edgenlu_kernels::dispatch::{set_max_threads, variant_from_env};
use edgenlu_kernels::formats::{
    dequantize, quantize_q8_0_blocks, quantize_q8_1_blocks, BlockQ4_0, BlockQ4_1, BlockQ8_0, QK,
};
use edgenlu_kernels::matmul::{matmul_reference, matmul_with, quantize_q16_row, Activations};
use edgenlu_kernels::{active_variant, DType, Variant};
use half::f16;
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64;

fn h(bits: u16) -> f64 {
    f16::from_bits(bits).to_f64()
}

/// A random case: n activation rows, `rows` weight rows (any count, so thread chunks and
/// tails are ragged), `k` columns (whole blocks, or anything for float formats).
fn case(float_k: bool) -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>)> {
    let k = if float_k {
        (1..140usize).boxed()
    } else {
        (1..7usize).prop_map(|b| b * QK).boxed()
    };
    (
        prop_oneof![3 => 1..4usize, 1 => 4..18usize],
        1..70usize,
        k,
        0.01f32..8.0,
    )
        .prop_flat_map(|(n, rows, k, scale)| {
            (
                Just(n),
                Just(rows),
                Just(k),
                prop::collection::vec(-1.0f32..1.0, rows * k)
                    .prop_map(move |v| v.into_iter().map(|x| x * scale).collect()),
                prop::collection::vec(-3.0f32..3.0, n * k),
            )
        })
}

#[allow(clippy::too_many_arguments)]
fn run(
    v: Variant,
    acts: Activations,
    dt: DType,
    bytes: &[u8],
    rows: usize,
    k: usize,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let mut out = vec![f32::NAN; n * rows];
    matmul_with(v, acts, &mut out, x, n, &view(dt, rows, k, bytes), None).unwrap();
    out
}

/// Σ_j |x_j · ŵ_j| for every output, ŵ the dequantized weights.
fn magnitudes(dt: DType, bytes: &[u8], rows: usize, k: usize, x: &[f32], n: usize) -> Vec<f64> {
    let mut w = vec![0f32; rows * k];
    dequantize(dt, bytes, &mut w).unwrap();
    let mut m = vec![0f64; n * rows];
    for i in 0..n {
        for r in 0..rows {
            m[i * rows + r] = (0..k)
                .map(|j| (x[i * k + j] as f64 * w[r * k + j] as f64).abs())
                .sum();
        }
    }
    m
}

/// Σ over blocks of |d_w·d_x|·Σ|q_w·q_x| (+ |m_w·s_x| for Q4_1): the scale of the f32
/// rounding in a quantized-activation dot (its integer parts are exact).
fn quantized_magnitudes(
    dt: DType,
    acts: Activations,
    bytes: &[u8],
    rows: usize,
    k: usize,
    x: &[f32],
    n: usize,
) -> Vec<f64> {
    let nb = k / QK;
    let rb = dt.row_bytes(k).unwrap();
    let mut m = vec![0f64; n * rows];
    for i in 0..n {
        let xi = &x[i * k..(i + 1) * k];
        let (mut q8, mut q81, mut q16) = (Vec::new(), Vec::new(), Vec::new());
        quantize_q8_0_blocks(xi, &mut q8);
        quantize_q8_1_blocks(xi, &mut q81);
        quantize_q16_row(xi, &mut q16);
        for r in 0..rows {
            let row = &bytes[r * rb..(r + 1) * rb];
            let mut s = 0f64;
            for b in 0..nb {
                let wb = &row[b * dt.block_bytes()..(b + 1) * dt.block_bytes()];
                s += match dt {
                    DType::Q8_0 if acts == Activations::Int16 => {
                        let w: BlockQ8_0 = bytemuck::pod_read_unaligned(wb);
                        let d = (h(w.d) * q16[b].d as f64).abs();
                        d * (0..QK)
                            .map(|j| (w.qs[j] as f64 * q16[b].qs[j] as f64).abs())
                            .sum::<f64>()
                    }
                    DType::Q8_0 => {
                        let w: BlockQ8_0 = bytemuck::pod_read_unaligned(wb);
                        let d = (h(w.d) * h(q8[b].d)).abs();
                        d * (0..QK)
                            .map(|j| (w.qs[j] as f64 * q8[b].qs[j] as f64).abs())
                            .sum::<f64>()
                    }
                    DType::Q4_0 => {
                        let w: BlockQ4_0 = bytemuck::pod_read_unaligned(wb);
                        let d = (h(w.d) * h(q8[b].d)).abs();
                        d * (0..QK / 2)
                            .map(|j| {
                                let (lo, hi) = (w.qs[j] & 15, w.qs[j] >> 4);
                                ((lo as f64 - 8.0) * q8[b].qs[j] as f64).abs()
                                    + ((hi as f64 - 8.0) * q8[b].qs[j + 16] as f64).abs()
                            })
                            .sum::<f64>()
                    }
                    _ => {
                        let w: BlockQ4_1 = bytemuck::pod_read_unaligned(wb);
                        let d = (h(w.d) * h(q81[b].d)).abs();
                        d * (0..QK / 2)
                            .map(|j| {
                                let (lo, hi) = (w.qs[j] & 15, w.qs[j] >> 4);
                                (lo as f64 * q81[b].qs[j] as f64).abs()
                                    + (hi as f64 * q81[b].qs[j + 16] as f64).abs()
                            })
                            .sum::<f64>()
                            + (h(w.m) * h(q81[b].s)).abs()
                    }
                };
            }
            m[i * rows + r] = s;
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// f32 activations (F32, F16, Q8_0 in registers; Q4_0/Q4_1 through a dequantized row):
    /// every variant within 2·(k+1)·ε·Σ|x·ŵ| of the dequantize-then-dot reference.
    #[test]
    fn f32_activations_match_the_reference(
        (n, rows, k, w, x) in case(true),
        dt in prop_oneof![Just(DType::F32), Just(DType::F16), Just(DType::Q8_0), Just(DType::Q4_0), Just(DType::Q4_1)],
    ) {
        // Block formats need whole blocks: round k down (and trim the data to match).
        let kk = if dt.block_elems() > 1 { (k / QK).max(1) * QK } else { k };
        let w: Vec<f32> = (0..rows * kk).map(|i| w[i % w.len()]).collect();
        let x: Vec<f32> = (0..n * kk).map(|i| x[i % x.len()]).collect();
        let k = kk;
        let bytes = encode(dt, &w);
        let mut reference = vec![0f32; n * rows];
        matmul_reference(&mut reference, &x, n, &view(dt, rows, k, &bytes), None).unwrap();
        let mag = magnitudes(dt, &bytes, rows, k, &x, n);
        for v in Variant::supported() {
            let out = run(v, Activations::F32, dt, &bytes, rows, k, &x, n);
            for (j, ((o, r), m)) in out.iter().zip(&reference).zip(&mag).enumerate() {
                let tol = 2.0 * (k as f64 + 1.0) * EPS * m + 1e-30;
                prop_assert!((*o as f64 - *r as f64).abs() <= tol,
                    "{v} {dt:?} n={n} rows={rows} k={k} out[{j}]: {o} vs reference {r} (tol {tol:e})");
            }
        }
    }

    /// Quantized activations: every variant within (2·nb + 16)·ε·M of the scalar
    /// quantized-activation path, M = Σ_b |d_w·d_x|·Σ|q_w·q_x| (+ |m_w·s_x|): the integer dot
    /// products are exact, only the f32 scaling and summation order differ.
    #[test]
    fn quantized_activations_match_the_scalar_path(
        (n, rows, k, w, x) in case(false),
        (dt, acts) in prop_oneof![
            Just((DType::Q8_0, Activations::Quantized)),
            Just((DType::Q4_0, Activations::Quantized)),
            Just((DType::Q4_1, Activations::Quantized)),
            Just((DType::Q8_0, Activations::Int16)),
        ],
    ) {
        let bytes = encode(dt, &w);
        let scalar = run(Variant::Scalar, acts, dt, &bytes, rows, k, &x, n);
        let mag = quantized_magnitudes(dt, acts, &bytes, rows, k, &x, n);
        let nb = (k / QK) as f64;
        for v in Variant::supported() {
            let out = run(v, acts, dt, &bytes, rows, k, &x, n);
            for (j, ((o, r), m)) in out.iter().zip(&scalar).zip(&mag).enumerate() {
                let tol = (2.0 * nb + 16.0) * EPS * m + 1e-30;
                prop_assert!((*o as f64 - *r as f64).abs() <= tol,
                    "{v} {dt:?} n={n} rows={rows} k={k} out[{j}]: {o} vs scalar {r} (tol {tol:e})");
            }
        }
    }

    /// The scalar quantized-activation paths are within the activation rounding of the exact
    /// product of the dequantized weights: Σ_b (amax_x,b/254 + amax_x,b·2⁻¹⁰)·Σ_{i∈b}|ŵᵢ|
    /// for Q8_0/Q8_1 blocks, (amax_x/65534 + 4ε·amax_x)·Σ|ŵᵢ| for 16-bit ones (one scale per
    /// row: amax of the whole row), plus f32 rounding (and, for Q4_1, the f16 rounding of
    /// s = d·Σq).
    #[test]
    fn quantized_activation_error_is_bounded(
        (n, rows, k, w, x) in case(false),
        (dt, acts) in prop_oneof![
            Just((DType::Q8_0, Activations::Quantized)),
            Just((DType::Q4_0, Activations::Quantized)),
            Just((DType::Q4_1, Activations::Quantized)),
            Just((DType::Q8_0, Activations::Int16)),
        ],
    ) {
        let bytes = encode(dt, &w);
        let out = run(Variant::Scalar, acts, dt, &bytes, rows, k, &x, n);
        // Half a step of each activation block, plus the rounding of its scale: f16 for
        // Q8_0/Q8_1 (2⁻¹¹ relative, doubled for slack), f32 for the 16-bit blocks.
        let (half_step, scale_err) = match acts {
            Activations::Int16 => (1.0 / 65534.0, 4.0 * EPS),
            _ => (1.0 / 254.0, 2f64.powi(-10)),
        };
        let mut wd = vec![0f32; rows * k];
        dequantize(dt, &bytes, &mut wd).unwrap();
        for i in 0..n {
            let row_amax = x[i * k..(i + 1) * k].iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            for r in 0..rows {
                let (mut exact, mut tol) = (0f64, 0f64);
                for b in 0..k / QK {
                    let xb = &x[i * k + b * QK..][..QK];
                    let wb = &wd[r * k + b * QK..][..QK];
                    let block_amax = xb.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                    let amax = if acts == Activations::Int16 { row_amax } else { block_amax };
                    let wsum: f64 = wb.iter().map(|v| (*v as f64).abs()).sum();
                    exact += xb.iter().zip(wb).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
                    tol += (amax * half_step + amax * scale_err) * wsum;
                    tol += (k as f64 + 8.0) * EPS * xb.iter().zip(wb).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum::<f64>() * 2.0;
                    if dt == DType::Q4_1 {
                        // |m|·|s|·2⁻¹¹ for the f16 rounding of s, with |s| ≤ 32·amax.
                        let m = wb.iter().fold(f64::MAX, |m, v| m.min(*v as f64)).abs();
                        tol += m * 32.0 * amax * 2f64.powi(-10);
                    }
                }
                let o = out[i * rows + r] as f64;
                prop_assert!((o - exact).abs() <= tol + 1e-6, "{dt:?} out[{i},{r}] {o} vs exact {exact} (tol {tol:e})");
            }
        }
    }
}

/// Splitting over threads changes nothing: each row is computed the same way on any thread.
#[test]
fn threads_give_identical_results() {
    let (rows, k, n) = (1000, 576, 3);
    let w: Vec<f32> = (0..rows * k)
        .map(|i| ((i * 7919) % 1013) as f32 / 500.0 - 1.0)
        .collect();
    let x: Vec<f32> = (0..n * k)
        .map(|i| ((i * 31) % 97) as f32 / 40.0 - 1.2)
        .collect();
    for dt in [DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_1] {
        let bytes = encode(dt, &w);
        for v in Variant::supported() {
            set_max_threads(1);
            let one = run(v, Activations::Quantized, dt, &bytes, rows, k, &x, n);
            set_max_threads(2);
            let two = run(v, Activations::Quantized, dt, &bytes, rows, k, &x, n);
            set_max_threads(0);
            assert_eq!(one, two, "{v} {dt:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A row's result does not depend on the batch it is computed in: the matrix-vector
    /// kernels (several weight rows per pass, n = 1) give exactly what the one-row kernels
    /// give for the same activation row inside a batch of two (n = 2), bit for bit.
    #[test]
    fn matrix_vector_equals_the_row_kernels_bit_for_bit(
        (_, rows, k, w, x) in case(false),
        dt in prop_oneof![Just(DType::Q8_0), Just(DType::Q4_0), Just(DType::Q4_1), Just(DType::Q5_0)],
    ) {
        let bytes = encode(dt, &w);
        let x = &x[..k];
        let pair: Vec<f32> = x.iter().chain(x).copied().collect();
        for v in Variant::supported() {
            let single = run(v, Activations::Quantized, dt, &bytes, rows, k, x, 1);
            let batch = run(v, Activations::Quantized, dt, &bytes, rows, k, &pair, 2);
            prop_assert_eq!(
                single.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
                batch[..rows].iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
                "{} {:?} rows {} k {}", v, dt, rows, k
            );
        }
    }
}

/// A variant this CPU lacks is refused, not run.
#[test]
fn unsupported_variants_are_refused() {
    let w = encode(DType::F32, &[1.0; 32]);
    for v in Variant::ALL {
        let r = matmul_with(
            v,
            Activations::F32,
            &mut [0.0],
            &[1.0; 32],
            1,
            &view(DType::F32, 1, 32, &w),
            None,
        );
        assert_eq!(r.is_ok(), v.is_supported(), "{v}");
    }
}

/// `EDGENLU_KERNELS`, when set, is what runs (scripts/arm-kernels.sh forces `neon` this way),
/// and an unrunnable value is an error, never a silent scalar run.
#[test]
fn forced_variant_is_active() {
    match variant_from_env() {
        Ok(Some(v)) => assert_eq!(active_variant(), v),
        Ok(None) => assert_eq!(active_variant(), Variant::best()),
        Err(e) => panic!("{e}"),
    }
    eprintln!("active kernel variant: {}", active_variant().describe());
}
