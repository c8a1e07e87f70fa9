//! `edgenlu eval`: a labelled dataset through the device pipeline, scored: intents, routing,
//! out of scope (and the cut that would tune it), slots, phrasing, decisions and latency.

use crate::bar;
use crate::bench::percentile;
use crate::pipeline::DeviceArgs;
use anyhow::{bail, Result};
use edgenlu::{AnswerPath, Decision};
use edgenlu_device::pipeline::{Pipeline, PipelineAnswer, TemplateReason};
use edgenlu_train::datastore::{excerpt, Example, OUT_OF_SCOPE};
use edgenlu_train::eval::{IntentScores, OutOfScopeCut, OutOfScopeScores, SpanScores};
use edgenlu_train::slots::{to_bytes, ByteSpan};
use std::collections::BTreeMap;
use std::time::Duration;

/// The answer recorded for an utterance the pipeline failed on: no intent is named so.
const FAILED: &str = "(failed)";

/// Failures quoted in the report; the rest are counted.
const MAX_FAILURES_SHOWN: usize = 5;

/// `edgenlu eval`: every example through the pipeline, scored; on data with `oos` examples
/// also the `max-out-of-scope` that would maximize overall accuracy on it (how a vendor tunes
/// the policy on validation data). An utterance the pipeline fails on is scored as wrong and
/// reported, not the end of the evaluation: the report of the rest is worth keeping.
pub fn eval(
    pipeline: &Pipeline,
    examples: &[Example],
    device: DeviceArgs,
    json: bool,
) -> Result<()> {
    let mut tally = Tally::new(pipeline);
    if let Some(e) = examples
        .iter()
        .find(|e| e.intent != OUT_OF_SCOPE && !tally.knows.contains_key(&e.intent))
    {
        bail!(
            "no skill knows intent {:?} (of {})",
            e.intent,
            excerpt(&e.text)
        );
    }
    let pb = bar(examples.len(), "eval");
    for (i, ex) in examples.iter().enumerate() {
        let start = std::time::Instant::now();
        match pipeline.answer(&ex.text, device.state()) {
            Ok(a) => tally.answered(ex, &a, start.elapsed()),
            Err(e) => tally.failed(
                ex,
                format!("example {} ({}): {e}", i + 1, excerpt(&ex.text)),
            ),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let report = Report::of(tally, examples);
    if json {
        report.print_json();
    } else {
        report.print_text();
    }
    Ok(())
}

/// What the evaluation gathers, example by example.
struct Tally {
    /// The pipeline's skills, by name, in route order.
    routes: Vec<String>,
    /// Which skills know each intent, to score the router.
    knows: BTreeMap<String, Vec<usize>>,
    total_ms: Vec<f64>,
    stage_ms: BTreeMap<String, Vec<f64>>,
    /// The answer to each example as the user sees it (a refusal is `oos`).
    answers: Vec<String>,
    spans: SpanScores,
    routed_right: usize,
    in_scope: usize,
    decisions: BTreeMap<&'static str, usize>,
    per_skill: BTreeMap<String, usize>,
    /// The skill's own answer and the router's distance, for the out-of-scope cut.
    distances: Vec<(String, f32)>,
    /// With a phraser: replies phrased and used, and why the others got the template.
    phrased: usize,
    templated: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn new(pipeline: &Pipeline) -> Tally {
        let routes = pipeline.router.routes();
        let mut knows: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, route) in routes.iter().enumerate() {
            for intent in route.intents() {
                knows.entry(intent).or_default().push(i);
            }
        }
        Tally {
            routes: routes.iter().map(|r| r.name.clone()).collect(),
            knows,
            total_ms: Vec::new(),
            stage_ms: BTreeMap::new(),
            answers: Vec::new(),
            spans: SpanScores::default(),
            routed_right: 0,
            in_scope: 0,
            decisions: BTreeMap::new(),
            per_skill: BTreeMap::new(),
            distances: Vec::new(),
            phrased: 0,
            templated: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    /// An example the pipeline failed on: a wrong answer, and no slots.
    fn failed(&mut self, ex: &Example, why: String) {
        self.failures.push(why);
        self.spans.add(&to_bytes(&ex.text, &ex.slots), &[]);
        self.answers.push(FAILED.to_string());
        self.distances.push((FAILED.to_string(), f32::NAN));
    }

    /// An example the pipeline answered with `a` in `took`.
    fn answered(&mut self, ex: &Example, a: &PipelineAnswer, took: Duration) {
        self.total_ms.push(took.as_secs_f64() * 1e3);
        for t in &a.stages {
            self.stage_ms
                .entry(t.stage.clone())
                .or_default()
                .push(t.micros as f64 / 1e3);
        }
        if let Some(skills) = self.knows.get(&ex.intent) {
            self.in_scope += 1;
            let chosen = self.routes.iter().position(|r| *r == a.skill);
            self.routed_right += chosen.is_some_and(|c| skills.contains(&c)) as usize;
        }
        *self.per_skill.entry(a.skill.clone()).or_default() += 1;
        let response = &a.answer.response;
        self.distances
            .push((response.intent.clone(), a.out_of_scope));
        if a.phrased() {
            self.phrased += 1;
        }
        let why = match &a.template_reason {
            Some(TemplateReason::Rejected { why, .. }) => Some(why.kind()),
            Some(TemplateReason::Unfinished) => Some("unfinished"),
            Some(TemplateReason::PhrasingFailed(_)) => Some("phrasing failed"),
            Some(TemplateReason::OutOfScope) | None => None,
        };
        if let Some(why) = why {
            *self.templated.entry(why).or_default() += 1;
        }
        *self
            .decisions
            .entry(match (a.verdict.decision, response.path) {
                (Decision::Reject, _) => "reject",
                (_, AnswerPath::Offload) => "offload",
                _ => "local",
            })
            .or_default() += 1;
        // A refusal is the device saying "not mine": out of scope and no slots, as the user
        // sees it.
        let rejected = a.verdict.decision == Decision::Reject;
        let predicted: Vec<ByteSpan> = if rejected {
            Vec::new()
        } else {
            response.slots.iter().map(ByteSpan::from).collect()
        };
        self.spans.add(&to_bytes(&ex.text, &ex.slots), &predicted);
        self.answers.push(if rejected {
            OUT_OF_SCOPE.to_string()
        } else {
            response.intent.clone()
        });
    }
}

/// p50, p90, p99 of `v` (sorted in place).
fn percentiles(v: &mut [f64]) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    [0.5, 0.9, 0.99].map(|p| percentile(v, p))
}

/// The scores of a finished evaluation.
struct Report {
    tally: Tally,
    intents: IntentScores,
    oos: Option<OutOfScopeScores>,
    cut: Option<OutOfScopeCut>,
    routing: Option<f64>,
    total: [f64; 3],
    stages: Vec<(String, [f64; 3])>,
    examples: usize,
}

impl Report {
    fn of(mut tally: Tally, examples: &[Example]) -> Report {
        let pairs: Vec<(&str, &str)> = examples
            .iter()
            .zip(&tally.answers)
            .map(|(e, a)| (e.intent.as_str(), a.as_str()))
            .collect();
        let intents = IntentScores::of(&pairs);
        let oos = OutOfScopeScores::of(&pairs);
        let has_gold_oos = examples.iter().any(|e| e.intent == OUT_OF_SCOPE);
        let cut = has_gold_oos.then(|| {
            let seen: Vec<(&str, &str, f32)> = examples
                .iter()
                .zip(&tally.distances)
                .map(|(e, (answer, d))| (e.intent.as_str(), answer.as_str(), *d))
                .collect();
            OutOfScopeCut::tune(&seen)
        });
        let routing = (tally.routes.len() > 1 && tally.in_scope > 0)
            .then(|| tally.routed_right as f64 / tally.in_scope as f64);
        let total = percentiles(&mut tally.total_ms);
        let stages = std::mem::take(&mut tally.stage_ms)
            .into_iter()
            .map(|(stage, mut v)| (stage, percentiles(&mut v)))
            .collect();
        Report {
            tally,
            intents,
            oos,
            cut,
            routing,
            total,
            stages,
            examples: examples.len(),
        }
    }

    fn has_slots(&self) -> bool {
        self.tally.spans.gold + self.tally.spans.predicted > 0
    }

    /// Phrased replies tried, and the share used, when there was a phraser.
    fn phrasing(&self) -> Option<(usize, f64)> {
        let t = &self.tally;
        let attempted = t.phrased + t.templated.values().sum::<usize>();
        (attempted > 0).then(|| (attempted, t.phrased as f64 / attempted as f64))
    }

    fn print_json(&self) {
        let (t, spans) = (&self.tally, &self.tally.spans);
        let p = |q: &[f64; 3]| serde_json::json!({"p50": q[0], "p90": q[1], "p99": q[2]});
        println!(
            "{}",
            serde_json::json!({
                "examples": self.intents.examples, "correct": self.intents.correct,
                "accuracy": self.intents.accuracy, "macro_f1": self.intents.macro_f1,
                "skills": t.routes.len(),
                "routing_accuracy": self.routing,
                "per_skill": t.per_skill,
                "out_of_scope": self.oos.as_ref().map(|o| serde_json::json!({
                    "in_scope_accuracy": o.in_scope_accuracy, "recall": o.recall, "precision": o.precision,
                })),
                "slots": self.has_slots().then(|| serde_json::json!({
                    "gold": spans.gold, "predicted": spans.predicted, "correct": spans.correct,
                    "precision": spans.precision(), "recall": spans.recall(), "f1": spans.f1(),
                })),
                "out_of_scope_cut": self.cut.as_ref().map(|c| serde_json::json!({
                    "max_out_of_scope": c.max_out_of_scope,
                    "accuracy_without": c.accuracy_without, "accuracy_with": c.accuracy_with,
                    "recall_without": c.without.map(|o| o.recall), "recall_with": c.with.map(|o| o.recall),
                    "precision_with": c.with.map(|o| o.precision),
                })),
                "phrasing": self.phrasing().map(|(attempted, rate)| serde_json::json!({
                    "attempted": attempted, "used": t.phrased, "pass_rate": rate, "template_because": t.templated,
                })),
                "decisions": t.decisions,
                "failed": t.failures.len(),
                "failures": t.failures.iter().take(MAX_FAILURES_SHOWN).collect::<Vec<_>>(),
                "latency_ms": p(&self.total),
                "stage_ms": self.stages.iter().map(|(s, q)| (s.clone(), p(q))).collect::<serde_json::Map<_, _>>(),
            })
        );
    }

    fn print_text(&self) {
        let t = &self.tally;
        println!("examples   {}", self.intents.examples);
        if !t.failures.is_empty() {
            println!(
                "failed     {} (scored as wrong answers), e.g.:",
                t.failures.len()
            );
            for f in t.failures.iter().take(MAX_FAILURES_SHOWN) {
                println!("  {f}");
            }
        }
        self.print_scores();
        self.print_costs();
    }

    /// Accuracy, routing, out of scope, slots.
    fn print_scores(&self) {
        let (t, i) = (&self.tally, &self.intents);
        println!(
            "accuracy   {:.2} % ({}/{})",
            i.accuracy * 100.0,
            i.correct,
            i.examples
        );
        println!("macro-F1   {:.2} %", i.macro_f1 * 100.0);
        if let Some(r) = self.routing {
            println!(
                "routing    {:.2} % of in-scope utterances to a skill that knows their intent ({} skills)",
                r * 100.0,
                t.routes.len()
            );
        }
        if let Some(o) = &self.oos {
            println!(
                "in-scope   {:.2} % accuracy   out-of-scope recall {:.2} %, precision {:.2} %",
                o.in_scope_accuracy * 100.0,
                o.recall * 100.0,
                o.precision * 100.0
            );
        }
        if let Some(c) = &self.cut {
            let pct = |o: Option<OutOfScopeScores>, f: fn(&OutOfScopeScores) -> f64| {
                o.as_ref().map_or(0.0, f) * 100.0
            };
            println!(
                "cut        --policy max-out-of-scope={:.3} would maximize accuracy on this data: \
                 {:.2} → {:.2} %, out-of-scope recall {:.2} → {:.2} %, precision {:.2} % \
                 (the skill's answers, the router's distance; tune on validation data, not test)",
                c.max_out_of_scope,
                c.accuracy_without * 100.0,
                c.accuracy_with * 100.0,
                pct(c.without, |o| o.recall),
                pct(c.with, |o| o.recall),
                pct(c.with, |o| o.precision),
            );
        }
        if self.has_slots() {
            let s = &t.spans;
            println!(
                "slots      F1 {:.2} %   precision {:.2} %, recall {:.2} % ({} of {} gold spans exact)",
                s.f1() * 100.0,
                s.precision() * 100.0,
                s.recall() * 100.0,
                s.correct,
                s.gold
            );
        }
    }

    /// Phrasing, decisions, latency.
    fn print_costs(&self) {
        let t = &self.tally;
        if let Some((attempted, rate)) = self.phrasing() {
            let because: Vec<String> = t
                .templated
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!(
                "phrasing   {:.1} % of phrased replies passed the check and were used ({}/{attempted}); template because: {}",
                rate * 100.0,
                t.phrased,
                if because.is_empty() { "-".to_string() } else { because.join(", ") }
            );
        }
        let n = self.examples.max(1) as f64;
        let share = |d: &str| *t.decisions.get(d).unwrap_or(&0) as f64 / n * 100.0;
        println!(
            "decisions  local {:.1} %   offload {:.1} %   reject {:.1} %",
            share("local"),
            share("offload"),
            share("reject")
        );
        let [p50, p90, p99] = self.total;
        println!("latency    p50 {p50:.1} ms   p90 {p90:.1} ms   p99 {p99:.1} ms");
        for (stage, [a, b, c]) in &self.stages {
            println!("  {stage:<9}p50 {a:.2} ms   p90 {b:.2} ms   p99 {c:.2} ms");
        }
    }
}
