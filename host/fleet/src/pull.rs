//! Pulling: fetch an artifact's manifest, download its blobs into `<store>/tmp` (each checked
//! against its registry digest, see [`download`](super::download)), then install through the
//! device's own install path, exactly as a file given on the command line would be:
//!
//! - a skill: [`SkillStore::install_checked_by`] (signature, delegation, grants, expiry,
//!   version floor, atomic switch, health check with rollback), as `edgenlu install` does;
//! - a model: its detached signature checked first
//!   ([`TrustStore::check_model_signature`](edgenlu_trust::store::TrustStore)) and matched
//!   against the GGUF layer's digest before the GGUF is downloaded, then the file moved into
//!   the store by [`ModelStore::import_file`] (`edgenlu models import`'s path: kind, name and
//!   overwrite rules, atomic rename), then the signature stored.
//!
//! A refusal at any step leaves the store's files as they were; the temporary files go.

use super::artifact::{self, Artifact, MAX_MODEL_BYTES, MAX_SIGNATURE_BYTES};
use super::channel::EntryKind;
use super::client::RegistryClient;
use super::download::{fetch_blob, TempBlob};
use super::FleetError;
use edgenlu_models::store::{Holders, Import, ModelStore, StoreEntry};
use edgenlu_trust::manifest::Kind;
use edgenlu_trust::models::ModelSignature;
use edgenlu_trust::skillfile;
use edgenlu_trust::skillfile::MAX_SKILL_BYTES;
use edgenlu_trust::skills::{HealthCheck, InstallReport, SkillStore};
use std::path::PathBuf;

/// How to install what is pulled.
#[derive(Clone, Copy)]
pub struct PullOptions<'a> {
    /// The health check a new skill version must pass (None: installed without one, as
    /// `edgenlu install --no-health-check`).
    pub health: Option<&'a dyn HealthCheck>,
    /// The health check a new flow must pass (its probes through the device's pipeline; None:
    /// installed without one).
    pub flow_health: Option<&'a dyn HealthCheck>,
    /// What the artifact must be (a channel entry's kind); anything else is refused before it
    /// is installed. None: whatever it is.
    pub expect: Option<EntryKind>,
    /// A model may replace the store's entry of its name (never one an installed skill or a
    /// model signature holds), as `models import --force`.
    pub force: bool,
    /// The time trust is checked at (unix seconds).
    pub now: u64,
}

/// What a pull installed.
#[derive(Debug)]
pub enum Pulled {
    /// A skill (to the skill store) or a flow (to the flow store), installed (or reinstalled)
    /// as the current version.
    Skill {
        /// [`EntryKind::Skill`] or [`EntryKind::Flow`].
        kind: EntryKind,
        /// The artifact's manifest digest.
        manifest_digest: String,
        /// What the install did.
        report: InstallReport,
    },
    /// A model, in the store with its signature.
    Model {
        /// The artifact's manifest digest.
        manifest_digest: String,
        /// The store's entry.
        entry: StoreEntry,
        /// The key that signed it.
        signed_by: String,
        /// False when the store already held exactly this file (nothing was downloaded).
        downloaded: bool,
    },
}

/// Pulls `client`'s artifact and installs it into the store at `store`.
pub fn pull(
    client: &RegistryClient,
    store: &ModelStore,
    options: PullOptions<'_>,
) -> Result<Pulled, FleetError> {
    let (manifest, manifest_digest) = client.manifest()?;
    let skills = SkillStore::at(store.root())?;
    let tmp = download_dir(store);
    match artifact::classify(&client.target().whole(), &manifest)? {
        Artifact::Skill { file } => {
            let blob = fetch_blob(client, &file, &tmp, MAX_SKILL_BYTES as u64, "skill file")?;
            let bytes = blob.read()?;
            drop(blob);
            let kind = match skillfile::declared_kind(&bytes) {
                Kind::Skill => EntryKind::Skill,
                Kind::Flow => EntryKind::Flow,
            };
            expect_kind(client, options.expect, kind)?;
            let (store, health) = match kind {
                EntryKind::Flow => (SkillStore::flows_at(store.root())?, options.flow_health),
                _ => (skills, options.health),
            };
            let report = match health {
                Some(health) => store.install_checked_by(health, &bytes, options.now)?,
                None => store.install(&bytes, options.now)?,
            };
            Ok(Pulled::Skill {
                kind,
                manifest_digest,
                report,
            })
        }
        Artifact::Model { weights, signature } => {
            expect_kind(client, options.expect, EntryKind::Model)?;
            let sig = fetch_blob(
                client,
                &signature,
                &tmp,
                MAX_SIGNATURE_BYTES,
                "model signature",
            )?;
            let sig = ModelSignature::parse(&sig.read()?)?;
            let weights_sha256 = artifact::sha256_of(&weights.digest).unwrap_or_default();
            if weights_sha256 != sig.sha256 {
                return Err(FleetError::SignatureMismatch {
                    model: sig.model,
                    signed: sig.sha256,
                    file: weights.digest,
                });
            }
            let delegation = skills.trust().check_model_signature(&sig, options.now)?;
            let have = store.entry(&sig.model)?.filter(|e| e.sha256 == sig.sha256);
            let (entry, downloaded) = match have {
                Some(entry) => (entry, false),
                None => {
                    let gguf = fetch_blob(client, &weights, &tmp, MAX_MODEL_BYTES, "model")?;
                    let source = format!("pull {}@{manifest_digest}", client.target().whole());
                    let entry = import_model(store, &skills, &sig, &gguf, &source, options.force)?;
                    (entry, true)
                }
            };
            skills.trust().add_model_signature(&sig, options.now)?;
            Ok(Pulled::Model {
                manifest_digest,
                entry,
                signed_by: delegation.publisher,
                downloaded,
            })
        }
    }
}

/// Refuses an artifact of another kind than `expect`.
fn expect_kind(
    client: &RegistryClient,
    expect: Option<EntryKind>,
    kind: EntryKind,
) -> Result<(), FleetError> {
    match expect {
        Some(want) if want != kind => Err(FleetError::NotAnArtifact {
            reference: client.target().whole(),
            reason: format!("it is a {kind}, not the {want} asked for"),
        }),
        _ => Ok(()),
    }
}

/// Moves the downloaded GGUF into the store as the model the signature names, and checks the
/// store recorded the signed digest.
fn import_model(
    store: &ModelStore,
    skills: &SkillStore,
    sig: &ModelSignature,
    gguf: &TempBlob,
    source: &str,
    force: bool,
) -> Result<StoreEntry, FleetError> {
    let entry = store.import_file(
        &sig.model,
        gguf.path(),
        Import {
            replace: force.then_some(skills as &dyn Holders),
            take_file: true,
            source,
        },
    )?;
    if entry.sha256 != sig.sha256 {
        // Only a concurrent writer of the temporary file could get here: say so loudly.
        return Err(FleetError::SignatureMismatch {
            model: sig.model.clone(),
            signed: sig.sha256.clone(),
            file: entry.sha256,
        });
    }
    Ok(entry)
}

/// The directory pulls download into: `<store>/tmp`.
pub fn download_dir(store: &ModelStore) -> PathBuf {
    store.root().join("tmp")
}
