//! Flows installed like skills: signed (kind `flow`, the `flow` capability only where the
//! vendor's delegation allows it), health-checked through the device's skills, and followed
//! by a running server: an installed flow answers `/v1/nlu` from the next request, a rollback
//! and a removal restore the flow before, and a request in flight finishes on the flow it
//! started with. The example flows change behaviour as they say: `clarify` asks instead of
//! guessing between close skills, `cascade` lets the decoder choose, constrained to the
//! candidates' intents, and says which path decided.

use edgenlu::bundled::{self, components, DEFAULT_DECODER};
use edgenlu::flow::Flow;
use edgenlu::{AnswerPath, Decision, SkillError, WitError};
use edgenlu_device::installed::{load_flow, FlowProbeCheck, ManifestGrants};
use edgenlu_device::pipeline::{DeviceState, Pipeline, PipelineError};
use edgenlu_device::router::Route;
use edgenlu_serve::{LivePipeline, ServeConfig};
use edgenlu_tests::{
    acme_trust, domain_indexes, http, intents, pipeline_over, require_model, runtime, serve,
    test_key,
};
use edgenlu_trust::manifest::{Capability, Kind, Manifest, Probe};
use edgenlu_trust::skills::{InstallError, SkillStore, FLOW_SLOT};
use edgenlu_trust::store::TrustStore;
use edgenlu_trust::{skillfile, unix_now, TrustError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const OFFLINE: DeviceState = DeviceState {
    network_up: false,
    battery_percent: None,
};
const WEATHER: &str = "will it rain tomorrow in paris";

/// A fresh directory for one test's device stores, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("edgenlu-flows-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Publisher "acme" (`test_key(2)`) under root `test_key(1)` in `dir`'s trust store,
/// delegated `caps`.
fn trust_acme(dir: &Path, caps: Vec<Capability>) -> TrustStore {
    acme_trust(dir, caps, &["all-minilm-*"], unix_now() + 86_400)
}

/// A flow manifest of `acme`: `name`, `version`, `config`, the `flow` capability.
fn flow_manifest(name: &str, version: u64, config: &[(&str, &str)]) -> Manifest {
    Manifest {
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Manifest::flow(name, "acme", version)
    }
}

fn signed(component: &[u8], m: &Manifest) -> Vec<u8> {
    skillfile::sign(component, &m.to_bytes().unwrap(), &test_key(2)).unwrap()
}

/// The clarify flow as the vendor signs it: every pair of skills counts as close with
/// `margin` 1, none with 0.
fn clarify(version: u64, margin: &str) -> Vec<u8> {
    let m = flow_manifest("clarify", version, &[("margin", margin)]);
    signed(components::FLOW_CLARIFY.bytes, &m)
}

/// Two SNIPS domain skills, music and weather (each trained on its own domain only, so each
/// understands every text as one of its own intents), the default policy, template replies.
fn two_skill_pipeline() -> Pipeline {
    let [music, weather] = domain_indexes();
    let rt = runtime();
    pipeline_over(vec![
        Route::new("music", intents(Some(music)), false, rt.catalog()).unwrap(),
        Route::new("weather", intents(Some(weather)), false, rt.catalog()).unwrap(),
    ])
}

fn is_clarifying(answer: &Value) -> bool {
    answer["verdict"]["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("asked to clarify"))
}

#[test]
fn a_flow_needs_the_flow_capability_and_its_own_store() {
    let dir = TempDir::new("capability");
    let bytes = clarify(1, "1");
    // A publisher whose delegation does not allow flows cannot ship one.
    trust_acme(&dir.0, vec![]);
    let flows = SkillStore::flows_at(&dir.0).unwrap();
    let err = flows.install(&bytes, unix_now()).unwrap_err();
    assert!(
        matches!(&err, TrustError::CapabilityNotDelegated { capabilities, .. } if capabilities == &[Capability::Flow]),
        "{err:?}"
    );
    assert!(err.to_string().contains("--capability flow"), "{err}");
    // Declared as a skill, the component's flow-host import still needs the capability.
    let mut as_skill = flow_manifest("clarify", 1, &[]);
    as_skill.kind = Kind::Skill;
    as_skill.capabilities.clear();
    let err = SkillStore::at(&dir.0)
        .unwrap()
        .install(
            &signed(components::FLOW_CLARIFY.bytes, &as_skill),
            unix_now(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, TrustError::CapabilityNotDeclared { capability: Capability::Flow, imports, .. } if imports.iter().any(|i| i.contains("flow-host"))),
        "{err:?}"
    );
    // A manifest of kind flow must ask for the capability; a skill may not.
    let mut m = flow_manifest("clarify", 1, &[]);
    m.capabilities.clear();
    assert!(
        matches!(m.validate(), Err(TrustError::BadManifest(why)) if why.contains("flow capability"))
    );
    let mut m = flow_manifest("clarify", 1, &[]);
    m.models = vec!["all-minilm-l6-v2.q8_0".into()];
    assert!(
        matches!(m.validate(), Err(TrustError::BadManifest(why)) if why.contains("opens no model"))
    );

    // Allowed, it installs in the flow store only.
    let dir = TempDir::new("capability-allowed");
    trust_acme(&dir.0, vec![Capability::Flow]);
    let err = SkillStore::at(&dir.0)
        .unwrap()
        .install(&bytes, unix_now())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            TrustError::WrongKind {
                kind: Kind::Flow,
                ..
            }
        ),
        "{err:?}"
    );
    let flows = SkillStore::flows_at(&dir.0).unwrap();
    let report = flows.install(&bytes, unix_now()).unwrap();
    assert_eq!((report.name.as_str(), report.version), ("clarify", 1));
    // No uplink unless the manifest asks for it.
    let (v, path) = flows.current(FLOW_SLOT).unwrap();
    let spec = v.manifest.verified_flow_spec(&path, bytes.into());
    assert!(!spec.limits.uplink);
    // A skill file is refused by the flow store.
    let skill = edgenlu_trust::dev::intents_manifest("all-minilm-l6-v2.q8_0", "x", 1);
    let mut skill = skill;
    skill.publisher = "acme".into();
    skill.models = vec!["all-minilm-l6-v2.q8_0".into()];
    skill.tokenizer = None;
    let skill = signed(components::SKILL_INTENTS.bytes, &skill);
    let err = flows.install(&skill, unix_now()).unwrap_err();
    assert!(
        matches!(
            &err,
            TrustError::WrongKind {
                kind: Kind::Skill,
                expected: Kind::Flow,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_flow_whose_probes_fail_is_rolled_back_and_the_device_keeps_its_flow() {
    let dir = TempDir::new("health");
    trust_acme(&dir.0, vec![Capability::Flow]);
    let flows = SkillStore::flows_at(&dir.0).unwrap();
    let rt = runtime();
    let pipeline = two_skill_pipeline();
    let check = FlowProbeCheck {
        runtime: &rt,
        pipeline: &pipeline,
    };
    let probe = |intent: &str| Probe {
        text: WEATHER.into(),
        intent: intent.into(),
    };
    // The probes go through the device's skills with the new flow.
    let mut good = flow_manifest("clarify", 1, &[("margin", "0")]);
    good.health = vec![probe("GetWeather")];
    let report = flows
        .install_checked_by(
            &check,
            &signed(components::FLOW_CLARIFY.bytes, &good),
            unix_now(),
        )
        .unwrap();
    assert_eq!(report.probes_passed, Some(1));
    let mut bad = flow_manifest("clarify", 2, &[("margin", "0")]);
    bad.health = vec![probe("PlayMusic")];
    let err = flows
        .install_checked_by(
            &check,
            &signed(components::FLOW_CLARIFY.bytes, &bad),
            unix_now(),
        )
        .unwrap_err();
    match err {
        InstallError::HealthCheck {
            version: 2,
            restored: Some(1),
            reason,
            ..
        } => assert!(reason.contains("PlayMusic"), "{reason}"),
        other => panic!("expected a failed health check: {other:?}"),
    }
    let loaded = load_flow(&flows, &rt, &pipeline).unwrap().unwrap();
    assert_eq!((loaded.name.as_str(), loaded.file.version), ("clarify", 1));
}

#[test]
fn a_new_flow_changes_the_next_answer_of_a_running_server_and_rollback_restores_it() {
    let dir = TempDir::new("serve");
    trust_acme(&dir.0, vec![Capability::Flow]);
    let flows = SkillStore::flows_at(&dir.0).unwrap();
    let rt = runtime();
    let live = LivePipeline::new(two_skill_pipeline(), SkillStore::at(&dir.0).unwrap(), rt)
        .following_flow(SkillStore::flows_at(&dir.0).unwrap());
    let config = ServeConfig {
        listen: "127.0.0.1:0".into(),
        ..ServeConfig::default()
    };
    let server = serve(&config, live);
    let addr = server.addr();
    let ask = || {
        let (status, body) = http(
            addr,
            "POST",
            "/v1/nlu",
            json!({ "text": WEATHER }).to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["response"].clone()
    };
    let default = ask();
    assert!(!is_clarifying(&default), "{default}");
    assert_eq!(default["intent"], "GetWeather");

    flows.install(&clarify(1, "1"), unix_now()).unwrap();
    let clarified = ask();
    assert!(is_clarifying(&clarified), "{clarified}");
    // No decoder on this device: the plain question, naming both intents.
    let question = clarified["reply"].as_str().unwrap();
    assert!(
        question.starts_with("Do you want to get weather or to ") && question.ends_with('?'),
        "{clarified}"
    );
    assert!(
        clarified["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stage"] == "clarify"),
        "{clarified}"
    );
    let (_, metrics) = http(addr, "GET", "/metrics", b"");
    assert!(
        metrics.contains("edgenlu_flow_version{flow=\"clarify\"} 1"),
        "{metrics}"
    );

    // A new version that never finds two skills close answers as the default flow does.
    flows.install(&clarify(2, "0"), unix_now()).unwrap();
    let v2 = ask();
    assert!(!is_clarifying(&v2), "{v2}");
    assert_eq!(v2["reply"], default["reply"]);
    flows.rollback(FLOW_SLOT).unwrap();
    assert!(is_clarifying(&ask()), "rolled back to version 1");
    flows.remove(FLOW_SLOT).unwrap();
    let again = ask();
    assert!(!is_clarifying(&again), "{again}");
    assert_eq!(again["reply"], default["reply"]);
    server.shutdown();
}

#[test]
fn a_request_in_flight_finishes_on_the_flow_it_started_with() {
    require_model(DEFAULT_DECODER);
    let dir = TempDir::new("inflight");
    trust_acme(&dir.0, vec![Capability::Flow]);
    let flows = SkillStore::flows_at(&dir.0).unwrap();
    let rt = runtime();
    // With a phraser, a local answer takes the decoder's time: long enough to install a flow
    // while it runs.
    let phraser = rt
        .load_skill(bundled::chat_skill(DEFAULT_DECODER, bundled::chat_limits()))
        .unwrap();
    let pipeline = Pipeline {
        phraser: Some(Arc::new(phraser)),
        ..two_skill_pipeline()
    };
    let live = LivePipeline::new(pipeline, SkillStore::at(&dir.0).unwrap(), rt)
        .following_flow(SkillStore::flows_at(&dir.0).unwrap());
    // What a worker does with a request: take the pipeline, then answer through it.
    let in_flight = live.current();
    let answering = std::thread::spawn(move || in_flight.answer(WEATHER, OFFLINE).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    flows.install(&clarify(1, "1"), unix_now()).unwrap();
    let next = live.current().answer(WEATHER, OFFLINE).unwrap();
    let started = answering.join().unwrap();
    assert!(
        !started.verdict.reason.starts_with("asked to clarify"),
        "the request in flight answered with the new flow: {:?}",
        started.verdict
    );
    assert!(
        next.verdict.reason.starts_with("asked to clarify"),
        "{:?}",
        next.verdict
    );
    // The decoder chose the question's words among the ways to ask.
    let reply = next.answer.response.reply.clone().unwrap();
    assert!(reply.ends_with('?'), "{reply:?}");
    assert_eq!(next.answer.response.path, AnswerPath::Local, "{reply:?}");
    eprintln!(
        "clarifying question: {reply:?} ({:?}, {:?})",
        next.answer.response.path, next.template_reason
    );
}

#[test]
fn the_cascade_flow_lets_the_decoder_choose_among_the_candidates_and_says_so() {
    require_model(DEFAULT_DECODER);
    let rt = runtime();
    let phraser = rt
        .load_skill(bundled::chat_skill(DEFAULT_DECODER, bundled::chat_limits()))
        .unwrap();
    let m = flow_manifest("cascade", 1, &[("min-confidence", "1.01")]);
    let bytes: Arc<[u8]> = components::FLOW_CASCADE.bytes.into();
    let spec = m.verified_flow_spec(Path::new("cascade.wasm"), bytes);
    let pipeline = Pipeline {
        phraser: Some(Arc::new(phraser)),
        flow: Flow::load(&rt, &spec).unwrap(),
        ..two_skill_pipeline()
    };
    let mut decoder_right = 0;
    let cases = [
        (WEATHER, "GetWeather"),
        ("play the latest album by adele", "PlayMusic"),
        ("add this song to my workout playlist", "AddToPlaylist"),
        ("what is the forecast for boston this weekend", "GetWeather"),
    ];
    for (text, gold) in cases {
        let a = pipeline.answer(text, OFFLINE).unwrap();
        let reason = &a.verdict.reason;
        assert!(
            reason.starts_with("the decoder decided"),
            "{text}: {reason}"
        );
        assert!(
            a.stages.iter().any(|s| s.stage == "cascade"),
            "{text}: {:?}",
            a.stages
        );
        // The choice is one of the two skills' intents, never free text.
        assert!(
            ["music", "weather"].contains(&a.skill.as_str()),
            "{}",
            a.skill
        );
        decoder_right += usize::from(a.answer.response.intent == gold);
        let micros = a
            .stages
            .iter()
            .find(|s| s.stage == "cascade")
            .map_or(0, |s| s.micros);
        eprintln!(
            "{text:?} -> {} ({reason}); the choice took {:.1} ms",
            a.answer.response.intent,
            micros as f64 / 1e3
        );
    }
    eprintln!(
        "the decoder chose the gold intent on {decoder_right} of {}",
        cases.len()
    );
    // Sure of itself, the classifier decides, and says so.
    let sure = Pipeline {
        flow: Flow::load(
            &rt,
            &flow_manifest("cascade", 1, &[("min-confidence", "0")]).verified_flow_spec(
                Path::new("cascade.wasm"),
                components::FLOW_CASCADE.bytes.into(),
            ),
        )
        .unwrap(),
        ..two_skill_pipeline()
    };
    let a = sure.answer(WEATHER, OFFLINE).unwrap();
    assert!(
        a.verdict.reason.starts_with("the classifier decided"),
        "{}",
        a.verdict.reason
    );
    assert_eq!(a.answer.response.intent, "GetWeather");
    assert_ne!(a.verdict.decision, Decision::Reject);
    // Without a decoder on the device, an unsure classifier's answer stands, and says why.
    let without_decoder = Pipeline {
        phraser: None,
        flow: pipeline.flow.clone(),
        ..two_skill_pipeline()
    };
    let a = without_decoder.answer(WEATHER, OFFLINE).unwrap();
    assert!(
        a.verdict.reason.contains("the decoder could not choose"),
        "{}",
        a.verdict.reason
    );
    assert_eq!(a.answer.response.intent, "GetWeather");
}

#[test]
fn a_flow_asking_the_decoder_too_much_is_refused_typed() {
    let limits = edgenlu::Limits {
        deadline: Duration::from_secs(5),
        guest_memory: 16 << 20,
        ..edgenlu::Limits::default()
    };
    let hostile = Pipeline {
        flow: Flow::load(&runtime(), &bundled::hostile_flow(limits)).unwrap(),
        ..two_skill_pipeline()
    };
    for (attack, what) in [("overchoose", "options"), ("overask", "bytes")] {
        match hostile.answer(&format!("{attack} {WEATHER}"), OFFLINE) {
            Err(PipelineError::Flow(SkillError::Guest(WitError::InvalidArgument(m)))) => {
                assert!(m.contains(what), "{attack}: {m}")
            }
            other => panic!("{attack}: expected invalid-argument: {other:?}"),
        }
    }
    // Without a decoder, a reasonable question is not-allowed.
    match hostile.answer(&format!("choose {WEATHER}"), OFFLINE) {
        Err(PipelineError::Flow(SkillError::Guest(WitError::NotAllowed(m)))) => {
            assert!(m.contains("decoder"), "{m}")
        }
        other => panic!("expected not-allowed without a decoder: {other:?}"),
    }
    let a = two_skill_pipeline().answer(WEATHER, OFFLINE).unwrap();
    assert_eq!(a.answer.response.path, AnswerPath::Template);
}

/// The same through the binaries, as a vendor does it on a device: `edgenlu serve` running
/// over two skills, the flow signed with `edgenlu sign` and installed with `edgenlu install`
/// from another process: the next `/v1/nlu` answer is the new flow's; `edgenlu remove flow`
/// puts the default back, without restarting the server.
#[test]
fn edgenlu_serve_follows_a_flow_installed_by_edgenlu_install() {
    use edgenlu_tests::{edgenlu_in, free_addr, store, wait_ready};
    let store = store();
    edgenlu_tests::default_index();
    let [music, weather] = domain_indexes();
    let dir = TempDir::new("serve-bin");
    trust_acme(store.root(), vec![Capability::Flow]);
    let key = dir.0.join("acme.key");
    edgenlu_trust::keys::write_keypair(&dir.0, "acme", &test_key(2)).unwrap();
    let component = dir.0.join("clarify.component.wasm");
    std::fs::write(&component, components::FLOW_CLARIFY.bytes).unwrap();
    let manifest = dir.0.join("clarify.manifest.json");
    let m = flow_manifest("clarify", 1, &[("margin", "1")]);
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let signed = dir.0.join("clarify-1.wasm");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let ran = edgenlu_in(
        &store,
        &[
            "sign",
            &s(&component),
            "--manifest",
            &s(&manifest),
            "--key",
            &s(&key),
            "-o",
            &s(&signed),
        ],
    );
    assert!(ran.ok, "{}", ran.stderr);

    let addr = free_addr();
    let mut server = std::process::Command::new(edgenlu_tests::built_binary())
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--index",
            music,
            "--index",
            weather,
        ])
        .env("EDGENLU_HOME", store.root())
        .env_remove("EDGENLU_UPLINK_URL")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&mut server, addr);
    let ask = || {
        let (status, body) = http(
            addr,
            "POST",
            "/v1/nlu",
            json!({ "text": WEATHER }).to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["response"].clone()
    };
    let before = ask();
    assert!(!is_clarifying(&before), "{before}");
    let installed = edgenlu_in(&store, &["install", &s(&signed)]);
    assert!(installed.ok, "{}", installed.stderr);
    let after = ask();
    assert!(is_clarifying(&after), "{after}");
    let removed = edgenlu_in(&store, &["remove", "flow"]);
    assert!(removed.ok, "{}", removed.stderr);
    let again = ask();
    assert!(!is_clarifying(&again), "{again}");
    assert_eq!(again["reply"], before["reply"]);
    let _ = server.kill();
    let _ = server.wait();
}

/// A flow file changed on the device after its install no longer verifies: the server starts
/// anyway and answers with the default flow, and says which flow it serves.
#[test]
fn a_server_over_a_tampered_flow_answers_with_the_default() {
    let dir = TempDir::new("tampered");
    trust_acme(&dir.0, vec![Capability::Flow]);
    let flows = SkillStore::flows_at(&dir.0).unwrap();
    flows.install(&clarify(1, "1"), unix_now()).unwrap();
    let (_, path) = flows.current(FLOW_SLOT).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let live = LivePipeline::new(
        two_skill_pipeline(),
        SkillStore::at(&dir.0).unwrap(),
        runtime(),
    )
    .following_flow(SkillStore::flows_at(&dir.0).unwrap());
    assert_eq!(live.flow_version(), None);
    let a = live.current().answer(WEATHER, OFFLINE).unwrap();
    assert!(
        !a.verdict.reason.starts_with("asked to clarify"),
        "{:?}",
        a.verdict
    );
    assert_eq!(a.answer.response.intent, "GetWeather");
}
