//! Response bodies: whole, or server-sent events handed over one at a time by a worker; and
//! the access log, written when a response's body has gone out (or the client left).

use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;

/// A response body.
pub(crate) enum Body {
    /// All of it at once (`None` once sent).
    Whole(Option<Bytes>),
    /// Events a worker sends as the guest produces them; each one is its own chunk, written
    /// and flushed when it arrives. The stream ends when the worker drops its sender.
    Events(mpsc::Receiver<Bytes>),
}

impl Body {
    /// A whole body of `bytes`.
    pub(crate) fn whole(bytes: impl Into<Bytes>) -> Body {
        Body::Whole(Some(bytes.into()))
    }
}

impl Body {
    /// The next piece of the body, `None` at its end.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self {
            Body::Whole(bytes) => Poll::Ready(bytes.take()),
            Body::Events(rx) => rx.poll_recv(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Body::Events(_) => SizeHint::default(),
        }
    }
}

/// What the access log says of one request.
pub(crate) struct Access {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub start: Instant,
}

impl Access {
    /// Writes the request's line: at warn for a 4xx or 5xx, else at info.
    pub(crate) fn log(&self, bytes: u64, complete: bool) {
        let ms = self.start.elapsed().as_secs_f64() * 1e3;
        let (method, path, status) = (&self.method, &self.path, self.status);
        if status >= 400 {
            tracing::warn!(target: "edgenlu_serve::access", method, path, status, ms, bytes, complete, "request");
        } else {
            tracing::info!(target: "edgenlu_serve::access", method, path, status, ms, bytes, complete, "request");
        }
    }
}

/// A response body that counts the bytes it gives out and writes the access log line when it
/// is dropped: after the last byte, or when the client went away before it.
pub(crate) struct Logged {
    body: Body,
    access: Access,
    bytes: u64,
    done: bool,
}

impl Logged {
    pub(crate) fn new(body: Body, access: Access) -> Logged {
        Logged {
            body,
            access,
            bytes: 0,
            done: false,
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = this.body.poll_next(cx);
        match &next {
            Poll::Ready(Some(bytes)) => this.bytes += bytes.len() as u64,
            Poll::Ready(None) => this.done = true,
            Poll::Pending => {}
        }
        next.map(|b| b.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let done = self.done || self.body.is_end_stream();
        self.access.log(self.bytes, done);
    }
}
