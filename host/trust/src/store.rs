//! The device's trust store, under `<store root>/trust/`:
//!
//! - `roots.json`: the vendor root keys pinned at provisioning (`edgenlu trust add --root`);
//! - `delegations/<publisher>.json`: root-signed delegations of publisher keys, each with the
//!   capabilities and models the publisher may grant and an expiry (TUF's delegated roles);
//! - `versions.json`: per skill, the highest version ever accepted and its file's digest, so
//!   an older file is refused even after the newer one was removed or rolled back.

use super::keys::{self, PublicKeyFile};
use super::manifest::{Capability, Manifest};
use super::scope::{DelegationScope, ModelNamedBy};
use super::skillfile::{self, ImportedInterface};
use super::{from_hex, io_err, to_hex, write_atomic, TrustError};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Domain separation for delegation signatures.
const DELEGATION_CONTEXT: &[u8] = b"edgenlu delegation v1\n";
/// Largest delegation file read, bytes.
const MAX_DELEGATION_BYTES: u64 = 64 << 10;

/// What a root allows one publisher key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// The publisher's name, which manifests signed by this key must carry.
    pub publisher: String,
    /// The publisher's key id, hex.
    pub key_id: String,
    /// The publisher's public key, hex.
    pub public_key: String,
    /// Capabilities its skills may be granted.
    pub capabilities: Vec<Capability>,
    /// Models its skills may name: exact store names, or prefixes ending in `*`.
    pub models: Vec<String>,
    /// When it was issued, unix seconds.
    pub issued: u64,
    /// When it stops being accepted for installs, unix seconds.
    pub expires: u64,
}

/// A delegation as stored and shipped: the exact signed JSON bytes and the root's signature.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDelegation {
    /// The [`Delegation`] as JSON; kept as the exact bytes signed, so no re-encoding can
    /// change what is verified.
    pub body: String,
    /// The root key that signed it, hex id.
    pub root_key_id: String,
    /// Ed25519 signature over the context string and `body`, hex.
    pub signature: String,
}

impl Delegation {
    /// Whether model `name` is covered by one of this delegation's patterns.
    pub fn allows_model(&self, name: &str) -> bool {
        self.models.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    }

    /// What it allows, as a refusal reports it.
    pub fn scope(&self) -> DelegationScope {
        DelegationScope {
            publisher: self.publisher.clone(),
            capabilities: self.capabilities.clone(),
            models: self.models.clone(),
        }
    }

    /// Refuses a manifest that asks for more than this delegation allows, or a component
    /// whose `imports` need a capability its manifest does not ask for. Each refusal lists
    /// everything of its kind at once (capabilities, then imports, then models), so one
    /// message says all there is to change of it.
    pub fn check_grants(
        &self,
        manifest: &Manifest,
        imports: &[ImportedInterface],
    ) -> Result<(), TrustError> {
        let needed = Capability::required_by(imports);
        let needing = |caps: &[Capability]| -> Vec<String> {
            needed
                .iter()
                .filter(|(_, c)| caps.contains(c))
                .map(|(import, _)| import.clone())
                .collect()
        };
        let undelegated: Vec<Capability> = (manifest.capabilities.iter())
            .filter(|c| !self.capabilities.contains(c))
            .copied()
            .collect();
        if !undelegated.is_empty() {
            return Err(TrustError::CapabilityNotDelegated {
                imports: needing(&undelegated),
                capabilities: undelegated,
                scope: Box::new(self.scope()),
            });
        }
        // Capabilities are enforced at the link boundary: every import that needs one must
        // be declared in the manifest, which was just checked against the delegation.
        if let Some(&(_, capability)) = needed
            .iter()
            .find(|(_, c)| !manifest.capabilities.contains(c))
        {
            return Err(TrustError::CapabilityNotDeclared {
                capability,
                imports: needing(&[capability]),
                scope: Box::new(self.scope()),
            });
        }
        let ungranted: Vec<String> = (manifest.models.iter())
            .filter(|m| !self.allows_model(m))
            .cloned()
            .collect();
        if !ungranted.is_empty() {
            return Err(TrustError::ModelNotGranted {
                models: ungranted,
                named_by: ModelNamedBy::Manifest,
                scope: Box::new(self.scope()),
            });
        }
        Ok(())
    }

    /// The publisher key.
    pub fn key(&self) -> Result<VerifyingKey, TrustError> {
        keys::parse_public_key(&self.public_key, &self.key_id)
    }

    /// Signs this delegation with a root key.
    pub fn sign(&self, root: &SigningKey) -> Result<SignedDelegation, TrustError> {
        self.key()?;
        let body = serde_json::to_string(self).expect("serializable");
        let mut msg = DELEGATION_CONTEXT.to_vec();
        msg.extend_from_slice(body.as_bytes());
        Ok(SignedDelegation {
            body,
            root_key_id: keys::key_id_hex(&root.verifying_key()),
            signature: to_hex(&root.sign(&msg).to_bytes()),
        })
    }
}

impl SignedDelegation {
    /// Checks the root signature against `roots` and decodes the body.
    pub fn verify(&self, roots: &[PublicKeyFile]) -> Result<Delegation, TrustError> {
        let root = roots
            .iter()
            .find(|r| r.key_id == self.root_key_id)
            .ok_or_else(|| {
                TrustError::BadDelegation(format!(
                    "signed by root key {}, which is not pinned on this device",
                    self.root_key_id
                ))
            })?;
        let sig: [u8; 64] = from_hex(&self.signature)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| TrustError::BadDelegation("signature is not 64 bytes of hex".into()))?;
        let mut msg = DELEGATION_CONTEXT.to_vec();
        msg.extend_from_slice(self.body.as_bytes());
        root.key()?
            .verify_strict(&msg, &Signature::from_bytes(&sig))
            .map_err(|_| {
                TrustError::BadDelegation(format!(
                    "the signature of root {} does not check",
                    self.root_key_id
                ))
            })?;
        let d: Delegation = serde_json::from_str(&self.body)
            .map_err(|e| TrustError::BadDelegation(format!("body: {e}")))?;
        d.key()?;
        if edgenlu_models::store::validate_name(&d.publisher).is_err() {
            return Err(TrustError::BadDelegation(format!(
                "publisher name {:?} must follow store-name rules",
                d.publisher
            )));
        }
        Ok(d)
    }

    /// Reads a delegation file.
    pub fn read(path: &Path) -> Result<SignedDelegation, TrustError> {
        let text = read_capped(path, MAX_DELEGATION_BYTES)?;
        serde_json::from_str(&text)
            .map_err(|e| TrustError::BadDelegation(format!("{}: {e}", path.display())))
    }
}

fn read_capped(path: &Path, cap: u64) -> Result<String, TrustError> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(cap + 1).read_to_string(&mut s))
        .map_err(io_err(path))?;
    if s.len() as u64 > cap {
        return Err(TrustError::Corrupt {
            path: path.to_owned(),
            reason: format!("larger than {cap} bytes"),
        });
    }
    Ok(s)
}

/// The highest version accepted for one skill, and its file's digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    /// The version.
    pub version: u64,
    /// SHA-256 of that file, hex.
    pub sha256: String,
}

/// A skill file that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its manifest.
    pub manifest: Manifest,
    /// The delegation of the key that signed it.
    pub delegation: Delegation,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
}

/// The trust store at `<root>/trust`.
#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
    /// The model store root, whose recorded digests pinned models are checked against.
    root: PathBuf,
}

impl TrustStore {
    /// The trust store under a model store's root (created if missing). Removes the stale
    /// temporaries a writer killed mid-write left in it (e.g. `versions.json.tmp<pid>` after a
    /// kill during an install; see [`edgenlu_models::atomic::remove_stale_temps`]).
    pub fn at(store_root: &Path) -> Result<TrustStore, TrustError> {
        let dir = store_root.join("trust");
        let delegations = dir.join("delegations");
        std::fs::create_dir_all(&delegations).map_err(io_err(&delegations))?;
        for d in [&dir, &delegations, &dir.join("models")] {
            edgenlu_models::atomic::remove_stale_temps(d);
        }
        Ok(TrustStore {
            dir,
            root: store_root.to_owned(),
        })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the trust store's write lock for a read-modify-write of one of its files
    /// (released when dropped). Never held while taking the skill store's lock.
    fn lock(&self) -> Result<std::fs::File, TrustError> {
        super::lock_dir(&self.dir)
    }

    fn roots_path(&self) -> PathBuf {
        self.dir.join("roots.json")
    }

    fn versions_path(&self) -> PathBuf {
        self.dir.join("versions.json")
    }

    fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, TrustError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
            Err(e) => return Err(io_err(path)(e)),
            Ok(_) => {}
        }
        let text = read_capped(path, 16 << 20)?;
        serde_json::from_str(&text).map_err(|e| TrustError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The pinned root keys.
    pub fn roots(&self) -> Result<Vec<PublicKeyFile>, TrustError> {
        let roots: Vec<PublicKeyFile> = Self::read_json(&self.roots_path())?;
        for r in &roots {
            r.key()?;
        }
        Ok(roots)
    }

    /// Pins a root key (idempotent).
    pub fn add_root(&self, key: &PublicKeyFile) -> Result<(), TrustError> {
        let _lock = self.lock()?;
        key.key()?;
        let mut roots = self.roots()?;
        if !roots.iter().any(|r| r.key_id == key.key_id) {
            roots.push(key.clone());
            let json = serde_json::to_vec_pretty(&roots).expect("serializable");
            write_atomic(&self.roots_path(), &json)?;
        }
        Ok(())
    }

    /// Revokes publisher `publisher`'s delegation: its key signs nothing this device accepts
    /// from now on, and skills it signed stop loading (they are verified again on every
    /// load). Returns whether there was one.
    pub fn remove_delegation(&self, publisher: &str) -> Result<bool, TrustError> {
        edgenlu_models::store::validate_name(publisher)
            .map_err(|e| TrustError::BadDelegation(e.to_string()))?;
        let path = self
            .dir
            .join("delegations")
            .join(format!("{publisher}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => {
                super::sync_dir(&path).map_err(io_err(&path))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Unpins root key `key_id` (hex): every delegation it signed stops verifying. Returns
    /// whether it was pinned.
    pub fn remove_root(&self, key_id: &str) -> Result<bool, TrustError> {
        let _lock = self.lock()?;
        let mut roots = self.roots()?;
        let before = roots.len();
        roots.retain(|r| r.key_id != key_id);
        if roots.len() == before {
            return Ok(false);
        }
        let json = serde_json::to_vec_pretty(&roots).expect("serializable");
        write_atomic(&self.roots_path(), &json)?;
        Ok(true)
    }

    /// Verifies a delegation against the pinned roots and stores it, replacing any earlier
    /// delegation to the same publisher.
    pub fn add_delegation(&self, d: &SignedDelegation) -> Result<Delegation, TrustError> {
        let body = d.verify(&self.roots()?)?;
        let path = self
            .dir
            .join("delegations")
            .join(format!("{}.json", body.publisher));
        write_atomic(&path, &serde_json::to_vec_pretty(d).expect("serializable"))?;
        Ok(body)
    }

    /// Every stored delegation that still verifies against the pinned roots. One that does
    /// not (its root was unpinned, or the file was damaged) is skipped with a warning, so a
    /// damaged file cannot widen trust and cannot stop other publishers' skills either.
    pub fn delegations(&self) -> Result<Vec<Delegation>, TrustError> {
        let roots = self.roots()?;
        let dir = self.dir.join("delegations");
        let mut out = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        entries.sort();
        for path in entries {
            match SignedDelegation::read(&path).and_then(|d| d.verify(&roots)) {
                Ok(d) => out.push(d),
                Err(e) => tracing::warn!("ignoring delegation {}: {e}", path.display()),
            }
        }
        Ok(out)
    }

    /// The highest accepted version of each skill.
    pub fn accepted(&self) -> Result<BTreeMap<String, Accepted>, TrustError> {
        Self::read_json(&self.versions_path())
    }

    /// Checks a file's signature, key, publisher and grants, but not expiry or version:
    /// what loading an already-installed skill needs (a rollback the owner asked for is
    /// legitimate, and a device whose clock is wrong must keep running what it has).
    pub fn verify_signed(&self, bytes: &[u8]) -> Result<Verified, TrustError> {
        let file = skillfile::parse(bytes)?;
        let key_id = to_hex(&file.key_id);
        let delegation = self
            .delegations()?
            .into_iter()
            .find(|d| d.key_id == key_id)
            .ok_or_else(|| TrustError::UnknownKey {
                key_id: key_id.clone(),
            })?;
        delegation
            .key()?
            .verify_strict(&file.message, &file.signature)
            .map_err(|_| TrustError::BadSignature {
                key_id: key_id.clone(),
            })?;
        // Signed by a known key: only now is the manifest worth parsing.
        let manifest = Manifest::parse(file.manifest)?;
        if manifest.publisher != delegation.publisher {
            return Err(TrustError::PublisherMismatch {
                manifest: manifest.publisher,
                delegated: delegation.publisher,
                key_id,
            });
        }
        delegation.check_grants(&manifest, &skillfile::component_import_items(bytes)?)?;
        self.check_models(&manifest)?;
        Ok(Verified {
            manifest,
            delegation,
            sha256: file.file_sha256,
        })
    }

    /// Checks the models a manifest lists against this device's model store: those it pins
    /// must have the pinned digest, and those with a detached signature the signed one.
    fn check_models(&self, manifest: &Manifest) -> Result<(), TrustError> {
        let models =
            edgenlu_models::store::ModelStore::at(&self.root).map_err(|e| TrustError::Corrupt {
                path: self.root.clone(),
                reason: e.to_string(),
            })?;
        for model in &manifest.models {
            let recorded = models.entry(model).ok().flatten().map(|e| e.sha256);
            if let Some(pinned) = manifest.model_sha256.get(model) {
                if recorded.as_ref() != Some(pinned) {
                    return Err(TrustError::ModelDigest {
                        model: model.clone(),
                        pinned: pinned.clone(),
                        recorded,
                    });
                }
            }
            self.check_model(model, recorded.as_deref())?;
        }
        Ok(())
    }

    /// Every check an install needs: [`verify_signed`](Self::verify_signed), then the
    /// delegation's and the release's expiry at `now` (unix seconds) and the version against
    /// the highest accepted.
    pub fn verify(&self, bytes: &[u8], now: u64) -> Result<Verified, TrustError> {
        let v = self.verify_signed(bytes)?;
        if now >= v.delegation.expires {
            return Err(TrustError::DelegationExpired {
                publisher: v.delegation.publisher,
                expired_at: v.delegation.expires,
                now,
            });
        }
        if let Some(expires) = v.manifest.expires.filter(|&e| now >= e) {
            return Err(TrustError::ReleaseExpired {
                name: v.manifest.name,
                version: v.manifest.version,
                expired_at: expires,
                now,
            });
        }
        if let Some(acc) = self.accepted()?.get(&v.manifest.name) {
            if v.manifest.version < acc.version {
                return Err(TrustError::Rollback {
                    name: v.manifest.name,
                    version: v.manifest.version,
                    highest: acc.version,
                });
            }
            if v.manifest.version == acc.version && v.sha256 != acc.sha256 {
                return Err(TrustError::VersionReused {
                    name: v.manifest.name,
                    version: v.manifest.version,
                });
            }
        }
        Ok(v)
    }

    /// Records `v` as accepted if it is newer than the highest so far (persisted atomically
    /// before the install switches over, so a kill cannot let an older file back in).
    /// Returns what was recorded before, for [`TrustStore::unaccept`].
    pub fn accept(&self, v: &Verified) -> Result<Option<Accepted>, TrustError> {
        let _lock = self.lock()?;
        let mut acc = self.accepted()?;
        let before = acc.get(&v.manifest.name).cloned();
        let newer = before
            .as_ref()
            .is_none_or(|a| v.manifest.version > a.version);
        if newer {
            acc.insert(
                v.manifest.name.clone(),
                Accepted {
                    version: v.manifest.version,
                    sha256: v.sha256.clone(),
                },
            );
            let json = serde_json::to_vec_pretty(&acc).expect("serializable");
            write_atomic(&self.versions_path(), &json)?;
        }
        Ok(before)
    }

    /// Takes back an [`accept`](TrustStore::accept) of `v` whose install failed its health
    /// check: the floor returns to `before`, so the fixed file can ship under the same version.
    /// Nothing changes if the floor has moved on since (another file was accepted).
    pub fn unaccept(
        &self,
        v_name: &str,
        v_sha256: &str,
        before: Option<Accepted>,
    ) -> Result<(), TrustError> {
        let _lock = self.lock()?;
        let mut acc = self.accepted()?;
        if acc.get(v_name).is_none_or(|a| a.sha256 != v_sha256) {
            return Ok(());
        }
        match before {
            Some(a) => acc.insert(v_name.to_string(), a),
            None => acc.remove(v_name),
        };
        let json = serde_json::to_vec_pretty(&acc).expect("serializable");
        write_atomic(&self.versions_path(), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev;

    /// A delegation of `acme` allowing `capabilities` and `models` (the key is never used).
    fn acme(capabilities: Vec<Capability>, models: &[&str]) -> Delegation {
        Delegation {
            publisher: "acme".into(),
            key_id: String::new(),
            public_key: String::new(),
            capabilities,
            models: models.iter().map(|m| m.to_string()).collect(),
            issued: 0,
            expires: u64::MAX,
        }
    }

    /// The intents skill's manifest, as acme's, over `models`.
    fn manifest(models: &[&str], capabilities: Vec<Capability>) -> Manifest {
        let mut m = dev::intents_manifest("all-minilm-l6-v2.q8_0", "snips-intents", 1);
        m.publisher = "acme".into();
        m.models = models.iter().map(|m| m.to_string()).collect();
        m.capabilities = capabilities;
        m
    }

    fn import(name: &str, items: &[&str]) -> ImportedInterface {
        ImportedInterface {
            name: name.into(),
            items: items.iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn every_model_outside_the_patterns_is_refused_at_once() {
        let d = acme(vec![], &["all-minilm-*"]);
        d.check_grants(&manifest(&["all-minilm-l6-v2.q8_0"], vec![]), &[])
            .unwrap();
        let m = manifest(
            &["all-minilm-l6-v2.q8_0", "snips-intents", "other-model"],
            vec![],
        );
        let err = d.check_grants(&m, &[]).unwrap_err();
        assert!(
            matches!(&err, TrustError::ModelNotGranted { models, named_by: ModelNamedBy::Manifest, scope }
                if *models == ["snips-intents", "other-model"] && **scope == d.scope()),
            "{err:?}"
        );
        let msg = err.to_string();
        for part in [
            "publisher \"acme\" may not grant models `snips-intents` and `other-model`",
            "its delegation allows only models 'all-minilm-*'",
            "remove them from the manifest's models",
            "--model 'all-minilm-*' --model 'snips-intents' --model 'other-model'",
        ] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
    }

    #[test]
    fn capabilities_outside_the_delegation_are_refused_with_the_imports_needing_them() {
        let d = acme(vec![], &["*"]);
        let imports = [
            import("edgenlu:nlu/llm@0.1.0", &["generation"]),
            import("edgenlu:nlu/kernels@0.1.0", &["matmul", "attend"]),
        ];
        let m = manifest(&[], vec![Capability::Uplink, Capability::Generate]);
        let err = d.check_grants(&m, &imports).unwrap_err();
        assert!(
            matches!(&err, TrustError::CapabilityNotDelegated { capabilities, imports, scope }
                if *capabilities == [Capability::Uplink, Capability::Generate]
                    && *imports == ["edgenlu:nlu/llm@0.1.0", "edgenlu:nlu/kernels@0.1.0#attend"]
                    && scope.publisher == "acme"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "publisher \"acme\" may not grant capabilities `uplink` and `generate`: its \
                 delegation allows no capabilities. Either remove them from the manifest's \
                 capabilities and the imports that need them from the component \
                 (edgenlu:nlu/llm@0.1.0 and edgenlu:nlu/kernels@0.1.0#attend), or ask the vendor"
            ) && msg.contains("--capability uplink --capability generate --model '*'"),
            "{msg}"
        );
    }

    #[test]
    fn an_import_needing_an_undeclared_capability_is_refused_naming_every_such_import() {
        let imports = [
            import("edgenlu:nlu/tensors@0.1.0", &["tensor"]),
            import("edgenlu:nlu/kernels@0.1.0", &["matmul", "kv-cache", "rope"]),
        ];
        let m = manifest(&[], vec![]);
        for d in [
            acme(vec![Capability::Generate], &["*"]),
            acme(vec![], &["*"]),
        ] {
            let err = d.check_grants(&m, &imports).unwrap_err();
            assert!(
                matches!(&err, TrustError::CapabilityNotDeclared { capability: Capability::Generate, imports, .. }
                    if *imports == ["edgenlu:nlu/kernels@0.1.0#kv-cache", "edgenlu:nlu/kernels@0.1.0#rope"]),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.starts_with(
                    "the component imports edgenlu:nlu/kernels@0.1.0#kv-cache and \
                     edgenlu:nlu/kernels@0.1.0#rope, which need capability `generate`: add \
                     \"generate\" to the manifest's capabilities"
                ),
                "{msg}"
            );
            let delegated = d.capabilities.contains(&Capability::Generate);
            assert_eq!(msg.ends_with("delegation allows it"), delegated, "{msg}");
            assert_eq!(msg.contains("--capability generate"), !delegated, "{msg}");
        }
        // Declared and delegated: allowed.
        acme(vec![Capability::Generate], &["*"])
            .check_grants(&manifest(&[], vec![Capability::Generate]), &imports)
            .unwrap();
    }
}
