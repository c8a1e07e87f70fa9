//! Model store: name validation, digests recorded and checked before mapping.

use edgenlu_kernels::formats::DType;
use edgenlu_models::gguf::{GgufWriter, MetaValue};
use edgenlu_models::store::{validate_name, ModelStore, StoreError};
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
        Err(StoreError::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, entry.sha256);
            assert_ne!(actual, expected);
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
