//! `edgenlu bench skill FILE...`: a signed skill file's cold start, stage by stage, and its
//! warm request latency (see [`super::BenchCommand::Skill`]).
//!
//! The stages are disjoint, so they add up to a start: verify (read the file, check its
//! signature and trust as `edgenlu verify` does), load its compiled code (the skill and the
//! tokenizer it links: compiled into an empty temporary cache for the "no cache" figure, then
//! loaded from that cache, now warm, by a fresh runtime, as every later start does; the
//! device's own cache is never touched), instantiate (the first request's fresh instance),
//! and the first answer (the rest of that request: the tokenizer's first instance, opening the
//! models, the skill's work).

use super::{percentile, timed, WARM_UP};
use anyhow::{bail, ensure, Context, Result};
use edgenlu::{Skill, SkillSpec};
use edgenlu_device::installed::ManifestGrants;
use edgenlu_kernels::active_variant;
use edgenlu_models::store::ModelStore;
use edgenlu_trust::manifest::Manifest;
use edgenlu_trust::skills::SkillStore;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the warm requests of every file ask.
pub(super) struct Utterances {
    /// `--data`'s texts and the file they came from; none: each manifest's health probes.
    data: Option<(PathBuf, Vec<String>)>,
    /// Use only the first N utterances.
    limit: Option<usize>,
    /// Requests timed, cycling through the utterances.
    requests: usize,
}

impl Utterances {
    /// Reads `data` (JSONL with `text` and `intent`), if given.
    pub(super) fn read(
        data: Option<PathBuf>,
        limit: Option<usize>,
        requests: usize,
    ) -> Result<Utterances> {
        ensure!(requests > 0, "--requests must be at least 1");
        let data = match data {
            Some(path) => {
                let texts = super::examples(&path, limit)?
                    .into_iter()
                    .map(|e| e.text)
                    .collect();
                Some((path, texts))
            }
            None => None,
        };
        Ok(Utterances {
            data,
            limit,
            requests,
        })
    }

    /// The texts for a skill with `manifest`, repeated to `requests` of them, and where they
    /// come from.
    fn for_skill(&self, manifest: &Manifest) -> Result<(Vec<String>, String)> {
        let (mut texts, source) = match &self.data {
            Some((path, texts)) => (texts.clone(), path.display().to_string()),
            None => {
                let probes: Vec<String> = manifest.health.iter().map(|p| p.text.clone()).collect();
                (probes, "the manifest's health probes".to_string())
            }
        };
        texts.truncate(self.limit.unwrap_or(usize::MAX));
        if texts.is_empty() {
            bail!("no utterances to ask {}: give --data", manifest.name);
        }
        let source = format!("{} utterances from {source}", texts.len());
        let requests = texts.iter().cycle().take(self.requests).cloned().collect();
        Ok((requests, source))
    }
}

/// One file's figures (`--json`: one element of `skills`).
#[derive(serde::Serialize)]
struct SkillFigures {
    file: String,
    skill: String,
    version: u64,
    publisher: String,
    sha256: String,
    /// Size of the signed file.
    bytes: u64,
    cold_start_ms: ColdStart,
    warm: Warm,
}

/// The stages of a cold start, milliseconds (see the module's doc).
#[derive(serde::Serialize)]
struct ColdStart {
    verify: f64,
    load_no_cache: f64,
    load_cached: f64,
    instantiate: f64,
    first_answer: f64,
    /// verify + load_cached + instantiate + first_answer.
    total_cached: f64,
    /// verify + load_no_cache + instantiate + first_answer.
    total_no_cache: f64,
}

/// Warm request latency, after the cold start.
#[derive(serde::Serialize)]
struct Warm {
    utterances: String,
    requests: usize,
    warm_up: usize,
    latency_ms: Latency,
}

#[derive(serde::Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
}

/// Benchmarks every file; a table per file, or one JSON document.
pub(super) fn run(
    store: &ModelStore,
    files: &[PathBuf],
    utterances: &Utterances,
    json: bool,
) -> Result<()> {
    let skills = SkillStore::at(store.root()).context("opening the skill store")?;
    let mut all = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let figures = bench_file(store, &skills, file, utterances)?;
        if !json {
            if i > 0 {
                println!();
            }
            figures.print();
        }
        all.push(figures);
    }
    if json {
        let doc = serde_json::json!({
            "bench": "skill",
            "variant": active_variant().name(),
            "skills": all,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Cold start and warm requests of one signed file, verified against `skills`' trust store.
fn bench_file(
    store: &ModelStore,
    skills: &SkillStore,
    file: &Path,
    utterances: &Utterances,
) -> Result<SkillFigures> {
    let start = Instant::now();
    let (bytes, v) = crate::trust::verify_file(skills.trust(), file)?;
    let verify = start.elapsed();
    let size = bytes.len() as u64;
    let (texts, source) = utterances.for_skill(&v.manifest)?;
    let spec = v.manifest.verified_skill_spec(file, bytes.into());
    let (load_no_cache, load_cached, skill) = load_twice(store, spec)?;
    let (instantiate, first_answer) = first_answer(&skill, &texts[0])?;
    let (mut latencies, _, _) = timed(&texts, |text, _| {
        skill
            .handle(text)
            .with_context(|| format!("answering {text:?}"))?;
        Ok(())
    })?;
    latencies.sort_by(f64::total_cmp);
    let l = |p| percentile(&latencies, p);
    let (verify, instantiate, first_answer) = (ms(verify), ms(instantiate), ms(first_answer));
    let common = verify + instantiate + first_answer;
    Ok(SkillFigures {
        file: file.display().to_string(),
        skill: v.manifest.name,
        version: v.manifest.version,
        publisher: v.delegation.publisher,
        sha256: v.sha256,
        bytes: size,
        cold_start_ms: ColdStart {
            verify,
            load_no_cache: ms(load_no_cache),
            load_cached: ms(load_cached),
            instantiate,
            first_answer,
            total_cached: common + ms(load_cached),
            total_no_cache: common + ms(load_no_cache),
        },
        warm: Warm {
            utterances: source,
            requests: latencies.len(),
            warm_up: WARM_UP.min(texts.len()),
            latency_ms: Latency {
                p50: l(0.5),
                p90: l(0.9),
                p99: l(0.99),
            },
        },
    })
}

/// Loads `spec` on a fresh runtime over an empty temporary cache of compiled components (a
/// first compile), then on another fresh runtime over that cache, now warm. Returns both
/// times and the skill of the second load.
fn load_twice(store: &ModelStore, spec: SkillSpec) -> Result<(Duration, Duration, Skill)> {
    let cache = TempDir::new("edgenlu-bench-cache")?;
    let no_cache = {
        let rt = crate::runtime_with_cache(store.clone(), cache.0.clone())?;
        let start = Instant::now();
        rt.load_skill(spec.clone())?;
        start.elapsed()
    };
    let rt = crate::runtime_with_cache(store.clone(), cache.0.clone())?;
    let start = Instant::now();
    let skill = rt.load_skill(spec)?;
    Ok((no_cache, start.elapsed(), skill))
}

/// The first request to a freshly loaded skill: how long instantiating took (the host's
/// `host:instantiate` timing) and the rest of the request.
fn first_answer(skill: &Skill, text: &str) -> Result<(Duration, Duration)> {
    let start = Instant::now();
    let answer = skill
        .handle(text)
        .with_context(|| format!("answering {text:?}"))?;
    let took = start.elapsed();
    let micros = answer
        .response
        .timings
        .iter()
        .find(|t| t.stage == "host:instantiate")
        .context("the answer has no host:instantiate timing")?
        .micros;
    let instantiate = Duration::from_micros(micros);
    Ok((instantiate, took.saturating_sub(instantiate)))
}

/// A directory of this process under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("{tag}.tmp{}", std::process::id()));
        // A leftover of an earlier run of this process id: its entries would not be cold.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SkillFigures {
    fn print(&self) {
        println!(
            "{}: {} version {} by {}, {} bytes, {} kernels",
            self.file,
            self.skill,
            self.version,
            self.publisher,
            self.bytes,
            active_variant()
        );
        let c = &self.cold_start_ms;
        println!("cold start                ms");
        for (stage, ms, what) in [
            (
                "verify",
                c.verify,
                "read, signature and trust, as `edgenlu verify`",
            ),
            (
                "load, no cache",
                c.load_no_cache,
                "compile the skill and its tokenizer",
            ),
            (
                "load, cached",
                c.load_cached,
                "their compiled code from the disk cache",
            ),
            (
                "instantiate",
                c.instantiate,
                "the first request's fresh instance",
            ),
            (
                "first answer",
                c.first_answer,
                "the rest of the first request",
            ),
            (
                "total, cached",
                c.total_cached,
                "what a start takes once compiled",
            ),
            ("total, no cache", c.total_no_cache, "the very first start"),
        ] {
            println!("  {stage:<16} {ms:>8.2}  {what}");
        }
        let (w, l) = (&self.warm, &self.warm.latency_ms);
        println!(
            "warm requests   p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   ({} after {} warm-up; {})",
            l.p50, l.p90, l.p99, w.requests, w.warm_up, w.utterances
        );
    }
}
