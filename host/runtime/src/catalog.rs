//! The models a runtime's guests may open: each mapped once per process and shared by every
//! request that opens it.

use edgenlu_models::gguf::GgufFile;
use edgenlu_models::store::ModelStore;
use edgenlu_models::{ConstraintError, ConstraintVocab};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Models opened from one store, each mapped once and shared by every request.
pub struct ModelCatalog {
    store: ModelStore,
    open: Mutex<HashMap<String, Arc<GgufFile>>>,
    /// Each decoder's token environment for constrained decoding, built on first use, keyed
    /// by its mapped file (which the entry holds, so the address is never reused).
    vocabs: Mutex<Vec<(Arc<GgufFile>, Arc<ConstraintVocab>)>>,
}

impl ModelCatalog {
    /// A catalog of `store`'s models, none opened yet.
    pub fn new(store: ModelStore) -> ModelCatalog {
        ModelCatalog {
            store,
            open: Mutex::new(HashMap::new()),
            vocabs: Mutex::new(Vec::new()),
        }
    }

    /// The store this catalog opens models from.
    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    /// Opens (or returns the already open) model `name`; the store checks its digest first.
    pub fn get(&self, name: &str) -> Result<Arc<GgufFile>, edgenlu_models::StoreError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = open.get(name) {
            return Ok(f.clone());
        }
        let file = Arc::new(self.store.open(name)?);
        open.insert(name.to_string(), file.clone());
        Ok(file)
    }

    /// The token environment constrained generations on `file` share: built from its
    /// vocabulary the first time (once per model and process), then returned again.
    pub fn constraint_vocab(
        &self,
        file: &Arc<GgufFile>,
    ) -> Result<Arc<ConstraintVocab>, ConstraintError> {
        let mut vocabs = self.vocabs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, v)) = vocabs.iter().find(|(f, _)| Arc::ptr_eq(f, file)) {
            return Ok(v.clone());
        }
        let vocab = Arc::new(ConstraintVocab::from_gguf(file)?);
        vocabs.push((file.clone(), vocab.clone()));
        Ok(vocab)
    }
}
