//! GGUF v3 (llama.cpp's container): a validating reader over bytes or a memory map, and an
//! atomic writer.
//!
//! Layout: magic `GGUF`, version, tensor count, metadata count, the key/value pairs, the tensor
//! infos (name, dims innermost first, ggml type, offset), padding to `general.alignment`, then
//! the tensor data. Everything is little-endian. The reader treats every byte as hostile: each
//! count is checked against the bytes left before anything is allocated, and every tensor's
//! data must lie inside the file, so a [`TensorRef`] never needs a bounds check again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgenlu_kernels::formats::DType;

/// `GGUF` read as a little-endian u32.
const MAGIC: u32 = u32::from_le_bytes(*b"GGUF");
/// The version the writer produces.
const VERSION: u32 = 3;
/// llama.cpp's default when `general.alignment` is absent; also what the writer uses.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// The alignment key.
const ALIGNMENT_KEY: &str = "general.alignment";
/// The spec caps keys at 2^16 - 1 bytes.
const MAX_KEY_LEN: u64 = 65_535;
/// Arrays of arrays are legal but nothing real nests deeply; a cap keeps recursion bounded.
const MAX_NESTING: usize = 8;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// A cap on `general.alignment` so padding arithmetic cannot blow up.
const MAX_ALIGNMENT: u32 = 1 << 20;

/// Why a GGUF file could not be read or written. Offsets are byte positions in the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened, mapped or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file (magic {0:#010x})")]
    BadMagic(u32),
    /// A version other than 2 or 3.
    #[error("unsupported GGUF version {0}")]
    UnsupportedVersion(u32),
    /// The file ends inside a field.
    #[error("truncated at byte {offset}: {what} needs {needed} bytes")]
    Truncated {
        /// Where the field starts.
        offset: usize,
        /// The field.
        what: &'static str,
        /// Its size.
        needed: u64,
    },
    /// A count or length that cannot fit in the bytes that remain.
    #[error("at byte {offset}: {what} of {count} cannot fit in the file")]
    TooLarge {
        /// Where the count is stored.
        offset: usize,
        /// What was counted.
        what: &'static str,
        /// The stored count.
        count: u64,
    },
    /// A string that is not UTF-8.
    #[error("at byte {offset}: string is not UTF-8")]
    BadUtf8 {
        /// Where the string starts.
        offset: usize,
    },
    /// A metadata value type id outside the spec, or a bool other than 0/1.
    #[error("at byte {offset}: invalid metadata value type {type_id}")]
    BadValueType {
        /// Where the type id is stored.
        offset: usize,
        /// The stored id.
        type_id: u32,
    },
    /// Arrays nested deeper than the reader allows.
    #[error("at byte {offset}: arrays nested deeper than {MAX_NESTING}")]
    TooDeep {
        /// Where the innermost array starts.
        offset: usize,
    },
    /// The same key twice.
    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),
    /// The same tensor name twice.
    #[error("duplicate tensor {0:?}")]
    DuplicateTensor(String),
    /// `general.alignment` is not a power of two u32 (up to 1 MiB).
    #[error("invalid general.alignment: {0}")]
    BadAlignment(String),
    /// A tensor stored in a ggml type this host has no kernels for (e.g. `IQ2_XXS`, `Q2_K`).
    #[error(
        "tensor {name:?}: ggml type {} ({ggml_type}) is not supported; supported: {}",
        ggml_type_name(*ggml_type).unwrap_or("unknown"),
        SUPPORTED_TYPES
    )]
    UnsupportedType {
        /// The tensor.
        name: String,
        /// Its ggml type id.
        ggml_type: u32,
    },
    /// A tensor whose header is inconsistent (dims, type, size).
    #[error("tensor {name:?}: {reason}")]
    BadTensor {
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor whose data lies outside the file, is misaligned or overlaps another.
    #[error("tensor {name:?}: data at offset {offset} (+{size} bytes) {reason}")]
    BadTensorData {
        /// The tensor.
        name: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// Its size in bytes.
        size: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The writer was handed a value GGUF cannot represent.
    #[error("metadata {key:?}: {reason}")]
    BadMetadata {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// A GGUF metadata value; covers every type of the spec.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8.
    String(String),
    /// Type 9: elements all of one type (the writer refuses mixed arrays; an empty array is
    /// written with element type u8).
    Array(Vec<MetaValue>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl MetaValue {
    /// The GGUF value type id.
    fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::String(_) => 8,
            MetaValue::Array(_) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    /// Any integer that fits in an i64 (not bools, not floats).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            MetaValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Any integer that fits in a u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U64(v) => Some(v),
            _ => self.as_i64().and_then(|v| u64::try_from(v).ok()),
        }
    }

    /// A float (f32 or f64); integers are not converted, so arrays keep their kind.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array's elements.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's header: name, format, shape and where its bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    offset: usize,
    size: usize,
}

impl TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The element format.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Dimensions outermost first (GGUF stores them innermost first; this is reversed), so a
    /// matrix is `[rows, cols]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Absolute byte offset of the data in the file.
    pub fn file_offset(&self) -> usize {
        self.offset
    }
    /// Bytes of data.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// A parsed GGUF header: metadata and tensor infos, validated against the file's length.
/// It does not borrow the bytes, so it can sit next to the map that owns them.
#[derive(Debug, Clone)]
pub struct Gguf {
    version: u32,
    alignment: usize,
    metadata: Vec<(String, MetaValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_offset: usize,
}

/// A bounds-checked little-endian reader.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let truncated = GgufError::Truncated {
            offset: self.pos,
            what,
            needed: n,
        };
        let n = usize::try_from(n).map_err(|_| truncated)?;
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                offset: self.pos,
                what,
                needed: n as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads a count and checks that `count` items of at least `min_size` bytes each fit in
    /// what remains, so the caller may allocate for it.
    fn count(&mut self, what: &'static str, min_size: u64) -> Result<usize, GgufError> {
        let offset = self.pos;
        let count = self.u64(what)?;
        match count.checked_mul(min_size) {
            Some(bytes) if bytes <= self.remaining() as u64 => Ok(count as usize),
            _ => Err(GgufError::TooLarge {
                offset,
                what,
                count,
            }),
        }
    }

    fn string(&mut self, what: &'static str) -> Result<String, GgufError> {
        let len = self.count(what, 1)?;
        let start = self.pos;
        let bytes = self.take(len as u64, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| GgufError::BadUtf8 { offset: start })
    }

    fn value(
        &mut self,
        type_id: u32,
        type_offset: usize,
        depth: usize,
    ) -> Result<MetaValue, GgufError> {
        const W: &str = "metadata value";
        Ok(match type_id {
            0 => MetaValue::U8(u8::from_le_bytes(self.array(W)?)),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(W)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(W)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(W)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(W)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(W)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(W)?)),
            7 => {
                let offset = self.pos;
                match self.array::<1>(W)?[0] {
                    0 => MetaValue::Bool(false),
                    1 => MetaValue::Bool(true),
                    _ => return Err(GgufError::BadValueType { offset, type_id }),
                }
            }
            8 => MetaValue::String(self.string("string")?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(GgufError::TooDeep {
                        offset: type_offset,
                    });
                }
                let elem_offset = self.pos;
                let elem = self.u32("array element type")?;
                let min = min_value_size(elem).ok_or(GgufError::BadValueType {
                    offset: elem_offset,
                    type_id: elem,
                })?;
                let n = self.count("array length", min)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, elem_offset, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(u64::from_le_bytes(self.array(W)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(W)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(W)?)),
            _ => {
                return Err(GgufError::BadValueType {
                    offset: type_offset,
                    type_id,
                })
            }
        })
    }
}

/// The fewest bytes a value of `type_id` takes, or `None` for an unknown type.
fn min_value_size(type_id: u32) -> Option<u64> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

/// The tensor types a GGUF may hold here, as ggml names them.
pub const SUPPORTED_TYPES: &str = "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, I32";

/// ggml's name of type id `id` (as `gguf.GGMLQuantizationType` spells it), known or not to
/// this host, so an unsupported file's error names what it holds.
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    const NAMES: [&str; 42] = [
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
        "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "", "", "", "TQ1_0",
        "TQ2_0", "", "", "", "MXFP4", "NVFP4", "Q1_0",
    ];
    NAMES
        .get(id as usize)
        .copied()
        .filter(|name| !name.is_empty())
}

fn bad_tensor(name: &str, reason: impl Into<String>) -> GgufError {
    GgufError::BadTensor {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

impl Gguf {
    /// Parses and validates a whole GGUF file held in `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
        let mut c = Cursor { buf: bytes, pos: 0 };
        let magic = c.u32("magic")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = c.u32("version")?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion(version));
        }
        // Smallest tensor info: empty name (8), n_dims (4), one dim (8), type (4), offset (8).
        let n_tensors = c.count("tensor count", 32)?;
        // Smallest key/value: empty key (8), type (4), one byte.
        let n_meta = c.count("metadata count", 13)?;

        let mut metadata = Vec::with_capacity(n_meta);
        let mut meta_index = HashMap::with_capacity(n_meta);
        for _ in 0..n_meta {
            let key_offset = c.pos;
            let key = c.string("metadata key")?;
            if key.len() as u64 > MAX_KEY_LEN {
                return Err(GgufError::TooLarge {
                    offset: key_offset,
                    what: "key length",
                    count: key.len() as u64,
                });
            }
            let type_offset = c.pos;
            let type_id = c.u32("metadata value type")?;
            let value = c.value(type_id, type_offset, 0)?;
            if meta_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::DuplicateKey(key));
            }
            metadata.push((key, value));
        }

        let alignment = match meta_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(MetaValue::U32(a)) if a.is_power_of_two() && *a <= MAX_ALIGNMENT => *a as usize,
            Some(other) => return Err(GgufError::BadAlignment(format!("{other:?}"))),
        };

        // Offsets are relative to the data section, whose start is only known after the infos.
        let mut raw = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let n_dims = c.u32("tensor n_dims")?;
            if !(1..=MAX_DIMS).contains(&n_dims) {
                return Err(bad_tensor(
                    &name,
                    format!("{n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
                ));
            }
            let mut shape = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = c.u64("tensor dim")?;
                let d = usize::try_from(d)
                    .ok()
                    .filter(|&d| d > 0 && d <= i64::MAX as usize)
                    .ok_or_else(|| bad_tensor(&name, format!("dimension {d}")))?;
                shape.push(d);
            }
            let ty = c.u32("tensor type")?;
            let dtype = DType::from_ggml_type(ty).ok_or_else(|| GgufError::UnsupportedType {
                name: name.clone(),
                ggml_type: ty,
            })?;
            let offset = c.u64("tensor offset")?;
            let rows = shape[1..]
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| bad_tensor(&name, "element count overflows"))?;
            let row = dtype.row_bytes(shape[0]).ok_or_else(|| {
                bad_tensor(
                    &name,
                    format!(
                        "{} elements per row is not whole {dtype:?} blocks",
                        shape[0]
                    ),
                )
            })?;
            let size = row
                .checked_mul(rows)
                .ok_or_else(|| bad_tensor(&name, "size overflows"))?;
            shape.reverse();
            if tensor_index.insert(name.clone(), raw.len()).is_some() {
                return Err(GgufError::DuplicateTensor(name));
            }
            raw.push((
                TensorInfo {
                    name,
                    dtype,
                    shape,
                    offset: 0,
                    size,
                },
                offset,
            ));
        }

        let data_offset = c.pos.next_multiple_of(alignment);
        let file_len = bytes.len();
        let mut tensors = Vec::with_capacity(raw.len());
        for (mut info, rel) in raw {
            let fail = |reason| GgufError::BadTensorData {
                name: info.name.clone(),
                offset: rel,
                size: info.size as u64,
                reason,
            };
            if rel % alignment as u64 != 0 {
                return Err(fail("is not aligned to general.alignment"));
            }
            let start = usize::try_from(rel)
                .ok()
                .and_then(|r| r.checked_add(data_offset));
            match start.and_then(|s| s.checked_add(info.size)) {
                Some(end) if end <= file_len => info.offset = start.unwrap_or_default(),
                _ => return Err(fail("lies past the end of the file")),
            }
            tensors.push(info);
        }
        // Overlapping tensors would let one weight alias another; no writer produces them.
        let mut spans: Vec<(usize, usize, usize)> = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.offset, t.offset + t.size, i))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                let t = &tensors[w[1].2];
                return Err(GgufError::BadTensorData {
                    name: t.name.clone(),
                    offset: (t.offset - data_offset) as u64,
                    size: t.size as u64,
                    reason: "overlaps another tensor",
                });
            }
        }

        Ok(Gguf {
            version,
            alignment,
            metadata,
            meta_index,
            tensors,
            tensor_index,
            data_offset,
        })
    }

    /// The file's GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or 32 when absent.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The value stored under `key`.
    pub fn metadata(&self, key: &str) -> Option<&MetaValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// All key/value pairs, in file order.
    pub fn metadata_iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> + '_ {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `general.architecture`, e.g. `"bert"`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// An integer value that fits in a u32.
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        self.metadata(key)?
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
    }

    /// An integer value that fits in a u64.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.metadata(key)?.as_u64()
    }

    /// A float value, narrowed to f32.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.metadata(key)?.as_f64().map(|v| v as f32)
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.metadata(key)?.as_bool()
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.metadata(key)?.as_str()
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`); `None` if any element is not one.
    pub fn get_str_array(&self, key: &str) -> Option<Vec<&str>> {
        self.metadata(key)?
            .as_array()?
            .iter()
            .map(MetaValue::as_str)
            .collect()
    }

    /// The header of tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// All tensor headers, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }
}

/// Where a [`GgufFile`]'s bytes live.
#[derive(Debug)]
enum Backing {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A validated GGUF file and the bytes it describes (usually a read-only memory map).
/// Cloning is cheap and shares the map, so the host can hand zero-copy views to many
/// requests. Metadata accessors come from [`Gguf`] through `Deref`.
#[derive(Debug, Clone)]
pub struct GgufFile {
    bytes: Arc<Backing>,
    index: Arc<Gguf>,
}

/// A zero-copy view of one tensor of a [`GgufFile`].
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    info: &'a TensorInfo,
    data: &'a [u8],
}

impl<'a> TensorRef<'a> {
    /// The tensor's name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }
    /// The element format.
    pub fn dtype(&self) -> DType {
        self.info.dtype
    }
    /// Dimensions outermost first (`[rows, cols]` for a matrix).
    pub fn shape(&self) -> &'a [usize] {
        &self.info.shape
    }
    /// Exactly the tensor's bytes: `row_bytes(cols) * rows`.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

impl GgufFile {
    /// Maps and validates the file at `path`.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let file = File::open(path).map_err(|source| GgufError::Io {
            path: path.to_owned(),
            source,
        })?;
        GgufFile::from_file(&file, path)
    }

    /// Maps an already open file (the store hashes the same handle first).
    pub(crate) fn from_file(file: &File, path: &Path) -> Result<GgufFile, GgufError> {
        let io_err = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let len = file.metadata().map_err(io_err)?.len();
        // Mapping an empty file fails on some systems; it is not a GGUF file either way.
        if len < 8 {
            return Err(GgufError::Truncated {
                offset: 0,
                what: "header",
                needed: 24,
            });
        }
        // SAFETY: the map is read-only and private to this process. Files in the store are
        // replaced by rename, never rewritten in place, so the mapped bytes do not change.
        let map = unsafe { memmap2::Mmap::map(file) }.map_err(io_err)?;
        let index = Gguf::parse(&map)?;
        Ok(GgufFile {
            bytes: Arc::new(Backing::Map(map)),
            index: Arc::new(index),
        })
    }

    /// Validates a file held in memory (tests, fuzzing, small generated files).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let index = Gguf::parse(&bytes)?;
        Ok(GgufFile {
            bytes: Arc::new(Backing::Owned(bytes)),
            index: Arc::new(index),
        })
    }

    /// The parsed header.
    pub fn index(&self) -> &Gguf {
        &self.index
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.bytes()
    }

    /// A zero-copy view of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorRef<'_>> {
        self.index.tensor_info(name).map(|info| self.view(info))
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorRef<'_>> + '_ {
        self.index.tensors.iter().map(|info| self.view(info))
    }

    fn view<'a>(&'a self, info: &'a TensorInfo) -> TensorRef<'a> {
        // In bounds: parse checked offset + size against the length of these same bytes.
        TensorRef {
            info,
            data: &self.bytes()[info.offset..info.offset + info.size],
        }
    }
}

// The host shares one mapped file across request threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<GgufFile>();
    shareable::<TensorRef<'static>>();
};

impl std::ops::Deref for GgufFile {
    type Target = Gguf;
    fn deref(&self) -> &Gguf {
        &self.index
    }
}

/// A tensor waiting to be written.
#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Builds a GGUF v3 file: metadata and tensors are collected in memory, then written with
/// `general.alignment` = 32, atomically.
#[derive(Debug, Clone, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets `key` (replacing an earlier value of the same key). `general.alignment` is
    /// always written as 32, whatever is set here.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: MetaValue) -> &mut GgufWriter {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// Adds a tensor; `shape` is outermost first and `data` must be exactly its bytes.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        shape: &[usize],
        data: Vec<u8>,
    ) -> Result<&mut GgufWriter, GgufError> {
        let name = name.into();
        if shape.is_empty() || shape.len() > MAX_DIMS as usize || shape.contains(&0) {
            return Err(bad_tensor(
                &name,
                format!("shape {shape:?} (1 to 4 nonzero dimensions)"),
            ));
        }
        let (&cols, outer) = shape.split_last().unwrap_or((&0, &[]));
        let size = dtype
            .row_bytes(cols)
            .and_then(|row| outer.iter().try_fold(row, |acc, &d| acc.checked_mul(d)))
            .ok_or_else(|| bad_tensor(&name, format!("shape {shape:?} does not fit {dtype:?}")))?;
        if size != data.len() {
            return Err(bad_tensor(
                &name,
                format!(
                    "shape {shape:?} of {dtype:?} needs {size} bytes, got {}",
                    data.len()
                ),
            ));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufError::DuplicateTensor(name));
        }
        self.tensors.push(PendingTensor {
            name,
            dtype,
            shape: shape.to_vec(),
            data,
        });
        Ok(self)
    }

    /// Writes the file to `path` atomically (`<path>.tmp`, fsync, rename, fsync directory).
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        self.check()?;
        crate::atomic::write_atomic(path, |w| self.write_to(w)).map_err(|source| GgufError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        self.check()?;
        let mut out = Vec::new();
        self.write_to(&mut out).map_err(|source| GgufError::Io {
            path: PathBuf::new(),
            source,
        })?;
        Ok(out)
    }

    /// Refuses what GGUF cannot represent, before any byte is written.
    fn check(&self) -> Result<(), GgufError> {
        for (key, value) in &self.metadata {
            if key.len() as u64 > MAX_KEY_LEN {
                return Err(GgufError::BadMetadata {
                    key: key.clone(),
                    reason: "key longer than 65535 bytes".into(),
                });
            }
            check_value(key, value, 0)?;
        }
        Ok(())
    }

    fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let align = DEFAULT_ALIGNMENT;
        let alignment = MetaValue::U32(align as u32);
        let meta: Vec<(&str, &MetaValue)> = self
            .metadata
            .iter()
            .filter(|(k, _)| k != ALIGNMENT_KEY)
            .map(|(k, v)| (k.as_str(), v))
            .chain(std::iter::once((ALIGNMENT_KEY, &alignment)))
            .collect();

        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC.to_le_bytes());
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        for (key, value) in meta {
            put_str(&mut head, key);
            head.extend_from_slice(&value.type_id().to_le_bytes());
            put_value(&mut head, value);
        }
        let mut offset = 0usize;
        for t in &self.tensors {
            put_str(&mut head, &t.name);
            head.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for &d in t.shape.iter().rev() {
                head.extend_from_slice(&(d as u64).to_le_bytes());
            }
            head.extend_from_slice(&t.dtype.ggml_type().to_le_bytes());
            head.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = (offset + t.data.len()).next_multiple_of(align);
        }
        head.resize(head.len().next_multiple_of(align), 0);
        w.write_all(&head)?;
        let zeros = [0u8; DEFAULT_ALIGNMENT];
        for t in &self.tensors {
            w.write_all(&t.data)?;
            let pad = t.data.len().next_multiple_of(align) - t.data.len();
            w.write_all(&zeros[..pad])?;
        }
        w.flush()
    }
}

fn check_value(key: &str, value: &MetaValue, depth: usize) -> Result<(), GgufError> {
    if let MetaValue::Array(items) = value {
        if depth >= MAX_NESTING {
            return Err(GgufError::BadMetadata {
                key: key.into(),
                reason: "arrays nested too deeply".into(),
            });
        }
        if let Some(first) = items.first() {
            if items
                .iter()
                .any(|i| std::mem::discriminant(i) != std::mem::discriminant(first))
            {
                return Err(GgufError::BadMetadata {
                    key: key.into(),
                    reason: "array mixes value types".into(),
                });
            }
        }
        for item in items {
            check_value(key, item, depth + 1)?;
        }
    }
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &MetaValue) {
    match value {
        MetaValue::U8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Bool(v) => out.push(u8::from(*v)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(items) => {
            let elem = items.first().map_or(0, MetaValue::type_id);
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}
