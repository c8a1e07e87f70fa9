//! The development key: a root key and a publisher key derived from fixed, public seeds, so
//! that the bundled skills can be signed the same way on every build and every machine.
//! Anyone can sign with them, which is the point: a device trusts them only when its owner
//! asks (`edgenlu trust add --dev`), never by default.

use super::keys::PublicKeyFile;
use super::manifest::{Capability, Manifest, Probe, TokenizerRef, FORMAT};
use super::store::{Delegation, SignedDelegation, TrustStore};
use super::{skillfile, TrustError};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The publisher name the development key signs as.
pub const DEV_PUBLISHER: &str = "edgenlu-dev";

fn derive(label: &str) -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(format!(
        "edgenlu development key, public, never trust in production: {label}"
    ))
    .into();
    SigningKey::from_bytes(&seed)
}

/// The development root key.
pub fn root_key() -> SigningKey {
    derive("root")
}

/// The development publisher key (what signs the bundled skills).
pub fn publisher_key() -> SigningKey {
    derive("publisher")
}

/// The development root, as a pinnable public key file.
pub fn root_public() -> PublicKeyFile {
    PublicKeyFile::new("edgenlu-dev-root", &root_key().verifying_key())
}

/// The development root's delegation of the development publisher: every capability, every
/// model, valid for `days` from `now`.
pub fn delegation(now: u64, days: u64) -> Result<SignedDelegation, TrustError> {
    let p = PublicKeyFile::new(DEV_PUBLISHER, &publisher_key().verifying_key());
    Delegation {
        publisher: DEV_PUBLISHER.into(),
        key_id: p.key_id,
        public_key: p.public_key,
        capabilities: vec![Capability::Uplink, Capability::Generate],
        models: vec!["*".into()],
        issued: now,
        expires: crate::days_after(now, days),
    }
    .sign(&root_key())
}

/// Pins the development root and stores its delegation (what `trust add --dev` does).
pub fn trust_dev(trust: &TrustStore, now: u64) -> Result<(), TrustError> {
    trust.add_root(&root_public())?;
    trust.add_delegation(&delegation(now, 365)?)?;
    Ok(())
}

/// The manifest of the bundled `intents` skill over `encoder`, answering from datastore
/// `index`, with health probes taken from SNIPS intents.
pub fn intents_manifest(encoder: &str, index: &str, version: u64) -> Manifest {
    let probe = |text: &str, intent: &str| Probe {
        text: text.into(),
        intent: intent.into(),
    };
    Manifest {
        format: FORMAT,
        name: "intents".into(),
        kind: Default::default(),
        version,
        publisher: DEV_PUBLISHER.into(),
        expires: None,
        models: vec![encoder.into(), index.into()],
        model_sha256: BTreeMap::new(),
        tokenizer: Some(TokenizerRef {
            component: "wordpiece".into(),
            model: encoder.into(),
        }),
        config: [
            ("encoder".to_string(), encoder.to_string()),
            ("index".to_string(), index.to_string()),
        ]
        .into(),
        capabilities: vec![],
        budgets: Default::default(),
        health: vec![
            probe("play music by the beatles on spotify", "PlayMusic"),
            probe("what is the weather forecast for london", "GetWeather"),
            probe(
                "book a table for two at an italian restaurant",
                "BookRestaurant",
            ),
        ],
    }
}

/// `component` with `manifest`, signed with the development publisher key: how the build signs
/// the bundled skill, and how `edgenlu sign --dev-intents` signs it again with other options.
pub fn sign(component: &[u8], manifest: &Manifest) -> Result<Vec<u8>, TrustError> {
    skillfile::sign(component, &manifest.to_bytes()?, &publisher_key())
}
