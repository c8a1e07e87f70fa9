//! The on-device model store: `<root>/models/<name>.gguf`, with `<root>/index.json` recording
//! each entry's kind (a model or a skill's datastore), SHA-256 digest, size and source.
//! Entries are opened by name only (never a path), and a file's digest is checked against the
//! index before it is mapped. New entries are written through [`ModelStore::create`] /
//! [`ModelStore::replace`] (`write.rs`): an entry is never replaced by one of the other kind,
//! nor silently, nor while something holds it. `check.rs` compares files with the index.

mod check;
mod write;

pub use check::{CheckedEntry, EntryHealth};
pub use write::{Holders, Import, NewEntry};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::gguf::{GgufError, GgufFile};

/// Longest model name.
const MAX_NAME_LEN: usize = 64;

/// `general.architecture` of a skill's datastore file (`edgenlu-train` writes them).
pub const DATASTORE_ARCHITECTURE: &str = "edgenlu-index";

/// What a store entry is. Each command writes one kind only, and an entry never changes kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Weights a skill computes with, an encoder or a decoder (`models fetch`, `models import`).
    Model,
    /// A skill's embedded examples and trained heads (`skill index`, `skill train`).
    Datastore,
}

impl EntryKind {
    /// `model` or `datastore`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Model => "model",
            EntryKind::Datastore => "datastore",
        }
    }

    /// The kind of a GGUF file with `general.architecture` = `architecture`.
    pub fn of_architecture(architecture: Option<&str>) -> EntryKind {
        if architecture == Some(DATASTORE_ARCHITECTURE) {
            EntryKind::Datastore
        } else {
            EntryKind::Model
        }
    }

    /// The kind of the GGUF file at `path`, from its architecture.
    pub fn of_file(path: &Path) -> Result<EntryKind, GgufError> {
        Ok(EntryKind::of_architecture(
            GgufFile::open(path)?.architecture(),
        ))
    }

    /// An index record written before kinds were recorded: the file's architecture says
    /// which it is; a file that cannot be read is a datastore if `skill index` or `skill
    /// build` recorded it (its source), else a model.
    fn classify(path: &Path, source: &str) -> EntryKind {
        EntryKind::of_file(path).unwrap_or(if source.starts_with("edgenlu skill ") {
            EntryKind::Datastore
        } else {
            EntryKind::Model
        })
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so column widths (`{:<9}`) apply.
        f.pad(self.as_str())
    }
}

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
    #[error("{0}")]
    DigestMismatch(Box<Mismatch>),
    /// An entry of that name exists, and the write did not ask to replace it.
    #[error(
        "the store already holds {kind} {name:?} ({size} bytes, from {source_text}): give \
         --force to replace it, or choose another name"
    )]
    Exists {
        /// The entry.
        name: String,
        /// Its kind.
        kind: EntryKind,
        /// Its recorded size.
        size: u64,
        /// Where it came from.
        source_text: String,
    },
    /// An entry of that name is of the other kind: a model never replaces a datastore, nor a
    /// datastore a model.
    #[error(
        "{name:?} is a {existing} in the store; a {wanted} can never replace it, even with \
         --force: choose another name"
    )]
    KindConflict {
        /// The entry.
        name: String,
        /// What the store holds under that name.
        existing: EntryKind,
        /// What the write would have put there.
        wanted: EntryKind,
    },
    /// Something holds the entry (an installed skill, a model signature): it is never
    /// replaced.
    #[error(
        "{kind} {name:?} is used by {}: it is never replaced, even with --force; write under \
         another name",
        holders.join(", ")
    )]
    Held {
        /// The entry.
        name: String,
        /// Its kind.
        kind: EntryKind,
        /// Who holds it, each as a phrase.
        holders: Vec<String>,
    },
    /// The file written for a new entry is not of the entry's kind.
    #[error("the file written for {kind} {name:?} is a {found} (architecture {architecture:?})")]
    NotOfKind {
        /// The entry.
        name: String,
        /// The kind it was to be.
        kind: EntryKind,
        /// The kind of the file.
        found: EntryKind,
        /// The file's `general.architecture`.
        architecture: String,
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

/// An entry's file that is not what the store recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: the file of {name:?} is damaged: the store recorded {expected_size} bytes with SHA-256 \
     {expected}, the file has {actual_size} bytes with SHA-256 {actual}; run `edgenlu models \
     verify` to check every entry, and `edgenlu models fetch` to repair the default models \
     (rebuild a datastore with `edgenlu skill train --force`)",
    path.display()
)]
pub struct Mismatch {
    /// The entry.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The digest in index.json.
    pub expected: String,
    /// The digest of the file.
    pub actual: String,
    /// The size in index.json.
    pub expected_size: u64,
    /// The size of the file.
    pub actual_size: u64,
}

/// One recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreEntry {
    /// The store name, e.g. `all-minilm-l6-v2.q8_0`.
    pub name: String,
    /// A model or a datastore.
    pub kind: EntryKind,
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
    /// Absent in an index written before kinds were recorded (see [`EntryKind::classify`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<EntryKind>,
    sha256: String,
    size: u64,
    source: String,
}

impl IndexRecord {
    fn entry(self, name: String, kind: EntryKind) -> StoreEntry {
        StoreEntry {
            name,
            kind,
            sha256: self.sha256,
            size: self.size,
            source: self.source,
        }
    }
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
pub fn sha256_hex(mut r: impl Read) -> io::Result<(String, u64)> {
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
    /// The store at [`default_root`](Self::default_root), created if missing.
    pub fn open_default() -> Result<ModelStore, StoreError> {
        ModelStore::at(ModelStore::default_root()?)
    }

    /// Where the device's store is: `$EDGENLU_HOME`, else `$XDG_DATA_HOME/edgenlu`, else
    /// `~/.local/share/edgenlu`.
    pub fn default_root() -> Result<PathBuf, StoreError> {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("EDGENLU_HOME")
            .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("edgenlu")))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/edgenlu")))
            .ok_or(StoreError::NoRoot)
    }

    /// The store rooted at `root`; creates `<root>/models` if missing. Removes the stale
    /// temporaries a writer killed mid-write left in it
    /// ([`remove_stale_temps`](crate::atomic::remove_stale_temps)), and records the kind of
    /// entries an older index lacks (best effort: a store that cannot be written still opens).
    pub fn at(root: impl Into<PathBuf>) -> Result<ModelStore, StoreError> {
        let root = root.into();
        let models = root.join("models");
        std::fs::create_dir_all(&models).map_err(io_err(&models))?;
        let store = ModelStore { root };
        for dir in [
            store.root.clone(),
            models,
            store.root.join("hf"),
            store.root.join("tmp"),
        ] {
            crate::atomic::remove_stale_temps(&dir);
        }
        let _ = store.record_kinds();
        Ok(store)
    }

    /// The store rooted at `root` for reading only: unlike [`at`](Self::at), nothing is
    /// created, cleaned or migrated in it (kinds an older index lacks are classified in
    /// memory). Writing through it is the caller's mistake; [`link_models_from`] reads its
    /// base this way.
    ///
    /// [`link_models_from`]: Self::link_models_from
    pub fn read_only(root: impl Into<PathBuf>) -> Result<ModelStore, StoreError> {
        let root = root.into();
        let models = root.join("models");
        std::fs::metadata(&models).map_err(io_err(&models))?;
        Ok(ModelStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where entry `name` lives (`<root>/models/<name>.gguf`), whether or not it exists.
    pub fn path_for(&self, name: &str) -> Result<PathBuf, StoreError> {
        validate_name(name)?;
        Ok(self.root.join("models").join(format!("{name}.gguf")))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Takes the index's write lock (released when the file is dropped), so two processes
    /// never interleave their read-modify-write of index.json.
    fn lock_index(&self) -> Result<File, StoreError> {
        let path = self.root.join(".index.lock");
        crate::atomic::lock_file(&path).map_err(io_err(&path))
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

    /// The kind of a record: as recorded, else classified from its file.
    fn kind_of(&self, name: &str, record: &IndexRecord) -> EntryKind {
        record.kind.unwrap_or_else(|| {
            // A name the index should never hold is classified without opening anything.
            let path = self.path_for(name).unwrap_or_default();
            EntryKind::classify(&path, &record.source)
        })
    }

    /// Classifies, once, the entries an index written before kinds were recorded lacks,
    /// and writes their kinds into it.
    fn record_kinds(&self) -> Result<(), StoreError> {
        if self.read_index()?.models.values().all(|r| r.kind.is_some()) {
            return Ok(());
        }
        let _lock = self.lock_index()?;
        let mut index = self.read_index()?;
        for (name, record) in index.models.iter_mut() {
            let kind = self.kind_of(name, record);
            record.kind = Some(kind);
        }
        self.write_index(&index)
    }

    /// Computes the digest of the file at [`path_for`](Self::path_for)`(name)` and records
    /// it in index.json with `source`, its kind from its GGUF architecture. For a file the
    /// caller placed there itself; commands write entries with [`create`](Self::create) or
    /// [`replace`](Self::replace), which keep the store's rules.
    pub fn record(&self, name: &str, source: &str) -> Result<StoreEntry, StoreError> {
        let path = self.path_for(name)?;
        let kind = EntryKind::classify(&path, source);
        let _lock = self.lock_index()?;
        self.record_locked(name, kind, &path, source)
    }

    /// Hashes `path` and records it as entry `name`, with the index lock held.
    fn record_locked(
        &self,
        name: &str,
        kind: EntryKind,
        path: &Path,
        source: &str,
    ) -> Result<StoreEntry, StoreError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.to_owned()))
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let (sha256, size) = sha256_hex(file).map_err(io_err(path))?;
        let mut index = self.read_index()?;
        let record = IndexRecord {
            kind: Some(kind),
            sha256,
            size,
            source: source.to_owned(),
        };
        index.models.insert(name.to_owned(), record.clone());
        self.write_index(&index)?;
        Ok(record.entry(name.to_owned(), kind))
    }

    /// The recorded entry for `name`, if any (the file is not checked).
    pub fn entry(&self, name: &str) -> Result<Option<StoreEntry>, StoreError> {
        validate_name(name)?;
        Ok(self.read_index()?.models.remove(name).map(|r| {
            let kind = self.kind_of(name, &r);
            r.entry(name.to_owned(), kind)
        }))
    }

    /// Every recorded entry, by name.
    pub fn list(&self) -> Result<Vec<StoreEntry>, StoreError> {
        Ok(self
            .read_index()?
            .models
            .into_iter()
            .map(|(name, r)| {
                let kind = self.kind_of(&name, &r);
                r.entry(name, kind)
            })
            .collect())
    }

    /// Checks that entry `name` is recorded and that its file matches the recorded digest;
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
        let (actual, actual_size) = sha256_hex(&file).map_err(io_err(&path))?;
        if actual != entry.sha256 || actual_size != entry.size {
            return Err(StoreError::DigestMismatch(Box::new(Mismatch {
                name: name.to_owned(),
                path,
                expected: entry.sha256,
                actual,
                expected_size: entry.size,
                actual_size,
            })));
        }
        Ok((file, path, entry))
    }

    /// Whether `name` is recorded and its file matches the recorded digest.
    pub fn verify(&self, name: &str) -> Result<StoreEntry, StoreError> {
        self.verified_file(name).map(|(_, _, e)| e)
    }

    /// Opens entry `name`: resolves the name, checks the file against its recorded digest,
    /// then maps and validates that same file handle.
    pub fn open(&self, name: &str) -> Result<GgufFile, StoreError> {
        let (file, path, _) = self.verified_file(name)?;
        GgufFile::from_file(&file, &path).map_err(|source| StoreError::Gguf {
            name: name.to_owned(),
            source,
        })
    }
}
