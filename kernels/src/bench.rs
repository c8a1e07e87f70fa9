//! Measurement helpers shared by the criterion benches (`kernels/benches/`) and
//! `edgenlu bench kernels`: the shapes the project cares about, a STREAM-style read-bandwidth
//! probe for the roofline, and a timer for one matmul case. Never used by tests as timed
//! assertions.

use crate::dispatch::{active_variant, set_max_threads};
use crate::formats::quantize;
use crate::{DType, KernelError, WeightView};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One weight matrix to benchmark: `rows × cols` in `dtype`, named after where it occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Where the matrix occurs (e.g. "smollm2 ffn_down").
    pub name: &'static str,
    /// Output rows.
    pub rows: usize,
    /// Columns (k).
    pub cols: usize,
    /// Weight format.
    pub dtype: DType,
}

const fn s(name: &'static str, rows: usize, cols: usize, dtype: DType) -> Shape {
    Shape {
        name,
        rows,
        cols,
        dtype,
    }
}

/// The shapes of issue [kernels]: SmolLM2-135M (q4_0 and q4_1 blocks, q8_0 embedding/output
/// head), MiniLM-L6 (q8_0 as the default encoder stores it, and f16), and one llama-7B-class
/// matrix for the ggml anchor (q4_0 4096×14336).
pub const SHAPES: &[Shape] = &[
    s("smollm2 attn_q/o", 576, 576, DType::Q4_0),
    s("smollm2 attn_k/v", 192, 576, DType::Q4_0),
    s("smollm2 ffn_up/gate", 1536, 576, DType::Q4_0),
    s("smollm2 ffn_down", 576, 1536, DType::Q4_0),
    s("smollm2 attn_q/o", 576, 576, DType::Q4_1),
    s("smollm2 attn_k/v", 192, 576, DType::Q4_1),
    s("smollm2 ffn_up/gate", 1536, 576, DType::Q4_1),
    s("smollm2 ffn_down", 576, 1536, DType::Q4_1),
    s("smollm2 output", 49152, 576, DType::Q8_0),
    s("minilm attn", 384, 384, DType::Q8_0),
    s("minilm ffn_up", 1536, 384, DType::Q8_0),
    s("minilm ffn_down", 384, 1536, DType::Q8_0),
    s("minilm attn", 384, 384, DType::F16),
    s("minilm ffn_up", 1536, 384, DType::F16),
    s("minilm ffn_down", 384, 1536, DType::F16),
    s("7b ffn", 4096, 14336, DType::Q4_0),
];

/// Deterministic pseudo-random values in [-1, 1) (no RNG dependency needed).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Weight bytes of `shape`, quantized from pseudo-random values.
pub fn weights(shape: &Shape) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Quantize row by row: the 7B matrix as one f32 buffer would be 235 MB.
    for r in 0..shape.rows {
        let row = pseudo_random(shape.cols, r as u64 + 1);
        quantize(shape.dtype, &row, &mut bytes).expect("shapes are whole blocks");
    }
    bytes
}

/// Sustained read bandwidth in bytes/s: the best of `reps` passes summing a `bytes`-long
/// buffer on `threads` threads (each reads its own contiguous part), STREAM-style.
pub fn read_bandwidth(bytes: usize, threads: usize, reps: usize) -> f64 {
    let words = bytes / 8;
    // Non-zero contents, so every page is really backed before timing.
    let buf: Vec<u64> = (0..words as u64).collect();
    let threads = threads.max(1);
    let chunk = words.div_ceil(threads);
    let mut best = f64::MAX;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = buf
                .chunks(chunk)
                .map(|part| s.spawn(move || sum_words(part)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("reader"))
                .fold(0, u64::wrapping_add)
        });
        black_box(total);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / best
}

/// The compute roofline of the 16-bit integer dots behind the Q8_0 × 16-bit kernels: products
/// per second on one thread, from twelve independent chains of the variant's multiply-add
/// instruction (AVX2 `vpmaddwd`: 16 products; AVX-512 `vpdpwssd`: 32), best of `reps` runs
/// of `iters` steps. `None` where the variant has no such probe (scalar, NEON). An upper
/// bound only: a real kernel also loads, converts and scales.
pub fn int16_dot_peak(variant: crate::Variant, iters: usize, reps: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let (run, products): (unsafe fn(usize) -> u64, usize) = match variant {
            crate::Variant::Avx2 => (madd_chains_avx2, 12 * 16),
            crate::Variant::Avx512 => (dpwssd_chains_avx512, 12 * 32),
            _ => return None,
        };
        if !variant.is_supported() {
            return None;
        }
        let mut best = f64::MAX;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            // SAFETY: the variant's features were checked just above.
            black_box(unsafe { run(black_box(iters)) });
            best = best.min(t.elapsed().as_secs_f64());
        }
        Some((iters * products) as f64 / best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (variant, iters, reps);
        None
    }
}

/// Generates a probe for [`int16_dot_peak`]: `iters` steps of twelve independent chains of
/// one multiply-add (`$step(acc, b)`), folded into a number so none is optimized away.
macro_rules! dot_chains {
    ($name:ident, $features:literal, $zero:ident, $set1:ident, $step:expr, $fold:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(iters: usize) -> u64 {
            use std::arch::x86_64::*;
            let b = $set1(black_box(3));
            let mut acc = [$set1(1); 12];
            for _ in 0..iters {
                for a in acc.iter_mut() {
                    *a = $step(*a, b);
                }
            }
            let mut x = $zero();
            for a in acc {
                x = $fold(x, a);
            }
            // Any lane will do: the chains only have to be live.
            // SAFETY: x is at least 8 bytes of plain integer lanes.
            unsafe { std::ptr::read_unaligned(&x as *const _ as *const u64) }
        }
    };
}

dot_chains!(
    madd_chains_avx2,
    "avx2",
    _mm256_setzero_si256,
    _mm256_set1_epi16,
    |a, b| _mm256_madd_epi16(a, b),
    |x, a| _mm256_xor_si256(x, a)
);

dot_chains!(
    dpwssd_chains_avx512,
    "avx512f,avx512bw,avx512vnni",
    _mm512_setzero_si512,
    _mm512_set1_epi16,
    |a, b| _mm512_dpwssd_epi32(a, b, b),
    |x, a| _mm512_xor_si512(x, a)
);

/// Sum of words with 8 independent wrapping accumulators (vectorizes; never the bottleneck).
fn sum_words(x: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0u64, |a, v| a.wrapping_add(*v));
    acc.iter().fold(tail, |a, v| a.wrapping_add(*v))
}

/// One timed matmul case.
#[derive(Debug, Clone)]
pub struct MatmulResult {
    /// The matrix.
    pub shape: Shape,
    /// Activation rows.
    pub n: usize,
    /// Thread cap in force ([`set_max_threads`]); small matrices may use fewer.
    pub threads: usize,
    /// Median time per call.
    pub time: Duration,
    /// Fastest batch's time per call: on a shared machine the least disturbed figure.
    pub best: Duration,
}

impl MatmulResult {
    /// Weight bytes read per call.
    pub fn weight_bytes(&self) -> usize {
        self.shape.dtype.row_bytes(self.shape.cols).unwrap_or(0) * self.shape.rows
    }
    /// Weights (matrix elements) per second, in billions.
    pub fn gweights_per_s(&self) -> f64 {
        (self.shape.rows * self.shape.cols) as f64 / self.time.as_secs_f64() / 1e9
    }
    /// Weight bytes per second, in GB/s (10⁹).
    pub fn gbytes_per_s(&self) -> f64 {
        self.weight_bytes() as f64 / self.time.as_secs_f64() / 1e9
    }
    /// Microseconds per call.
    pub fn micros(&self) -> f64 {
        self.time.as_secs_f64() * 1e6
    }
}

/// Times `ops::matmul` (the active variant, default activations) on `shape` with `n`
/// activation rows and at most `threads` threads: the median of batches filling about
/// `budget`, after a warm-up call. Leaves the thread cap at its default afterwards.
pub fn time_matmul(
    shape: &Shape,
    w_bytes: &[u8],
    n: usize,
    threads: usize,
    budget: Duration,
) -> Result<MatmulResult, KernelError> {
    let w = WeightView::new(shape.dtype, shape.rows, shape.cols, w_bytes)?;
    let x = pseudo_random(n * shape.cols, 7);
    let mut out = vec![0f32; n * shape.rows];
    set_max_threads(threads);
    let _ = active_variant();
    let timed = time_calls(budget, || {
        crate::ops::matmul(&mut out, black_box(&x), n, &w, None)
    });
    set_max_threads(0);
    black_box(&out);
    let (time, best) = timed?;
    Ok(MatmulResult {
        shape: *shape,
        n,
        threads,
        time,
        best,
    })
}

/// Times `call`: one warm-up call, then batches of ~1/15 of `budget` (at least 5 batches).
/// Returns the median and the fastest batch's time per call, or the call's first error.
pub fn time_calls(
    budget: Duration,
    mut call: impl FnMut() -> Result<(), KernelError>,
) -> Result<(Duration, Duration), KernelError> {
    let t = Instant::now();
    call()?;
    let once = t.elapsed().max(Duration::from_nanos(100));
    let per_batch = ((budget.as_secs_f64() / 15.0) / once.as_secs_f64()).clamp(1.0, 1e6) as u32;
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || (start.elapsed() < budget && samples.len() < 200) {
        let t = Instant::now();
        for _ in 0..per_batch {
            call()?;
        }
        samples.push(t.elapsed() / per_batch);
    }
    samples.sort();
    Ok((samples[samples.len() / 2], samples[0]))
}

/// A row or elementwise op at the shape one model call gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpCase {
    /// The op and where it occurs (e.g. "gelu minilm ffn").
    pub name: &'static str,
    /// The shape, as the op's arguments read.
    pub shape: &'static str,
    which: OpKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Gelu,
    Swiglu,
    GegluTanh,
    Softmax,
    LayerNorm,
    RmsNorm,
    /// MiniLM's self-attention over this many tokens.
    AttentionEncoder(usize),
    AttentionDecode,
}

/// The ops besides matmul that a MiniLM request (16 tokens; attention also at 128, where it
/// grows with the square of the length) and a SmolLM2 decode step (at position 256) spend
/// time in, and Gemma 3 270M's FFN gate.
pub const OP_CASES: &[OpCase] = &[
    OpCase {
        name: "gelu minilm ffn",
        shape: "16x1536",
        which: OpKind::Gelu,
    },
    OpCase {
        name: "layer_norm minilm",
        shape: "16x384",
        which: OpKind::LayerNorm,
    },
    OpCase {
        name: "attention minilm",
        shape: "n=m=16 h=12 d=32",
        which: OpKind::AttentionEncoder(16),
    },
    OpCase {
        name: "attention minilm",
        shape: "n=m=128 h=12 d=32",
        which: OpKind::AttentionEncoder(128),
    },
    OpCase {
        name: "softmax minilm scores",
        shape: "192x16",
        which: OpKind::Softmax,
    },
    OpCase {
        name: "swiglu smollm2 ffn",
        shape: "1x1536",
        which: OpKind::Swiglu,
    },
    OpCase {
        name: "geglu_tanh gemma3-270m ffn",
        shape: "1x2048",
        which: OpKind::GegluTanh,
    },
    OpCase {
        name: "rms_norm smollm2",
        shape: "1x576",
        which: OpKind::RmsNorm,
    },
    OpCase {
        name: "attention smollm2 decode",
        shape: "n=1 m=256 h=9/3 d=64",
        which: OpKind::AttentionDecode,
    },
];

/// Times one [`OpCase`] with the active variant (as [`time_calls`]: median, best).
pub fn time_op(case: &OpCase, budget: Duration) -> Result<(Duration, Duration), KernelError> {
    use crate::ops;
    let v = |len: usize, seed: u64| -> Vec<f32> {
        pseudo_random(len, seed)
            .into_iter()
            .map(|x| x * 4.0)
            .collect()
    };
    match case.which {
        OpKind::Gelu => {
            let (x0, mut x) = (v(16 * 1536, 1), vec![0f32; 16 * 1536]);
            time_calls(budget, || {
                x.copy_from_slice(&x0);
                ops::gelu(black_box(&mut x))
            })
        }
        OpKind::Swiglu => {
            let (g0, up, mut g) = (v(1536, 1), v(1536, 2), vec![0f32; 1536]);
            time_calls(budget, || {
                g.copy_from_slice(&g0);
                ops::swiglu(black_box(&mut g), &up)
            })
        }
        OpKind::GegluTanh => {
            let (g0, up, mut g) = (v(2048, 1), v(2048, 2), vec![0f32; 2048]);
            time_calls(budget, || {
                g.copy_from_slice(&g0);
                ops::geglu_tanh(black_box(&mut g), &up)
            })
        }
        OpKind::Softmax => {
            let (x0, mut x) = (v(192 * 16, 1), vec![0f32; 192 * 16]);
            time_calls(budget, || {
                x.copy_from_slice(&x0);
                ops::softmax(black_box(&mut x), 16)
            })
        }
        OpKind::LayerNorm => {
            let (x, g, b, mut out) = (v(16 * 384, 1), v(384, 2), v(384, 3), vec![0f32; 16 * 384]);
            time_calls(budget, || {
                ops::layer_norm(&mut out, black_box(&x), 384, &g, &b, 1e-12)
            })
        }
        OpKind::RmsNorm => {
            let (x, g, mut out) = (v(576, 1), v(576, 2), vec![0f32; 576]);
            time_calls(budget, || {
                ops::rms_norm(&mut out, black_box(&x), 576, &g, 1e-5)
            })
        }
        OpKind::AttentionEncoder(t) => {
            let (q, k, val) = (v(t * 384, 1), v(t * 384, 2), v(t * 384, 3));
            let mut out = vec![0f32; t * 384];
            time_calls(budget, || {
                ops::attention(&mut out, black_box(&q), &k, &val, t, t, 12, 12, 32, false)
            })
        }
        OpKind::AttentionDecode => {
            let (q, k, val) = (v(576, 1), v(256 * 192, 2), v(256 * 192, 3));
            let mut out = vec![0f32; 576];
            time_calls(budget, || {
                ops::attention(&mut out, black_box(&q), &k, &val, 1, 256, 9, 3, 64, true)
            })
        }
    }
}
