//! x86-64 kernels of the 5-bit and k-quant weights: Q5_0 (through the generic Q4/Q8 kernel
//! macros of the parent module, given its unpacker) and Q4_K / Q5_K / Q6_K against Q8_K
//! activations, in AVX2 (256-bit `maddubs`/`madd`) and AVX-512 (512-bit, 64 elements per
//! step). Every integer sum is exact, as in the scalar references (`scalar.rs`, same names
//! without the prefix), which `tests/variants.rs` compares them with; only the f32 scaling
//! and summation order differ.

use super::{f16_at, hsum256, nibbles256, PREFETCH_AHEAD};
use crate::formats::kquants::K_SCALE_SIZE;
use crate::formats::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use std::arch::x86_64::*;

pub(super) const Q5_0_BYTES: usize = 22;
const Q4_K_BYTES: usize = std::mem::size_of::<BlockQ4K>();
const Q5_K_BYTES: usize = std::mem::size_of::<BlockQ5K>();
const Q6_K_BYTES: usize = std::mem::size_of::<BlockQ6K>();

/// Byte `i` is 0xff where bit `i` of `x` is set (ggml's `bytes_from_bits_32`).
#[inline]
#[target_feature(enable = "avx2")]
fn bytes_from_bits_32(x: u32) -> __m256i {
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(x as i32),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    // Every bit but bit (i % 8) set in byte i: all ones exactly where that bit is.
    let others = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_cmpeq_epi8(others, _mm256_set1_epi64x(-1))
}

/// Q5_0 weights at block pointer `p`, as signed q − 16 in element order: a nibble whose fifth
/// bit is clear is nibble − 16, i.e. the nibble with the top four bits set.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q5_0_quants(p: *const u8) -> __m256i {
    // SAFETY: the caller passes a pointer to a whole 22-byte block: qh at 2..6, qs at 6..22.
    unsafe {
        let qh = std::ptr::read_unaligned(p.add(2) as *const u32);
        let high = _mm256_andnot_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0xf0u8 as i8));
        _mm256_or_si256(nibbles256(p.add(6)), high)
    }
}

/// Two Q5_0 blocks' weights (block pointers), signed q − 16, interleaved as
/// [`super::nibbles_pair`]: one mask blend sets the top four bits of every nibble whose fifth
/// bit is clear, the fifth bits gathered into a 64-bit mask in the same order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub(super) unsafe fn q5_0_pair(p0: *const u8, p1: *const u8) -> __m512i {
    // SAFETY: the caller passes pointers to whole 22-byte blocks (qh at 2..6, qs at 6..22).
    let (n, h0, h1) = unsafe {
        (
            super::nibbles_pair(p0.add(6), p1.add(6)),
            std::ptr::read_unaligned(p0.add(2) as *const u32) as u64,
            std::ptr::read_unaligned(p1.add(2) as *const u32) as u64,
        )
    };
    // [lo0, lo1, hi0, hi1]: elements 0..16 of each block, then 16..32.
    let fifth = (h0 & 0xffff) | (h1 & 0xffff) << 16 | (h0 >> 16) << 32 | (h1 >> 16) << 48;
    _mm512_mask_blend_epi8(
        !fifth,
        n,
        _mm512_or_si512(n, _mm512_set1_epi8(0xf0u8 as i8)),
    )
}

/// The eight 6-bit scales and eight minimums of a Q4_K / Q5_K block as 16 bytes (scales
/// first), ggml's `utmp` shuffle of the packed 12 bytes.
#[inline(always)]
fn k4_scales_mins(scales: &[u8; K_SCALE_SIZE]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let w = |i: usize| {
        u32::from_le_bytes([
            scales[4 * i],
            scales[4 * i + 1],
            scales[4 * i + 2],
            scales[4 * i + 3],
        ])
    };
    let (u0, u1, u2) = (w(0), w(1), w(2));
    [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ]
}

/// Σ_j m_j · (bsums[2j] + bsums[2j+1]) of a Q4_K / Q5_K block: the minimums' integer part.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn k4_min_sum(mins: __m128i, y: &BlockQ8K) -> i32 {
    // SAFETY: bsums is 16 i16 = 32 bytes.
    let bsums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i) };
    let pairs = _mm_hadd_epi16(
        _mm256_castsi256_si128(bsums),
        _mm256_extracti128_si256(bsums, 1),
    );
    let prod = _mm_madd_epi16(_mm_cvtepu8_epi16(mins), pairs);
    let s = _mm_add_epi32(prod, _mm_shuffle_epi32(prod, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// The 4- or 5-bit weights of sub-blocks 2j and 2j + 1 of a Q4_K / Q5_K block (`qs` at
/// byte 32j of the nibbles, `qh` the 32 bytes of fifth bits or `None`).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn k4_pair(qs: *const u8, qh: Option<__m256i>, j: usize) -> (__m256i, __m256i) {
    // SAFETY: the caller passes a pointer to 32 readable bytes.
    let bits = unsafe { _mm256_loadu_si256(qs as *const __m256i) };
    let m4 = _mm256_set1_epi8(0x0f);
    let lo = _mm256_and_si256(bits, m4);
    let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
    match qh {
        None => (lo, hi),
        Some(qh) => {
            // Bit 2j (2j + 1) of byte l is the fifth bit of element l of sub-block 2j
            // (2j + 1): down to bit 0 (shifts below 8 keep it within its byte), up to bit 4.
            let one = _mm256_set1_epi8(1);
            let fifth = |bit: usize| {
                let h = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(bit as i32)), one);
                _mm256_slli_epi16(h, 4)
            };
            (
                _mm256_or_si256(lo, fifth(2 * j)),
                _mm256_or_si256(hi, fifth(2 * j + 1)),
            )
        }
    }
}

/// Asks for the cache lines `PREFETCH_AHEAD` past the `bytes`-long block at `wb`: a decoder
/// streams each matrix from memory once per token (see `PREFETCH_AHEAD`). A hint only, never
/// dereferenced, so a pointer past the matrix is harmless.
#[inline(always)]
fn prefetch_ahead(wb: *const u8, bytes: usize) {
    for line in (0..bytes).step_by(64) {
        // SAFETY: prefetch has no architectural effect beyond the cache.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(wb.wrapping_add(PREFETCH_AHEAD + line) as *const i8) };
    }
}

/// The parts of a Q4_K / Q5_K block the kernels use.
struct K4Block {
    /// The eight sub-block scales.
    sc: [u8; 8],
    /// The eight sub-block minimums (low 8 bytes).
    mins: __m128i,
    /// Q5_K's 32 bytes of fifth bits.
    qh: Option<__m256i>,
    /// The 128 bytes of nibbles.
    qs: *const u8,
}

/// Unpacks the Q4_K (`five` false) or Q5_K block at `wb`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn k4_block(wb: *const u8, five: bool) -> K4Block {
    // SAFETY: the caller passes a whole block: d, dmin (0..4), scales (4..16), then Q5_K's
    // qh (16..48) and the nibbles.
    unsafe {
        let sm = k4_scales_mins(&*(wb.add(4) as *const [u8; K_SCALE_SIZE]));
        let [s0, s1, s2, s3] = sm[0].to_le_bytes();
        let [s4, s5, s6, s7] = sm[1].to_le_bytes();
        let (qh, qs) = if five {
            (
                Some(_mm256_loadu_si256(wb.add(16) as *const __m256i)),
                wb.add(48),
            )
        } else {
            (None, wb.add(16))
        };
        K4Block {
            sc: [s0, s1, s2, s3, s4, s5, s6, s7],
            mins: _mm_set_epi32(0, 0, sm[3] as i32, sm[2] as i32),
            qh,
            qs,
        }
    }
}

/// Q4_K / Q5_K super-blocks · Q8_K blocks in AVX2: per super-block, the eight sub-block dots
/// (`maddubs` of the unsigned weights with the activations, scaled by `madd` with the
/// sub-block scale) summed exactly in i32 lanes, then `d·d_x` times that minus `dmin·d_x`
/// times the minimums' sum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_row(w: &[u8], x: &[BlockQ8K], wbytes: usize, five: bool) -> f32 {
    let nb = (w.len() / wbytes).min(x.len());
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = 0f32;
    for (b, y) in x.iter().enumerate().take(nb) {
        // SAFETY: block b < nb is whole inside `w`; the offsets are the block's fields.
        unsafe {
            let wb = w.as_ptr().add(b * wbytes);
            prefetch_ahead(wb, wbytes);
            let K4Block { sc, mins, qh, qs } = k4_block(wb, five);
            let mut sumi = _mm256_setzero_si256();
            for j in 0..4 {
                let (q_lo, q_hi) = k4_pair(qs.add(32 * j), qh, j);
                let y_lo = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j) as *const __m256i);
                let y_hi = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j + 32) as *const __m256i);
                let p_lo = _mm256_madd_epi16(
                    _mm256_set1_epi16(sc[2 * j] as i16),
                    _mm256_maddubs_epi16(q_lo, y_lo),
                );
                let p_hi = _mm256_madd_epi16(
                    _mm256_set1_epi16(sc[2 * j + 1] as i16),
                    _mm256_maddubs_epi16(q_hi, y_hi),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
            }
            let d = f16_at(wb) * y.d;
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
            acc_m += f16_at(wb.add(2)) * y.d * k4_min_sum(mins, y) as f32;
        }
    }
    hsum256(acc) - acc_m
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn avx2_q4_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { k4_row(w, x, Q4_K_BYTES, false) }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn avx2_q5_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { k4_row(w, x, Q5_K_BYTES, true) }
}

/// The 16 sub-block scales of quarter `k` (0..8, 32 elements) of a Q6_K block as i16 lanes:
/// lanes 0..8 scale `2k`, lanes 8..16 scale `2k + 1`.
#[inline]
#[target_feature(enable = "avx2")]
fn q6_scale_pair(scales: __m128i, k: usize) -> __m256i {
    let lo = (2 * k as u64) * 0x0101_0101_0101_0101;
    let hi = (2 * k as u64 + 1) * 0x0101_0101_0101_0101;
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(
        scales,
        _mm_set_epi64x(hi as i64, lo as i64),
    ))
}

/// The unsigned 6-bit weights (0..64) of half `half` (128 elements) of the Q6_K block at
/// `wb`, as four vectors of 32 in element order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q6_quarters(wb: *const u8, half: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x03);
    // SAFETY: the caller passes a whole block: ql at 0..128, qh at 128..192.
    let (ql0, ql1, qh) = unsafe {
        (
            _mm256_loadu_si256(wb.add(64 * half) as *const __m256i),
            _mm256_loadu_si256(wb.add(64 * half + 32) as *const __m256i),
            _mm256_loadu_si256(wb.add(128 + 32 * half) as *const __m256i),
        )
    };
    let high = |shift: i32| {
        // Bits shift..shift+2 of each byte to bits 4..6.
        let h = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), m2);
        _mm256_slli_epi16(h, 4)
    };
    [
        _mm256_or_si256(_mm256_and_si256(ql0, m4), high(0)),
        _mm256_or_si256(_mm256_and_si256(ql1, m4), high(2)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), high(4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), high(6)),
    ]
}

/// Q6_K super-blocks · Q8_K blocks in AVX2: the unsigned 6-bit q (0..64) with `maddubs`,
/// scaled per 16 elements by `madd`, summed exactly; the offset of 32 enters once per block
/// as 32·Σ sc_j·bsums_j.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn avx2_q6_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    let nb = (w.len() / Q6_K_BYTES).min(x.len());
    let mut acc = _mm256_setzero_ps();
    for (b, y) in x.iter().enumerate().take(nb) {
        // SAFETY: block b < nb is whole inside `w`: ql at 0..128, qh at 128..192, scales at
        // 192..208, d at 208..210.
        unsafe {
            let wb = w.as_ptr().add(b * Q6_K_BYTES);
            prefetch_ahead(wb, Q6_K_BYTES);
            let scales = _mm_loadu_si128(wb.add(192) as *const __m128i);
            let bsums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let offset =
                _mm256_slli_epi32(_mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(scales)), 5);
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                for (quarter, q) in q6_quarters(wb, half).into_iter().enumerate() {
                    let k = 4 * half + quarter;
                    let yv = _mm256_loadu_si256(y.qs.as_ptr().add(32 * k) as *const __m256i);
                    // q ≤ 63, |y| ≤ 128: each i16 pair sum ≤ 16128, no saturation.
                    let p =
                        _mm256_madd_epi16(q6_scale_pair(scales, k), _mm256_maddubs_epi16(q, yv));
                    sumi = _mm256_add_epi32(sumi, p);
                }
            }
            let d = f16_at(wb.add(208)) * y.d;
            let sumi = _mm256_sub_epi32(sumi, offset);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
    }
    hsum256(acc)
}

// ---- AVX-512 ---------------------------------------------------------------------------
//
// 64 elements per step: two sub-blocks (Q4_K/Q5_K) or four (Q6_K) in one 512-bit `maddubs`,
// their scales applied and accumulated in one VNNI `vpdpwssd`.

/// The 32 i16 lanes `[a × 16, b × 16]`.
#[inline]
#[target_feature(enable = "avx512f,avx2")]
fn halves_i16(a: i16, b: i16) -> __m512i {
    super::join(_mm256_set1_epi16(a), _mm256_set1_epi16(b))
}

/// [`k4_row`] in AVX-512: the two sub-blocks of each 64 elements in one register.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn k4_row_512(w: &[u8], x: &[BlockQ8K], wbytes: usize, five: bool) -> f32 {
    let nb = (w.len() / wbytes).min(x.len());
    let mut acc = _mm512_setzero_ps();
    let mut acc_m = 0f32;
    for (b, y) in x.iter().enumerate().take(nb) {
        // SAFETY: block b < nb is whole inside `w`; the offsets are the block's fields.
        unsafe {
            let wb = w.as_ptr().add(b * wbytes);
            prefetch_ahead(wb, wbytes);
            let K4Block { sc, mins, qh, qs } = k4_block(wb, five);
            let mut sumi = _mm512_setzero_si512();
            for j in 0..4 {
                let (q_lo, q_hi) = k4_pair(qs.add(32 * j), qh, j);
                let yv = _mm512_loadu_si512(y.qs.as_ptr().add(64 * j) as *const _);
                let p = _mm512_maddubs_epi16(super::join(q_lo, q_hi), yv);
                let scale = halves_i16(sc[2 * j] as i16, sc[2 * j + 1] as i16);
                sumi = _mm512_dpwssd_epi32(sumi, scale, p);
            }
            let d = f16_at(wb) * y.d;
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
            acc_m += f16_at(wb.add(2)) * y.d * k4_min_sum(mins, y) as f32;
        }
    }
    _mm512_reduce_add_ps(acc) - acc_m
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn avx512_q4_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { k4_row_512(w, x, Q4_K_BYTES, false) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn avx512_q5_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    // SAFETY: same contract and features.
    unsafe { k4_row_512(w, x, Q5_K_BYTES, true) }
}

/// [`avx2_q6_k_q8_k`] in AVX-512: two quarters (four sub-blocks of 16) per register.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn avx512_q6_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    let nb = (w.len() / Q6_K_BYTES).min(x.len());
    let mut acc = _mm512_setzero_ps();
    for (b, y) in x.iter().enumerate().take(nb) {
        // SAFETY: block b < nb is whole inside `w` (fields as in the AVX2 kernel).
        unsafe {
            let wb = w.as_ptr().add(b * Q6_K_BYTES);
            prefetch_ahead(wb, Q6_K_BYTES);
            let scales = _mm_loadu_si128(wb.add(192) as *const __m128i);
            let bsums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let offset =
                _mm256_slli_epi32(_mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(scales)), 5);
            let mut sumi = _mm512_setzero_si512();
            for half in 0..2 {
                let q = q6_quarters(wb, half);
                for pair in 0..2 {
                    let k = 4 * half + 2 * pair;
                    let qv = super::join(q[2 * pair], q[2 * pair + 1]);
                    let yv = _mm512_loadu_si512(y.qs.as_ptr().add(32 * k) as *const _);
                    let scale = super::join(q6_scale_pair(scales, k), q6_scale_pair(scales, k + 1));
                    sumi = _mm512_dpwssd_epi32(sumi, scale, _mm512_maddubs_epi16(qv, yv));
                }
            }
            let d = f16_at(wb.add(208)) * y.d;
            let sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(offset));
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        }
    }
    _mm512_reduce_add_ps(acc)
}
