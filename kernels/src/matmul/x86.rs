//! x86-64 row kernels: AVX2+FMA+F16C, and AVX-512 (F/BW/VL) with VNNI.
//!
//! Every function here is `#[target_feature]` and so `unsafe` to call: the caller must have
//! checked the CPU (`Variant::is_supported`, done once in `kernels_for`). Reads are unaligned
//! loads (`loadu`) from pointers inside the slices, for whole blocks only; the loop counts are
//! `min` of what both slices hold. Each kernel's scalar reference is the same-named function
//! in `scalar.rs`; `tests/variants.rs` compares them.

mod kquants;

use super::{scalar, BlockQ16, QuantizedKernels, RowKernels};
use crate::formats::{BlockQ8_0, BlockQ8_1, QK};
use kquants::{q5_0_pair, q5_0_quants, Q5_0_BYTES};
use std::arch::x86_64::*;

pub(super) const AVX2: RowKernels = RowKernels {
    f32: avx2_f32,
    f16: avx2_f16,
    q8_0_f32: avx2_q8_0_f32,
    q8_0: avx2_q8_0_q8_0,
    q4_0: avx2_q4_0_q8_0,
    q4_1: avx2_q4_1_q8_1,
    f32_x4: Some(avx2_f32_x4),
    f16_x4: Some(avx2_f16_x4),
    f32_tile: Some(avx2_f32_tile::<2, 1>),
    f16_tile: Some(avx2_f16_tile::<2, 1>),
    q8_0_f32_x4: None,
    q8_0_x4: Some(avx2_q8_0_q8_0_x4),
    q4_0_x4: Some(avx2_q4_0_q8_0_x4),
    q4_1_x4: Some(avx2_q4_1_q8_1_x4),
    q8_0_q16: avx2_q8_0_q16,
    q8_0_q16_x4: Some(avx2_q8_0_q16_x4),
    q8_0_q16_x2: Some(avx2_q8_0_q16_rows::<2>),
    q8_0_w4: Some(avx2_q8_0_wrows::<4>),
    q4_0_w4: Some(avx2_q4_0_wrows::<4>),
    q4_1_w4: Some(avx2_q4_1_wrows::<4>),
    q5_0: QuantizedKernels {
        one: avx2_q5_0_q8_0,
        w4: Some(avx2_q5_0_wrows::<4>),
        x4: Some(avx2_q5_0_rows::<4>),
        x2: None,
    },
    q5_1: QuantizedKernels::one(scalar::dot_q5_1_q8_1),
    q4_k: QuantizedKernels::one(kquants::avx2_q4_k_q8_k),
    q5_k: QuantizedKernels::one(kquants::avx2_q5_k_q8_k),
    q6_k: QuantizedKernels::one(kquants::avx2_q6_k_q8_k),
};

pub(super) const AVX512: RowKernels = RowKernels {
    f32: avx512_f32,
    f16: avx512_f16,
    q8_0_f32: avx512_q8_0_f32,
    q8_0: avx512_q8_0_q8_0,
    q4_0: avx512_q4_0_q8_0,
    q4_1: avx512_q4_1_q8_1,
    f32_x4: Some(avx512_f32_x4),
    f16_x4: Some(avx512_f16_x4),
    f32_tile: None,
    f16_tile: None,
    q8_0_f32_x4: Some(avx512_q8_0_f32_x4),
    q8_0_x4: Some(avx512_q8_0_q8_0_x4),
    q4_0_x4: Some(avx512_q4_0_q8_0_x4),
    q4_1_x4: Some(avx512_q4_1_q8_1_x4),
    q8_0_q16: avx512_q8_0_q16,
    q8_0_q16_x4: Some(avx512_q8_0_q16_x4),
    q8_0_q16_x2: Some(q8_0_q16_rows::<2>),
    q8_0_w4: Some(avx512_q8_0_q8_0_w4),
    q4_0_w4: Some(avx512_q4_0_q8_0_w4),
    q4_1_w4: Some(avx512_q4_1_q8_1_w4),
    q5_0: QuantizedKernels {
        one: avx512_q5_0_q8_0,
        w4: Some(q5_0_wrows::<4>),
        x4: Some(q5_0_rows::<4>),
        x2: None,
    },
    q5_1: QuantizedKernels::one(scalar::dot_q5_1_q8_1),
    q4_k: QuantizedKernels::one(kquants::avx512_q4_k_q8_k),
    q5_k: QuantizedKernels::one(kquants::avx512_q5_k_q8_k),
    q6_k: QuantizedKernels::one(kquants::avx512_q6_k_q8_k),
};

const Q8_BYTES: usize = std::mem::size_of::<BlockQ8_0>();
/// How far ahead of the weights being read the matrix-vector kernels prefetch. A decoder
/// streams every matrix from memory once per token; the hardware prefetcher alone left the
/// q4_1 kernel at ~18 GB/s on one thread. 8 KiB ahead measured best (SmolLM2 decode on 1
/// thread: no prefetch 124 tok/s, 1.4 KiB 148, 4 KiB 177, 8 KiB 194–198, 16 KiB 188).
const PREFETCH_AHEAD: usize = 8 << 10;
const Q4_0_BYTES: usize = 18;
const Q4_1_BYTES: usize = 20;

/// An f16 (little-endian bits at `p`) to f32 with F16C; one instruction, where the software
/// conversion would cost more than the block's dot product.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller passes a pointer to two readable bytes.
    let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// 32 nibbles of a Q4 block (16 bytes at `p`) as bytes 0..=15: low nibbles are elements
/// 0..16, high nibbles elements 16..32 (ggml's layout).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nibbles256(p: *const u8) -> __m256i {
    // SAFETY: the caller passes a pointer to 16 readable bytes.
    let q = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let lo = _mm_and_si128(q, _mm_set1_epi8(0x0f));
    let hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0f));
    _mm256_set_m128i(hi, lo)
}

// ---- AVX2 ------------------------------------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_f32(w: &[u8], x: &[f32]) -> f32 {
    let len = (w.len() / 4).min(x.len());
    let (wp, xp) = (w.as_ptr() as *const f32, x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY (all loads below): j + 8 * (u + 1) <= len elements are inside both slices.
    while j + 32 <= len {
        for (u, a) in acc.iter_mut().enumerate() {
            let (wv, xv) = unsafe {
                (
                    _mm256_loadu_ps(wp.add(j + 8 * u)),
                    _mm256_loadu_ps(xp.add(j + 8 * u)),
                )
            };
            *a = _mm256_fmadd_ps(wv, xv, *a);
        }
        j += 32;
    }
    while j + 8 <= len {
        // SAFETY: j + 8 <= len, inside both slices.
        let (wv, xv) = unsafe { (_mm256_loadu_ps(wp.add(j)), _mm256_loadu_ps(xp.add(j))) };
        acc[0] = _mm256_fmadd_ps(wv, xv, acc[0]);
        j += 8;
    }
    let mut sum = hsum256(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    for t in j..len {
        sum += f32::from_le_bytes(w[4 * t..4 * t + 4].try_into().unwrap()) * x[t];
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_f16(w: &[u8], x: &[f32]) -> f32 {
    let len = (w.len() / 2).min(x.len());
    let (wp, xp) = (w.as_ptr() as *const u16, x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY (all loads below): elements j..j + 8 * (u + 1) <= len are inside both slices.
    while j + 32 <= len {
        for (u, a) in acc.iter_mut().enumerate() {
            let (wv, xv) = unsafe {
                (
                    _mm256_cvtph_ps(_mm_loadu_si128(wp.add(j + 8 * u) as *const __m128i)),
                    _mm256_loadu_ps(xp.add(j + 8 * u)),
                )
            };
            *a = _mm256_fmadd_ps(wv, xv, *a);
        }
        j += 32;
    }
    while j + 8 <= len {
        // SAFETY: j + 8 <= len, inside both slices.
        let (wv, xv) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(wp.add(j) as *const __m128i)),
                _mm256_loadu_ps(xp.add(j)),
            )
        };
        acc[0] = _mm256_fmadd_ps(wv, xv, acc[0]);
        j += 8;
    }
    let mut sum = hsum256(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    for t in j..len {
        sum += half::f16::from_le_bytes([w[2 * t], w[2 * t + 1]]).to_f32() * x[t];
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q8_0_f32(w: &[u8], x: &[f32]) -> f32 {
    let nb = (w.len() / Q8_BYTES).min(x.len() / QK);
    let mut acc = [_mm256_setzero_ps(); 4];
    for b in 0..nb {
        // SAFETY: block b (34 bytes) and x[b*32..b*32+32] are inside the slices (b < nb).
        unsafe {
            let wb = w.as_ptr().add(b * Q8_BYTES);
            let d = _mm256_set1_ps(f16_at(wb));
            let xp = x.as_ptr().add(b * QK);
            for (u, a) in acc.iter_mut().enumerate() {
                let q = _mm_loadl_epi64(wb.add(2 + 8 * u) as *const __m128i);
                let wv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
                *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(8 * u)), *a);
            }
        }
    }
    hsum256(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

/// Generates the AVX2 matrix-matrix kernels of an elementwise format: `$tile::<W, U>`, `W`
/// weight rows against four f32 activation rows, each weight vector loaded and converted once
/// for all four rows and each activation vector once for all `W` weight rows, `U` vectors
/// per row in flight (W·4·U accumulators: enough independent FMAs to hide their latency);
/// and `$x4`, its one-weight-row form for the [`RowKernels`] table. `$load(wp, j)` yields
/// weights j..j+8 as f32; `$scalar(w, t)` weight t, for the tail of fewer than 8.
macro_rules! avx2_elementwise_tiles {
    ($tile:ident, $x4:ident, $size:expr, $load:expr, $scalar:expr) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $tile<const W: usize, const U: usize>(
            w: [&[u8]; W],
            x: [&[f32]; 4],
        ) -> [[f32; 4]; W] {
            let len = w
                .iter()
                .map(|w| w.len() / $size)
                .chain(x.iter().map(|r| r.len()))
                .min()
                .unwrap_or(0);
            let mut acc = [[[_mm256_setzero_ps(); U]; 4]; W];
            let mut j = 0;
            // SAFETY (all loads below): elements j..j + 8·U (or + 8) <= len are inside every
            // weight row and every row of `x`.
            while j + 8 * U <= len {
                for u in 0..U {
                    let wv: [__m256; W] =
                        std::array::from_fn(|i| unsafe { $load(w[i].as_ptr(), j + 8 * u) });
                    for (r, xr) in x.iter().enumerate() {
                        let xv = unsafe { _mm256_loadu_ps(xr.as_ptr().add(j + 8 * u)) };
                        for i in 0..W {
                            acc[i][r][u] = _mm256_fmadd_ps(wv[i], xv, acc[i][r][u]);
                        }
                    }
                }
                j += 8 * U;
            }
            while j + 8 <= len {
                let wv: [__m256; W] = std::array::from_fn(|i| unsafe { $load(w[i].as_ptr(), j) });
                for (r, xr) in x.iter().enumerate() {
                    let xv = unsafe { _mm256_loadu_ps(xr.as_ptr().add(j)) };
                    for i in 0..W {
                        acc[i][r][0] = _mm256_fmadd_ps(wv[i], xv, acc[i][r][0]);
                    }
                }
                j += 8;
            }
            // Loops, not nested `map` closures: through those, `hsum256` was compiled as a
            // call per output.
            let mut out = [[0f32; 4]; W];
            for i in 0..W {
                for r in 0..4 {
                    let mut v = acc[i][r][0];
                    for u in 1..U {
                        v = _mm256_add_ps(v, acc[i][r][u]);
                    }
                    out[i][r] = hsum256(v);
                }
            }
            for (i, o) in out.iter_mut().enumerate() {
                for t in j..len {
                    let wt = $scalar(w[i], t);
                    for (o, xr) in o.iter_mut().zip(x) {
                        *o += wt * xr[t];
                    }
                }
            }
            out
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $x4(w: &[u8], x: [&[f32]; 4]) -> [f32; 4] {
            // SAFETY: same contract and features; two vectors in flight keep eight FMA
            // chains for one weight row.
            unsafe { $tile::<1, 2>([w], x)[0] }
        }
    };
}

avx2_elementwise_tiles!(
    avx2_f32_tile,
    avx2_f32_x4,
    4,
    |wp: *const u8, j: usize| _mm256_loadu_ps((wp as *const f32).add(j)),
    |w: &[u8], t: usize| f32::from_le_bytes([w[4 * t], w[4 * t + 1], w[4 * t + 2], w[4 * t + 3]])
);

avx2_elementwise_tiles!(
    avx2_f16_tile,
    avx2_f16_x4,
    2,
    |wp: *const u8, j: usize| _mm256_cvtph_ps(_mm_loadu_si128(
        (wp as *const u16).add(j) as *const __m128i
    )),
    |w: &[u8], t: usize| half::f16::from_le_bytes([w[2 * t], w[2 * t + 1]]).to_f32()
);

/// The block loop every AVX2 quantized kernel shares: `$step(b, acc, mins)` adds block `b` of
/// `$r` rows into `acc` (and their `m·s` terms into `mins`), for b in `0..$nb`, even blocks
/// into one set of accumulators and odd blocks into another so FMAs do not wait on each
/// other (arrays indexed only by constants stay in registers). Each row's result is
/// `hsum(even + odd) + (mins even + mins odd)`: one order for every kernel built on it, so a
/// row's result does not depend on how many rows a call takes.
macro_rules! avx2_even_odd {
    ($r:ident, $nb:expr, $step:expr) => {{
        let step = $step;
        let (mut even, mut odd) = ([_mm256_setzero_ps(); $r], [_mm256_setzero_ps(); $r]);
        let (mut mins_even, mut mins_odd) = ([0f32; $r], [0f32; $r]);
        let mut b = 0;
        while b + 2 <= $nb {
            step(b, &mut even, &mut mins_even);
            step(b + 1, &mut odd, &mut mins_odd);
            b += 2;
        }
        if b < $nb {
            step(b, &mut even, &mut mins_even);
        }
        std::array::from_fn(|r| {
            hsum256(_mm256_add_ps(even[r], odd[r])) + (mins_even[r] + mins_odd[r])
        })
    }};
}

/// Generates the AVX2 kernels of one quantized format: `$rows`, one weight row against `R`
/// activation rows (R = 1: matrix-vector, R = 4: matrix-matrix, the weights unpacked once
/// for four rows), and `$wrows`, `R` weight rows against one activation row (matrix-vector
/// with four independent accumulator chains), whose every row is bit-identical to `$rows`'
/// R = 1 result. `$w(p)` gives a block's 32 weights at block pointer `p`; `$signed` selects
/// ggml's sign trick (signed weights) over a plain `maddubs` (unsigned Q4_1 nibbles); `$mins`
/// adds `m · s`. Both go through `$pair`, so they do the same float operations in the same
/// order: block b into the even or odd accumulator by its parity, then
/// `hsum(even + odd) + (mins even + mins odd)`.
macro_rules! avx2_rows {
    ($rows:ident, $wrows:ident, $pair:ident, $unpack:ident, $xblock:ty, $wbytes:expr, $w:ident, $signed:expr, $mins:expr) => {
        /// One weight block (unpacked as `(|w|, w, d_w, m_w)`) · one activation block: adds
        /// the block's scaled dot into `acc` and its `m·s` term into `mins`.
        #[inline(always)]
        unsafe fn $pair(
            (uw, wv, dw, mw): (__m256i, __m256i, f32, f32),
            xb: &$xblock,
            acc: &mut __m256,
            mins: &mut f32,
        ) {
            // SAFETY: `xb` is a whole block; the features are the caller's.
            unsafe {
                let mut xv = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
                if $signed {
                    xv = _mm256_sign_epi8(xv, wv);
                }
                // |w| ≤ 128, |x| ≤ 127: each i16 pair sum ≤ 32512, no saturation.
                let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(uw, xv), _mm256_set1_epi16(1));
                let d = _mm256_set1_ps(dw * f16_at(&xb.d as *const u16 as *const u8));
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, *acc);
                if $mins {
                    // s at bytes 2..4 of the Q8_1 block.
                    *mins += mw * f16_at((xb as *const $xblock as *const u8).add(2));
                }
            }
        }

        /// The weight block at `wb`: maddubs wants an unsigned operand, so |w| (w's sign
        /// goes onto x in `$pair`), w, its scale and (Q4_1) its minimum.
        #[inline(always)]
        unsafe fn $unpack(wb: *const u8) -> (__m256i, __m256i, f32, f32) {
            // SAFETY: the caller passes a whole block; the features are the caller's.
            unsafe {
                let wv = $w(wb);
                let uw = if $signed {
                    _mm256_sign_epi8(wv, wv)
                } else {
                    wv
                };
                // Q4_1: the minimum m at bytes 2..4 of the weight block.
                let mw = if $mins { f16_at(wb.add(2)) } else { 0.0 };
                (uw, wv, f16_at(wb), mw)
            }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        #[allow(clippy::needless_range_loop)] // b indexes `w` and all R rows of `x` alike
        unsafe fn $rows<const R: usize>(w: &[u8], x: [&[$xblock]; R]) -> [f32; R] {
            let nb = x.iter().fold(w.len() / $wbytes, |m, r| m.min(r.len()));
            avx2_even_odd!(R, nb, |b: usize,
                                   acc: &mut [__m256; R],
                                   mins: &mut [f32; R]| {
                // SAFETY: block b is inside `w` and every row of `x` (b < nb).
                unsafe {
                    let wb = $unpack(w.as_ptr().add(b * $wbytes));
                    for r in 0..R {
                        $pair(wb, x[r].get_unchecked(b), &mut acc[r], &mut mins[r]);
                    }
                }
            })
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        #[allow(clippy::needless_range_loop)] // r indexes `w` and the accumulators alike
        unsafe fn $wrows<const R: usize>(w: [&[u8]; R], x: &[$xblock]) -> [f32; R] {
            let nb = w.iter().fold(x.len(), |m, r| m.min(r.len() / $wbytes));
            avx2_even_odd!(R, nb, |b: usize,
                                   acc: &mut [__m256; R],
                                   mins: &mut [f32; R]| {
                // SAFETY: block b is inside `x` and every weight row (b < nb).
                unsafe {
                    let xb = x.get_unchecked(b);
                    for r in 0..R {
                        let wp = w[r].as_ptr().add(b * $wbytes);
                        // A hint only, never dereferenced, so a pointer past the matrix is
                        // harmless: decoding streams weights far larger than the caches.
                        _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(PREFETCH_AHEAD) as *const i8);
                        $pair($unpack(wp), xb, &mut acc[r], &mut mins[r]);
                    }
                }
            })
        }
    };
}

avx2_rows!(
    avx2_q8_0_rows,
    avx2_q8_0_wrows,
    avx2_q8_0_pair,
    avx2_q8_0_unpack,
    BlockQ8_0,
    Q8_BYTES,
    q8_quants,
    true,
    false
);
avx2_rows!(
    avx2_q4_0_rows,
    avx2_q4_0_wrows,
    avx2_q4_0_pair,
    avx2_q4_0_unpack,
    BlockQ8_0,
    Q4_0_BYTES,
    q4_0_quants,
    true,
    false
);
avx2_rows!(
    avx2_q4_1_rows,
    avx2_q4_1_wrows,
    avx2_q4_1_pair,
    avx2_q4_1_unpack,
    BlockQ8_1,
    Q4_1_BYTES,
    q4_1_quants,
    false,
    true
);

avx2_rows!(
    avx2_q5_0_rows,
    avx2_q5_0_wrows,
    avx2_q5_0_pair,
    avx2_q5_0_unpack,
    BlockQ8_0,
    Q5_0_BYTES,
    q5_0_quants,
    true,
    false
);

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q5_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { avx2_q5_0_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q8_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { avx2_q8_0_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q4_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { avx2_q4_0_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q4_1_q8_1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { avx2_q4_1_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q8_0_q8_0_x4(w: &[u8], x: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { avx2_q8_0_rows::<4>(w, x) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q4_0_q8_0_x4(w: &[u8], x: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { avx2_q4_0_rows::<4>(w, x) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q4_1_q8_1_x4(w: &[u8], x: [&[BlockQ8_1]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { avx2_q4_1_rows::<4>(w, x) }
}

// ---- AVX-512 ---------------------------------------------------------------------------

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_f32(w: &[u8], x: &[f32]) -> f32 {
    let len = (w.len() / 4).min(x.len());
    let (wp, xp) = (w.as_ptr() as *const f32, x.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY (all loads below): elements j..j + 16 * (u + 1) <= len are inside both slices.
    while j + 64 <= len {
        for (u, a) in acc.iter_mut().enumerate() {
            let (wv, xv) = unsafe {
                (
                    _mm512_loadu_ps(wp.add(j + 16 * u)),
                    _mm512_loadu_ps(xp.add(j + 16 * u)),
                )
            };
            *a = _mm512_fmadd_ps(wv, xv, *a);
        }
        j += 64;
    }
    while j + 16 <= len {
        // SAFETY: j + 16 <= len, inside both slices.
        let (wv, xv) = unsafe { (_mm512_loadu_ps(wp.add(j)), _mm512_loadu_ps(xp.add(j))) };
        acc[0] = _mm512_fmadd_ps(wv, xv, acc[0]);
        j += 16;
    }
    // A masked load for the last < 16 elements instead of a scalar loop.
    let rest = len - j;
    if rest > 0 {
        let m: __mmask16 = (1u16 << rest) - 1;
        // SAFETY: masked-off lanes are not read, and lanes j..len are inside both slices.
        let (wv, xv) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, wp.add(j)),
                _mm512_maskz_loadu_ps(m, xp.add(j)),
            )
        };
        acc[1] = _mm512_fmadd_ps(wv, xv, acc[1]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_f16(w: &[u8], x: &[f32]) -> f32 {
    let len = (w.len() / 2).min(x.len());
    let (wp, xp) = (w.as_ptr() as *const u16, x.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY (all loads below): elements j..j + 16 * (u + 1) <= len are inside both slices.
    while j + 64 <= len {
        for (u, a) in acc.iter_mut().enumerate() {
            let (wv, xv) = unsafe {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(j + 16 * u) as *const __m256i)),
                    _mm512_loadu_ps(xp.add(j + 16 * u)),
                )
            };
            *a = _mm512_fmadd_ps(wv, xv, *a);
        }
        j += 64;
    }
    while j + 16 <= len {
        // SAFETY: j + 16 <= len, inside both slices.
        let (wv, xv) = unsafe {
            (
                _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(j) as *const __m256i)),
                _mm512_loadu_ps(xp.add(j)),
            )
        };
        acc[0] = _mm512_fmadd_ps(wv, xv, acc[0]);
        j += 16;
    }
    let rest = len - j;
    if rest > 0 {
        let m: __mmask16 = (1u16 << rest) - 1;
        // SAFETY: masked-off lanes are not read; lanes j..len are inside both slices.
        let (wv, xv) = unsafe {
            (
                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, wp.add(j) as *const i16)),
                _mm512_maskz_loadu_ps(m, xp.add(j)),
            )
        };
        acc[1] = _mm512_fmadd_ps(wv, xv, acc[1]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_f32(w: &[u8], x: &[f32]) -> f32 {
    let nb = (w.len() / Q8_BYTES).min(x.len() / QK);
    let mut acc = [_mm512_setzero_ps(); 2];
    for b in 0..nb {
        // SAFETY: block b (34 bytes) and x[b*32..b*32+32] are inside the slices (b < nb).
        unsafe {
            let wb = w.as_ptr().add(b * Q8_BYTES);
            let d = _mm512_set1_ps(f16_at(wb));
            let xp = x.as_ptr().add(b * QK);
            for (u, a) in acc.iter_mut().enumerate() {
                let q = _mm_loadu_si128(wb.add(2 + 16 * u) as *const __m128i);
                let wv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d);
                *a = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp.add(16 * u)), *a);
            }
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

/// Two 32-byte halves as one 512-bit vector.
#[inline]
#[target_feature(enable = "avx512f")]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
}

/// Σ of signed byte products `w[i] · x[i]` in 16 i32 lanes with VNNI. `vpdpbusd` multiplies
/// unsigned by signed bytes, so take |w| and negate x where w is negative.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn idot_i8_512(w: __m512i, x: __m512i) -> __m512i {
    let neg = _mm512_movepi8_mask(w);
    let sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx)
}

/// The 256-bit form of [`idot_i8_512`] for an odd last block.
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx512vnni,avx2")]
fn idot_i8_256(w: __m256i, x: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        _mm256_sign_epi8(w, w),
        _mm256_sign_epi8(x, w),
    )
}

/// The f16 pairs at the start of two blocks, as f32 lanes `[p0[0], p0[1], p1[0], p1[1]]`
/// (scale and minimum of a Q4_1 block, scale and sum of a Q8_1 block; for Q8_0/Q4_0 blocks
/// lanes 1 and 3 are the first quants reinterpreted and are ignored). One conversion for
/// both blocks instead of two scalar ones.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_pairs(p0: *const u8, p1: *const u8) -> __m128 {
    // SAFETY: the caller passes pointers to blocks of at least 4 readable bytes.
    let (a, b) = unsafe {
        (
            std::ptr::read_unaligned(p0 as *const i32),
            std::ptr::read_unaligned(p1 as *const i32),
        )
    };
    _mm_cvtph_ps(_mm_set_epi32(0, 0, b, a))
}

/// 16 lanes of block scales from `[s0, _, s1, _]`: lanes 0..8 get s0, lanes 8..16 get s1.
#[inline]
#[target_feature(enable = "avx512f")]
fn spread(pairs: __m128) -> __m512 {
    let idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(pairs))
}

/// Like [`spread`] for the interleaved Q4 layout: lanes 0..4 and 8..12 get s0, lanes 4..8
/// and 12..16 get s1 (i32 lane k of a dot sums bytes 4k..4k+4 of the 128-bit lane k / 4).
#[inline]
#[target_feature(enable = "avx512f")]
fn spread_interleaved(pairs: __m128) -> __m512 {
    let idx = _mm512_set_epi32(2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0);
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(pairs))
}

/// The nibbles of two Q4 blocks (16 bytes each at `p0`, `p1`) as bytes 0..=15 in the order
/// [lo0, lo1, hi0, hi1] (16 bytes each): one 256-bit mask and shift unpack both blocks, where
/// ggml's order (lo0, hi0, lo1, hi1) would need two; the activations are permuted to match.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn nibbles_pair(p0: *const u8, p1: *const u8) -> __m512i {
    // SAFETY: the caller passes pointers to 16 readable bytes each.
    let q = unsafe {
        _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(p0 as *const __m128i)),
            _mm_loadu_si128(p1 as *const __m128i),
            1,
        )
    };
    let m = _mm256_set1_epi8(0x0f);
    join(
        _mm256_and_si256(q, m),
        _mm256_and_si256(_mm256_srli_epi16(q, 4), m),
    )
}

/// Two Q8_0 blocks' weights (block pointers).
#[inline]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn q8_pair(p0: *const u8, p1: *const u8) -> __m512i {
    // SAFETY: the caller passes pointers to whole blocks.
    unsafe { join(q8_quants(p0), q8_quants(p1)) }
}

/// Two Q4_0 blocks' weights, signed q − 8, interleaved as [`nibbles_pair`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn q4_0_pair(p0: *const u8, p1: *const u8) -> __m512i {
    // SAFETY: the caller passes pointers to whole 18-byte blocks.
    let n = unsafe { nibbles_pair(p0.add(2), p1.add(2)) };
    _mm512_sub_epi8(n, _mm512_set1_epi8(8))
}

/// Two Q4_1 blocks' weights, unsigned, interleaved as [`nibbles_pair`].
#[inline]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn q4_1_pair(p0: *const u8, p1: *const u8) -> __m512i {
    // SAFETY: the caller passes pointers to whole 20-byte blocks.
    unsafe { nibbles_pair(p0.add(4), p1.add(4)) }
}

/// Generates a kernel computing one quantized weight row against `R` activation rows, two
/// blocks per step in 512-bit registers with VNNI, the odd last block in 256 bits. With
/// R = 1 it is the matrix-vector kernel; R = 4 is the matrix-matrix one, which loads and
/// unpacks each weight block once for four rows.
///
/// `$wq(p)` gives a block's 32 weights (at block pointer `p`) as a 256-bit vector;
/// `$dot512(w, x)` / `$dot256(w, x)` the i32 lane sums of their products with 32 activations.
macro_rules! quantized_rows {
    ($name:ident, $xblock:ty, $wbytes:expr, $wq:ident, $wpair:ident, $interleaved:expr, $dot512:ident, $dot256:ident, $mins:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn $name<const R: usize>(w: &[u8], x: [&[$xblock]; R]) -> [f32; R] {
            let nb = x.iter().fold(w.len() / $wbytes, |m, r| m.min(r.len()));
            // Two accumulators per row (pairs alternate), so consecutive FMAs do not wait on
            // each other's latency.
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            let mut mins = [_mm_setzero_ps(); R];
            let mut b = 0;
            // SAFETY (all loads below): blocks b and b + 1 are < nb, so inside `w` and
            // every row of `x`.
            while b + 2 <= nb {
                unsafe {
                    let (w0, w1) = (
                        w.as_ptr().add(b * $wbytes),
                        w.as_ptr().add((b + 1) * $wbytes),
                    );
                    let wv = $wpair(w0, w1);
                    let wd = f16_pairs(w0, w1);
                    for r in 0..R {
                        let (x0, x1) = (&x[r][b], &x[r][b + 1]);
                        let mut xv = join(
                            _mm256_loadu_si256(x0.qs.as_ptr() as *const __m256i),
                            _mm256_loadu_si256(x1.qs.as_ptr() as *const __m256i),
                        );
                        if $interleaved {
                            // Match the weights' [lo0, lo1, hi0, hi1] order: 128-bit lanes
                            // (x0[..16], x0[16..], x1[..16], x1[16..]) → (0, 2, 1, 3).
                            xv = _mm512_shuffle_i64x2(xv, xv, 0b11_01_10_00);
                        }
                        let prod = _mm_mul_ps(
                            wd,
                            f16_pairs(
                                x0 as *const $xblock as *const u8,
                                x1 as *const $xblock as *const u8,
                            ),
                        );
                        let a = &mut acc[r][(b / 2) % 2];
                        let d = if $interleaved {
                            spread_interleaved(prod)
                        } else {
                            spread(prod)
                        };
                        *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps($dot512(wv, xv)), d, *a);
                        if $mins {
                            mins[r] = _mm_add_ps(mins[r], prod);
                        }
                    }
                }
                b += 2;
            }
            std::array::from_fn(|r| {
                // The odd last block b < nb is inside `w` and every x row.
                let tail = (b < nb).then(|| (w.as_ptr().wrapping_add(b * $wbytes), &x[r][b]));
                // SAFETY: same features; `tail` points at whole blocks.
                unsafe { finish_row!($xblock, $wq, $dot256, $mins, acc[r], mins[r], tail) }
            })
        }
    };
}

/// The end of one weight row · activation row product, shared by both kernel shapes: the two
/// accumulators reduced, then the odd last block `tail` (weight block pointer, activation
/// block) in 256 bits, then the m·s sums — always in this order, so both shapes give the same
/// bits. Expands to unsafe code: use inside `unsafe`, `tail` pointing at whole blocks.
macro_rules! finish_row {
    ($xblock:ty, $wq:ident, $dot256:ident, $mins:expr, $acc:expr, $min_sum:expr, $tail:expr) => {{
        let acc: [__m512; 2] = $acc;
        let mut out = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        let tail: Option<(*const u8, &$xblock)> = $tail;
        if let Some((w0, x0)) = tail {
            let xv = _mm256_loadu_si256(x0.qs.as_ptr() as *const __m256i);
            let prod = _mm_mul_ps(
                f16_pairs(w0, w0),
                f16_pairs(
                    x0 as *const $xblock as *const u8,
                    x0 as *const $xblock as *const u8,
                ),
            );
            out += hsum256(_mm256_mul_ps(
                _mm256_cvtepi32_ps($dot256($wq(w0), xv)),
                _mm256_set1_ps(_mm_cvtss_f32(prod)),
            ));
            if $mins {
                // Lane 1 only: lane 3 repeats the same block.
                out += _mm_cvtss_f32(_mm_shuffle_ps(prod, prod, 1));
            }
        }
        if $mins {
            // m·s products sit in lanes 1 and 3.
            let m: __m128 = $min_sum;
            out += _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1)) + _mm_cvtss_f32(_mm_shuffle_ps(m, m, 3));
        }
        out
    }};
}

/// Q8_0 weights at block pointer `p`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q8_quants(p: *const u8) -> __m256i {
    // SAFETY: the caller passes a pointer to a whole 34-byte block.
    unsafe { _mm256_loadu_si256(p.add(2) as *const __m256i) }
}

/// Q4_0 weights at block pointer `p`, as signed q − 8.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q4_0_quants(p: *const u8) -> __m256i {
    // SAFETY: the caller passes a pointer to a whole 18-byte block.
    _mm256_sub_epi8(unsafe { nibbles256(p.add(2)) }, _mm256_set1_epi8(8))
}

/// Q4_1 weights at block pointer `p`, unsigned 0..=15.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q4_1_quants(p: *const u8) -> __m256i {
    // SAFETY: the caller passes a pointer to a whole 20-byte block.
    unsafe { nibbles256(p.add(4)) }
}

/// Unsigned weights (Q4_1 nibbles) · signed activations: VNNI takes them as they are.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn udot_512(w: __m512i, x: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x)
}

/// 256-bit form of [`udot_512`].
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
fn udot_256(w: __m256i, x: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
}

quantized_rows!(
    q8_0_rows,
    BlockQ8_0,
    Q8_BYTES,
    q8_quants,
    q8_pair,
    false,
    idot_i8_512,
    idot_i8_256,
    false
);
quantized_rows!(
    q4_0_rows,
    BlockQ8_0,
    Q4_0_BYTES,
    q4_0_quants,
    q4_0_pair,
    true,
    idot_i8_512,
    idot_i8_256,
    false
);
quantized_rows!(
    q4_1_rows,
    BlockQ8_1,
    Q4_1_BYTES,
    q4_1_quants,
    q4_1_pair,
    true,
    udot_512,
    udot_256,
    true
);

quantized_rows!(
    q5_0_rows,
    BlockQ8_0,
    Q5_0_BYTES,
    q5_0_quants,
    q5_0_pair,
    true,
    idot_i8_512,
    idot_i8_256,
    false
);

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q5_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { q5_0_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { q8_0_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { q4_0_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_1_q8_1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { q4_1_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_q8_0_x4(w: &[u8], x: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { q8_0_rows::<4>(w, x) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_0_q8_0_x4(w: &[u8], x: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { q4_0_rows::<4>(w, x) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_1_q8_1_x4(w: &[u8], x: [&[BlockQ8_1]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { q4_1_rows::<4>(w, x) }
}

/// The matrix-vector form of [`quantized_rows!`]: `R` weight rows against one activation row,
/// so the activation blocks are loaded, permuted and their scales converted once for all `R`
/// rows. Each row goes through exactly the float operations of the one-row kernel, in the same
/// order, so its result is bit-identical to it.
macro_rules! quantized_wrows {
    ($name:ident, $xblock:ty, $wbytes:expr, $wq:ident, $wpair:ident, $interleaved:expr, $dot512:ident, $dot256:ident, $mins:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn $name<const R: usize>(w: [&[u8]; R], x: &[$xblock]) -> [f32; R] {
            let nb = w.iter().fold(x.len(), |m, r| m.min(r.len() / $wbytes));
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            let mut mins = [_mm_setzero_ps(); R];
            let mut b = 0;
            // SAFETY (all loads below): blocks b and b + 1 are < nb, so inside `x` and every
            // weight row.
            while b + 2 <= nb {
                unsafe {
                    let (x0, x1) = (&x[b], &x[b + 1]);
                    let mut xv = join(
                        _mm256_loadu_si256(x0.qs.as_ptr() as *const __m256i),
                        _mm256_loadu_si256(x1.qs.as_ptr() as *const __m256i),
                    );
                    if $interleaved {
                        xv = _mm512_shuffle_i64x2(xv, xv, 0b11_01_10_00);
                    }
                    let xd = f16_pairs(
                        x0 as *const $xblock as *const u8,
                        x1 as *const $xblock as *const u8,
                    );
                    for r in 0..R {
                        let (w0, w1) = (
                            w[r].as_ptr().add(b * $wbytes),
                            w[r].as_ptr().add((b + 1) * $wbytes),
                        );
                        // A hint only, never dereferenced here, so a pointer past the
                        // matrix is harmless.
                        _mm_prefetch::<_MM_HINT_T0>(w0.wrapping_add(PREFETCH_AHEAD) as *const i8);
                        let wv = $wpair(w0, w1);
                        let prod = _mm_mul_ps(f16_pairs(w0, w1), xd);
                        let a = &mut acc[r][(b / 2) % 2];
                        let d = if $interleaved {
                            spread_interleaved(prod)
                        } else {
                            spread(prod)
                        };
                        *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps($dot512(wv, xv)), d, *a);
                        if $mins {
                            mins[r] = _mm_add_ps(mins[r], prod);
                        }
                    }
                }
                b += 2;
            }
            std::array::from_fn(|r| {
                // The odd last block b < nb is inside `x` and every weight row.
                let tail = (b < nb).then(|| (w[r].as_ptr().wrapping_add(b * $wbytes), &x[b]));
                // SAFETY: same features; `tail` points at whole blocks.
                unsafe { finish_row!($xblock, $wq, $dot256, $mins, acc[r], mins[r], tail) }
            })
        }
    };
}

quantized_wrows!(
    q8_0_wrows,
    BlockQ8_0,
    Q8_BYTES,
    q8_quants,
    q8_pair,
    false,
    idot_i8_512,
    idot_i8_256,
    false
);
quantized_wrows!(
    q4_0_wrows,
    BlockQ8_0,
    Q4_0_BYTES,
    q4_0_quants,
    q4_0_pair,
    true,
    idot_i8_512,
    idot_i8_256,
    false
);
quantized_wrows!(
    q4_1_wrows,
    BlockQ8_1,
    Q4_1_BYTES,
    q4_1_quants,
    q4_1_pair,
    true,
    udot_512,
    udot_256,
    true
);

quantized_wrows!(
    q5_0_wrows,
    BlockQ8_0,
    Q5_0_BYTES,
    q5_0_quants,
    q5_0_pair,
    true,
    idot_i8_512,
    idot_i8_256,
    false
);

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_q8_0_w4(w: [&[u8]; 4], x: &[BlockQ8_0]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { q8_0_wrows::<4>(w, x) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_0_q8_0_w4(w: [&[u8]; 4], x: &[BlockQ8_0]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { q4_0_wrows::<4>(w, x) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_1_q8_1_w4(w: [&[u8]; 4], x: &[BlockQ8_1]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { q4_1_wrows::<4>(w, x) }
}

// ---- AVX-512, one weight row against four activation rows (matrix-matrix) ---------------
//
// The weights are loaded and converted to f32 once and used for four rows of x, so the
// conversion (the bulk of the work in the single-row kernels) is amortized 4x.

/// Generates an x4 kernel for an elementwise format: `$load(wp, j)` yields weights j..j+16
/// as f32, `$mload(mask, wp, j)` the masked tail; `$size` is bytes per element.
macro_rules! x4_elementwise {
    ($name:ident, $size:expr, $load:expr, $mload:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn $name(w: &[u8], x: [&[f32]; 4]) -> [f32; 4] {
            let len = (w.len() / $size)
                .min(x[0].len())
                .min(x[1].len())
                .min(x[2].len())
                .min(x[3].len());
            let wp = w.as_ptr();
            let mut acc = [[_mm512_setzero_ps(); 2]; 4];
            let mut j = 0;
            // SAFETY (all loads below): elements j..j + 32 (or + 16) <= len are inside `w`
            // and every row of `x`.
            while j + 32 <= len {
                let (w0, w1) = unsafe { ($load(wp, j), $load(wp, j + 16)) };
                for (a, xr) in acc.iter_mut().zip(x) {
                    // SAFETY: j + 32 <= len, inside every x row.
                    unsafe {
                        a[0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr.as_ptr().add(j)), a[0]);
                        a[1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr.as_ptr().add(j + 16)), a[1]);
                    }
                }
                j += 32;
            }
            while j < len {
                let rest = (len - j).min(16);
                let m: __mmask16 = ((1u32 << rest) - 1) as u16;
                // SAFETY: masked-off lanes are not read; lanes j..j + rest are in bounds.
                let wv = unsafe { $mload(m, wp, j) };
                for (a, xr) in acc.iter_mut().zip(x) {
                    let xv = unsafe { _mm512_maskz_loadu_ps(m, xr.as_ptr().add(j)) };
                    a[0] = _mm512_fmadd_ps(wv, xv, a[0]);
                }
                j += rest;
            }
            acc.map(|a| _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1])))
        }
    };
}

x4_elementwise!(
    avx512_f32_x4,
    4,
    |wp: *const u8, j: usize| _mm512_loadu_ps((wp as *const f32).add(j)),
    |m: __mmask16, wp: *const u8, j: usize| _mm512_maskz_loadu_ps(m, (wp as *const f32).add(j))
);

x4_elementwise!(
    avx512_f16_x4,
    2,
    |wp: *const u8, j: usize| _mm512_cvtph_ps(_mm256_loadu_si256(
        (wp as *const u16).add(j) as *const __m256i
    )),
    |m: __mmask16, wp: *const u8, j: usize| _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
        m,
        (wp as *const i16).add(j)
    ))
);

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_f32_x4(w: &[u8], x: [&[f32]; 4]) -> [f32; 4] {
    let nb = (w.len() / Q8_BYTES)
        .min(x[0].len() / QK)
        .min(x[1].len() / QK)
        .min(x[2].len() / QK)
        .min(x[3].len() / QK);
    let mut acc = [[_mm512_setzero_ps(); 2]; 4];
    for b in 0..nb {
        // SAFETY: block b (34 bytes) and elements b*32..b*32+32 of each x row are in bounds.
        unsafe {
            let wb = w.as_ptr().add(b * Q8_BYTES);
            let d = _mm512_set1_ps(f16_at(wb));
            let q0 = _mm_loadu_si128(wb.add(2) as *const __m128i);
            let q1 = _mm_loadu_si128(wb.add(18) as *const __m128i);
            // Same rounding as the single-row kernel: (q · d) first, then times x.
            let w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d);
            let w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d);
            for (a, xr) in acc.iter_mut().zip(x) {
                let xp = xr.as_ptr().add(b * QK);
                a[0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xp), a[0]);
                a[1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xp.add(16)), a[1]);
            }
        }
    }
    acc.map(|a| _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1])))
}

// ---- Q8_0 weights · 16-bit activations ----------------------------------------------------

/// One Q8_0 weight row · `R` rows of 16-bit activations in AVX2: the weights are widened to
/// i16 once per block and `vpmaddwd` takes 16 products per instruction. A row's blocks share
/// one activation scale ([`BlockQ16`]), applied once to the row's sum, so a block costs one
/// conversion and one FMA by the weight scale per row.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::needless_range_loop)] // b indexes `w` and all R rows of `x` alike
unsafe fn avx2_q8_0_q16_rows<const R: usize>(w: &[u8], x: [&[BlockQ16]; R]) -> [f32; R] {
    let nb = x.iter().fold(w.len() / Q8_BYTES, |m, r| m.min(r.len()));
    if nb == 0 {
        return [0.0; R];
    }
    // No m·s terms: `_mins` stays zero.
    let sums: [f32; R] =
        avx2_even_odd!(R, nb, |b: usize,
                               acc: &mut [__m256; R],
                               _mins: &mut [f32; R]| {
            // SAFETY: block b's 34 bytes are inside `w` and block b inside every x row (b < nb).
            unsafe {
                let wb = w.as_ptr().add(b * Q8_BYTES);
                // A hint only (never dereferenced): a decoder's output head streams 28 MB.
                _mm_prefetch::<_MM_HINT_T0>(wb.wrapping_add(PREFETCH_AHEAD) as *const i8);
                let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(2) as *const __m128i));
                let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(18) as *const __m128i));
                let dw = _mm256_set1_ps(f16_at(wb));
                for r in 0..R {
                    let xp = x[r].get_unchecked(b).qs.as_ptr() as *const __m256i;
                    // |w·x| ≤ 128 · 32767 per product, pairs < 2³¹: no overflow in vpmaddwd.
                    let dot = _mm256_add_epi32(
                        _mm256_madd_epi16(w0, _mm256_loadu_si256(xp)),
                        _mm256_madd_epi16(w1, _mm256_loadu_si256(xp.add(1))),
                    );
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), dw, acc[r]);
                }
            }
        });
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = sums[r] * x[r][0].d;
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q8_0_q16(w: &[u8], x: &[BlockQ16]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { avx2_q8_0_q16_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q8_0_q16_x4(w: &[u8], x: [&[BlockQ16]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { avx2_q8_0_q16_rows::<4>(w, x) }
}

/// One Q8_0 weight row · `R` rows of 16-bit activations: per block, the 32 weights are
/// widened to i16 once and `vpdpwssd` takes all 32 products in one instruction per row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::needless_range_loop)] // b indexes `w` and all R rows of `x` alike
unsafe fn q8_0_q16_rows<const R: usize>(w: &[u8], x: [&[BlockQ16]; R]) -> [f32; R] {
    let nb = x.iter().fold(w.len() / Q8_BYTES, |m, r| m.min(r.len()));
    // Four accumulators per row, block b into acc[r][b % 4]: one chain would wait out the
    // FMA latency (4 cycles) on every block.
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    for b in 0..nb {
        // SAFETY: block b's 34 bytes are inside `w` and block b inside every x row (b < nb).
        unsafe {
            let wb = w.as_ptr().add(b * Q8_BYTES);
            let w16 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(wb.add(2) as *const __m256i));
            let dw = f16_at(wb);
            for r in 0..R {
                let xb = &x[r][b];
                let xv = _mm512_loadu_si512(xb.qs.as_ptr() as *const __m512i);
                let dot = _mm512_dpwssd_epi32(_mm512_setzero_si512(), w16, xv);
                let a = &mut acc[r][b % 4];
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(dw * xb.d), *a);
            }
        }
    }
    acc.map(|a| {
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(a[0], a[1]),
            _mm512_add_ps(a[2], a[3]),
        ))
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_q16(w: &[u8], x: &[BlockQ16]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { q8_0_q16_rows::<1>(w, [x])[0] }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_q16_x4(w: &[u8], x: [&[BlockQ16]; 4]) -> [f32; 4] {
    // SAFETY: same contract and features.
    unsafe { q8_0_q16_rows::<4>(w, x) }
}

// ---- activation quantizers ----------------------------------------------------------------
//
// The portable quantizers, compiled with AVX2 enabled so they vectorize (their integer
// min/max need more than baseline SSE2). Same code, so the same results as the scalar path.

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_0_avx2(x: &[f32], out: &mut Vec<BlockQ8_0>) {
    crate::formats::quantize_q8_0_blocks(x, out)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_k_avx2(x: &[f32], out: &mut Vec<crate::formats::BlockQ8K>) {
    crate::formats::kquants::quantize_q8_k_blocks(x, out)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_1_avx2(x: &[f32], out: &mut Vec<BlockQ8_1>) {
    crate::formats::quantize_q8_1_blocks(x, out)
}

/// [`super::quantize_q16_row`] in AVX2, with identical results (the portable loop does not
/// vectorize its abs-max and rounding well, and the encoder quantizes every matrix's input).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q16_avx2(x: &[f32], out: &mut Vec<BlockQ16>) {
    // SAFETY (loads): each `c` holds 32 floats: four 256-bit loads.
    let load = |c: &[f32]| -> [__m256; 4] {
        [0, 1, 2, 3].map(|i| unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * i)) })
    };
    let mut amax = 0f32;
    for c in x.chunks_exact(QK) {
        amax = amax.max(abs_max_256(load(c)));
    }
    let d = amax / 32767.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    out.reserve(x.len() / QK);
    for c in x.chunks_exact(QK) {
        let v = load(c);
        let q: [__m256i; 4] = [0, 1, 2, 3].map(|i| round_away_256(_mm256_mul_ps(v[i], id)));
        // |v · id| ≤ 32767.5, so the i32 lanes are in range; packs saturates like `clamp`
        // and interleaves 128-bit lanes, which the permute undoes.
        let lo = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q[0], q[1]));
        let hi = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q[2], q[3]));
        let mut block = BlockQ16 { d, qs: [0; QK] };
        // SAFETY: qs holds 32 i16 = two 256-bit stores.
        unsafe {
            _mm256_storeu_si256(block.qs.as_mut_ptr() as *mut __m256i, lo);
            _mm256_storeu_si256(block.qs.as_mut_ptr().add(16) as *mut __m256i, hi);
        }
        out.push(block);
    }
}

/// Round half away from zero and truncate to i32 lanes, as
/// [`crate::formats::round_half_away`] does per element; NaN lanes become 0 (as `as i32`).
#[inline]
#[target_feature(enable = "avx2")]
fn round_away_256(y: __m256) -> __m256i {
    let sign = _mm256_and_si256(_mm256_castps_si256(y), _mm256_set1_epi32(i32::MIN));
    let half = _mm256_or_si256(sign, _mm256_castps_si256(_mm256_set1_ps(0.49999997)));
    let r = _mm256_cvttps_epi32(_mm256_add_ps(y, _mm256_castsi256_ps(half)));
    _mm256_and_si256(r, _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(y, y)))
}

/// max |x| over 32 values, NaN ignored, on the bit patterns (as `formats::abs_max`).
#[inline]
#[target_feature(enable = "avx2")]
fn abs_max_256(v: [__m256; 4]) -> f32 {
    let mask = _mm256_set1_epi32(0x7fff_ffff);
    let inf = _mm256_set1_epi32(0x7f80_0000);
    let a = v.map(|v| {
        let a = _mm256_and_si256(_mm256_castps_si256(v), mask);
        // NaN bit patterns are above infinity's (signed compare is exact: the sign is
        // cleared): count them as 0.
        _mm256_andnot_si256(_mm256_cmpgt_epi32(a, inf), a)
    });
    let m = _mm256_max_epu32(_mm256_max_epu32(a[0], a[1]), _mm256_max_epu32(a[2], a[3]));
    let m = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
    let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
    let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m));
    f32::from_bits(_mm_cvtsi128_si32(m) as u32)
}

/// Round half away from zero and truncate to i32 lanes, as
/// [`crate::formats::round_half_away`] does per element; NaN lanes become 0 (as `as i32`).
#[inline]
#[target_feature(enable = "avx512f")]
fn round_away_512(y: __m512) -> __m512i {
    let sign = _mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(i32::MIN));
    let half = _mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(0.49999997)));
    let r = _mm512_cvttps_epi32(_mm512_add_ps(y, _mm512_castsi512_ps(half)));
    _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(y, y), r)
}

/// max |x| over 32 values, NaN ignored, on the bit patterns (as `formats::abs_max`).
#[inline]
#[target_feature(enable = "avx512f")]
fn abs_max_512(v0: __m512, v1: __m512) -> f32 {
    let mask = _mm512_set1_epi32(0x7fff_ffff);
    let inf = _mm512_set1_epi32(0x7f80_0000);
    let a0 = _mm512_and_si512(_mm512_castps_si512(v0), mask);
    let a1 = _mm512_and_si512(_mm512_castps_si512(v1), mask);
    // NaN bit patterns are above infinity's: count them as 0.
    let a0 = _mm512_maskz_mov_epi32(_mm512_cmple_epu32_mask(a0, inf), a0);
    let a1 = _mm512_maskz_mov_epi32(_mm512_cmple_epu32_mask(a1, inf), a1);
    f32::from_bits(_mm512_reduce_max_epu32(_mm512_max_epu32(a0, a1)))
}

/// [`super::quantize_q16_row`] in AVX-512, with identical results.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn quantize_q16_avx512(x: &[f32], out: &mut Vec<BlockQ16>) {
    let mut amax = 0f32;
    for c in x.chunks_exact(QK) {
        // SAFETY: `c` holds 32 floats.
        let (v0, v1) = unsafe {
            (
                _mm512_loadu_ps(c.as_ptr()),
                _mm512_loadu_ps(c.as_ptr().add(16)),
            )
        };
        amax = amax.max(abs_max_512(v0, v1));
    }
    let d = amax / 32767.0;
    let id = _mm512_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    for c in x.chunks_exact(QK) {
        // SAFETY: `c` holds 32 floats.
        let (v0, v1) = unsafe {
            (
                _mm512_loadu_ps(c.as_ptr()),
                _mm512_loadu_ps(c.as_ptr().add(16)),
            )
        };
        let q0 = _mm512_cvtsepi32_epi16(round_away_512(_mm512_mul_ps(v0, id)));
        let q1 = _mm512_cvtsepi32_epi16(round_away_512(_mm512_mul_ps(v1, id)));
        let mut block = BlockQ16 { d, qs: [0; QK] };
        // SAFETY: qs holds 32 i16 = two 256-bit stores.
        unsafe {
            _mm256_storeu_si256(block.qs.as_mut_ptr() as *mut __m256i, q0);
            _mm256_storeu_si256(block.qs.as_mut_ptr().add(16) as *mut __m256i, q1);
        }
        out.push(block);
    }
}

/// [`crate::formats::quantize_q8_0_blocks`] in AVX-512, with identical results.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8_0_avx512(x: &[f32], out: &mut Vec<BlockQ8_0>) {
    for c in x.chunks_exact(QK) {
        // SAFETY: `c` holds 32 floats.
        let (v0, v1) = unsafe {
            (
                _mm512_loadu_ps(c.as_ptr()),
                _mm512_loadu_ps(c.as_ptr().add(16)),
            )
        };
        let d = abs_max_512(v0, v1) / 127.0;
        let id = _mm512_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let q0 = _mm512_cvtsepi32_epi8(round_away_512(_mm512_mul_ps(v0, id)));
        let q1 = _mm512_cvtsepi32_epi8(round_away_512(_mm512_mul_ps(v1, id)));
        let mut block = BlockQ8_0 {
            d: half::f16::from_f32(d).to_bits(),
            qs: [0; QK],
        };
        // SAFETY: qs holds 32 i8 = two 128-bit stores.
        unsafe {
            _mm_storeu_si128(block.qs.as_mut_ptr() as *mut __m128i, q0);
            _mm_storeu_si128(block.qs.as_mut_ptr().add(16) as *mut __m128i, q1);
        }
        out.push(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs for the quantizer checks: random blocks at several scales, exact ties (values
    /// that scale to k + 0.5), zeros, NaN and infinities.
    fn quantizer_inputs() -> impl Iterator<Item = Vec<f32>> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..2000).map(move |round| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let scale = [1e-6f32, 1e-2, 1.0, 37.0, 1e4][round % 5];
            let mut x: Vec<f32> = (0..4 * QK)
                .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale)
                .collect();
            // Exact ties: amax 127 (so d = 1) and values k + 0.5.
            for (j, v) in x[..QK].iter_mut().enumerate() {
                *v = if j == 0 {
                    127.0
                } else {
                    (j as f32 - 16.0) + 0.5
                };
            }
            x[QK..2 * QK].fill(0.0);
            if round % 7 == 0 {
                x[2 * QK + 3] = f32::NAN;
                x[2 * QK + 5] = f32::INFINITY;
            }
            x
        })
    }

    /// Block bits, so NaN scales compare too.
    fn q16_bits(v: &[BlockQ16]) -> Vec<(u32, [i16; QK])> {
        v.iter().map(|b| (b.d.to_bits(), b.qs)).collect()
    }

    /// The AVX-512 activation quantizers give exactly the portable ones' blocks.
    #[test]
    fn avx512_quantizers_equal_the_portable_ones() {
        if !crate::Variant::Avx512.is_supported() {
            eprintln!("no AVX-512 here: checked on machines that have it");
            return;
        }
        for (round, x) in quantizer_inputs().enumerate() {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            crate::formats::quantize_q8_0_blocks(&x, &mut a);
            // SAFETY: AVX-512 checked above.
            unsafe { quantize_q8_0_avx512(&x, &mut b) };
            assert_eq!(a, b, "q8_0 round {round}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            super::super::quantize_q16_row(&x, &mut a);
            // SAFETY: AVX-512 checked above.
            unsafe { quantize_q16_avx512(&x, &mut b) };
            assert_eq!(q16_bits(&a), q16_bits(&b), "q16 round {round}");
        }
    }

    /// The AVX2 16-bit activation quantizer gives exactly the portable one's blocks.
    #[test]
    fn avx2_q16_quantizer_equals_the_portable_one() {
        assert!(
            crate::Variant::Avx2.is_supported(),
            "every x86-64 machine edgenlu targets has AVX2"
        );
        for (round, x) in quantizer_inputs().enumerate() {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            super::super::quantize_q16_row(&x, &mut a);
            // SAFETY: AVX2 checked above.
            unsafe { quantize_q16_avx2(&x, &mut b) };
            assert_eq!(q16_bits(&a), q16_bits(&b), "q16 round {round}");
        }
    }
}
