//! The update agent's commands: `channel set` / `channel show` (the publisher's side),
//! `sync` (one round), `agent` (the loop) and `status` (the device's record).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use edgenlu_device::installed::ProbeCheck;
use edgenlu_fleet::channel::{self, Channel, ChannelEntry, EntryKind, EntryRequest};
use edgenlu_fleet::client::RegistryClient;
use edgenlu_fleet::cohort;
use edgenlu_fleet::reference::ArtifactRef;
use edgenlu_fleet::status::{self, EntryResult, Status};
use edgenlu_fleet::sync::{error_chain, run_agent, sync, Retry, SyncOptions};
use edgenlu_models::store::ModelStore;
use std::path::PathBuf;
use std::time::Duration;

/// `edgenlu channel ...`.
#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Publish a channel: each --skill, --model and --flow artifact is resolved to its
    /// manifest digest (the channel pins it) and its name; a --rollout right after one sets
    /// the percentage of devices that take it (default 100). --file starts from a channel JSON
    /// (as `channel show --json` prints); entries given here replace its entries of the same
    /// kind and name.
    ///
    /// Example: edgenlu channel set registry.example.com/acme/channel:stable --skill registry.example.com/acme/intents:2 --rollout 20
    ///
    /// Example: edgenlu channel set 127.0.0.1:5000/acme/channel:stable --file stable.json --model 127.0.0.1:5000/acme/minilm:1
    Set(SetArgs),
    /// Print a channel's entries (kind, name, rollout, pinned reference), or its JSON.
    ///
    /// Example: edgenlu channel show registry.example.com/acme/channel:stable --json
    Show {
        /// The channel: `registry/repository:tag`.
        reference: String,
        /// Print the channel's JSON.
        #[arg(long)]
        json: bool,
        /// Allow plain HTTP to a registry that is not on this machine.
        #[arg(long)]
        insecure: bool,
    },
}

/// `edgenlu channel set`.
#[derive(Args)]
pub struct SetArgs {
    /// Where to publish the channel: `registry/repository:tag`.
    reference: String,
    /// A skill artifact (a tag or a digest).
    #[arg(long)]
    skill: Vec<String>,
    /// A model artifact.
    #[arg(long)]
    model: Vec<String>,
    /// A flow artifact.
    #[arg(long)]
    flow: Vec<String>,
    /// Percentage of devices (0-100) that take the artifact named just before it.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    rollout: Vec<u8>,
    /// A channel JSON file to start from.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Allow plain HTTP to registries that are not on this machine.
    #[arg(long)]
    insecure: bool,
}

/// The flags `sync` and `agent` share.
#[derive(Args)]
pub struct FollowArgs {
    /// The channel to follow: `registry/repository:tag`.
    #[arg(long)]
    channel: String,
    /// This device's id, written to <store>/device-id (default: the id there, created once
    /// from random bytes).
    #[arg(long)]
    device_id: Option<String>,
    /// Allow plain HTTP to registries that are not on this machine.
    #[arg(long)]
    insecure: bool,
    /// Requests to an unreachable registry before a round gives up (backoff about 0.5, 1,
    /// 2 s... with jitter between them).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10))]
    attempts: u32,
    /// Also push the status record after each round to this repository
    /// (`registry/repository`), tagged with the device id; a push that fails is noted in the
    /// record and fails nothing.
    #[arg(long, value_name = "REPO")]
    report: Option<String>,
    /// Print the status record as JSON after each round.
    #[arg(long)]
    json: bool,
}

/// `edgenlu agent`.
#[derive(Args)]
pub struct AgentArgs {
    #[command(flatten)]
    follow: FollowArgs,
    /// Seconds between rounds (each wait drawn within 10 % of it).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Stop after this many rounds (default: until SIGTERM or SIGINT).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: Option<u64>,
}

/// Runs a `channel` command; `matches` are the `channel set` matches (for where each
/// --rollout stands).
pub fn channel(cmd: ChannelCommand, matches: Option<&clap::ArgMatches>) -> Result<()> {
    match cmd {
        ChannelCommand::Set(args) => {
            let requests = entry_requests(&args, matches)?;
            let mut channel = match &args.file {
                Some(file) => {
                    let bytes = std::fs::read(file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    Channel::parse(&file.display().to_string(), &bytes)?
                }
                None => Channel {
                    format: channel::CHANNEL_FORMAT,
                    entries: Vec::new(),
                },
            };
            for request in &requests {
                let entry = channel::resolve_entry(request, args.insecure)?;
                channel
                    .entries
                    .retain(|e| (e.kind, &e.name) != (entry.kind, &entry.name));
                channel.entries.push(entry);
            }
            let client = RegistryClient::new(ArtifactRef::parse(&args.reference, args.insecure)?)?;
            let pushed = channel::publish(&client, &channel)?;
            println!(
                "published channel {}@{} ({} entries)",
                pushed.reference,
                pushed.manifest_digest,
                channel.entries.len()
            );
            print_entries(&channel.entries);
        }
        ChannelCommand::Show {
            reference,
            json,
            insecure,
        } => {
            let client = RegistryClient::new(ArtifactRef::parse(&reference, insecure)?)?;
            let tmp = std::env::temp_dir();
            let (channel, digest) = channel::fetch(&client, &tmp)?;
            if json {
                println!("{}", String::from_utf8_lossy(&channel.to_bytes()));
            } else {
                println!("channel {}@{digest}", client.target().whole());
                print_entries(&channel.entries);
            }
        }
    }
    Ok(())
}

fn print_entries(entries: &[ChannelEntry]) {
    for e in entries {
        println!(
            "  {} {} rollout {}% {}",
            e.kind, e.name, e.rollout, e.reference
        );
    }
}

/// The entries `channel set` names, in command-line order, each with the --rollout that
/// follows it (before the next entry), else 100.
fn entry_requests(args: &SetArgs, matches: Option<&clap::ArgMatches>) -> Result<Vec<EntryRequest>> {
    let positions = |id: &str, n: usize| -> Vec<usize> {
        matches
            .and_then(|m| m.indices_of(id))
            .map_or_else(|| (0..n).collect(), |i| i.collect())
    };
    let mut entries: Vec<(usize, EntryRequest)> = Vec::new();
    for (id, kind, refs) in [
        ("skill", EntryKind::Skill, &args.skill),
        ("model", EntryKind::Model, &args.model),
        ("flow", EntryKind::Flow, &args.flow),
    ] {
        for (at, reference) in positions(id, refs.len()).into_iter().zip(refs) {
            let request = EntryRequest {
                kind,
                reference: reference.clone(),
                rollout: 100,
            };
            entries.push((at, request));
        }
    }
    entries.sort_by_key(|(at, _)| *at);
    let mut given = vec![false; entries.len()];
    for (at, rollout) in positions("rollout", args.rollout.len())
        .into_iter()
        .zip(&args.rollout)
    {
        let Some(i) = entries.iter().rposition(|(e, _)| *e < at) else {
            bail!("--rollout {rollout} comes before any --skill, --model or --flow");
        };
        if std::mem::replace(&mut given[i], true) {
            bail!("two --rollout flags follow {}", entries[i].1.reference);
        }
        entries[i].1.rollout = *rollout;
    }
    if entries.is_empty() && args.file.is_none() {
        bail!("name what the channel holds: --skill, --model, --flow or --file");
    }
    Ok(entries.into_iter().map(|(_, r)| r).collect())
}

/// The device id: `--device-id` (written to the store), else the store's.
fn device_id(args: &FollowArgs, store: &ModelStore) -> Result<String> {
    if let Some(id) = &args.device_id {
        cohort::set_device_id(store.root(), id)?;
    }
    Ok(cohort::device_id(store.root())?)
}

/// Runs `f` with the sync options `args` and the device's health checks give.
fn with_options<T>(
    args: &FollowArgs,
    store: &ModelStore,
    f: impl FnOnce(&SyncOptions<'_>) -> Result<T>,
) -> Result<T> {
    let id = device_id(args, store)?;
    let rt = crate::runtime(store.clone())?;
    let probes = ProbeCheck(&rt);
    let flow_probes = crate::flows::DevicePipelineCheck {
        runtime: &rt,
        store,
    };
    f(&SyncOptions {
        channel: &args.channel,
        insecure: args.insecure,
        device_id: &id,
        health: Some(&probes),
        flow_health: Some(&flow_probes),
        retry: Retry {
            attempts: args.attempts,
            ..Retry::default()
        },
        report: args.report.as_deref(),
    })
}

/// `edgenlu sync`: one round; fails when the channel cannot be read or an entry failed.
pub fn sync_once(args: &FollowArgs, store: &ModelStore) -> Result<()> {
    let status = with_options(args, store, |options| Ok(sync(store, options)?))?;
    print_round(&status, args.json);
    if let Some(error) = &status.error {
        bail!("sync of {}: {error}", status.channel);
    }
    Ok(())
}

/// `edgenlu agent`: rounds until SIGTERM/SIGINT (or --rounds).
pub fn agent(args: &AgentArgs, store: &ModelStore) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let interval = Duration::from_secs(args.interval);
    with_options(&args.follow, store, |options| {
        eprintln!(
            "edgenlu agent: device {} follows {} every {}s",
            options.device_id, options.channel, args.interval
        );
        run_agent(
            store,
            options,
            interval,
            args.rounds,
            &stop,
            |round| match round {
                Ok(status) => print_round(status, args.follow.json),
                Err(e) => eprintln!("{}", error_chain(e)),
            },
        );
        Ok(())
    })
}

/// Prints a round's outcome: the record as JSON, or a line per entry.
fn print_round(status: &Status, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(status).expect("serializable")
        );
        return;
    }
    for e in &status.entries {
        let has = match (&e.installed_version, &e.installed_digest) {
            (Some(v), Some(d)) => format!("version {v} ({d})"),
            (Some(v), None) => format!("version {v}"),
            (None, _) => "nothing".to_string(),
        };
        let what = match e.result {
            EntryResult::Installed => format!("installed {has}"),
            EntryResult::UpToDate => format!("up to date: {has}"),
            EntryResult::NotInCohort => {
                format!("not in the {}% cohort; has {has}", e.rollout)
            }
            EntryResult::RolledBack => format!("rolled back, has {has}"),
            EntryResult::SkippedFailed => {
                format!(
                    "{} failed its health check here before; has {has}",
                    e.channel_digest
                )
            }
            EntryResult::Failed => format!("failed, has {has}"),
        };
        let why = e.error.as_ref().map_or(String::new(), |w| format!(": {w}"));
        println!("{} {}: {what}{why}", e.kind, e.name);
    }
    if let Some(error) = &status.report_error {
        println!("the status could not be pushed: {error}");
    }
    println!(
        "sync of {} at {}: {}",
        status.channel,
        status.last_sync,
        serde_json::to_value(status.result)
            .expect("serializable")
            .as_str()
            .unwrap_or("?")
    );
}

/// `edgenlu status`.
pub fn status(store: &ModelStore, json: bool) -> Result<()> {
    let Some(status) = status::read(store.root())? else {
        let id = cohort::device_id(store.root())?;
        if json {
            println!(
                "{}",
                serde_json::json!({ "device_id": id, "last_sync": null })
            );
        } else {
            println!("device {id}: never synced (edgenlu sync --channel REF)");
        }
        return Ok(());
    };
    if !json {
        println!("device {} follows {}", status.device_id, status.channel);
    }
    print_round(&status, json);
    if !json {
        if let Some(error) = &status.error {
            println!("last error: {error}");
        }
    }
    Ok(())
}
