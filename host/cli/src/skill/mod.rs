//! `edgenlu skill`: a skill author's kit — a new project (`new`), building it into a signed
//! component with its datastore (`build`), running its utterance tests (`test`) — and building
//! the bundled intents skill's data: the nearest-neighbour datastore (`index`), and the
//! datastore with a trained, calibrated intent head (`train`).

use anyhow::{Context, Result};
use edgenlu::bundled::{self, DEFAULT_ENCODER, DEFAULT_INDEX};
use edgenlu::Limits;
use edgenlu_models::softmax_head::HeadTraining;
use edgenlu_models::store::{EntryKind, ModelStore, NewEntry};
use edgenlu_train::datastore::{self, Example};
use edgenlu_train::training;
use std::path::PathBuf;

mod build;
mod new;
mod project;
mod test;

/// `edgenlu skill` subcommands.
#[derive(clap::Subcommand)]
pub enum SkillCommand {
    /// Create a skill project in a new folder NAME.
    ///
    /// The project holds skill.toml (what the signed manifest says), the component's crate
    /// (src/lib.rs, with a native unit test), example data (data/train.jsonl), utterance tests
    /// (tests/utterances.jsonl), and the guest SDK with the WIT (vendor/), so it builds
    /// without the edgenlu sources.
    ///
    /// With --flow, a flow project instead: skill.toml of kind "flow" and a flow's crate
    /// starting from the device's default flow (docs/flows.md).
    ///
    /// Example: edgenlu skill new greeter --publisher acme
    /// Example (a flow): edgenlu skill new my-flow --flow --publisher acme
    New {
        /// The skill's name (lowercase letters, digits, '.', '_', '-'); also the folder's.
        name: String,
        /// Your publisher name: the one in the vendor's delegation and of your key.
        #[arg(long, default_value = "my-org")]
        publisher: String,
        /// Folder to create the project in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The sentence encoder the skill uses (every skill on a device shares one).
        #[arg(long, default_value = DEFAULT_ENCODER)]
        encoder: String,
        /// A flow project (the device's NLU logic) instead of a skill's.
        #[arg(long)]
        flow: bool,
    },
    /// Build a skill project into a component, its datastore and manifest, and a signed file.
    ///
    /// Compile it to a Wasm component (with the guest toolchain, provisioned on first use),
    /// train its datastore, intent head and slot tagger from `data.train` into the model
    /// store (as NAME-vVERSION; reused while the examples do not change), and write its
    /// manifest; with --key, sign it. Outputs go to target/edgenlu/.
    ///
    /// Example: edgenlu skill build greeter --key keys/acme.key
    Build {
        /// The project folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The publisher's secret key (from `edgenlu keygen`): sign the skill with it.
        #[arg(long)]
        key: Option<PathBuf>,
        /// cargo's target folder (default: the project's target/).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Threads embedding the examples.
        #[arg(long, default_value_t = default_threads(), value_parser = crate::count::<usize>)]
        threads: usize,
        #[arg(long, hide = true)]
        train: Option<PathBuf>,
    },
    /// Run a skill project's utterance tests against the component it was built into.
    ///
    /// The tests are `data.tests` in skill.toml: each line's intent, and its slots when given.
    /// They run against the component `skill build` made, with the grants of its manifest.
    /// Fails when any test fails.
    ///
    /// Example: edgenlu skill test greeter
    Test {
        /// The project folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Build the intents skill's nearest-neighbour datastore from labelled examples.
    ///
    /// Each example is embedded by the skill component itself, so the datastore matches what
    /// the skill computes when it answers. An existing datastore of that name is replaced only
    /// with --force, and never one an installed skill uses. Example:
    /// edgenlu skill index --data ../shared/datasets/snips/train.jsonl --per-intent 300 --name snips-300
    Index {
        /// JSONL with `text` and `intent` on each line.
        #[arg(long)]
        data: PathBuf,
        /// Store name of the datastore.
        #[arg(long, default_value = DEFAULT_INDEX)]
        name: String,
        /// Encoder model to embed with.
        #[arg(long, default_value = DEFAULT_ENCODER)]
        encoder: String,
        /// Keep at most N examples per intent (file order).
        #[arg(long, value_parser = crate::count::<usize>)]
        per_intent: Option<usize>,
        /// Replace the datastore of that name if the store has one (never a model, nor a
        /// datastore an installed skill uses).
        #[arg(long)]
        force: bool,
        /// Threads embedding in parallel.
        #[arg(long, default_value_t = default_threads(), value_parser = crate::count::<usize>)]
        threads: usize,
    },
    /// Train the intents skill's data: a datastore with an intent head.
    ///
    /// Embed the training examples with the skill, train a softmax head on the embeddings,
    /// calibrate it (temperature scaling) and tune its out-of-scope threshold on the
    /// validation examples (intent `oos` marks out-of-scope ones), and store the datastore and
    /// the head as one file. The skill then answers with the head, and `oos` below the
    /// threshold. When the examples carry slot spans (`"slots": [{"start", "end", "slot"}]`,
    /// in characters), a BIO slot tagger is trained on the encoder's token states too, and the
    /// skill fills slots with it. An existing datastore of that name is replaced only with
    /// --force, and never one an installed skill uses.
    ///
    /// Example: edgenlu skill train --train ../shared/datasets/clinc150/train.jsonl
    /// --val ../shared/datasets/clinc150/val.jsonl --name clinc150
    Train {
        /// JSONL with `text` and `intent` on each line: the head's training examples and the
        /// datastore's rows (`oos` ones are left out of both).
        #[arg(long)]
        train: PathBuf,
        /// JSONL of validation examples for calibration and the out-of-scope threshold;
        /// without it the head is uncalibrated and never answers `oos`.
        #[arg(long)]
        val: Option<PathBuf>,
        /// Store name of the datastore.
        #[arg(long, default_value = DEFAULT_INDEX)]
        name: String,
        /// Encoder model to embed with.
        #[arg(long, default_value = DEFAULT_ENCODER)]
        encoder: String,
        /// Passes over the training examples.
        #[arg(long, default_value_t = HeadTraining::default().epochs, value_parser = crate::count::<usize>)]
        epochs: usize,
        /// Replace the datastore of that name if the store has one (never a model, nor a
        /// datastore an installed skill uses).
        #[arg(long)]
        force: bool,
        /// Threads embedding in parallel.
        #[arg(long, default_value_t = default_threads(), value_parser = crate::count::<usize>)]
        threads: usize,
    },
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs an `edgenlu skill` subcommand.
pub fn run(cmd: SkillCommand, store: &ModelStore) -> Result<()> {
    match cmd {
        SkillCommand::New {
            name,
            publisher,
            dir,
            encoder,
            flow,
        } => {
            let created = new::create(
                &dir,
                &new::NewProject {
                    name: &name,
                    publisher: &publisher,
                    encoder: &encoder,
                    flow,
                },
            )?;
            let what = if flow { "flow" } else { "skill" };
            println!("{name}: {what} project in {}", created.display());
        }
        SkillCommand::Build {
            dir,
            key,
            target_dir,
            threads,
            train,
        } => {
            if train.is_some() {
                anyhow::bail!(
                    "`skill build` builds a skill project (a folder with skill.toml); training \
                     the bundled intents skill's datastore from a dataset is `edgenlu skill \
                     train --train FILE`"
                );
            }
            build::build(
                store,
                build::BuildRequest {
                    dir: &dir,
                    key: key.as_deref(),
                    target_dir,
                    threads,
                },
            )?;
        }
        SkillCommand::Test { dir } => test::test(&crate::runtime(store.clone())?, &dir)?,
        SkillCommand::Index {
            data,
            name,
            encoder,
            per_intent,
            threads,
            force,
        } => {
            let new = crate::models::new_entry(store, &name, EntryKind::Datastore, force)?;
            let mut examples = datastore::read_examples(&data)?;
            if let Some(n) = per_intent {
                examples = datastore::limit_per_intent(examples, n);
            }
            let embeddings = embed(store, &encoder, &examples, threads)?;
            datastore::write(&encoder, &examples, &embeddings, None, None, new.path())?;
            new.commit(&format!("edgenlu skill index --data {}", data.display()))?;
            println!(
                "{name}: {} examples embedded with {encoder}",
                examples.len()
            );
        }
        SkillCommand::Train {
            train,
            val,
            name,
            encoder,
            epochs,
            threads,
            force,
        } => {
            let new = crate::models::new_entry(store, &name, EntryKind::Datastore, force)?;
            let examples = datastore::read_examples(&train)?;
            let val_examples = val.as_deref().map(datastore::read_examples).transpose()?;
            let trained = train_datastore(
                store,
                &new,
                &encoder,
                training::Examples {
                    train: &examples,
                    val: val_examples.as_deref(),
                },
                epochs,
                threads,
            )
            .with_context(|| format!("building {name} from {}", train.display()))?;
            let mut source = format!("edgenlu skill train --train {}", train.display());
            if let Some(val) = &val {
                source += &format!(" --val {}", val.display());
            }
            new.commit(&source)?;
            let head = &trained.head;
            println!(
                "{name}: head over {} intents trained on {} examples in {:.1} s ({epochs} epochs); \
                 temperature {:.3}, out-of-scope below {:.3}",
                trained.intents,
                trained.examples,
                trained.head_time.as_secs_f64(),
                head.temperature,
                head.oos_threshold
            );
            if let Some((tags, tokens, time)) = trained.slots {
                println!(
                    "{name}: slot tagger over {tags} tags trained on {tokens} tokens in {:.1} s",
                    time.as_secs_f64()
                );
            }
        }
    }
    Ok(())
}

/// Trains a datastore with an intent head (and a slot tagger when the examples have slots)
/// into `new`, embedding with the intents skill over `encoder`, with a progress bar.
fn train_datastore(
    store: &ModelStore,
    new: &NewEntry,
    encoder: &str,
    examples: training::Examples,
    epochs: usize,
    threads: usize,
) -> Result<training::Trained> {
    let rt = crate::runtime(store.clone())?;
    let skill = rt.load_skill(bundled::intents_skill(encoder, None, Limits::default()))?;
    let pb = crate::bar(examples.train.len(), "encode");
    let trained = training::build(
        &skill,
        encoder,
        examples,
        threads,
        &HeadTraining {
            epochs,
            ..HeadTraining::default()
        },
        new.path(),
        &|stage, done, total| {
            pb.set_message(stage.to_string());
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        },
    )?;
    pb.finish_and_clear();
    Ok(trained)
}

/// Embeds `examples` with the intents skill over `encoder`, with a progress bar.
fn embed(
    store: &ModelStore,
    encoder: &str,
    examples: &[Example],
    threads: usize,
) -> Result<Vec<Vec<f32>>> {
    let rt = crate::runtime(store.clone())?;
    let skill = rt.load_skill(bundled::intents_skill(encoder, None, Limits::default()))?;
    let pb = crate::bar(examples.len(), "embed");
    let embeddings =
        datastore::embed_examples(&skill, examples, threads, &|n| pb.set_position(n as u64))
            .context("embedding the examples")?;
    pb.finish_and_clear();
    Ok(embeddings)
}
