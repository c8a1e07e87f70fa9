//! Shared helpers for the end-to-end tests in `tests/`: where the model store and the golden
//! files are, and a runtime over that store. A missing prerequisite fails the test with the
//! command that provides it: a skipped test is not a passing one.

use edgenlu::{ModelCatalog, Runtime};
use edgenlu_models::store::ModelStore;
use std::path::PathBuf;

/// The model store the tests read (`$EDGENLU_HOME`, else the XDG default), which
/// `edgenlu models fetch` fills.
pub fn store() -> ModelStore {
    ModelStore::open_default().expect("opening the model store")
}

/// A runtime over the test model store, with the compiled-component cache in it.
pub fn runtime() -> Runtime {
    let store = store();
    let cache = store.root().join("cache/components");
    Runtime::new(ModelCatalog::new(store), Some(cache)).expect("creating the runtime")
}

/// Fails unless model `name` is in the store.
pub fn require_model(name: &str) {
    let store = store();
    assert!(
        store
            .list()
            .expect("listing the store")
            .iter()
            .any(|e| e.name == name),
        "model {name} is not in the store at {}: run `edgenlu models fetch` (scripts/test.sh does)",
        store.root().display()
    );
}

/// A golden file made by a script in scripts/golden/ (`$EDGENLU_GOLDEN_DIR`, else `golden/`
/// at the repository root), parsed as JSON Lines.
pub fn golden_lines<T: serde::de::DeserializeOwned>(file: &str) -> Vec<T> {
    let dir = std::env::var_os("EDGENLU_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden"));
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}): scripts/test.sh generates it with scripts/golden/",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a golden line parses"))
        .collect()
}

/// Builds a datastore called `name` in the test store from the first `per_intent` SNIPS train
/// examples of each intent, embedded by the bundled intents skill, and records it with
/// `provenance`. Returns how many examples it holds.
pub fn build_snips_index(name: &str, per_intent: usize, provenance: &str) -> usize {
    use edgenlu::bundled::{intents_skill, DEFAULT_ENCODER};
    use edgenlu::datastore;
    require_model(DEFAULT_ENCODER);
    let embedder = runtime()
        .load_skill(intents_skill(
            DEFAULT_ENCODER,
            None,
            edgenlu::Limits::default(),
        ))
        .expect("loading the intents skill");
    let train = datastore::read_examples(&datasets_dir().join("snips/train.jsonl"))
        .expect("reading SNIPS train");
    let train = datastore::limit_per_intent(train, per_intent);
    let store = store();
    let path = store.path_for(name).expect("a datastore path");
    datastore::build(&embedder, DEFAULT_ENCODER, &train, 2, &path, &|_| {})
        .expect("building the datastore");
    store
        .record(name, provenance)
        .expect("recording the datastore");
    train.len()
}

/// Path of the repository's shared datasets (`../shared/datasets` beside the checkout, or
/// `$EDGENLU_DATASETS`).
pub fn datasets_dir() -> PathBuf {
    std::env::var_os("EDGENLU_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"))
}

/// Tokenizes every golden text with `skill`'s linked tokenizer component and fails, showing
/// the first differences, unless every text gets exactly the reference ids. Returns how many
/// texts were compared.
pub fn assert_same_ids(skill: &edgenlu::Skill, golden: &[(String, Vec<u32>)], what: &str) -> usize {
    assert!(
        golden.len() > 30_000,
        "expected every dataset text, got {}",
        golden.len()
    );
    let texts: Vec<String> = golden.iter().map(|(t, _)| t.clone()).collect();
    let ours = skill.tokenize(&texts).expect("tokenizing");
    let mismatches: Vec<_> = golden
        .iter()
        .zip(&ours)
        .filter(|((_, ids), o)| ids != *o)
        .collect();
    for ((text, ids), o) in mismatches.iter().take(5) {
        eprintln!("{text:?}\n  reference: {ids:?}\n  ours:      {o:?}");
    }
    eprintln!(
        "{what} parity: {} of {} texts identical",
        golden.len() - mismatches.len(),
        golden.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} texts tokenized differently",
        mismatches.len(),
        golden.len()
    );
    golden.len()
}

/// `edgenlu serve`'s server over `config`, with the bundled intents skill answering from
/// datastore `index` and the bundled chat skill, as the CLI starts it.
pub fn start_server(config: &edgenlu::serve::ServeConfig, index: &str) -> edgenlu::serve::Server {
    use edgenlu::bundled::{
        chat_limits, chat_skill, intents_skill, DEFAULT_DECODER, DEFAULT_ENCODER,
    };
    use edgenlu::serve::{IntentsSkill, Server, Skills};
    use std::sync::Arc;
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let rt = runtime();
    let intents = rt
        .load_skill(intents_skill(
            DEFAULT_ENCODER,
            Some(index),
            edgenlu::Limits::default(),
        ))
        .expect("loading the intents skill");
    let chat = rt
        .load_skill(chat_skill(DEFAULT_DECODER, chat_limits()))
        .expect("loading the chat skill");
    Server::start(
        config,
        Skills {
            intents: IntentsSkill::Fixed(Arc::new(intents)),
            encoder: DEFAULT_ENCODER.into(),
            chat: Arc::new(chat),
            decoder: DEFAULT_DECODER.into(),
        },
    )
    .expect("starting the server")
}
