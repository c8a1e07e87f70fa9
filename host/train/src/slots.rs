//! Slot tagging data: the BIO tag set of a dataset, each token's tag from the dataset's
//! character spans (what the slot tagger trains on), and the tagger's training. The tagger itself runs in the skill (`guest/skill-intents`: `tag_slots`,
//! `decode_bio`), which answers with byte spans.

use edgenlu::{Encoded, TokenSpan};
use edgenlu_models::softmax_head::{HeadError, HeadTraining, Labelled, SoftmaxHead};
use serde::Deserialize;

/// A trained slot tagger: a softmax over `tags` for every token state, and how likely each
/// tag is to follow each other one (the skill decodes the best tag sequence with both, so a
/// slot is not cut in two where one token's own scores waver between `B-x` and `I-x`).
#[derive(Debug, Clone)]
pub struct SlotTagger {
    pub tags: Vec<String>,
    pub head: SoftmaxHead,
    /// `[tags × tags]`: ln P(tag j | previous tag i), add-one smoothed; a text starts after
    /// `O`.
    pub transitions: Vec<f32>,
}

impl SlotTagger {
    /// Trains a tagger on the token states of `encoded` texts, whose gold slots are `gold`.
    pub fn train(
        texts: &[&str],
        encoded: &[Encoded],
        gold: &[&[CharSpan]],
        opts: &HeadTraining,
    ) -> Result<SlotTagger, HeadError> {
        let tags = tag_set(gold.iter().flat_map(|g| g.iter().map(|s| s.slot.as_str())));
        let t = tags.len();
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        let mut counts = vec![1f64; t * t];
        for ((text, e), spans) in texts.iter().zip(encoded).zip(gold) {
            let dim = e.dim as usize;
            let token_labels = bio_labels(&e.tokens, &to_bytes(text, spans), &tags);
            let mut previous = 0;
            for (state, label) in e.states.chunks_exact(dim.max(1)).zip(token_labels) {
                if let Some(label) = label {
                    rows.push(state.to_vec());
                    labels.push(Some(label));
                    counts[previous * t + label] += 1.0;
                    previous = label;
                }
            }
        }
        let transitions = counts
            .chunks(t)
            .flat_map(|row| {
                let total: f64 = row.iter().sum();
                row.iter().map(move |c| (c / total).ln() as f32)
            })
            .collect();
        let head = SoftmaxHead::train(
            &Labelled {
                embeddings: &rows,
                labels: &labels,
            },
            tags.len(),
            opts,
        )?;
        Ok(SlotTagger {
            tags,
            head,
            transitions,
        })
    }
}

/// The tag for tokens outside every slot.
pub const OUTSIDE: &str = "O";

/// A labelled slot as datasets give it: characters [start, end) of the text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CharSpan {
    pub start: usize,
    pub end: usize,
    pub slot: String,
}

/// A slot as the skill answers it: bytes [start, end) of the text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSpan {
    pub start: usize,
    pub end: usize,
    pub slot: String,
}

impl From<&edgenlu::Slot> for ByteSpan {
    /// A slot as the skill answered it.
    fn from(s: &edgenlu::Slot) -> ByteSpan {
        ByteSpan {
            start: s.start as usize,
            end: s.end as usize,
            slot: s.name.clone(),
        }
    }
}

/// `spans` of `text` in bytes; spans past the text or inverted are dropped.
pub fn to_bytes(text: &str, spans: &[CharSpan]) -> Vec<ByteSpan> {
    // Byte offset of every character boundary, the end included.
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(at, _)| at)
        .chain([text.len()])
        .collect();
    spans
        .iter()
        .filter(|s| s.start < s.end && s.end < bounds.len())
        .map(|s| ByteSpan {
            start: bounds[s.start],
            end: bounds[s.end],
            slot: s.slot.clone(),
        })
        .collect()
}

/// The tags for slot names `names`: "O", then "B-name" and "I-name" for each name, sorted.
pub fn tag_set<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let names: std::collections::BTreeSet<&str> = names.into_iter().collect();
    std::iter::once(OUTSIDE.to_string())
        .chain(
            names
                .into_iter()
                .flat_map(|n| [format!("B-{n}"), format!("I-{n}")]),
        )
        .collect()
}

/// Each token's tag (its index in `tags`): `B-x` for the first token inside slot `x`, `I-x`
/// for the others inside it, `O` outside every slot; `None` for tokens added around the text
/// (empty spans), which the tagger does not learn. A token inside a slot whose name is not
/// in `tags` is `O`.
pub fn bio_labels(tokens: &[TokenSpan], spans: &[ByteSpan], tags: &[String]) -> Vec<Option<usize>> {
    let tag = |t: &str| tags.iter().position(|x| x == t).unwrap_or(0);
    let mut started = vec![false; spans.len()];
    tokens
        .iter()
        .map(|t| {
            if t.start == t.end {
                return None;
            }
            let (start, end) = (t.start as usize, t.end as usize);
            let Some(i) = spans.iter().position(|s| start >= s.start && end <= s.end) else {
                return Some(tag(OUTSIDE));
            };
            let prefix = if std::mem::replace(&mut started[i], true) {
                "I"
            } else {
                "B"
            };
            Some(tag(&format!("{prefix}-{}", spans[i].slot)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(start: u32, end: u32) -> TokenSpan {
        TokenSpan { id: 0, start, end }
    }

    #[test]
    fn labels_follow_the_spans_token_by_token() {
        // "play Miles Davis" with "Miles Davis" an artist, "Davis" split in two pieces.
        let text = "play Miles Davis";
        let spans = to_bytes(
            text,
            &[CharSpan {
                start: 5,
                end: 16,
                slot: "artist".into(),
            }],
        );
        let tags = tag_set(["artist", "album"]);
        assert_eq!(tags, ["O", "B-album", "I-album", "B-artist", "I-artist"]);
        let tokens = [
            token(0, 0),
            token(0, 4),
            token(5, 10),
            token(11, 14),
            token(14, 16),
            token(16, 16),
        ];
        assert_eq!(
            bio_labels(&tokens, &spans, &tags),
            [None, Some(0), Some(3), Some(4), Some(4), None]
        );
    }

    #[test]
    fn character_spans_become_byte_spans() {
        let text = "café à Paris";
        let spans = to_bytes(
            text,
            &[
                CharSpan {
                    start: 7,
                    end: 12,
                    slot: "city".into(),
                },
                CharSpan {
                    start: 3,
                    end: 40,
                    slot: "bad".into(),
                },
            ],
        );
        assert_eq!(spans.len(), 1);
        assert_eq!(&text[spans[0].start..spans[0].end], "Paris");
    }
}
