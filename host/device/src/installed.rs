//! Installed skills on the runtime: what a verified manifest grants, the health check that
//! decides whether an install stays, loading the current version from exactly the bytes that
//! were verified, and a skill a server swaps to a new version between requests. The checks
//! themselves (signatures, trust store, skill store) are `edgenlu_trust`'s.

use edgenlu::bundled;
use edgenlu::error::SkillError;
use edgenlu::Limits;
use edgenlu::{ComponentSource, ComponentSpec, Grants, Runtime, Skill, SkillSpec};
use edgenlu_trust::manifest::Manifest;
use edgenlu_trust::skills::{HealthCheck, InstallError, InstallReport, SkillStore};
use edgenlu_trust::store::Verified;
use edgenlu_trust::TrustError;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What a manifest grants a skill on this runtime.
pub trait ManifestGrants {
    /// Per-request limits: the manifest's budgets over the host's defaults.
    fn limits(&self) -> Limits;
    /// The spec to load this skill from `path` with exactly the manifest's grants: its models,
    /// config and budgets, linked to the tokenizer it names over the tokenizer's model only.
    /// Call only on a manifest that came out of [`edgenlu_trust::store::TrustStore::verify`].
    fn skill_spec(&self, path: &Path) -> SkillSpec;
    /// [`skill_spec`](Self::skill_spec) over the `bytes` that were read from `path` and
    /// verified: the runtime compiles exactly these, never the file again (it could have
    /// changed since the check).
    fn verified_skill_spec(&self, path: &Path, bytes: Arc<[u8]>) -> SkillSpec;
}

impl ManifestGrants for Manifest {
    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(m) = self.budgets.memory_mib {
            limits.guest_memory = (m as usize) << 20;
        }
        if let Some(d) = self.budgets.deadline_ms {
            limits.deadline = Duration::from_millis(d);
        }
        if let Some(t) = self.budgets.max_tokens {
            limits.max_tokens = t as usize;
        }
        if let Some(m) = self.budgets.host_memory_mib {
            limits.host_memory = (m as usize) << 20;
        }
        if let Some(h) = self.budgets.handles {
            limits.handles = h as usize;
        }
        if let Some(k) = self.budgets.max_response_kib {
            limits.max_response_bytes = (k as usize) << 10;
        }
        limits
    }

    fn skill_spec(&self, path: &Path) -> SkillSpec {
        let limits = self.limits();
        SkillSpec {
            name: self.name.clone(),
            skill: ComponentSpec {
                source: ComponentSource::File(path.to_path_buf()),
                grants: Grants {
                    models: self.models.clone(),
                    config: self.config.clone(),
                    limits: limits.clone(),
                },
            },
            tokenizer: self
                .tokenizer
                .as_ref()
                .and_then(|t| bundled::tokenizer(&t.component, &t.model, limits)),
        }
    }

    fn verified_skill_spec(&self, path: &Path, bytes: Arc<[u8]>) -> SkillSpec {
        let mut spec = self.skill_spec(path);
        spec.skill.source = ComponentSource::Verified {
            path: path.to_path_buf(),
            bytes,
        };
        spec
    }
}

/// Why an installed skill could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The installed file no longer verifies, or the store is damaged.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Compiling or linking failed.
    #[error(transparent)]
    Skill(#[from] SkillError),
}

/// The runtime's health check: load the current version with its manifest's grants and run
/// the manifest's probes, each of which must answer with the intent it names.
pub struct ProbeCheck<'a>(pub &'a Runtime);

impl HealthCheck for ProbeCheck<'_> {
    fn check(&self, store: &SkillStore, name: &str) -> Result<usize, String> {
        let (v, path) = store.current(name).map_err(|e| e.to_string())?;
        let skill = self
            .0
            .load_skill(v.manifest.skill_spec(&path))
            .map_err(|e| format!("loading: {e}"))?;
        for probe in &v.manifest.health {
            let answer = skill
                .handle(&probe.text)
                .map_err(|e| format!("probe {:?}: {e}", probe.text))?;
            if answer.response.intent != probe.intent {
                return Err(format!(
                    "probe {:?}: expected intent {:?}, got {:?}",
                    probe.text, probe.intent, answer.response.intent
                ));
            }
        }
        Ok(v.manifest.health.len())
    }
}

/// A [`SkillStore`] whose skills run on a [`Runtime`]: installs checked by [`ProbeCheck`], and
/// loading the current version of a skill.
pub trait InstalledSkills {
    /// Installs `bytes`, then runs the new version's health check on `rt`; if it fails, goes
    /// back to the version it replaced (or removes a first install) and says so in the error.
    fn install_checked(
        &self,
        rt: &Runtime,
        bytes: &[u8],
        now: u64,
    ) -> Result<InstallReport, InstallError>;
    /// Finishes an install whose health check never reported, checking it on `rt`; returns
    /// why it rolled back, if it did.
    fn recover(&self, rt: &Runtime, name: &str) -> Result<Option<String>, TrustError>;
    /// Loads the current version of `name` with the grants its manifest gives it, compiled
    /// from exactly the bytes that were verified. A version whose install was interrupted
    /// before its health check reported is checked first.
    fn load(&self, rt: &Runtime, name: &str) -> Result<(Verified, Skill), LoadError>;
}

impl InstalledSkills for SkillStore {
    fn install_checked(
        &self,
        rt: &Runtime,
        bytes: &[u8],
        now: u64,
    ) -> Result<InstallReport, InstallError> {
        self.install_checked_by(&ProbeCheck(rt), bytes, now)
    }

    fn recover(&self, rt: &Runtime, name: &str) -> Result<Option<String>, TrustError> {
        self.recover_by(&ProbeCheck(rt), name)
    }

    fn load(&self, rt: &Runtime, name: &str) -> Result<(Verified, Skill), LoadError> {
        let (v, path, bytes) = self.current_for_load(&ProbeCheck(rt), name)?;
        let skill = rt.load_skill(v.manifest.verified_skill_spec(&path, bytes.into()))?;
        Ok((v, skill))
    }
}

/// The bundled `intents` component with `manifest`, signed with the development publisher key.
pub fn signed_intents(manifest: &Manifest) -> Result<Vec<u8>, TrustError> {
    edgenlu_trust::dev::sign(bundled::components::SKILL_INTENTS.bytes, manifest)
}
/// A skill a server answers with, swappable between requests: each request takes an
/// `Arc<Skill>` from [`get`](Self::get), so a swap never drops a request in flight.
pub struct LiveSkill {
    name: String,
    current: RwLock<Live>,
}

/// What a [`LiveSkill`] serves now.
struct Live {
    version: u64,
    sha256: String,
    skill: Arc<Skill>,
}

impl LiveSkill {
    /// Loads the current version of `name`.
    pub fn open(store: &SkillStore, rt: &Runtime, name: &str) -> Result<LiveSkill, LoadError> {
        let (v, skill) = store.load(rt, name)?;
        Ok(LiveSkill {
            name: name.to_string(),
            current: RwLock::new(Live {
                version: v.manifest.version,
                sha256: v.sha256,
                skill: Arc::new(skill),
            }),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        // A panic while holding the lock cannot leave `Live` half-written (it is replaced
        // whole), so a poisoned lock is still safe to use.
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The skill to answer the next request with.
    pub fn get(&self) -> Arc<Skill> {
        self.read().skill.clone()
    }

    /// The version [`get`](Self::get) returns.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Loads the store's current version (after an install or rollback) and swaps it in;
    /// requests already holding the old one finish on it. Returns the version now live.
    pub fn reload(&self, store: &SkillStore, rt: &Runtime) -> Result<u64, LoadError> {
        // Load before taking the lock, so requests are never blocked by a compile.
        let (v, skill) = store.load(rt, &self.name)?;
        let version = v.manifest.version;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Live {
            version,
            sha256: v.sha256,
            skill: Arc::new(skill),
        };
        Ok(version)
    }

    /// Reloads only if the store's current file differs from the one served (one small
    /// file read when nothing changed): what a server calls between requests or on a timer.
    /// Returns whether it swapped.
    pub fn refresh(&self, store: &SkillStore, rt: &Runtime) -> Result<bool, LoadError> {
        let served = self.read().sha256.clone();
        if store.is_current(&self.name, &served)? {
            return Ok(false);
        }
        // Not installed any more: `load` says so (`NotInstalled`).
        self.reload(store, rt)?;
        Ok(true)
    }
}
