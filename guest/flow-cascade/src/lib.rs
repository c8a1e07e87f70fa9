//! Cascade: when the skill that answered is unsure (its confidence below `min-confidence`)
//! and the uplink cannot help (no network, or the skill may not use it), the device's tiny
//! decoder chooses. The best `candidates` skills are asked, and the decoder scores each intent
//! they understood as the answer to "which of these is the request?" (`flow-host.choose`: a
//! constrained answer, always one of the intents). The skill whose intent it chose answers,
//! then the policy and the reply go as in the default flow. `verdict.reason` says which path
//! decided (the classifier, or the decoder and the scores), and the stage `cascade` times the
//! choice. On a device without a decoder the classifier's answer stands, and the reason says
//! why. Everything else is answered as by the default flow.
//!
//! Config: `min-confidence` (default 0.6), `candidates` (default 3, at most 8).

edgenlu_sdk::world!("flow-component");

use edgenlu_sdk::flow::{self, intent_words, Answer, Device, Stages};
use edgenlu_sdk::flow_host::{self, Routing};
use edgenlu_sdk::nlu::Response;
use edgenlu_sdk::{settings, Error};
use exports::edgenlu::nlu::flow::{Guest, Outcome, Utterance};

/// The default `min-confidence`.
const MIN_CONFIDENCE: f32 = 0.6;
/// The default `candidates`.
const CANDIDATES: usize = 3;
/// Most skills asked, whatever the config says (the device's bound on options).
const MAX_CANDIDATES: usize = 8;

struct CascadeFlow;

impl Guest for CascadeFlow {
    fn handle(u: Utterance) -> Result<Outcome, Error> {
        let text = &u.text;
        let device = Device::from(&u);
        let (routing, mut skill, mut response, mut stages) = flow::route_and_ask(text)?;
        let min_confidence = settings::parse_or("min-confidence", MIN_CONFIDENCE)?;
        let uplink_usable = device.network_up && flow_host::uplink_allowed(&skill);
        let unsure = response.confidence < min_confidence && response.intent != "oos";
        let mut path = format!(
            "the classifier decided ({skill}: {} at confidence {:.2})",
            response.intent, response.confidence
        );
        if unsure && !uplink_usable {
            if let Some(choice) = choose(text, &routing, (&skill, &response), &mut stages)? {
                path = choice.explained;
                (skill, response) = choice.winner;
            }
        }
        let mut decided = flow::decide_and_reply(
            text,
            &skill,
            routing.out_of_scope,
            device,
            &mut response,
            &mut stages,
        );
        decided.verdict.reason = format!("{path}; the policy said: {}", decided.verdict.reason);
        Ok(Answer {
            skill,
            response,
            out_of_scope: routing.out_of_scope,
            decided,
            stages,
        }
        .into())
    }
}

/// What the decoder chose, and how.
struct Choice {
    /// The skill whose intent won, and its response.
    winner: (String, Response),
    /// The path that decided, for the verdict's reason.
    explained: String,
}

/// Asks the best `candidates` skills (the best one's answer is `best`), and has the decoder
/// choose among the distinct intents they understood (stage `cascade`). None when they
/// understood fewer than two.
fn choose(
    text: &str,
    routing: &Routing,
    best: (&str, &Response),
    stages: &mut Stages,
) -> Result<Option<Choice>, Error> {
    let wanted = settings::parse_or("candidates", CANDIDATES)?.min(MAX_CANDIDATES);
    let mut answers = vec![(best.0.to_string(), best.1.clone())];
    for c in routing
        .candidates
        .iter()
        .skip(1)
        .take(wanted.saturating_sub(1))
    {
        let r = stages.time("head", || flow_host::ask(&c.skill, text))?;
        if r.intent != "oos" && answers.iter().all(|(_, a)| a.intent != r.intent) {
            answers.push((c.skill.clone(), r));
        }
    }
    if answers.len() < 2 {
        return Ok(None);
    }
    let options: Vec<String> = answers
        .iter()
        .map(|(_, r)| intent_words(&r.intent))
        .collect();
    let question = format!(
        "A user said: \"{text}\". Which of these does the user want: {}? Answer with one of them.",
        options.join(", ")
    );
    let scores = match stages.time("cascade", || flow_host::choose(&question, &options)) {
        Ok(scores) => scores,
        // No decoder on this device (or it failed): the classifier's answer stands, and the
        // reason says why the decoder did not decide.
        Err(e) => return Ok(Some(classifier_stands(best, e))),
    };
    let best = (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .expect("two options or more");
    let listed: Vec<String> = options
        .iter()
        .zip(&scores)
        .map(|(o, s)| format!("{o} {s:.2}"))
        .collect();
    let explained = format!(
        "the decoder decided among the classifiers' intents ({}; log-probabilities), the \
         classifier being unsure ({:.2}) and the uplink unusable",
        listed.join(", "),
        best_confidence(&answers)
    );
    Ok(Some(Choice {
        winner: answers.swap_remove(best),
        explained,
    }))
}

/// The best-routed skill's answer, when the decoder could not choose (`e`).
fn classifier_stands(best: (&str, &Response), e: Error) -> Choice {
    let explained = format!(
        "the classifier decided ({}: {} at confidence {:.2}); the decoder could not choose: {}",
        best.0,
        best.1.intent,
        best.1.confidence,
        flow::message(e)
    );
    Choice {
        winner: (best.0.to_string(), best.1.clone()),
        explained,
    }
}

/// The confidence of the first (best-routed) answer.
fn best_confidence(answers: &[(String, Response)]) -> f32 {
    answers.first().map_or(0.0, |(_, r)| r.confidence)
}

export!(CascadeFlow);
