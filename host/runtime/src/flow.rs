//! The device's NLU logic as a component (`world flow-component`): for every utterance a flow
//! routes it, asks skills by name, asks the vendor's policy, and phrases, templates or offloads
//! the reply, through the host's [`FlowHost`]. Like the policy, a flow is instantiated fresh for
//! each utterance in a store of its own, with its own deadline and memory, and a bound on the
//! calls that run other components or the network ([`FlowLimits`]); the skills it asks run in
//! their own instances under their own budgets, as they always do.

use crate::bindings::flow::edgenlu::nlu::{flow_host, policy as flow_policy};
use crate::bindings::flow::exports::edgenlu::nlu::flow::Outcome as WitOutcome;
use crate::bindings::flow::{FlowComponent, FlowComponentPre};
use crate::bindings::{Decision, Response, Signals, Slot, Timing, Verdict, WitError};
use crate::error::{HostError, SkillError};
use crate::log_rate::LogRate;
use crate::response;
use crate::runtime::{ComponentSpec, Runtime};
use crate::state::{ComponentState, Grants};
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

pub use crate::bindings::flow::edgenlu::nlu::flow_host::{
    Candidate, MissingSlotValue, RejectedReply, ReplyRejection, Routing, TemplateReason,
};
pub use crate::bindings::flow::exports::edgenlu::nlu::flow::Utterance;
pub use crate::flow_host::{
    FlowHost, FlowLimits, MAX_OPTIONS, MAX_OPTION_BYTES, MAX_QUESTION_BYTES,
};

/// A flow component and what it may do.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// The component, its config and its limits (it may open no model).
    pub component: ComponentSpec,
    /// Its calls per utterance and capabilities.
    pub limits: FlowLimits,
}

/// What a flow answered for an utterance (the WIT `outcome`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The installed skill that answered.
    pub skill: String,
    /// Its response, with the flow's path and reply.
    pub response: Response,
    /// The router's out-of-scope score.
    pub out_of_scope: f32,
    /// The policy's verdict.
    pub verdict: Verdict,
    /// Why an offload fell back to a local answer.
    pub uplink_error: Option<String>,
    /// Why a local answer's reply is the template although a phraser is configured.
    pub template_reason: Option<TemplateReason>,
    /// The time of each stage, as the flow timed it.
    pub stages: Vec<Timing>,
}

/// Why a flow gave no outcome.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The flow failed: it trapped, ran out of time or memory, passed its bound on calls,
    /// returned an error (perhaps one a host call gave it) or an outcome the host refused.
    #[error("the flow failed: {0}")]
    Flow(SkillError),
    /// The vendor's policy failed, which ends the utterance.
    #[error("the policy failed: {0}")]
    Policy(SkillError),
}

/// A flow component compiled and linked, ready to handle utterances.
#[derive(Clone)]
pub struct Flow {
    pre: FlowComponentPre<ComponentState>,
    grants: Grants,
    limits: FlowLimits,
    runtime: Runtime,
    /// The flow's log-line rate, shared by every utterance.
    log_rate: Arc<LogRate>,
}

impl Flow {
    /// Compiles and links the flow component `spec` names.
    pub fn load(runtime: &Runtime, spec: &FlowSpec) -> Result<Flow, SkillError> {
        let component = runtime.spec_component(&spec.component)?;
        let link_error = |e| spec.component.link_error(e);
        let mut linker = Linker::new(component.engine());
        FlowComponent::add_to_linker::<_, HasSelf<ComponentState>>(&mut linker, |s| s)
            .map_err(link_error)?;
        let pre = linker.instantiate_pre(&component).map_err(link_error)?;
        let mut grants = spec.component.grants.clone();
        grants.models.clear();
        Ok(Flow {
            pre: FlowComponentPre::new(pre).map_err(link_error)?,
            log_rate: Arc::new(LogRate::for_limits(&grants.limits)),
            grants,
            limits: spec.limits,
            runtime: runtime.clone(),
        })
    }

    /// Handles `utterance` in a fresh instance, with `host` answering its calls; returns the
    /// outcome (checked like a skill's response, except its path and host timings) and `host`,
    /// with whatever it kept.
    pub fn handle<H: FlowHost>(
        &self,
        host: H,
        utterance: &Utterance,
    ) -> (Result<Outcome, FlowError>, H) {
        let deadline = Instant::now() + self.grants.limits.deadline;
        let mut store = self
            .runtime
            .new_store("flow", &self.log_rate, &self.grants, deadline);
        store.data_mut().flow = Some(crate::flow_host::FlowCalls {
            host: Box::new(host),
            limits: self.limits,
            started: Instant::now(),
            calls: 0,
            failure: None,
        });
        let result = self.pre.instantiate(&mut store).and_then(|bindings| {
            bindings
                .edgenlu_nlu_flow()
                .call_handle(&mut store, utterance)
        });
        let calls = store
            .data_mut()
            .flow
            .take()
            .expect("the flow's calls stay in its store");
        let result = match result {
            Ok(Ok(outcome)) => {
                outcome_of(&utterance.text, outcome, &store.data().budget).map_err(FlowError::Flow)
            }
            Ok(Err(e)) => Err(FlowError::Flow(SkillError::Guest(e))),
            Err(trap) => Err(match calls.failure {
                Some(policy) => FlowError::Policy(policy),
                None => FlowError::Flow(store.data().trap_error(trap)),
            }),
        };
        let host: Box<dyn Any> = calls.host;
        let host = *host
            .downcast::<H>()
            .expect("the flow's host is the one given");
        (result, host)
    }
}

/// The outcome a flow returned, checked at the boundary.
fn outcome_of(
    text: &str,
    o: WitOutcome,
    budget: &crate::state::Budget,
) -> Result<Outcome, SkillError> {
    let bytes = crate::runtime::response_bytes(&o.response);
    let limit = budget.limits.max_response_bytes;
    if bytes > limit {
        return Err(SkillError::ResponseTooLarge { bytes, limit });
    }
    response::validate_outcome(text, &o.response)?;
    Ok(Outcome {
        skill: o.skill,
        response: o.response,
        out_of_scope: o.out_of_scope,
        verdict: Verdict {
            decision: match o.verdict.decision {
                flow_policy::Decision::Local => Decision::Local,
                flow_policy::Decision::Offload => Decision::Offload,
                flow_policy::Decision::Reject => Decision::Reject,
            },
            reason: o.verdict.reason,
        },
        uplink_error: o.uplink_error,
        template_reason: o.template_reason,
        stages: o.stages,
    })
}

impl ComponentState {
    /// The utterance's flow record, counting one more call that runs a component or the
    /// network, within the flow's deadline and bound.
    fn flow_call(&mut self, what: &str) -> Result<&mut crate::flow_host::FlowCalls, HostError> {
        self.budget.check_deadline()?;
        let calls = self
            .flow
            .as_mut()
            .ok_or_else(|| HostError::not_allowed(format!("{what}: only a flow may call it")))?;
        calls.charge(what)?;
        Ok(calls)
    }

    /// The utterance's flow record, for calls that cost nothing to count.
    fn flow_record(&mut self) -> wasmtime::Result<&mut crate::flow_host::FlowCalls> {
        self.flow
            .as_mut()
            .ok_or_else(|| wasmtime::Error::msg("a flow-host call outside a flow's store"))
    }
}

impl flow_host::Host for ComponentState {
    fn elapsed_micros(&mut self) -> wasmtime::Result<u64> {
        Ok(self.flow_record()?.started.elapsed().as_micros() as u64)
    }

    fn route(&mut self, text: String) -> Result<Routing, HostError> {
        let calls = self.flow_call("route")?;
        calls.host.route(&text).map_err(HostError::Guest)
    }

    fn ask(&mut self, skill: String, text: String) -> Result<Response, HostError> {
        let deadline = self.budget.deadline;
        let calls = self.flow_call("ask")?;
        (calls.host.ask(&skill, &text, deadline)).map_err(HostError::Guest)
    }

    fn uplink_allowed(&mut self, skill: String) -> wasmtime::Result<bool> {
        let calls = self.flow_record()?;
        Ok(calls.limits.uplink && calls.host.uplink_allowed(&skill))
    }

    fn offload(&mut self, skill: String, text: String) -> Result<String, HostError> {
        let calls = self.flow_call("offload")?;
        if !calls.limits.uplink {
            return Err(HostError::not_allowed(
                "the flow does not have the uplink capability",
            ));
        }
        calls.host.offload(&skill, &text).map_err(HostError::Guest)
    }

    fn phrase(
        &mut self,
        text: String,
        intent: String,
        slots: Vec<Slot>,
    ) -> wasmtime::Result<Result<String, TemplateReason>> {
        let calls = match self.flow_call("phrase") {
            Ok(calls) => calls,
            Err(HostError::Guest(e)) => {
                let why = crate::error::describe(&e);
                return Ok(Err(TemplateReason::PhrasingFailed(why)));
            }
            Err(HostError::Trap(e)) => return Err(e),
        };
        Ok(calls.host.phrase(&text, &intent, &slots))
    }

    fn template_reply(&mut self, intent: String, slots: Vec<Slot>) -> wasmtime::Result<String> {
        Ok(self.flow_record()?.host.template_reply(&intent, &slots))
    }

    fn choose(&mut self, question: String, options: Vec<String>) -> Result<Vec<f32>, HostError> {
        if question.len() > MAX_QUESTION_BYTES {
            return Err(HostError::invalid(format!(
                "choose: a question of {} bytes (at most {MAX_QUESTION_BYTES})",
                question.len()
            )));
        }
        if options.is_empty() || options.len() > MAX_OPTIONS {
            return Err(HostError::invalid(format!(
                "choose: {} options (1 to {MAX_OPTIONS})",
                options.len()
            )));
        }
        if let Some(o) = options.iter().find(|o| o.len() > MAX_OPTION_BYTES) {
            return Err(HostError::invalid(format!(
                "choose: an option of {} bytes (at most {MAX_OPTION_BYTES})",
                o.len()
            )));
        }
        self.budget.check_deadline()?;
        let calls = self
            .flow
            .as_mut()
            .ok_or_else(|| HostError::not_allowed("choose: only a flow may call it"))?;
        calls.charge("choose")?;
        let budget = &self.budget;
        let mut charged = 0;
        let mut charge = |bytes: usize| match budget.charge_host_bytes(bytes) {
            Ok(()) => {
                charged += bytes;
                Ok(())
            }
            Err(HostError::Guest(e)) => Err(e),
            Err(HostError::Trap(e)) => Err(WitError::Internal(e.to_string())),
        };
        let scores = calls
            .host
            .choose(&question, &options, budget.deadline, &mut charge);
        budget.release_host_bytes(charged);
        scores.map_err(HostError::Guest)
    }
}

impl flow_policy::Host for ComponentState {
    /// The vendor policy's verdict; a policy that fails (or a flow past its bound) ends the
    /// utterance with that error.
    fn decide(&mut self, s: flow_policy::Signals) -> wasmtime::Result<flow_policy::Verdict> {
        let signals = Signals {
            skill: s.skill,
            intent: s.intent,
            confidence: s.confidence,
            out_of_scope: s.out_of_scope,
            utterance_chars: s.utterance_chars,
            network_up: s.network_up,
            battery_percent: s.battery_percent,
            uplink_allowed: s.uplink_allowed,
        };
        // Past the flow's deadline or bound the flow traps: it cannot go on without a verdict.
        let calls = match self.flow_call("policy.decide") {
            Ok(calls) => calls,
            Err(HostError::Guest(e)) => {
                return Err(wasmtime::Error::msg(crate::error::describe(&e)))
            }
            Err(HostError::Trap(e)) => return Err(e),
        };
        match calls.host.decide(&signals) {
            Ok(v) => Ok(flow_policy::Verdict {
                decision: match v.decision {
                    Decision::Local => flow_policy::Decision::Local,
                    Decision::Offload => flow_policy::Decision::Offload,
                    Decision::Reject => flow_policy::Decision::Reject,
                },
                reason: v.reason,
            }),
            Err(e) => {
                let message = e.to_string();
                calls.failure = Some(e);
                Err(wasmtime::Error::msg(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::WitError;
    use crate::catalog::ModelCatalog;
    use crate::flow_host::FlowCalls;
    use flow_host::Host as _;

    /// A device with one skill, `a`, that may use the uplink; offloading is a test failure.
    struct Device;

    impl FlowHost for Device {
        fn route(&mut self, _: &str) -> Result<Routing, WitError> {
            Ok(Routing {
                candidates: vec![Candidate {
                    skill: "a".into(),
                    score: 1.0,
                }],
                out_of_scope: 0.0,
                timings: Vec::new(),
            })
        }
        fn ask(&mut self, skill: &str, _: &str, _: Instant) -> Result<Response, WitError> {
            Err(WitError::NotFound(skill.into()))
        }
        fn uplink_allowed(&mut self, _: &str) -> bool {
            true
        }
        fn offload(&mut self, _: &str, _: &str) -> Result<String, WitError> {
            unreachable!("the runtime let a flow without the capability offload")
        }
        fn decide(&mut self, _: &Signals) -> Result<Verdict, SkillError> {
            unreachable!("not asked")
        }
        fn phrase(&mut self, _: &str, _: &str, _: &[Slot]) -> Result<String, TemplateReason> {
            Ok("Done.".into())
        }
        fn template_reply(&mut self, intent: &str, _: &[Slot]) -> String {
            intent.into()
        }
        fn choose(
            &mut self,
            _: &str,
            o: &[String],
            _: Instant,
            charge: &mut dyn FnMut(usize) -> Result<(), WitError>,
        ) -> Result<Vec<f32>, WitError> {
            charge(1 << 10)?;
            Ok(vec![0.0; o.len()])
        }
    }

    fn state(limits: FlowLimits) -> ComponentState {
        // One folder per call: the tests run in parallel, and each removes its own.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("edgenlu-flow-test-{}-{n}", std::process::id()));
        let store = edgenlu_models::store::ModelStore::at(&root).unwrap();
        // The flow opens no model: the store's folder is not needed past this point.
        std::fs::remove_dir_all(&root).unwrap();
        let mut state = ComponentState::new(
            "flow".into(),
            Arc::new(ModelCatalog::new(store)),
            Vec::new(),
            Default::default(),
            Default::default(),
            Arc::new(LogRate::for_limits(&Default::default())),
        );
        state.flow = Some(FlowCalls {
            host: Box::new(Device),
            limits,
            started: Instant::now(),
            calls: 0,
            failure: None,
        });
        state
    }

    #[test]
    fn a_flow_without_the_uplink_capability_is_refused_typed() {
        let mut s = state(FlowLimits::default());
        assert!(!s.uplink_allowed("a".into()).unwrap());
        let err = s.offload("a".into(), "hello".into()).unwrap_err();
        assert!(
            matches!(&err, HostError::Guest(WitError::NotAllowed(m)) if m.contains("uplink")),
            "{err:?}"
        );
    }

    #[test]
    fn calls_past_the_flows_bound_are_refused_typed() {
        let mut s = state(FlowLimits {
            max_calls: 2,
            uplink: true,
        });
        s.route("one".into()).unwrap();
        let err = s.ask("b".into(), "two".into()).unwrap_err();
        assert!(
            matches!(err, HostError::Guest(WitError::NotFound(_))),
            "{err:?}"
        );
        let err = s.route("three".into()).unwrap_err();
        assert!(
            matches!(&err, HostError::Guest(WitError::BudgetExceeded(m)) if m.contains("2 calls")),
            "{err:?}"
        );
        // Phrasing past the bound is a template reply with the reason, not a failure.
        let phrased = s.phrase("four".into(), "x".into(), Vec::new()).unwrap();
        assert!(
            matches!(&phrased, Err(TemplateReason::PhrasingFailed(m)) if m.contains("budget")),
            "{phrased:?}"
        );
        // Calls that cost nothing are not counted.
        assert_eq!(s.template_reply("x".into(), Vec::new()).unwrap(), "x");
    }
}
