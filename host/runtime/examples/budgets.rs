//! Set budgets: every request runs under `Limits` (deadline, guest and host memory, handles,
//! tokens, response size), and a request that goes past one ends in its own typed error while
//! the runtime goes on serving.
//!
//! cargo run --release -p edgenlu --example budgets

use edgenlu::bundled::{chat_limits, chat_skill, DEFAULT_DECODER};
use edgenlu::{ChatRequest, Forward, Limits, ModelCatalog, Runtime, SamplingParams, SkillError};
use edgenlu_models::store::ModelStore;
use std::time::Duration;

fn request(max_tokens: u32) -> ChatRequest {
    ChatRequest {
        prompt: "Tell me a long story.".into(),
        template: true,
        system: None,
        max_tokens,
        sampling: SamplingParams::GREEDY,
        forward: Forward::Fused,
        constraint: None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = ModelStore::open_default()?;
    let cache = store.root().join("cache/components");
    let runtime = Runtime::new(ModelCatalog::new(store), Some(cache))?;

    // A token budget of 8: asking for more is refused before any work.
    let few_tokens = Limits {
        max_tokens: 8,
        ..chat_limits()
    };
    let skill = runtime.load_skill(chat_skill(DEFAULT_DECODER, few_tokens))?;
    match skill.chat(&request(64), None) {
        Err(e) => println!("64 tokens under a budget of 8: {e}"),
        Ok(r) => println!(
            "64 tokens under a budget of 8: {} generated",
            r.usage.generated_tokens
        ),
    }

    // A deadline of 1 ms: the guest is interrupted and the error says which budget it hit.
    let hurried = Limits {
        deadline: Duration::from_millis(1),
        ..chat_limits()
    };
    let skill = runtime.load_skill(chat_skill(DEFAULT_DECODER, hurried))?;
    match skill.chat(&request(16), None) {
        Err(e @ SkillError::Deadline(_)) => println!("a 1 ms deadline: {e}"),
        Err(e) => println!("a 1 ms deadline: refused otherwise: {e}"),
        Ok(_) => println!("a 1 ms deadline: finished in time"),
    }

    // The same runtime still serves a request within its budgets.
    let skill = runtime.load_skill(chat_skill(DEFAULT_DECODER, chat_limits()))?;
    let reply = skill.chat(&request(8), None)?;
    println!("within budgets: {:?}", reply.text);
    Ok(())
}
