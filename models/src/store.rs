//! The on-device model store: `<root>/models/<name>.gguf`, with `<root>/index.json` recording
//! each model's SHA-256 digest, size and source. Models are opened by name only (never a
//! path), and a model's digest is checked against the index before it is mapped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::gguf::{GgufError, GgufFile};

/// Longest model name.
const MAX_NAME_LEN: usize = 64;

/// Why the store could not resolve, record or open a model.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The name is not a valid store name.
    #[error("invalid model name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No model of that name is in the store (or it is not recorded in the index).
    #[error("model {0:?} is not in the store")]
    NotFound(String),
    /// The file's digest differs from the one recorded: it was modified or corrupted.
    #[error(
        "model {name:?} does not match its recorded digest (expected {expected}, found {actual})"
    )]
    DigestMismatch {
        /// The model.
        name: String,
        /// The digest in index.json.
        expected: String,
        /// The digest of the file.
        actual: String,
    },
    /// No root could be determined: none of `EDGENLU_HOME`, `XDG_DATA_HOME`, `HOME` is set.
    #[error("no model store location: set EDGENLU_HOME (or HOME)")]
    NoRoot,
    /// index.json exists but is not valid.
    #[error("{}: corrupt store index: {reason}", path.display())]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// A file system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The model file is not a valid GGUF file.
    #[error("model {name:?}: {source}")]
    Gguf {
        /// The model.
        name: String,
        /// What is wrong with the file.
        source: GgufError,
    },
}

/// One recorded model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreEntry {
    /// The store name, e.g. `all-minilm-l6-v2.q8_0`.
    pub name: String,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// Where it came from (free text, e.g. the import command or PyPI package).
    pub source: String,
}

/// index.json on disk.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Index {
    models: BTreeMap<String, IndexRecord>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IndexRecord {
    sha256: String,
    size: u64,
    source: String,
}

/// A model store rooted at a directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks a store name: `[a-z0-9][a-z0-9._-]*`, at most 64 bytes, no `..`. Names are
/// file stems, so this is what keeps a name from ever reaching outside `<root>/models`.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let fail = |reason| {
        Err(StoreError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("longer than 64 characters");
    }
    if !name.as_bytes()[0].is_ascii_lowercase() && !name.as_bytes()[0].is_ascii_digit() {
        return fail("must start with a lowercase letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return fail("only a-z, 0-9, '.', '_' and '-' are allowed");
    }
    if name.contains("..") {
        return fail("must not contain \"..\"");
    }
    Ok(())
}

/// SHA-256 of everything `r` yields, as lowercase hex, and the byte count.
pub(crate) fn sha256_hex(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, total))
}

impl ModelStore {
    /// The store at `$EDGENLU_HOME`, else `$XDG_DATA_HOME/edgenlu`, else
    /// `~/.local/share/edgenlu`; created if missing.
    pub fn open_default() -> Result<ModelStore, StoreError> {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = env("EDGENLU_HOME")
            .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("edgenlu")))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/edgenlu")))
            .ok_or(StoreError::NoRoot)?;
        ModelStore::at(root)
    }

    /// The store rooted at `root`; creates `<root>/models` if missing.
    pub fn at(root: impl Into<PathBuf>) -> Result<ModelStore, StoreError> {
        let root = root.into();
        let models = root.join("models");
        std::fs::create_dir_all(&models).map_err(io_err(&models))?;
        Ok(ModelStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where model `name` lives (`<root>/models/<name>.gguf`), whether or not it exists.
    pub fn path_for(&self, name: &str) -> Result<PathBuf, StoreError> {
        validate_name(name)?;
        Ok(self.root.join("models").join(format!("{name}.gguf")))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        serde_json::from_str(&text).map_err(|e| StoreError::BadIndex {
            path,
            reason: e.to_string(),
        })
    }

    fn write_index(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.index_path();
        let json = serde_json::to_vec_pretty(index).map_err(|e| StoreError::BadIndex {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        crate::atomic::write_atomic(&path, |w| w.write_all(&json)).map_err(io_err(&path))
    }

    /// Computes the digest of the file at [`path_for`](Self::path_for)`(name)` and records
    /// it in index.json with `source`.
    pub fn record(&self, name: &str, source: &str) -> Result<StoreEntry, StoreError> {
        let path = self.path_for(name)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.to_owned()))
            }
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let (sha256, size) = sha256_hex(file).map_err(io_err(&path))?;
        let mut index = self.read_index()?;
        index.models.insert(
            name.to_owned(),
            IndexRecord {
                sha256: sha256.clone(),
                size,
                source: source.to_owned(),
            },
        );
        self.write_index(&index)?;
        Ok(StoreEntry {
            name: name.to_owned(),
            sha256,
            size,
            source: source.to_owned(),
        })
    }

    /// The recorded entry for `name`, if any (the file is not checked).
    pub fn entry(&self, name: &str) -> Result<Option<StoreEntry>, StoreError> {
        validate_name(name)?;
        Ok(self.read_index()?.models.remove(name).map(|r| StoreEntry {
            name: name.to_owned(),
            sha256: r.sha256,
            size: r.size,
            source: r.source,
        }))
    }

    /// Every recorded model, by name.
    pub fn list(&self) -> Result<Vec<StoreEntry>, StoreError> {
        Ok(self
            .read_index()?
            .models
            .into_iter()
            .map(|(name, r)| StoreEntry {
                name,
                sha256: r.sha256,
                size: r.size,
                source: r.source,
            })
            .collect())
    }

    /// Checks that model `name` is recorded and that its file matches the recorded digest;
    /// returns the open file, positioned anywhere.
    fn verified_file(&self, name: &str) -> Result<(File, PathBuf, StoreEntry), StoreError> {
        let path = self.path_for(name)?;
        let entry = self
            .entry(name)?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.to_owned()))
            }
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let (actual, _) = sha256_hex(&file).map_err(io_err(&path))?;
        if actual != entry.sha256 {
            return Err(StoreError::DigestMismatch {
                name: name.to_owned(),
                expected: entry.sha256,
                actual,
            });
        }
        Ok((file, path, entry))
    }

    /// Whether `name` is recorded and its file matches the recorded digest.
    pub fn verify(&self, name: &str) -> Result<StoreEntry, StoreError> {
        self.verified_file(name).map(|(_, _, e)| e)
    }

    /// Opens model `name`: resolves the name, checks the file against its recorded digest,
    /// then maps and validates that same file handle.
    pub fn open(&self, name: &str) -> Result<GgufFile, StoreError> {
        let (file, path, _) = self.verified_file(name)?;
        GgufFile::from_file(&file, &path).map_err(|source| StoreError::Gguf {
            name: name.to_owned(),
            source,
        })
    }
}
