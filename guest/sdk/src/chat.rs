//! Chatting with a llama decoder (SmolLM2): the ChatML template, the ids that end a turn, and a
//! generation through the host's fused pass whose tokens stream as they are sampled.
//!
//! The template renders a conversation as SmolLM2's GGUF `tokenizer.chat_template` does with
//! `add_generation_prompt`: a system turn first (the template adds its default one when the
//! conversation has none), every turn in order, then an open assistant turn.
//!
//! # Example
//!
//! A one-turn chat, each piece of text handed on as it comes (the skill needs the `generate`
//! capability, the decoder among its models, and the BPE tokenizer over it):
//!
//! ```no_run
//! use edgenlu_sdk::chat::{chatml, generate, stop_ids, DEFAULT_SYSTEM};
//! use edgenlu_sdk::decoder::GREEDY;
//! use edgenlu_sdk::llm::Options;
//! use edgenlu_sdk::{tokenize, Model};
//!
//! fn reply(question: &str) -> edgenlu_sdk::Result<String> {
//!     let model = Model::open("smollm2-135m-instruct.q4_1")?;
//!     let prompt = tokenize::encode(&chatml(DEFAULT_SYSTEM, [("user", question)]))?;
//!     let options =
//!         Options { max_tokens: 32, stop: stop_ids(&model)?, sampling: GREEDY, constraint: None };
//!     let done = generate(&model, &prompt, &options, |piece| print!("{piece}"))?;
//!     Ok(done.text)
//! }
//! ```

use crate::llm::{FinishReason, Generation, Options, Usage};
use crate::{internal, meta, tokenize, Model, Result};

/// The system text SmolLM2's template uses when the conversation brings none.
pub const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// A `system` turn, the `turns` (role, content) in order, and the start of the assistant's
/// reply: each turn `<|im_start|>{role}\n{content}<|im_end|>\n`.
pub fn chatml<'a>(system: &'a str, turns: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::new();
    for (role, content) in std::iter::once(("system", system)).chain(turns) {
        text.push_str("<|im_start|>");
        text.push_str(role);
        text.push('\n');
        text.push_str(content);
        text.push_str("<|im_end|>\n");
    }
    text.push_str("<|im_start|>assistant\n");
    text
}

/// Texts of the end-of-turn tokens that stop a generation besides the model's EOS.
const STOP_TEXTS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

/// The ids that end a turn: the model's EOS and the ids of `<|im_end|>` and `<|endoftext|>`
/// when the linked tokenizer encodes each as one token, without repeats.
pub fn stop_ids(model: &Model) -> Result<Vec<u32>> {
    let mut stop = Vec::new();
    // An EOS that is not a token id stops nothing; the end-of-turn texts still do.
    if let Ok(Some(eos)) = meta::int(model, "tokenizer.ggml.eos_token_id") {
        if let Ok(eos) = u32::try_from(eos) {
            stop.push(eos);
        }
    }
    for text in STOP_TEXTS {
        if let [id] = tokenize::encode(text)?[..] {
            if !stop.contains(&id) {
                stop.push(id);
            }
        }
    }
    Ok(stop)
}

/// A finished generation.
pub struct Generated {
    /// The text, whole characters only.
    pub text: String,
    /// The generated ids (without the stop id).
    pub ids: Vec<u32>,
    /// Why it ended.
    pub finish: FinishReason,
    /// Tokens and time, as the host counted them.
    pub usage: Usage,
}

/// Continues `prompt` with the host's fused pass under `options`, handing each piece of text
/// to `on_text` as it is sampled (the host also streams it to the device), until a stop id,
/// `max-tokens` or a cancel ends it.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    options: &Options,
    mut on_text: impl FnMut(&str),
) -> Result<Generated> {
    let generation = Generation::start(model, prompt, options)?;
    let (mut text, mut ids) = (String::new(), Vec::new());
    while let Some(token) = generation.next()? {
        on_text(&token.text);
        ids.push(token.id);
        text.push_str(&token.text);
    }
    let usage = generation.usage();
    let finish = generation
        .finish()
        .ok_or_else(|| internal("the generation ended without a reason"))?;
    Ok(Generated {
        text,
        ids,
        finish,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_the_gguf_template_does() {
        assert_eq!(
            chatml(DEFAULT_SYSTEM, [("user", "What is 2+2?")]),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn the_system_text_is_replaceable() {
        assert_eq!(
            chatml("Be brief.", [("user", "")]),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn earlier_turns_come_in_order_before_the_last() {
        assert_eq!(
            chatml(
                "S",
                [("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye")]
            ),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }
}
