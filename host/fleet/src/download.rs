//! Fetching one blob into a temporary file of the store: streamed while hashed, never past
//! the size the manifest declares, resumed with an HTTP range request when the connection
//! drops (a bounded number of times, with backoff), and checked against its digest. The file
//! is removed unless the caller takes it, so no path leaves a partial blob behind.

use super::artifact::sha256_of;
use super::client::RegistryClient;
use super::{io_err, FleetError};
use futures_util::StreamExt;
use oci_client::client::BlobResponse;
use oci_client::manifest::OciDescriptor;
use sha2::{Digest, Sha256};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Requests made for one blob before giving up (the first and the resumptions).
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// Wait before the first resumption; doubled for each one after it.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A downloaded, verified blob in a temporary file, removed when dropped (a caller that
/// moves the file into the store leaves nothing to remove).
#[derive(Debug)]
pub(crate) struct TempBlob {
    path: PathBuf,
}

impl TempBlob {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its bytes.
    pub fn read(&self) -> Result<Vec<u8>, FleetError> {
        std::fs::read(&self.path).map_err(io_err(&self.path))
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `<dir>/oci-<digest prefix>-<n>.tmp<pid>`: named as the store names its temporaries, so one
/// a killed process left is removed when a store is next opened.
fn temp_path(dir: &Path, sha256: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        "oci-{}-{}.tmp{}",
        &sha256[..16],
        N.fetch_add(1, Ordering::Relaxed),
        std::process::id()
    ))
}

/// The file being written and how far it got.
struct Partial {
    file: std::fs::File,
    hasher: Sha256,
    received: u64,
}

impl Partial {
    /// Starts again from the first byte (the registry answered a range request in full).
    fn restart(&mut self, path: &Path) -> Result<(), FleetError> {
        self.file.set_len(0).map_err(io_err(path))?;
        self.file.rewind().map_err(io_err(path))?;
        self.hasher = Sha256::new();
        self.received = 0;
        Ok(())
    }
}

/// Downloads blob `desc` of `client`'s artifact into a temporary file in `dir`, refusing a
/// declared size above `limit` (`what` names the blob in that error).
pub(crate) fn fetch_blob(
    client: &RegistryClient,
    desc: &OciDescriptor,
    dir: &Path,
    limit: u64,
    what: &'static str,
) -> Result<TempBlob, FleetError> {
    let digest = desc.digest.clone();
    let expected = sha256_of(&digest)
        .ok_or_else(|| FleetError::NotAnArtifact {
            reference: client.target().whole(),
            reason: format!("blob digest {digest:?} is not sha256:<64 lowercase hex digits>"),
        })?
        .to_string();
    let declared = u64::try_from(desc.size)
        .ok()
        .filter(|&s| s <= limit)
        .ok_or(FleetError::DeclaredTooLarge {
            digest: digest.clone(),
            what,
            declared: desc.size,
            limit,
        })?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let blob = TempBlob {
        path: temp_path(dir, &expected),
    };
    let path = blob.path().to_owned();
    let file = std::fs::File::create(&path).map_err(io_err(&path))?;
    let mut partial = Partial {
        file,
        hasher: Sha256::new(),
        received: 0,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let why = match client.block_on(receive(client, &digest, declared, &path, &mut partial)) {
            Ok(()) if partial.received == declared => break,
            Ok(()) => "the response ended early".to_string(),
            Err(Transfer::Fatal(e)) => return Err(e),
            Err(Transfer::Broken(why)) => why,
        };
        if attempts >= MAX_ATTEMPTS {
            return Err(FleetError::Interrupted {
                digest,
                received: partial.received,
                declared,
                attempts,
                last_error: why,
            });
        }
        tracing::warn!(
            "blob {digest}: the transfer broke off at {} of {declared} bytes ({why}); resuming",
            partial.received
        );
        std::thread::sleep(FIRST_BACKOFF * (1 << (attempts - 1).min(6)));
    }
    let actual = edgenlu_trust::to_hex(&partial.hasher.finalize_reset());
    if actual != expected {
        return Err(FleetError::DigestMismatch {
            expected: digest,
            actual,
        });
    }
    partial.file.sync_all().map_err(io_err(&path))?;
    Ok(blob)
}

/// How one request for a blob ended badly.
enum Transfer {
    /// The connection failed or dropped: worth resuming.
    Broken(String),
    /// Anything else: the registry refused, sent too much, or the disk failed.
    Fatal(FleetError),
}

/// One request for the rest of the blob (from `partial.received`), appended to the file.
async fn receive(
    client: &RegistryClient,
    digest: &str,
    declared: u64,
    path: &Path,
    partial: &mut Partial,
) -> Result<(), Transfer> {
    let (oci, reference) = client.oci();
    let response = oci
        .pull_blob_stream_partial(reference, &digest, partial.received, None)
        .await
        .map_err(|e| match e {
            oci_client::errors::OciDistributionError::RequestError(e) => {
                Transfer::Broken(e.to_string())
            }
            e => Transfer::Fatal(client.registry_err(e)),
        })?;
    let mut stream = match response {
        BlobResponse::Partial(stream) => stream,
        BlobResponse::Full(stream) => {
            partial.restart(path).map_err(Transfer::Fatal)?;
            stream
        }
    };
    let too_large = |received: u64, length: u64| {
        (received.saturating_add(length) > declared).then(|| {
            Transfer::Fatal(FleetError::TooLarge {
                digest: digest.to_string(),
                declared,
            })
        })
    };
    let received = partial.received;
    if let Some(refused) = stream.content_length.and_then(|n| too_large(received, n)) {
        return Err(refused);
    }
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Transfer::Broken(e.to_string()))?;
        if let Some(refused) = too_large(partial.received, chunk.len() as u64) {
            return Err(refused);
        }
        partial
            .file
            .write_all(&chunk)
            .map_err(|e| Transfer::Fatal(io_err(path)(e)))?;
        partial.hasher.update(&chunk);
        partial.received += chunk.len() as u64;
    }
    Ok(())
}
