//! The routes: request bodies in, JSON (or server-sent events) out, OpenAI's shapes where
//! the route is OpenAI's. Health and metrics are answered on the connection thread
//! ([`answer_here`]); everything else by a worker ([`run_queued`]).

use super::{Shared, Skills};
use crate::body::Body;
use crate::chat;
use crate::front::Job;
use edgenlu::error::SkillError;
use edgenlu::WitError;
use edgenlu_device::pipeline::{DeviceState, PipelineError};
use edgenlu_device::router::RouterError;
use hyper::{Method, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most texts one `/v1/embeddings` request may embed (each is one run of the encoder on a
/// worker); past it, 400.
pub const MAX_EMBEDDING_INPUTS: usize = 64;

/// A failed request: HTTP status and an OpenAI-style error body.
pub(crate) struct Failure {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, where one is.
    pub param: Option<&'static str>,
    /// OpenAI's error code where it has one (e.g. `context_length_exceeded`); else the
    /// status is the code.
    pub code: Option<&'static str>,
}

impl Failure {
    pub(crate) fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 400, the client's request is wrong.
    pub(crate) fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(400, "invalid_request_error", message)
    }

    /// 400 for request field `param`, with OpenAI's `code`.
    pub(crate) fn bad_param(
        param: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Failure {
        Failure {
            param: Some(param),
            code: Some(code),
            ..Failure::bad_request(message)
        }
    }

    /// 413, a body past `max_body`.
    pub(crate) fn too_large(max_body: usize) -> Failure {
        Failure::new(
            413,
            "invalid_request_error",
            format!("the body is larger than {max_body} bytes"),
        )
    }

    /// 408, a body not sent within `timeout`.
    pub(crate) fn timeout(timeout: Duration) -> Failure {
        Failure::new(
            408,
            "invalid_request_error",
            format!("the body did not arrive within {} ms", timeout.as_millis()),
        )
    }

    pub(crate) fn body(&self) -> Value {
        let code = self.code.map_or(json!(self.status), |c| json!(c));
        json!({ "error": {
            "message": self.message, "type": self.kind, "param": self.param, "code": code,
        } })
    }
}

/// How a skill's failure looks over HTTP: the client's fault (400), a budget (503, counted),
/// a skill that answered something the host refuses (502: the server behind us misbehaved,
/// the request was fine), or ours (500).
pub(crate) fn skill_failure(shared: &Shared, e: SkillError) -> Failure {
    let budget = matches!(
        e,
        SkillError::Deadline(_)
            | SkillError::Memory(_)
            | SkillError::ResponseTooLarge { .. }
            | SkillError::Guest(WitError::BudgetExceeded(_))
    );
    if budget {
        shared
            .metrics
            .budget_exceeded
            .fetch_add(1, Ordering::Relaxed);
        return Failure::new(503, "budget_exceeded", e.to_string());
    }
    match e {
        // OpenAI's answer, word for word, so that clients that handle it recognise it.
        SkillError::ContextLength(o) => {
            chat::context_exceeded(o.context, o.prompt_tokens, o.max_tokens)
        }
        SkillError::Guest(
            WitError::InvalidArgument(_) | WitError::ShapeMismatch(_) | WitError::NotFound(_),
        ) => Failure::new(400, "invalid_request_error", e.to_string()),
        SkillError::InvalidResponse { .. } => {
            Failure::new(502, "invalid_skill_response", e.to_string())
        }
        other => Failure::new(500, "server_error", other.to_string()),
    }
}

pub(crate) fn json_response(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::whole(v.to_string()))
        .expect("a valid response")
}

fn text_response(text: String, content_type: &'static str) -> Response<Body> {
    Response::builder()
        .header("content-type", content_type)
        .body(Body::whole(text))
        .expect("a valid response")
}

/// The route a request counts under in the metrics.
fn route_of(method: &Method, path: &str) -> &'static str {
    match (method, path) {
        (&Method::GET, "/healthz") => "/healthz",
        (&Method::GET, "/metrics") => "/metrics",
        (&Method::GET, "/v1/models") => "/v1/models",
        (&Method::POST, "/v1/nlu") => "/v1/nlu",
        (&Method::POST, "/v1/embeddings") => "/v1/embeddings",
        (&Method::POST, "/v1/chat/completions") => "/v1/chat/completions",
        _ => "other",
    }
}

/// The answer to health, metrics and unknown routes, given on the connection thread (no
/// skill request can hold them up: the metrics' locks are held only to count or render);
/// `None` for the routes the workers answer.
pub(crate) fn answer_here(
    shared: &Shared,
    method: &Method,
    path: &str,
    start: Instant,
) -> Option<Response<Body>> {
    let reply = match route_of(method, path) {
        "other" => {
            let f = Failure::new(404, "not_found", format!("no route {method} {path}"));
            return Some(refuse(shared, method, path, f, start));
        }
        "/healthz" => text_response("ok\n".into(), "text/plain"),
        "/metrics" => {
            let versions = shared.skills.nlu.versions();
            let flow = shared.skills.nlu.flow_version();
            let mut text = shared.metrics.render(&versions, flow);
            if let Some(extra) = &shared.skills.extra_metrics {
                text.push_str(&extra());
            }
            text_response(text, "text/plain; version=0.0.4")
        }
        _ => return None,
    };
    shared
        .metrics
        .observe(route_of(method, path), 200, start.elapsed());
    Some(reply)
}

/// The answer to a request refused before it reached a worker (its body too large or too
/// slow), counted.
pub(crate) fn refuse(
    shared: &Shared,
    method: &Method,
    path: &str,
    f: Failure,
    start: Instant,
) -> Response<Body> {
    shared
        .metrics
        .observe(route_of(method, path), f.status, start.elapsed());
    json_response(f.status, &f.body())
}

/// The body of a 503 for `why`.
pub(crate) fn busy_body(why: &str) -> Vec<u8> {
    Failure::new(503, "server_busy", format!("{why}; retry later"))
        .body()
        .to_string()
        .into_bytes()
}

/// Answers 503 to a request the workers will not run: the queue is full, or it waited in it
/// too long (`why`).
pub(crate) fn reject_busy(shared: &Shared, start: Instant, why: &str) -> Response<Body> {
    shared.metrics.rejected.fetch_add(1, Ordering::Relaxed);
    shared.metrics.observe("queue", 503, start.elapsed());
    Response::builder()
        .status(503)
        .header("content-type", "application/json")
        .header("retry-after", "1")
        .body(Body::whole(busy_body(why)))
        .expect("a valid response")
}

/// The answer when the worker answering a request went away without answering (it panicked).
pub(crate) fn lost(shared: &Shared, start: Instant) -> Response<Body> {
    let f = Failure::new(500, "server_error", "the request's worker stopped");
    shared.metrics.observe("other", f.status, start.elapsed());
    json_response(f.status, &f.body())
}

/// A worker's answer to a request from the queue: 503 if it waited too long, else the route's.
pub(crate) fn run_queued(shared: &Arc<Shared>, job: Job) {
    if job.start.elapsed() > shared.max_queue_wait {
        let _ = job
            .respond
            .send(reject_busy(shared, job.start, "waited too long"));
        return;
    }
    let route = route_of(&job.method, &job.path);
    let result = match route {
        "/v1/models" => Ok(Reply::Json(models(shared))),
        "/v1/nlu" => nlu(shared, &job.body),
        "/v1/embeddings" => embeddings(shared, &job.body),
        _ => chat::completion(shared, &job.body),
    };
    // Metrics are recorded before the response goes out, so a client that reads /metrics
    // right after its answer sees its request counted.
    let response = match result {
        Ok(Reply::Json(v)) => {
            shared.metrics.observe(route, 200, job.start.elapsed());
            json_response(200, &v)
        }
        Ok(Reply::Stream(c)) => return chat::stream(shared, &c, route, job.start, job.respond),
        Err(f) => {
            shared.metrics.observe(route, f.status, job.start.elapsed());
            json_response(f.status, &f.body())
        }
    };
    let _ = job.respond.send(response);
}

pub(crate) enum Reply {
    Json(Value),
    /// A chat completion to stream as server-sent events.
    Stream(chat::Chat),
}

pub(crate) fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure::bad_request(format!("bad JSON body: {e}")))
}

/// The skills (one per route), the encoder and the decoder (with the context the host can
/// hold for it, and the most tokens a completion may ask for).
fn models(shared: &Shared) -> Value {
    let skills: &Skills = &shared.skills;
    let model =
        |id: &str| json!({ "id": id, "object": "model", "created": 0, "owned_by": "edgenlu" });
    let pipeline = skills.nlu.get();
    let mut data: Vec<Value> = pipeline
        .router
        .routes()
        .iter()
        .map(|r| r.name.as_str())
        .chain([pipeline.router.encoder()])
        .map(model)
        .collect();
    let mut decoder = model(&skills.decoder);
    decoder["context_length"] = json!(shared.chat_limits.context);
    decoder["max_completion_tokens"] = json!(shared.chat_limits.max_tokens);
    data.push(decoder);
    json!({ "object": "list", "data": data })
}

/// `network` in an `/v1/nlu` body.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Network {
    Up,
    Down,
}

/// An `/v1/nlu` body: the utterance, and the device's state where the request knows better
/// than the server's flags (as `edgenlu run --network --battery`).
#[derive(Deserialize)]
struct NluBody {
    text: String,
    network: Option<Network>,
    battery: Option<u8>,
}

fn nlu(shared: &Shared, body: &[u8]) -> Result<Reply, Failure> {
    let b: NluBody = parse(body)?;
    let defaults = shared.skills.device;
    let device = DeviceState {
        network_up: b
            .network
            .map_or(defaults.network_up, |n| matches!(n, Network::Up)),
        battery_percent: b.battery.or(defaults.battery_percent),
    };
    // Held to the end of the request: a swap meanwhile does not touch it.
    let pipeline = shared.skills.nlu.current();
    let answer = pipeline.answer(&b.text, device).map_err(|e| match e {
        PipelineError::Skill(e)
        | PipelineError::Route(RouterError::Skill(e))
        | PipelineError::Flow(e) => skill_failure(shared, e),
        PipelineError::Route(e) => Failure::new(500, "server_error", e.to_string()),
    })?;
    Ok(Reply::Json(json!({ "text": b.text, "response": answer })))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    input: Input,
}

fn embeddings(shared: &Shared, body: &[u8]) -> Result<Reply, Failure> {
    let b: EmbeddingsBody = parse(body)?;
    let texts = match b.input {
        Input::One(t) => vec![t],
        Input::Many(v) => v,
    };
    if texts.is_empty() {
        return Err(Failure::bad_param(
            "input",
            "invalid_value",
            "input is empty",
        ));
    }
    if texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(Failure::bad_param(
            "input",
            "invalid_value",
            format!(
                "{} inputs; at most {MAX_EMBEDDING_INPUTS} per request",
                texts.len()
            ),
        ));
    }
    let pipeline = shared.skills.nlu.get();
    let skill = pipeline.router.embedder();
    let tokens: usize = skill
        .tokenize(&texts)
        .map_err(|e| skill_failure(shared, e))?
        .iter()
        .map(Vec::len)
        .sum();
    let data = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = skill.embed(t).map_err(|e| skill_failure(shared, e))?;
            Ok(json!({ "object": "embedding", "index": i, "embedding": v }))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(Reply::Json(json!({
        "object": "list",
        "data": data,
        "model": pipeline.router.encoder(),
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}
