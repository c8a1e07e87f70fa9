//! Comparing each entry's file with what the index records: its real size, then its digest.

use std::io;
use std::path::PathBuf;

use super::{io_err, sha256_hex, ModelStore, StoreEntry, StoreError};

/// What an entry's file is, against its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryHealth {
    /// The size and digest recorded.
    Ok,
    /// No file.
    Missing,
    /// Another size than recorded (truncated, or replaced); the digest was not computed.
    WrongSize {
        /// The file's size.
        actual: u64,
    },
    /// The recorded size but another digest (modified in place, or corrupted).
    WrongDigest {
        /// The file's SHA-256, lowercase hex.
        actual: String,
    },
}

impl EntryHealth {
    /// Whether the file is what the store recorded.
    pub fn is_ok(&self) -> bool {
        *self == EntryHealth::Ok
    }
}

/// An entry and what its file was found to be.
#[derive(Debug, Clone)]
pub struct CheckedEntry {
    /// The entry as recorded.
    pub entry: StoreEntry,
    /// Its file.
    pub path: PathBuf,
    /// What the file is.
    pub health: EntryHealth,
}

impl ModelStore {
    /// The size of entry `name`'s file as it is on disk (None: no file), whatever the index
    /// records.
    pub fn file_size(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path_for(name)?;
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Compares `entry`'s file with its record: size first, then the SHA-256 of every byte.
    pub fn check(&self, entry: StoreEntry) -> Result<CheckedEntry, StoreError> {
        let path = self.path_for(&entry.name)?;
        let health = match self.file_size(&entry.name)? {
            None => EntryHealth::Missing,
            Some(actual) if actual != entry.size => EntryHealth::WrongSize { actual },
            Some(_) => {
                let file = std::fs::File::open(&path).map_err(io_err(&path))?;
                let (actual, _) = sha256_hex(file).map_err(io_err(&path))?;
                if actual == entry.sha256 {
                    EntryHealth::Ok
                } else {
                    EntryHealth::WrongDigest { actual }
                }
            }
        };
        Ok(CheckedEntry {
            entry,
            path,
            health,
        })
    }

    /// [`check`](Self::check) for every recorded entry, by name.
    pub fn check_all(&self) -> Result<Vec<CheckedEntry>, StoreError> {
        self.list()?.into_iter().map(|e| self.check(e)).collect()
    }
}
