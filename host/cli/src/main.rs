//! `edgenlu`: the command line. Errors are `anyhow` here at the edge; the library is typed.

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use edgenlu::bundled::{self, DEFAULT_ENCODER};
use edgenlu::{Limits, ModelCatalog, Runtime, RuntimeOptions, Skill};
use edgenlu_models::store::ModelStore;
use edgenlu_train::datastore;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

mod bench;
mod completions;
mod conformance;
mod eval;
mod fleet;
mod flows;
mod generate;
mod models;
mod pipeline;
mod pull;
mod push;
mod release;
mod serve;
mod skill;
mod trust;

#[derive(Parser)]
#[command(
    name = "edgenlu",
    version,
    about = "A WebAssembly component runtime for natural-language skills on edge devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more: -v info, -vv debug, -vvv trace (EDGENLU_LOG, when set, decides instead).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print only results and errors: no progress bars, no warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Keys, signing, the trust store and the skill store (keygen, sign, verify, inspect,
    /// trust, install, list, rollback, remove, ask).
    #[command(flatten)]
    Trust(trust::TrustCli),
    /// Publish a signed skill file or a signed model to an OCI registry (distribution, Harbor,
    /// ECR, GHCR, Zot). A skill goes as a CNCF Wasm artifact: its one layer is the signed file
    /// unchanged, signature inside. A model goes as a CNCF ModelPack artifact: the GGUF and its
    /// detached signature. Credentials come from the Docker config file
    /// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json); loopback registries are
    /// spoken to over HTTP, every other one over HTTPS unless --insecure. Prints what was
    /// pushed and the manifest digest that names it.
    ///
    /// Example: edgenlu push intents.wasm registry.example.com/acme/intents:2
    ///
    /// Example: edgenlu push minilm-ft.q8_0 127.0.0.1:5000/acme/minilm-ft:1
    ///
    /// Example: edgenlu push ./minilm-ft.gguf 127.0.0.1:5000/acme/minilm-ft:1 --signature minilm-ft.sig.json
    Push(push::PushArgs),
    /// Fetch a skill, flow or model from an OCI registry and install it (a flow as the
    /// device's flow, its probes answered through the device's skills). Each blob streams to a
    /// temporary file in the store, resumes after a dropped connection (HTTP range requests)
    /// and must match its registry digest; then the device's own checks decide, as for
    /// `install` (signature, publisher's delegation, grants, expiry, version floor, health
    /// check with rollback) or for `models import` and `trust add` (the model signature, the
    /// store's overwrite rules). A refusal leaves the store as it was.
    ///
    /// Example: edgenlu pull registry.example.com/acme/intents:2
    ///
    /// Example: edgenlu pull 127.0.0.1:5000/acme/minilm-ft@sha256:4f1c...
    Pull(pull::PullArgs),
    /// Channels: what a fleet should run, as an OCI artifact at a tag. `channel set` pins each
    /// skill, model or flow by manifest digest with a rollout percentage; `channel show`
    /// prints one.
    ///
    /// Example: edgenlu channel set registry.example.com/acme/channel:stable --skill registry.example.com/acme/intents:2 --rollout 20
    #[command(subcommand)]
    Channel(fleet::ChannelCommand),
    /// One round of the update agent: read the channel and, for each entry whose cohort this
    /// device is in (SHA-256 of device id, name and digest, mod 100, below the rollout) and
    /// whose digest it does not have, pull it as `pull` does (registry digest, trust rules,
    /// health check with automatic rollback). A digest that failed its health check here is not
    /// tried again until the channel names another; an unreachable registry is retried with
    /// backoff, then the device keeps what it has. Writes <store>/status.json; fails when the
    /// channel could not be read or an entry failed.
    ///
    /// Example: edgenlu sync --channel registry.example.com/acme/channel:stable
    ///
    /// Example: edgenlu sync --channel 127.0.0.1:5000/acme/channel:stable --device-id kiosk-17 --json
    Sync(fleet::FollowArgs),
    /// The update agent: `sync` every --interval seconds (within 10 %, at random) until
    /// SIGTERM or SIGINT. A failed round never stops it; `edgenlu serve` on the same store
    /// swaps to what it installs between requests.
    ///
    /// Example: edgenlu agent --channel registry.example.com/acme/channel:stable --interval 300
    ///
    /// Example: edgenlu agent --channel 127.0.0.1:5000/acme/channel:stable --report 127.0.0.1:5000/acme/status
    Agent(fleet::AgentArgs),
    /// Print the device's status record (<store>/status.json): device id, channel, last sync
    /// and its result, and for each entry the installed version and digest, whether the device
    /// is in its cohort, and the error that rolled an install back.
    ///
    /// Example: edgenlu status --json
    Status {
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage the model store ($EDGENLU_HOME, else $XDG_DATA_HOME/edgenlu).
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Skill projects (new, build, test) and the bundled intents skill's data (index, train).
    #[command(subcommand)]
    Skill(skill::SkillCommand),
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
        skills: pipeline::SkillsArgs,
        /// Template replies only: do not phrase them with SmolLM2.
        #[arg(long)]
        no_phrase: bool,
        #[command(flatten)]
        device: pipeline::DeviceArgs,
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
        skills: pipeline::SkillsArgs,
        /// Use only the first N examples.
        #[arg(long, value_parser = crate::count::<usize>)]
        limit: Option<usize>,
        /// Phrase local answers with SmolLM2 (slow: about a second per utterance).
        #[arg(long)]
        phrase: bool,
        #[command(flatten)]
        device: pipeline::DeviceArgs,
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
    ///
    /// Example (the reply one JSON value valid under a schema):
    /// edgenlu generate --chat --json-schema person.json "Describe a person as JSON."
    /// with person.json {"type": "object", "properties": {"name": {"type": "string"}},
    /// "required": ["name"]}
    Generate(generate::GenerateArgs),
    /// Serve the skills over HTTP: `POST /v1/nlu` ({"text": ...}; optional "network": "up" or
    /// "down" and "battery": N override --network and --battery) answers through the device
    /// pipeline as `edgenlu run` does — router over the skills --index and --skill name, the
    /// vendor policy, a template reply (phrased by SmolLM2 with --phrase) or the uplink's
    /// answer (EDGENLU_UPLINK_URL) — with the skill, verdict and stage times; OpenAI-compatible
    /// `POST /v1/embeddings` (the router's encoder) and `POST /v1/chat/completions` (the whole
    /// conversation; `stream: true` for server-sent events), `GET /v1/models`, `GET /healthz`,
    /// `GET /metrics` (Prometheus: each skill's version, the update agent's last sync). Installed skills swap to a new
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
        skills: pipeline::SkillsArgs,
        /// Phrase `/v1/nlu` replies with SmolLM2 (about a second per utterance).
        #[arg(long)]
        phrase: bool,
        #[command(flatten)]
        device: pipeline::DeviceArgs,
        /// Worker threads answering requests.
        #[arg(long, default_value_t = 2, value_parser = crate::count::<usize>)]
        workers: usize,
        /// Requests that may wait for a worker; past that, 503.
        #[arg(long, default_value_t = 16, value_parser = crate::count::<usize>)]
        queue: usize,
        /// Largest request body, bytes; past that, 413.
        #[arg(long, default_value_t = 1 << 20, value_parser = crate::count::<usize>)]
        max_body: usize,
        /// Longest a request may wait for a worker, milliseconds; past that, 503.
        #[arg(long, default_value_t = 5000)]
        max_queue_wait_ms: u64,
        /// Connections open at once; one more is answered 503 and closed.
        #[arg(long, default_value_t = 1024, value_parser = crate::count::<usize>)]
        max_connections: usize,
        /// Largest request head (request line and headers), bytes; past that, 431 and the
        /// connection is closed.
        #[arg(long, default_value_t = 16 << 10, value_parser = crate::count::<usize>)]
        max_header_bytes: usize,
        /// Most header fields in a request; past that, 431 and the connection is closed.
        #[arg(long, default_value_t = 64, value_parser = crate::count::<usize>)]
        max_headers: usize,
        /// Longest a connection may go without sending a whole request head, milliseconds,
        /// from when it opens or its previous answer went out; then it is closed (idle
        /// keep-alive connections, clients that send their head slowly).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
        idle_timeout_ms: u64,
        /// Longest a client may take to send a request body (past that, 408) or leave an
        /// answer unread (then the connection is closed), milliseconds.
        #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
        io_timeout_ms: u64,
    },
    /// Benchmarks: `bench nlu`, `bench embed [--compare onnxruntime]` (the seed's sheet:
    /// latency, throughput, accuracy, peak RAM, footprint, energy), `bench generate` (SmolLM2
    /// beside llama.cpp), `bench kernels` (matmul per shape against the memory roofline),
    /// `bench skill FILE...` (a signed skill's cold start by stage and warm latency).
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
    /// Release manifests: `release sign` lists a release's files (binaries, packages) with
    /// their sizes and SHA-256 digests, signed by the vendor's key; `release verify` checks the
    /// signature and every file before anyone runs them (`scripts/release.sh` makes releases).
    ///
    /// Example: edgenlu release verify dist/release.json --key acme.pub
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: edgenlu completions bash > ~/.local/share/bash-completion/completions/edgenlu
    Completions(completions::CompletionsArgs),
}

/// Parses a flag that counts something as a whole number of 0 or more, refusing a negative
/// one with a message that says so (clap's own would call `-1` an unknown flag or an invalid
/// digit).
fn count<T: TryFrom<u128>>(s: &str) -> Result<T, String> {
    let n: i128 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n < 0 {
        return Err(format!("{n} is negative: expected 0 or more"));
    }
    T::try_from(n as u128).map_err(|_| format!("{n} is too large"))
}

/// Lets every flag of `cmd` and its subcommands take a negative number as its value, so
/// `--max-tokens -1` reaches the flag's own check instead of being read as a flag.
fn negative_numbers_as_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    })
    .mut_subcommands(negative_numbers_as_values)
}

/// Set by `--quiet`: progress bars stay hidden.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The runtime the commands use: compiled components cached in the store, engine options
/// from the environment (`EDGENLU_WASM_MEMORY_RESERVATION_MIB`).
fn runtime(store: ModelStore) -> Result<Runtime> {
    let cache = store.root().join("cache/components");
    runtime_with_cache(store, cache)
}

/// [`runtime`] with its compiled components cached in `cache` instead of the store.
fn runtime_with_cache(store: ModelStore, cache: PathBuf) -> Result<Runtime> {
    let options = RuntimeOptions::from_env()?;
    Ok(Runtime::with_options(
        ModelCatalog::new(store),
        Some(cache),
        options,
    )?)
}

fn bar(len: usize, what: &str) -> ProgressBar {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    // Redrawn while a stage without steps runs, so a long one never looks hung.
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    pb
}

/// Loads the intents skill answering from datastore `index`, with the encoder it was built with.
fn intents_for_index(rt: &Runtime, index: &str, limits: Limits) -> Result<Skill> {
    Ok(edgenlu_device::builder::datastore_skill(rt, index, limits)?)
}

/// Logs to stderr at the level `-v`/`-q` ask for, unless `EDGENLU_LOG` says otherwise.
fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("EDGENLU_LOG") {
        Ok(directives) => tracing_subscriber::EnvFilter::new(directives),
        Err(_) => tracing_subscriber::EnvFilter::new(level),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> Result<()> {
    // A refused request is an expected outcome, not a crash: its error must not capture and
    // symbolize a backtrace because RUST_BACKTRACE is set for panics (RUST_LIB_BACKTRACE=1
    // still asks for them). Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let matches = negative_numbers_as_values(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(&cli);
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    if let Command::Completions(args) = &cli.command {
        return Ok(completions::run(args)?);
    }
    if let Command::Release(cmd) = &cli.command {
        return release::run(cmd);
    }
    // A long-running device process: give freed host tensors back to the OS between requests.
    edgenlu::return_freed_memory_to_the_os();
    let store = ModelStore::open_default().context("opening the model store")?;
    match cli.command {
        Command::Models(cmd) => models::run(cmd, &store)?,
        Command::Skill(cmd) => skill::run(cmd, &store)?,
        Command::Run {
            texts,
            skills,
            no_phrase,
            device,
        } => {
            let rt = runtime(store.clone())?;
            let pipeline = pipeline::pipeline(&rt, &store, &skills, !no_phrase)?;
            pipeline::run(&pipeline, &texts, device)?;
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
            let pipeline = pipeline::pipeline(&rt, &store, &skills, phrase)?;
            eval::eval(&pipeline, &examples, device, json)?;
        }
        Command::Trust(cmd) => trust::run(cmd, &store)?,
        Command::Push(args) => push::run(&args, &store)?,
        Command::Pull(args) => pull::run(&args, &store)?,
        Command::Channel(cmd) => fleet::channel(
            cmd,
            matches
                .subcommand_matches("channel")
                .and_then(|m| m.subcommand_matches("set")),
        )?,
        Command::Sync(args) => fleet::sync_once(&args, &store)?,
        Command::Agent(args) => fleet::agent(&args, &store)?,
        Command::Status { json } => fleet::status(&store, json)?,
        Command::Bench(cmd) => bench::run(cmd, &store)?,
        Command::Conformance(cmd) => conformance::run(cmd, &store)?,
        Command::Generate(args) => generate::run(&runtime(store)?, &args)?,
        Command::Serve {
            listen,
            skills,
            phrase,
            device,
            workers,
            queue,
            max_body,
            max_queue_wait_ms,
            max_connections,
            max_header_bytes,
            max_headers,
            idle_timeout_ms,
            io_timeout_ms,
        } => serve::run(
            &store,
            &skills,
            phrase,
            device,
            &edgenlu_serve::ServeConfig {
                listen,
                workers,
                queue,
                max_body,
                max_queue_wait: std::time::Duration::from_millis(max_queue_wait_ms),
                max_connections,
                max_header_bytes,
                max_headers,
                idle_timeout: std::time::Duration::from_millis(idle_timeout_ms),
                io_timeout: std::time::Duration::from_millis(io_timeout_ms),
            },
        )?,
        Command::Completions(_) | Command::Release(_) => {
            unreachable!("answered before the store is opened")
        }
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
