//! A hostile request's peak memory: under the default budgets a third party's manifest would
//! leave, each memory attack of `guest/hostile` peaks within the skill's guest and host
//! budgets plus a stated overhead. Its own test binary, so that the process's peak RSS
//! (`VmHWM`) is this test's alone.

use edgenlu::bundled::{DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::Limits;
use edgenlu_tests::{proc_status_bytes, require_model, reset_peak_rss, runtime};
use std::time::Duration;

/// Host memory beyond the budgets one request may add at its peak: a fresh instance (its
/// tables, its linked tokenizer's instance) and the allocator's slack.
const REQUEST_OVERHEAD: usize = 24 << 20;

#[test]
fn memory_attacks_peak_within_the_budgets_plus_a_stated_overhead() {
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let rt = runtime();
    // The default budgets, as a third party's manifest would leave them.
    let limits = Limits {
        deadline: Duration::from_secs(2),
        ..Limits::default()
    };
    let budget = limits.guest_memory + limits.host_memory;
    let hostile = edgenlu_tests::load_hostile(&rt, limits);
    let attacks = [
        "memory-bomb",
        "tensor-bomb",
        "kv-cache-bomb",
        "dequantize-mean-pool",
        "dequantize-matmul-x",
        "dequantize-attention-kv",
        "dequantize-argmax",
        "attention-quadratic",
        "attend-quadratic",
    ];
    // Once each first, so the model pages they read are resident before measuring.
    for attack in attacks {
        let _ = hostile.handle(attack);
    }
    let mut worst = 0;
    for attack in attacks {
        reset_peak_rss();
        let before = proc_status_bytes("VmRSS");
        let result = hostile.handle(attack);
        let peak = proc_status_bytes("VmHWM").saturating_sub(before);
        eprintln!(
            "{attack}: peak +{} MiB ({})",
            peak >> 20,
            result.err().map_or("answered".into(), |e| e.to_string())
        );
        worst = worst.max(peak);
    }
    eprintln!(
        "worst peak +{} MiB against budgets of {} MiB + {} MiB overhead",
        worst >> 20,
        budget >> 20,
        REQUEST_OVERHEAD >> 20
    );
    assert!(
        worst <= budget + REQUEST_OVERHEAD,
        "a request peaked at +{} MiB",
        worst >> 20
    );
}
