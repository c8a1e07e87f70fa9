//! A structured host-call fuzzer's harness (used by `fuzz/fuzz_targets/host_calls.rs`): fuzz
//! input is decoded into a sequence of host calls — tensors, models, kernels — with arbitrary
//! arguments and handles (including dropped and forged ones), run against a fresh component
//! state, without Wasm in between. Any argument must end in `Ok` or a typed error; a panic
//! caught by the host's guard is reported as a finding, so the fuzzer sees it.

use crate::bindings::edgenlu::nlu::kernels::{Host as Kernels, HostKvCache, RopeLayout};
use crate::bindings::edgenlu::nlu::llm::{Constraint, HostGeneration, Options, Sampling};
use crate::bindings::edgenlu::nlu::models::HostModel;
use crate::bindings::edgenlu::nlu::tensors::HostTensor;
use crate::bindings::Dtype;
use crate::catalog::ModelCatalog;
use crate::error::HostError;
use crate::resources::Tensor;
use crate::resources::{Generation, KvCacheHandle, ModelHandle};
use crate::state::{ComponentState, HostPanic, Limits};
use edgenlu_kernels::formats::{quantize, DType};
use edgenlu_models::{GgufWriter, MetaValue, ModelStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Resource;

/// The model the harness grants: small weights of every format the kernels take.
const MODEL: &str = "fuzz-model";
/// A tiny llama (2 layers, dim 64, 2 heads over 1 kv head, vocabulary 64) for the decoder
/// calls: kv caches, generations.
const LLAMA: &str = "fuzz-llama";
const WEIGHTS: &[&str] = &[
    "w.f32",
    "w.f16",
    "w.q8_0",
    "labels",
    "missing",
    "../etc/passwd",
];

/// A model store with one small model, and the calls to run against it.
pub struct HostCallHarness {
    catalog: Arc<ModelCatalog>,
}

/// Reads fuzz bytes as small integers, yielding zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        // Mostly small values, sometimes the extremes that break size arithmetic.
        match self.u8() % 8 {
            0 => u32::MAX,
            1 => u32::MAX / 2 + 1,
            2 => 0,
            3 => u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()]),
            _ => self.u8() as u32 % 70,
        }
    }
    fn f32(&mut self) -> f32 {
        match self.u8() % 8 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => -1e30,
            _ => (self.u8() as f32 - 128.0) / 16.0,
        }
    }
    /// A short text of the fuzz bytes (lossy UTF-8), for constraints.
    fn text(&mut self) -> String {
        let n = (self.u8() as usize % 24).min(self.0.len());
        let (text, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(text).into_owned()
    }
    /// No constraint, or one of each kind over fuzzed text.
    fn constraint(&mut self) -> Option<Constraint> {
        match self.u8() % 4 {
            0 => None,
            1 => Some(Constraint::JsonSchema(self.text())),
            2 => Some(Constraint::Lark(self.text())),
            _ => Some(Constraint::Regex(self.text())),
        }
    }
    fn shape(&mut self) -> Vec<u32> {
        let rank = self.u8() % 6;
        (0..rank).map(|_| self.u32()).collect()
    }
}

impl HostCallHarness {
    /// Writes the harness's model into a store at `dir`.
    pub fn new(dir: &Path) -> HostCallHarness {
        let store = ModelStore::at(dir).expect("fuzz store");
        let path = store.path_for(MODEL).expect("fuzz model path");
        let values: Vec<f32> = (0..64 * 32)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", MetaValue::String("fuzz".into()));
        for (name, dtype) in [
            ("w.f32", DType::F32),
            ("w.f16", DType::F16),
            ("w.q8_0", DType::Q8_0),
        ] {
            let mut bytes = Vec::new();
            quantize(dtype, &values, &mut bytes).expect("quantize");
            w.add_tensor(name, dtype, &[64, 32], bytes).expect("tensor");
        }
        let labels: Vec<u8> = (0..16i32).flat_map(|i| i.to_le_bytes()).collect();
        w.add_tensor("labels", DType::I32, &[16], labels)
            .expect("tensor");
        w.write(&path).expect("writing the fuzz model");
        store
            .record(MODEL, "fuzzing harness")
            .expect("recording the fuzz model");
        tiny_llama()
            .write(&store.path_for(LLAMA).expect("fuzz llama path"))
            .expect("writing the fuzz llama");
        store
            .record(LLAMA, "fuzzing harness")
            .expect("recording the fuzz llama");
        HostCallHarness {
            catalog: Arc::new(ModelCatalog::new(store)),
        }
    }

    /// Decodes `data` into host calls and runs them; returns how many succeeded. Panics only
    /// on a host bug.
    pub fn run(&self, data: &[u8]) -> usize {
        let limits = Limits {
            host_memory: 4 << 20,
            handles: 64,
            max_output_elems: 1 << 16,
            deadline: Duration::from_secs(5),
            ..Limits::default()
        };
        let mut s = ComponentState::new(
            "fuzz".into(),
            self.catalog.clone(),
            vec![MODEL.into(), LLAMA.into()],
            Default::default(),
            limits.clone(),
            std::sync::Arc::new(crate::log_rate::LogRate::for_limits(&limits)),
        );
        let mut input = Input(data);
        let mut tensors: Vec<Resource<Tensor>> = Vec::new();
        let mut models: Vec<Resource<ModelHandle>> = Vec::new();
        let mut caches: Vec<Resource<KvCacheHandle>> = Vec::new();
        let mut generations: Vec<Resource<Generation>> = Vec::new();
        let mut succeeded = 0;
        for _ in 0..64 {
            if input.0.is_empty() {
                break;
            }
            let op = input.u8() % 32;
            // Handles: one the guest holds, or a forged rep (stale, foreign or never issued).
            let t = |input: &mut Input| -> Resource<Tensor> {
                let i = input.u8() as usize;
                match tensors.get(i % tensors.len().max(1)) {
                    Some(r) if i < 200 => Resource::new_borrow(r.rep()),
                    _ => Resource::new_borrow(input.u32()),
                }
            };
            let result: Result<(), HostError> = match op {
                0 => {
                    let dtype =
                        [Dtype::F32, Dtype::I32, Dtype::Q80, Dtype::F16][input.u8() as usize % 4];
                    let shape = input.shape();
                    s.zeros(dtype, shape).map(|r| tensors.push(r))
                }
                1 => {
                    let shape = input.shape();
                    let n = input.u8() as usize * 4;
                    let data = (0..n).map(|_| input.f32()).collect();
                    HostTensor::from_f32(&mut s, shape, data).map(|r| tensors.push(r))
                }
                2 => {
                    let shape = input.shape();
                    let n = input.u8() as usize;
                    let data = (0..n).map(|_| input.u32() as i32).collect();
                    s.from_i32(shape, data).map(|r| tensors.push(r))
                }
                3 => {
                    let (out, x, w) = (t(&mut input), t(&mut input), t(&mut input));
                    let bias = (input.u8() % 2 == 0).then(|| t(&mut input));
                    s.matmul(out, x, w, bias)
                }
                4 => {
                    let (out, table, ids) = (t(&mut input), t(&mut input), t(&mut input));
                    s.embed(out, table, ids)
                }
                5 => {
                    let (out, a, b) = (t(&mut input), t(&mut input), t(&mut input));
                    s.add(out, a, b)
                }
                6 => {
                    let (out, x, g, b) =
                        (t(&mut input), t(&mut input), t(&mut input), t(&mut input));
                    let eps = input.f32();
                    s.layer_norm(out, x, g, b, eps)
                }
                7 => s.gelu(t(&mut input)),
                8 => s.softmax(t(&mut input)),
                9 => {
                    let (out, q, k, v) =
                        (t(&mut input), t(&mut input), t(&mut input), t(&mut input));
                    let (heads, kv_heads, causal) = (input.u32(), input.u32(), input.u8() % 2 == 0);
                    s.attention(out, q, k, v, heads, kv_heads, causal)
                }
                10 => {
                    let (out, x) = (t(&mut input), t(&mut input));
                    let count = input.u32();
                    s.mean_pool(out, x, count)
                }
                11 => s.l2_normalize(t(&mut input)),
                12 => {
                    let (index, query) = (t(&mut input), t(&mut input));
                    let k = input.u32();
                    s.nn_search(index, query, k).map(drop)
                }
                13 => s.argmax(t(&mut input)).map(drop),
                14 => {
                    let r = t(&mut input);
                    let (first, count) = (input.u32(), input.u32());
                    s.read_f32(r, first, count).map(drop)
                }
                15 => {
                    let r = t(&mut input);
                    let first = input.u32();
                    let n = input.u8() as usize;
                    let data = (0..n).map(|_| input.f32()).collect();
                    s.write_f32(r, first, data)
                }
                16 => {
                    let r = t(&mut input);
                    // Dropping a handle the guest does not own traps; anything else must not.
                    let owned = tensors.iter().position(|h| h.rep() == r.rep());
                    match owned {
                        Some(i) => {
                            let h = tensors.swap_remove(i);
                            HostTensor::drop(&mut s, Resource::new_own(h.rep()))
                                .map_err(HostError::Trap)
                        }
                        None => Ok(()),
                    }
                }
                17 => {
                    let name = [MODEL, LLAMA, "all-minilm-l6-v2.q8_0", "../fuzz-model", ""]
                        [input.u8() as usize % 5];
                    HostModel::open(&mut s, name.to_string()).map(|m| models.push(m))
                }
                18 => match models.first() {
                    Some(m) => {
                        let name = WEIGHTS[input.u8() as usize % WEIGHTS.len()];
                        s.weight(Resource::new_borrow(m.rep()), name.to_string())
                            .map(|r| tensors.push(r))
                    }
                    None => Ok(()),
                },
                19 => {
                    let (out, x, w) = (t(&mut input), t(&mut input), t(&mut input));
                    let eps = input.f32();
                    s.rms_norm(out, x, w, eps)
                }
                20 => {
                    let x = t(&mut input);
                    let (heads, pos, base) = (input.u32(), input.u32(), input.f32());
                    let layout =
                        [RopeLayout::Interleaved, RopeLayout::Halves][input.u8() as usize % 2];
                    s.rope(x, heads, pos, base, layout)
                }
                21 => s.silu(t(&mut input)),
                22 => {
                    let (gate, up) = (t(&mut input), t(&mut input));
                    s.swiglu(gate, up)
                }
                23 => {
                    let (out, a, b) = (t(&mut input), t(&mut input), t(&mut input));
                    s.mul(out, a, b)
                }
                24 => {
                    let x = t(&mut input);
                    let factor = input.f32();
                    s.scale(x, factor)
                }
                25 => {
                    let (layers, capacity, cols) = (input.u32(), input.u32(), input.u32());
                    s.create(layers, capacity, cols).map(|c| caches.push(c))
                }
                26 => {
                    let cache = pick(&mut input, &caches);
                    let layer = input.u32();
                    let (out, q, k, v) =
                        (t(&mut input), t(&mut input), t(&mut input), t(&mut input));
                    let (heads, kv_heads) = (input.u32(), input.u32());
                    s.attend(cache, layer, out, q, k, v, heads, kv_heads)
                }
                27 => {
                    let cache = pick(&mut input, &caches);
                    let n = input.u32();
                    HostKvCache::advance(&mut s, cache, n)
                }
                28 => match models.get(input.u8() as usize % models.len().max(1)) {
                    Some(m) => {
                        let n = input.u8() as usize % 12;
                        let prompt = (0..n).map(|_| input.u32()).collect();
                        let opts = Options {
                            max_tokens: input.u32(),
                            stop: (0..input.u8() % 4).map(|_| input.u32()).collect(),
                            sampling: Sampling {
                                temperature: input.f32(),
                                top_k: input.u32(),
                                top_p: input.f32(),
                                seed: input.u32() as u64,
                                repeat_penalty: input.f32(),
                                repeat_last_n: input.u32(),
                            },
                            constraint: input.constraint(),
                        };
                        HostGeneration::start(&mut s, Resource::new_borrow(m.rep()), prompt, opts)
                            .map(|g| generations.push(g))
                    }
                    None => Ok(()),
                },
                29 => {
                    // No tokenizer is linked here, so a token's text cannot be had: a typed
                    // error, after the model has run.
                    let g = pick(&mut input, &generations);
                    s.next(g).map(drop)
                }
                30 => {
                    let g = pick(&mut input, &generations);
                    HostGeneration::cancel(&mut s, g).map_err(HostError::Trap)
                }
                _ => {
                    let shape = input.shape();
                    s.zeros(Dtype::F32, shape).map(|r| tensors.push(r))
                }
            };
            match result {
                Ok(()) => succeeded += 1,
                Err(HostError::Trap(e)) => {
                    if let Some(panic) = e.downcast_ref::<HostPanic>() {
                        panic!("{panic}");
                    }
                }
                Err(HostError::Guest(_)) => {}
            }
        }
        succeeded
    }
}

/// A borrow of one of `held`, or of a forged handle.
fn pick<T: 'static>(input: &mut Input, held: &[Resource<T>]) -> Resource<T> {
    let i = input.u8() as usize;
    match held.get(i % held.len().max(1)) {
        Some(r) if i < 200 => Resource::new_borrow(r.rep()),
        _ => Resource::new_borrow(input.u32()),
    }
}

/// The harness's tiny llama: every weight a llama pass reads, q4_1 matrices over a q8_0
/// embedding (as SmolLM2), values from a fixed pattern.
fn tiny_llama() -> GgufWriter {
    let (dim, ffn, vocab, layers, kv) = (64usize, 128usize, 64usize, 2usize, 32usize);
    let mut w = GgufWriter::new();
    let meta = [
        ("llama.embedding_length", dim),
        ("llama.feed_forward_length", ffn),
        ("llama.block_count", layers),
        ("llama.attention.head_count", 2),
        ("llama.attention.head_count_kv", 1),
        ("llama.context_length", 256),
    ];
    w.add_metadata("general.architecture", MetaValue::String("llama".into()));
    for (k, v) in meta {
        w.add_metadata(k, MetaValue::U32(v as u32));
    }
    let mut add = |name: String, dtype: DType, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 200.0)
            .collect();
        let mut bytes = Vec::new();
        quantize(dtype, &values, &mut bytes).expect("quantize");
        w.add_tensor(name, dtype, shape, bytes).expect("tensor");
    };
    add("token_embd.weight".into(), DType::Q8_0, &[vocab, dim]);
    add("output_norm.weight".into(), DType::F32, &[dim]);
    for l in 0..layers {
        let n = |what: &str| format!("blk.{l}.{what}.weight");
        add(n("attn_norm"), DType::F32, &[dim]);
        add(n("ffn_norm"), DType::F32, &[dim]);
        add(n("attn_q"), DType::Q4_1, &[dim, dim]);
        add(n("attn_k"), DType::Q4_1, &[kv, dim]);
        add(n("attn_v"), DType::Q4_1, &[kv, dim]);
        add(n("attn_output"), DType::Q4_1, &[dim, dim]);
        add(n("ffn_gate"), DType::Q4_1, &[ffn, dim]);
        add(n("ffn_up"), DType::Q4_1, &[ffn, dim]);
        add(n("ffn_down"), DType::Q4_1, &[dim, ffn]);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::HostCallHarness;

    /// The fuzz target's seed corpus runs clean without the fuzzer (and so in every test run),
    /// including a generation on the harness's tiny llama.
    #[test]
    fn seed_corpus_runs_clean() {
        let dir = std::env::temp_dir().join(format!("edgenlu-harness-{}", std::process::id()));
        let harness = HostCallHarness::new(&dir);
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/host_calls");
        let mut ran = 0;
        for entry in std::fs::read_dir(seeds).expect("the seed corpus") {
            let path = entry.unwrap().path();
            let ok = harness.run(&std::fs::read(&path).unwrap());
            if path.ends_with("decoder-generation") {
                // Open, start (a prefill), cancel, `next` after cancel (nothing) and creating a
                // cache succeed; `next` before cancel cannot (no tokenizer is linked), the
                // second time either (the refused token stays next).
                assert_eq!(ok, 5, "calls that succeeded");
            }
            ran += 1;
        }
        std::fs::remove_dir_all(&dir).ok();
        assert!(ran >= 5, "{ran} seeds");
    }
}
