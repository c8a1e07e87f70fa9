//! Properties of the tokenizer on arbitrary text and arbitrary merge tables: pieces tile the
//! text, every text whose bytes all have byte tokens comes back from decode(encode(s)), and
//! the heap-driven merge loop agrees with the textbook one (repeatedly merge the lowest-rank
//! adjacent pair, leftmost first).

use bpe::{byte_char, pre_tokenize, Bpe};
use proptest::prelude::*;

/// Every byte token, then one token per merge; merges drawn over a small alphabet so that
/// they actually apply.
fn tokenizer(merges: &[(String, String)]) -> (Bpe, Vec<String>, Vec<String>) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut lines = Vec::new();
    for (a, b) in merges {
        for t in [a.clone(), b.clone(), format!("{a}{b}")] {
            if !tokens.contains(&t) {
                tokens.push(t);
            }
        }
        lines.push(format!("{a} {b}"));
    }
    let bpe = Bpe::new(tokens.clone(), &lines, &[]).unwrap();
    (bpe, tokens, lines)
}

/// The textbook BPE of one piece: merge the lowest-rank adjacent pair (leftmost on ties)
/// until none is in the table.
fn naive(piece: &str, tokens: &[String], lines: &[String]) -> Vec<u32> {
    let mut syms: Vec<String> = piece.bytes().map(|b| byte_char(b).to_string()).collect();
    let rank = |a: &str, b: &str| {
        let want = format!("{a} {b}");
        // The last occurrence of a repeated merge is the one that counts.
        lines.iter().rposition(|l| *l == want)
    };
    loop {
        let best = (0..syms.len().saturating_sub(1))
            .filter_map(|i| rank(&syms[i], &syms[i + 1]).map(|r| (r, i)))
            .min();
        let Some((_, i)) = best else { break };
        let merged = format!("{}{}", syms[i], syms[i + 1]);
        syms.splice(i..i + 2, [merged]);
    }
    syms.iter()
        .map(|s| tokens.iter().rposition(|t| t == s).unwrap() as u32)
        .collect()
}

fn merge_table() -> impl Strategy<Value = Vec<(String, String)>> {
    // Tokens over "ab" and their byte-level spellings of a space (Ġ), so merges chain.
    let token = prop::sample::select(vec!["a", "b", "Ġ", "aa", "ab", "ba", "Ġa", "bb"]);
    prop::collection::vec((token.clone(), token), 0..24).prop_map(|v| {
        v.into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    })
}

proptest! {
    #[test]
    fn pieces_tile_the_text(s in any::<String>()) {
        prop_assert_eq!(pre_tokenize(&s).concat(), s.clone());
        prop_assert!(pre_tokenize(&s).iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn decode_inverts_encode(s in any::<String>(), merges in merge_table()) {
        let (bpe, _, _) = tokenizer(&merges);
        prop_assert_eq!(bpe.decode(&bpe.encode(&s)), s);
    }

    #[test]
    fn spans_tile_the_text_token_by_token(s in any::<String>(), merges in merge_table()) {
        let (bpe, _, _) = tokenizer(&merges);
        let spans = bpe.encode_spans(&s);
        prop_assert_eq!(spans.iter().map(|(id, _)| *id).collect::<Vec<_>>(), bpe.encode(&s));
        let mut at = 0;
        for (id, range) in &spans {
            prop_assert_eq!(range.start, at);
            prop_assert_eq!(&s.as_bytes()[range.clone()], &bpe.decode_bytes(&[*id])[..]);
            at = range.end;
        }
        prop_assert_eq!(at, s.len());
    }

    #[test]
    fn heap_merges_agree_with_the_textbook_loop(s in "[ab ]{0,40}", merges in merge_table()) {
        let (bpe, tokens, lines) = tokenizer(&merges);
        let expected: Vec<u32> = pre_tokenize(&s)
            .into_iter()
            .flat_map(|p| naive(p, &tokens, &lines))
            .collect();
        prop_assert_eq!(bpe.encode(&s), expected);
    }
}

#[test]
fn a_long_run_is_fast() {
    let (bpe, _, _) = tokenizer(&[("a".into(), "a".into()), ("aa".into(), "aa".into())]);
    let s = "a".repeat(200_000);
    let ids = bpe.encode(&s);
    assert_eq!(ids.len(), 50_000);
}
