//! A structured host-call fuzzer's harness (used by `fuzz/fuzz_targets/host_calls.rs`): fuzz
//! input is decoded into a sequence of host calls — tensors, models, kernels — with arbitrary
//! arguments and handles (including dropped and forged ones), run against a fresh component
//! state, without Wasm in between. Any argument must end in `Ok` or a typed error; a panic
//! caught by the host's guard is reported as a finding, so the fuzzer sees it.

use crate::bindings::edgenlu::nlu::kernels::Host as Kernels;
use crate::bindings::edgenlu::nlu::models::HostModel;
use crate::bindings::edgenlu::nlu::tensors::HostTensor;
use crate::bindings::Dtype;
use crate::error::HostError;
use crate::models_host::{ModelCatalog, ModelHandle};
use crate::state::{ComponentState, HostPanic, Limits};
use crate::tensors::Tensor;
use edgenlu_kernels::formats::{quantize, DType};
use edgenlu_models::{GgufWriter, MetaValue, ModelStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Resource;

/// The model the harness grants: small weights of every format the kernels take.
const MODEL: &str = "fuzz-model";
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
        HostCallHarness {
            catalog: Arc::new(ModelCatalog::new(store)),
        }
    }

    /// Decodes `data` into host calls and runs them. Panics only on a host bug.
    pub fn run(&self, data: &[u8]) {
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
            vec![MODEL.into()],
            Default::default(),
            limits,
        );
        let mut input = Input(data);
        let mut tensors: Vec<Resource<Tensor>> = Vec::new();
        let mut models: Vec<Resource<ModelHandle>> = Vec::new();
        for _ in 0..64 {
            if input.0.is_empty() {
                break;
            }
            let op = input.u8() % 20;
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
                    let name = [MODEL, "all-minilm-l6-v2.q8_0", "../fuzz-model", ""]
                        [input.u8() as usize % 4];
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
                _ => {
                    let shape = input.shape();
                    s.zeros(Dtype::F32, shape).map(|r| tensors.push(r))
                }
            };
            if let Err(HostError::Trap(e)) = result {
                if let Some(panic) = e.downcast_ref::<HostPanic>() {
                    panic!("{panic}");
                }
            }
        }
    }
}
