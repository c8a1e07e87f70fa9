//! The `intents` skill: tokenize → BERT encoder (all-MiniLM-L6-v2) through host kernels →
//! mean pooling + L2 norm (as sentence-transformers does) → the intent: from the datastore's
//! trained head when it has one (`edgenlu skill build`: a linear layer, temperature-scaled
//! softmax, and an out-of-scope threshold on the top probability, answering `oos` below it),
//! else by a similarity-weighted vote of the nearest example embeddings (`edgenlu skill index`).
//!
//! The encoder architecture (the SDK's [`edgenlu_sdk::encoder::Bert`]) runs in Wasm, driving
//! the host's primitive kernels; the weights never leave the host. The decisions on the
//! numbers it gets back (slot tagging, the head's out-of-scope rule, the vote) are the
//! `intents` library's, tested natively. Config keys (from the skill's spec):
//! - `encoder`: model name of the BERT encoder (GGUF, llama.cpp BERT layout);
//! - `index`: model name of the datastore (`index.embeddings`, `index.labels`,
//!   `edgenlu.index.intents`, optionally `head.weight`, `head.bias`, `edgenlu.head.*`), built
//!   by `edgenlu skill index` or `edgenlu skill build`; not needed to embed;
//! - `max-tokens` (optional, default 128, as the model's tokenizer.json truncates);
//! - `neighbours` (optional, default 8).
//!
//! When the host's router already encoded the utterance with this skill's encoder, the request
//! carries that encoding and the skill uses it instead of running the encoder again.

edgenlu_sdk::world!("embedding-skill");

use edgenlu_sdk::encoder::Bert;
use edgenlu_sdk::tensor::f32s;
use edgenlu_sdk::{
    invalid, kernels, meta, settings, Encoded as EncodedText, Error, Model, Result, Tensor,
    TokenSpan,
};
use exports::edgenlu::nlu::nlu::{Path, Request, Response, Slot};
use intents::{Choice, Span};

struct Intents;

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

fn spans(tokens: &[TokenSpan]) -> Vec<Span> {
    tokens
        .iter()
        .map(|t| Span {
            start: t.start,
            end: t.end,
        })
        .collect()
}

/// Tokenizes and encodes `text` with the configured encoder.
fn encode_text(text: &str) -> Result<Encoded> {
    let bert = Bert::open(&settings::require("encoder")?)?;
    let mut tokens = edgenlu_sdk::tokenize::encode_spans(text)?;
    let max = settings::parse_or("max-tokens", 128u32)?.clamp(2, bert.context()) as usize;
    intents::truncate(&mut tokens, max);
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let (hidden, pooled) = bert.encode(&ids)?;
    Ok(Encoded {
        tokens,
        hidden,
        pooled,
        dim: bert.dim(),
    })
}

/// An encoding of `text` handed over with the request, checked to fit the text (spans on
/// character boundaries) and to be [tokens × dim] with a [dim] sentence embedding.
fn given_encoding(text: &str, given: EncodedText) -> Result<Encoded> {
    intents::check_encoding(
        text,
        &spans(&given.tokens),
        given.dim as usize,
        given.states.len(),
        given.sentence.len(),
    )
    .map_err(invalid)?;
    let n = given.tokens.len() as u32;
    Ok(Encoded {
        hidden: Tensor::from_f32(&[n, given.dim], &given.states)?,
        pooled: Tensor::from_f32(&[given.dim], &given.sentence)?,
        tokens: given.tokens,
        dim: given.dim,
    })
}

/// The datastore's slot tagger: BIO tags ("O", "B-name", "I-name", …) for every token.
fn tag_slots(index: &Model, text: &str, encoded: &Encoded) -> Result<Vec<Slot>> {
    let tags = match meta::texts(index, "edgenlu.slots.tags") {
        Ok(None) => return Ok(Vec::new()),
        Ok(Some(t)) if !t.is_empty() => t,
        _ => {
            return Err(invalid(
                "datastore edgenlu.slots.tags is not a list of tags",
            ))
        }
    };
    let n = encoded.tokens.len() as u32;
    let t = tags.len();
    let logits = f32s(&[n, t as u32])?;
    kernels::matmul(
        &logits,
        &encoded.hidden,
        &index.weight("slots.weight")?,
        Some(&index.weight("slots.bias")?),
    )?;
    let scores = logits.read_f32(0, n)?;
    let transitions = index.weight("slots.transitions")?.read_f32(0, t as u32)?;
    if transitions.len() != t * t {
        return Err(invalid("slots.transitions is not [tags × tags]"));
    }
    let spans = spans(&encoded.tokens);
    let best: Vec<&str> = intents::tag_tokens(&spans, &scores, &transitions, t)
        .into_iter()
        .map(|tag| tags[tag].as_str())
        .collect();
    Ok(intents::decode_bio(text, &spans, &best)
        .into_iter()
        .map(|s| Slot {
            name: s.name,
            value: s.value,
            start: s.start,
            end: s.end,
        })
        .collect())
}

/// What the skill answers when the head's top probability is below its threshold.
const OUT_OF_SCOPE: &str = "oos";

/// The head's temperature and out-of-scope threshold, if the datastore has a head.
fn head_meta(index: &Model) -> Result<Option<(f32, f32)>> {
    let float = |key: &str| {
        meta::f32(index, key)
            .map_err(|_| invalid(format!("datastore metadata {key} is not a number")))
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
) -> Result<(String, f32)> {
    let logits = f32s(&[1, intents.len() as u32])?;
    kernels::matmul(
        &logits,
        query,
        &index.weight("head.weight")?,
        Some(&index.weight("head.bias")?),
    )?;
    kernels::scale(&logits, 1.0 / temperature)?;
    kernels::softmax(&logits)?;
    match intents::classify(&logits.read_f32(0, 1)?, threshold) {
        Choice::OutOfScope(p) => Ok((OUT_OF_SCOPE.to_string(), p)),
        Choice::Intent(best, p) => {
            let intent = intents
                .get(best)
                .ok_or_else(|| invalid(format!("head row {best} has no intent")))?;
            Ok((intent.clone(), p))
        }
    }
}

/// Intent by a similarity-weighted vote of the nearest datastore rows; confidence is the
/// winner's share of the vote.
fn nearest_neighbour_vote(
    index: &Model,
    query: &Tensor,
    intents: &[String],
) -> Result<(String, f32)> {
    let rows = index.weight("index.embeddings")?;
    let labels = index.weight("index.labels")?;
    let hits = kernels::nn_search(&rows, query, settings::parse_or("neighbours", 8)?)?;
    let neighbours = hits
        .iter()
        .map(|hit| Ok((labels.read_f32(hit.row, 1)?[0] as usize, hit.score)))
        .collect::<Result<Vec<_>>>()?;
    let (best, confidence) = intents::vote(neighbours, intents.len())
        .map_err(|label| invalid(format!("label {label} out of range")))?;
    Ok((intents[best].clone(), confidence))
}

impl exports::edgenlu::nlu::nlu::Guest for Intents {
    fn handle(req: Request) -> Result<Response, Error> {
        let encoded = match req.encoded {
            Some(given) => given_encoding(&req.text, given)?,
            None => encode_text(&req.text)?,
        };
        let query = &encoded.pooled;
        let index_name = settings::require("index")?;
        let index = Model::open(&index_name)?;
        let intents = match meta::texts(&index, "edgenlu.index.intents") {
            Ok(Some(t)) if !t.is_empty() => t,
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
