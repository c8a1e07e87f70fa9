//! A decoder's (llama, qwen2, qwen3, gemma3) execution context: token ids in, the last position's logits out, the
//! KV cache kept between computes so that each continues the sequence; a compute of zero
//! tokens empties it (tensor names and shapes in wit/README.md).

use super::encoder::INPUT_IDS;
use super::io::{deadline_of, f32_output, past, token_ids, Compute, HostCharge, Inputs, NnError};
use crate::llm_host::PREFILL_CHUNK;
use crate::state::SharedBudget;
use edgenlu_kernels::ops::KvCache;
use edgenlu_models::{Llama, LlamaError};
use std::sync::Arc;
use wasmtime_wasi_nn::backend::NamedTensor;

/// Share of the host memory left when a decoder context is made that its KV cache may take;
/// the rest is for the tensors the guest passes and gets.
const CACHE_SHARE: (usize, usize) = (7, 8);

/// A decoder's context: its KV cache and the logits of the last position.
pub(crate) struct DecoderContext {
    llama: Arc<Llama>,
    budget: Arc<SharedBudget>,
    cache: KvCache,
    logits: Vec<f32>,
    /// The cache (at its full capacity) and the logits, charged while the context lives.
    _charge: HostCharge,
}

impl DecoderContext {
    /// A context whose cache holds as many positions as fit in [`CACHE_SHARE`] of the host
    /// memory left now, at most the model's context, charged up front.
    pub(crate) fn new(
        llama: Arc<Llama>,
        budget: &Arc<SharedBudget>,
    ) -> Result<DecoderContext, NnError> {
        let config = llama.config();
        let room = budget.available() / CACHE_SHARE.1 * CACHE_SHARE.0;
        let capacity = config.context_within(room, PREFILL_CHUNK);
        if capacity == 0 {
            return Err(NnError::Memory {
                bytes: config.generation_bytes(1).unwrap_or(usize::MAX),
                reason: format!(
                    "{} bytes of host memory left hold no position of the decoder's cache",
                    budget.available()
                ),
            });
        }
        let bytes = config
            .generation_bytes(capacity)
            .ok_or_else(|| NnError::Model("kv cache size overflows".into()))?;
        let charge = HostCharge::new(budget, bytes)?;
        let cache = llama
            .new_cache(capacity)
            .map_err(|e| NnError::Model(e.to_string()))?;
        Ok(DecoderContext {
            logits: vec![0f32; config.vocab],
            llama,
            budget: budget.clone(),
            cache,
            _charge: charge,
        })
    }

    fn step(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Vec<NamedTensor>, NnError> {
        let inputs = Inputs::new(inputs, &[INPUT_IDS])?;
        let capacity = self.cache.capacity();
        let ids = inputs
            .ids(INPUT_IDS, capacity)?
            .ok_or_else(|| NnError::Invalid(format!("{INPUT_IDS} is required")))?;
        if ids.is_empty() {
            self.cache.truncate(0);
            return Ok(Vec::new());
        }
        let ids = token_ids(INPUT_IDS, &ids)?;
        if self.cache.len() + ids.len() > capacity {
            return Err(NnError::Invalid(format!(
                "{} positions in the cache and {} new tokens pass its capacity of {capacity}; \
                 compute zero tokens to start again",
                self.cache.len(),
                ids.len()
            )));
        }
        let deadline = deadline_of(&self.budget)?;
        let config = self.llama.config();
        let scratch = config
            .forward_scratch_bytes(ids.len().min(PREFILL_CHUNK), capacity)
            .saturating_add(config.vocab * size_of::<f32>());
        let _charge = HostCharge::new(&self.budget, scratch)?;
        let before = self.cache.len();
        let (llama, cache, logits) = (&self.llama, &mut self.cache, &mut self.logits);
        let ran = crate::state::guard_panics(|| {
            ids.chunks(PREFILL_CHUNK)
                .try_for_each(|chunk| llama.forward(chunk, cache, logits, &past(deadline)))
        })
        .map_err(|e| NnError::Model(e.to_string()))?;
        if let Err(e) = ran {
            // A pass cut short leaves the sequence as it was before this compute.
            self.cache.truncate(before);
            return Err(match e {
                LlamaError::Interrupted => {
                    NnError::Deadline("the deadline passed inside the decoder".into())
                }
                other => NnError::Model(other.to_string()),
            });
        }
        Ok(vec![f32_output(
            "logits",
            vec![1, self.logits.len() as u32],
            &self.logits,
        )])
    }
}

impl Compute for DecoderContext {
    fn run(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Vec<NamedTensor>, NnError> {
        self.step(inputs)
    }
}
