//! The `snips-llm` example skill: intent and slots from the decoder alone (SmolLM2-135M-Instruct),
//! no encoder head or tagger. Each utterance is put to the model after a few-shot ChatML
//! conversation built from the project's examples (`data/train.jsonl`, SNIPS train: the first
//! `shots` examples with slots of each intent, in file order, intents taking turns), and the
//! reply is constrained by the host to a JSON schema — `{"intent": one of the skill's intents,
//! "slots": [{"name": one of its slot names, "value": a string}]}` — decoded greedily. Each
//! slot's value is then found in the utterance (exactly, else ignoring ASCII case) and answered
//! as its byte span; a value the utterance does not contain is dropped. The reply is parsed
//! strictly: text that is not JSON of the schema is an error, never a guess.
//!
//! Config: `model` (the decoder, default `smollm2-135m-instruct.q4_1`), `shots` (examples per
//! intent, default 1).

edgenlu_sdk::world!("skill");

use edgenlu_sdk::chat::{chatml, generate, stop_ids};
use edgenlu_sdk::decoder::GREEDY;
use edgenlu_sdk::llm::{Constraint, FinishReason, Options};
use edgenlu_sdk::{config, internal, invalid, tokenize, Error, Model};
use exports::edgenlu::nlu::nlu::{Guest, Path, Request, Response, Slot, Timing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The decoder used when the config names none.
const DEFAULT_MODEL: &str = "smollm2-135m-instruct.q4_1";
/// Few-shot examples per intent when the config says nothing: one keeps the prompt near 400
/// tokens, prefilled for every utterance.
const DEFAULT_SHOTS: usize = 1;
/// Most tokens of a reply: the longest JSON answer of the examples is about 70.
const MAX_TOKENS: u32 = 112;
/// Most slots an answer may have, and the longest value.
const MAX_SLOTS: usize = 8;
const MAX_VALUE_CHARS: usize = 64;

/// The examples: SNIPS lines, slots as character spans.
const EXAMPLES: &str = include_str!("../data/train.jsonl");

/// One labelled example as `data/train.jsonl` has it.
#[derive(Deserialize)]
struct Example {
    text: String,
    intent: String,
    slots: Vec<Span>,
}

/// A slot of an example, in characters.
#[derive(Deserialize)]
struct Span {
    start: usize,
    end: usize,
    slot: String,
}

/// What the model answers, in the schema's order; parsing refuses anything else.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Answer {
    intent: String,
    slots: Vec<SlotValue>,
}

/// A slot as the model answers it.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct SlotValue {
    name: String,
    value: String,
}

/// What the skill knows from its examples: its intents and slot names, and the few-shot
/// conversation.
struct Knowledge {
    intents: Vec<String>,
    slot_names: Vec<String>,
    /// (utterance, answer as compact JSON) in the order the prompt gives them.
    shots: Vec<(String, String)>,
}

impl Example {
    /// The example's answer: its intent and each span's text.
    fn answer(&self) -> Answer {
        let chars: Vec<char> = self.text.chars().collect();
        Answer {
            intent: self.intent.clone(),
            slots: self
                .slots
                .iter()
                .filter(|s| s.start < s.end && s.end <= chars.len())
                .map(|s| SlotValue {
                    name: s.slot.clone(),
                    value: chars[s.start..s.end].iter().collect(),
                })
                .collect(),
        }
    }
}

impl Knowledge {
    /// Reads `examples` (JSONL) and picks `shots` per intent: the first ones with slots, in
    /// file order, the intents taking turns (sorted by name) so that none comes last in bulk.
    fn from_examples(examples: &str, shots: usize) -> Result<Knowledge, Error> {
        let examples = examples
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Example>(l))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| internal(format!("data/train.jsonl: {e}")))?;
        let intents: BTreeSet<&str> = examples.iter().map(|e| e.intent.as_str()).collect();
        let slot_names: BTreeSet<&str> = examples
            .iter()
            .flat_map(|e| e.slots.iter().map(|s| s.slot.as_str()))
            .collect();
        let per_intent: Vec<Vec<&Example>> = intents
            .iter()
            .map(|i| {
                examples
                    .iter()
                    .filter(|e| e.intent == *i && !e.slots.is_empty())
                    .take(shots)
                    .collect()
            })
            .collect();
        let mut chosen = Vec::new();
        for round in 0..shots {
            for examples in &per_intent {
                if let Some(e) = examples.get(round) {
                    let answer =
                        serde_json::to_string(&e.answer()).map_err(|e| internal(e.to_string()))?;
                    chosen.push((e.text.trim().to_string(), answer));
                }
            }
        }
        Ok(Knowledge {
            intents: intents.into_iter().map(String::from).collect(),
            slot_names: slot_names.into_iter().map(String::from).collect(),
            shots: chosen,
        })
    }

    /// The JSON schema every reply is held to.
    fn schema(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "intent": {"enum": self.intents},
                "slots": {
                    "type": "array",
                    "maxItems": MAX_SLOTS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"enum": self.slot_names},
                            "value": {"type": "string", "minLength": 1,
                                      "maxLength": MAX_VALUE_CHARS}
                        },
                        "required": ["name", "value"],
                        "additionalProperties": false
                    }
                }
            },
            "required": ["intent", "slots"],
            "additionalProperties": false
        })
    }

    /// The ChatML conversation that asks for `text`'s answer.
    fn prompt(&self, text: &str) -> String {
        // Short: every prompt token is prefilled for every utterance. The slot names are in
        // the schema (and the examples), not listed here.
        let system = format!(
            "Answer each request to a voice assistant with JSON: its intent, one of {}, and \
             its slots, the words of the request that fill them.",
            self.intents.join(", ")
        );
        let turns = self
            .shots
            .iter()
            .flat_map(|(q, a)| [("user", q.as_str()), ("assistant", a.as_str())])
            .chain([("user", text)]);
        chatml(&system, turns)
    }

    /// Parses the model's reply as the schema says, or says why it is not.
    fn parse(&self, reply: &str) -> Result<Answer, String> {
        let answer: Answer = serde_json::from_str(reply).map_err(|e| e.to_string())?;
        if !self.intents.contains(&answer.intent) {
            return Err(format!(
                "intent {:?} is not one of the skill's",
                answer.intent
            ));
        }
        if answer.slots.len() > MAX_SLOTS {
            return Err(format!("{} slots, at most {MAX_SLOTS}", answer.slots.len()));
        }
        for s in &answer.slots {
            if !self.slot_names.contains(&s.name) {
                return Err(format!("slot name {:?} is not one of the skill's", s.name));
            }
            let chars = s.value.chars().count();
            if chars == 0 || chars > MAX_VALUE_CHARS {
                return Err(format!("slot value of {chars} characters"));
            }
        }
        Ok(answer)
    }
}

/// The byte range of `value` in `text` that overlaps none of `taken`: the first exact
/// occurrence, else the first ignoring ASCII case; `None` when the text has neither.
fn locate(text: &str, value: &str, taken: &[(usize, usize)]) -> Option<(usize, usize)> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let free = |start: usize| {
        let end = start + value.len();
        text.is_char_boundary(start)
            && text.is_char_boundary(end)
            && taken.iter().all(|&(s, e)| end <= s || start >= e)
    };
    let starts = || (0..=text.len().saturating_sub(value.len())).filter(|&i| free(i));
    let exact = starts().find(|&i| &text.as_bytes()[i..i + value.len()] == value.as_bytes());
    exact
        .or_else(|| {
            starts().find(|&i| {
                text.as_bytes()[i..i + value.len()].eq_ignore_ascii_case(value.as_bytes())
            })
        })
        .map(|i| (i, i + value.len()))
}

/// The answer's slots as spans of `text`, in the order found, values not in the text dropped.
fn spans(text: &str, answer: &Answer) -> Vec<Slot> {
    let mut taken = Vec::new();
    let mut slots = Vec::new();
    for s in &answer.slots {
        if let Some((start, end)) = locate(text, &s.value, &taken) {
            taken.push((start, end));
            slots.push(Slot {
                name: s.name.clone(),
                value: text[start..end].to_string(),
                start: start as u32,
                end: end as u32,
            });
        }
    }
    slots
}

fn shots() -> Result<usize, Error> {
    match config::get("shots") {
        None => Ok(DEFAULT_SHOTS),
        Some(s) => s
            .parse()
            .ok()
            .filter(|&n: &usize| (1..=10).contains(&n))
            .ok_or_else(|| invalid(format!("config shots = {s:?}: a number from 1 to 10"))),
    }
}

struct SnipsLlm;

impl Guest for SnipsLlm {
    fn handle(req: Request) -> Result<Response, Error> {
        let knowledge = Knowledge::from_examples(EXAMPLES, shots()?)?;
        let name = config::get("model").unwrap_or_else(|| DEFAULT_MODEL.to_string());
        let model = Model::open(&name)?;
        let prompt = tokenize::encode(&knowledge.prompt(req.text.trim()))?;
        let options = Options {
            max_tokens: MAX_TOKENS,
            stop: stop_ids(&model)?,
            sampling: GREEDY,
            constraint: Some(Constraint::JsonSchema(knowledge.schema().to_string())),
        };
        let reply = generate(&model, &prompt, &options, |_| ())?;
        if reply.finish != FinishReason::Stop {
            return Err(internal(format!(
                "the answer did not finish within {MAX_TOKENS} tokens: {:?}",
                reply.text
            )));
        }
        let answer = knowledge.parse(&reply.text).map_err(|why| {
            internal(format!(
                "the answer {:?} is not JSON of the schema: {why}",
                reply.text
            ))
        })?;
        let u = &reply.usage;
        Ok(Response {
            slots: spans(&req.text, &answer),
            intent: answer.intent,
            // The decoder gives no calibrated probability; the schema made the choice.
            confidence: 1.0,
            reply: None,
            path: Path::Local,
            timings: vec![
                Timing {
                    stage: "prefill".into(),
                    micros: u.prefill_micros,
                },
                Timing {
                    stage: "decode".into(),
                    micros: u.decode_micros,
                },
                // Per token after the first (the first comes with the prefill): its inverse is
                // the constrained decode speed.
                Timing {
                    stage: "decode-per-token".into(),
                    micros: u.decode_micros / u64::from(u.generated_tokens.max(2) - 1),
                },
            ],
        })
    }
}

export!(SnipsLlm);

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge() -> Knowledge {
        Knowledge::from_examples(EXAMPLES, 2).unwrap()
    }

    #[test]
    fn the_examples_give_every_intent_and_slot_name() {
        let k = knowledge();
        assert_eq!(k.intents.len(), 7);
        assert_eq!(k.slot_names.len(), 39);
        assert_eq!(k.shots.len(), 14);
        // Intents take turns: the first seven shots are of seven different intents.
        let firsts: BTreeSet<String> = k.shots[..7]
            .iter()
            .map(|(_, a)| k.parse(a).unwrap().intent)
            .collect();
        assert_eq!(firsts.len(), 7);
    }

    #[test]
    fn every_shot_is_valid_under_the_schema() {
        let k = knowledge();
        for (_, a) in &k.shots {
            k.parse(a).unwrap();
        }
        assert!(k
            .prompt("play jazz")
            .ends_with("play jazz<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn replies_off_the_schema_are_refused() {
        let k = knowledge();
        for bad in [
            r#"{"intent":"Dance","slots":[]}"#,
            r#"{"intent":"PlayMusic","slots":[{"name":"colour","value":"red"}]}"#,
            r#"{"intent":"PlayMusic","slots":[],"extra":1}"#,
            r#"{"intent":"PlayMusic","slots":[{"name":"artist","value":""}]}"#,
            r#"{"intent":"PlayMusic""#,
        ] {
            assert!(k.parse(bad).is_err(), "{bad} passed");
        }
    }

    #[test]
    fn values_become_spans_of_the_text() {
        let answer = Answer {
            intent: "PlayMusic".into(),
            slots: vec![
                SlotValue {
                    name: "artist".into(),
                    value: "miles davis".into(),
                },
                SlotValue {
                    name: "genre".into(),
                    value: "Jazz".into(),
                },
                SlotValue {
                    name: "album".into(),
                    value: "not there".into(),
                },
                SlotValue {
                    name: "artist".into(),
                    value: "Miles Davis".into(),
                },
            ],
        };
        let text = "play Miles Davis jazz, Miles Davis again";
        let got: Vec<(String, u32, u32, String)> = spans(text, &answer)
            .into_iter()
            .map(|s| (s.name, s.start, s.end, s.value))
            .collect();
        assert_eq!(
            got,
            [
                ("artist".into(), 5, 16, "Miles Davis".into()),
                ("genre".into(), 17, 21, "jazz".into()),
                ("artist".into(), 23, 34, "Miles Davis".into()),
            ]
        );
        assert_eq!(locate("é x", "x", &[]), Some((3, 4)));
    }
}
