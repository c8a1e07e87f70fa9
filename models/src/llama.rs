//! The llama decoder architecture (SmolLM2 and its kin) over a mapped GGUF file: the
//! hyperparameters from its metadata, the weights as zero-copy views, and the fused forward
//! pass on the kernels. Guests can run the same pass themselves through the primitive kernels;
//! both call the same ops in the same order, so their tokens agree exactly.

use std::sync::Arc;

use edgenlu_kernels::matmul::{matmul_with, Activations};
use edgenlu_kernels::ops::{self, KvCache, RopeLayout};
use edgenlu_kernels::{active_variant, KernelError, WeightView};

use crate::gguf::GgufFile;
use crate::weights::{meta_usize, require_architecture, ModelError, Slot};

/// Why a llama model cannot be loaded or run.
pub type LlamaError = ModelError;

/// Hyperparameters of a llama model, from `llama.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub dim: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
    /// FFN inner size.
    pub ffn: usize,
    /// Vocabulary size (rows of the output projection).
    pub vocab: usize,
    /// Longest context the model was trained for.
    pub context: usize,
    /// Rope frequency base.
    pub rope_base: f32,
    /// Epsilon of the rms norms.
    pub rms_eps: f32,
}

impl LlamaConfig {
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
        let widest = self.dim.max(self.ffn);
        let activations = n
            .saturating_mul(4 * self.dim + 2 * self.kv_cols() + 2 * self.ffn + 1)
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

/// The weights of one block.
#[derive(Debug, Clone)]
struct Block {
    attn_norm: Slot,
    q: Slot,
    k: Slot,
    v: Slot,
    out: Slot,
    ffn_norm: Slot,
    gate: Slot,
    up: Slot,
    down: Slot,
}

/// A llama model ready to run: the mapped file plus the location of every weight, checked
/// once at load.
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

impl Llama {
    /// Checks that `file` is a llama model whose weights have the shapes its metadata implies.
    pub fn new(file: Arc<GgufFile>) -> Result<Llama, LlamaError> {
        require_architecture(&file, "llama")?;
        let dim = meta_usize(&file, "llama.embedding_length")?;
        let heads = meta_usize(&file, "llama.attention.head_count")?;
        let kv_heads = match file.get_u64("llama.attention.head_count_kv") {
            None => heads,
            Some(_) => meta_usize(&file, "llama.attention.head_count_kv")?,
        };
        if !dim.is_multiple_of(heads) || !heads.is_multiple_of(kv_heads) {
            return Err(LlamaError::Metadata(format!(
                "{dim} dims, {heads} heads, {kv_heads} kv heads do not divide evenly"
            )));
        }
        let head_dim = dim / heads;
        if let Some(rope_dims) = file.get_u64("llama.rope.dimension_count") {
            if rope_dims != head_dim as u64 {
                return Err(LlamaError::Metadata(format!(
                    "partial rope ({rope_dims} of {head_dim} dims) is not supported"
                )));
            }
        }
        let rope_base = file.get_f32("llama.rope.freq_base").unwrap_or(10000.0);
        let rms_eps = file
            .get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap_or(1e-5);
        if !(rope_base.is_finite() && rope_base > 1.0 && rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(LlamaError::Metadata(format!(
                "rope base {rope_base}, rms epsilon {rms_eps}"
            )));
        }
        let layers = meta_usize(&file, "llama.block_count")?;
        let ffn = meta_usize(&file, "llama.feed_forward_length")?;
        let context = meta_usize(&file, "llama.context_length")?;
        let slot =
            |name: &str, rows: Option<usize>, cols: usize| Slot::find(&file, name, rows, cols);
        let kv_cols = kv_heads * head_dim;
        let embed = slot("token_embd.weight", None, dim)?;
        let vocab = embed.rows;
        let blocks = (0..layers)
            .map(|i| {
                let n = |what: &str| format!("blk.{i}.{what}.weight");
                Ok(Block {
                    attn_norm: slot(&n("attn_norm"), Some(1), dim)?,
                    q: slot(&n("attn_q"), Some(dim), dim)?,
                    k: slot(&n("attn_k"), Some(kv_cols), dim)?,
                    v: slot(&n("attn_v"), Some(kv_cols), dim)?,
                    out: slot(&n("attn_output"), Some(dim), dim)?,
                    ffn_norm: slot(&n("ffn_norm"), Some(1), dim)?,
                    gate: slot(&n("ffn_gate"), Some(ffn), dim)?,
                    up: slot(&n("ffn_up"), Some(ffn), dim)?,
                    down: slot(&n("ffn_down"), Some(dim), ffn)?,
                })
            })
            .collect::<Result<Vec<_>, LlamaError>>()?;
        let output_norm = slot("output_norm.weight", Some(1), dim)?;
        // Tied embeddings (SmolLM2) have no output.weight: logits reuse the embedding table.
        let output = match file.tensor("output.weight") {
            Some(_) => slot("output.weight", Some(vocab), dim)?,
            None => embed,
        };
        let config = LlamaConfig {
            layers,
            dim,
            heads,
            kv_heads,
            head_dim,
            ffn,
            vocab,
            context,
            rope_base,
            rms_eps,
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

    /// `out = x · wᵀ` with this model's activation mode.
    fn matmul(&self, out: &mut [f32], x: &[f32], n: usize, w: Slot) -> Result<(), KernelError> {
        let w = self.view(w);
        match self.activations {
            None => ops::matmul(out, x, n, &w, None),
            Some(acts) => matmul_with(active_variant(), acts, out, x, n, &w, None),
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
        let per_block: usize = self
            .blocks
            .iter()
            .map(|b| b.q.len + b.k.len + b.v.len + b.out.len + b.gate.len + b.up.len + b.down.len)
            .sum();
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
        let ids: Vec<i32> = tokens
            .iter()
            .map(|&t| i32::try_from(t).unwrap_or(-1))
            .collect();
        let pos = cache.len();
        let (dim, kv) = (c.dim, c.kv_cols());
        let mut x = vec![0f32; n * dim];
        let mut xb = vec![0f32; n * dim];
        let mut q = vec![0f32; n * dim];
        let mut k = vec![0f32; n * kv];
        let mut v = vec![0f32; n * kv];
        let mut att = vec![0f32; n * dim];
        let mut gate = vec![0f32; n * c.ffn];
        let mut up = vec![0f32; n * c.ffn];
        ops::embed(&mut x, &self.view(self.embed), &ids)?;
        for (layer, b) in self.blocks.iter().enumerate() {
            if interrupted() {
                return Err(LlamaError::Interrupted);
            }
            ops::rms_norm(&mut xb, &x, dim, self.vector(b.attn_norm), c.rms_eps)?;
            self.matmul(&mut q, &xb, n, b.q)?;
            self.matmul(&mut k, &xb, n, b.k)?;
            self.matmul(&mut v, &xb, n, b.v)?;
            ops::rope(
                &mut q,
                c.heads,
                c.head_dim,
                pos,
                c.rope_base,
                RopeLayout::Interleaved,
            )?;
            ops::rope(
                &mut k,
                c.kv_heads,
                c.head_dim,
                pos,
                c.rope_base,
                RopeLayout::Interleaved,
            )?;
            cache.attend_until(
                layer,
                &mut att,
                &q,
                &k,
                &v,
                c.heads,
                c.kv_heads,
                interrupted,
            )?;
            self.matmul(&mut xb, &att, n, b.out)?;
            add_into(&mut x, &xb);
            ops::rms_norm(&mut xb, &x, dim, self.vector(b.ffn_norm), c.rms_eps)?;
            self.matmul(&mut gate, &xb, n, b.gate)?;
            self.matmul(&mut up, &xb, n, b.up)?;
            ops::swiglu(&mut gate, &up)?;
            self.matmul(&mut xb, &gate, n, b.down)?;
            add_into(&mut x, &xb);
            observe(layer, &x);
        }
        if interrupted() {
            return Err(LlamaError::Interrupted);
        }
        cache.advance(n)?;
        let last = &x[(n - 1) * dim..];
        let mut normed = vec![0f32; dim];
        ops::rms_norm(
            &mut normed,
            last,
            dim,
            self.vector(self.output_norm),
            c.rms_eps,
        )?;
        self.matmul(logits, &normed, 1, self.output)?;
        Ok(())
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

/// `x += y`, elementwise (the residual connections).
fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
