//! SmolLM2's chat template (ChatML), as its GGUF `tokenizer.chat_template` renders a
//! conversation with `add_generation_prompt`: a system turn first (the template adds its
//! default one when the conversation has none), every turn in order, then an open assistant
//! turn.

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
