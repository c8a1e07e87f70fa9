//! What the `wasi:nn` contexts share: their error, the charge they hold on the request's
//! host memory, and the named tensors they take and give.

use crate::state::SharedBudget;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, Id, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Tensor;

/// Why a `wasi:nn` call was refused. The plumbing hands the guest `runtime-error` for all of
/// them (with the memory and tensor-type messages kept, see [`BackendError`]); the host log
/// has the whole reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NnError {
    /// A tensor of the wrong type for its name.
    #[error("{0}")]
    TensorType(String),
    /// An input the context does not take, a missing one, or a bad shape or value.
    #[error("invalid-argument: {0}")]
    Invalid(String),
    /// Host memory the request does not have left (charged before allocating).
    #[error("budget-exceeded: {reason}")]
    Memory {
        /// Bytes asked for.
        bytes: usize,
        /// The budget's words.
        reason: String,
    },
    /// The request's deadline passed (before or inside the pass).
    #[error("budget-exceeded: {0}")]
    Deadline(String),
    /// The model refused its arguments or cannot run.
    #[error("{0}")]
    Model(String),
}

impl From<NnError> for BackendError {
    /// The guest gets what the plumbing keeps of it. The plumbing logs every refusal with
    /// its source, except a memory refusal's reason, which is logged here.
    fn from(e: NnError) -> Self {
        match e {
            NnError::TensorType(m) => BackendError::UnsupportedTensorType(m),
            NnError::Memory { bytes, reason } => {
                tracing::warn!("wasi:nn call refused: {reason}");
                BackendError::NotEnoughMemory(bytes)
            }
            other => BackendError::BackendAccess(wasmtime::Error::new(other)),
        }
    }
}

/// Host memory a context holds on the request's budget; released when dropped.
#[derive(Debug)]
pub(crate) struct HostCharge {
    budget: Arc<SharedBudget>,
    bytes: usize,
}

impl HostCharge {
    /// Charges `bytes` to `budget`, or fails without charging them.
    pub(crate) fn new(budget: &Arc<SharedBudget>, bytes: usize) -> Result<HostCharge, NnError> {
        budget
            .charge(bytes)
            .map_err(|reason| NnError::Memory { bytes, reason })?;
        Ok(HostCharge {
            budget: budget.clone(),
            bytes,
        })
    }
}

impl Drop for HostCharge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// The check a pass polls: true once the request's deadline has passed.
pub(crate) fn past(deadline: Instant) -> impl Fn() -> bool {
    move || Instant::now() >= deadline
}

/// The request's deadline, failing if it has passed already.
pub(crate) fn deadline_of(budget: &SharedBudget) -> Result<Instant, NnError> {
    budget.check_deadline().map_err(NnError::Deadline)?;
    Ok(budget.deadline())
}

/// A compute's inputs by name, each of the names a context takes at most once.
pub(crate) struct Inputs {
    tensors: Vec<NamedTensor>,
}

impl Inputs {
    /// `inputs`, refused if one is named other than `known` or a name comes twice.
    pub(crate) fn new(inputs: Option<Vec<NamedTensor>>, known: &[&str]) -> Result<Inputs, NnError> {
        let tensors = inputs.ok_or_else(|| {
            NnError::Invalid("inputs go with compute (set-input is not supported)".into())
        })?;
        for (i, t) in tensors.iter().enumerate() {
            if !known.contains(&t.name.as_str()) {
                return Err(NnError::Invalid(format!(
                    "no input named {:?}; this context takes {}",
                    t.name,
                    known.join(", ")
                )));
            }
            if tensors[..i].iter().any(|o| o.name == t.name) {
                return Err(NnError::Invalid(format!("input {:?} given twice", t.name)));
            }
        }
        Ok(Inputs { tensors })
    }

    /// The ids of input `name` (i32, shape `[1, n]` or `[n]`, `n <= max`), if given.
    pub(crate) fn ids(&self, name: &str, max: usize) -> Result<Option<Vec<i32>>, NnError> {
        let Some(t) = self.tensors.iter().find(|t| t.name == name) else {
            return Ok(None);
        };
        i32_row(name, &t.tensor, max).map(Some)
    }
}

/// The values of `t`, an i32 tensor of shape `[1, n]` or `[n]` with `n <= max`, whose data
/// holds exactly those values.
fn i32_row(name: &str, t: &Tensor, max: usize) -> Result<Vec<i32>, NnError> {
    if t.ty != TensorType::I32 {
        return Err(NnError::TensorType(format!(
            "{:?} for {name}, which is I32",
            t.ty
        )));
    }
    let n = match t.dimensions[..] {
        [n] | [1, n] => n as usize,
        ref d => {
            return Err(NnError::Invalid(format!(
                "{name} has dimensions {d:?}; expected [1, n] (one sequence)"
            )))
        }
    };
    if n > max {
        return Err(NnError::Invalid(format!(
            "{name} has {n} tokens; this context takes at most {max}"
        )));
    }
    if t.data.len() != n * 4 {
        return Err(NnError::Invalid(format!(
            "{name} is {n} i32 values but carries {} bytes",
            t.data.len()
        )));
    }
    Ok(t.data
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Ids as the model takes them, refusing negative ones.
pub(crate) fn token_ids(name: &str, ids: &[i32]) -> Result<Vec<u32>, NnError> {
    ids.iter()
        .map(|&i| {
            u32::try_from(i).map_err(|_| NnError::Invalid(format!("{name} holds the id {i}")))
        })
        .collect()
}

/// An f32 output tensor of `dimensions` holding `values` (little-endian, as `wasi:nn` lays
/// tensor data out).
pub(crate) fn f32_output(name: &str, dimensions: Vec<u32>, values: &[f32]) -> NamedTensor {
    NamedTensor {
        name: name.to_string(),
        tensor: Tensor::new(
            dimensions,
            TensorType::Fp32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    }
}

/// What a context does with a `compute`'s inputs.
pub(crate) trait Compute: Send + Sync {
    /// The outputs of `inputs` (none: the WITX-style call, which has no inputs here).
    fn run(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Vec<NamedTensor>, NnError>;
}

/// A [`Compute`] as the plumbing's execution context. The WITX-style calls are refused:
/// inputs and outputs go with `compute` in the WIT interface this host links.
pub(crate) struct Context<C>(pub(crate) C);

impl<C: Compute> BackendExecutionContext for Context<C> {
    fn set_input(&mut self, _id: Id, _tensor: &Tensor) -> Result<(), BackendError> {
        Err(witx_refused())
    }

    fn get_output(&mut self, _id: Id) -> Result<Tensor, BackendError> {
        Err(witx_refused())
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        Ok(Some(self.0.run(inputs)?))
    }
}

fn witx_refused() -> BackendError {
    NnError::Invalid("set-input and get-output are not supported; pass inputs to compute".into())
        .into()
}
