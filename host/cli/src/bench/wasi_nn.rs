//! `edgenlu bench wasi-nn`: SmolLM2 decode speed through the standard `wasi:nn` (the guest
//! `guest/wasi-nn-example`, its greedy loop in Wasm, one `compute` per token) beside the
//! `llm` interface (the bundled chat skill, fused pass, ChatML prompts), same model, prompt
//! ids, stop ids and
//! thread count, in one run (see [`super::BenchCommand::WasiNn`]).

use super::GENERATE_PROMPTS;
use anyhow::{anyhow, Result};
use edgenlu::bundled::{self, components};
use edgenlu::{ChatRequest, ComponentSpec, Grants, NnComponent, Skill};
use edgenlu_kernels::active_variant;
use edgenlu_kernels::dispatch::set_max_threads;
use edgenlu_models::llama::turn_stop_ids;
use edgenlu_models::store::ModelStore;
use std::time::Instant;

/// Decode figures of one path at one thread count.
#[derive(serde::Serialize)]
struct Decode {
    path: &'static str,
    threads: usize,
    /// Tokens generated past the first, over every prompt.
    tokens: usize,
    decode_tokens_per_s: f64,
}

/// One generation: the ids and the wall time.
type Timed = (Vec<u32>, f64);

/// What both paths are asked: `max_tokens` greedy tokens after `prompt` (its ids).
trait Generator {
    fn generate(&self, prompt: &str, ids: &[u32], max_tokens: u32) -> Result<Timed>;
}

/// The `llm` interface, through the chat skill (the prompt in its chat template).
struct Llm<'a>(&'a Skill);

impl Llm<'_> {
    /// The chat skill's greedy reply to `prompt`.
    fn reply(&self, prompt: &str, max_tokens: u32) -> Result<edgenlu::ChatResponse> {
        Ok(self
            .0
            .chat(&ChatRequest::greedy(prompt, max_tokens), None)?)
    }
}

impl Generator for Llm<'_> {
    fn generate(&self, prompt: &str, _ids: &[u32], max_tokens: u32) -> Result<Timed> {
        let start = Instant::now();
        let reply = self.reply(prompt, max_tokens)?;
        Ok((reply.ids, start.elapsed().as_secs_f64()))
    }
}

/// The wasi:nn guest, on the same ids and stop ids.
struct WasiNn<'a> {
    guest: &'a NnComponent,
    stop: Vec<u32>,
}

impl Generator for WasiNn<'_> {
    fn generate(&self, _prompt: &str, ids: &[u32], max_tokens: u32) -> Result<Timed> {
        let start = Instant::now();
        let out = self
            .guest
            .generate(bundled::DEFAULT_DECODER, ids, max_tokens, &self.stop)?
            .map_err(|e| anyhow!("the wasi:nn guest: {e}"))?;
        Ok((out, start.elapsed().as_secs_f64()))
    }
}

/// Decode speed of `path` over `prompts`: per prompt, a generation of `tokens` minus one of
/// a single token (the prefill and the first token), so only the decode steps remain.
fn decode(
    name: &'static str,
    path: &dyn Generator,
    prompts: &[(String, Vec<u32>)],
    threads: usize,
    tokens: u32,
) -> Result<(Decode, Vec<Vec<u32>>)> {
    set_max_threads(threads);
    let (mut steps, mut seconds, mut outputs) = (0, 0.0, Vec::new());
    for (text, ids) in prompts {
        let (_, first) = path.generate(text, ids, 1)?;
        let (out, all) = path.generate(text, ids, tokens)?;
        steps += out.len().saturating_sub(1);
        seconds += (all - first).max(0.0);
        outputs.push(out);
    }
    set_max_threads(0);
    Ok((
        Decode {
            path: name,
            threads,
            tokens: steps,
            decode_tokens_per_s: steps as f64 / seconds,
        },
        outputs,
    ))
}

/// Runs the comparison and prints it (a table, or JSON).
pub(super) fn run(store: &ModelStore, json: bool, tokens: u32) -> Result<()> {
    let model = bundled::DEFAULT_DECODER;
    let rt = crate::runtime(store.clone())?;
    let limits = bundled::chat_limits();
    let chat = rt.load_skill(bundled::chat_skill(model, limits.clone()))?;
    let guest = rt.load_nn_component(
        components::WASI_NN_EXAMPLE.name,
        ComponentSpec {
            source: bundled::embedded(components::WASI_NN_EXAMPLE),
            grants: Grants {
                models: vec![model.to_string()],
                config: Default::default(),
                limits,
                generate: true,
            },
        },
    )?;
    let file = edgenlu_models::GgufFile::open(&store.path_for(model)?)?;
    let nn = WasiNn {
        guest: &guest,
        stop: turn_stop_ids(&file),
    };
    // The guest gets the ids of the prompt as the chat skill renders it (ChatML).
    let prompts = GENERATE_PROMPTS
        .iter()
        .map(|p| Ok((p.to_string(), Llm(&chat).reply(p, 1)?.prompt_ids)))
        .collect::<Result<Vec<_>>>()?;
    // Warm-up: compiled components, the weights paged in.
    decode("warm-up", &Llm(&chat), &prompts[..1], 2, 4)?;
    decode("warm-up", &nn, &prompts[..1], 2, 4)?;
    let mut rows = Vec::new();
    for threads in [1, 2] {
        let (llm, llm_ids) = decode(
            "llm (chat skill, fused)",
            &Llm(&chat),
            &prompts,
            threads,
            tokens,
        )?;
        let (wasi, nn_ids) = decode("wasi:nn (guest loop)", &nn, &prompts, threads, tokens)?;
        rows.push(serde_json::json!({
            "threads": threads,
            "same_tokens": llm_ids == nn_ids,
            "wasi_nn_over_llm": wasi.decode_tokens_per_s / llm.decode_tokens_per_s,
            "llm": llm,
            "wasi_nn": wasi,
        }));
    }
    if json {
        let doc = serde_json::json!({
            "model": model,
            "variant": active_variant().name(),
            "tokens_per_prompt": tokens,
            "prompts": GENERATE_PROMPTS,
            "results": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{model}: greedy decode, {tokens} tokens per prompt, {} prompts, variant {}",
        GENERATE_PROMPTS.len(),
        active_variant()
    );
    println!(
        "{:<28} {:>2} {:>8} {:>10}",
        "path", "t", "tokens", "decode/s"
    );
    for row in &rows {
        for key in ["llm", "wasi_nn"] {
            let d = &row[key];
            println!(
                "{:<28} {:>2} {:>8} {:>10.1}",
                d["path"].as_str().unwrap_or("?"),
                row["threads"],
                d["tokens"],
                d["decode_tokens_per_s"].as_f64().unwrap_or(f64::NAN)
            );
        }
        println!(
            "   {} thread(s): wasi:nn / llm {:.2}x, same tokens: {}",
            row["threads"],
            row["wasi_nn_over_llm"].as_f64().unwrap_or(f64::NAN),
            row["same_tokens"]
        );
    }
    Ok(())
}
