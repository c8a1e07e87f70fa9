//! `edgenlu conformance`: run the bundled components on fixed inputs and record what they
//! computed, then compare two such records — the same `.wasm` bytes on two machines (x86-64 and
//! an ARM64 device or qemu), or on two kernel variants of one machine.
//!
//! A record holds the SHA-256 of every component and model used, so a comparison first proves
//! that both sides ran the same bytes on the same weights; then tokenizer ids and intents must
//! be identical, embeddings and confidences within stated tolerances, and greedy tokens
//! identical — or parting only at a near-tie, where each machine's choice was the other's
//! runner-up by less than [`NEAR_TIE`] logits (each record carries the top two logits of every
//! step, from the host's fused pass replaying the guest's tokens).

use crate::bench::percentile;
use anyhow::{bail, Context, Result};
use edgenlu::bundled::{self, DEFAULT_DECODER, DEFAULT_ENCODER};
use edgenlu::{ChatRequest, Limits, Runtime, Skill};
use edgenlu_models::store::ModelStore;
use edgenlu_train::datastore::read_examples;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Chat prompts whose greedy continuations are compared.
const PROMPTS: &[&str] = &[
    "What is the capital of France?",
    "Give me three tips for a good night's sleep.",
    "Write a haiku about the sea.",
    "Explain what a neural network is in one sentence.",
];

/// Largest elementwise |Δ| between two machines' embeddings (unit vectors of 384 f32) that
/// still counts as agreement. Kernel variants sum in different orders and may round an
/// activation to the neighbouring int8 step; measured on SNIPS test: x86 AVX-512 vs ARM64
/// NEON 2.3e-5, vs x86 scalar 1.3e-5 — twenty times below this (docs/BENCHMARKS.md).
pub const EMBEDDING_TOLERANCE: f32 = 5e-4;
/// Largest |Δ| between two machines' intent confidences.
pub const CONFIDENCE_TOLERANCE: f32 = 5e-4;

/// `edgenlu conformance` subcommands.
#[derive(clap::Subcommand)]
pub enum ConformanceCommand {
    /// Run the bundled components (WordPiece and BPE tokenizers, intents skill, chat skill) on
    /// every utterance of a dataset and on fixed chat prompts; write what they computed, with
    /// the SHA-256 of every component and model, the CPU architecture and the kernel variant.
    ///
    /// Example: edgenlu conformance run --data ../shared/datasets/snips/test.jsonl --out x86.json
    Run {
        /// JSONL with `text` (and `intent`) on each line.
        #[arg(long)]
        data: PathBuf,
        /// The intents skill's datastore (built by `edgenlu skill index`).
        #[arg(long, default_value = bundled::DEFAULT_INDEX)]
        index: String,
        /// Use only the first N utterances.
        #[arg(long, value_parser = crate::count::<usize>)]
        limit: Option<usize>,
        /// Use at most N utterances per intent, spread over each intent's (before --limit).
        #[arg(long, value_parser = crate::count::<usize>)]
        per_intent: Option<usize>,
        /// Greedy tokens generated per chat prompt (0: no generation).
        #[arg(long, default_value_t = 24, value_parser = crate::count::<u32>)]
        tokens: u32,
        /// Threads answering utterances in parallel.
        #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()), value_parser = crate::count::<usize>)]
        threads: usize,
        /// Where to write the record (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare two records made by `conformance run`; exits non-zero unless they agree:
    /// same component and model bytes, identical token ids and intents, embeddings and
    /// confidences within tolerance, greedy tokens identical or parting only at a near-tie.
    ///
    /// Example: edgenlu conformance compare x86.json arm64.json
    Compare {
        /// The reference record.
        reference: PathBuf,
        /// The record checked against it.
        other: PathBuf,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where a record was made.
#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    /// `std::env::consts::ARCH` of the host binary.
    pub arch: String,
    /// The kernel variant that ran, with its extensions (e.g. `neon+dotprod`).
    pub kernels: String,
    /// Engine options in force (e.g. a small memory reservation under qemu).
    pub memory_reservation: Option<u64>,
}

/// What the components computed for one utterance.
#[derive(Debug, Serialize, Deserialize)]
pub struct UtteranceRecord {
    pub text: String,
    pub wordpiece_ids: Vec<u32>,
    pub bpe_ids: Vec<u32>,
    pub intent: String,
    pub confidence: f32,
    pub embedding: Vec<f32>,
}

/// A greedy continuation of one chat prompt.
#[derive(Debug, Serialize, Deserialize)]
pub struct GenerationRecord {
    pub prompt: String,
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub text: String,
    /// The most likely tokens before each generated one, from the host's fused pass replaying
    /// the guest's tokens: what a divergence between machines is judged by.
    pub steps: Vec<StepTop>,
}

/// How many of the most likely next tokens a step records.
const TOP: usize = 5;

/// The [`TOP`] most likely next tokens at one step, most likely first, with their logits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTop(pub Vec<(u32, f32)>);

impl StepTop {
    fn of(logits: &[f32]) -> StepTop {
        let mut top: Vec<(u32, f32)> = Vec::with_capacity(TOP + 1);
        for (i, &l) in logits.iter().enumerate() {
            if top.len() < TOP || l > top[top.len() - 1].1 {
                let at = top.partition_point(|&(_, t)| t >= l);
                top.insert(at, (i as u32, l));
                top.truncate(TOP);
            }
        }
        StepTop(top)
    }

    /// The chosen (most likely) token and its logit.
    pub fn first(&self) -> (u32, f32) {
        self.0.first().copied().unwrap_or((0, f32::NAN))
    }

    /// How far below the chosen token `id` was here, if it was among the top.
    pub fn behind(&self, id: u32) -> Option<f32> {
        let first = self.first().1;
        self.0
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, l)| first - l)
    }
}

/// Largest logit gap at which two machines may pick different greedy tokens (each machine's
/// choice at most this far below the other's): a near-tie that a different summation order
/// can flip (the [decoder] tests bound
/// llama.cpp-vs-edgenlu divergences the same way).
pub const NEAR_TIE: f32 = 1.0;

/// Everything `conformance run` writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub machine: Machine,
    /// Component file name → SHA-256 of its bytes.
    pub components: BTreeMap<String, String>,
    /// Model or datastore name → SHA-256 as the store recorded it.
    pub models: BTreeMap<String, String>,
    pub utterances: Vec<UtteranceRecord>,
    pub generations: Vec<GenerationRecord>,
    /// Wall time per utterance, milliseconds (p50, p99): how slow this machine or emulator is.
    pub utterance_ms: (f64, f64),
}

/// Runs a `conformance` subcommand.
pub fn run(cmd: ConformanceCommand, store: &ModelStore) -> Result<()> {
    match cmd {
        ConformanceCommand::Run {
            data,
            index,
            limit,
            per_intent,
            tokens,
            threads,
            out,
        } => {
            let mut examples = read_examples(&data)?;
            if let Some(n) = per_intent {
                examples = edgenlu_train::datastore::limit_per_intent(examples, n);
            }
            if let Some(n) = limit {
                examples.truncate(n);
            }
            let texts: Vec<String> = examples.into_iter().map(|e| e.text).collect();
            let rt = crate::runtime(store.clone())?;
            let record = record(&rt, store, &index, &texts, tokens, threads.max(1))?;
            let json = serde_json::to_vec(&record)?;
            std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "{}: {} utterances, {} generations on {} ({}); {:.0} ms p50 per utterance",
                out.display(),
                record.utterances.len(),
                record.generations.len(),
                record.machine.arch,
                record.machine.kernels,
                record.utterance_ms.0
            );
            Ok(())
        }
        ConformanceCommand::Compare {
            reference,
            other,
            json,
        } => {
            let (a, b) = (read_record(&reference)?, read_record(&other)?);
            let comparison = compare(&a, &b);
            if json {
                println!("{}", serde_json::to_string(&comparison)?);
            } else {
                print_comparison(&comparison);
            }
            if !comparison.failures.is_empty() {
                bail!("the records disagree: {}", comparison.failures.join("; "));
            }
            Ok(())
        }
    }
}

fn read_record(path: &Path) -> Result<Record> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a conformance record", path.display()))
}

/// Limits for the run: an emulator is tens of times slower than the device, and the point
/// here is agreement, not speed.
fn conformance_limits(base: Limits) -> Limits {
    Limits {
        deadline: Duration::from_secs(600),
        ..base
    }
}

fn record(
    rt: &Runtime,
    store: &ModelStore,
    index: &str,
    texts: &[String],
    tokens: u32,
    threads: usize,
) -> Result<Record> {
    let intents = crate::intents_for_index(rt, index, conformance_limits(Limits::default()))?;
    let bpe = rt.load_skill(bundled::bpe_tokenize_only(
        DEFAULT_DECODER,
        conformance_limits(Limits::default()),
    ))?;
    let digests: BTreeMap<String, String> = store
        .list()?
        .into_iter()
        .map(|e| (e.name, e.sha256))
        .collect();
    let mut models = BTreeMap::new();
    for name in [DEFAULT_ENCODER, DEFAULT_DECODER, index] {
        let digest = digests
            .get(name)
            .with_context(|| format!("{name} is not in the model store"))?;
        models.insert(name.to_string(), digest.clone());
    }
    let mut components = BTreeMap::new();
    for component in [
        bundled::components::TOKENIZER_WORDPIECE,
        bundled::components::TOKENIZER_BPE,
        bundled::components::SKILL_INTENTS,
        bundled::components::SKILL_CHAT,
    ] {
        let digest = format!("{:x}", Sha256::digest(component.bytes));
        components.insert(component.name.to_string(), digest);
    }

    let pb = crate::bar(texts.len(), "utterances");
    let rows = edgenlu::parallel::map(
        texts,
        threads,
        |_, text| {
            let start = std::time::Instant::now();
            utterance(&intents, &bpe, text).map(|u| (u, start.elapsed().as_secs_f64() * 1e3))
        },
        &|n| pb.set_position(n as u64),
    )
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    pb.finish_and_clear();
    let mut ms: Vec<f64> = rows.iter().map(|(_, ms)| *ms).collect();
    ms.sort_by(f64::total_cmp);
    let utterance_ms = (percentile(&ms, 0.5), percentile(&ms, 0.99));

    let mut generations = Vec::new();
    if tokens > 0 {
        let chat = rt.load_skill(bundled::chat_skill(
            DEFAULT_DECODER,
            conformance_limits(bundled::chat_limits()),
        ))?;
        for prompt in PROMPTS {
            let response = chat
                .chat(&ChatRequest::greedy(prompt, tokens), None)
                .with_context(|| format!("generating for {prompt:?}"))?;
            let steps = replay(rt, &response.prompt_ids, &response.ids)?;
            generations.push(GenerationRecord {
                prompt: prompt.to_string(),
                prompt_ids: response.prompt_ids,
                ids: response.ids,
                text: response.text,
                steps,
            });
        }
    }
    Ok(Record {
        machine: Machine {
            arch: std::env::consts::ARCH.to_string(),
            kernels: edgenlu_kernels::active_variant().describe(),
            memory_reservation: edgenlu::RuntimeOptions::from_env()?.memory_reservation,
        },
        components,
        models,
        utterances: rows.into_iter().map(|(u, _)| u).collect(),
        generations,
        utterance_ms,
    })
}

/// Runs the host's fused llama pass over `prompt` then `ids` (the guest's greedy tokens),
/// returning the top two tokens before each of `ids`. The pass is the one the guest's
/// generation ran (same chunks, same kernels), so each step's first token must be the guest's.
fn replay(rt: &Runtime, prompt: &[u32], ids: &[u32]) -> Result<Vec<StepTop>> {
    let llama = edgenlu_models::Llama::new(rt.catalog().get(DEFAULT_DECODER)?)?;
    let mut cache = llama.new_cache(prompt.len() + ids.len())?;
    let mut logits = vec![0f32; llama.config().vocab];
    let never = || false;
    for chunk in prompt.chunks(edgenlu::PREFILL_CHUNK) {
        llama.forward(chunk, &mut cache, &mut logits, &never)?;
    }
    let mut steps = Vec::with_capacity(ids.len());
    for (k, &id) in ids.iter().enumerate() {
        let step = StepTop::of(&logits);
        if step.first().0 != id {
            bail!(
                "replaying the generation: token {k} is {} on the host pass but {id} from the guest",
                step.first().0
            );
        }
        steps.push(step);
        if k + 1 < ids.len() {
            llama.forward(&[id], &mut cache, &mut logits, &never)?;
        }
    }
    Ok(steps)
}

fn utterance(intents: &Skill, bpe: &Skill, text: &str) -> Result<UtteranceRecord> {
    let one = [text.to_string()];
    let answer = intents
        .handle(text)
        .with_context(|| format!("answering {text:?}"))?;
    Ok(UtteranceRecord {
        text: text.to_string(),
        wordpiece_ids: intents.tokenize(&one)?.remove(0),
        bpe_ids: bpe.tokenize(&one)?.remove(0),
        intent: answer.response.intent,
        confidence: answer.response.confidence,
        embedding: intents.embed(text)?,
    })
}

/// Where two greedy continuations part.
#[derive(Debug, Serialize)]
pub struct Divergence {
    pub prompt: String,
    /// The first generated position that differs.
    pub at: usize,
    /// How far below its own choice each machine put the other's (None: not in its top).
    pub gaps: (Option<f32>, Option<f32>),
    /// Each machine put the other's choice within [`NEAR_TIE`] of its own: float order, not a
    /// kernel bug.
    pub near_tie: bool,
}

/// Where two records agree and where they do not.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub reference: String,
    pub other: String,
    pub same_components: bool,
    /// The reference's components and their SHA-256.
    pub components: BTreeMap<String, String>,
    pub same_models: bool,
    pub utterances: usize,
    pub wordpiece_identical: usize,
    pub bpe_identical: usize,
    pub intents_identical: usize,
    pub confidence_max_abs_diff: f32,
    pub embedding_max_abs_diff: f32,
    pub embedding_min_cosine: f32,
    pub generations: usize,
    pub generations_identical: usize,
    /// Prompts whose tokens differ, each at a near-tie ([`NEAR_TIE`]) or not.
    pub generation_divergences: Vec<Divergence>,
    /// Largest |Δ| of the chosen token's logit over the steps both machines shared.
    pub shared_steps_max_logit_diff: f32,
    /// Slowdown of the other machine per utterance (p50 ratio).
    pub utterance_time_ratio: f64,
    /// Every way the records disagree; empty when they agree.
    pub failures: Vec<String>,
}

/// |a − b|, with NaN on either side as infinitely far (`f32::max` would drop a NaN).
fn abs_diff(a: f32, b: f32) -> f32 {
    let d = (a - b).abs();
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

/// Compares `b` against the reference `a`.
pub fn compare(a: &Record, b: &Record) -> Comparison {
    let mut failures = Vec::new();
    let describe = |m: &Machine| format!("{} ({})", m.arch, m.kernels);
    let same_components = a.components == b.components;
    if !same_components {
        failures.push("the component files differ (SHA-256)".into());
    }
    let same_models = a.models == b.models;
    if !same_models {
        failures.push("the models or datastore differ (SHA-256)".into());
    }
    let texts_match = a.utterances.len() == b.utterances.len()
        && a.utterances
            .iter()
            .zip(&b.utterances)
            .all(|(x, y)| x.text == y.text);
    if !texts_match {
        failures.push("the records were made on different utterances".into());
    }
    let pairs: Vec<_> = if texts_match {
        a.utterances.iter().zip(&b.utterances).collect()
    } else {
        Vec::new()
    };
    let count = |f: &dyn Fn(&UtteranceRecord, &UtteranceRecord) -> bool| {
        pairs.iter().filter(|(x, y)| f(x, y)).count()
    };
    let wordpiece_identical = count(&|x, y| x.wordpiece_ids == y.wordpiece_ids);
    let bpe_identical = count(&|x, y| x.bpe_ids == y.bpe_ids);
    let intents_identical = count(&|x, y| x.intent == y.intent);
    let n = pairs.len();
    for (what, same) in [
        ("WordPiece ids", wordpiece_identical),
        ("BPE ids", bpe_identical),
        ("intents", intents_identical),
    ] {
        if same != n {
            failures.push(format!("{what} differ on {} of {n} utterances", n - same));
        }
    }
    let confidence_max_abs_diff = pairs
        .iter()
        .map(|(x, y)| abs_diff(x.confidence, y.confidence))
        .fold(0.0, f32::max);
    if confidence_max_abs_diff > CONFIDENCE_TOLERANCE {
        failures.push(format!(
            "confidences differ by up to {confidence_max_abs_diff:.2e} (tolerance {CONFIDENCE_TOLERANCE:.0e})"
        ));
    }
    let mut embedding_max_abs_diff = 0.0f32;
    let mut embedding_min_cosine = 1.0f32;
    for (x, y) in &pairs {
        if x.embedding.len() != y.embedding.len() {
            embedding_max_abs_diff = f32::INFINITY;
            continue;
        }
        let mut dot = 0.0f32;
        for (p, q) in x.embedding.iter().zip(&y.embedding) {
            embedding_max_abs_diff = embedding_max_abs_diff.max(abs_diff(*p, *q));
            dot += p * q;
        }
        // Both are unit vectors, so the dot product is the cosine.
        embedding_min_cosine = embedding_min_cosine.min(dot);
    }
    if embedding_max_abs_diff > EMBEDDING_TOLERANCE {
        failures.push(format!(
            "embeddings differ by up to {embedding_max_abs_diff:.2e} (tolerance {EMBEDDING_TOLERANCE:.0e})"
        ));
    }
    let mut generation_divergences = Vec::new();
    let mut shared_steps_max_logit_diff = 0.0f32;
    let generations = a.generations.len().min(b.generations.len());
    if a.generations.len() != b.generations.len() {
        failures.push("the records have different numbers of generations".into());
    }
    for (x, y) in a.generations.iter().zip(&b.generations) {
        if x.prompt != y.prompt || x.prompt_ids != y.prompt_ids {
            failures.push(format!(
                "prompt {:?}: different prompt or prompt ids",
                x.prompt
            ));
            continue;
        }
        let shared = x.ids.iter().zip(&y.ids).take_while(|(p, q)| p == q).count();
        for (s, t) in x.steps.iter().zip(&y.steps).take(shared) {
            shared_steps_max_logit_diff =
                shared_steps_max_logit_diff.max((s.first().1 - t.first().1).abs());
        }
        if x.ids == y.ids {
            continue;
        }
        let (Some(s), Some(t)) = (x.steps.get(shared), y.steps.get(shared)) else {
            failures.push(format!("prompt {:?}: one machine stopped early", x.prompt));
            continue;
        };
        let gaps = (s.behind(t.first().0), t.behind(s.first().0));
        let near_tie = [gaps.0, gaps.1]
            .iter()
            .all(|g| g.is_some_and(|g| g <= NEAR_TIE));
        if !near_tie {
            failures.push(format!(
                "prompt {:?}: greedy tokens differ from position {shared}, not at a near-tie",
                x.prompt
            ));
        }
        generation_divergences.push(Divergence {
            prompt: x.prompt.clone(),
            at: shared,
            gaps,
            near_tie,
        });
    }
    Comparison {
        reference: describe(&a.machine),
        other: describe(&b.machine),
        same_components,
        components: a.components.clone(),
        same_models,
        utterances: n,
        wordpiece_identical,
        bpe_identical,
        intents_identical,
        confidence_max_abs_diff,
        embedding_max_abs_diff,
        embedding_min_cosine,
        generations,
        generations_identical: generations - generation_divergences.len(),
        generation_divergences,
        shared_steps_max_logit_diff,
        utterance_time_ratio: b.utterance_ms.0 / a.utterance_ms.0,
        failures,
    }
}

fn print_comparison(c: &Comparison) {
    let yes = |b: bool| if b { "same" } else { "DIFFERENT" };
    println!("reference      {}", c.reference);
    println!("other          {}", c.other);
    println!("components     {} SHA-256", yes(c.same_components));
    for (name, sha) in &c.components {
        println!("               {sha:.16}…  {name}");
    }
    println!("models         {} SHA-256", yes(c.same_models));
    println!(
        "WordPiece ids  {} / {} identical",
        c.wordpiece_identical, c.utterances
    );
    println!(
        "BPE ids        {} / {} identical",
        c.bpe_identical, c.utterances
    );
    println!(
        "intents        {} / {} identical",
        c.intents_identical, c.utterances
    );
    println!(
        "confidence     max |Δ| {:.2e} (tolerance {CONFIDENCE_TOLERANCE:.0e})",
        c.confidence_max_abs_diff
    );
    println!(
        "embeddings     max |Δ| {:.2e} (tolerance {EMBEDDING_TOLERANCE:.0e}), min cosine {:.7}",
        c.embedding_max_abs_diff, c.embedding_min_cosine
    );
    println!(
        "greedy tokens  {} / {} prompts identical",
        c.generations_identical, c.generations
    );
    for d in &c.generation_divergences {
        let gap = |g: Option<f32>| g.map_or("not in top".into(), |g| format!("{g:.3}"));
        println!(
            "               {:?} parts at token {}: each choice below the other by {} / {}, {}",
            d.prompt,
            d.at,
            gap(d.gaps.0),
            gap(d.gaps.1),
            if d.near_tie {
                "a near-tie (float order)"
            } else {
                "NOT a near-tie"
            }
        );
    }
    println!(
        "               chosen-token logits on shared steps: max |Δ| {:.2e}",
        c.shared_steps_max_logit_diff
    );
    println!(
        "time per utterance  {:.1}x the reference (p50)",
        c.utterance_time_ratio
    );
    if c.failures.is_empty() {
        println!("AGREE");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(intent: &str, embedding: Vec<f32>, ids: Vec<u32>, steps: Vec<StepTop>) -> Record {
        Record {
            machine: Machine {
                arch: "test".into(),
                kernels: "scalar".into(),
                memory_reservation: None,
            },
            components: [("skill.wasm".to_string(), "ab".to_string())].into(),
            models: [("m".to_string(), "cd".to_string())].into(),
            utterances: vec![UtteranceRecord {
                text: "play jazz".into(),
                wordpiece_ids: vec![101, 2377, 102],
                bpe_ids: vec![1, 2],
                intent: intent.into(),
                confidence: 0.9,
                embedding,
            }],
            generations: vec![GenerationRecord {
                prompt: "hi".into(),
                prompt_ids: vec![7],
                ids,
                text: String::new(),
                steps,
            }],
            utterance_ms: (1.0, 2.0),
        }
    }

    fn step(first: (u32, f32), second: (u32, f32)) -> StepTop {
        StepTop(vec![first, second])
    }

    fn reference() -> Record {
        record(
            "PlayMusic",
            vec![0.6, 0.8],
            vec![5, 6],
            vec![step((5, 3.0), (9, 1.0)), step((6, 2.0), (8, 1.9))],
        )
    }

    #[test]
    fn identical_records_agree() {
        let c = compare(&reference(), &reference());
        assert!(c.failures.is_empty(), "{:?}", c.failures);
        assert_eq!(c.generations_identical, 1);
    }

    #[test]
    fn a_different_intent_component_or_embedding_is_a_failure() {
        let a = reference();
        let mut b = reference();
        b.utterances[0].intent = "GetWeather".into();
        assert_eq!(compare(&a, &b).intents_identical, 0);
        assert!(!compare(&a, &b).failures.is_empty());

        let mut b = reference();
        b.components.insert("skill.wasm".into(), "ff".into());
        assert!(!compare(&a, &b).same_components);
        assert!(!compare(&a, &b).failures.is_empty());

        let mut b = reference();
        b.utterances[0].embedding = vec![0.6 + 2.0 * EMBEDDING_TOLERANCE, 0.8];
        assert!(!compare(&a, &b).failures.is_empty());
        b.utterances[0].embedding = vec![0.6 + 0.5 * EMBEDDING_TOLERANCE, 0.8];
        assert!(compare(&a, &b).failures.is_empty());
        b.utterances[0].embedding = vec![f32::NAN, 0.8];
        assert!(!compare(&a, &b).failures.is_empty());
    }

    #[test]
    fn greedy_tokens_may_part_only_at_a_near_tie() {
        let a = reference();
        // The other machine swapped the near-tied pair at step 1 (8 vs 6, 0.1 apart).
        let b = record(
            "PlayMusic",
            vec![0.6, 0.8],
            vec![5, 8],
            vec![step((5, 3.1), (9, 1.0)), step((8, 2.0), (6, 1.95))],
        );
        let c = compare(&a, &b);
        assert!(c.failures.is_empty(), "{:?}", c.failures);
        assert_eq!(c.generation_divergences.len(), 1);
        assert!(c.generation_divergences[0].near_tie);
        assert_eq!(c.generation_divergences[0].at, 1);
        assert!((c.shared_steps_max_logit_diff - 0.1).abs() < 1e-5);

        // At step 0 the reference was 2 logits sure: parting there is a failure.
        let b = record(
            "PlayMusic",
            vec![0.6, 0.8],
            vec![9, 6],
            vec![step((9, 3.0), (5, 2.9)), step((6, 2.0), (8, 1.9))],
        );
        let c = compare(&a, &b);
        assert!(!c.generation_divergences[0].near_tie);
        assert!(!c.failures.is_empty());
    }

    #[test]
    fn step_top_keeps_the_most_likely_tokens_in_order() {
        let logits = [0.5, 3.0, -1.0, 2.0, 3.5, 0.0, 1.0];
        let top = StepTop::of(&logits);
        assert_eq!(
            top.0.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![4, 1, 3, 6, 0]
        );
        assert_eq!(top.behind(1), Some(0.5));
        assert_eq!(top.behind(2), None);
    }
}
