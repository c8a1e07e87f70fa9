//! A guest attacking the host's `wasi:nn`, one attack per call (the tests name them): bad
//! tensors, oversized graphs, names that are not granted models, floods of handles. Each
//! returns "code: data" of the error the host answered with, or "ok: ..." if it let the call
//! through; the budgets end the floods with a trap.

wit_bindgen::generate!({
    path: "../../wit/wasi-nn-example",
    world: "hostile",
    generate_all,
});

#[path = "../../wasi-nn-example/src/nn.rs"]
mod nn;

use exports::edgenlu::wasi_nn_example::attack::Guest;
use nn::{describe, ids_tensor};
use wasi::nn::graph::{self, ExecutionTarget, GraphEncoding};
use wasi::nn::inference::GraphExecutionContext;
use wasi::nn::tensor::{Tensor, TensorType};

struct Hostile;

/// Computes `inputs` on `context`: "ok: <output names>" or the error.
fn compute_with(
    context: &GraphExecutionContext,
    inputs: Vec<(String, Tensor)>,
) -> Result<String, String> {
    match context.compute(inputs) {
        Ok(outputs) => Ok(format!(
            "ok: {}",
            outputs
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )),
        Err(e) => Ok(describe(e)),
    }
}

/// One input named `name` of type `ty`, `dims` and `data`.
fn input(name: &str, dims: &[u32], ty: TensorType, data: &[u8]) -> Vec<(String, Tensor)> {
    vec![(name.to_string(), Tensor::new(dims, ty, data))]
}

fn ids(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Attacks that need a context on `model`.
fn on_context(name: &str, model: &str) -> Result<String, String> {
    let (_graph, context) = nn::open(model)?;
    let c = &context;
    match name {
        "no-inputs" => compute_with(c, Vec::new()),
        "unknown-input" => compute_with(c, input("pixels", &[1, 1], TensorType::I32, &ids(&[1]))),
        "twice" => {
            let mut both = input("input_ids", &[1, 1], TensorType::I32, &ids(&[1]));
            both.push(("input_ids".into(), ids_tensor(&[2])));
            compute_with(c, both)
        }
        "wrong-type" => compute_with(c, input("input_ids", &[1, 2], TensorType::Fp32, &[0; 8])),
        "wrong-shape" => compute_with(c, input("input_ids", &[2, 3], TensorType::I32, &[0; 24])),
        "huge-dims" => compute_with(
            c,
            input("input_ids", &[1, u32::MAX], TensorType::I32, &ids(&[1, 2])),
        ),
        "short-data" => compute_with(c, input("input_ids", &[1, 4], TensorType::I32, &[0; 3])),
        "negative-id" => compute_with(
            c,
            input("input_ids", &[1, 2], TensorType::I32, &ids(&[1, -5])),
        ),
        "id-past-vocab" => compute_with(
            c,
            input("input_ids", &[1, 2], TensorType::I32, &ids(&[1, i32::MAX])),
        ),
        "too-long" => compute_with(c, vec![("input_ids".into(), ids_tensor(&vec![1; 100_000]))]),
        "bad-mask" => {
            let mut both = vec![("input_ids".into(), ids_tensor(&[101, 2000, 102]))];
            both.extend(input(
                "attention_mask",
                &[1, 3],
                TensorType::I32,
                &ids(&[0, 1, 1]),
            ));
            compute_with(c, both)
        }
        "then-valid" => {
            // A refused call first; the context must still answer the next one.
            let refused = compute_with(c, input("input_ids", &[1, 1], TensorType::Fp16, &[0; 2]))?;
            let fine = compute_with(c, vec![("input_ids".into(), ids_tensor(&[1, 2, 3]))])?;
            Ok(format!("{refused} / {fine}"))
        }
        "fill-cache" => {
            // A decoder's cache filled one compute after another, until the host says no.
            loop {
                let answer = compute_with(c, vec![("input_ids".into(), ids_tensor(&[1; 64]))])?;
                if !answer.starts_with("ok") {
                    return Ok(answer);
                }
            }
        }
        "long-prompt" => {
            // A prefill of 8,000 tokens: only the deadline inside the pass can cut it short.
            compute_with(c, vec![("input_ids".into(), ids_tensor(&vec![1; 8000]))])
        }
        "reset" => {
            let first = compute_with(c, vec![("input_ids".into(), ids_tensor(&[1, 2]))])?;
            let reset = compute_with(c, vec![("input_ids".into(), ids_tensor(&[]))])?;
            let again = compute_with(c, vec![("input_ids".into(), ids_tensor(&[1, 2]))])?;
            Ok(format!("{first} / {reset} / {again}"))
        }
        _ => Err(format!("no attack named {name}")),
    }
}

impl Guest for Hostile {
    fn run(name: String, model: String) -> Result<String, String> {
        match name.as_str() {
            "load-by-name" => Ok(match graph::load_by_name(&model) {
                Ok(_) => "ok: the graph loaded".into(),
                Err(e) => describe(e),
            }),
            "load-large" => Ok(
                match graph::load(
                    &[vec![0u8; 2 << 20]],
                    GraphEncoding::Ggml,
                    ExecutionTarget::Cpu,
                ) {
                    Ok(_) => "ok: the graph loaded".into(),
                    Err(e) => describe(e),
                },
            ),
            "load-garbage" => {
                let mut bytes = b"GGUF".to_vec();
                bytes.extend_from_slice(&[0xff; 4096]);
                Ok(
                    match graph::load(&[bytes], GraphEncoding::Autodetect, ExecutionTarget::Cpu) {
                        Ok(_) => "ok: the graph loaded".into(),
                        Err(e) => describe(e),
                    },
                )
            }
            "load-onnx" => Ok(
                match graph::load(&[vec![0u8; 16]], GraphEncoding::Onnx, ExecutionTarget::Cpu) {
                    Ok(_) => "ok: the graph loaded".into(),
                    Err(e) => describe(e),
                },
            ),
            "many-contexts" => {
                // Keeps every context until the host refuses one (or traps the flood).
                let graph = graph::load_by_name(&model).map_err(describe)?;
                let mut kept = Vec::new();
                loop {
                    match graph.init_execution_context() {
                        Ok(c) => kept.push(c),
                        Err(e) => {
                            return Ok(format!("{} contexts, then {}", kept.len(), describe(e)))
                        }
                    }
                }
            }
            "many-tensors" => {
                // 1 MiB tensors kept until the host's memory budget traps.
                let mut kept = Vec::new();
                loop {
                    kept.push(Tensor::new(
                        &[1, 1 << 18],
                        TensorType::Fp32,
                        &vec![0u8; 1 << 20],
                    ));
                }
            }
            _ => on_context(&name, &model),
        }
    }
}

export!(Hostile);
