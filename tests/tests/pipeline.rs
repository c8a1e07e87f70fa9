//! The device pipeline end to end: an in-scope utterance answered locally with a phrased reply,
//! an out-of-scope one offloaded over loopback to a real server (`edgenlu serve`'s), the server
//! down → a local answer that says why, and no network → a refusal.

use edgenlu::bundled::{self, intents_skill, DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::pipeline::{DeviceState, Pipeline};
use edgenlu::policy::Policy;
use edgenlu::serve::ServeConfig;
use edgenlu::uplink::{Uplink, UplinkConfig};
use edgenlu::{datastore, AnswerPath, Decision, Limits};
use edgenlu_models::softmax_head::HeadTraining;
use edgenlu_tests::{datasets_dir, require_model, runtime, start_server, store};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A SNIPS skill that knows what it does not know: head trained on 40 examples per intent,
/// threshold tuned on other SNIPS examples and CLINC150's out-of-scope validation queries.
fn index() -> &'static str {
    static INDEX: OnceLock<&'static str> = OnceLock::new();
    INDEX.get_or_init(|| {
        require_model(DEFAULT_ENCODER);
        let name = "test-pipeline-snips";
        let read = |f: &str| datastore::read_examples(&datasets_dir().join(f)).unwrap();
        let train = datastore::limit_per_intent(read("snips/train.jsonl"), 40);
        let mut val = datastore::limit_per_intent(read("snips/test.jsonl"), 15);
        val.extend(
            read("clinc150/val.jsonl")
                .into_iter()
                .filter(|e| e.intent == datastore::OUT_OF_SCOPE),
        );
        let skill = runtime()
            .load_skill(intents_skill(DEFAULT_ENCODER, None, Limits::default()))
            .unwrap();
        let store = store();
        edgenlu::training::build(
            &skill,
            DEFAULT_ENCODER,
            edgenlu::training::Examples {
                train: &train,
                val: Some(&val),
            },
            2,
            &HeadTraining::default(),
            &store.path_for(name).unwrap(),
            &|_, _, _| {},
        )
        .unwrap();
        store.record(name, "tests/pipeline.rs").unwrap();
        name
    })
}

fn pipeline(uplink: Option<&str>) -> Pipeline {
    require_model(DEFAULT_DECODER);
    let rt = runtime();
    Pipeline {
        skill_name: "intents".into(),
        skill: Arc::new(
            rt.load_skill(intents_skill(
                DEFAULT_ENCODER,
                Some(index()),
                Limits::default(),
            ))
            .unwrap(),
        ),
        policy: Policy::load(&rt, &bundled::default_policy(Default::default())).unwrap(),
        phraser: Some(Arc::new(
            rt.load_skill(bundled::chat_skill(DEFAULT_DECODER, bundled::chat_limits()))
                .unwrap(),
        )),
        uplink: uplink.map(|url| {
            Uplink::new(UplinkConfig {
                url: url.into(),
                key: Some("test-key".into()),
                model: DEFAULT_DECODER.into(),
                timeout: Duration::from_secs(30),
            })
            .unwrap()
        }),
        skill_may_uplink: true,
    }
}

const ONLINE: DeviceState = DeviceState {
    network_up: true,
    battery_percent: Some(80),
};
const OUT_OF_SCOPE: &str = "how do i get red wine out of a couch cushion";

#[test]
fn in_scope_is_answered_locally_with_a_phrased_reply() {
    let a = pipeline(None)
        .answer("add this song to my workout playlist", ONLINE)
        .unwrap();
    let r = &a.answer.response;
    assert_eq!(r.intent, "AddToPlaylist");
    assert_eq!(a.verdict.decision, Decision::Local, "{}", a.verdict.reason);
    assert_eq!(r.path, AnswerPath::Local);
    let reply = r.reply.as_deref().unwrap();
    assert!(reply.len() > 5, "{reply:?}");
    eprintln!("phrased: {reply:?}");
    let stages: Vec<&str> = a.stages.iter().map(|t| t.stage.as_str()).collect();
    assert_eq!(stages, ["skill", "policy", "phrase"]);
}

#[test]
fn out_of_scope_goes_over_the_uplink_and_falls_back_when_it_is_down() {
    let server = start_server(
        &ServeConfig {
            listen: "127.0.0.1:0".into(),
            ..ServeConfig::default()
        },
        index(),
    );
    let url = format!("http://{}/v1", server.addr());
    let p = pipeline(Some(&url));
    let a = p.answer(OUT_OF_SCOPE, ONLINE).unwrap();
    let r = &a.answer.response;
    assert_eq!(r.intent, "oos", "confidence {}", r.confidence);
    assert_eq!(
        a.verdict.decision,
        Decision::Offload,
        "{}",
        a.verdict.reason
    );
    assert_eq!(r.path, AnswerPath::Offload, "{:?}", a.uplink_error);
    assert!(!r.reply.as_deref().unwrap().is_empty());
    assert!(a.stages.iter().any(|t| t.stage == "uplink"));

    // No network: the policy refuses rather than guess.
    let offline = DeviceState {
        network_up: false,
        ..ONLINE
    };
    let a = p.answer(OUT_OF_SCOPE, offline).unwrap();
    assert_eq!(a.verdict.decision, Decision::Reject);
    assert_eq!(a.answer.response.path, AnswerPath::Rejected);

    // The server is down (nothing listens on its port): the device answers itself and says
    // why.
    server.shutdown();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let a = pipeline(Some(&down)).answer(OUT_OF_SCOPE, ONLINE).unwrap();
    assert_eq!(a.verdict.decision, Decision::Offload);
    assert_eq!(a.answer.response.path, AnswerPath::Template);
    let why = a.uplink_error.as_deref().expect("the fallback says why");
    assert!(why.contains("unreachable"), "{why}");
    assert!(a
        .answer
        .response
        .reply
        .as_deref()
        .unwrap()
        .starts_with("Sorry"));
}
