//! Where the fast pass (quantized activations) parts from the float pass, per kernel variant,
//! layer by layer, on the golden prompts:
//!
//! `cargo run --release -p edgenlu-models --example llama_drift -- MODEL.gguf golden/llama_reference.jsonl golden/llama_greedy.jsonl`
//!
//! For every prompt of the reference file (float64 numpy first-step logits) and every variant
//! this CPU runs, it prints the residual stream's error after each block against the
//! f32-activation pass (itself within 1e-3 logits of float64), as a relative RMS over all
//! positions, and the first-step logits' error against float64 (max |Δ| and RMS, in logit
//! standard deviations) beside llama.cpp's own error on the same prompt (the greedy file's
//! `first_logits`). A summary per variant closes: median and worst over the prompts.
//! `--variant NAME` (first) runs that variant only.

use std::io::BufRead;
use std::sync::Arc;

use edgenlu_kernels::dispatch::with_variant;
use edgenlu_kernels::matmul::Activations;
use edgenlu_kernels::Variant;
use edgenlu_models::llama::{logit_error, median_and_worst};
use edgenlu_models::{GgufFile, Llama};

#[derive(serde::Deserialize)]
struct Reference {
    prompt: String,
    prompt_ids: Vec<u32>,
    logits: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Greedy {
    prompt: String,
    #[serde(default)]
    first_logits: Vec<f32>,
}

fn lines<T: serde::de::DeserializeOwned>(path: &str) -> Result<Vec<T>, Box<dyn std::error::Error>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    for line in file.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            out.push(serde_json::from_str(&line)?);
        }
    }
    Ok(out)
}

/// ‖a − b‖ / ‖b‖.
fn relative_rms(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// The first-step logits and the residual stream after every block.
type Trace = (Vec<f32>, Vec<Vec<f32>>);

/// Runs `ids` through `model`, keeping what [`Trace`] holds.
fn trace(model: &Llama, ids: &[u32]) -> Result<Trace, Box<dyn std::error::Error>> {
    let mut cache = model.new_cache(ids.len())?;
    let mut logits = vec![0f32; model.config().vocab];
    let mut states = Vec::new();
    model.forward_observed(ids, &mut cache, &mut logits, &|| false, &mut |_, x| {
        states.push(x.to_vec())
    })?;
    Ok((logits, states))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut variants = Variant::supported();
    if args.first().is_some_and(|a| a == "--variant") && args.len() > 1 {
        let name = args.drain(..2).nth(1).unwrap_or_default();
        let v = Variant::parse(&name).ok_or_else(|| format!("unknown variant {name:?}"))?;
        variants.retain(|&s| s == v);
    }
    let [model, reference, greedy] = args.as_slice() else {
        return Err(
            "usage: llama_drift [--variant NAME] MODEL.gguf llama_reference.jsonl llama_greedy.jsonl"
                .into(),
        );
    };
    let file = Arc::new(GgufFile::open(model.as_ref())?);
    let fast = Llama::new(file.clone())?;
    let exact = Llama::new(file)?.with_activations(Activations::F32);
    let reference: Vec<Reference> = lines(reference)?;
    let greedy: Vec<Greedy> = lines(greedy)?;
    let mut summary: Vec<(String, Vec<f64>, Vec<f64>)> = variants
        .iter()
        .map(|v| (v.name().to_string(), Vec::new(), Vec::new()))
        .collect();
    summary.push(("llama.cpp".into(), Vec::new(), Vec::new()));
    for r in &reference {
        let short: String = r.prompt.chars().take(40).collect();
        println!("\n{short:?} ({} tokens)", r.prompt_ids.len());
        let (_, exact_states) = with_variant(Variant::Scalar, || trace(&exact, &r.prompt_ids))??;
        for (v, (_, maxes, rmses)) in variants.iter().zip(summary.iter_mut()) {
            let (logits, states) = with_variant(*v, || trace(&fast, &r.prompt_ids))??;
            let (max, rms) = logit_error(&logits, &r.logits);
            maxes.push(max);
            rmses.push(rms);
            let layers: Vec<String> = states
                .iter()
                .zip(&exact_states)
                .map(|(a, b)| format!("{:.3}", relative_rms(a, b) * 100.0))
                .collect();
            println!(
                "  {:<9} logits max {max:.3} rms {rms:.3} std | residual % per block: {}",
                v.name(),
                layers.join(" ")
            );
        }
        if let Some(g) = greedy
            .iter()
            .find(|g| g.prompt == r.prompt && g.first_logits.len() == r.logits.len())
        {
            let (max, rms) = logit_error(&g.first_logits, &r.logits);
            let (_, maxes, rmses) = summary.last_mut().expect("llama.cpp row");
            maxes.push(max);
            rmses.push(rms);
            println!("  llama.cpp logits max {max:.3} rms {rms:.3} std");
        }
    }
    println!("\nfirst-step logits against float64, in logit std, over the prompts:");
    println!(
        "  {:<9} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "", "max: med", "worst", "rms: med", "worst", "prompts"
    );
    for (name, maxes, rmses) in summary {
        if maxes.is_empty() {
            continue;
        }
        let (max_median, max_worst) = median_and_worst(&maxes);
        let (rms_median, rms_worst) = median_and_worst(&rmses);
        println!(
            "  {name:<9} {max_median:>10.3} {max_worst:>10.3} {rms_median:>10.3} {rms_worst:>10.3} {:>8}",
            maxes.len()
        );
    }
    Ok(())
}
