//! The skill author's kit through the real binary, as docs/skills.md walks it: a project from
//! `skill new`, built, tested, signed, installed and asked; the example third-party skills
//! under guest/examples built from their own publisher keys, installed beside each other and
//! routed; and a skill asking for more than its delegation allows, refused with the fix.
//!
//! Every guest build shares cargo's target folder with the bundled guests (guest/target), so
//! the wasm32 standard library is compiled once.

use edgenlu_models::store::ModelStore;
use edgenlu_tests::{edgenlu_in, temp_store, Ran};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn guest_target() -> String {
    repo().join("guest/target").display().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `edgenlu args` in `store`, failing the test unless it succeeds.
fn ok(store: &ModelStore, args: &[&str]) -> Ran {
    let ran = edgenlu_in(store, args);
    assert!(ran.ok, "edgenlu {args:?} failed:\n{}", ran.stderr);
    ran
}

/// A device that trusts vendor root `vendor`, which delegated to `publisher` the encoders and
/// the datastores of skill `skill`; the publisher's key pair is `keys/PUBLISHER.key`.
fn trusting(store: &ModelStore, work: &Path, publisher: &str, skill: &str) -> PathBuf {
    trusting_with(store, work, publisher, skill, &[])
}

/// [`trusting`], the delegation also given `extra` arguments (`--capability flow`, say).
fn trusting_with(
    store: &ModelStore,
    work: &Path,
    publisher: &str,
    skill: &str,
    extra: &[&str],
) -> PathBuf {
    let keys = work.join("keys");
    if !keys.join("vendor.key").exists() {
        ok(store, &["keygen", "vendor", "--dir", s(&keys)]);
        ok(
            store,
            &["trust", "add", "--root", s(&keys.join("vendor.pub"))],
        );
    }
    ok(store, &["keygen", publisher, "--dir", s(&keys)]);
    let delegation = work.join(format!("{publisher}.delegation.json"));
    let (root_key, public) = (
        keys.join("vendor.key"),
        keys.join(format!("{publisher}.pub")),
    );
    let models = format!("{skill}-*");
    let mut args = vec![
        "trust",
        "delegate",
        "--root-key",
        s(&root_key),
        "--publisher",
        publisher,
        "--key",
        s(&public),
        "--model",
        "all-minilm-*",
        "--model",
        &models,
        "--days",
        "30",
        "-o",
        s(&delegation),
    ];
    args.extend_from_slice(extra);
    ok(store, &args);
    ok(store, &["trust", "add", s(&delegation)]);
    keys.join(format!("{publisher}.key"))
}

fn work_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgenlu-skill-kit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cargo test` in a project, with the bundled guests' target folder.
fn native_tests_pass(project: &Path) {
    let native = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["test", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", guest_target())
        .output()
        .unwrap();
    assert!(
        native.status.success(),
        "cargo test in {} failed:\n{}",
        project.display(),
        String::from_utf8_lossy(&native.stderr)
    );
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn a_new_skill_is_scaffolded_built_tested_signed_installed_and_answers() {
    let store = temp_store("skill-kit-new");
    let work = work_dir("new");
    let key = trusting(&store, &work, "acme", "greeter");
    let new = ok(
        &store,
        &[
            "skill",
            "new",
            "greeter",
            "--publisher",
            "acme",
            "--dir",
            s(&work),
        ],
    );
    assert!(
        new.stdout.contains("greeter: skill project in"),
        "{}",
        new.stdout
    );
    let project = work.join("greeter");
    for file in ["skill.toml", "Cargo.toml", "src/lib.rs", "data/train.jsonl"] {
        assert!(project.join(file).is_file(), "{file} was not written");
    }
    assert!(project.join("vendor/edgenlu-sdk/wit/nlu.wit").is_file());

    // The native unit test the scaffold carries passes as written.
    native_tests_pass(&project);

    let built = ok(
        &store,
        &[
            "skill",
            "build",
            s(&project),
            "--key",
            s(&key),
            "--target-dir",
            &guest_target(),
        ],
    );
    assert!(built
        .stdout
        .contains("datastore greeter-v1: 28 examples, 3 intents"));
    let signed = project.join("target/edgenlu/greeter-1.wasm");
    assert!(built.stdout.contains("signed by acme"), "{}", built.stdout);

    let tested = ok(&store, &["skill", "test", s(&project)]);
    assert!(
        tested.stdout.contains("greeter: 7 passed, 0 failed"),
        "{}",
        tested.stdout
    );

    let installed = ok(&store, &["install", s(&signed)]);
    assert!(installed.stdout.contains("health check passed (2 probes)"));
    let asked = ok(&store, &["ask", "greeter", "hello, I am Julia"]);
    let answer = json(asked.stdout.trim());
    assert_eq!(answer["response"]["intent"], "greet");
    assert_eq!(answer["response"]["reply"], "Hello, Julia!");
    assert_eq!(answer["response"]["slots"][0]["value"], "Julia");

    // A rebuild of unchanged examples reuses the datastore the installed version uses.
    let again = ok(
        &store,
        &[
            "skill",
            "build",
            s(&project),
            "--target-dir",
            &guest_target(),
        ],
    );
    assert!(
        again.stdout.contains("datastore greeter-v1 is up to date"),
        "{}",
        again.stdout
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn the_example_skills_install_beside_each_other_and_the_router_picks_them() {
    let store = temp_store("skill-kit-examples");
    let work = work_dir("examples");
    let index = tiny_index_in(&store);
    for (skill, publisher) in [("timers", "clockwork"), ("home", "hearth")] {
        let key = trusting(&store, &work, publisher, skill);
        let project = repo().join("guest/examples").join(skill);
        ok(
            &store,
            &[
                "skill",
                "build",
                s(&project),
                "--key",
                s(&key),
                "--target-dir",
                &guest_target(),
            ],
        );
        let tested = ok(&store, &["skill", "test", s(&project)]);
        assert!(tested.stdout.contains(" 0 failed"), "{}", tested.stdout);
        let signed = project.join(format!("target/edgenlu/{skill}-1.wasm"));
        let size = std::fs::metadata(&signed).unwrap().len();
        assert!(size < 1 << 20, "{skill} is {size} bytes, over 1 MB");
        ok(&store, &["install", s(&signed)]);
    }
    let ran = ok(
        &store,
        &[
            "run",
            "--index",
            &index,
            "--skill",
            "timers",
            "--skill",
            "home",
            "set a timer for ten minutes",
            "turn off the lights in the kitchen",
            "what will the weather be like in paris tomorrow",
        ],
    );
    let answers: Vec<serde_json::Value> = ran.stdout.lines().map(json).collect();
    let picked: Vec<(&str, &str)> = answers
        .iter()
        .map(|a| {
            let r = &a["response"];
            (r["skill"].as_str().unwrap(), r["intent"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        picked,
        [
            ("timers", "set_timer"),
            ("home", "turn_off"),
            (index.as_str(), "GetWeather")
        ]
    );
    // The timers skill writes its own reply, and the device keeps it.
    assert_eq!(
        answers[0]["response"]["reply"],
        "Timer set for ten minutes."
    );
    assert_eq!(answers[0]["response"]["path"], "Local");
    let _ = std::fs::remove_dir_all(&work);
}

/// The decoder-only example skill (guest/examples/snips-llm: a few-shot prompt, the reply
/// constrained to a JSON schema of its intents and slot names) built with the BPE tokenizer
/// over SmolLM2 and the `generate` capability, installed (its probe answered by the decoder),
/// then two SNIPS test utterances per intent through `edgenlu eval`: every one answered. The
/// skill refuses, as an error, a reply that is not JSON of its schema, so no failure means
/// every reply parsed and validated. Accuracy is not asserted: it is a baseline.
#[test]
fn the_decoder_only_example_skill_answers_every_utterance_within_its_schema() {
    let store = temp_store("skill-kit-snips-llm");
    let work = work_dir("snips-llm");
    let extra = ["--model", "smollm2-*", "--capability", "generate"];
    let key = trusting_with(&store, &work, "acme", "snips-llm", &extra);
    let project = repo().join("guest/examples/snips-llm");
    native_tests_pass(&project);
    ok(
        &store,
        &[
            "skill",
            "build",
            s(&project),
            "--key",
            s(&key),
            "--target-dir",
            &guest_target(),
        ],
    );
    ok(
        &store,
        &[
            "install",
            s(&project.join("target/edgenlu/snips-llm-1.wasm")),
        ],
    );
    let sample = project.join("tests/utterances.jsonl");
    let ran = ok(
        &store,
        &[
            "eval",
            "--data",
            s(&sample),
            "--skill",
            "snips-llm",
            "--policy",
            "max-out-of-scope=1",
            "--json",
        ],
    );
    let report = json(ran.stdout.trim());
    eprintln!("{report}");
    assert_eq!(report["examples"], 14, "{report}");
    assert_eq!(
        report["failed"], 0,
        "replies off the schema: {}",
        report["failures"]
    );
    assert_eq!(report["per_skill"]["snips-llm"], 14, "{report}");
    let _ = std::fs::remove_dir_all(&work);
}

/// The tests' small SNIPS datastore, built in `store`.
fn tiny_index_in(store: &ModelStore) -> String {
    let name = "kit-snips-20";
    ok(
        store,
        &[
            "skill",
            "index",
            "--data",
            s(&edgenlu_tests::datasets_dir().join("snips/train.jsonl")),
            "--per-intent",
            "20",
            "--name",
            name,
        ],
    );
    name.to_string()
}

#[test]
fn a_skill_asking_for_a_model_its_delegation_does_not_allow_is_refused_with_the_fix() {
    let store = temp_store("skill-kit-refused");
    let work = work_dir("refused");
    let key = trusting(&store, &work, "acme", "greeter");
    ok(
        &store,
        &[
            "skill",
            "new",
            "greeter",
            "--publisher",
            "acme",
            "--dir",
            s(&work),
        ],
    );
    let project = work.join("greeter");
    let toml = project.join("skill.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        "capabilities = []",
        "capabilities = []\nmodels = [\"smollm2-135m-instruct.q4_1\"]",
    );
    std::fs::write(&toml, text).unwrap();
    ok(
        &store,
        &[
            "skill",
            "build",
            s(&project),
            "--key",
            s(&key),
            "--target-dir",
            &guest_target(),
        ],
    );
    let refused = edgenlu_in(
        &store,
        &["install", s(&project.join("target/edgenlu/greeter-1.wasm"))],
    );
    assert!(
        !refused.ok,
        "installed a skill its delegation does not allow"
    );
    for needed in [
        "smollm2-135m-instruct.q4_1",
        "acme",
        "all-minilm-*",
        "greeter-*",
    ] {
        assert!(
            refused.stderr.contains(needed),
            "the refusal does not name {needed}:\n{}",
            refused.stderr
        );
    }
    let listed = ok(&store, &["list"]);
    assert!(!listed.stdout.contains("greeter"), "{}", listed.stdout);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn kit_commands_used_wrongly_say_what_to_do() {
    let store = temp_store("skill-kit-messages");
    let work = work_dir("messages");
    let refused = |args: &[&str], needed: &str| {
        let ran = edgenlu_in(&store, args);
        assert!(!ran.ok, "edgenlu {args:?} succeeded");
        assert!(
            ran.stderr.contains(needed),
            "edgenlu {args:?} does not say {needed:?}:\n{}",
            ran.stderr
        );
    };
    refused(&["skill", "build", s(&work)], "skill new NAME");
    refused(
        &["skill", "build", "--train", "x.jsonl"],
        "edgenlu skill train",
    );
    refused(
        &["skill", "new", "Greeter Bot", "--dir", s(&work)],
        "Greeter Bot",
    );
    ok(&store, &["skill", "new", "greeter", "--dir", s(&work)]);
    refused(
        &["skill", "new", "greeter", "--dir", s(&work)],
        "already exists",
    );
    let project = work.join("greeter");
    refused(&["skill", "test", s(&project)], "skill build");
    // A setting the build owns, set by hand, is refused before anything is compiled.
    let toml = project.join("skill.toml");
    let text = std::fs::read_to_string(&toml).unwrap() + "\n[config]\nindex = \"mine\"\n";
    std::fs::write(&toml, text).unwrap();
    refused(
        &["skill", "build", s(&project)],
        "config `index` is set by `skill build`",
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// docs/flows.md's path: a flow project from `skill new --flow`, its native test, built and
/// signed by a publisher the vendor delegated the `flow` capability, installed as the device's
/// flow (health-checked through the device's skills), answering `run`, then rolled back and
/// removed; the same flow signed by a publisher without the capability is refused with the fix.
#[test]
fn a_new_flow_is_scaffolded_built_installed_and_taken_back() {
    let store = edgenlu_tests::store();
    edgenlu_tests::default_index();
    let work = work_dir("flow");
    let key = trusting_with(&store, &work, "acme", "tiebreak", &["--capability", "flow"]);
    let new = ok(
        &store,
        &[
            "skill",
            "new",
            "tiebreak",
            "--flow",
            "--publisher",
            "acme",
            "--dir",
            s(&work),
        ],
    );
    assert!(
        new.stdout.contains("tiebreak: flow project in"),
        "{}",
        new.stdout
    );
    let project = work.join("tiebreak");
    native_tests_pass(&project);
    ok(
        &store,
        &[
            "skill",
            "build",
            s(&project),
            "--key",
            s(&key),
            "--target-dir",
            &guest_target(),
        ],
    );
    let signed = project.join("target/edgenlu/tiebreak-1.wasm");
    let installed = ok(&store, &["install", s(&signed)]);
    assert!(
        installed.stdout.contains(
            "installed the device's flow tiebreak version 1; health check passed (1 probes)"
        ),
        "{}",
        installed.stdout
    );
    let list = ok(&store, &["list"]);
    assert!(
        list.stdout.contains("flow tiebreak  version 1"),
        "{}",
        list.stdout
    );
    let ran = ok(
        &store,
        &["run", "--no-phrase", "will it rain tomorrow in paris"],
    );
    assert_eq!(json(ran.stdout.trim())["response"]["intent"], "GetWeather");
    let rollback = edgenlu_in(&store, &["rollback", "flow"]);
    assert!(!rollback.ok);
    assert!(
        rollback.stderr.contains("no flow installed before it"),
        "{}",
        rollback.stderr
    );

    // A publisher without the flow capability cannot ship it.
    let other = trusting(&store, &work, "other", "tiebreak");
    let manifest = project.join("target/edgenlu/tiebreak.manifest.json");
    let mut m = json(&std::fs::read_to_string(&manifest).unwrap());
    m["publisher"] = "other".into();
    m["version"] = 2.into();
    let edited = work.join("other.manifest.json");
    std::fs::write(&edited, m.to_string()).unwrap();
    let resigned = work.join("tiebreak-other.wasm");
    let component = project.join("target/edgenlu/tiebreak.component.wasm");
    ok(
        &store,
        &[
            "sign",
            s(&component),
            "--manifest",
            s(&edited),
            "--key",
            s(&other),
            "-o",
            s(&resigned),
        ],
    );
    let refused = edgenlu_in(&store, &["install", s(&resigned)]);
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("--capability flow"),
        "{}",
        refused.stderr
    );

    let removed = ok(&store, &["remove", "flow"]);
    assert!(
        removed
            .stdout
            .contains("the device runs the bundled default flow"),
        "{}",
        removed.stdout
    );
    let list = ok(&store, &["list"]);
    assert!(!list.stdout.contains("flow tiebreak"), "{}", list.stdout);
    let _ = std::fs::remove_dir_all(&work);
}
