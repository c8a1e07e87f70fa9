//! Greedy continuation with the fused llama forward pass, straight from a GGUF file:
//! `cargo run --release -p edgenlu-models --example llama_greedy -- MODEL.gguf 32 504 3575 282 4649 314`
//! prints the generated token ids and the decode speed.

use std::sync::Arc;

use edgenlu_models::{GgufFile, Llama, Sampler, Sampling};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: llama_greedy MODEL.gguf COUNT PROMPT_IDS...")?;
    let count: usize = args.next().ok_or("missing COUNT")?.parse()?;
    let prompt: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let model = Llama::new(Arc::new(GgufFile::open(path.as_ref())?))?;
    let mut cache = model.new_cache(prompt.len() + count)?;
    let mut logits = vec![0f32; model.config().vocab];
    let mut sampler = Sampler::new(Sampling::GREEDY)?;
    let start = std::time::Instant::now();
    model.forward(&prompt, &mut cache, &mut logits, &|| false)?;
    let prefill = start.elapsed();
    let mut ids = Vec::new();
    let start = std::time::Instant::now();
    for _ in 0..count {
        let next = sampler.sample(&logits).ok_or("no token")?;
        if std::env::var_os("TOP2").is_some() {
            let mut l: Vec<(f32, usize)> = logits.iter().copied().zip(0..).collect();
            l.sort_by(|a, b| b.0.total_cmp(&a.0));
            eprintln!("{:?}", &l[..3]);
        }
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
