//! `edgenlu serve`: the device daemon. An HTTP/1.1 server (tiny_http) with the skill API
//! (`POST /v1/nlu`), OpenAI-compatible `POST /v1/embeddings` and `POST /v1/chat/completions`
//! (server-sent events with `stream: true`), `GET /v1/models`, `GET /healthz` and
//! `GET /metrics`.
//!
//! One accept thread hands requests to a bounded queue served by a fixed pool of workers; a
//! full queue is answered at once with 503, and so is a request that waited in it longer than
//! [`ServeConfig::max_queue_wait`]. `GET /healthz` and `GET /metrics` never enter the queue:
//! a few threads of their own answer them (and the 503s), so no skill request holds them up.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
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
}

/// Answers one accepted request.
type Answer = fn(&Shared, tiny_http::Request, Instant);

/// An accepted request, when it was accepted, and how to answer it.
type Job = (tiny_http::Request, Instant, Answer);

/// Threads that answer health, metrics and refusals, apart from the workers.
const ASIDE_THREADS: usize = 4;

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
        });
        let (queue, queued) = sync_channel::<Job>(config.queue);
        let (aside, asides) = sync_channel::<Job>(ASIDE_THREADS);
        let mut workers =
            answering_threads("edgenlu-serve", config.workers.max(1), queued, &shared);
        workers.extend(answering_threads(
            "edgenlu-serve-aside",
            ASIDE_THREADS,
            asides,
            &shared,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (http, stop, shared) = (http.clone(), stop.clone(), shared.clone());
            std::thread::Builder::new()
                .name("edgenlu-serve-accept".into())
                .spawn(move || accept_loop(&http, &stop, &shared, queue, aside))
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

/// `n` threads named `name-{i}` answering the jobs of `rx` until it closes (when the accept
/// thread stops: they drain it, then exit).
fn answering_threads(
    name: &str,
    n: usize,
    rx: Receiver<Job>,
    shared: &Arc<Shared>,
) -> Vec<JoinHandle<()>> {
    let rx = Arc::new(Mutex::new(rx));
    (0..n)
        .map(|i| {
            let (rx, shared) = (rx.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match next {
                        Ok((req, start, answer)) => answer(&shared, req, start),
                        Err(_) => break,
                    }
                })
                .expect("spawning a server thread")
        })
        .collect()
}

/// A worker's answer to a request from the queue: 503 if it waited too long, else the route's.
fn run_queued(shared: &Shared, req: tiny_http::Request, queued: Instant) {
    if queued.elapsed() > shared.max_queue_wait {
        routes::reject_busy(shared, req, queued, "waited too long");
    } else {
        routes::handle(shared, req, queued);
    }
}

/// The answer to a request the queue had no room for: 503.
fn refuse_full(shared: &Shared, req: tiny_http::Request, start: Instant) {
    routes::reject_busy(shared, req, start, "the request queue is full");
}

fn accept_loop(
    http: &tiny_http::Server,
    stop: &AtomicBool,
    shared: &Shared,
    queue: SyncSender<Job>,
    aside: SyncSender<Job>,
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
            answer_aside(shared, &aside, (req, start, routes::handle));
            continue;
        }
        match queue.try_send((req, start, run_queued)) {
            Ok(()) => {}
            Err(
                TrySendError::Full((req, start, _)) | TrySendError::Disconnected((req, start, _)),
            ) => answer_aside(shared, &aside, (req, start, refuse_full)),
        }
    }
    // Dropping the senders closes the queues: their threads drain them, then exit.
}

/// Hands `job` to the aside threads, so that nothing its answer waits for holds up the accept
/// thread. (HTTP/1.1 sends one connection's answers in order: a request a client pipelines
/// behind a skill request waits for that one's answer, and holds the aside thread meanwhile.)
/// When every aside thread is busy and their queue full, the accept thread answers itself.
fn answer_aside(shared: &Shared, aside: &SyncSender<Job>, job: Job) {
    if let Err(
        TrySendError::Full((req, start, answer)) | TrySendError::Disconnected((req, start, answer)),
    ) = aside.try_send(job)
    {
        answer(shared, req, start);
    }
}
