//! The vendor's policy component (`world policy-component`): for every answer it decides
//! whether the device answers locally, offloads the query over the uplink, or refuses it, from
//! typed signals ([`Signals`]). It is the vendor's code, not the skill's: a third-party skill
//! cannot talk its way onto the network. It imports only `config` and `log`, runs in a fresh
//! store per decision with its own deadline and memory limit, and a policy that fails (traps,
//! runs out of time) is an error, never a guess.

use crate::bindings::policy::{PolicyComponent, PolicyComponentPre};
use crate::bindings::{Signals, Verdict};
use crate::error::SkillError;
use crate::log_rate::LogRate;
use crate::runtime::{ComponentSpec, Runtime};
use crate::state::{ComponentState, Grants};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

/// A policy component compiled and linked, ready to decide.
#[derive(Clone)]
pub struct Policy {
    pre: PolicyComponentPre<ComponentState>,
    grants: Grants,
    runtime: Runtime,
    /// The policy's log-line rate, shared by every decision.
    log_rate: Arc<LogRate>,
}

impl Policy {
    /// Compiles and links the policy component `spec` names (its grants give its config and
    /// limits; it may open no model).
    pub fn load(runtime: &Runtime, spec: &ComponentSpec) -> Result<Policy, SkillError> {
        let component = runtime.spec_component(spec)?;
        let mut linker = Linker::new(component.engine());
        PolicyComponent::add_to_linker::<_, HasSelf<ComponentState>>(&mut linker, |s| s)
            .map_err(|e| spec.link_error(e))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| spec.link_error(e))?;
        let mut grants = spec.grants.clone();
        grants.models.clear();
        Ok(Policy {
            pre: PolicyComponentPre::new(pre).map_err(|e| spec.link_error(e))?,
            log_rate: Arc::new(LogRate::for_limits(&grants.limits)),
            grants,
            runtime: runtime.clone(),
        })
    }

    /// The policy's verdict on `signals`, from a fresh instance.
    pub fn decide(&self, signals: &Signals) -> Result<Verdict, SkillError> {
        let deadline = Instant::now() + self.grants.limits.deadline;
        let mut store = self
            .runtime
            .new_store("policy", &self.log_rate, &self.grants, deadline);
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| store.data().trap_error(e))?;
        bindings
            .edgenlu_nlu_policy()
            .call_decide(&mut store, signals)
            .map_err(|e| store.data().trap_error(e))
    }
}
