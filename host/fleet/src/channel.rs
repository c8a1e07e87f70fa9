//! Channels: what a fleet should run, as an OCI artifact at a tag (e.g.
//! `registry.example.com/acme/channel:stable`). Its one layer, of media type
//! [`CHANNEL_MEDIA_TYPE`], is a JSON [`Channel`]: entries naming a skill, model or flow, the
//! artifact pinned by manifest digest, and the rollout percentage of devices that take it.
//! The publisher side ([`publish`]) resolves each artifact to its digest and name; the device
//! side ([`fetch`]) reads and validates a channel before anything is pulled.

use super::artifact::{self, Artifact};
use super::client::RegistryClient;
use super::download::fetch_blob;
use super::push::{push_document, Pushed};
use super::reference::ArtifactRef;
use super::FleetError;
use std::collections::BTreeSet;
use std::path::Path;

/// The media type of a channel's layer (and the manifest's `artifactType`).
pub const CHANNEL_MEDIA_TYPE: &str = "application/vnd.edgenlu.channel.v1+json";

/// The largest channel layer a device reads.
pub const MAX_CHANNEL_BYTES: u64 = 1 << 20;

/// The channel format this code reads and writes.
pub const CHANNEL_FORMAT: u32 = 1;

/// What an entry installs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A signed skill (to the skill store).
    Skill,
    /// A signed model (to the model store, its signature to the trust store).
    Model,
    /// A signed flow (to the flow store: the device's flow).
    Flow,
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryKind::Skill => "skill",
            EntryKind::Model => "model",
            EntryKind::Flow => "flow",
        })
    }
}

/// One thing a channel says devices should run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelEntry {
    /// Skill, model or flow.
    pub kind: EntryKind,
    /// The skill's, model's or flow's name (the artifact's title annotation).
    pub name: String,
    /// The artifact, pinned: `registry/repository@sha256:<hex>`.
    pub reference: String,
    /// Percentage of devices (0–100) in this entry's cohort; see [`crate::cohort`].
    pub rollout: u8,
}

impl ChannelEntry {
    /// The manifest digest the reference pins (`sha256:<hex>`).
    pub fn digest(&self) -> &str {
        self.reference
            .rsplit_once('@')
            .map_or("", |(_, digest)| digest)
    }
}

/// A channel's layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// [`CHANNEL_FORMAT`].
    pub format: u32,
    /// What devices should run: at most one entry per kind and name.
    pub entries: Vec<ChannelEntry>,
}

impl Channel {
    /// Parses and validates a channel (`reference` names it in errors): the format, each
    /// entry's name, pinned reference and rollout, no name twice for one kind.
    pub fn parse(reference: &str, bytes: &[u8]) -> Result<Channel, FleetError> {
        let bad = |reason: String| FleetError::BadChannel {
            reference: reference.to_string(),
            reason,
        };
        let channel: Channel = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("is not a valid channel: {e}")))?;
        if channel.format != CHANNEL_FORMAT {
            return Err(bad(format!(
                "format {} (this device reads format {CHANNEL_FORMAT})",
                channel.format
            )));
        }
        let mut seen = BTreeSet::new();
        for e in &channel.entries {
            edgenlu_models::store::validate_name(&e.name)
                .map_err(|err| bad(format!("entry {:?}: {err}", e.name)))?;
            if e.rollout > 100 {
                return Err(bad(format!(
                    "entry {}: rollout {} > 100",
                    e.name, e.rollout
                )));
            }
            let pinned = ArtifactRef::parse(&e.reference, false)
                .ok()
                .and_then(|r| r.reference.digest().map(str::to_string));
            if pinned.as_deref().and_then(artifact::sha256_of).is_none() {
                return Err(bad(format!(
                    "entry {}: reference {:?} is not pinned by a sha256 digest",
                    e.name, e.reference
                )));
            }
            if !seen.insert((e.kind, e.name.as_str())) {
                return Err(bad(format!("{} {} is named twice", e.kind, e.name)));
            }
        }
        Ok(channel)
    }

    /// The channel as the JSON its layer holds.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("serializable")
    }
}

/// What the publisher asks to put into a channel: an artifact by any reference and the
/// percentage of devices that take it.
#[derive(Debug, Clone)]
pub struct EntryRequest {
    /// Skill, model or flow.
    pub kind: EntryKind,
    /// The artifact (a tag or a digest).
    pub reference: String,
    /// 0–100.
    pub rollout: u8,
}

/// Resolves `request` to a channel entry: the artifact's manifest fetched (its digest pins
/// it), checked to be of the kind asked (a skill or flow is a Wasm artifact, a model a
/// ModelPack one), its name from the title annotation.
pub fn resolve_entry(request: &EntryRequest, insecure: bool) -> Result<ChannelEntry, FleetError> {
    let target = ArtifactRef::parse(&request.reference, insecure)?;
    let client = RegistryClient::new(target)?;
    let whole = client.target().whole();
    let (manifest, digest) = client.manifest()?;
    let is_model = matches!(
        artifact::classify(&whole, &manifest)?,
        Artifact::Model { .. }
    );
    if is_model != (request.kind == EntryKind::Model) {
        return Err(FleetError::NotAnArtifact {
            reference: whole,
            reason: format!(
                "it is a {} artifact, not a {}",
                if is_model { "model" } else { "Wasm" },
                request.kind
            ),
        });
    }
    let name = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(oci_spec::image::ANNOTATION_TITLE))
        .cloned()
        .ok_or_else(|| FleetError::NotAnArtifact {
            reference: whole.clone(),
            reason: format!(
                "no {} annotation names it",
                oci_spec::image::ANNOTATION_TITLE
            ),
        })?;
    let r = &client.target().reference;
    Ok(ChannelEntry {
        kind: request.kind,
        name,
        reference: format!("{}/{}@{digest}", r.registry(), r.repository()),
        rollout: request.rollout,
    })
}

/// Publishes `channel` at `client`'s reference (validated first, as a device will).
pub fn publish(client: &RegistryClient, channel: &Channel) -> Result<Pushed, FleetError> {
    let bytes = channel.to_bytes();
    Channel::parse(&client.target().whole(), &bytes)?;
    let title = client.target().reference.repository().to_string();
    let version = format!("{} entries", channel.entries.len());
    push_document(client, CHANNEL_MEDIA_TYPE, bytes, "channel", title, version)
}

/// Fetches and validates the channel at `client`'s reference, downloading its layer into
/// `tmp`; returns it with the channel manifest's digest.
pub fn fetch(client: &RegistryClient, tmp: &Path) -> Result<(Channel, String), FleetError> {
    let whole = client.target().whole();
    let (manifest, digest) = client.manifest()?;
    let is_channel = manifest.artifact_type.as_deref() == Some(CHANNEL_MEDIA_TYPE)
        && manifest.layers.len() == 1
        && manifest.layers[0].media_type == CHANNEL_MEDIA_TYPE;
    if !is_channel {
        return Err(FleetError::NotAnArtifact {
            reference: whole,
            reason: format!(
                "not a channel: expected artifactType and one layer {CHANNEL_MEDIA_TYPE}"
            ),
        });
    }
    let blob = fetch_blob(
        client,
        &manifest.layers[0],
        tmp,
        MAX_CHANNEL_BYTES,
        "channel",
    )?;
    Ok((Channel::parse(&whole, &blob.read()?)?, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, reference: &str, rollout: u8) -> ChannelEntry {
        ChannelEntry {
            kind: EntryKind::Skill,
            name: name.into(),
            reference: reference.into(),
            rollout,
        }
    }

    fn parse(entries: Vec<ChannelEntry>) -> Result<Channel, FleetError> {
        let c = Channel {
            format: CHANNEL_FORMAT,
            entries,
        };
        Channel::parse("r", &c.to_bytes())
    }

    #[test]
    fn channels_are_validated() {
        let pinned = format!("127.0.0.1:5000/acme/intents@sha256:{}", "a".repeat(64));
        let ok = parse(vec![entry("intents", &pinned, 50)]).unwrap();
        assert_eq!(ok.entries[0].digest(), format!("sha256:{}", "a".repeat(64)));
        for bad in [
            vec![entry("intents", "127.0.0.1:5000/acme/intents:2", 50)],
            vec![entry("intents", &pinned, 101)],
            vec![entry("../x", &pinned, 10)],
            vec![entry("intents", &pinned, 10), entry("intents", &pinned, 20)],
        ] {
            assert!(matches!(parse(bad), Err(FleetError::BadChannel { .. })));
        }
        assert!(matches!(
            Channel::parse("r", br#"{"format": 2, "entries": []}"#),
            Err(FleetError::BadChannel { .. })
        ));
    }
}
