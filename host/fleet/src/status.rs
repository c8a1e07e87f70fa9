//! The device's status record, `<store>/status.json`: its id, the channel it follows, the
//! last sync (when, how it ended, why it failed), and for each entry of the channel what the
//! device has installed, whether it is in the entry's cohort, what the last round did with it
//! and the error that rolled an install back. Written whole (temp file, fsync, rename), so a
//! reader (`edgenlu status`, a fleet dashboard) never sees half of one.

use super::channel::EntryKind;
use super::client::RegistryClient;
use super::push::{push_document, Pushed};
use super::{io_err, FleetError};
use std::path::{Path, PathBuf};

/// How the last sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncResult {
    /// Every entry is as the channel says (or out of this device's cohort).
    Ok,
    /// The channel was read, and at least one entry failed (rolled back, refused or
    /// unreachable): the device kept what it had for those.
    Partial,
    /// The channel could not be read (registry down, refused, not a channel): nothing changed.
    Failed,
}

/// What the last round did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryResult {
    /// Pulled and installed (its health check passed).
    Installed,
    /// The device already had the channel's digest.
    UpToDate,
    /// The device is not in the entry's cohort: it keeps what it has.
    NotInCohort,
    /// Installed, failed its health check, rolled back to what the device had.
    RolledBack,
    /// The digest already failed its health check on this device: not tried again until the
    /// channel names another.
    SkippedFailed,
    /// Refused (trust, integrity) or the registry could not be reached: nothing changed.
    Failed,
}

/// One entry of the channel as this device sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryStatus {
    /// Skill, model or flow.
    pub kind: EntryKind,
    /// Its name.
    pub name: String,
    /// The manifest digest the channel names.
    pub channel_digest: String,
    /// The rollout percentage the channel gives it.
    pub rollout: u8,
    /// Whether this device is in its cohort.
    pub in_cohort: bool,
    /// The version installed on the device (a skill's or flow's version number, the first 12
    /// hex digits of a model's SHA-256), if any.
    pub installed_version: Option<String>,
    /// The SHA-256 of the installed file.
    pub installed_sha256: Option<String>,
    /// The manifest digest it was installed from, when a sync installed it (None: installed
    /// another way, or not installed).
    pub installed_digest: Option<String>,
    /// What the last round did.
    pub result: EntryResult,
    /// Why the last round failed or rolled back.
    pub error: Option<String>,
    /// A digest that failed its health check on this device, not tried again.
    pub failed_digest: Option<String>,
    /// Why that digest was rolled back.
    pub rollback_error: Option<String>,
}

/// `status.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The device's id (`<store>/device-id`).
    pub device_id: String,
    /// The channel followed.
    pub channel: String,
    /// The channel's manifest digest at the last sync that read it.
    pub channel_digest: Option<String>,
    /// When the last sync ended (RFC 3339, UTC).
    pub last_sync: String,
    /// How it ended.
    pub result: SyncResult,
    /// Why it failed, when it did (the channel's error, or the entries' count).
    pub error: Option<String>,
    /// Why the record could not be pushed to the registry the device reports to, if it could
    /// not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
    /// Each entry of the channel last read, by kind and name.
    pub entries: Vec<EntryStatus>,
}

impl Status {
    /// The entry `kind`/`name`, if the record has one.
    pub fn entry(&self, kind: EntryKind, name: &str) -> Option<&EntryStatus> {
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.name == name)
    }
}

impl Status {
    /// The record as Prometheus exposition lines, for `edgenlu serve`'s `/metrics`: how the
    /// last sync ended and when, and one line per channel entry with what the last round did.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let channel = label(&self.channel);
        let mut out = String::from(
            "# HELP edgenlu_sync_last_result How the update agent's last sync ended (1: this result).\n\
             # TYPE edgenlu_sync_last_result gauge\n",
        );
        for result in [SyncResult::Ok, SyncResult::Partial, SyncResult::Failed] {
            let _ = writeln!(
                out,
                "edgenlu_sync_last_result{{channel=\"{channel}\",result=\"{}\"}} {}",
                kebab(&result),
                u8::from(result == self.result)
            );
        }
        let when =
            chrono::DateTime::parse_from_rfc3339(&self.last_sync).map_or(0, |t| t.timestamp());
        let _ = write!(
            out,
            "# HELP edgenlu_sync_last_timestamp_seconds When the last sync ended (unix seconds).\n\
             # TYPE edgenlu_sync_last_timestamp_seconds gauge\n\
             edgenlu_sync_last_timestamp_seconds {when}\n\
             # HELP edgenlu_sync_entry What the last sync did with each channel entry (1 per entry).\n\
             # TYPE edgenlu_sync_entry gauge\n"
        );
        for e in &self.entries {
            let _ = writeln!(
                out,
                "edgenlu_sync_entry{{kind=\"{}\",name=\"{}\",result=\"{}\",in_cohort=\"{}\",rolled_back=\"{}\"}} 1",
                kebab(&e.kind),
                label(&e.name),
                kebab(&e.result),
                e.in_cohort,
                e.failed_digest.is_some()
            );
        }
        out
    }
}

/// A serde enum's kebab-case name, as the record spells it.
fn kebab(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `/metrics` lines for the store at `store_root`: its status record's, nothing when no sync
/// has written one, and a comment when the record cannot be read.
pub fn prometheus_of(store_root: &Path) -> String {
    match read(store_root) {
        Ok(Some(status)) => status.prometheus(),
        Ok(None) => String::new(),
        Err(e) => format!(
            "# edgenlu_sync: the status record cannot be read: {}\n",
            e.to_string().replace('\n', " ")
        ),
    }
}

/// The media type of a status record pushed to a registry (the manifest's `artifactType`
/// and its one layer's type).
pub const STATUS_MEDIA_TYPE: &str = "application/vnd.edgenlu.status.v1+json";

/// Pushes `status` to `client`'s reference (`registry/repository:<device id>`), so an operator
/// reads a fleet's records where it publishes.
pub fn push(client: &RegistryClient, status: &Status) -> Result<Pushed, FleetError> {
    let bytes = serde_json::to_vec_pretty(status).expect("serializable");
    let version = kebab(&status.result);
    push_document(
        client,
        STATUS_MEDIA_TYPE,
        bytes,
        "status",
        status.device_id.clone(),
        version,
    )
}

/// Where a store keeps its status record.
pub fn status_path(store_root: &Path) -> PathBuf {
    store_root.join("status.json")
}

/// The status record of the store at `store_root`, if a sync wrote one.
pub fn read(store_root: &Path) -> Result<Option<Status>, FleetError> {
    let path = status_path(store_root);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| FleetError::BadStatus {
            path,
            reason: e.to_string(),
        })
}

/// Writes `status` as the store's record: temp file, fsync, rename, fsync the directory.
pub fn write(store_root: &Path, status: &Status) -> Result<(), FleetError> {
    let path = status_path(store_root);
    let bytes = serde_json::to_vec_pretty(status).expect("serializable");
    edgenlu_models::atomic::write_atomic(&path, |w| w.write_all(&bytes)).map_err(io_err(&path))
}
