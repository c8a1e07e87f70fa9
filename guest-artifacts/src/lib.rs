//! Paths of the Wasm components built from `guest/` by this crate's build script.
//!
//! The build script compiles every guest crate for `wasm32-unknown-unknown` (with the toolchain
//! that `scripts/wasm-toolchain.sh` provides), turns each core module into a component with
//! `wit-component`, and records where it wrote them. The host's CLI and tests load them from
//! there; nothing here is Wasm-aware beyond the paths.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
