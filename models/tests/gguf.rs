//! GGUF reader/writer: round trips, truncation, random corruption and hostile headers.

use edgenlu_kernels::formats::{quantize, DType};
use edgenlu_models::gguf::{Gguf, GgufError, GgufFile, GgufWriter, MetaValue};
use proptest::prelude::*;

/// A small file with every metadata type and a few tensor formats.
fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("bert".into()))
        .add_metadata("t.u8", MetaValue::U8(7))
        .add_metadata("t.i8", MetaValue::I8(-7))
        .add_metadata("t.u16", MetaValue::U16(700))
        .add_metadata("t.i16", MetaValue::I16(-700))
        .add_metadata("t.u32", MetaValue::U32(70_000))
        .add_metadata("t.i32", MetaValue::I32(-70_000))
        .add_metadata("t.u64", MetaValue::U64(1 << 40))
        .add_metadata("t.i64", MetaValue::I64(-(1 << 40)))
        .add_metadata("t.f32", MetaValue::F32(1.5))
        .add_metadata("t.f64", MetaValue::F64(-2.25))
        .add_metadata("t.bool", MetaValue::Bool(true))
        .add_metadata(
            "t.strs",
            MetaValue::Array(vec![
                MetaValue::String("a".into()),
                MetaValue::String("éß".into()),
            ]),
        )
        .add_metadata(
            "t.nested",
            MetaValue::Array(vec![
                MetaValue::Array(vec![MetaValue::I32(1), MetaValue::I32(2)]),
                MetaValue::Array(vec![MetaValue::F32(0.5)]),
            ]),
        )
        .add_metadata("t.empty", MetaValue::Array(vec![]));
    let x: Vec<f32> = (0..64).map(|i| i as f32 / 10.0 - 3.0).collect();
    let mut q = Vec::new();
    quantize(DType::Q8_0, &x, &mut q).unwrap();
    w.add_tensor("q", DType::Q8_0, &[2, 32], q).unwrap();
    let mut f = Vec::new();
    quantize(DType::F32, &x[..3], &mut f).unwrap();
    w.add_tensor("bias", DType::F32, &[3], f).unwrap();
    let mut h = Vec::new();
    quantize(DType::F16, &x[..24], &mut h).unwrap();
    w.add_tensor("cube", DType::F16, &[2, 3, 4], h).unwrap();
    w
}

#[test]
fn round_trip_keeps_metadata_and_bytes() {
    let w = sample_writer();
    let bytes = w.to_bytes().unwrap();
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture(), Some("bert"));
    assert_eq!(f.get_u32("general.alignment"), Some(32));
    assert_eq!(f.metadata("t.i16"), Some(&MetaValue::I16(-700)));
    assert_eq!(f.metadata("t.u64"), Some(&MetaValue::U64(1 << 40)));
    assert_eq!(f.get_f32("t.f64"), Some(-2.25));
    assert_eq!(f.get_bool("t.bool"), Some(true));
    assert_eq!(f.get_str_array("t.strs"), Some(vec!["a", "éß"]));
    assert_eq!(f.metadata("t.empty"), Some(&MetaValue::Array(vec![])));
    assert_eq!(f.metadata_iter().count(), 16);
    let q = f.tensor("q").unwrap();
    assert_eq!((q.dtype(), q.shape()), (DType::Q8_0, &[2usize, 32][..]));
    assert_eq!(q.data().len(), 68);
    let cube = f.tensor("cube").unwrap();
    assert_eq!(cube.shape(), &[2, 3, 4]);
    assert_eq!(
        f.tensors().map(|t| t.name()).collect::<Vec<_>>(),
        ["q", "bias", "cube"]
    );
    for t in f.tensors() {
        assert_eq!(
            t.data().as_ptr() as usize % 32,
            f.bytes().as_ptr() as usize % 32,
            "{} aligned",
            t.name()
        );
    }
    // Writing what was read gives the same file.
    let mut w2 = GgufWriter::new();
    for (k, v) in f.metadata_iter() {
        w2.add_metadata(k, v.clone());
    }
    for t in f.tensors() {
        w2.add_tensor(t.name(), t.dtype(), t.shape(), t.data().to_vec())
            .unwrap();
    }
    assert_eq!(w2.to_bytes().unwrap(), f.bytes());
}

#[test]
fn writes_atomically_to_disk_and_maps_back() {
    let dir = std::env::temp_dir().join(format!("edgenlu-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.gguf");
    let w = sample_writer();
    w.write(&path).unwrap();
    assert!(!dir.join("m.gguf.tmp").exists());
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.bytes(), &w.to_bytes().unwrap()[..]);
    let shared = f.clone();
    std::thread::spawn(move || assert!(shared.tensor("q").is_some()))
        .join()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writer_refuses_bad_tensors_and_mixed_arrays() {
    let mut w = GgufWriter::new();
    assert!(w.add_tensor("a", DType::F32, &[2], vec![0; 7]).is_err());
    assert!(w
        .add_tensor("a", DType::Q8_0, &[1, 33], vec![0; 34])
        .is_err());
    assert!(w.add_tensor("a", DType::F32, &[], vec![]).is_err());
    assert!(w
        .add_tensor("a", DType::F32, &[1, 1, 1, 1, 1], vec![0; 4])
        .is_err());
    assert!(w.add_tensor("a", DType::F32, &[0, 4], vec![]).is_err());
    w.add_tensor("a", DType::F32, &[1], vec![0; 4]).unwrap();
    assert!(matches!(
        w.add_tensor("a", DType::F32, &[1], vec![0; 4]),
        Err(GgufError::DuplicateTensor(_))
    ));
    w.add_metadata(
        "mixed",
        MetaValue::Array(vec![MetaValue::U8(1), MetaValue::I8(1)]),
    );
    assert!(matches!(w.to_bytes(), Err(GgufError::BadMetadata { .. })));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_writer().to_bytes().unwrap();
    let index = Gguf::parse(&bytes).unwrap();
    // The writer pads after the last tensor too; that padding carries nothing, so a file
    // missing it is still whole.
    let end = index
        .tensor_infos()
        .iter()
        .map(|t| t.file_offset() + t.size())
        .max()
        .unwrap();
    for n in 0..end {
        assert!(
            Gguf::parse(&bytes[..n]).is_err(),
            "prefix of {n} bytes parsed"
        );
    }
    for n in end..=bytes.len() {
        assert!(Gguf::parse(&bytes[..n]).is_ok());
    }
}

/// Bytes of a header built by hand, for hostile cases the writer would refuse.
struct Raw(Vec<u8>);

impl Raw {
    fn new(version: u32, n_tensors: u64, n_meta: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_meta);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// A tensor info: dims innermost first, as GGUF stores them.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad(&mut self, data: usize) -> Vec<u8> {
        let mut b = self.0.clone();
        b.resize(b.len().next_multiple_of(32) + data, 0);
        b
    }
}

fn err(bytes: &[u8]) -> GgufError {
    Gguf::parse(bytes).expect_err("hostile file parsed")
}

#[test]
fn hostile_headers_are_refused() {
    // Sanity: the hand-built good case parses.
    assert!(Gguf::parse(&Raw::new(3, 1, 0).tensor("t", &[8], 0, 0).pad(32)).is_ok());

    assert!(matches!(err(b"GGML\x03\0\0\0"), GgufError::BadMagic(_)));
    assert!(matches!(
        err(&Raw::new(1, 0, 0).pad(0)),
        GgufError::UnsupportedVersion(1)
    ));
    assert!(matches!(
        err(&Raw::new(3, u64::MAX, 0).pad(0)),
        GgufError::TooLarge { .. }
    ));
    assert!(matches!(
        err(&Raw::new(3, 0, 1 << 40).pad(0)),
        GgufError::TooLarge { .. }
    ));
    // A key claiming 2^63 bytes.
    assert!(matches!(
        err(&Raw::new(3, 0, 1).u64(1 << 63).pad(64)),
        GgufError::TooLarge { .. }
    ));
    // Unknown value type, and an array of an unknown type.
    assert!(matches!(
        err(&Raw::new(3, 0, 1).str("k").u32(13).pad(64)),
        GgufError::BadValueType { .. }
    ));
    assert!(matches!(
        err(&Raw::new(3, 0, 1).str("k").u32(9).u32(99).u64(1).pad(64)),
        GgufError::BadValueType { .. }
    ));
    // A bool that is neither 0 nor 1.
    let mut b = Raw::new(3, 0, 1);
    b.str("k").u32(7);
    b.0.push(2);
    assert!(matches!(err(&b.pad(0)), GgufError::BadValueType { .. }));
    // Huge array length.
    assert!(matches!(
        err(&Raw::new(3, 0, 1)
            .str("k")
            .u32(9)
            .u32(4)
            .u64(u64::MAX / 2)
            .pad(64)),
        GgufError::TooLarge { .. }
    ));
    // Arrays nested past the limit.
    let mut deep = Raw::new(3, 0, 1);
    deep.str("k").u32(9);
    for _ in 0..20 {
        deep.u32(9).u64(1);
    }
    assert!(matches!(
        err(&deep.pad(64)),
        GgufError::TooDeep { .. } | GgufError::Truncated { .. }
    ));
    // Invalid UTF-8 key.
    let mut utf = Raw::new(3, 0, 1);
    utf.u64(2);
    utf.0.extend_from_slice(&[0xff, 0xfe]);
    utf.u32(0);
    utf.0.push(0);
    assert!(matches!(err(&utf.pad(0)), GgufError::BadUtf8 { .. }));
    // Duplicate key.
    let mut dup = Raw::new(3, 0, 2);
    dup.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
    assert!(matches!(err(&dup.pad(0)), GgufError::DuplicateKey(_)));
    // Bad alignment value.
    let mut al = Raw::new(3, 0, 1);
    al.str("general.alignment").u32(4).u32(24);
    assert!(matches!(err(&al.pad(0)), GgufError::BadAlignment(_)));

    let t = |dims: &[u64], ty: u32, offset: u64, data: usize| {
        Raw::new(3, 1, 0).tensor("t", dims, ty, offset).pad(data)
    };
    assert!(matches!(
        err(&t(&[], 0, 0, 32)),
        GgufError::BadTensor { .. }
    ));
    assert!(matches!(
        err(&t(&[1, 1, 1, 1, 1], 0, 0, 32)),
        GgufError::BadTensor { .. }
    ));
    assert!(matches!(
        err(&t(&[8, 0], 0, 0, 32)),
        GgufError::BadTensor { .. }
    ));
    assert!(matches!(
        err(&t(&[1 << 32, 1 << 32, 1 << 32], 0, 0, 32)),
        GgufError::BadTensor { .. }
    ));
    assert!(matches!(
        err(&t(&[u64::MAX], 0, 0, 32)),
        GgufError::BadTensor { .. }
    ));
    assert!(matches!(
        err(&t(&[8], 12, 0, 32)),
        GgufError::BadTensor { .. }
    )); // Q4_K: unknown here
    assert!(matches!(
        err(&t(&[33], 8, 0, 64)),
        GgufError::BadTensor { .. }
    )); // ragged Q8_0
    assert!(matches!(
        err(&t(&[8], 0, 16, 64)),
        GgufError::BadTensorData { .. }
    )); // misaligned
    assert!(matches!(
        err(&t(&[8], 0, 0, 31)),
        GgufError::BadTensorData { .. }
    )); // past the end
    assert!(matches!(
        err(&t(&[8], 0, u64::MAX - 31, 32)),
        GgufError::BadTensorData { .. }
    ));
    // Two tensors sharing bytes.
    let overlap = Raw::new(3, 2, 0)
        .tensor("a", &[16], 0, 0)
        .tensor("b", &[8], 0, 64)
        .pad(96);
    assert!(Gguf::parse(&overlap).is_ok());
    let overlap = Raw::new(3, 2, 0)
        .tensor("a", &[16], 0, 0)
        .tensor("b", &[8], 0, 0)
        .pad(96);
    assert!(matches!(err(&overlap), GgufError::BadTensorData { .. }));
    let dup = Raw::new(3, 2, 0)
        .tensor("a", &[8], 0, 0)
        .tensor("a", &[8], 0, 32)
        .pad(64);
    assert!(matches!(err(&dup), GgufError::DuplicateTensor(_)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn byte_flips_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = sample_writer().to_bytes().unwrap();
        let n = bytes.len();
        for (i, x) in flips {
            bytes[i % n] ^= x | 1;
        }
        if let Ok(f) = GgufFile::from_bytes(bytes) {
            for t in f.tensors() {
                prop_assert!(t.dtype().row_bytes(*t.shape().last().unwrap()).is_some());
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256), version in 2u32..4) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let _ = Gguf::parse(&bytes);
        let _ = Gguf::parse(&tail);
    }
}

/// Files from `tests/data/unsupported.py` (written by the `gguf` package): a tensor type the
/// host has no kernels for is refused when the file is opened, naming the type; an
/// architecture without a forward pass is refused by `Llama::new`, naming it.
#[test]
fn unsupported_type_and_architecture_are_refused_by_name() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let e = GgufFile::open(&data.join("unsupported_type.gguf")).unwrap_err();
    assert!(
        matches!(&e, GgufError::UnsupportedType { name, ggml_type: 10 } if name == "token_embd.weight"),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("Q2_K") && message.contains("Q4_K"),
        "{message}"
    );

    let file = GgufFile::open(&data.join("unsupported_arch.gguf")).unwrap();
    let e = edgenlu_models::Llama::new(std::sync::Arc::new(file)).unwrap_err();
    assert!(
        matches!(&e, edgenlu_models::llama::LlamaError::UnsupportedArchitecture(a, _) if a == "mamba"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"mamba\""), "{e}");
}
