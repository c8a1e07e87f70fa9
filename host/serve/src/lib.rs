//! `edgenlu serve`: the device daemon. An HTTP/1.1 server (tiny_http) with the skill API
//! (`POST /v1/nlu`), OpenAI-compatible `POST /v1/embeddings` and `POST /v1/chat/completions`
//! (server-sent events with `stream: true`), `GET /v1/models`, `GET /healthz` and
//! `GET /metrics`.
//!
//! One accept thread hands requests to a bounded queue served by a fixed pool of workers; a
//! full queue is answered at once with 503, and so is a request that waited in it longer than
//! [`ServeConfig::max_queue_wait`]. `GET /healthz` and `GET /metrics` never enter the queue:
//! each is answered on a short-lived thread of its own, so no skill request can hold them up.
//! Skills are compiled and linked once at start
//! ([`edgenlu::Skill`] keeps an `InstancePre`), and every request still gets a fresh instance
//! with its own memory, handles and deadline, so a hostile request cannot touch the next.
//! `/v1/nlu` answers through the device pipeline ([`edgenlu_device::pipeline::Pipeline`]: router over
//! the skills, vendor policy, template, phrasing or uplink); its installed skills follow the
//! skill store between requests ([`LivePipeline`]): installing a new version swaps it in while
//! requests in flight finish on the old. [`Server::shutdown`] stops accepting and drains the
//! queue.

mod live;
mod metrics;
mod routes;

pub use live::LivePipeline;

use edgenlu::Skill;
use edgenlu_device::pipeline::DeviceState;
use metrics::Metrics;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub listen: String,
    /// Worker threads answering requests.
    pub workers: usize,
    /// Requests that may wait for a worker; past that, 503.
    pub queue: usize,
    /// Largest request body, bytes; past that, 413.
    pub max_body: usize,
    /// Longest a request may wait in the queue for a worker; a worker answers one that waited
    /// longer with 503 instead of running it. A request is thus answered within this wait
    /// plus its skill's deadline (and the margin by which a skill overruns it).
    pub max_queue_wait: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            workers: 2,
            queue: 16,
            max_body: 1 << 20,
            max_queue_wait: Duration::from_secs(5),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        reason: String,
    },
}

/// What a server answers with.
pub struct Skills {
    /// Answers `/v1/nlu` (router, skills, policy, phrasing or uplink); its router's embedder
    /// embeds for `/v1/embeddings`.
    pub nlu: LivePipeline,
    /// The device's state as the policy sees it, unless a request says otherwise.
    pub device: DeviceState,
    /// Generates for `/v1/chat/completions`.
    pub chat: Arc<Skill>,
    /// Name of the decoder the chat skill runs (reported as the chat model).
    pub decoder: String,
}

/// Shared by the accept thread and the workers.
struct Shared {
    skills: Skills,
    metrics: Metrics,
    max_body: usize,
    max_queue_wait: Duration,
    /// Threads answering aside ([`answer_aside`]) now.
    aside: AtomicUsize,
}

/// Most threads answering aside at once; past that the accept thread answers itself.
const ASIDE_THREADS: usize = 8;

/// A running server.
pub struct Server {
    http: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    addr: std::net::SocketAddr,
}

impl Server {
    /// Binds `config.listen` and starts the accept thread and the workers.
    pub fn start(config: &ServeConfig, skills: Skills) -> Result<Server, ServeError> {
        let http = tiny_http::Server::http(&config.listen).map_err(|e| ServeError::Bind {
            addr: config.listen.clone(),
            reason: e.to_string(),
        })?;
        let addr = http.server_addr().to_ip().ok_or_else(|| ServeError::Bind {
            addr: config.listen.clone(),
            reason: "not an IP address".into(),
        })?;
        let http = Arc::new(http);
        let shared = Arc::new(Shared {
            skills,
            metrics: Metrics::default(),
            max_body: config.max_body,
            max_queue_wait: config.max_queue_wait,
            aside: AtomicUsize::new(0),
        });
        let (tx, rx) = sync_channel::<(tiny_http::Request, Instant)>(config.queue);
        let rx = Arc::new(Mutex::new(rx));
        let workers: Vec<JoinHandle<()>> = (0..config.workers.max(1))
            .map(|i| {
                let (rx, shared) = (rx.clone(), shared.clone());
                std::thread::Builder::new()
                    .name(format!("edgenlu-serve-{i}"))
                    .spawn(move || loop {
                        // The queue closes when the accept thread stops: then drain and exit.
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match next {
                            Ok((req, queued)) if queued.elapsed() > shared.max_queue_wait => {
                                routes::reject_busy(&shared, req, queued, "waited too long")
                            }
                            Ok((req, queued)) => routes::handle(&shared, req, queued),
                            Err(_) => break,
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (http, stop, shared) = (http.clone(), stop.clone(), shared.clone());
            std::thread::Builder::new()
                .name("edgenlu-serve-accept".into())
                .spawn(move || accept_loop(&http, &stop, &shared, tx))
                .expect("spawning the accept thread")
        };
        Ok(Server {
            http,
            stop,
            accept: Some(accept),
            workers: Arc::new(Mutex::new(workers)),
            addr,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the workers finish every request already accepted, and returns
    /// when they have.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.http.unblock();
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for w in self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = w.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn accept_loop(
    http: &tiny_http::Server,
    stop: &AtomicBool,
    shared: &Arc<Shared>,
    tx: SyncSender<(tiny_http::Request, Instant)>,
) {
    while !stop.load(Ordering::SeqCst) {
        let req = match http.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(req)) => req,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("accepting a request: {e}");
                continue;
            }
        };
        let start = Instant::now();
        if routes::is_health(&req) {
            answer_aside(shared, req, start, routes::handle);
            continue;
        }
        match tx.try_send((req, start)) {
            Ok(()) => {}
            Err(TrySendError::Full((req, start)) | TrySendError::Disconnected((req, start))) => {
                answer_aside(shared, req, start, |shared, req, start| {
                    routes::reject_busy(shared, req, start, "the request queue is full")
                });
            }
        }
    }
    // Dropping `tx` closes the queue: workers drain what is in it, then exit.
}

/// Answers `req` with `answer` on a short-lived thread, so that nothing the answer waits for
/// holds up the accept thread or another connection. (HTTP/1.1 sends one connection's
/// answers in order: a request a client pipelines behind a skill request waits for that
/// one's answer.) Past [`ASIDE_THREADS`] at once, the calling thread answers.
fn answer_aside(
    shared: &Arc<Shared>,
    req: tiny_http::Request,
    start: Instant,
    answer: fn(&Shared, tiny_http::Request, Instant),
) {
    if shared.aside.fetch_add(1, Ordering::SeqCst) >= ASIDE_THREADS {
        shared.aside.fetch_sub(1, Ordering::SeqCst);
        return answer(shared, req, start);
    }
    let mine = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("edgenlu-serve-aside".into())
        .spawn(move || {
            answer(&mine, req, start);
            mine.aside.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        // The request went with the closure, which answers it 500 when dropped.
        shared.aside.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!("starting a thread to answer a request: {e}");
    }
}
