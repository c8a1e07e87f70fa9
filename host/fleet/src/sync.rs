//! One round of the update agent ([`sync`]) and its loop ([`run_agent`]): read the channel,
//! and for each entry in this device's cohort whose digest the device does not have, pull it
//! through [`pull`](crate::pull::pull) (registry digest, signature, trust rules, version
//! floor, atomic install, health check with rollback), then write the status record.
//!
//! A registry that cannot be reached is retried a bounded number of times with exponential
//! backoff and full jitter (so a fleet that lost its registry does not come back in step),
//! then the round gives up and the device keeps what it has. A digest that failed its health
//! check on this device is not tried again until the channel names another.

use super::channel::{self, Channel, ChannelEntry, EntryKind};
use super::client::RegistryClient;
use super::cohort;
use super::pull::{download_dir, pull, PullOptions};
use super::reference::ArtifactRef;
use super::status::{self, EntryResult, EntryStatus, Status, SyncResult};
use super::{io_err, FleetError};
use edgenlu_models::store::ModelStore;
use edgenlu_trust::skills::{HealthCheck, InstallError, SkillStore, FLOW_SLOT};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often and how patiently a request to an unreachable registry is retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Requests in all (1: no retry).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each one after it, each drawn uniformly
    /// from its upper half (jitter).
    pub first_backoff: Duration,
}

impl Default for Retry {
    /// 4 requests, waits of about 0.5, 1 and 2 s between them.
    fn default() -> Retry {
        Retry {
            attempts: 4,
            first_backoff: Duration::from_millis(500),
        }
    }
}

impl Retry {
    /// Runs `f` until it succeeds, fails for a reason retrying cannot fix, or the attempts run
    /// out (then its last error).
    pub fn run<T>(&self, mut f: impl FnMut() -> Result<T, FleetError>) -> Result<T, FleetError> {
        let mut attempt = 1;
        loop {
            match f() {
                Err(e) if attempt < self.attempts && is_transient(&e) => {
                    let wait = self.backoff(attempt);
                    tracing::info!("attempt {attempt} failed ({e}); retrying in {wait:?}");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The wait after failed attempt `attempt` (1-based): uniform in `[d/2, d]` with
    /// `d = first_backoff * 2^(attempt-1)`.
    fn backoff(&self, attempt: u32) -> Duration {
        let d = self.first_backoff * 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        d / 2 + d.mul_f64(jitter() / 2.0)
    }
}

/// A uniform number in `[0, 1)` from the system's random source (0.5 if it has none).
fn jitter() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// Whether `e` may go away by itself: the registry could not be reached or answered with an
/// error, or a transfer broke off. Refusals (integrity, trust, health) are final.
pub fn is_transient(e: &FleetError) -> bool {
    matches!(
        e,
        FleetError::Registry { .. } | FleetError::Interrupted { .. }
    )
}

/// What a sync needs.
pub struct SyncOptions<'a> {
    /// The channel's reference (`registry/repository:tag`).
    pub channel: &'a str,
    /// Allow plain HTTP to registries that are not on this machine.
    pub insecure: bool,
    /// This device's id ([`cohort::device_id`]).
    pub device_id: &'a str,
    /// A skill's health check (None: none).
    pub health: Option<&'a dyn HealthCheck>,
    /// A flow's health check (None: none).
    pub flow_health: Option<&'a dyn HealthCheck>,
    /// Retries of unreachable registries.
    pub retry: Retry,
    /// A repository (`registry/repository`, no tag) to push the status record to after each
    /// round, tagged with the device id (None: kept on the device only).
    pub report: Option<&'a str>,
}

/// One round: reads the channel, brings every entry in this device's cohort to the channel's
/// digest, pushes the status to `report` when one is given, writes `<store>/status.json` and
/// returns it. When the channel cannot be read, nothing is installed, the status says so, and
/// the error is returned ([`FleetError::ChannelUnavailable`]). An entry that fails does not
/// stop the others; the status's result is then [`SyncResult::Partial`]. A report that cannot
/// be pushed is recorded in the status (`report_error`) and fails nothing.
pub fn sync(store: &ModelStore, options: &SyncOptions<'_>) -> Result<Status, FleetError> {
    // A mistyped reference is refused before anything is written.
    ArtifactRef::parse(options.channel, options.insecure)?;
    if let Some(report) = options.report {
        ArtifactRef::parse(&format!("{report}:{}", options.device_id), options.insecure)?;
    }
    // One round at a time per store (an agent and a `sync` by hand): the second waits, then
    // finds the first's work done.
    let lock_path = store.root().join(".sync.lock");
    let _lock = edgenlu_models::atomic::lock_file(&lock_path).map_err(io_err(&lock_path))?;
    let previous = status::read(store.root())
        .unwrap_or_else(|e| {
            tracing::warn!("ignoring the status record: {e}");
            None
        })
        .filter(|p| p.channel == options.channel);
    let mut status = Status {
        device_id: options.device_id.to_string(),
        channel: options.channel.to_string(),
        channel_digest: None,
        last_sync: super::artifact::now_rfc3339(),
        result: SyncResult::Ok,
        error: None,
        report_error: None,
        entries: Vec::new(),
    };
    let round = run_round(store, options, previous, &mut status);
    if let Some(report) = options.report {
        status.report_error = push_report(report, options, &status)
            .err()
            .map(|e| error_chain(&e));
    }
    status::write(store.root(), &status)?;
    round.map(|()| status)
}

/// Fills `status` with what the round did (see [`sync`]).
fn run_round(
    store: &ModelStore,
    options: &SyncOptions<'_>,
    previous: Option<Status>,
    status: &mut Status,
) -> Result<(), FleetError> {
    let (channel, digest) = match read_channel(store, options) {
        Ok(c) => c,
        Err(e) => {
            let error = FleetError::ChannelUnavailable {
                reference: options.channel.to_string(),
                source: Box::new(e),
            };
            status.result = SyncResult::Failed;
            status.error = Some(error_chain(&error));
            // What the device had stays as the last round saw it.
            if let Some(p) = previous {
                status.channel_digest = p.channel_digest;
                status.entries = p.entries;
            }
            return Err(error);
        }
    };
    status.channel_digest = Some(digest);
    for entry in &channel.entries {
        let before = previous
            .as_ref()
            .and_then(|p| p.entry(entry.kind, &entry.name));
        status
            .entries
            .push(sync_entry(store, options, entry, before));
    }
    let failed = status
        .entries
        .iter()
        .filter(|e| matches!(e.result, EntryResult::RolledBack | EntryResult::Failed))
        .count();
    if failed > 0 {
        status.result = SyncResult::Partial;
        status.error = Some(format!(
            "{failed} of {} entries failed",
            status.entries.len()
        ));
    }
    Ok(())
}

/// Pushes `status` to repository `report` at the device id's tag, retried while the registry
/// cannot be reached.
fn push_report(report: &str, options: &SyncOptions<'_>, status: &Status) -> Result<(), FleetError> {
    let reference = format!("{report}:{}", options.device_id);
    let client = RegistryClient::new(ArtifactRef::parse(&reference, options.insecure)?)?;
    options
        .retry
        .run(|| status::push(&client, status))
        .map(drop)
}

/// The channel and its manifest digest, retried while the registry cannot be reached.
fn read_channel(
    store: &ModelStore,
    options: &SyncOptions<'_>,
) -> Result<(Channel, String), FleetError> {
    let target = ArtifactRef::parse(options.channel, options.insecure)?;
    let client = RegistryClient::new(target)?;
    options
        .retry
        .run(|| channel::fetch(&client, &download_dir(store)))
}

/// Brings one entry to the channel's digest if this device is in its cohort; what it did.
fn sync_entry(
    store: &ModelStore,
    options: &SyncOptions<'_>,
    entry: &ChannelEntry,
    before: Option<&EntryStatus>,
) -> EntryStatus {
    let digest = entry.digest().to_string();
    let have = installed(store, entry.kind, &entry.name);
    let sha256 = have.as_ref().map(|(_, sha)| sha.clone());
    // The digest a sync installed, as long as the device still runs that very file.
    let installed_digest = before
        .filter(|b| b.installed_sha256.is_some() && b.installed_sha256 == sha256)
        .and_then(|b| b.installed_digest.clone());
    let mut s = EntryStatus {
        kind: entry.kind,
        name: entry.name.clone(),
        channel_digest: digest.clone(),
        rollout: entry.rollout,
        in_cohort: cohort::in_cohort(options.device_id, &entry.name, &digest, entry.rollout),
        installed_version: have.as_ref().map(|(v, _)| v.clone()),
        installed_sha256: sha256,
        installed_digest,
        result: EntryResult::UpToDate,
        error: None,
        failed_digest: before.and_then(|b| b.failed_digest.clone()),
        rollback_error: before.and_then(|b| b.rollback_error.clone()),
    };
    if !s.in_cohort {
        s.result = EntryResult::NotInCohort;
    } else if s.installed_digest.as_deref() == Some(digest.as_str()) {
        s.result = EntryResult::UpToDate;
    } else if s.failed_digest.as_deref() == Some(digest.as_str()) {
        s.result = EntryResult::SkippedFailed;
    } else {
        install_entry(store, options, entry, &mut s);
    }
    s
}

/// Pulls `entry` and records in `s` what came of it and what the device now runs.
fn install_entry(
    store: &ModelStore,
    options: &SyncOptions<'_>,
    entry: &ChannelEntry,
    s: &mut EntryStatus,
) {
    let digest = entry.digest().to_string();
    match pull_entry(store, options, entry) {
        Ok(()) => {
            s.result = EntryResult::Installed;
            s.installed_digest = Some(digest);
        }
        Err(e @ FleetError::Install(InstallError::HealthCheck { .. })) => {
            s.result = EntryResult::RolledBack;
            s.error = Some(error_chain(&e));
            s.failed_digest = Some(digest);
            s.rollback_error = s.error.clone();
        }
        Err(e) => {
            s.result = EntryResult::Failed;
            s.error = Some(error_chain(&e));
        }
    }
    let now = installed(store, entry.kind, &entry.name);
    if now.as_ref().map(|(_, sha)| sha) != s.installed_sha256.as_ref() {
        s.installed_version = now.as_ref().map(|(v, _)| v.clone());
        s.installed_sha256 = now.map(|(_, sha)| sha);
    }
    if s.result != EntryResult::Installed && s.installed_sha256.is_none() {
        s.installed_digest = None;
    }
}

/// Pulls `entry`'s pinned artifact, retried while the registry cannot be reached.
fn pull_entry(
    store: &ModelStore,
    options: &SyncOptions<'_>,
    entry: &ChannelEntry,
) -> Result<(), FleetError> {
    let client = RegistryClient::new(ArtifactRef::parse(&entry.reference, options.insecure)?)?;
    let pull_options = PullOptions {
        health: options.health,
        flow_health: options.flow_health,
        expect: Some(entry.kind),
        // A channel names a model by name: it replaces the store's model of that name (never
        // one an installed skill holds, the store's rule).
        force: entry.kind == EntryKind::Model,
        now: edgenlu_trust::unix_now(),
    };
    options
        .retry
        .run(|| pull(&client, store, pull_options))
        .map(drop)
}

/// The version and SHA-256 of what the device has installed as `kind` `name`, if anything.
fn installed(store: &ModelStore, kind: EntryKind, name: &str) -> Option<(String, String)> {
    match kind {
        EntryKind::Skill => {
            let state = SkillStore::at(store.root()).ok()?.state(name).ok()??;
            Some((state.current.version.to_string(), state.current.sha256))
        }
        EntryKind::Flow => {
            let flows = SkillStore::flows_at(store.root()).ok()?;
            let (verified, _) = flows.current(FLOW_SLOT).ok()?;
            let state = flows.state(FLOW_SLOT).ok()??;
            (verified.manifest.name == name)
                .then(|| (state.current.version.to_string(), state.current.sha256))
        }
        EntryKind::Model => {
            let entry = store.entry(name).ok()??;
            Some((
                entry.sha256[..12.min(entry.sha256.len())].to_string(),
                entry.sha256,
            ))
        }
    }
}

/// `e` and its sources, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The agent: [`sync`] every `interval` (give or take a tenth, at random, so a fleet spreads
/// its polls) until `stop` is set or `rounds` rounds ran; `report` is told how each ended. A
/// failed round never ends the loop: the device keeps what it has and tries again.
pub fn run_agent(
    store: &ModelStore,
    options: &SyncOptions<'_>,
    interval: Duration,
    rounds: Option<u64>,
    stop: &AtomicBool,
    mut report: impl FnMut(&Result<Status, FleetError>),
) {
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed) {
        report(&sync(store, options));
        done += 1;
        if rounds.is_some_and(|n| done >= n) {
            return;
        }
        let wait = interval.mul_f64(0.9 + 0.2 * jitter());
        let until = std::time::Instant::now() + wait;
        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100).min(wait));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_in_its_upper_half() {
        let retry = Retry {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
        };
        for attempt in 1..=4u32 {
            let d = Duration::from_millis(100 * 2u64.pow(attempt - 1));
            for _ in 0..50 {
                let w = retry.backoff(attempt);
                assert!(w >= d / 2 && w <= d, "attempt {attempt}: {w:?}");
            }
        }
    }

    #[test]
    fn only_transient_errors_are_retried_and_only_so_often() {
        let retry = Retry {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
        };
        let mut calls = 0;
        let r: Result<(), _> = retry.run(|| {
            calls += 1;
            Err(FleetError::Interrupted {
                digest: "d".into(),
                received: 0,
                declared: 1,
                attempts: 1,
                last_error: "cut".into(),
            })
        });
        assert!(r.is_err());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r: Result<(), _> = retry.run(|| {
            calls += 1;
            Err(FleetError::UnsignedModel("m".into()))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
