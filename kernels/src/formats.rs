//! Element formats, byte-compatible with GGUF/ggml. Quantized formats store blocks of
//! [`QK`] elements (k-quants: [`QK_K`]); a row of `k` elements is whole blocks, so `k` must
//! be a multiple of 32 (of 256 for the k-quants).

use crate::KernelError;
use half::f16;

pub mod kquants;
pub use kquants::{BlockQ4K, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, QK_K};

/// Elements per quantization block (ggml's QK8_0 / QK4_0 / QK4_1).
pub const QK: usize = 32;

/// Element formats. The discriminants are ggml's type ids, as stored in GGUF.
// Spelled as ggml spells them (Q4_K), so messages name what llama.cpp's tools print.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE single precision (ggml type 0).
    F32,
    /// IEEE half precision (ggml type 1).
    F16,
    /// 4-bit blocks of 32 with an f16 scale, 18 bytes ([`BlockQ4_0`], ggml type 2).
    Q4_0,
    /// 4-bit blocks of 32 with an f16 scale and minimum, 20 bytes ([`BlockQ4_1`], ggml type 3).
    Q4_1,
    /// 5-bit blocks of 32 with an f16 scale, 22 bytes ([`BlockQ5_0`], ggml type 6).
    Q5_0,
    /// 5-bit blocks of 32 with an f16 scale and minimum, 24 bytes ([`BlockQ5_1`], ggml type 7).
    Q5_1,
    /// 8-bit blocks of 32 with an f16 scale, 34 bytes ([`BlockQ8_0`], ggml type 8).
    Q8_0,
    /// 4-bit super-blocks of 256 with 6-bit sub-block scales and minimums, 144 bytes
    /// ([`BlockQ4K`], ggml type 12).
    Q4_K,
    /// 5-bit super-blocks of 256, 176 bytes ([`BlockQ5K`], ggml type 13).
    Q5_K,
    /// 6-bit super-blocks of 256 with 8-bit sub-block scales, 210 bytes ([`BlockQ6K`], ggml
    /// type 14).
    Q6_K,
    /// 32-bit signed integers (labels, ids; ggml type 26).
    I32,
}

impl DType {
    /// The ggml type id used in GGUF tensor infos.
    pub fn ggml_type(self) -> u32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q5_0 => 6,
            DType::Q5_1 => 7,
            DType::Q8_0 => 8,
            DType::Q4_K => 12,
            DType::Q5_K => 13,
            DType::Q6_K => 14,
            DType::I32 => 26,
        }
    }

    /// The format for a ggml type id, if this crate knows it.
    pub fn from_ggml_type(id: u32) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::Q4_0,
            3 => DType::Q4_1,
            6 => DType::Q5_0,
            7 => DType::Q5_1,
            8 => DType::Q8_0,
            12 => DType::Q4_K,
            13 => DType::Q5_K,
            14 => DType::Q6_K,
            26 => DType::I32,
            _ => return None,
        })
    }

    /// Elements per block (1 for plain formats).
    pub fn block_elems(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::I32 => 1,
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 => QK,
            DType::Q4_K | DType::Q5_K | DType::Q6_K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::Q4_0 => std::mem::size_of::<BlockQ4_0>(),
            DType::Q4_1 => std::mem::size_of::<BlockQ4_1>(),
            DType::Q5_0 => std::mem::size_of::<BlockQ5_0>(),
            DType::Q5_1 => std::mem::size_of::<BlockQ5_1>(),
            DType::Q8_0 => std::mem::size_of::<BlockQ8_0>(),
            DType::Q4_K => std::mem::size_of::<BlockQ4K>(),
            DType::Q5_K => std::mem::size_of::<BlockQ5K>(),
            DType::Q6_K => std::mem::size_of::<BlockQ6K>(),
        }
    }

    /// Bytes of a row of `elems` elements, or `None` when `elems` is not a whole number of
    /// blocks or the size overflows.
    pub fn row_bytes(self, elems: usize) -> Option<usize> {
        if !elems.is_multiple_of(self.block_elems()) {
            return None;
        }
        (elems / self.block_elems()).checked_mul(self.block_bytes())
    }
}

/// ggml's Q8_0 block: 32 signed bytes sharing one f16 scale; x ≈ d · qs[i].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    /// Scale, as IEEE half bits.
    pub d: u16,
    /// Quantized values, x ≈ d · qs[i].
    pub qs: [i8; QK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// ggml's Q4_0 block: 32 4-bit values sharing one f16 scale; x ≈ d · (q − 8). Byte `j` of
/// `qs` holds element `j` in its low nibble and element `j + 16` in its high nibble.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_0 {
    /// Scale, as IEEE half bits.
    pub d: u16,
    /// Nibbles: low = element j, high = element j + 16.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// ggml's Q4_1 block: 32 4-bit values with an f16 scale and an f16 minimum; x ≈ d · q + m.
/// Nibble layout as [`BlockQ4_0`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_1 {
    /// Scale, as IEEE half bits.
    pub d: u16,
    /// Minimum (the value of q = 0), as IEEE half bits.
    pub m: u16,
    /// Nibbles: low = element j, high = element j + 16.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// ggml's Q8_1 block, used for *activations* dotted with Q4_1 weights: like [`BlockQ8_0`]
/// plus `s = d · Σ qs`, so the weight block's minimum contributes `m · s` without touching
/// the quantized values again. Never a weight format here (no [`DType`] for it).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_1 {
    /// Scale, as IEEE half bits.
    pub d: u16,
    /// `d · Σ qs`, as IEEE half bits.
    pub s: u16,
    /// Quantized values, x ≈ d · qs[i].
    pub qs: [i8; QK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

/// One Q8_0 block from 32 values, by ggml's reference quantizer (`quantize_row_q8_0_ref`):
/// d = max|x| / 127, q = round(x / d) (half away from zero, as C's `roundf`).
#[inline]
pub fn quantize_block_q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let amax = abs_max(x);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut block = BlockQ8_0 {
        d: f16::from_f32(d).to_bits(),
        qs: [0; QK],
    };
    for (q, v) in block.qs.iter_mut().zip(x) {
        *q = round_half_away(v * id).clamp(-128, 127) as i8;
    }
    block
}

/// max |x| over a block, NaN ignored (as `f32::max` does). Computed on the bit patterns: for
/// non-NaN floats, |x|'s bits order like the values, and an integer max has no serial
/// dependency through NaN checks, so it vectorizes (activations are quantized on every call).
#[inline]
pub fn abs_max(x: &[f32]) -> f32 {
    let bits = x
        .iter()
        .map(|v| {
            let b = v.to_bits() & 0x7fff_ffff;
            if b > 0x7f80_0000 {
                0
            } else {
                b
            }
        })
        .fold(0u32, u32::max);
    f32::from_bits(bits)
}

/// C's `roundf` (half away from zero) as an integer, without a libm call: `f32::round` is
/// not inlined on baseline x86-64, which made quantizing activations cost ~2 ns an element.
/// Equal to `y.round() as i32` for every f32 with |y| ≤ 40000 (checked exhaustively; the
/// quantizers stay below 32768): adding 0.5 − 2⁻²⁵ then truncating cannot carry a value just
/// below a half upward, and ties still round away from zero.
#[inline]
pub fn round_half_away(y: f32) -> i32 {
    (y + 0.49999997f32.copysign(y)) as i32
}

/// One Q8_1 block from 32 values, by ggml's reference quantizer (`quantize_row_q8_1_ref`).
#[inline]
pub fn quantize_block_q8_1(x: &[f32; QK]) -> BlockQ8_1 {
    let b = quantize_block_q8_0(x);
    // ggml scales the integer sum by the f32 d, before d's own rounding to f16.
    let d = abs_max(x) / 127.0;
    let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
    BlockQ8_1 {
        d: b.d,
        s: f16::from_f32(sum as f32 * d).to_bits(),
        qs: b.qs,
    }
}

/// One Q4_0 block from 32 values, by ggml's reference quantizer (`quantize_row_q4_0_ref`):
/// the value of largest magnitude maps to −8, d = max / −8, q = min(15, trunc(x/d + 8.5)).
pub fn quantize_block_q4_0(x: &[f32; QK]) -> BlockQ4_0 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        // `as i8` truncates toward zero like C's (int8_t) cast; the argument is ≥ 0.5 here.
        let lo = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let hi = ((x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
        *q = lo | (hi << 4);
    }
    BlockQ4_0 {
        d: f16::from_f32(d).to_bits(),
        qs,
    }
}

/// One Q4_1 block from 32 values, by ggml's reference quantizer (`quantize_row_q4_1_ref`):
/// d = (max − min) / 15, m = min, q = min(15, trunc((x − min)/d + 0.5)).
pub fn quantize_block_q4_1(x: &[f32; QK]) -> BlockQ4_1 {
    let min = x.iter().copied().fold(f32::MAX, f32::min);
    let max = x.iter().copied().fold(-f32::MAX, f32::max);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let lo = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let hi = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
        *q = lo | (hi << 4);
    }
    BlockQ4_1 {
        d: f16::from_f32(d).to_bits(),
        m: f16::from_f32(min).to_bits(),
        qs,
    }
}

/// Quantizes activations `x` (a whole number of blocks) to Q8_0 blocks, appending to `out`.
#[inline]
pub fn quantize_q8_0_blocks(x: &[f32], out: &mut Vec<BlockQ8_0>) {
    out.extend(
        x.chunks_exact(QK)
            .map(|c| quantize_block_q8_0(c.try_into().expect("chunk of QK"))),
    );
}

/// Quantizes activations `x` (a whole number of blocks) to Q8_1 blocks, appending to `out`.
#[inline]
pub fn quantize_q8_1_blocks(x: &[f32], out: &mut Vec<BlockQ8_1>) {
    out.extend(
        x.chunks_exact(QK)
            .map(|c| quantize_block_q8_1(c.try_into().expect("chunk of QK"))),
    );
}

/// A read-only matrix of `rows` × `cols` elements in some format, rows contiguous.
/// Constructed only through [`WeightView::new`], which checks that the bytes fit the shape.
#[derive(Debug, Clone, Copy)]
pub struct WeightView<'a> {
    dtype: DType,
    rows: usize,
    cols: usize,
    bytes: &'a [u8],
}

impl<'a> WeightView<'a> {
    /// Checks that `bytes` holds exactly `rows` rows of `cols` elements of `dtype`.
    pub fn new(
        dtype: DType,
        rows: usize,
        cols: usize,
        bytes: &'a [u8],
    ) -> Result<Self, KernelError> {
        let row = dtype.row_bytes(cols).ok_or_else(|| {
            KernelError::ShapeMismatch(format!(
                "{cols} columns is not a whole number of {dtype:?} blocks"
            ))
        })?;
        let total = row
            .checked_mul(rows)
            .ok_or_else(|| KernelError::InvalidArgument("weight size overflows".into()))?;
        if total != bytes.len() {
            return Err(KernelError::ShapeMismatch(format!(
                "{rows}x{cols} {dtype:?} needs {total} bytes, got {}",
                bytes.len()
            )));
        }
        Ok(WeightView {
            dtype,
            rows,
            cols,
            bytes,
        })
    }

    /// The element format.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// All rows' bytes, as borrowed.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The raw bytes of row `r` (caller guarantees `r < rows`).
    pub fn row_bytes(&self, r: usize) -> &'a [u8] {
        let n = self.bytes.len() / self.rows.max(1);
        &self.bytes[r * n..(r + 1) * n]
    }

    /// Row `r` dequantized into `out` (`out.len() == cols`).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<(), KernelError> {
        if r >= self.rows {
            return Err(KernelError::InvalidArgument(format!(
                "row {r} of {}",
                self.rows
            )));
        }
        if out.len() != self.cols {
            return Err(KernelError::ShapeMismatch(format!(
                "row of {} into {}",
                self.cols,
                out.len()
            )));
        }
        dequantize(self.dtype, self.row_bytes(r), out)
    }
}

/// Decodes `bytes` of `dtype` into `out`; `bytes` must hold exactly `out.len()` elements.
pub fn dequantize(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<(), KernelError> {
    if dtype.row_bytes(out.len()) != Some(bytes.len()) {
        return Err(KernelError::ShapeMismatch(format!(
            "{} bytes of {dtype:?} for {} elements",
            bytes.len(),
            out.len()
        )));
    }
    match dtype {
        // Little-endian loads via from_le_bytes: mapped files give no alignment guarantee.
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => match bytemuck::try_cast_slice::<u8, f16>(bytes) {
            // Aligned (as GGUF data is): `half` converts whole slices with F16C where the CPU
            // has it, detected at run time; the conversion is exact either way.
            Ok(halves) if cfg!(target_endian = "little") => {
                use half::slice::HalfFloatSliceExt;
                halves.convert_to_f32_slice(out);
            }
            _ => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
        },
        // Integer tensors (labels, ids) read as numbers; exact below 2^24.
        DType::I32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32;
            }
        }
        DType::Q8_0 => {
            for (o, b) in out
                .chunks_exact_mut(QK)
                .zip(bytes.chunks_exact(DType::Q8_0.block_bytes()))
            {
                let block: BlockQ8_0 = bytemuck::pod_read_unaligned(b);
                let d = f16::from_bits(block.d).to_f32();
                for (x, &q) in o.iter_mut().zip(block.qs.iter()) {
                    *x = d * q as f32;
                }
            }
        }
        DType::Q4_0 => {
            for (o, b) in out
                .chunks_exact_mut(QK)
                .zip(bytes.chunks_exact(DType::Q4_0.block_bytes()))
            {
                let block: BlockQ4_0 = bytemuck::pod_read_unaligned(b);
                let d = f16::from_bits(block.d).to_f32();
                let (lo, hi) = o.split_at_mut(QK / 2);
                for ((l, h), &q) in lo.iter_mut().zip(hi).zip(block.qs.iter()) {
                    *l = ((q & 0x0f) as i32 - 8) as f32 * d;
                    *h = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        DType::Q4_1 => {
            for (o, b) in out
                .chunks_exact_mut(QK)
                .zip(bytes.chunks_exact(DType::Q4_1.block_bytes()))
            {
                let block: BlockQ4_1 = bytemuck::pod_read_unaligned(b);
                let d = f16::from_bits(block.d).to_f32();
                let m = f16::from_bits(block.m).to_f32();
                let (lo, hi) = o.split_at_mut(QK / 2);
                for ((l, h), &q) in lo.iter_mut().zip(hi).zip(block.qs.iter()) {
                    *l = (q & 0x0f) as f32 * d + m;
                    *h = (q >> 4) as f32 * d + m;
                }
            }
        }
        DType::Q5_0 => dequantize_blocks(dtype, bytes, out, kquants::dequantize_q5_0),
        DType::Q5_1 => dequantize_blocks(dtype, bytes, out, kquants::dequantize_q5_1),
        DType::Q4_K => dequantize_blocks(dtype, bytes, out, kquants::dequantize_q4_k),
        DType::Q5_K => dequantize_blocks(dtype, bytes, out, kquants::dequantize_q5_k),
        DType::Q6_K => dequantize_blocks(dtype, bytes, out, kquants::dequantize_q6_k),
    }
    Ok(())
}

/// Decodes whole blocks of `B` (of `dtype`'s block size) from `bytes` into `out` with
/// `decode`; the caller checked that the lengths agree.
fn dequantize_blocks<B: bytemuck::Pod>(
    dtype: DType,
    bytes: &[u8],
    out: &mut [f32],
    decode: fn(&B, &mut [f32]),
) {
    for (o, b) in out
        .chunks_exact_mut(dtype.block_elems())
        .zip(bytes.chunks_exact(std::mem::size_of::<B>()))
    {
        decode(&bytemuck::pod_read_unaligned(b), o);
    }
}

/// Encodes `x` as `dtype` (f32, f16, q8_0, q4_0, q4_1, q5_0 or q5_1), appending to `out`.
/// The block formats follow ggml's reference quantizers (see [`quantize_block_q8_0`],
/// [`quantize_block_q4_0`], [`quantize_block_q4_1`], [`kquants::quantize_block_q5_0`],
/// [`kquants::quantize_block_q5_1`]), so files match what ggml would write. The k-quants
/// are read, never written: files bring them from llama.cpp's quantizer.
pub fn quantize(dtype: DType, x: &[f32], out: &mut Vec<u8>) -> Result<(), KernelError> {
    if dtype.row_bytes(x.len()).is_none() {
        return Err(KernelError::ShapeMismatch(format!(
            "{} elements is not a whole number of {dtype:?} blocks",
            x.len()
        )));
    }
    match dtype {
        DType::F32 => x
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => x
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 => {
            for chunk in x.chunks_exact(QK) {
                let chunk: &[f32; QK] = chunk.try_into().expect("chunk of QK");
                let mut put = |b: &[u8]| out.extend_from_slice(b);
                match dtype {
                    DType::Q8_0 => put(bytemuck::bytes_of(&quantize_block_q8_0(chunk))),
                    DType::Q4_0 => put(bytemuck::bytes_of(&quantize_block_q4_0(chunk))),
                    DType::Q4_1 => put(bytemuck::bytes_of(&quantize_block_q4_1(chunk))),
                    DType::Q5_0 => put(bytemuck::bytes_of(&kquants::quantize_block_q5_0(chunk))),
                    _ => put(bytemuck::bytes_of(&kquants::quantize_block_q5_1(chunk))),
                }
            }
        }
        other => return Err(KernelError::Unsupported(other, "quantize")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_round_trip_is_within_half_a_step() {
        let x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let mut bytes = Vec::new();
        quantize(DType::Q8_0, &x, &mut bytes).unwrap();
        assert_eq!(bytes.len(), 3 * 34);
        let mut y = vec![0.0; 96];
        dequantize(DType::Q8_0, &bytes, &mut y).unwrap();
        for (block_x, block_y) in x.chunks(QK).zip(y.chunks(QK)) {
            let amax = block_x.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Half a quantization step, plus the f16 rounding of the scale.
            let tol = amax / 127.0 * 0.5 + amax * 1e-3;
            for (a, b) in block_x.iter().zip(block_y) {
                assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
            }
        }
    }

    #[test]
    fn ragged_rows_are_refused() {
        assert_eq!(DType::Q8_0.row_bytes(33), None);
        assert!(WeightView::new(DType::Q8_0, 1, 33, &[0; 34]).is_err());
        assert!(WeightView::new(DType::F32, 2, 3, &[0; 23]).is_err());
    }
}
