//! Host-side bindings generated from `wit/`. Resources map to the host's own types, and the
//! WIT `error` variant maps to [`HostError`] so host code can use `?` and still choose between
//! an error returned to the guest and a trap.
//!
//! Generated items carry `wit/nlu.wit`'s doc comments; the records' fields and cases the WIT
//! leaves undocumented are to be documented there, where guests see them too.
#![allow(missing_docs)]

/// The outcome of a failed host call: an error the guest sees as the WIT `error` variant, or a
/// trap that ends the guest's instance (used only for host bugs, never for bad arguments).
///
/// Defined beside the bindings because it wraps the generated [`WitError`] and bindgen's
/// `trappable_error_type` names it; its constructors live in [`crate::error`].
#[derive(Debug)]
pub enum HostError {
    /// Returned to the guest as a typed error.
    Guest(WitError),
    /// Aborts the guest with this reason; the instance is discarded.
    Trap(wasmtime::Error),
}

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "skill",
    additional_derives: [serde::Serialize],
    imports: { default: trappable },
    trappable_error_type: {
        "edgenlu:nlu/types.error" => HostError,
    },
    with: {
        "edgenlu:nlu/tensors.tensor": crate::resources::Tensor,
        "edgenlu:nlu/models.model": crate::resources::ModelHandle,
        "edgenlu:nlu/kernels.kv-cache": crate::resources::KvCacheHandle,
        "edgenlu:nlu/llm.generation": crate::resources::Generation,
    },
});

/// The policy world imports only config and log, shared with the skill world.
pub mod policy {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy-component",
        additional_derives: [serde::Serialize],
        imports: { default: trappable },
        with: {
            "edgenlu:nlu/config": super::edgenlu::nlu::config,
            "edgenlu:nlu/log": super::edgenlu::nlu::log,
        },
    });
}

/// The tokenizer world shares every imported interface with the skill world.
pub mod tokenizer {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "tokenizer",
        additional_derives: [serde::Serialize],
        imports: { default: trappable },
        with: {
            "edgenlu:nlu/types": super::edgenlu::nlu::types,
            "edgenlu:nlu/tensors": super::edgenlu::nlu::tensors,
            "edgenlu:nlu/models": super::edgenlu::nlu::models,
            "edgenlu:nlu/config": super::edgenlu::nlu::config,
            "edgenlu:nlu/log": super::edgenlu::nlu::log,
        },
    });
}

/// The flow world. Its `nlu` import is there for the records a flow shares with skills
/// (`response`, `slot`, `timing`): it is mapped onto the skill world's own types
/// ([`nlu_types`]), so a skill's response goes to a flow and back without a copy into other
/// types. Its `policy` import is generated here and converted in `flow.rs`.
pub mod flow {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "flow-component",
        additional_derives: [serde::Serialize],
        imports: { default: trappable },
        trappable_error_type: {
            "edgenlu:nlu/types.error" => crate::bindings::HostError,
        },
        with: {
            "edgenlu:nlu/types": super::edgenlu::nlu::types,
            "edgenlu:nlu/nlu": super::nlu_types,
            "edgenlu:nlu/config": super::edgenlu::nlu::config,
            "edgenlu:nlu/log": super::edgenlu::nlu::log,
        },
    });
}

/// The `nlu` interface as a flow imports it: the skill world's records, and no function (a
/// flow asks skills by name through `flow-host`, so `handle` is not linked: a flow that
/// imports it fails to link).
pub mod nlu_types {
    pub use super::exports::edgenlu::nlu::nlu::*;
    use wasmtime::component::{HasData, Linker};

    /// Nothing to host: the interface's types only.
    pub trait Host {}
    impl<T: ?Sized> Host for T {}

    /// Nothing to host with the store either.
    pub trait HostWithStore<T>: HasData {}
    impl<T, D: HasData> HostWithStore<T> for D {}

    /// Defines the interface's instance, empty, for the records' sake.
    pub fn add_to_linker<T: 'static, D: HostWithStore<T>>(
        linker: &mut Linker<T>,
        _host_getter: fn(&mut T) -> D::Data<'_>,
    ) -> wasmtime::Result<()> {
        linker.instance("edgenlu:nlu/nlu@0.1.0")?;
        Ok(())
    }
}

/// Bindings for a world that is the skill world plus one export: every import is the skill
/// world's own.
macro_rules! skill_world_with_export {
    ($module:ident, $world:literal) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                additional_derives: [serde::Serialize],
                imports: { default: trappable },
                with: {
                    "edgenlu:nlu/types": super::edgenlu::nlu::types,
                    "edgenlu:nlu/tensors": super::edgenlu::nlu::tensors,
                    "edgenlu:nlu/models": super::edgenlu::nlu::models,
                    "edgenlu:nlu/kernels": super::edgenlu::nlu::kernels,
                    "edgenlu:nlu/llm": super::edgenlu::nlu::llm,
                    "edgenlu:nlu/config": super::edgenlu::nlu::config,
                    "edgenlu:nlu/log": super::edgenlu::nlu::log,
                    "edgenlu:nlu/tokenize": super::edgenlu::nlu::tokenize,
                },
            });
        }
    };
}

// The chat-skill world adds the `chat` export to the skill world's imports.
skill_world_with_export!(chat, "chat-skill");
// The embedding-skill world adds the `embedder` export.
skill_world_with_export!(embedding, "embedding-skill");

pub use self::chat::exports::edgenlu::nlu::chat::{
    ChatError, ChatRequest, ChatResponse, ChatTurn, ContextOverflow, Forward, Role as ChatRole,
};
pub use self::edgenlu::nlu::llm::{Constraint, FinishReason, Sampling as SamplingParams, Usage};

impl SamplingParams {
    /// Greedy decoding: temperature 0 (the first largest logit), no repetition penalty; the
    /// other fields unused.
    pub const GREEDY: SamplingParams = SamplingParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
        repeat_penalty: 1.0,
        repeat_last_n: 0,
    };
}
impl ChatRequest {
    /// `prompt` as the user's message in the model's chat template, answered greedily by the
    /// fused pass with at most `max_tokens` tokens, no system turn and no constraint.
    pub fn greedy(prompt: &str, max_tokens: u32) -> ChatRequest {
        ChatRequest {
            prompt: prompt.to_string(),
            template: true,
            system: None,
            max_tokens,
            sampling: SamplingParams::GREEDY,
            forward: Forward::Fused,
            constraint: None,
        }
    }
}
pub use self::edgenlu::nlu::types::{Dtype, Encoded, Error as WitError, TokenSpan};
pub use self::exports::edgenlu::nlu::nlu::{Path as AnswerPath, Request, Response, Slot, Timing};
pub use self::policy::exports::edgenlu::nlu::policy::{Decision, Signals, Verdict};
