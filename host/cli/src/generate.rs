//! `edgenlu generate`: text from the bundled chat skill, streamed as the guest pulls tokens.

use anyhow::{Context, Result};
use clap::ValueEnum;
use edgenlu::bundled;
use edgenlu::{ChatRequest, Constraint, FinishReason, Forward, Runtime, SamplingParams, TextSink};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `edgenlu generate`.
#[derive(clap::Args, Clone)]
pub struct GenerateArgs {
    /// The prompt (with --chat, the user's message).
    prompt: String,
    /// Wrap the prompt in the model's chat template (ChatML).
    #[arg(long)]
    chat: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128, value_parser = crate::count::<u32>)]
    max_tokens: u32,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample among the K most likely tokens only (0: all).
    #[arg(long, default_value_t = 0, value_parser = crate::count::<u32>)]
    top_k: u32,
    /// Sample within the smallest set of tokens whose probability reaches P.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0, value_parser = crate::count::<u64>)]
    seed: u64,
    /// Divide the logits of the tokens among the last --repeat-last-n by this (1: off), as
    /// llama.cpp's --repeat-penalty: without it a small model decoding greedily loops.
    /// Default 1.1 on the fused pass, 1 (the only value it takes) on primitives.
    #[arg(long)]
    repeat_penalty: Option<f32>,
    /// How many of the latest tokens (prompt included) the repetition penalty looks at.
    #[arg(long, default_value_t = edgenlu_models::DEFAULT_REPEAT_LAST_N as u32, value_parser = crate::count::<u32>)]
    repeat_last_n: u32,
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
    /// Constrain the reply to the JSON schema in FILE: it is then one JSON value valid under
    /// it, enforced token by token (fused pass only; generation ends when the value is
    /// complete).
    #[arg(long, value_name = "FILE", group = "constraint")]
    json_schema: Option<PathBuf>,
    /// Constrain the reply to the Lark grammar in FILE (llguidance's syntax, from its `start`
    /// rule).
    #[arg(long, value_name = "FILE", group = "constraint")]
    grammar: Option<PathBuf>,
    /// Constrain the reply to match this regular expression as a whole.
    #[arg(long, value_name = "REGEX", group = "constraint")]
    regex: Option<String>,
}

/// `--forward` values.
#[derive(Clone, Copy, ValueEnum)]
enum ForwardArg {
    Fused,
    Primitives,
}

impl GenerateArgs {
    /// The constraint the flags ask for, its file read.
    fn constraint(&self) -> Result<Option<Constraint>> {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        Ok(if let Some(p) = &self.json_schema {
            Some(Constraint::JsonSchema(read(p)?))
        } else if let Some(p) = &self.grammar {
            Some(Constraint::Lark(read(p)?))
        } else {
            self.regex.clone().map(Constraint::Regex)
        })
    }

    fn request(&self) -> Result<ChatRequest> {
        Ok(ChatRequest {
            prompt: self.prompt.clone(),
            template: self.chat,
            system: None,
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                seed: self.seed,
                repeat_penalty: self.repeat_penalty.unwrap_or(match self.forward {
                    ForwardArg::Fused => edgenlu_models::DEFAULT_REPEAT_PENALTY,
                    ForwardArg::Primitives => 1.0,
                }),
                repeat_last_n: self.repeat_last_n,
            },
            forward: match self.forward {
                ForwardArg::Fused => Forward::Fused,
                ForwardArg::Primitives => Forward::Primitives,
            },
            constraint: self.constraint()?,
        })
    }
}

/// `edgenlu generate`: streams the chat skill's reply to stdout, then counts and speed.
pub fn run(rt: &Runtime, args: &GenerateArgs) -> Result<()> {
    use std::io::Write;
    let skill = rt.load_skill(bundled::chat_skill(&args.model, bundled::chat_limits()))?;
    let start = Instant::now();
    let sink: Option<TextSink> = (!args.json).then(|| {
        Box::new(|text: &str| {
            let mut out = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) must not fail the generation.
            let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
        }) as TextSink
    });
    let streamed = sink.is_some() && matches!(args.forward, ForwardArg::Fused);
    let response = skill.chat(&args.request()?, sink).context("generating")?;
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
