//! `out = x · wᵀ + bias` for every weight format, in every [`Variant`].
//!
//! Structure: each variant supplies a table of *row kernels* ([`RowKernels`]), each the dot
//! product of one weight row (raw bytes, as mapped from the file) with one activation row.
//! One driver serves all of them:
//!
//! - Activations are prepared once per call: kept as f32 ([`Activations::F32`]), quantized
//!   to Q8_0 / Q8_1 blocks ([`Activations::Quantized`], ggml's way: integer dot products per
//!   block) or to 16-bit blocks ([`Activations::Int16`], Q8_0 weights), whichever the weight
//!   format and the caller's choice need ([`default_activations`]).
//! - Matrix-vector (`n == 1`, generation) streams the weight rows once; matrix-matrix (`n > 1`,
//!   prompts and batches of utterances) takes each weight row once and dots it with all `n`
//!   activation rows while it is hot in L1, so weights are still read from memory once.
//! - Large matrices split their rows into tasks run by the calling thread plus up to
//!   [`max_threads`]` − 1` helpers of a persistent pool (`pool.rs`: helpers sleep on a condition
//!   variable, nothing spins, and the caller never waits for a helper that has not started:
//!   edge cores are shared); small ones stay on the calling thread.

#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::dispatch::{active_variant, max_threads, Variant};
use crate::formats::kquants::quantize_q8_k_blocks;
use crate::formats::{
    quantize_q8_0_blocks, quantize_q8_1_blocks, BlockQ8K, BlockQ8_0, BlockQ8_1, QK_K,
};
use crate::{DType, KernelError, WeightView};

/// What activations meet the weights as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activations {
    /// f32 activations times dequantized weights: no error beyond the weights' own rounding.
    F32,
    /// Activations quantized once per call to Q8_0 (for Q8_0 and Q4_0 weights) or Q8_1 (Q4_1),
    /// then integer dot products per block, as ggml does. Adds the activations' rounding
    /// (half a step of each 32-block: `amax/254`). F32 and F16 weights ignore this and use f32.
    Quantized,
    /// Activations quantized once per call to 16-bit blocks ([`BlockQ16`]: an f32 scale and 32
    /// i16, one scale for a whole row), then integer dot products with Q8_0 weights
    /// (`vpdpwssd` / `vpmaddwd` / `smlal`). The activation error is at most `amax/65534` per
    /// element (amax of the row), so the result tracks the f32 path closely at integer-dot
    /// speed. Only Q8_0 weights have this
    /// path; other formats treat it as [`Activations::F32`].
    Int16,
}

/// Elements of a [`BlockQ16`]'s block (same as the weight blocks).
const QK: usize = crate::formats::QK;

/// A block of 32 activations quantized to i16 with an f32 scale: x ≈ d · qs[i]. Internal
/// (never stored in a file), so the scale stays f32. Every block of one activation row carries
/// the same `d` ([`quantize_q16_row`]), so a kernel may apply it once per row instead of once
/// per block (the AVX2 ones do).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ16 {
    /// Scale: max|x| / 32767 over the whole row.
    pub d: f32,
    /// Quantized values, round(x / d).
    pub qs: [i16; QK],
}
const _: () = assert!(std::mem::size_of::<BlockQ16>() == 68);

/// Quantizes one activation row `x` (a whole number of blocks) to [`BlockQ16`]s with one
/// scale for the row, appending to `out`. 16 bits leave even a row with BERT's outlier
/// features (≈ 20x the typical value) about 1,600 steps for a typical element, so one scale per
/// row costs nothing measurable (MiniLM's worst embedding cosine: 0.9991844 either way) and
/// spares the kernels a multiply per block.
#[inline]
pub fn quantize_q16_row(x: &[f32], out: &mut Vec<BlockQ16>) {
    let d = crate::formats::abs_max(x) / 32767.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(x.chunks_exact(QK).map(|c| {
        let mut qs = [0i16; QK];
        for (q, v) in qs.iter_mut().zip(c) {
            *q = crate::formats::round_half_away(v * id).clamp(-32768, 32767) as i16;
        }
        BlockQ16 { d, qs }
    }));
}

/// The activation mode [`crate::ops::matmul`] uses for weights of `dtype`.
///
/// Q4_0/Q4_1/Q5_0/Q5_1 (decoder weights) use Q8_0/Q8_1 activations and the k-quants Q8_K
/// ones, as ggml does. Q8_0 uses 16-bit
/// activations: Q8_0 ones lower the MiniLM encoder's worst embedding cosine from 0.99918 to
/// 0.99745, below the 0.999 the parity test requires, while 16-bit ones keep it (measured in
/// `kernels/README.md`) at integer-dot speed. F32/F16 weights keep f32 activations.
pub fn default_activations(dtype: DType) -> Activations {
    match dtype {
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 => Activations::Quantized,
        DType::Q4_K | DType::Q5_K | DType::Q6_K => Activations::Quantized,
        DType::Q8_0 => Activations::Int16,
        _ => Activations::F32,
    }
}

/// The row kernels of one variant. Every function reads at most `min(w.len() / block bytes,
/// x.len() / block elems)` whole blocks (elements for F32/F16), never past either slice.
pub(crate) struct RowKernels {
    /// F32 weight row · f32 x.
    pub f32: unsafe fn(&[u8], &[f32]) -> f32,
    /// F16 weight row · f32 x.
    pub f16: unsafe fn(&[u8], &[f32]) -> f32,
    /// Q8_0 weight row · f32 x (weights dequantized in registers).
    pub q8_0_f32: unsafe fn(&[u8], &[f32]) -> f32,
    /// Q8_0 weight row · Q8_0 activation blocks.
    pub q8_0: unsafe fn(&[u8], &[BlockQ8_0]) -> f32,
    /// Q4_0 weight row · Q8_0 activation blocks.
    pub q4_0: unsafe fn(&[u8], &[BlockQ8_0]) -> f32,
    /// Q4_1 weight row · Q8_1 activation blocks.
    pub q4_1: unsafe fn(&[u8], &[BlockQ8_1]) -> f32,
    /// Optional matrix-matrix forms: one weight row · four f32 activation rows, converting
    /// the weights once for all four (F32, F16, Q8_0 weights).
    pub f32_x4: Option<X4Kernel>,
    /// See `f32_x4`.
    pub f16_x4: Option<X4Kernel>,
    /// Two weight rows · four f32 activation rows (F32 weights): each activation vector is
    /// also loaded once for both weight rows, where the x4 form reloads it per weight row.
    pub f32_tile: Option<TileKernel>,
    /// See `f32_tile` (F16 weights).
    pub f16_tile: Option<TileKernel>,
    /// See `f32_x4`.
    pub q8_0_f32_x4: Option<X4Kernel>,
    /// Matrix-matrix form of `q8_0`: one weight row · four activation rows.
    pub q8_0_x4: Option<X4Quantized<BlockQ8_0>>,
    /// Matrix-matrix form of `q4_0`.
    pub q4_0_x4: Option<X4Quantized<BlockQ8_0>>,
    /// Matrix-matrix form of `q4_1`.
    pub q4_1_x4: Option<X4Quantized<BlockQ8_1>>,
    /// Q8_0 weight row · 16-bit activation blocks.
    pub q8_0_q16: unsafe fn(&[u8], &[BlockQ16]) -> f32,
    /// Matrix-matrix form of `q8_0_q16`.
    pub q8_0_q16_x4: Option<X4Quantized<BlockQ16>>,
    /// `q8_0_q16` for two activation rows: the remainder of a batch not a multiple of four
    /// (encoder inputs are any length), so its weights are not unpacked once per row.
    pub q8_0_q16_x2: Option<XQuantized<BlockQ16, 2>>,
    /// Matrix-vector forms: four weight rows · one activation row, each row's result
    /// bit-identical to the one-row kernel's (the activation blocks are read once for four).
    pub q8_0_w4: Option<W4Quantized<BlockQ8_0>>,
    /// See `q8_0_w4`.
    pub q4_0_w4: Option<W4Quantized<BlockQ8_0>>,
    /// See `q8_0_w4`.
    pub q4_1_w4: Option<W4Quantized<BlockQ8_1>>,
    /// Q5_0 weight rows · Q8_0 activation blocks.
    pub q5_0: QuantizedKernels<BlockQ8_0>,
    /// Q5_1 weight rows · Q8_1 activation blocks.
    pub q5_1: QuantizedKernels<BlockQ8_1>,
    /// Q4_K weight rows · Q8_K activation blocks.
    pub q4_k: QuantizedKernels<BlockQ8K>,
    /// Q5_K weight rows · Q8_K activation blocks.
    pub q5_k: QuantizedKernels<BlockQ8K>,
    /// Q6_K weight rows · Q8_K activation blocks.
    pub q6_k: QuantizedKernels<BlockQ8K>,
}

/// The kernels of one weight format with quantized activation blocks `B`: the one-row form
/// every variant has, and the wider forms [`rows_into`] prefers where a variant has them.
pub(crate) struct QuantizedKernels<B: 'static> {
    /// One weight row · one activation row.
    pub one: unsafe fn(&[u8], &[B]) -> f32,
    /// Four weight rows · one activation row (matrix-vector), each result bit-identical to
    /// `one`'s.
    pub w4: Option<W4Quantized<B>>,
    /// One weight row · four activation rows (matrix-matrix).
    pub x4: Option<X4Quantized<B>>,
    /// One weight row · two activation rows (the remainder of a batch).
    pub x2: Option<XQuantized<B, 2>>,
}

impl<B> QuantizedKernels<B> {
    /// Only the one-row form.
    pub(crate) const fn one(one: unsafe fn(&[u8], &[B]) -> f32) -> Self {
        QuantizedKernels {
            one,
            w4: None,
            x4: None,
            x2: None,
        }
    }
}

/// Two weight rows (raw bytes) · four f32 activation rows: `[weight row][activation row]`.
pub(crate) type TileKernel = unsafe fn([&[u8]; 2], [&[f32]; 4]) -> [[f32; 4]; 2];

/// Four weight rows (raw bytes) · one row of quantized activation blocks.
pub(crate) type W4Quantized<B> = unsafe fn([&[u8]; 4], &[B]) -> [f32; 4];

/// One weight row (raw bytes) · `R` rows of quantized activation blocks.
pub(crate) type XQuantized<B, const R: usize> = unsafe fn(&[u8], [&[B]; R]) -> [f32; R];

/// One weight row (raw bytes) · four rows of quantized activation blocks.
pub(crate) type X4Quantized<B> = XQuantized<B, 4>;

/// One weight row (raw bytes) · four activation rows.
pub(crate) type X4Kernel = unsafe fn(&[u8], [&[f32]; 4]) -> [f32; 4];

/// The row kernels of `v`, or an error if this CPU cannot run `v`.
///
/// Calling a returned kernel is sound because the table is only handed out after the
/// run-time check that the CPU has every feature its `#[target_feature]` functions enable.
fn kernels_for(v: Variant) -> Result<&'static RowKernels, KernelError> {
    if !v.is_supported() {
        return Err(KernelError::InvalidArgument(format!(
            "kernel variant {v} is not supported by this CPU"
        )));
    }
    Ok(match v {
        Variant::Scalar => &scalar::KERNELS,
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 => &x86::AVX2,
        #[cfg(target_arch = "x86_64")]
        Variant::Avx512 => &x86::AVX512,
        #[cfg(target_arch = "aarch64")]
        Variant::Neon => neon::kernels(),
        // Unreachable: is_supported() is false for another architecture's variants.
        #[allow(unreachable_patterns)]
        _ => &scalar::KERNELS,
    })
}

/// Upper bound of the scratch memory one [`matmul`] of `x [n, k]` by a weight of `rows` rows
/// allocates: the activations in the kernel's form (at most 4 bytes per element of `x`) and
/// each thread's rows of the output before they are copied out (at most the output's size).
/// A host charges it before the call.
pub fn scratch_bytes(n: usize, k: usize, rows: usize) -> usize {
    n.saturating_mul(k.saturating_add(rows))
        .saturating_mul(std::mem::size_of::<f32>())
}

/// `out[n, rows] = x[n, k] · w[rows, k]ᵀ (+ bias[rows])` with the active variant and the
/// default activation mode for `w`'s format (what [`crate::ops::matmul`] calls).
pub fn matmul(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightView,
    bias: Option<&[f32]>,
) -> Result<(), KernelError> {
    matmul_with(
        active_variant(),
        default_activations(w.dtype()),
        out,
        x,
        n,
        w,
        bias,
    )
}

/// [`matmul`] with an explicit variant (an error if this CPU cannot run it) and activation
/// mode; tests and benchmarks compare variants through this.
pub fn matmul_with(
    variant: Variant,
    acts: Activations,
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightView,
    bias: Option<&[f32]>,
) -> Result<(), KernelError> {
    let kern = kernels_for(variant)?;
    validate(out, x, n, w, bias)?;
    let (rows, k) = (w.rows(), w.cols());
    // With n == 0 the weight's row count is not bounded by any slice we hold; stop here.
    if n == 0 || rows == 0 {
        return Ok(());
    }
    let acts = prepare(variant, w.dtype(), acts, x, k);
    let threads = threads_for(w.bytes().len(), n, rows);
    if threads <= 1 {
        rows_into(kern, &acts, w, 0, rows, n, k, out, rows);
    } else {
        // A few tasks per thread, claimed dynamically, so a thread that lost its core to
        // another process does not hold everyone up (the caller takes over its tasks).
        let chunk = rows.div_ceil(threads * 4).max(MIN_ROWS_PER_THREAD);
        let tasks = rows.div_ceil(chunk);
        let dst = SyncPtr(out.as_mut_ptr());
        let acts = &acts;
        crate::pool::run(tasks, threads, &|t| {
            let r0 = t * chunk;
            let r1 = (r0 + chunk).min(rows);
            let len = r1 - r0;
            let mut local = vec![0f32; n * len];
            rows_into(kern, acts, w, r0, r1, n, k, &mut local, len);
            for i in 0..n {
                // SAFETY: only task t writes elements i·rows + r0 .. i·rows + r1 (the row
                // ranges of tasks are disjoint), inside `out` as (n−1)·rows + r1 ≤ n·rows =
                // out.len(); `out` is not otherwise touched until `run` returns.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        local.as_ptr().add(i * len),
                        dst.get().add(i * rows + r0),
                        len,
                    );
                }
            }
        });
    }
    if let Some(b) = bias {
        for o in out.chunks_exact_mut(rows) {
            for (o, b) in o.iter_mut().zip(b) {
                *o += b;
            }
        }
    }
    Ok(())
}

/// The scalar reference: each weight row dequantized to f32 (`formats::dequantize`), then
/// [`crate::ops::dot`] with every activation row, plus bias. Every other path is tested
/// against this (or against the scalar quantized-activation path, which is
/// `matmul_with(Variant::Scalar, Activations::Quantized, ..)`).
pub fn matmul_reference(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightView,
    bias: Option<&[f32]>,
) -> Result<(), KernelError> {
    validate(out, x, n, w, bias)?;
    let (rows, k) = (w.rows(), w.cols());
    if n == 0 || rows == 0 {
        return Ok(());
    }
    let mut wrow = vec![0f32; k];
    for r in 0..rows {
        w.dequantize_row(r, &mut wrow)?;
        let b = bias.map_or(0.0, |b| b[r]);
        for i in 0..n {
            out[i * rows + r] = crate::ops::dot(&x[i * k..(i + 1) * k], &wrow) + b;
        }
    }
    Ok(())
}

fn validate(
    out: &[f32],
    x: &[f32],
    n: usize,
    w: &WeightView,
    bias: Option<&[f32]>,
) -> Result<(), KernelError> {
    if w.dtype() == DType::I32 {
        return Err(KernelError::Unsupported(DType::I32, "matmul"));
    }
    let (rows, k) = (w.rows(), w.cols());
    let mul = |a: usize, b: usize, what: &str| {
        a.checked_mul(b)
            .ok_or_else(|| KernelError::InvalidArgument(format!("{what}: {a} x {b} overflows")))
    };
    let expect = |what: &str, got: usize, want: usize| {
        if got == want {
            Ok(())
        } else {
            Err(KernelError::ShapeMismatch(format!(
                "{what} has {got} elements, expected {want}"
            )))
        }
    };
    expect("matmul x", x.len(), mul(n, k, "matmul x")?)?;
    expect("matmul out", out.len(), mul(n, rows, "matmul out")?)?;
    if let Some(b) = bias {
        expect("matmul bias", b.len(), rows)?;
    }
    Ok(())
}

/// The output pointer shared by the tasks of one parallel matmul, which write disjoint parts.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: tasks write only their own disjoint ranges through it (see `matmul_with`).
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer (a method, so closures capture the Sync wrapper, not the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Activations in the form the row kernels take.
enum Prepared<'a> {
    F32(&'a [f32]),
    Q16(Vec<BlockQ16>),
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
    Q8K(Vec<BlockQ8K>),
}

/// Quantizes activations once per call. On x86 the same portable quantizers run inside
/// `#[target_feature]` wrappers, so the compiler vectorizes them with AVX2/AVX-512 (baseline
/// x86-64 lacks the integer min/max they need); the results are identical by construction.
/// `x` holds rows of `k` elements.
fn prepare(variant: Variant, dtype: DType, acts: Activations, x: &[f32], k: usize) -> Prepared<'_> {
    #[cfg(target_arch = "x86_64")]
    let simd = matches!(variant, Variant::Avx2 | Variant::Avx512);
    #[cfg(not(target_arch = "x86_64"))]
    let simd = {
        let _ = variant;
        false
    };
    let blocks = x.len() / QK;
    match (dtype, acts) {
        (DType::Q8_0 | DType::Q4_0 | DType::Q5_0, Activations::Quantized) => {
            let mut q = Vec::with_capacity(blocks);
            if simd {
                // SAFETY: `variant` passed `kernels_for`, so the CPU has AVX2 (and AVX-512
                // for the Avx512 variant).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    if variant == Variant::Avx512 {
                        x86::quantize_q8_0_avx512(x, &mut q)
                    } else {
                        x86::quantize_q8_0_avx2(x, &mut q)
                    }
                };
            } else {
                quantize_q8_0_blocks(x, &mut q);
            }
            Prepared::Q8_0(q)
        }
        (DType::Q4_K | DType::Q5_K | DType::Q6_K, Activations::Quantized) => {
            let mut q = Vec::with_capacity(x.len() / QK_K);
            if simd {
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    x86::quantize_q8_k_avx2(x, &mut q)
                };
            } else {
                quantize_q8_k_blocks(x, &mut q);
            }
            Prepared::Q8K(q)
        }
        (DType::Q4_1 | DType::Q5_1, Activations::Quantized) => {
            let mut q = Vec::with_capacity(blocks);
            if simd {
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    x86::quantize_q8_1_avx2(x, &mut q)
                };
            } else {
                quantize_q8_1_blocks(x, &mut q);
            }
            Prepared::Q8_1(q)
        }
        (DType::Q8_0, Activations::Int16) => {
            let mut q = Vec::with_capacity(blocks);
            for row in x.chunks_exact(k) {
                if simd {
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        if variant == Variant::Avx512 {
                            x86::quantize_q16_avx512(row, &mut q)
                        } else {
                            x86::quantize_q16_avx2(row, &mut q)
                        }
                    };
                } else {
                    quantize_q16_row(row, &mut q);
                }
            }
            Prepared::Q16(q)
        }
        _ => Prepared::F32(x),
    }
}

/// Below this many weight bytes a matrix-vector call stays on one thread. Waking a pool
/// helper costs tens of µs, and a decoder makes hundreds of these calls per token: splitting
/// SmolLM2's 553 KB FFN matrices made 2-thread decoding slower than 1-thread (125 vs 146
/// tok/s, `edgenlu bench generate`); with only the 30 MB output head split, 2 threads decode
/// at 154 tok/s.
const SPLIT_BYTES: usize = 4 << 20;
/// Batched calls are compute-bound sooner, so split them from this many weight bytes.
const SPLIT_BYTES_BATCH: usize = 128 << 10;
/// At least this many rows per thread.
const MIN_ROWS_PER_THREAD: usize = 32;

fn threads_for(w_bytes: usize, n: usize, rows: usize) -> usize {
    let limit = if n >= 8 {
        SPLIT_BYTES_BATCH
    } else {
        SPLIT_BYTES
    };
    if w_bytes < limit {
        return 1;
    }
    max_threads().min(rows / MIN_ROWS_PER_THREAD).max(1)
}

/// The tile pass of [`rows_into`]: weight rows from `first` in pairs (while a pair fits
/// below `r1`) against activation rows `0..n4` in fours, `x` holding `per_row` elements per
/// activation row. Returns the first weight row it did not cover.
#[allow(clippy::too_many_arguments)]
fn tile_rows(
    f: TileKernel,
    x: &[f32],
    per_row: usize,
    w: &WeightView,
    [first, r0, r1]: [usize; 3],
    n4: usize,
    dst: &mut [f32],
    stride: usize,
) -> usize {
    let mut r = first;
    if n4 == 0 {
        return r;
    }
    while r + 2 <= r1 {
        for i in (0..n4).step_by(4) {
            // SAFETY: `f` came from the table `kernels_for` checked against this CPU; the
            // kernels bound every read by the slices' lengths.
            let v = unsafe {
                f(
                    [w.row_bytes(r), w.row_bytes(r + 1)],
                    std::array::from_fn(|t| &x[(i + t) * per_row..][..per_row]),
                )
            };
            for (j, v) in v.into_iter().enumerate() {
                for (t, v) in v.into_iter().enumerate() {
                    dst[(i + t) * stride + (r + j - r0)] = v;
                }
            }
        }
        r += 2;
    }
    r
}

/// Rows `r0..r1` of the product into `dst[i * stride + (r - r0)]` for every activation row i.
///
/// [sandbox] may add deadline checks between tiles of rows here.
#[allow(clippy::too_many_arguments)]
fn rows_into(
    kern: &RowKernels,
    acts: &Prepared,
    w: &WeightView,
    r0: usize,
    r1: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    stride: usize,
) {
    let rows = RowRange { r0, r1, n, stride };
    let nb = k / crate::formats::QK;
    match acts {
        Prepared::F32(x) => f32_rows(kern, x, w, rows, k, dst),
        Prepared::Q8_0(q) => {
            let sel = match w.dtype() {
                DType::Q4_0 => QuantizedKernels {
                    one: kern.q4_0,
                    w4: kern.q4_0_w4,
                    x4: kern.q4_0_x4,
                    x2: None,
                },
                DType::Q5_0 => kern.q5_0.clone(),
                _ => QuantizedKernels {
                    one: kern.q8_0,
                    w4: kern.q8_0_w4,
                    x4: kern.q8_0_x4,
                    x2: None,
                },
            };
            quantized_rows(&sel, q, nb, w, rows, dst)
        }
        Prepared::Q8_1(q) => {
            let sel = match w.dtype() {
                DType::Q5_1 => kern.q5_1.clone(),
                _ => QuantizedKernels {
                    one: kern.q4_1,
                    w4: kern.q4_1_w4,
                    x4: kern.q4_1_x4,
                    x2: None,
                },
            };
            quantized_rows(&sel, q, nb, w, rows, dst)
        }
        Prepared::Q16(q) => {
            let sel = QuantizedKernels {
                one: kern.q8_0_q16,
                w4: None,
                x4: kern.q8_0_q16_x4,
                x2: kern.q8_0_q16_x2,
            };
            quantized_rows(&sel, q, nb, w, rows, dst)
        }
        Prepared::Q8K(q) => {
            let sel = match w.dtype() {
                DType::Q4_K => &kern.q4_k,
                DType::Q5_K => &kern.q5_k,
                _ => &kern.q6_k,
            };
            quantized_rows(sel, q, k / QK_K, w, rows, dst)
        }
    }
}

/// Which weight rows [`rows_into`] computes, for how many activation rows, and the output's
/// row stride.
#[derive(Clone, Copy)]
struct RowRange {
    r0: usize,
    r1: usize,
    n: usize,
    stride: usize,
}

impl<B> Clone for QuantizedKernels<B> {
    fn clone(&self) -> Self {
        QuantizedKernels { ..*self }
    }
}

/// [`rows_into`] for quantized activations: `q` holds `nb` blocks per activation row.
fn quantized_rows<B>(
    kern: &QuantizedKernels<B>,
    q: &[B],
    nb: usize,
    w: &WeightView,
    RowRange { r0, r1, n, stride }: RowRange,
    dst: &mut [f32],
) {
    let xrow = |i: usize| &q[i * nb..(i + 1) * nb];
    let mut first_row = r0;
    if let (1, Some(f)) = (n, kern.w4) {
        // Matrix-vector: four weight rows per pass over the activation blocks.
        while first_row + 4 <= r1 {
            let r = first_row;
            // SAFETY: `kern` came from the table `kernels_for` checked against this CPU; the
            // kernels bound every read by the slices' lengths.
            let v = unsafe { f(std::array::from_fn(|t| w.row_bytes(r + t)), xrow(0)) };
            dst[r - r0..r - r0 + 4].copy_from_slice(&v);
            first_row += 4;
        }
    }
    for r in first_row..r1 {
        let wr = w.row_bytes(r);
        let mut i = 0;
        if let Some(f) = kern.x4 {
            // Matrix-matrix: four activation rows per pass over the weight row.
            while i + 4 <= n {
                // SAFETY: as above.
                let v = unsafe { f(wr, std::array::from_fn(|t| xrow(i + t))) };
                for (t, v) in v.into_iter().enumerate() {
                    dst[(i + t) * stride + (r - r0)] = v;
                }
                i += 4;
            }
        }
        if let (Some(f), true) = (kern.x2, i + 2 <= n) {
            // SAFETY: as above.
            let v = unsafe { f(wr, std::array::from_fn(|t| xrow(i + t))) };
            for (t, v) in v.into_iter().enumerate() {
                dst[(i + t) * stride + (r - r0)] = v;
            }
            i += 2;
        }
        for i in i..n {
            // SAFETY: as above.
            dst[i * stride + (r - r0)] = unsafe { (kern.one)(wr, xrow(i)) };
        }
    }
}

/// [`rows_into`] for f32 activations `x` (rows of `k`).
fn f32_rows(
    kern: &RowKernels,
    x: &[f32],
    w: &WeightView,
    RowRange { r0, r1, n, stride }: RowRange,
    k: usize,
    dst: &mut [f32],
) {
    let x4 = match w.dtype() {
        DType::F32 => kern.f32_x4,
        DType::F16 => kern.f16_x4,
        DType::Q8_0 => kern.q8_0_f32_x4,
        _ => None,
    };
    // Matrix-matrix tiles where the variant has them: rows r0..tiled get their first `n4`
    // outputs here, the rest of the batch below.
    let n4 = n / 4 * 4;
    let tile = match w.dtype() {
        DType::F32 => kern.f32_tile,
        DType::F16 => kern.f16_tile,
        _ => None,
    };
    let tiled = match tile {
        Some(f) => tile_rows(f, x, k, w, [r0, r0, r1], n4, dst, stride),
        None => r0,
    };
    // A format without its own f32 kernel (Q4_x, Q5_x, k-quants): each row dequantized once
    // into this buffer, then the variant's f32 kernel.
    let mut deq = Vec::new();
    for r in r0..r1 {
        let wr = w.row_bytes(r);
        let mut i = if r < tiled { n4 } else { 0 };
        if let Some(f) = x4 {
            // Matrix-matrix: four activation rows per pass over the weight row.
            while i + 4 <= n {
                // SAFETY: `kern` came from `kernels_for`, which checked that this CPU has the
                // variant's features; the kernels bound every read by the slices' lengths.
                let v = unsafe { f(wr, std::array::from_fn(|t| &x[(i + t) * k..][..k])) };
                for (t, v) in v.into_iter().enumerate() {
                    dst[(i + t) * stride + (r - r0)] = v;
                }
                i += 4;
            }
        }
        let first = i;
        for i in i..n {
            let xi = &x[i * k..(i + 1) * k];
            // SAFETY: as above.
            let v = unsafe {
                match w.dtype() {
                    DType::F32 => (kern.f32)(wr, xi),
                    DType::F16 => (kern.f16)(wr, xi),
                    DType::Q8_0 => (kern.q8_0_f32)(wr, xi),
                    _ => {
                        if i == first {
                            deq.resize(k, 0f32);
                            // Cannot fail: r < rows and deq.len() == cols.
                            let _ = w.dequantize_row(r, &mut deq);
                        }
                        (kern.f32)(bytemuck::cast_slice(&deq), xi)
                    }
                }
            };
            dst[i * stride + (r - r0)] = v;
        }
    }
}
