//! AArch64 NEON row kernels, in two builds: plain NEON (widening multiplies) and NEON with
//! the dot-product extension (`sdot`, ARMv8.2), picked at run time by [`kernels`].
//!
//! Every function is `#[target_feature]`, so `unsafe` to call: the caller must have checked
//! the CPU (done once in `kernels_for` / [`kernels`]). Loads are unaligned `vld1q` from
//! pointers inside the slices, for whole blocks only. Each kernel's scalar reference is the
//! same-named function in `scalar.rs`; `tests/variants.rs` compares them.

use super::{scalar, BlockQ16, QuantizedKernels, RowKernels};
use crate::formats::kquants::scales_mins_k4;
use crate::formats::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, QK};
use std::arch::aarch64::*;

const Q8_BYTES: usize = std::mem::size_of::<BlockQ8_0>();
const Q5_0_BYTES: usize = 22;
const Q4_0_BYTES: usize = 18;
const Q4_1_BYTES: usize = 20;

/// The NEON table for this CPU: with `sdot` if it has the dot-product extension.
pub(super) fn kernels() -> &'static RowKernels {
    if crate::dispatch::has_neon_dotprod() {
        &DOTPROD
    } else {
        &PLAIN
    }
}

static PLAIN: RowKernels = RowKernels {
    f32: neon_f32,
    f16: neon_f16,
    q8_0_f32: neon_q8_0_f32,
    q8_0: plain::q8_0_q8_0,
    q4_0: plain::q4_0_q8_0,
    q4_1: plain::q4_1_q8_1,
    f32_x4: None,
    f16_x4: None,
    f32_tile: None,
    f16_tile: None,
    q8_0_f32_x4: None,
    q8_0_x4: Some(plain::q8_0_x4),
    q4_0_x4: Some(plain::q4_0_x4),
    q4_1_x4: Some(plain::q4_1_x4),
    q8_0_q16: neon_q8_0_q16,
    q8_0_q16_x4: Some(neon_q8_0_q16_rows::<4>),
    q8_0_q16_x2: Some(neon_q8_0_q16_rows::<2>),
    q8_0_w4: None,
    q4_0_w4: None,
    q4_1_w4: None,
    q5_0: QuantizedKernels {
        one: plain::q5_0_q8_0,
        w4: None,
        x4: Some(plain::q5_0_x4),
        x2: None,
    },
    q5_1: QuantizedKernels::one(scalar::dot_q5_1_q8_1),
    q4_k: QuantizedKernels::one(plain::q4_k_q8_k),
    q5_k: QuantizedKernels::one(plain::q5_k_q8_k),
    q6_k: QuantizedKernels::one(plain::q6_k_q8_k),
};

static DOTPROD: RowKernels = RowKernels {
    f32: neon_f32,
    f16: neon_f16,
    q8_0_f32: neon_q8_0_f32,
    q8_0: dotprod::q8_0_q8_0,
    q4_0: dotprod::q4_0_q8_0,
    q4_1: dotprod::q4_1_q8_1,
    f32_x4: None,
    f16_x4: None,
    f32_tile: None,
    f16_tile: None,
    q8_0_f32_x4: None,
    q8_0_x4: Some(dotprod::q8_0_x4),
    q4_0_x4: Some(dotprod::q4_0_x4),
    q4_1_x4: Some(dotprod::q4_1_x4),
    q8_0_q16: neon_q8_0_q16,
    q8_0_q16_x4: Some(neon_q8_0_q16_rows::<4>),
    q8_0_q16_x2: Some(neon_q8_0_q16_rows::<2>),
    q8_0_w4: None,
    q4_0_w4: None,
    q4_1_w4: None,
    q5_0: QuantizedKernels {
        one: dotprod::q5_0_q8_0,
        w4: None,
        x4: Some(dotprod::q5_0_x4),
        x2: None,
    },
    q5_1: QuantizedKernels::one(scalar::dot_q5_1_q8_1),
    q4_k: QuantizedKernels::one(dotprod::q4_k_q8_k),
    q5_k: QuantizedKernels::one(dotprod::q5_k_q8_k),
    q6_k: QuantizedKernels::one(dotprod::q6_k_q8_k),
};

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

#[target_feature(enable = "neon")]
unsafe fn neon_f32(w: &[u8], x: &[f32]) -> f32 {
    let len = (w.len() / 4).min(x.len());
    let (wp, xp) = (w.as_ptr() as *const f32, x.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut j = 0;
    // SAFETY (all loads below): elements j..j + 4 * (u + 1) <= len are inside both slices.
    while j + 16 <= len {
        for (u, a) in acc.iter_mut().enumerate() {
            let (wv, xv) = unsafe { (vld1q_f32(wp.add(j + 4 * u)), vld1q_f32(xp.add(j + 4 * u))) };
            *a = vfmaq_f32(*a, wv, xv);
        }
        j += 16;
    }
    let mut sum = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for t in j..len {
        sum += f32::from_le_bytes([w[4 * t], w[4 * t + 1], w[4 * t + 2], w[4 * t + 3]]) * x[t];
    }
    sum
}

#[target_feature(enable = "neon")]
unsafe fn neon_f16(w: &[u8], x: &[f32]) -> f32 {
    let len = (w.len() / 2).min(x.len());
    let xp = x.as_ptr();
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut j = 0;
    // Half-precision vector types are not stable in Rust yet: convert 8 at a time through a
    // stack buffer (the `half` crate), then multiply-add in NEON.
    let mut buf = [0f32; 8];
    while j + 8 <= len {
        for (e, b) in buf.iter_mut().enumerate() {
            *b = f16_at(w, 2 * (j + e));
        }
        // SAFETY: buf holds 8 floats; x[j..j + 8] is inside `x` (j + 8 <= len).
        unsafe {
            acc[0] = vfmaq_f32(acc[0], vld1q_f32(buf.as_ptr()), vld1q_f32(xp.add(j)));
            acc[1] = vfmaq_f32(
                acc[1],
                vld1q_f32(buf.as_ptr().add(4)),
                vld1q_f32(xp.add(j + 4)),
            );
        }
        j += 8;
    }
    let mut sum = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
    for t in j..len {
        sum += f16_at(w, 2 * t) * x[t];
    }
    sum
}

#[target_feature(enable = "neon")]
unsafe fn neon_q8_0_f32(w: &[u8], x: &[f32]) -> f32 {
    let nb = (w.len() / Q8_BYTES).min(x.len() / QK);
    let mut acc = [vdupq_n_f32(0.0); 4];
    for b in 0..nb {
        let wb = &w[b * Q8_BYTES..];
        let d = vdupq_n_f32(f16_at(wb, 0));
        // SAFETY: the block's 32 quants and x[b*32..b*32+32] are inside the slices (b < nb).
        unsafe {
            let xp = x.as_ptr().add(b * QK);
            for h in 0..2 {
                let q = vld1q_s8(wb.as_ptr().add(2 + 16 * h) as *const i8);
                let lo = vmovl_s8(vget_low_s8(q));
                let hi = vmovl_s8(vget_high_s8(q));
                let parts = [
                    vmovl_s16(vget_low_s16(lo)),
                    vmovl_s16(vget_high_s16(lo)),
                    vmovl_s16(vget_low_s16(hi)),
                    vmovl_s16(vget_high_s16(hi)),
                ];
                for (u, p) in parts.into_iter().enumerate() {
                    let wv = vmulq_f32(vcvtq_f32_s32(p), d);
                    acc[u] = vfmaq_f32(acc[u], wv, vld1q_f32(xp.add(16 * h + 4 * u)));
                }
            }
        }
    }
    vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ))
}

/// One Q8_0 weight row · `R` rows of 16-bit activations: each block's weights are widened to
/// i16 once for all R rows, then `smlal` takes 4 products per instruction.
#[target_feature(enable = "neon")]
#[allow(clippy::needless_range_loop)] // r indexes `x` and `acc` alike
unsafe fn neon_q8_0_q16_rows<const R: usize>(w: &[u8], x: [&[BlockQ16]; R]) -> [f32; R] {
    let nb = x.iter().fold(w.len() / Q8_BYTES, |m, r| m.min(r.len()));
    let mut acc = [vdupq_n_f32(0.0); R];
    for b in 0..nb {
        let wb = &w[b * Q8_BYTES..];
        let dw = f16_at(wb, 0);
        // SAFETY: the block's 32 quants are inside `w` (b < nb), block b inside every x row,
        // and each block holds 32 i16.
        unsafe {
            let w16: [int16x8_t; 4] =
                std::array::from_fn(|h| vmovl_s8(vld1_s8(wb.as_ptr().add(2 + 8 * h) as *const i8)));
            for r in 0..R {
                let xb = x[r].get_unchecked(b);
                let mut s = vdupq_n_s32(0);
                for (h, &wv) in w16.iter().enumerate() {
                    let xv = vld1q_s16(xb.qs.as_ptr().add(8 * h));
                    s = vmlal_s16(s, vget_low_s16(wv), vget_low_s16(xv));
                    s = vmlal_high_s16(s, wv, xv);
                }
                acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(s), dw * xb.d);
            }
        }
    }
    acc.map(|a| vaddvq_f32(a))
}

#[target_feature(enable = "neon")]
unsafe fn neon_q8_0_q16(w: &[u8], x: &[BlockQ16]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { neon_q8_0_q16_rows::<1>(w, [x])[0] }
}

/// The quantized kernels, written once over an `idot(acc, a, b)` that adds the products of
/// 16 signed byte pairs into 4 i32 lanes.
macro_rules! quantized_kernels {
    ($features:literal, $idot:path) => {
        use super::*;

        /// Unsigned nibbles of a Q4 block (16 bytes at `p`): (elements 0..16, 16..32).
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn nibbles(p: *const u8) -> (int8x16_t, int8x16_t) {
            // SAFETY: the caller passes a pointer to 16 readable bytes.
            let q = unsafe { vld1q_u8(p) };
            let m = vdupq_n_u8(0x0f);
            (
                vreinterpretq_s8_u8(vandq_u8(q, m)),
                vreinterpretq_s8_u8(vshrq_n_u8(q, 4)),
            )
        }

        /// Generates one quantized weight row · `R` activation rows (R = 1: matrix-vector;
        /// R = 4: matrix-matrix, each weight block loaded and unpacked once for four rows).
        /// `$wq(p)` gives a block's weights (block pointer `p`) as two 16-byte halves.
        macro_rules! rows {
            ($rows:ident, $xblock:ty, $wbytes:expr, $wq:ident, $mins:expr) => {
                #[target_feature(enable = $features)]
                #[allow(clippy::needless_range_loop)] // b indexes `w` and all R x rows alike
                pub(super) unsafe fn $rows<const R: usize>(
                    w: &[u8],
                    x: [&[$xblock]; R],
                ) -> [f32; R] {
                    let nb = x.iter().fold(w.len() / $wbytes, |m, r| m.min(r.len()));
                    let mut acc = [vdupq_n_f32(0.0); R];
                    let mut mins = [0f32; R];
                    for b in 0..nb {
                        let wb = &w[b * $wbytes..];
                        let dw = f16_at(wb, 0);
                        // SAFETY: the whole block b is inside `w` (b < nb).
                        let (lo, hi) = unsafe { $wq(wb.as_ptr()) };
                        for r in 0..R {
                            let xb = &x[r][b];
                            // SAFETY: `xb.qs` holds 32 bytes.
                            let i = unsafe {
                                let s = $idot(vdupq_n_s32(0), lo, vld1q_s8(xb.qs.as_ptr()));
                                $idot(s, hi, vld1q_s8(xb.qs.as_ptr().add(16)))
                            };
                            let dx = half::f16::from_bits(xb.d).to_f32();
                            acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(i), dw * dx);
                            if $mins {
                                // Q4_1: m at bytes 2..4 of the weight block, s of the Q8_1 block.
                                let xp = xb as *const $xblock as *const u8;
                                // SAFETY: bytes 2..4 of the activation block (its `s`).
                                let s = unsafe { std::slice::from_raw_parts(xp, 4) };
                                mins[r] += f16_at(wb, 2) * f16_at(s, 2);
                            }
                        }
                    }
                    let mut out = [0f32; R];
                    for r in 0..R {
                        out[r] = vaddvq_f32(acc[r]) + mins[r];
                    }
                    out
                }
            };
        }

        /// Q8_0 weights at block pointer `p`.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn q8_halves(p: *const u8) -> (int8x16_t, int8x16_t) {
            // SAFETY: the caller passes a pointer to a whole 34-byte block.
            unsafe {
                let q = p.add(2) as *const i8;
                (vld1q_s8(q), vld1q_s8(q.add(16)))
            }
        }

        /// Q4_0 weights at block pointer `p`, as signed q − 8.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn q4_0_halves(p: *const u8) -> (int8x16_t, int8x16_t) {
            // SAFETY: the caller passes a pointer to a whole 18-byte block.
            let (lo, hi) = unsafe { nibbles(p.add(2)) };
            let eight = vdupq_n_s8(8);
            (vsubq_s8(lo, eight), vsubq_s8(hi, eight))
        }

        /// Q4_1 weights at block pointer `p`, unsigned 0..=15.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn q4_1_halves(p: *const u8) -> (int8x16_t, int8x16_t) {
            // SAFETY: the caller passes a pointer to a whole 20-byte block.
            unsafe { nibbles(p.add(4)) }
        }

        /// Q5_0 weights at block pointer `p`, as signed q − 16: a nibble whose fifth bit is
        /// clear is nibble − 16, i.e. the nibble with the top four bits set.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn q5_0_halves(p: *const u8) -> (int8x16_t, int8x16_t) {
            // SAFETY: the caller passes a pointer to a whole 22-byte block (qh at 2..6).
            let ((lo, hi), qh) = unsafe {
                (
                    nibbles(p.add(6)),
                    std::ptr::read_unaligned(p.add(2) as *const u32),
                )
            };
            let bit = vcombine_u8(
                vcreate_u8(0x8040_2010_0804_0201),
                vcreate_u8(0x8040_2010_0804_0201),
            );
            let high = |bits: u32| {
                let b = vcombine_u8(vdup_n_u8(bits as u8), vdup_n_u8((bits >> 8) as u8));
                vreinterpretq_s8_u8(vbicq_u8(vdupq_n_u8(0xf0), vtstq_u8(b, bit)))
            };
            (vorrq_s8(lo, high(qh)), vorrq_s8(hi, high(qh >> 16)))
        }

        /// Σ of the 32 products of the bytes at `w` (4- to 6-bit weights, as i8) with `y`.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn dot32(w: (int8x16_t, int8x16_t), y: *const i8) -> i32 {
            // SAFETY: the caller passes 32 readable bytes at `y`.
            unsafe {
                let s = $idot(vdupq_n_s32(0), w.0, vld1q_s8(y));
                vaddvq_s32($idot(s, w.1, vld1q_s8(y.add(16))))
            }
        }

        /// Q4_K / Q5_K super-blocks · Q8_K blocks: the sub-block dots exact in i32, scaled
        /// by the 6-bit scales; the minimums through the activation block sums.
        #[target_feature(enable = $features)]
        unsafe fn k4_row(w: &[u8], x: &[BlockQ8K], wbytes: usize, five: bool) -> f32 {
            let nb = (w.len() / wbytes).min(x.len());
            let mut sum = 0f32;
            for (b, y) in x.iter().enumerate().take(nb) {
                let wb = &w[b * wbytes..(b + 1) * wbytes];
                let (sc, m) = scales_mins_k4(wb[4..16].try_into().expect("12 scale bytes"));
                let (qh, qs) = if five {
                    (&wb[16..48], &wb[48..])
                } else {
                    (&wb[..0], &wb[16..])
                };
                let mut isum = 0i32;
                for j in 0..4 {
                    // SAFETY: 32 nibble bytes at 32j and 32 fifth-bit bytes are in the block;
                    // `y.qs` holds 256 bytes.
                    unsafe {
                        let bits = vld1q_u8_x2(qs.as_ptr().add(32 * j));
                        let m4 = vdupq_n_u8(0x0f);
                        let mut lo = (vandq_u8(bits.0, m4), vandq_u8(bits.1, m4));
                        let mut hi = (vshrq_n_u8(bits.0, 4), vshrq_n_u8(bits.1, 4));
                        if five {
                            let h = vld1q_u8_x2(qh.as_ptr());
                            let fifth = |v: uint8x16_t, bit: u8| {
                                vandq_u8(vtstq_u8(v, vdupq_n_u8(bit)), vdupq_n_u8(16))
                            };
                            let (b0, b1) = (1u8 << (2 * j), 1u8 << (2 * j + 1));
                            lo = (
                                vorrq_u8(lo.0, fifth(h.0, b0)),
                                vorrq_u8(lo.1, fifth(h.1, b0)),
                            );
                            hi = (
                                vorrq_u8(hi.0, fifth(h.0, b1)),
                                vorrq_u8(hi.1, fifth(h.1, b1)),
                            );
                        }
                        let s8 = |v: (uint8x16_t, uint8x16_t)| {
                            (vreinterpretq_s8_u8(v.0), vreinterpretq_s8_u8(v.1))
                        };
                        isum += sc[2 * j] as i32 * dot32(s8(lo), y.qs.as_ptr().add(64 * j));
                        isum +=
                            sc[2 * j + 1] as i32 * dot32(s8(hi), y.qs.as_ptr().add(64 * j + 32));
                    }
                }
                let mins: i32 = (0..8)
                    .map(|j| m[j] as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32))
                    .sum();
                sum += f16_at(wb, 0) * y.d * isum as f32 - f16_at(wb, 2) * y.d * mins as f32;
            }
            sum
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q4_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
            // SAFETY: same contract and features.
            unsafe { k4_row(w, x, std::mem::size_of::<BlockQ4K>(), false) }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q5_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
            // SAFETY: same contract and features.
            unsafe { k4_row(w, x, std::mem::size_of::<BlockQ5K>(), true) }
        }

        /// Q6_K super-blocks · Q8_K blocks: the unsigned 6-bit q (0..64) dotted per 16
        /// elements and scaled, exact in i32; the offset of 32 as 32·Σ sc_j·bsums_j.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn q6_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
            const B: usize = std::mem::size_of::<BlockQ6K>();
            let nb = (w.len() / B).min(x.len());
            let mut sum = 0f32;
            for (b, y) in x.iter().enumerate().take(nb) {
                let wb = &w[b * B..(b + 1) * B];
                let sc = |j: usize| wb[192 + j] as i8 as i32;
                let mut isum = 0i32;
                for half in 0..2 {
                    // SAFETY: ql (64 bytes) and qh (32 bytes) of this half are in the block;
                    // `y.qs` holds 256 bytes.
                    unsafe {
                        let ql = vld1q_u8_x4(wb.as_ptr().add(64 * half));
                        let qh = vld1q_u8_x2(wb.as_ptr().add(128 + 32 * half));
                        let (m4, m3) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x30));
                        // Quarter q, 16-byte part p: low nibbles of ql (q = 0, 1) or high
                        // (q = 2, 3), bits 2q..2q+2 of qh moved to bits 4..6.
                        let part = |q: usize, p: usize| {
                            let l = [ql.0, ql.1, ql.2, ql.3][(q % 2) * 2 + p];
                            let low = if q < 2 {
                                vandq_u8(l, m4)
                            } else {
                                vshrq_n_u8(l, 4)
                            };
                            let h = [qh.0, qh.1][p];
                            let high = match q {
                                0 => vshlq_n_u8(h, 4),
                                1 => vshlq_n_u8(h, 2),
                                2 => h,
                                _ => vshrq_n_u8(h, 2),
                            };
                            vreinterpretq_s8_u8(vorrq_u8(low, vandq_u8(high, m3)))
                        };
                        for q in 0..4 {
                            let k = 4 * half + q;
                            for p in 0..2 {
                                let yv = vld1q_s8(y.qs.as_ptr().add(32 * k + 16 * p));
                                let d = vaddvq_s32($idot(vdupq_n_s32(0), part(q, p), yv));
                                isum += sc(2 * k + p) * d;
                            }
                        }
                    }
                }
                let offset: i32 = (0..16).map(|j| sc(j) * y.bsums[j] as i32).sum();
                sum += f16_at(wb, 208) * y.d * (isum - 32 * offset) as f32;
            }
            sum
        }

        rows!(q5_0_rows, BlockQ8_0, Q5_0_BYTES, q5_0_halves, false);

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q5_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
            // SAFETY: same contract and features.
            unsafe { q5_0_rows::<1>(w, [x])[0] }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q5_0_x4(w: &[u8], x: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            // SAFETY: same contract and features.
            unsafe { q5_0_rows::<4>(w, x) }
        }

        rows!(q8_0_rows, BlockQ8_0, Q8_BYTES, q8_halves, false);
        rows!(q4_0_rows, BlockQ8_0, Q4_0_BYTES, q4_0_halves, false);
        rows!(q4_1_rows, BlockQ8_1, Q4_1_BYTES, q4_1_halves, true);

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q8_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
            // SAFETY: same contract and features.
            unsafe { q8_0_rows::<1>(w, [x])[0] }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q4_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
            // SAFETY: same contract and features.
            unsafe { q4_0_rows::<1>(w, [x])[0] }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q4_1_q8_1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
            // SAFETY: same contract and features.
            unsafe { q4_1_rows::<1>(w, [x])[0] }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q8_0_x4(w: &[u8], x: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            // SAFETY: same contract and features.
            unsafe { q8_0_rows::<4>(w, x) }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q4_0_x4(w: &[u8], x: [&[BlockQ8_0]; 4]) -> [f32; 4] {
            // SAFETY: same contract and features.
            unsafe { q4_0_rows::<4>(w, x) }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn q4_1_x4(w: &[u8], x: [&[BlockQ8_1]; 4]) -> [f32; 4] {
            // SAFETY: same contract and features.
            unsafe { q4_1_rows::<4>(w, x) }
        }
    };
}

mod plain {
    use std::arch::aarch64::*;

    /// acc + pairwise sums of the 16 products a[i]·b[i] (widening multiply, then add pairs).
    #[inline]
    #[target_feature(enable = "neon")]
    fn idot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_s8(vget_high_s8(a), vget_high_s8(b));
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }

    quantized_kernels!("neon", idot);
}

mod dotprod {
    use std::arch::aarch64::*;

    /// acc + `sdot` of a and b: each i32 lane gains the sum of 4 byte products. Inline asm
    /// because the `vdotq_s32` intrinsic is not stable Rust.
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn idot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: `sdot` only reads the two vector registers and updates `acc`; the enclosing
        // target_feature guarantees the CPU (checked at run time) has the instruction.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack)
            );
        }
        acc
    }

    quantized_kernels!("neon,dotprod", idot);
}
