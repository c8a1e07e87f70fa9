//! A skill's datastore: the intents it knows and how it tells them apart, built by `edgenlu
//! skill build` (or `edgenlu skill train` / `skill index`) from labelled examples and stored
//! as a model (a GGUF) in the device's store.
//!
//! A datastore holds the examples' sentence embeddings and labels (`index.embeddings`,
//! `index.labels`, `edgenlu.index.intents`), optionally a trained intent head (`head.weight`,
//! `head.bias`, `edgenlu.head.temperature`, `edgenlu.head.oos_threshold`) and a BIO slot
//! tagger (`slots.weight`, `slots.bias`, `slots.transitions`, `edgenlu.slots.tags`).
//! [`Datastore::understand`] answers an encoded text from it: the intent from the head when
//! there is one (a temperature-scaled softmax, [`OUT_OF_SCOPE`] below the threshold), else by a
//! similarity-weighted vote of the nearest examples; the slots from the tagger (Viterbi over its
//! scores), as byte spans of the text.
//!
//! # Example
//!
//! The whole decision of a skill whose `config` names its `encoder` and its `index`:
//!
//! ```no_run
//! use edgenlu_sdk::datastore::{Datastore, Understanding};
//! use edgenlu_sdk::encoder::EncodedText;
//!
//! fn understand(text: &str) -> edgenlu_sdk::Result<Understanding> {
//!     let encoded = EncodedText::of(text)?;
//!     Datastore::configured()?.understand(text, &encoded)
//! }
//! ```

use crate::decide::{self, Choice};
use crate::encoder::EncodedText;
use crate::tensor::f32s;
use crate::{invalid, kernels, meta, settings, Model, Result, Tensor};

/// The intent a datastore with a head answers when no intent is likely enough.
pub const OUT_OF_SCOPE: &str = "oos";

/// Nearest examples that vote when the datastore has no head and the `neighbours` setting is
/// absent.
pub const DEFAULT_NEIGHBOURS: u32 = 8;

/// A filled slot: `value` is the text's bytes [start, end), on character boundaries.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// The slot's name, e.g. `duration`.
    pub name: String,
    /// The words of the text that fill it.
    pub value: String,
    /// First byte of `value` in the text.
    pub start: u32,
    /// One past its last byte.
    pub end: u32,
}

/// What a datastore makes of one text.
#[derive(Clone, Debug, PartialEq)]
pub struct Understanding {
    /// One of the datastore's intents, or [`OUT_OF_SCOPE`].
    pub intent: String,
    /// The head's calibrated probability, or the winner's share of the neighbours' vote.
    pub confidence: f32,
    /// Slots the tagger found (none for [`OUT_OF_SCOPE`] or without a tagger).
    pub slots: Vec<Slot>,
}

impl Understanding {
    /// The value of the first slot named `name`.
    pub fn slot(&self, name: &str) -> Option<&str> {
        self.slots
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value.as_str())
    }
}

/// An opened datastore.
pub struct Datastore {
    name: String,
    model: Model,
    intents: Vec<String>,
}

impl Datastore {
    /// Opens the datastore the `index` setting names.
    pub fn configured() -> Result<Datastore> {
        Datastore::open(&settings::require("index")?)
    }

    /// Opens the datastore `name` (it must be granted to the skill, as every model).
    pub fn open(name: &str) -> Result<Datastore> {
        let model = Model::open(name)?;
        let intents = match meta::texts(&model, "edgenlu.index.intents") {
            Ok(Some(t)) if !t.is_empty() => t,
            _ => return Err(invalid(format!("{name} has no edgenlu.index.intents list"))),
        };
        Ok(Datastore {
            name: name.to_string(),
            model,
            intents,
        })
    }

    /// The intents it answers, in label order.
    pub fn intents(&self) -> &[String] {
        &self.intents
    }

    /// The intent, its confidence and the slots of `text`, given its encoding.
    pub fn understand(&self, text: &str, encoded: &EncodedText) -> Result<Understanding> {
        let (intent, confidence) = match self.head()? {
            Some(head) => self.classify_with_head(&encoded.pooled, head)?,
            None => self.nearest_neighbour_vote(&encoded.pooled)?,
        };
        let slots = if intent == OUT_OF_SCOPE {
            Vec::new()
        } else {
            self.tag_slots(text, encoded)?
        };
        Ok(Understanding {
            intent,
            confidence,
            slots,
        })
    }

    /// The head's temperature and out-of-scope threshold, if the datastore has a head.
    fn head(&self) -> Result<Option<(f32, f32)>> {
        let float = |key: &str| {
            meta::f32(&self.model, key).map_err(|_| {
                invalid(format!(
                    "datastore {} metadata {key} is not a number",
                    self.name
                ))
            })
        };
        match (
            float("edgenlu.head.temperature")?,
            float("edgenlu.head.oos_threshold")?,
        ) {
            (Some(t), Some(threshold)) if t > 0.0 => Ok(Some((t, threshold))),
            (None, None) => Ok(None),
            _ => Err(invalid(format!(
                "datastore {} head needs a positive temperature and a threshold",
                self.name
            ))),
        }
    }

    /// Intent and calibrated probability from the head: softmax((W·q + b) / T), `oos` below
    /// the threshold.
    fn classify_with_head(
        &self,
        query: &Tensor,
        (temperature, threshold): (f32, f32),
    ) -> Result<(String, f32)> {
        let logits = f32s(&[1, self.intents.len() as u32])?;
        kernels::matmul(
            &logits,
            query,
            &self.model.weight("head.weight")?,
            Some(&self.model.weight("head.bias")?),
        )?;
        kernels::scale(&logits, 1.0 / temperature)?;
        kernels::softmax(&logits)?;
        match decide::classify(&logits.read_f32(0, 1)?, threshold) {
            Choice::OutOfScope(p) => Ok((OUT_OF_SCOPE.to_string(), p)),
            Choice::Intent(best, p) => Ok((self.intent(best)?, p)),
        }
    }

    /// Intent by a similarity-weighted vote of the nearest rows (the `neighbours` setting,
    /// [`DEFAULT_NEIGHBOURS`]); confidence is the winner's share of the vote.
    fn nearest_neighbour_vote(&self, query: &Tensor) -> Result<(String, f32)> {
        let rows = self.model.weight("index.embeddings")?;
        let labels = self.model.weight("index.labels")?;
        let k = settings::parse_or("neighbours", DEFAULT_NEIGHBOURS)?;
        let hits = kernels::nn_search(&rows, query, k)?;
        let neighbours = hits
            .iter()
            .map(|hit| Ok((labels.read_f32(hit.row, 1)?[0] as usize, hit.score)))
            .collect::<Result<Vec<_>>>()?;
        let (best, confidence) = decide::vote(neighbours, self.intents.len())
            .map_err(|label| invalid(format!("label {label} out of range")))?;
        Ok((self.intent(best)?, confidence))
    }

    fn intent(&self, row: usize) -> Result<String> {
        self.intents
            .get(row)
            .cloned()
            .ok_or_else(|| invalid(format!("{} row {row} has no intent", self.name)))
    }

    /// The slot tagger's slots: BIO tags ("O", "B-name", "I-name", …) for every token, the
    /// best sequence by Viterbi, spelled as spans of `text`.
    fn tag_slots(&self, text: &str, encoded: &EncodedText) -> Result<Vec<Slot>> {
        let tags = match meta::texts(&self.model, "edgenlu.slots.tags") {
            Ok(None) => return Ok(Vec::new()),
            Ok(Some(t)) if !t.is_empty() => t,
            _ => {
                return Err(invalid(format!(
                    "datastore {} edgenlu.slots.tags is not a list of tags",
                    self.name
                )))
            }
        };
        let n = encoded.tokens.len() as u32;
        let t = tags.len();
        let logits = f32s(&[n, t as u32])?;
        kernels::matmul(
            &logits,
            &encoded.hidden,
            &self.model.weight("slots.weight")?,
            Some(&self.model.weight("slots.bias")?),
        )?;
        let scores = logits.read_f32(0, n)?;
        let transitions = self
            .model
            .weight("slots.transitions")?
            .read_f32(0, t as u32)?;
        if transitions.len() != t * t {
            return Err(invalid("slots.transitions is not [tags × tags]"));
        }
        let spans = encoded.spans();
        let best: Vec<&str> = decide::tag_tokens(&spans, &scores, &transitions, t)
            .into_iter()
            .map(|tag| tags[tag].as_str())
            .collect();
        Ok(decide::decode_bio(text, &spans, &best)
            .into_iter()
            .map(|s| Slot {
                name: s.name,
                value: s.value,
                start: s.start,
                end: s.end,
            })
            .collect())
    }
}
