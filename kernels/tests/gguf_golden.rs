//! Golden test against ggml's own code (the `gguf` Python package from PyPI, and ggml's C
//! library where gguf-py has no quantizer): rows of SmolLM2-135M's GGUF (Q4_1 blocks and the
//! Q8_0 embedding) and of its Q4_K_M quantization by llama.cpp (Q4_K, Q6_K, Q5_0), ggml-made
//! and random-byte Q4_K/Q5_K/Q6_K blocks dequantize bit for bit as `gguf.quants.dequantize`
//! does; random rows quantize to exactly the bytes `gguf.quants.quantize` writes for Q4_0,
//! Q4_1, Q8_0, Q5_0 and Q5_1, and the Q8_K activation blocks ggml's `quantize_row_q8_K_ref`
//! writes; the scalar k-quant and Q5 dot products agree with ggml's `vec_dot`. The data comes
//! from `tests/data/gguf_golden.py` (see there to regenerate).

use edgenlu_kernels::dispatch::Variant;
use edgenlu_kernels::formats::kquants::{dequantize_q8_k, quantize_block_q8_k};
use edgenlu_kernels::formats::{dequantize, quantize, QK_K};
use edgenlu_kernels::matmul::{matmul_with, Activations};
use edgenlu_kernels::{BlockQ8K, DType, WeightView};

/// ggml's type id of Q8_K (activations only, so not a [`DType`]).
const GGML_Q8_K: u32 = 15;

struct Record {
    name: String,
    ggml_type: u32,
    rows: usize,
    cols: usize,
    raw: Vec<u8>,
    deq: Vec<f32>,
    src: Option<Vec<f32>>,
    /// An activation row and ggml's dot product of every row with it.
    dot: Option<(Vec<f32>, Vec<f32>)>,
}

impl Record {
    /// The weight format (`None` for Q8_K activation records).
    fn dtype(&self) -> Option<DType> {
        DType::from_ggml_type(self.ggml_type)
    }
}

fn records() -> Vec<Record> {
    let data = include_bytes!("data/gguf_golden.bin");
    assert_eq!(&data[..4], b"EKG2");
    let mut at = 4;
    let u32_at = |at: &mut usize| {
        let v = u32::from_le_bytes(data[*at..*at + 4].try_into().unwrap());
        *at += 4;
        v as usize
    };
    let count = u32_at(&mut at);
    let floats = |bytes: &[u8]| -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    (0..count)
        .map(|_| {
            let name_len = u32_at(&mut at);
            let name = String::from_utf8(data[at..at + name_len].to_vec()).unwrap();
            at += name_len;
            let ggml_type = u32_at(&mut at) as u32;
            let (rows, cols, raw_len) = (u32_at(&mut at), u32_at(&mut at), u32_at(&mut at));
            let raw = data[at..at + raw_len].to_vec();
            at += raw_len;
            let deq = floats(&data[at..at + 4 * rows * cols]);
            at += 4 * rows * cols;
            let has_src = data[at] == 1;
            at += 1;
            let src = has_src.then(|| {
                let s = floats(&data[at..at + 4 * rows * cols]);
                at += 4 * rows * cols;
                s
            });
            let has_dot = data[at] == 1;
            at += 1;
            let dot = has_dot.then(|| {
                let x = floats(&data[at..at + 4 * cols]);
                let dots = floats(&data[at + 4 * cols..at + 4 * (cols + rows)]);
                at += 4 * (cols + rows);
                (x, dots)
            });
            Record {
                name,
                ggml_type,
                rows,
                cols,
                raw,
                deq,
                src,
                dot,
            }
        })
        .collect()
}

/// Asserts `ours` equals ggml's values bit for bit.
fn assert_same_bits(name: &str, ours: &[f32], theirs: &[f32]) {
    assert_eq!(ours.len(), theirs.len(), "{name}");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{name} element {i}: {a} vs ggml {b}"
        );
    }
}

#[test]
fn dequantize_matches_gguf_py_bit_for_bit() {
    let recs = records();
    for (prefix, dtype) in [
        ("smollm2:", DType::Q4_1),
        ("smollm2:", DType::Q8_0),
        ("smollm2-q4_k_m:", DType::Q4_K),
        ("smollm2-q4_k_m:", DType::Q6_K),
        ("smollm2-q4_k_m:", DType::Q5_0),
        ("random-bytes:", DType::Q5_K),
    ] {
        assert!(
            recs.iter()
                .any(|r| r.name.starts_with(prefix) && r.dtype() == Some(dtype)),
            "no {prefix} {dtype:?} record"
        );
    }
    let mut checked = 0;
    for r in recs.iter().filter(|r| r.ggml_type != GGML_Q8_K) {
        let dtype = r.dtype().expect("a weight format");
        assert_eq!(
            r.raw.len(),
            dtype.row_bytes(r.cols).unwrap() * r.rows,
            "{}",
            r.name
        );
        let mut ours = vec![0f32; r.rows * r.cols];
        dequantize(dtype, &r.raw, &mut ours).unwrap();
        assert_same_bits(&r.name, &ours, &r.deq);
        checked += 1;
    }
    assert_eq!(checked, 36);
}

#[test]
fn quantize_matches_gguf_py_byte_for_byte() {
    let mut checked = 0;
    for r in records() {
        let (Some(src), Some(dtype)) = (&r.src, r.dtype()) else {
            continue;
        };
        let mut ours = Vec::new();
        quantize(dtype, src, &mut ours).unwrap();
        assert_eq!(ours, r.raw, "{}", r.name);
        checked += 1;
    }
    assert_eq!(checked, 15);
}

#[test]
fn q8_k_activations_match_ggml_byte_for_byte() {
    let mut checked = 0;
    for r in records().iter().filter(|r| r.ggml_type == GGML_Q8_K) {
        let src = r.src.as_ref().expect("q8_K records carry their source");
        let blocks: Vec<BlockQ8K> = src
            .chunks_exact(QK_K)
            .map(|c| quantize_block_q8_k(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            bytemuck::cast_slice::<_, u8>(&blocks),
            &r.raw[..],
            "{}",
            r.name
        );
        let mut ours = vec![0f32; src.len()];
        for (b, o) in blocks.iter().zip(ours.chunks_exact_mut(QK_K)) {
            dequantize_q8_k(b, o);
        }
        assert_same_bits(&r.name, &ours, &r.deq);
        checked += 1;
    }
    assert_eq!(checked, 3);
}

/// The scalar quantized-activation matmul (ggml's dot-product semantics) gives ggml's own
/// `vec_dot` results: the activation quantizers and integer sums are the same, so only the
/// f32 scaling and summation order differ (bounded here by 1e-5 of Σ|w·x|).
#[test]
fn kquant_and_q5_dots_match_ggml() {
    let mut checked = 0;
    for r in records() {
        let (Some((x, dots)), Some(dtype)) = (&r.dot, r.dtype()) else {
            continue;
        };
        let w = WeightView::new(dtype, r.rows, r.cols, &r.raw).unwrap();
        let mut ours = vec![0f32; r.rows];
        matmul_with(
            Variant::Scalar,
            Activations::Quantized,
            &mut ours,
            x,
            1,
            &w,
            None,
        )
        .unwrap();
        for (row, (o, d)) in ours.iter().zip(dots).enumerate() {
            let wrow = &r.deq[row * r.cols..(row + 1) * r.cols];
            let mag: f64 = wrow
                .iter()
                .zip(x)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            let tol = 1e-5 * mag + 1e-30;
            assert!(
                ((*o as f64) - (*d as f64)).abs() <= tol,
                "{} row {row}: {o} vs ggml {d} (tol {tol:e})",
                r.name
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 14);
}
