//! SmolLM2's chat template (ChatML), as its GGUF `tokenizer.chat_template` renders a single
//! user message with `add_generation_prompt`: a system turn first (the template adds its
//! default one when the conversation has none), the user turn, then an open assistant turn.

/// The system text SmolLM2's template uses when the conversation brings none.
pub const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// `prompt` as one user turn after a `system` turn, ending where the assistant's reply starts.
pub fn chatml(system: &str, prompt: &str) -> String {
    let mut text = String::with_capacity(system.len() + prompt.len() + 80);
    for (role, content) in [("system", system), ("user", prompt)] {
        text.push_str("<|im_start|>");
        text.push_str(role);
        text.push('\n');
        text.push_str(content);
        text.push_str("<|im_end|>\n");
    }
    text.push_str("<|im_start|>assistant\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_the_gguf_template_does() {
        assert_eq!(
            chatml(DEFAULT_SYSTEM, "What is 2+2?"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn the_system_text_is_replaceable() {
        assert_eq!(
            chatml("Be brief.", ""),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }
}
