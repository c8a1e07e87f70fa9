//! Building guest crates into Wasm components, the one way both the bundled guests (the
//! `edgenlu-guest-artifacts` build script) and a skill author's project (`edgenlu skill
//! build`) are built:
//!
//! 1. [`provision_toolchain`]: a Rust toolchain that targets `wasm32-unknown-unknown`, from
//!    the project's script (embedded here, so the `edgenlu` binary carries it): rustup's target
//!    when it is installed, else Debian's `rustc-web` unpacked into a cache folder, building
//!    `std` with `-Zbuild-std`.
//! 2. [`CargoBuild::run`]: cargo for that target, in release, with the toolchain's settings and
//!    none of an enclosing cargo's.
//! 3. [`componentize`]: the core module with its embedded WIT type information becomes a
//!    component (`wit-component`), validated.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The toolchain script, `scripts/wasm-toolchain.sh`.
pub const TOOLCHAIN_SCRIPT: &str = include_str!("../../../scripts/wasm-toolchain.sh");

/// The guests' target.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Why a guest could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A program could not be started.
    #[error("could not run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The toolchain script failed; its error output says why.
    #[error("no Rust toolchain for {TARGET} could be provided:\n{stderr}")]
    Toolchain {
        /// The script's error output.
        stderr: String,
    },
    /// cargo failed; its output (passed through to the caller's stderr) says why.
    #[error("cargo build for {TARGET} failed ({status})")]
    Cargo {
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// The module cargo should have written is not there.
    #[error("{path} was not built")]
    Missing {
        /// Where it was expected.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The module is not a valid component once encoded (e.g. it imports something no world
    /// of the WIT declares).
    #[error("{module} could not be made a component: {reason}")]
    Componentize {
        /// The module's name.
        module: String,
        /// wit-component's explanation.
        reason: String,
    },
}

/// Runs the toolchain script (idempotent: quick once provisioned) and returns the env file it
/// wrote: `source` it before cargo ([`CargoBuild::run`] does).
pub fn provision_toolchain() -> Result<PathBuf, BuildError> {
    let output = Command::new("bash")
        .arg("-c")
        .arg(TOOLCHAIN_SCRIPT)
        .arg("wasm-toolchain.sh")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BuildError::Spawn {
            program: "bash".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(BuildError::Toolchain {
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}

/// One `cargo build --release --target wasm32-unknown-unknown`.
pub struct CargoBuild<'a> {
    /// The workspace's or package's `Cargo.toml`.
    pub manifest: &'a Path,
    /// Where cargo builds (the modules land in `<target_dir>/wasm32-unknown-unknown/release`).
    pub target_dir: &'a Path,
    /// Packages to build (`-p`); all of the manifest's when empty.
    pub packages: &'a [&'a str],
    /// Build with the lock file as it is (`--locked`).
    pub locked: bool,
}

impl CargoBuild<'_> {
    /// Runs cargo with the toolchain of `env_file`; its output goes to this process's stderr.
    pub fn run(&self, env_file: &Path) -> Result<(), BuildError> {
        let mut script = format!(
            "exec 1>&2; source {env:?} && exec \"${{CARGO:-cargo}}\" build --release \
             --target {TARGET} $WASM_CARGO_ARGS --manifest-path {manifest:?} --target-dir {target:?}",
            env = env_file,
            manifest = self.manifest,
            target = self.target_dir,
        );
        if self.locked {
            script.push_str(" --locked");
        }
        for p in self.packages {
            script.push_str(&format!(" -p {p}"));
        }
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).stdin(Stdio::null());
        clear_outer_build_settings(&mut cmd);
        let status = cmd.status().map_err(|source| BuildError::Spawn {
            program: "cargo".into(),
            source,
        })?;
        if !status.success() {
            return Err(BuildError::Cargo { status });
        }
        Ok(())
    }

    /// The core module cargo wrote for library `lib` (a crate name, `-` or `_`).
    pub fn module_path(&self, lib: &str) -> PathBuf {
        self.target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", lib.replace('-', "_")))
    }
}

/// Settings an enclosing cargo (a build script's, or the user's environment) would pass on:
/// they describe the host's target, not the guest's. `CARGO` stays, to run the same cargo.
fn clear_outer_build_settings(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS" {
            cmd.env_remove(&key);
        }
    }
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
    ] {
        cmd.env_remove(key);
    }
}

/// Reads the core module at `path` and encodes it as a validated component.
pub fn componentize_file(path: &Path) -> Result<Vec<u8>, BuildError> {
    let module = std::fs::read(path).map_err(|source| BuildError::Missing {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    componentize(&name, &module)
}

/// Encodes core module `module` (named `name` in errors) as a validated component.
pub fn componentize(name: &str, module: &[u8]) -> Result<Vec<u8>, BuildError> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|enc| enc.validate(true).encode())
        .map_err(|e| BuildError::Componentize {
            module: name.to_string(),
            reason: format!("{e:?}"),
        })
}
