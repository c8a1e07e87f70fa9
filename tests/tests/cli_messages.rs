//! Messages a person can act on: the `edgenlu` binary refuses a user's mistakes with a message
//! naming what was wrong, instead of ignoring them, misreading them or writing where it should
//! not.

use edgenlu_tests::built_binary;
use std::process::{Command, Output};

/// Runs the binary over the test store, which holds the default datastore `run` and `eval`
/// answer from.
fn edgenlu(args: &[&str]) -> Output {
    edgenlu_tests::default_index();
    Command::new(built_binary())
        .args(args)
        .env("EDGENLU_HOME", edgenlu_tests::store().root())
        .env_remove("EDGENLU_LOG")
        .output()
        .expect("running edgenlu")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_negative_count_is_read_as_a_value_and_refused_with_its_range() {
    let out = edgenlu(&["generate", "--max-tokens", "-1", "hello"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("-1 is negative") && err.contains("--max-tokens"),
        "{err}"
    );
    assert!(!err.contains("unexpected argument"), "{err}");
}

#[test]
fn unknown_or_malformed_policy_settings_are_refused() {
    for (setting, want) in [
        (
            "min-confidnce=0.9",
            "unknown policy setting \"min-confidnce\"",
        ),
        ("min-confidence=abc", "expected a number from 0 to 1"),
        ("min-confidence=NaN", "expected a number from 0 to 1"),
        ("min-battery=150", "expected a number from 0 to 100"),
    ] {
        let out = edgenlu(&["run", "--policy", setting, "play some jazz"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{setting} was accepted");
        assert!(err.contains(want), "{setting}: {err}");
    }
}

#[test]
fn keygen_refuses_a_name_that_would_leave_its_directory() {
    let dir = std::env::temp_dir().join(format!("edgenlu-keygen-{}", std::process::id()));
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for name in ["../evil", "a/b", "/tmp/evil", ".."] {
        let out = edgenlu(&["keygen", name, "--dir", keys.to_str().unwrap()]);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            stderr(&out).contains("key name"),
            "{name}: {}",
            stderr(&out)
        );
    }
    assert!(!dir.join("evil.key").exists() && !dir.join("evil.pub").exists());
    let out = edgenlu(&["keygen", "acme", "--dir", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(keys.join("acme.key").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_expected_refusal_carries_no_backtrace_under_rust_backtrace() {
    let out = Command::new(built_binary())
        .args(["run", "--index", "no-such-datastore", "play some jazz"])
        .env("EDGENLU_HOME", edgenlu_tests::store().root())
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("running edgenlu");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("no-such-datastore"), "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = edgenlu(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("keygen") && script.contains("max-tokens"),
            "{shell}"
        );
    }
}

#[test]
fn quiet_and_verbose_are_global_flags_and_exclusive() {
    let out = edgenlu(&["-q", "-v", "completions", "bash"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    assert!(edgenlu(&["completions", "bash", "-q"]).status.success());
}

#[test]
fn one_failing_utterance_does_not_throw_away_the_evaluation() {
    let data = std::env::temp_dir().join(format!("edgenlu-eval-{}.jsonl", std::process::id()));
    let good = r#"{"text": "play some jazz", "intent": "PlayMusic"}"#;
    // Past the skill's 1 MiB of text to tokenize: refused by the skill, at the very end.
    let huge = format!(
        r#"{{"text": "{}", "intent": "PlayMusic"}}"#,
        "jazz ".repeat(300_000)
    );
    std::fs::write(&data, format!("{good}\n{good}\n{huge}\n")).unwrap();
    let out = edgenlu(&["eval", "--data", data.to_str().unwrap(), "--json"]);
    std::fs::remove_file(&data).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["examples"], 3);
    assert_eq!(report["correct"], 2);
    assert_eq!(report["failed"], 1);
    let failure = report["failures"][0].as_str().unwrap();
    assert!(failure.starts_with("example 3 ("), "{failure}");
    assert!(
        failure.len() < 1000,
        "the failure quotes {} bytes",
        failure.len()
    );
}

#[test]
fn list_shows_a_skill_whose_publisher_was_revoked_as_refused() {
    let store = edgenlu_tests::store();
    let index = edgenlu_tests::tiny_index();
    let run = |args: &[&str]| {
        let ran = edgenlu_tests::edgenlu_in(&store, args);
        assert!(ran.ok, "{args:?}: {}", ran.stderr);
        ran.stdout
    };
    let file = store.root().join("revoked-intents.wasm");
    run(&["trust", "add", "--dev"]);
    run(&[
        "sign",
        "--dev-intents",
        "--index",
        index,
        "-o",
        file.to_str().unwrap(),
    ]);
    run(&["install", file.to_str().unwrap()]);
    let listed = run(&["list"]);
    assert!(
        listed.starts_with("intents  version") && !listed.contains("REFUSED"),
        "{listed}"
    );
    run(&[
        "trust",
        "remove",
        "--publisher",
        edgenlu_trust::dev::DEV_PUBLISHER,
    ]);
    let listed = run(&["list"]);
    assert!(listed.contains("REFUSED: unknown signing key"), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&run(&["list", "--json"])).unwrap();
    assert!(json["refused"]
        .as_str()
        .is_some_and(|r| r.contains("unknown signing key")));
}

#[test]
fn a_model_the_delegation_does_not_allow_is_refused_saying_what_to_change() {
    let store = edgenlu_tests::temp_store("ungranted-model");
    let dir = store.root().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let ran = edgenlu_tests::edgenlu_in(&store, args);
        assert!(ran.ok, "{args:?}: {}", ran.stderr);
        ran.stdout
    };
    let keys = path("keys");
    run(&["keygen", "vendor", "--dir", &keys]);
    run(&["keygen", "acme", "--dir", &keys]);
    run(&["trust", "add", "--root", &path("keys/vendor.pub")]);
    let delegation = path("acme.delegation.json");
    run(&[
        "trust",
        "delegate",
        "--root-key",
        &path("keys/vendor.key"),
        "--publisher",
        "acme",
        "--key",
        &path("keys/acme.pub"),
        "--model",
        "all-minilm-*",
        "-o",
        &delegation,
    ]);
    run(&["trust", "add", &delegation]);
    // The bundled skill, re-signed by acme with one more model in its manifest.
    let dev = path("dev.wasm");
    run(&["sign", "--dev-intents", "-o", &dev]);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&run(&["inspect", "--manifest-only", &dev])).unwrap();
    manifest["publisher"] = "acme".into();
    manifest["models"]
        .as_array_mut()
        .unwrap()
        .push("other-model".into());
    std::fs::write(path("m.json"), manifest.to_string()).unwrap();
    let file = path("acme.wasm");
    run(&[
        "sign",
        &dev,
        "--manifest",
        &path("m.json"),
        "--key",
        &path("keys/acme.key"),
        "-o",
        &file,
    ]);

    for command in ["install", "verify"] {
        let ran = edgenlu_tests::edgenlu_in(&store, &[command, &file]);
        assert!(!ran.ok, "{command} accepted it");
        for part in [
            // The publisher, each model not allowed (the bundled skill's datastore is not
            // either), and what the delegation allows.
            "publisher \"acme\" may not grant models `snips-intents` and `other-model`: its \
             delegation allows only models 'all-minilm-*'.",
            // The two ways out, the second as the command that would allow them.
            "Either remove them from the manifest's models, or ask the vendor for a delegation \
             that also allows them: edgenlu trust delegate --root-key <vendor.key> --publisher \
             acme --key <acme.pub> --model 'all-minilm-*' --model 'snips-intents' --model \
             'other-model' -o acme.delegation.json",
        ] {
            assert!(
                ran.stderr.contains(part),
                "{command}: {part}\n{}",
                ran.stderr
            );
        }
    }
    assert!(run(&["list"]).is_empty());
    std::fs::remove_dir_all(store.root()).unwrap();
}
