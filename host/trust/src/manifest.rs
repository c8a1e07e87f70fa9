//! The skill manifest: what a skill is and what it may use. It is the only source of a
//! installed skill's grants (models, config, limits, tokenizer), so a caller can never hand
//! a skill more than its signed manifest asks for and its publisher may grant.

use super::TrustError;
use std::collections::BTreeMap;

/// Largest manifest accepted, bytes: it is parsed before anything else is loaded, so a huge
/// one must not cost memory or time.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;
/// The manifest format this host reads.
pub const FORMAT: u32 = 1;
/// The tokenizer components a manifest may name: the ones every edgenlu host links.
pub const TOKENIZERS: &[&str] = &["wordpiece", "bpe"];
const MAX_MODELS: usize = 16;
const MAX_CONFIG: usize = 64;
const MAX_CONFIG_BYTES: usize = 4096;
const MAX_PROBES: usize = 32;
const MAX_PROBE_BYTES: usize = 1024;
/// Upper bounds on budgets a manifest may ask for, whatever the publisher.
const MAX_MEMORY_MIB: u32 = 1024;
const MAX_DEADLINE_MS: u64 = 60_000;
const MAX_TOKENS: u32 = 4096;
const MAX_HANDLES: u32 = 1 << 16;
const MAX_RESPONSE_KIB: u32 = 16 << 10;

/// A capability a skill may ask for beyond computing on its granted models.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Send utterances to the device owner's uplink (an OpenAI-compatible server).
    Uplink,
    /// Drive a decoder to generate text.
    Generate,
    /// Be the device's flow: handle every utterance by asking the device's router, skills,
    /// policy and phraser (the `flow-host` interface). Only a manifest of kind `flow` asks
    /// for it, and only a publisher whose delegation allows it can ship one.
    Flow,
}

/// What a signed component is to the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A skill: answers utterances the router sends it (`world skill`).
    #[default]
    Skill,
    /// A flow: the device's NLU logic, joining router, skills, policy, phrasing and uplink
    /// for every utterance (`world flow-component`).
    Flow,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Kind {
    /// Its name in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Skill => "skill",
            Kind::Flow => "flow",
        }
    }
}

/// The kernels a decoder is composed of: a skill importing any of them can generate text
/// without the `llm` interface, so they need [`Capability::Generate`] as `llm` does.
pub const DECODER_KERNELS: &[&str] = &["kv-cache", "attend", "rope"];

impl Capability {
    /// The capability a component needs to import interface `import` (a component import
    /// name, with or without `@version`) at all, if any: `edgenlu:nlu/llm` drives a decoder.
    ///
    /// The standard `wasi:nn` interfaces need none to import: like `models` and `kernels`,
    /// they reach only the models the manifest names. Which graph they run is known only
    /// when the guest asks for one by name, so the decoder is refused then instead: the
    /// device grants a `wasi:nn` llama graph only to a manifest with [`Capability::Generate`]
    /// (`edgenlu::Grants::generate`, set in `edgenlu-device`'s `installed.rs`).
    pub fn for_import(import: &str) -> Option<Capability> {
        match interface_name(import) {
            "edgenlu:nlu/llm" => Some(Capability::Generate),
            "edgenlu:nlu/flow-host" => Some(Capability::Flow),
            _ => None,
        }
    }

    /// The capability a component needs to take `item` from interface `import`, if any: the
    /// decoder kernels of `edgenlu:nlu/kernels` ([`DECODER_KERNELS`]) compose a decoder.
    pub fn for_import_item(import: &str, item: &str) -> Option<Capability> {
        (interface_name(import) == "edgenlu:nlu/kernels" && DECODER_KERNELS.contains(&item))
            .then_some(Capability::Generate)
    }

    /// Every capability a component with `imports` needs, each with the import (and item)
    /// that needs it: the host links these only into skills whose manifest asks for the
    /// capability and whose publisher may grant it. The uplink is no import: the device's
    /// pipeline sends utterances to it for a skill whose manifest asks for it.
    pub fn required_by(
        imports: &[crate::skillfile::ImportedInterface],
    ) -> Vec<(String, Capability)> {
        let mut needed = Vec::new();
        for import in imports {
            if let Some(cap) = Capability::for_import(&import.name) {
                needed.push((import.name.clone(), cap));
            }
            for item in &import.items {
                if let Some(cap) = Capability::for_import_item(&import.name, item) {
                    needed.push((format!("{}#{item}", import.name), cap));
                }
            }
        }
        needed
    }

    /// Its name in manifests and delegations.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Uplink => "uplink",
            Capability::Generate => "generate",
            Capability::Flow => "flow",
        }
    }
}

/// `import` without its `@version`.
fn interface_name(import: &str) -> &str {
    import.split('@').next().unwrap_or(import)
}

/// The tokenizer component a skill links, and the model it reads its vocabulary from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerRef {
    /// Tokenizer component: one the host bundles (`wordpiece` or `bpe`).
    pub component: String,
    /// Model whose vocabulary it uses; must also be in the manifest's `models`.
    pub model: String,
}

/// Budgets per request; absent values take the host's defaults ([`Limits::default`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Guest linear memory, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Wall-clock deadline per request, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Most tokens a request may generate (for decoder skills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Host memory held on the skill's behalf (tensors, KV caches, generations), MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_memory_mib: Option<u32>,
    /// Live handles (tensors, models, caches, generations) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handles: Option<u32>,
    /// Largest response (intent, reply, slots), KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_kib: Option<u32>,
}

/// One health-check probe: an utterance and the intent the skill must answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The utterance.
    pub text: String,
    /// The intent expected.
    pub intent: String,
}

/// The `edgenlu-manifest` section, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format, [`FORMAT`].
    pub format: u32,
    /// Skill name (store-name rules: `[a-z0-9][a-z0-9._-]*`, ≤ 64 bytes).
    pub name: String,
    /// A skill (the default, left out of a skill's manifest) or a flow.
    #[serde(default, skip_serializing_if = "is_skill")]
    pub kind: Kind,
    /// Monotonic version: an install never goes below the highest accepted.
    pub version: u64,
    /// Publisher, as named in its delegation.
    pub publisher: String,
    /// When this signed release stops being installable, unix seconds (absent: only the
    /// delegation's expiry applies). A short one bounds how long an attacker who withholds
    /// updates can keep offering this release (a freeze attack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Model store names the skill may open.
    #[serde(default)]
    pub models: Vec<String>,
    /// SHA-256 digests (lowercase hex) some of `models` must have: the skill's signature
    /// then covers those model files too, since the store checks a file against its
    /// recorded digest before mapping it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_sha256: BTreeMap<String, String>,
    /// The tokenizer it links, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerRef>,
    /// Values for the `config` interface.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Capabilities beyond computing on its models.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Budgets per request.
    #[serde(default)]
    pub budgets: Budgets,
    /// Health-check probes run after an install.
    #[serde(default)]
    pub health: Vec<Probe>,
}

fn is_skill(kind: &Kind) -> bool {
    *kind == Kind::Skill
}

fn bad(msg: impl Into<String>) -> TrustError {
    TrustError::BadManifest(msg.into())
}

impl Manifest {
    /// A flow's manifest: kind `flow`, the `flow` capability, no model, tokenizer, config,
    /// budgets or probes (set those after).
    pub fn flow(name: &str, publisher: &str, version: u64) -> Manifest {
        Manifest {
            format: FORMAT,
            name: name.into(),
            kind: Kind::Flow,
            version,
            publisher: publisher.into(),
            expires: None,
            models: Vec::new(),
            model_sha256: BTreeMap::new(),
            tokenizer: None,
            config: BTreeMap::new(),
            capabilities: vec![Capability::Flow],
            budgets: Budgets::default(),
            health: Vec::new(),
        }
    }

    /// Parses and validates manifest bytes (size cap first, then JSON, then the rules).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, TrustError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(TrustError::ManifestTooLarge {
                size: bytes.len(),
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The manifest's canonical bytes (compact JSON), after validating it.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TrustError> {
        self.validate()?;
        let bytes = serde_json::to_vec(self).map_err(|e| bad(e.to_string()))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(TrustError::ManifestTooLarge {
                size: bytes.len(),
                limit: MAX_MANIFEST_BYTES,
            });
        }
        Ok(bytes)
    }

    /// Checks every rule a manifest must follow, independent of who signed it.
    pub fn validate(&self) -> Result<(), TrustError> {
        if self.format != FORMAT {
            return Err(bad(format!(
                "format {} (this host reads {FORMAT})",
                self.format
            )));
        }
        edgenlu_models::store::validate_name(&self.name).map_err(|e| bad(format!("name: {e}")))?;
        if self.publisher.is_empty() || self.publisher.len() > 64 {
            return Err(bad("publisher must be 1 to 64 bytes"));
        }
        if self.models.len() > MAX_MODELS {
            return Err(bad(format!("more than {MAX_MODELS} models")));
        }
        for m in &self.models {
            edgenlu_models::store::validate_name(m).map_err(|e| bad(format!("models: {e}")))?;
        }
        for (name, digest) in &self.model_sha256 {
            if !self.models.contains(name) {
                return Err(bad(format!(
                    "model_sha256 pins {name:?}, which is not among the skill's models"
                )));
            }
            if digest.len() != 64 || super::from_hex(digest).is_none() {
                return Err(bad(format!(
                    "model_sha256 of {name:?} is not 64 lowercase hex digits"
                )));
            }
        }
        if let Some(t) = &self.tokenizer {
            if !TOKENIZERS.contains(&t.component.as_str()) {
                return Err(bad(format!(
                    "unknown tokenizer component {:?} (this host links {:?})",
                    t.component, TOKENIZERS
                )));
            }
            if !self.models.contains(&t.model) {
                return Err(bad(format!(
                    "the tokenizer's model {:?} is not among the skill's models",
                    t.model
                )));
            }
        }
        if self.config.len() > MAX_CONFIG
            || self
                .config
                .iter()
                .any(|(k, v)| k.len() + v.len() > MAX_CONFIG_BYTES)
        {
            return Err(bad(format!(
                "config: at most {MAX_CONFIG} entries of at most {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let mut caps = self.capabilities.clone();
        caps.sort();
        caps.dedup();
        if caps.len() != self.capabilities.len() {
            return Err(bad("a capability is listed twice"));
        }
        self.validate_kind()?;
        let b = &self.budgets;
        if b.memory_mib.is_some_and(|m| m == 0 || m > MAX_MEMORY_MIB) {
            return Err(bad(format!(
                "budgets.memory_mib must be 1..={MAX_MEMORY_MIB}"
            )));
        }
        if b.deadline_ms.is_some_and(|d| d == 0 || d > MAX_DEADLINE_MS) {
            return Err(bad(format!(
                "budgets.deadline_ms must be 1..={MAX_DEADLINE_MS}"
            )));
        }
        if b.max_tokens.is_some_and(|t| t > MAX_TOKENS) {
            return Err(bad(format!(
                "budgets.max_tokens must be at most {MAX_TOKENS}"
            )));
        }
        for (what, value, max) in [
            ("host_memory_mib", b.host_memory_mib, MAX_MEMORY_MIB),
            ("handles", b.handles, MAX_HANDLES),
            ("max_response_kib", b.max_response_kib, MAX_RESPONSE_KIB),
        ] {
            if value.is_some_and(|v| v == 0 || v > max) {
                return Err(bad(format!("budgets.{what} must be 1..={max}")));
            }
        }
        if self.health.len() > MAX_PROBES
            || self
                .health
                .iter()
                .any(|p| p.text.len() + p.intent.len() > MAX_PROBE_BYTES)
        {
            return Err(bad(format!(
                "health: at most {MAX_PROBES} probes of at most {MAX_PROBE_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// A flow asks for the `flow` capability and opens no model (it asks skills, which open
    /// theirs); a skill never asks for `flow`.
    fn validate_kind(&self) -> Result<(), TrustError> {
        let is_flow = self.capabilities.contains(&Capability::Flow);
        match self.kind {
            Kind::Skill if is_flow => Err(bad(
                "only a manifest of kind \"flow\" may ask for the flow capability",
            )),
            Kind::Skill => Ok(()),
            Kind::Flow if !is_flow => Err(bad(
                "a flow's manifest must ask for the flow capability (capabilities: [\"flow\"])",
            )),
            Kind::Flow if !self.models.is_empty() || self.tokenizer.is_some() => Err(bad(
                "a flow opens no model and links no tokenizer: leave models and tokenizer out",
            )),
            Kind::Flow if self.capabilities.contains(&Capability::Generate) => Err(bad(
                "a flow does not generate itself: it asks the device to phrase (drop generate)",
            )),
            Kind::Flow => Ok(()),
        }
    }
}

#[cfg(test)]
mod capability_tests {
    use super::Capability;
    use crate::skillfile::ImportedInterface;

    fn import(name: &str, items: &[&str]) -> ImportedInterface {
        ImportedInterface {
            name: name.into(),
            items: items.iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn wasi_nn_imports_need_no_capability_but_llm_and_decoder_kernels_need_generate() {
        let nn = [
            import(
                "wasi:nn/graph@0.2.0-rc-2024-10-28",
                &["load", "load-by-name"],
            ),
            import(
                "wasi:nn/inference@0.2.0-rc-2024-10-28",
                &["graph-execution-context"],
            ),
            import("wasi:nn/tensor@0.2.0-rc-2024-10-28", &["tensor"]),
            import("wasi:nn/errors@0.2.0-rc-2024-10-28", &["error"]),
        ];
        assert!(Capability::required_by(&nn).is_empty());
        let decoder = [
            import("edgenlu:nlu/llm@0.1.0", &["generation"]),
            import("edgenlu:nlu/kernels@0.1.0", &["matmul", "attend"]),
        ];
        assert_eq!(
            Capability::required_by(&decoder),
            [
                ("edgenlu:nlu/llm@0.1.0".to_string(), Capability::Generate),
                (
                    "edgenlu:nlu/kernels@0.1.0#attend".to_string(),
                    Capability::Generate
                )
            ]
        );
    }
}
