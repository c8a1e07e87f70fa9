//! ggml's 5-bit blocks of 32 (Q5_0, Q5_1) and its k-quants: super-blocks of [`QK_K`] = 256
//! elements with 6-bit (Q4_K, Q5_K) or 8-bit (Q6_K) sub-block scales, the mix `Q4_K_M` files
//! use, plus Q8_K, the activation blocks the k-quant dot products take. Layouts, dequantizers
//! and quantizers follow ggml (`ggml-common.h`, `ggml-quants.c`) and the `gguf` Python package
//! (`gguf.quants`), checked byte for byte by `kernels/tests/gguf_golden.rs`.

use super::{abs_max, QK};
use half::f16;

/// Elements per k-quant super-block (ggml's QK_K).
pub const QK_K: usize = 256;

/// Bytes of the packed 6-bit scales and minimums of a Q4_K / Q5_K block (ggml's K_SCALE_SIZE).
pub const K_SCALE_SIZE: usize = 12;

/// ggml's Q5_0 block: 32 5-bit values sharing one f16 scale; x ≈ d · (q − 16). The low four
/// bits are laid out as [`super::BlockQ4_0`]'s nibbles; bit `j` of the little-endian `qh` is
/// the fifth bit of element `j`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_0 {
    /// Scale, as IEEE half bits.
    pub d: u16,
    /// Fifth bits, element j at bit j (little-endian u32).
    pub qh: [u8; 4],
    /// Nibbles: low = element j, high = element j + 16.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// ggml's Q5_1 block: 32 5-bit values with an f16 scale and minimum; x ≈ d · q + m. Bits as
/// [`BlockQ5_0`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_1 {
    /// Scale, as IEEE half bits.
    pub d: u16,
    /// Minimum, as IEEE half bits.
    pub m: u16,
    /// Fifth bits, element j at bit j (little-endian u32).
    pub qh: [u8; 4],
    /// Nibbles: low = element j, high = element j + 16.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

/// ggml's Q4_K super-block: 8 sub-blocks of 32 4-bit values, each with a 6-bit scale and a
/// 6-bit minimum (packed in `scales`, see [`scale_min_k4`]) under the f16 `d` and `dmin`:
/// x ≈ d·sc_j·q − dmin·m_j. `qs` holds 64 elements per 32 bytes: sub-block 2i in the low
/// nibbles, 2i + 1 in the high ones.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the sub-block scales, IEEE half bits.
    pub d: u16,
    /// Super-block scale of the sub-block minimums, IEEE half bits.
    pub dmin: u16,
    /// Sub-block scales and minimums, 6 bits each.
    pub scales: [u8; K_SCALE_SIZE],
    /// Nibbles (see the type's doc).
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// ggml's Q5_K super-block: [`BlockQ4K`] plus a fifth bit per element: bit `2i` of `qh[l]` is
/// the fifth bit of element `l` of sub-block `2i`, bit `2i + 1` that of sub-block `2i + 1`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the sub-block scales, IEEE half bits.
    pub d: u16,
    /// Super-block scale of the sub-block minimums, IEEE half bits.
    pub dmin: u16,
    /// Sub-block scales and minimums, 6 bits each.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits (see the type's doc).
    pub qh: [u8; QK_K / 8],
    /// Low four bits, as [`BlockQ4K::qs`].
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

/// ggml's Q6_K super-block: 16 sub-blocks of 16 6-bit values with signed 8-bit scales under
/// an f16 `d`: x ≈ d·sc_j·(q − 32). Per half (128 elements): `ql` 64 bytes of low nibbles
/// (elements l and l + 64 in byte l, l + 32 and l + 96 in byte l + 32), `qh` 32 bytes of
/// 2-bit high parts (bits 0-1, 2-3, 4-5, 6-7 of byte l: elements l, l + 32, l + 64, l + 96).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ6K {
    /// Low four bits (see the type's doc).
    pub ql: [u8; QK_K / 2],
    /// High two bits (see the type's doc).
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, IEEE half bits.
    pub d: u16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// ggml's Q8_K block, for *activations* dotted with k-quant weights: 256 signed bytes with an
/// f32 scale, and the sums of each 16 of them (`bsums`), which carry the weights' minimums
/// (Q4_K, Q5_K) and Q6_K's offset of 32 without touching the values again. Never a weight
/// format here (no [`super::DType`] for it).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8K {
    /// Scale: x ≈ d · qs[i].
    pub d: f32,
    /// Quantized values.
    pub qs: [i8; QK_K],
    /// Sum of each 16 consecutive `qs`.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

/// ggml's `get_scale_min_k4`: the 6-bit scale and minimum of sub-block `j` (0..8) of a
/// Q4_K / Q5_K block. Sub-blocks 0-3 keep theirs in the low six bits of bytes j and j + 4;
/// 4-7 split theirs over a nibble of bytes 8-11 and the top two bits of bytes 0-7.
#[inline(always)]
pub fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The eight scales and eight minimums of a Q4_K / Q5_K block, unpacked.
#[inline(always)]
pub fn scales_mins_k4(q: &[u8; K_SCALE_SIZE]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        (sc[j], m[j]) = scale_min_k4(j, q);
    }
    (sc, m)
}

/// The fifth bit of element `j` (0..32) of a Q5_0 / Q5_1 block, as 0 or 16.
#[inline(always)]
pub fn q5_high(qh: [u8; 4], j: usize) -> u8 {
    (((u32::from_le_bytes(qh) >> j) & 1) << 4) as u8
}

/// The 32 unsigned 5-bit values (0..32) of a Q5_0 / Q5_1 block, in element order.
#[inline(always)]
pub fn q5_values(qh: [u8; 4], qs: &[u8; QK / 2]) -> [u8; QK] {
    std::array::from_fn(|j| {
        let nibble = if j < QK / 2 {
            qs[j] & 0x0f
        } else {
            qs[j - QK / 2] >> 4
        };
        nibble | q5_high(qh, j)
    })
}

/// The 256 unsigned 4- or 5-bit values of a Q4_K / Q5_K block, in element order (`qh` is
/// `None` for Q4_K).
#[inline(always)]
pub fn k4_values(qs: &[u8; QK_K / 2], qh: Option<&[u8; QK_K / 8]>) -> [u8; QK_K] {
    std::array::from_fn(|e| {
        let (sub, l) = (e / 32, e % 32);
        let byte = qs[sub / 2 * 32 + l];
        let nibble = if sub % 2 == 0 { byte & 0x0f } else { byte >> 4 };
        nibble | qh.map_or(0, |qh| ((qh[l] >> sub) & 1) << 4)
    })
}

/// The 256 unsigned 6-bit values (0..64; the element is q − 32) of a Q6_K block, in element
/// order.
#[inline(always)]
pub fn q6k_values(b: &BlockQ6K) -> [u8; QK_K] {
    std::array::from_fn(|e| {
        let (half, r) = (e / 128, e % 128);
        let (quarter, l) = (r / 32, r % 32);
        let ql = b.ql[half * 64 + (quarter % 2) * 32 + l];
        let low = if quarter < 2 { ql & 0x0f } else { ql >> 4 };
        let high = (b.qh[half * 32 + l] >> (2 * quarter)) & 3;
        low | (high << 4)
    })
}

/// Q5_0 block decoded as ggml's `dequantize_row_q5_0`.
pub fn dequantize_q5_0(b: &BlockQ5_0, out: &mut [f32]) {
    let d = f16::from_bits(b.d).to_f32();
    for (o, q) in out.iter_mut().zip(q5_values(b.qh, &b.qs)) {
        *o = (q as i32 - 16) as f32 * d;
    }
}

/// Q5_1 block decoded as ggml's `dequantize_row_q5_1`.
pub fn dequantize_q5_1(b: &BlockQ5_1, out: &mut [f32]) {
    let (d, m) = (f16::from_bits(b.d).to_f32(), f16::from_bits(b.m).to_f32());
    for (o, q) in out.iter_mut().zip(q5_values(b.qh, &b.qs)) {
        *o = q as f32 * d + m;
    }
}

/// Q4_K / Q5_K block decoded as ggml's `dequantize_row_q4_K` / `_q5_K`: d·sc (and dmin·m)
/// rounded to f32 first, then `d1 · q − m1`.
fn dequantize_k4(d: u16, dmin: u16, scales: &[u8; K_SCALE_SIZE], q: [u8; QK_K], out: &mut [f32]) {
    let (d, dmin) = (f16::from_bits(d).to_f32(), f16::from_bits(dmin).to_f32());
    let (sc, m) = scales_mins_k4(scales);
    for (j, (o, q)) in out.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
        let (d1, m1) = (d * sc[j] as f32, dmin * m[j] as f32);
        for (o, &q) in o.iter_mut().zip(q) {
            *o = d1 * q as f32 - m1;
        }
    }
}

/// Q4_K block decoded (256 values into `out`).
pub fn dequantize_q4_k(b: &BlockQ4K, out: &mut [f32]) {
    dequantize_k4(b.d, b.dmin, &b.scales, k4_values(&b.qs, None), out);
}

/// Q5_K block decoded (256 values into `out`).
pub fn dequantize_q5_k(b: &BlockQ5K, out: &mut [f32]) {
    dequantize_k4(b.d, b.dmin, &b.scales, k4_values(&b.qs, Some(&b.qh)), out);
}

/// Q6_K block decoded as ggml's `dequantize_row_q6_K`: `(d · sc) · (q − 32)`.
pub fn dequantize_q6_k(b: &BlockQ6K, out: &mut [f32]) {
    let d = f16::from_bits(b.d).to_f32();
    for (e, (o, q)) in out.iter_mut().zip(q6k_values(b)).enumerate() {
        *o = d * b.scales[e / 16] as f32 * (q as i32 - 32) as f32;
    }
}

/// Packs 32 unsigned 5-bit values into (qh, qs), the inverse of [`q5_values`].
fn pack_q5(q: &[u8; QK]) -> ([u8; 4], [u8; QK / 2]) {
    let mut qh = 0u32;
    for (j, &v) in q.iter().enumerate() {
        qh |= ((v as u32 >> 4) & 1) << j;
    }
    let qs = std::array::from_fn(|j| (q[j] & 0x0f) | (q[j + QK / 2] << 4));
    (qh.to_le_bytes(), qs)
}

/// One Q5_0 block from 32 values, by ggml's reference quantizer (`quantize_row_q5_0_ref`):
/// the value of largest magnitude maps to −16, d = max / −16, q = min(31, trunc(x/d + 16.5)).
pub fn quantize_block_q5_0(x: &[f32; QK]) -> BlockQ5_0 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // `as u8` saturates like gguf-py's clip; the argument is ≥ 0.5 here.
    let q = x.map(|v| ((v * id + 16.5) as u8).min(31));
    let (qh, qs) = pack_q5(&q);
    BlockQ5_0 {
        d: f16::from_f32(d).to_bits(),
        qh,
        qs,
    }
}

/// One Q5_1 block from 32 values, by ggml's reference quantizer (`quantize_row_q5_1_ref`):
/// d = (max − min) / 31, m = min, q = min(31, trunc((x − min)/d + 0.5)).
pub fn quantize_block_q5_1(x: &[f32; QK]) -> BlockQ5_1 {
    let min = x.iter().copied().fold(f32::MAX, f32::min);
    let max = x.iter().copied().fold(-f32::MAX, f32::max);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = x.map(|v| (((v - min) * id + 0.5) as u8).min(31));
    let (qh, qs) = pack_q5(&q);
    BlockQ5_1 {
        d: f16::from_f32(d).to_bits(),
        m: f16::from_f32(min).to_bits(),
        qh,
        qs,
    }
}

/// ggml's `nearest_int`: round half to even through the float adder (valid for |x| < 2²²).
#[inline(always)]
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// One Q8_K block from 256 values, by ggml's `quantize_row_q8_K_ref`: the value of largest
/// magnitude maps to −127 (iscale = −127 / max), q = min(127, nearest_int(iscale · x)),
/// d = 1 / iscale. An all-zero block is all zeros (ggml leaves its `bsums` unset; zero here).
#[inline]
pub fn quantize_block_q8_k(x: &[f32; QK_K]) -> BlockQ8K {
    let mut block = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    let amax = abs_max(x);
    if amax == 0.0 {
        return block;
    }
    // The first element of that magnitude, with its sign (as ggml's strict `>` scan).
    let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
    let iscale = -127.0 / max;
    for (q, &v) in block.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, q) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
        *s = q.iter().map(|&q| q as i16).sum();
    }
    block.d = 1.0 / iscale;
    block
}

/// Quantizes activations `x` (a whole number of [`QK_K`] blocks) to Q8_K, appending to `out`.
#[inline]
pub fn quantize_q8_k_blocks(x: &[f32], out: &mut Vec<BlockQ8K>) {
    out.extend(
        x.chunks_exact(QK_K)
            .map(|c| quantize_block_q8_k(c.try_into().expect("chunk of QK_K"))),
    );
}

/// A Q8_K block decoded (ggml's `dequantize_row_q8_K`: d · q).
pub fn dequantize_q8_k(b: &BlockQ8K, out: &mut [f32]) {
    for (o, &q) in out.iter_mut().zip(&b.qs) {
        *o = b.d * q as f32;
    }
}
