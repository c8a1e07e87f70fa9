//! The vendor's policy component decides local, offload or reject from typed signals: the
//! default policy's rules, the same component configured differently, and a component that
//! wants more than a policy may import refused at load.

use edgenlu::bundled::{self, default_policy};
use edgenlu::policy::Policy;
use edgenlu::{ComponentSpec, Decision, Signals};
use edgenlu_tests::runtime;
use std::collections::BTreeMap;

fn signals(intent: &str, confidence: f32) -> Signals {
    Signals {
        skill: "intents".into(),
        intent: intent.into(),
        confidence,
        out_of_scope: 0.1,
        utterance_chars: 24,
        network_up: true,
        battery_percent: Some(80),
        uplink_allowed: true,
    }
}

fn policy(config: &[(&str, &str)]) -> Policy {
    let config: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Policy::load(
        &runtime(),
        &default_policy(config).expect("a valid policy config"),
    )
    .expect("loading the default policy")
}

/// The default policy, unconfigured.
fn p0() -> Policy {
    policy(&[])
}

fn decide(p: &Policy, s: Signals) -> (Decision, String) {
    let v = p.decide(&s).expect("the policy decides");
    (v.decision, v.reason)
}

#[test]
fn default_policy_keeps_sure_answers_local_and_offloads_the_rest_when_it_can() {
    let p = policy(&[]);
    let (d, why) = decide(&p, signals("PlayMusic", 0.93));
    assert_eq!(d, Decision::Local, "{why}");
    assert!(why.contains("0.93"), "{why}");

    assert_eq!(decide(&p, signals("PlayMusic", 0.31)).0, Decision::Offload);
    assert_eq!(decide(&p, signals("oos", 0.2)).0, Decision::Offload);

    // No way out: unsure in-scope answers stay local, out-of-scope ones are refused.
    for (tweak, blocked) in [
        (
            (|s: &mut Signals| s.network_up = false) as fn(&mut Signals),
            "network down",
        ),
        (|s: &mut Signals| s.uplink_allowed = false, "no uplink"),
        (|s: &mut Signals| s.battery_percent = Some(5), "battery low"),
    ] {
        let mut unsure = signals("PlayMusic", 0.31);
        tweak(&mut unsure);
        let (d, why) = decide(&p, unsure);
        assert_eq!(d, Decision::Local, "{why}");
        assert!(why.contains(blocked), "{why}");
        let mut oos = signals("oos", 0.2);
        tweak(&mut oos);
        assert_eq!(decide(&p, oos).0, Decision::Reject);
    }
    // On mains power the battery never blocks.
    let mut mains = signals("oos", 0.2);
    mains.battery_percent = None;
    assert_eq!(decide(&p, mains).0, Decision::Offload);

    let mut long = signals("PlayMusic", 0.99);
    long.utterance_chars = 5000;
    assert_eq!(decide(&p, long).0, Decision::Reject);
}

#[test]
fn default_policy_refuses_what_is_far_from_every_skills_examples() {
    let p = p0();
    let far = |out_of_scope: f32| Signals {
        out_of_scope,
        uplink_allowed: false,
        ..signals("PlayMusic", 0.96)
    };
    let (d, why) = decide(&p, far(0.7));
    assert_eq!(d, Decision::Reject, "{why}");
    assert!(why.contains("out of scope"), "{why}");
    assert_eq!(decide(&p, far(0.3)).0, Decision::Local);
    // A vendor can switch it off.
    let off = policy(&[("max-out-of-scope", "1")]);
    assert_eq!(decide(&off, far(0.7)).0, Decision::Local);
}

#[test]
fn the_same_component_configured_by_another_vendor_decides_differently() {
    let strict = policy(&[("min-confidence", "0.95"), ("max-chars", "20")]);
    let mut short = signals("PlayMusic", 0.93);
    short.utterance_chars = 12;
    assert_eq!(decide(&strict, short).0, Decision::Offload);
    let mut long = signals("PlayMusic", 0.99);
    long.utterance_chars = 21;
    assert_eq!(decide(&strict, long).0, Decision::Reject);
    // A vendor that trusts the router's distance more than the default does: a confident
    // answer this far from every skill's examples is treated as out of scope.
    let wary = policy(&[("max-out-of-scope", "0.4")]);
    let mut far = signals("PlayMusic", 0.99);
    far.out_of_scope = 0.5;
    assert_eq!(decide(&p0(), far.clone()).0, Decision::Local);
    let (d, why) = decide(&wary, far.clone());
    assert_eq!(d, Decision::Offload, "{why}");
    assert!(why.contains("0.50"), "{why}");
    far.network_up = false;
    assert_eq!(decide(&wary, far).0, Decision::Reject);
    // The host refuses a value that is not a number; a policy handed one anyway (a vendor's
    // own embedding of it) falls back to the default and still decides.
    let high: BTreeMap<String, String> = [("min-confidence".into(), "high".into())].into();
    assert!(default_policy(high.clone()).is_err());
    let mut spec = default_policy(BTreeMap::new()).unwrap();
    spec.grants.config = high;
    let sloppy = Policy::load(&runtime(), &spec).unwrap();
    assert_eq!(
        decide(&sloppy, signals("PlayMusic", 0.6)).0,
        Decision::Local
    );
}

#[test]
fn a_component_that_is_not_a_policy_is_refused_at_load() {
    let not_a_policy = ComponentSpec {
        source: bundled::embedded(bundled::components::TOKENIZER_WORDPIECE),
        ..default_policy(BTreeMap::new()).unwrap()
    };
    let err = Policy::load(&runtime(), &not_a_policy)
        .err()
        .expect("a tokenizer is not a policy");
    // The policy world links only config and log: a component wanting models is refused.
    assert!(matches!(err, edgenlu::SkillError::Load { .. }), "{err}");
    assert!(
        err.to_string().contains("edgenlu:nlu/models"),
        "the error names what is missing: {err}"
    );
}
