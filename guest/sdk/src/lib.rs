//! The guest SDK of edgenlu: what a skill, tokenizer, policy or flow component is written
//! against.
//!
//! - The host's interfaces of `wit/nlu.wit`, generated once here: [`types`], [`tensors`],
//!   [`models`], [`kernels`], [`llm`], [`config`], [`log`] and [`tokenize`], and for flows
//!   [`flow_host`], [`policy`] and [`nlu`]'s types (and the common types at the crate root:
//!   [`Error`], [`Tensor`], [`Model`], …). A component imports only what it calls.
//! - [`world!`]: the export side of one world (`skill`, `embedding-skill`, `chat-skill`,
//!   `tokenizer`, `policy-component` or `flow-component`), generated in the component, whose
//!   imports are this crate's.
//! - [`flow`]: the steps of the device's default flow, for flows that change some of them.
//! - Typed errors ([`invalid`], [`internal`], [`Result`]), model metadata getters ([`meta`]),
//!   config settings ([`settings`]), tensor helpers ([`tensor`]), a BERT encoder
//!   ([`encoder`]) and a llama decoder ([`decoder`]) composed of the host's kernels, chatting
//!   with the host's fused decoder ([`chat`]: the ChatML template, stop ids, streamed
//!   generation), and a
//!   tokenizer component in one line ([`tokenizer`], [`export_tokenizer!`]).
//! - A skill's datastore ([`datastore`]): intent, confidence and slots of an encoded text from
//!   the examples `edgenlu skill build` embedded and the heads it trained; the decisions on the
//!   numbers (Viterbi, BIO spans, the out-of-scope rule, the vote) in [`decide`], tested natively.
//!
//! A component imports only the interfaces its code calls: a helper of this crate that a
//! component does not use adds no import to it, and none of the helpers logs.
//!
//! # Example
//!
//! A skill that answers every utterance with the number of its tokens (the host checks every
//! response: an intent is an identifier, a confidence is in [0, 1], slots lie inside the text):
//!
//! ```no_run
//! edgenlu_sdk::world!("skill");
//!
//! use edgenlu_sdk::{tokenize, Error};
//! use exports::edgenlu::nlu::nlu::{Guest, Path, Request, Response};
//!
//! struct Counter;
//!
//! impl Guest for Counter {
//!     fn handle(req: Request) -> Result<Response, Error> {
//!         let ids = tokenize::encode(&req.text)?;
//!         Ok(Response {
//!             intent: "count".into(),
//!             confidence: 1.0,
//!             slots: Vec::new(),
//!             reply: Some(format!("{} tokens", ids.len())),
//!             path: Path::Local,
//!             timings: Vec::new(),
//!         })
//!     }
//! }
//!
//! export!(Counter);
//! # fn main() {}
//! ```
//!
//! A skill that answers from its datastore and writes its own reply (without one, the device
//! phrases a reply with its decoder); `edgenlu skill new` writes a project around one like it:
//!
//! ```no_run
//! edgenlu_sdk::world!("skill");
//!
//! use edgenlu_sdk::datastore::Datastore;
//! use edgenlu_sdk::encoder::EncodedText;
//! use edgenlu_sdk::Error;
//! use exports::edgenlu::nlu::nlu::{Guest, Request, Response};
//!
//! struct Greeter;
//!
//! impl Guest for Greeter {
//!     fn handle(req: Request) -> Result<Response, Error> {
//!         let encoded = EncodedText::for_request(&req.text, req.encoded)?;
//!         let understood = Datastore::configured()?.understand(&req.text, &encoded)?;
//!         let reply = match understood.slot("name") {
//!             Some(name) => format!("Hello, {name}!"),
//!             None => "Hello!".to_string(),
//!         };
//!         Ok(Response {
//!             reply: Some(reply),
//!             ..understood.into()
//!         })
//!     }
//! }
//!
//! export!(Greeter);
//! # fn main() {}
//! ```
//!
//! The component crate is a `cdylib` depending on `edgenlu-sdk` (under that name: the
//! generated code refers to `::edgenlu_sdk`), built for `wasm32-unknown-unknown` and turned
//! into a component with `wit-component`.

#![warn(missing_docs)]

pub mod chat;
pub mod datastore;
pub mod decide;
pub mod decoder;
pub mod encoder;
pub mod flow;
pub mod meta;
pub mod settings;
pub mod tensor;
pub mod tokenizer;

/// The host's interfaces, imported by every world that uses them. Generated once, here; a
/// component's own bindings (from [`world!`]) refer to these modules.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        inline: "
            package edgenlu:sdk;

            world imports {
                import edgenlu:nlu/tensors@0.1.0;
                import edgenlu:nlu/models@0.1.0;
                import edgenlu:nlu/kernels@0.1.0;
                import edgenlu:nlu/llm@0.1.0;
                import edgenlu:nlu/config@0.1.0;
                import edgenlu:nlu/log@0.1.0;
                import edgenlu:nlu/tokenize@0.1.0;
                import edgenlu:nlu/flow-host@0.1.0;
                import edgenlu:nlu/policy@0.1.0;
            }
        ",
        world: "imports",
        generate_all,
    });
}

pub use bindings::edgenlu::nlu::{
    config, flow_host, kernels, llm, log, models, nlu, policy, tensors, tokenize, types,
};
pub use models::{MetaValue, Model};
pub use tensors::Tensor;
pub use types::{Dtype, Encoded, Error, TokenSpan};

/// A result whose error is the host's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// An [`Error::InvalidArgument`]: the input, a model or the config is not what the guest needs.
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// An [`Error::Internal`]: something that should not happen did.
pub fn internal(msg: impl Into<String>) -> Error {
    Error::Internal(msg.into())
}

/// An [`Error::NotFound`]: a name that resolves to nothing.
pub fn not_found(msg: impl Into<String>) -> Error {
    Error::NotFound(msg.into())
}

/// Generates, in the calling module, the export side of one world of `wit/nlu.wit`: the
/// `exports::edgenlu::nlu::…` modules (each interface's `Guest` trait and its types) and the
/// `export!` macro that makes a type the component's implementation. The world's imports are
/// this crate's modules, so a component generates no import bindings of its own.
///
/// The world is one of `"skill"`, `"embedding-skill"`, `"chat-skill"`, `"tokenizer"`,
/// `"policy-component"` and `"flow-component"`. Invoke it once per component, at the crate
/// root; the crate must depend on this one as `edgenlu_sdk`. See the crate documentation for
/// an example.
#[macro_export]
macro_rules! world {
    ($world:tt) => {
        $crate::__edgenlu_wit_dir!($world);
    };
}

include!(concat!(env!("OUT_DIR"), "/wit_dir.rs"));

/// The `wit_bindgen::generate!` of [`world!`], per world: each lists in `with` exactly the
/// interfaces its world imports (wit-bindgen refuses a key the world does not use).
#[doc(hidden)]
#[macro_export]
macro_rules! __world {
    ($dir:tt, "skill") => {
        $crate::__world!(@skill $dir, "skill");
        $crate::__world!(@answers);
    };
    ($dir:tt, "embedding-skill") => {
        $crate::__world!(@skill $dir, "embedding-skill");
        $crate::__world!(@answers);
    };
    // A datastore's answer as the `nlu` interface's types, so a skill returns it in one line.
    (@answers) => {
        impl ::core::convert::From<::edgenlu_sdk::datastore::Slot>
            for exports::edgenlu::nlu::nlu::Slot
        {
            fn from(s: ::edgenlu_sdk::datastore::Slot) -> Self {
                Self {
                    name: s.name,
                    value: s.value,
                    start: s.start,
                    end: s.end,
                }
            }
        }

        /// A local answer without a reply: the device's pipeline phrases one (or uses its
        /// template).
        impl ::core::convert::From<::edgenlu_sdk::datastore::Understanding>
            for exports::edgenlu::nlu::nlu::Response
        {
            fn from(u: ::edgenlu_sdk::datastore::Understanding) -> Self {
                Self {
                    intent: u.intent,
                    confidence: u.confidence,
                    slots: u.slots.into_iter().map(::core::convert::Into::into).collect(),
                    reply: None,
                    path: exports::edgenlu::nlu::nlu::Path::Local,
                    timings: ::std::vec::Vec::new(),
                }
            }
        }
    };
    ($dir:tt, "chat-skill") => {
        $crate::__world!(@skill $dir, "chat-skill");
    };
    (@skill $dir:tt, $world:tt) => {
        $crate::__private::wit_bindgen::generate!({
            path: $dir,
            world: $world,
            runtime_path: "::edgenlu_sdk::__private::wit_bindgen::rt",
            with: {
                "edgenlu:nlu/types@0.1.0": ::edgenlu_sdk::types,
                "edgenlu:nlu/tensors@0.1.0": ::edgenlu_sdk::tensors,
                "edgenlu:nlu/models@0.1.0": ::edgenlu_sdk::models,
                "edgenlu:nlu/kernels@0.1.0": ::edgenlu_sdk::kernels,
                "edgenlu:nlu/llm@0.1.0": ::edgenlu_sdk::llm,
                "edgenlu:nlu/config@0.1.0": ::edgenlu_sdk::config,
                "edgenlu:nlu/log@0.1.0": ::edgenlu_sdk::log,
                "edgenlu:nlu/tokenize@0.1.0": ::edgenlu_sdk::tokenize,
            },
        });
    };
    ($dir:tt, "tokenizer") => {
        $crate::__private::wit_bindgen::generate!({
            path: $dir,
            world: "tokenizer",
            runtime_path: "::edgenlu_sdk::__private::wit_bindgen::rt",
            with: {
                "edgenlu:nlu/types@0.1.0": ::edgenlu_sdk::types,
                "edgenlu:nlu/tensors@0.1.0": ::edgenlu_sdk::tensors,
                "edgenlu:nlu/models@0.1.0": ::edgenlu_sdk::models,
                "edgenlu:nlu/config@0.1.0": ::edgenlu_sdk::config,
                "edgenlu:nlu/log@0.1.0": ::edgenlu_sdk::log,
            },
        });
    };
    ($dir:tt, "policy-component") => {
        $crate::__private::wit_bindgen::generate!({
            path: $dir,
            world: "policy-component",
            runtime_path: "::edgenlu_sdk::__private::wit_bindgen::rt",
            with: {
                "edgenlu:nlu/config@0.1.0": ::edgenlu_sdk::config,
                "edgenlu:nlu/log@0.1.0": ::edgenlu_sdk::log,
            },
        });
    };
    ($dir:tt, "flow-component") => {
        $crate::__world!(@flow $dir);
        impl ::core::convert::From<&exports::edgenlu::nlu::flow::Utterance>
            for ::edgenlu_sdk::flow::Device
        {
            fn from(u: &exports::edgenlu::nlu::flow::Utterance) -> Self {
                Self {
                    network_up: u.network_up,
                    battery_percent: u.battery_percent,
                }
            }
        }

        /// The outcome of an answer made with the SDK's flow steps.
        impl ::core::convert::From<::edgenlu_sdk::flow::Answer>
            for exports::edgenlu::nlu::flow::Outcome
        {
            fn from(a: ::edgenlu_sdk::flow::Answer) -> Self {
                Self {
                    skill: a.skill,
                    response: a.response,
                    out_of_scope: a.out_of_scope,
                    verdict: a.decided.verdict,
                    uplink_error: a.decided.uplink_error,
                    template_reason: a.decided.template_reason,
                    stages: a.stages.0,
                }
            }
        }
    };
    (@flow $dir:tt) => {
        $crate::__private::wit_bindgen::generate!({
            path: $dir,
            world: "flow-component",
            runtime_path: "::edgenlu_sdk::__private::wit_bindgen::rt",
            with: {
                "edgenlu:nlu/types@0.1.0": ::edgenlu_sdk::types,
                "edgenlu:nlu/nlu@0.1.0": ::edgenlu_sdk::nlu,
                "edgenlu:nlu/flow-host@0.1.0": ::edgenlu_sdk::flow_host,
                "edgenlu:nlu/policy@0.1.0": ::edgenlu_sdk::policy,
                "edgenlu:nlu/config@0.1.0": ::edgenlu_sdk::config,
                "edgenlu:nlu/log@0.1.0": ::edgenlu_sdk::log,
            },
        });
    };
    ($dir:tt, $other:tt) => {
        compile_error!(concat!(
            "edgenlu_sdk::world!: unknown world ",
            stringify!($other),
            "; expected \"skill\", \"embedding-skill\", \"chat-skill\", \"tokenizer\", \
             \"policy-component\" or \"flow-component\""
        ));
    };
}

/// What the macros of this crate expand to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
