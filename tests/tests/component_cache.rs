//! The compiled-component cache holds native code, so an entry is loaded only if it carries
//! this device's MAC and was compiled for this very engine: a file planted in the cache (or
//! copied from another device), or compiled for another CPU or engine configuration, is
//! ignored and recompiled, never run.

use edgenlu::bundled::{intents_skill, DEFAULT_ENCODER};
use edgenlu::{Limits, ModelCatalog, Runtime, RuntimeOptions};
use edgenlu_tests::{require_model, store};
use std::path::{Path, PathBuf};

/// The compiled entries under cache root `root`, in this CPU architecture's folder.
fn cwasm_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(std::env::consts::ARCH))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    files.sort();
    files
}

fn embed_with(cache: &Path, options: RuntimeOptions) -> Vec<f32> {
    let rt = Runtime::with_options(
        ModelCatalog::new(store()),
        Some(cache.to_path_buf()),
        options,
    )
    .unwrap();
    let skill = rt
        .load_skill(intents_skill(DEFAULT_ENCODER, None, Limits::default()))
        .unwrap();
    skill.embed("play some jazz").unwrap()
}

fn embed_with_cache(cache: &Path) -> usize {
    embed_with(cache, RuntimeOptions::default()).len()
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("edgenlu-cache-{name}-{}", std::process::id()))
}

#[test]
fn cache_entries_without_this_devices_mac_are_never_loaded() {
    require_model(DEFAULT_ENCODER);
    let base = scratch("mac");
    let (a, b) = (base.join("a"), base.join("b"));
    assert_eq!(embed_with_cache(&a), 384);
    let entries = cwasm_files(&a);
    assert_eq!(entries.len(), 2, "the skill and its tokenizer are cached");

    // Device B has its own secret; A's entries, copied over, must be recompiled, not run.
    assert_eq!(embed_with_cache(&b), 384);
    for entry in &entries {
        let planted = b
            .join(std::env::consts::ARCH)
            .join(entry.file_name().unwrap());
        std::fs::copy(entry, &planted).unwrap();
    }
    assert_eq!(embed_with_cache(&b), 384);
    for entry in &entries {
        let in_b = std::fs::read(
            b.join(std::env::consts::ARCH)
                .join(entry.file_name().unwrap()),
        )
        .unwrap();
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

/// An entry compiled by another engine (here: the small memory reservation qemu runs with;
/// on a device: another CPU or wasmtime version) has another key, and even when it sits
/// under this engine's key with a valid MAC, wasmtime's header check refuses it and the host
/// recompiles. Both configurations compute the same embedding.
#[test]
fn entries_compiled_for_another_engine_are_recompiled_not_loaded() {
    require_model(DEFAULT_ENCODER);
    let root = scratch("engine");
    let small = RuntimeOptions {
        memory_reservation: Some(64 << 20),
    };
    let expected = embed_with(&root, RuntimeOptions::default());
    let own = cwasm_files(&root);
    assert_eq!(own.len(), 2);
    assert_eq!(embed_with(&root, small.clone()), expected);
    let foreign: Vec<PathBuf> = cwasm_files(&root)
        .into_iter()
        .filter(|p| !own.contains(p))
        .collect();
    assert_eq!(foreign.len(), 2, "another engine, another cache key");

    // Put each foreign entry (MAC'd by this device) where the default engine looks.
    let prefix = |p: &Path| p.file_name().unwrap().to_str().unwrap()[..64].to_string();
    for entry in &own {
        let twin = foreign.iter().find(|f| prefix(f) == prefix(entry)).unwrap();
        std::fs::copy(twin, entry).unwrap();
    }
    assert_eq!(embed_with(&root, RuntimeOptions::default()), expected);
    for entry in &own {
        let twin = foreign.iter().find(|f| prefix(f) == prefix(entry)).unwrap();
        assert_ne!(
            std::fs::read(entry).unwrap(),
            std::fs::read(twin).unwrap(),
            "the default engine loaded an entry compiled for another configuration"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Threads of one process compiling the same components into an empty cache at once all get
/// them (each writes its own temporary file before the rename).
#[test]
fn concurrent_compiles_into_one_cache_all_succeed() {
    require_model(DEFAULT_ENCODER);
    let root = scratch("concurrent");
    let rt = Runtime::new(ModelCatalog::new(store()), Some(root.clone())).unwrap();
    std::thread::scope(|s| {
        let loads: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    rt.load_skill(intents_skill(DEFAULT_ENCODER, None, Limits::default()))
                        .map(|_| ())
                })
            })
            .collect();
        for load in loads {
            load.join()
                .unwrap()
                .expect("every concurrent compile succeeds");
        }
    });
    assert_eq!(cwasm_files(&root).len(), 2);
    std::fs::remove_dir_all(&root).unwrap();
}
