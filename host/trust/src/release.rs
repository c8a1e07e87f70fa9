//! Release manifests: the files of a release build (binaries and packages), each with its size
//! and SHA-256, signed by the vendor's key. Whoever copies a release to a device or a mirror
//! checks the signature with the vendor's public key, then every file against its digest,
//! before running anything.

use super::keys::{self, PublicKeyFile};
use super::{from_hex, io_err, to_hex, write_atomic, TrustError};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::path::{Path, PathBuf};

/// Domain separation: a release signature never verifies as any other kind.
const RELEASE_CONTEXT: &[u8] = b"edgenlu release manifest v1\n";

/// The largest release manifest read (it lists a handful of files).
pub const MAX_RELEASE_MANIFEST_BYTES: u64 = 64 * 1024;

/// What a release contains.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// The release's version (the CLI's `--version`).
    pub version: String,
    /// The source it was built from (a git commit), for people.
    pub commit: String,
    /// When it was made, unix seconds.
    pub created: u64,
    /// Its files, by name.
    pub files: Vec<ReleaseFile>,
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFile {
    /// The file's name, beside the manifest (no directories).
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// A release manifest with the signature over it (`release.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRelease {
    /// What is signed.
    pub manifest: ReleaseManifest,
    /// The signing key's id, hex.
    pub key_id: String,
    /// Ed25519 signature over the context and the manifest's JSON, hex.
    pub signature: String,
}

impl ReleaseFile {
    /// Describes the file at `path` (its name, size and digest).
    pub fn of(path: &Path) -> Result<ReleaseFile, TrustError> {
        let name = file_name(path)?;
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        let (sha256, bytes) = edgenlu_models::store::sha256_hex(file).map_err(io_err(path))?;
        Ok(ReleaseFile {
            name,
            bytes,
            sha256,
        })
    }
}

fn file_name(path: &Path) -> Result<String, TrustError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| TrustError::BadRelease(format!("{}: not a file name", path.display())))
}

/// The bytes a release signature covers: the context, then the manifest as compact JSON (the
/// verifier serializes the parsed manifest again, so whitespace in the file does not matter and
/// unknown fields are refused when parsing).
fn message(manifest: &ReleaseManifest) -> Vec<u8> {
    let mut m = RELEASE_CONTEXT.to_vec();
    m.extend_from_slice(&serde_json::to_vec(manifest).expect("serializable"));
    m
}

impl ReleaseManifest {
    /// A manifest of `files`, each named by its file name (names must be distinct).
    pub fn of_files(
        version: &str,
        commit: &str,
        created: u64,
        files: &[PathBuf],
    ) -> Result<ReleaseManifest, TrustError> {
        let files = files
            .iter()
            .map(|p| ReleaseFile::of(p))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, f) in files.iter().enumerate() {
            if files[..i].iter().any(|g| g.name == f.name) {
                return Err(TrustError::BadRelease(format!(
                    "two files are named {:?}",
                    f.name
                )));
            }
        }
        Ok(ReleaseManifest {
            version: version.to_string(),
            commit: commit.to_string(),
            created,
            files,
        })
    }

    /// Signs the manifest with the vendor's key.
    pub fn sign(self, key: &SigningKey) -> SignedRelease {
        let signature = to_hex(&key.sign(&message(&self)).to_bytes());
        SignedRelease {
            key_id: keys::key_id_hex(&key.verifying_key()),
            signature,
            manifest: self,
        }
    }
}

impl SignedRelease {
    /// Reads a `release.json` (bounded in size); nothing is checked yet.
    pub fn read(path: &Path) -> Result<SignedRelease, TrustError> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                f.take(MAX_RELEASE_MANIFEST_BYTES + 1)
                    .read_to_end(&mut bytes)
            })
            .map_err(io_err(path))?;
        if bytes.len() as u64 > MAX_RELEASE_MANIFEST_BYTES {
            return Err(TrustError::BadRelease(format!(
                "{}: larger than {MAX_RELEASE_MANIFEST_BYTES} bytes",
                path.display()
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| TrustError::BadRelease(format!("{}: {e}", path.display())))
    }

    /// Writes it crash-safely as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), TrustError> {
        write_atomic(
            path,
            &serde_json::to_vec_pretty(self).expect("serializable"),
        )
    }

    /// Checks the signature with the vendor's public key and returns the manifest it covers.
    pub fn verify(&self, vendor: &PublicKeyFile) -> Result<&ReleaseManifest, TrustError> {
        let key: VerifyingKey = vendor.key()?;
        if self.key_id != vendor.key_id {
            return Err(TrustError::UnknownKey {
                key_id: self.key_id.clone(),
            });
        }
        let sig: [u8; 64] = from_hex(&self.signature)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                TrustError::BadRelease("signature is not 64 bytes of lowercase hex".into())
            })?;
        key.verify_strict(&message(&self.manifest), &Signature::from_bytes(&sig))
            .map_err(|_| TrustError::BadSignature {
                key_id: self.key_id.clone(),
            })?;
        Ok(&self.manifest)
    }

    /// Checks the signature, then every listed file in `dir` against its size and digest.
    pub fn verify_files(&self, vendor: &PublicKeyFile, dir: &Path) -> Result<(), TrustError> {
        for expected in &self.verify(vendor)?.files {
            // A name with a separator would check a file outside the release's folder.
            if expected.name.contains('/') || expected.name.starts_with('.') {
                return Err(TrustError::BadRelease(format!(
                    "file name {:?} is not a plain name",
                    expected.name
                )));
            }
            let actual = ReleaseFile::of(&dir.join(&expected.name))?;
            if actual != *expected {
                return Err(TrustError::ReleaseFileMismatch {
                    name: expected.name.clone(),
                    expected: expected.sha256.clone(),
                    actual: actual.sha256,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(dir: &Path) -> (SigningKey, PublicKeyFile, SignedRelease) {
        let key = keys::generate().unwrap();
        let vendor = PublicKeyFile::new("vendor", &key.verifying_key());
        let a = dir.join("edgenlu-x86_64");
        let b = dir.join("edgenlu_0.1.0_amd64.deb");
        std::fs::write(&a, b"binary").unwrap();
        std::fs::write(&b, b"package").unwrap();
        let signed = ReleaseManifest::of_files("0.1.0", "abc", 1, &[a, b])
            .unwrap()
            .sign(&key);
        (key, vendor, signed)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("edgenlu-release-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_signed_release_verifies_with_its_files_and_round_trips() {
        let dir = temp_dir("ok");
        let (_, vendor, signed) = release(&dir);
        signed.write(&dir.join("release.json")).unwrap();
        let read = SignedRelease::read(&dir.join("release.json")).unwrap();
        assert_eq!(read, signed);
        read.verify_files(&vendor, &dir).unwrap();
        assert_eq!(read.manifest.files[0].bytes, 6);
    }

    #[test]
    fn a_changed_file_an_edited_manifest_or_another_key_is_refused() {
        let dir = temp_dir("bad");
        let (_, vendor, signed) = release(&dir);
        std::fs::write(dir.join("edgenlu-x86_64"), b"binarz").unwrap();
        assert!(matches!(
            signed.verify_files(&vendor, &dir),
            Err(TrustError::ReleaseFileMismatch { name, .. }) if name == "edgenlu-x86_64"
        ));
        let mut edited = signed.clone();
        edited.manifest.files[0].sha256 = "00".repeat(32);
        assert!(matches!(
            edited.verify(&vendor),
            Err(TrustError::BadSignature { .. })
        ));
        let other = keys::generate().unwrap();
        let stranger = PublicKeyFile::new("other", &other.verifying_key());
        assert!(matches!(
            signed.verify(&stranger),
            Err(TrustError::UnknownKey { .. })
        ));
        let mut escaping = signed.clone();
        escaping.manifest.files[0].name = "../etc/passwd".into();
        let escaping = escaping.manifest.sign(&other);
        assert!(matches!(
            escaping.verify_files(&stranger, &dir),
            Err(TrustError::BadRelease(_))
        ));
    }
}
