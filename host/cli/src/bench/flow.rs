//! `edgenlu bench flow`: what running the pipeline as a flow component costs. The same
//! pipeline answers every utterance twice, alternating — through its flow (`Pipeline::answer`)
//! and through the host's own Rust path (`Pipeline::answer_native`, the reference the flow
//! reproduces) — so load on the machine falls on both alike; both paths' latency and the flow's
//! extra time per utterance are reported, and how many answers were the same (skill, intent,
//! confidence, slots, reply, path, verdict, scores, stage names: all but the times).

use super::{percentile, WARM_UP};
use anyhow::{Context, Result};
use edgenlu_device::pipeline::{DeviceState, Pipeline};
use edgenlu_kernels::active_variant;
use std::time::Instant;

/// p50 and p99 of one series, ms.
#[derive(serde::Serialize)]
struct Quantiles {
    p50_ms: f64,
    p99_ms: f64,
}

impl Quantiles {
    fn of(mut ms: Vec<f64>) -> Quantiles {
        ms.sort_by(f64::total_cmp);
        Quantiles {
            p50_ms: percentile(&ms, 0.5),
            p99_ms: percentile(&ms, 0.99),
        }
    }
}

/// `bench flow`'s report.
#[derive(serde::Serialize)]
struct FlowReport {
    kernels: String,
    utterances: usize,
    host_pipeline: Quantiles,
    flow: Quantiles,
    /// The flow's time minus the host path's on the same utterance.
    flow_extra: Quantiles,
    /// Utterances both paths answered alike, all but the times.
    identical_answers: usize,
    /// The first utterances answered differently (at most 10).
    differing: Vec<String>,
}

/// Times `texts` through both paths of `pipeline` (after a warm-up) and prints the report.
pub(super) fn run(pipeline: &Pipeline, texts: &[String], json: bool) -> Result<()> {
    let device = DeviceState {
        network_up: false,
        battery_percent: None,
    };
    for text in texts.iter().cycle().take(WARM_UP) {
        pipeline.answer(text, device)?;
        pipeline.answer_native(text, device)?;
    }
    let (mut native, mut flow, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    let (mut identical_answers, mut differing) = (0, Vec::new());
    for text in texts {
        let start = Instant::now();
        let by_host = pipeline
            .answer_native(text, device)
            .with_context(|| format!("the host pipeline on {text:?}"))?;
        let n = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        let by_flow = pipeline
            .answer(text, device)
            .with_context(|| format!("the flow on {text:?}"))?;
        let f = start.elapsed().as_secs_f64() * 1e3;
        native.push(n);
        flow.push(f);
        extra.push(f - n);
        if by_flow.without_times() == by_host.without_times() {
            identical_answers += 1;
        } else if differing.len() < 10 {
            differing.push(text.clone());
        }
    }
    let report = FlowReport {
        kernels: active_variant().name().to_string(),
        utterances: texts.len(),
        host_pipeline: Quantiles::of(native),
        flow: Quantiles::of(flow),
        flow_extra: Quantiles::of(extra),
        identical_answers,
        differing,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} utterances, alternating, offline (no uplink), {} kernels",
        report.utterances, report.kernels
    );
    for (name, q) in [
        ("host pipeline", &report.host_pipeline),
        ("flow", &report.flow),
        ("flow's extra", &report.flow_extra),
    ] {
        println!(
            "  {name:<14} p50 {:>7.3} ms   p99 {:>7.3} ms",
            q.p50_ms, q.p99_ms
        );
    }
    println!(
        "  answers identical (all but the times): {} of {}",
        report.identical_answers, report.utterances
    );
    for text in &report.differing {
        println!("  differs: {text:?}");
    }
    Ok(())
}
