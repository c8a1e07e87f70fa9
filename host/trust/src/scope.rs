//! What a publisher's delegation allows, and the words of a refusal of a skill that asks for
//! more: each names the publisher, what is not allowed, what the delegation allows, and the
//! two ways out (ask for less, or ask the vendor for a delegation that allows it, spelled as
//! the `edgenlu trust delegate` command that would make one).

use super::manifest::Capability;
use std::fmt::Display;

/// What a publisher's delegation allows, as a refusal reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationScope {
    /// The publisher.
    pub publisher: String,
    /// The capabilities its skills may be granted.
    pub capabilities: Vec<Capability>,
    /// The models its skills may name: exact store names, or prefixes ending in `*`.
    pub models: Vec<String>,
}

/// What named a model the delegation does not cover, which decides the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelNamedBy {
    /// A skill's manifest, in its `models`.
    Manifest,
    /// A detached model signature (`edgenlu sign-model`).
    ModelSignature,
}

impl DelegationScope {
    /// The `edgenlu trust delegate` command for a delegation that allows everything this one
    /// does and also `capabilities` and `models`: a new delegation replaces the publisher's
    /// earlier one, so it must carry both. The key files are placeholders.
    pub fn delegate_command(&self, capabilities: &[Capability], models: &[String]) -> String {
        let p = &self.publisher;
        let mut cmd = format!(
            "edgenlu trust delegate --root-key <vendor.key> --publisher {p} --key <{p}.pub>"
        );
        let extra_caps = capabilities
            .iter()
            .filter(|c| !self.capabilities.contains(c));
        for c in self.capabilities.iter().chain(extra_caps) {
            cmd.push_str(&format!(" --capability {}", c.as_str()));
        }
        let extra_models = models.iter().filter(|m| !self.models.contains(m));
        for m in self.models.iter().chain(extra_models) {
            cmd.push_str(&format!(" --model '{m}'"));
        }
        cmd.push_str(&format!(
            " -o {p}.delegation.json (then on the device: edgenlu trust add {p}.delegation.json)"
        ));
        cmd
    }

    fn allowed_models(&self) -> String {
        match self.models.as_slice() {
            [] => "no models".into(),
            patterns => format!(
                "only models {}",
                list(patterns.iter().map(|m| format!("'{m}'")))
            ),
        }
    }

    fn allowed_capabilities(&self) -> String {
        match self.capabilities.as_slice() {
            [] => "no capabilities".into(),
            caps => format!(
                "only capabilities {}",
                list(caps.iter().map(|c| format!("`{}`", c.as_str())))
            ),
        }
    }
}

/// `items` as prose: "a", "a and b", "a, b and c".
fn list(items: impl IntoIterator<Item = impl Display>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `things` in backticks, joined, after `one` or `many`: ("model", "models", [a, b]) →
/// "models `a` and `b`".
fn named(one: &str, many: &str, things: &[impl Display]) -> String {
    let what = if things.len() == 1 { one } else { many };
    format!("{what} {}", list(things.iter().map(|t| format!("`{t}`"))))
}

/// "it" for one thing, "them" for several.
fn it(n: usize) -> &'static str {
    if n == 1 {
        "it"
    } else {
        "them"
    }
}

/// The message of [`TrustError::ModelNotGranted`](crate::TrustError::ModelNotGranted).
pub(crate) fn models_not_granted(
    models: &[String],
    named_by: ModelNamedBy,
    scope: &DelegationScope,
) -> String {
    let it = it(models.len());
    let ask_less = match named_by {
        ModelNamedBy::Manifest => format!("remove {it} from the manifest's models"),
        ModelNamedBy::ModelSignature => "sign only models the delegation allows".into(),
    };
    format!(
        "publisher {:?} may not grant {}: its delegation allows {}. Either {ask_less}, or ask \
         the vendor for a delegation that also allows {it}: {}",
        scope.publisher,
        named("model", "models", models),
        scope.allowed_models(),
        scope.delegate_command(&[], models)
    )
}

/// The message of
/// [`TrustError::CapabilityNotDelegated`](crate::TrustError::CapabilityNotDelegated).
pub(crate) fn capabilities_not_delegated(
    capabilities: &[Capability],
    imports: &[String],
    scope: &DelegationScope,
) -> String {
    let it = it(capabilities.len());
    let and_imports = if imports.is_empty() {
        String::new()
    } else {
        format!(
            " and the imports that need {it} from the component ({})",
            list(imports)
        )
    };
    format!(
        "publisher {:?} may not grant {}: its delegation allows {}. Either remove {it} from \
         the manifest's capabilities{and_imports}, or ask the vendor for a delegation that also \
         allows {it}: {}",
        scope.publisher,
        named("capability", "capabilities", &names(capabilities)),
        scope.allowed_capabilities(),
        scope.delegate_command(capabilities, &[])
    )
}

/// The message of
/// [`TrustError::CapabilityNotDeclared`](crate::TrustError::CapabilityNotDeclared).
pub(crate) fn capability_not_declared(
    capability: Capability,
    imports: &[String],
    scope: &DelegationScope,
) -> String {
    let (needs, the_imports) = if imports.len() == 1 {
        ("needs", "the import")
    } else {
        ("need", "those imports")
    };
    let name = capability.as_str();
    let delegation = if scope.capabilities.contains(&capability) {
        format!("publisher {:?}'s delegation allows it", scope.publisher)
    } else {
        format!(
            "publisher {:?}'s delegation allows {}, so to add it also ask the vendor for a \
             delegation that allows it: {}",
            scope.publisher,
            scope.allowed_capabilities(),
            scope.delegate_command(&[capability], &[])
        )
    };
    format!(
        "the component imports {}, which {needs} capability `{name}`: add \"{name}\" to the \
         manifest's capabilities, or remove {the_imports} from the component; {delegation}",
        list(imports)
    )
}

fn names(capabilities: &[Capability]) -> Vec<&'static str> {
    capabilities.iter().map(|c| c.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme(capabilities: Vec<Capability>, models: &[&str]) -> DelegationScope {
        DelegationScope {
            publisher: "acme".into(),
            capabilities,
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn the_delegate_command_keeps_what_the_delegation_allows_and_adds_what_is_missing() {
        let scope = acme(vec![Capability::Uplink], &["all-minilm-*"]);
        assert_eq!(
            scope.delegate_command(
                &[Capability::Uplink, Capability::Generate],
                &["all-minilm-*".into(), "other-model".into()]
            ),
            "edgenlu trust delegate --root-key <vendor.key> --publisher acme --key <acme.pub> \
             --capability uplink --capability generate --model 'all-minilm-*' \
             --model 'other-model' -o acme.delegation.json \
             (then on the device: edgenlu trust add acme.delegation.json)"
        );
    }

    #[test]
    fn a_model_refusal_names_the_models_the_patterns_and_both_ways_out() {
        let scope = acme(vec![], &["all-minilm-*", "snips-*"]);
        let one = models_not_granted(&["other-model".into()], ModelNamedBy::Manifest, &scope);
        assert_eq!(
            one,
            "publisher \"acme\" may not grant model `other-model`: its delegation allows only \
             models 'all-minilm-*' and 'snips-*'. Either remove it from the manifest's models, or \
             ask the vendor for a delegation that also allows it: edgenlu trust delegate \
             --root-key <vendor.key> --publisher acme --key <acme.pub> --model 'all-minilm-*' \
             --model 'snips-*' --model 'other-model' -o acme.delegation.json (then on the \
             device: edgenlu trust add acme.delegation.json)"
        );
        let two = models_not_granted(
            &["a".into(), "b".into()],
            ModelNamedBy::Manifest,
            &acme(vec![], &[]),
        );
        assert!(
            two.contains(
                "may not grant models `a` and `b`: its delegation allows no models. \
                 Either remove them from the manifest's models"
            ) && two.contains("allows them: ")
                && two.contains("--key <acme.pub> --model 'a' --model 'b' -o"),
            "{two}"
        );
        let signed = models_not_granted(&["a".into()], ModelNamedBy::ModelSignature, &scope);
        assert!(
            signed.contains("Either sign only models the delegation allows, or ask the vendor"),
            "{signed}"
        );
    }

    #[test]
    fn a_capability_refusal_names_the_imports_that_need_it() {
        let scope = acme(vec![Capability::Generate], &["*"]);
        let plain = capabilities_not_delegated(&[Capability::Uplink], &[], &scope);
        assert_eq!(
            plain,
            "publisher \"acme\" may not grant capability `uplink`: its delegation allows only \
             capabilities `generate`. Either remove it from the manifest's capabilities, or ask \
             the vendor for a delegation that also allows it: edgenlu trust delegate --root-key \
             <vendor.key> --publisher acme --key <acme.pub> --capability generate --capability \
             uplink --model '*' -o acme.delegation.json (then on the device: edgenlu trust add \
             acme.delegation.json)"
        );
        let imported = capabilities_not_delegated(
            &[Capability::Generate],
            &["edgenlu:nlu/llm@0.1.0".into()],
            &acme(vec![], &["*"]),
        );
        assert!(
            imported.contains(
                "allows no capabilities. Either remove it from the manifest's capabilities and \
                 the imports that need it from the component (edgenlu:nlu/llm@0.1.0), or ask"
            ),
            "{imported}"
        );
    }

    #[test]
    fn an_undeclared_capability_says_to_add_it_and_whether_the_delegation_allows_it() {
        let imports = ["edgenlu:nlu/llm@0.1.0".to_string()];
        let allowed = capability_not_declared(
            Capability::Generate,
            &imports,
            &acme(vec![Capability::Generate], &["*"]),
        );
        assert_eq!(
            allowed,
            "the component imports edgenlu:nlu/llm@0.1.0, which needs capability `generate`: \
             add \"generate\" to the manifest's capabilities, or remove the import from the \
             component; publisher \"acme\"'s delegation allows it"
        );
        let two = [
            "edgenlu:nlu/llm@0.1.0".to_string(),
            "edgenlu:nlu/kernels@0.1.0#attend".to_string(),
        ];
        let refused = capability_not_declared(Capability::Generate, &two, &acme(vec![], &["*"]));
        assert!(
            refused.starts_with(
                "the component imports edgenlu:nlu/llm@0.1.0 and edgenlu:nlu/kernels@0.1.0#attend, \
                 which need capability `generate`: add \"generate\" to the manifest's \
                 capabilities, or remove those imports from the component; publisher \"acme\"'s \
                 delegation allows no capabilities, so to add it also ask the vendor for a \
                 delegation that allows it: edgenlu trust delegate"
            ) && refused.contains("--capability generate --model '*'"),
            "{refused}"
        );
    }
}
