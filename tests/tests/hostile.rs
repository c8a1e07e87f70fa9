//! The hostile-guest suite: every attack in `guest/hostile` ends in a typed error (or a trap
//! that discards the instance) within its deadline plus a margin, and the host goes on
//! serving: after each attack an honest request to the same skill still succeeds.
//!
//! The skill holds the MiniLM encoder and the SmolLM2 decoder, so the attacks cover the
//! decoder's kernels, the `kv-cache` resource and `llm` generations as well.

use edgenlu::bundled::{intents_skill, DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::{Limits, SkillError, WitError};
use edgenlu_tests::{hostile_limits, proc_status_bytes, require_model, runtime};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_millis(1000);

fn limits() -> Limits {
    hostile_limits(DEADLINE)
}

/// What an attack must end in.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Deadline,
    /// The deadline, seen either in Wasm (an epoch trap) or by a host call (its typed
    /// budget-exceeded error): which one depends on where the guest is when time runs out.
    DeadlineOrBudget,
    /// Not an attack on the host but a check of its contract: the skill answers this intent
    /// when the host behaved (and names what it saw otherwise).
    Answer(&'static str),
    Memory,
    Trap(&'static str),
    InvalidArgument,
    ShapeMismatch,
    NotAllowed,
    NotFound,
    BudgetExceeded,
    ResponseTooLarge,
    /// The response broke a boundary rule on this field (or a field under it).
    InvalidResponse(&'static str),
}

fn matches(expect: Expect, err: &SkillError) -> bool {
    use Expect as E;
    match (expect, err) {
        (E::Deadline | E::DeadlineOrBudget, SkillError::Deadline(_))
        | (E::DeadlineOrBudget, SkillError::Guest(WitError::BudgetExceeded(_)))
        | (E::Memory, SkillError::Memory(_)) => true,
        (E::Trap(what), SkillError::Trap(msg)) => msg.to_lowercase().contains(what),
        (E::InvalidArgument, SkillError::Guest(WitError::InvalidArgument(_)))
        | (E::ShapeMismatch, SkillError::Guest(WitError::ShapeMismatch(_)))
        | (E::NotAllowed, SkillError::Guest(WitError::NotAllowed(_)))
        | (E::NotFound, SkillError::Guest(WitError::NotFound(_)))
        | (E::BudgetExceeded, SkillError::Guest(WitError::BudgetExceeded(_)))
        | (E::ResponseTooLarge, SkillError::ResponseTooLarge { .. }) => true,
        (E::InvalidResponse(want), SkillError::InvalidResponse { field, .. }) => {
            field.starts_with(want)
        }
        _ => false,
    }
}

const ATTACKS: &[(&str, Expect)] = &[
    // time
    ("spin", Expect::Deadline),
    ("spin-host-calls", Expect::Deadline),
    ("spin-kernels", Expect::Deadline),
    ("spin-tokenize", Expect::Deadline),
    ("huge-log", Expect::Deadline),
    // guest memory and stack
    ("memory-bomb", Expect::Memory),
    // Rust keeps its stack in linear memory: overflowing it runs off the bottom.
    (
        "stack-overflow",
        Expect::Trap("out of bounds memory access"),
    ),
    // host memory and handles
    ("tensor-bomb", Expect::BudgetExceeded),
    ("handle-bomb", Expect::BudgetExceeded),
    ("model-handle-bomb", Expect::BudgetExceeded),
    ("weight-view-bomb", Expect::BudgetExceeded),
    ("huge-tensor", Expect::BudgetExceeded),
    // shapes, sizes, dtypes
    ("overflowing-shape", Expect::InvalidArgument),
    ("rank-5", Expect::InvalidArgument),
    ("zero-dim", Expect::InvalidArgument),
    ("shape-lies", Expect::ShapeMismatch),
    ("unsupported-dtype", Expect::InvalidArgument),
    ("dtype-mismatch", Expect::InvalidArgument),
    ("shape-mismatch", Expect::ShapeMismatch),
    ("output-aliases-input", Expect::InvalidArgument),
    ("write-to-weights", Expect::NotAllowed),
    ("bad-embed-ids", Expect::InvalidArgument),
    ("bad-attention-heads", Expect::InvalidArgument),
    ("mean-pool-too-many-rows", Expect::InvalidArgument),
    ("nan-argmax", Expect::InvalidArgument),
    ("read-out-of-range", Expect::InvalidArgument),
    ("read-everything", Expect::BudgetExceeded),
    ("write-overrun", Expect::InvalidArgument),
    ("huge-k", Expect::BudgetExceeded),
    // handles
    ("use-after-drop", Expect::Trap("handle")),
    ("forged-handle", Expect::Trap("handle")),
    ("model-handle-as-tensor", Expect::Trap("handle")),
    // models by granted name only
    ("ungranted-model", Expect::NotAllowed),
    ("path-model", Expect::NotAllowed),
    ("absolute-path-model", Expect::NotAllowed),
    ("missing-weight", Expect::NotFound),
    // sizes crossing the boundary
    ("huge-reply", Expect::ResponseTooLarge),
    ("huge-intent", Expect::ResponseTooLarge),
    ("many-slots", Expect::ResponseTooLarge),
    ("huge-tokenize-input", Expect::BudgetExceeded),
    // traps
    ("panic", Expect::Trap("unreachable")),
    ("unreachable", Expect::Trap("unreachable")),
    ("divide-by-zero", Expect::Trap("unreachable")),
    ("trap-mid-work", Expect::Trap("unreachable")),
    ("no-such-attack", Expect::InvalidArgument),
    // decoder kernels and the kv cache
    ("kv-cache-bomb", Expect::BudgetExceeded),
    ("kv-cache-overflow", Expect::InvalidArgument),
    ("rope-bad-args", Expect::InvalidArgument),
    ("decoder-kernel-args", Expect::InvalidArgument),
    // generations
    ("generation-too-many-tokens", Expect::BudgetExceeded),
    ("generation-context-overflow", Expect::InvalidArgument),
    ("generation-bad-ids", Expect::InvalidArgument),
    ("generation-bad-sampling", Expect::InvalidArgument),
    ("generation-many-stop-tokens", Expect::InvalidArgument),
    ("generation-on-encoder", Expect::InvalidArgument),
    ("generation-bomb", Expect::BudgetExceeded),
    // SmolLM2 ids the linked WordPiece tokenizer cannot decode
    ("generation-tokenizer-mismatch", Expect::InvalidArgument),
    ("trap-mid-generation", Expect::Trap("unreachable")),
    ("generation-deadline", Expect::DeadlineOrBudget),
    ("generation-after-drop", Expect::Trap("handle")),
    ("generation-as-model", Expect::Trap("handle")),
    ("next-after-cancel", Expect::Answer("none-after-cancel")),
    ("generation-zero-tokens", Expect::Answer("length")),
    // host memory comes back when a kv cache or a generation is dropped
    ("budget-released-on-drop", Expect::Answer("released")),
    // work inside one call: quadratic kernels stop at the deadline, not when done
    ("attention-quadratic", Expect::DeadlineOrBudget),
    ("attention-wide-heads", Expect::DeadlineOrBudget),
    ("attend-quadratic", Expect::DeadlineOrBudget),
    ("matmul-many-rows", Expect::DeadlineOrBudget),
    // weights read as f32: refused by shape before any read, or charged before expanded
    ("dequantize-add", Expect::ShapeMismatch),
    ("dequantize-rms-norm", Expect::ShapeMismatch),
    ("dequantize-mean-pool", Expect::BudgetExceeded),
    ("dequantize-matmul-x", Expect::BudgetExceeded),
    ("dequantize-attention-kv", Expect::BudgetExceeded),
    ("dequantize-argmax", Expect::BudgetExceeded),
    ("dequantize-charge-released", Expect::Answer("released")),
    // the boundary: log lines are escaped and rate-limited (the guest cannot tell; what the
    // log shows is checked in guest_log.rs), responses are checked before anyone sees them
    ("log-forge-newline", Expect::Answer("logged")),
    ("log-controls", Expect::Answer("logged")),
    ("log-flood", Expect::Answer("flooded")),
    ("nan-confidence", Expect::InvalidResponse("confidence")),
    (
        "confidence-above-one",
        Expect::InvalidResponse("confidence"),
    ),
    ("control-intent", Expect::InvalidResponse("intent")),
    ("long-intent", Expect::InvalidResponse("intent")),
    (
        "invalid-slot-name",
        Expect::InvalidResponse("slots[0].name"),
    ),
    ("slot-span-reversed", Expect::InvalidResponse("slots[0]")),
    ("slot-span-past-text", Expect::InvalidResponse("slots[0]")),
    (
        "slot-span-mid-char café",
        Expect::InvalidResponse("slots[0]"),
    ),
    ("slot-value-lies", Expect::InvalidResponse("slots[0]")),
    ("reply-controls", Expect::InvalidResponse("reply")),
    ("claims-offload", Expect::InvalidResponse("path")),
];

#[test]
fn every_attack_ends_in_its_typed_error_in_time_and_the_host_goes_on() {
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let rt = runtime();
    let hostile = edgenlu_tests::load_hostile(&rt, limits());
    assert_eq!(
        hostile
            .handle("ok")
            .expect("an honest request")
            .response
            .intent,
        "ok"
    );
    let mut failures = Vec::new();
    for &(attack, expect) in ATTACKS {
        let start = Instant::now();
        let result = hostile.handle(attack);
        let took = start.elapsed();
        match (result, expect) {
            (Ok(answer), Expect::Answer(intent)) if answer.response.intent == intent => {}
            (Ok(answer), _) => failures.push(format!(
                "{attack}: succeeded ({:?})",
                answer.response.intent
            )),
            (Err(e), _) if !matches(expect, &e) => {
                failures.push(format!("{attack}: expected {expect:?}, got {e}"))
            }
            (Err(_), _) => {}
        }
        if matches!(expect, Expect::Deadline | Expect::DeadlineOrBudget) {
            eprintln!("{attack}: ended {took:?} after it started (deadline {DEADLINE:?})");
        }
        // A hang guard, not a speed assertion: generous against a busy machine.
        if took > DEADLINE + Duration::from_secs(3) {
            failures.push(format!("{attack}: took {took:?}"));
        }
        match hostile.handle("ok") {
            Ok(a) if a.response.intent == "ok" => {}
            other => failures.push(format!(
                "after {attack}, an honest request failed: {other:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} attacks misbehaved:\n{}",
        failures.len(),
        ATTACKS.len(),
        failures.join("\n")
    );
    // Other skills on the same runtime are unaffected.
    let intents = rt
        .load_skill(intents_skill(DEFAULT_ENCODER, None, Limits::default()))
        .unwrap();
    assert_eq!(intents.embed("play some jazz").unwrap().len(), 384);
}

#[test]
fn a_long_prefill_under_a_large_memory_budget_stops_at_the_deadline() {
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let rt = runtime();
    // Room for a kv cache of the whole context (~370 MiB for SmolLM2), so only the deadline
    // can stop the prefill of ~8,000 tokens.
    let limits = Limits {
        host_memory: 1 << 30,
        ..limits()
    };
    let hostile = edgenlu_tests::load_hostile(&rt, limits);
    let start = Instant::now();
    let result = hostile.handle("generation-long-prompt");
    let took = start.elapsed();
    match &result {
        Err(e) if matches(Expect::DeadlineOrBudget, e) => {}
        other => panic!("expected the deadline, got {other:?}"),
    }
    assert!(
        took <= DEADLINE + Duration::from_secs(3),
        "the prefill ran {took:?} against a deadline of {DEADLINE:?}"
    );
    eprintln!(
        "generation-long-prompt ended after {took:?}: {}",
        result.unwrap_err()
    );
    assert_eq!(hostile.handle("ok").unwrap().response.intent, "ok");
}

fn rss_bytes() -> usize {
    proc_status_bytes("VmRSS")
}

#[test]
fn ten_thousand_hostile_requests_leave_rss_near_baseline() {
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let rt = runtime();
    let limits = Limits {
        guest_memory: 8 << 20,
        host_memory: 8 << 20,
        handles: 128,
        ..limits()
    };
    let hostile = edgenlu_tests::load_hostile(&rt, limits);
    // Quick attacks only: the ones that wait for a deadline would take an hour at 10,000.
    // (Generations that trap or are refused midway stay in: their caches must not pile up.)
    let quick: Vec<&str> = ATTACKS
        .iter()
        .filter(|(_, e)| {
            !matches!(
                e,
                Expect::Deadline | Expect::DeadlineOrBudget | Expect::Answer(_)
            )
        })
        .map(|(a, _)| *a)
        .collect();
    let run = |n: usize| {
        for i in 0..n {
            assert!(hostile.handle(quick[i % quick.len()]).is_err());
        }
    };
    run(quick.len() * 4); // warm-up: caches, allocator pools, mapped model pages
    let baseline = rss_bytes();
    run(10_000);
    let after = rss_bytes();
    eprintln!(
        "RSS baseline {} MiB, after 10,000 hostile requests {} MiB",
        baseline >> 20,
        after >> 20
    );
    assert!(
        after <= baseline + (32 << 20),
        "RSS grew from {} MiB to {} MiB",
        baseline >> 20,
        after >> 20
    );
    assert_eq!(hostile.handle("ok").unwrap().response.intent, "ok");
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
        matches!(&err, SkillError::Guest(WitError::NotAllowed(m)) if m.contains(DEFAULT_ENCODER)),
        "expected not-allowed, got: {err}"
    );
}
