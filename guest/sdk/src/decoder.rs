//! Decoders composed of the host's primitive kernels, and the sampling settings shared by
//! generations.
//!
//! [`Llama`] is the llama forward pass (SmolLM2): the guest owns the architecture, the host
//! owns the weights and the arithmetic. Every kernel call mirrors, in order and in arguments,
//! the host's fused pass (`models/src/llama.rs`, `Llama::forward`), so a greedy generation here
//! yields the same ids, bit for bit, as `llm.generation` with temperature 0.

use crate::kernels::{self, KvCache, RopeLayout};
use crate::llm::Sampling;
use crate::{invalid, meta, tensor, Error, MetaValue, Model, Result, Tensor};

/// Greedy decoding: the first largest logit, whatever the seed, no repetition penalty.
pub const GREEDY: Sampling = Sampling {
    temperature: 0.0,
    top_k: 0,
    top_p: 1.0,
    seed: 0,
    repeat_penalty: 1.0,
    repeat_last_n: 0,
};

/// Hyperparameters, from the model's `llama.*` metadata.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Transformer blocks.
    pub layers: u32,
    /// Hidden size.
    pub dim: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// FFN inner size.
    pub ffn: u32,
    /// Vocabulary size: rows of `token_embd.weight`.
    pub vocab: u32,
    /// Longest context the model was trained for, if the model says.
    pub context: Option<u32>,
    /// Rope frequency base.
    pub rope_base: f32,
    /// Epsilon of the rms norms.
    pub eps: f32,
}

impl Config {
    /// Key and value columns per position: kv heads × head dim.
    pub fn kv_cols(&self) -> u32 {
        self.kv_heads * (self.dim / self.heads)
    }
}

/// The weights of one block, as host handles.
struct Block {
    attn_norm: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    ffn_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

/// A llama model whose weights stay on the host; the handles are taken once, at load.
pub struct Llama {
    config: Config,
    embed: Tensor,
    blocks: Vec<Block>,
    output_norm: Tensor,
    /// `output.weight`; `None` when the embeddings are tied (SmolLM2): logits reuse `embed`.
    output: Option<Tensor>,
}

/// Per-pass activations for `n` positions, allocated once and reused by every pass of that
/// many positions (so decoding allocates one ids tensor per token, nothing else).
pub struct Scratch {
    n: u32,
    x: Tensor,
    /// The other residual buffer: `add` may not write over an input, so x ping-pongs.
    x2: Tensor,
    xb: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    att: Tensor,
    gate: Tensor,
    up: Tensor,
}

/// The final norm and the logits of one position, allocated once per generation.
pub struct Head {
    normed: Tensor,
    logits: Tensor,
}

/// A `u32` hyperparameter: absent, or a positive integer of at most 2^24 (a bound that keeps
/// every product of two of them inside a `u64`).
pub fn meta_u32(model: &Model, key: &str) -> Result<Option<u32>> {
    match meta::int(model, key) {
        Ok(None) => Ok(None),
        Ok(Some(v)) if v > 0 && v <= 1 << 24 => Ok(Some(v as u32)),
        _ => Err(invalid(format!(
            "{key} is not a positive integer of at most 2^24"
        ))),
    }
}

fn required_u32(model: &Model, key: &str) -> Result<u32> {
    meta_u32(model, key)?.ok_or_else(|| meta::missing(key))
}

fn meta_f32(model: &Model, key: &str, default: f32) -> Result<f32> {
    match model.meta(key) {
        None => Ok(default),
        // GGUF stores these as f32: the f64 that carries them converts back exactly.
        Some(MetaValue::Float(v)) => Ok(v as f32),
        Some(_) => Err(invalid(format!("{key} is not a number"))),
    }
}

impl Llama {
    /// Reads the hyperparameters of a llama `model` and takes a handle to each weight.
    pub fn load(model: &Model) -> Result<Llama> {
        let arch = model.architecture();
        if arch != "llama" {
            return Err(invalid(format!(
                "the primitives path runs llama models, not {arch:?}"
            )));
        }
        let dim = required_u32(model, "llama.embedding_length")?;
        let heads = required_u32(model, "llama.attention.head_count")?;
        let kv_heads = meta_u32(model, "llama.attention.head_count_kv")?.unwrap_or(heads);
        if dim % heads != 0 || heads % kv_heads != 0 {
            return Err(invalid(format!(
                "{dim} dims, {heads} heads, {kv_heads} kv heads do not divide evenly"
            )));
        }
        if let Some(rope_dims) = meta_u32(model, "llama.rope.dimension_count")? {
            if rope_dims != dim / heads {
                return Err(invalid(format!(
                    "partial rope ({rope_dims} of {} dims) is not supported",
                    dim / heads
                )));
            }
        }
        let rope_base = meta_f32(model, "llama.rope.freq_base", 10000.0)?;
        let eps = meta_f32(model, "llama.attention.layer_norm_rms_epsilon", 1e-5)?;
        if !(rope_base.is_finite() && rope_base > 1.0 && eps.is_finite() && eps >= 0.0) {
            return Err(invalid(format!("rope base {rope_base}, rms epsilon {eps}")));
        }
        let layers = required_u32(model, "llama.block_count")?;
        let ffn = required_u32(model, "llama.feed_forward_length")?;
        let context = meta_u32(model, "llama.context_length")?;

        let embed = model.weight("token_embd.weight")?;
        let vocab = match embed.shape()[..] {
            [rows, cols] if cols == dim => rows,
            ref s => {
                return Err(invalid(format!(
                    "token_embd.weight has shape {s:?}, expected [vocab, {dim}]"
                )))
            }
        };
        let blocks = (0..layers)
            .map(|i| {
                let w = |what: &str| model.weight(&format!("blk.{i}.{what}.weight"));
                Ok(Block {
                    attn_norm: w("attn_norm")?,
                    q: w("attn_q")?,
                    k: w("attn_k")?,
                    v: w("attn_v")?,
                    out: w("attn_output")?,
                    ffn_norm: w("ffn_norm")?,
                    gate: w("ffn_gate")?,
                    up: w("ffn_up")?,
                    down: w("ffn_down")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = match model.weight("output.weight") {
            Ok(w) => Some(w),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(Llama {
            config: Config {
                layers,
                dim,
                heads,
                kv_heads,
                ffn,
                vocab,
                context,
                rope_base,
                eps,
            },
            embed,
            blocks,
            output_norm: model.weight("output_norm.weight")?,
            output,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// An empty cache for `capacity` positions of every layer.
    pub fn new_cache(&self, capacity: u32) -> Result<KvCache> {
        let c = &self.config;
        KvCache::create(c.layers, capacity, c.kv_cols())
    }

    /// Activations for passes of `n` positions.
    pub fn scratch(&self, n: u32) -> Result<Scratch> {
        let c = &self.config;
        let f32s = |cols: u32| tensor::f32s(&[n, cols]);
        Ok(Scratch {
            n,
            x: f32s(c.dim)?,
            x2: f32s(c.dim)?,
            xb: f32s(c.dim)?,
            q: f32s(c.dim)?,
            k: f32s(c.kv_cols())?,
            v: f32s(c.kv_cols())?,
            att: f32s(c.dim)?,
            gate: f32s(c.ffn)?,
            up: f32s(c.ffn)?,
        })
    }

    /// The output norm and logits buffers.
    pub fn head(&self) -> Result<Head> {
        let c = &self.config;
        Ok(Head {
            normed: tensor::f32s(&[1, c.dim])?,
            logits: tensor::f32s(&[1, c.vocab])?,
        })
    }

    /// Runs `tokens` (at positions `cache.len()..`) through the model, commits them to the
    /// cache, and returns the greedy choice after the last one (the first largest logit).
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &KvCache,
        s: &mut Scratch,
        head: &Head,
    ) -> Result<u32> {
        let c = &self.config;
        let n = tokens.len() as u32;
        if n == 0 || n != s.n {
            return Err(invalid(format!(
                "forward of {n} tokens with scratch for {}",
                s.n
            )));
        }
        let pos = cache.len();
        {
            let ids = tensor::ids(tokens)?;
            kernels::embed(&s.x, &self.embed, &ids)?;
        }
        for (layer, b) in self.blocks.iter().enumerate() {
            let layer = layer as u32;
            kernels::rms_norm(&s.xb, &s.x, &b.attn_norm, c.eps)?;
            kernels::matmul(&s.q, &s.xb, &b.q, None)?;
            kernels::matmul(&s.k, &s.xb, &b.k, None)?;
            kernels::matmul(&s.v, &s.xb, &b.v, None)?;
            kernels::rope(&s.q, c.heads, pos, c.rope_base, RopeLayout::Interleaved)?;
            kernels::rope(&s.k, c.kv_heads, pos, c.rope_base, RopeLayout::Interleaved)?;
            kernels::attend(cache, layer, &s.att, &s.q, &s.k, &s.v, c.heads, c.kv_heads)?;
            kernels::matmul(&s.xb, &s.att, &b.out, None)?;
            kernels::add(&s.x2, &s.x, &s.xb)?;
            std::mem::swap(&mut s.x, &mut s.x2);
            kernels::rms_norm(&s.xb, &s.x, &b.ffn_norm, c.eps)?;
            kernels::matmul(&s.gate, &s.xb, &b.gate, None)?;
            kernels::matmul(&s.up, &s.xb, &b.up, None)?;
            kernels::swiglu(&s.gate, &s.up)?;
            kernels::matmul(&s.xb, &s.gate, &b.down, None)?;
            kernels::add(&s.x2, &s.x, &s.xb)?;
            std::mem::swap(&mut s.x, &mut s.x2);
        }
        cache.advance(n)?;
        // Only the last position's logits are needed.
        let last_row;
        let last = if n == 1 {
            &s.x
        } else {
            last_row = Tensor::from_f32(&[1, c.dim], &s.x.read_f32(n - 1, 1)?)?;
            &last_row
        };
        kernels::rms_norm(&head.normed, last, &self.output_norm, c.eps)?;
        let output = self.output.as_ref().unwrap_or(&self.embed);
        kernels::matmul(&head.logits, &head.normed, output, None)?;
        kernels::argmax(&head.logits)
    }
}
