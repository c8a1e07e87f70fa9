//! Links a tokenizer component to a skill: the skill's `tokenize` import calls into the
//! tokenizer's exports. The tokenizer runs in a store of its own (its own memory budget,
//! handle table and grants) created on first use within a request and sharing its deadline.

use crate::bindings::edgenlu::nlu::tokenize;
use crate::bindings::tokenizer::{Tokenizer, TokenizerPre};
use crate::bindings::TokenSpan;
use crate::error::{HostError, SkillError};
use crate::runtime::{classify_trap, Grants, Runtime};
use crate::state::ComponentState;
use std::time::{Duration, Instant};
use wasmtime::Store;

/// A tokenizer component compiled and linked, ready to instantiate per request.
#[derive(Clone)]
pub struct TokenizerLink {
    pub(crate) pre: TokenizerPre<ComponentState>,
    pub(crate) grants: Grants,
    pub(crate) runtime: Runtime,
}

/// A tokenizer instantiated for one request, or about to be.
pub struct LinkedTokenizer {
    link: TokenizerLink,
    deadline: Instant,
    live: Option<(Store<ComponentState>, Tokenizer)>,
    /// Time spent in the tokenizer during this request.
    pub elapsed: Duration,
}

impl TokenizerLink {
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
    fn instance(&mut self) -> Result<&mut (Store<ComponentState>, Tokenizer), SkillError> {
        if self.live.is_none() {
            let mut store =
                self.link
                    .runtime
                    .new_store("tokenizer", &self.link.grants, self.deadline);
            let bindings = self
                .link
                .pre
                .instantiate(&mut store)
                .map_err(|e| classify_trap(e, store.data()))?;
            self.live = Some((store, bindings));
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
                Err(trap) => Err(classify_trap(trap, store.data())),
            });
        if matches!(result, Err(ref e) if !matches!(e, SkillError::Guest(_))) {
            // A trapped instance is never reused.
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
    fn tokenizer_for_text(&mut self, text: &str) -> Result<&mut LinkedTokenizer, HostError> {
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
    pub(crate) fn linked_tokenizer(&mut self) -> Result<&mut LinkedTokenizer, HostError> {
        self.budget.check_deadline()?;
        self.tokenizer
            .as_mut()
            .ok_or_else(|| HostError::not_found("no tokenizer is linked to this skill"))
    }
}
