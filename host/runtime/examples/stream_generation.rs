//! Stream a generation: the bundled `chat` skill drives SmolLM2 token by token, and the host
//! hands each piece of text to a sink as soon as it is whole UTF-8.
//!
//! cargo run --release -p edgenlu --example stream_generation -- "Name three colours."

use edgenlu::bundled::{chat_limits, chat_skill, DEFAULT_DECODER};
use edgenlu::{ChatRequest, Forward, ModelCatalog, Runtime, SamplingParams, TextSink};
use edgenlu_models::store::ModelStore;
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Name three colours.".into());
    let store = ModelStore::open_default()?;
    let cache = store.root().join("cache/components");
    let runtime = Runtime::new(ModelCatalog::new(store), Some(cache))?;
    let skill = runtime.load_skill(chat_skill(DEFAULT_DECODER, chat_limits()))?;

    let sink: TextSink = Box::new(|text: &str| {
        print!("{text}");
        let _ = std::io::stdout().flush();
    });
    let request = ChatRequest {
        prompt,
        template: true,
        system: None,
        max_tokens: 32,
        sampling: SamplingParams::GREEDY,
        forward: Forward::Fused,
        constraint: None,
    };
    let response = skill.chat(&request, Some(sink))?;
    println!(
        "\n[{} prompt tokens, {} generated]",
        response.usage.prompt_tokens, response.usage.generated_tokens
    );
    Ok(())
}
