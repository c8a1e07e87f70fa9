//! Records where the WIT files are, for `world!`: `wit_bindgen::generate!` resolves a relative
//! `path` against the manifest of the crate that expands it (the component, not this SDK), so
//! the macro hands it this absolute one. Only the compiler reads it; nothing is recorded in the
//! built components. The WIT folder is this crate's `wit/` (in the repository a link to the
//! top-level `wit/`; in a skill project's copy of the SDK, the files themselves).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let wit = manifest.join("wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let wit = wit
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", wit.display()));
    let wit = wit.to_str().expect("the WIT folder's path is UTF-8");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("wit_dir.rs");
    fs::write(
        out,
        format!(
            "/// Continues `world!` with the absolute path of the WIT folder.\n\
             #[doc(hidden)]\n\
             #[macro_export]\n\
             macro_rules! __edgenlu_wit_dir {{\n    \
                 ($world:tt) => {{ $crate::__world!({wit:?}, $world); }};\n\
             }}\n"
        ),
    )
    .unwrap();
}
