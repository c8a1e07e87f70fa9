//! Constrained decoding with the real SmolLM2 through the Wasm chat skill: a JSON schema (enums,
//! a nested object, an array, string length limits, integer bounds) gives text that parses and
//! validates, greedy and sampled with several seeds; a regex and a Lark grammar give text they
//! match; hostile constraints (huge, deeply nested, an empty language, a regex whose automaton
//! explodes, bad syntax) are refused with a typed `invalid-argument` at `start`, never a panic
//! or a hang; a vocabulary that is not byte-level BPE is refused naming its kind.

use edgenlu::bundled::{chat_limits, chat_skill, DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::{
    ChatRequest, ChatResponse, Constraint, FinishReason, Forward, SamplingParams, SkillError,
    WitError,
};
use edgenlu_models::{ConstraintError, ConstraintVocab, GgufFile};
use edgenlu_tests::schema_check::violation;
use edgenlu_tests::{edgenlu_in, require_model, runtime, store};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn chat() -> edgenlu::Skill {
    require_model(DEFAULT_DECODER);
    runtime()
        .load_skill(chat_skill(DEFAULT_DECODER, chat_limits()))
        .expect("loading the chat skill")
}

fn request(prompt: &str, sampling: SamplingParams, constraint: Constraint) -> ChatRequest {
    ChatRequest {
        prompt: prompt.into(),
        template: true,
        system: None,
        max_tokens: 256,
        sampling,
        forward: Forward::Fused,
        constraint: Some(constraint),
    }
}

fn sampled(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        seed,
        ..SamplingParams::GREEDY
    }
}

/// A pet record: enums, a nested object, an array with a size range, strings with length
/// limits, an integer range.
fn pet_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 12},
            "kind": {"enum": ["cat", "dog", "parrot", "rabbit"]},
            "age": {"type": "integer", "minimum": 0, "maximum": 30},
            "owner": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 20},
                    "city": {"type": "string", "minLength": 1, "maxLength": 20}
                },
                "required": ["name", "city"],
                "additionalProperties": false
            },
            "tricks": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 16},
                "minItems": 1,
                "maxItems": 3
            }
        },
        "required": ["name", "kind", "age", "owner", "tricks"],
        "additionalProperties": false
    })
}

/// The reply as JSON valid under `schema`, or the reason it is not.
fn check_json(r: &ChatResponse, schema: &Value) -> Result<Value, String> {
    let v: Value =
        serde_json::from_str(&r.text).map_err(|e| format!("{:?} does not parse: {e}", r.text))?;
    match violation(&v, schema) {
        None => Ok(v),
        Some(why) => Err(format!("{:?} is not valid: {why}", r.text)),
    }
}

#[test]
fn a_json_schema_gives_valid_json_greedy_and_sampled() {
    let skill = chat();
    let schema = pet_schema();
    let prompt = "Describe a pet and its owner as JSON.";
    let mut kinds = Vec::new();
    for sampling in [
        SamplingParams::GREEDY,
        sampled(1),
        sampled(2),
        sampled(3),
        sampled(4),
    ] {
        let req = request(prompt, sampling, Constraint::JsonSchema(schema.to_string()));
        let r = skill.chat(&req, None).expect("a constrained generation");
        assert_eq!(
            r.finish,
            FinishReason::Stop,
            "seed {}: the value was complete before max-tokens: {:?}",
            sampling.seed,
            r.text
        );
        let v = check_json(&r, &schema).unwrap_or_else(|e| panic!("seed {}: {e}", sampling.seed));
        eprintln!(
            "seed {} ({} tokens): {}",
            sampling.seed,
            r.ids.len(),
            r.text
        );
        kinds.push(v["kind"].clone());
    }
    // The same free prompt without the constraint is not this JSON: the constraint did it.
    let mut free = request(
        prompt,
        SamplingParams::GREEDY,
        Constraint::Regex(String::new()),
    );
    free.constraint = None;
    free.max_tokens = 64;
    let r = skill.chat(&free, None).unwrap();
    assert!(
        check_json(&r, &schema).is_err(),
        "unconstrained, the model already wrote valid JSON: {:?}",
        r.text
    );
}

#[test]
fn a_regex_constrains_the_whole_reply() {
    let skill = chat();
    for sampling in [SamplingParams::GREEDY, sampled(7), sampled(8)] {
        let req = request(
            "What is a good time for a meeting tomorrow?",
            sampling,
            Constraint::Regex(r"(0[89]|1[0-7]):[0-5][05] (AM|PM)".into()),
        );
        let r = skill.chat(&req, None).unwrap();
        let t = r.text.as_bytes();
        assert_eq!(r.finish, FinishReason::Stop, "{:?}", r.text);
        let ok = t.len() == 8
            && matches!(
                &t[..2],
                b"08" | b"09" | b"10" | b"11" | b"12" | b"13" | b"14" | b"15" | b"16" | b"17"
            )
            && t[2] == b':'
            && (b'0'..=b'5').contains(&t[3])
            && matches!(t[4], b'0' | b'5')
            && matches!(&t[5..], b" AM" | b" PM");
        assert!(ok, "{:?} does not match the regex", r.text);
    }
}

#[test]
fn a_lark_grammar_constrains_the_reply() {
    let skill = chat();
    let grammar = r#"
start: "The " animal " is " color ". It likes " food "."
animal: "cat" | "dog" | "horse"
color: "black" | "white" | "brown" | "grey"
food: /[a-z]{3,10}/
"#;
    for sampling in [SamplingParams::GREEDY, sampled(11)] {
        let req = request(
            "Tell me about an animal in one sentence.",
            sampling,
            Constraint::Lark(grammar.into()),
        );
        let r = skill.chat(&req, None).unwrap();
        assert_eq!(r.finish, FinishReason::Stop, "{:?}", r.text);
        let rest = r
            .text
            .strip_prefix("The ")
            .expect("starts as the grammar says");
        let (animal, rest) = rest.split_once(" is ").expect("an animal, then ' is '");
        let (color, rest) = rest.split_once(". It likes ").expect("a colour");
        let food = rest.strip_suffix('.').expect("ends with a full stop");
        assert!(["cat", "dog", "horse"].contains(&animal), "{:?}", r.text);
        assert!(
            ["black", "white", "brown", "grey"].contains(&color),
            "{:?}",
            r.text
        );
        assert!(
            (3..=10).contains(&food.len()) && food.bytes().all(|b| b.is_ascii_lowercase()),
            "{:?}",
            r.text
        );
        eprintln!("lark: {}", r.text);
    }
}

/// Each hostile constraint is refused with `invalid-argument` naming `expect`, quickly.
#[test]
fn hostile_constraints_are_refused_with_a_typed_error() {
    let skill = chat();
    let nest = |levels| {
        (0..levels).fold(
            json!({"type": "string"}),
            |inner, _| json!({"type": "object", "properties": {"a": inner}}),
        )
    };
    let huge = json!({
        "type": "object",
        "properties": (0..4000)
            .map(|i| (format!("field_{i}"), json!({"type": "string"})))
            .collect::<serde_json::Map<_, _>>()
    });
    let cases = [
        (
            "huge schema",
            Constraint::JsonSchema(huge.to_string()),
            "at most 65536 are allowed",
        ),
        (
            "deeply nested schema",
            Constraint::JsonSchema(nest(20).to_string()),
            "nests deeper",
        ),
        (
            "schema nested past the JSON parser's own limit",
            Constraint::JsonSchema(nest(500).to_string()),
            "nests deeper",
        ),
        (
            "deeply nested grammar",
            Constraint::Lark(format!(
                "start: {}\"a\"{}",
                "(".repeat(500),
                ")".repeat(500)
            )),
            "nests deeper",
        ),
        (
            "schema that is not JSON",
            Constraint::JsonSchema("{\"type\": ".into()),
            "not JSON",
        ),
        (
            "schema of an unknown type",
            Constraint::JsonSchema(json!({"type": "color"}).to_string()),
            "invalid JSON schema",
        ),
        (
            "grammar with bad syntax",
            Constraint::Lark("start: (\"a\"".into()),
            "invalid Lark grammar",
        ),
        (
            "grammar no token can start",
            Constraint::Regex("[^\\x00-\\x{10FFFF}]".into()),
            "allows no token",
        ),
        (
            "grammar with a bad operator",
            Constraint::Lark("start: /a/ & /b/".into()),
            "invalid Lark grammar",
        ),
        (
            "regex with bad syntax",
            Constraint::Regex("(ab".into()),
            "invalid regex",
        ),
    ];
    for (what, constraint, expect) in cases {
        let req = request("Say something.", SamplingParams::GREEDY, constraint);
        let started = Instant::now();
        let result = skill.chat(&req, None);
        let took = started.elapsed();
        match result {
            Err(SkillError::Guest(WitError::InvalidArgument(m))) => {
                assert!(m.contains(expect), "{what}: {m:?} does not say {expect:?}");
                eprintln!("{what}: refused in {took:?}: {}", &m[..m.len().min(160)]);
            }
            other => panic!("{what}: not refused as invalid: {other:?}"),
        }
        assert!(
            took < Duration::from_secs(20),
            "{what}: the refusal took {took:?}"
        );
    }
    // Constraints whose automata could explode, or whose language has no finite string, are
    // built lazily within the parser's limits: each generation is bounded by its max-tokens,
    // takes a bounded time per token, and stays inside what its pattern allows.
    let bounded = [
        ("(a|b)*a(a|b){24}c", b"ab".as_slice()),
        ("(x{1000}){1000}", b"x"),
        (
            "([a-z]{1,20}(,|;)){1,50}[0-9]{30}",
            b"abcdefghijklmnopqrstuvwxyz,;0123456789",
        ),
    ];
    for (regex, alphabet) in bounded {
        let mut req = request(
            "Say something.",
            SamplingParams::GREEDY,
            Constraint::Regex(regex.into()),
        );
        req.max_tokens = 96;
        let started = Instant::now();
        let r = skill
            .chat(&req, None)
            .unwrap_or_else(|e| panic!("{regex}: {e}"));
        assert!(r.ids.len() <= 96);
        assert!(
            r.text.bytes().all(|b| alphabet.contains(&b)),
            "{regex}: {:?}",
            r.text
        );
        eprintln!(
            "{regex}: {} tokens in {:?}, {:?}",
            r.ids.len(),
            started.elapsed(),
            r.finish
        );
    }
    let mut endless = request(
        "Say something.",
        SamplingParams::GREEDY,
        Constraint::Lark("start: x\nx: \"a\" x".into()),
    );
    endless.max_tokens = 32;
    let r = skill.chat(&endless, None).unwrap();
    assert_eq!(r.finish, FinishReason::Length, "{:?}", r.text);
    assert!(r.text.bytes().all(|b| b == b'a'));
    // The skill still answers after them.
    let ok = request(
        "Say yes.",
        SamplingParams::GREEDY,
        Constraint::Regex("yes|no".into()),
    );
    assert!(["yes", "no"].contains(&skill.chat(&ok, None).unwrap().text.as_str()));
}

#[test]
fn a_vocabulary_other_than_byte_level_bpe_is_refused_naming_it() {
    require_model(DEFAULT_ENCODER);
    let file = GgufFile::open(&store().path_for(DEFAULT_ENCODER).unwrap()).unwrap();
    match ConstraintVocab::from_gguf(&file) {
        Err(e @ ConstraintError::UnsupportedVocabulary(_)) => {
            assert!(e.to_string().contains("\"bert\""), "{e}")
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a WordPiece vocabulary was accepted"),
    }
}

#[test]
fn the_primitives_pass_refuses_a_constraint() {
    let skill = chat();
    let mut req = request("Hi", SamplingParams::GREEDY, Constraint::Regex("hi".into()));
    req.forward = Forward::Primitives;
    assert!(matches!(
        skill.chat(&req, None),
        Err(SkillError::Guest(WitError::InvalidArgument(_)))
    ));
}

#[test]
fn edgenlu_generate_takes_a_json_schema_file() {
    require_model(DEFAULT_DECODER);
    let dir = std::env::temp_dir().join(format!("edgenlu-constrained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pet.json");
    std::fs::write(&file, pet_schema().to_string()).unwrap();
    let path = file.to_str().unwrap();
    let prompt = "Describe a pet and its owner as JSON.";
    let args = [
        "generate",
        "--chat",
        "--max-tokens",
        "200",
        "--json-schema",
        path,
        "--json",
        prompt,
    ];
    let ran = edgenlu_in(&store(), &args);
    assert!(ran.ok, "{}", ran.stderr);
    let r: Value = serde_json::from_str(&ran.stdout).unwrap();
    let text = r["text"].as_str().unwrap();
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(violation(&v, &pet_schema()), None, "{text}");
    std::fs::write(&file, json!({"type": "colour"}).to_string()).unwrap();
    let ran = edgenlu_in(&store(), &args);
    assert!(
        !ran.ok && ran.stderr.contains("invalid JSON schema"),
        "{}",
        ran.stderr
    );
    let both = ["generate", "--json-schema", path, "--regex", "a", prompt];
    assert!(
        !edgenlu_in(&store(), &both).ok,
        "two constraints at once were taken"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
