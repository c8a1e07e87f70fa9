//! `POST /v1/chat/completions` as OpenAI answers it: the request checked against what the
//! chat skill can do (its token budget, the context its host memory holds, the parameters it
//! supports: anything else is a 400, never ignored), `stop` sequences, `response_format`
//! (`text`; `json_object`: any JSON object; `json_schema`: a JSON value valid under the given
//! schema, always enforced strictly, token by token, by the host), unique completion ids, and
//! the stream of server-sent events, one per piece of text as the guest pulls tokens.

use crate::body::Body;
use crate::routes::{json_response, parse, skill_failure, Failure, Reply};
use crate::{ServeError, Shared, Skills};
use edgenlu::error::SkillError;
use edgenlu::{
    ChatRequest, ChatRole, ChatTurn, Constraint, FinishReason, Forward, SamplingParams, TextSink,
    WitError,
};
use hyper::body::Bytes;
use hyper::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Tokens a chat completion generates when the request says neither `max_tokens` nor
/// `max_completion_tokens` (documented in README.md, "edgenlu serve").
pub const DEFAULT_MAX_TOKENS: u32 = 128;

/// Most `stop` sequences a request may give, as OpenAI allows.
const MAX_STOP_SEQUENCES: usize = 4;

/// Server-sent events a stream may hold before the client has read them; past it the worker
/// waits (up to the I/O timeout) for the client to catch up.
const EVENTS_BUFFERED: usize = 64;

/// What a chat completion may ask of the chat skill.
pub(crate) struct ChatLimits {
    /// The most positions (prompt and completion) a generation can hold: the model's context,
    /// or less when the skill's host memory cannot hold a kv cache that long.
    pub context: usize,
    /// The skill's token budget per generation.
    pub max_tokens: u32,
}

impl ChatLimits {
    /// The limits of `skills.chat` over its decoder: the context from its host memory limit and
    /// the decoder's bytes per position, as the host charges a generation.
    pub(crate) fn of(skills: &Skills) -> Result<ChatLimits, ServeError> {
        let limits = &skills.chat.spec().skill.grants.limits;
        let failed = |reason: String| ServeError::Decoder {
            model: skills.decoder.clone(),
            reason,
        };
        let file = skills
            .nlu
            .runtime()
            .catalog()
            .get(&skills.decoder)
            .map_err(|e| failed(e.to_string()))?;
        let llama = edgenlu_models::llama::Llama::new(file).map_err(|e| failed(e.to_string()))?;
        Ok(ChatLimits {
            context: llama
                .config()
                .context_within(limits.host_memory, edgenlu::PREFILL_CHUNK),
            max_tokens: u32::try_from(limits.max_tokens).unwrap_or(u32::MAX),
        })
    }
}

/// OpenAI's refusal of a prompt and completion past `context`, word for word, so that clients
/// that handle it recognise it.
pub(crate) fn context_exceeded(context: u32, prompt_tokens: u32, max_tokens: u32) -> Failure {
    Failure {
        code: Some("context_length_exceeded"),
        param: Some("messages"),
        ..Failure::bad_request(format!(
            "This model's maximum context length is {context} tokens. However, you requested \
             {} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). \
             Please reduce the length of the messages or completion.",
            u64::from(prompt_tokens) + u64::from(max_tokens),
        ))
    }
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

/// `stop`: one sequence or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
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
    stop: Option<Stop>,
    // Parameters the chat skill has no way to honour: refused unless they ask for nothing.
    n: Option<u32>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    functions: Option<Value>,
    function_call: Option<Value>,
    parallel_tool_calls: Option<Value>,
    response_format: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    logit_bias: Option<serde_json::Map<String, Value>>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    audio: Option<Value>,
    modalities: Option<Vec<String>>,
    prediction: Option<Value>,
}

impl ChatBody {
    /// The first parameter asking for what the chat skill cannot do, and why.
    fn unsupported(&self) -> Option<(&'static str, &'static str)> {
        // Given, and not null or an empty list.
        let set = |v: &Option<Value>| {
            v.as_ref()
                .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        };
        let checks = [
            (
                self.n.is_some_and(|n| n != 1),
                "n",
                "one choice per request (n = 1)",
            ),
            (
                set(&self.tools) || set(&self.functions),
                if set(&self.functions) {
                    "functions"
                } else {
                    "tools"
                },
                "no tool or function calls",
            ),
            (
                self.tool_choice
                    .as_ref()
                    .is_some_and(|c| !c.is_null() && c != "none")
                    || self
                        .function_call
                        .as_ref()
                        .is_some_and(|c| !c.is_null() && c != "none"),
                if set(&self.function_call) {
                    "function_call"
                } else {
                    "tool_choice"
                },
                "no tool or function calls",
            ),
            (
                set(&self.parallel_tool_calls),
                "parallel_tool_calls",
                "no tool calls",
            ),
            (
                self.logprobs == Some(true) || self.top_logprobs.is_some(),
                if self.top_logprobs.is_some() {
                    "top_logprobs"
                } else {
                    "logprobs"
                },
                "no log probabilities",
            ),
            (
                self.logit_bias.as_ref().is_some_and(|b| !b.is_empty()),
                "logit_bias",
                "no logit bias",
            ),
            (
                self.frequency_penalty.is_some_and(|p| p != 0.0),
                "frequency_penalty",
                "no frequency penalty",
            ),
            (
                self.presence_penalty.is_some_and(|p| p != 0.0),
                "presence_penalty",
                "no presence penalty",
            ),
            (set(&self.audio), "audio", "text only"),
            (
                self.modalities
                    .as_ref()
                    .is_some_and(|m| m.iter().any(|m| m != "text")),
                "modalities",
                "text only",
            ),
            (set(&self.prediction), "prediction", "no predicted outputs"),
        ];
        checks
            .into_iter()
            .find_map(|(refused, param, only)| refused.then_some((param, only)))
    }
}

/// The constraint OpenAI's `response_format` asks for: none for `text` (or no format),
/// any JSON object for `json_object`, the schema of `json_schema` (which must have a `name`
/// of at most 64 letters, digits, `_` and `-`, and a `schema` object; `strict` may be either:
/// the host always enforces the schema).
fn response_constraint(format: Option<&Value>) -> Result<Option<Constraint>, Failure> {
    let bad = |message: String| Failure::bad_param("response_format", "invalid_value", message);
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Constraint::JsonSchema(
            json!({"type": "object"}).to_string(),
        ))),
        Some("json_schema") => {
            let spec = &format["json_schema"];
            let name_ok = spec["name"].as_str().is_some_and(|n| {
                (1..=64).contains(&n.len())
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
            if !name_ok {
                return Err(bad("response_format.json_schema.name must be 1 to 64 letters,                      digits, underscores or dashes"
                    .into()));
            }
            if !spec["strict"].is_null() && !spec["strict"].is_boolean() {
                return Err(bad(
                    "response_format.json_schema.strict must be a boolean".into()
                ));
            }
            match &spec["schema"] {
                schema @ Value::Object(_) => Ok(Some(Constraint::JsonSchema(schema.to_string()))),
                _ => Err(bad(
                    "response_format.json_schema.schema must be a JSON schema object".into(),
                )),
            }
        }
        other => Err(bad(format!(
            "response_format.type must be text, json_object or json_schema, not {}",
            other.map_or("missing".into(), |t| format!("{t:?}"))
        ))),
    }
}

/// Refuses, before the skill runs, a `response_format` whose schema the host cannot enforce
/// (invalid, too large, too deep, past the parser's limits), with the compiler's reason: a
/// 400 naming `response_format` rather than a failed generation. The decoder's token
/// environment is the one the chat skill's generations share.
fn check_constraint(shared: &Shared, chat: &Chat) -> Result<(), Failure> {
    let Some(constraint) = &chat.request.constraint else {
        return Ok(());
    };
    let catalog = shared.skills.nlu.runtime().catalog();
    let vocab = catalog
        .get(&shared.skills.decoder)
        .map_err(|e| e.to_string())
        .and_then(|file| catalog.constraint_vocab(&file).map_err(|e| e.to_string()))
        .map_err(|e| Failure::new(500, "server_error", e))?;
    vocab
        .compile(&constraint.into())
        .map(drop)
        .map_err(|e| Failure::bad_param("response_format", "invalid_value", e.to_string()))
}

/// A chat completion for the skill: the conversation's earlier turns, the request, and the
/// sequences that end it.
pub(crate) struct Chat {
    history: Vec<ChatTurn>,
    request: ChatRequest,
    stop: Vec<String>,
    /// The field `max_tokens` came from (`max_completion_tokens` or `max_tokens`).
    max_tokens_param: &'static str,
}

/// The skill request for an OpenAI chat body: the system and developer messages (joined, in
/// order) as the template's system turn; the user and assistant messages as the conversation,
/// which must end with the user's; greedy unless the client sets a temperature (a device
/// answers the same way every time unless asked otherwise).
fn chat_request(limits: &ChatLimits, body: &[u8]) -> Result<(Chat, bool), Failure> {
    let b: ChatBody = parse(body)?;
    if let Some((param, only)) = b.unsupported() {
        return Err(Failure::bad_param(
            param,
            "unsupported_parameter",
            format!("{param} is not supported: this server generates {only}"),
        ));
    }
    let stop = match b.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > MAX_STOP_SEQUENCES || stop.iter().any(String::is_empty) {
        return Err(Failure::bad_param(
            "stop",
            "invalid_value",
            format!("stop takes up to {MAX_STOP_SEQUENCES} non-empty sequences"),
        ));
    }
    let (max_tokens, param) = match (b.max_completion_tokens, b.max_tokens) {
        (Some(n), _) => (n, "max_completion_tokens"),
        (None, Some(n)) => (n, "max_tokens"),
        (None, None) => (DEFAULT_MAX_TOKENS.min(limits.max_tokens), "max_tokens"),
    };
    if max_tokens == 0 {
        return Err(Failure::bad_param(
            param,
            "invalid_value",
            format!("{param} must be at least 1"),
        ));
    }
    let (mut system, mut turns) = (Vec::new(), Vec::new());
    for m in b.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => {
                system.push(m.content);
                continue;
            }
            "user" => ChatRole::User,
            "assistant" => ChatRole::Assistant,
            other => {
                return Err(Failure::bad_param(
                    "messages",
                    "invalid_value",
                    format!("messages of role {other:?} are not supported"),
                ))
            }
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
        Some(_) => return Err(Failure::bad_request("the last message must be the user's")),
        None => return Err(Failure::bad_request("no user message")),
    };
    let constraint = response_constraint(b.response_format.as_ref())?;
    let request = ChatRequest {
        prompt,
        template: true,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        max_tokens,
        sampling: SamplingParams {
            temperature: b.temperature.unwrap_or(0.0),
            top_p: b.top_p.unwrap_or(1.0),
            seed: b.seed.unwrap_or(0),
            ..SamplingParams::GREEDY
        },
        forward: Forward::Fused,
        constraint,
    };
    let chat = Chat {
        history: turns,
        request,
        stop,
        max_tokens_param: param,
    };
    Ok((chat, b.stream))
}

/// Refuses a completion longer than the skill's token budget: as past the context when the
/// conversation and `max_tokens` are (OpenAI's first complaint), else for `max_tokens`.
fn check_budget(shared: &Shared, chat: &Chat) -> Result<(), Failure> {
    let (max_tokens, budget) = (chat.request.max_tokens, shared.chat_limits.max_tokens);
    if max_tokens <= budget {
        return Ok(());
    }
    let context = shared.chat_limits.context;
    if let Some(prompt_tokens) = prompt_tokens(shared, chat) {
        if prompt_tokens as usize + max_tokens as usize > context {
            return Err(context_exceeded(context as u32, prompt_tokens, max_tokens));
        }
    }
    let param = chat.max_tokens_param;
    Err(Failure::bad_param(
        param,
        "invalid_value",
        format!(
            "{param} is too large: {max_tokens}. This model supports at most {budget} completion \
             tokens, whereas you provided {max_tokens}."
        ),
    ))
}

/// How a failed chat looks over HTTP. A budget refusal before anything was generated may be
/// the kv cache not fitting the host memory: when the conversation and `max_tokens` are past
/// the context the host holds, that is the client's request (400), not a busy server (503).
fn chat_failure(shared: &Shared, chat: &Chat, e: SkillError) -> Failure {
    let context = shared.chat_limits.context;
    let budget = matches!(
        e,
        SkillError::Memory(_) | SkillError::Guest(WitError::BudgetExceeded(_))
    );
    if budget {
        if let Some(prompt_tokens) = prompt_tokens(shared, chat) {
            let max_tokens = chat.request.max_tokens;
            if prompt_tokens as usize + max_tokens as usize > context {
                return context_exceeded(context as u32, prompt_tokens, max_tokens);
            }
        }
    }
    match e {
        // The guest measures against the model's context; the host holds less.
        SkillError::ContextLength(o) => {
            context_exceeded(o.context.min(context as u32), o.prompt_tokens, o.max_tokens)
        }
        e => skill_failure(shared, e),
    }
}

/// The conversation's prompt tokens as the chat skill's template makes them: asked for more
/// tokens than any model's context, the skill refuses (typed, with the count) before it
/// generates anything.
fn prompt_tokens(shared: &Shared, chat: &Chat) -> Option<u32> {
    let probe = ChatRequest {
        max_tokens: u32::MAX,
        ..chat.request.clone()
    };
    match shared
        .skills
        .chat
        .chat_with_history(&chat.history, &probe, None)
    {
        Err(SkillError::ContextLength(o)) => Some(o.prompt_tokens),
        _ => None,
    }
}

/// A completion id never given before, by this process or an earlier one: a hash of the
/// clock at the server's start, the process and a counter.
fn completion_id() -> String {
    static STARTED: std::sync::OnceLock<(u128, u32)> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (nanos, pid) = *STARTED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        (nanos, std::process::id())
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(pid.to_le_bytes());
    h.update(n.to_le_bytes());
    let hex: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("chatcmpl-{hex}")
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

/// Text released as it is generated, ending before the first `stop` sequence: text that may be
/// the start of one is held until the next piece tells.
struct StopText {
    stop: Vec<String>,
    held: String,
    stopped: bool,
}

impl StopText {
    fn new(stop: Vec<String>) -> StopText {
        StopText {
            stop,
            held: String::new(),
            stopped: false,
        }
    }

    /// Takes the next piece; returns the text that can go out now.
    fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.held.push_str(piece);
        if let Some(at) = self.stop.iter().filter_map(|s| self.held.find(s)).min() {
            self.stopped = true;
            self.held.truncate(at);
            return std::mem::take(&mut self.held);
        }
        // Hold the longest end of the text that begins a stop sequence.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stop.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let rest = self.held.split_off(keep);
        std::mem::replace(&mut self.held, rest)
    }

    /// The generation ended: what is still held goes out, unless a stop sequence ended it.
    fn finish(&mut self) -> String {
        if self.stopped {
            String::new()
        } else {
            std::mem::take(&mut self.held)
        }
    }

    /// The finish reason: "stop" once a stop sequence was seen, else the generation's.
    fn reason(&self, f: FinishReason) -> &'static str {
        if self.stopped {
            "stop"
        } else {
            finish_reason(f)
        }
    }
}

/// `/v1/chat/completions`: the whole completion, or the chat to stream.
pub(crate) fn completion(shared: &Shared, body: &[u8]) -> Result<Reply, Failure> {
    let (chat, stream) = chat_request(&shared.chat_limits, body)?;
    check_budget(shared, &chat)?;
    check_constraint(shared, &chat)?;
    if stream {
        return Ok(Reply::Stream(chat));
    }
    let r = shared
        .skills
        .chat
        .chat_with_history(&chat.history, &chat.request, None)
        .map_err(|e| chat_failure(shared, &chat, e))?;
    let u = &r.usage;
    shared
        .metrics
        .tokens
        .fetch_add(u.generated_tokens as u64, Ordering::Relaxed);
    let mut text = StopText::new(chat.stop);
    let content = text.push(&r.text) + &text.finish();
    Ok(Reply::Json(json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": unix_now(),
        "model": shared.skills.decoder,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": text.reason(r.finish),
        }],
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.generated_tokens,
            "total_tokens": u.prompt_tokens + u.generated_tokens,
        },
    })))
}

/// One `data:` event.
fn event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The stream's side on the worker: the response is sent with the first event (so that a
/// request refused before generating gets its status and error, as OpenAI's does), then each
/// event is handed to the connection as it comes, waiting for a slow client up to the I/O
/// timeout. A client gone or stalled past it gets nothing more.
struct Events {
    shared: Arc<Shared>,
    /// Until the response is sent: where it goes, and its body's receiving end.
    respond: Option<(oneshot::Sender<Response<Body>>, mpsc::Receiver<Bytes>)>,
    tx: Option<mpsc::Sender<Bytes>>,
    id: String,
    created: u64,
    text: StopText,
    /// The route and arrival of the request, counted in the metrics when the stream ends.
    route: &'static str,
    start: Instant,
    /// Whether `[DONE]` went out (a stop sequence ends the stream before the generation).
    ended: bool,
}

impl Events {
    fn chunk(&self, delta: Value, finish: Value) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.shared.skills.decoder,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
        .to_string()
    }

    fn started(&self) -> bool {
        self.respond.is_none()
    }

    /// Sends `data` as the next event, starting the response (200) if it has not started.
    fn send(&mut self, data: &str) {
        if let Some((respond, rx)) = self.respond.take() {
            let role = self.chunk(json!({ "role": "assistant", "content": "" }), Value::Null);
            if let Some(tx) = &self.tx {
                // The channel is empty: both fit.
                let _ = tx.try_send(event(&role));
            }
            let response = Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(Body::Events(rx))
                .expect("a valid response");
            if respond.send(response).is_err() {
                self.tx = None;
            }
        }
        let Some(tx) = self.tx.as_ref().filter(|tx| !tx.is_closed()) else {
            // The connection closed (and with the last one, the runtime may have stopped).
            self.tx = None;
            return;
        };
        let timeout = self.shared.io_timeout;
        let sent = self
            .shared
            .io
            .block_on(async { tokio::time::timeout(timeout, tx.send(event(data))).await });
        if !matches!(sent, Ok(Ok(()))) {
            // The client left, or stopped reading: the generation runs on unseen.
            self.tx = None;
        }
    }

    /// A piece of generated text: its chunk, unless it is held for a stop sequence; at a stop
    /// sequence, the end of the stream.
    fn text(&mut self, piece: &str) {
        if self.ended {
            return;
        }
        let out = self.text.push(piece);
        if !out.is_empty() {
            let chunk = self.chunk(json!({ "content": out }), Value::Null);
            self.send(&chunk);
        }
        if self.text.stopped {
            let last = self.chunk(json!({}), json!("stop"));
            self.end(&last);
        }
    }

    /// The generation ended: the held text and the finish reason, unless the stream already
    /// ended at a stop sequence.
    fn finish(&mut self, finish: FinishReason) {
        if self.ended {
            return;
        }
        let rest = self.text.finish();
        if !rest.is_empty() {
            let chunk = self.chunk(json!({ "content": rest }), Value::Null);
            self.send(&chunk);
        }
        let last = self.chunk(json!({}), json!(self.text.reason(finish)));
        self.end(&last);
    }

    /// Counts the request (a started stream is a 200 whatever follows), then sends `last` and
    /// `[DONE]` and closes the stream.
    fn end(&mut self, last: &str) {
        self.shared
            .metrics
            .observe(self.route, 200, self.start.elapsed());
        self.send(last);
        self.send("[DONE]");
        self.tx = None;
        self.ended = true;
    }
}

/// Streams a chat completion as server-sent events: one `chat.completion.chunk` per piece of
/// text as the guest pulls tokens (each written and flushed on its own), a last chunk with the
/// finish reason (or an error object), then `[DONE]`. A stop sequence ends the stream there;
/// the skill has no way to be stopped from its sink, so it generates on unseen, holding its
/// worker. Records the request in the metrics before the client can see the end of the
/// stream.
pub(crate) fn stream(
    shared: &Arc<Shared>,
    chat: &Chat,
    route: &'static str,
    start: Instant,
    respond: oneshot::Sender<Response<Body>>,
) {
    let (tx, rx) = mpsc::channel(EVENTS_BUFFERED);
    let events = Arc::new(Mutex::new(Events {
        shared: shared.clone(),
        respond: Some((respond, rx)),
        tx: Some(tx),
        id: completion_id(),
        created: unix_now(),
        text: StopText::new(chat.stop.clone()),
        route,
        start,
        ended: false,
    }));
    let sink_events = events.clone();
    // Called by the skill on this thread, as the guest pulls each token.
    let sink: TextSink = Box::new(move |text| {
        if !text.is_empty() {
            sink_events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .text(text);
        }
    });
    let result = shared
        .skills
        .chat
        .chat_with_history(&chat.history, &chat.request, Some(sink));
    let mut events = events.lock().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(r) => {
            shared
                .metrics
                .tokens
                .fetch_add(r.usage.generated_tokens as u64, Ordering::Relaxed);
            events.finish(r.finish);
        }
        Err(e) => {
            let f = chat_failure(shared, chat, e);
            if events.started() {
                // The error is the stream's last event.
                if !events.ended {
                    events.end(&f.body().to_string());
                }
            } else {
                shared.metrics.observe(route, f.status, start.elapsed());
                if let Some((respond, _)) = events.respond.take() {
                    let _ = respond.send(json_response(f.status, &f.body()));
                }
            }
        }
    }
}
