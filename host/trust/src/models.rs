//! Detached model signatures: a publisher signs a model's name and SHA-256 digest, so a
//! vendor can ship or update a model independently of the skills that use it. The model store
//! checks a file against its recorded digest before mapping it; the trust store checks the
//! recorded digest against the signed one before any skill that lists the model is verified,
//! installed or loaded. Together: the bytes mapped are the bytes the publisher signed.

use super::keys;
use super::scope::ModelNamedBy;
use super::store::{Delegation, TrustStore};
use super::{from_hex, io_err, to_hex, write_atomic, TrustError};
use ed25519_dalek::{Signature, Signer, SigningKey};
use std::path::{Path, PathBuf};

/// Domain separation for model signatures.
const MODEL_CONTEXT: &[u8] = b"edgenlu model signature v1\n";

/// A detached signature over a model's name and digest (`trust/models/<name>.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSignature {
    /// The model's store name.
    pub model: String,
    /// SHA-256 of the GGUF file, lowercase hex.
    pub sha256: String,
    /// The signing publisher key, hex id.
    pub key_id: String,
    /// Ed25519 signature over the context, the name, a newline and the digest, hex.
    pub signature: String,
}

fn message(model: &str, sha256: &str) -> Vec<u8> {
    let mut m = MODEL_CONTEXT.to_vec();
    m.extend_from_slice(model.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(sha256.as_bytes());
    m
}

impl ModelSignature {
    /// Signs model `model` with digest `sha256` (hex) using a publisher key.
    pub fn sign(model: &str, sha256: &str, key: &SigningKey) -> ModelSignature {
        ModelSignature {
            model: model.to_string(),
            sha256: sha256.to_string(),
            key_id: keys::key_id_hex(&key.verifying_key()),
            signature: to_hex(&key.sign(&message(model, sha256)).to_bytes()),
        }
    }

    /// Reads a model signature file.
    pub fn read(path: &Path) -> Result<ModelSignature, TrustError> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        ModelSignature::parse(&bytes).map_err(|e| match e {
            TrustError::BadModelSignature(why) => {
                TrustError::BadModelSignature(format!("{}: {why}", path.display()))
            }
            other => other,
        })
    }

    /// Parses a model signature file's bytes (JSON); the signature is not checked yet.
    pub fn parse(bytes: &[u8]) -> Result<ModelSignature, TrustError> {
        serde_json::from_slice(bytes).map_err(|e| TrustError::BadModelSignature(e.to_string()))
    }

    /// Checks the signature against the delegations: the key must be delegated, and its
    /// delegation must cover this model's name. Returns that delegation.
    pub fn verify(&self, delegations: &[Delegation]) -> Result<Delegation, TrustError> {
        let bad = |m: String| TrustError::BadModelSignature(format!("{}: {m}", self.model));
        let d = delegations
            .iter()
            .find(|d| d.key_id == self.key_id)
            .ok_or_else(|| bad(format!("unknown signing key {}", self.key_id)))?;
        if !d.allows_model(&self.model) {
            return Err(TrustError::ModelNotGranted {
                models: vec![self.model.clone()],
                named_by: ModelNamedBy::ModelSignature,
                scope: Box::new(d.scope()),
            });
        }
        let sig: [u8; 64] = from_hex(&self.signature)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("signature is not 64 bytes of lowercase hex".into()))?;
        d.key()?
            .verify_strict(
                &message(&self.model, &self.sha256),
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| {
                bad(format!(
                    "the signature of key {} does not check",
                    self.key_id
                ))
            })?;
        Ok(d.clone())
    }
}

impl TrustStore {
    /// Where the detached signature of `model` is kept (`trust/models/<name>.json`).
    pub(crate) fn model_sig_path(&self, model: &str) -> Result<PathBuf, TrustError> {
        edgenlu_models::store::validate_name(model)
            .map_err(|e| TrustError::BadModelSignature(e.to_string()))?;
        Ok(self.dir().join("models").join(format!("{model}.json")))
    }

    /// Checks a model signature as [`add_model_signature`](Self::add_model_signature) does
    /// (key delegated, model covered, not expired at `now`) without storing it: what a pull
    /// asks before it downloads or installs the model. Returns the delegation.
    pub fn check_model_signature(
        &self,
        sig: &ModelSignature,
        now: u64,
    ) -> Result<Delegation, TrustError> {
        let d = sig.verify(&self.delegations()?)?;
        if now >= d.expires {
            return Err(TrustError::DelegationExpired {
                publisher: d.publisher,
                expired_at: d.expires,
                now,
            });
        }
        Ok(d)
    }

    /// Verifies a model signature (key delegated, model covered, not expired at `now`) and
    /// stores it, replacing an earlier one for the same model.
    pub fn add_model_signature(&self, sig: &ModelSignature, now: u64) -> Result<(), TrustError> {
        self.check_model_signature(sig, now)?;
        let path = self.model_sig_path(&sig.model)?;
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(sig).expect("serializable"),
        )
    }

    /// The stored signature of `model`, if any (verified again).
    pub fn model_signature(&self, model: &str) -> Result<Option<ModelSignature>, TrustError> {
        let path = self.model_sig_path(model)?;
        if !path.exists() {
            return Ok(None);
        }
        let sig = ModelSignature::read(&path)?;
        if sig.model != model {
            return Err(TrustError::BadModelSignature(format!(
                "{} holds the signature of {:?}",
                path.display(),
                sig.model
            )));
        }
        sig.verify(&self.delegations()?)?;
        Ok(Some(sig))
    }

    /// For a model with a stored signature: fails unless `recorded` (the model store's
    /// digest, None if it lacks the model) is the signed digest.
    pub fn check_model(&self, model: &str, recorded: Option<&str>) -> Result<(), TrustError> {
        if let Some(sig) = self.model_signature(model)? {
            if recorded != Some(sig.sha256.as_str()) {
                return Err(TrustError::ModelDigest {
                    model: model.to_string(),
                    pinned: sig.sha256,
                    recorded: recorded.map(str::to_string),
                });
            }
        }
        Ok(())
    }
}
