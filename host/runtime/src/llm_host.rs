//! The `llm` interface: a generation runs the fused decoder pass ([`edgenlu_models::Llama`]) over
//! a KV cache charged to the skill, samples each token on the host, and assembles the bytes the
//! linked tokenizer gives for it into whole UTF-8 characters, so no token boundary can split
//! a character in what the guest or the device sees.

use crate::bindings::edgenlu::nlu::llm::{
    Constraint, FinishReason, Host, HostGeneration, Options, Token, Usage,
};
use crate::error::HostError;
use crate::resources::{Finish, Generation, ModelHandle};
use crate::state::{guard, ComponentState};
use crate::tokenizer::to_host_error;
use edgenlu_models::gguf::GgufFile;
use edgenlu_models::{ConstraintError, Llama, LlamaError, Sampler, Sampling, TokenConstraint};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Resource;

/// Most stop tokens one generation takes.
const MAX_STOP_TOKENS: usize = 64;

/// Most prompt tokens one forward pass of the prefill takes; a longer prompt goes through in
/// chunks. The pass polls the deadline only between blocks, and one block over thousands of
/// tokens runs for seconds (attention grows with the square of them), so chunks keep every
/// stretch between polls short whatever the prompt's length (and the pass's scratch small).
pub const PREFILL_CHUNK: usize = 128;

impl From<LlamaError> for HostError {
    fn from(e: LlamaError) -> Self {
        match e {
            LlamaError::Kernel(k) => k.into(),
            LlamaError::Interrupted => {
                HostError::budget("the request's deadline passed during the forward pass")
            }
            other => HostError::invalid(other.to_string()),
        }
    }
}

impl From<ConstraintError> for HostError {
    fn from(e: ConstraintError) -> Self {
        HostError::invalid(e.to_string())
    }
}

impl From<&Constraint> for edgenlu_models::Constraint {
    fn from(c: &Constraint) -> Self {
        match c {
            Constraint::JsonSchema(s) => edgenlu_models::Constraint::JsonSchema(s.clone()),
            Constraint::Lark(s) => edgenlu_models::Constraint::Lark(s.clone()),
            Constraint::Regex(s) => edgenlu_models::Constraint::Regex(s.clone()),
        }
    }
}

/// Moves the whole characters at the front of `pending` into `out`; malformed bytes become
/// U+FFFD; an incomplete character at the end stays in `pending` unless `flush`.
fn take_utf8(pending: &mut Vec<u8>, out: &mut String, flush: bool) {
    let mut rest: &[u8] = pending;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).expect("checked valid"));
                match e.error_len() {
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = &after[bad..];
                    }
                    None if flush => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = &[];
                        break;
                    }
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    let keep = rest.len();
    pending.drain(..pending.len() - keep);
}

impl From<Finish> for FinishReason {
    fn from(f: Finish) -> Self {
        match f {
            Finish::Stop => FinishReason::Stop,
            Finish::Length => FinishReason::Length,
            Finish::Cancelled => FinishReason::Cancelled,
        }
    }
}

impl Generation {
    /// Samples the token after the current logits, among those the constraint (if any)
    /// allows; finishes on a stop token, an end token the constraint allowed, a constraint
    /// that is complete, or no token.
    fn choose_next(&mut self) -> Result<(), HostError> {
        if let Some(c) = self.constraint.as_mut() {
            if c.is_finished()? {
                self.upcoming = None;
                self.finish = Some(Finish::Stop);
                return Ok(());
            }
            c.mask_logits(&mut self.logits, &self.stop)?;
        }
        let ends = |t: u32| {
            self.stop.contains(&t) || self.constraint.as_ref().is_some_and(|c| c.is_end(t))
        };
        match self.sampler.sample(&mut self.logits) {
            Some(t) if !ends(t) => {
                if let Some(c) = self.constraint.as_mut() {
                    c.commit(t)?;
                }
                self.upcoming = Some(t);
            }
            _ => {
                self.upcoming = None;
                self.finish = Some(Finish::Stop);
            }
        }
        Ok(())
    }
}

impl ComponentState {
    /// `constraint` compiled for a generation on `file`, over the model's shared token
    /// environment; its matcher's memory is charged with the generation's.
    fn compile_constraint(
        &mut self,
        file: &Arc<GgufFile>,
        constraint: &Constraint,
    ) -> Result<TokenConstraint, HostError> {
        let models = self.models.clone();
        let compiled = guard(|| {
            let vocab = models.constraint_vocab(file)?;
            Ok(vocab.compile(&constraint.into())?)
        })?;
        self.budget.check_deadline()?;
        Ok(compiled)
    }
}

impl Host for ComponentState {}

impl HostGeneration for ComponentState {
    fn start(
        &mut self,
        model: Resource<ModelHandle>,
        prompt: Vec<u32>,
        opts: Options,
    ) -> Result<Resource<Generation>, HostError> {
        self.budget.check_deadline()?;
        let limits = &self.budget.limits;
        if opts.max_tokens as usize > limits.max_tokens {
            return Err(HostError::budget(format!(
                "{} tokens requested, the skill may generate {}",
                opts.max_tokens, limits.max_tokens
            )));
        }
        if prompt.is_empty() {
            return Err(HostError::invalid("the prompt has no tokens"));
        }
        if opts.stop.len() > MAX_STOP_TOKENS {
            return Err(HostError::invalid(format!(
                "{} stop tokens, at most {MAX_STOP_TOKENS}",
                opts.stop.len()
            )));
        }
        let s = &opts.sampling;
        let sampling = Sampling {
            temperature: s.temperature,
            top_k: s.top_k as usize,
            top_p: s.top_p,
            seed: s.seed,
            repeat_penalty: s.repeat_penalty,
            repeat_last_n: s.repeat_last_n as usize,
        };
        let mut sampler = Sampler::new(sampling).map_err(HostError::invalid)?;
        sampler.remember(&prompt);
        let file = self.table.get(&model)?.file().clone();
        let llama = Llama::new(file.clone()).map_err(|e| match e {
            LlamaError::Metadata(m) => HostError::invalid(format!("no fused forward pass: {m}")),
            e @ (LlamaError::UnsupportedArchitecture(..) | LlamaError::Unsupported { .. }) => {
                HostError::invalid(format!("no fused forward pass: {e}"))
            }
            other => other.into(),
        })?;
        let config = llama.config().clone();
        let capacity = prompt
            .len()
            .checked_add(opts.max_tokens as usize)
            .filter(|&c| c <= config.context)
            .ok_or_else(|| {
                HostError::invalid(format!(
                    "{} prompt tokens + {} new ones exceed the model's context of {}",
                    prompt.len(),
                    opts.max_tokens,
                    config.context
                ))
            })?;
        let matcher_bytes = match opts.constraint {
            Some(_) => TokenConstraint::HOST_BYTES,
            None => 0,
        };
        let charged = config
            .generation_bytes(capacity)
            .and_then(|b| b.checked_add(matcher_bytes))
            .ok_or_else(|| HostError::invalid("kv cache size overflows"))?;
        self.budget.charge_host_bytes(charged)?;
        let constraint = match opts.constraint.as_ref() {
            None => None,
            Some(c) => match self.compile_constraint(&file, c) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.budget.release_host_bytes(charged);
                    return Err(e);
                }
            },
        };
        let scratch = config.forward_scratch_bytes(prompt.len().min(PREFILL_CHUNK), capacity);
        let scratch = match self.budget.charge_scratch(scratch) {
            Ok(s) => s,
            Err(e) => {
                self.budget.release_host_bytes(charged);
                return Err(e);
            }
        };
        let deadline = self.budget.deadline;
        let started = Instant::now();
        let prefilled = guard(|| {
            let mut cache = llama.new_cache(capacity)?;
            let mut logits = vec![0f32; config.vocab];
            for chunk in prompt.chunks(PREFILL_CHUNK) {
                llama.forward(chunk, &mut cache, &mut logits, &|| {
                    Instant::now() > deadline
                })?;
            }
            Ok((cache, logits))
        });
        drop(scratch);
        let (cache, logits) = match prefilled {
            Ok(v) => v,
            Err(e) => {
                self.budget.release_host_bytes(charged);
                return Err(e);
            }
        };
        let prefill = started.elapsed();
        self.budget.kernel_time += prefill;
        let passes = prompt.len().div_ceil(PREFILL_CHUNK) as u64;
        self.budget.weight_bytes_read += passes * llama.weight_bytes() as u64;
        let mut g = Generation {
            model: llama,
            cache,
            logits,
            sampler,
            constraint,
            stop: opts.stop,
            max_tokens: opts.max_tokens as usize,
            prompt_tokens: prompt.len(),
            generated: 0,
            upcoming: None,
            pending: Vec::new(),
            finish: None,
            prefill,
            decode: Duration::ZERO,
            charged,
        };
        if g.max_tokens == 0 {
            g.finish = Some(Finish::Length);
        } else if let Err(e) = g.choose_next() {
            self.budget.release_host_bytes(charged);
            return Err(e);
        }
        self.push_handle(g)
            .inspect_err(|_| self.budget.release_host_bytes(charged))
    }

    fn next(&mut self, gen: Resource<Generation>) -> Result<Option<Token>, HostError> {
        self.budget.check_deadline()?;
        let Some(id) = self.table.get_mut(&gen)?.upcoming.take() else {
            return Ok(None);
        };
        let decoded = self
            .linked_tokenizer()
            .and_then(|t| t.decode_bytes(&[id]).map_err(to_host_error));
        let bytes = match decoded {
            Ok(bytes) => bytes,
            Err(e) => {
                // The token stays next: a refused token is neither lost nor the end of the
                // generation (which would leave `next` at none with no finish reason).
                self.table.get_mut(&gen)?.upcoming = Some(id);
                return Err(e);
            }
        };
        let deadline = self.budget.deadline;
        let g = self.table.get_mut(&gen)?;
        g.generated += 1;
        if g.generated >= g.max_tokens {
            g.finish = Some(Finish::Length);
        } else {
            let started = Instant::now();
            let positions = g.cache.capacity();
            let stepped = self
                .budget
                .charge_scratch(g.model.config().forward_scratch_bytes(1, positions))
                .and_then(|_scratch| {
                    guard(|| {
                        Ok(g.model.forward(&[id], &mut g.cache, &mut g.logits, &|| {
                            Instant::now() > deadline
                        })?)
                    })
                });
            let spent = started.elapsed();
            g.decode += spent;
            self.budget.kernel_time += spent;
            stepped?;
            let g = self.table.get_mut(&gen)?;
            self.budget.weight_bytes_read += g.model.weight_bytes() as u64;
            // Choosing (the constraint's mask included) counts as decoding time.
            let started = Instant::now();
            let chosen = g.choose_next();
            g.decode += started.elapsed();
            if let Err(e) = chosen {
                // A constraint that cannot continue ends the generation with the error.
                g.finish = Some(Finish::Cancelled);
                g.upcoming = None;
                return Err(e);
            }
        }
        let g = self.table.get_mut(&gen)?;
        g.pending.extend_from_slice(&bytes);
        let mut text = String::new();
        let last = g.finish.is_some();
        take_utf8(&mut g.pending, &mut text, last);
        if let Some(sink) = self.on_text.as_mut() {
            sink(&text);
        }
        Ok(Some(Token { id, text }))
    }

    fn cancel(&mut self, gen: Resource<Generation>) -> wasmtime::Result<()> {
        let g = self.table.get_mut(&gen)?;
        if g.finish.is_none() {
            g.finish = Some(Finish::Cancelled);
        }
        g.upcoming = None;
        g.pending.clear();
        Ok(())
    }

    fn finish(&mut self, gen: Resource<Generation>) -> wasmtime::Result<Option<FinishReason>> {
        Ok(self.table.get(&gen)?.finish.map(FinishReason::from))
    }

    fn usage(&mut self, gen: Resource<Generation>) -> wasmtime::Result<Usage> {
        let g = self.table.get(&gen)?;
        Ok(Usage {
            prompt_tokens: g.prompt_tokens as u32,
            generated_tokens: g.generated as u32,
            prefill_micros: g.prefill.as_micros() as u64,
            decode_micros: g.decode.as_micros() as u64,
        })
    }

    fn drop(&mut self, gen: Resource<Generation>) -> wasmtime::Result<()> {
        let g = self
            .delete_handle(gen)
            .map_err(|_| wasmtime::format_err!("dropping an unknown generation"))?;
        self.budget.release_host_bytes(g.charged);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::take_utf8;

    #[test]
    fn characters_split_across_tokens_come_out_whole() {
        let mut pending = Vec::new();
        let mut out = String::new();
        // "é" (C3 A9) and "😀" (F0 9F 98 80) arriving a byte or two at a time.
        for piece in [
            &[b'a', 0xC3][..],
            &[0xA9, 0xF0, 0x9F],
            &[0x98],
            &[0x80, b'!'],
        ] {
            pending.extend_from_slice(piece);
            take_utf8(&mut pending, &mut out, false);
        }
        assert_eq!(out, "aé😀!");
        assert!(pending.is_empty());
    }

    #[test]
    fn malformed_bytes_become_replacement_characters() {
        let mut pending = vec![b'x', 0xFF, b'y', 0xE2, 0x82];
        let mut out = String::new();
        take_utf8(&mut pending, &mut out, false);
        assert_eq!(out, "x\u{FFFD}y");
        assert_eq!(pending, [0xE2, 0x82], "an incomplete tail waits for more");
        take_utf8(&mut pending, &mut out, true);
        assert_eq!(out, "x\u{FFFD}y\u{FFFD}");
        assert!(pending.is_empty());
    }
}
