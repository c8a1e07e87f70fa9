//! `edgenlu bench constrained`: what enforcing a constraint costs SmolLM2's decoding. The
//! bundled chat skill (fused pass, greedy, one thread) answers the same prompts without and
//! with a JSON schema, alternating, several rounds; decode tok/s of each (the host's decode
//! time: the forward pass and choosing the token, the constraint's mask included) and their
//! ratio, with the one-time cost of building the model's token environment (see
//! [`super::BenchCommand::Constrained`]).

use anyhow::{Context, Result};
use edgenlu::bundled::{self, DEFAULT_DECODER};
use edgenlu::{ChatRequest, Constraint, Skill};
use edgenlu_kernels::active_variant;
use edgenlu_kernels::dispatch::set_max_threads;
use edgenlu_models::store::ModelStore;
use std::path::Path;
use std::time::Instant;

/// Prompts asking for the kind of record the default schema describes.
const PROMPTS: &[&str] = &[
    "Describe a pet and its owner as JSON.",
    "Give me a JSON record of a dog that lives in Paris.",
    "Invent a cat with three tricks, as JSON.",
    "Write JSON about a parrot and who owns it.",
];

/// The schema timed unless `--json-schema` gives one: enums, a nested object, an array and
/// strings with length limits.
const DEFAULT_SCHEMA: &str = r#"{"type": "object", "properties": {
  "name": {"type": "string", "minLength": 2, "maxLength": 12},
  "kind": {"enum": ["cat", "dog", "parrot", "rabbit"]},
  "age": {"type": "integer", "minimum": 0, "maximum": 30},
  "owner": {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20},
    "city": {"type": "string", "minLength": 1, "maxLength": 20}},
    "required": ["name", "city"], "additionalProperties": false},
  "tricks": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 16},
    "minItems": 1, "maxItems": 3}},
  "required": ["name", "kind", "age", "owner", "tricks"], "additionalProperties": false}"#;

/// Rounds over the prompts (each round: every prompt free, then constrained).
const ROUNDS: usize = 3;

/// Decode tokens (past each reply's first) and decode seconds of one side.
#[derive(Default)]
struct Side {
    tokens: u64,
    seconds: f64,
}

impl Side {
    fn add(&mut self, r: &edgenlu::ChatResponse) {
        self.tokens += u64::from(r.usage.generated_tokens.saturating_sub(1));
        self.seconds += r.usage.decode_micros as f64 / 1e6;
    }

    fn rate(&self) -> f64 {
        self.tokens as f64 / self.seconds
    }
}

fn request(prompt: &str, tokens: u32, constraint: Option<Constraint>) -> ChatRequest {
    ChatRequest {
        constraint,
        ..ChatRequest::greedy(prompt, tokens)
    }
}

/// Runs the bench: `schema` (a file) or the default one, `tokens` at most per reply.
pub fn run(store: &ModelStore, schema: Option<&Path>, tokens: u32, json: bool) -> Result<()> {
    let schema = match schema {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => DEFAULT_SCHEMA.to_string(),
    };
    let rt = crate::runtime(store.clone())?;
    let started = Instant::now();
    let file = rt.catalog().get(DEFAULT_DECODER)?;
    rt.catalog().constraint_vocab(&file)?;
    let vocab_ms = started.elapsed().as_secs_f64() * 1e3;
    let skill: Skill =
        rt.load_skill(bundled::chat_skill(DEFAULT_DECODER, bundled::chat_limits()))?;
    set_max_threads(1);
    let constraint = || Some(Constraint::JsonSchema(schema.clone()));
    // Warm-up: compiled code, weights paged in, the schema compiled once.
    skill.chat(&request(PROMPTS[0], 8, None), None)?;
    skill.chat(&request(PROMPTS[0], 8, constraint()), None)?;
    let (mut free, mut constrained) = (Side::default(), Side::default());
    let mut valid = 0;
    for _ in 0..ROUNDS {
        for prompt in PROMPTS {
            free.add(&skill.chat(&request(prompt, tokens, None), None)?);
            let r = skill.chat(&request(prompt, tokens, constraint()), None)?;
            valid += usize::from(serde_json::from_str::<serde_json::Value>(&r.text).is_ok());
            constrained.add(&r);
        }
    }
    set_max_threads(0);
    let runs = ROUNDS * PROMPTS.len();
    let doc = serde_json::json!({
        "model": DEFAULT_DECODER,
        "variant": active_variant().name(),
        "threads": 1,
        "max_tokens": tokens,
        "replies_per_side": runs,
        "token_environment_ms": vocab_ms,
        "free_decode_tokens_per_s": free.rate(),
        "constrained_decode_tokens_per_s": constrained.rate(),
        "constrained_over_free": constrained.rate() / free.rate(),
        "free_tokens": free.tokens,
        "constrained_tokens": constrained.tokens,
        "constrained_replies_that_parse": valid,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{DEFAULT_DECODER}, variant {}, 1 thread, greedy, {runs} replies per side",
        active_variant()
    );
    println!(
        "free:        {:>7.1} decode tok/s ({} tokens)",
        free.rate(),
        free.tokens
    );
    println!(
        "constrained: {:>7.1} decode tok/s ({} tokens; {valid}/{runs} replies parse as JSON)",
        constrained.rate(),
        constrained.tokens
    );
    println!(
        "constrained / free: {:.3}x; token environment built once per model in {vocab_ms:.0} ms",
        constrained.rate() / free.rate()
    );
    Ok(())
}
