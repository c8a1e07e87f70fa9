//! The backend (GGUF bytes through `load`) and the registry (granted models through
//! `load-by-name`) behind the `wasi:nn` plumbing, and the graphs both give: a BERT encoder or
//! a llama decoder on the project's kernels.

use super::decoder::DecoderContext;
use super::encoder::EncoderContext;
use super::io::{Context, HostCharge, NnError};
use crate::catalog::ModelCatalog;
use crate::state::SharedBudget;
use edgenlu_models::gguf::GgufFile;
use edgenlu_models::{Architecture, Bert, Llama};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding};
use wasmtime_wasi_nn::{Backend, ExecutionContext, Graph, GraphRegistry};

/// Largest model `load` takes, bytes. Its bytes come through guest memory and are copied into
/// the host (twice, by the canonical ABI and into the graph): fine for a test model, not for
/// a real one, which the device already has mapped and a component asks for by name.
pub const MAX_LOAD_BYTES: usize = 1 << 20;

/// What a graph runs.
enum Model {
    Encoder(Arc<Bert>),
    Decoder(Arc<Llama>),
}

/// A model as a `wasi:nn` graph, making contexts that charge the request's budget.
struct GgufGraph {
    model: Model,
    budget: Arc<SharedBudget>,
    /// Host memory of bytes a `load` copied in, held as long as the graph.
    _bytes: Option<HostCharge>,
}

impl BackendGraph for GgufGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context: Box<dyn BackendExecutionContext> = match &self.model {
            Model::Encoder(bert) => {
                Box::new(Context(EncoderContext::new(bert.clone(), &self.budget)))
            }
            Model::Decoder(llama) => {
                Box::new(Context(DecoderContext::new(llama.clone(), &self.budget)?))
            }
        };
        Ok(context.into())
    }
}

/// `file` as a graph: a BERT encoder, or a decoder (llama, qwen2, qwen3, gemma3) when
/// `generate` allows one.
fn graph_of(
    file: Arc<GgufFile>,
    generate: bool,
    budget: &Arc<SharedBudget>,
    bytes: Option<HostCharge>,
) -> Result<Graph, NnError> {
    let decoder = file.architecture().and_then(Architecture::from_name);
    let model = match file.architecture() {
        Some("bert") => Model::Encoder(Arc::new(
            Bert::new(file).map_err(|e| NnError::Model(e.to_string()))?,
        )),
        Some(_) if decoder.is_some() && generate => Model::Decoder(Arc::new(
            Llama::new(file).map_err(|e| NnError::Model(e.to_string()))?,
        )),
        Some(name) if decoder.is_some() => {
            return Err(NnError::Invalid(format!(
                "a {name} decoder needs the generate capability"
            )))
        }
        other => {
            return Err(NnError::Model(format!(
                "architecture {other:?}: wasi:nn runs bert encoders and decoders of {}",
                edgenlu_models::architecture::SUPPORTED
            )))
        }
    };
    let graph: Box<dyn BackendGraph> = Box::new(GgufGraph {
        model,
        budget: budget.clone(),
        _bytes: bytes,
    });
    Ok(graph.into())
}

/// The backends for the `ggml` and `autodetect` encodings (both take GGUF bytes).
pub(super) fn backends(generate: bool, budget: &Arc<SharedBudget>) -> Vec<Backend> {
    [GraphEncoding::Ggml, GraphEncoding::Autodetect]
        .into_iter()
        .map(|encoding| {
            Backend::from(GgufBackend {
                encoding,
                generate,
                budget: budget.clone(),
            })
        })
        .collect()
}

/// `load` of GGUF bytes, up to [`MAX_LOAD_BYTES`], on the CPU.
struct GgufBackend {
    encoding: GraphEncoding,
    generate: bool,
    budget: Arc<SharedBudget>,
}

impl GgufBackend {
    fn load_gguf(&self, builders: &[&[u8]], target: ExecutionTarget) -> Result<Graph, NnError> {
        let [bytes] = builders else {
            return Err(NnError::Invalid(format!(
                "{} builders; a GGUF graph is one",
                builders.len()
            )));
        };
        if bytes.len() > MAX_LOAD_BYTES {
            return Err(NnError::Memory {
                bytes: bytes.len(),
                reason: format!(
                    "a model of {} bytes is above the {MAX_LOAD_BYTES} bytes `load` takes through \
                     guest memory; ask for a model the component is granted with load-by-name",
                    bytes.len()
                ),
            });
        }
        if target != ExecutionTarget::Cpu {
            return Err(NnError::Invalid(format!(
                "execution target {target:?}: this host runs graphs on the CPU"
            )));
        }
        if !bytes.starts_with(b"GGUF") {
            return Err(NnError::Invalid(format!(
                "{} bytes are not GGUF (the {} encoding here takes GGUF files)",
                bytes.len(),
                self.encoding
            )));
        }
        let charge = HostCharge::new(&self.budget, bytes.len())?;
        let file = GgufFile::from_bytes(bytes.to_vec())
            .map_err(|e| NnError::Invalid(format!("not a valid GGUF file: {e}")))?;
        graph_of(Arc::new(file), self.generate, &self.budget, Some(charge))
    }
}

impl BackendInner for GgufBackend {
    fn encoding(&self) -> GraphEncoding {
        self.encoding
    }

    fn load(&mut self, builders: &[&[u8]], target: ExecutionTarget) -> Result<Graph, BackendError> {
        Ok(self.load_gguf(builders, target)?)
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

/// The graphs `load-by-name` finds: the models granted to the component, by their store
/// names, each opened on first use. Nothing else resolves: a path, an ungranted model, a
/// decoder without [`crate::Grants::generate`], a model that fails to open all read as
/// absent (`not-found`), with the reason in the host log.
pub struct GrantedGraphs {
    catalog: Arc<ModelCatalog>,
    generate: bool,
    budget: Arc<SharedBudget>,
    graphs: HashMap<String, OnceLock<Option<Graph>>>,
}

impl GrantedGraphs {
    pub(super) fn new(
        catalog: Arc<ModelCatalog>,
        grants: &[String],
        generate: bool,
        budget: Arc<SharedBudget>,
    ) -> GrantedGraphs {
        GrantedGraphs {
            catalog,
            generate,
            budget,
            graphs: grants
                .iter()
                .map(|name| (name.clone(), OnceLock::new()))
                .collect(),
        }
    }

    fn open(&self, name: &str) -> Option<Graph> {
        let opened = self
            .catalog
            .get(name)
            .map_err(|e| NnError::Model(e.to_string()))
            .and_then(|file| graph_of(file, self.generate, &self.budget, None));
        opened
            .inspect_err(|e| tracing::warn!(model = name, "wasi:nn graph not available: {e}"))
            .ok()
    }
}

impl GraphRegistry for GrantedGraphs {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.graphs
            .get(name)?
            .get_or_init(|| self.open(name))
            .as_ref()
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.get(name)?;
        self.graphs.get_mut(name)?.get_mut()?.as_mut()
    }
}
