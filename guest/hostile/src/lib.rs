//! A hostile test skill: each request's text names one attack on the host, which `handle`
//! then carries out. The host must end every attack with a typed error (or a trap that
//! discards the instance) within the deadline, and go on serving. `"ok"` does honest work, so
//! tests can check the host still answers after each attack.
//!
//! One component with many attacks rather than one component per attack keeps the guest
//! build small; each attack is still a separate request in a fresh instance.

//!
//! The only guest with `unsafe`: the attacks that forge resource handles must step around the
//! bindings' safe API on purpose.

edgenlu_sdk::world!("skill");

mod boundary;
mod work;

use edgenlu_sdk::decoder::GREEDY;
use edgenlu_sdk::kernels::{self, KvCache, RopeLayout};
use edgenlu_sdk::llm::{FinishReason, Generation, Options, Sampling};
use edgenlu_sdk::log::{self, Level};
use edgenlu_sdk::tensor::f32s;
use edgenlu_sdk::{config, meta, settings, tokenize, Dtype, Error, Model, Tensor};
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

/// The encoder (MiniLM) the skill is granted, for the tensor and kernel attacks.
fn model() -> Result<Model, Error> {
    settings::model("model")
}

/// The decoder (SmolLM2) the skill is granted beside its encoder, for generation attacks.
fn decoder() -> Result<Model, Error> {
    settings::model("decoder")
}

fn options(max_tokens: u32, sampling: Sampling) -> Options {
    Options {
        max_tokens,
        stop: Vec::new(),
        sampling,
        constraint: None,
    }
}

/// `n` token ids inside any vocabulary of 20,000 or more: a deterministic nonsense prompt.
fn prompt(n: u32) -> Vec<u32> {
    (0..n).map(|i| 100 + i * 7919 % 20_000).collect()
}

fn greedy(model: &Model, prompt: &[u32], max_tokens: u32) -> Result<Generation, Error> {
    Generation::start(model, prompt, &options(max_tokens, GREEDY))
}

/// Rows of the decoder's embedding table: its vocabulary size.
fn vocab(model: &Model) -> Result<u32, Error> {
    Ok(model.weight("token_embd.weight")?.shape()[0])
}

fn context(model: &Model) -> Result<u32, Error> {
    match meta::int(model, "llama.context_length") {
        Ok(Some(n)) => u32::try_from(n).map_err(|_| invalid("context length")),
        _ => Err(invalid("no llama.context_length")),
    }
}

fn invalid(msg: &str) -> Error {
    Error::InvalidArgument(msg.to_string())
}

fn is_invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(_))
}

fn is_invalid_or_shape(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(_) | Error::ShapeMismatch(_))
}

fn is_invalid_or_budget(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(_) | Error::BudgetExceeded(_))
}

fn is_budget(e: &Error) -> bool {
    matches!(e, Error::BudgetExceeded(_))
}

fn is_not_allowed(e: &Error) -> bool {
    matches!(e, Error::NotAllowed(_))
}

/// One step of a multi-step attack: the host must refuse it with an error `want` accepts.
/// Anything else ends the attack with an `internal` error naming the step, which the suite
/// reports as a wrong outcome.
fn refused<T>(step: &str, r: Result<T, Error>, want: fn(&Error) -> bool) -> Result<(), Error> {
    match r {
        Ok(_) => Err(Error::Internal(format!("{step}: the host accepted it"))),
        Err(e) if want(&e) => Ok(()),
        Err(e) => Err(Error::Internal(format!("{step}: unexpected {e:?}"))),
    }
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
        // --- decoder kernels and the kv cache ---
        "kv-cache-bomb" => {
            refused(
                "30 x 4M x 192",
                KvCache::create(30, 4_000_000, 192),
                is_budget,
            )?;
            refused(
                "u32::MAX everywhere",
                KvCache::create(u32::MAX, u32::MAX, u32::MAX),
                is_invalid_or_budget,
            )?;
            // Zero bytes of positions, but billions of layers of bookkeeping.
            refused(
                "u32::MAX layers of no positions",
                KvCache::create(u32::MAX, 0, 1),
                is_invalid_or_budget,
            )?;
            refused(
                "a million layers of no positions",
                KvCache::create(1_000_000, 0, 1),
                is_invalid_or_budget,
            )?;
            // Many honest caches of 2.8 MiB each until the host-memory budget says no.
            let mut hoard = Vec::new();
            loop {
                hoard.push(KvCache::create(30, 64, 192)?);
            }
        }
        "kv-cache-overflow" => {
            // 2 layers, 4 positions, 1 kv head of 8; queries are 2 heads of 8.
            let cache = KvCache::create(2, 4, 8)?;
            let rows = |n: u32| -> Result<_, Error> {
                Ok((
                    f32s(&[n, 16])?,
                    f32s(&[n, 8])?,
                    f32s(&[n, 8])?,
                    f32s(&[n, 16])?,
                ))
            };
            let (q5, k5, v5, o5) = rows(5)?;
            refused(
                "5 positions into 4",
                kernels::attend(&cache, 0, &o5, &q5, &k5, &v5, 2, 1),
                is_invalid,
            )?;
            refused("advance unattended", cache.advance(1), is_invalid)?;
            refused("advance u32::MAX", cache.advance(u32::MAX), is_invalid)?;
            let (q, k, v, o) = rows(2)?;
            for layer in [2, u32::MAX] {
                refused(
                    &format!("layer {layer}"),
                    kernels::attend(&cache, layer, &o, &q, &k, &v, 2, 1),
                    is_invalid,
                )?;
            }
            let k7 = f32s(&[2, 7])?;
            refused(
                "k of 7 columns",
                kernels::attend(&cache, 0, &o, &q, &k7, &v, 2, 1),
                is_invalid_or_shape,
            )?;
            let v3 = f32s(&[3, 8])?;
            refused(
                "v of 3 rows, k of 2",
                kernels::attend(&cache, 0, &o, &q, &k, &v3, 2, 1),
                is_invalid_or_shape,
            )?;
            let o8 = f32s(&[2, 8])?;
            refused(
                "out of 8 columns",
                kernels::attend(&cache, 0, &o8, &q, &k, &v, 2, 1),
                is_invalid_or_shape,
            )?;
            for (heads, kv_heads) in [(0, 1), (2, 0), (3, 1), (2, 3), (u32::MAX, 1)] {
                refused(
                    &format!("{heads} heads, {kv_heads} kv heads"),
                    kernels::attend(&cache, 0, &o, &q, &k, &v, heads, kv_heads),
                    is_invalid_or_shape,
                )?;
            }
            refused(
                "out aliasing q",
                kernels::attend(&cache, 0, &q, &q, &k, &v, 2, 1),
                is_invalid,
            )?;
            if cache.len() != 0 {
                return Err(Error::Internal(format!(
                    "refused calls committed {} positions",
                    cache.len()
                )));
            }
            // Fill it honestly, then attend one position more than it holds.
            for _ in 0..2 {
                for layer in 0..2 {
                    kernels::attend(&cache, layer, &o, &q, &k, &v, 2, 1)?;
                }
                cache.advance(2)?;
            }
            let (q1, k1, v1, o1) = rows(1)?;
            kernels::attend(&cache, 0, &o1, &q1, &k1, &v1, 2, 1).map(|_| ok("overfilled"))
        }
        "rope-bad-args" => {
            let x = f32s(&[2, 12])?;
            let rope = |heads, base| kernels::rope(&x, heads, 0, base, RopeLayout::Interleaved);
            // 5 heads do not divide 12; 4 heads of 3 are odd; 0 heads.
            for heads in [5, 4, 0, u32::MAX] {
                refused(&format!("{heads} heads"), rope(heads, 10000.0), is_invalid)?;
            }
            for base in [1.0, 0.5, -2.0, f32::INFINITY, f32::NEG_INFINITY] {
                refused(&format!("base {base}"), rope(2, base), is_invalid)?;
            }
            let w = model()?.weight("blk.0.attn_q.weight")?;
            refused(
                "rope on a weight",
                kernels::rope(&w, 12, 0, 10000.0, RopeLayout::Halves),
                is_not_allowed,
            )?;
            // The last position a u32 can name is still a valid one.
            kernels::rope(&x, 2, u32::MAX - 1, 10000.0, RopeLayout::Halves)?;
            rope(2, f32::NAN).map(|_| ok("roped"))
        }
        "decoder-kernel-args" => {
            let x = f32s(&[2, 8])?;
            let out = f32s(&[2, 8])?;
            let w7 = f32s(&[7])?;
            let w8 = f32s(&[8])?;
            refused(
                "rms-norm weight of 7",
                kernels::rms_norm(&out, &x, &w7, 1e-5),
                is_invalid_or_shape,
            )?;
            for eps in [f32::NAN, -1.0, f32::INFINITY] {
                refused(
                    &format!("rms-norm eps {eps}"),
                    kernels::rms_norm(&out, &x, &w8, eps),
                    is_invalid,
                )?;
            }
            refused(
                "rms-norm in place",
                kernels::rms_norm(&x, &x, &w8, 1e-5),
                is_invalid,
            )?;
            let up = f32s(&[2, 7])?;
            refused(
                "swiglu of other shapes",
                kernels::swiglu(&x, &up),
                is_invalid_or_shape,
            )?;
            refused("swiglu of itself", kernels::swiglu(&x, &x), is_invalid)?;
            let b3 = f32s(&[3])?;
            refused(
                "mul by 3 into 16",
                kernels::mul(&out, &x, &b3),
                is_invalid_or_shape,
            )?;
            let w = model()?.weight("blk.0.attn_q.weight")?;
            refused("silu on a weight", kernels::silu(&w), is_not_allowed)?;
            refused("scale a weight", kernels::scale(&w, 2.0), is_not_allowed)?;
            refused(
                "scale by inf",
                kernels::scale(&x, f32::INFINITY),
                is_invalid,
            )?;
            kernels::scale(&x, f32::NAN).map(|_| ok("scaled by NaN"))
        }
        // --- generation ---
        "generation-too-many-tokens" => {
            let m = decoder()?;
            refused(
                "u32::MAX tokens",
                greedy(&m, &prompt(3), u32::MAX),
                is_budget,
            )?;
            greedy(&m, &prompt(3), 100_000).map(|_| ok("generating"))
        }
        "generation-context-overflow" => {
            let m = decoder()?;
            let ctx = context(&m)?;
            refused(
                "a prompt past the context",
                greedy(&m, &prompt(ctx + 1), 0),
                is_invalid,
            )?;
            greedy(&m, &prompt(ctx - 1), 8).map(|_| ok("generating"))
        }
        "generation-bad-ids" => {
            let m = decoder()?;
            let vocab = vocab(&m)?;
            refused("an empty prompt", greedy(&m, &[], 4), is_invalid)?;
            refused("id u32::MAX", greedy(&m, &[1, u32::MAX], 4), is_invalid)?;
            refused("id 2^31", greedy(&m, &[1 << 31], 4), is_invalid)?;
            greedy(&m, &[1, 2, vocab], 4).map(|_| ok("generating"))
        }
        "generation-bad-sampling" => {
            let m = decoder()?;
            let bad = [
                (f32::NAN, 1.0),
                (-1.0, 1.0),
                (f32::INFINITY, 1.0),
                (1.0, f32::NAN),
                (1.0, 1.5),
                (1.0, -0.5),
            ];
            for (temperature, top_p) in bad {
                let sampling = Sampling {
                    temperature,
                    top_k: u32::MAX,
                    top_p,
                    seed: u64::MAX,
                    ..GREEDY
                };
                refused(
                    &format!("temperature {temperature}, top-p {top_p}"),
                    Generation::start(&m, &prompt(3), &options(4, sampling)),
                    is_invalid,
                )?;
            }
            let sampling = Sampling {
                top_p: 0.0,
                ..GREEDY
            };
            Generation::start(&m, &prompt(3), &options(4, sampling)).map(|_| ok("generating"))
        }
        "generation-many-stop-tokens" => {
            let m = decoder()?;
            let mut opts = options(4, GREEDY);
            opts.stop = vec![7; 1 << 20];
            refused(
                "a million stop tokens",
                Generation::start(&m, &prompt(3), &opts),
                is_invalid_or_budget,
            )?;
            opts.stop = (0..65).collect();
            Generation::start(&m, &prompt(3), &opts).map(|_| ok("generating"))
        }
        "generation-on-encoder" => greedy(&model()?, &[101, 102], 4).map(|_| ok("generating")),
        "generation-bomb" => {
            // Each holds a kv cache of 201 positions (about 9 MiB) and its logits (192 KiB),
            // charged in full at start: the 16 MiB budget runs out at the second, after two
            // one-token prefills, long before any deadline even on a busy machine.
            let m = decoder()?;
            let mut hoard = Vec::new();
            loop {
                hoard.push(greedy(&m, &prompt(1), 200)?);
            }
        }
        "generation-tokenizer-mismatch" => {
            // The linked WordPiece vocabulary has 30,522 tokens, SmolLM2 49,152: sampling hot
            // soon picks an id the tokenizer cannot decode, which must come back typed.
            let sampling = Sampling {
                temperature: 2.0,
                top_k: 0,
                top_p: 1.0,
                seed: 7,
                ..GREEDY
            };
            let g = Generation::start(&decoder()?, &prompt(4), &options(32, sampling))?;
            let err = loop {
                match g.next() {
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(ok("decoded every token")),
                    Err(e) => break e,
                }
            };
            // The refused token is not silently lost: asking again fails the same way, and
            // the generation has not finished.
            refused("next again", g.next(), is_invalid)?;
            if let Some(f) = g.finish() {
                return Err(Error::Internal(format!(
                    "finished ({f:?}) on a refused token"
                )));
            }
            Err(err)
        }
        "trap-mid-generation" => {
            let g = greedy(&decoder()?, &prompt(8), 16)?;
            for _ in 0..3 {
                // Whether or not WordPiece can spell the token, the pass ran.
                let _ = black_box(g.next());
            }
            // Dies holding a generation (its kv cache and logits) and two model handles.
            core::arch::wasm32::unreachable()
        }
        "generation-deadline" => {
            // Generations of 160 prompt and 32 new tokens, one after another, for ever.
            let m = decoder()?;
            let long = prompt(160);
            loop {
                let g = greedy(&m, &long, 32)?;
                loop {
                    match g.next() {
                        Ok(Some(_)) => {}
                        // A token WordPiece cannot spell: start over.
                        Ok(None) | Err(Error::InvalidArgument(_)) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        "generation-long-prompt" => {
            // Nearly the whole context in one prefill: a budget that lets the kv cache in
            // must still not let one pass run on long past the deadline.
            let m = decoder()?;
            let ctx = context(&m)?;
            greedy(&m, &prompt(ctx - 8), 8).map(|_| ok("prefilled"))
        }
        "next-after-cancel" => {
            let g = greedy(&decoder()?, &prompt(8), 8)?;
            g.cancel();
            let first = g.next()?;
            g.cancel();
            let second = g.next()?;
            let (finish, usage) = (g.finish(), g.usage());
            let fine = first.is_none()
                && second.is_none()
                && matches!(finish, Some(FinishReason::Cancelled))
                && usage.prompt_tokens == 8
                && usage.generated_tokens == 0;
            Ok(ok(&if fine {
                "none-after-cancel".to_string()
            } else {
                format!("{first:?} {second:?} {finish:?} {usage:?}")
            }))
        }
        "generation-zero-tokens" => {
            let g = greedy(&decoder()?, &prompt(2), 0)?;
            let next = g.next()?;
            let finish = g.finish();
            Ok(ok(&match (&next, finish) {
                (None, Some(FinishReason::Length)) => "length".to_string(),
                _ => format!("{next:?} {finish:?}"),
            }))
        }
        "generation-after-drop" => {
            let g = greedy(&decoder()?, &prompt(2), 4)?;
            let h = g.handle();
            drop(g);
            // SAFETY (guest side): deliberately forging a dead handle; the host must trap.
            let forged = unsafe { Generation::from_handle(h) };
            let _ = forged.next();
            Ok(ok("used a dropped generation"))
        }
        "generation-as-model" => {
            let g = greedy(&decoder()?, &prompt(2), 4)?;
            // SAFETY (guest side): a handle of another resource type.
            let forged = unsafe { Model::from_handle(g.handle()) };
            greedy(&forged, &prompt(2), 4).map(|_| ok("confused handle types"))
        }
        "budget-released-on-drop" => {
            // Far more than the host-memory budget in total, never more than 3 MiB at once.
            for _ in 0..32 {
                drop(KvCache::create(30, 64, 192)?);
            }
            let m = decoder()?;
            for _ in 0..12 {
                let g = greedy(&m, &prompt(1), 32)?;
                g.cancel();
            }
            Ok(ok("released"))
        }
        other => work::attack(other).unwrap_or_else(|| boundary::attack(other)),
    }
}

impl Guest for Hostile {
    fn handle(req: Request) -> Result<Response, Error> {
        attack(&req.text)
    }
}

export!(Hostile);
