//! Model store: name validation, digests recorded and checked before mapping.

use edgenlu_kernels::formats::DType;
use edgenlu_models::gguf::{GgufWriter, MetaValue};
use edgenlu_models::store::{
    validate_name, EntryKind, Holders, ModelStore, StoreError, DATASTORE_ARCHITECTURE,
};
use std::path::PathBuf;

fn temp_root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgenlu-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn small_model() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("test".into()));
    w.add_tensor("w", DType::F32, &[2, 2], vec![0; 16]).unwrap();
    w
}

#[test]
fn names_are_validated() {
    for ok in ["all-minilm-l6-v2.q8_0", "a", "0.x_y-z", &"a".repeat(64)] {
        validate_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "",
        ".hidden",
        "-x",
        "_x",
        "A",
        "a/b",
        "../x",
        "a..b",
        "a b",
        "x\0",
        "/etc/passwd",
        "a\\b",
        "é",
        &"a".repeat(65),
    ] {
        assert!(
            matches!(validate_name(bad), Err(StoreError::InvalidName { .. })),
            "{bad:?} accepted"
        );
    }
    let store = ModelStore::at(temp_root("names")).unwrap();
    assert!(matches!(
        store.path_for("../escape"),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(matches!(
        store.open("../escape"),
        Err(StoreError::InvalidName { .. })
    ));
    std::fs::remove_dir_all(store.root()).unwrap();
}

#[test]
fn record_open_and_digest_mismatch() {
    let store = ModelStore::at(temp_root("digest")).unwrap();
    assert!(matches!(store.open("m"), Err(StoreError::NotFound(_))));
    let path = store.path_for("m").unwrap();
    small_model().write(&path).unwrap();
    // Present on disk but never recorded: not openable.
    assert!(matches!(store.open("m"), Err(StoreError::NotFound(_))));
    let entry = store.record("m", "test").unwrap();
    assert_eq!(entry.size, std::fs::metadata(&path).unwrap().len());
    assert_eq!(entry.sha256.len(), 64);
    assert_eq!(store.list().unwrap(), vec![entry.clone()]);
    assert!(!store.root().join("index.json.tmp").exists());
    let f = store.open("m").unwrap();
    assert_eq!(f.architecture(), Some("test"));
    drop(f);

    // Same size, one byte different: refused before mapping.
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    match store.open("m") {
        Err(StoreError::DigestMismatch(m)) => {
            assert_eq!(m.expected, entry.sha256);
            assert_ne!(m.actual, m.expected);
            assert_eq!((m.path, m.actual_size), (path.clone(), entry.size));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    // Recording again accepts the new content.
    store.record("m", "test").unwrap();
    store.open("m").unwrap();
    // A recorded file that is not GGUF is a typed error too.
    std::fs::write(&path, b"not a gguf file at all").unwrap();
    store.record("m", "test").unwrap();
    assert!(matches!(store.open("m"), Err(StoreError::Gguf { .. })));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(store.open("m"), Err(StoreError::NotFound(_))));
    std::fs::remove_dir_all(store.root()).unwrap();
}

#[test]
fn corrupt_index_is_a_typed_error() {
    let store = ModelStore::at(temp_root("index")).unwrap();
    std::fs::write(store.root().join("index.json"), b"{not json").unwrap();
    assert!(matches!(store.list(), Err(StoreError::BadIndex { .. })));
    std::fs::remove_dir_all(store.root()).unwrap();
}

fn small_datastore() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetaValue::String(DATASTORE_ARCHITECTURE.into()),
    );
    w.add_tensor("index.embeddings", DType::F32, &[1, 2], vec![0; 8])
        .unwrap();
    w
}

/// Something that holds the entry it names.
struct HoldsOne(&'static str);

impl Holders for HoldsOne {
    fn holders(&self, name: &str) -> Vec<String> {
        if name == self.0 {
            vec!["installed skill \"s\" version 1".into()]
        } else {
            Vec::new()
        }
    }
}

#[test]
fn an_index_without_kinds_is_classified_once_by_gguf_architecture() {
    let root = temp_root("classify");
    let store = ModelStore::at(&root).unwrap();
    small_model()
        .write(&store.path_for("enc").unwrap())
        .unwrap();
    small_datastore()
        .write(&store.path_for("ds").unwrap())
        .unwrap();
    store.record("enc", "test").unwrap();
    store.record("ds", "test").unwrap();
    // Rewrite the index as an older version wrote it: no kinds, and a datastore whose file is
    // gone (classified by the command that recorded it).
    let index_path = root.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut gone = index["models"]["ds"].clone();
    gone["source"] = "edgenlu skill train --train x.jsonl".into();
    index["models"]["gone"] = gone;
    for record in index["models"].as_object_mut().unwrap().values_mut() {
        record.as_object_mut().unwrap().remove("kind");
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let store = ModelStore::at(&root).unwrap();
    let kinds: Vec<(String, EntryKind)> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    let expected = [
        ("ds", EntryKind::Datastore),
        ("enc", EntryKind::Model),
        ("gone", EntryKind::Datastore),
    ];
    assert_eq!(kinds, expected.map(|(n, k)| (n.to_string(), k)));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for (name, kind) in expected {
        assert_eq!(written["models"][name]["kind"], kind.as_str(), "{name}");
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn create_refuses_an_existing_entry_and_replace_the_other_kind_or_a_held_one() {
    let store = ModelStore::at(temp_root("rules")).unwrap();
    let new = store.create("ds", EntryKind::Datastore).unwrap();
    small_datastore().write(new.path()).unwrap();
    let first = new.commit("first").unwrap();
    assert_eq!(first.kind, EntryKind::Datastore);
    assert!(matches!(
        store.create("ds", EntryKind::Datastore),
        Err(StoreError::Exists { .. })
    ));
    for kind_conflict in [
        store.create("ds", EntryKind::Model),
        store.replace("ds", EntryKind::Model, &()),
    ] {
        assert!(matches!(
            kind_conflict,
            Err(StoreError::KindConflict {
                existing: EntryKind::Datastore,
                wanted: EntryKind::Model,
                ..
            })
        ));
    }
    match store.replace("ds", EntryKind::Datastore, &HoldsOne("ds")) {
        Err(e @ StoreError::Held { .. }) => {
            assert!(e.to_string().contains("installed skill \"s\""), "{e}")
        }
        other => panic!("expected Held, got {other:?}"),
    }
    // Nothing holds it: replaced.
    let new = store
        .replace("ds", EntryKind::Datastore, &HoldsOne("other"))
        .unwrap();
    let mut w = small_datastore();
    w.add_metadata("x", MetaValue::U32(1));
    w.write(new.path()).unwrap();
    assert_ne!(new.commit("second").unwrap().sha256, first.sha256);
    std::fs::remove_dir_all(store.root()).unwrap();
}

#[test]
fn a_new_entry_of_the_other_kind_or_uncommitted_leaves_the_store_as_it_was() {
    let store = ModelStore::at(temp_root("staged")).unwrap();
    let new = store.create("m", EntryKind::Model).unwrap();
    small_datastore().write(new.path()).unwrap();
    let staged = new.path().to_owned();
    assert!(matches!(
        new.commit("wrong kind"),
        Err(StoreError::NotOfKind {
            kind: EntryKind::Model,
            found: EntryKind::Datastore,
            ..
        })
    ));
    assert!(!staged.exists(), "the refused file is removed");
    let new = store.create("m", EntryKind::Model).unwrap();
    small_model().write(new.path()).unwrap();
    drop(new);
    assert!(store.list().unwrap().is_empty());
    let files: Vec<_> = std::fs::read_dir(store.root().join("models"))
        .unwrap()
        .collect();
    assert!(files.is_empty(), "{files:?}");
    std::fs::remove_dir_all(store.root()).unwrap();
}
