//! Hostile guests are stopped with a clear, typed error, and the host goes on serving.

use edgenlu::bundled::{intents_skill, paths, test_guest, DEFAULT_ENCODER};
use edgenlu::{Limits, SkillError};
use edgenlu_tests::{require_model, runtime};
use std::time::{Duration, Instant};

#[test]
fn a_guest_that_loops_forever_is_stopped_at_its_deadline_and_the_host_goes_on() {
    require_model(DEFAULT_ENCODER);
    let rt = runtime();
    let limits = Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    let spin = rt
        .load_skill(test_guest(paths::HOSTILE_SPIN, limits))
        .unwrap();
    for _ in 0..2 {
        // Twice: a trapped instance must not poison the next request to the same skill.
        let start = Instant::now();
        let err = spin.handle("hello").unwrap_err();
        assert!(
            matches!(err, SkillError::Deadline(200)),
            "expected a deadline error, got: {err}"
        );
        // A hang guard, not a speed assertion: the epoch stops it long before this.
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the spinning guest was not stopped"
        );
    }
    let intents = rt
        .load_skill(intents_skill(DEFAULT_ENCODER, None, Limits::default()))
        .unwrap();
    let embedding = intents
        .embed("play some jazz")
        .expect("the host still serves other skills");
    assert_eq!(embedding.len(), 384);
}

#[test]
fn a_guest_that_allocates_past_its_memory_budget_is_stopped_and_the_host_goes_on() {
    require_model(DEFAULT_ENCODER);
    let rt = runtime();
    let limits = Limits {
        guest_memory: 16 << 20,
        ..Limits::default()
    };
    let hog = rt
        .load_skill(test_guest(paths::HOSTILE_MEMORY, limits))
        .unwrap();
    for _ in 0..2 {
        let err = hog.handle("hello").unwrap_err();
        assert!(
            matches!(err, SkillError::Memory(n) if n == 16 << 20),
            "expected a memory error, got: {err}"
        );
    }
    let intents = rt
        .load_skill(intents_skill(DEFAULT_ENCODER, None, Limits::default()))
        .unwrap();
    assert_eq!(intents.embed("book a table for two").unwrap().len(), 384);
}

#[test]
fn a_skill_cannot_open_a_model_it_was_not_granted() {
    require_model(DEFAULT_ENCODER);
    let rt = runtime();
    // The skill's config names the encoder, but its grants omit it.
    let mut spec = intents_skill(DEFAULT_ENCODER, None, Limits::default());
    spec.skill.grants.models.clear();
    let err = rt.load_skill(spec).unwrap().embed("hello").unwrap_err();
    assert!(
        matches!(&err, SkillError::Guest(edgenlu::WitError::NotAllowed(m)) if m.contains(DEFAULT_ENCODER)),
        "expected not-allowed, got: {err}"
    );
}
