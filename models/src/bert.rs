//! The BERT encoder (llama.cpp's BERT GGUF layout, e.g. all-MiniLM-L6-v2) as a native forward
//! pass on the kernels. It calls the same ops in the same order as the guest SDK's encoder
//! (`guest/sdk/src/encoder.rs`), which composes them through the `kernels` interface, so both
//! give the same states and the same sentence embedding.

use std::sync::Arc;

use edgenlu_kernels::ops;
use edgenlu_kernels::KernelError;

use crate::gguf::GgufFile;
use crate::weights::{meta_usize, require_architecture, ModelError, Slot};

/// Why a bert model cannot be loaded or run.
pub type BertError = ModelError;

/// Hyperparameters of a BERT model, from `bert.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Transformer layers.
    pub layers: usize,
    /// Hidden size: values per token state and in the sentence embedding.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN inner size.
    pub ffn: usize,
    /// Most tokens one pass takes (the position table's rows).
    pub context: usize,
    /// Epsilon of the layer norms.
    pub eps: f32,
}

impl BertConfig {
    /// Upper bound of the memory one [`Bert::encode`] of `n` tokens allocates besides its
    /// outputs (activations, the attention's and the matmuls' scratch): a host charges it
    /// before the pass.
    pub fn encode_scratch_bytes(&self, n: usize) -> usize {
        // Ten buffers of [n, dim] besides the states, one of [n, ffn], the ids and positions.
        let activations = n
            .saturating_mul(10 * self.dim + self.ffn + 2)
            .saturating_mul(size_of::<f32>());
        let widest = self.ffn.max(self.dim);
        let matmul = edgenlu_kernels::matmul::scratch_bytes(n, widest, widest);
        activations
            .saturating_add(matmul)
            .saturating_add(ops::attention_scratch_bytes(n, self.dim / self.heads))
    }

    /// Bytes of the outputs of [`Bert::encode`] for `n` tokens: the states and the embedding.
    pub fn output_bytes(&self, n: usize) -> usize {
        n.saturating_add(1)
            .saturating_mul(self.dim)
            .saturating_mul(size_of::<f32>())
    }
}

/// A weight and its bias.
#[derive(Debug, Clone, Copy)]
struct Affine {
    weight: Slot,
    bias: Slot,
}

/// The weights of one layer.
#[derive(Debug, Clone)]
struct Layer {
    q: Affine,
    k: Affine,
    v: Affine,
    attn_out: Affine,
    attn_norm: Affine,
    up: Affine,
    down: Affine,
    out_norm: Affine,
}

/// A BERT encoder ready to run: the mapped file plus the location of every weight, checked
/// once at load.
pub struct Bert {
    file: Arc<GgufFile>,
    config: BertConfig,
    token_embd: Slot,
    position_embd: Slot,
    token_types: Slot,
    embd_norm: Affine,
    layers: Vec<Layer>,
}

/// The sentence embedding and every token's state of one pass.
#[derive(Debug, Clone)]
pub struct Encoding {
    /// Last hidden state, `[tokens, dim]`.
    pub states: Vec<f32>,
    /// Mean-pooled, L2-normalized sentence embedding, `[dim]`.
    pub embedding: Vec<f32>,
}

impl Bert {
    /// Checks that `file` is a BERT model whose weights have the shapes its metadata implies.
    pub fn new(file: Arc<GgufFile>) -> Result<Bert, BertError> {
        require_architecture(&file, "bert")?;
        let dim = meta_usize(&file, "bert.embedding_length")?;
        let heads = meta_usize(&file, "bert.attention.head_count")?;
        if !dim.is_multiple_of(heads) {
            return Err(BertError::Metadata(format!(
                "{dim} dims do not divide into {heads} heads"
            )));
        }
        let ffn = meta_usize(&file, "bert.feed_forward_length")?;
        let context = meta_usize(&file, "bert.context_length")?;
        let layers = meta_usize(&file, "bert.block_count")?;
        // BERT's own epsilon when the file does not say, as the guest SDK's encoder takes it.
        let eps = file
            .get_f32("bert.attention.layer_norm_epsilon")
            .unwrap_or(1e-12);
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(BertError::Metadata(format!("layer norm epsilon {eps}")));
        }
        let slot =
            |name: &str, rows: Option<usize>, cols: usize| Slot::find(&file, name, rows, cols);
        let affine = |name: &str, rows: usize, cols: usize| -> Result<Affine, BertError> {
            Ok(Affine {
                weight: slot(&format!("{name}.weight"), Some(rows), cols)?,
                bias: slot(&format!("{name}.bias"), Some(1), rows)?,
            })
        };
        let norm = |name: &str| -> Result<Affine, BertError> {
            Ok(Affine {
                weight: slot(&format!("{name}.weight"), Some(1), dim)?,
                bias: slot(&format!("{name}.bias"), Some(1), dim)?,
            })
        };
        let layers = (0..layers)
            .map(|i| {
                let n = |what: &str| format!("blk.{i}.{what}");
                Ok(Layer {
                    q: affine(&n("attn_q"), dim, dim)?,
                    k: affine(&n("attn_k"), dim, dim)?,
                    v: affine(&n("attn_v"), dim, dim)?,
                    attn_out: affine(&n("attn_output"), dim, dim)?,
                    attn_norm: norm(&n("attn_output_norm"))?,
                    up: affine(&n("ffn_up"), ffn, dim)?,
                    down: affine(&n("ffn_down"), dim, ffn)?,
                    out_norm: norm(&n("layer_output_norm"))?,
                })
            })
            .collect::<Result<Vec<_>, BertError>>()?;
        let config = BertConfig {
            layers: layers.len(),
            dim,
            heads,
            ffn,
            context,
            eps,
        };
        Ok(Bert {
            token_embd: slot("token_embd.weight", None, dim)?,
            position_embd: slot("position_embd.weight", Some(context), dim)?,
            token_types: slot("token_types.weight", None, dim)?,
            embd_norm: norm("token_embd_norm")?,
            layers,
            config,
            file,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Rows of the token embedding table: ids must be below it.
    pub fn vocab(&self) -> usize {
        self.token_embd.rows
    }

    /// `out = x · wᵀ + b` for `n` rows of `x`.
    fn affine(&self, out: &mut [f32], x: &[f32], n: usize, a: Affine) -> Result<(), BertError> {
        let bias = a.bias.vector(&self.file);
        Ok(ops::matmul(
            out,
            x,
            n,
            &a.weight.view(&self.file),
            Some(bias),
        )?)
    }

    fn layer_norm(&self, out: &mut [f32], x: &[f32], a: Affine) -> Result<(), BertError> {
        let (g, b) = (a.weight.vector(&self.file), a.bias.vector(&self.file));
        Ok(ops::layer_norm(
            out,
            x,
            self.config.dim,
            g,
            b,
            self.config.eps,
        )?)
    }

    /// Runs `ids` (1 to `context` tokens, one sequence, every token attended) through the
    /// encoder: the last hidden state and its mean-pooled, L2-normalized embedding, as
    /// sentence-transformers computes them. `interrupted` is polled before each layer and
    /// inside the attention; when it returns true the pass stops with
    /// [`BertError::Interrupted`].
    pub fn encode(
        &self,
        ids: &[u32],
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Encoding, BertError> {
        let c = &self.config;
        let n = ids.len();
        if n == 0 || n > c.context {
            return Err(KernelError::InvalidArgument(format!(
                "{n} tokens; the encoder takes 1 to {}",
                c.context
            ))
            .into());
        }
        let ids: Vec<i32> = ids
            .iter()
            .map(|&t| i32::try_from(t).unwrap_or(-1))
            .collect();
        let positions: Vec<i32> = (0..n as i32).collect();
        let types = vec![0i32; n];
        let dim = c.dim;
        let buf = |cols: usize| vec![0f32; n * cols];
        // Embeddings: word + position + token type, then layer norm.
        let (mut words, mut pos, mut sum, mut h) = (buf(dim), buf(dim), buf(dim), buf(dim));
        ops::embed(&mut words, &self.token_embd.view(&self.file), &ids)?;
        ops::embed(&mut pos, &self.position_embd.view(&self.file), &positions)?;
        ops::add(&mut sum, &words, &pos)?;
        ops::embed(&mut pos, &self.token_types.view(&self.file), &types)?;
        ops::add(&mut words, &sum, &pos)?;
        self.layer_norm(&mut h, &words, self.embd_norm)?;

        let (mut q, mut k, mut v, mut attn) = (buf(dim), buf(dim), buf(dim), buf(dim));
        let (mut proj, mut resid, mut h1, mut up) = (buf(dim), buf(dim), buf(dim), buf(c.ffn));
        let head_dim = dim / c.heads;
        for l in &self.layers {
            if interrupted() {
                return Err(BertError::Interrupted);
            }
            self.affine(&mut q, &h, n, l.q)?;
            self.affine(&mut k, &h, n, l.k)?;
            self.affine(&mut v, &h, n, l.v)?;
            ops::attention_until(
                &mut attn,
                &q,
                &k,
                &v,
                n,
                n,
                c.heads,
                c.heads,
                head_dim,
                false,
                interrupted,
            )?;
            self.affine(&mut proj, &attn, n, l.attn_out)?;
            ops::add(&mut resid, &proj, &h)?;
            self.layer_norm(&mut h1, &resid, l.attn_norm)?;
            self.affine(&mut up, &h1, n, l.up)?;
            ops::gelu(&mut up)?;
            self.affine(&mut proj, &up, n, l.down)?;
            ops::add(&mut resid, &proj, &h1)?;
            self.layer_norm(&mut h, &resid, l.out_norm)?;
        }
        let mut embedding = vec![0f32; dim];
        ops::mean_pool(&mut embedding, &h, n, dim, n)?;
        ops::l2_normalize(&mut embedding, dim)?;
        Ok(Encoding {
            states: h,
            embedding,
        })
    }
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("config", &self.config)
            .finish()
    }
}
