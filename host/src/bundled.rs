//! The components built from `guest/` and shipped with this host, and how they are wired:
//! the `intents` skill linked to the WordPiece tokenizer, both reading the same encoder model.

use crate::runtime::{ComponentSpec, Grants, SkillSpec};
use crate::state::Limits;
use std::path::PathBuf;

pub use edgenlu_guest_artifacts as paths;

/// The default encoder model: all-MiniLM-L6-v2 at q8_0, as `edgenlu models fetch` stores it.
pub const DEFAULT_ENCODER: &str = "all-minilm-l6-v2.q8_0";
/// The default datastore name, as the README's demo builds it from SNIPS.
pub const DEFAULT_INDEX: &str = "snips-intents";

/// The tokenizer component reading its vocabulary from `encoder`.
pub fn wordpiece_tokenizer(encoder: &str, limits: Limits) -> ComponentSpec {
    ComponentSpec {
        path: PathBuf::from(paths::TOKENIZER_WORDPIECE),
        grants: Grants {
            models: vec![encoder.to_string()],
            config: [("model".to_string(), encoder.to_string())].into(),
            limits,
        },
    }
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
            path: PathBuf::from(paths::SKILL_INTENTS),
            grants: Grants {
                models,
                config,
                limits: limits.clone(),
            },
        },
        tokenizer: Some(wordpiece_tokenizer(encoder, limits)),
    }
}

/// The hostile test skill (`guest/hostile`): each utterance names an attack on the host.
/// It is granted `model` (config key `model`) and linked to the WordPiece tokenizer over it.
pub fn hostile_skill(model: &str, limits: Limits) -> SkillSpec {
    SkillSpec {
        name: "hostile".into(),
        skill: ComponentSpec {
            path: PathBuf::from(paths::HOSTILE),
            grants: Grants {
                models: vec![model.to_string()],
                config: [("model".to_string(), model.to_string())].into(),
                limits: limits.clone(),
            },
        },
        tokenizer: Some(wordpiece_tokenizer(model, limits)),
    }
}
