//! How late a pure Wasm loop is stopped on a loaded machine: the hostile skill's `spin`
//! attack (a loop with no host calls, so only the epoch interruption can stop it) runs under a
//! deadline while busy threads keep every core occupied, and the example prints how far past
//! the deadline each request ended.
//!
//! cargo run --release -p edgenlu --example deadline_overrun -- [TRIALS] [DEADLINE_MS] [BUSY_THREADS]
//!
//! Defaults: 20 trials of a 1500 ms deadline with 4 busy threads.

use edgenlu::bundled::{hostile_skill, DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::{Limits, ModelCatalog, Runtime, SkillError};
use edgenlu_models::store::ModelStore;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("a whole number"))
        .unwrap_or(default)
}

/// Threads that spin until `stop`, to keep every core busy.
fn busy_threads(n: u64, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1_000_000 {
                        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                }
            })
        })
        .collect()
}

/// The `q`-quantile of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (trials, deadline_ms, busy) = (arg(1, 20), arg(2, 1500), arg(3, 4));
    let deadline = Duration::from_millis(deadline_ms);
    let store = ModelStore::open_default()?;
    let cache = store.root().join("cache/components");
    let runtime = Runtime::new(ModelCatalog::new(store), Some(cache))?;
    let limits = Limits {
        deadline,
        ..Limits::default()
    };
    let skill = runtime.load_skill(hostile_skill(DEFAULT_ENCODER, DEFAULT_DECODER, limits))?;
    assert_eq!(skill.handle("ok")?.response.intent, "ok");

    let stop = Arc::new(AtomicBool::new(false));
    let load = busy_threads(busy, &stop);
    let mut overruns = Vec::new();
    for i in 0..trials {
        let start = Instant::now();
        let result = skill.handle("spin");
        let took = start.elapsed();
        match result {
            Err(SkillError::Deadline(_)) => {}
            other => panic!("spin ended otherwise: {other:?}"),
        }
        let overrun = took.saturating_sub(deadline);
        println!("trial {i}: {took:?}, overrun {overrun:?}");
        overruns.push(overrun);
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    overruns.sort();
    println!(
        "spin under a {deadline_ms} ms deadline, {busy} busy threads on {} cores, {trials} trials: \
         overrun median {:?}, p99 {:?}, max {:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        quantile(&overruns, 0.5),
        quantile(&overruns, 0.99),
        overruns[overruns.len() - 1],
    );
    Ok(())
}
