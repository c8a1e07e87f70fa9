//! `edgenlu pull`: fetch a skill or model from an OCI registry and install it as `install` and
//! `models import` would, after the registry digest and the device's own trust checks.

use anyhow::Result;
use clap::Args;
use edgenlu_device::installed::ProbeCheck;
use edgenlu_fleet::client::RegistryClient;
use edgenlu_fleet::pull::{pull, PullOptions, Pulled};
use edgenlu_fleet::reference::ArtifactRef;
use edgenlu_models::store::ModelStore;
use edgenlu_trust::unix_now;

/// `edgenlu pull REF`.
#[derive(Args)]
pub struct PullArgs {
    /// What to pull: `registry/repository:tag` or `registry/repository@sha256:...`.
    reference: String,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
    /// A model may replace the store's model of its name (never one an installed skill
    /// names or a signed one).
    #[arg(long)]
    force: bool,
    /// Install a skill without its health check (the probes in its manifest).
    #[arg(long)]
    no_health_check: bool,
}

/// Pulls and installs what `args` names.
pub fn run(args: &PullArgs, store: &ModelStore) -> Result<()> {
    let target = ArtifactRef::parse(&args.reference, args.insecure)?;
    let client = RegistryClient::new(target)?;
    let rt = crate::runtime(store.clone())?;
    let probes = ProbeCheck(&rt);
    let flow_probes = crate::flows::DevicePipelineCheck {
        runtime: &rt,
        store,
    };
    let options = PullOptions {
        health: (!args.no_health_check).then_some(&probes as _),
        flow_health: (!args.no_health_check).then_some(&flow_probes as _),
        expect: None,
        force: args.force,
        now: unix_now(),
    };
    let from = client.target().whole();
    match pull(&client, store, options)? {
        Pulled::Skill {
            kind,
            manifest_digest,
            report,
        } => {
            let health = match report.probes_passed {
                Some(n) => format!("health check passed ({n} probes)"),
                None => "no health check".into(),
            };
            let previous = report
                .previous
                .map_or(String::new(), |p| format!(" (previous: {p})"));
            println!(
                "installed {kind} {} version {}{previous} from {from}@{manifest_digest}; {health}",
                report.name, report.version
            );
        }
        Pulled::Model {
            manifest_digest,
            entry,
            signed_by,
            downloaded,
        } => {
            let what = if downloaded {
                "installed"
            } else {
                "already had"
            };
            println!(
                "{what} model {} sha256 {} ({} bytes) from {from}@{manifest_digest}, signed by {signed_by}",
                entry.name, entry.sha256, entry.size
            );
        }
    }
    Ok(())
}
