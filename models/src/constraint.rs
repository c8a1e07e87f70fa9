//! Constrained decoding: a JSON schema, a Lark grammar or a regular expression the generated
//! text must match, enforced token by token with `llguidance`. Before each token is sampled,
//! [`TokenConstraint::mask_logits`] sets the logit of every token the grammar does not allow
//! next to −∞ (greedy and sampled decoding alike then choose among allowed tokens only); the
//! chosen token is [`TokenConstraint::commit`]ted; once the grammar is complete and nothing
//! but an end token could follow, [`TokenConstraint::is_finished`] says so and the generation
//! ends.
//!
//! The token environment ([`ConstraintVocab`]: the vocabulary as bytes in a token trie, the
//! end tokens, llguidance's parser factory) is built once per model from its GGUF vocabulary
//! and shared by every generation. Only byte-level BPE vocabularies (`tokenizer.ggml.model =
//! gpt2`, SmolLM2's) are read; another kind is refused naming it.
//!
//! Bounds, so a hostile constraint costs a known amount: its text is at most
//! [`MAX_CONSTRAINT_BYTES`], it nests at most [`MAX_NESTING`] deep, llguidance's
//! [`ParserLimits`] bound the grammar's size, its lexer's states and the work of each step
//! (fuel), and [`TokenConstraint::HOST_BYTES`] is what a generation's matcher may hold.
//! Everything that can go wrong with a constraint is a [`ConstraintError`], never a panic:
//! llguidance runs inside `catch_unwind` here. One process-wide effect remains, llguidance's
//! own: its first grammar compile installs a panic hook that hands every panic outside its
//! own `catch_unwind` to the hook that was there before (inside, it only records a backtrace
//! for the error message). It has no thread pool here (its `rayon` feature is off).

use crate::gguf::Gguf;
use crate::llama::END_OF_TURN_TEXTS;
use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokRxInfo, TokTrie};
use llguidance::{ParserFactory, TokenParser};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Most bytes of a constraint's text (schema, grammar or regex).
pub const MAX_CONSTRAINT_BYTES: usize = 64 << 10;

/// Deepest nesting a constraint may have: JSON objects and arrays in a schema, brackets and
/// parentheses in a grammar or regex. The compilers recurse on nesting; this keeps them far
/// from the end of any thread's stack.
pub const MAX_NESTING: usize = 32;

/// Most lexer states a constraint's matcher builds (llguidance's default: 250,000).
const MAX_LEXER_STATES: usize = 10_000;

/// Most symbols in a compiled grammar (llguidance's default: 500,000).
const MAX_GRAMMAR_SIZE: usize = 100_000;

/// Longest token (in bytes) a vocabulary may have.
const MAX_TOKEN_BYTES: usize = 1024;

/// What the generated text must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// A JSON schema (draft 2020-12 subset llguidance supports); the text is one JSON value
    /// valid under it.
    JsonSchema(String),
    /// A grammar in llguidance's Lark syntax (`start:` is the top rule).
    Lark(String),
    /// A regular expression the whole text matches.
    Regex(String),
}

impl Constraint {
    /// What kind of constraint this is, as the error messages name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Constraint::JsonSchema(_) => "JSON schema",
            Constraint::Lark(_) => "Lark grammar",
            Constraint::Regex(_) => "regex",
        }
    }

    /// The constraint's text.
    pub fn text(&self) -> &str {
        match self {
            Constraint::JsonSchema(s) | Constraint::Lark(s) | Constraint::Regex(s) => s,
        }
    }
}

/// Why a constraint cannot be built or enforced.
#[derive(Debug, thiserror::Error)]
pub enum ConstraintError {
    /// The model's tokenizer is not one whose tokens' bytes this module knows how to read.
    #[error(
        "constrained decoding reads byte-level BPE vocabularies (tokenizer.ggml.model = gpt2); \
         this model's is {0:?}"
    )]
    UnsupportedVocabulary(String),
    /// The model's vocabulary metadata is missing or malformed.
    #[error("the model's vocabulary cannot be read: {0}")]
    BadVocabulary(String),
    /// The constraint's text is longer than [`MAX_CONSTRAINT_BYTES`].
    #[error("the {kind} is {bytes} bytes, at most {MAX_CONSTRAINT_BYTES} are allowed")]
    TooLarge {
        /// JSON schema, Lark grammar or regex.
        kind: &'static str,
        /// Its length.
        bytes: usize,
    },
    /// The constraint nests deeper than [`MAX_NESTING`].
    #[error("the {kind} nests deeper than {MAX_NESTING} levels")]
    TooDeep {
        /// JSON schema, Lark grammar or regex.
        kind: &'static str,
    },
    /// The constraint does not compile (syntax, unsupported feature, a limit of the parser).
    #[error("invalid {kind}: {reason}")]
    Invalid {
        /// JSON schema, Lark grammar or regex.
        kind: &'static str,
        /// llguidance's message.
        reason: String,
    },
    /// The grammar allows no token at this point (e.g. its language is empty), or a step
    /// went past the parser's limits.
    #[error("the constraint cannot continue: {0}")]
    Stuck(String),
}

/// The parser limits of every constrained generation: llguidance's defaults, with fewer lexer
/// states (they are what the matcher's memory grows with, ~2 KiB each) and a smaller grammar,
/// and without the grammar echoed in errors.
pub fn parser_limits() -> ParserLimits {
    ParserLimits {
        max_lexer_states: MAX_LEXER_STATES,
        max_grammar_size: MAX_GRAMMAR_SIZE,
        verbose_errors: false,
        ..ParserLimits::default()
    }
}

/// llguidance's message on one line (its syntax errors draw a caret under the source).
fn one_line(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    if text.contains("NoExtensionBias") {
        return "the grammar allows no token of the model's vocabulary here".into();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs llguidance code, turning a panic into `err(message)`.
fn unwinding<R>(
    err: impl FnOnce(String) -> ConstraintError,
    f: impl FnOnce() -> Result<R, ConstraintError>,
) -> Result<R, ConstraintError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(err(message))
    })
}

/// The byte a GPT-2 byte-level vocabulary's character stands for: printable Latin-1
/// characters for themselves, U+0100.. for the 68 other bytes in order.
fn gpt2_byte(c: char) -> Option<u8> {
    let printable = |b: u32| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    let code = c as u32;
    if code < 0x100 {
        return printable(code).then_some(code as u8);
    }
    let rank = code.checked_sub(0x100)?;
    (0u32..0x100)
        .filter(|&b| !printable(b))
        .nth(rank as usize)
        .map(|b| b as u8)
}

/// A vocabulary's token as bytes: control tokens (GGUF token type 3) as llguidance's special
/// tokens (a 0xFF marker before their text), the others through the byte-level mapping.
fn token_bytes(text: &str, control: bool) -> Result<Vec<u8>, ConstraintError> {
    let bytes = if control {
        let mut b = vec![TokTrie::SPECIAL_TOKEN_MARKER];
        b.extend_from_slice(text.as_bytes());
        b
    } else {
        text.chars()
            .map(|c| {
                gpt2_byte(c).ok_or_else(|| {
                    ConstraintError::BadVocabulary(format!(
                        "token {text:?} has {c:?}, not a byte-level character"
                    ))
                })
            })
            .collect::<Result<Vec<u8>, _>>()?
    };
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(ConstraintError::BadVocabulary(format!(
            "a token of {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A model's token environment for constrained decoding, built once per model.
pub struct ConstraintVocab {
    factory: ParserFactory,
    /// The tokens that end a generation the grammar has completed.
    end_tokens: Vec<u32>,
    vocab: usize,
}

impl ConstraintVocab {
    /// Reads `gguf`'s vocabulary (`tokenizer.ggml.tokens`, `token_type`, `eos_token_id`):
    /// the end tokens are the EOS and ChatML's end-of-turn tokens.
    pub fn from_gguf(gguf: &Gguf) -> Result<ConstraintVocab, ConstraintError> {
        let model = gguf.get_str("tokenizer.ggml.model").unwrap_or("(none)");
        if model != "gpt2" {
            return Err(ConstraintError::UnsupportedVocabulary(model.to_string()));
        }
        let bad = |m: &str| ConstraintError::BadVocabulary(m.to_string());
        let tokens = gguf
            .get_str_array("tokenizer.ggml.tokens")
            .ok_or_else(|| bad("no tokenizer.ggml.tokens"))?;
        let types: Vec<i64> = match gguf.metadata("tokenizer.ggml.token_type") {
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|t| t.as_i64()).collect())
                .ok_or_else(|| bad("tokenizer.ggml.token_type is not a list of integers"))?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() || tokens.is_empty() || tokens.len() > u32::MAX as usize {
            return Err(bad("token types and tokens differ in number"));
        }
        let words = tokens
            .iter()
            .zip(&types)
            .map(|(t, &ty)| token_bytes(t, ty == 3))
            .collect::<Result<Vec<_>, _>>()?;
        let mut end_tokens: Vec<u32> = gguf
            .get_u32("tokenizer.ggml.eos_token_id")
            .filter(|&e| (e as usize) < tokens.len())
            .into_iter()
            .collect();
        for text in END_OF_TURN_TEXTS {
            if let Some(id) = tokens.iter().position(|t| *t == text) {
                if !end_tokens.contains(&(id as u32)) {
                    end_tokens.push(id as u32);
                }
            }
        }
        if end_tokens.is_empty() {
            return Err(bad("no end-of-sequence token"));
        }
        let vocab = tokens.len();
        unwinding(ConstraintError::BadVocabulary, || {
            let info = TokRxInfo::new(vocab as u32, end_tokens[0]);
            let trie = TokTrie::from(&info, &words).with_eos_tokens(&end_tokens);
            let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
            let mut factory = ParserFactory::new_simple(&env)
                .map_err(|e| ConstraintError::BadVocabulary(e.to_string()))?;
            factory.quiet();
            *factory.limits_mut() = parser_limits();
            Ok(ConstraintVocab {
                factory,
                end_tokens,
                vocab,
            })
        })
    }

    /// Tokens in the vocabulary.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The tokens that end a completed constrained generation.
    pub fn end_tokens(&self) -> &[u32] {
        &self.end_tokens
    }

    /// A matcher for one generation under `constraint`, after checking its size and nesting;
    /// llguidance compiles it within [`parser_limits`].
    pub fn compile(&self, constraint: &Constraint) -> Result<TokenConstraint, ConstraintError> {
        let kind = constraint.kind();
        let text = constraint.text();
        if text.len() > MAX_CONSTRAINT_BYTES {
            return Err(ConstraintError::TooLarge {
                kind,
                bytes: text.len(),
            });
        }
        let invalid = |reason: String| ConstraintError::Invalid { kind, reason };
        let grammar = match constraint {
            Constraint::JsonSchema(s) => {
                let schema: serde_json::Value = serde_json::from_str(s).map_err(|e| {
                    // serde_json stops at 128 levels, past what the schema may have anyway.
                    if e.to_string().contains("recursion limit") {
                        ConstraintError::TooDeep { kind }
                    } else {
                        invalid(format!("not JSON: {e}"))
                    }
                })?;
                if json_depth(&schema) > MAX_NESTING {
                    return Err(ConstraintError::TooDeep { kind });
                }
                TopLevelGrammar::from_json_schema(with_bounded_whitespace(schema))
            }
            Constraint::Lark(s) => {
                if bracket_depth(s) > MAX_NESTING {
                    return Err(ConstraintError::TooDeep { kind });
                }
                TopLevelGrammar::from_lark(s.clone())
            }
            Constraint::Regex(s) => {
                if bracket_depth(s) > MAX_NESTING {
                    return Err(ConstraintError::TooDeep { kind });
                }
                TopLevelGrammar::from_regex(s)
            }
        };
        unwinding(invalid, || {
            let mut parser = self
                .factory
                .create_parser(grammar)
                .map_err(|e| invalid(one_line(e)))?;
            parser.start_without_prompt();
            Ok(TokenConstraint {
                parser,
                end_tokens: self.end_tokens.clone(),
            })
        })
    }
}

/// The whitespace a JSON reply may have between two tokens unless the schema's own
/// `x-guidance` options say otherwise: a run of up to 8 spaces, or one line break and up to 16
/// spaces of indentation. llguidance's default (any run of whitespace) lets a small model
/// stall on blank lines until its token budget runs out.
pub const JSON_WHITESPACE: &str = r"( {1,8}|
 {0,16})";

/// `schema` with [`JSON_WHITESPACE`] as its whitespace, unless it sets its own options.
fn with_bounded_whitespace(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(o) = schema.as_object_mut() {
        o.entry("x-guidance")
            .or_insert_with(|| serde_json::json!({ "whitespace_pattern": JSON_WHITESPACE }));
    }
    schema
}

/// How deeply `v`'s arrays and objects nest (a scalar is 0).
fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The deepest nesting of `(`, `[` and `{` in `text`, counted without regard to quoting or
/// escapes: a bound that errs on the side of refusing.
fn bracket_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// One generation's matcher: which tokens may come next, given the tokens so far.
pub struct TokenConstraint {
    parser: TokenParser,
    end_tokens: Vec<u32>,
}

impl TokenConstraint {
    /// Host memory one generation's matcher is charged for: its lexer states at the limit
    /// (~2 KiB each), the grammar at its size limit (~64 bytes a symbol) and a few masks.
    pub const HOST_BYTES: usize = MAX_LEXER_STATES * 2048 + MAX_GRAMMAR_SIZE * 64 + (1 << 20);

    /// Sets the logit of every token the grammar does not allow next to −∞; when the grammar
    /// may end here, the tokens in `stop` stay allowed besides the model's end tokens. A
    /// grammar that allows nothing (or a step past the parser's limits) is
    /// [`ConstraintError::Stuck`].
    pub fn mask_logits(&mut self, logits: &mut [f32], stop: &[u32]) -> Result<(), ConstraintError> {
        let stuck = ConstraintError::Stuck;
        let mut mask: SimpleVob = unwinding(stuck, || {
            self.parser
                .compute_mask()
                .map_err(|e| ConstraintError::Stuck(one_line(e)))
        })?;
        if self.end_tokens.iter().any(|&t| mask.is_allowed(t)) {
            let len = mask.len();
            for &t in stop.iter().filter(|&&t| (t as usize) < len) {
                mask.allow_token(t);
            }
        }
        let mut any = false;
        for (i, l) in logits.iter_mut().enumerate() {
            if i < mask.len() && mask.get(i) {
                any |= !l.is_nan();
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        if any {
            Ok(())
        } else {
            Err(ConstraintError::Stuck(
                "the grammar allows no token of the model's vocabulary here".into(),
            ))
        }
    }

    /// Whether `token` ends the generation (one of the model's end tokens).
    pub fn is_end(&self, token: u32) -> bool {
        self.end_tokens.contains(&token)
    }

    /// Advances the matcher past `token`, which [`Self::mask_logits`] allowed.
    pub fn commit(&mut self, token: u32) -> Result<(), ConstraintError> {
        unwinding(ConstraintError::Stuck, || {
            self.parser
                .consume_token(token)
                .map(|_| ())
                .map_err(|e| ConstraintError::Stuck(one_line(e)))
        })
    }

    /// Whether the text so far is complete and nothing but an end token may follow: the
    /// generation is over.
    pub fn is_finished(&mut self) -> Result<bool, ConstraintError> {
        unwinding(ConstraintError::Stuck, || {
            self.parser
                .check_stop()
                .map_err(|e| ConstraintError::Stuck(one_line(e)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_characters_map_back_to_every_byte_once() {
        let mut seen = [false; 256];
        for c in (0x21u32..0x17F).filter_map(char::from_u32) {
            if let Some(b) = gpt2_byte(c) {
                assert!(!seen[b as usize], "byte {b} twice");
                seen[b as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(gpt2_byte('Ġ'), Some(b' '));
        assert_eq!(gpt2_byte('Ċ'), Some(b'\n'));
        assert_eq!(gpt2_byte('a'), Some(b'a'));
    }

    #[test]
    fn nesting_is_measured() {
        assert_eq!(bracket_depth("a(b[c]{d})"), 2);
        assert_eq!(bracket_depth("a(b[c{d}])"), 3);
        let deep: serde_json::Value = serde_json::from_str("[[[1]],{\"a\":{}}]").unwrap();
        assert_eq!(json_depth(&deep), 3);
    }
}
