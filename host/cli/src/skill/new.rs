//! `edgenlu skill new NAME`: a ready-to-build skill project — skill.toml, the component's
//! crate with a native unit test, example data, utterance tests, and the guest SDK with the
//! WIT as this binary carries them (so the project builds offline and without the edgenlu
//! sources). With `--flow`, a flow project: the device's NLU logic, starting from the
//! default flow's steps.

use super::project::SKILL_TOML;
use anyhow::{bail, Context, Result};
use edgenlu_guest_artifacts::SDK_FILES;
use std::path::{Path, PathBuf};

/// The project's files: (path in the project, template).
const TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("template/Cargo.toml.in")),
    (SKILL_TOML, include_str!("template/skill.toml.in")),
    ("src/lib.rs", include_str!("template/lib.rs.in")),
    ("data/train.jsonl", include_str!("template/train.jsonl")),
    (
        "tests/utterances.jsonl",
        include_str!("template/utterances.jsonl"),
    ),
    ("README.md", include_str!("template/README.md.in")),
    (".gitignore", include_str!("template/gitignore")),
];

/// A flow project's files: the same crate, a flow's skill.toml and code, no data.
const FLOW_TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("template/Cargo.toml.in")),
    (SKILL_TOML, include_str!("template/flow.toml.in")),
    ("src/lib.rs", include_str!("template/flow.lib.rs.in")),
    ("README.md", include_str!("template/flow.README.md.in")),
    (".gitignore", include_str!("template/gitignore")),
];

/// What the project is named and who publishes it.
pub struct NewProject<'a> {
    /// The skill's name.
    pub name: &'a str,
    /// The publisher.
    pub publisher: &'a str,
    /// The encoder.
    pub encoder: &'a str,
    /// A flow project instead of a skill's.
    pub flow: bool,
}

/// Writes the project into `parent/NAME`, which must not exist yet; returns its folder.
pub fn create(parent: &Path, p: &NewProject) -> Result<PathBuf> {
    edgenlu_models::store::validate_name(p.name).context("the skill's name")?;
    edgenlu_models::store::validate_name(p.publisher).context("the publisher's name")?;
    let dir = parent.join(p.name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or folder (nothing was written)",
            dir.display()
        );
    }
    let fill = |text: &str| {
        text.replace("{{name}}", p.name)
            .replace("{{crate}}", &p.name.replace('.', "-"))
            .replace("{{publisher}}", p.publisher)
            .replace("{{encoder}}", p.encoder)
    };
    // Written beside the final folder and renamed into place, so a failure leaves nothing.
    let staging = parent.join(format!(".{}.new-{}", p.name, std::process::id()));
    let written = (|| -> Result<()> {
        let template = if p.flow { FLOW_TEMPLATE } else { TEMPLATE };
        for (path, text) in template {
            write(&staging.join(path), fill(text).as_bytes())?;
        }
        for (path, bytes) in SDK_FILES {
            let dest = match *path {
                "Cargo.lock" => staging.join(path),
                _ => staging.join("vendor").join(path),
            };
            write(&dest, bytes)?;
        }
        std::fs::rename(&staging, &dir)
            .with_context(|| format!("moving the project to {}", dir.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written?;
    Ok(dir)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
