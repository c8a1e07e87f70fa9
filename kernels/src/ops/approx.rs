//! Branch-free approximations of `exp`, `erf` and GELU's tanh form for the vectorized variants.
//!
//! libm's `expf`/`erff` are calls with branches, so a loop over them stays scalar. These are
//! straight-line arithmetic and integer bit moves, so the compiler vectorizes a loop over them
//! (8 lanes under AVX2, 16 under AVX-512, 4 on NEON) when it is inlined into a
//! [`crate::dispatch::vectorized`] body. The scalar variant keeps libm (the reference); the
//! bounds below are tested against f64 in this module and stated in `kernels/README.md`.

use std::f32::consts::{FRAC_1_SQRT_2, LN_2, LOG2_E};

/// Below this `exp` is subnormal: [`exp`] returns 0 (softmax's masked `-inf` scores land here).
const EXP_MIN: f32 = -87.33;
/// Above this `2^n` would leave the normal exponent range; inputs are clamped to it (only
/// SiLU of inputs below −88 gets there, where the result is 0 either way).
const EXP_MAX: f32 = 88.3;
/// 1.5 · 2²³: adding it to a float of magnitude < 2²² rounds it to an integer (ties to even)
/// and leaves that integer in the low mantissa bits.
const ROUND_SHIFT: f32 = 12_582_912.0;
/// ln 2 split so that `n · LN2_HI` is exact for |n| ≤ 2⁹.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = LN_2 - LN2_HI;

/// `e^x` with relative error below 4e-7 (3 ulp) for `x` in [−87.33, 88.3]; 0 below, `e^88.3` above,
/// NaN for NaN.
///
/// `x = n·ln2 + r` with `n` an integer and |r| ≤ ln2/2, `e^r` by its Taylor polynomial to r⁷
/// (truncation < 6e-9), and `2^n` written straight into the exponent bits.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    let t = xc.mul_add(LOG2_E, ROUND_SHIFT);
    let n = t - ROUND_SHIFT;
    // The integer n, from t's mantissa (t's bits are those of 1.5·2²³ plus n).
    let ni = t.to_bits() as i32 - ROUND_SHIFT.to_bits() as i32;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let mut p: f32 = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p.mul_add(r, c);
    }
    let scale = f32::from_bits(((ni + 127) << 23) as u32);
    if x < EXP_MIN {
        0.0
    } else {
        p * scale
    }
}

/// `1 + erf(x / √2)`, the factor GELU needs, with absolute error below 5e-7.
///
/// erfc(z) for z = |x|/√2 ≥ 0 by Abramowitz & Stegun 7.1.26 (`t·P(t)·e^(−z²)`,
/// `t = 1/(1 + p·z)`, |error| ≤ 1.5e-7), then `2 − erfc(z)` for x ≥ 0 and `erfc(z)` for
/// x < 0: the negative side never subtracts two numbers close to 1, so it keeps its relative
/// accuracy far into the tail.
#[inline(always)]
fn one_plus_erf_scaled(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152,
        1.061_405_4,
    ];
    let z = x.abs() * FRAC_1_SQRT_2;
    let t = 1.0 / z.mul_add(P, 1.0);
    let mut poly = A[4];
    for &a in A[..4].iter().rev() {
        poly = poly.mul_add(t, a);
    }
    let erfc = t * poly * exp(-z * z);
    if x >= 0.0 {
        2.0 - erfc
    } else {
        erfc
    }
}

/// GELU, erf form: `0.5 · x · (1 + erf(x/√2))`, absolute error below 5e-7 · max(1, |x|).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * one_plus_erf_scaled(x)
}

/// √(2/π), the scale inside the tanh of GELU's tanh form.
pub(crate) const GELU_TANH_SCALE: f32 = 0.797_884_6;
/// The cubic term's coefficient inside the tanh of GELU's tanh form.
pub(crate) const GELU_TANH_CUBIC: f32 = 0.044_715;

/// GELU, tanh form: `0.5 · x · (1 + tanh(u))` with `u = √(2/π) · (x + 0.044715 · x³)`,
/// computed as `x / (1 + e^(−2u))` (the same value: `(1 + tanh u) / 2` is the logistic of
/// `2u`), so it needs only [`exp`]; relative error below 1e-6 where the result is normal.
#[inline(always)]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    let u = GELU_TANH_SCALE * x * (1.0 + GELU_TANH_CUBIC * x * x);
    x / (1.0 + exp(-2.0 * u))
}

/// SiLU, `x / (1 + e^−x)`, relative error below 1e-6.
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 997th f32 bit pattern in [lo, hi] (both signs when `lo < 0`): 10⁵–10⁶ points
    /// spread evenly over magnitudes, not just over the interval.
    fn samples(lo: f32, hi: f32) -> impl Iterator<Item = f32> {
        (0..=u32::MAX)
            .step_by(997)
            .map(f32::from_bits)
            .filter(move |v| v.is_finite() && *v >= lo && *v <= hi)
    }

    #[test]
    fn exp_is_within_its_bound() {
        let mut worst = 0f64;
        for x in samples(EXP_MIN, EXP_MAX) {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert_eq!(exp(-88.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }

    #[test]
    fn gelu_is_within_its_bound() {
        let mut worst = 0f64;
        for x in samples(-30.0, 30.0) {
            let xd = x as f64;
            let want = 0.5 * xd * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2));
            let err = (gelu(x) as f64 - want).abs() / xd.abs().max(1.0);
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "worst scaled absolute error {worst:e}");
        assert_eq!(gelu(0.0), 0.0);
        assert_eq!(gelu(f32::INFINITY), f32::INFINITY);
        assert_eq!(gelu(-1e30), 0.0);
    }

    #[test]
    fn gelu_tanh_is_within_its_bound() {
        let mut worst = 0f64;
        for x in samples(-30.0, 30.0) {
            let xd = x as f64;
            let u = (2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd.powi(3));
            let want = 0.5 * xd * (1.0 + u.tanh());
            let err = (gelu_tanh(x) as f64 - want).abs() / xd.abs().max(1.0);
            worst = worst.max(err);
        }
        assert!(worst < 1e-6, "worst scaled absolute error {worst:e}");
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert!(gelu_tanh(-1e30).abs() < 1e-8);
        assert_eq!(gelu_tanh(1e3), 1e3);
    }

    #[test]
    fn silu_is_within_its_bound() {
        let mut worst = 0f64;
        for x in samples(-80.0, 80.0) {
            let xd = x as f64;
            let want = xd / (1.0 + (-xd).exp());
            // Subnormal results keep fewer significant bits than any bound on relative error.
            if want.abs() < f32::MIN_POSITIVE as f64 {
                continue;
            }
            worst = worst.max(((silu(x) as f64 - want) / want).abs());
        }
        assert!(worst < 1e-6, "worst relative error {worst:e}");
    }
}
