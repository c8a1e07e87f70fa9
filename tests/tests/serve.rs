//! `edgenlu serve` on loopback: every route with a plain HTTP/1.1 client, the official
//! `openai` Python client (embeddings, chat, streamed chat), the limits (413, 503, 400) and a
//! graceful shutdown that finishes the request in flight.

use edgenlu::bundled::{chat_limits, chat_skill, DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::{ChatRequest, ChatRole, ChatTurn, SamplingParams};
use edgenlu_device::router::Route;
use edgenlu_serve::{LivePipeline, ServeConfig, Server};
use edgenlu_tests::{
    build_snips_index, domain_indexes, http, intents, pipeline_over, require_model, runtime, serve,
    start_server, store,
};
use edgenlu_trust::skills::SkillStore;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A small SNIPS datastore for the intents skill (built once per test binary).
fn index() -> &'static str {
    static INDEX: OnceLock<&'static str> = OnceLock::new();
    INDEX.get_or_init(|| {
        let name = "test-serve-snips";
        build_snips_index(name, 20, "tests/serve.rs");
        name
    })
}

fn start(config: ServeConfig) -> Server {
    start_server(&config, index())
}

fn config() -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        ..ServeConfig::default()
    }
}

fn post(addr: SocketAddr, path: &str, v: Value) -> (u16, Value) {
    let (status, body) = http(addr, "POST", path, v.to_string().as_bytes());
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A reply of `tokens` under a cap of `max`: at most `max`, "length" exactly when the cap
/// cut it, else "stop" (the model ended its turn; a short answer may well fit in `max`).
fn assert_finish(tokens: u64, finish: &Value, max: u64) {
    assert!((1..=max).contains(&tokens), "{tokens} tokens, cap {max}");
    let want = if tokens == max { "length" } else { "stop" };
    assert_eq!(finish, want, "{tokens} tokens, cap {max}");
}

/// The chunks of a streamed completion and the text they carry; fails unless the stream
/// ends with `[DONE]` and every other event is a JSON chunk.
fn sse_chunks(sse: &str) -> (Vec<Value>, String) {
    let events: Vec<&str> = sse
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{sse}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (chunks, text)
}

fn chat_body(stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 12, "stream": stream})
}

#[test]
fn every_route_answers() {
    let server = start(config());
    let addr = server.addr();
    assert_eq!(http(addr, "GET", "/healthz", b""), (200, "ok\n".into()));

    let (status, v) = post(
        addr,
        "/v1/nlu",
        json!({"text": "play some jazz by miles davis"}),
    );
    assert_eq!(status, 200);
    assert_eq!(v["response"]["intent"], "PlayMusic");

    let (status, v) = post(
        addr,
        "/v1/embeddings",
        json!({"input": ["play some jazz", "hi"]}),
    );
    assert_eq!(status, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let e: Vec<f64> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(e.len(), 384);
    assert!((e.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-3);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 4);

    let (status, whole) = post(addr, "/v1/chat/completions", chat_body(false));
    assert_eq!(status, 200);
    let text = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!text.is_empty());
    let completion_tokens = whole["usage"]["completion_tokens"].as_u64().unwrap();
    assert_finish(completion_tokens, &whole["choices"][0]["finish_reason"], 12);

    // A system message replaces the template's default system turn: a different prompt.
    let mut with_system = chat_body(false);
    with_system["messages"] = json!([
        {"role": "system", "content": "Answer in French, in one word."},
        {"role": "user", "content": "What is the capital of France?"},
    ]);
    let (status, v) = post(addr, "/v1/chat/completions", with_system);
    assert_eq!(status, 200);
    let tokens = |v: &Value| v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_ne!(tokens(&v), tokens(&whole), "the system message was ignored");
    assert!(
        tokens(&v) < tokens(&whole),
        "{} vs {}",
        tokens(&v),
        tokens(&whole)
    );
    let system_completion_tokens = v["usage"]["completion_tokens"].as_u64().unwrap();

    // Streamed: the same greedy text, in chunks, then a finish reason and [DONE].
    let (status, sse) = http(
        addr,
        "POST",
        "/v1/chat/completions",
        chat_body(true).to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let (chunks, streamed) = sse_chunks(&sse);
    assert_eq!(streamed, text);
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    assert_finish(
        completion_tokens,
        &chunks.last().unwrap()["choices"][0]["finish_reason"],
        12,
    );

    let (status, models) = http(addr, "GET", "/v1/models", b"");
    assert_eq!(status, 200);
    assert!(models.contains(DEFAULT_DECODER) && models.contains(DEFAULT_ENCODER));

    // Bad requests: typed errors with OpenAI's error shape.
    let (status, body) = http(addr, "POST", "/v1/nlu", b"{not json");
    assert_eq!(status, 400);
    assert!(body.contains("\"error\""));
    assert_eq!(http(addr, "GET", "/nope", b"").0, 404);
    let (status, _) = post(addr, "/v1/chat/completions", json!({"messages": []}));
    assert_eq!(status, 400);

    let (status, metrics) = http(addr, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("edgenlu_requests_total{route=\"/v1/nlu\",status=\"200\"} 1"));
    assert!(metrics.contains("edgenlu_requests_total{route=\"/v1/nlu\",status=\"400\"} 1"));
    // Three completions (whole, with a system message, streamed: greedy, so the streamed one
    // is as long as the whole one) and a bad one.
    let generated = 2 * completion_tokens + system_completion_tokens;
    assert!(
        metrics.contains(&format!("edgenlu_generated_tokens_total {generated}\n")),
        "{generated} tokens generated:\n{metrics}"
    );
    assert!(metrics.contains("edgenlu_request_seconds_count{route=\"/v1/chat/completions\"} 4"));
    server.shutdown();
}

#[test]
fn oversized_bodies_and_a_full_queue_are_refused() {
    let server = start(ServeConfig {
        workers: 1,
        queue: 1,
        max_body: 1024,
        ..config()
    });
    let addr = server.addr();
    let big = json!({"text": "x".repeat(4096)}).to_string();
    assert_eq!(http(addr, "POST", "/v1/nlu", big.as_bytes()).0, 413);

    // Six chat requests at once against one worker and a queue of one: one runs, one waits,
    // the rest are refused at once with 503; the accepted ones finish.
    let body =
        json!({"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 40});
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || post(addr, "/v1/chat/completions", body).0)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + busy, 6, "{statuses:?}");
    assert!(ok >= 1 && busy >= 1, "{statuses:?}");
    let (_, metrics) = http(addr, "GET", "/metrics", b"");
    assert!(
        metrics.contains(&format!("edgenlu_rejected_total {busy}")),
        "{metrics}"
    );
    assert_eq!(http(addr, "GET", "/healthz", b"").0, 200);
    server.shutdown();
}

#[test]
fn shutdown_drains_the_request_in_flight() {
    let server = start(config());
    let addr = server.addr();
    let body =
        json!({"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 60});
    let in_flight = std::thread::spawn(move || post(addr, "/v1/chat/completions", body));
    std::thread::sleep(Duration::from_millis(200));
    server.shutdown();
    let (status, v) = in_flight.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["usage"]["completion_tokens"], 60);
    // Nothing answers any more (the socket may still take a connection until it closes).
    let answered = TcpStream::connect(addr).is_ok_and(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if n > 0)
    });
    assert!(!answered, "a request after shutdown was answered");
}

#[test]
fn the_official_openai_client_works_against_it() {
    let server = start(config());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/serve/openai_client_check.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg("--base-url")
        .arg(format!("http://{}/v1", server.addr()))
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "the openai client failed (install it: python3 -m pip install -r scripts/serve/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("openai client {}: {v}", v["openai_version"]);
    assert_eq!(v["embedding_count"], 2);
    assert_eq!(v["embedding_dims"], 384);
    assert!(!v["chat_text"].as_str().unwrap().is_empty());
    assert_finish(
        v["chat_completion_tokens"].as_u64().unwrap(),
        &v["chat_finish"],
        12,
    );
    let prompt_tokens = |k: &str| v[k].as_u64().unwrap();
    assert!(
        prompt_tokens("multi_turn_prompt_tokens") > prompt_tokens("chat_prompt_tokens"),
        "the earlier turns of a conversation were dropped: {v}"
    );
    assert_eq!(
        v["stream_text"], v["chat_text"],
        "streamed and whole greedy text agree"
    );
    assert_eq!(v["stream_finish"], v["chat_finish"]);
    assert!(v["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == DEFAULT_DECODER));
    server.shutdown();
}

/// Installing a new version of the served skill while requests keep coming: every request is
/// answered, and the new version is what answers afterwards.
#[test]
fn a_hot_swap_under_load_loses_no_request() {
    use edgenlu_trust::dev;
    require_model(DEFAULT_ENCODER);
    require_model(DEFAULT_DECODER);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dir = std::env::temp_dir().join(format!("edgenlu-serve-swap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let skills = SkillStore::at(&dir).unwrap();
    dev::trust_dev(skills.trust(), now).unwrap();
    let install = |version| {
        let m = dev::intents_manifest(DEFAULT_ENCODER, index(), version);
        skills
            .install(&edgenlu_device::installed::signed_intents(&m).unwrap(), now)
            .unwrap();
    };
    install(1);
    let rt = runtime();
    // As `edgenlu serve --skill intents` starts it: the pipeline over the installed skill.
    let route = Route::installed(&skills, &rt, "intents").unwrap();
    let server = serve(
        &config(),
        LivePipeline::new(
            pipeline_over(vec![route]),
            SkillStore::at(&dir).unwrap(),
            rt,
        ),
    );
    let addr = server.addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (status, v) = post(addr, "/v1/nlu", json!({"text": "play some jazz"}));
                    assert_eq!(v["response"]["intent"], "PlayMusic");
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    install(2);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(statuses.len() > 10, "{} requests", statuses.len());
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let (_, metrics) = http(addr, "GET", "/metrics", b"");
    assert!(
        metrics.contains("edgenlu_skill_version{skill=\"intents\"} 2"),
        "{metrics}"
    );
    eprintln!("{} requests across the swap, all answered", statuses.len());
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/v1/nlu` answers through the pipeline: the router sends each utterance to the skill that
/// knows its domain, and the answer carries the skill, the policy's verdict, the template
/// reply (no phrasing unless asked) and the stage times; /metrics reports each route.
#[test]
fn nlu_routes_between_skills_and_returns_the_verdict() {
    let [music, weather] = domain_indexes();
    let rt = runtime();
    let routes = vec![
        Route::new("music", intents(Some(music)), true, rt.catalog()).unwrap(),
        Route::new("weather", intents(Some(weather)), true, rt.catalog()).unwrap(),
    ];
    let skills = SkillStore::at(store().root()).unwrap();
    let server = serve(
        &config(),
        LivePipeline::new(pipeline_over(routes), skills, rt),
    );
    let addr = server.addr();
    for (text, skill, intent) in [
        (
            "add this song to my workout playlist",
            "music",
            "AddToPlaylist",
        ),
        ("will it rain tomorrow in paris", "weather", "GetWeather"),
    ] {
        let (status, v) = post(addr, "/v1/nlu", json!({ "text": text }));
        assert_eq!(status, 200, "{v}");
        let r = &v["response"];
        assert_eq!(r["skill"], skill, "{v}");
        assert_eq!(r["intent"], intent, "{v}");
        assert_eq!(r["verdict"]["decision"], "Local", "{v}");
        assert_eq!(r["path"], "Template", "{v}");
        assert!(
            r["reply"]
                .as_str()
                .unwrap()
                .starts_with(&format!("OK: {intent}")),
            "{v}"
        );
        assert!(r["out_of_scope"]
            .as_f64()
            .is_some_and(|o| (0.0..=1.0).contains(&o)));
        let stages: Vec<&str> = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["stage"].as_str().unwrap())
            .collect();
        assert_eq!(
            stages,
            ["tokenize", "embed", "search", "head", "policy", "template"]
        );
    }
    // The policy refuses an utterance longer than its max-chars (1000 by default).
    let long = "play some jazz ".repeat(80);
    let (status, v) = post(addr, "/v1/nlu", json!({ "text": long }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["response"]["verdict"]["decision"], "Reject", "{v}");
    assert_eq!(v["response"]["path"], "Rejected", "{v}");
    assert!(v["response"]["reply"].is_null(), "{v}");
    // The request's device state overrides the server's: with no network (and no uplink), a
    // local answer still.
    let (status, v) = post(
        addr,
        "/v1/nlu",
        json!({ "text": "play some jazz", "network": "down", "battery": 5 }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["response"]["skill"], "music", "{v}");

    let (_, metrics) = http(addr, "GET", "/metrics", b"");
    for route in ["music", "weather"] {
        assert!(
            metrics.contains(&format!("edgenlu_skill_version{{skill=\"{route}\"}} 0")),
            "{metrics}"
        );
    }
    let (_, models) = http(addr, "GET", "/v1/models", b"");
    assert!(
        models.contains("\"music\"") && models.contains("\"weather\""),
        "{models}"
    );
    server.shutdown();
}

/// SmolLM2's ChatML for `turns` after its default system turn, open for the assistant.
fn chatml(turns: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n",
    );
    for (role, content) in turns {
        text.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
    }
    text + "<|im_start|>assistant\n"
}

/// A conversation reaches the model whole: the chat skill conditions on exactly the ChatML of
/// every turn (the assistant's included), over HTTP as through the library; a request past the
/// model's context is refused as OpenAI refuses it, streamed or not.
#[test]
fn chat_completions_carry_the_whole_conversation() {
    require_model(DEFAULT_DECODER);
    let turns = [
        ("user", "What is the capital of France?"),
        ("assistant", "The capital of France is Paris."),
        ("user", "And what about Italy?"),
    ];
    let chat = runtime()
        .load_skill(chat_skill(DEFAULT_DECODER, chat_limits()))
        .unwrap();
    let expected = chat.tokenize(&[chatml(&turns)]).unwrap().remove(0);
    let history: Vec<ChatTurn> = turns[..2]
        .iter()
        .map(|(role, content)| ChatTurn {
            role: if *role == "user" {
                ChatRole::User
            } else {
                ChatRole::Assistant
            },
            content: content.to_string(),
        })
        .collect();
    let request = ChatRequest {
        prompt: turns[2].1.into(),
        template: true,
        system: None,
        max_tokens: 4,
        sampling: SamplingParams::GREEDY,
        forward: edgenlu::Forward::Fused,
        constraint: None,
    };
    let r = chat.chat_with_history(&history, &request, None).unwrap();
    assert_eq!(
        r.prompt_ids, expected,
        "the prompt is not the conversation's ChatML"
    );

    let server = start(config());
    let addr = server.addr();
    let messages: Vec<Value> = turns
        .iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    let ask = |messages: &[Value]| {
        let (status, v) = post(
            addr,
            "/v1/chat/completions",
            json!({ "messages": messages, "max_tokens": 4 }),
        );
        assert_eq!(status, 200, "{v}");
        v["usage"]["prompt_tokens"].as_u64().unwrap()
    };
    let whole = ask(&messages);
    assert_eq!(whole, expected.len() as u64);
    assert!(
        whole > ask(&messages[2..]),
        "the earlier turns were dropped"
    );
    assert_eq!(ask(&messages), whole, "not deterministic");

    // A conversation must end with the user's turn.
    let (status, _) = post(
        addr,
        "/v1/chat/completions",
        json!({ "messages": &messages[..2] }),
    );
    assert_eq!(status, 400);

    // A role the chat template has no turn for is refused, not dropped.
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        json!({ "messages": [{"role": "tool", "content": "42"}, {"role": "user", "content": "hi"}] }),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("\"tool\""),
        "{v}"
    );

    // The prompt and max_tokens past SmolLM2's 8192-token context.
    for stream in [false, true] {
        let body = json!({ "messages": messages, "max_tokens": 8192, "stream": stream });
        let (status, v) = post(addr, "/v1/chat/completions", body);
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "({whole} in the messages, 8192 in the completion)"
            )),
            "{message}"
        );
    }
    server.shutdown();
}

/// A streamed completion arrives token by token: each piece of text is its own event, written
/// and flushed as the guest pulls its token, so the events come in many reads spread over
/// the whole generation (not a few 8 KiB bursts).
#[test]
fn a_streamed_completion_arrives_token_by_token() {
    let server = start(config());
    let body = json!({
        "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
        "max_tokens": 48, "stream": true,
    })
    .to_string();
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let sent = Instant::now();
    let (mut raw, mut buf) = (Vec::new(), vec![0u8; 1 << 16]);
    // When each content event arrived, and how many reads brought at least one.
    let (mut arrivals, mut reads) = (Vec::new(), 0);
    let content_events = |raw: &[u8]| {
        String::from_utf8_lossy(raw)
            .matches("\"delta\":{\"content\"")
            .count()
    };
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let before = content_events(&raw);
        raw.extend_from_slice(&buf[..n]);
        let now = content_events(&raw);
        if now > before {
            reads += 1;
            arrivals.extend(std::iter::repeat_n(sent.elapsed(), now - before));
        }
    }
    let done = sent.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("data: [DONE]"), "{text}");
    let (first, last) = (arrivals[0], *arrivals.last().unwrap());
    let span = last - first;
    let widest_gap = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "{} content events in {reads} reads; first at {first:?}, last at {last:?}, [DONE] at \
         {done:?}; widest gap between events {widest_gap:?}",
        arrivals.len()
    );
    assert!(arrivals.len() >= 20, "{} events", arrivals.len());
    assert!(
        reads * 4 >= arrivals.len() * 3,
        "{} events came in only {reads} reads",
        arrivals.len()
    );
    // Spread over the generation: no gap holds back a large part of it.
    assert!(widest_gap * 4 < span, "a gap of {widest_gap:?} in {span:?}");
    server.shutdown();
}

fn user(content: &str) -> Value {
    json!([{ "role": "user", "content": content }])
}

fn error_of(v: &Value) -> (&str, &str, &str) {
    let e = &v["error"];
    (
        e["type"].as_str().unwrap_or("?"),
        e["param"].as_str().unwrap_or("?"),
        e["code"].as_str().unwrap_or("?"),
    )
}

/// Limits of the chat skill come back as OpenAI's 400s, never a retryable 503: `max_tokens`
/// past the skill's token budget, and a conversation past the context the host holds (the
/// kv cache the chat skill's host memory has room for), which `/v1/models` advertises; a
/// request of exactly that context is served.
#[test]
fn chat_limits_are_refused_as_openai_refuses_them() {
    let server = start(config());
    let addr = server.addr();
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        json!({ "messages": user("Hi"), "max_tokens": 2000 }),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        error_of(&v),
        ("invalid_request_error", "max_tokens", "invalid_value")
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("1024"),
        "{v}"
    );

    let (_, models) = http(addr, "GET", "/v1/models", b"");
    let models: Value = serde_json::from_str(&models).unwrap();
    let decoder = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == DEFAULT_DECODER)
        .unwrap();
    let context = decoder["context_length"].as_u64().unwrap();
    assert_eq!(decoder["max_completion_tokens"], 1024);
    assert!(
        (1024..8192).contains(&context),
        "SmolLM2's 8192 or a context the host cannot hold: {context}"
    );

    // A prompt that leaves room for about 20 tokens.
    let prompt = "apple ".repeat(context as usize - 60);
    let mut prompt_tokens = 0;
    for stream in [false, true] {
        let (status, v) = post(
            addr,
            "/v1/chat/completions",
            json!({ "messages": user(&prompt), "max_tokens": 1000, "stream": stream }),
        );
        assert_eq!(status, 400, "{v}");
        assert_eq!(
            error_of(&v),
            (
                "invalid_request_error",
                "messages",
                "context_length_exceeded"
            )
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("maximum context length is {context} tokens")),
            "{message}"
        );
        prompt_tokens = message
            .split_once(" in the messages")
            .and_then(|(m, _)| m.rsplit_once('(')?.1.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{message}"));
    }
    let room = context - prompt_tokens;
    assert!((1..=100).contains(&room), "{prompt_tokens} prompt tokens");
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        json!({ "messages": user(&prompt), "max_tokens": room + 1 }),
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        json!({ "messages": user(&prompt), "max_tokens": room }),
    );
    assert_eq!(status, 200, "exactly the context: {v}");
    assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens);
    eprintln!("context {context}: {prompt_tokens} prompt tokens + {room} served, one more refused");
    server.shutdown();
}

/// `stop` (a string or a list of up to 4) ends the completion before the first stop
/// sequence, which is not returned, with finish_reason "stop"; streamed the same.
#[test]
fn stop_sequences_end_the_completion_before_them() {
    let server = start(config());
    let addr = server.addr();
    let (_, whole) = post(addr, "/v1/chat/completions", chat_body(false));
    let text = whole["choices"][0]["message"]["content"].as_str().unwrap();
    // A stop sequence from the middle of the greedy text.
    let mid = (text.len() / 2..text.len())
        .find(|&i| text.is_char_boundary(i) && text.is_char_boundary(i + 2))
        .unwrap();
    let stop = &text[mid..mid + 2];
    let want = &text[..text.find(stop).unwrap()];
    let mut body = chat_body(false);
    body["stop"] = json!(stop);
    let (status, v) = post(addr, "/v1/chat/completions", body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"], want,
        "{text:?} stop {stop:?}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let mut body = chat_body(true);
    body["stop"] = json!(["never-generated-1", stop, "never-generated-2"]);
    let (status, sse) = http(
        addr,
        "POST",
        "/v1/chat/completions",
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let (chunks, streamed) = sse_chunks(&sse);
    assert_eq!(streamed, want);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    let mut body = chat_body(false);
    body["stop"] = json!(["a", "b", "c", "d", "e"]);
    let (status, v) = post(addr, "/v1/chat/completions", body);
    assert_eq!(status, 400, "{v}");
    assert_eq!(error_of(&v).1, "stop");
    server.shutdown();
}

/// Parameters the chat skill cannot honour are refused with a 400 naming them, not ignored;
/// their do-nothing values are accepted.
#[test]
fn unsupported_chat_parameters_are_refused() {
    let server = start(config());
    let addr = server.addr();
    for (param, value) in [
        ("n", json!(2)),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ),
        ("tool_choice", json!("required")),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("logit_bias", json!({"42": -100})),
        ("presence_penalty", json!(0.5)),
    ] {
        let mut body = json!({ "messages": user("Hi"), "max_tokens": 2 });
        body[param] = value;
        let (status, v) = post(addr, "/v1/chat/completions", body);
        assert_eq!(status, 400, "{param}: {v}");
        assert_eq!(
            error_of(&v),
            ("invalid_request_error", param, "unsupported_parameter"),
            "{v}"
        );
    }
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        json!({
            "messages": user("Hi"), "max_tokens": 2, "n": 1, "tools": [], "tool_choice": "none",
            "response_format": {"type": "text"}, "logprobs": false, "presence_penalty": 0,
        }),
    );
    assert_eq!(status, 200, "{v}");
    server.shutdown();
}

/// Every completion, streamed or not, from this server or the next one, has its own id.
#[test]
fn completion_ids_are_never_repeated() {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let server = start(config());
        let addr = server.addr();
        for _ in 0..2 {
            let (status, v) = post(
                addr,
                "/v1/chat/completions",
                json!({ "messages": user("Hi"), "max_tokens": 1 }),
            );
            assert_eq!(status, 200, "{v}");
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        let body = json!({ "messages": user("Hi"), "max_tokens": 2, "stream": true });
        let (_, sse) = http(
            addr,
            "POST",
            "/v1/chat/completions",
            body.to_string().as_bytes(),
        );
        let chunk: Value = serde_json::from_str(
            sse.split("\n\n")
                .next()
                .unwrap()
                .strip_prefix("data: ")
                .unwrap(),
        )
        .unwrap();
        ids.push(chunk["id"].as_str().unwrap().to_string());
        server.shutdown();
    }
    eprintln!("{ids:?}");
    assert!(ids
        .iter()
        .all(|id| id.starts_with("chatcmpl-") && id.len() > 20));
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

/// A completion that does not say how long it may be gets the documented default of 128
/// tokens.
#[test]
fn a_completion_without_max_tokens_gets_the_documented_default() {
    let server = start(config());
    let (status, v) = post(
        server.addr(),
        "/v1/chat/completions",
        json!({ "messages": user("Write a very long story about a dragon and a knight.") }),
    );
    assert_eq!(status, 200, "{v}");
    assert_finish(
        v["usage"]["completion_tokens"].as_u64().unwrap(),
        &v["choices"][0]["finish_reason"],
        128,
    );
    server.shutdown();
}

/// `/v1/embeddings` embeds at most 64 inputs per request; past that, 400 naming `input`.
#[test]
fn embeddings_past_the_input_cap_are_refused() {
    let server = start(config());
    let addr = server.addr();
    let (status, v) = post(addr, "/v1/embeddings", json!({ "input": vec!["hi"; 65] }));
    assert_eq!(status, 400, "{v}");
    assert_eq!(error_of(&v).1, "input");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("64"),
        "{v}"
    );
    let (status, v) = post(addr, "/v1/embeddings", json!({ "input": vec!["hi"; 64] }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 64);
    server.shutdown();
}

/// A client that sends its body too slowly gets 408 after the I/O timeout (read on the
/// connection thread: no worker waits for it), and one that never finishes its request head is
/// closed after the idle timeout.
#[test]
fn slow_bodies_and_slow_heads_are_cut_off() {
    let server = start(ServeConfig {
        io_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(1000),
        workers: 1,
        ..config()
    });
    let addr = server.addr();
    let start = Instant::now();
    let mut body = TcpStream::connect(addr).unwrap();
    body.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        body,
        "POST /v1/nlu HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"text\": "
    )
    .unwrap();
    let mut head = TcpStream::connect(addr).unwrap();
    head.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    head.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // The only worker stays free meanwhile.
    let (status, v) = post(addr, "/v1/nlu", json!({"text": "play some jazz"}));
    assert_eq!(status, 200, "{v}");
    let mut answer = String::new();
    let _ = body.read_to_string(&mut answer);
    let body_cut = start.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let mut rest = Vec::new();
    let _ = head.read_to_end(&mut rest);
    let head_cut = start.elapsed();
    eprintln!(
        "slow body answered 408 after {body_cut:?}; unfinished head closed after {head_cut:?}: {}",
        String::from_utf8_lossy(&rest)
    );
    assert!(body_cut < Duration::from_secs(3), "{body_cut:?}");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&head_cut),
        "{head_cut:?}"
    );
    server.shutdown();
}

/// `response_format` through the real server: `json_schema` gives a reply that parses and
/// validates (plain and streamed, greedy and sampled), `json_object` a JSON object, and a
/// schema the host cannot enforce a 400 in OpenAI's error shape naming `response_format`;
/// also through the official `openai` client.
#[test]
fn response_format_gives_json_of_the_schema() {
    let server = start(config());
    let addr = server.addr();
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1, "maxLength": 24},
            "country": {"enum": ["France", "Italy", "Spain", "Germany"]},
            "landmarks": {"type": "array", "items": {"type": "string", "maxLength": 30},
                          "minItems": 1, "maxItems": 3}
        },
        "required": ["city", "country", "landmarks"],
        "additionalProperties": false
    });
    let format = json!({"type": "json_schema",
                        "json_schema": {"name": "city", "schema": schema, "strict": true}});
    let ask = |extra: Value| {
        let mut body = json!({
            "messages": [{"role": "user", "content": "Name a European capital and its landmarks, as JSON."}],
            "max_tokens": 200,
            "response_format": format,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for extra in [
        json!({}),
        json!({"temperature": 0.8, "seed": 3}),
        json!({"temperature": 0.8, "seed": 4}),
    ] {
        let (status, v) = post(addr, "/v1/chat/completions", ask(extra.clone()));
        assert_eq!(status, 200, "{v}");
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        let reply: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(
            edgenlu_tests::schema_check::violation(&reply, &schema),
            None,
            "{text}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{extra}: {text}");
        eprintln!("{extra}: {text}");
    }
    let (status, sse) = http(
        addr,
        "POST",
        "/v1/chat/completions",
        ask(json!({"stream": true})).to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let (_, text) = sse_chunks(&sse);
    let reply: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(
        edgenlu_tests::schema_check::violation(&reply, &schema),
        None,
        "{text}"
    );

    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        json!({
            "messages": [{"role": "user", "content":
            "Reply with a JSON object whose one key, \"answer\", holds the capital of France."}],
            "max_tokens": 200, "response_format": {"type": "json_object"},
        }),
    );
    assert_eq!(status, 200, "{v}");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    let reply: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(reply.is_object(), "{text}");

    let bad_formats = [
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "colour"}}}),
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": "not an object"}}),
        json!({"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}),
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema":
            (0..40).fold(json!({"type": "string"}), |s, _| json!({"type": "array", "items": s}))}}),
        json!({"type": "yaml"}),
    ];
    for format in bad_formats {
        let (status, v) = post(
            addr,
            "/v1/chat/completions",
            json!({
                "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "response_format": format,
            }),
        );
        assert_eq!(status, 400, "{format}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], "response_format", "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/serve/openai_structured_check.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg("--base-url")
        .arg(format!("http://{addr}/v1"))
        .arg("--schema")
        .arg(schema.to_string())
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let reply: Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(
        edgenlu_tests::schema_check::violation(&reply, &schema),
        None,
        "{text}"
    );
    server.shutdown();
}
