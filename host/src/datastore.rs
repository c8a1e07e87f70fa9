//! A skill's nearest-neighbour datastore: example utterances embedded by the skill itself,
//! stored as a GGUF file in the model store (so it is mapped zero-copy and searched by the
//! host's `nn-search` kernel, like any other weight).
//!
//! Layout: `index.embeddings` f16 [rows, dim], `index.labels` i32 [rows] (positions in
//! `edgenlu.index.intents`), `edgenlu.index.encoder` (the encoder model the rows came from).

use crate::error::SkillError;
use crate::runtime::Skill;
use edgenlu_kernels::formats::{quantize, DType};
use edgenlu_models::gguf::{GgufWriter, MetaValue};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// `general.architecture` of a datastore file.
pub const ARCHITECTURE: &str = "edgenlu-index";

/// One labelled utterance from a JSONL dataset (`{"text": ..., "intent": ...}` per line).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Example {
    pub text: String,
    pub intent: String,
}

/// Why a dataset or datastore could not be read or built.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{0} has no examples")]
    Empty(String),
    #[error("embedding example {index} ({text:?}): {source}")]
    Embed {
        index: usize,
        text: String,
        source: SkillError,
    },
    #[error("writing the datastore: {0}")]
    Write(String),
}

/// Reads a JSONL dataset.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, DatastoreError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| DatastoreError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| DatastoreError::Io {
            path: shown.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(&line).map_err(|e| DatastoreError::Parse {
            path: shown.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(ex);
    }
    if out.is_empty() {
        return Err(DatastoreError::Empty(shown));
    }
    Ok(out)
}

/// Keeps at most `per_intent` examples of each intent, spread evenly over that intent's
/// examples (datasets are often grouped by source or phrasing, so the first N are not a fair
/// sample). Order is preserved.
pub fn limit_per_intent(examples: Vec<Example>, per_intent: usize) -> Vec<Example> {
    let mut positions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in examples.iter().enumerate() {
        positions.entry(&e.intent).or_default().push(i);
    }
    let mut keep = vec![false; examples.len()];
    for all in positions.values() {
        let n = all.len().min(per_intent);
        for j in 0..n {
            keep[all[j * all.len() / n]] = true;
        }
    }
    examples
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// Embeds every example with `skill` (on `threads` threads) and writes the datastore to `out`.
/// `progress` is called with the number of examples embedded so far.
pub fn build(
    skill: &Skill,
    encoder: &str,
    examples: &[Example],
    threads: usize,
    out: &Path,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(), DatastoreError> {
    let intents: Vec<String> = examples
        .iter()
        .map(|e| e.intent.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let threads = threads.clamp(1, 16);
    let embeddings: Vec<Result<Vec<f32>, DatastoreError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let done = &done;
                scope.spawn(move || {
                    (t..examples.len())
                        .step_by(threads)
                        .map(|i| {
                            let r = skill.embed(&examples[i].text).map_err(|source| {
                                DatastoreError::Embed {
                                    index: i,
                                    text: examples[i].text.clone(),
                                    source,
                                }
                            });
                            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                            (i, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, Result<Vec<f32>, DatastoreError>)> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("embedding thread panicked"))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let embeddings = embeddings.into_iter().collect::<Result<Vec<_>, _>>()?;
    let dim = embeddings[0].len();
    let mut rows = Vec::with_capacity(embeddings.len() * dim * 2);
    for e in &embeddings {
        quantize(DType::F16, e, &mut rows).map_err(|e| DatastoreError::Write(e.to_string()))?;
    }
    let labels: Vec<u8> = examples
        .iter()
        .flat_map(|e| {
            (intents
                .binary_search(&e.intent)
                .expect("from the same list") as i32)
                .to_le_bytes()
        })
        .collect();
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetaValue::String(ARCHITECTURE.into()),
    );
    w.add_metadata("edgenlu.index.encoder", MetaValue::String(encoder.into()));
    w.add_metadata(
        "edgenlu.index.intents",
        MetaValue::Array(
            intents
                .iter()
                .map(|s| MetaValue::String(s.clone()))
                .collect(),
        ),
    );
    w.add_tensor("index.embeddings", DType::F16, &[examples.len(), dim], rows)
        .and_then(|w| w.add_tensor("index.labels", DType::I32, &[examples.len()], labels))
        .map_err(|e| DatastoreError::Write(e.to_string()))?;
    w.write(out)
        .map_err(|e| DatastoreError::Write(e.to_string()))?;
    Ok(())
}
