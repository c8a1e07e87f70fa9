//! x86-64 row kernels: AVX2+FMA+F16C, and AVX-512 (F/BW/VL) with VNNI.
//!
//! Every function here is `#[target_feature]` and so `unsafe` to call: the caller must have
//! checked the CPU (`Variant::is_supported`, done once in `kernels_for`). Reads are unaligned
//! loads (`loadu`) from pointers inside the slices, for whole blocks only; the loop counts are
//! `min` of what both slices hold. Each kernel's scalar reference is the same-named function
//! in `scalar.rs`; `tests/variants.rs` compares them.

use super::RowKernels;
use crate::formats::{BlockQ8_0, BlockQ8_1, QK};
use std::arch::x86_64::*;

pub(super) const AVX2: RowKernels = RowKernels {
    f32: avx2_f32,
    f16: avx2_f16,
    q8_0_f32: avx2_q8_0_f32,
    q8_0: avx2_q8_0_q8_0,
    q4_0: avx2_q4_0_q8_0,
    q4_1: avx2_q4_1_q8_1,
};

pub(super) const AVX512: RowKernels = RowKernels {
    f32: avx512_f32,
    f16: avx512_f16,
    q8_0_f32: avx512_q8_0_f32,
    q8_0: avx512_q8_0_q8_0,
    q4_0: avx512_q4_0_q8_0,
    q4_1: avx512_q4_1_q8_1,
};

const Q8_BYTES: usize = std::mem::size_of::<BlockQ8_0>();
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

/// Σ over 32 byte pairs of `w[i] · x[i]` (both signed) as 8 i32 lanes, via ggml's sign
/// trick: `maddubs` wants an unsigned operand, so use `|w|` and move w's sign onto x.
#[inline]
#[target_feature(enable = "avx2")]
fn idot_i8_avx2(w: __m256i, x: __m256i) -> __m256i {
    let aw = _mm256_sign_epi8(w, w);
    let sx = _mm256_sign_epi8(x, w);
    // |w| ≤ 128 and |x| ≤ 127, so each i16 pair sum is at most 32512: no saturation.
    _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q8_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    let nb = (w.len() / Q8_BYTES).min(x.len());
    let mut acc = _mm256_setzero_ps();
    for (b, xb) in x.iter().enumerate().take(nb) {
        // SAFETY: block b's 34 bytes are inside `w` (b < nb).
        unsafe {
            let wb = w.as_ptr().add(b * Q8_BYTES);
            let wv = _mm256_loadu_si256(wb.add(2) as *const __m256i);
            let xv = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
            let d = _mm256_set1_ps(f16_at(wb) * f16_at(&xb.d as *const u16 as *const u8));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(idot_i8_avx2(wv, xv)), d, acc);
        }
    }
    hsum256(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q4_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    let nb = (w.len() / Q4_0_BYTES).min(x.len());
    let mut acc = _mm256_setzero_ps();
    for (b, xb) in x.iter().enumerate().take(nb) {
        // SAFETY: block b's 18 bytes are inside `w` (b < nb).
        unsafe {
            let wb = w.as_ptr().add(b * Q4_0_BYTES);
            let wv = _mm256_sub_epi8(nibbles256(wb.add(2)), _mm256_set1_epi8(8));
            let xv = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
            let d = _mm256_set1_ps(f16_at(wb) * f16_at(&xb.d as *const u16 as *const u8));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(idot_i8_avx2(wv, xv)), d, acc);
        }
    }
    hsum256(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q4_1_q8_1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
    let nb = (w.len() / Q4_1_BYTES).min(x.len());
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for (b, xb) in x.iter().enumerate().take(nb) {
        // SAFETY: block b's 20 bytes are inside `w` (b < nb).
        unsafe {
            let wb = w.as_ptr().add(b * Q4_1_BYTES);
            let wv = nibbles256(wb.add(4));
            let xv = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
            // Nibbles are unsigned already: maddubs takes them as they are.
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), _mm256_set1_epi16(1));
            let d = _mm256_set1_ps(f16_at(wb) * f16_at(&xb.d as *const u16 as *const u8));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, acc);
            mins += f16_at(wb.add(2)) * f16_at(&xb.s as *const u16 as *const u8);
        }
    }
    hsum256(acc) + mins
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

/// 16 lanes: the first 8 `a`, the last 8 `b` (per-block scales of a pair of blocks).
#[inline]
#[target_feature(enable = "avx512f")]
fn scales(a: f32, b: f32) -> __m512 {
    _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(a), _mm512_set1_ps(b))
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

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q8_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    let nb = (w.len() / Q8_BYTES).min(x.len());
    let mut acc = _mm512_setzero_ps();
    let mut b = 0;
    // SAFETY (all loads below): blocks b and b + 1 are < nb, so inside `w` and `x`.
    while b + 2 <= nb {
        unsafe {
            let (w0, w1) = (
                w.as_ptr().add(b * Q8_BYTES),
                w.as_ptr().add((b + 1) * Q8_BYTES),
            );
            let (x0, x1) = (&x[b], &x[b + 1]);
            let wv = join(
                _mm256_loadu_si256(w0.add(2) as *const __m256i),
                _mm256_loadu_si256(w1.add(2) as *const __m256i),
            );
            let xv = join(
                _mm256_loadu_si256(x0.qs.as_ptr() as *const __m256i),
                _mm256_loadu_si256(x1.qs.as_ptr() as *const __m256i),
            );
            let d = scales(
                f16_at(w0) * f16_at(&x0.d as *const u16 as *const u8),
                f16_at(w1) * f16_at(&x1.d as *const u16 as *const u8),
            );
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(idot_i8_512(wv, xv)), d, acc);
        }
        b += 2;
    }
    let mut sum = _mm512_reduce_add_ps(acc);
    if b < nb {
        unsafe {
            let w0 = w.as_ptr().add(b * Q8_BYTES);
            let wv = _mm256_loadu_si256(w0.add(2) as *const __m256i);
            let xv = _mm256_loadu_si256(x[b].qs.as_ptr() as *const __m256i);
            let d = f16_at(w0) * f16_at(&x[b].d as *const u16 as *const u8);
            sum += hsum256(_mm256_mul_ps(
                _mm256_cvtepi32_ps(idot_i8_256(wv, xv)),
                _mm256_set1_ps(d),
            ));
        }
    }
    sum
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    let nb = (w.len() / Q4_0_BYTES).min(x.len());
    let mut acc = _mm512_setzero_ps();
    let eight = _mm512_set1_epi8(8);
    let mut b = 0;
    // SAFETY (all loads below): blocks b and b + 1 are < nb, so inside `w` and `x`.
    while b + 2 <= nb {
        unsafe {
            let (w0, w1) = (
                w.as_ptr().add(b * Q4_0_BYTES),
                w.as_ptr().add((b + 1) * Q4_0_BYTES),
            );
            let (x0, x1) = (&x[b], &x[b + 1]);
            let nib = join(nibbles256(w0.add(2)), nibbles256(w1.add(2)));
            let xv = join(
                _mm256_loadu_si256(x0.qs.as_ptr() as *const __m256i),
                _mm256_loadu_si256(x1.qs.as_ptr() as *const __m256i),
            );
            // Σ (q − 8)·x = Σ q·x − Σ 8·x, both with unsigned-by-signed VNNI.
            let z = _mm512_setzero_si512();
            let dot = _mm512_sub_epi32(
                _mm512_dpbusd_epi32(z, nib, xv),
                _mm512_dpbusd_epi32(z, eight, xv),
            );
            let d = scales(
                f16_at(w0) * f16_at(&x0.d as *const u16 as *const u8),
                f16_at(w1) * f16_at(&x1.d as *const u16 as *const u8),
            );
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), d, acc);
        }
        b += 2;
    }
    let mut sum = _mm512_reduce_add_ps(acc);
    if b < nb {
        unsafe {
            let w0 = w.as_ptr().add(b * Q4_0_BYTES);
            let wv = _mm256_sub_epi8(nibbles256(w0.add(2)), _mm256_set1_epi8(8));
            let xv = _mm256_loadu_si256(x[b].qs.as_ptr() as *const __m256i);
            let d = f16_at(w0) * f16_at(&x[b].d as *const u16 as *const u8);
            sum += hsum256(_mm256_mul_ps(
                _mm256_cvtepi32_ps(idot_i8_256(wv, xv)),
                _mm256_set1_ps(d),
            ));
        }
    }
    sum
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn avx512_q4_1_q8_1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
    let nb = (w.len() / Q4_1_BYTES).min(x.len());
    let mut acc = _mm512_setzero_ps();
    let mut mins = 0f32;
    let mut b = 0;
    // SAFETY (all loads below): blocks b and b + 1 are < nb, so inside `w` and `x`.
    while b + 2 <= nb {
        unsafe {
            let (w0, w1) = (
                w.as_ptr().add(b * Q4_1_BYTES),
                w.as_ptr().add((b + 1) * Q4_1_BYTES),
            );
            let (x0, x1) = (&x[b], &x[b + 1]);
            let nib = join(nibbles256(w0.add(4)), nibbles256(w1.add(4)));
            let xv = join(
                _mm256_loadu_si256(x0.qs.as_ptr() as *const __m256i),
                _mm256_loadu_si256(x1.qs.as_ptr() as *const __m256i),
            );
            let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib, xv);
            let d = scales(
                f16_at(w0) * f16_at(&x0.d as *const u16 as *const u8),
                f16_at(w1) * f16_at(&x1.d as *const u16 as *const u8),
            );
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), d, acc);
            mins += f16_at(w0.add(2)) * f16_at(&x0.s as *const u16 as *const u8);
            mins += f16_at(w1.add(2)) * f16_at(&x1.s as *const u16 as *const u8);
        }
        b += 2;
    }
    let mut sum = _mm512_reduce_add_ps(acc);
    if b < nb {
        unsafe {
            let w0 = w.as_ptr().add(b * Q4_1_BYTES);
            let xv = _mm256_loadu_si256(x[b].qs.as_ptr() as *const __m256i);
            let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles256(w0.add(4)), xv);
            let d = f16_at(w0) * f16_at(&x[b].d as *const u16 as *const u8);
            sum += hsum256(_mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(d)));
            mins += f16_at(w0.add(2)) * f16_at(&x[b].s as *const u16 as *const u8);
        }
    }
    sum + mins
}
