//! Scalar row kernels: the reference every SIMD variant is tested against.
//!
//! The f32-activation kernels reproduce [`crate::ops::dot`] on the dequantized row bit for bit
//! (same 8 lanes, same order, each weight dequantized exactly as `formats::dequantize` does),
//! so the scalar variant of `matmul` equals the dequantize-then-dot reference exactly. The
//! quantized-activation kernels are ggml's `vec_dot_*_ref`: an exact integer dot per block,
//! scaled by `d_w · d_x` in f32 and summed block by block.

use super::{BlockQ16, QuantizedKernels, RowKernels};
use crate::formats::kquants;
use crate::formats::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0,
    BlockQ8_1, QK, QK_K,
};
use crate::ops::DOT_LANES;
use half::f16;

pub(super) const KERNELS: RowKernels = RowKernels {
    f32: dot_f32,
    f16: dot_f16,
    q8_0_f32: dot_q8_0_f32,
    q8_0: dot_q8_0_q8_0,
    q4_0: dot_q4_0_q8_0,
    q4_1: dot_q4_1_q8_1,
    f32_x4: None,
    f16_x4: None,
    f32_tile: None,
    f16_tile: None,
    q8_0_f32_x4: None,
    q8_0_x4: None,
    q4_0_x4: None,
    q4_1_x4: None,
    q8_0_q16: dot_q8_0_q16,
    q8_0_q16_x4: None,
    q8_0_q16_x2: None,
    q8_0_w4: None,
    q4_0_w4: None,
    q4_1_w4: None,
    q5_0: QuantizedKernels::one(dot_q5_0_q8_0),
    q5_1: QuantizedKernels::one(dot_q5_1_q8_1),
    q4_k: QuantizedKernels::one(dot_q4_k_q8_k),
    q5_k: QuantizedKernels::one(dot_q5_k_q8_k),
    q6_k: QuantizedKernels::one(dot_q6_k_q8_k),
};

/// [`crate::ops::dot`] of `x` with a row whose element `j` is `w(j)`, for `len` elements.
#[inline(always)]
fn dot_with(len: usize, x: &[f32], w: impl Fn(usize) -> f32) -> f32 {
    let len = len.min(x.len());
    let mut acc = [0f32; DOT_LANES];
    let whole = len / DOT_LANES * DOT_LANES;
    for c in (0..whole).step_by(DOT_LANES) {
        for (l, s) in acc.iter_mut().enumerate() {
            *s += x[c + l] * w(c + l);
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (j, &xj) in x.iter().enumerate().take(len).skip(whole) {
        sum += xj * w(j);
    }
    sum
}

fn f16_at(bytes: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([bytes[i], bytes[i + 1]]).to_f32()
}

/// F32 weight row (little-endian bytes) · x.
pub(crate) fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
    dot_with(w.len() / 4, x, |j| {
        f32::from_le_bytes([w[4 * j], w[4 * j + 1], w[4 * j + 2], w[4 * j + 3]])
    })
}

/// F16 weight row · x.
pub(crate) fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    dot_with(w.len() / 2, x, |j| f16_at(w, 2 * j))
}

/// Q8_0 weight row · f32 x (weights dequantized element by element, as `dequantize` does).
pub(crate) fn dot_q8_0_f32(w: &[u8], x: &[f32]) -> f32 {
    const B: usize = std::mem::size_of::<BlockQ8_0>();
    dot_with(w.len() / B * QK, x, |j| {
        let b = &w[j / QK * B..];
        f16_at(b, 0) * (b[2 + j % QK] as i8) as f32
    })
}

/// Q8_0 weight row · Q8_0 activations (ggml `ggml_vec_dot_q8_0_q8_0`).
pub(crate) fn dot_q8_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ8_0>()).zip(x) {
        let wb: BlockQ8_0 = bytemuck::pod_read_unaligned(wb);
        let isum: i32 = wb
            .qs
            .iter()
            .zip(&xb.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sum += isum as f32 * (f16::from_bits(wb.d).to_f32() * f16::from_bits(xb.d).to_f32());
    }
    sum
}

/// Q4_0 weight row · Q8_0 activations (ggml `ggml_vec_dot_q4_0_q8_0`).
pub(crate) fn dot_q4_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ4_0>()).zip(x) {
        let wb: BlockQ4_0 = bytemuck::pod_read_unaligned(wb);
        let mut isum = 0i32;
        for (j, &q) in wb.qs.iter().enumerate() {
            isum += ((q & 0x0f) as i32 - 8) * xb.qs[j] as i32;
            isum += ((q >> 4) as i32 - 8) * xb.qs[j + QK / 2] as i32;
        }
        sum += isum as f32 * (f16::from_bits(wb.d).to_f32() * f16::from_bits(xb.d).to_f32());
    }
    sum
}

/// Q4_1 weight row · Q8_1 activations (ggml `ggml_vec_dot_q4_1_q8_1`): the minimum enters
/// as `m · s`, with `s = d_x · Σ q_x` precomputed in the activation block.
pub(crate) fn dot_q4_1_q8_1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ4_1>()).zip(x) {
        let wb: BlockQ4_1 = bytemuck::pod_read_unaligned(wb);
        let mut isum = 0i32;
        for (j, &q) in wb.qs.iter().enumerate() {
            isum += (q & 0x0f) as i32 * xb.qs[j] as i32;
            isum += (q >> 4) as i32 * xb.qs[j + QK / 2] as i32;
        }
        let (dw, mw) = (f16::from_bits(wb.d).to_f32(), f16::from_bits(wb.m).to_f32());
        let (dx, sx) = (f16::from_bits(xb.d).to_f32(), f16::from_bits(xb.s).to_f32());
        sum += (dw * dx) * isum as f32 + mw * sx;
    }
    sum
}

/// Q8_0 weight row · 16-bit activation blocks: exact integer dot per block (at most
/// 32 · 128 · 32767 < 2³¹), scaled by `d_w · d_x` in f32.
pub(crate) fn dot_q8_0_q16(w: &[u8], x: &[BlockQ16]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ8_0>()).zip(x) {
        let wb: BlockQ8_0 = bytemuck::pod_read_unaligned(wb);
        let isum: i32 = wb
            .qs
            .iter()
            .zip(&xb.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sum += isum as f32 * (f16::from_bits(wb.d).to_f32() * xb.d);
    }
    sum
}

/// Q5_0 weight row · Q8_0 activations (ggml `ggml_vec_dot_q5_0_q8_0`).
pub(crate) fn dot_q5_0_q8_0(w: &[u8], x: &[BlockQ8_0]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ5_0>()).zip(x) {
        let wb: BlockQ5_0 = bytemuck::pod_read_unaligned(wb);
        let isum: i32 = kquants::q5_values(wb.qh, &wb.qs)
            .iter()
            .zip(&xb.qs)
            .map(|(&q, &y)| (q as i32 - 16) * y as i32)
            .sum();
        sum += isum as f32 * (f16::from_bits(wb.d).to_f32() * f16::from_bits(xb.d).to_f32());
    }
    sum
}

/// Q5_1 weight row · Q8_1 activations (ggml `ggml_vec_dot_q5_1_q8_1`): the minimum enters as
/// `m · s`, as for Q4_1.
pub(crate) fn dot_q5_1_q8_1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ5_1>()).zip(x) {
        let wb: BlockQ5_1 = bytemuck::pod_read_unaligned(wb);
        let isum: i32 = kquants::q5_values(wb.qh, &wb.qs)
            .iter()
            .zip(&xb.qs)
            .map(|(&q, &y)| q as i32 * y as i32)
            .sum();
        let (dw, mw) = (f16::from_bits(wb.d).to_f32(), f16::from_bits(wb.m).to_f32());
        let (dx, sx) = (f16::from_bits(xb.d).to_f32(), f16::from_bits(xb.s).to_f32());
        sum += (dw * dx) * isum as f32 + mw * sx;
    }
    sum
}

/// Σ over the 8 sub-blocks of 32 of `scale_j · Σ q · y` for a Q4_K / Q5_K block, and
/// Σ over them of `min_j · (bsums pair)`: both exact integers.
fn k4_isums(scales: &[u8; kquants::K_SCALE_SIZE], q: &[u8; QK_K], y: &BlockQ8K) -> (i32, i32) {
    let (sc, m) = kquants::scales_mins_k4(scales);
    let mut isum = 0i32;
    for (j, (q, y)) in q.chunks_exact(32).zip(y.qs.chunks_exact(32)).enumerate() {
        let dot: i32 = q.iter().zip(y).map(|(&q, &y)| q as i32 * y as i32).sum();
        isum += sc[j] as i32 * dot;
    }
    let mins: i32 = (0..8)
        .map(|j| m[j] as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32))
        .sum();
    (isum, mins)
}

/// Q4_K weight row · Q8_K activations (ggml `ggml_vec_dot_q4_K_q8_K`): per super-block
/// `d·d_x·Σ sc_j·(q·y)_j − dmin·d_x·Σ m_j·(Σ y)_j`, the integer sums exact.
pub(crate) fn dot_q4_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ4K>()).zip(x) {
        let wb: BlockQ4K = bytemuck::pod_read_unaligned(wb);
        let (isum, mins) = k4_isums(&wb.scales, &kquants::k4_values(&wb.qs, None), xb);
        sum += f16::from_bits(wb.d).to_f32() * xb.d * isum as f32
            - f16::from_bits(wb.dmin).to_f32() * xb.d * mins as f32;
    }
    sum
}

/// Q5_K weight row · Q8_K activations (ggml `ggml_vec_dot_q5_K_q8_K`), as [`dot_q4_k_q8_k`]
/// with the fifth bit.
pub(crate) fn dot_q5_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ5K>()).zip(x) {
        let wb: BlockQ5K = bytemuck::pod_read_unaligned(wb);
        let q = kquants::k4_values(&wb.qs, Some(&wb.qh));
        let (isum, mins) = k4_isums(&wb.scales, &q, xb);
        sum += f16::from_bits(wb.d).to_f32() * xb.d * isum as f32
            - f16::from_bits(wb.dmin).to_f32() * xb.d * mins as f32;
    }
    sum
}

/// Q6_K weight row · Q8_K activations (ggml `ggml_vec_dot_q6_K_q8_K`): per super-block
/// `d·d_x·Σ sc_j·((q − 32)·y)_j` over 16 sub-blocks of 16, the integer sum exact.
pub(crate) fn dot_q6_k_q8_k(w: &[u8], x: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (wb, xb) in w.chunks_exact(std::mem::size_of::<BlockQ6K>()).zip(x) {
        let wb: BlockQ6K = bytemuck::pod_read_unaligned(wb);
        let q = kquants::q6k_values(&wb);
        let mut isum = 0i32;
        for (j, (q, y)) in q.chunks_exact(16).zip(xb.qs.chunks_exact(16)).enumerate() {
            let dot: i32 = q
                .iter()
                .zip(y)
                .map(|(&q, &y)| (q as i32 - 32) * y as i32)
                .sum();
            isum += wb.scales[j] as i32 * dot;
        }
        sum += f16::from_bits(wb.d).to_f32() * xb.d * isum as f32;
    }
    sum
}
