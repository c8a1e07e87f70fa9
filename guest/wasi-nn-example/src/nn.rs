//! Plain `wasi:nn` helpers, as any wasi:nn user writes them: token ids into an I32 tensor,
//! named outputs back into f32s, errors into "code: data".

use crate::wasi::nn::errors::{Error, ErrorCode};
use crate::wasi::nn::graph::{self, Graph};
use crate::wasi::nn::inference::GraphExecutionContext;
use crate::wasi::nn::tensor::{Tensor, TensorType};

/// A wasi:nn error as "code: data".
pub fn describe(e: Error) -> String {
    let code = match e.code() {
        ErrorCode::InvalidArgument => "invalid-argument",
        ErrorCode::InvalidEncoding => "invalid-encoding",
        ErrorCode::Timeout => "timeout",
        ErrorCode::RuntimeError => "runtime-error",
        ErrorCode::UnsupportedOperation => "unsupported-operation",
        ErrorCode::TooLarge => "too-large",
        ErrorCode::NotFound => "not-found",
        ErrorCode::Security => "security",
        ErrorCode::Unknown => "unknown",
    };
    format!("{code}: {}", e.data())
}

/// Token ids as the I32 tensor `[1, n]` the host's graphs take.
pub fn ids_tensor(ids: &[u32]) -> Tensor {
    let data: Vec<u8> = ids.iter().flat_map(|&i| (i as i32).to_le_bytes()).collect();
    Tensor::new(&[1, ids.len() as u32], TensorType::I32, &data)
}

/// The graph `model` and a fresh context on it.
pub fn open(model: &str) -> Result<(Graph, GraphExecutionContext), String> {
    let graph = graph::load_by_name(model).map_err(describe)?;
    let context = graph.init_execution_context().map_err(describe)?;
    Ok((graph, context))
}

/// Runs `context` on `ids` as `input_ids` and returns output `name` as f32s.
pub fn compute(
    context: &GraphExecutionContext,
    ids: &[u32],
    name: &str,
) -> Result<Vec<f32>, String> {
    let outputs = context
        .compute(vec![("input_ids".to_string(), ids_tensor(ids))])
        .map_err(describe)?;
    let (_, tensor) = outputs
        .into_iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("no output named {name}"))?;
    if tensor.ty() != TensorType::Fp32 {
        return Err(format!("{name} is not FP32"));
    }
    Ok(tensor
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
