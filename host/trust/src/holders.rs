//! What holds a model store entry on this device, so that the store never replaces it: the
//! installed skills whose manifests name it (current or previous version, which a rollback
//! brings back) and a detached model signature for it.

use super::manifest::Manifest;
use super::skillfile;
use super::skills::{Installed, SkillStore};
use edgenlu_models::store::Holders;

impl SkillStore {
    /// The manifest of an installed file, read without verifying it: whether it names an
    /// entry does not depend on whether it still verifies.
    fn installed_manifest(&self, name: &str, inst: &Installed) -> Result<Manifest, String> {
        let path = self
            .skill_dir(name)
            .map_err(|e| e.to_string())?
            .join(&inst.file);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let unverified = skillfile::parse(&bytes).map_err(|e| e.to_string())?;
        Manifest::parse(unverified.manifest).map_err(|e| e.to_string())
    }

    /// The installed skills whose manifests name `entry` among their models or config values.
    fn skills_holding(&self, entry: &str) -> Result<Vec<String>, String> {
        let mut holders = Vec::new();
        for (skill, state) in self.list().map_err(|e| e.to_string())? {
            for inst in std::iter::once(&state.current).chain(&state.previous) {
                let manifest = self.installed_manifest(&skill, inst)?;
                let names = |m: &Manifest| {
                    m.models.iter().any(|m| m == entry) || m.config.values().any(|v| v == entry)
                };
                if names(&manifest) {
                    holders.push(format!(
                        "installed skill {skill:?} version {}",
                        inst.version
                    ));
                }
            }
        }
        Ok(holders)
    }
}

/// Installed skills and model signatures hold entries. When the skill or trust store cannot
/// be read, that is the answer: the entry is kept.
impl Holders for SkillStore {
    fn holders(&self, entry: &str) -> Vec<String> {
        let mut holders = self
            .skills_holding(entry)
            .unwrap_or_else(|e| vec![format!("the skill store, which cannot be read ({e})")]);
        match self.trust().model_sig_path(entry) {
            Ok(path) if path.exists() => holders.push(format!(
                "the model signature {} (a signed model keeps its signed digest)",
                path.display()
            )),
            Ok(_) => {}
            Err(e) => holders.push(format!("the trust store ({e})")),
        }
        holders
    }
}
