//! `edgenlu run` and `edgenlu eval`: utterances through the device pipeline (router → skill →
//! policy → phrasing or uplink), one at a time or over a labelled dataset. `edgenlu serve`
//! builds its `/v1/nlu` pipeline here too, from the same flags.

use crate::bar;
use crate::bench::percentile;
use anyhow::{bail, Context, Result};
use edgenlu::bundled::DEFAULT_INDEX;
use edgenlu::{AnswerPath, Decision, Runtime};
use edgenlu_device::builder::PipelineBuilder;
use edgenlu_device::pipeline::{DeviceState, Pipeline, TemplateReason};
use edgenlu_device::uplink::UplinkConfig;
use edgenlu_models::store::ModelStore;
use edgenlu_train::datastore::{excerpt, Example, OUT_OF_SCOPE};
use edgenlu_train::eval::{IntentScores, OutOfScopeCut, OutOfScopeScores, SpanScores};
use edgenlu_train::slots::{to_bytes, ByteSpan};
use edgenlu_trust::skills::SkillStore;
use std::collections::BTreeMap;

/// Which skills answer, and how the vendor's policy is configured.
#[derive(clap::Args, Clone)]
pub struct SkillsArgs {
    /// A datastore (built by `edgenlu skill index` or `skill build`) the bundled intents skill
    /// answers from, as a skill named after it; repeat for several. The vendor's own skill: it
    /// may use the uplink. Default, when no --skill is given either: snips-intents (serve: the
    /// installed skill `intents` if there is one).
    #[arg(long = "index", value_name = "NAME")]
    indexes: Vec<String>,
    /// An installed skill (`edgenlu install`), loaded under its manifest's grants; it may use
    /// the uplink only if its manifest has the `uplink` capability. Repeat for several.
    #[arg(long = "skill", value_name = "NAME")]
    skills: Vec<String>,
    /// A config value for the default policy, KEY=VALUE (min-confidence, min-battery,
    /// max-chars, max-out-of-scope); repeat for several.
    #[arg(long = "policy", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    policy: Vec<(String, String)>,
}

impl SkillsArgs {
    /// These arguments, or when they name no skill and skill `name` is installed in `skills`,
    /// that skill (`edgenlu serve`'s default, which then follows its new versions).
    pub fn or_installed(&self, skills: &SkillStore, name: &str) -> Result<SkillsArgs> {
        let mut args = self.clone();
        if args.indexes.is_empty() && args.skills.is_empty() && skills.state(name)?.is_some() {
            args.skills.push(name.to_string());
        }
        Ok(args)
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// The device's state as the policy sees it.
#[derive(clap::Args, Clone, Copy)]
pub struct DeviceArgs {
    /// Whether the device is online, as the policy sees it.
    #[arg(long, value_enum, default_value = "up")]
    network: Network,
    /// Battery charge in percent, as the policy sees it (default: mains power).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    battery: Option<u8>,
}

/// `--network` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Network {
    Up,
    Down,
}

impl DeviceArgs {
    /// The state these flags describe.
    pub fn state(self) -> DeviceState {
        DeviceState {
            network_up: matches!(self.network, Network::Up),
            battery_percent: self.battery,
        }
    }
}

/// The pipeline over the skills `args` names, phrasing with SmolLM2 when `phrase`, with the
/// uplink the environment configures.
pub fn pipeline(
    rt: &Runtime,
    store: &ModelStore,
    args: &SkillsArgs,
    phrase: bool,
) -> Result<Pipeline> {
    let mut builder = PipelineBuilder::new(rt);
    let mut indexes = args.indexes.clone();
    if indexes.is_empty() && args.skills.is_empty() {
        indexes.push(DEFAULT_INDEX.to_string());
    }
    for index in &indexes {
        builder = builder.datastore(index)?;
    }
    if !args.skills.is_empty() {
        let installed = SkillStore::at(store.root())?;
        for name in &args.skills {
            builder = builder.installed(&installed, name)?;
        }
    }
    Ok(builder
        .policy_config(args.policy.iter().cloned().collect())
        .phrase(phrase)
        .uplink(UplinkConfig::from_env()?)
        .build()?)
}

/// `edgenlu run`: one JSON line per utterance.
pub fn run(pipeline: &Pipeline, texts: &[String], device: DeviceArgs) -> Result<()> {
    for text in texts {
        let answer = pipeline
            .answer(text, device.state())
            .with_context(|| format!("answering {}", excerpt(text)))?;
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "text": text, "response": answer }))?
        );
    }
    Ok(())
}

/// p50, p90, p99 of `v` (sorted in place).
fn percentiles(v: &mut [f64]) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    [0.5, 0.9, 0.99].map(|p| percentile(v, p))
}

/// The answer recorded for an utterance the pipeline failed on: no intent is named so.
const FAILED: &str = "(failed)";

/// Failures quoted in the report; the rest are counted.
const MAX_FAILURES_SHOWN: usize = 5;

/// `edgenlu eval`: every example through the pipeline, scored; on data with `oos` examples
/// also the `max-out-of-scope` that would maximize overall accuracy on it (how a vendor tunes
/// the policy on validation data).
pub fn eval(
    pipeline: &Pipeline,
    examples: &[Example],
    device: DeviceArgs,
    json: bool,
) -> Result<()> {
    let routes = pipeline.router.routes();
    // Which skills know each intent, to score the router.
    let mut knows: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, route) in routes.iter().enumerate() {
        for intent in route.intents() {
            knows.entry(intent).or_default().push(i);
        }
    }
    if let Some(e) = examples
        .iter()
        .find(|e| e.intent != OUT_OF_SCOPE && !knows.contains_key(&e.intent))
    {
        bail!(
            "no skill knows intent {:?} (of {})",
            e.intent,
            excerpt(&e.text)
        );
    }
    let pb = bar(examples.len(), "eval");
    let mut total_ms = Vec::with_capacity(examples.len());
    let mut stage_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut answers = Vec::with_capacity(examples.len());
    let mut spans = SpanScores::default();
    let (mut routed_right, mut in_scope) = (0usize, 0usize);
    let mut decisions: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut per_skill: BTreeMap<String, usize> = BTreeMap::new();
    // The skill's own answer and the router's distance, for the out-of-scope cut.
    let mut distances = Vec::with_capacity(examples.len());
    // With a phraser: replies phrased and used, and why the others got the template.
    let mut phrased = 0usize;
    let mut templated: BTreeMap<&'static str, usize> = BTreeMap::new();
    // An utterance the pipeline fails on is scored as wrong and reported, not the end of the
    // evaluation: the report of the rest is worth keeping.
    let mut failures: Vec<String> = Vec::new();
    for (i, ex) in examples.iter().enumerate() {
        let start = std::time::Instant::now();
        let a = match pipeline.answer(&ex.text, device.state()) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("example {} ({}): {e}", i + 1, excerpt(&ex.text)));
                spans.add(&to_bytes(&ex.text, &ex.slots), &[]);
                answers.push(FAILED.to_string());
                distances.push((FAILED.to_string(), f32::NAN));
                pb.inc(1);
                continue;
            }
        };
        total_ms.push(start.elapsed().as_secs_f64() * 1e3);
        for t in &a.stages {
            stage_ms
                .entry(t.stage.clone())
                .or_default()
                .push(t.micros as f64 / 1e3);
        }
        if let Some(skills) = knows.get(&ex.intent) {
            in_scope += 1;
            let chosen = routes.iter().position(|r| r.name == a.skill);
            routed_right += chosen.is_some_and(|c| skills.contains(&c)) as usize;
        }
        *per_skill.entry(a.skill.clone()).or_default() += 1;
        let response = &a.answer.response;
        distances.push((response.intent.clone(), a.out_of_scope));
        if pipeline.phraser.is_some() && response.path == AnswerPath::Local {
            phrased += 1;
        }
        let why = match &a.template_reason {
            Some(TemplateReason::Rejected { why, .. }) => Some(why.kind()),
            Some(TemplateReason::Unfinished) => Some("unfinished"),
            Some(TemplateReason::PhrasingFailed(_)) => Some("phrasing failed"),
            Some(TemplateReason::OutOfScope) | None => None,
        };
        if let Some(why) = why {
            *templated.entry(why).or_default() += 1;
        }
        *decisions
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
        spans.add(&to_bytes(&ex.text, &ex.slots), &predicted);
        answers.push(if rejected {
            OUT_OF_SCOPE.to_string()
        } else {
            response.intent.clone()
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    let pairs: Vec<(&str, &str)> = examples
        .iter()
        .zip(&answers)
        .map(|(e, a)| (e.intent.as_str(), a.as_str()))
        .collect();
    let intents = IntentScores::of(&pairs);
    let oos = OutOfScopeScores::of(&pairs);
    let has_gold_oos = examples.iter().any(|e| e.intent == OUT_OF_SCOPE);
    let cut = has_gold_oos.then(|| {
        let seen: Vec<(&str, &str, f32)> = examples
            .iter()
            .zip(&distances)
            .map(|(e, (answer, d))| (e.intent.as_str(), answer.as_str(), *d))
            .collect();
        OutOfScopeCut::tune(&seen)
    });
    let has_slots = spans.gold + spans.predicted > 0;
    let routing = (routes.len() > 1 && in_scope > 0).then(|| routed_right as f64 / in_scope as f64);
    let total = percentiles(&mut total_ms);
    let stages: Vec<(String, [f64; 3])> = stage_ms
        .into_iter()
        .map(|(stage, mut v)| (stage, percentiles(&mut v)))
        .collect();
    let n = examples.len().max(1) as f64;
    let attempted = phrased + templated.values().sum::<usize>();
    let pass_rate = (attempted > 0).then(|| phrased as f64 / attempted as f64);
    if json {
        let p = |q: &[f64; 3]| serde_json::json!({"p50": q[0], "p90": q[1], "p99": q[2]});
        println!(
            "{}",
            serde_json::json!({
                "examples": intents.examples, "correct": intents.correct,
                "accuracy": intents.accuracy, "macro_f1": intents.macro_f1,
                "skills": routes.len(),
                "routing_accuracy": routing,
                "per_skill": per_skill,
                "out_of_scope": oos.as_ref().map(|o| serde_json::json!({
                    "in_scope_accuracy": o.in_scope_accuracy, "recall": o.recall, "precision": o.precision,
                })),
                "slots": has_slots.then(|| serde_json::json!({
                    "gold": spans.gold, "predicted": spans.predicted, "correct": spans.correct,
                    "precision": spans.precision(), "recall": spans.recall(), "f1": spans.f1(),
                })),
                "out_of_scope_cut": cut.as_ref().map(|c| serde_json::json!({
                    "max_out_of_scope": c.max_out_of_scope,
                    "accuracy_without": c.accuracy_without, "accuracy_with": c.accuracy_with,
                    "recall_without": c.without.map(|o| o.recall), "recall_with": c.with.map(|o| o.recall),
                    "precision_with": c.with.map(|o| o.precision),
                })),
                "phrasing": pass_rate.map(|rate| serde_json::json!({
                    "attempted": attempted, "used": phrased, "pass_rate": rate, "template_because": templated,
                })),
                "decisions": decisions,
                "failed": failures.len(),
                "failures": failures.iter().take(MAX_FAILURES_SHOWN).collect::<Vec<_>>(),
                "latency_ms": p(&total),
                "stage_ms": stages.iter().map(|(s, q)| (s.clone(), p(q))).collect::<serde_json::Map<_, _>>(),
            })
        );
        return Ok(());
    }
    println!("examples   {}", intents.examples);
    if !failures.is_empty() {
        println!(
            "failed     {} (scored as wrong answers), e.g.:",
            failures.len()
        );
        for f in failures.iter().take(MAX_FAILURES_SHOWN) {
            println!("  {f}");
        }
    }
    println!(
        "accuracy   {:.2} % ({}/{})",
        intents.accuracy * 100.0,
        intents.correct,
        intents.examples
    );
    println!("macro-F1   {:.2} %", intents.macro_f1 * 100.0);
    if let Some(r) = routing {
        println!(
            "routing    {:.2} % of in-scope utterances to a skill that knows their intent ({} skills)",
            r * 100.0,
            routes.len()
        );
    }
    if let Some(o) = &oos {
        println!(
            "in-scope   {:.2} % accuracy   out-of-scope recall {:.2} %, precision {:.2} %",
            o.in_scope_accuracy * 100.0,
            o.recall * 100.0,
            o.precision * 100.0
        );
    }
    if let Some(c) = &cut {
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
    if has_slots {
        println!(
            "slots      F1 {:.2} %   precision {:.2} %, recall {:.2} % ({} of {} gold spans exact)",
            spans.f1() * 100.0,
            spans.precision() * 100.0,
            spans.recall() * 100.0,
            spans.correct,
            spans.gold
        );
    }
    if let Some(rate) = pass_rate {
        let because: Vec<String> = templated.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "phrasing   {:.1} % of phrased replies passed the check and were used ({phrased}/{attempted}); template because: {}",
            rate * 100.0,
            if because.is_empty() { "-".to_string() } else { because.join(", ") }
        );
    }
    let share = |d: &str| *decisions.get(d).unwrap_or(&0) as f64 / n * 100.0;
    println!(
        "decisions  local {:.1} %   offload {:.1} %   reject {:.1} %",
        share("local"),
        share("offload"),
        share("reject")
    );
    let [p50, p90, p99] = total;
    println!("latency    p50 {p50:.1} ms   p90 {p90:.1} ms   p99 {p99:.1} ms");
    for (stage, [a, b, c]) in &stages {
        println!("  {stage:<9}p50 {a:.2} ms   p90 {b:.2} ms   p99 {c:.2} ms");
    }
    Ok(())
}
