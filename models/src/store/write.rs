//! Writing entries: a new entry's file is written beside its final place, checked to be of
//! the entry's kind, and only then renamed into the store and recorded. The rules: an entry
//! never changes kind, is replaced only when the writer asks to, and never while something
//! holds it ([`Holders`]: installed skills, model signatures).

use std::path::{Path, PathBuf};

use super::{io_err, EntryKind, IndexRecord, ModelStore, StoreEntry, StoreError};

/// What may hold a store entry so that it is never replaced: the skills installed on the
/// device, the model signatures it trusts. The store knows nothing of them; `edgenlu-trust`
/// answers for a device.
pub trait Holders {
    /// Who holds entry `name`, each as a phrase for a message (e.g. `installed skill
    /// "intents" version 1`); empty when nothing does. An implementation that cannot tell
    /// should answer with why, so the entry is kept.
    fn holders(&self, name: &str) -> Vec<String>;
}

/// Nothing holds any entry (a store no skill uses, as in tests and tools).
impl Holders for () {
    fn holders(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// How a new entry may meet an existing one of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only if there is none.
    Create,
    /// Replacing one of the same kind (holders were checked when it began).
    Replace,
    /// Whatever is there: `models fetch` putting back the fixed contents of its own names.
    Repair,
}

/// An entry being written: write its file to [`path`](Self::path) (beside its final place),
/// then [`commit`](Self::commit) it. Dropped without a commit, it leaves the store as it was.
#[derive(Debug)]
#[must_use = "an entry is only in the store once committed"]
pub struct NewEntry {
    store: ModelStore,
    name: String,
    kind: EntryKind,
    mode: Mode,
    staged: PathBuf,
}

impl ModelStore {
    /// Starts writing a new entry `name` of `kind`; refused if the store already holds an
    /// entry of that name ([`StoreError::Exists`], or [`StoreError::KindConflict`] for one of
    /// the other kind).
    pub fn create(&self, name: &str, kind: EntryKind) -> Result<NewEntry, StoreError> {
        if let Some(refused) = self
            .entry(name)?
            .and_then(|e| refusal(e, kind, Mode::Create))
        {
            return Err(refused);
        }
        self.begin(name, kind, Mode::Create)
    }

    /// Starts writing entry `name` of `kind`, replacing the one there if any: refused if it is
    /// of the other kind ([`StoreError::KindConflict`]) or if `holders` name anything holding
    /// it ([`StoreError::Held`]).
    pub fn replace(
        &self,
        name: &str,
        kind: EntryKind,
        holders: &dyn Holders,
    ) -> Result<NewEntry, StoreError> {
        if let Some(existing) = self.entry(name)? {
            if let Some(refused) = refusal(existing, kind, Mode::Replace) {
                return Err(refused);
            }
            let holders = holders.holders(name);
            if !holders.is_empty() {
                return Err(StoreError::Held {
                    name: name.to_owned(),
                    kind,
                    holders,
                });
            }
        }
        self.begin(name, kind, Mode::Replace)
    }

    /// Starts re-creating entry `name` as `kind` whatever the store holds under it: for
    /// fetch, whose names and contents are fixed.
    pub(crate) fn repair(&self, name: &str, kind: EntryKind) -> Result<NewEntry, StoreError> {
        self.begin(name, kind, Mode::Repair)
    }

    fn begin(&self, name: &str, kind: EntryKind, mode: Mode) -> Result<NewEntry, StoreError> {
        let path = self.path_for(name)?;
        Ok(NewEntry {
            store: self.clone(),
            name: name.to_owned(),
            kind,
            mode,
            staged: crate::atomic::staged_path(&path),
        })
    }

    /// Makes every model of `base` (not its datastores) an entry of this store too, through a
    /// symbolic link to its file and a copy of its record, unless this store has an entry of
    /// that name: a store of its own (a test's, a demo's) that reads the models another one
    /// holds without copying them and without ever writing into it (a later write here
    /// replaces the link, not the file it points to). Returns the entries linked.
    pub fn link_models_from(&self, base: &ModelStore) -> Result<Vec<StoreEntry>, StoreError> {
        let _lock = self.lock_index()?;
        let mut index = self.read_index()?;
        let mut linked = Vec::new();
        for entry in base.list()? {
            if entry.kind != EntryKind::Model || index.models.contains_key(&entry.name) {
                continue;
            }
            let (target, link) = (base.path_for(&entry.name)?, self.path_for(&entry.name)?);
            let target = std::fs::canonicalize(&target).map_err(io_err(&target))?;
            let _ = std::fs::remove_file(&link);
            link_file(&target, &link).map_err(io_err(&link))?;
            index.models.insert(
                entry.name.clone(),
                IndexRecord {
                    kind: Some(entry.kind),
                    sha256: entry.sha256.clone(),
                    size: entry.size,
                    source: format!("linked from {}", base.root().display()),
                },
            );
            linked.push(entry);
        }
        self.write_index(&index)?;
        Ok(linked)
    }
}

/// How [`ModelStore::import_file`] takes a GGUF file into the store.
#[derive(Clone, Copy)]
pub struct Import<'a> {
    /// Replace an entry of that name (of the same kind) unless these hold it; `None`: only a
    /// name the store does not have yet.
    pub replace: Option<&'a dyn Holders>,
    /// Move the file into the store instead of copying it (a temporary of the caller's in
    /// the store's file system, such as a download under `<root>/tmp`).
    pub take_file: bool,
    /// Where it came from, recorded with the entry.
    pub source: &'a str,
}

impl ModelStore {
    /// Puts GGUF file `file` into the store as entry `name`, of the kind its architecture
    /// says (a model or a datastore), under the store's rules ([`create`](Self::create) or
    /// [`replace`](Self::replace)): `models import FILE.gguf` and a pulled model both come in
    /// this way. On any refusal the store is as it was.
    pub fn import_file(
        &self,
        name: &str,
        file: &Path,
        import: Import<'_>,
    ) -> Result<StoreEntry, StoreError> {
        let kind = EntryKind::of_file(file).map_err(|source| StoreError::Gguf {
            name: name.to_owned(),
            source,
        })?;
        let new = match import.replace {
            Some(holders) => self.replace(name, kind, holders)?,
            None => self.create(name, kind)?,
        };
        let staged = new.path().to_owned();
        let moved = import.take_file && std::fs::rename(file, &staged).is_ok();
        if !moved {
            std::fs::copy(file, &staged).map_err(io_err(&staged))?;
        }
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&staged))?;
        new.commit(import.source)
    }
}

#[cfg(unix)]
fn link_file(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn link_file(target: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::copy(target, link).map(drop)
}

/// Why a write in `mode` of a `kind` entry may not meet `existing`, if it may not.
fn refusal(existing: StoreEntry, kind: EntryKind, mode: Mode) -> Option<StoreError> {
    if mode == Mode::Repair {
        None
    } else if existing.kind != kind {
        Some(StoreError::KindConflict {
            name: existing.name,
            existing: existing.kind,
            wanted: kind,
        })
    } else if mode == Mode::Create {
        Some(StoreError::Exists {
            name: existing.name,
            kind: existing.kind,
            size: existing.size,
            source_text: existing.source,
        })
    } else {
        None
    }
}

impl NewEntry {
    /// Where to write the entry's file (a GGUF file, written whole).
    pub fn path(&self) -> &Path {
        &self.staged
    }

    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts the written file in the store as the entry, recorded with `source`: checks that
    /// it is a GGUF file of the entry's kind, checks the store's rules again (another writer
    /// may have come first), renames it into place and records its digest.
    pub fn commit(self, source: &str) -> Result<StoreEntry, StoreError> {
        let file =
            crate::gguf::GgufFile::open(&self.staged).map_err(|source| StoreError::Gguf {
                name: self.name.clone(),
                source,
            })?;
        let found = EntryKind::of_architecture(file.architecture());
        if found != self.kind {
            return Err(StoreError::NotOfKind {
                name: self.name.clone(),
                kind: self.kind,
                found,
                architecture: file.architecture().unwrap_or_default().to_owned(),
            });
        }
        drop(file);
        let _lock = self.store.lock_index()?;
        let existing = self.store.entry(&self.name)?;
        if let Some(refused) = existing.and_then(|e| refusal(e, self.kind, self.mode)) {
            return Err(refused);
        }
        let path = self.store.path_for(&self.name)?;
        std::fs::rename(&self.staged, &path).map_err(io_err(&path))?;
        crate::atomic::sync_dir(&path).map_err(io_err(&path))?;
        self.store
            .record_locked(&self.name, self.kind, &path, source)
    }
}

impl Drop for NewEntry {
    fn drop(&mut self) {
        // Best effort: after a commit the file was renamed away and this finds nothing.
        let _ = std::fs::remove_file(&self.staged);
    }
}
