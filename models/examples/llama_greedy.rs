//! Greedy continuation with the fused llama forward pass, straight from a GGUF file, no Wasm:
//!
//! `cargo run --release -p edgenlu-models --example llama_greedy -- MODEL.gguf 32 504 3575 282 4649 314`
//!
//! prints the generated token ids as JSON, and prefill time and decode speed on stderr.
//! `--f32-activations` (first) keeps activations in f32 instead of quantizing them per block.

use std::sync::Arc;

use edgenlu_kernels::matmul::Activations;
use edgenlu_models::{GgufFile, Llama, Sampler, Sampling};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let f32_acts = args.next_if(|a| a == "--f32-activations").is_some();
    let path = args
        .next()
        .ok_or("usage: llama_greedy [--f32-activations] MODEL.gguf COUNT PROMPT_IDS...")?;
    let count: usize = args.next().ok_or("missing COUNT")?.parse()?;
    let prompt: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let mut model = Llama::new(Arc::new(GgufFile::open(path.as_ref())?))?;
    if f32_acts {
        model = model.with_activations(Activations::F32);
    }
    let mut cache = model.new_cache(prompt.len() + count)?;
    let mut logits = vec![0f32; model.config().vocab];
    let mut sampler = Sampler::new(Sampling::GREEDY)?;
    let start = std::time::Instant::now();
    model.forward(&prompt, &mut cache, &mut logits, &|| false)?;
    let prefill = start.elapsed();
    let mut ids = Vec::new();
    let start = std::time::Instant::now();
    for _ in 0..count {
        let next = sampler.sample(&mut logits).ok_or("no token")?;
        ids.push(next);
        model.forward(&[next], &mut cache, &mut logits, &|| false)?;
    }
    let decode = start.elapsed();
    println!("{ids:?}");
    eprintln!(
        "prefill {} tokens {:.1} ms; decode {:.1} tok/s",
        prompt.len(),
        prefill.as_secs_f64() * 1e3,
        count as f64 / decode.as_secs_f64()
    );
    Ok(())
}
