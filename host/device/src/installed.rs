//! Installed skills on the runtime: what a verified manifest grants, the health check that
//! decides whether an install stays, loading the current version from exactly the bytes that
//! were verified, and a skill a server swaps to a new version between requests. The checks
//! themselves (signatures, trust store, skill store) are `edgenlu_trust`'s.

use crate::pipeline::{DeviceState, Pipeline};
use crate::router::InstalledFile;
use edgenlu::bundled;
use edgenlu::error::SkillError;
use edgenlu::flow::{Flow, FlowLimits, FlowSpec};
use edgenlu::Limits;
use edgenlu::{ComponentSource, ComponentSpec, Grants, Runtime, Skill, SkillSpec};
use edgenlu_trust::manifest::{Capability, Manifest};
use edgenlu_trust::skills::{HealthCheck, InstallError, InstallReport, SkillStore, FLOW_SLOT};
use edgenlu_trust::store::Verified;
use edgenlu_trust::TrustError;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What a manifest grants a skill on this runtime.
pub trait ManifestGrants {
    /// Per-request limits: the manifest's budgets over the host's defaults.
    fn limits(&self) -> Limits;
    /// Per-request limits: the manifest's budgets over `base`.
    fn limits_over(&self, base: Limits) -> Limits;
    /// The spec to load this skill from `path` with exactly the manifest's grants: its models,
    /// config and budgets, linked to the tokenizer it names over the tokenizer's model only.
    /// Call only on a manifest that came out of [`edgenlu_trust::store::TrustStore::verify`].
    fn skill_spec(&self, path: &Path) -> SkillSpec;
    /// [`skill_spec`](Self::skill_spec) over the `bytes` that were read from `path` and
    /// verified: the runtime compiles exactly these, never the file again (it could have
    /// changed since the check).
    fn verified_skill_spec(&self, path: &Path, bytes: Arc<[u8]>) -> SkillSpec;
    /// The spec to load this flow from the verified `bytes` read from `path`: its config,
    /// its budgets over a flow's defaults ([`bundled::flow_limits`]), no model, and the
    /// uplink only if the manifest asks for the `uplink` capability.
    fn verified_flow_spec(&self, path: &Path, bytes: Arc<[u8]>) -> FlowSpec;
}

impl ManifestGrants for Manifest {
    fn limits(&self) -> Limits {
        self.limits_over(Limits::default())
    }

    fn limits_over(&self, mut limits: Limits) -> Limits {
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
                    generate: self.capabilities.contains(&Capability::Generate),
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
        spec.skill.source = verified(path, bytes);
        spec
    }

    fn verified_flow_spec(&self, path: &Path, bytes: Arc<[u8]>) -> FlowSpec {
        FlowSpec {
            component: ComponentSpec {
                source: verified(path, bytes),
                grants: Grants {
                    models: Vec::new(),
                    config: self.config.clone(),
                    limits: self.limits_over(bundled::flow_limits()),
                    generate: false,
                },
            },
            limits: FlowLimits {
                uplink: self.capabilities.contains(&Capability::Uplink),
                ..FlowLimits::default()
            },
        }
    }
}

fn verified(path: &Path, bytes: Arc<[u8]>) -> ComponentSource {
    ComponentSource::Verified {
        path: path.to_path_buf(),
        bytes,
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

/// The health check of a flow: it loads and links, and each of its manifest's probes, answered
/// through `pipeline` (the device's skills) with this flow instead of the pipeline's, gives
/// the intent the probe names.
pub struct FlowProbeCheck<'a> {
    /// The runtime the flow is loaded on.
    pub runtime: &'a Runtime,
    /// The device's pipeline the probes go through.
    pub pipeline: &'a Pipeline,
}

impl HealthCheck for FlowProbeCheck<'_> {
    fn check(&self, store: &SkillStore, name: &str) -> Result<usize, String> {
        let (v, path, bytes) = store.current_with_bytes(name).map_err(|e| e.to_string())?;
        let flow = Flow::load(
            self.runtime,
            &v.manifest.verified_flow_spec(&path, bytes.into()),
        )
        .map_err(|e| format!("loading: {e}"))?;
        let pipeline = self.pipeline.with_flow(flow);
        // Offline, so a probe never reaches the uplink.
        let device = DeviceState {
            network_up: false,
            battery_percent: None,
        };
        for probe in &v.manifest.health {
            let answer = pipeline
                .answer(&probe.text, device)
                .map_err(|e| format!("probe {:?}: {e}", probe.text))?;
            let intent = &answer.answer.response.intent;
            if *intent != probe.intent {
                return Err(format!(
                    "probe {:?}: expected intent {:?}, got {intent:?}",
                    probe.text, probe.intent
                ));
            }
        }
        Ok(v.manifest.health.len())
    }
}

/// The device's installed flow, loaded.
pub struct InstalledFlow {
    /// The flow's name (its manifest's).
    pub name: String,
    /// The file it was loaded from.
    pub file: InstalledFile,
    /// The flow, compiled and linked under its manifest's grants.
    pub flow: Flow,
}

/// Loads the flow installed in flow store `flows` ([`SkillStore::flows_at`]), if there is one,
/// from exactly the bytes that were verified. An install whose health check never reported is
/// checked first, its probes answered through `pipeline`.
pub fn load_flow(
    flows: &SkillStore,
    rt: &Runtime,
    pipeline: &Pipeline,
) -> Result<Option<InstalledFlow>, LoadError> {
    if flows.state(FLOW_SLOT)?.is_none() {
        return Ok(None);
    }
    let check = FlowProbeCheck {
        runtime: rt,
        pipeline,
    };
    let (v, path, bytes) = match flows.current_for_load(&check, FLOW_SLOT) {
        Ok(loaded) => loaded,
        // Removed by the recovery's failed check: the device runs the pipeline's flow.
        Err(TrustError::NotInstalled(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let flow = Flow::load(rt, &v.manifest.verified_flow_spec(&path, bytes.into()))?;
    Ok(Some(InstalledFlow {
        name: v.manifest.name,
        file: InstalledFile {
            version: v.manifest.version,
            sha256: v.sha256,
        },
        flow,
    }))
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

#[cfg(test)]
mod tests {
    use super::ManifestGrants;
    use edgenlu_trust::manifest::Capability;
    use std::path::Path;

    #[test]
    fn a_wasi_nn_decoder_is_granted_only_with_the_generate_capability() {
        let mut manifest = edgenlu_trust::dev::intents_manifest("encoder", "index", 1);
        let path = Path::new("skill.wasm");
        assert!(!manifest.skill_spec(path).skill.grants.generate);
        manifest.capabilities.push(Capability::Generate);
        assert!(manifest.skill_spec(path).skill.grants.generate);
    }
}
