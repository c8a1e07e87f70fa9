//! edgenlu: a WebAssembly component runtime for natural-language skills on edge devices.
//!
//! The host owns what must be fast or trusted (mapped models, native kernels, budgets); skills
//! and tokenizers are sandboxed Wasm components speaking the WIT contract in `wit/`.
//! [`Runtime`] compiles and links components; [`Skill::handle`] answers one utterance in a
//! fresh instance with its own memory, handles and deadline.

#![warn(missing_docs)]

mod bindings;
pub mod bundled;
mod catalog;
pub mod error;
mod escape;
pub mod flow;
mod flow_host;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod kernels_host;
mod llm_host;
mod log_rate;
mod models_host;
pub mod nn;
pub mod parallel;
pub mod policy;
mod resources;
mod response;
mod runtime;
mod state;
mod tensors;
mod tokenizer;

pub use bindings::{
    AnswerPath, ChatRequest, ChatResponse, ChatRole, ChatTurn, Constraint, ContextOverflow,
    Decision, Encoded, FinishReason, Forward, Request, Response, SamplingParams, Signals, Slot,
    Timing, TokenSpan, Usage, Verdict, WitError,
};
pub use catalog::ModelCatalog;
pub use error::SkillError;
pub use llm_host::PREFILL_CHUNK;
pub use nn::example::{NnComponent, NnResult};
pub use response::MAX_IDENTIFIER_BYTES;
pub use runtime::{
    return_freed_memory_to_the_os, Answer, ComponentSource, ComponentSpec, Runtime, RuntimeOptions,
    Skill, SkillSpec,
};
pub use state::{Grants, Limits, TextSink};
