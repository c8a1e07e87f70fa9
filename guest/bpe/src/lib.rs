//! GPT-2 byte-level BPE as SmolLM2 uses it, id for id identical to Hugging Face `tokenizers`
//! with a `BPE` model (no unknown token, no dropout), a `Sequence[Digits(individual_digits),
//! ByteLevel(add_prefix_space = false, use_regex = true)]` pre-tokenizer and special tokens
//! added as "added tokens" (SmolLM2-135M-Instruct's tokenizer.json).
//!
//! The pipeline:
//! 1. special tokens (e.g. `<|im_start|>`) are matched verbatim, leftmost-longest, in the raw
//!    text; the text between them goes through steps 2-4 on its own;
//! 2. pre-tokenize ([`pre_tokenize`]): numeric characters isolated, then the GPT-2 pattern;
//! 3. each piece's UTF-8 bytes become the byte-level alphabet's characters (one vocabulary
//!    entry per byte);
//! 4. merges are applied lowest rank first (leftmost on ties) until none applies.
//!
//! No BOS/EOS is added: Hugging Face's SmolLM2 tokenizer adds none either.
//!
//! Pure Rust with no platform dependencies, so it builds for the host and for wasm32 guests.

#![warn(missing_docs)]

mod pretokenize;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

pub use pretokenize::{is_letter, is_number, is_space, pre_tokenize};

/// Why a vocabulary and merge list do not make a tokenizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// A merge is not two tokens separated by one space.
    BadMerge(usize, String),
    /// A merge names a token, or makes one, that the vocabulary lacks.
    MergeOutOfVocabulary(usize, String),
    /// A special token id is not an index of the vocabulary.
    SpecialOutOfVocabulary(u32),
    /// The vocabulary has more entries than a `u32` id can number.
    TooLarge,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::BadMerge(i, m) => write!(f, "merge {i} ({m:?}) is not \"left right\""),
            BuildError::MergeOutOfVocabulary(i, m) => {
                write!(
                    f,
                    "merge {i} ({m:?}) uses or makes a token outside the vocabulary"
                )
            }
            BuildError::SpecialOutOfVocabulary(id) => {
                write!(f, "special token id {id} is outside the vocabulary")
            }
            BuildError::TooLarge => write!(f, "the vocabulary has more than 2^32 tokens"),
        }
    }
}

impl std::error::Error for BuildError {}

/// The GPT-2 byte-to-character table: printable Latin-1 bytes stand for themselves, the other
/// 68 bytes (controls, space, DEL, NBSP, soft hyphen) for U+0100 onwards, in byte order, so
/// every vocabulary entry is printable text without spaces.
pub fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).expect("U+0100..U+0143 are characters")
}

/// FxHash (rustc's hasher): a multiply-rotate per word. Building the tables hashes ~150,000
/// keys per tokenizer instance, and SipHash made that the bulk of a request's first call in
/// Wasm. Flooding is not a concern: the tables' keys come from the model file, and text only
/// drives lookups into them.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ rest.len() as u64);
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i.into());
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i.into());
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // A product's low bits depend only on the factors' low bits, and the table indexes
        // buckets by the low bits: rotating the mixed high bits down avoids collisions.
        self.0.rotate_left(26)
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// The byte each byte-level character stands for, indexed by code point (they are all below
/// U+0144); `None` for characters outside the byte-level alphabet.
fn char_byte_table() -> [Option<u8>; 0x144] {
    let mut table = [None; 0x144];
    for b in 0..=255u8 {
        table[byte_char(b) as usize] = Some(b);
    }
    table
}

/// A byte-level BPE tokenizer built from a vocabulary (id order), merges (rank order) and the
/// ids of its special tokens.
#[derive(Clone)]
pub struct Bpe {
    /// Token text to id; a text listed twice maps to its last id, as a Python dict built
    /// from the list would.
    vocab: FxMap<String, u32>,
    /// (left id, right id) to (rank, merged id).
    merges: FxMap<(u32, u32), (u32, u32)>,
    /// Id of each byte's single-character token; `None` drops the byte, as Hugging Face's
    /// BPE drops characters it cannot look up when it has no unknown token.
    byte_ids: [Option<u32>; 256],
    /// Special tokens' text and id, longest first so the first match at a position is the
    /// longest one.
    specials: Vec<(String, u32)>,
    /// What id `i` decodes to: `token_bytes[token_ends[i - 1]..token_ends[i]]` (one buffer,
    /// not 49,152 small allocations).
    token_bytes: Vec<u8>,
    /// End offset of each id's bytes in `token_bytes`.
    token_ends: Vec<u32>,
}

impl fmt::Debug for Bpe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bpe")
            .field("tokens", &self.token_ends.len())
            .field("merges", &self.merges.len())
            .field("specials", &self.specials)
            .finish_non_exhaustive()
    }
}

impl Bpe {
    /// Builds the tokenizer. `merges` are "left right" strings, highest priority first;
    /// `specials` are the ids matched verbatim in raw text (GGUF token type control or
    /// user-defined) and decoded as their own text.
    pub fn new(
        tokens: Vec<String>,
        merges: &[String],
        specials: &[u32],
    ) -> Result<Bpe, BuildError> {
        if u32::try_from(tokens.len()).is_err() {
            return Err(BuildError::TooLarge);
        }
        let mut special_list = Vec::with_capacity(specials.len());
        for &id in specials {
            let text = tokens
                .get(id as usize)
                .ok_or(BuildError::SpecialOutOfVocabulary(id))?;
            if !text.is_empty() {
                special_list.push((text.clone(), id));
            }
        }
        special_list.sort_by_key(|(t, _)| Reverse(t.len()));

        let char_byte = char_byte_table();
        let mut token_bytes = Vec::with_capacity(tokens.iter().map(String::len).sum());
        let mut token_ends = Vec::with_capacity(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            if specials.contains(&(id as u32)) {
                // Special tokens are not byte-level encoded: they decode to their own text.
                token_bytes.extend_from_slice(t.as_bytes());
            } else {
                for c in t.chars() {
                    match char_byte.get(c as usize).copied().flatten() {
                        Some(b) => token_bytes.push(b),
                        // Not a byte-level character: keep the character itself.
                        None => {
                            token_bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes())
                        }
                    }
                }
            }
            token_ends.push(token_bytes.len() as u32);
        }

        let mut vocab = FxMap::with_capacity_and_hasher(tokens.len(), Default::default());
        for (id, t) in tokens.into_iter().enumerate() {
            vocab.insert(t, id as u32);
        }
        let mut merge_map = FxMap::with_capacity_and_hasher(merges.len(), Default::default());
        let mut joined = String::new();
        for (rank, m) in merges.iter().enumerate() {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| BuildError::BadMerge(rank, m.clone()))?;
            let out_of_vocab = || BuildError::MergeOutOfVocabulary(rank, m.clone());
            let a_id = *vocab.get(a).ok_or_else(out_of_vocab)?;
            let b_id = *vocab.get(b).ok_or_else(out_of_vocab)?;
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            let new_id = *vocab.get(joined.as_str()).ok_or_else(out_of_vocab)?;
            // A repeated merge keeps its last rank, as Hugging Face's map insertion does.
            merge_map.insert((a_id, b_id), (rank as u32, new_id));
        }
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = vocab
                .get(byte_char(b as u8).encode_utf8(&mut [0; 4]) as &str)
                .copied();
        }
        Ok(Bpe {
            vocab,
            merges: merge_map,
            byte_ids,
            specials: special_list,
            token_bytes,
            token_ends,
        })
    }

    /// Number of ids.
    pub fn vocab_len(&self) -> usize {
        self.token_ends.len()
    }

    /// The id of token text `t`, if it is in the vocabulary.
    pub fn token_id(&self, t: &str) -> Option<u32> {
        self.vocab.get(t).copied()
    }

    /// All ids of `text`; nothing is added before or after it.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        let mut rest = text;
        while !rest.is_empty() {
            let (before, special) = self.next_special(rest);
            for piece in pre_tokenize(&rest[..before]) {
                self.encode_piece(piece, &mut ids);
            }
            match special {
                Some((len, id)) => {
                    ids.push(id);
                    rest = &rest[before + len..];
                }
                None => break,
            }
        }
        ids
    }

    /// The tokens of `text` as [`Bpe::encode`] gives them, each with the byte range of `text`
    /// it stands for: byte-level tokens cover exactly their bytes, so the ranges tile the text.
    pub fn encode_spans(&self, text: &str) -> Vec<(u32, std::ops::Range<usize>)> {
        let mut at = 0;
        self.encode(text)
            .into_iter()
            .map(|id| {
                let start = at;
                at += self.token_len(id);
                (id, start..at)
            })
            .collect()
    }

    /// Bytes of token `id` (0 outside the vocabulary).
    fn token_len(&self, id: u32) -> usize {
        let id = id as usize;
        match self.token_ends.get(id) {
            Some(&end) => (end - if id == 0 { 0 } else { self.token_ends[id - 1] }) as usize,
            None => 0,
        }
    }

    /// Where the first special token in `text` starts, with its length and id (the longest
    /// one starting there); `(text.len(), None)` if there is none.
    fn next_special(&self, text: &str) -> (usize, Option<(usize, u32)>) {
        if self.specials.is_empty() {
            return (text.len(), None);
        }
        for (i, _) in text.char_indices() {
            let tail = &text[i..];
            if let Some((t, id)) = self
                .specials
                .iter()
                .find(|(t, _)| tail.starts_with(t.as_str()))
            {
                return (i, Some((t.len(), *id)));
            }
        }
        (text.len(), None)
    }

    /// Appends the ids of one pre-tokenized piece: its bytes as byte tokens, then merges,
    /// lowest rank first and leftmost among equal ranks, with a heap so that long pieces
    /// stay O(n log n). Stale heap entries (a neighbour changed since they were pushed) are
    /// recognized by the pair no longer producing the same merged id.
    fn encode_piece(&self, piece: &str, ids: &mut Vec<u32>) {
        // Symbols as a linked list over a vector; a merged-away symbol gets `alive = false`.
        struct Sym {
            id: u32,
            prev: usize,
            next: usize,
            alive: bool,
        }
        const NONE: usize = usize::MAX;
        let mut syms: Vec<Sym> = Vec::with_capacity(piece.len());
        for b in piece.bytes() {
            if let Some(id) = self.byte_ids[b as usize] {
                let n = syms.len();
                syms.push(Sym {
                    id,
                    prev: if n == 0 { NONE } else { n - 1 },
                    next: NONE,
                    alive: true,
                });
                if n > 0 {
                    syms[n - 1].next = n;
                }
            }
        }
        let mut heap: BinaryHeap<Reverse<(u32, usize, u32)>> = syms
            .windows(2)
            .enumerate()
            .filter_map(|(pos, w)| {
                let &(rank, new_id) = self.merges.get(&(w[0].id, w[1].id))?;
                Some(Reverse((rank, pos, new_id)))
            })
            .collect();
        while let Some(Reverse((_, pos, new_id))) = heap.pop() {
            if !syms[pos].alive || syms[pos].next == NONE {
                continue;
            }
            let right = syms[pos].next;
            match self.merges.get(&(syms[pos].id, syms[right].id)) {
                Some(&(_, id)) if id == new_id => {}
                _ => continue,
            }
            syms[pos].id = new_id;
            syms[right].alive = false;
            let after = syms[right].next;
            syms[pos].next = after;
            if after != NONE {
                syms[after].prev = pos;
            }
            let prev = syms[pos].prev;
            if prev != NONE {
                if let Some(&(rank, id)) = self.merges.get(&(syms[prev].id, new_id)) {
                    heap.push(Reverse((rank, prev, id)));
                }
            }
            if after != NONE {
                if let Some(&(rank, id)) = self.merges.get(&(new_id, syms[after].id)) {
                    heap.push(Reverse((rank, pos, id)));
                }
            }
        }
        ids.extend(syms.iter().filter(|s| s.alive).map(|s| s.id));
    }

    /// The bytes `ids` stand for: byte-level tokens mapped back to bytes, special tokens as
    /// their text. Ids outside the vocabulary are skipped.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            if let Some(&end) = self.token_ends.get(id as usize) {
                let end = end as usize;
                out.extend_from_slice(&self.token_bytes[end - self.token_len(id)..end]);
            }
        }
        out
    }

    /// The text `ids` stand for, special tokens included (so that decode(encode(s)) == s);
    /// bytes that are not valid UTF-8, such as a character split at the end of a generation
    /// step, become U+FFFD, as in Hugging Face's byte-level decoder.
    pub fn decode(&self, ids: &[u32]) -> String {
        match String::from_utf8(self.decode_bytes(ids)) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        assert_eq!(byte_char(b'!'), '!');
        assert_eq!(byte_char(0), '\u{100}');
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(b'\n'), 'Ċ');
        assert_eq!(byte_char(0xAD), '\u{143}');
        let all: std::collections::HashSet<char> = (0..=255u8).map(byte_char).collect();
        assert_eq!(all.len(), 256);
    }

    /// A toy vocabulary: every byte, plus the merges that build "hello", " world" and "lll".
    fn toy() -> Bpe {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
        let merges: Vec<String> = [
            "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "ll l",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for m in &merges {
            tokens.push(m.replace(' ', ""));
        }
        tokens.push("<|im_start|>".into());
        tokens.push("<|im".into());
        let special = tokens.len() as u32 - 2;
        let other = tokens.len() as u32 - 1;
        Bpe::new(tokens, &merges, &[special, other]).unwrap()
    }

    fn texts(bpe: &Bpe, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| bpe.decode(&[i])).collect()
    }

    #[test]
    fn merges_by_rank_and_specials_verbatim() {
        let bpe = toy();
        let ids = bpe.encode("hello world<|im_start|>lll<|imx");
        assert_eq!(
            texts(&bpe, &ids),
            ["hello", " world", "<|im_start|>", "lll", "<|im", "x"]
        );
        assert_eq!(bpe.decode(&ids), "hello world<|im_start|>lll<|imx");
    }

    #[test]
    fn round_trips_arbitrary_text() {
        let bpe = toy();
        for s in [
            "",
            " ",
            "a\u{0}b",
            "👍🏽 x  y\t\n",
            "e\u{301}\u{308}",
            "12 345",
        ] {
            assert_eq!(bpe.decode(&bpe.encode(s)), s);
        }
    }

    #[test]
    fn incomplete_utf8_tail_is_replaced() {
        let bpe = toy();
        let ids = bpe.encode("é");
        assert_eq!(ids.len(), 2);
        assert_eq!(bpe.decode(&ids[..1]), "\u{fffd}");
    }

    #[test]
    fn decode_bytes_keeps_split_characters_raw() {
        let bpe = toy();
        // "é" has no merge in the toy vocabulary: two byte tokens, each half a character.
        let ids = bpe.encode("é");
        assert_eq!(ids.len(), 2);
        let pieces: Vec<Vec<u8>> = ids.iter().map(|&i| bpe.decode_bytes(&[i])).collect();
        assert_eq!(pieces, [vec![0xC3], vec![0xA9]]);
        assert_eq!(pieces.concat(), "é".as_bytes());
        assert_eq!(bpe.decode_bytes(&ids), "é".as_bytes());
    }

    #[test]
    fn decode_is_decode_bytes_made_text() {
        let bpe = toy();
        for s in ["hello world", "<|im_start|>lll", "👍🏽 é", "a\u{0}b", ""] {
            let ids = bpe.encode(s);
            for cut in 0..=ids.len() {
                let ids = &ids[..cut];
                assert_eq!(
                    bpe.decode(ids),
                    String::from_utf8_lossy(&bpe.decode_bytes(ids))
                );
            }
            assert_eq!(bpe.decode_bytes(&ids), s.as_bytes());
        }
    }

    #[test]
    fn rejects_merges_outside_the_vocabulary() {
        let tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
        let err = Bpe::new(tokens, &["a b".to_string()], &[]).unwrap_err();
        assert!(matches!(err, BuildError::MergeOutOfVocabulary(0, _)));
    }
}
