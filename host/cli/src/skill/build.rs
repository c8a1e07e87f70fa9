//! `edgenlu skill build DIR`: a skill project to a component, its datastore and heads, its
//! manifest, and with a key the signed skill file.

use super::project::{Project, SKILL_TOML};
use anyhow::{bail, Context, Result};
use edgenlu_guest_build::{provision_toolchain, CargoBuild};
use edgenlu_models::store::{EntryKind, ModelStore, StoreEntry};
use edgenlu_train::datastore::{self, Example};
use edgenlu_train::training;
use edgenlu_trust::manifest::{Capability, Kind};
use edgenlu_trust::{keys, skillfile};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What `skill build` was asked.
pub struct BuildRequest<'a> {
    /// The project folder.
    pub dir: &'a Path,
    /// The publisher's secret key: sign the skill with it.
    pub key: Option<&'a Path>,
    /// cargo's target folder (absent: the project's `target/`).
    pub target_dir: Option<PathBuf>,
    /// Threads embedding the examples.
    pub threads: usize,
}

/// Builds the project, printing what it made.
pub fn build(store: &ModelStore, req: BuildRequest) -> Result<()> {
    let project = Project::open(req.dir)?;
    let name = &project.skill.name;
    let component = compile(&project, req.target_dir)?;
    check_capabilities(&project, &component)?;
    std::fs::create_dir_all(project.out_dir())
        .with_context(|| format!("creating {}", project.out_dir().display()))?;
    write(&project.component_path(), &component)?;
    println!(
        "{name}: component {} ({} KiB)",
        shown(&project, &project.component_path()),
        component.len().div_ceil(1024)
    );

    let now = edgenlu_trust::unix_now();
    let manifest = match project.skill.kind {
        Kind::Skill => {
            let entry = build_datastore(store, &project, req.threads)?;
            project.manifest(&entry.sha256, now)
        }
        Kind::Flow => project.flow_manifest(now),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)?;
    let canonical = manifest
        .to_bytes()
        .with_context(|| format!("the manifest {SKILL_TOML} describes is not valid"))?;
    write(&project.manifest_path(), &manifest_json)?;
    println!(
        "{name}: manifest {} (version {}, publisher {})",
        shown(&project, &project.manifest_path()),
        manifest.version,
        manifest.publisher
    );

    if let Some(key) = req.key {
        let key = keys::read_secret(key)?;
        if key.name != manifest.publisher {
            bail!(
                "the key is {:?}'s, but {SKILL_TOML} names publisher {:?}: sign with that \
                 publisher's key, or change `publisher`",
                key.name,
                manifest.publisher
            );
        }
        let signed = skillfile::sign(&component, &canonical, &key.key)?;
        write(&project.signed_path(), &signed)?;
        println!(
            "{name}: signed by {}: {} — install it with `edgenlu install {}`",
            key.name,
            shown(&project, &project.signed_path()),
            project.signed_path().display()
        );
    }
    Ok(())
}

/// cargo for wasm32 with the project's guest toolchain, then the core module to a component.
fn compile(project: &Project, target_dir: Option<PathBuf>) -> Result<Vec<u8>> {
    eprintln!("{}: compiling for wasm32", project.skill.name);
    let env_file = provision_toolchain()?;
    let manifest = project.dir.join("Cargo.toml");
    let target_dir = target_dir.unwrap_or_else(|| project.dir.join("target"));
    let build = CargoBuild {
        manifest: &manifest,
        target_dir: &target_dir,
        packages: &[],
        locked: false,
    };
    build.run(&env_file)?;
    Ok(edgenlu_guest_build::componentize_file(
        &build.module_path(&project.lib),
    )?)
}

/// The capabilities the component's imports need must be in `skill.toml`: said here, with
/// the fix, rather than at install on a device.
fn check_capabilities(project: &Project, component: &[u8]) -> Result<()> {
    let imports = skillfile::component_import_items(component)?;
    for (import, cap) in Capability::required_by(&imports) {
        if !project.skill.capabilities.contains(&cap) {
            bail!(
                "the component imports {import}, which needs capability {:?}: add it to \
                 `capabilities` in {SKILL_TOML} (and its publisher's delegation must allow it)",
                cap.as_str()
            );
        }
    }
    Ok(())
}

/// The datastore of this version, trained from the project's examples — or the one already in
/// the store when it was built from the same examples, encoder and settings.
fn build_datastore(store: &ModelStore, project: &Project, threads: usize) -> Result<StoreEntry> {
    let s = &project.skill;
    let name = project.datastore();
    let data = project.data()?;
    let train = read(project, &data.train)?;
    let val = data.val.as_ref().map(|v| read(project, v)).transpose()?;
    let source = datastore_source(project)?;
    let existing = store.entry(&name)?;
    if let Some(entry) = existing.as_ref().filter(|e| e.source == source) {
        println!("{}: datastore {name} is up to date", s.name);
        return Ok(entry.clone());
    }
    let replace = existing.is_some();
    let new = crate::models::new_entry(store, &name, EntryKind::Datastore, replace).with_context(
        || {
            format!(
                "the examples changed since {name} was built; raise `version` in {SKILL_TOML} \
                 to build a new datastore"
            )
        },
    )?;
    let epochs = s
        .epochs
        .unwrap_or(edgenlu_models::softmax_head::HeadTraining::default().epochs);
    let trained = super::train_datastore(
        store,
        &new,
        &s.encoder,
        training::Examples {
            train: &train,
            val: val.as_deref(),
        },
        epochs,
        threads,
    )
    .with_context(|| format!("building datastore {name}"))?;
    let entry = new.commit(&source)?;
    let tagger = match trained.slots {
        Some((tags, _, _)) => format!(", a slot tagger over {tags} tags"),
        None => String::new(),
    };
    println!(
        "{}: datastore {name}: {} examples, {} intents{tagger}",
        s.name, trained.examples, trained.intents
    );
    Ok(entry)
}

/// The store's record of where a datastore came from: the skill and a digest of everything
/// it is built from, so an unchanged project is not trained again.
fn datastore_source(project: &Project) -> Result<String> {
    let s = &project.skill;
    let mut digest = Sha256::new();
    digest.update(s.encoder.as_bytes());
    digest.update(format!("{:?}", s.epochs).as_bytes());
    let data = project.data()?;
    for file in std::iter::once(&data.train).chain(data.val.as_ref()) {
        let path = project.file(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(&bytes);
    }
    let hex = edgenlu_trust::to_hex(&digest.finalize()[..8]);
    Ok(format!(
        "edgenlu skill build: {} version {} (examples {hex})",
        s.name, s.version
    ))
}

/// Reads a project's JSONL examples.
pub fn read(project: &Project, file: &Path) -> Result<Vec<Example>> {
    Ok(datastore::read_examples(&project.file(file))?)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// `path` as the author sees it: relative to the project when inside it.
fn shown(project: &Project, path: &Path) -> String {
    path.strip_prefix(&project.dir)
        .unwrap_or(path)
        .display()
        .to_string()
}
