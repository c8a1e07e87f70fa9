//! A guest written against the standard `wasi:nn` alone: it embeds a sentence with an encoder
//! graph and continues a prompt greedily with a decoder graph, both found by name. It takes
//! and gives token ids: wasi:nn has no tokenizer.

wit_bindgen::generate!({
    path: "../../wit/wasi-nn-example",
    world: "example",
    generate_all,
});

mod nn;

use exports::edgenlu::wasi_nn_example::run::Guest;
use wasi::nn::graph::{self, ExecutionTarget, GraphEncoding};

struct Example;

/// The index of the first largest value.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

impl Guest for Example {
    fn embed(model: String, ids: Vec<u32>) -> Result<Vec<f32>, String> {
        let (_graph, context) = nn::open(&model)?;
        nn::compute(&context, &ids, "embedding")
    }

    fn embed_loaded(gguf: Vec<u8>, ids: Vec<u32>) -> Result<Vec<f32>, String> {
        let graph = graph::load(&[gguf], GraphEncoding::Autodetect, ExecutionTarget::Cpu)
            .map_err(nn::describe)?;
        let context = graph.init_execution_context().map_err(nn::describe)?;
        nn::compute(&context, &ids, "embedding")
    }

    fn generate(
        model: String,
        prompt: Vec<u32>,
        max_tokens: u32,
        stop: Vec<u32>,
    ) -> Result<Vec<u32>, String> {
        let (_graph, context) = nn::open(&model)?;
        let mut generated = Vec::new();
        let mut input = prompt;
        while generated.len() < max_tokens as usize {
            // The context keeps the KV cache: each compute continues the sequence.
            let next = argmax(&nn::compute(&context, &input, "logits")?);
            if stop.contains(&next) {
                break;
            }
            generated.push(next);
            input = vec![next];
        }
        Ok(generated)
    }
}

export!(Example);
