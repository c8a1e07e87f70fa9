//! Golden test against the `gguf` Python package (ggml's own reference, PyPI): rows of
//! SmolLM2-135M's GGUF (Q4_1 blocks and the Q8_0 embedding) dequantize bit for bit as
//! `gguf.quants.dequantize` does, and random rows quantize to exactly the bytes
//! `gguf.quants.quantize` writes for Q4_0, Q4_1 and Q8_0. The data comes from
//! `tests/data/gguf_golden.py` (see there to regenerate).

use edgenlu_kernels::formats::{dequantize, quantize};
use edgenlu_kernels::DType;

struct Record {
    name: String,
    dtype: DType,
    rows: usize,
    cols: usize,
    raw: Vec<u8>,
    deq: Vec<f32>,
    src: Option<Vec<f32>>,
}

fn records() -> Vec<Record> {
    let data = include_bytes!("data/gguf_golden.bin");
    assert_eq!(&data[..4], b"EKG1");
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
            Record {
                name,
                dtype: DType::from_ggml_type(ggml_type).expect("known type"),
                rows,
                cols,
                raw,
                deq,
                src,
            }
        })
        .collect()
}

#[test]
fn dequantize_matches_gguf_py_bit_for_bit() {
    let recs = records();
    assert!(recs
        .iter()
        .any(|r| r.name.starts_with("smollm2:") && r.dtype == DType::Q4_1));
    assert!(recs
        .iter()
        .any(|r| r.name.starts_with("smollm2:") && r.dtype == DType::Q8_0));
    for r in &recs {
        assert_eq!(
            r.raw.len(),
            r.dtype.row_bytes(r.cols).unwrap() * r.rows,
            "{}",
            r.name
        );
        let mut ours = vec![0f32; r.rows * r.cols];
        dequantize(r.dtype, &r.raw, &mut ours).unwrap();
        for (i, (a, b)) in ours.iter().zip(&r.deq).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{} element {i}: {a} vs gguf-py {b}",
                r.name
            );
        }
    }
}

#[test]
fn quantize_matches_gguf_py_byte_for_byte() {
    let mut checked = 0;
    for r in records() {
        let Some(src) = &r.src else { continue };
        let mut ours = Vec::new();
        quantize(r.dtype, src, &mut ours).unwrap();
        assert_eq!(ours, r.raw, "{}", r.name);
        checked += 1;
    }
    assert_eq!(checked, 9);
}
