//! A skill project: the folder `edgenlu skill new` writes and `skill build` / `skill test`
//! read. Its `skill.toml` says what the signed manifest will say; `Cargo.toml` builds the
//! component; `data/` and `tests/` hold the examples the datastore is trained on and the
//! utterances it is tested with.

use anyhow::{bail, Context, Result};
use edgenlu::bundled::DEFAULT_ENCODER;
use edgenlu_trust::manifest::{Budgets, Capability, Kind, Manifest, Probe, TokenizerRef, FORMAT};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The project file.
pub const SKILL_TOML: &str = "skill.toml";

/// The settings the build writes into the manifest's `config` itself.
const BUILD_SETTINGS: &[&str] = &["encoder", "index"];

/// `skill.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillToml {
    /// The skill's name (store-name rules: `[a-z0-9][a-z0-9._-]*`).
    pub name: String,
    /// `skill` (the default) or `flow`: a flow is the device's NLU logic; it has no
    /// datastore, opens no model, and asks for the `flow` capability.
    #[serde(default)]
    pub kind: Kind,
    /// Its version: every release installed on a device must be higher than the last.
    pub version: u64,
    /// The publisher, as named in the vendor's delegation, whose key signs it.
    pub publisher: String,
    /// The sentence encoder (one for every skill on a device: the router encodes once).
    #[serde(default = "default_encoder")]
    pub encoder: String,
    /// Models it opens besides the encoder and its datastore.
    #[serde(default)]
    pub models: Vec<String>,
    /// Capabilities beyond computing on its models.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Settings for the `config` interface (besides `encoder` and `index`, which the build
    /// sets).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The tokenizer component it links and the model whose vocabulary it reads (absent: the
    /// WordPiece tokenizer over the encoder). A skill that prompts a decoder links `bpe` over
    /// the decoder, which must be among its `models`.
    #[serde(default)]
    pub tokenizer: Option<TokenizerRef>,
    /// Budgets per request (absent: the host's defaults).
    #[serde(default)]
    pub budgets: Budgets,
    /// Days from the build until the signed release stops being installable.
    #[serde(default)]
    pub expires_days: Option<u64>,
    /// Passes over the training examples for the intent head (absent: the default).
    #[serde(default)]
    pub epochs: Option<usize>,
    /// The example files, relative to the project (a skill's; a flow has none).
    #[serde(default)]
    pub data: Option<DataFiles>,
    /// Utterances the skill must answer with their intents at install (the health check).
    #[serde(default)]
    pub probes: Vec<Probe>,
}

fn default_encoder() -> String {
    DEFAULT_ENCODER.to_string()
}

/// The example files of a project.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFiles {
    /// Labelled examples the datastore and its heads are built from (JSONL).
    pub train: PathBuf,
    /// Examples the head is calibrated on (JSONL with some `oos` ones for an out-of-scope
    /// threshold); absent: uncalibrated, never `oos`.
    #[serde(default)]
    pub val: Option<PathBuf>,
    /// Utterances `skill test` checks (JSONL).
    pub tests: PathBuf,
}

/// A project folder, read.
pub struct Project {
    /// The folder.
    pub dir: PathBuf,
    /// Its `skill.toml`.
    pub skill: SkillToml,
    /// The library crate cargo builds (the `.wasm` file's stem).
    pub lib: String,
}

impl Project {
    /// Reads the project in `dir`: its `skill.toml` and the library name in its `Cargo.toml`.
    pub fn open(dir: &Path) -> Result<Project> {
        let toml_path = dir.join(SKILL_TOML);
        let text = std::fs::read_to_string(&toml_path).with_context(|| {
            format!(
                "reading {} (is {} a skill project? `edgenlu skill new NAME` makes one)",
                toml_path.display(),
                dir.display()
            )
        })?;
        let skill: SkillToml =
            toml::from_str(&text).with_context(|| format!("reading {}", toml_path.display()))?;
        edgenlu_models::store::validate_name(&skill.name)
            .with_context(|| format!("{}: `name`", toml_path.display()))?;
        for key in skill.config.keys() {
            if BUILD_SETTINGS.contains(&key.as_str()) {
                bail!(
                    "{}: config `{key}` is set by `skill build` (the encoder is `encoder`, the \
                     datastore is built from `data.train`); remove it",
                    toml_path.display()
                );
            }
        }
        match (skill.kind, &skill.data) {
            (Kind::Skill, None) => bail!(
                "{}: a skill needs its examples: add a [data] table with `train` and `tests`",
                toml_path.display()
            ),
            (Kind::Flow, Some(_)) => bail!(
                "{}: a flow has no examples (it asks the device's skills): remove [data]",
                toml_path.display()
            ),
            _ => {}
        }
        let lib = library_name(&dir.join("Cargo.toml"))?;
        Ok(Project {
            dir: dir.to_path_buf(),
            skill,
            lib,
        })
    }

    /// The project's example files (a skill's; [`open`](Self::open) refused a skill
    /// without them).
    pub fn data(&self) -> Result<&DataFiles> {
        self.skill.data.as_ref().with_context(|| {
            format!(
                "{} is a flow: it has no examples or utterance tests of its own",
                self.skill.name
            )
        })
    }

    /// A file of the project, from a path relative to it.
    pub fn file(&self, relative: &Path) -> PathBuf {
        self.dir.join(relative)
    }

    /// The store name of the skill's datastore: one per version, so a rebuild never touches
    /// the datastore of a version installed on this device.
    pub fn datastore(&self) -> String {
        format!("{}-v{}", self.skill.name, self.skill.version)
    }

    /// Where the build writes its outputs.
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join("target/edgenlu")
    }

    /// The unsigned component.
    pub fn component_path(&self) -> PathBuf {
        self.out_dir()
            .join(format!("{}.component.wasm", self.skill.name))
    }

    /// The manifest the build wrote.
    pub fn manifest_path(&self) -> PathBuf {
        self.out_dir()
            .join(format!("{}.manifest.json", self.skill.name))
    }

    /// The signed skill file, what `edgenlu install` takes.
    pub fn signed_path(&self) -> PathBuf {
        self.out_dir()
            .join(format!("{}-{}.wasm", self.skill.name, self.skill.version))
    }

    /// The manifest of a flow: no model or tokenizer, the project's config, capabilities,
    /// budgets and probes.
    pub fn flow_manifest(&self, now: u64) -> Manifest {
        let s = &self.skill;
        Manifest {
            expires: s.expires_days.map(|d| edgenlu_trust::days_after(now, d)),
            config: s.config.clone(),
            capabilities: s.capabilities.clone(),
            budgets: s.budgets.clone(),
            health: s.probes.clone(),
            ..Manifest::flow(&s.name, &s.publisher, s.version)
        }
    }

    /// The manifest of this build: the encoder, the datastore (pinned to `datastore_sha256`,
    /// so the signature covers it) and the other models; the project's tokenizer, else the
    /// WordPiece tokenizer over the encoder; `encoder` and `index` in its config.
    pub fn manifest(&self, datastore_sha256: &str, now: u64) -> Manifest {
        let s = &self.skill;
        let datastore = self.datastore();
        let mut models = vec![s.encoder.clone(), datastore.clone()];
        models.extend(s.models.iter().cloned());
        let mut config = s.config.clone();
        config.insert("encoder".into(), s.encoder.clone());
        config.insert("index".into(), datastore.clone());
        Manifest {
            format: FORMAT,
            name: s.name.clone(),
            kind: Default::default(),
            version: s.version,
            publisher: s.publisher.clone(),
            expires: s.expires_days.map(|d| edgenlu_trust::days_after(now, d)),
            models,
            model_sha256: BTreeMap::from([(datastore, datastore_sha256.to_string())]),
            tokenizer: Some(s.tokenizer.clone().unwrap_or_else(|| TokenizerRef {
                component: "wordpiece".into(),
                model: s.encoder.clone(),
            })),
            config,
            capabilities: s.capabilities.clone(),
            budgets: s.budgets.clone(),
            health: s.probes.clone(),
        }
    }
}

/// The library a `Cargo.toml` builds: `[lib] name`, else the package's name.
fn library_name(cargo_toml: &Path) -> Result<String> {
    let text = std::fs::read_to_string(cargo_toml)
        .with_context(|| format!("reading {}", cargo_toml.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("reading {}", cargo_toml.display()))?;
    let name = |section: &str| {
        table
            .get(section)
            .and_then(|s| s.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
    };
    name("lib").or_else(|| name("package")).with_context(|| {
        format!(
            "{}: no [package] name: not a crate cargo can build",
            cargo_toml.display()
        )
    })
}
