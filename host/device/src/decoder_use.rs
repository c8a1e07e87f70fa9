//! What a flow may ask of the device's decoder besides a phrased reply, on the phraser's
//! model: a constrained choice (`choose`), the log-probability of each option as the whole
//! answer, computed by the host's llama pass over the prompt once and each option after it,
//! so what a flow picks from the scores is always one of its options.

use edgenlu::{Skill, WitError};
use edgenlu_models::Llama;
use std::time::Instant;

/// The system turn of SmolLM2's chat template when none is given (what the chat skill puts
/// before a prompt), so a question is scored in the context the model was tuned on.
const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
/// How an answer's turn ends: the option is scored with it, so an option that is only the
/// start of a likelier answer does not win.
const END_OF_TURN: &str = "<|im_end|>";

fn no_decoder() -> WitError {
    WitError::NotAllowed("the device has no decoder for flows (no phraser configured)".into())
}

/// The natural log-probability of each of `options` (followed by the end of the turn) as the
/// decoder's answer to `question`, charging the cache and logits with `charge` first and
/// stopping at `deadline`.
pub(crate) fn choose(
    phraser: Option<&Skill>,
    question: &str,
    options: &[String],
    deadline: Instant,
    charge: &mut dyn FnMut(usize) -> Result<(), WitError>,
) -> Result<Vec<f32>, WitError> {
    let phraser = phraser.ok_or_else(no_decoder)?;
    let internal =
        |what: &str, e: &dyn std::fmt::Display| WitError::Internal(format!("{what}: {e}"));
    let decoder = phraser
        .spec()
        .skill
        .grants
        .models
        .first()
        .ok_or_else(no_decoder)?;
    let file = (phraser.runtime().catalog().get(decoder)).map_err(|e| internal(decoder, &e))?;
    let llama = Llama::new(file).map_err(|e| internal(decoder, &e))?;
    let prompt = format!(
        "<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    let mut texts = vec![prompt];
    texts.extend(options.iter().map(|o| format!("{o}{END_OF_TURN}")));
    let tokens = phraser
        .tokenize(&texts)
        .map_err(|e| internal("tokenizing", &e))?;
    let (prompt, answers) = tokens.split_first().expect("the prompt is first");
    let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
    let capacity = prompt.len() + longest;
    let config = llama.config();
    let too_long =
        || WitError::InvalidArgument(format!("{capacity} tokens pass the decoder's context"));
    let held = config.generation_bytes(capacity).ok_or_else(too_long)?;
    charge(held.saturating_add(config.forward_scratch_bytes(prompt.len(), capacity)))?;
    let mut cache = llama.new_cache(capacity).map_err(|_| too_long())?;
    let interrupted = || Instant::now() >= deadline;
    let pass = |e: edgenlu_models::LlamaError| match e {
        edgenlu_models::LlamaError::Interrupted => {
            WitError::BudgetExceeded("the flow's deadline passed while the decoder chose".into())
        }
        e => internal("the decoder failed", &e),
    };
    let mut after_prompt = vec![0f32; config.vocab];
    llama
        .forward(prompt, &mut cache, &mut after_prompt, &interrupted)
        .map_err(pass)?;
    let mut logits = vec![0f32; config.vocab];
    let mut scores = Vec::with_capacity(answers.len());
    for answer in answers {
        cache.truncate(prompt.len());
        let mut score = 0f64;
        let mut next = &after_prompt;
        for (i, &token) in answer.iter().enumerate() {
            score += log_softmax_at(next, token as usize);
            if i + 1 < answer.len() {
                llama
                    .forward(&[token], &mut cache, &mut logits, &interrupted)
                    .map_err(pass)?;
                next = &logits;
            }
        }
        scores.push(score as f32);
    }
    Ok(scores)
}

/// `log softmax(logits)[index]`, in f64 (a sum over the vocabulary).
fn log_softmax_at(logits: &[f32], index: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits
        .get(index)
        .map_or(f64::NEG_INFINITY, |&l| l as f64 - max - sum.ln())
}

#[cfg(test)]
mod tests {
    use super::log_softmax_at;

    #[test]
    fn log_softmax_is_a_log_probability() {
        let logits = [1.0f32, 2.0, 3.0];
        let p: f64 = (0..3).map(|i| log_softmax_at(&logits, i).exp()).sum();
        assert!((p - 1.0).abs() < 1e-12, "{p}");
        assert!(log_softmax_at(&logits, 2) > log_softmax_at(&logits, 0));
        assert_eq!(log_softmax_at(&logits, 9), f64::NEG_INFINITY);
    }
}
