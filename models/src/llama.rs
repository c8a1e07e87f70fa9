//! The decoder pass over a mapped GGUF file, for every family of [`Architecture`] (llama and
//! SmolLM2, qwen2, qwen3, gemma3): the hyperparameters from its metadata, the weights as
//! zero-copy views, and the fused forward pass on the kernels, one pass whose steps the
//! family switches on or off as llama.cpp's graphs do. Guests can run the llama pass
//! themselves through the primitive kernels; both call the same ops in the same order, so
//! their tokens agree exactly.

use std::sync::Arc;

use edgenlu_kernels::matmul::{matmul_with, Activations};
use edgenlu_kernels::ops::{self, KvCache};
use edgenlu_kernels::{active_variant, KernelError, WeightView};

use crate::architecture::{self, Architecture, GatedActivation, QkvBias, SlidingWindow};
use crate::gguf::GgufFile;
use crate::weights::{meta_usize, ModelError, Slot};

/// Why a decoder cannot be loaded or run.
pub type LlamaError = ModelError;

/// Hyperparameters of a decoder, from its `<architecture>.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// The family, which decides the pass's steps.
    pub architecture: Architecture,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub dim: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Elements per head (`attention.key_length`, else dim / heads).
    pub head_dim: usize,
    /// FFN inner size.
    pub ffn: usize,
    /// Vocabulary size (rows of the output projection).
    pub vocab: usize,
    /// Longest context the model was trained for.
    pub context: usize,
    /// Rope frequency base (of the global layers, when some slide).
    pub rope_base: f32,
    /// Epsilon of the rms norms.
    pub rms_eps: f32,
    /// What the attention scores `q·k` are scaled by: 1/√head_dim, except where llama.cpp
    /// sets another (Gemma 3 27B: 1/√(dim / heads)).
    pub attention_scale: f32,
    /// Sliding-window layers, if the family interleaves them (gemma3).
    pub sliding_window: Option<SlidingWindow>,
}

impl LlamaConfig {
    /// Reads the hyperparameters of `arch` from `file`'s metadata (the vocabulary is the
    /// embedding's rows, set by the caller), refusing variants the pass does not implement.
    fn read(file: &GgufFile, arch: Architecture) -> Result<LlamaConfig, LlamaError> {
        let key = |k: &str| arch.key(k);
        architecture::refuse_unsupported(file, arch)?;
        let dim = meta_usize(file, &key("embedding_length"))?;
        let [heads, kv_heads, head_dim] = read_heads(file, arch, dim)?;
        let rope_base = optional_f32(file, &key("rope.freq_base"))?.unwrap_or(10000.0);
        let rms_eps = optional_f32(file, &key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
        if !(rope_base.is_finite() && rope_base > 1.0 && rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(LlamaError::Metadata(format!(
                "rope base {rope_base}, rms epsilon {rms_eps}"
            )));
        }
        let layers = meta_usize(file, &key("block_count"))?;
        Ok(LlamaConfig {
            architecture: arch,
            layers,
            dim,
            heads,
            kv_heads,
            head_dim,
            ffn: meta_usize(file, &key("feed_forward_length"))?,
            vocab: 0,
            context: meta_usize(file, &key("context_length"))?,
            rope_base,
            rms_eps,
            attention_scale: arch.attention_scale(layers, dim, heads, head_dim)?,
            sliding_window: SlidingWindow::read(file, arch)?,
        })
    }

    /// Query (and attention output) columns per position: heads × head dim.
    pub fn q_cols(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Key and value columns per position: kv heads × head dim.
    pub fn kv_cols(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Memory a generation of `capacity` positions holds while it lives: its kv cache (at full
    /// capacity) and the logits. `None` if it overflows.
    pub fn generation_bytes(&self, capacity: usize) -> Option<usize> {
        KvCache::bytes_for(self.layers, capacity, self.kv_cols())?.checked_add(self.vocab * 4)
    }

    /// The most positions (prompt and new tokens) one generation can hold within `bytes` of
    /// host memory, prefilling `prefill_chunk` tokens at a time: what [`Self::generation_bytes`]
    /// and one pass's [`Self::forward_scratch_bytes`] leave room for, at most the model's
    /// context.
    pub fn context_within(&self, bytes: usize, prefill_chunk: usize) -> usize {
        let fits = |c: usize| {
            self.generation_bytes(c).is_some_and(|held| {
                held.saturating_add(self.forward_scratch_bytes(prefill_chunk.min(c), c)) <= bytes
            })
        };
        // The bytes grow with the capacity: bisect for the last capacity that fits.
        let (mut lo, mut hi) = (0, self.context);
        if fits(hi) {
            return hi;
        }
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Upper bound of the memory one [`Llama::forward`] of `n` tokens allocates besides the
    /// cache and the logits, with `positions` in the cache once they are in: its activations,
    /// the attention's and the matmuls' scratch. A host charges it before the pass.
    pub fn forward_scratch_bytes(&self, n: usize, positions: usize) -> usize {
        let widest = self.dim.max(self.ffn).max(self.q_cols());
        let post = if self.architecture.has_post_norms() {
            self.dim
        } else {
            0
        };
        let per_token = (2 * self.dim + post)
            .saturating_add(2 * self.q_cols())
            .saturating_add(2 * self.kv_cols())
            .saturating_add(2 * self.ffn)
            .saturating_add(1);
        let activations = n
            .saturating_mul(per_token)
            .saturating_add(self.dim)
            .saturating_mul(size_of::<f32>());
        let matmul = edgenlu_kernels::matmul::scratch_bytes(n, widest, widest).max(
            edgenlu_kernels::matmul::scratch_bytes(1, self.dim, self.vocab),
        );
        activations
            .saturating_add(matmul)
            .saturating_add(ops::attention_scratch_bytes(positions, self.head_dim))
    }
}

/// The weights of one block; the optional ones are there when the family has them.
#[derive(Debug, Clone)]
struct Block {
    attn_norm: Slot,
    q: Slot,
    k: Slot,
    v: Slot,
    /// Biases of q, k and v.
    qkv_bias: Option<[Slot; 3]>,
    /// Per-head RMS norm weights of q and k.
    qk_norm: Option<[Slot; 2]>,
    out: Slot,
    post_attn_norm: Option<Slot>,
    ffn_norm: Slot,
    gate: Slot,
    up: Slot,
    down: Slot,
    post_ffn_norm: Option<Slot>,
}

impl Block {
    /// Block `i`'s weights in `file`, checked against `c`'s shapes.
    fn find(file: &GgufFile, c: &LlamaConfig, i: usize) -> Result<Block, LlamaError> {
        let arch = c.architecture;
        let (dim, q_cols, kv_cols) = (c.dim, c.q_cols(), c.kv_cols());
        let name = |what: &str| format!("blk.{i}.{what}.weight");
        let slot =
            |what: &str, rows: usize, cols: usize| Slot::find(file, &name(what), Some(rows), cols);
        let bias = |what: &str, cols: usize| {
            Slot::find(file, &format!("blk.{i}.{what}.bias"), Some(1), cols)
        };
        let has_bias = file.tensor(&format!("blk.{i}.attn_q.bias")).is_some();
        let qkv_bias = match arch.qkv_bias() {
            QkvBias::Required => true,
            QkvBias::Optional => has_bias,
            QkvBias::None => false,
        };
        let post_norm = |what: &str| {
            arch.has_post_norms()
                .then(|| slot(what, 1, dim))
                .transpose()
        };
        Ok(Block {
            attn_norm: slot("attn_norm", 1, dim)?,
            q: slot("attn_q", q_cols, dim)?,
            k: slot("attn_k", kv_cols, dim)?,
            v: slot("attn_v", kv_cols, dim)?,
            qkv_bias: qkv_bias
                .then(|| -> Result<_, LlamaError> {
                    Ok([
                        bias("attn_q", q_cols)?,
                        bias("attn_k", kv_cols)?,
                        bias("attn_v", kv_cols)?,
                    ])
                })
                .transpose()?,
            qk_norm: arch
                .has_qk_norm()
                .then(|| -> Result<_, LlamaError> {
                    Ok([
                        slot("attn_q_norm", 1, c.head_dim)?,
                        slot("attn_k_norm", 1, c.head_dim)?,
                    ])
                })
                .transpose()?,
            out: slot("attn_output", dim, q_cols)?,
            post_attn_norm: post_norm("post_attention_norm")?,
            ffn_norm: slot("ffn_norm", 1, dim)?,
            gate: slot("ffn_gate", c.ffn, dim)?,
            up: slot("ffn_up", c.ffn, dim)?,
            down: slot("ffn_down", dim, c.ffn)?,
            post_ffn_norm: post_norm("post_ffw_norm")?,
        })
    }

    /// Bytes of its matrices.
    fn matrix_bytes(&self) -> usize {
        [
            self.q, self.k, self.v, self.out, self.gate, self.up, self.down,
        ]
        .iter()
        .map(|s| s.len)
        .sum()
    }
}

/// A decoder ready to run: the mapped file plus the location of every weight, checked once
/// at load. Named for the llama family whose pass the others extend (see [`Architecture`]).
pub struct Llama {
    file: Arc<GgufFile>,
    config: LlamaConfig,
    embed: Slot,
    blocks: Vec<Block>,
    output_norm: Slot,
    output: Slot,
    activations: Option<Activations>,
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("config", &self.config)
            .finish()
    }
}

/// The activations of one forward pass of `n` tokens (what
/// [`LlamaConfig::forward_scratch_bytes`] counts).
struct Scratch {
    /// The residual stream `[n, dim]`.
    x: Vec<f32>,
    /// A block's input normed, then its output `[n, dim]`.
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// The attention's output `[n, q_cols]` (and raw q before its norm).
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// A block's output normed again, for families with post norms (else empty).
    post: Vec<f32>,
}

impl Scratch {
    fn new(c: &LlamaConfig, n: usize) -> Scratch {
        let post = if c.architecture.has_post_norms() {
            n * c.dim
        } else {
            0
        };
        Scratch {
            x: vec![0f32; n * c.dim],
            xb: vec![0f32; n * c.dim],
            q: vec![0f32; n * c.q_cols()],
            k: vec![0f32; n * c.kv_cols()],
            v: vec![0f32; n * c.kv_cols()],
            att: vec![0f32; n * c.q_cols()],
            gate: vec![0f32; n * c.ffn],
            up: vec![0f32; n * c.ffn],
            post: vec![0f32; post],
        }
    }
}

impl Llama {
    /// Checks that `file` is a decoder of a supported [`Architecture`] whose weights have the
    /// shapes its metadata implies.
    pub fn new(file: Arc<GgufFile>) -> Result<Llama, LlamaError> {
        let arch = Architecture::of(&file)?;
        let mut config = LlamaConfig::read(&file, arch)?;
        let embed = Slot::find(&file, "token_embd.weight", None, config.dim)?;
        config.vocab = embed.rows;
        let blocks = (0..config.layers)
            .map(|i| Block::find(&file, &config, i))
            .collect::<Result<Vec<_>, LlamaError>>()?;
        let output_norm = Slot::find(&file, "output_norm.weight", Some(1), config.dim)?;
        // Tied embeddings (SmolLM2, Gemma, small Qwens) have no output.weight: logits reuse
        // the embedding table.
        let output = match file.tensor("output.weight") {
            Some(_) => Slot::find(&file, "output.weight", Some(config.vocab), config.dim)?,
            None => embed,
        };
        Ok(Llama {
            file,
            config,
            embed,
            blocks,
            output_norm,
            output,
            activations: None,
        })
    }

    /// Runs every matrix with `acts` instead of the kernels' default per format (quantized
    /// activations for q4 weights, as ggml does). [`Activations::F32`] keeps activations in
    /// f32: slower, and only the weights' own rounding remains, which is how tests check the
    /// pass itself against a float reference.
    pub fn with_activations(mut self, acts: Activations) -> Llama {
        self.activations = Some(acts);
        self
    }

    /// `out = x · wᵀ (+ bias)` with this model's activation mode.
    fn matmul(
        &self,
        out: &mut [f32],
        x: &[f32],
        n: usize,
        w: Slot,
        bias: Option<Slot>,
    ) -> Result<(), KernelError> {
        let w = self.view(w);
        let bias = bias.map(|b| self.vector(b));
        match self.activations {
            None => ops::matmul(out, x, n, &w, bias),
            Some(acts) => matmul_with(active_variant(), acts, out, x, n, &w, bias),
        }
    }

    /// The hyperparameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The mapped file.
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// An empty KV cache for up to `capacity` positions (at most the model's context).
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache, LlamaError> {
        if capacity > self.config.context {
            return Err(LlamaError::Kernel(KernelError::InvalidArgument(format!(
                "{capacity} positions exceed the model's context of {}",
                self.config.context
            ))));
        }
        Ok(KvCache::new(
            self.config.layers,
            capacity,
            self.config.kv_cols(),
        )?)
    }

    /// Bytes of weights one forward pass reads (every matrix once, whatever the token count).
    pub fn weight_bytes(&self) -> usize {
        let per_block: usize = self.blocks.iter().map(Block::matrix_bytes).sum();
        per_block + self.output.len
    }

    fn view(&self, s: Slot) -> WeightView<'_> {
        s.view(&self.file)
    }

    fn vector(&self, s: Slot) -> &[f32] {
        s.vector(&self.file)
    }

    /// Runs `tokens` (at positions `cache.len()..`) through the model, commits them to the
    /// cache, and writes the logits of the last one into `logits [vocab]`.
    ///
    /// `interrupted` is polled before each block and inside the attention; when it returns
    /// true the pass stops with [`LlamaError::Interrupted`] and the cache keeps only what it
    /// had committed before.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: &mut [f32],
        interrupted: &dyn Fn() -> bool,
    ) -> Result<(), LlamaError> {
        self.forward_observed(tokens, cache, logits, interrupted, &mut |_, _| {})
    }

    /// The logits after `ids` (the first step of a generation), from a cache of their length.
    pub fn logits_after(&self, ids: &[u32]) -> Result<Vec<f32>, LlamaError> {
        let mut cache = self.new_cache(ids.len())?;
        let mut logits = vec![0f32; self.config.vocab];
        self.forward(ids, &mut cache, &mut logits, &|| false)?;
        Ok(logits)
    }

    /// `count` greedy ids after `prompt` (the first largest logit each step, end-of-text
    /// tokens included), one pass per new token through the cache: what greedy decoding by
    /// another runtime is compared with.
    pub fn greedy(&self, prompt: &[u32], count: usize) -> Result<Vec<u32>, LlamaError> {
        let mut cache = self.new_cache(prompt.len().saturating_add(count))?;
        let mut logits = vec![0f32; self.config.vocab];
        self.forward(prompt, &mut cache, &mut logits, &|| false)?;
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let next = ops::argmax(&logits)? as u32;
            ids.push(next);
            self.forward(&[next], &mut cache, &mut logits, &|| false)?;
        }
        Ok(ids)
    }

    /// [`Llama::forward`], handing `observe(layer, x)` the residual stream `x [n, dim]` after
    /// each block: how numeric drift between kernel variants or activation modes is traced
    /// layer by layer (`examples/llama_drift.rs`).
    pub fn forward_observed(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: &mut [f32],
        interrupted: &dyn Fn() -> bool,
        observe: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<(), LlamaError> {
        let c = &self.config;
        let n = tokens.len();
        self.check_pass(n, cache, logits)?;
        let ids: Vec<i32> = tokens
            .iter()
            .map(|&t| i32::try_from(t).unwrap_or(-1))
            .collect();
        let mut s = Scratch::new(c, n);
        ops::embed(&mut s.x, &self.view(self.embed), &ids)?;
        if c.architecture.scales_embeddings() {
            ops::scale(&mut s.x, (c.dim as f32).sqrt())?;
        }
        for (layer, b) in self.blocks.iter().enumerate() {
            if interrupted() {
                return Err(LlamaError::Interrupted);
            }
            self.attention_block(layer, b, &mut s, cache, interrupted)?;
            self.ffn_block(b, &mut s)?;
            observe(layer, &s.x);
        }
        if interrupted() {
            return Err(LlamaError::Interrupted);
        }
        cache.advance(n)?;
        let last = &s.x[(n - 1) * c.dim..];
        let normed = &mut s.xb[..c.dim];
        ops::rms_norm(
            normed,
            last,
            c.dim,
            self.vector(self.output_norm),
            c.rms_eps,
        )?;
        self.matmul(logits, normed, 1, self.output, None)?;
        Ok(())
    }

    /// Refuses a pass of `n` tokens with a cache or logits of another model's shape.
    fn check_pass(&self, n: usize, cache: &KvCache, logits: &[f32]) -> Result<(), LlamaError> {
        let c = &self.config;
        if n == 0 {
            return Err(KernelError::InvalidArgument("forward: no tokens".into()).into());
        }
        if cache.layers() != c.layers || cache.kv_cols() != c.kv_cols() {
            return Err(KernelError::ShapeMismatch(format!(
                "kv cache of {} layers x {} columns, model needs {} x {}",
                cache.layers(),
                cache.kv_cols(),
                c.layers,
                c.kv_cols()
            ))
            .into());
        }
        if logits.len() != c.vocab {
            return Err(KernelError::ShapeMismatch(format!(
                "logits of {}, vocabulary of {}",
                logits.len(),
                c.vocab
            ))
            .into());
        }
        Ok(())
    }

    /// Block `layer`'s attention and its residual add, on `s.x`.
    fn attention_block(
        &self,
        layer: usize,
        b: &Block,
        s: &mut Scratch,
        cache: &mut KvCache,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<(), LlamaError> {
        let c = &self.config;
        let n = s.x.len() / c.dim;
        ops::rms_norm(&mut s.xb, &s.x, c.dim, self.vector(b.attn_norm), c.rms_eps)?;
        let [q_bias, k_bias, v_bias] = match b.qkv_bias {
            Some(biases) => biases.map(Some),
            None => [None; 3],
        };
        match b.qk_norm {
            // Project into the spare buffers, then norm each head into place.
            Some([q_norm, k_norm]) => {
                self.matmul(&mut s.att, &s.xb, n, b.q, q_bias)?;
                ops::rms_norm(&mut s.q, &s.att, c.head_dim, self.vector(q_norm), c.rms_eps)?;
                self.matmul(&mut s.v, &s.xb, n, b.k, k_bias)?;
                ops::rms_norm(&mut s.k, &s.v, c.head_dim, self.vector(k_norm), c.rms_eps)?;
            }
            None => {
                self.matmul(&mut s.q, &s.xb, n, b.q, q_bias)?;
                self.matmul(&mut s.k, &s.xb, n, b.k, k_bias)?;
            }
        }
        self.matmul(&mut s.v, &s.xb, n, b.v, v_bias)?;
        let window = c.sliding_window.filter(|w| w.slides(layer));
        let rope_base = window.map_or(c.rope_base, |w| w.rope_base);
        let (pos, layout) = (cache.len(), c.architecture.rope_layout());
        ops::rope(&mut s.q, c.heads, c.head_dim, pos, rope_base, layout)?;
        ops::rope(&mut s.k, c.kv_heads, c.head_dim, pos, rope_base, layout)?;
        // The kernel scales scores by 1/√head_dim; a family with another scale scales q.
        let q_scale = c.attention_scale * (c.head_dim as f32).sqrt();
        if q_scale != 1.0 {
            ops::scale(&mut s.q, q_scale)?;
        }
        cache.attend_until(
            layer,
            &mut s.att,
            &s.q,
            &s.k,
            &s.v,
            c.heads,
            c.kv_heads,
            window.map_or(usize::MAX, |w| w.window),
            interrupted,
        )?;
        self.matmul(&mut s.xb, &s.att, n, b.out, None)?;
        self.residual(&mut s.x, &s.xb, &mut s.post, b.post_attn_norm)
    }

    /// Block `b`'s FFN and its residual add, on `s.x`.
    fn ffn_block(&self, b: &Block, s: &mut Scratch) -> Result<(), LlamaError> {
        let c = &self.config;
        let n = s.x.len() / c.dim;
        ops::rms_norm(&mut s.xb, &s.x, c.dim, self.vector(b.ffn_norm), c.rms_eps)?;
        self.matmul(&mut s.gate, &s.xb, n, b.gate, None)?;
        self.matmul(&mut s.up, &s.xb, n, b.up, None)?;
        match c.architecture.activation() {
            GatedActivation::Silu => ops::swiglu(&mut s.gate, &s.up)?,
            GatedActivation::GeluTanh => ops::geglu_tanh(&mut s.gate, &s.up)?,
        }
        self.matmul(&mut s.xb, &s.gate, n, b.down, None)?;
        self.residual(&mut s.x, &s.xb, &mut s.post, b.post_ffn_norm)
    }

    /// `x += out`, with `out` RMS-normed by `post_norm` first (into `post`) when the family
    /// norms a sublayer's output.
    fn residual(
        &self,
        x: &mut [f32],
        out: &[f32],
        post: &mut [f32],
        post_norm: Option<Slot>,
    ) -> Result<(), LlamaError> {
        let c = &self.config;
        match post_norm {
            Some(w) => {
                ops::rms_norm(post, out, c.dim, self.vector(w), c.rms_eps)?;
                add_into(x, post);
            }
            None => add_into(x, out),
        }
        Ok(())
    }
}

/// [heads, kv heads, head dim] of `arch` in `file`: the head dim from
/// `attention.key_length`, else dim / heads; values of another size and partial rope refused.
fn read_heads(file: &GgufFile, arch: Architecture, dim: usize) -> Result<[usize; 3], LlamaError> {
    let key = |k: &str| arch.key(k);
    let heads = meta_usize(file, &key("attention.head_count"))?;
    let kv_heads = optional_usize(file, &key("attention.head_count_kv"))?.unwrap_or(heads);
    if !heads.is_multiple_of(kv_heads) {
        return Err(LlamaError::Metadata(format!(
            "{heads} heads are not a multiple of {kv_heads} kv heads"
        )));
    }
    let head_dim = match optional_usize(file, &key("attention.key_length"))? {
        Some(d) => d,
        None if dim.is_multiple_of(heads) => dim / heads,
        None => {
            return Err(LlamaError::Metadata(format!(
                "{dim} dims do not divide into {heads} heads and {} is missing",
                key("attention.key_length")
            )))
        }
    };
    let unsupported = |what: String| LlamaError::Unsupported {
        architecture: arch.name(),
        what,
    };
    let value_dim = optional_usize(file, &key("attention.value_length"))?.unwrap_or(head_dim);
    if value_dim != head_dim {
        return Err(unsupported(format!(
            "values of {value_dim} per head with keys of {head_dim}"
        )));
    }
    let rope_dims = optional_usize(file, &key("rope.dimension_count"))?.unwrap_or(head_dim);
    if rope_dims != head_dim {
        return Err(unsupported(format!(
            "partial rope ({rope_dims} of {head_dim} dims)"
        )));
    }
    Ok([heads, kv_heads, head_dim])
}

/// The integer metadata `key` if present (positive, at most 2^24), an error if present but
/// not such an integer.
fn optional_usize(file: &GgufFile, key: &str) -> Result<Option<usize>, LlamaError> {
    match file.metadata(key) {
        None => Ok(None),
        Some(_) => meta_usize(file, key).map(Some),
    }
}

/// The float metadata `key` if present, an error if present but not a number.
fn optional_f32(file: &GgufFile, key: &str) -> Result<Option<f32>, LlamaError> {
    match file.metadata(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|v| Some(v as f32))
            .ok_or_else(|| LlamaError::Metadata(format!("{key} is not a number"))),
    }
}

/// Texts of the tokens that end a chat turn besides the model's EOS (ChatML's end of turn and
/// the end of text), as the guest SDK's chat stops at them.
pub const END_OF_TURN_TEXTS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

/// The ids a chat reply ends at, from `file`'s vocabulary: its EOS and the tokens of
/// [`END_OF_TURN_TEXTS`], without repeats (the ids the `chat` skill stops at).
pub fn turn_stop_ids(file: &GgufFile) -> Vec<u32> {
    let mut stop: Vec<u32> = file
        .get_u32("tokenizer.ggml.eos_token_id")
        .into_iter()
        .collect();
    let tokens = file
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap_or_default();
    for text in END_OF_TURN_TEXTS {
        if let Some(id) = tokens.iter().position(|t| *t == text) {
            if !stop.contains(&(id as u32)) {
                stop.push(id as u32);
            }
        }
    }
    stop
}

/// How far `logits` are from `reference`: (max |Δ|, RMS of Δ), both in standard deviations of
/// `reference`, the scale on which a pass's numeric error is judged against a float reference
/// (the decoder tests and `examples/llama_drift.rs` use it).
pub fn logit_error(logits: &[f32], reference: &[f32]) -> (f64, f64) {
    let n = reference.len() as f64;
    let mean = reference.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (reference
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let (mut max, mut sq) = (0f64, 0f64);
    for (a, b) in logits.iter().zip(reference) {
        let d = (*a as f64 - *b as f64).abs();
        max = max.max(d);
        sq += d * d;
    }
    (max / std, (sq / n).sqrt() / std)
}

/// (median, worst) of per-prompt errors such as [`logit_error`]'s: how the decoder tests and
/// `examples/llama_drift.rs` sum them up over their prompts. Both NaN if there are none.
pub fn median_and_worst(errors: &[f64]) -> (f64, f64) {
    let mut v = errors.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    match v.len() {
        0 => (f64::NAN, f64::NAN),
        n if n.is_multiple_of(2) => ((v[m - 1] + v[m]) / 2.0, v[n - 1]),
        n => (v[m], v[n - 1]),
    }
}

/// `x += y`, elementwise (the residual connections).
fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
