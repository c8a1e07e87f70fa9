//! Golden tests: the Wasm tokenizer against Hugging Face `tokenizers`, and the Wasm skill's
//! embeddings (host kernels, f32 and q8_0 weights) against a float64 numpy BERT, and the
//! host's native BERT pass (wasi:nn's encoder) against the same reference.

use edgenlu::bundled::{intents_skill, DEFAULT_ENCODER};
use edgenlu::Limits;
use edgenlu_models::{Bert, GgufFile};
use edgenlu_tests::{assert_same_ids, golden_lines, require_model, runtime, store};
use std::sync::Arc;
use std::time::Duration;

const F32_ENCODER: &str = "all-minilm-l6-v2.f32";

fn generous() -> Limits {
    Limits {
        deadline: Duration::from_secs(600),
        ..Limits::default()
    }
}

#[derive(serde::Deserialize)]
struct TokenGolden {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn wordpiece_component_matches_hf_tokenizers_on_every_dataset_text_and_hostile_strings() {
    require_model(F32_ENCODER);
    let golden: Vec<TokenGolden> = golden_lines("wordpiece_ids.jsonl");
    let skill = runtime()
        .load_skill(intents_skill(F32_ENCODER, None, generous()))
        .unwrap();
    let pairs: Vec<_> = golden.into_iter().map(|g| (g.text, g.ids)).collect();
    assert_same_ids(&skill, &pairs, "WordPiece");
}

#[derive(serde::Deserialize)]
struct EmbeddingGolden {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Embeds every golden sentence with `embed` and returns the smallest cosine.
fn min_cosine_of(encoder: &str, embed: impl Fn(&EmbeddingGolden) -> Vec<f32>) -> (f64, String) {
    require_model(encoder);
    let golden: Vec<EmbeddingGolden> = golden_lines("minilm_embeddings.jsonl");
    assert!(
        golden.len() >= 200,
        "expected ≥ 200 golden sentences, got {}",
        golden.len()
    );
    golden
        .iter()
        .map(|g| {
            let ours = embed(g);
            assert_eq!(ours.len(), g.embedding.len());
            (cosine(&ours, &g.embedding), g.text.clone())
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
}

/// Embeds every golden sentence through the skill and returns the smallest cosine.
fn min_cosine(encoder: &str) -> (f64, String) {
    let skill = runtime()
        .load_skill(intents_skill(encoder, None, generous()))
        .unwrap();
    min_cosine_of(encoder, |g| {
        skill
            .embed(&g.text)
            .unwrap_or_else(|e| panic!("embedding {:?}: {e}", g.text))
    })
}

/// Embeds every golden sentence's reference ids with the host's native BERT pass (what
/// wasi:nn's encoder contexts run) and returns the smallest cosine.
fn native_min_cosine(encoder: &str) -> (f64, String) {
    require_model(encoder);
    let file = GgufFile::open(&store().path_for(encoder).unwrap()).unwrap();
    let bert = Bert::new(Arc::new(file)).unwrap();
    min_cosine_of(encoder, |g| {
        bert.encode(&g.ids, &|| false)
            .unwrap_or_else(|e| panic!("encoding {:?}: {e}", g.text))
            .embedding
    })
}

#[test]
fn f32_embeddings_match_the_numpy_reference() {
    let (min, text) = min_cosine(F32_ENCODER);
    eprintln!("f32: min cosine {min:.7} ({text:?})");
    assert!(min >= 0.9999, "f32 cosine {min} < 0.9999 for {text:?}");
}

#[test]
fn native_bert_embeddings_match_the_numpy_reference() {
    let (min, text) = native_min_cosine(F32_ENCODER);
    eprintln!("native f32: min cosine {min:.7} ({text:?})");
    assert!(min >= 0.9999, "f32 cosine {min} < 0.9999 for {text:?}");
    let (min, text) = native_min_cosine(DEFAULT_ENCODER);
    eprintln!("native q8_0: min cosine {min:.7} ({text:?})");
    assert!(min >= 0.999, "q8_0 cosine {min} < 0.999 for {text:?}");
}

#[test]
fn q8_0_embeddings_match_the_numpy_reference() {
    let (min, text) = min_cosine(DEFAULT_ENCODER);
    eprintln!("q8_0: min cosine {min:.7} ({text:?})");
    assert!(min >= 0.999, "q8_0 cosine {min} < 0.999 for {text:?}");
}
