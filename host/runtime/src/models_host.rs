//! The `models` interface: models are opened by name only, from the device's model store, and
//! only if the calling component was granted that name. Opened files are shared by every
//! request (one mapping per model per process).

use crate::bindings::edgenlu::nlu::models::{Host, HostModel, MetaValue};
use crate::error::HostError;
use crate::resources::{ModelHandle, Tensor};
use crate::state::ComponentState;
use edgenlu_models::gguf::{GgufFile, MetaValue as GgufValue};
use std::sync::Arc;
use wasmtime::component::Resource;

impl ModelHandle {
    /// The mapped file.
    pub(crate) fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }
}

fn to_wit(v: &GgufValue) -> Option<MetaValue> {
    use GgufValue as G;
    Some(match v {
        G::Bool(b) => MetaValue::Flag(*b),
        G::String(s) => MetaValue::Text(s.clone()),
        G::F32(x) => MetaValue::Float(*x as f64),
        G::F64(x) => MetaValue::Float(*x),
        G::Array(items) => {
            if let Some(texts) = items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
            {
                MetaValue::Texts(texts)
            } else if let Some(ints) = items
                .iter()
                .map(GgufValue::as_i64)
                .collect::<Option<Vec<_>>>()
            {
                MetaValue::Ints(ints)
            } else if let Some(floats) = items
                .iter()
                .map(GgufValue::as_f64)
                .collect::<Option<Vec<_>>>()
            {
                MetaValue::Floats(floats)
            } else {
                // Nested or mixed arrays have no WIT form; the key reads as absent.
                return None;
            }
        }
        other => MetaValue::Int(other.as_i64()?),
    })
}

impl Host for ComponentState {}

impl HostModel for ComponentState {
    fn open(&mut self, name: String) -> Result<Resource<ModelHandle>, HostError> {
        self.budget.check_deadline()?;
        if !self.grants.iter().any(|g| g == &name) {
            return Err(HostError::not_allowed(format!(
                "model {name:?} was not granted to {}",
                self.component
            )));
        }
        let file = self.models.get(&name).map_err(|e| match e {
            edgenlu_models::StoreError::NotFound(_) => HostError::not_found(e.to_string()),
            other => HostError::internal(other.to_string()),
        })?;
        self.push_handle(ModelHandle { file })
    }

    fn architecture(&mut self, m: Resource<ModelHandle>) -> wasmtime::Result<String> {
        Ok(self
            .table
            .get(&m)?
            .file
            .architecture()
            .unwrap_or_default()
            .to_string())
    }

    fn meta(
        &mut self,
        m: Resource<ModelHandle>,
        key: String,
    ) -> wasmtime::Result<Option<MetaValue>> {
        Ok(self.table.get(&m)?.file.metadata(&key).and_then(to_wit))
    }

    fn weight(
        &mut self,
        m: Resource<ModelHandle>,
        name: String,
    ) -> Result<Resource<Tensor>, HostError> {
        let file = self.table.get(&m)?.file.clone();
        let t = file
            .tensor(&name)
            .ok_or_else(|| HostError::not_found(format!("no weight named {name:?}")))?;
        if crate::tensors::wit_dtype(t.dtype()).is_none() {
            return Err(HostError::invalid(format!(
                "weight {name:?} is {:?}, which the tensor interface does not carry (the llm \
                 interface's fused pass reads it)",
                t.dtype()
            )));
        }
        let tensor = Tensor::mapped(file.clone(), name, t.dtype(), t.shape().to_vec());
        self.push_tensor(tensor)
    }

    fn drop(&mut self, m: Resource<ModelHandle>) -> wasmtime::Result<()> {
        self.delete_handle(m)
            .map_err(|_| wasmtime::format_err!("dropping an unknown model"))?;
        Ok(())
    }
}
