//! What the forward passes over a mapped GGUF file share: where each weight lives, found and
//! checked once at load (so a pass takes zero-copy views without looking it up or checking it
//! again), the hyperparameters' metadata, and why a model cannot load or run.

use crate::gguf::GgufFile;
use edgenlu_kernels::{DType, KernelError, WeightView};

/// Why a model (a decoder, the BERT encoder) cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file is not a model of the architecture, or its metadata is missing or
    /// inconsistent.
    #[error("not a usable model: {0}")]
    Metadata(String),
    /// The file's `general.architecture` is one this host has no forward pass for (the
    /// decoder runs those of [`crate::architecture::SUPPORTED`]; the BERT encoder `bert`).
    #[error("architecture {0:?} is not supported; supported: {1}")]
    UnsupportedArchitecture(String, &'static str),
    /// The file is of a supported architecture but asks for something its pass does not
    /// implement (e.g. rope scaling, logit softcapping, partial rope).
    #[error("{architecture}: {what} is not supported")]
    Unsupported {
        /// The architecture, e.g. `gemma3`.
        architecture: &'static str,
        /// What the file asks for.
        what: String,
    },
    /// A weight is missing or has the wrong shape or format.
    #[error("weight {name}: {reason}")]
    Weight {
        /// Tensor name, e.g. `blk.3.attn_q.weight`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A kernel refused its arguments (e.g. a token id past the vocabulary, a full cache).
    #[error(transparent)]
    Kernel(KernelError),
    /// The caller's interrupt check asked to stop (a deadline); a decoder's cache is
    /// unchanged.
    #[error("interrupted")]
    Interrupted,
}

impl From<KernelError> for ModelError {
    /// A kernel stopped by the pass's interrupt check is the pass interrupted, not a kernel
    /// that refused its arguments.
    fn from(e: KernelError) -> Self {
        match e {
            KernelError::Interrupted(_) => ModelError::Interrupted,
            other => ModelError::Kernel(other),
        }
    }
}

/// Checks that `file` is of the architecture a forward pass runs: another one is
/// [`ModelError::UnsupportedArchitecture`], none at all a metadata error.
pub(crate) fn require_architecture(
    file: &GgufFile,
    expected: &'static str,
) -> Result<(), ModelError> {
    match file.architecture() {
        Some(a) if a == expected => Ok(()),
        Some(other) => Err(ModelError::UnsupportedArchitecture(
            other.to_string(),
            expected,
        )),
        None => Err(ModelError::Metadata(
            "general.architecture is missing".into(),
        )),
    }
}

/// One weight's format, shape and byte range in its file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) dtype: DType,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    start: usize,
    pub(crate) len: usize,
}

impl Slot {
    /// The weight `name` of `file`: a matrix `[rows, cols]` (any rows if `rows` is `None`), or
    /// with `rows == Some(1)` also a vector `[cols]`, which must be F32.
    pub(crate) fn find(
        file: &GgufFile,
        name: &str,
        rows: Option<usize>,
        cols: usize,
    ) -> Result<Slot, ModelError> {
        let bad = |reason: String| ModelError::Weight {
            name: name.to_string(),
            reason,
        };
        let t = file
            .tensor(name)
            .ok_or_else(|| bad("missing".to_string()))?;
        let (r, c) = match *t.shape() {
            [c] => (1, c),
            [r, c] => (r, c),
            ref s => return Err(bad(format!("shape {s:?} is not a matrix or vector"))),
        };
        if c != cols || rows.is_some_and(|rows| rows != r) {
            return Err(bad(format!(
                "shape [{r}, {c}], expected [{}, {cols}]",
                rows.map_or("any".to_string(), |r| r.to_string())
            )));
        }
        let is_vector = rows == Some(1) && t.shape().len() == 1;
        if is_vector && t.dtype() != DType::F32 {
            return Err(bad(format!("{:?} vector weights, expected F32", t.dtype())));
        }
        let data = t.data();
        WeightView::new(t.dtype(), r, c, data).map_err(|e| bad(e.to_string()))?;
        if is_vector && bytemuck::try_cast_slice::<u8, f32>(data).is_err() {
            return Err(bad("F32 vector not aligned to 4 bytes".to_string()));
        }
        Ok(Slot {
            dtype: t.dtype(),
            rows: r,
            cols: c,
            start: data.as_ptr() as usize - file.bytes().as_ptr() as usize,
            len: data.len(),
        })
    }

    /// The weight as a view into `file` (the file it was found in).
    pub(crate) fn view<'f>(&self, file: &'f GgufFile) -> WeightView<'f> {
        let bytes = &file.bytes()[self.start..self.start + self.len];
        // Checked in `find`; the file is immutable and mapped for its owner's lifetime.
        WeightView::new(self.dtype, self.rows, self.cols, bytes).expect("slot checked at load")
    }

    /// An F32 vector weight's values (checked F32 and aligned in `find`).
    pub(crate) fn vector<'f>(&self, file: &'f GgufFile) -> &'f [f32] {
        bytemuck::cast_slice(&file.bytes()[self.start..self.start + self.len])
    }
}

/// The positive integer (at most 2^24) metadata `key` of `file`.
pub(crate) fn meta_usize(file: &GgufFile, key: &str) -> Result<usize, ModelError> {
    file.get_u64(key)
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v > 0 && v <= 1 << 24)
        .ok_or_else(|| ModelError::Metadata(format!("{key} is missing or out of range")))
}
