//! `edgenlu release`: the signed manifest of a release build (`scripts/release.sh` writes one;
//! whoever installs a release checks it before running anything).

use anyhow::{Context, Result};
use clap::Subcommand;
use edgenlu_trust::keys::{self, PublicKeyFile};
use edgenlu_trust::release::{ReleaseManifest, SignedRelease};
use std::path::PathBuf;

/// Release manifests.
#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Write a signed release manifest listing FILES with their sizes and SHA-256 digests.
    ///
    /// Example: edgenlu release sign --key keys/acme.key --version 0.1.0 -o dist/release.json dist/edgenlu-* dist/*.deb
    Sign {
        /// The files of the release (they are named by their file names).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The vendor's secret key file (`edgenlu keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The release's version.
        #[arg(long)]
        version: String,
        /// The source it was built from (e.g. a git commit).
        #[arg(long, default_value = "")]
        commit: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check a release manifest's signature with the vendor's public key, then every file it
    /// lists (beside it) against its size and SHA-256. Fails on the first difference.
    ///
    /// Example: edgenlu release verify dist/release.json --key acme.pub
    Verify {
        /// The release manifest.
        manifest: PathBuf,
        /// The vendor's public key file.
        #[arg(long)]
        key: PathBuf,
    },
}

/// Runs a release command.
pub fn run(cmd: &ReleaseCommand) -> Result<()> {
    match cmd {
        ReleaseCommand::Sign {
            files,
            key,
            version,
            commit,
            output,
        } => {
            let key = keys::read_secret(key)?;
            let manifest =
                ReleaseManifest::of_files(version, commit, edgenlu_trust::unix_now(), files)?;
            let signed = manifest.sign(&key.key);
            signed.write(output)?;
            for f in &signed.manifest.files {
                println!("{}  {}  {} bytes", f.sha256, f.name, f.bytes);
            }
            println!(
                "signed {} ({} files) with key {}",
                output.display(),
                signed.manifest.files.len(),
                signed.key_id
            );
        }
        ReleaseCommand::Verify { manifest, key } => {
            let vendor = PublicKeyFile::read(key)?;
            let signed = SignedRelease::read(manifest)?;
            let dir = manifest
                .parent()
                .map(PathBuf::from)
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("."));
            signed
                .verify_files(&vendor, &dir)
                .with_context(|| format!("checking {}", manifest.display()))?;
            println!(
                "release {} ({}): {} files match, signed by {} ({})",
                signed.manifest.version,
                signed.manifest.commit,
                signed.manifest.files.len(),
                vendor.name,
                signed.key_id
            );
        }
    }
    Ok(())
}
