//! The pipeline as a flow component: the bundled default flow answers exactly as the host's
//! own pipeline (`Pipeline::answer_native`) on a sample of SNIPS test through a router of two
//! domain skills — same skill, intent, confidence, slots, reply, path, verdict, out-of-scope
//! score, uplink error, template reason and stage names (only the times differ) — and with
//! phrasing on a few utterances; a flow without the `uplink` capability never offloads.

use edgenlu::bundled::{self, DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::flow::{Flow, FlowLimits};
use edgenlu::{AnswerPath, Decision};
use edgenlu_device::pipeline::{DeviceState, Pipeline, PipelineAnswer};
use edgenlu_device::router::Route;
use edgenlu_device::uplink::{Uplink, UplinkConfig};
use edgenlu_tests::{datasets_dir, domain_indexes, intents, require_model, runtime};
use edgenlu_train::datastore;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const ONLINE: DeviceState = DeviceState {
    network_up: true,
    battery_percent: Some(80),
};

/// An uplink nobody listens on: every offload fails fast, so the fallback is exercised.
fn dead_uplink() -> Uplink {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    Uplink::new(UplinkConfig {
        url: format!("http://{addr}/v1"),
        key: None,
        model: DEFAULT_DECODER.into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// Two SNIPS domain skills (music may not use the uplink, weather may), the default policy,
/// template replies, an uplink that is down.
fn two_skill_pipeline() -> Pipeline {
    let [music, weather] = domain_indexes();
    let rt = runtime();
    let routes = vec![
        Route::new("music", intents(Some(music)), false, rt.catalog()).unwrap(),
        Route::new("weather", intents(Some(weather)), true, rt.catalog()).unwrap(),
    ];
    Pipeline {
        uplink: Some(dead_uplink()),
        ..edgenlu_tests::pipeline_over(routes)
    }
}

/// Every `n`th SNIPS test utterance, `count` of them (all seven intents: in and out of the two
/// skills' domains); of `EDGENLU_FLOW_DATA` instead, if set.
fn snips_sample(count: usize) -> Vec<String> {
    let data = std::env::var("EDGENLU_FLOW_DATA").unwrap_or_else(|_| "snips/test.jsonl".into());
    let all = datastore::read_examples(&datasets_dir().join(data)).unwrap();
    let step = (all.len() / count).max(1);
    all.into_iter()
        .step_by(step)
        .take(count)
        .map(|e| e.text)
        .collect()
}

/// Asserts the flow and the host's pipeline answer every text alike; returns the flow's
/// answers.
fn assert_same(p: &Pipeline, texts: &[String], device: DeviceState) -> Vec<PipelineAnswer> {
    texts
        .iter()
        .map(|text| {
            let native = p.answer_native(text, device).unwrap();
            let flow = p.answer(text, device).unwrap();
            assert_eq!(flow.without_times(), native.without_times(), "{text:?}");
            flow
        })
        .collect()
}

#[test]
fn the_default_flow_answers_as_the_host_pipeline_on_snips_test() {
    let p = two_skill_pipeline();
    // `EDGENLU_FLOW_SAMPLE=N` compares N utterances instead (the whole set: a large N), of
    // `EDGENLU_FLOW_DATA` (a file under the datasets folder) if set.
    let n = std::env::var("EDGENLU_FLOW_SAMPLE").map_or(100, |n| n.parse().unwrap());
    let answers = assert_same(&p, &snips_sample(n), ONLINE);
    let count = |f: &dyn Fn(&PipelineAnswer) -> bool| answers.iter().filter(|a| f(a)).count();
    // The sample goes down every path the pipeline has without a phraser.
    let local = count(&|a| a.verdict.decision == Decision::Local);
    let rejected = count(&|a| a.answer.response.path == AnswerPath::Rejected);
    let fell_back = count(&|a| a.uplink_error.is_some());
    let both_skills = count(&|a| a.skill == "music") > 0 && count(&|a| a.skill == "weather") > 0;
    assert!(
        local > 0 && rejected > 0 && fell_back > 0 && both_skills,
        "local {local}, rejected {rejected}, offload fell back {fell_back}, both skills {both_skills}"
    );
    // Offline, nothing is offloaded: the same answers again.
    let offline = DeviceState {
        network_up: false,
        battery_percent: None,
    };
    assert_same(&p, &snips_sample(20), offline);
}

#[test]
fn the_default_flow_phrases_as_the_host_pipeline() {
    require_model(DEFAULT_DECODER);
    let phraser = runtime()
        .load_skill(bundled::chat_skill(DEFAULT_DECODER, bundled::chat_limits()))
        .unwrap();
    let p = Pipeline {
        phraser: Some(Arc::new(phraser)),
        ..two_skill_pipeline()
    };
    let answers = assert_same(&p, &snips_sample(8), ONLINE);
    assert!(
        answers
            .iter()
            .any(|a| a.phrased() || a.template_reason.is_some()),
        "no utterance was phrased or had its phrasing refused"
    );
}

#[test]
fn a_flow_without_the_uplink_capability_never_offloads() {
    require_model(DEFAULT_ENCODER);
    let mut spec = bundled::default_flow();
    assert!(
        spec.limits.uplink,
        "the bundled flow has the uplink capability"
    );
    spec.limits = FlowLimits {
        uplink: false,
        ..spec.limits
    };
    let p = Pipeline {
        flow: Flow::load(&runtime(), &spec).unwrap(),
        ..two_skill_pipeline()
    };
    let mut offloaded_natively = 0;
    for text in snips_sample(30) {
        let a = p.answer(&text, ONLINE).unwrap();
        assert_ne!(a.verdict.decision, Decision::Offload, "{text:?}");
        assert!(a.uplink_error.is_none(), "{text:?}: {:?}", a.uplink_error);
        let native = p.answer_native(&text, ONLINE).unwrap();
        offloaded_natively += usize::from(native.verdict.decision == Decision::Offload);
    }
    assert!(
        offloaded_natively > 0,
        "no utterance of the sample would be offloaded"
    );
}

#[test]
fn a_flow_is_held_to_its_bound_on_calls_and_its_deadline() {
    use edgenlu::{SkillError, WitError};
    use edgenlu_device::pipeline::PipelineError;
    let text = "will it snow in chicago tomorrow";
    let with = |change: &dyn Fn(&mut edgenlu::flow::FlowSpec)| {
        let mut spec = bundled::default_flow();
        change(&mut spec);
        Pipeline {
            flow: Flow::load(&runtime(), &spec).unwrap(),
            ..two_skill_pipeline()
        }
    };
    // Route and ask fit in two calls; the policy is the third: without a verdict the flow
    // cannot go on.
    let bounded = with(&|s| s.limits.max_calls = 2);
    match bounded.answer(text, ONLINE) {
        Err(PipelineError::Flow(SkillError::Trap(m))) => {
            assert!(m.contains("2 calls"), "{m}")
        }
        other => panic!("expected the flow to stop at its bound: {other:?}"),
    }
    // Past its deadline a flow's next call is refused; the default flow gives up with it.
    let late = with(&|s| s.component.grants.limits.deadline = Duration::ZERO);
    match late.answer(text, ONLINE) {
        Err(PipelineError::Flow(SkillError::Guest(WitError::BudgetExceeded(_)))) => {}
        Err(PipelineError::Flow(SkillError::Deadline(_))) => {}
        other => panic!("expected the flow's deadline to stop it: {other:?}"),
    }
    // The next utterance through a good flow is answered.
    assert_eq!(
        two_skill_pipeline()
            .answer(text, ONLINE)
            .unwrap()
            .answer
            .response
            .intent,
        "GetWeather"
    );
}

#[test]
fn a_hostile_flow_is_stopped_by_its_budgets_and_the_next_utterance_is_answered() {
    use edgenlu::{SkillError, WitError};
    use edgenlu_device::pipeline::PipelineError;
    let deadline = Duration::from_secs(2);
    let limits = edgenlu::Limits {
        deadline,
        guest_memory: 16 << 20,
        ..edgenlu::Limits::default()
    };
    let hostile = Pipeline {
        flow: Flow::load(&runtime(), &bundled::hostile_flow(limits)).unwrap(),
        ..two_skill_pipeline()
    };
    let good = two_skill_pipeline();
    let weather = "will it snow in chicago tomorrow";
    let flow_error = |attack: &str| -> SkillError {
        let start = std::time::Instant::now();
        let err = match hostile.answer(&format!("{attack} {weather}"), ONLINE) {
            Err(PipelineError::Flow(e)) => e,
            other => panic!("{attack}: expected the flow to be stopped: {other:?}"),
        };
        // Stopped within its deadline plus a margin for a busy machine.
        let took = start.elapsed();
        assert!(
            took < deadline + Duration::from_secs(3),
            "{attack}: {took:?}"
        );
        let a = good.answer(weather, ONLINE).unwrap();
        assert_eq!(a.answer.response.intent, "GetWeather", "after {attack}");
        err
    };
    let err = flow_error("spin");
    assert!(matches!(err, SkillError::Deadline(_)), "spin: {err:?}");
    let err = flow_error("hoard");
    assert!(matches!(err, SkillError::Memory(_)), "hoard: {err:?}");
    let err = flow_error("ghost");
    assert!(
        matches!(&err, SkillError::Guest(WitError::NotFound(m)) if m.contains("no-such-skill")),
        "ghost: {err:?}"
    );
    let err = flow_error("flood");
    assert!(
        matches!(err, SkillError::Guest(WitError::BudgetExceeded(_))),
        "flood: {err:?}"
    );
    let err = flow_error("flood-blind");
    assert!(
        matches!(err, SkillError::Deadline(_)),
        "flood-blind: {err:?}"
    );
    let err = flow_error("smuggle");
    assert!(
        matches!(&err, SkillError::Guest(WitError::NotAllowed(m)) if m.contains("uplink")),
        "smuggle: {err:?}"
    );
    // The hostile flow's honest path still works.
    let a = hostile.answer(weather, ONLINE).unwrap();
    assert_eq!(a.answer.response.intent, "GetWeather");
}

#[test]
fn bench_flow_reports_both_paths_side_by_side() {
    let index = edgenlu_tests::tiny_index();
    let data = datasets_dir().join("snips/test.jsonl");
    let ran = edgenlu_tests::edgenlu_in(
        &edgenlu_tests::store(),
        &[
            "bench",
            "flow",
            "--data",
            data.to_str().unwrap(),
            "--index",
            index,
            "--limit",
            "12",
            "--json",
        ],
    );
    assert!(ran.ok, "{}", ran.stderr);
    let report: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(report["utterances"], 12);
    for series in ["host_pipeline", "flow"] {
        for q in ["p50_ms", "p99_ms"] {
            let ms = report[series][q].as_f64().unwrap();
            assert!(ms.is_finite() && ms > 0.0, "{series} {q}: {ms}");
        }
    }
    assert!(report["flow_extra"]["p50_ms"].as_f64().unwrap().is_finite());
    assert_eq!(report["identical_answers"], 12, "{report}");
}
