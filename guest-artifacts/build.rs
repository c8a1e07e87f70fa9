//! Builds the guest workspace for wasm32-unknown-unknown and componentizes each guest, the way
//! wasmtime's test-programs crate does. The nested cargo keeps its own target dir
//! (`guest/target`), so editing one guest recompiles only that guest.

use edgenlu_guest_build as guest_build;
use std::env;
use std::fs;
use std::path::PathBuf;

/// Guest crates that become components: (crate name, constant name, what it is).
const GUESTS: &[(&str, &str, &str)] = &[
    (
        "tokenizer-wordpiece",
        "TOKENIZER_WORDPIECE",
        "The WordPiece (BERT) tokenizer component.",
    ),
    (
        "tokenizer-bpe",
        "TOKENIZER_BPE",
        "The byte-level BPE (GPT-2 / SmolLM2) tokenizer component.",
    ),
    (
        "skill-intents",
        "SKILL_INTENTS",
        "The `intents` skill: MiniLM embedding + nearest neighbour.",
    ),
    (
        "skill-chat",
        "SKILL_CHAT",
        "The `chat` skill: SmolLM2 generation with the ChatML template, fused or primitives forward pass.",
    ),
    (
        "policy-default",
        "POLICY_DEFAULT",
        "The default vendor policy component: answer locally, offload over the uplink, or reject.",
    ),
    (
        "flow-default",
        "FLOW_DEFAULT",
        "The default flow component: route, ask the best skill, the policy, then reject, offload or answer locally.",
    ),
    (
        "flow-clarify",
        "FLOW_CLARIFY",
        "Example flow: when the two best skills are close, ask which the user meant instead of guessing.",
    ),
    (
        "flow-cascade",
        "FLOW_CASCADE",
        "Example flow: when the skill is unsure and the uplink cannot help, the decoder chooses among the best skills' intents.",
    ),
    (
        "flow-hostile",
        "FLOW_HOSTILE",
        "Test flow whose `handle` attacks the device as the utterance's first word says.",
    ),
    (
        "hostile",
        "HOSTILE",
        "Test skill whose `handle` carries out the attack on the host named by the utterance.",
    ),
    (
        "wasi-nn-example",
        "WASI_NN_EXAMPLE",
        "A guest written against the standard wasi:nn alone: embeds token ids, generates greedily.",
    ),
    (
        "wasi-nn-hostile",
        "WASI_NN_HOSTILE",
        "Test guest attacking the host's wasi:nn, one attack per call.",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.parent().unwrap().to_path_buf();
    let guest_dir = repo.join("guest");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        guest_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        guest_dir.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        repo.join("scripts/wasm-toolchain.sh").display()
    );
    println!("cargo:rerun-if-env-changed=EDGENLU_WASM_TOOLCHAIN");
    for entry in fs::read_dir(&guest_dir).expect("guest/ exists") {
        let path = entry.unwrap().path();
        if path.join("Cargo.toml").exists() {
            // Watch sources, not guest/target, or every build would look stale.
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    let env_file = guest_build::provision_toolchain().unwrap_or_else(|e| panic!("{e}"));
    let packages: Vec<&str> = GUESTS.iter().map(|(k, _, _)| *k).collect();
    let manifest = guest_dir.join("Cargo.toml");
    let target_dir = guest_dir.join("target");
    let build = guest_build::CargoBuild {
        manifest: &manifest,
        target_dir: &target_dir,
        packages: &packages,
        locked: false,
    };
    build.run(&env_file).unwrap_or_else(|e| panic!("{e}"));

    let mut consts = String::new();
    for (krate, constant, doc) in GUESTS {
        let component = guest_build::componentize_file(&build.module_path(krate))
            .unwrap_or_else(|e| panic!("{e}"));
        let dest = out_dir.join(format!("{krate}.component.wasm"));
        // Rewrite only on change so the host's compiled-component cache stays warm.
        if fs::read(&dest).ok().as_deref() != Some(&component[..]) {
            fs::write(&dest, &component).unwrap();
        }
        consts.push_str(&embed(constant, doc, &format!("{krate}.component.wasm")));
    }
    // The bundled intents skill, signed with the public development key: the manifest of
    // `edgenlu::bundled`'s defaults (DEFAULT_ENCODER, DEFAULT_INDEX; a test checks they agree).
    let intents = fs::read(out_dir.join("skill-intents.component.wasm")).unwrap();
    let manifest =
        edgenlu_trust::dev::intents_manifest("all-minilm-l6-v2.q8_0", "snips-intents", 1);
    let signed = edgenlu_trust::dev::sign(&intents, &manifest).expect("signing the bundled skill");
    let dest = out_dir.join("skill-intents.dev-signed.wasm");
    if fs::read(&dest).ok().as_deref() != Some(&signed[..]) {
        fs::write(&dest, &signed).unwrap();
    }
    consts.push_str(&embed(
        "SKILL_INTENTS_DEV_SIGNED",
        "The `intents` skill signed with the public development key (manifest: encoder \
         all-minilm-l6-v2.q8_0, datastore snips-intents, version 1).",
        "skill-intents.dev-signed.wasm",
    ));
    consts.push_str(&sdk_files(&repo));
    fs::write(out_dir.join("guests.rs"), consts).unwrap();
}

/// The constant listing the guest SDK's files as a skill project gets them: the crate
/// (`guest/sdk`, without build outputs) with its `wit/` link replaced by the WIT files, and the
/// guest workspace's lock file, so a project builds with the versions the bundled guests use.
fn sdk_files(repo: &std::path::Path) -> String {
    let sdk = repo.join("guest/sdk");
    let mut files = vec![("Cargo.lock".to_string(), repo.join("guest/Cargo.lock"))];
    for dir in ["", "src"] {
        for entry in fs::read_dir(sdk.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_str().unwrap();
                let rel = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                files.push((format!("edgenlu-sdk/{rel}"), path));
            }
        }
    }
    for entry in fs::read_dir(repo.join("wit")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wit") {
            let name = path.file_name().unwrap().to_str().unwrap();
            files.push((format!("edgenlu-sdk/wit/{name}"), path));
        }
    }
    files.sort();
    let mut out = String::from(
        "/// The guest SDK's files, as `edgenlu skill new` writes them into a project's \
         `vendor/` folder: (path relative to it, bytes). `Cargo.lock` is the guest workspace's.\n\
         pub const SDK_FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in files {
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    out
}

/// A constant naming `file` in OUT_DIR and holding its bytes, embedded in whatever links this
/// crate: the path is resolved at compile time, so the binary never looks for the file again.
fn embed(constant: &str, doc: &str, file: &str) -> String {
    format!(
        "/// {doc}\npub const {constant}: Component = Component {{ name: {file:?}, \
         bytes: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}\")) }};\n"
    )
}
