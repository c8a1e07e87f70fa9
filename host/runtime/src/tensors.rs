//! The `tensor` resource: host-owned arrays, either created by the guest (f32/i32, counted
//! against its budget) or zero-copy views of model weights in a memory-mapped GGUF file.

use crate::bindings::edgenlu::nlu::tensors::{Host, HostTensor};
use crate::bindings::Dtype;
use crate::error::HostError;
use crate::resources::{Tensor, TensorData};
use crate::state::{Budget, ComponentState, ScratchCharge};
use edgenlu_kernels::{DType, WeightView};
use edgenlu_models::gguf::GgufFile;
use std::borrow::Cow;
use std::sync::Arc;
use wasmtime::component::Resource;

/// Dimensions a tensor may have; more than this is refused before any allocation.
pub const MAX_RANK: usize = 4;

impl Tensor {
    /// Elements of a shape, or `None` if it is empty, has a zero or too many dimensions, or
    /// overflows.
    pub fn checked_elems(shape: &[usize]) -> Option<usize> {
        if shape.is_empty() || shape.len() > MAX_RANK || shape.contains(&0) {
            return None;
        }
        shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// A view of a model weight (shape outermost first).
    pub fn mapped(file: Arc<GgufFile>, name: String, dtype: DType, shape: Vec<usize>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::Mapped { file, name, dtype },
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        match &self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I32(_) => DType::I32,
            TensorData::Mapped { dtype, .. } => *dtype,
        }
    }

    /// Bytes of host memory this tensor holds on the guest's behalf (views hold none).
    pub fn owned_bytes(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len() * 4,
            TensorData::I32(v) => v.len() * 4,
            TensorData::Mapped { .. } => 0,
        }
    }

    /// Mutable elements of an f32 tensor the guest owns (weights are read-only).
    pub fn f32s_mut(&mut self) -> Result<&mut [f32], HostError> {
        match &mut self.data {
            TensorData::F32(v) => Ok(v),
            TensorData::Mapped { .. } => Err(HostError::not_allowed("model weights are read-only")),
            TensorData::I32(_) => Err(HostError::invalid("expected an f32 tensor, got i32")),
        }
    }

    /// The elements of an i32 tensor.
    pub fn i32s(&self) -> Result<&[i32], HostError> {
        match &self.data {
            TensorData::I32(v) => Ok(v),
            _ => Err(HostError::invalid(format!(
                "expected an i32 tensor, got {:?}",
                self.dtype()
            ))),
        }
    }

    /// Moves the f32 buffer out (leaving an empty one) so a kernel can write it while reading
    /// other tensors of the same table; [`Tensor::put_f32`] puts it back.
    pub fn take_f32(&mut self) -> Result<Vec<f32>, HostError> {
        self.f32s_mut()?;
        match &mut self.data {
            TensorData::F32(v) => Ok(std::mem::take(v)),
            _ => unreachable!("checked by f32s_mut"),
        }
    }

    /// Returns a buffer taken by [`Tensor::take_f32`].
    pub fn put_f32(&mut self, data: Vec<f32>) {
        self.data = TensorData::F32(data);
    }

    /// This tensor as a matrix of [rows, cols] where cols is the innermost dimension.
    pub fn matrix(&self) -> Result<WeightView<'_>, HostError> {
        let cols = *self.shape.last().expect("shape is never empty");
        let rows = self.shape[..self.shape.len() - 1].iter().product();
        let bytes: &[u8] = match &self.data {
            TensorData::F32(v) => bytemuck::cast_slice(v),
            TensorData::I32(_) => {
                return Err(HostError::invalid(
                    "an i32 tensor is not a matrix of numbers",
                ))
            }
            TensorData::Mapped { file, name, .. } => file
                .tensor(name)
                .ok_or_else(|| HostError::internal(format!("weight {name} vanished")))?
                .data(),
        };
        Ok(WeightView::new(self.dtype(), rows, cols, bytes)?)
    }
}

fn to_usize_shape(shape: &[u32]) -> Result<Vec<usize>, HostError> {
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    Tensor::checked_elems(&shape).ok_or_else(|| {
        HostError::invalid(format!(
            "shape {shape:?}: need 1 to {MAX_RANK} nonzero dimensions"
        ))
    })?;
    Ok(shape)
}

/// A validated shape that holds exactly `len` elements.
fn shape_holding(shape: &[u32], len: usize) -> Result<Vec<usize>, HostError> {
    let shape = to_usize_shape(shape)?;
    if Tensor::checked_elems(&shape) != Some(len) {
        return Err(HostError::shape(format!(
            "shape {shape:?} does not hold {len} elements"
        )));
    }
    Ok(shape)
}

/// The WIT name of a format, `None` for those guests never see (Q5 and k-quant weights are
/// refused by `model.weight`; only the host's fused pass reads them).
pub(crate) fn wit_dtype(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::Q8_0 => Dtype::Q80,
        DType::Q4_0 => Dtype::Q40,
        DType::Q4_1 => Dtype::Q41,
        DType::I32 => Dtype::I32,
        DType::Q5_0 | DType::Q5_1 | DType::Q4_K | DType::Q5_K | DType::Q6_K => return None,
    })
}

impl ComponentState {
    /// Adds a guest-created tensor, charging its bytes to the host-memory budget.
    pub(crate) fn push_tensor(&mut self, t: Tensor) -> Result<Resource<Tensor>, HostError> {
        let bytes = t.owned_bytes();
        self.budget.charge_host_bytes(bytes)?;
        self.push_handle(t)
            .inspect_err(|_| self.budget.release_host_bytes(bytes))
    }

    pub(crate) fn tensor(&self, r: &Resource<Tensor>) -> Result<&Tensor, HostError> {
        Ok(self.table.get(r)?)
    }
}

impl Host for ComponentState {}

impl HostTensor for ComponentState {
    fn zeros(&mut self, dtype: Dtype, shape: Vec<u32>) -> Result<Resource<Tensor>, HostError> {
        let shape = to_usize_shape(&shape)?;
        let n = Tensor::checked_elems(&shape).expect("validated");
        // Check the budget before allocating, so a huge request cannot exhaust the host.
        self.budget.check_host_bytes(n.saturating_mul(4))?;
        let data = match dtype {
            Dtype::F32 => TensorData::F32(vec![0.0; n]),
            Dtype::I32 => TensorData::I32(vec![0; n]),
            other => {
                return Err(HostError::invalid(format!(
                    "zeros: only f32 and i32 tensors can be created, not {other:?}"
                )))
            }
        };
        self.push_tensor(Tensor { shape, data })
    }

    fn from_f32(&mut self, shape: Vec<u32>, data: Vec<f32>) -> Result<Resource<Tensor>, HostError> {
        let shape = shape_holding(&shape, data.len())?;
        self.push_tensor(Tensor {
            shape,
            data: TensorData::F32(data),
        })
    }

    fn from_i32(&mut self, shape: Vec<u32>, data: Vec<i32>) -> Result<Resource<Tensor>, HostError> {
        let shape = shape_holding(&shape, data.len())?;
        self.push_tensor(Tensor {
            shape,
            data: TensorData::I32(data),
        })
    }

    fn dtype(&mut self, r: Resource<Tensor>) -> wasmtime::Result<Dtype> {
        // Tensors of other formats are never handed to a guest (`model.weight` refuses them).
        wit_dtype(self.table.get(&r)?.dtype())
            .ok_or_else(|| wasmtime::format_err!("a tensor of a format the WIT cannot name"))
    }

    fn shape(&mut self, r: Resource<Tensor>) -> wasmtime::Result<Vec<u32>> {
        // Shapes fit u32: guest shapes came in as u32 and weight dims are validated on open.
        Ok(self
            .table
            .get(&r)?
            .shape
            .iter()
            .map(|&d| d as u32)
            .collect())
    }

    fn read_f32(
        &mut self,
        r: Resource<Tensor>,
        first: u32,
        count: u32,
    ) -> Result<Vec<f32>, HostError> {
        let t = self.tensor(&r)?;
        let rows = t.shape[0];
        let (first, count) = (first as usize, count as usize);
        if first.checked_add(count).is_none_or(|end| end > rows) {
            return Err(HostError::invalid(format!(
                "rows {first}..+{count} of {rows}"
            )));
        }
        let row_elems: usize = t.shape[1..].iter().product();
        let out_len = count
            .checked_mul(row_elems)
            .ok_or_else(|| HostError::invalid("read too large"))?;
        self.budget.check_output_elems(out_len)?;
        let range = first * row_elems..(first + count) * row_elems;
        match &t.data {
            TensorData::F32(v) => Ok(v[range].to_vec()),
            TensorData::I32(v) => Ok(v[range].iter().map(|&x| x as f32).collect()),
            TensorData::Mapped { .. } => {
                let m = t.matrix()?;
                let dtype = m.dtype();
                let (start, block) = (range.start, dtype.block_elems());
                if start % block != 0 || out_len % block != 0 {
                    return Err(HostError::invalid(format!(
                        "rows of {dtype:?} must start and end on whole blocks"
                    )));
                }
                let bytes = &m.bytes()[start / block * dtype.block_bytes()..]
                    [..out_len / block * dtype.block_bytes()];
                let _charge = self.budget.charge_scratch(out_len.saturating_mul(4))?;
                let mut out = vec![0.0; out_len];
                edgenlu_kernels::formats::dequantize(dtype, bytes, &mut out)?;
                Ok(out)
            }
        }
    }

    fn write_f32(
        &mut self,
        r: Resource<Tensor>,
        first: u32,
        data: Vec<f32>,
    ) -> Result<(), HostError> {
        let t = self.table.get_mut(&r)?;
        let row_elems: usize = t.shape[1..].iter().product();
        let start = (first as usize)
            .checked_mul(row_elems)
            .ok_or_else(|| HostError::invalid("write offset overflows"))?;
        let buf = t.f32s_mut()?;
        let end = start
            .checked_add(data.len())
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| {
                HostError::invalid(format!(
                    "writing {} elements at row {first} overruns the tensor",
                    data.len()
                ))
            })?;
        buf[start..end].copy_from_slice(&data);
        Ok(())
    }

    fn drop(&mut self, r: Resource<Tensor>) -> wasmtime::Result<()> {
        let t = self
            .delete_handle(r)
            .map_err(|_| wasmtime::format_err!("dropping an unknown tensor"))?;
        self.budget.release_host_bytes(t.owned_bytes());
        Ok(())
    }
}

/// A tensor's elements as f32 for one host call: borrowed when they already are f32, else
/// dequantized into a buffer charged to the request's host-memory budget until dropped.
pub(crate) struct F32Values<'a> {
    values: Cow<'a, [f32]>,
    _charge: Option<ScratchCharge<'a>>,
}

impl std::ops::Deref for F32Values<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.values
    }
}

impl Tensor {
    /// Number of elements.
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements as f32: borrowed when already f32 and aligned; otherwise (a quantized
    /// weight) dequantized after `budget` agreed to hold them, so no weight is ever expanded
    /// past the request's host memory.
    pub(crate) fn f32_values<'a>(&'a self, budget: &'a Budget) -> Result<F32Values<'a>, HostError> {
        let borrowed = |values: &'a [f32]| F32Values {
            values: Cow::Borrowed(values),
            _charge: None,
        };
        match &self.data {
            TensorData::F32(v) => Ok(borrowed(v)),
            TensorData::I32(_) => Err(HostError::invalid("expected a float tensor, got i32")),
            TensorData::Mapped { .. } => {
                let m = self.matrix()?;
                if m.dtype() == DType::F32 {
                    if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(m.bytes()) {
                        return Ok(borrowed(v));
                    }
                }
                let elems = m.rows() * m.cols();
                let charge = budget.charge_scratch(elems.saturating_mul(size_of::<f32>()))?;
                let mut out = vec![0.0; elems];
                edgenlu_kernels::formats::dequantize(m.dtype(), m.bytes(), &mut out)?;
                Ok(F32Values {
                    values: Cow::Owned(out),
                    _charge: Some(charge),
                })
            }
        }
    }
}
