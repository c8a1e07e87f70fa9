//! `edgenlu bench skill` through the built binary, in the tests' temporary store: the bundled
//! intents skill signed with the development key reports every stage of its cold start and
//! its warm latency, and a file that does not verify is refused with the reason.

use edgenlu_tests::{edgenlu_in, store, tiny_index};

#[test]
fn bench_skill_reports_each_cold_start_stage_warm_latency_and_the_files_size() {
    let store = store();
    let index = tiny_index();
    let run = |args: &[&str]| {
        let ran = edgenlu_in(&store, args);
        assert!(ran.ok, "{args:?}: {}", ran.stderr);
        ran.stdout
    };
    let file = store.root().join("bench-intents.wasm");
    let path = file.to_str().unwrap();
    run(&["trust", "add", "--dev"]);
    run(&["sign", "--dev-intents", "--index", index, "-o", path]);

    let out = run(&["bench", "skill", path, "--requests", "20", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    let skills = doc["skills"].as_array().expect("a list of skills");
    assert_eq!(skills.len(), 1, "{doc}");
    let s = &skills[0];
    assert_eq!(s["skill"], "intents", "{s}");
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(s["bytes"].as_u64(), Some(size), "{s}");
    let positive = |v: &serde_json::Value| v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0);
    for stage in [
        "verify",
        "load_no_cache",
        "load_cached",
        "instantiate",
        "first_answer",
        "total_cached",
        "total_no_cache",
    ] {
        let ms = &s["cold_start_ms"][stage];
        assert!(positive(ms), "cold start stage {stage}: {ms}");
    }
    for p in ["p50", "p90", "p99"] {
        let ms = &s["warm"]["latency_ms"][p];
        assert!(positive(ms), "warm {p}: {ms}");
    }
    assert_eq!(s["warm"]["requests"], 20, "{s}");

    // One byte changed after signing: refused, saying why.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let tampered = store.root().join("bench-intents-tampered.wasm");
    std::fs::write(&tampered, &bytes).unwrap();
    let ran = edgenlu_in(&store, &["bench", "skill", tampered.to_str().unwrap()]);
    assert!(!ran.ok, "a tampered file was benchmarked: {}", ran.stdout);
    assert!(ran.stderr.contains("is refused"), "{}", ran.stderr);
    assert!(ran.stderr.contains("signature"), "{}", ran.stderr);
}
