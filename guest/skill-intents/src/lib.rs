//! The `intents` skill: tokenize → BERT encoder (all-MiniLM-L6-v2) through host kernels →
//! mean pooling + L2 norm (as sentence-transformers does) → intent and slots from the
//! datastore (the SDK's [`Datastore`]: a trained head when `edgenlu skill train` built one,
//! else a vote of the nearest examples `edgenlu skill index` embedded).
//!
//! The encoder architecture (the SDK's [`edgenlu_sdk::encoder::Bert`]) runs in Wasm, driving
//! the host's primitive kernels; the weights never leave the host. Config keys (from the
//! skill's spec):
//! - `encoder`: model name of the BERT encoder (GGUF, llama.cpp BERT layout);
//! - `index`: model name of the datastore; not needed to embed;
//! - `max-tokens` (optional, default 128, as the model's tokenizer.json truncates);
//! - `neighbours` (optional, default 8).
//!
//! When the host's router already encoded the utterance with this skill's encoder, the request
//! carries that encoding and the skill uses it instead of running the encoder again. It
//! exports the `embedder` too: what datastores are built with, and what the router encodes
//! with.

edgenlu_sdk::world!("embedding-skill");

use edgenlu_sdk::datastore::Datastore;
use edgenlu_sdk::encoder::EncodedText;
use edgenlu_sdk::{Encoded, Error};
use exports::edgenlu::nlu::nlu::{Request, Response};

struct Intents;

impl exports::edgenlu::nlu::nlu::Guest for Intents {
    fn handle(req: Request) -> Result<Response, Error> {
        let encoded = EncodedText::for_request(&req.text, req.encoded)?;
        Ok(Datastore::configured()?
            .understand(&req.text, &encoded)?
            .into())
    }
}

impl exports::edgenlu::nlu::embedder::Guest for Intents {
    fn embed(text: String) -> Result<Vec<f32>, Error> {
        let e = EncodedText::of(&text)?;
        e.pooled.read_f32(0, e.dim)
    }

    fn encode(text: String) -> Result<Encoded, Error> {
        EncodedText::of(&text)?.to_record()
    }
}

export!(Intents);
