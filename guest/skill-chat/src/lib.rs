//! The `chat` skill: text generation with SmolLM2 (or another llama model), prompted through
//! its ChatML template.
//!
//! `chat.complete` renders the conversation (earlier turns, then the request's prompt as the
//! last user turn) in the template, refuses with `context-length-exceeded` a request whose
//! prompt and `max-tokens` do not fit the model's context, and runs one of two forward passes:
//! - `fused`: the host's llama pass through `llm.generation` (any sampling; the text streams to
//!   the device as the skill pulls tokens);
//! - `primitives`: the same pass composed of primitive kernels (the SDK's
//!   [`edgenlu_sdk::decoder::Llama`]), greedy only, whose ids equal the fused pass's bit for bit.
//!
//! A request's `constraint` (a JSON schema, Lark grammar or regex the reply must match) goes to
//! the host with the fused pass's options; the primitives path refuses one.
//!
//! `nlu.handle` answers an utterance with a short greedy chat reply (fused).
//!
//! Config keys (from the skill's spec):
//! - `model`: the decoder's model name (default `smollm2-135m-instruct.q4_1`);
//! - `system`: the system turn of the template (default SmolLM2's own).
//!
//! Generation stops at the model's `tokenizer.ggml.eos_token_id`, `<|im_end|>` or
//! `<|endoftext|>`, or after the requested number of tokens.

edgenlu_sdk::world!("chat-skill");

use edgenlu_sdk::chat::{self, chatml, stop_ids, Generated, DEFAULT_SYSTEM};
use edgenlu_sdk::decoder::{self, Llama, GREEDY};
use edgenlu_sdk::llm::{FinishReason, Options, Usage};
use edgenlu_sdk::{config, invalid, tokenize, Error, Model};
use exports::edgenlu::nlu::chat::{
    ChatError, ChatRequest, ChatResponse, ChatTurn, ContextOverflow, Forward, Role,
};
use exports::edgenlu::nlu::nlu::{Path, Request, Response};

/// The decoder used when the config names none.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct.q4_1";

/// Most tokens of a reply to an utterance (`nlu.handle`).
pub const HANDLE_MAX_TOKENS: u32 = 24;

impl From<Error> for ChatError {
    fn from(e: Error) -> Self {
        ChatError::Failed(e)
    }
}

/// Generates greedily with the forward pass composed of primitive kernels.
fn complete_primitives(
    model: &Model,
    prompt: &[u32],
    stop: &[u32],
    max_tokens: u32,
) -> Result<(String, Vec<u32>, FinishReason, Usage), Error> {
    let llama = Llama::load(model)?;
    let prompt_len = u32::try_from(prompt.len()).map_err(|_| invalid("the prompt is too long"))?;
    let capacity = prompt_len
        .checked_add(max_tokens)
        .filter(|&c| llama.config().context.is_none_or(|ctx| c <= ctx))
        .ok_or_else(|| {
            invalid(format!(
                "{prompt_len} prompt tokens + {max_tokens} new ones exceed the model's context \
                 of {:?}",
                llama.config().context
            ))
        })?;
    let cache = llama.new_cache(capacity)?;
    let head = llama.head()?;
    // The whole prompt in one pass; its activations are freed before decoding starts.
    let mut next = {
        let mut scratch = llama.scratch(prompt_len)?;
        llama.forward(prompt, &cache, &mut scratch, &head)?
    };
    let mut ids = Vec::new();
    let finish = if max_tokens == 0 {
        FinishReason::Length
    } else {
        let mut step = llama.scratch(1)?;
        loop {
            if stop.contains(&next) {
                break FinishReason::Stop;
            }
            ids.push(next);
            if ids.len() >= max_tokens as usize {
                break FinishReason::Length;
            }
            next = llama.forward(&[next], &cache, &mut step, &head)?;
        }
    };
    let usage = Usage {
        prompt_tokens: prompt_len,
        generated_tokens: ids.len() as u32,
        prefill_micros: 0,
        decode_micros: 0,
    };
    Ok((tokenize::decode(&ids)?, ids, finish, usage))
}

/// The text the model continues: the conversation in the chat template, or the bare prompt.
fn render(req: &ChatRequest, history: &[ChatTurn]) -> Result<String, Error> {
    if !req.template {
        return match history {
            [] => Ok(req.prompt.clone()),
            _ => Err(invalid("earlier turns need the chat template")),
        };
    }
    let system = req.system.clone().or_else(|| config::get("system"));
    let role = |r: Role| match r {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let turns = history
        .iter()
        .map(|t| (role(t.role), t.content.as_str()))
        .chain([("user", req.prompt.as_str())]);
    Ok(chatml(system.as_deref().unwrap_or(DEFAULT_SYSTEM), turns))
}

/// Refuses, typed, a request whose prompt and new tokens do not fit the model's context (when
/// the model states one): the caller can shorten the conversation or ask for fewer tokens.
fn check_context(model: &Model, prompt: &[u32], max_tokens: u32) -> Result<(), ChatError> {
    let Some(context) =
        decoder::meta_u32(model, "llama.context_length").map_err(ChatError::Failed)?
    else {
        return Ok(());
    };
    let prompt_tokens = u32::try_from(prompt.len()).unwrap_or(u32::MAX);
    if prompt_tokens.saturating_add(max_tokens) <= context {
        return Ok(());
    }
    Err(ChatError::ContextLengthExceeded(ContextOverflow {
        prompt_tokens,
        max_tokens,
        context,
    }))
}

fn complete(req: ChatRequest, history: &[ChatTurn]) -> Result<ChatResponse, ChatError> {
    let name = config::get("model").unwrap_or_else(|| DEFAULT_MODEL.to_string());
    let model = Model::open(&name)?;
    let prompt_ids = tokenize::encode(&render(&req, history)?)?;
    if prompt_ids.is_empty() {
        return Err(invalid("the prompt has no tokens").into());
    }
    check_context(&model, &prompt_ids, req.max_tokens)?;
    let stop = stop_ids(&model)?;
    let (text, ids, finish, usage) = match req.forward {
        Forward::Fused => {
            let options = Options {
                max_tokens: req.max_tokens,
                stop,
                sampling: req.sampling,
                constraint: req.constraint,
            };
            let g: Generated = chat::generate(&model, &prompt_ids, &options, |_| ())?;
            (g.text, g.ids, g.finish, g.usage)
        }
        Forward::Primitives => {
            if req.constraint.is_some() {
                return Err(invalid("the primitives path takes no constraint").into());
            }
            let s = &req.sampling;
            if s.temperature != 0.0 || (s.repeat_penalty != 1.0 && s.repeat_last_n > 0) {
                return Err(invalid(
                    "the primitives path decodes greedily, without a repetition penalty",
                )
                .into());
            }
            complete_primitives(&model, &prompt_ids, &stop, req.max_tokens)?
        }
    };
    Ok(ChatResponse {
        text,
        prompt_ids,
        ids,
        finish,
        usage,
    })
}

struct Chat;

impl exports::edgenlu::nlu::chat::Guest for Chat {
    fn complete(req: ChatRequest, history: Vec<ChatTurn>) -> Result<ChatResponse, ChatError> {
        complete(req, &history)
    }
}

impl exports::edgenlu::nlu::nlu::Guest for Chat {
    fn handle(req: Request) -> Result<Response, Error> {
        let request = ChatRequest {
            prompt: req.text,
            template: true,
            system: None,
            max_tokens: HANDLE_MAX_TOKENS,
            sampling: GREEDY,
            forward: Forward::Fused,
            constraint: None,
        };
        let reply = complete(request, &[]).map_err(|e| match e {
            ChatError::Failed(e) => e,
            ChatError::ContextLengthExceeded(o) => invalid(format!(
                "{} prompt tokens + {} new ones exceed the model's context of {}",
                o.prompt_tokens, o.max_tokens, o.context
            )),
        })?;
        Ok(Response {
            intent: "chat".to_string(),
            confidence: 1.0,
            slots: Vec::new(),
            reply: Some(reply.text),
            path: Path::Local,
            timings: Vec::new(),
        })
    }
}

export!(Chat);
