//! The device pipeline end to end: an in-scope utterance answered locally with a phrased reply,
//! a skill's own reply kept as it is, an out-of-scope one offloaded over loopback to a real
//! server (`edgenlu serve`'s), the server down → a local answer that says why, and no network →
//! a refusal. The router: several skills, each answering from the encoding the router made
//! exactly as it would alone, and the uplink only for a skill whose signed manifest grants it.

use edgenlu::bundled::{self, DEFAULT_DECODER, DEFAULT_ENCODER, DEFAULT_INDEX};
use edgenlu::{AnswerPath, Decision, Skill};
use edgenlu_device::pipeline::{DeviceState, Pipeline};
use edgenlu_device::router::{Route, Router, RouterError};
use edgenlu_device::uplink::{Uplink, UplinkConfig};
use edgenlu_serve::ServeConfig;
use edgenlu_tests::{
    build_skill_data, datasets_dir, domain_indexes, intents, require_model, runtime, start_server,
};
use edgenlu_train::datastore;
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
        build_skill_data(name, &train, Some(&val));
        name
    })
}

/// The bundled intents skill answering from datastore `index`.
fn skill(index: &str) -> Arc<Skill> {
    intents(Some(index))
}

/// The skill that embeds for the router (no datastore).
fn embedder() -> Arc<Skill> {
    intents(None)
}

fn uplink_to(url: &str) -> Uplink {
    Uplink::new(UplinkConfig {
        url: url.into(),
        key: Some("test-key".into()),
        model: DEFAULT_DECODER.into(),
        timeout: Duration::from_secs(30),
    })
    .unwrap()
}

/// The pipeline over `routes`, phrasing with SmolLM2, uplinked to `uplink` if given.
fn pipeline_over(routes: Vec<Route>, uplink: Option<&str>) -> Pipeline {
    require_model(DEFAULT_DECODER);
    Pipeline {
        phraser: Some(Arc::new(
            runtime()
                .load_skill(bundled::chat_skill(DEFAULT_DECODER, bundled::chat_limits()))
                .unwrap(),
        )),
        uplink: uplink.map(uplink_to),
        ..edgenlu_tests::pipeline_over(routes)
    }
}

/// One skill (the vendor's own, which may use the uplink) over the SNIPS datastore.
fn pipeline(uplink: Option<&str>) -> Pipeline {
    let route = Route::new("intents", skill(index()), true, runtime().catalog()).unwrap();
    pipeline_over(vec![route], uplink)
}

/// A real `edgenlu serve` on a free loopback port, and its OpenAI base URL.
fn loopback_uplink() -> (edgenlu_serve::Server, String) {
    let server = start_server(
        &ServeConfig {
            listen: "127.0.0.1:0".into(),
            ..ServeConfig::default()
        },
        index(),
    );
    let url = format!("http://{}/v1", server.addr());
    (server, url)
}

const ONLINE: DeviceState = DeviceState {
    network_up: true,
    battery_percent: Some(80),
};
const OUT_OF_SCOPE: &str = "how do i get red wine out of a couch cushion";

#[test]
fn gibberish_and_foreign_requests_are_refused_by_the_default_pipeline() {
    edgenlu_tests::default_index();
    let route = Route::new(
        DEFAULT_INDEX,
        skill(DEFAULT_INDEX),
        true,
        runtime().catalog(),
    )
    .unwrap();
    let p = edgenlu_tests::pipeline_over(vec![route]);
    for text in ["asdkjh qwe", "what is my credit score"] {
        let a = p.answer(text, ONLINE).unwrap();
        assert_eq!(
            a.verdict.decision,
            Decision::Reject,
            "{text:?}: {:?}",
            a.verdict
        );
        assert_eq!(a.answer.response.path, AnswerPath::Rejected);
    }
    let a = p
        .answer("add this song to my workout playlist", ONLINE)
        .unwrap();
    assert_eq!(a.verdict.decision, Decision::Local, "{:?}", a.verdict);
}

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
    assert_eq!(
        stages,
        ["tokenize", "embed", "search", "head", "policy", "phrase"]
    );
    assert_eq!(a.skill, "intents");
    assert!((0.0..0.5).contains(&a.out_of_scope), "{}", a.out_of_scope);
}

#[test]
fn a_local_answer_keeps_the_skills_own_reply_and_phrases_only_a_skill_without_one() {
    let rt = runtime();
    let spec = edgenlu_tests::hostile_route_spec(
        edgenlu_tests::tiny_index(),
        edgenlu_tests::hostile_limits(Duration::from_secs(10)),
    );
    let hostile = Arc::new(rt.load_skill(spec).unwrap());
    let route = || Route::new("hostile", hostile.clone(), false, rt.catalog()).unwrap();
    // Nothing the hostile skill is asked is near the SNIPS examples: let every sure answer
    // stay local.
    let policy = bundled::default_policy([("max-out-of-scope".into(), "1".into())].into());
    let policy = edgenlu::policy::Policy::load(&rt, &policy.unwrap()).unwrap();
    let stages = |a: &edgenlu_device::pipeline::PipelineAnswer| -> Vec<String> {
        a.stages.iter().map(|t| t.stage.clone()).collect()
    };

    // With a phraser configured, the skill's own reply is kept and nothing is phrased.
    let phrasing = Pipeline {
        policy: policy.clone(),
        ..pipeline_over(vec![route()], None)
    };
    let a = phrasing
        .answer("own-reply Your timer is set for ten minutes.", ONLINE)
        .unwrap();
    assert_eq!(a.verdict.decision, Decision::Local, "{}", a.verdict.reason);
    let r = &a.answer.response;
    assert_eq!(r.intent, "replied");
    assert_eq!(
        r.reply.as_deref(),
        Some("Your timer is set for ten minutes.")
    );
    assert_eq!(r.path, AnswerPath::Local);
    assert!(a.template_reason.is_none(), "{:?}", a.template_reason);
    assert!(!a.phrased());
    assert_eq!(
        stages(&a),
        [
            "tokenize",
            "embed",
            "search",
            "head",
            "policy",
            "skill-reply"
        ]
    );

    // A skill that gives no reply still gets the template when nothing phrases.
    let templated = Pipeline {
        policy,
        ..edgenlu_tests::pipeline_over(vec![route()])
    };
    let a = templated.answer("ok", ONLINE).unwrap();
    assert_eq!(a.verdict.decision, Decision::Local, "{}", a.verdict.reason);
    assert_eq!(a.answer.response.path, AnswerPath::Template);
    assert_eq!(a.answer.response.reply.as_deref(), Some("OK: ok."));
    assert_eq!(
        stages(&a),
        ["tokenize", "embed", "search", "head", "policy", "template"]
    );
}

#[test]
fn out_of_scope_goes_over_the_uplink_and_falls_back_when_it_is_down() {
    let (server, url) = loopback_uplink();
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

#[test]
fn the_router_picks_the_nearest_skill_which_answers_from_the_shared_encoding_as_it_would_alone() {
    let [music, weather] = domain_indexes();
    let rt = runtime();
    let routes = vec![
        Route::new("music", skill(music), false, rt.catalog()).unwrap(),
        Route::new("weather", skill(weather), false, rt.catalog()).unwrap(),
    ];
    let router = Router::new(DEFAULT_ENCODER, embedder(), routes).unwrap();
    for (text, skill_name, intent) in [
        ("play the latest album by adele", "music", "PlayMusic"),
        (
            "add this tune to my evening chill playlist",
            "music",
            "AddToPlaylist",
        ),
        ("will it snow in chicago tomorrow", "weather", "GetWeather"),
        (
            "book a table for four at a sushi bar tonight",
            "weather",
            "BookRestaurant",
        ),
    ] {
        let routed = router.route(text).unwrap();
        assert_eq!(routed.route.name, skill_name, "{text}");
        assert!(
            (0.0..=1.0).contains(&routed.out_of_scope),
            "{}",
            routed.out_of_scope
        );
        let route = routed.route;
        let shared = route.answer(text, routed.encoded).unwrap().response;
        let alone = route.skill.handle(text).unwrap().response;
        assert_eq!(shared.intent, intent, "{text}");
        assert_eq!(shared.intent, alone.intent);
        assert!(
            (shared.confidence - alone.confidence).abs() < 1e-6,
            "{} vs {}",
            shared.confidence,
            alone.confidence
        );
        assert_eq!(
            format!("{:?}", shared.slots),
            format!("{:?}", alone.slots),
            "{text}"
        );
    }
    // An utterance unlike anything either skill knows is farther from both.
    let near = router.route("play some jazz").unwrap().out_of_scope;
    let far = router.route(OUT_OF_SCOPE).unwrap().out_of_scope;
    assert!(far > near + 0.1, "out-of-scope score {far} vs {near}");
}

#[test]
fn the_router_refuses_skills_it_cannot_serve_and_a_skill_refuses_an_encoding_that_does_not_fit() {
    let [music, _] = domain_indexes();
    let rt = runtime();
    let route = || Route::new("music", skill(music), false, rt.catalog()).unwrap();
    // Another encoder's embeddings are not comparable with this skill's examples.
    let err = Router::new("some-other-encoder", embedder(), vec![route()])
        .err()
        .expect("an encoder mismatch is refused");
    assert!(matches!(err, RouterError::EncoderMismatch { .. }), "{err}");
    let err = Router::new(DEFAULT_ENCODER, embedder(), vec![route(), route()])
        .err()
        .expect("two skills of one name are refused");
    assert!(matches!(err, RouterError::DuplicateName(_)), "{err}");
    assert!(matches!(
        Router::new(DEFAULT_ENCODER, embedder(), vec![]),
        Err(RouterError::NoSkills)
    ));
    // A skill without a datastore cannot be routed to.
    let err = Route::new("bare", embedder(), false, rt.catalog())
        .err()
        .expect("no datastore, no route");
    assert!(
        matches!(err, RouterError::MissingConfig { key: "index", .. }),
        "{err}"
    );

    // An encoding that does not fit the text or its own shape is a typed error, not a trap.
    let r = route();
    let text = "play some jazz";
    let good = embedder().encode(text).unwrap();
    let mut short = good.clone();
    short.states.pop();
    let mut outside = good.clone();
    outside.tokens[1].end = 1000;
    for bad in [short, outside] {
        let err = r.answer(text, bad).expect_err("a bad encoding is refused");
        assert!(
            matches!(
                err,
                edgenlu::SkillError::Guest(edgenlu::WitError::InvalidArgument(_))
            ),
            "{err}"
        );
    }
    assert_eq!(r.answer(text, good).unwrap().response.intent, "PlayMusic");
}

#[test]
fn only_an_installed_skill_whose_manifest_grants_the_uplink_may_offload() {
    use edgenlu_trust::{dev, skills::SkillStore, unix_now};
    let (server, url) = loopback_uplink();
    let dir = std::env::temp_dir().join(format!("edgenlu-router-uplink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let skills = SkillStore::at(&dir).unwrap();
    dev::trust_dev(skills.trust(), unix_now()).unwrap();
    let rt = runtime();
    for (name, capabilities) in [
        ("grounded", vec![]),
        (
            "connected",
            vec![edgenlu_trust::manifest::Capability::Uplink],
        ),
    ] {
        let mut manifest = dev::intents_manifest(DEFAULT_ENCODER, index(), 1);
        manifest.name = name.into();
        manifest.capabilities = capabilities;
        skills
            .install(
                &edgenlu_device::installed::signed_intents(&manifest).unwrap(),
                unix_now(),
            )
            .unwrap();
    }
    let mut decided = Vec::new();
    for name in ["grounded", "connected"] {
        let route = Route::installed(&skills, &rt, name).unwrap();
        assert_eq!(route.may_uplink, name == "connected");
        let a = pipeline_over(vec![route], Some(&url))
            .answer(OUT_OF_SCOPE, ONLINE)
            .unwrap();
        assert_eq!(a.skill, name);
        decided.push((a.verdict.decision, a.answer.response.path));
    }
    assert_eq!(
        decided,
        [
            (Decision::Reject, AnswerPath::Rejected),
            (Decision::Offload, AnswerPath::Offload)
        ]
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
