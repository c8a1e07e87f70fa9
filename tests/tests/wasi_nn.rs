//! The standard `wasi:nn` on the project's kernels, through guests written against wasi:nn
//! alone (`guest/wasi-nn-example`, `guest/wasi-nn-hostile`): their embeddings equal the
//! bundled intents skill's, their greedy continuations equal the chat skill's tokens, names
//! that are not granted models (or are paths) are not found, and hostile calls end in typed
//! errors or a budget trap.

use edgenlu::bundled::{
    chat_limits, chat_skill, components, embedded, intents_skill, DEFAULT_DECODER, DEFAULT_ENCODER,
};
use edgenlu::{
    ChatRequest, ComponentSpec, Forward, Grants, Limits, NnComponent, SamplingParams, SkillError,
    WitError,
};
use edgenlu_kernels::DType;
use edgenlu_models::llama::turn_stop_ids;
use edgenlu_models::{Bert, GgufFile, GgufWriter, MetaValue};
use edgenlu_tests::{datasets_dir, golden_lines, hostile_limits, require_model, runtime, store};
use std::sync::Arc;
use std::time::Duration;

/// Largest difference allowed between an embedding through wasi:nn and the bundled skill's:
/// both run the same ops in the same order on the same kernels, so they should agree to the
/// last bit; this leaves room only for a different summation order in a future kernel.
const EMBEDDING_TOL: f32 = 1e-6;

/// Every SNIPS test text with this step (700 texts: 175 compared).
const SNIPS_STEP: usize = 4;

fn nn_component(
    component: components::Component,
    models: &[&str],
    generate: bool,
    limits: Limits,
) -> NnComponent {
    runtime()
        .load_nn_component(
            component.name,
            ComponentSpec {
                source: embedded(component),
                grants: Grants {
                    models: models.iter().map(|m| m.to_string()).collect(),
                    config: Default::default(),
                    limits,
                    generate,
                },
            },
        )
        .expect("loading a wasi:nn component")
}

fn example(models: &[&str], generate: bool) -> NnComponent {
    nn_component(components::WASI_NN_EXAMPLE, models, generate, chat_limits())
}

#[derive(serde::Deserialize)]
struct Example {
    text: String,
}

#[test]
fn embeddings_equal_the_bundled_skills_on_snips_test_texts() {
    require_model(DEFAULT_ENCODER);
    let texts: Vec<String> = std::fs::read_to_string(datasets_dir().join("snips/test.jsonl"))
        .expect("the SNIPS test set")
        .lines()
        .step_by(SNIPS_STEP)
        .map(|l| serde_json::from_str::<Example>(l).unwrap().text)
        .collect();
    assert!(texts.len() >= 150, "{} texts", texts.len());
    let limits = Limits {
        deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let skill = runtime()
        .load_skill(intents_skill(DEFAULT_ENCODER, None, limits))
        .unwrap();
    let guest = example(&[DEFAULT_ENCODER], false);
    let ids = skill.tokenize(&texts).unwrap();
    let mut worst = (0f32, String::new());
    for (text, ids) in texts.iter().zip(&ids) {
        let bundled = skill.embed(text).unwrap();
        let ours = guest
            .embed(DEFAULT_ENCODER, ids)
            .unwrap()
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(ours.len(), bundled.len(), "{text:?}");
        let diff = ours
            .iter()
            .zip(&bundled)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        if diff >= worst.0 {
            worst = (diff, text.clone());
        }
    }
    eprintln!(
        "{} texts: largest |difference| {:e} ({:?})",
        texts.len(),
        worst.0,
        worst.1
    );
    assert!(worst.0 <= EMBEDDING_TOL, "{worst:?}");
}

#[derive(serde::Deserialize)]
struct Greedy {
    prompt: String,
}

/// The ids the chat skill stops at.
fn stop_ids() -> Vec<u32> {
    let file = GgufFile::open(&store().path_for(DEFAULT_DECODER).unwrap()).unwrap();
    turn_stop_ids(&file)
}

#[test]
fn greedy_continuations_equal_the_chat_skills_tokens_on_the_golden_prompts() {
    require_model(DEFAULT_DECODER);
    let chat = runtime()
        .load_skill(chat_skill(DEFAULT_DECODER, chat_limits()))
        .unwrap();
    let guest = example(&[DEFAULT_DECODER], true);
    let stop = stop_ids();
    let golden: Vec<Greedy> = golden_lines("llama_greedy.jsonl");
    assert!(golden.len() >= 20);
    for g in &golden {
        let request = ChatRequest {
            prompt: g.prompt.clone(),
            template: false,
            system: None,
            max_tokens: 32,
            sampling: SamplingParams::GREEDY,
            forward: Forward::Fused,
            constraint: None,
        };
        let reply = chat.chat(&request, None).unwrap();
        let ours = guest
            .generate(DEFAULT_DECODER, &reply.prompt_ids, 32, &stop)
            .unwrap()
            .unwrap_or_else(|e| panic!("{:?}: {e}", g.prompt));
        assert_eq!(ours, reply.ids, "{:?}", g.prompt);
    }
}

fn hostile(models: &[&str], generate: bool) -> NnComponent {
    nn_component(
        components::WASI_NN_HOSTILE,
        models,
        generate,
        hostile_limits(Duration::from_secs(20)),
    )
}

/// What the host answered `attack` with `model`, failing on a host error.
fn answer(guest: &NnComponent, attack: &str, model: &str) -> String {
    guest
        .attack(attack, model)
        .unwrap_or_else(|e| panic!("{attack}: the host failed: {e}"))
        .unwrap_or_else(|e| panic!("{attack}: the guest failed: {e}"))
}

#[test]
fn names_not_granted_and_paths_are_not_found() {
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let guest = hostile(&[DEFAULT_ENCODER], false);
    assert!(answer(&guest, "load-by-name", DEFAULT_ENCODER).starts_with("ok"));
    let encoder_path = store().path_for(DEFAULT_ENCODER).unwrap();
    let decoder_path = store().path_for(DEFAULT_DECODER).unwrap();
    for name in [
        DEFAULT_DECODER.to_string(),
        encoder_path.display().to_string(),
        decoder_path.display().to_string(),
        format!("../{DEFAULT_ENCODER}"),
        format!("{DEFAULT_ENCODER}/../{DEFAULT_DECODER}"),
        format!("./{DEFAULT_ENCODER}"),
        "/etc/passwd".to_string(),
        String::new(),
    ] {
        let got = answer(&guest, "load-by-name", &name);
        assert!(got.starts_with("not-found:"), "{name:?}: {got}");
    }
    // A granted decoder without the generate capability is not found either.
    let guest = hostile(&[DEFAULT_ENCODER, DEFAULT_DECODER], false);
    let got = answer(&guest, "load-by-name", DEFAULT_DECODER);
    assert!(got.starts_with("not-found:"), "{got}");
    let guest = hostile(&[DEFAULT_DECODER], true);
    assert!(answer(&guest, "load-by-name", DEFAULT_DECODER).starts_with("ok"));
}

/// The host's error for an attack that must end in a budget trap.
fn trapped(guest: &NnComponent, attack: &str, model: &str) -> String {
    match guest.attack(attack, model) {
        Err(SkillError::Guest(WitError::BudgetExceeded(why))) => why,
        other => panic!("{attack}: expected a budget trap, got {other:?}"),
    }
}

#[test]
fn hostile_wasi_nn_calls_end_in_typed_errors_or_a_budget_trap() {
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let guest = hostile(&[DEFAULT_ENCODER, DEFAULT_DECODER], true);
    let runtime_error = |attack: &str, model: &str, says: &str| {
        let got = answer(&guest, attack, model);
        assert!(
            got.starts_with("runtime-error:") && got.contains(says),
            "{attack} on {model}: {got}"
        );
    };
    for model in [DEFAULT_ENCODER, DEFAULT_DECODER] {
        for attack in [
            "no-inputs",
            "unknown-input",
            "twice",
            "wrong-shape",
            "huge-dims",
            "short-data",
            "negative-id",
            "id-past-vocab",
            "too-long",
        ] {
            runtime_error(attack, model, "");
        }
        runtime_error("wrong-type", model, "Unsupported tensor type");
        runtime_error("load-large", model, "Not enough memory");
        runtime_error("load-garbage", model, "");
    }
    runtime_error("bad-mask", DEFAULT_ENCODER, "");
    let got = answer(&guest, "load-onnx", DEFAULT_ENCODER);
    assert!(got.starts_with("invalid-encoding:"), "{got}");
    // A refused compute leaves the context working.
    let got = answer(&guest, "then-valid", DEFAULT_ENCODER);
    assert!(
        got.starts_with("runtime-error: Unsupported tensor type")
            && got.ends_with("ok: embedding,token_states"),
        "{got}"
    );
    // The decoder's cache fills up to what its budget holds, then says no; zero tokens reset it.
    runtime_error("fill-cache", DEFAULT_DECODER, "");
    assert_eq!(
        answer(&guest, "reset", DEFAULT_DECODER),
        "ok: logits / ok:  / ok: logits"
    );
    // Each decoder context's cache takes most of the host memory left, so after a few
    // (each smaller than the one before) the next is refused.
    let got = answer(&guest, "many-contexts", DEFAULT_DECODER);
    let (made, then) = got.split_once(" contexts, then ").expect(&got);
    assert!(
        (1..16).contains(&made.parse::<usize>().unwrap())
            && then.starts_with("runtime-error: Not enough memory"),
        "{got}"
    );
    // Encoder contexts cost no memory: the handle table's bound ends the flood.
    let why = trapped(&guest, "many-contexts", DEFAULT_ENCODER);
    assert!(why.contains("handles"), "{why}");
    let why = trapped(&guest, "many-tensors", DEFAULT_ENCODER);
    assert!(why.contains("host memory"), "{why}");
    // After all of it, the same component still embeds.
    let example = nn_component(
        components::WASI_NN_EXAMPLE,
        &[DEFAULT_ENCODER],
        false,
        hostile_limits(Duration::from_secs(20)),
    );
    let embedding = example
        .embed(DEFAULT_ENCODER, &[101, 7592, 102])
        .unwrap()
        .unwrap();
    assert_eq!(embedding.len(), 384);
}

#[test]
fn a_long_prefill_stops_at_the_deadline_inside_compute() {
    require_model(DEFAULT_DECODER);
    // Room for a cache of the whole context (~370 MiB for SmolLM2), so only the deadline can
    // stop the prefill of 8,000 tokens (tens of seconds here).
    let deadline = Duration::from_secs(1);
    let limits = Limits {
        host_memory: 1 << 30,
        ..hostile_limits(deadline)
    };
    let guest = nn_component(
        components::WASI_NN_HOSTILE,
        &[DEFAULT_DECODER],
        true,
        limits,
    );
    let start = std::time::Instant::now();
    let result = guest.attack("long-prompt", DEFAULT_DECODER);
    let took = start.elapsed();
    match &result {
        Ok(Ok(answer)) if answer.starts_with("runtime-error:") => {}
        Err(SkillError::Deadline(_)) => {}
        other => panic!("expected the deadline, got {other:?}"),
    }
    assert!(
        took <= deadline + Duration::from_secs(3),
        "the prefill ran {took:?} against a deadline of {deadline:?}"
    );
    eprintln!("long-prompt ended after {took:?}: {result:?}");
}

/// A BERT encoder small enough for `load` (a few KB): every hyperparameter and weight of
/// all-MiniLM's layout, one layer of width 8, weights from a fixed pseudo-random sequence.
fn tiny_bert() -> Vec<u8> {
    let (dim, ffn, context, vocab) = (8usize, 16usize, 16usize, 32usize);
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("bert".into()));
    for (key, value) in [
        ("bert.embedding_length", dim),
        ("bert.feed_forward_length", ffn),
        ("bert.context_length", context),
        ("bert.block_count", 1),
        ("bert.attention.head_count", 2),
    ] {
        w.add_metadata(key, MetaValue::U32(value as u32));
    }
    w.add_metadata("bert.attention.layer_norm_epsilon", MetaValue::F32(1e-12));
    let mut state = 0x2545_f491_u32;
    let mut values = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((state >> 8) as f32 / (1u32 << 24) as f32 - 0.5).to_le_bytes()
            })
            .collect()
    };
    let mut add = |name: &str, shape: &[usize]| {
        let data = values(shape.iter().product());
        w.add_tensor(name, DType::F32, shape, data).unwrap();
    };
    add("token_embd.weight", &[vocab, dim]);
    add("position_embd.weight", &[context, dim]);
    add("token_types.weight", &[2, dim]);
    for name in [
        "token_embd_norm",
        "blk.0.attn_output_norm",
        "blk.0.layer_output_norm",
    ] {
        add(&format!("{name}.weight"), &[dim]);
        add(&format!("{name}.bias"), &[dim]);
    }
    for (name, rows, cols) in [
        ("attn_q", dim, dim),
        ("attn_k", dim, dim),
        ("attn_v", dim, dim),
        ("attn_output", dim, dim),
        ("ffn_up", ffn, dim),
        ("ffn_down", dim, ffn),
    ] {
        add(&format!("blk.0.{name}.weight"), &[rows, cols]);
        add(&format!("blk.0.{name}.bias"), &[rows]);
    }
    w.to_bytes().unwrap()
}

#[test]
fn a_small_encoder_loaded_from_bytes_embeds_as_the_native_pass() {
    let bytes = tiny_bert();
    assert!(
        bytes.len() <= edgenlu::nn::MAX_LOAD_BYTES,
        "{} bytes",
        bytes.len()
    );
    let ids = [1, 7, 3, 31, 2];
    let native = Bert::new(Arc::new(GgufFile::from_bytes(bytes.clone()).unwrap()))
        .unwrap()
        .encode(&ids, &|| false)
        .unwrap()
        .embedding;
    let guest = nn_component(
        components::WASI_NN_EXAMPLE,
        &[],
        false,
        hostile_limits(Duration::from_secs(20)),
    );
    let ours = guest.embed_loaded(&bytes, &ids).unwrap().unwrap();
    assert_eq!(ours, native);
    // An id past this vocabulary of 32 is refused, not read out of bounds.
    let refused = guest.embed_loaded(&bytes, &[1, 32]).unwrap().unwrap_err();
    assert!(refused.starts_with("runtime-error:"), "{refused}");
}
