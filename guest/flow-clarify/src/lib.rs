//! Clarify: when the router's two best skills are close, the device does not guess between
//! them. It asks both; when they understood different intents and the policy would not reject
//! the answer, the reply is a question that names both, in the words the device's decoder
//! finds likeliest for the utterance (a plain question when the device has no decoder). The answer keeps the
//! best skill's understanding, its `verdict.reason` says what was asked and why, and the stage
//! `clarify` times the question. Everything else is answered as by the default flow.
//!
//! Config: `margin` (default 0.03), the largest difference of the two best routing scores
//! (mean cosines) that counts as close.

edgenlu_sdk::world!("flow-component");

use edgenlu_sdk::flow::{self, intent_words, Answer, Decided, Device, Stages};
use edgenlu_sdk::flow_host::{self, Routing, TemplateReason};
use edgenlu_sdk::nlu::{Path, Response};
use edgenlu_sdk::policy::Decision;
use edgenlu_sdk::{settings, Error};
use exports::edgenlu::nlu::flow::{Guest, Outcome, Utterance};

/// The default `margin`.
const MARGIN: f32 = 0.03;

struct ClarifyFlow;

impl Guest for ClarifyFlow {
    fn handle(u: Utterance) -> Result<Outcome, Error> {
        let text = &u.text;
        let device = Device::from(&u);
        let (routing, skill, mut response, mut stages) = flow::route_and_ask(text)?;
        let verdict = flow::decide(
            text,
            &skill,
            routing.out_of_scope,
            device,
            &response,
            &mut stages,
        );
        let decided = match rival(&routing, &skill, &response, text, &mut stages)? {
            Some((other, intent)) if verdict.decision != Decision::Reject => {
                let ours = response.intent.clone();
                let template_reason = clarify(text, &ours, &intent, &mut response, &mut stages);
                let mut verdict = verdict;
                verdict.reason = format!(
                    "asked to clarify: {skill} understood {}, {other} understood {intent}, \
                     their routing scores within the margin; the policy said: {}",
                    response.intent, verdict.reason
                );
                Decided {
                    verdict,
                    uplink_error: None,
                    template_reason,
                }
            }
            _ => flow::carry_out(text, &skill, verdict, &mut response, &mut stages),
        };
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

/// The runner-up skill and its intent, when its routing score is within the margin of the
/// best's and it understood another intent (neither out of scope).
fn rival(
    routing: &Routing,
    best: &str,
    response: &Response,
    text: &str,
    stages: &mut Stages,
) -> Result<Option<(String, String)>, Error> {
    let margin = settings::parse_or("margin", MARGIN)?;
    let [first, second, ..] = routing.candidates.as_slice() else {
        return Ok(None);
    };
    if first.score - second.score > margin || response.intent == "oos" {
        return Ok(None);
    }
    debug_assert_eq!(first.skill, best);
    let other = stages.time("head", || flow_host::ask(&second.skill, text))?;
    if other.intent == "oos" || other.intent == response.intent {
        return Ok(None);
    }
    Ok(Some((second.skill.clone(), other.intent)))
}

/// Makes `response`'s reply a question naming intents `a` and `b` (stage `clarify`): of a
/// few ways to ask, the one the device's decoder finds likeliest for this utterance (a
/// constrained choice: a 135M decoder asked to write the question freely rarely names both);
/// without a decoder, the plain one (then, as for a template reply, the reason if any).
fn clarify(
    text: &str,
    a: &str,
    b: &str,
    response: &mut Response,
    stages: &mut Stages,
) -> Option<TemplateReason> {
    let (a, b) = (intent_words(a), intent_words(b));
    let questions = [
        format!("Do you want to {a} or to {b}?"),
        format!("Did you mean {a} or {b}?"),
        format!("Should I {a} or {b}?"),
        format!("Which one: {a} or {b}?"),
    ];
    let ask = format!(
        "A user told their voice assistant: \"{text}\". The assistant is not sure whether \
         they want to {a} or to {b}. What does the assistant ask them?"
    );
    let start = flow_host::elapsed_micros();
    let chosen = flow_host::choose(&ask, &questions);
    stages.push("clarify", start);
    let (i, path, reason) = match chosen {
        Ok(scores) => (best(&scores), Path::Local, None),
        Err(Error::NotAllowed(_)) => (0, Path::Template, None),
        Err(e) => (
            0,
            Path::Template,
            Some(TemplateReason::PhrasingFailed(flow::message(e))),
        ),
    };
    response.reply = Some(questions[i].clone());
    response.path = path;
    reason
}

/// The index of the highest score (the first of equal ones).
fn best(scores: &[f32]) -> usize {
    (0..scores.len()).fold(0, |best, i| if scores[i] > scores[best] { i } else { best })
}

export!(ClarifyFlow);

#[cfg(test)]
mod tests {
    use super::best;

    #[test]
    fn the_likeliest_question_wins() {
        assert_eq!(best(&[-3.0, -1.5, -2.0]), 1);
        assert_eq!(best(&[-1.0, -1.0]), 0);
    }
}
