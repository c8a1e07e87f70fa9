//! A skill's nearest-neighbour datastore: example utterances embedded by the skill itself,
//! stored as a GGUF file in the model store (so it is mapped zero-copy and searched by the
//! host's `nn-search` kernel, like any other weight).
//!
//! Layout: `index.embeddings` f16 [rows, dim], `index.labels` i32 [rows] (positions in
//! `edgenlu.index.intents`), `edgenlu.index.encoder` (the encoder model the rows came from).
//! With a trained intent head ([`SoftmaxHead`], `edgenlu skill train`): `head.weight` f32
//! [intents, dim], `head.bias` f32 [intents], `edgenlu.head.temperature` and
//! `edgenlu.head.oos_threshold`. With a slot tagger: `slots.weight` f32 [tags, dim],
//! `slots.bias` f32 [tags], `slots.transitions` f32 [tags, tags] (log-probabilities) and
//! `edgenlu.slots.tags`. Examples labelled [`OUT_OF_SCOPE`] are never rows or intents:
//! they only tune the threshold.

use crate::slots::SlotTagger;
use edgenlu::error::SkillError;
use edgenlu::Encoded;
use edgenlu::Skill;
use edgenlu_kernels::formats::{quantize, DType};
use edgenlu_models::gguf::{GgufWriter, MetaValue};
use edgenlu_models::SoftmaxHead;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// `general.architecture` of a datastore file: how the model store tells a datastore from a
/// model.
pub const ARCHITECTURE: &str = edgenlu_models::store::DATASTORE_ARCHITECTURE;

/// The intent datasets give out-of-scope utterances (CLINC150's), and the skill answers them.
pub const OUT_OF_SCOPE: &str = "oos";

/// One labelled utterance from a JSONL dataset (`{"text": ..., "intent": ...}` per line),
/// optionally with slots: spans in characters (`"slots": [{"start": ..., "end": ..., "slot":
/// ...}]`, as the shared datasets give them) or, easier to write by hand, values by slot name
/// (`"slots": {"duration": "ten minutes"}`), each the first occurrence of that value in the text.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "LabelledText")]
pub struct Example {
    pub text: String,
    pub intent: String,
    pub slots: Vec<crate::slots::CharSpan>,
}

/// An example as written in a JSONL line.
#[derive(serde::Deserialize)]
struct LabelledText {
    text: String,
    intent: String,
    #[serde(default)]
    slots: SlotLabels,
}

/// The two ways a line may give its slots.
#[derive(serde::Deserialize)]
#[serde(
    untagged,
    expecting = "slots as a list of {\"start\", \"end\", \"slot\"} spans in characters, \
                 or an object of slot values by name"
)]
enum SlotLabels {
    Spans(Vec<crate::slots::CharSpan>),
    Values(std::collections::BTreeMap<String, String>),
}

impl Default for SlotLabels {
    fn default() -> Self {
        SlotLabels::Spans(Vec::new())
    }
}

impl TryFrom<LabelledText> for Example {
    type Error = String;

    fn try_from(l: LabelledText) -> Result<Example, String> {
        let slots = match l.slots {
            SlotLabels::Spans(spans) => spans,
            SlotLabels::Values(values) => values
                .into_iter()
                .map(|(slot, value)| {
                    let at = l
                        .text
                        .find(&value)
                        .filter(|_| !value.is_empty())
                        .ok_or_else(|| {
                            format!(
                                "slot {slot:?}: the value {} is not in the text",
                                excerpt(&value)
                            )
                        })?;
                    let start = l.text[..at].chars().count();
                    Ok(crate::slots::CharSpan {
                        start,
                        end: start + value.chars().count(),
                        slot,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        Ok(Example {
            text: l.text,
            intent: l.intent,
            slots,
        })
    }
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
    #[error("embedding example {index} ({}): {source}", excerpt(text))]
    Embed {
        index: usize,
        text: String,
        source: SkillError,
    },
    #[error("writing the datastore: {0}")]
    Write(String),
}

/// Characters of a text quoted in an error message; a longer text is cut there.
const EXCERPT_CHARS: usize = 60;

/// `text` quoted for an error message: whole when short, else its start and its length (a
/// 10 MB line must not be echoed into a terminal or a log).
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

impl Example {
    /// Why this example cannot be used, if it cannot: an empty text or intent, or a slot span
    /// that is empty, reversed or past the text's characters.
    pub fn problem(&self) -> Option<String> {
        if self.text.trim().is_empty() {
            return Some("empty \"text\"".into());
        }
        if self.intent.trim().is_empty() {
            return Some("empty \"intent\"".into());
        }
        let chars = self.text.chars().count();
        self.slots.iter().find_map(|s| {
            (s.start >= s.end || s.end > chars).then(|| {
                format!(
                    "slot {:?} spans characters {}..{} of a text of {chars}",
                    s.slot, s.start, s.end
                )
            })
        })
    }
}

/// Reads a JSONL dataset: one example per line, blank lines skipped, a UTF-8 byte order mark
/// and CRLF line ends accepted. The first line that is not UTF-8, not an example or not a
/// usable one ([`Example::problem`]) is an error naming its line, with an excerpt.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, DatastoreError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| DatastoreError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, raw) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let raw = raw.map_err(|source| DatastoreError::Io {
            path: shown.clone(),
            source,
        })?;
        let parse_error = |reason: String| DatastoreError::Parse {
            path: shown.clone(),
            line: i + 1,
            reason,
        };
        let mut bytes = raw.strip_suffix(b"\r").unwrap_or(&raw);
        if i == 0 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        let line = std::str::from_utf8(bytes).map_err(|e| {
            parse_error(format!(
                "not UTF-8 (an invalid byte at column {})",
                e.valid_up_to() + 1
            ))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line)
            .map_err(|e| parse_error(format!("{e}, in {}", excerpt(line))))?;
        if let Some(problem) = ex.problem() {
            return Err(parse_error(format!("{problem}, in {}", excerpt(line))));
        }
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
    let embeddings = embed_examples(skill, examples, threads, progress)?;
    write(encoder, examples, &embeddings, None, None, out)
}

/// Embeds every example with `skill`, exactly as the skill embeds what it answers, on
/// `threads` threads; `progress` gets the number done so far.
pub fn embed_examples(
    skill: &Skill,
    examples: &[Example],
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Vec<f32>>, DatastoreError> {
    map_examples(examples, threads, progress, |text| skill.embed(text))
}

/// Every example through `skill`'s encoder: token states and sentence embedding (for slot
/// tagging), as [`embed_examples`] otherwise.
pub fn encode_examples(
    skill: &Skill,
    examples: &[Example],
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Encoded>, DatastoreError> {
    map_examples(examples, threads, progress, |text| skill.encode(text))
}

fn map_examples<R: Send>(
    examples: &[Example],
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
    f: impl Fn(&str) -> Result<R, SkillError> + Sync,
) -> Result<Vec<R>, DatastoreError> {
    edgenlu::parallel::map(
        examples,
        threads.clamp(1, 16),
        |i, example| {
            f(&example.text).map_err(|source| DatastoreError::Embed {
                index: i,
                text: example.text.clone(),
                source,
            })
        },
        progress,
    )
    .into_iter()
    .collect()
}

/// The intents of `examples`, sorted, without [`OUT_OF_SCOPE`].
pub fn intents_of(examples: &[Example]) -> Vec<String> {
    examples
        .iter()
        .filter(|e| e.intent != OUT_OF_SCOPE)
        .map(|e| e.intent.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Each example's position in `intents`; `None` if out of scope or not among them.
pub fn labels_in(examples: &[Example], intents: &[String]) -> Vec<Option<usize>> {
    examples
        .iter()
        .map(|e| intents.binary_search(&e.intent).ok())
        .collect()
}

/// Writes the datastore of `examples` (embedded as `embeddings`, in order) to `out`, with
/// `head` if given (trained over [`intents_of`]`(examples)`) and the slot tagger if given.
pub fn write(
    encoder: &str,
    examples: &[Example],
    embeddings: &[Vec<f32>],
    head: Option<&SoftmaxHead>,
    tagger: Option<&SlotTagger>,
    out: &Path,
) -> Result<(), DatastoreError> {
    let write_err = |e: String| DatastoreError::Write(e);
    let intents = intents_of(examples);
    let rows: Vec<(usize, &Vec<f32>)> = labels_in(examples, &intents)
        .into_iter()
        .zip(embeddings)
        .filter_map(|(label, e)| label.map(|l| (l, e)))
        .collect();
    let dim = rows
        .first()
        .ok_or_else(|| write_err("no in-scope examples".into()))?
        .1
        .len();
    let mut packed = Vec::with_capacity(rows.len() * dim * 2);
    for (_, e) in &rows {
        quantize(DType::F16, e, &mut packed).map_err(|e| write_err(e.to_string()))?;
    }
    let labels: Vec<u8> = rows
        .iter()
        .flat_map(|(l, _)| (*l as i32).to_le_bytes())
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
    w.add_tensor("index.embeddings", DType::F16, &[rows.len(), dim], packed)
        .and_then(|w| w.add_tensor("index.labels", DType::I32, &[rows.len()], labels))
        .map_err(|e| write_err(e.to_string()))?;
    let f32_bytes = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
    let add_linear = |w: &mut GgufWriter, name: &str, h: &SoftmaxHead| {
        w.add_tensor(
            format!("{name}.weight"),
            DType::F32,
            &[h.classes(), h.dim],
            f32_bytes(&h.weight),
        )
        .and_then(|w| {
            w.add_tensor(
                format!("{name}.bias"),
                DType::F32,
                &[h.classes()],
                f32_bytes(&h.bias),
            )
        })
        .map(|_| ())
        .map_err(|e| write_err(e.to_string()))
    };
    if let Some(head) = head {
        if head.classes() != intents.len() || head.dim != dim {
            return Err(write_err(format!(
                "the head is {} intents x {}, the examples {} x {dim}",
                head.classes(),
                head.dim,
                intents.len()
            )));
        }
        w.add_metadata("edgenlu.head.temperature", MetaValue::F32(head.temperature));
        w.add_metadata(
            "edgenlu.head.oos_threshold",
            MetaValue::F32(head.oos_threshold),
        );
        add_linear(&mut w, "head", head)?;
    }
    if let Some(tagger) = tagger {
        if tagger.head.classes() != tagger.tags.len() || tagger.head.dim != dim {
            return Err(write_err(
                "the slot tagger does not fit its tags or the encoder".into(),
            ));
        }
        w.add_metadata(
            "edgenlu.slots.tags",
            MetaValue::Array(
                tagger
                    .tags
                    .iter()
                    .map(|t| MetaValue::String(t.clone()))
                    .collect(),
            ),
        );
        add_linear(&mut w, "slots", &tagger.head)?;
        let t = tagger.tags.len();
        w.add_tensor(
            "slots.transitions",
            DType::F32,
            &[t, t],
            f32_bytes(&tagger.transitions),
        )
        .map_err(|e| write_err(e.to_string()))?;
    }
    w.write(out).map_err(|e| write_err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` to a fresh file and reads it as a dataset.
    fn read(name: &str, bytes: &[u8]) -> Result<Vec<Example>, DatastoreError> {
        let path =
            std::env::temp_dir().join(format!("edgenlu-{name}-{}.jsonl", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let result = read_examples(&path);
        std::fs::remove_file(&path).unwrap();
        result
    }

    const GOOD: &str = r#"{"text": "play jazz", "intent": "PlayMusic"}"#;

    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_accepted() {
        let file = format!("\u{feff}{GOOD}\r\n\r\n{GOOD}\r\n");
        let examples = read("bom", file.as_bytes()).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].text, "play jazz");
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let mut file = format!("{GOOD}\n{GOOD}\n").into_bytes();
        file.extend_from_slice(b"{\"text\": \"caf\xE9\", \"intent\": \"x\"}\n");
        let err = read("utf8", &file).unwrap_err().to_string();
        assert!(err.contains(":3: not UTF-8"), "{err}");
    }

    #[test]
    fn a_huge_bad_line_is_quoted_only_in_part() {
        let file = format!("{GOOD}\n{{\"text\": \"{}\"}}\n", "a".repeat(10 << 20));
        let err = read("huge", file.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains(":2:") && err.contains("bytes)"),
            "{}",
            &err[..200]
        );
        assert!(err.len() < 500, "an error of {} bytes", err.len());
    }

    #[test]
    fn slot_spans_outside_the_text_or_reversed_are_refused() {
        for slots in [
            r#"[{"start": 5, "end": 99, "slot": "genre"}]"#,
            r#"[{"start": 6, "end": 2, "slot": "genre"}]"#,
            r#"[{"start": 3, "end": 3, "slot": "genre"}]"#,
        ] {
            let line =
                format!(r#"{{"text": "play jazz", "intent": "PlayMusic", "slots": {slots}}}"#);
            let err = read("spans", line.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(":1: slot \"genre\" spans"), "{err}");
        }
        let fits = r#"{"text": "play jazz", "intent": "PlayMusic", "slots": [{"start": 5, "end": 9, "slot": "genre"}]}"#;
        assert_eq!(read("fits", fits.as_bytes()).unwrap()[0].slots.len(), 1);
    }

    #[test]
    fn slots_given_as_values_become_character_spans() {
        let line = r#"{"text": "café in the kitchen", "intent": "x", "slots": {"room": "kitchen", "place": "café"}}"#;
        let ex = &read("values", line.as_bytes()).unwrap()[0];
        let span = |slot: &str| {
            let s = ex.slots.iter().find(|s| s.slot == slot).unwrap();
            (s.start, s.end)
        };
        // In characters: "é" is one, though two bytes.
        assert_eq!(span("place"), (0, 4));
        assert_eq!(span("room"), (12, 19));
    }

    #[test]
    fn a_slot_value_not_in_the_text_is_refused_naming_the_slot() {
        for slots in [r#"{"room": "garage"}"#, r#"{"room": ""}"#, r#"7"#] {
            let line = format!(r#"{{"text": "the kitchen", "intent": "x", "slots": {slots}}}"#);
            let err = read("missing", line.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(":1:"), "{err}");
            assert!(
                err.contains("room") || err.contains("slot values by name"),
                "{err}"
            );
        }
    }
}
