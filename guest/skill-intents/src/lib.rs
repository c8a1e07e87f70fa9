//! The `intents` skill: tokenize → BERT encoder (all-MiniLM-L6-v2) through host kernels →
//! mean pooling + L2 norm (as sentence-transformers does) → the intent: from the datastore's
//! trained head when it has one (`edgenlu skill build`: a linear layer, temperature-scaled
//! softmax, and an out-of-scope threshold on the top probability, answering `oos` below it),
//! else by a similarity-weighted vote of the nearest example embeddings (`edgenlu skill index`).
//!
//! The encoder architecture lives here, in Wasm, driving the host's primitive kernels; the
//! weights never leave the host. Config keys (from the skill's spec):
//! - `encoder`: model name of the BERT encoder (GGUF, llama.cpp BERT layout);
//! - `index`: model name of the datastore (`index.embeddings`, `index.labels`,
//!   `edgenlu.index.intents`, optionally `head.weight`, `head.bias`, `edgenlu.head.*`), built
//!   by `edgenlu skill index` or `edgenlu skill build`; not needed to embed;
//! - `max-tokens` (optional, default 128, as the model's tokenizer.json truncates);
//! - `neighbours` (optional, default 8).
//!
//! When the host's router already encoded the utterance with this skill's encoder, the request
//! carries that encoding and the skill uses it instead of running the encoder again.

wit_bindgen::generate!({ path: "../../wit", world: "embedding-skill" });

use edgenlu::nlu::config;
use edgenlu::nlu::kernels;
use edgenlu::nlu::models::{MetaValue, Model};
use edgenlu::nlu::tensors::Tensor;
use edgenlu::nlu::tokenize;
use edgenlu::nlu::types::{Dtype, Encoded as EncodedText, Error, TokenSpan};
use exports::edgenlu::nlu::nlu::{Path, Request, Response, Slot};

struct Intents;

/// Weights of one transformer layer, as named in llama.cpp's BERT GGUF layout.
struct Layer {
    q: (Tensor, Tensor),
    k: (Tensor, Tensor),
    v: (Tensor, Tensor),
    attn_out: (Tensor, Tensor),
    attn_norm: (Tensor, Tensor),
    up: (Tensor, Tensor),
    down: (Tensor, Tensor),
    out_norm: (Tensor, Tensor),
}

/// A BERT encoder whose weights stay on the host.
struct Bert {
    token_embd: Tensor,
    position_embd: Tensor,
    token_types: Tensor,
    embd_norm: (Tensor, Tensor),
    layers: Vec<Layer>,
    dim: u32,
    ff: u32,
    heads: u32,
    context: u32,
    eps: f32,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn meta_int(model: &Model, key: &str) -> Result<u32, Error> {
    match model.meta(key) {
        Some(MetaValue::Int(v)) if v > 0 && v <= u32::MAX as i64 => Ok(v as u32),
        _ => Err(invalid(format!(
            "encoder metadata {key} is missing or not a positive integer"
        ))),
    }
}

fn config_u32(key: &str, default: u32) -> Result<u32, Error> {
    match config::get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(format!("config {key}={v:?} is not a number"))),
    }
}

impl Bert {
    fn open(name: &str) -> Result<Bert, Error> {
        let model = Model::open(name)?;
        if model.architecture() != "bert" {
            return Err(invalid(format!(
                "{name} is a {} model, not bert",
                model.architecture()
            )));
        }
        let w = |n: &str| model.weight(n);
        let pair = |n: &str| -> Result<(Tensor, Tensor), Error> {
            Ok((
                model.weight(&format!("{n}.weight"))?,
                model.weight(&format!("{n}.bias"))?,
            ))
        };
        let blocks = meta_int(&model, "bert.block_count")?;
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
            .collect::<Result<Vec<_>, Error>>()?;
        let eps = match model.meta("bert.attention.layer_norm_epsilon") {
            Some(MetaValue::Float(e)) => e as f32,
            _ => 1e-12,
        };
        Ok(Bert {
            token_embd: w("token_embd.weight")?,
            position_embd: w("position_embd.weight")?,
            token_types: w("token_types.weight")?,
            embd_norm: pair("token_embd_norm")?,
            layers,
            dim: meta_int(&model, "bert.embedding_length")?,
            ff: meta_int(&model, "bert.feed_forward_length")?,
            heads: meta_int(&model, "bert.attention.head_count")?,
            context: meta_int(&model, "bert.context_length")?,
            eps,
        })
    }

    /// The last hidden state [n, dim] of `ids` and their mean-pooled, L2-normalized sentence
    /// embedding [dim].
    fn encode(&self, ids: &[u32]) -> Result<(Tensor, Tensor), Error> {
        let n = ids.len() as u32;
        if n == 0 || n > self.context {
            return Err(invalid(format!(
                "{n} tokens; the encoder takes 1 to {}",
                self.context
            )));
        }
        let f32s = |shape: &[u32]| Tensor::zeros(Dtype::F32, shape);
        let ids_t = Tensor::from_i32(&[n], &ids.iter().map(|&i| i as i32).collect::<Vec<_>>())?;
        let positions = Tensor::from_i32(&[n], &(0..n as i32).collect::<Vec<_>>())?;
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

/// A text through the encoder.
struct Encoded {
    /// The tokens the encoder saw, with their byte spans in the text.
    tokens: Vec<TokenSpan>,
    /// Last hidden state [tokens, dim].
    hidden: Tensor,
    /// Sentence embedding [dim].
    pooled: Tensor,
    dim: u32,
}

/// Tokenizes and encodes `text` with the configured encoder.
fn encode_text(text: &str) -> Result<Encoded, Error> {
    let encoder = config::get("encoder").ok_or_else(|| invalid("config has no `encoder` model"))?;
    let bert = Bert::open(&encoder)?;
    let mut tokens = tokenize::encode_spans(text)?;
    let max = config_u32("max-tokens", 128)?.clamp(2, bert.context) as usize;
    if tokens.len() > max {
        // Keep [CLS] and the first words, end with [SEP], as the tokenizer's truncation does.
        let sep = *tokens.last().expect("longer than max");
        tokens.truncate(max - 1);
        tokens.push(sep);
    }
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let (hidden, pooled) = bert.encode(&ids)?;
    Ok(Encoded {
        tokens,
        hidden,
        pooled,
        dim: bert.dim,
    })
}

/// An encoding of `text` handed over with the request, checked to fit the text (spans on
/// character boundaries) and to be [tokens × dim] with a [dim] sentence embedding.
fn given_encoding(text: &str, given: EncodedText) -> Result<Encoded, Error> {
    let n = given.tokens.len();
    let dim = given.dim as usize;
    if n == 0 || dim == 0 || given.states.len() != n * dim || given.sentence.len() != dim {
        return Err(invalid(format!(
            "the request's encoding is not [tokens × dim]: {n} tokens, dim {dim}, {} states, \
             {} sentence values",
            given.states.len(),
            given.sentence.len()
        )));
    }
    let fits = |at: u32| text.is_char_boundary(at as usize);
    if let Some(t) = given
        .tokens
        .iter()
        .find(|t| t.start > t.end || !fits(t.start) || !fits(t.end))
    {
        return Err(invalid(format!(
            "the request's encoding has a token span {}..{} outside the text",
            t.start, t.end
        )));
    }
    Ok(Encoded {
        hidden: Tensor::from_f32(&[n as u32, given.dim], &given.states)?,
        pooled: Tensor::from_f32(&[given.dim], &given.sentence)?,
        tokens: given.tokens,
        dim: given.dim,
    })
}

/// The datastore's slot tagger: BIO tags ("O", "B-name", "I-name", …) for every token.
fn tag_slots(index: &Model, text: &str, encoded: &Encoded) -> Result<Vec<Slot>, Error> {
    let tags = match index.meta("edgenlu.slots.tags") {
        Some(MetaValue::Texts(t)) if !t.is_empty() => t,
        None => return Ok(Vec::new()),
        _ => {
            return Err(invalid(
                "datastore edgenlu.slots.tags is not a list of tags",
            ))
        }
    };
    let n = encoded.tokens.len() as u32;
    let logits = Tensor::zeros(Dtype::F32, &[n, tags.len() as u32])?;
    kernels::matmul(
        &logits,
        &encoded.hidden,
        &index.weight("slots.weight")?,
        Some(&index.weight("slots.bias")?),
    )?;
    let t = tags.len();
    let scores = logits.read_f32(0, n)?;
    let transitions = index.weight("slots.transitions")?.read_f32(0, t as u32)?;
    if transitions.len() != t * t {
        return Err(invalid("slots.transitions is not [tags × tags]"));
    }
    // Tokens added around the text take no tag.
    let words: Vec<usize> = (0..encoded.tokens.len())
        .filter(|&i| encoded.tokens[i].start != encoded.tokens[i].end)
        .collect();
    let emissions: Vec<&[f32]> = words.iter().map(|&i| &scores[i * t..(i + 1) * t]).collect();
    let path = viterbi(&emissions, &transitions, t);
    let mut best = vec![tags[0].as_str(); encoded.tokens.len()];
    for (&i, &tag) in words.iter().zip(&path) {
        best[i] = tags[tag].as_str();
    }
    Ok(decode_bio(text, &encoded.tokens, &best))
}

/// The most likely tag sequence: per-token log-softmax of `emissions` plus the transition
/// log-probabilities [`t` × `t`], starting after tag 0 (`O`).
fn viterbi(emissions: &[&[f32]], transitions: &[f32], t: usize) -> Vec<usize> {
    let log_softmax = |row: &[f32]| -> Vec<f32> {
        let max = row.iter().fold(f32::MIN, |a, &b| a.max(b));
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        row.iter().map(|v| v - max - sum.ln()).collect()
    };
    let mut score: Vec<f32> = Vec::new();
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(emissions.len());
    for (k, row) in emissions.iter().enumerate() {
        let e = log_softmax(row);
        let mut next = vec![f32::MIN; t];
        let mut from = vec![0usize; t];
        for j in 0..t {
            if k == 0 {
                next[j] = transitions[j] + e[j];
                continue;
            }
            for i in 0..t {
                let s = score[i] + transitions[i * t + j];
                if s > next[j] {
                    next[j] = s;
                    from[j] = i;
                }
            }
            next[j] += e[j];
        }
        score = next;
        back.push(from);
    }
    let Some(mut tag) = (0..score.len()).max_by(|&a, &b| score[a].total_cmp(&score[b])) else {
        return Vec::new();
    };
    let mut path = vec![0; emissions.len()];
    for k in (0..emissions.len()).rev() {
        path[k] = tag;
        tag = back[k][tag];
    }
    path
}

/// Spans from per-token BIO tags: `B-x` opens a slot, `I-x` extends an open `x` (or opens one),
/// anything else closes it. Tokens added around the text (empty spans) are skipped; a slot
/// that ends inside a word is extended to the word's end.
fn decode_bio(text: &str, tokens: &[TokenSpan], tags: &[&str]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::new();
    let mut open = false;
    for (t, tag) in tokens.iter().zip(tags) {
        if t.start == t.end {
            open = false;
            continue;
        }
        let (kind, name) = match tag.split_once('-') {
            Some((k @ ("B" | "I"), name)) => (k, name),
            _ => {
                // A word's continuation piece tagged O stays in the slot its word started.
                let inside_word = open
                    && slots
                        .last()
                        .is_some_and(|s| s.end == t.start && joins_word(text, t.start as usize));
                if inside_word {
                    slots.last_mut().expect("open").end = t.end;
                } else {
                    open = false;
                }
                continue;
            }
        };
        let extends = open && kind == "I" && slots.last().is_some_and(|s| s.name == name);
        if extends {
            slots.last_mut().expect("open").end = t.end;
        } else {
            slots.push(Slot {
                name: name.to_string(),
                value: String::new(),
                start: t.start,
                end: t.end,
            });
            open = true;
        }
    }
    for s in &mut slots {
        s.value = text
            .get(s.start as usize..s.end as usize)
            .unwrap_or_default()
            .to_string();
    }
    slots
}

/// Whether the characters on both sides of byte `at` belong to one word.
fn joins_word(text: &str, at: usize) -> bool {
    let before = text.get(..at).and_then(|t| t.chars().next_back());
    let after = text.get(at..).and_then(|t| t.chars().next());
    matches!((before, after), (Some(a), Some(b)) if a.is_alphanumeric() && b.is_alphanumeric())
}

/// What the skill answers when the head's top probability is below its threshold.
const OUT_OF_SCOPE: &str = "oos";

/// The head's temperature and out-of-scope threshold, if the datastore has a head.
fn head_meta(index: &Model) -> Result<Option<(f32, f32)>, Error> {
    let float = |key: &str| match index.meta(key) {
        Some(MetaValue::Float(v)) if v.is_finite() => Ok(Some(v as f32)),
        None => Ok(None),
        _ => Err(invalid(format!("datastore metadata {key} is not a number"))),
    };
    match (
        float("edgenlu.head.temperature")?,
        float("edgenlu.head.oos_threshold")?,
    ) {
        (Some(t), Some(threshold)) if t > 0.0 => Ok(Some((t, threshold))),
        (None, None) => Ok(None),
        _ => Err(invalid(
            "datastore head needs a positive temperature and a threshold",
        )),
    }
}

/// Intent and calibrated probability from the head: softmax((W·q + b) / T), `oos` below the
/// threshold.
fn classify_with_head(
    index: &Model,
    query: &Tensor,
    intents: &[String],
    temperature: f32,
    threshold: f32,
) -> Result<(String, f32), Error> {
    let n = intents.len() as u32;
    let logits = Tensor::zeros(Dtype::F32, &[1, n])?;
    kernels::matmul(
        &logits,
        query,
        &index.weight("head.weight")?,
        Some(&index.weight("head.bias")?),
    )?;
    kernels::scale(&logits, 1.0 / temperature)?;
    kernels::softmax(&logits)?;
    let probs = logits.read_f32(0, 1)?;
    let (best, p) = probs
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
    if p < threshold {
        return Ok((OUT_OF_SCOPE.to_string(), p));
    }
    let intent = intents
        .get(best)
        .ok_or_else(|| invalid(format!("head row {best} has no intent")))?;
    Ok((intent.clone(), p))
}

/// Intent by a similarity-weighted vote of the nearest datastore rows; confidence is the
/// winner's share of the vote.
fn nearest_neighbour_vote(
    index: &Model,
    query: &Tensor,
    intents: &[String],
) -> Result<(String, f32), Error> {
    let rows = index.weight("index.embeddings")?;
    let labels = index.weight("index.labels")?;
    let hits = kernels::nn_search(&rows, query, config_u32("neighbours", 8)?)?;

    // Close neighbours count more, dissimilar ones not at all.
    let mut votes = vec![0f32; intents.len()];
    for hit in &hits {
        let label = labels.read_f32(hit.row, 1)?[0] as usize;
        let slot = votes
            .get_mut(label)
            .ok_or_else(|| invalid(format!("label {label} out of range")))?;
        *slot += hit.score.max(0.0);
    }
    let total: f32 = votes.iter().sum();
    let (best, weight) =
        votes.iter().enumerate().fold(
            (0, f32::MIN),
            |acc, (i, &w)| if w > acc.1 { (i, w) } else { acc },
        );
    Ok((
        intents[best].clone(),
        if total > 0.0 { weight / total } else { 0.0 },
    ))
}

impl exports::edgenlu::nlu::nlu::Guest for Intents {
    fn handle(req: Request) -> Result<Response, Error> {
        let encoded = match req.encoded {
            Some(given) => given_encoding(&req.text, given)?,
            None => encode_text(&req.text)?,
        };
        let query = &encoded.pooled;
        let index_name =
            config::get("index").ok_or_else(|| invalid("config has no `index` model"))?;
        let index = Model::open(&index_name)?;
        let intents = match index.meta("edgenlu.index.intents") {
            Some(MetaValue::Texts(t)) if !t.is_empty() => t,
            _ => {
                return Err(invalid(format!(
                    "{index_name} has no edgenlu.index.intents list"
                )))
            }
        };
        let (intent, confidence) = match head_meta(&index)? {
            Some((temperature, threshold)) => {
                classify_with_head(&index, query, &intents, temperature, threshold)?
            }
            None => nearest_neighbour_vote(&index, query, &intents)?,
        };
        let slots = if intent == OUT_OF_SCOPE {
            Vec::new()
        } else {
            tag_slots(&index, &req.text, &encoded)?
        };
        Ok(Response {
            intent,
            confidence,
            slots,
            reply: None,
            path: Path::Local,
            timings: Vec::new(),
        })
    }
}

impl exports::edgenlu::nlu::embedder::Guest for Intents {
    fn embed(text: String) -> Result<Vec<f32>, Error> {
        let e = encode_text(&text)?;
        e.pooled.read_f32(0, e.dim)
    }

    fn encode(text: String) -> Result<EncodedText, Error> {
        let e = encode_text(&text)?;
        Ok(EncodedText {
            states: e.hidden.read_f32(0, e.tokens.len() as u32)?,
            sentence: e.pooled.read_f32(0, e.dim)?,
            dim: e.dim,
            tokens: e.tokens,
        })
    }
}

export!(Intents);
