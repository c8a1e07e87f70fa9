//! Crash-safe file replacement, shared by the GGUF writer, the store index, fetch and the
//! host's trust and skill stores: a kill at any instant leaves either the old file or the
//! complete new one, never a torn mix; and the clean-up of the temporaries a killed writer
//! left behind.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// `<path>.tmp<pid>`, next to `path` so the final rename stays on one file system, and
/// per process so two writers never share a temp file.
fn tmp_path(path: &Path) -> PathBuf {
    with_marker(path, ".tmp")
}

/// `<path>.staged<pid>`: where a file is written whole before it is checked and renamed over
/// `path` (the model store's new entries).
pub fn staged_path(path: &Path) -> PathBuf {
    with_marker(path, ".staged")
}

fn with_marker(path: &Path, marker: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{marker}{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `path` atomically: `fill` writes a temp file beside it, which is fsynced, renamed over
/// `path`, and the directory fsynced so the rename itself survives a power cut.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        // Best effort: a leftover .tmp is harmless but wastes space.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Opens (creating it if missing) the lock file `path` and takes an exclusive lock on it,
/// released when the returned file is dropped: how the stores keep two processes from
/// interleaving a read-modify-write of their files.
pub fn lock_file(path: &Path) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.lock()?;
    Ok(f)
}

/// Fsyncs the directory holding `path` (a no-op where directories cannot be opened).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Suffix of a temp file: `<name>.tmp<pid>` (written by [`write_atomic`]) or
/// `<name>.staged<pid>` (a store entry written but not yet committed).
const TEMP_MARKERS: [&str; 2] = [".tmp", ".staged"];

/// A temp file younger than this is never removed: its writer may be on another PID
/// namespace sharing the directory, or just about to rename it.
const STALE_MIN_AGE: Duration = Duration::from_secs(10 * 60);

/// Older than this, a temp file is stale even where no process table can be read.
const STALE_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The writer's process id, if `file_name` is one of our temp files (see [`TEMP_MARKERS`]).
pub fn temp_writer(file_name: &str) -> Option<u32> {
    TEMP_MARKERS.iter().find_map(|marker| {
        let (stem, pid) = file_name.rsplit_once(marker)?;
        if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        pid.parse().ok()
    })
}

/// Whether process `pid` is running: `Some` where the process table can be read (`/proc`),
/// `None` elsewhere.
fn process_running(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(pid == std::process::id() || proc.join(pid.to_string()).exists())
}

/// Whether a temp entry written by `pid`, last modified `age` ago, can no longer be in use:
/// older than [`STALE_MIN_AGE`], and its writer gone (or, with no process table to ask,
/// older than [`STALE_MAX_AGE`]).
fn is_stale(pid: u32, age: Duration) -> bool {
    age >= STALE_MIN_AGE && (age >= STALE_MAX_AGE || process_running(pid) == Some(false))
}

/// Removes the stale temporaries in `dir` (not recursively): files and directories named as
/// [`write_atomic`] and the model store name their temporaries, whose writer is no longer
/// running and that were not modified for a while (see [`is_stale`]). What a process killed
/// mid-write left behind; nothing else is touched. Returns what it removed; best effort (a
/// missing directory or a file that cannot be removed is skipped).
pub fn remove_stale_temps(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_writer) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        if !is_stale(pid, age) {
            continue;
        }
        let path = entry.path();
        let gone = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_by_their_marker_and_pid() {
        assert_eq!(temp_writer("index.json.tmp1234"), Some(1234));
        assert_eq!(temp_writer("m.gguf.staged7"), Some(7));
        for other in ["index.json", "m.tmp", "m.tmpx1", ".tmp12", "a.tmp12.gguf"] {
            assert_eq!(temp_writer(other), None, "{other}");
        }
    }

    #[test]
    fn only_old_temps_of_finished_writers_are_stale() {
        let hour = Duration::from_secs(3600);
        let mine = std::process::id();
        assert!(!is_stale(mine, hour), "a running writer's temp is in use");
        assert!(!is_stale(u32::MAX, Duration::from_secs(5)), "too young");
        assert!(is_stale(mine, 2 * STALE_MAX_AGE));
        if process_running(u32::MAX) == Some(false) {
            assert!(is_stale(u32::MAX, hour));
        }
    }
}
