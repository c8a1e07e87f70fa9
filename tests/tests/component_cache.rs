//! The compiled-component cache holds native code, so an entry is loaded only if it carries
//! this device's MAC: a file planted in the cache (or copied from another device) is ignored
//! and recompiled, never run.

use edgenlu::bundled::{intents_skill, DEFAULT_ENCODER};
use edgenlu::{Limits, ModelCatalog, Runtime};
use edgenlu_tests::{require_model, store};
use std::path::{Path, PathBuf};

fn cwasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    files.sort();
    files
}

fn embed_with_cache(cache: &Path) -> usize {
    let rt = Runtime::new(ModelCatalog::new(store()), Some(cache.to_path_buf())).unwrap();
    let skill = rt
        .load_skill(intents_skill(DEFAULT_ENCODER, None, Limits::default()))
        .unwrap();
    skill.embed("play some jazz").unwrap().len()
}

#[test]
fn cache_entries_without_this_devices_mac_are_never_loaded() {
    require_model(DEFAULT_ENCODER);
    let base = std::env::temp_dir().join(format!("edgenlu-cache-test-{}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    assert_eq!(embed_with_cache(&a), 384);
    let entries = cwasm_files(&a);
    assert_eq!(entries.len(), 2, "the skill and its tokenizer are cached");

    // Device B has its own secret; A's entries, copied over, must be recompiled, not run.
    assert_eq!(embed_with_cache(&b), 384);
    for entry in &entries {
        let planted = b.join(entry.file_name().unwrap());
        std::fs::copy(entry, &planted).unwrap();
    }
    assert_eq!(embed_with_cache(&b), 384);
    for entry in &entries {
        let in_b = std::fs::read(b.join(entry.file_name().unwrap())).unwrap();
        assert_ne!(
            in_b,
            std::fs::read(entry).unwrap(),
            "B loaded A's entry instead of recompiling"
        );
    }

    // A flipped byte in the code: ignored and rewritten.
    let victim = &cwasm_files(&a)[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    assert_eq!(embed_with_cache(&a), 384);
    assert_ne!(
        std::fs::read(victim).unwrap(),
        bytes,
        "a tampered entry was kept"
    );
    std::fs::remove_dir_all(&base).unwrap();
}
