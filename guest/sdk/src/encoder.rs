//! A BERT encoder (llama.cpp's BERT GGUF layout, e.g. all-MiniLM-L6-v2) composed of the host's
//! kernels: the architecture runs here, in Wasm; the weights never leave the host.

use crate::decide::{self, Span};
use crate::tensor::{f32s, ids as ids_tensor, positions};
use crate::{invalid, kernels, meta, settings, Encoded, Model, Result, Tensor, TokenSpan};

/// A weight and its bias.
type Affine = (Tensor, Tensor);

/// Weights of one transformer layer, as named in llama.cpp's BERT GGUF layout.
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

/// A BERT encoder whose weights stay on the host; the handles are taken once, at [`Bert::open`].
pub struct Bert {
    token_embd: Tensor,
    position_embd: Tensor,
    token_types: Tensor,
    embd_norm: Affine,
    layers: Vec<Layer>,
    dim: u32,
    ff: u32,
    heads: u32,
    context: u32,
    eps: f32,
}

/// A positive `u32` hyperparameter the encoder cannot do without.
fn hyper(model: &Model, key: &str) -> Result<u32> {
    match meta::u64(model, key) {
        Ok(Some(v)) if v > 0 && v <= u32::MAX as u64 => Ok(v as u32),
        _ => Err(invalid(format!(
            "encoder metadata {key} is missing or not a positive integer"
        ))),
    }
}

impl Bert {
    /// Opens the model `name` (it must be granted to the component) and takes a handle to
    /// each weight.
    pub fn open(name: &str) -> Result<Bert> {
        let model = Model::open(name)?;
        if model.architecture() != "bert" {
            return Err(invalid(format!(
                "{name} is a {} model, not bert",
                model.architecture()
            )));
        }
        let w = |n: &str| model.weight(n);
        let pair = |n: &str| -> Result<Affine> {
            Ok((
                model.weight(&format!("{n}.weight"))?,
                model.weight(&format!("{n}.bias"))?,
            ))
        };
        let blocks = hyper(&model, "bert.block_count")?;
        let layers = (0..blocks)
            .map(|i| {
                let p = |n: &str| pair(&format!("blk.{i}.{n}"));
                Ok(Layer {
                    q: p("attn_q")?,
                    k: p("attn_k")?,
                    v: p("attn_v")?,
                    attn_out: p("attn_output")?,
                    attn_norm: p("attn_output_norm")?,
                    up: p("ffn_up")?,
                    down: p("ffn_down")?,
                    out_norm: p("layer_output_norm")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // BERT's own epsilon when the file does not say.
        let eps = meta::f32(&model, "bert.attention.layer_norm_epsilon")
            .unwrap_or(None)
            .unwrap_or(1e-12);
        Ok(Bert {
            token_embd: w("token_embd.weight")?,
            position_embd: w("position_embd.weight")?,
            token_types: w("token_types.weight")?,
            embd_norm: pair("token_embd_norm")?,
            layers,
            dim: hyper(&model, "bert.embedding_length")?,
            ff: hyper(&model, "bert.feed_forward_length")?,
            heads: hyper(&model, "bert.attention.head_count")?,
            context: hyper(&model, "bert.context_length")?,
            eps,
        })
    }

    /// Values per token of the hidden states, and of the sentence embedding.
    pub fn dim(&self) -> u32 {
        self.dim
    }

    /// Most tokens one pass takes (`bert.context_length`).
    pub fn context(&self) -> u32 {
        self.context
    }

    /// The last hidden state [n, dim] of `ids` and their mean-pooled, L2-normalized sentence
    /// embedding \[dim\], as sentence-transformers computes it.
    pub fn encode(&self, ids: &[u32]) -> Result<(Tensor, Tensor)> {
        let n = ids.len() as u32;
        if n == 0 || n > self.context {
            return Err(invalid(format!(
                "{n} tokens; the encoder takes 1 to {}",
                self.context
            )));
        }
        let ids_t = ids_tensor(ids)?;
        let positions = positions(n)?;
        let types = Tensor::from_i32(&[n], &vec![0; n as usize])?;
        let (dim, ff) = (self.dim, self.ff);

        // Embeddings: word + position + token type, then layer norm.
        let words = f32s(&[n, dim])?;
        let pos = f32s(&[n, dim])?;
        let sum = f32s(&[n, dim])?;
        kernels::embed(&words, &self.token_embd, &ids_t)?;
        kernels::embed(&pos, &self.position_embd, &positions)?;
        kernels::add(&sum, &words, &pos)?;
        kernels::embed(&pos, &self.token_types, &types)?;
        kernels::add(&words, &sum, &pos)?;
        let h = f32s(&[n, dim])?;
        kernels::layer_norm(&h, &words, &self.embd_norm.0, &self.embd_norm.1, self.eps)?;

        // Scratch buffers shared by every layer.
        let (q, k, v) = (f32s(&[n, dim])?, f32s(&[n, dim])?, f32s(&[n, dim])?);
        let attn = f32s(&[n, dim])?;
        let proj = f32s(&[n, dim])?;
        let resid = f32s(&[n, dim])?;
        let h1 = f32s(&[n, dim])?;
        let up = f32s(&[n, ff])?;
        for l in &self.layers {
            kernels::matmul(&q, &h, &l.q.0, Some(&l.q.1))?;
            kernels::matmul(&k, &h, &l.k.0, Some(&l.k.1))?;
            kernels::matmul(&v, &h, &l.v.0, Some(&l.v.1))?;
            kernels::attention(&attn, &q, &k, &v, self.heads, self.heads, false)?;
            kernels::matmul(&proj, &attn, &l.attn_out.0, Some(&l.attn_out.1))?;
            kernels::add(&resid, &proj, &h)?;
            kernels::layer_norm(&h1, &resid, &l.attn_norm.0, &l.attn_norm.1, self.eps)?;
            kernels::matmul(&up, &h1, &l.up.0, Some(&l.up.1))?;
            kernels::gelu(&up)?;
            kernels::matmul(&proj, &up, &l.down.0, Some(&l.down.1))?;
            kernels::add(&resid, &proj, &h1)?;
            kernels::layer_norm(&h, &resid, &l.out_norm.0, &l.out_norm.1, self.eps)?;
        }
        let pooled = f32s(&[dim])?;
        kernels::mean_pool(&pooled, &h, n)?;
        kernels::l2_normalize(&pooled)?;
        Ok((h, pooled))
    }
}

/// A text through the skill's encoder: what [`crate::datastore::Datastore::understand`] decides
/// on.
pub struct EncodedText {
    /// The tokens the encoder saw, with their byte spans in the text.
    pub tokens: Vec<TokenSpan>,
    /// Last hidden state [tokens, dim].
    pub hidden: Tensor,
    /// Mean-pooled, L2-normalized sentence embedding [dim].
    pub pooled: Tensor,
    /// Values per token.
    pub dim: u32,
}

/// Tokens the encoder sees at most when the `max-tokens` setting is absent: as the model's
/// `tokenizer.json` truncates.
pub const DEFAULT_MAX_TOKENS: u32 = 128;

impl EncodedText {
    /// The request's text through the encoder: the encoding the host's router handed over
    /// with the request when there is one (checked to fit the text), else [`EncodedText::of`].
    pub fn for_request(text: &str, given: Option<Encoded>) -> Result<EncodedText> {
        match given {
            Some(given) => EncodedText::given(text, given),
            None => EncodedText::of(text),
        }
    }

    /// Tokenizes (the linked tokenizer) and encodes `text` with the encoder the `encoder`
    /// setting names, truncated to the `max-tokens` setting ([`DEFAULT_MAX_TOKENS`]).
    pub fn of(text: &str) -> Result<EncodedText> {
        let bert = Bert::open(&settings::require("encoder")?)?;
        let mut tokens = crate::tokenize::encode_spans(text)?;
        let max = settings::parse_or("max-tokens", DEFAULT_MAX_TOKENS)?.clamp(2, bert.context());
        decide::truncate(&mut tokens, max as usize);
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        let (hidden, pooled) = bert.encode(&ids)?;
        Ok(EncodedText {
            tokens,
            hidden,
            pooled,
            dim: bert.dim(),
        })
    }

    /// An encoding of `text` handed over with a request, checked to fit the text (spans on
    /// character boundaries) and to be [tokens × dim] with a [dim] sentence embedding.
    pub fn given(text: &str, given: Encoded) -> Result<EncodedText> {
        decide::check_encoding(
            text,
            &spans(&given.tokens),
            given.dim as usize,
            given.states.len(),
            given.sentence.len(),
        )
        .map_err(invalid)?;
        let n = given.tokens.len() as u32;
        Ok(EncodedText {
            hidden: Tensor::from_f32(&[n, given.dim], &given.states)?,
            pooled: Tensor::from_f32(&[given.dim], &given.sentence)?,
            tokens: given.tokens,
            dim: given.dim,
        })
    }

    /// This encoding as the WIT record (what the `embedder` interface returns).
    pub fn to_record(&self) -> Result<Encoded> {
        Ok(Encoded {
            states: self.hidden.read_f32(0, self.tokens.len() as u32)?,
            sentence: self.pooled.read_f32(0, self.dim)?,
            dim: self.dim,
            tokens: self.tokens.clone(),
        })
    }

    /// The tokens' byte spans.
    pub fn spans(&self) -> Vec<Span> {
        spans(&self.tokens)
    }
}

fn spans(tokens: &[TokenSpan]) -> Vec<Span> {
    tokens
        .iter()
        .map(|t| Span {
            start: t.start,
            end: t.end,
        })
        .collect()
}
