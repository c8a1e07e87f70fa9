//! The device's installed flow in the skill-store commands: `install` of a file whose manifest
//! says `kind: flow` goes to the flow store (`<store>/flows`), checked by running its probes
//! through the device's pipeline; `list` shows it; `rollback` and `remove` take its name (or
//! `flow`). Removing it puts the bundled default flow back.

use crate::pipeline::SkillsArgs;
use anyhow::{bail, Context, Result};
use edgenlu::Runtime;
use edgenlu_device::installed::FlowProbeCheck;
use edgenlu_device::pipeline::Pipeline;
use edgenlu_models::store::ModelStore;
use edgenlu_trust::skills::{HealthCheck, InstallReport, SkillStore, FLOW_SLOT};
use edgenlu_trust::{unix_now, TrustError};

/// The name `rollback` and `remove` accept for the device's flow, whatever it is called.
pub const FLOW_ALIAS: &str = "flow";

/// The device's flow store.
pub fn flow_store(store: &ModelStore) -> Result<SkillStore> {
    SkillStore::flows_at(store.root()).context("opening the flow store")
}

/// Installs flow `bytes` as the device's flow; unless `no_health_check`, its probes are
/// answered through the pipeline `edgenlu serve` would run (the installed skill `intents`,
/// else the default datastore) and a failure rolls it back.
pub fn install(
    rt: &Runtime,
    store: &ModelStore,
    bytes: &[u8],
    no_health_check: bool,
) -> Result<InstallReport> {
    let flows = flow_store(store)?;
    if no_health_check {
        return Ok(flows.install(bytes, unix_now())?);
    }
    let pipeline = device_pipeline(rt, store)?;
    let check = FlowProbeCheck {
        runtime: rt,
        pipeline: &pipeline,
    };
    Ok(flows.install_checked_by(&check, bytes, unix_now())?)
}

/// The pipeline `edgenlu serve` would run (the installed skill `intents`, else the default
/// datastore) with the bundled flow: the flow under check takes the flow's place anyway, and
/// loading the installed one would wait on the flow store's lock its install holds.
fn device_pipeline(rt: &Runtime, store: &ModelStore) -> Result<Pipeline> {
    let skills = SkillStore::at(store.root())?;
    let mut args = SkillsArgs::default().or_installed(&skills, "intents")?;
    args.bundled_flow = true;
    crate::pipeline::pipeline(rt, store, &args, false)
}

/// The health check of a flow that arrives from a registry (`pull`, `sync`): its probes
/// answered through [`device_pipeline`], built only when a flow is checked.
pub struct DevicePipelineCheck<'a> {
    /// The runtime the pipeline runs on.
    pub runtime: &'a Runtime,
    /// The device's store.
    pub store: &'a ModelStore,
}

impl HealthCheck for DevicePipelineCheck<'_> {
    fn check(&self, flows: &SkillStore, name: &str) -> Result<usize, String> {
        let pipeline = device_pipeline(self.runtime, self.store).map_err(|e| format!("{e:#}"))?;
        FlowProbeCheck {
            runtime: self.runtime,
            pipeline: &pipeline,
        }
        .check(flows, name)
    }
}

/// Whether `name` means the device's installed flow: `flow`, or the installed flow's name.
pub fn names_the_flow(flows: &SkillStore, name: &str) -> Result<bool> {
    if name == FLOW_ALIAS {
        return Ok(true);
    }
    if flows.state(FLOW_SLOT)?.is_none() {
        return Ok(false);
    }
    Ok(flow_name(flows).as_deref() == Some(name))
}

/// Refuses an operation on the device's flow when none is installed, saying what runs.
fn require_flow(flows: &SkillStore) -> Result<()> {
    if flows.state(FLOW_SLOT)?.is_none() {
        bail!("no flow is installed: the device runs the bundled default flow");
    }
    Ok(())
}

/// The installed flow's name, if it still verifies.
fn flow_name(flows: &SkillStore) -> Option<String> {
    flows.current(FLOW_SLOT).ok().map(|(v, _)| v.manifest.name)
}

/// `edgenlu rollback` of the device's flow: the flow installed before it is the device's again.
pub fn rollback(flows: &SkillStore) -> Result<()> {
    require_flow(flows)?;
    let before = flow_name(flows);
    let s = match flows.rollback(FLOW_SLOT) {
        Err(TrustError::NoPrevious(_)) => bail!(
            "the device's flow {} has no flow installed before it to roll back to; `edgenlu \
             remove flow` puts the bundled default flow back",
            before.unwrap_or_else(|| "?".into())
        ),
        other => other?,
    };
    let now = flow_name(flows).unwrap_or_else(|| "?".into());
    println!(
        "the device's flow is {now} version {} again (was {} version {}, kept as previous)",
        s.current.version,
        before.unwrap_or_else(|| "?".into()),
        s.previous.map_or(0, |p| p.version)
    );
    Ok(())
}

/// `edgenlu remove` of the device's flow: the bundled default flow runs again.
pub fn remove(flows: &SkillStore) -> Result<()> {
    require_flow(flows)?;
    let name = flow_name(flows).unwrap_or_else(|| FLOW_ALIAS.into());
    flows.remove(FLOW_SLOT)?;
    println!("removed flow {name}: the device runs the bundled default flow");
    Ok(())
}

/// The line (or JSON object) `edgenlu list` prints for the device's flow, if one is installed.
pub fn list(flows: &SkillStore, json: bool) -> Result<()> {
    let Some(s) = flows.state(FLOW_SLOT)? else {
        return Ok(());
    };
    let current = flows.current(FLOW_SLOT);
    let name = current.as_ref().ok().map(|(v, _)| v.manifest.name.clone());
    let refused = current.err().map(|e| e.to_string());
    let label = format!("flow {}", name.as_deref().unwrap_or("?"));
    let head = serde_json::json!({ "kind": "flow", "name": name });
    crate::trust::print_installed(&label, head, &s, refused, json);
    Ok(())
}
