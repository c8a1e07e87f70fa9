//! The connection thread: one tokio runtime on one thread accepts connections (at most
//! `max_connections`), speaks HTTP/1.1 through hyper with its limits, answers health and
//! metrics itself, reads bodies, and hands every other request to the workers' queue. No
//! skill runs here, so nothing a skill does holds up a connection.

use crate::body::{Access, Body, Logged};
use crate::{routes, ServeConfig, Shared};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};

/// A request for the workers: its route, body, when it arrived, and where its answer goes.
pub(crate) struct Job {
    pub method: hyper::Method,
    pub path: String,
    pub body: Bytes,
    pub start: Instant,
    pub respond: oneshot::Sender<Response<Body>>,
}

/// The running connection thread.
pub(crate) struct Front {
    stop: watch::Sender<bool>,
    thread: JoinHandle<()>,
}

/// What every connection shares.
struct Conns {
    shared: Arc<Shared>,
    queue: SyncSender<Job>,
    http: http1::Builder,
    max_body: usize,
    io_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Front {
    /// Starts the connection thread on `runtime`, accepting on `listener`.
    pub(crate) fn start(
        runtime: tokio::runtime::Runtime,
        listener: TcpListener,
        config: &ServeConfig,
        shared: Arc<Shared>,
        queue: SyncSender<Job>,
    ) -> std::io::Result<Front> {
        let (stop, stopped) = watch::channel(false);
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.idle_timeout)
            .max_header_size(config.max_header_bytes)
            // Also what an unfinished head may fill before it is refused (431).
            .max_buf_size(config.max_header_bytes.max(8 << 10))
            .max_headers(config.max_headers)
            .keep_alive(true);
        let conns = Arc::new(Conns {
            shared,
            queue,
            http,
            max_body: config.max_body,
            io_timeout: config.io_timeout,
            stop: stopped,
        });
        let max_connections = config.max_connections.max(1);
        let thread = std::thread::Builder::new()
            .name("edgenlu-serve-io".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let open = Arc::new(Semaphore::new(max_connections));
                    accept(listener, &conns, &open).await;
                    // Every connection holds a permit until it closes: all back, all closed.
                    let _ = open.acquire_many(max_connections as u32).await;
                });
            })?;
        Ok(Front { stop, thread })
    }

    /// Stops accepting, closes idle connections, lets the others finish what they were asked
    /// and returns when the last one has closed.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

/// Accepts connections until told to stop; one past the cap is answered 503 and closed.
async fn accept(listener: TcpListener, conns: &Arc<Conns>, open: &Arc<Semaphore>) {
    let mut stop = conns.stop.clone();
    loop {
        let accepted = {
            let mut stopping = pin!(stop.wait_for(|s| *s));
            let mut accepting = pin!(listener.accept());
            std::future::poll_fn(|cx| {
                if stopping.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                accepting.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let (stream, peer) = match accepted {
            None => return,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                // Out of file descriptors, most likely: give the connections time to close.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                let conns = conns.clone();
                tokio::spawn(async move {
                    conns.serve(stream, peer).await;
                    drop(permit);
                });
            }
            Err(_) => refuse_connection(&conns.shared, stream, peer),
        }
    }
}

/// The answer to a connection past the cap: 503, written if the socket takes it at once, and
/// the connection closed without reading from it.
fn refuse_connection(shared: &Shared, stream: TcpStream, peer: std::net::SocketAddr) {
    let start = Instant::now();
    let body = routes::busy_body("too many connections");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let sent = stream
        .try_write(&[head.as_bytes(), &body].concat())
        .unwrap_or(0);
    shared
        .metrics
        .rejected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared.metrics.observe("connection", 503, start.elapsed());
    Access {
        method: "-".into(),
        path: format!("- ({peer}: too many connections)"),
        status: 503,
        start,
    }
    .log(sent as u64, true);
}

impl Conns {
    /// Serves one connection until it closes; when the server stops, it finishes the request
    /// it is answering (a stream to its end) and closes.
    async fn serve(self: Arc<Self>, stream: TcpStream, peer: std::net::SocketAddr) {
        let _ = stream.set_nodelay(true);
        let io = Stalls::new(TokioIo::new(stream), self.io_timeout);
        let me = self.clone();
        let service = hyper::service::service_fn(move |req| me.clone().answer(req));
        let mut conn = pin!(self.http.serve_connection(io, service));
        let mut stop = self.stop.clone();
        let mut stopping = pin!(stop.wait_for(|s| *s));
        let mut draining = false;
        let result = std::future::poll_fn(|cx| {
            if !draining && stopping.as_mut().poll(cx).is_ready() {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            conn.as_mut().poll(cx)
        })
        .await;
        match result {
            Ok(()) => {}
            // hyper answered 431 before closing.
            Err(e) if e.is_parse_too_large() => Access {
                method: "-".into(),
                path: format!("- ({peer}: request head too large)"),
                status: 431,
                start: Instant::now(),
            }
            .log(0, true),
            Err(e) => tracing::debug!("connection from {peer}: {e}"),
        }
    }

    /// Answers one request, and wraps its body in the access log.
    async fn answer(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Logged>, Infallible> {
        let start = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let response = self.route(req, start).await;
        let access = Access {
            method: method.to_string(),
            path,
            status: response.status().as_u16(),
            start,
        };
        Ok(response.map(|b| Logged::new(b, access)))
    }

    async fn route(&self, req: Request<Incoming>, start: Instant) -> Response<Body> {
        let shared = &self.shared;
        if let Some(r) = routes::answer_here(shared, req.method(), req.uri().path(), start) {
            return r;
        }
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let body = match self.read_body(body).await {
            Ok(b) => b,
            Err(f) => return routes::refuse(shared, &parts.method, &path, f, start),
        };
        let (respond, answer) = oneshot::channel();
        let job = Job {
            method: parts.method,
            path,
            body,
            start,
            respond,
        };
        match self.queue.try_send(job) {
            Ok(()) => answer.await.unwrap_or_else(|_| routes::lost(shared, start)),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                routes::reject_busy(shared, job.start, "the request queue is full")
            }
        }
    }

    /// The body, all of it, within `max_body` (413) and `io_timeout` (408).
    async fn read_body(&self, body: Incoming) -> Result<Bytes, routes::Failure> {
        let read = Limited::new(body, self.max_body).collect();
        match tokio::time::timeout(self.io_timeout, read).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                Err(routes::Failure::too_large(self.max_body))
            }
            Ok(Err(e)) => Err(routes::Failure::bad_request(format!(
                "reading the body: {e}"
            ))),
            Err(_) => Err(routes::Failure::timeout(self.io_timeout)),
        }
    }
}

/// A connection's socket that fails a write the client has left unread for longer than its
/// timeout, so that a client that stops reading cannot hold a connection (and a stream's
/// worker) forever. Reads need no such bound: the head has `idle_timeout`, the body
/// `io_timeout`, and between requests hyper only reads to notice the client leaving.
struct Stalls<T> {
    io: T,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Stalls<T> {
    fn new(io: T, timeout: Duration) -> Stalls<T> {
        Stalls {
            io,
            timeout,
            stalled: None,
        }
    }

    /// A write's outcome, except that one still pending `timeout` after the last progress
    /// fails.
    fn progress<R>(
        &mut self,
        r: Poll<std::io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<R>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Stalls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Stalls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
