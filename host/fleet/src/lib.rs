//! Skills and models through OCI registries (Harbor, ECR, GHCR, Zot, distribution): the
//! distribution side of a fleet.
//!
//! - [`push`]: a signed skill file as a CNCF Wasm artifact (the file unchanged, so its
//!   embedded signature travels with it), or a model as a CNCF ModelPack artifact (the GGUF
//!   file and its detached signature); media types and annotations in [`artifact`].
//! - [`pull`]: the manifest, then each blob streamed to a temporary file in the store's
//!   `tmp/` while it is hashed, resumed with an HTTP range request after a dropped connection,
//!   never longer than the manifest declares, checked against its registry digest; then handed
//!   to the same install path `edgenlu install` and `edgenlu models import` use (signature,
//!   trust rules, version floor, atomic rename). A registry proves integrity; the device's
//!   trust store proves who published.
//!
//! - [`channel`], [`cohort`], [`sync`], [`status`]: the update agent. A channel (an artifact
//!   at a tag) pins what a fleet should run and to what percentage of devices; each device
//!   decides from a stable hash of its id whether it is in an entry's cohort, pulls what it
//!   lacks, and records the outcome in `<store>/status.json`.
//!
//! The OCI client (`oci-client`) is async: [`client::RegistryClient`] owns a current-thread
//! tokio runtime and blocks on it, so callers (the CLI, later the update agent) stay
//! synchronous and the runtime library never sees tokio.

#![warn(missing_docs)]

pub mod artifact;
pub mod channel;
pub mod client;
pub mod cohort;
mod download;
pub mod pull;
pub mod push;
pub mod reference;
pub mod status;
pub mod sync;

use edgenlu_models::store::StoreError;
use edgenlu_trust::skills::InstallError;
use edgenlu_trust::TrustError;
use std::path::PathBuf;

/// Why a push or pull failed. Each refusal has its own variant, so a tool (or a test) can tell
/// a tampered blob from a truncated transfer, an unknown publisher or a rollback.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The reference does not parse as `[registry/]repository[:tag][@digest]`.
    #[error("invalid reference {reference:?}: {reason}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Docker config file holds credentials for the registry that cannot be used.
    #[error("credentials for {registry} from the Docker config file: {reason}")]
    Credentials {
        /// The registry.
        registry: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry refused a request or could not be reached (the source says which).
    #[error("registry request for {reference} failed")]
    Registry {
        /// The artifact's reference.
        reference: String,
        /// The client's error.
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// The registry's manifest is longer than any skill's or model's may be.
    #[error("the manifest of {reference} is longer than {limit} bytes; refusing it")]
    ManifestTooLarge {
        /// The artifact's reference.
        reference: String,
        /// The most accepted ([`client::MAX_MANIFEST_BYTES`]).
        limit: usize,
    },
    /// The manifest is not a skill or model artifact this device can install.
    #[error("{reference} is not an edgenlu skill or model artifact: {reason}")]
    NotAnArtifact {
        /// The artifact's reference.
        reference: String,
        /// What does not fit.
        reason: String,
    },
    /// A blob is declared larger than anything of its kind may be.
    #[error("blob {digest} is declared as {declared} bytes; a {what} may have at most {limit}")]
    DeclaredTooLarge {
        /// The blob's digest.
        digest: String,
        /// What it holds.
        what: &'static str,
        /// Its declared size.
        declared: i64,
        /// The most allowed.
        limit: u64,
    },
    /// The registry sent more bytes than the manifest declares for a blob.
    #[error(
        "blob {digest}: the registry sent more than the {declared} bytes the manifest declares"
    )]
    TooLarge {
        /// The blob's digest.
        digest: String,
        /// Its declared size.
        declared: u64,
    },
    /// A blob's bytes do not hash to its digest: it was changed in the registry or on the way.
    #[error("blob {expected}: the bytes received hash to sha256:{actual}; refusing them")]
    DigestMismatch {
        /// The digest the manifest names.
        expected: String,
        /// The SHA-256 of what was received, hex.
        actual: String,
    },
    /// A transfer kept breaking off: resumed until the attempts ran out.
    #[error("blob {digest}: the transfer broke off {attempts} times; {received} of {declared} bytes received ({last_error})")]
    Interrupted {
        /// The blob's digest.
        digest: String,
        /// Bytes received before giving up.
        received: u64,
        /// Its declared size.
        declared: u64,
        /// How many requests were made.
        attempts: u32,
        /// Why the last one ended.
        last_error: String,
    },
    /// A model's detached signature signs another file than the GGUF it travels with.
    #[error(
        "the signature of model {model:?} signs sha256 {signed}, but the GGUF is sha256 {file}"
    )]
    SignatureMismatch {
        /// The model.
        model: String,
        /// The digest the signature signs.
        signed: String,
        /// The GGUF's digest.
        file: String,
    },
    /// A model in the store has no detached signature to push with it.
    #[error("model {0:?} has no signature in the trust store: give one with --signature (edgenlu sign-model makes it)")]
    UnsignedModel(String),
    /// The trust store refused (a model's signature), or could not be read.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The skill store refused the skill (signature, trust rules, version floor) or its health
    /// check failed and it was rolled back.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The model store refused the model (an entry of that name, held, not a GGUF, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A channel's layer is not a valid channel.
    #[error("channel {reference}: {reason}")]
    BadChannel {
        /// The channel's reference.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The channel could not be read (after the retries): the device kept what it had.
    #[error("channel {reference} could not be read; the device keeps what it has")]
    ChannelUnavailable {
        /// The channel's reference.
        reference: String,
        /// Why.
        source: Box<FleetError>,
    },
    /// A device id that is not 1–128 ASCII letters, digits, `-`, `_` or `.` (not first).
    #[error("{}: device id {id:?} is not 1-128 ASCII letters, digits, '-', '_' or '.' (an OCI tag: '-' and '.' not first)", path.display())]
    BadDeviceId {
        /// The device-id file.
        path: PathBuf,
        /// The id (its first 64 characters).
        id: String,
    },
    /// The status record does not parse.
    #[error("{}: not a status record: {reason}", path.display())]
    BadStatus {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// The client's tokio runtime could not be started.
    #[error("starting the registry client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl FleetError {
    /// The trust refusal behind this error, if it is one (from a skill install or a model
    /// signature): how a caller tells an unknown key or a rollback from other failures.
    pub fn trust_error(&self) -> Option<&TrustError> {
        match self {
            FleetError::Trust(e) | FleetError::Install(InstallError::Refused(e)) => Some(e),
            _ => None,
        }
    }
}

/// Maps an io error to [`FleetError::Io`] for `path`.
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::Io {
        path: path.to_owned(),
        source,
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    edgenlu_trust::to_hex(&sha2::Sha256::digest(bytes))
}
