//! Ed25519 keys and their files. A key is named by its id: the first 8 bytes of the SHA-256
//! of its public key, in hex. Secret keys live in files only the owner can read.

use super::{from_hex, io_err, to_hex, TrustError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Bytes of a key id.
pub const KEY_ID_LEN: usize = 8;

/// The id of a public key: SHA-256 of its 32 bytes, first [`KEY_ID_LEN`] bytes.
pub fn key_id(key: &VerifyingKey) -> [u8; KEY_ID_LEN] {
    let d = Sha256::digest(key.as_bytes());
    d[..KEY_ID_LEN].try_into().expect("digest is 32 bytes")
}

/// The id of a public key as lowercase hex (how tools and errors show it).
pub fn key_id_hex(key: &VerifyingKey) -> String {
    to_hex(&key_id(key))
}

/// A public key file (`NAME.pub`): who it is, and the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyFile {
    /// Free-form name (a vendor or publisher), for people.
    pub name: String,
    /// The key id, hex; checked against `key` when read.
    pub key_id: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
}

/// A secret key file (`NAME.key`), mode 0600.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile {
    name: String,
    key_id: String,
    /// The 32-byte ed25519 seed, hex.
    secret_seed: String,
}

/// A named signing key.
pub struct NamedKey {
    /// Its name.
    pub name: String,
    /// The key.
    pub key: SigningKey,
}

impl PublicKeyFile {
    /// The file describing `key` under `name`.
    pub fn new(name: &str, key: &VerifyingKey) -> PublicKeyFile {
        PublicKeyFile {
            name: name.to_string(),
            key_id: key_id_hex(key),
            public_key: to_hex(key.as_bytes()),
        }
    }

    /// The key, after checking that it decodes and matches its id.
    pub fn key(&self) -> Result<VerifyingKey, TrustError> {
        parse_public_key(&self.public_key, &self.key_id)
    }

    /// Reads and checks a public key file.
    pub fn read(path: &Path) -> Result<PublicKeyFile, TrustError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let f: PublicKeyFile = serde_json::from_str(&text)
            .map_err(|e| TrustError::BadKey(format!("{}: {e}", path.display())))?;
        f.key()?;
        Ok(f)
    }
}

/// Decodes a hex public key and checks it against `expected_id` (hex).
pub(crate) fn parse_public_key(hex: &str, expected_id: &str) -> Result<VerifyingKey, TrustError> {
    let bytes: [u8; 32] = from_hex(hex)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TrustError::BadKey("public key is not 32 bytes of lowercase hex".into()))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|e| TrustError::BadKey(format!("not an ed25519 public key: {e}")))?;
    if key_id_hex(&key) != expected_id {
        return Err(TrustError::BadKey(format!(
            "key id {expected_id} does not match the key (its id is {})",
            key_id_hex(&key)
        )));
    }
    Ok(key)
}

/// A fresh key from the operating system's random source.
pub fn generate() -> Result<SigningKey, TrustError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| TrustError::BadKey(format!("no random source: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `NAME.key` (mode 0600) and `NAME.pub` into `dir`; refuses to overwrite a key.
pub fn write_keypair(dir: &Path, name: &str, key: &SigningKey) -> Result<(), TrustError> {
    use std::io::Write;
    // The name becomes two file names inside `dir`: no separators, no `..`.
    edgenlu_models::store::validate_name(name)
        .map_err(|e| TrustError::BadKey(format!("key name: {e}")))?;
    let secret = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let body = SecretKeyFile {
        name: name.to_string(),
        key_id: key_id_hex(&key.verifying_key()),
        secret_seed: to_hex(key.as_bytes()),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&secret).map_err(io_err(&secret))?;
    f.write_all(&serde_json::to_vec_pretty(&body).expect("serializable"))
        .and_then(|_| f.sync_all())
        .map_err(io_err(&secret))?;
    let pubfile = PublicKeyFile::new(name, &key.verifying_key());
    let json = serde_json::to_vec_pretty(&pubfile).expect("serializable");
    super::write_atomic(&public, &json)
}

/// Reads a secret key file written by [`write_keypair`].
pub fn read_secret(path: &Path) -> Result<NamedKey, TrustError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let f: SecretKeyFile = serde_json::from_str(&text)
        .map_err(|e| TrustError::BadKey(format!("{}: {e}", path.display())))?;
    let seed: [u8; 32] = from_hex(&f.secret_seed)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            TrustError::BadKey(format!("{}: seed is not 32 bytes of hex", path.display()))
        })?;
    let key = SigningKey::from_bytes(&seed);
    if key_id_hex(&key.verifying_key()) != f.key_id {
        return Err(TrustError::BadKey(format!(
            "{}: key id does not match the key",
            path.display()
        )));
    }
    Ok(NamedKey { name: f.name, key })
}
