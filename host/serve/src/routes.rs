//! The routes: request bodies in, JSON (or server-sent events) out, OpenAI's shapes where
//! the route is OpenAI's.

use super::{Shared, Skills};
use edgenlu::error::SkillError;
use edgenlu::{ChatRequest, ChatRole, ChatTurn, FinishReason, Forward, SamplingParams, WitError};
use edgenlu_device::pipeline::{DeviceState, PipelineError};
use edgenlu_device::router::RouterError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tiny_http::{Header, Method, Request, Response};

/// Tokens a chat completion generates when the request does not say.
const DEFAULT_MAX_TOKENS: u32 = 128;

/// A failed request: HTTP status and an OpenAI-style error body.
struct Failure {
    status: u16,
    kind: &'static str,
    message: String,
    /// OpenAI's error code where it has one (e.g. `context_length_exceeded`); else the
    /// status is the code.
    code: Option<&'static str>,
}

impl Failure {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            kind,
            message: message.into(),
            code: None,
        }
    }

    fn body(&self) -> Value {
        let code = self.code.map_or(json!(self.status), |c| json!(c));
        json!({ "error": { "message": self.message, "type": self.kind, "code": code } })
    }
}

/// How a skill's failure looks over HTTP: the client's fault (400), a budget (503, counted),
/// a skill that answered something the host refuses (502: the server behind us misbehaved,
/// the request was fine), or ours (500).
fn skill_failure(shared: &Shared, e: SkillError) -> Failure {
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
        SkillError::ContextLength(o) => Failure {
            code: Some("context_length_exceeded"),
            ..Failure::new(
                400,
                "invalid_request_error",
                format!(
                    "This model's maximum context length is {} tokens. However, you requested \
                     {} tokens ({} in the messages, {} in the completion). Please reduce the \
                     length of the messages or completion.",
                    o.context,
                    u64::from(o.prompt_tokens) + u64::from(o.max_tokens),
                    o.prompt_tokens,
                    o.max_tokens
                ),
            )
        },
        SkillError::Guest(
            WitError::InvalidArgument(_) | WitError::ShapeMismatch(_) | WitError::NotFound(_),
        ) => Failure::new(400, "invalid_request_error", e.to_string()),
        SkillError::InvalidResponse { .. } => {
            Failure::new(502, "invalid_skill_response", e.to_string())
        }
        other => Failure::new(500, "server_error", other.to_string()),
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn json_response(status: u16, v: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_data(v.to_string().into_bytes())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
}

/// Whether `req` asks for the server's health or metrics: answered outside the worker queue.
pub(super) fn is_health(req: &Request) -> bool {
    matches!(
        (req.method(), req.url()),
        (Method::Get, "/healthz") | (Method::Get, "/metrics")
    )
}

/// Answers 503 to a request the workers will not run: the queue is full, or it waited in it
/// too long (`why`).
pub(super) fn reject_busy(shared: &Shared, req: Request, start: Instant, why: &str) {
    let f = Failure::new(503, "server_busy", format!("{why}; retry later"));
    shared.metrics.rejected.fetch_add(1, Ordering::Relaxed);
    shared.metrics.observe("queue", 503, start.elapsed());
    let _ = req.respond(json_response(f.status, &f.body()).with_header(header("Retry-After", "1")));
}

/// Answers one request (on a worker thread).
pub(super) fn handle(shared: &Shared, mut req: Request, start: Instant) {
    let route = match (req.method(), req.url()) {
        (Method::Get, "/healthz") => "/healthz",
        (Method::Get, "/metrics") => "/metrics",
        (Method::Get, "/v1/models") => "/v1/models",
        (Method::Post, "/v1/nlu") => "/v1/nlu",
        (Method::Post, "/v1/embeddings") => "/v1/embeddings",
        (Method::Post, "/v1/chat/completions") => "/v1/chat/completions",
        _ => "other",
    };
    let result = read_body(shared, &mut req).and_then(|body| match route {
        "/healthz" => Ok(Reply::Text("ok\n".into(), "text/plain")),
        "/metrics" => {
            let versions = shared.skills.nlu.versions();
            Ok(Reply::Text(
                shared.metrics.render(&versions),
                "text/plain; version=0.0.4",
            ))
        }
        "/v1/models" => Ok(Reply::Json(models(&shared.skills))),
        "/v1/nlu" => nlu(shared, &body),
        "/v1/embeddings" => embeddings(shared, &body),
        "/v1/chat/completions" => chat(shared, &body),
        _ => Err(Failure::new(
            404,
            "not_found",
            format!("no route {} {}", req.method(), req.url()),
        )),
    });
    // Metrics are recorded before the response goes out, so a client that reads /metrics
    // right after its answer sees its request counted.
    match result {
        Ok(Reply::Json(v)) => {
            shared.metrics.observe(route, 200, start.elapsed());
            let _ = req.respond(json_response(200, &v));
        }
        Ok(Reply::Text(t, ctype)) => {
            shared.metrics.observe(route, 200, start.elapsed());
            let _ =
                req.respond(Response::from_string(t).with_header(header("Content-Type", ctype)));
        }
        Ok(Reply::Stream(chat)) => stream_chat(shared, req, &chat, route, start),
        Err(f) => {
            shared.metrics.observe(route, f.status, start.elapsed());
            let _ = req.respond(json_response(f.status, &f.body()));
        }
    }
}

enum Reply {
    Json(Value),
    Text(String, &'static str),
    /// A chat completion to stream as server-sent events.
    Stream(Chat),
}

fn read_body(shared: &Shared, req: &mut Request) -> Result<Vec<u8>, Failure> {
    let too_big = || {
        Failure::new(
            413,
            "invalid_request_error",
            format!("the body is larger than {} bytes", shared.max_body),
        )
    };
    if req.body_length().is_some_and(|n| n > shared.max_body) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    req.as_reader()
        .take(shared.max_body as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            Failure::new(
                400,
                "invalid_request_error",
                format!("reading the body: {e}"),
            )
        })?;
    if body.len() > shared.max_body {
        return Err(too_big());
    }
    Ok(body)
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure::new(400, "invalid_request_error", format!("bad JSON body: {e}")))
}

/// The skills (one per route), the encoder and the decoder.
fn models(skills: &Skills) -> Value {
    let model =
        |id: &str| json!({ "id": id, "object": "model", "created": 0, "owned_by": "edgenlu" });
    let pipeline = skills.nlu.get();
    let data: Vec<Value> = pipeline
        .router
        .routes()
        .iter()
        .map(|r| r.name.as_str())
        .chain([pipeline.router.encoder(), skills.decoder.as_str()])
        .map(model)
        .collect();
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
        PipelineError::Skill(e) | PipelineError::Route(RouterError::Skill(e)) => {
            skill_failure(shared, e)
        }
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
        return Err(Failure::new(400, "invalid_request_error", "input is empty"));
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

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct ChatBody {
    messages: Vec<Message>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
}

/// A chat completion for the skill: the conversation's earlier turns and the request.
pub(super) struct Chat {
    history: Vec<ChatTurn>,
    request: ChatRequest,
}

/// The skill request for an OpenAI chat body: the system and developer messages (joined, in
/// order) as the template's system turn; the user and assistant messages as the conversation,
/// which must end with the user's; greedy unless the client sets a temperature (a device
/// answers the same way every time unless asked otherwise).
fn chat_request(body: &[u8]) -> Result<(Chat, bool), Failure> {
    let b: ChatBody = parse(body)?;
    let bad = |m: String| Failure::new(400, "invalid_request_error", m);
    let (mut system, mut turns) = (Vec::new(), Vec::new());
    for m in b.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => {
                system.push(m.content);
                continue;
            }
            "user" => ChatRole::User,
            "assistant" => ChatRole::Assistant,
            other => return Err(bad(format!("messages of role {other:?} are not supported"))),
        };
        turns.push(ChatTurn {
            role,
            content: m.content,
        });
    }
    let prompt = match turns.pop() {
        Some(ChatTurn {
            role: ChatRole::User,
            content,
        }) => content,
        Some(_) => return Err(bad("the last message must be the user's".into())),
        None => return Err(bad("no user message".into())),
    };
    let request = ChatRequest {
        prompt,
        template: true,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        max_tokens: b
            .max_completion_tokens
            .or(b.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        sampling: SamplingParams {
            temperature: b.temperature.unwrap_or(0.0),
            top_p: b.top_p.unwrap_or(1.0),
            seed: b.seed.unwrap_or(0),
            ..SamplingParams::GREEDY
        },
        forward: Forward::Fused,
    };
    let chat = Chat {
        history: turns,
        request,
    };
    Ok((chat, b.stream))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

fn chat(shared: &Shared, body: &[u8]) -> Result<Reply, Failure> {
    let (chat, stream) = chat_request(body)?;
    if stream {
        return Ok(Reply::Stream(chat));
    }
    let r = shared
        .skills
        .chat
        .chat_with_history(&chat.history, &chat.request, None)
        .map_err(|e| skill_failure(shared, e))?;
    let u = &r.usage;
    shared
        .metrics
        .tokens
        .fetch_add(u.generated_tokens as u64, Ordering::Relaxed);
    Ok(Reply::Json(json!({
        "id": format!("chatcmpl-{}", unix_now()),
        "object": "chat.completion",
        "created": unix_now(),
        "model": shared.skills.decoder,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": r.text },
            "finish_reason": finish_reason(r.finish),
        }],
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.generated_tokens,
            "total_tokens": u.prompt_tokens + u.generated_tokens,
        },
    })))
}

/// Server-sent events read from a channel: each message is one `data:` event (a failure, its
/// error object).
struct Events {
    rx: Receiver<Result<String, Failure>>,
    buf: Vec<u8>,
    at: usize,
}

impl Read for Events {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.buf.len() {
            match self.rx.recv() {
                Ok(event) => {
                    let data = event.unwrap_or_else(|f| f.body().to_string());
                    self.buf = format!("data: {data}\n\n").into_bytes();
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Streams a chat completion: one `chat.completion.chunk` per piece of text as the guest pulls
/// tokens, a last chunk with the finish reason (or an error object), then `[DONE]`. The
/// response starts with the first piece of text, so that a request refused before generating
/// (e.g. too long for the context) gets its HTTP status and error, as OpenAI's does. Returns
/// the status sent.
/// Streams a chat completion as server-sent events and records the request in the metrics,
/// before the client can see the end of the stream (as for every other reply).
fn stream_chat(shared: &Shared, req: Request, chat: &Chat, route: &str, start: Instant) {
    let (tx, rx) = channel::<Result<String, Failure>>();
    let (id, created, model) = (
        format!("chatcmpl-{}", unix_now()),
        unix_now(),
        shared.skills.decoder.clone(),
    );
    let chunk = move |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
        .to_string()
    };
    let role = chunk(json!({ "role": "assistant", "content": "" }), Value::Null);
    std::thread::scope(|scope| {
        let sink_tx = tx.clone();
        let sink_chunk = chunk.clone();
        // Whether a piece went out: then the reply is a 200 stream whatever follows.
        let streamed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sink_streamed = streamed.clone();
        scope.spawn(move || {
            let sink: edgenlu::TextSink = Box::new(move |text| {
                if !text.is_empty() {
                    sink_streamed.store(true, Ordering::Relaxed);
                    let _ = sink_tx.send(Ok(sink_chunk(json!({ "content": text }), Value::Null)));
                }
            });
            let r = shared
                .skills
                .chat
                .chat_with_history(&chat.history, &chat.request, Some(sink));
            let first_ok = streamed.load(Ordering::Relaxed) || r.is_ok();
            match r {
                Ok(r) => {
                    shared
                        .metrics
                        .tokens
                        .fetch_add(r.usage.generated_tokens as u64, Ordering::Relaxed);
                    let _ = tx.send(Ok(chunk(json!({}), json!(finish_reason(r.finish)))));
                }
                Err(e) => {
                    let _ = tx.send(Err(skill_failure(shared, e)));
                }
            }
            // A stream that started is a 200; one that failed first is answered, and
            // counted, by the other side below.
            if first_ok {
                shared.metrics.observe(route, 200, start.elapsed());
            }
            let _ = tx.send(Ok("[DONE]".into()));
        });
        let first = rx
            .recv()
            .unwrap_or_else(|_| Err(Failure::new(500, "server_error", "the generation stopped")));
        let first = match first {
            Ok(first) => first,
            Err(f) => {
                shared.metrics.observe(route, f.status, start.elapsed());
                let _ = req.respond(json_response(f.status, &f.body()));
                return;
            }
        };
        // The role chunk and the first piece go out together; the rest as it comes.
        let events = Events {
            rx,
            buf: format!("data: {role}\n\ndata: {first}\n\n").into_bytes(),
            at: 0,
        };
        let response = Response::new(
            200.into(),
            vec![
                header("Content-Type", "text/event-stream"),
                header("Cache-Control", "no-cache"),
            ],
            events,
            None,
            None,
        );
        let _ = req.respond(response);
    })
}
