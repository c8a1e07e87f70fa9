//! A skill's decisions on numbers it already holds, apart from the host, so they are tested
//! natively: [`crate::datastore`] gets those numbers from the host's kernels and hands them
//! here.
//!
//! - [`tag_tokens`] and [`decode_bio`]: the slot tagger's best tag sequence (a CRF-style
//!   [`viterbi`] over per-token scores and tag transitions) and the slots it spells.
//! - [`classify`]: the trained head's answer from its calibrated probabilities, `oos` below
//!   the threshold.
//! - [`vote`]: the similarity-weighted vote of the nearest examples.
//! - [`truncate`] and [`check_encoding`]: what the encoder sees, and whether an encoding handed
//!   over with a request fits its text.

/// A token's byte range in the text; `start == end` for tokens added around the text (e.g.
/// `[CLS]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// A filled slot: its name, the text it covers, and that text's byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The slot's name (`x` of the tags `B-x` / `I-x`).
    pub name: String,
    /// `text[start..end]`.
    pub value: String,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// The most likely tag sequence: per-token log-softmax of `emissions` plus the transition
/// log-probabilities [`t` × `t`] (row: from, column: to), starting after tag 0 (`O`).
pub fn viterbi(emissions: &[&[f32]], transitions: &[f32], t: usize) -> Vec<usize> {
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

/// The tag of every token from the tagger's `scores` [tokens × `t`] and `transitions`
/// [`t` × `t`]: the [`viterbi`] path over the tokens of the text, tag 0 (`O`) for tokens added
/// around it, which take no tag.
pub fn tag_tokens(spans: &[Span], scores: &[f32], transitions: &[f32], t: usize) -> Vec<usize> {
    let words: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].start != spans[i].end)
        .collect();
    let emissions: Vec<&[f32]> = words.iter().map(|&i| &scores[i * t..(i + 1) * t]).collect();
    let path = viterbi(&emissions, transitions, t);
    let mut tags = vec![0; spans.len()];
    for (&i, &tag) in words.iter().zip(&path) {
        tags[i] = tag;
    }
    tags
}

/// Spans from per-token BIO tags: `B-x` opens a slot, `I-x` extends an open `x` (or opens one),
/// anything else closes it. Tokens added around the text (empty spans) are skipped; a slot
/// that ends inside a word is extended to the word's end.
pub fn decode_bio(text: &str, spans: &[Span], tags: &[&str]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::new();
    let mut open = false;
    for (t, tag) in spans.iter().zip(tags) {
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
pub fn joins_word(text: &str, at: usize) -> bool {
    let before = text.get(..at).and_then(|t| t.chars().next_back());
    let after = text.get(at..).and_then(|t| t.chars().next());
    matches!((before, after), (Some(a), Some(b)) if a.is_alphanumeric() && b.is_alphanumeric())
}

/// What the head's probabilities decide.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Choice {
    /// The intent of this row, with its probability.
    Intent(usize, f32),
    /// The top probability is below the threshold: out of scope.
    OutOfScope(f32),
}

/// The head's answer from its calibrated probabilities (softmax of the temperature-scaled
/// logits): the first most probable row, out of scope when its probability is below
/// `threshold`.
pub fn classify(probs: &[f32], threshold: f32) -> Choice {
    let (best, p) = first_max(probs);
    if p < threshold {
        Choice::OutOfScope(p)
    } else {
        Choice::Intent(best, p)
    }
}

/// Index and value of the first largest element; (0, `f32::MIN`) for none.
fn first_max(values: &[f32]) -> (usize, f32) {
    values
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
}

/// The intent by a similarity-weighted vote of the nearest examples, given as (label, cosine
/// similarity): close neighbours count more, dissimilar ones (similarity ≤ 0) not at all. The
/// confidence is the winner's share of the vote (0 when nothing voted). A label of `intents`
/// or more is returned as the error.
pub fn vote(
    neighbours: impl IntoIterator<Item = (usize, f32)>,
    intents: usize,
) -> Result<(usize, f32), usize> {
    let mut votes = vec![0f32; intents];
    for (label, score) in neighbours {
        *votes.get_mut(label).ok_or(label)? += score.max(0.0);
    }
    let total: f32 = votes.iter().sum();
    let (best, weight) = first_max(&votes);
    Ok((best, if total > 0.0 { weight / total } else { 0.0 }))
}

/// Keeps at most `max` tokens (`max` ≥ 2) the way the tokenizer's truncation does: the first
/// tokens (`[CLS]` and the first words), then the last one (`[SEP]`).
pub fn truncate<T>(tokens: &mut Vec<T>, max: usize) {
    if tokens.len() > max {
        let last = tokens.pop().expect("longer than max");
        tokens.truncate(max - 1);
        tokens.push(last);
    }
}

/// Whether an encoding handed over with a request fits its `text`: [tokens × dim] states
/// (`states` values), a \[dim\] sentence embedding, and token spans on character boundaries of
/// the text. The error says what does not fit.
pub fn check_encoding(
    text: &str,
    spans: &[Span],
    dim: usize,
    states: usize,
    sentence: usize,
) -> Result<(), String> {
    let n = spans.len();
    if n == 0 || dim == 0 || states != n * dim || sentence != dim {
        return Err(format!(
            "the request's encoding is not [tokens × dim]: {n} tokens, dim {dim}, {states} states, \
             {sentence} sentence values"
        ));
    }
    let fits = |at: u32| text.is_char_boundary(at as usize);
    match spans
        .iter()
        .find(|t| t.start > t.end || !fits(t.start) || !fits(t.end))
    {
        Some(t) => Err(format!(
            "the request's encoding has a token span {}..{} outside the text",
            t.start, t.end
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u32, end: u32) -> Span {
        Span { start, end }
    }

    /// Spans of whitespace-separated words of `text`, between an empty `[CLS]` and `[SEP]`.
    fn words(text: &str) -> Vec<Span> {
        let mut spans = vec![span(0, 0)];
        let mut at = 0;
        for w in text.split(' ') {
            spans.push(span(at as u32, (at + w.len()) as u32));
            at += w.len() + 1;
        }
        spans.push(span(text.len() as u32, text.len() as u32));
        spans
    }

    #[test]
    fn viterbi_follows_the_emissions_without_transitions() {
        let rows: [&[f32]; 3] = [&[0.0, 5.0, 0.0], &[0.0, 0.0, 5.0], &[5.0, 0.0, 0.0]];
        assert_eq!(viterbi(&rows, &[0.0; 9], 3), [1, 2, 0]);
    }

    #[test]
    fn viterbi_lets_transitions_overrule_a_weak_emission() {
        // O=0, B=1, I=2. The second token slightly prefers O, but B→I is likely and B→O not.
        let t = [
            0.0, 0.0, -100.0, // from O: I is impossible
            -5.0, -5.0, 0.0, // from B: I is likely
            0.0, 0.0, 0.0,
        ];
        let rows: [&[f32]; 2] = [&[0.0, 4.0, 0.0], &[1.0, 0.0, 0.5]];
        assert_eq!(viterbi(&rows, &t, 3), [1, 2]);
        // Without B first, I cannot follow.
        let rows: [&[f32]; 2] = [&[4.0, 0.0, 0.0], &[0.0, 0.0, 3.0]];
        assert_ne!(viterbi(&rows, &t, 3), [0, 2]);
    }

    #[test]
    fn viterbi_starts_after_o() {
        // The first row of transitions scores the first tag: I may not start a sequence.
        let t = [0.0, 0.0, -100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let rows: [&[f32]; 1] = [&[0.0, 1.0, 2.0]];
        assert_eq!(viterbi(&rows, &t, 3), [1]);
    }

    #[test]
    fn viterbi_of_nothing_is_empty() {
        assert!(viterbi(&[], &[0.0; 4], 2).is_empty());
    }

    #[test]
    fn added_tokens_take_no_tag() {
        let spans = words("wake me");
        // Scores prefer tag 1 everywhere, even on [CLS] and [SEP].
        let scores: Vec<f32> = spans.iter().flat_map(|_| [0.0, 3.0]).collect();
        assert_eq!(tag_tokens(&spans, &scores, &[0.0; 4], 2), [0, 1, 1, 0]);
    }

    #[test]
    fn bio_spells_slots_from_tags() {
        let text = "play jazz by miles davis";
        let spans = words(text);
        let tags = ["O", "O", "B-genre", "O", "B-artist", "I-artist", "O"];
        let slots = decode_bio(text, &spans, &tags);
        let got: Vec<(&str, &str)> = slots
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(got, [("genre", "jazz"), ("artist", "miles davis")]);
        assert_eq!((slots[1].start, slots[1].end), (13, 24));
    }

    #[test]
    fn bio_opens_on_a_stray_i_and_splits_on_a_new_b() {
        let text = "a b c d";
        let spans = words(text);
        let tags = ["O", "I-x", "I-x", "B-x", "I-y", "O"];
        let slots = decode_bio(text, &spans, &tags);
        let got: Vec<(&str, &str)> = slots
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(got, [("x", "a b"), ("x", "c"), ("y", "d")]);
    }

    #[test]
    fn bio_extends_a_slot_to_the_end_of_its_word() {
        // "tomorrow" as the pieces "tom" + "##orrow"; the continuation is tagged O.
        let text = "alarm tomorrow";
        let spans = [
            span(0, 0),
            span(0, 5),
            span(6, 9),
            span(9, 14),
            span(14, 14),
        ];
        let tags = ["O", "O", "B-date", "O", "O"];
        let slots = decode_bio(text, &spans, &tags);
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].value, "tomorrow");
        // A separate word tagged O does not join.
        let text = "alarm at 7";
        let slots = decode_bio(text, &words(text), &["O", "O", "B-time", "O", "O"]);
        assert_eq!(slots[0].value, "at");
    }

    #[test]
    fn bio_closes_at_added_tokens() {
        let spans = [span(0, 1), span(1, 1), span(1, 2)];
        let slots = decode_bio("ab", &spans, &["B-x", "O", "I-x"]);
        assert_eq!(slots.len(), 2);
    }

    #[test]
    fn joins_word_looks_at_both_sides() {
        assert!(joins_word("tomorrow", 3));
        assert!(!joins_word("to morrow", 2));
        assert!(!joins_word("ab", 0));
        assert!(!joins_word("ab", 2));
        assert!(joins_word("été", 2)); // 'é' is two bytes: byte 2 is between é and t
        assert!(!joins_word("été", 1)); // not a character boundary
    }

    #[test]
    fn classify_answers_oos_below_the_threshold() {
        assert_eq!(classify(&[0.1, 0.7, 0.2], 0.5), Choice::Intent(1, 0.7));
        assert_eq!(classify(&[0.4, 0.3, 0.3], 0.5), Choice::OutOfScope(0.4));
        // Ties go to the first; the threshold itself is in scope.
        assert_eq!(classify(&[0.5, 0.5], 0.5), Choice::Intent(0, 0.5));
    }

    #[test]
    fn vote_weighs_by_similarity() {
        let hits = [(0, 0.9), (1, 0.5), (1, 0.5), (2, -0.8)];
        let (best, confidence) = vote(hits, 3).unwrap();
        assert_eq!(best, 1);
        assert!((confidence - 1.0 / 1.9).abs() < 1e-6);
    }

    #[test]
    fn vote_of_dissimilar_neighbours_has_no_confidence() {
        assert_eq!(vote([(1, -0.2), (0, 0.0)], 2), Ok((0, 0.0)));
        assert_eq!(vote([], 2), Ok((0, 0.0)));
    }

    #[test]
    fn vote_refuses_an_unknown_label() {
        assert_eq!(vote([(0, 0.5), (3, 0.5)], 3), Err(3));
    }

    #[test]
    fn truncate_keeps_the_first_tokens_and_the_last() {
        let mut t = vec![101, 1, 2, 3, 4, 102];
        truncate(&mut t, 4);
        assert_eq!(t, [101, 1, 2, 102]);
        let mut short = vec![101, 102];
        truncate(&mut short, 4);
        assert_eq!(short, [101, 102]);
    }

    #[test]
    fn check_encoding_wants_matching_sizes_and_spans_in_the_text() {
        let spans = words("hé you");
        let n = spans.len();
        assert_eq!(check_encoding("hé you", &spans, 4, n * 4, 4), Ok(()));
        assert!(check_encoding("hé you", &spans, 4, n * 4 - 1, 4).is_err());
        assert!(check_encoding("hé you", &spans, 4, n * 4, 3).is_err());
        assert!(check_encoding("hé you", &[], 4, 0, 4).is_err());
        // Byte 2 is inside 'é'.
        let inside = [span(0, 2)];
        let err = check_encoding("hé you", &inside, 1, 1, 1).unwrap_err();
        assert!(err.contains("0..2"), "{err}");
        assert!(check_encoding("hé", &[span(2, 1)], 1, 1, 1).is_err());
        assert!(check_encoding("hé", &[span(0, 9)], 1, 1, 1).is_err());
    }
}
