//! `edgenlu serve`: the device daemon. An HTTP/1.1 server (hyper) with the skill API
//! (`POST /v1/nlu`), OpenAI-compatible `POST /v1/embeddings` and `POST /v1/chat/completions`
//! (server-sent events with `stream: true`), `GET /v1/models`, `GET /healthz` and
//! `GET /metrics`.
//!
//! Connections live on one thread running a small tokio runtime (`front.rs`): it enforces the
//! limits on what a client may send (header bytes and count, body size, how long it may take
//! to send a request head or its body, or to read its answer, how many connections it may
//! hold open) and answers health and metrics itself. Skill requests go through a bounded queue
//! to a fixed pool of worker threads (wasmtime calls block, and a generation runs for
//! seconds); a full queue is answered at once with 503, and so is a request that waited in it
//! longer than [`ServeConfig::max_queue_wait`]. Skills are compiled and linked once at start
//! ([`edgenlu::Skill`] keeps an `InstancePre`), and every request still gets a fresh instance
//! with its own memory, handles and deadline, so a hostile request cannot touch the next.
//! `/v1/nlu` answers through the device pipeline ([`edgenlu_device::pipeline::Pipeline`]: router over
//! the skills, vendor policy, template, phrasing or uplink); its installed skills follow the
//! skill store between requests ([`LivePipeline`]): installing a new version swaps it in while
//! requests in flight finish on the old. [`Server::shutdown`] stops accepting and drains the
//! requests in flight and queued.

mod body;
mod chat;
mod front;
mod live;
mod metrics;
mod routes;

pub use live::LivePipeline;

use edgenlu::Skill;
use edgenlu_device::pipeline::DeviceState;
use metrics::Metrics;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// Connections open at once; one past it is answered 503 and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers), bytes; past that, 431 and the
    /// connection is closed.
    pub max_header_bytes: usize,
    /// Most header fields in a request; past that, 431 and the connection is closed.
    pub max_headers: usize,
    /// Longest a connection may go without sending a whole request head, from when it opens
    /// or its previous answer went out: closes idle keep-alive connections and clients that
    /// send their head slowly.
    pub idle_timeout: Duration,
    /// Longest a client may take to send a request's body (past it, 408), and longest it may
    /// leave the server's answer unread before the connection is closed.
    pub io_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            workers: 2,
            queue: 16,
            max_body: 1 << 20,
            max_queue_wait: Duration::from_secs(5),
            max_connections: 1024,
            max_header_bytes: 16 << 10,
            max_headers: 64,
            idle_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
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
    /// The connection thread's runtime could not be built.
    #[error("starting the connection thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The chat skill's decoder could not be read to size its context.
    #[error("reading decoder {model}: {reason}")]
    Decoder {
        /// The decoder's name.
        model: String,
        /// What went wrong.
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
    /// More exposition text appended to `/metrics` at each scrape (e.g. the update agent's
    /// last sync, which the embedder reads from its own records); keep it cheap, it runs on
    /// the connection thread.
    pub extra_metrics: Option<ExtraMetrics>,
}

/// A source of more Prometheus exposition lines for `/metrics`.
pub type ExtraMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Shared by the connection thread and the workers.
struct Shared {
    skills: Skills,
    metrics: Metrics,
    /// The chat skill's limits as the routes apply them.
    chat_limits: chat::ChatLimits,
    /// The connection thread's runtime: workers wait on it to hand over streamed events.
    io: tokio::runtime::Handle,
    io_timeout: Duration,
    max_queue_wait: Duration,
}

/// A running server.
pub struct Server {
    front: Option<front::Front>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    addr: std::net::SocketAddr,
}

impl Server {
    /// Binds `config.listen` and starts the connection thread and the workers.
    pub fn start(config: &ServeConfig, skills: Skills) -> Result<Server, ServeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(ServeError::Runtime)?;
        let bind_failed = |e: std::io::Error| ServeError::Bind {
            addr: config.listen.clone(),
            reason: e.to_string(),
        };
        let listener = {
            let _in_runtime = runtime.enter();
            listen(&config.listen).map_err(bind_failed)?
        };
        let addr = listener.local_addr().map_err(bind_failed)?;
        let chat_limits = chat::ChatLimits::of(&skills)?;
        let shared = Arc::new(Shared {
            skills,
            metrics: Metrics::default(),
            chat_limits,
            io: runtime.handle().clone(),
            io_timeout: config.io_timeout,
            max_queue_wait: config.max_queue_wait,
        });
        let (queue, queued) = sync_channel::<front::Job>(config.queue);
        let workers = worker_threads(config.workers.max(1), queued, &shared);
        let front = front::Front::start(runtime, listener, config, shared, queue)
            .map_err(ServeError::Runtime)?;
        Ok(Server {
            front: Some(front),
            workers: Arc::new(Mutex::new(workers)),
            addr,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops accepting, lets every request already accepted finish (those running and those
    /// queued; a stream to its end), and returns when they have.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        // The connection thread returns when its last connection has closed; it holds the
        // queue's sender, so the workers then drain the queue and exit.
        if let Some(front) = self.front.take() {
            front.stop();
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

/// Connections the kernel may hold complete before the server accepts them: enough for a
/// burst of clients while the connection thread is not scheduled (a full backlog drops
/// connection attempts, which clients retry only after a second).
const BACKLOG: u32 = 1024;

/// A listening socket on the first address `listen` resolves to.
fn listen(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = listen.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// `n` workers named `edgenlu-serve-{i}` answering the jobs of `rx` until it closes.
fn worker_threads(n: usize, rx: Receiver<front::Job>, shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let rx = Arc::new(Mutex::new(rx));
    (0..n)
        .map(|i| {
            let (rx, shared) = (rx.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("edgenlu-serve-{i}"))
                .spawn(move || loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match next {
                        Ok(job) => routes::run_queued(&shared, job),
                        Err(_) => break,
                    }
                })
                .expect("spawning a server thread")
        })
        .collect()
}
