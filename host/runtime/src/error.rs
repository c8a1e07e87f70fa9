//! Errors: what a host call returns to a guest, and what the host API returns to its callers.

pub use crate::bindings::HostError;
use crate::bindings::WitError;
use edgenlu_kernels::KernelError;

impl HostError {
    /// A bad argument (`invalid-argument`).
    pub fn invalid(msg: impl Into<String>) -> Self {
        HostError::Guest(WitError::InvalidArgument(msg.into()))
    }
    /// Shapes that do not fit together (`shape-mismatch`).
    pub fn shape(msg: impl Into<String>) -> Self {
        HostError::Guest(WitError::ShapeMismatch(msg.into()))
    }
    /// Something named that does not exist (`not-found`).
    pub fn not_found(msg: impl Into<String>) -> Self {
        HostError::Guest(WitError::NotFound(msg.into()))
    }
    /// Something the component was not granted (`not-allowed`).
    pub fn not_allowed(msg: impl Into<String>) -> Self {
        HostError::Guest(WitError::NotAllowed(msg.into()))
    }
    /// A limit the request would pass (`budget-exceeded`).
    pub fn budget(msg: impl Into<String>) -> Self {
        HostError::Guest(WitError::BudgetExceeded(msg.into()))
    }
    /// A failure on the host's side the guest can do nothing about (`internal`).
    pub fn internal(msg: impl Into<String>) -> Self {
        HostError::Guest(WitError::Internal(msg.into()))
    }
}

impl From<KernelError> for HostError {
    fn from(e: KernelError) -> Self {
        match e {
            KernelError::ShapeMismatch(m) => HostError::shape(m),
            KernelError::InvalidArgument(m) => HostError::invalid(m),
            other @ KernelError::Unsupported(..) => HostError::invalid(other.to_string()),
            // The host stops a kernel only when the request's deadline has passed.
            KernelError::Interrupted(op) => {
                HostError::budget(format!("the request's deadline passed inside {op}"))
            }
        }
    }
}

impl From<wasmtime::component::ResourceTableError> for HostError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        // A stale or foreign handle is the guest's mistake, not a reason to trap.
        HostError::invalid(format!("bad handle: {e}"))
    }
}

/// "kind: message", the way people should read a WIT error.
pub fn describe(e: &WitError) -> String {
    {
        let (kind, msg) = match e {
            WitError::InvalidArgument(m) => ("invalid-argument", m),
            WitError::ShapeMismatch(m) => ("shape-mismatch", m),
            WitError::NotFound(m) => ("not-found", m),
            WitError::NotAllowed(m) => ("not-allowed", m),
            WitError::BudgetExceeded(m) => ("budget-exceeded", m),
            WitError::Internal(m) => ("internal", m),
        };
        format!("{kind}: {msg}")
    }
}

/// Why a request to a skill failed, as the host API reports it.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// The skill (or a host call it made) returned a typed error.
    #[error("{}", describe(.0))]
    Guest(WitError),
    /// The request ran past its deadline (in Wasm or inside a host kernel).
    #[error("budget-exceeded: the request ran past its {0} ms deadline")]
    Deadline(u64),
    /// The guest tried to grow its memory past its budget.
    #[error("budget-exceeded: the skill tried to grow its memory past {0} bytes")]
    Memory(usize),
    /// The skill returned a response larger than its budget allows.
    #[error("budget-exceeded: the response is {bytes} bytes, more than the {limit} allowed")]
    ResponseTooLarge {
        /// The response's size.
        bytes: usize,
        /// The skill's `max_response_bytes`.
        limit: usize,
    },
    /// The skill's response broke a rule of the boundary (a NaN confidence, an intent that is
    /// not an identifier, a slot span outside the text, a path only the host may choose, ...):
    /// the skill misbehaved, the request was fine.
    #[error("invalid-response: the skill's {field} {reason}")]
    InvalidResponse {
        /// The field, e.g. `confidence` or `slots[2].name`.
        field: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A chat request's prompt (as rendered) and its new tokens do not fit the model's
    /// context: the caller's to shorten (OpenAI's `context_length_exceeded`).
    #[error(
        "context_length_exceeded: the prompt takes {} tokens and {} more were asked for, past \
         the model's context of {}",
        .0.prompt_tokens, .0.max_tokens, .0.context
    )]
    ContextLength(crate::bindings::ContextOverflow),
    /// A host call panicked (a host bug); the instance was discarded, the host goes on.
    #[error("{0}")]
    HostPanic(String),
    /// The guest trapped (a panic, unreachable, stack overflow, ...); its instance was discarded.
    #[error("the skill trapped: {0}")]
    Trap(String),
    /// Loading, compiling or linking a component failed.
    #[error("loading {what}: {reason}")]
    Load {
        /// The component (its path or embedded name), or the part of the runtime that failed.
        what: String,
        /// Why, in wasmtime's or the file system's words.
        reason: String,
    },
    /// A model could not be opened.
    #[error(transparent)]
    Model(#[from] edgenlu_models::StoreError),
}
