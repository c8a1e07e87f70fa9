//! A hostile test skill: each request's text names one attack on the host, which `handle`
//! then carries out. The host must end every attack with a typed error (or a trap that
//! discards the instance) within the deadline, and go on serving. `"ok"` does honest work, so
//! tests can check the host still answers after each attack.
//!
//! One component with many attacks rather than one component per attack keeps the guest
//! build small; each attack is still a separate request in a fresh instance.

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

use edgenlu::nlu::kernels;
use edgenlu::nlu::log::{self, Level};
use edgenlu::nlu::models::Model;
use edgenlu::nlu::tensors::Tensor;
use edgenlu::nlu::types::{Dtype, Error};
use edgenlu::nlu::{config, tokenize};
use exports::edgenlu::nlu::nlu::{Guest, Path, Request, Response};
use std::hint::black_box;

struct Hostile;

fn ok(intent: &str) -> Response {
    Response {
        intent: intent.to_string(),
        confidence: 1.0,
        slots: Vec::new(),
        reply: None,
        path: Path::Local,
        timings: Vec::new(),
    }
}

fn model() -> Result<Model, Error> {
    let name =
        config::get("model").ok_or_else(|| Error::InvalidArgument("no model configured".into()))?;
    Model::open(&name)
}

fn f32s(shape: &[u32]) -> Result<Tensor, Error> {
    Tensor::zeros(Dtype::F32, shape)
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u64; 16]) -> u64 {
    // The array and black_box keep every frame real and the recursion unoptimised.
    let pad = black_box(pad);
    recurse(depth + 1, pad) + pad[(depth % 16) as usize]
}

/// Carries out the attack named `name`.
fn attack(name: &str) -> Result<Response, Error> {
    match name {
        // Honest work: a small matmul against a real weight.
        "ok" => {
            let w = model()?.weight("blk.0.attn_q.weight")?;
            let x = Tensor::from_f32(&[1, 384], &[0.5; 384])?;
            let out = f32s(&[1, 384])?;
            kernels::matmul(&out, &x, &w, None)?;
            let v = out.read_f32(0, 1)?;
            Ok(ok(if v.iter().all(|x| x.is_finite()) {
                "ok"
            } else {
                "nan"
            }))
        }
        // --- time ---
        "spin" => {
            let mut n = 1u64;
            loop {
                n = black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        "spin-host-calls" => loop {
            black_box(config::get("model"));
        },
        "spin-kernels" => {
            // Keeps calling a heavy kernel and ignores the budget errors it gets back.
            let w = model()?.weight("token_embd.weight")?;
            let q = Tensor::from_f32(&[384], &[0.1; 384])?;
            loop {
                let _ = black_box(kernels::nn_search(&w, &q, 1));
            }
        }
        "spin-tokenize" => loop {
            let _ = black_box(tokenize::encode(&"word ".repeat(1000)));
        },
        // --- guest memory ---
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![1u8; 1 << 20]));
            }
        }
        "stack-overflow" => Ok(ok(&recurse(0, [7; 16]).to_string())),
        // --- host memory and handles ---
        "tensor-bomb" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(f32s(&[1024, 1024])?);
            }
        }
        "handle-bomb" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(f32s(&[1])?);
            }
        }
        "model-handle-bomb" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(model()?);
            }
        }
        "weight-view-bomb" => {
            let m = model()?;
            let mut hoard = Vec::new();
            loop {
                hoard.push(m.weight("token_embd.weight")?);
            }
        }
        "huge-tensor" => f32s(&[u32::MAX, u32::MAX]).map(|_| ok("allocated")),
        // --- shapes, sizes, dtypes ---
        "overflowing-shape" => f32s(&[u32::MAX; 4]).map(|_| ok("allocated")),
        "rank-5" => f32s(&[1, 1, 1, 1, 1]).map(|_| ok("allocated")),
        "zero-dim" => f32s(&[4, 0]).map(|_| ok("allocated")),
        "shape-lies" => Tensor::from_f32(&[1000, 1000], &[1.0; 10]).map(|_| ok("allocated")),
        "unsupported-dtype" => Tensor::zeros(Dtype::Q41, &[32]).map(|_| ok("allocated")),
        "dtype-mismatch" => {
            let w = model()?.weight("blk.0.attn_q.weight")?;
            let x = Tensor::from_i32(&[1, 384], &[1; 384])?;
            let out = f32s(&[1, 384])?;
            kernels::matmul(&out, &x, &w, None).map(|_| ok("multiplied"))
        }
        "shape-mismatch" => {
            let w = model()?.weight("blk.0.attn_q.weight")?;
            let x = f32s(&[1, 383])?;
            let out = f32s(&[1, 384])?;
            kernels::matmul(&out, &x, &w, None).map(|_| ok("multiplied"))
        }
        "output-aliases-input" => {
            let w = model()?.weight("blk.0.attn_q.weight")?;
            let x = f32s(&[1, 384])?;
            kernels::matmul(&x, &x, &w, None).map(|_| ok("multiplied"))
        }
        "write-to-weights" => {
            let w = model()?.weight("blk.0.attn_q.weight")?;
            kernels::gelu(&w).map(|_| ok("overwrote a weight"))
        }
        "bad-embed-ids" => {
            let table = model()?.weight("token_embd.weight")?;
            let ids = Tensor::from_i32(&[3], &[0, -1, i32::MAX])?;
            let out = f32s(&[3, 384])?;
            kernels::embed(&out, &table, &ids).map(|_| ok("embedded"))
        }
        "bad-attention-heads" => {
            let q = f32s(&[2, 384])?;
            let out = f32s(&[2, 384])?;
            kernels::attention(&out, &q, &q, &q, 0, 0, false).map(|_| ok("attended"))
        }
        "mean-pool-too-many-rows" => {
            let x = f32s(&[2, 384])?;
            let out = f32s(&[384])?;
            kernels::mean_pool(&out, &x, u32::MAX).map(|_| ok("pooled"))
        }
        "nan-argmax" => {
            let x = Tensor::from_f32(&[3], &[f32::NAN; 3])?;
            kernels::argmax(&x).map(|i| ok(&i.to_string()))
        }
        "read-out-of-range" => f32s(&[4, 4])?.read_f32(u32::MAX, 2).map(|_| ok("read")),
        "read-everything" => {
            let w = model()?.weight("token_embd.weight")?;
            w.read_f32(0, 30522).map(|_| ok("read"))
        }
        "write-overrun" => f32s(&[2, 2])?.write_f32(1, &[1.0; 64]).map(|_| ok("wrote")),
        "huge-k" => {
            let w = model()?.weight("token_embd.weight")?;
            let q = f32s(&[384])?;
            kernels::nn_search(&w, &q, u32::MAX).map(|_| ok("searched"))
        }
        // --- handles ---
        "use-after-drop" => {
            let t = f32s(&[4])?;
            let h = t.handle();
            drop(t);
            // SAFETY (guest side): deliberately forging a dead handle; the host must trap.
            let forged = unsafe { Tensor::from_handle(h) };
            forged.shape();
            Ok(ok("used a dropped tensor"))
        }
        "forged-handle" => {
            // SAFETY (guest side): a handle this instance was never given.
            let forged = unsafe { Tensor::from_handle(0x7fff_fff0) };
            forged.shape();
            Ok(ok("used a forged tensor"))
        }
        "model-handle-as-tensor" => {
            let m = model()?;
            // SAFETY (guest side): a handle of another resource type.
            let forged = unsafe { Tensor::from_handle(m.handle()) };
            forged.shape();
            Ok(ok("confused handle types"))
        }
        // --- models ---
        "ungranted-model" => Model::open("all-minilm-l6-v2.f32").map(|_| ok("opened")),
        "path-model" => Model::open("../../../../etc/passwd").map(|_| ok("opened")),
        "absolute-path-model" => Model::open("/etc/passwd").map(|_| ok("opened")),
        "missing-weight" => model()?.weight("../../etc/passwd").map(|_| ok("opened")),
        // --- sizes crossing the boundary ---
        "huge-log" => {
            let line = "x".repeat(1 << 20);
            loop {
                log::log(Level::Error, &line);
            }
        }
        "huge-reply" => Ok(Response {
            reply: Some("y".repeat(4 << 20)),
            ..ok("chatty")
        }),
        "huge-intent" => Ok(ok(&"z".repeat(2 << 20))),
        "many-slots" => {
            let slot = exports::edgenlu::nlu::nlu::Slot {
                name: "s".into(),
                value: "v".into(),
                start: 0,
                end: 1,
            };
            Ok(Response {
                slots: vec![slot; 50_000],
                ..ok("sloppy")
            })
        }
        "huge-tokenize-input" => {
            tokenize::encode(&"a".repeat(4 << 20)).map(|ids| ok(&ids.len().to_string()))
        }
        // --- traps ---
        "panic" => panic!("a guest panic"),
        "unreachable" => core::arch::wasm32::unreachable(),
        "divide-by-zero" => {
            let zero = black_box(0u32);
            Ok(ok(&(7 / zero).to_string()))
        }
        "trap-mid-work" => {
            let w = model()?.weight("blk.0.attn_q.weight")?;
            let x = Tensor::from_f32(&[1, 384], &[0.5; 384])?;
            let out = f32s(&[1, 384])?;
            kernels::matmul(&out, &x, &w, None)?;
            // Dies holding tensors and a model handle.
            core::arch::wasm32::unreachable()
        }
        other => Err(Error::InvalidArgument(format!("unknown attack {other:?}"))),
    }
}

impl Guest for Hostile {
    fn handle(req: Request) -> Result<Response, Error> {
        attack(&req.text)
    }
}

export!(Hostile);
