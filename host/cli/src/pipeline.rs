//! `edgenlu run`: utterances through the device pipeline (router → skill → policy → phrasing
//! or uplink), one at a time. `edgenlu eval` and `edgenlu serve` build their pipelines here
//! too, from the same flags.

use anyhow::{Context, Result};
use edgenlu::bundled::DEFAULT_INDEX;
use edgenlu::Runtime;
use edgenlu_device::builder::PipelineBuilder;
use edgenlu_device::pipeline::{DeviceState, Pipeline};
use edgenlu_device::uplink::UplinkConfig;
use edgenlu_models::store::ModelStore;
use edgenlu_train::datastore::excerpt;
use edgenlu_trust::skills::SkillStore;

/// Which skills answer, and how the vendor's policy is configured.
#[derive(clap::Args, Clone, Default)]
pub struct SkillsArgs {
    /// A datastore (built by `edgenlu skill index` or `skill train`) the bundled intents skill
    /// answers from, as a skill named after it; repeat for several. The vendor's own skill: it
    /// may use the uplink. Default, when no --skill is given either: snips-intents (serve: the
    /// installed skill `intents` if there is one).
    #[arg(long = "index", value_name = "NAME")]
    indexes: Vec<String>,
    /// An installed skill (`edgenlu install`), loaded under its manifest's grants; it may use
    /// the uplink only if its manifest has the `uplink` capability. Repeat for several.
    #[arg(long = "skill", value_name = "NAME")]
    skills: Vec<String>,
    /// A config value for the default policy, KEY=VALUE (min-confidence, min-battery,
    /// max-chars, max-out-of-scope); repeat for several.
    #[arg(long = "policy", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    policy: Vec<(String, String)>,
    /// Run the bundled default flow even when a flow is installed (`edgenlu install` of a
    /// file whose manifest says `kind: flow`): to compare the device's flow with the default.
    #[arg(long)]
    pub bundled_flow: bool,
}

impl SkillsArgs {
    /// These arguments, or when they name no skill and skill `name` is installed in `skills`,
    /// that skill (`edgenlu serve`'s default, which then follows its new versions).
    pub fn or_installed(&self, skills: &SkillStore, name: &str) -> Result<SkillsArgs> {
        let mut args = self.clone();
        if args.indexes.is_empty() && args.skills.is_empty() && skills.state(name)?.is_some() {
            args.skills.push(name.to_string());
        }
        Ok(args)
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// The device's state as the policy sees it.
#[derive(clap::Args, Clone, Copy)]
pub struct DeviceArgs {
    /// Whether the device is online, as the policy sees it.
    #[arg(long, value_enum, default_value = "up")]
    network: Network,
    /// Battery charge in percent, as the policy sees it (default: mains power).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    battery: Option<u8>,
}

/// `--network` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Network {
    Up,
    Down,
}

impl DeviceArgs {
    /// The state these flags describe.
    pub fn state(self) -> DeviceState {
        DeviceState {
            network_up: matches!(self.network, Network::Up),
            battery_percent: self.battery,
        }
    }
}

/// The pipeline over the skills `args` names, phrasing with SmolLM2 when `phrase`, with the
/// uplink the environment configures, run by the installed flow (unless `--bundled-flow`).
pub fn pipeline(
    rt: &Runtime,
    store: &ModelStore,
    args: &SkillsArgs,
    phrase: bool,
) -> Result<Pipeline> {
    let mut builder = PipelineBuilder::new(rt);
    let mut indexes = args.indexes.clone();
    if indexes.is_empty() && args.skills.is_empty() {
        indexes.push(DEFAULT_INDEX.to_string());
    }
    for index in &indexes {
        builder = builder.datastore(index)?;
    }
    if !args.skills.is_empty() {
        let installed = SkillStore::at(store.root())?;
        for name in &args.skills {
            builder = builder.installed(&installed, name)?;
        }
    }
    if !args.bundled_flow {
        builder = builder.installed_flow(crate::flows::flow_store(store)?);
    }
    Ok(builder
        .policy_config(args.policy.iter().cloned().collect())
        .phrase(phrase)
        .uplink(UplinkConfig::from_env()?)
        .build()?)
}

/// `edgenlu run`: one JSON line per utterance.
pub fn run(pipeline: &Pipeline, texts: &[String], device: DeviceArgs) -> Result<()> {
    for text in texts {
        let answer = pipeline
            .answer(text, device.state())
            .with_context(|| format!("answering {}", excerpt(text)))?;
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "text": text, "response": answer }))?
        );
    }
    Ok(())
}
