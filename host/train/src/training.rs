//! Training a skill's heads on examples the skill itself encodes: the intent head (calibrated,
//! with an out-of-scope threshold when validation data is given) and, when the examples carry
//! slot spans, the slot tagger; then the datastore file holding rows and heads.

use crate::datastore::{self, DatastoreError, Example, OUT_OF_SCOPE};
use crate::slots::{CharSpan, SlotTagger};
use edgenlu::Skill;
use edgenlu_models::softmax_head::{HeadError, HeadTraining, Labelled, SoftmaxHead};
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a skill's data could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error(transparent)]
    Data(#[from] DatastoreError),
    #[error("training: {0}")]
    Head(#[from] HeadError),
    #[error("the training examples have no in-scope intent")]
    NoIntents,
    #[error("validation intent {0:?} is not among the training intents")]
    UnknownIntent(String),
}

/// What [`build`] trained.
#[derive(Debug, Clone)]
pub struct Trained {
    pub intents: usize,
    pub examples: usize,
    pub head: SoftmaxHead,
    pub head_time: Duration,
    /// Tags and the tokens trained on, when the examples had slots.
    pub slots: Option<(usize, usize, Duration)>,
}

/// Labelled examples: the training set, and the validation set if there is one.
#[derive(Debug, Clone, Copy)]
pub struct Examples<'a> {
    pub train: &'a [Example],
    pub val: Option<&'a [Example]>,
}

/// Encodes `train` (and `val`) with `skill` on `threads` threads, trains the intent head (and
/// the slot tagger when `train` has slot spans), calibrates the head and tunes its
/// out-of-scope threshold on `val`, and writes the datastore to `out`. `progress` gets
/// (stage, done, total) as examples go through the encoder.
pub fn build(
    skill: &Skill,
    encoder: &str,
    examples: Examples,
    threads: usize,
    training: &HeadTraining,
    out: &Path,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<Trained, TrainingError> {
    let Examples { train, val } = examples;
    let intents = datastore::intents_of(train);
    if intents.is_empty() {
        return Err(TrainingError::NoIntents);
    }
    if let Some(bad) = val
        .into_iter()
        .flatten()
        .find(|e| e.intent != OUT_OF_SCOPE && intents.binary_search(&e.intent).is_err())
    {
        return Err(TrainingError::UnknownIntent(bad.intent.clone()));
    }
    // With slot spans in the data, the encoder's token states are needed too.
    let has_slots = train.iter().any(|e| !e.slots.is_empty());
    let report = |stage: &'static str, total: usize| move |n: usize| progress(stage, n, total);
    let (embeddings, encoded) = if has_slots {
        let enc =
            datastore::encode_examples(skill, train, threads, &report("encode", train.len()))?;
        (enc.iter().map(|e| e.sentence.clone()).collect(), Some(enc))
    } else {
        let emb = datastore::embed_examples(skill, train, threads, &report("embed", train.len()))?;
        (emb, None)
    };
    let labels = datastore::labels_in(train, &intents);
    // Stages without a count of their own still say what is running.
    let stage = |name: &'static str| progress(name, 0, 1);
    stage("train head");
    let started = Instant::now();
    let mut head = SoftmaxHead::train(
        &Labelled {
            embeddings: &embeddings,
            labels: &labels,
        },
        intents.len(),
        training,
    )?;
    let head_time = started.elapsed();
    if let Some(val) = val {
        let val_embeddings =
            datastore::embed_examples(skill, val, threads, &report("validate", val.len()))?;
        let val_set = Labelled {
            embeddings: &val_embeddings,
            labels: &datastore::labels_in(val, &intents),
        };
        stage("calibrate");
        head.calibrate(&val_set)?;
        head.tune_oos_threshold(&val_set)?;
    }
    let (tagger, slots) = match &encoded {
        Some(enc) => {
            stage("train slots");
            let started = Instant::now();
            let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
            let gold: Vec<&[CharSpan]> = train.iter().map(|e| e.slots.as_slice()).collect();
            let tagger = SlotTagger::train(&texts, enc, &gold, training)?;
            let tokens = enc.iter().map(|e| e.tokens.len().saturating_sub(2)).sum();
            let info = (tagger.tags.len(), tokens, started.elapsed());
            (Some(tagger), Some(info))
        }
        None => (None, None),
    };
    stage("write");
    datastore::write(
        encoder,
        train,
        &embeddings,
        Some(&head),
        tagger.as_ref(),
        out,
    )?;
    Ok(Trained {
        intents: intents.len(),
        examples: labels.iter().flatten().count(),
        head,
        head_time,
        slots,
    })
}
