//! The store never loses what it holds: the `edgenlu` binary against temporary stores over the
//! real store's models (linked read only; a test that damages a model first replaces its link
//! with a copy of its own). Models and datastores are kinds no command crosses, nothing is
//! replaced without `--force` nor ever while an installed skill or a signature holds it,
//! `models verify` / `models fetch` / `models list` look at the real files, a digest error says
//! what to run, stale temporaries go on the next open, and the tests themselves never write
//! into the real store.

use edgenlu::bundled::DEFAULT_ENCODER;
use edgenlu_models::fetch::DEFAULT_MODELS;
use edgenlu_models::store::{EntryKind, ModelStore};
use edgenlu_tests::{edgenlu_in as edgenlu, real_store, require_model, temp_store, Ran};
use edgenlu_trust::skills::SkillStore;
use edgenlu_trust::{dev, unix_now};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Fails unless `ran` failed (`what` it tried) saying each of `says`.
fn refused(ran: &Ran, what: &str, says: &[&str]) {
    assert!(!ran.ok, "{what} was not refused");
    for part in says {
        assert!(
            ran.stderr.contains(part),
            "{what}: {part:?} missing from:\n{}",
            ran.stderr
        );
    }
}

/// `models import` of the encoder's kept folder into the store as `name`, with `--force`.
fn import_forced(store: &ModelStore, name: &str) -> Ran {
    let hf = hf_dir();
    let args = ["models", "import", hf.to_str().unwrap(), "--quant", "q8_0"];
    edgenlu(store, &[&args[..], &["--name", name, "--force"]].concat())
}

/// A few labelled examples, two intents, in the store's root.
fn tiny_data(store: &ModelStore) -> PathBuf {
    let path = store.root().join("tiny.jsonl");
    let lines = [
        r#"{"text": "play some jazz", "intent": "PlayMusic"}"#,
        r#"{"text": "put on the new album by adele", "intent": "PlayMusic"}"#,
        r#"{"text": "will it rain tomorrow in paris", "intent": "GetWeather"}"#,
        r#"{"text": "how cold is it outside", "intent": "GetWeather"}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// `skill index` of the tiny examples as datastore `name` (with `extra` flags).
fn index(store: &ModelStore, name: &str, extra: &[&str]) -> Ran {
    let data = tiny_data(store);
    let mut args = vec![
        "skill",
        "index",
        "--data",
        data.to_str().unwrap(),
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    edgenlu(store, &args)
}

/// A temporary store holding datastore `name`, built by the binary.
fn store_with_datastore(tag: &str, name: &str) -> ModelStore {
    require_model(DEFAULT_ENCODER);
    let store = temp_store(tag);
    assert!(index(&store, name, &[]).ok, "building {name}");
    store
}

/// The encoder's Hugging Face folder in the real store (`models fetch` keeps it).
fn hf_dir() -> PathBuf {
    real_store().root().join("hf/all-minilm-l6-v2")
}

/// Replaces entry `name`'s file (a link to the real store's, for a model) by a copy of its
/// own holding `bytes`, so damaging it never touches the real file.
fn put_own_file(store: &ModelStore, name: &str, bytes: &[u8]) {
    let path = store.path_for(name).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, bytes).unwrap();
}

fn file_bytes(store: &ModelStore, name: &str) -> Vec<u8> {
    std::fs::read(store.path_for(name).unwrap()).unwrap()
}

#[test]
fn a_datastore_command_never_writes_a_model_entry_and_a_model_command_never_a_datastore() {
    let store = store_with_datastore("kinds", "tiny-ds");
    let encoder = store.entry(DEFAULT_ENCODER).unwrap().unwrap();
    assert_eq!(encoder.kind, EntryKind::Model);
    for force in [&[][..], &["--force"][..]] {
        refused(
            &index(&store, DEFAULT_ENCODER, force),
            "skill index over the encoder",
            &[
                "is a model in the store",
                "a datastore can never replace it",
            ],
        );
    }
    assert_eq!(store.verify(DEFAULT_ENCODER).unwrap(), encoder);
    refused(
        &import_forced(&store, "tiny-ds"),
        "models import over a datastore",
        &[
            "is a datastore in the store",
            "a model can never replace it",
        ],
    );
    assert_eq!(
        store.entry("tiny-ds").unwrap().unwrap().kind,
        EntryKind::Datastore
    );
}

#[test]
fn an_existing_entry_is_replaced_only_with_force() {
    let store = store_with_datastore("force", "tiny-ds");
    let before = store.entry("tiny-ds").unwrap().unwrap();
    refused(
        &index(&store, "tiny-ds", &[]),
        "a second skill index under the same name",
        &["already holds datastore \"tiny-ds\"", "--force"],
    );
    assert_eq!(store.verify("tiny-ds").unwrap(), before);
    let ran = index(&store, "tiny-ds", &["--per-intent", "1", "--force"]);
    assert!(ran.ok, "with --force");
    let after = store.verify("tiny-ds").unwrap();
    assert_ne!(
        after.sha256, before.sha256,
        "replaced by the smaller datastore"
    );
}

#[test]
fn an_entry_an_installed_skill_uses_is_never_replaced_even_with_force() {
    let store = store_with_datastore("held", "tiny-ds");
    let skills = SkillStore::at(store.root()).unwrap();
    dev::trust_dev(skills.trust(), unix_now()).unwrap();
    let manifest = dev::intents_manifest(DEFAULT_ENCODER, "tiny-ds", 1);
    let file = dev::sign(edgenlu::bundled::components::SKILL_INTENTS.bytes, &manifest).unwrap();
    skills.install(&file, unix_now()).unwrap();
    let before = store.entry("tiny-ds").unwrap().unwrap();
    let data = tiny_data(&store);
    let train = [
        "skill",
        "train",
        "--train",
        data.to_str().unwrap(),
        "--name",
        "tiny-ds",
        "--force",
    ];
    for ran in [
        index(&store, "tiny-ds", &["--force"]),
        edgenlu(&store, &train),
    ] {
        refused(
            &ran,
            "replacing the installed skill's datastore",
            &[
                "is used by installed skill \"intents\" version 1",
                "never replaced, even with --force",
            ],
        );
    }
    assert_eq!(store.verify("tiny-ds").unwrap(), before);
}

#[test]
fn a_signed_model_is_never_replaced_even_with_force() {
    require_model(DEFAULT_ENCODER);
    let store = temp_store("signed");
    let trust = SkillStore::at(store.root()).unwrap().trust().clone();
    dev::trust_dev(&trust, unix_now()).unwrap();
    let encoder = store.entry(DEFAULT_ENCODER).unwrap().unwrap();
    let sig = edgenlu_trust::models::ModelSignature::sign(
        DEFAULT_ENCODER,
        &encoder.sha256,
        &dev::publisher_key(),
    );
    trust.add_model_signature(&sig, unix_now()).unwrap();
    refused(
        &import_forced(&store, DEFAULT_ENCODER),
        "models import over a signed model",
        &[
            "is used by the model signature",
            "never replaced, even with --force",
        ],
    );
    assert_eq!(store.verify(DEFAULT_ENCODER).unwrap(), encoder);
    // Recorded as other contents than fetch makes: fetch does not replace a signed model.
    set_recorded(&store, DEFAULT_ENCODER, "source", "a vendor's own encoder");
    set_recorded(&store, DEFAULT_ENCODER, "size", "1");
    refused(
        &edgenlu(&store, &["models", "fetch"]),
        "fetch over a signed model",
        &["is used by the model signature"],
    );
    let kept = store.entry(DEFAULT_ENCODER).unwrap().unwrap();
    assert_eq!((kept.sha256, kept.size), (encoder.sha256, 1));
}

/// Sets `field` of `name`'s record in the store's index.json, as another version or a hand
/// edit could have left it.
fn set_recorded(store: &ModelStore, name: &str, field: &str, value: &str) {
    let path = store.root().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["models"][name][field] = match value.parse::<u64>() {
        Ok(n) => n.into(),
        Err(_) => value.into(),
    };
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn models_verify_reports_each_entry_ok_wrong_size_wrong_digest_or_missing() {
    let store = store_with_datastore("verify", "tiny-ds");
    let bytes = file_bytes(&store, "tiny-ds");
    for name in ["ds-short", "ds-flipped", "ds-gone"] {
        std::fs::write(store.path_for(name).unwrap(), &bytes).unwrap();
        store.record(name, "copy of tiny-ds").unwrap();
    }
    put_own_file(&store, "ds-short", &bytes[..bytes.len() / 2]);
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    put_own_file(&store, "ds-flipped", &flipped);
    std::fs::remove_file(store.path_for("ds-gone").unwrap()).unwrap();

    let ran = edgenlu(&store, &["models", "verify"]);
    assert!(!ran.ok, "verify exits non-zero when an entry is damaged");
    let line = |name: &str| {
        ran.stdout
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .any(|w| w.trim_end_matches(':') == name)
            })
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", ran.stdout))
            .to_string()
    };
    assert!(line("tiny-ds").starts_with("ok "));
    assert!(line(DEFAULT_ENCODER).starts_with("ok "));
    assert!(line("ds-short").starts_with("wrong size "));
    assert!(line("ds-short").contains(&format!("{} bytes", bytes.len() / 2)));
    assert!(line("ds-flipped").starts_with("wrong digest "));
    assert!(line("ds-gone").starts_with("missing "));
    assert!(
        ran.stderr.contains("3 of ") && ran.stderr.contains("edgenlu models fetch"),
        "{}",
        ran.stderr
    );
}

#[test]
fn models_fetch_repairs_a_truncated_model_and_an_encoder_recorded_as_a_datastore() {
    require_model(DEFAULT_ENCODER);
    let store = temp_store("fetch");
    // The encoder's kept folder, linked: fetch makes the encoders from it with no download.
    std::fs::create_dir_all(store.root().join("hf")).unwrap();
    std::os::unix::fs::symlink(hf_dir(), store.root().join("hf/all-minilm-l6-v2")).unwrap();
    let q8 = &DEFAULT_MODELS[1];
    assert_eq!(q8.name, DEFAULT_ENCODER);
    let real = file_bytes(&store, q8.name);
    put_own_file(&store, q8.name, &real[..1000]);

    let ran = edgenlu(&store, &["models", "fetch"]);
    assert!(ran.ok, "fetch repairs from the kept folder");
    assert!(
        ran.stdout.contains(&format!(
            "{}  (repaired: its file had 1000 bytes, not the {} recorded)",
            q8.name, q8.size
        )),
        "{}",
        ran.stdout
    );
    for other in [&DEFAULT_MODELS[0], &DEFAULT_MODELS[2]] {
        assert!(ran.stdout.contains(&format!("{}  (intact)", other.name)));
    }
    let entry = store.verify(q8.name).unwrap();
    assert_eq!((entry.sha256.as_str(), entry.size), (q8.sha256, q8.size));

    // What `skill index --name all-minilm-l6-v2.q8_0` once did: a datastore in its place.
    set_recorded(&store, q8.name, "kind", "datastore");
    let ran = edgenlu(&store, &["models", "fetch"]);
    assert!(ran.ok);
    assert!(
        ran.stdout.contains(&format!(
            "{}  (repaired: the store recorded a datastore)",
            q8.name
        )),
        "{}",
        ran.stdout
    );
    assert_eq!(store.verify(q8.name).unwrap().kind, EntryKind::Model);
    assert!(edgenlu(&store, &["models", "verify"]).ok);
    // Its repaired encoder is a file of its own (25 MB): not left for the next run to remove.
    std::fs::remove_dir_all(store.root()).unwrap();
}

#[test]
fn models_list_shows_the_files_real_sizes_and_flags_a_mismatch() {
    let store = store_with_datastore("list", "tiny-ds");
    let bytes = file_bytes(&store, "tiny-ds");
    put_own_file(&store, "tiny-ds", &bytes[..100]);
    let ran = edgenlu(&store, &["models", "list"]);
    assert!(ran.ok);
    let line = ran
        .stdout
        .lines()
        .find(|l| l.ends_with(" tiny-ds"))
        .expect("a line for tiny-ds");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1..], ["100", "datastore", "tiny-ds"], "{line}");
    assert!(
        ran.stderr.contains(&format!(
            "tiny-ds: the file has 100 bytes, the store recorded {}",
            bytes.len()
        )) && ran.stderr.contains("edgenlu models verify"),
        "{}",
        ran.stderr
    );
    let ran = edgenlu(&store, &["models", "list", "--json"]);
    let entry: serde_json::Value = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .find(|e: &serde_json::Value| e["name"] == "tiny-ds")
        .expect("tiny-ds listed");
    assert_eq!(
        (&entry["size"], &entry["recorded_size"], &entry["kind"]),
        (&100.into(), &bytes.len().into(), &"datastore".into())
    );
}

#[test]
fn a_digest_error_names_the_file_what_was_expected_and_found_and_what_to_run() {
    let store = store_with_datastore("digest", "tiny-ds");
    let recorded = store.entry("tiny-ds").unwrap().unwrap();
    let mut bytes = file_bytes(&store, "tiny-ds");
    *bytes.last_mut().unwrap() ^= 1;
    put_own_file(&store, "tiny-ds", &bytes);
    let ran = edgenlu(&store, &["run", "--index", "tiny-ds", "play some jazz"]);
    assert!(!ran.ok, "a damaged datastore is refused");
    let path = store.path_for("tiny-ds").unwrap();
    for part in [
        path.to_str().unwrap(),
        &recorded.sha256,
        "edgenlu models verify",
        "edgenlu models fetch",
    ] {
        assert!(
            ran.stderr.contains(part),
            "{part:?} missing from:\n{}",
            ran.stderr
        );
    }
}

/// Creates `dir/name`, last modified `age` ago.
fn temp_file(dir: &Path, name: &str, age: Duration) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    path
}

#[test]
fn opening_the_store_removes_stale_temporaries_of_killed_writers_only() {
    let root = std::env::temp_dir().join(format!("edgenlu-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // A process that has exited: its pid names temporaries nobody writes any more.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let (hour, mine) = (Duration::from_secs(3600), std::process::id());
    let stale = [
        temp_file(
            &root.join("trust"),
            &format!("versions.json.tmp{dead}"),
            hour,
        ),
        temp_file(&root, &format!("index.json.tmp{dead}"), hour),
        temp_file(&root.join("models"), &format!("x.gguf.staged{dead}"), hour),
        temp_file(
            &root.join("skills/s"),
            &format!("state.json.tmp{dead}"),
            hour,
        ),
    ];
    let kept = [
        temp_file(&root.join("trust"), &format!("roots.json.tmp{mine}"), hour),
        temp_file(&root, &format!("index.json.tmp{dead}1"), Duration::ZERO),
        temp_file(&root.join("models"), "notes.tmp", hour),
    ];
    ModelStore::at(&root).unwrap();
    SkillStore::at(&root).unwrap();
    for path in &stale {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    for path in &kept {
        assert!(path.exists(), "{} was removed", path.display());
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_tests_write_into_a_temporary_store_over_the_real_models() {
    let real = real_store();
    let ours = edgenlu_tests::store();
    assert_ne!(ours.root(), real.root());
    assert_ne!(
        ours.root().canonicalize().unwrap(),
        real.root().canonicalize().unwrap()
    );
    require_model(DEFAULT_ENCODER);
    let name = "test-store-isolation";
    edgenlu_tests::build_snips_index(name, 1, "tests/store.rs");
    assert!(ours.verify(name).is_ok());
    assert!(
        real.entry(name).unwrap().is_none(),
        "recorded in the real store"
    );
    assert!(
        !real.path_for(name).unwrap().exists(),
        "written into the real store"
    );
    // The models are the real ones, read through links.
    let encoder = ours.path_for(DEFAULT_ENCODER).unwrap();
    assert_eq!(
        encoder.canonicalize().unwrap(),
        real.path_for(DEFAULT_ENCODER)
            .unwrap()
            .canonicalize()
            .unwrap()
    );
}

#[test]
fn models_import_of_a_gguf_file_copies_it_into_the_store() {
    require_model(DEFAULT_ENCODER);
    let store = temp_store("import-gguf");
    let file = real_store().path_for(DEFAULT_ENCODER).unwrap();
    let file = file.to_str().unwrap();
    refused(
        &edgenlu(&store, &["models", "import", file]),
        "a GGUF import without a name",
        &["give --name NAME"],
    );
    let ran = edgenlu(&store, &["models", "import", file, "--name", "my-encoder"]);
    assert!(ran.ok, "{}", ran.stderr);
    let entry = store.entry("my-encoder").unwrap().expect("recorded");
    assert_eq!(entry.kind, EntryKind::Model);
    assert_eq!(
        entry.sha256,
        real_store().entry(DEFAULT_ENCODER).unwrap().unwrap().sha256
    );
    assert!(ran.stdout.contains(&entry.sha256), "{}", ran.stdout);
    refused(
        &edgenlu(&store, &["models", "import", file, "--name", "my-encoder"]),
        "a second import over the first",
        &["--force"],
    );
}

#[test]
fn a_datastore_file_from_another_device_is_imported_as_a_datastore() {
    let built = temp_store("import-datastore-from");
    assert!(index(&built, "tiny-ds", &[]).ok);
    let file = built.path_for("tiny-ds").unwrap();
    let store = temp_store("import-datastore-to");
    let ran = edgenlu(
        &store,
        &[
            "models",
            "import",
            file.to_str().unwrap(),
            "--name",
            "tiny-ds",
        ],
    );
    assert!(ran.ok, "{}", ran.stderr);
    let entry = store.entry("tiny-ds").unwrap().expect("recorded");
    assert_eq!(entry.kind, EntryKind::Datastore);
    assert_eq!(
        entry.sha256,
        built.entry("tiny-ds").unwrap().unwrap().sha256
    );
    assert!(ran.stdout.contains("datastore"), "{}", ran.stdout);
}
