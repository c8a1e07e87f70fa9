//! The components built from `guest/` and shipped with this host, and how they are wired:
//! the `intents` skill linked to the WordPiece tokenizer, both reading the same encoder model.

use crate::bindings::tokenizer::{Tokenizer, TokenizerPre};
use crate::error::SkillError;
use crate::runtime::{ComponentSource, ComponentSpec, Runtime, SkillSpec};
use crate::state::{ComponentState, Grants, Limits};
use crate::tokenizer::TokenizerLink;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

/// The bundled components' bytes, embedded in this library when it is built.
pub use edgenlu_guest_artifacts as components;

/// The default encoder model: all-MiniLM-L6-v2 at q8_0, as `edgenlu models fetch` stores it.
pub const DEFAULT_ENCODER: &str = "all-minilm-l6-v2.q8_0";
/// The default decoder model: SmolLM2-135M-Instruct at q4_1, as `edgenlu models fetch` stores it.
pub const DEFAULT_DECODER: &str = "smollm2-135m-instruct.q4_1";
/// The default datastore name, as the README's demo builds it from SNIPS.
pub const DEFAULT_INDEX: &str = "snips-intents";

/// Where a bundled component comes from: the bytes embedded in this library.
pub fn embedded(component: components::Component) -> ComponentSource {
    ComponentSource::Embedded {
        name: component.name,
        bytes: component.bytes,
    }
}

/// The bundled tokenizer component called `name` (`wordpiece` or `bpe`, as manifests name
/// them) over `model`.
pub fn tokenizer(name: &str, model: &str, limits: Limits) -> Option<ComponentSpec> {
    match name {
        "wordpiece" => Some(wordpiece_tokenizer(model, limits)),
        "bpe" => Some(bpe_tokenizer(model, limits)),
        _ => None,
    }
}

/// The tokenizer component reading its vocabulary from `encoder`.
pub fn wordpiece_tokenizer(encoder: &str, limits: Limits) -> ComponentSpec {
    ComponentSpec {
        source: embedded(components::TOKENIZER_WORDPIECE),
        grants: Grants {
            models: vec![encoder.to_string()],
            config: [("model".to_string(), encoder.to_string())].into(),
            limits,
            generate: false,
        },
    }
}

/// The byte-level BPE tokenizer component (GPT-2 style, SmolLM2's) reading its vocabulary and
/// merges from `model`, e.g. "smollm2-135m-instruct.q4_1".
pub fn bpe_tokenizer(model: &str, limits: Limits) -> ComponentSpec {
    ComponentSpec {
        source: embedded(components::TOKENIZER_BPE),
        grants: Grants {
            models: vec![model.to_string()],
            config: [("model".to_string(), model.to_string())].into(),
            limits,
            generate: false,
        },
    }
}

/// A skill spec that only serves [`crate::Skill::tokenize`] with the BPE tokenizer over
/// `model`: the bundled `intents` skill with its tokenizer swapped. Tokenizing never
/// instantiates the skill itself, so its encoder is never opened.
pub fn bpe_tokenize_only(model: &str, limits: Limits) -> SkillSpec {
    let mut spec = intents_skill(DEFAULT_ENCODER, None, limits.clone());
    spec.tokenizer = Some(bpe_tokenizer(model, limits));
    spec
}

/// A tokenizer component on its own, for encode and decode outside a skill (e.g. checking
/// that decode(encode(s)) == s): compiled and linked now, instantiated on first call, with
/// `spec`'s grants and a deadline of `spec.grants.limits.deadline` from now for all calls.
pub fn open_tokenizer(
    runtime: &Runtime,
    spec: &ComponentSpec,
) -> Result<crate::tokenizer::LinkedTokenizer, SkillError> {
    let component = runtime.spec_component(spec)?;
    let mut linker = Linker::new(component.engine());
    Tokenizer::add_to_linker::<_, HasSelf<ComponentState>>(&mut linker, |s| s)
        .map_err(|e| spec.link_error(e))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| spec.link_error(e))?;
    let link = TokenizerLink::new(
        TokenizerPre::new(pre).map_err(|e| spec.link_error(e))?,
        spec.grants.clone(),
        runtime.store_parts(),
    );
    Ok(link.for_request(Instant::now() + spec.grants.limits.deadline))
}

/// The `intents` skill over `encoder`, answering from datastore `index` (none: embed only).
pub fn intents_skill(encoder: &str, index: Option<&str>, limits: Limits) -> SkillSpec {
    let mut models = vec![encoder.to_string()];
    let mut config =
        std::collections::BTreeMap::from([("encoder".to_string(), encoder.to_string())]);
    if let Some(index) = index {
        models.push(index.to_string());
        config.insert("index".to_string(), index.to_string());
    }
    SkillSpec {
        name: "intents".into(),
        skill: ComponentSpec {
            source: embedded(components::SKILL_INTENTS),
            grants: Grants {
                models,
                config,
                limits: limits.clone(),
                generate: false,
            },
        },
        tokenizer: Some(wordpiece_tokenizer(encoder, limits)),
    }
}

/// The hostile test skill (`guest/hostile`): each utterance names an attack on the host.
/// It is granted `encoder` (config key `model`) and `decoder` (config key `decoder`, for the
/// generation attacks), and linked to the WordPiece tokenizer over the encoder: generated ids
/// past the WordPiece vocabulary are one more thing the host must refuse cleanly.
pub fn hostile_skill(encoder: &str, decoder: &str, limits: Limits) -> SkillSpec {
    SkillSpec {
        name: "hostile".into(),
        skill: ComponentSpec {
            source: embedded(components::HOSTILE),
            grants: Grants {
                models: vec![encoder.to_string(), decoder.to_string()],
                config: [
                    ("model".to_string(), encoder.to_string()),
                    ("decoder".to_string(), decoder.to_string()),
                ]
                .into(),
                limits: limits.clone(),
                generate: true,
            },
        },
        tokenizer: Some(wordpiece_tokenizer(encoder, limits)),
    }
}

/// Limits for the `chat` skill: generation needs a KV cache (about 46 KB per position for
/// SmolLM2) and more time than one classification.
pub fn chat_limits() -> Limits {
    Limits {
        host_memory: 128 << 20,
        deadline: std::time::Duration::from_secs(120),
        max_tokens: 1024,
        ..Limits::default()
    }
}

/// The `chat` skill (`guest/skill-chat`) over decoder `model`, linked to the BPE tokenizer.
pub fn chat_skill(model: &str, limits: Limits) -> SkillSpec {
    SkillSpec {
        name: "chat".into(),
        skill: ComponentSpec {
            source: embedded(components::SKILL_CHAT),
            grants: Grants {
                models: vec![model.to_string()],
                config: [("model".to_string(), model.to_string())].into(),
                limits: limits.clone(),
                generate: true,
            },
        },
        tokenizer: Some(bpe_tokenizer(model, limits)),
    }
}

/// A setting of the default policy: its key, the range its value must be in, and what it
/// means.
#[derive(Debug, Clone, Copy)]
pub struct PolicySetting {
    /// The `--policy` key.
    pub key: &'static str,
    /// Smallest value allowed.
    pub min: f32,
    /// Largest value allowed.
    pub max: f32,
    /// What the policy does with it.
    pub meaning: &'static str,
}

/// Every setting the default policy reads (`guest/policy-default`); it reads no other key.
pub const DEFAULT_POLICY_SETTINGS: &[PolicySetting] = &[
    PolicySetting {
        key: "min-confidence",
        min: 0.0,
        max: 1.0,
        meaning: "answer locally only at this confidence or above",
    },
    PolicySetting {
        key: "min-battery",
        min: 0.0,
        max: 100.0,
        meaning: "offload only with this battery percentage or more",
    },
    PolicySetting {
        key: "max-chars",
        min: 0.0,
        max: 1e9,
        meaning: "refuse utterances longer than this many characters",
    },
    PolicySetting {
        key: "max-out-of-scope",
        min: 0.0,
        max: 2.0,
        meaning: "refuse when the router's out-of-scope distance is above this",
    },
];

/// A `--policy` setting the default policy would not understand.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyConfigError {
    /// No such key.
    #[error(
        "unknown policy setting {key:?}: the default policy reads {}",
        known_policy_keys()
    )]
    UnknownKey {
        /// The key given.
        key: String,
    },
    /// A value that is not a finite number in the setting's range.
    #[error("policy setting {key}={value:?}: expected a number from {min} to {max}")]
    BadValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Smallest value allowed.
        min: f32,
        /// Largest value allowed.
        max: f32,
    },
}

fn known_policy_keys() -> String {
    DEFAULT_POLICY_SETTINGS
        .iter()
        .map(|s| s.key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `config` against [`DEFAULT_POLICY_SETTINGS`]: every key known, every value a finite
/// number in its range (a mistyped key or value must not silently leave a default in force).
pub fn check_policy_config(
    config: &std::collections::BTreeMap<String, String>,
) -> Result<(), PolicyConfigError> {
    for (key, value) in config {
        let setting = DEFAULT_POLICY_SETTINGS
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| PolicyConfigError::UnknownKey { key: key.clone() })?;
        let ok = value
            .trim()
            .parse::<f32>()
            .is_ok_and(|v| v.is_finite() && (setting.min..=setting.max).contains(&v));
        if !ok {
            return Err(PolicyConfigError::BadValue {
                key: key.clone(),
                value: value.clone(),
                min: setting.min,
                max: setting.max,
            });
        }
    }
    Ok(())
}

/// The default vendor policy component (`guest/policy-default`) with `config` (the keys of
/// [`DEFAULT_POLICY_SETTINGS`], checked) and a short deadline: a decision is a few
/// comparisons.
pub fn default_policy(
    config: std::collections::BTreeMap<String, String>,
) -> Result<ComponentSpec, PolicyConfigError> {
    check_policy_config(&config)?;
    Ok(ComponentSpec {
        source: embedded(components::POLICY_DEFAULT),
        grants: Grants {
            models: Vec::new(),
            config,
            limits: Limits {
                deadline: std::time::Duration::from_millis(500),
                ..Limits::default()
            },
            generate: false,
        },
    })
}

/// Limits for a flow: its own Wasm is a few comparisons, but its deadline spans the whole
/// utterance, every skill, phrasing and uplink call it makes included (each of those also has
/// its own deadline: phrasing's is [`chat_limits`]'s).
pub fn flow_limits() -> Limits {
    Limits {
        guest_memory: 16 << 20,
        deadline: chat_limits().deadline + std::time::Duration::from_secs(60),
        ..Limits::default()
    }
}

/// The bundled default flow component (`guest/flow-default`): the device's pipeline as it has
/// always been (route, ask the best skill, the policy, then reject, offload or answer
/// locally), with the `uplink` capability.
pub fn default_flow() -> crate::flow::FlowSpec {
    let mut spec = flow(components::FLOW_DEFAULT, flow_limits());
    spec.limits.uplink = true;
    spec
}

/// A bundled flow component with `limits`, no config and no uplink.
fn flow(component: components::Component, limits: Limits) -> crate::flow::FlowSpec {
    crate::flow::FlowSpec {
        component: ComponentSpec {
            source: embedded(component),
            grants: Grants {
                models: Vec::new(),
                config: Default::default(),
                limits,
                generate: false,
            },
        },
        limits: crate::flow::FlowLimits::default(),
    }
}

/// The hostile test flow (`guest/flow-hostile`): each utterance's first word names an attack
/// on the device (endless loop, memory, unknown skills, a flood of calls, an uplink without
/// the capability). No uplink capability.
pub fn hostile_flow(limits: Limits) -> crate::flow::FlowSpec {
    flow(components::FLOW_HOSTILE, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn policy_config_refuses_unknown_keys_and_bad_values() {
        assert!(check_policy_config(&config(&[("min-confidence", "0.9")])).is_ok());
        let typo = check_policy_config(&config(&[("min-confidnce", "0.9")])).unwrap_err();
        assert!(typo.to_string().contains("min-confidence"), "{typo}");
        for bad in ["abc", "NaN", "inf", "1.5", "-0.1", ""] {
            let err = check_policy_config(&config(&[("min-confidence", bad)])).unwrap_err();
            assert!(
                matches!(err, PolicyConfigError::BadValue { .. }),
                "{bad}: {err}"
            );
        }
    }
}
