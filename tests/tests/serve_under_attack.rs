//! `edgenlu serve` with two workers whose `/v1/nlu` answers through the hostile skill, under a
//! burst of the worst attack of each class from several clients at once: `/healthz` (and
//! `/metrics`) keep answering quickly throughout, every hostile request is answered within its
//! deadline plus a margin (queueing included), the process's memory stays within the budgets
//! of the requests running at once plus an overhead, and an honest request answers afterwards.

use edgenlu::bundled::{DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::Limits;
use edgenlu_device::router::Route;
use edgenlu_serve::{LivePipeline, ServeConfig, Server};
use edgenlu_tests::{
    build_snips_index_in, hostile_limits, hostile_route_spec, http_within, pipeline_over,
    proc_status_bytes, reset_peak_rss, runtime_over, scratch_store, serve,
};
use edgenlu_trust::skills::SkillStore;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The worst attack of each class (pure Wasm and host-call time, quadratic kernels, weight
/// rows, dequantized weights, guest and host memory, logs) and the status it must get: 503
/// for a budget (the deadline, memory), 400 for a call refused by its shape check before any
/// weight is read.
const BURST: &[(&str, u16)] = &[
    ("spin", 503),
    ("spin-kernels", 503),
    ("attention-quadratic", 503),
    ("attention-wide-heads", 503),
    ("attend-quadratic", 503),
    ("matmul-many-rows", 503),
    ("dequantize-add", 400),
    ("dequantize-matmul-x", 503),
    ("dequantize-attention-kv", 503),
    ("memory-bomb", 503),
    ("tensor-bomb", 503),
    ("huge-log", 503),
];
const ROUNDS: usize = 2;
const WORKERS: usize = 2;
/// Clients sending at once, each one request after another: at most two requests wait while
/// two run, so none waits for more than one request ahead of it.
const CLIENTS: usize = 4;
/// The hostile skill's deadline.
const DEADLINE: Duration = Duration::from_millis(500);
/// How far past its deadline one request may end: the epoch tick and scheduling on a busy
/// machine, the deadline checks inside host kernels, dropping the instance, and the router's
/// encoder and the policy around the skill.
const MARGIN: Duration = Duration::from_millis(750);
/// A request waits for at most one request ahead of it, then runs itself.
const ANSWERED_WITHIN: Duration = DEADLINE.saturating_add(MARGIN).saturating_mul(2);
/// The worst `/healthz` latency allowed during the burst.
const HEALTH_WITHIN: Duration = Duration::from_millis(100);
/// Memory besides the budgets of the requests running: each one's fresh instances and
/// allocator slack (hostile.rs sees up to 24 MiB a request), the router's encoder and the
/// policy, HTTP buffers and threads.
const RSS_OVERHEAD: usize = 48 << 20;

/// The most memory one request may hold under `limits`: its own linear memory, that of its
/// tokenizer component (same limits), and its host memory.
fn request_budget(limits: &Limits) -> usize {
    2 * limits.guest_memory + limits.host_memory
}

fn nlu(addr: SocketAddr, text: &str) -> (u16, Value, Duration) {
    let start = Instant::now();
    let (status, body) = http_within(
        addr,
        "POST",
        "/v1/nlu",
        json!({ "text": text }).to_string().as_bytes(),
        ANSWERED_WITHIN + Duration::from_secs(5),
    );
    let took = start.elapsed();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::Null),
        took,
    )
}

/// What the health poller saw.
#[derive(Default)]
struct Watch {
    polls: usize,
    worst_health: Duration,
    worst_metrics: Duration,
}

/// Polls `/healthz` every 20 ms (and `/metrics` every fifth time) until `stop`, keeping the
/// worst latencies.
fn watch(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Watch> {
    std::thread::spawn(move || {
        let mut w = Watch::default();
        while !stop.load(Ordering::SeqCst) {
            let path = if w.polls % 5 == 4 {
                "/metrics"
            } else {
                "/healthz"
            };
            let start = Instant::now();
            let (status, _) = http_within(addr, "GET", path, b"", Duration::from_secs(2));
            let took = start.elapsed();
            assert_eq!(status, 200, "{path}");
            let worst = if path == "/healthz" {
                &mut w.worst_health
            } else {
                &mut w.worst_metrics
            };
            *worst = (*worst).max(took);
            w.polls += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    })
}

/// The tests here measure time and the process's memory: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A server over `config` whose only route is the hostile skill (the router hands it every
/// utterance), over a tiny datastore in a scratch model store (`tag`), and that store's root
/// (to remove when done).
fn hostile_server(tag: &str, config: &ServeConfig) -> (Server, PathBuf) {
    let models = scratch_store(tag, &[DEFAULT_ENCODER, DEFAULT_DECODER]);
    let index = "serve-attack-snips";
    build_snips_index_in(&models, index, 2, "tests/serve_under_attack.rs");
    let root = models.root().to_path_buf();
    let rt = runtime_over(models);
    let spec = hostile_route_spec(index, hostile_limits(DEADLINE));
    let skill = Arc::new(rt.load_skill(spec).expect("loading the hostile skill"));
    let route = Route::new("hostile", skill, false, rt.catalog()).expect("a route");
    let skills = SkillStore::at(&root).expect("a skill store");
    let server = serve(
        config,
        LivePipeline::new(pipeline_over(vec![route]), skills, rt),
    );
    (server, root)
}

#[test]
fn a_burst_of_attacks_leaves_health_answering_and_every_request_answered_in_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = ServeConfig {
        listen: "127.0.0.1:0".into(),
        workers: WORKERS,
        ..ServeConfig::default()
    };
    let (server, root) = hostile_server("serve-attack", &config);
    let addr = server.addr();
    let ok = |when: &str| {
        let (status, v, _) = nlu(addr, "ok");
        assert_eq!(status, 200, "{when}: {v}");
        assert_eq!(v["response"]["intent"], "ok", "{when}: {v}");
    };
    ok("before the burst");

    // Warm-up: every attack once, so that caches, allocator pools and mapped weights are in
    // the baseline.
    for (attack, _) in BURST {
        nlu(addr, attack);
    }
    reset_peak_rss();
    let baseline = proc_status_bytes("VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(addr, stop.clone());
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                // Each client starts at another attack, so that different classes run at once.
                (0..BURST.len() * ROUNDS / CLIENTS)
                    .map(|i| {
                        let (attack, want) = BURST[(c * BURST.len() / CLIENTS + i) % BURST.len()];
                        let (status, v, took) = nlu(addr, attack);
                        (attack, want, status, v, took)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client"))
        .collect();
    let burst = start.elapsed();
    let peak_rss = proc_status_bytes("VmHWM");
    stop.store(true, Ordering::SeqCst);
    let seen = watcher.join().expect("the health poller");
    ok("after the burst");
    server.shutdown();
    let _ = std::fs::remove_dir_all(&root);

    let mut failures = Vec::new();
    for (attack, want, status, v, took) in &answers {
        let error = &v["error"];
        eprintln!(
            "{attack}: {status} {} in {took:?}",
            error["type"].as_str().unwrap_or("?")
        );
        if status != want || !error.is_object() {
            failures.push(format!("{attack}: expected {want}, got {status} {v}"));
        }
        if *took > ANSWERED_WITHIN {
            failures.push(format!(
                "{attack}: answered after {took:?} (bound {ANSWERED_WITHIN:?})"
            ));
        }
    }
    let slowest = answers.iter().map(|a| a.4).max().unwrap_or_default();
    let bound = baseline + WORKERS * request_budget(&hostile_limits(DEADLINE)) + RSS_OVERHEAD;
    eprintln!(
        "{} hostile requests in {burst:?} (slowest {slowest:?}, bound {ANSWERED_WITHIN:?}); \
         {} health polls, worst /healthz {:?}, worst /metrics {:?} (bound {HEALTH_WITHIN:?}); \
         RSS baseline {} MiB, peak {} MiB (bound {} MiB)",
        answers.len(),
        seen.polls,
        seen.worst_health,
        seen.worst_metrics,
        baseline >> 20,
        peak_rss >> 20,
        bound >> 20
    );
    assert_eq!(answers.len(), BURST.len() * ROUNDS);
    assert!(seen.polls > 10, "only {} health polls", seen.polls);
    if seen.worst_health.max(seen.worst_metrics) > HEALTH_WITHIN {
        failures.push(format!(
            "health or metrics took {:?}",
            seen.worst_health.max(seen.worst_metrics)
        ));
    }
    if peak_rss > bound {
        failures.push(format!(
            "RSS reached {} MiB (bound {} MiB)",
            peak_rss >> 20,
            bound >> 20
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A request that waited for a worker longer than `max_queue_wait` is answered 503 when a
/// worker takes it, not run: the queue adds at most that wait to a request's deadline.
#[test]
fn a_request_that_waited_too_long_for_a_worker_is_refused_not_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = ServeConfig {
        listen: "127.0.0.1:0".into(),
        workers: 1,
        max_queue_wait: Duration::from_millis(100),
        ..ServeConfig::default()
    };
    let (server, root) = hostile_server("serve-queue-wait", &config);
    let addr = server.addr();
    let spin = std::thread::spawn(move || nlu(addr, "spin"));
    // Time for the spin to reach the only worker.
    std::thread::sleep(Duration::from_millis(100));
    let (status, v, took) = nlu(addr, "ok");
    let (spin_status, _, spin_took) = spin.join().expect("the spinning client");
    eprintln!("spin: {spin_status} in {spin_took:?}; ok behind it: {status} in {took:?}");
    assert_eq!(spin_status, 503);
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("waited too long")),
        "{v}"
    );
    assert!(took <= ANSWERED_WITHIN, "answered after {took:?}");
    // With the worker free again, the same request runs.
    let (status, v, _) = nlu(addr, "ok");
    assert_eq!(status, 200, "{v}");
    server.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

/// A skill that answers something the host refuses at the boundary (here a NaN confidence) is
/// a 502 `invalid_skill_response`: the request was fine, the skill behind the server was not.
#[test]
fn a_skills_invalid_response_is_a_502() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = ServeConfig {
        listen: "127.0.0.1:0".into(),
        ..ServeConfig::default()
    };
    let (server, root) = hostile_server("serve-invalid-response", &config);
    let (status, v, _) = nlu(server.addr(), "nan-confidence");
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["type"], "invalid_skill_response", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("confidence")),
        "{v}"
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}
