//! Builds the guest workspace for wasm32-unknown-unknown and componentizes each guest, the way
//! wasmtime's test-programs crate does. The nested cargo keeps its own target dir
//! (`guest/target`), so editing one guest recompiles only that guest.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
        "hostile",
        "HOSTILE",
        "Test skill whose `handle` carries out the attack on the host named by the utterance.",
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

    let env_file = provision_toolchain(&repo);
    build_guests(&guest_dir, &env_file);

    let wasm_dir = guest_dir.join("target/wasm32-unknown-unknown/release");
    let mut consts = String::new();
    for (krate, constant, doc) in GUESTS {
        let module_path = wasm_dir.join(format!("{}.wasm", krate.replace('-', "_")));
        let module = fs::read(&module_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", module_path.display()));
        let component = wit_component::ComponentEncoder::default()
            .module(&module)
            .and_then(|enc| enc.validate(true).encode())
            .unwrap_or_else(|e| panic!("componentizing {krate}: {e:?}"));
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
    fs::write(out_dir.join("guests.rs"), consts).unwrap();
}

/// A constant naming `file` in OUT_DIR and holding its bytes, embedded in whatever links this
/// crate: the path is resolved at compile time, so the binary never looks for the file again.
fn embed(constant: &str, doc: &str, file: &str) -> String {
    format!(
        "/// {doc}\npub const {constant}: Component = Component {{ name: {file:?}, \
         bytes: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}\")) }};\n"
    )
}

/// Runs the idempotent toolchain script and returns the env file it wrote.
fn provision_toolchain(repo: &Path) -> PathBuf {
    let output = Command::new("bash")
        .arg(repo.join("scripts/wasm-toolchain.sh"))
        .output()
        .expect("running scripts/wasm-toolchain.sh");
    if !output.status.success() {
        panic!(
            "scripts/wasm-toolchain.sh could not provide a wasm32-unknown-unknown toolchain:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn build_guests(guest_dir: &Path, env_file: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let packages: Vec<String> = GUESTS.iter().map(|(k, _, _)| format!("-p {k}")).collect();
    let script = format!(
        "exec 1>&2; source {env:?} && exec {cargo:?} build --release --target wasm32-unknown-unknown \
         $WASM_CARGO_ARGS --manifest-path {manifest:?} --target-dir {target:?} {packages}",
        env = env_file,
        manifest = guest_dir.join("Cargo.toml"),
        target = guest_dir.join("target"),
        packages = packages.join(" "),
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script);
    // The outer build's settings describe the host target, not the guests.
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS" {
            cmd.env_remove(&key);
        }
    }
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
    ] {
        cmd.env_remove(key);
    }
    let status = cmd.status().expect("running cargo for the guests");
    if !status.success() {
        panic!("building the guest crates failed (see the cargo output above)");
    }
}
