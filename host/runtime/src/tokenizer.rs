//! Links a tokenizer component to a skill: the skill's `tokenize` import calls into the
//! tokenizer's exports. The tokenizer runs in a store of its own (its own memory budget,
//! handle table and grants), taken on first use within a request and given that request's
//! deadline.
//!
//! Tokenizers are the host's own bundled components (a manifest names one, it never ships
//! one) and pure functions of their vocabulary, which they build once per instance (several
//! milliseconds for WordPiece's 30,522 entries). So an instance that served a request without
//! any error goes back to a small pool for the next request instead of being thrown away;
//! one that returned an error or trapped never does (its cached state could be the error).

use crate::bindings::edgenlu::nlu::tokenize;
use crate::bindings::tokenizer::{Tokenizer, TokenizerPre};
use crate::bindings::TokenSpan;
use crate::catalog::ModelCatalog;
use crate::error::{HostError, SkillError};
use crate::log_rate::LogRate;
use crate::state::{self, ComponentState, EpochTicker, Grants, RequestTokenizer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Store;

/// Most warm instances kept per linked tokenizer: one per request running at once is enough,
/// and the server runs a few.
const MAX_IDLE: usize = 4;

type Instance = (Store<ComponentState>, Tokenizer);

/// A tokenizer component compiled and linked, ready to instantiate per request: the
/// pre-instantiated component (which knows its engine), its grants, the models it opens, and
/// the ticker that makes its deadlines interrupt it.
#[derive(Clone)]
pub struct TokenizerLink {
    pre: TokenizerPre<ComponentState>,
    pub(crate) grants: Grants,
    catalog: Arc<ModelCatalog>,
    _ticker: Arc<EpochTicker>,
    /// Instances that served a request without an error, ready for the next.
    idle: Arc<Mutex<Vec<Instance>>>,
    /// The tokenizer's log-line rate, shared by all its instances.
    log_rate: Arc<LogRate>,
}

/// A tokenizer instantiated for one request, or about to be.
pub struct LinkedTokenizer {
    link: TokenizerLink,
    deadline: Instant,
    live: Option<Instance>,
    /// Time spent in the tokenizer during this request.
    pub elapsed: Duration,
}

impl Drop for LinkedTokenizer {
    fn drop(&mut self) {
        if let Some(instance) = self.live.take() {
            let mut idle = self.link.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(instance);
            }
        }
    }
}

impl TokenizerLink {
    /// Links `pre`, instantiated with `grants`, opening models from `catalog` while `ticker`
    /// advances its engine's epoch.
    pub(crate) fn new(
        pre: TokenizerPre<ComponentState>,
        grants: Grants,
        (catalog, ticker): (Arc<ModelCatalog>, Arc<EpochTicker>),
    ) -> TokenizerLink {
        TokenizerLink {
            log_rate: Arc::new(LogRate::for_limits(&grants.limits)),
            pre,
            grants,
            catalog,
            _ticker: ticker,
            idle: Arc::default(),
        }
    }

    /// A tokenizer for one request that must finish by `deadline`.
    pub fn for_request(&self, deadline: Instant) -> LinkedTokenizer {
        LinkedTokenizer {
            link: self.clone(),
            deadline,
            live: None,
            elapsed: Duration::ZERO,
        }
    }
}

impl LinkedTokenizer {
    fn instance(&mut self) -> Result<&mut Instance, SkillError> {
        if self.live.is_none() {
            let warm = self
                .link
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            self.live = Some(match warm {
                Some((mut store, bindings)) => {
                    state::renew_store(&mut store, self.deadline);
                    (store, bindings)
                }
                None => {
                    let link = &self.link;
                    let mut store = state::new_store(
                        link.pre.engine(),
                        &link.catalog,
                        "tokenizer",
                        &link.log_rate,
                        &link.grants,
                        self.deadline,
                    );
                    let bindings = self
                        .link
                        .pre
                        .instantiate(&mut store)
                        .map_err(|e| store.data().trap_error(e))?;
                    (store, bindings)
                }
            });
        }
        Ok(self.live.as_mut().expect("just set"))
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(
            &mut Store<ComponentState>,
            &Tokenizer,
        ) -> wasmtime::Result<Result<R, crate::bindings::WitError>>,
    ) -> Result<R, SkillError> {
        let start = Instant::now();
        let result = self
            .instance()
            .and_then(|(store, bindings)| match f(store, bindings) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(SkillError::Guest(e)),
                Err(trap) => Err(store.data().trap_error(trap)),
            });
        if result.is_err() {
            // Neither a trapped instance nor one whose cached state may be an error is reused.
            self.live = None;
        }
        self.elapsed += start.elapsed();
        result
    }

    /// Token ids of `text`.
    pub fn encode(&mut self, text: &str) -> Result<Vec<u32>, SkillError> {
        self.call(|store, t| t.edgenlu_nlu_tokenize().call_encode(store, text))
    }

    /// Tokens of `text` with the byte ranges they came from.
    pub fn encode_spans(&mut self, text: &str) -> Result<Vec<TokenSpan>, SkillError> {
        self.call(|store, t| t.edgenlu_nlu_tokenize().call_encode_spans(store, text))
    }

    /// Text of `ids`.
    pub fn decode(&mut self, ids: &[u32]) -> Result<String, SkillError> {
        self.call(|store, t| t.edgenlu_nlu_tokenize().call_decode(store, ids))
    }

    /// Raw bytes of `ids`' text (may end inside a UTF-8 character).
    pub fn decode_bytes(&mut self, ids: &[u32]) -> Result<Vec<u8>, SkillError> {
        self.call(|store, t| t.edgenlu_nlu_tokenize().call_decode_bytes(store, ids))
    }
}

impl RequestTokenizer for LinkedTokenizer {
    fn encode(&mut self, text: &str) -> Result<Vec<u32>, SkillError> {
        LinkedTokenizer::encode(self, text)
    }

    fn encode_spans(&mut self, text: &str) -> Result<Vec<TokenSpan>, SkillError> {
        LinkedTokenizer::encode_spans(self, text)
    }

    fn decode(&mut self, ids: &[u32]) -> Result<String, SkillError> {
        LinkedTokenizer::decode(self, ids)
    }

    fn decode_bytes(&mut self, ids: &[u32]) -> Result<Vec<u8>, SkillError> {
        LinkedTokenizer::decode_bytes(self, ids)
    }

    fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// How a failure inside the tokenizer looks to the skill that called it.
pub(crate) fn to_host_error(e: SkillError) -> HostError {
    match e {
        SkillError::Guest(w) => HostError::Guest(w),
        SkillError::Deadline(_) => HostError::budget(e.to_string()),
        SkillError::Memory(_) => HostError::budget(format!("tokenizer: {e}")),
        other => HostError::internal(format!("tokenizer: {other}")),
    }
}

impl tokenize::Host for ComponentState {
    fn encode(&mut self, text: String) -> Result<Vec<u32>, HostError> {
        self.tokenizer_for_text(&text)?
            .encode(&text)
            .map_err(to_host_error)
    }

    fn encode_spans(&mut self, text: String) -> Result<Vec<TokenSpan>, HostError> {
        self.tokenizer_for_text(&text)?
            .encode_spans(&text)
            .map_err(to_host_error)
    }

    fn decode(&mut self, ids: Vec<u32>) -> Result<String, HostError> {
        self.linked_tokenizer()?.decode(&ids).map_err(to_host_error)
    }

    fn decode_bytes(&mut self, ids: Vec<u32>) -> Result<Vec<u8>, HostError> {
        self.linked_tokenizer()?
            .decode_bytes(&ids)
            .map_err(to_host_error)
    }
}

impl ComponentState {
    /// The linked tokenizer, once `text` is checked against the budget for tokenizing.
    fn tokenizer_for_text(
        &mut self,
        text: &str,
    ) -> Result<&mut (dyn RequestTokenizer + 'static), HostError> {
        if text.len() > self.budget.limits.max_text_bytes {
            return Err(HostError::budget(format!(
                "{} bytes of text is more than the {} a skill may tokenize at once",
                text.len(),
                self.budget.limits.max_text_bytes
            )));
        }
        self.linked_tokenizer()
    }

    /// The tokenizer linked to this skill, once the deadline is checked.
    pub(crate) fn linked_tokenizer(
        &mut self,
    ) -> Result<&mut (dyn RequestTokenizer + 'static), HostError> {
        self.budget.check_deadline()?;
        self.tokenizer
            .as_deref_mut()
            .ok_or_else(|| HostError::not_found("no tokenizer is linked to this skill"))
    }
}
