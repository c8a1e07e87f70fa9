//! The encoder's execution context: one sequence of token ids in, the sentence embedding and
//! every token's state out (tensor names and shapes in wit/README.md).

use super::io::{deadline_of, f32_output, past, token_ids, Compute, HostCharge, Inputs, NnError};
use crate::state::SharedBudget;
use edgenlu_models::{Bert, BertError};
use std::sync::Arc;
use wasmtime_wasi_nn::backend::NamedTensor;

/// The token ids input.
pub(crate) const INPUT_IDS: &str = "input_ids";
/// The optional mask input: 1 for a token, 0 for padding after the last one.
const ATTENTION_MASK: &str = "attention_mask";

/// A BERT encoder's context. It keeps nothing between computes.
pub(crate) struct EncoderContext {
    bert: Arc<Bert>,
    budget: Arc<SharedBudget>,
}

impl EncoderContext {
    pub(crate) fn new(bert: Arc<Bert>, budget: &Arc<SharedBudget>) -> EncoderContext {
        EncoderContext {
            bert,
            budget: budget.clone(),
        }
    }

    /// How many of `n` tokens are real: all without a mask, else the mask's leading ones
    /// (a mask must be ones, then only zeros, with at least one 1).
    fn real_tokens(mask: Option<Vec<i32>>, n: usize) -> Result<usize, NnError> {
        let Some(mask) = mask else { return Ok(n) };
        if mask.len() != n {
            return Err(NnError::Invalid(format!(
                "{ATTENTION_MASK} has {} values for {n} tokens",
                mask.len()
            )));
        }
        let count = mask.iter().take_while(|&&m| m == 1).count();
        if count == 0 || mask[count..].iter().any(|&m| m != 0) {
            return Err(NnError::Invalid(format!(
                "{ATTENTION_MASK} must be ones then zeros (padding after the tokens), starting with a one"
            )));
        }
        Ok(count)
    }

    fn encode(&self, inputs: Option<Vec<NamedTensor>>) -> Result<Vec<NamedTensor>, NnError> {
        let inputs = Inputs::new(inputs, &[INPUT_IDS, ATTENTION_MASK])?;
        let config = self.bert.config();
        let ids = inputs
            .ids(INPUT_IDS, config.context)?
            .ok_or_else(|| NnError::Invalid(format!("{INPUT_IDS} is required")))?;
        let n = ids.len();
        let count = Self::real_tokens(inputs.ids(ATTENTION_MASK, config.context)?, n)?;
        let ids = token_ids(INPUT_IDS, &ids[..count])?;
        let deadline = deadline_of(&self.budget)?;
        let _charge = HostCharge::new(
            &self.budget,
            config
                .encode_scratch_bytes(count)
                .saturating_add(config.output_bytes(n).saturating_mul(2)),
        )?;
        let encoding = crate::state::guard_panics(|| self.bert.encode(&ids, &past(deadline)))
            .map_err(|e| NnError::Model(e.to_string()))?
            .map_err(|e| match e {
                BertError::Interrupted => {
                    NnError::Deadline("the deadline passed inside the encoder".into())
                }
                other => NnError::Model(other.to_string()),
            })?;
        let dim = config.dim;
        let mut states = encoding.states;
        states.resize(n * dim, 0.0);
        Ok(vec![
            f32_output("embedding", vec![1, dim as u32], &encoding.embedding),
            f32_output("token_states", vec![1, n as u32, dim as u32], &states),
        ])
    }
}

impl Compute for EncoderContext {
    fn run(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Vec<NamedTensor>, NnError> {
        self.encode(inputs)
    }
}
