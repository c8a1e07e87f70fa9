//! The on-device skill store, under `<store root>/skills/<name>/`: each installed file as
//! `<version>-<digest prefix>.wasm`, and `state.json` naming the current file and the
//! previous one. The device's flow is kept the same way in one slot, `<store root>/flows/device/`
//! ([`SkillStore::flows_at`]): whatever its name, the flow installed last is the device's, and
//! a rollback goes back to the flow before it (another flow, or an older version of the same). Files are written whole (temp file, fsync, rename, fsync the directory)
//! before `state.json` is switched the same way, so a kill at any instant leaves a store
//! whose `state.json` names complete, verified files: the old version or the new one.

use super::manifest::Kind;
use super::store::{Accepted, TrustStore, Verified};
use super::{io_err, write_atomic, TrustError};
use std::path::{Path, PathBuf};

/// One installed file of a skill.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    /// File name inside the skill's directory.
    pub file: String,
    /// The manifest's version.
    pub version: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// `state.json`: what loads now, and what `rollback` restores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillState {
    /// The version that loads.
    pub current: Installed,
    /// The version before it, kept for `rollback`.
    pub previous: Option<Installed>,
    /// True from the switch to a new version until its health check passed: if the process
    /// dies in between, the next [`SkillStore::load`] finishes the check (and rolls back on
    /// failure), so an interrupted update cannot leave an unchecked version running.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchecked: bool,
}

/// What an install did.
#[derive(Debug, Clone)]
pub struct InstallReport {
    /// The skill.
    pub name: String,
    /// The version now current.
    pub version: u64,
    /// The version it replaced, if any.
    pub previous: Option<u64>,
    /// Health-check probes that passed (None: no health check was run).
    pub probes_passed: Option<usize>,
}

/// Why an install with a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The file was refused, or the store could not be written; nothing changed.
    #[error(transparent)]
    Refused(#[from] TrustError),
    /// The new version was installed but failed its health check, and the store went back
    /// by itself to what it had before.
    #[error("{name} version {version} failed its health check ({reason}); {}", match restored { Some(v) => format!("rolled back to version {v}"), None => "removed it (no previous version)".to_string() })]
    HealthCheck {
        /// The skill.
        name: String,
        /// The version that failed.
        version: u64,
        /// What failed.
        reason: String,
        /// The version restored, if there was one.
        restored: Option<u64>,
    },
}

/// What decides whether an installed version stays: the runtime loads the current version of
/// a skill and runs its manifest's probes. The store calls it after switching to a new version
/// and, for an install the process did not live to check, before loading it.
pub trait HealthCheck {
    /// Checks the current version of `name` in `store`: how many probes passed, or why one
    /// failed (a skill without probes passes if it loads and links).
    fn check(&self, store: &SkillStore, name: &str) -> Result<usize, String>;
}

/// The name under which the flow store ([`SkillStore::flows_at`]) keeps the device's flow.
pub const FLOW_SLOT: &str = "device";

/// The skill store at `<root>/skills` (or the flow store at `<root>/flows`), checked against
/// the trust store at `<root>/trust`.
#[derive(Debug, Clone)]
pub struct SkillStore {
    dir: PathBuf,
    trust: TrustStore,
    /// What it holds: skills by name, or the device's flow in [`FLOW_SLOT`].
    kind: Kind,
}

/// What an install changed, to put back if its health check fails.
struct Undo {
    /// The skill's state before (None: a first install).
    state: Option<SkillState>,
    /// The version floor before.
    floor: Option<Accepted>,
    /// The installed file's digest.
    sha256: String,
}

impl SkillStore {
    /// The skill store under a model store's root (created if missing). Removes the stale
    /// temporaries a killed install left in the skills' directories (see
    /// [`edgenlu_models::atomic::remove_stale_temps`]).
    pub fn at(store_root: &Path) -> Result<SkillStore, TrustError> {
        Self::of_kind(store_root, Kind::Skill)
    }

    /// The flow store under a model store's root (created if missing): the device's flow,
    /// installed, checked, rolled back and removed as a skill is, under [`FLOW_SLOT`]
    /// whatever the flow's name (every method's `name` means the device's flow).
    pub fn flows_at(store_root: &Path) -> Result<SkillStore, TrustError> {
        Self::of_kind(store_root, Kind::Flow)
    }

    fn of_kind(store_root: &Path, kind: Kind) -> Result<SkillStore, TrustError> {
        let dir = store_root.join(match kind {
            Kind::Skill => "skills",
            Kind::Flow => "flows",
        });
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for skill in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            edgenlu_models::atomic::remove_stale_temps(&skill.path());
        }
        Ok(SkillStore {
            dir,
            trust: TrustStore::at(store_root)?,
            kind,
        })
    }

    /// What it holds: skills, or the device's flow.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The trust store it checks against.
    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// The directory of skill `name`, whether or not it is installed.
    pub(crate) fn skill_dir(&self, name: &str) -> Result<PathBuf, TrustError> {
        edgenlu_models::store::validate_name(name)
            .map_err(|e| TrustError::BadManifest(e.to_string()))?;
        Ok(self.dir.join(match self.kind {
            Kind::Skill => name,
            Kind::Flow => FLOW_SLOT,
        }))
    }

    /// The state of skill `name`, if installed.
    pub fn state(&self, name: &str) -> Result<Option<SkillState>, TrustError> {
        let path = self.skill_dir(name)?.join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrustError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    fn write_state(&self, name: &str, state: &SkillState) -> Result<(), TrustError> {
        let path = self.skill_dir(name)?.join("state.json");
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(state).expect("serializable"),
        )
    }

    /// Every installed skill and its state.
    pub fn list(&self) -> Result<Vec<(String, SkillState)>, TrustError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Ok(Some(state)) = self.state(&name) {
                out.push((name, state));
            }
        }
        Ok(out)
    }

    /// Verifies `bytes` for install at `now` (unix seconds) and makes it the current version,
    /// keeping the one it replaces as previous. No health check: see
    /// [`install_checked`](Self::install_checked).
    pub fn install(&self, bytes: &[u8], now: u64) -> Result<InstallReport, TrustError> {
        let _lock = self.lock()?;
        self.install_locked(bytes, now, false).map(|(r, _)| r)
    }

    /// Takes the store's write lock (released when the file is dropped), so two installers
    /// (a CLI and a server, say) cannot interleave their state switches.
    fn lock(&self) -> Result<std::fs::File, TrustError> {
        super::lock_dir(&self.dir)
    }

    /// Installs with the lock held; returns the report and the state before. With
    /// `unchecked`, the new state is marked so and no file is deleted yet, so the state
    /// before can be restored exactly if the health check fails.
    fn install_locked(
        &self,
        bytes: &[u8],
        now: u64,
        unchecked: bool,
    ) -> Result<(InstallReport, Undo), TrustError> {
        let v = self.trust.verify(bytes, now)?;
        self.check_kind(&v)?;
        let name = v.manifest.name.clone();
        let dir = self.skill_dir(&name)?;
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let file = format!("{}-{}.wasm", v.manifest.version, &v.sha256[..16]);
        write_atomic(&dir.join(&file), bytes)?;
        // Persist the version floor before switching, so no kill can leave the new version
        // installed while an older one would still be accepted.
        let floor = self.trust.accept(&v)?;
        let old = self.state(&name)?;
        let new = Installed {
            file,
            version: v.manifest.version,
            sha256: v.sha256.clone(),
        };
        let previous = match &old {
            Some(s) if s.current.sha256 == new.sha256 => s.previous.clone(),
            Some(s) => Some(s.current.clone()),
            None => None,
        };
        let state = SkillState {
            current: new,
            previous,
            unchecked,
        };
        self.write_state(&name, &state)?;
        if !unchecked {
            self.collect_garbage(&name, &state);
        }
        let report = InstallReport {
            name,
            version: state.current.version,
            previous: state.previous.as_ref().map(|p| p.version),
            probes_passed: None,
        };
        let undo = Undo {
            state: old,
            floor,
            sha256: v.sha256,
        };
        Ok((report, undo))
    }

    /// Refuses a flow offered to the skill store and a skill offered to the flow store.
    fn check_kind(&self, v: &Verified) -> Result<(), TrustError> {
        if v.manifest.kind == self.kind {
            return Ok(());
        }
        Err(TrustError::WrongKind {
            name: v.manifest.name.clone(),
            kind: v.manifest.kind,
            expected: self.kind,
        })
    }

    /// Deletes files of `name` that `state` does not name (older versions, temp files left
    /// by a killed install). Best effort: a leftover file is harmless.
    fn collect_garbage(&self, name: &str, state: &SkillState) {
        let Ok(dir) = self.skill_dir(name) else {
            return;
        };
        let keep: Vec<&str> = std::iter::once(state.current.file.as_str())
            .chain(state.previous.as_ref().map(|p| p.file.as_str()))
            .chain(["state.json"])
            .collect();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let fname = e.file_name();
                let fname = fname.to_string_lossy();
                if !keep.contains(&fname.as_ref()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Installs `bytes`, then runs the new version's health check; if it fails, goes back to
    /// the version it replaced (or removes a first install) and says so in the error.
    pub fn install_checked_by(
        &self,
        health: &dyn HealthCheck,
        bytes: &[u8],
        now: u64,
    ) -> Result<InstallReport, InstallError> {
        let _lock = self.lock()?;
        let (mut report, undo) = self.install_locked(bytes, now, true)?;
        match health.check(self, &report.name) {
            Ok(n) => {
                self.mark_checked(&report.name)?;
                report.probes_passed = Some(n);
                Ok(report)
            }
            Err(reason) => {
                let restored = self.restore(&report.name, undo.state)?;
                // A version that never served does not burn its number.
                self.trust
                    .unaccept(&report.name, &undo.sha256, undo.floor)?;
                Err(InstallError::HealthCheck {
                    name: report.name,
                    version: report.version,
                    reason,
                    restored,
                })
            }
        }
    }

    /// Clears `unchecked` and deletes files the state no longer names.
    fn mark_checked(&self, name: &str) -> Result<(), TrustError> {
        let mut state = self
            .state(name)?
            .ok_or_else(|| TrustError::NotInstalled(name.into()))?;
        state.unchecked = false;
        self.write_state(name, &state)?;
        self.collect_garbage(name, &state);
        Ok(())
    }

    /// Puts back `before` (None: removes the skill); returns the version now current.
    fn restore(&self, name: &str, before: Option<SkillState>) -> Result<Option<u64>, TrustError> {
        match before {
            Some(mut state) => {
                state.unchecked = false;
                self.write_state(name, &state)?;
                self.collect_garbage(name, &state);
                Ok(Some(state.current.version))
            }
            None => {
                self.remove_locked(name)?;
                Ok(None)
            }
        }
    }

    /// Finishes an install whose health check never reported (the process died between the
    /// switch and the result): runs the check now and, if it fails, goes back to the
    /// previous version (or removes a first install). Returns why it rolled back, if it did.
    pub fn recover_by(
        &self,
        health: &dyn HealthCheck,
        name: &str,
    ) -> Result<Option<String>, TrustError> {
        let _lock = self.lock()?;
        let Some(state) = self.state(name)? else {
            return Ok(None);
        };
        if !state.unchecked {
            return Ok(None);
        }
        match health.check(self, name) {
            Ok(_) => {
                self.mark_checked(name)?;
                Ok(None)
            }
            Err(reason) => {
                let before = state.previous.map(|p| SkillState {
                    current: p,
                    previous: None,
                    unchecked: false,
                });
                let restored = self.restore(name, before)?;
                tracing::warn!(
                    "{name} version {} failed the health check its install could not finish \
                     ({reason}); now at {restored:?}",
                    state.current.version
                );
                Ok(Some(reason))
            }
        }
    }

    /// Makes the previous version current again (and the current one previous, so the
    /// owner can go forward again). Versions below the highest accepted stay refused for
    /// new installs; this only switches between files already on the device.
    pub fn rollback(&self, name: &str) -> Result<SkillState, TrustError> {
        let _lock = self.lock()?;
        let state = self
            .state(name)?
            .ok_or_else(|| TrustError::NotInstalled(name.into()))?;
        let previous = state
            .previous
            .ok_or_else(|| TrustError::NoPrevious(name.into()))?;
        let new = SkillState {
            current: previous,
            previous: Some(state.current),
            unchecked: false,
        };
        // The file must still verify before it becomes current again.
        self.verify_installed(name, &new.current)?;
        self.write_state(name, &new)?;
        Ok(new)
    }

    /// Removes skill `name` and its files. The highest accepted version stays recorded, so
    /// removing a skill cannot be used to reinstall an older one.
    pub fn remove(&self, name: &str) -> Result<(), TrustError> {
        let _lock = self.lock()?;
        self.remove_locked(name)
    }

    fn remove_locked(&self, name: &str) -> Result<(), TrustError> {
        let dir = self.skill_dir(name)?;
        if self.state(name)?.is_none() {
            return Err(TrustError::NotInstalled(name.into()));
        }
        // state.json first: once it is gone the skill is not installed, whatever remains.
        let state = dir.join("state.json");
        std::fs::remove_file(&state).map_err(io_err(&state))?;
        super::sync_dir(&state).map_err(io_err(&dir))?;
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))
    }

    fn verify_installed(&self, name: &str, inst: &Installed) -> Result<Verified, TrustError> {
        self.verify_installed_bytes(name, inst).map(|(v, _)| v)
    }

    /// [`verify_installed`](Self::verify_installed), keeping the bytes that were verified so
    /// the runtime compiles exactly those (the file could change after the check).
    fn verify_installed_bytes(
        &self,
        name: &str,
        inst: &Installed,
    ) -> Result<(Verified, Vec<u8>), TrustError> {
        let path = self.skill_dir(name)?.join(&inst.file);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let v = self.trust.verify_signed(&bytes)?;
        self.check_kind(&v)?;
        // The flow slot holds whichever flow was installed last, whatever its name.
        let named = self.kind == Kind::Flow || v.manifest.name == name;
        if v.sha256 != inst.sha256 || !named || v.manifest.version != inst.version {
            return Err(TrustError::Corrupt {
                path,
                reason: "the file does not match state.json".into(),
            });
        }
        Ok((v, bytes))
    }

    /// The current version of `name`, verified again (signature, key, grants) from the bytes
    /// on disk, and its path.
    pub fn current(&self, name: &str) -> Result<(Verified, PathBuf), TrustError> {
        let state = self
            .state(name)?
            .ok_or_else(|| TrustError::NotInstalled(name.into()))?;
        let v = self.verify_installed(name, &state.current)?;
        Ok((v, self.skill_dir(name)?.join(&state.current.file)))
    }

    /// Whether `sha256` is the file the store serves as `name`'s current version, with its
    /// install checked (one small file read): how a server tells that the version it loaded
    /// is still the one to serve. False when `name` is not installed.
    pub fn is_current(&self, name: &str, sha256: &str) -> Result<bool, TrustError> {
        Ok(self
            .state(name)?
            .is_some_and(|s| s.current.sha256 == sha256 && !s.unchecked))
    }

    /// The current version of `name` as the runtime should load it: verified again, with its
    /// path and the exact bytes that were verified (the file could change after the check).
    /// A version whose install was interrupted before its health check reported is checked
    /// first ([`recover_by`](Self::recover_by)).
    pub fn current_for_load(
        &self,
        health: &dyn HealthCheck,
        name: &str,
    ) -> Result<(Verified, PathBuf, Vec<u8>), TrustError> {
        if self.state(name)?.is_some_and(|s| s.unchecked) {
            self.recover_by(health, name)?;
        }
        self.current_with_bytes(name)
    }

    /// [`current`](Self::current) with the exact bytes that were verified (the file could
    /// change after the check), without finishing an interrupted install: what a health
    /// check loads.
    pub fn current_with_bytes(
        &self,
        name: &str,
    ) -> Result<(Verified, PathBuf, Vec<u8>), TrustError> {
        let state = self
            .state(name)?
            .ok_or_else(|| TrustError::NotInstalled(name.into()))?;
        let (v, bytes) = self.verify_installed_bytes(name, &state.current)?;
        Ok((v, self.skill_dir(name)?.join(&state.current.file), bytes))
    }
}
