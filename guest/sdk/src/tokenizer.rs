//! A tokenizer component in one line: implement [`Tokenizer`] for a type and hand it to
//! [`export_tokenizer!`](crate::export_tokenizer), which exports the `tokenizer` world's
//! `tokenize` interface with it.
//!
//! What every tokenizer component does the same way lives here, once: the tokenizer is built
//! on first use and kept for the instance (a failed build too, so every call reports the same
//! error instead of reopening the model), ids outside the vocabulary are refused rather than
//! skipped (a caller bug worth reporting), and byte offsets are checked to fit the interface's
//! `u32`.
//!
//! ```no_run
//! use std::ops::Range;
//! use edgenlu_sdk::{settings, tokenizer::Tokenizer, Result};
//!
//! /// One token per byte.
//! struct Bytes;
//!
//! impl Tokenizer for Bytes {
//!     fn load() -> Result<Self> {
//!         settings::model("model")?; // the model must be granted, as for a real vocabulary
//!         Ok(Bytes)
//!     }
//!     fn vocab_len(&self) -> usize {
//!         256
//!     }
//!     fn encode(&self, text: &str) -> Vec<u32> {
//!         text.bytes().map(u32::from).collect()
//!     }
//!     fn encode_spans(&self, text: &str) -> Vec<(u32, Range<usize>)> {
//!         text.bytes().enumerate().map(|(i, b)| (u32::from(b), i..i + 1)).collect()
//!     }
//!     fn decode(&self, ids: &[u32]) -> String {
//!         String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
//!     }
//!     fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
//!         ids.iter().map(|&id| id as u8).collect()
//!     }
//! }
//!
//! edgenlu_sdk::export_tokenizer!(Bytes);
//! # fn main() {}
//! ```

use std::ops::Range;

use crate::{invalid, Error, Result, TokenSpan};

/// A tokenizer a component exports. Methods other than [`load`](Tokenizer::load) are only
/// called with ids that [`vocab_len`](Tokenizer::vocab_len) covers.
pub trait Tokenizer: Sized + Send + Sync + 'static {
    /// Builds the tokenizer, typically from the model named by the config key `model`
    /// ([`settings::model`](crate::settings::model)). Called once per instance.
    fn load() -> Result<Self>;
    /// Tokens in the vocabulary: valid ids are `0..vocab_len()`.
    fn vocab_len(&self) -> usize;
    /// All ids of `text`, with the model's special tokens.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// The ids of [`encode`](Tokenizer::encode), each with the byte range of `text` it came
    /// from (empty for tokens added around the text).
    fn encode_spans(&self, text: &str) -> Vec<(u32, Range<usize>)>;
    /// The text of `ids`.
    fn decode(&self, ids: &[u32]) -> String;
    /// The raw bytes of `ids`' text, which may end inside a UTF-8 character. By default the
    /// bytes of [`decode`](Tokenizer::decode): right for tokenizers whose tokens are whole
    /// characters.
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        self.decode(ids).into_bytes()
    }
}

/// Refuses ids outside `t`'s vocabulary.
fn check_ids<T: Tokenizer>(t: &T, ids: &[u32]) -> Result<()> {
    match ids.iter().find(|&&id| id as usize >= t.vocab_len()) {
        Some(&bad) => Err(invalid(format!(
            "token id {bad} is outside the vocabulary ({} tokens)",
            t.vocab_len()
        ))),
        None => Ok(()),
    }
}

/// `tokenize.encode-spans` on `t`: spans as the interface's `u32` offsets.
#[doc(hidden)]
pub fn encode_spans<T: Tokenizer>(t: &T, text: &str) -> Result<Vec<TokenSpan>> {
    let offset = |at: usize| u32::try_from(at).map_err(|_| invalid("text longer than 4 GiB"));
    t.encode_spans(text)
        .into_iter()
        .map(|(id, range)| {
            Ok(TokenSpan {
                id,
                start: offset(range.start)?,
                end: offset(range.end)?,
            })
        })
        .collect()
}

/// `tokenize.decode` on `t`, refusing ids outside its vocabulary.
#[doc(hidden)]
pub fn decode<T: Tokenizer>(t: &T, ids: &[u32]) -> Result<String> {
    check_ids(t, ids)?;
    Ok(t.decode(ids))
}

/// `tokenize.decode-bytes` on `t`, refusing ids outside its vocabulary.
#[doc(hidden)]
pub fn decode_bytes<T: Tokenizer>(t: &T, ids: &[u32]) -> Result<Vec<u8>> {
    check_ids(t, ids)?;
    Ok(t.decode_bytes(ids))
}

/// The instance's tokenizer, built by `T::load` on first use; a failed build is kept too.
#[doc(hidden)]
pub fn get<T: Tokenizer>(
    cell: &'static std::sync::OnceLock<Result<T, Error>>,
) -> Result<&'static T> {
    cell.get_or_init(T::load).as_ref().map_err(Clone::clone)
}

/// Makes the component a `tokenizer` world component whose `tokenize` interface is the
/// [`Tokenizer`] `$ty` (a type name in scope where the macro is invoked). Invoke it once, at
/// the crate root, instead of [`world!`](crate::world).
#[macro_export]
macro_rules! export_tokenizer {
    ($ty:ident) => {
        #[doc(hidden)]
        mod __edgenlu_tokenizer {
            $crate::world!("tokenizer");

            use $crate::tokenizer as sdk;
            use $crate::{Error, TokenSpan};

            static TOKENIZER: ::std::sync::OnceLock<::core::result::Result<super::$ty, Error>> =
                ::std::sync::OnceLock::new();

            struct Component;

            impl exports::edgenlu::nlu::tokenize::Guest for Component {
                fn encode(text: String) -> Result<Vec<u32>, Error> {
                    Ok(sdk::Tokenizer::encode(sdk::get(&TOKENIZER)?, &text))
                }

                fn encode_spans(text: String) -> Result<Vec<TokenSpan>, Error> {
                    sdk::encode_spans(sdk::get(&TOKENIZER)?, &text)
                }

                fn decode(ids: Vec<u32>) -> Result<String, Error> {
                    sdk::decode(sdk::get(&TOKENIZER)?, &ids)
                }

                fn decode_bytes(ids: Vec<u32>) -> Result<Vec<u8>, Error> {
                    sdk::decode_bytes(sdk::get(&TOKENIZER)?, &ids)
                }
            }

            export!(Component);
        }
    };
}
