//! WordPiece tokenization as BERT (uncased) models expect it, id for id identical to Hugging
//! Face `tokenizers` with a `BertNormalizer`, `BertPreTokenizer`, `WordPiece` model,
//! `[CLS] $A [SEP]` template and `WordPiece` decoder (e.g. all-MiniLM-L6-v2's tokenizer.json).
//!
//! The pipeline, per piece of text between special tokens:
//! 1. normalize: drop control characters and map whitespace to a space (`clean_text`), put
//!    spaces around CJK ideographs (`handle_chinese_chars`), NFD and drop nonspacing marks
//!    (`strip_accents`), lowercase character by character (`lowercase`);
//! 2. split into words on whitespace, and isolate every punctuation character;
//! 3. split each word greedily into the longest vocabulary entries, continuations prefixed
//!    with `##`; a word that cannot be split, or is too long, becomes `[UNK]`.
//!
//! Pure Rust with no platform dependencies, so it builds for the host and for wasm32 guests.

#![warn(missing_docs)]

mod normalize;

use std::collections::HashMap;
use std::fmt;

pub use normalize::{is_bert_punctuation, is_control, is_whitespace};

/// How text is normalized and split; [`Options::default`] is BERT uncased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Lowercase every character (per character, as `char::to_lowercase`).
    pub lowercase: bool,
    /// Strip accents (NFD, then drop nonspacing marks); `None` follows `lowercase`.
    pub strip_accents: Option<bool>,
    /// Surround CJK ideographs with spaces so each becomes its own word.
    pub handle_chinese_chars: bool,
    /// Drop NUL, U+FFFD and control characters; map every whitespace character to a space.
    pub clean_text: bool,
    /// Words with more characters than this become the unknown token.
    pub max_input_chars_per_word: usize,
    /// Prefix of vocabulary entries that continue a word, e.g. `##`.
    pub continuing_subword_prefix: String,
    /// The unknown token; must be in the vocabulary.
    pub unk_token: String,
    /// The token put before the text; must be in the vocabulary.
    pub cls_token: String,
    /// The token put after the text; must be in the vocabulary.
    pub sep_token: String,
    /// Tokens matched verbatim in the raw text before normalization (Hugging Face's special
    /// "added tokens") and skipped by [`WordPiece::decode`]. Entries missing from the vocabulary
    /// are ignored. The unknown, CLS and SEP tokens are always special.
    pub special_tokens: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lowercase: true,
            strip_accents: None,
            handle_chinese_chars: true,
            clean_text: true,
            max_input_chars_per_word: 100,
            continuing_subword_prefix: "##".into(),
            unk_token: "[UNK]".into(),
            cls_token: "[CLS]".into(),
            sep_token: "[SEP]".into(),
            special_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// Why a tokenizer could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The vocabulary has no entries.
    EmptyVocab,
    /// The vocabulary has more entries than `u32` ids can name.
    VocabTooLarge(usize),
    /// A required token (unknown, CLS or SEP) is not in the vocabulary.
    MissingToken(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EmptyVocab => write!(f, "the vocabulary is empty"),
            Error::VocabTooLarge(n) => {
                write!(f, "the vocabulary has {n} entries, too many for u32 ids")
            }
            Error::MissingToken(t) => write!(f, "token {t:?} is not in the vocabulary"),
        }
    }
}

impl std::error::Error for Error {}

/// A token and the byte range of the input it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenSpan {
    /// The token's id.
    pub id: u32,
    /// First byte of the input the token covers.
    pub start: usize,
    /// One past its last byte (`start == end` for tokens added around the text).
    pub end: usize,
}

/// A ready tokenizer: vocabulary, options and resolved special-token ids.
#[derive(Clone, Debug)]
pub struct WordPiece {
    vocab: Vec<String>,
    ids: HashMap<String, u32>,
    options: Options,
    strip_accents: bool,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    /// Special tokens present in the vocabulary, with their ids, for raw-text matching.
    specials: Vec<(String, u32)>,
}

impl WordPiece {
    /// Builds a tokenizer; `vocab[i]` is the token with id `i`. If a token appears twice, the
    /// later id wins, as when Hugging Face reads a vocab.txt.
    pub fn new(vocab: Vec<String>, options: Options) -> Result<WordPiece, Error> {
        if vocab.is_empty() {
            return Err(Error::EmptyVocab);
        }
        if u32::try_from(vocab.len()).is_err() {
            return Err(Error::VocabTooLarge(vocab.len()));
        }
        let ids: HashMap<String, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let lookup = |t: &str| {
            ids.get(t)
                .copied()
                .ok_or_else(|| Error::MissingToken(t.into()))
        };
        let unk_id = lookup(&options.unk_token)?;
        let cls_id = lookup(&options.cls_token)?;
        let sep_id = lookup(&options.sep_token)?;
        let mut specials: Vec<(String, u32)> = Vec::new();
        let required = [&options.unk_token, &options.cls_token, &options.sep_token];
        for t in options.special_tokens.iter().chain(required) {
            // An empty pattern would match everywhere and consume nothing.
            if t.is_empty() || specials.iter().any(|(s, _)| s == t) {
                continue;
            }
            if let Some(&id) = ids.get(t.as_str()) {
                specials.push((t.clone(), id));
            }
        }
        let strip_accents = options.strip_accents.unwrap_or(options.lowercase);
        Ok(WordPiece {
            vocab,
            ids,
            options,
            strip_accents,
            unk_id,
            cls_id,
            sep_id,
            specials,
        })
    }

    /// The options this tokenizer was built with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_len(&self) -> usize {
        self.vocab.len()
    }

    /// Id of the unknown token.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Id of the token put before the text.
    pub fn cls_id(&self) -> u32 {
        self.cls_id
    }

    /// Id of the token put after the text.
    pub fn sep_id(&self) -> u32 {
        self.sep_id
    }

    /// The token with id `id`, if any.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.vocab.get(id as usize).map(String::as_str)
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The tokens of `text` as [`WordPiece::encode`] gives them, each with the byte range of
    /// `text` it came from (`[CLS]` and `[SEP]`: empty ranges at the start and the end). A
    /// continuation piece covers its own characters; when normalization changes how many
    /// characters a stretch has (so its characters cannot be matched one to one), every token
    /// from that stretch covers all of it.
    pub fn encode_spans(&self, text: &str) -> Vec<TokenSpan> {
        let mut out = vec![TokenSpan {
            id: self.cls_id,
            start: 0,
            end: 0,
        }];
        let mut offset = 0;
        for (piece, special) in self.segments(text) {
            self.encode_plain_spans(piece, offset, &mut out);
            offset += piece.len();
            if let Some((len, id)) = special {
                out.push(TokenSpan {
                    id,
                    start: offset,
                    end: offset + len,
                });
                offset += len;
            }
        }
        out.push(TokenSpan {
            id: self.sep_id,
            start: text.len(),
            end: text.len(),
        });
        out
    }

    /// All ids of `text`: `[CLS]`, the text's tokens, `[SEP]`; no truncation, no padding.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = vec![self.cls_id];
        self.encode_into(text, &mut out);
        out.push(self.sep_id);
        out
    }

    /// Appends the ids of `text` to `out`, without `[CLS]`/`[SEP]`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        for (piece, special) in self.segments(text) {
            self.encode_plain(piece, out);
            out.extend(special.map(|(_, id)| id));
        }
    }

    /// `text` cut at special tokens: each plain stretch with the special token (byte length,
    /// id) that ends it, if any.
    fn segments<'t>(
        &'t self,
        text: &'t str,
    ) -> impl Iterator<Item = (&'t str, Option<(usize, u32)>)> + 't {
        let mut rest = Some(text);
        std::iter::from_fn(move || {
            let r = rest?;
            match self.find_special(r) {
                Some((at, len, id)) => {
                    rest = Some(&r[at + len..]).filter(|t| !t.is_empty());
                    Some((&r[..at], Some((len, id))))
                }
                None => {
                    rest = None;
                    Some((r, None))
                }
            }
        })
    }

    /// The leftmost special token in `text`, the longest one if several start there, as
    /// (byte offset, byte length, id).
    fn find_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        if self.specials.is_empty() {
            return None;
        }
        for (at, _) in text.char_indices() {
            let here = &text[at..];
            let best = self
                .specials
                .iter()
                .filter(|(s, _)| here.starts_with(s.as_str()))
                .max_by_key(|(s, _)| s.len());
            if let Some((s, id)) = best {
                return Some((at, s.len(), *id));
            }
        }
        None
    }

    fn steps(&self) -> normalize::Steps {
        normalize::Steps {
            clean_text: self.options.clean_text,
            handle_chinese_chars: self.options.handle_chinese_chars,
            strip_accents: self.strip_accents,
            lowercase: self.options.lowercase,
        }
    }

    /// Text that contains no special token: normalize, split into words, WordPiece each word.
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let normalized = normalize::normalize(text, self.steps());
        let mut scratch = String::new();
        let mut pieces = Vec::new();
        for word in normalize::words(&normalized) {
            pieces.clear();
            self.encode_word(word, &mut scratch, &mut pieces);
            out.extend(pieces.iter().map(|p| p.id));
        }
    }

    /// [`WordPiece::encode_plain`] with spans: `text` starts at byte `offset` of the input.
    fn encode_plain_spans(&self, text: &str, offset: usize, out: &mut Vec<TokenSpan>) {
        if text.is_empty() {
            return;
        }
        let normalized = normalize::normalize(text, self.steps());
        // For each byte of the normalized text, the original character it came from: found by
        // normalizing character by character, which matches the whole-text normalization
        // except where NFD reorders combining marks; there, the whole stretch is the origin.
        let mut origin = Vec::with_capacity(normalized.len());
        let mut per_char = String::with_capacity(normalized.len());
        for (at, c) in text.char_indices() {
            let end = at + c.len_utf8();
            let n = normalize::normalize(&text[at..end], self.steps());
            per_char.push_str(&n);
            origin.extend(std::iter::repeat_n((at, end), n.len()));
        }
        if per_char != normalized {
            origin = vec![(0, text.len()); normalized.len()];
        }
        let mut scratch = String::new();
        let mut pieces = Vec::new();
        for word in normalize::words(&normalized) {
            let word_at = word.as_ptr() as usize - normalized.as_ptr() as usize;
            pieces.clear();
            self.encode_word(word, &mut scratch, &mut pieces);
            for p in &pieces {
                let (first, last) = (origin[word_at + p.start], origin[word_at + p.end - 1]);
                out.push(TokenSpan {
                    id: p.id,
                    start: offset + first.0,
                    end: offset + last.1,
                });
            }
        }
    }

    /// Greedy longest-match-first; the whole word is `[UNK]` if any part cannot be matched.
    /// Appends the pieces with their byte ranges in `word`.
    fn encode_word(&self, word: &str, scratch: &mut String, out: &mut Vec<TokenSpan>) {
        let unknown = TokenSpan {
            id: self.unk_id,
            start: 0,
            end: word.len(),
        };
        if word.chars().count() > self.options.max_input_chars_per_word {
            out.push(unknown);
            return;
        }
        let first = out.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                let piece = &word[start..end];
                let id = if start == 0 {
                    self.ids.get(piece)
                } else {
                    scratch.clear();
                    scratch.push_str(&self.options.continuing_subword_prefix);
                    scratch.push_str(piece);
                    self.ids.get(scratch.as_str())
                };
                if let Some(&id) = id {
                    found = Some(id);
                    break;
                }
                // Shorten by one character; `piece` is non-empty, so there is a last char.
                end -= piece.chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => {
                    out.push(TokenSpan { id, start, end });
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(unknown);
                    return;
                }
            }
        }
    }

    /// Text of `ids` as Hugging Face's `decode(ids, skip_special_tokens=True)` with the
    /// WordPiece decoder: special and out-of-range ids are skipped, continuation pieces are
    /// glued to the previous piece, others are separated by a space, and spaces before
    /// punctuation and English contractions are removed.
    pub fn decode(&self, ids: &[u32]) -> String {
        let prefix = self.options.continuing_subword_prefix.as_str();
        let mut out = String::new();
        let mut token = String::new();
        let mut first = true;
        for &id in ids {
            if self.is_special(id) {
                continue;
            }
            let Some(piece) = self.id_to_token(id) else {
                continue;
            };
            token.clear();
            if first {
                // The first piece keeps a leading prefix, as Hugging Face's decoder does.
                token.push_str(piece);
            } else if let Some(rest) = piece.strip_prefix(prefix) {
                token.push_str(rest);
            } else {
                token.push(' ');
                token.push_str(piece);
            }
            first = false;
            // The reference cleans each piece on its own, not the joined text.
            out.push_str(&cleanup(&token));
        }
        out
    }

    fn is_special(&self, id: u32) -> bool {
        self.specials.iter().any(|&(_, s)| s == id)
    }
}

/// Hugging Face's WordPiece decoder cleanup: no space before `.?!,` and English contractions.
fn cleanup(piece: &str) -> String {
    piece
        .replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "un", "##aff",
            "##able", "!", ",", "a", "##b", "σ", "##ασ", "i", "你", ".",
        ];
        WordPiece::new(vocab.map(String::from).to_vec(), Options::default()).unwrap()
    }

    #[test]
    fn splits_words_and_punctuation() {
        let t = tiny();
        assert_eq!(t.encode("Hello, WORLD!"), [2, 5, 11, 6, 10, 3]);
        assert_eq!(t.encode("unaffable"), [2, 7, 8, 9, 3]);
        assert_eq!(t.encode(""), [2, 3]);
    }

    #[test]
    fn unknown_and_too_long_words() {
        let t = tiny();
        assert_eq!(t.encode("unaffablex"), [2, 1, 3]);
        let long = "ab".repeat(51);
        assert_eq!(t.encode(&long), [2, 1, 3]);
        assert_eq!(t.encode(&"b".repeat(100)), [2, 1, 3]);
    }

    #[test]
    fn normalization() {
        let t = tiny();
        // Per-character lowercase: a final sigma stays σ, as in the reference.
        assert_eq!(t.encode("ΣΑΣ"), [2, 14, 15, 3]);
        // İ decomposes to I + a nonspacing dot, which accent stripping drops.
        assert_eq!(t.encode("İ"), [2, 16, 3]);
        assert_eq!(t.encode("a\u{0}\u{200b}\u{feff}b"), [2, 12, 13, 3]);
        assert_eq!(t.encode("你hello"), [2, 17, 5, 3]);
    }

    #[test]
    fn special_tokens_in_text() {
        let t = tiny();
        assert_eq!(t.encode("hello[SEP]world [MASK]"), [2, 5, 3, 6, 4, 3]);
        assert_eq!(t.encode("[sep]")[1..3], [1, 1]);
    }

    #[test]
    fn decodes_like_reference() {
        let t = tiny();
        assert_eq!(
            t.decode(&t.encode("Hello, world! unaffable.")),
            "hello, world! unaffable."
        );
        assert_eq!(t.decode(&[8, 5, 99, 0]), "##aff hello");
    }

    #[test]
    fn spans_point_back_into_the_text() {
        let t = tiny();
        let text = "Héllo, WORLD! unaffable[SEP]你";
        let spans = t.encode_spans(text);
        assert_eq!(
            spans.iter().map(|s| s.id).collect::<Vec<_>>(),
            t.encode(text)
        );
        let shown: Vec<&str> = spans.iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(
            shown,
            ["", "Héllo", ",", "WORLD", "!", "un", "aff", "able", "[SEP]", "你", ""]
        );
        assert_eq!((spans[10].start, spans[10].end), (text.len(), text.len()));
    }

    #[test]
    fn rejects_missing_tokens() {
        let err = WordPiece::new(vec!["a".into()], Options::default()).unwrap_err();
        assert_eq!(err, Error::MissingToken("[UNK]".into()));
        assert_eq!(
            WordPiece::new(vec![], Options::default()).unwrap_err(),
            Error::EmptyVocab
        );
    }
}
