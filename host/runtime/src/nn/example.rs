//! Running components written against `wasi:nn` alone: the host calls their exports from
//! `wit/wasi-nn-example` (`run`: embed, generate; `attack`, for the tests), each call in a
//! fresh instance with the component's grants and budgets.

use crate::error::SkillError;
use crate::log_rate::LogRate;
use crate::runtime::{ComponentSpec, Runtime};
use crate::state::ComponentState;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Instance, InstancePre, Linker};
use wasmtime::Store;

mod run_bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/wasi-nn-example",
        world: "example-exports",
    });
}

mod attack_bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/wasi-nn-example",
        world: "attack-exports",
    });
}

/// What a call to a `wasi:nn` component gives: its own result (the error as the guest words
/// it, e.g. "not-found: ..."), or the host's error when the call itself failed (a trap, a
/// budget, a component that does not link).
pub type NnResult<T> = Result<Result<T, String>, SkillError>;

/// A component importing `wasi:nn` (and nothing of `edgenlu:nlu`), compiled and linked.
pub struct NnComponent {
    runtime: Runtime,
    name: String,
    spec: ComponentSpec,
    pre: InstancePre<ComponentState>,
    log_rate: Arc<LogRate>,
}

impl Runtime {
    /// Compiles the `wasi:nn` component `spec` and links `wasi:nn` for it; `name` names it in
    /// logs and errors.
    pub fn load_nn_component(
        &self,
        name: &str,
        spec: ComponentSpec,
    ) -> Result<NnComponent, SkillError> {
        let component = self.spec_component(&spec)?;
        let mut linker = Linker::new(component.engine());
        super::add_to_linker(&mut linker).map_err(|e| spec.link_error(e))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| spec.link_error(e))?;
        Ok(NnComponent {
            runtime: self.clone(),
            name: name.to_string(),
            log_rate: Arc::new(LogRate::for_limits(&spec.grants.limits)),
            spec,
            pre,
        })
    }
}

impl NnComponent {
    /// Runs `f` on a fresh instance within the component's deadline.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<ComponentState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, SkillError> {
        let deadline = Instant::now() + self.spec.grants.limits.deadline;
        let mut store =
            self.runtime
                .new_store(&self.name, &self.log_rate, &self.spec.grants, deadline);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| store.data().trap_error(e))?;
        f(&mut store, &instance).map_err(|e| store.data().trap_error(e))
    }

    /// The guest's `run.embed`: the sentence embedding of `ids` by graph `model`.
    pub fn embed(&self, model: &str, ids: &[u32]) -> NnResult<Vec<f32>> {
        self.call(|store, instance| {
            run_bindings::ExampleExports::new(&mut *store, instance)?
                .edgenlu_wasi_nn_example_run()
                .call_embed(store, model, ids)
        })
    }

    /// The guest's `run.embed-loaded`: the sentence embedding of `ids` by the encoder whose
    /// GGUF bytes the guest passes to `load`.
    pub fn embed_loaded(&self, gguf: &[u8], ids: &[u32]) -> NnResult<Vec<f32>> {
        self.call(|store, instance| {
            run_bindings::ExampleExports::new(&mut *store, instance)?
                .edgenlu_wasi_nn_example_run()
                .call_embed_loaded(store, gguf, ids)
        })
    }

    /// The guest's `run.generate`: up to `max_tokens` ids continuing `prompt` greedily.
    pub fn generate(
        &self,
        model: &str,
        prompt: &[u32],
        max_tokens: u32,
        stop: &[u32],
    ) -> NnResult<Vec<u32>> {
        self.call(|store, instance| {
            run_bindings::ExampleExports::new(&mut *store, instance)?
                .edgenlu_wasi_nn_example_run()
                .call_generate(store, model, prompt, max_tokens, stop)
        })
    }

    /// The attacking guest's `attack.run`: attack `name` with graph `model`.
    pub fn attack(&self, name: &str, model: &str) -> NnResult<String> {
        self.call(|store, instance| {
            attack_bindings::AttackExports::new(&mut *store, instance)?
                .edgenlu_wasi_nn_example_attack()
                .call_run(store, name, model)
        })
    }
}
