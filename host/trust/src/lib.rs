//! Trust and over-the-air updates: signed skill files, the device's trust store, and the
//! on-device skill store with atomic install, rollback and health checks.
//!
//! The chain a skill must pass before any of its bytes is used:
//! 1. [`skillfile`]: the file frames as a Wasm component whose last section is exactly one
//!    `edgenlu-signature` and which carries exactly one `edgenlu-manifest`;
//! 2. [`store::TrustStore::verify`]: the signature's key is a publisher key that a pinned root
//!    delegated, the ed25519 signature over the SHA-256 of every other byte checks, the
//!    delegation has not expired, and it allows every capability and model the manifest asks
//!    for; the version is not lower than the highest this device ever accepted;
//! 3. [`manifest`]: only then is the manifest parsed and validated, and it (not the caller)
//!    decides the skill's grants.
//!
//! [`skills::SkillStore`] installs verified files crash-safely and keeps the previous version;
//! the health check that decides whether an install stays is the runtime's
//! ([`skills::HealthCheck`]). This crate never runs Wasm: it has no runtime dependency, so a
//! build script or a signing tool can use it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dev;
pub mod holders;
pub mod keys;
pub mod manifest;
pub mod models;
pub mod release;
pub mod scope;
pub mod skillfile;
pub mod skills;
pub mod store;

use manifest::Capability;
use scope::{DelegationScope, ModelNamedBy};
use std::path::PathBuf;

/// Why a skill file, key, delegation or store operation was refused. Each refusal has its own
/// variant so that tools and tests can tell a tampered file from a stale or unauthorised one.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file does not frame as a Wasm component (bad preamble, truncated section, ...).
    #[error("not a valid skill file: {0}")]
    Malformed(String),
    /// The file carries no `edgenlu-signature` section: unsigned, or the signature was stripped.
    #[error("the skill file is not signed (no edgenlu-signature section)")]
    Unsigned,
    /// More than one `edgenlu-signature` section.
    #[error("the skill file has {0} edgenlu-signature sections; exactly one is allowed")]
    DuplicateSignature(usize),
    /// The signature section is not the file's last section, so bytes follow it unsigned.
    #[error("the edgenlu-signature section must be the last section of the file")]
    SignatureNotLast,
    /// The signature section's payload is not a version-1 signature record.
    #[error("malformed edgenlu-signature section: {0}")]
    BadSignatureEncoding(String),
    /// The file carries no `edgenlu-manifest` section.
    #[error("the skill file has no edgenlu-manifest section")]
    MissingManifest,
    /// More than one `edgenlu-manifest` section.
    #[error("the skill file has {0} edgenlu-manifest sections; exactly one is allowed")]
    DuplicateManifest(usize),
    /// The manifest is larger than the cap.
    #[error("the manifest is {size} bytes; at most {limit} are allowed")]
    ManifestTooLarge {
        /// Its size.
        size: usize,
        /// The cap ([`manifest::MAX_MANIFEST_BYTES`]).
        limit: usize,
    },
    /// The manifest is not valid JSON of the expected shape, or breaks a rule.
    #[error("invalid manifest: {0}")]
    BadManifest(String),
    /// The signing key is not a publisher key known to this device.
    #[error("unknown signing key {key_id}: no delegation in the trust store names it")]
    UnknownKey {
        /// The key id from the signature section.
        key_id: String,
    },
    /// The signature does not check: some signed byte was changed, or a different key signed.
    #[error("bad signature by key {key_id}: the file was modified after signing")]
    BadSignature {
        /// The key id from the signature section.
        key_id: String,
    },
    /// The manifest's publisher is not the one the signing key was delegated to.
    #[error("the manifest names publisher {manifest:?} but key {key_id} belongs to {delegated:?}")]
    PublisherMismatch {
        /// The publisher the manifest claims.
        manifest: String,
        /// The publisher the key was delegated to.
        delegated: String,
        /// The signing key.
        key_id: String,
    },
    /// The publisher's delegation has expired (a freeze attack, or a stale signer).
    #[error("the delegation of publisher {publisher:?} expired at {expired_at} (unix seconds; now {now})")]
    DelegationExpired {
        /// The publisher.
        publisher: String,
        /// Its expiry, unix seconds.
        expired_at: u64,
        /// The time checked against.
        now: u64,
    },
    /// The release's own expiry (manifest `expires`) has passed.
    #[error("{name} version {version} expired at {expired_at} (unix seconds; now {now}): ask the publisher for a current release")]
    ReleaseExpired {
        /// The skill.
        name: String,
        /// Its version.
        version: u64,
        /// The manifest's expiry.
        expired_at: u64,
        /// The time checked against.
        now: u64,
    },
    /// The manifest asks for capabilities the publisher may not grant.
    #[error("{}", scope::capabilities_not_delegated(.capabilities, .imports, .scope))]
    CapabilityNotDelegated {
        /// Every capability the manifest asks for that the delegation does not allow.
        capabilities: Vec<Capability>,
        /// The component's imports that need one of them (`interface` or `interface#item`).
        imports: Vec<String>,
        /// What the publisher's delegation allows (boxed: the error stays small).
        scope: Box<DelegationScope>,
    },
    /// The component imports interfaces (or items) that need a capability its manifest does
    /// not ask for (so its publisher was never checked for it).
    #[error("{}", scope::capability_not_declared(*.capability, .imports, .scope))]
    CapabilityNotDeclared {
        /// The capability they need.
        capability: Capability,
        /// Every import that needs it (`interface` or `interface#item`).
        imports: Vec<String>,
        /// What the publisher's delegation allows (boxed: the error stays small).
        scope: Box<DelegationScope>,
    },
    /// Models the publisher's delegation does not cover: named in a manifest, or signed by
    /// a detached model signature.
    #[error("{}", scope::models_not_granted(.models, *.named_by, .scope))]
    ModelNotGranted {
        /// Every model not covered.
        models: Vec<String>,
        /// What named them.
        named_by: ModelNamedBy,
        /// What the publisher's delegation allows (boxed: the error stays small).
        scope: Box<DelegationScope>,
    },
    /// A model the manifest pins, or a detached model signature signs, has another digest in
    /// this device's model store, or is not in it.
    #[error("model {model:?}: signed sha256 {pinned}, but the model store has {}", recorded.as_deref().unwrap_or("no such model"))]
    ModelDigest {
        /// The model.
        model: String,
        /// The digest the signed manifest names.
        pinned: String,
        /// The digest the model store recorded, if it has the model.
        recorded: Option<String>,
    },
    /// A detached model signature is invalid or does not check.
    #[error("invalid model signature: {0}")]
    BadModelSignature(String),
    /// A delegation or root key file is invalid or its root signature does not check.
    #[error("invalid delegation: {0}")]
    BadDelegation(String),
    /// A key file is invalid.
    #[error("invalid key file: {0}")]
    BadKey(String),
    /// The version is lower than the highest this device accepted (a rollback attack).
    #[error(
        "{name} version {version} is older than version {highest}, already accepted on this device"
    )]
    Rollback {
        /// The skill.
        name: String,
        /// The offered version.
        version: u64,
        /// The highest accepted version.
        highest: u64,
    },
    /// Same version number as one already accepted, but different bytes.
    #[error("{name} version {version} was already accepted with different content")]
    VersionReused {
        /// The skill.
        name: String,
        /// The version.
        version: u64,
    },
    /// No such skill is installed.
    #[error("skill {0:?} is not installed")]
    NotInstalled(String),
    /// A flow offered to the skill store, or a skill to the flow store.
    #[error("{name} is a {kind}, not a {expected}: {}", match kind { manifest::Kind::Flow => "install it as the device's flow (`edgenlu install` does)", manifest::Kind::Skill => "a skill is installed among the skills" })]
    WrongKind {
        /// The component's name.
        name: String,
        /// What its manifest says it is.
        kind: manifest::Kind,
        /// What the store holds.
        expected: manifest::Kind,
    },
    /// `rollback` asked for, but no previous version is kept.
    #[error("skill {0:?} has no previous version to roll back to")]
    NoPrevious(String),
    /// A store file (state, versions, trust) is corrupt.
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A release manifest is malformed, too large, or names a file that is not a plain name.
    #[error("invalid release manifest: {0}")]
    BadRelease(String),
    /// A file of a release differs from what the signed release manifest lists.
    #[error("{name} does not match the release manifest: SHA-256 {actual}, signed {expected}")]
    ReleaseFileMismatch {
        /// The file's name.
        name: String,
        /// The digest the manifest lists.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// A file system error (including a full disk).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Maps an io error to [`TrustError::Io`] for `path`.
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Seconds in a day, the unit expiries are given in.
pub const DAY_SECONDS: u64 = 86_400;

/// The expiry `days` days after `now` (unix seconds), saturating: a huge count means never,
/// not a time that wrapped into the past.
pub fn days_after(now: u64, days: u64) -> u64 {
    now.saturating_add(days.saturating_mul(DAY_SECONDS))
}

/// Seconds since the Unix epoch, the clock expiries are checked against.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lowercase hex only: accepting `A-F` too would let a flipped case bit in a key or
/// signature decode to the same bytes, so a modified file would still verify.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Writes `path` crash-safely (temp file, fsync, rename, fsync the directory), with the
/// model store's helper, mapping errors to [`TrustError`].
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), TrustError> {
    edgenlu_models::atomic::write_atomic(path, |w| w.write_all(bytes)).map_err(io_err(path))
}

pub(crate) use edgenlu_models::atomic::sync_dir;

/// Takes an exclusive lock on `<dir>/.lock` (released when the returned file is dropped), so
/// two processes never interleave their read-modify-write of a store's files.
pub(crate) fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, TrustError> {
    let path = dir.join(".lock");
    edgenlu_models::atomic::lock_file(&path).map_err(io_err(&path))
}
