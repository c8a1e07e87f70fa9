//! The standard `wasi:nn` (`0.2.0-rc-2024-10-28`), hosted by the `wasmtime-wasi-nn` crate's
//! plumbing over our own backend and registry: graphs are the device's GGUF models, run by the
//! project's kernels (`edgenlu_models::Bert`, `edgenlu_models::Llama`).
//!
//! - Graphs: [`GrantedGraphs`] resolves `load-by-name` only for the models the component is
//!   granted (never a path; a decoder only with [`crate::Grants::generate`]); anything
//!   else is `not-found`. `load` takes GGUF bytes (`ggml` or `autodetect`) up to
//!   [`MAX_LOAD_BYTES`]: larger models would be copied through guest memory.
//! - Contexts: [`encoder`] (BERT: `input_ids`, optional `attention_mask` → `embedding`,
//!   `token_states`) and [`decoder`] (llama, qwen2, qwen3, gemma3: `input_ids` → `logits`, the KV cache kept between
//!   computes; zero tokens reset it). The tensor names, shapes and types are in wit/README.md.
//! - Budgets: contexts charge their cache and each compute its scratch and outputs to the
//!   request's host memory before allocating; the deadline is polled inside compute; the
//!   `wasi:nn` handle table holds at most `handles` entries; the tensors the guest holds are
//!   counted against host memory on every `wasi:nn` call, and a tensor the guest makes past
//!   the budget traps (the constructor has no error to return).
//!
//! The plumbing turns every backend error into `runtime-error`, with a fixed message except
//! for memory (`Not enough memory ...`) and tensor types (`Unsupported tensor type: ...`);
//! the full reason goes to the host log.

mod backend;
mod decoder;
mod encoder;
pub mod example;
mod io;

use crate::catalog::ModelCatalog;
use crate::state::{BudgetTrap, ComponentState, SharedBudget};
use std::sync::Arc;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::StoreContextMut;
use wasmtime_wasi_nn::wit::{TensorType, WasiNnCtx, WasiNnView};

pub use backend::{GrantedGraphs, MAX_LOAD_BYTES};

/// The `wasi:nn` interface whose tensor constructor the host wraps with its budget check.
const TENSOR_INTERFACE: &str = "wasi:nn/tensor@0.2.0-rc-2024-10-28";

/// One component's `wasi:nn` state for one request: a handle table of its own (bounded by the
/// component's `handles`), the backends and the registry of granted graphs.
pub(crate) struct NnState {
    table: ResourceTable,
    ctx: WasiNnCtx,
    budget: Arc<SharedBudget>,
}

impl NnState {
    fn new(
        catalog: &Arc<ModelCatalog>,
        grants: &[String],
        generate: bool,
        budget: &Arc<SharedBudget>,
        handles: usize,
    ) -> NnState {
        let mut table = ResourceTable::new();
        table.set_max_capacity(handles);
        let registry = GrantedGraphs::new(catalog.clone(), grants, generate, budget.clone());
        NnState {
            table,
            ctx: WasiNnCtx::new(backend::backends(generate, budget), registry.into()),
            budget: budget.clone(),
        }
    }

    /// Counts the bytes of the tensors the guest holds into the budget: the plumbing makes
    /// and drops them without the host seeing, so they are counted at every call instead.
    fn count_tensors(&mut self) {
        let bytes = self
            .table
            .iter_mut()
            .filter_map(|entry| entry.downcast_ref::<wasmtime_wasi_nn::Tensor>())
            .map(|t| t.data.len())
            .sum();
        self.budget.set_tensor_bytes(bytes);
    }
}

/// The component's `wasi:nn` state, made on its first call, with the tensors it holds counted.
fn nn_state(s: &mut ComponentState) -> &mut NnState {
    let ComponentState {
        nn,
        models,
        grants,
        generate,
        budget,
        ..
    } = s;
    let nn = nn.get_or_insert_with(|| {
        NnState::new(
            models,
            grants,
            *generate,
            budget.shared(),
            budget.limits.handles,
        )
    });
    nn.count_tensors();
    nn
}

/// What the plumbing works on for each call.
fn view(s: &mut ComponentState) -> WasiNnView<'_> {
    let nn = nn_state(s);
    WasiNnView::new(&mut nn.table, &mut nn.ctx)
}

/// Links `wasi:nn` into `linker` for the components that import it: the crate's plumbing,
/// with the tensor constructor wrapped so that a tensor past the host-memory budget traps.
pub(crate) fn add_to_linker(linker: &mut Linker<ComponentState>) -> wasmtime::Result<()> {
    wasmtime_wasi_nn::wit::add_to_linker(linker, view)?;
    linker.allow_shadowing(true);
    let defined = linker
        .instance(TENSOR_INTERFACE)
        .and_then(|mut i| i.func_wrap("[constructor]tensor", new_tensor));
    linker.allow_shadowing(false);
    defined
}

/// `tensor`'s constructor: the plumbing's, after checking the bytes against the budget. The
/// bytes were already copied out of guest memory (so one tensor is at most its size); the
/// check keeps many of them from adding up past the host-memory budget.
fn new_tensor(
    mut store: StoreContextMut<'_, ComponentState>,
    (dimensions, ty, data): (Vec<u32>, TensorType, Vec<u8>),
) -> wasmtime::Result<(Resource<wasmtime_wasi_nn::Tensor>,)> {
    let nn = nn_state(store.data_mut());
    nn.budget
        .check(data.len())
        .map_err(|why| wasmtime::Error::new(BudgetTrap(format!("a wasi:nn tensor: {why}"))))?;
    let tensor = nn
        .table
        .push(wasmtime_wasi_nn::Tensor::new(dimensions, ty, data))?;
    Ok((tensor,))
}
