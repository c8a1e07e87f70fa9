//! Load a skill and ask it: the bundled `intents` skill answering from a datastore in the
//! model store (build one with `edgenlu skill index` or `edgenlu skill train`).
//!
//! cargo run --release -p edgenlu --example ask_skill -- snips-intents "play some jazz"

use edgenlu::bundled::{intents_skill, DEFAULT_ENCODER};
use edgenlu::{Limits, ModelCatalog, Runtime};
use edgenlu_models::store::ModelStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let index = args.next().unwrap_or_else(|| "snips-intents".into());
    let text = args
        .next()
        .unwrap_or_else(|| "what is the weather in london".into());

    // Models are opened by name from the store; compiled components are cached beside them.
    let store = ModelStore::open_default()?;
    let cache = store.root().join("cache/components");
    let runtime = Runtime::new(ModelCatalog::new(store), Some(cache))?;

    // The skill may open exactly the encoder and the datastore it is granted.
    let skill = runtime.load_skill(intents_skill(
        DEFAULT_ENCODER,
        Some(&index),
        Limits::default(),
    ))?;
    let answer = skill.handle(&text)?;
    println!(
        "{text:?} -> intent {} (confidence {:.2}), {} slots",
        answer.response.intent,
        answer.response.confidence,
        answer.response.slots.len()
    );
    Ok(())
}
