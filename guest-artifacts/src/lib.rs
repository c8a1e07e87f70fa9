//! The Wasm components built from `guest/` by this crate's build script, embedded as bytes.
//!
//! The build script compiles every guest crate for `wasm32-unknown-unknown` (with the toolchain
//! that `scripts/wasm-toolchain.sh` provides), turns each core module into a component with
//! `wit-component`, and embeds the result here with `include_bytes!`: a binary linking this
//! crate carries its components and runs from wherever it is copied. Nothing here is
//! Wasm-aware beyond the bytes.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// A component built from `guest/`: the name of the file it was built as, and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// File name, e.g. `skill-intents.component.wasm` (records and reports name it so).
    pub name: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}
