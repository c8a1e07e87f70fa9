//! Assembling a device's [`Pipeline`] from its parts, for a vendor's own program as for the
//! `edgenlu` CLI and daemon: skills over datastores (the vendor's own, which may use the
//! uplink) and installed skills (under their manifests), the default vendor policy with its
//! config, phrasing by the bundled chat skill, the owner's uplink, and the flow that joins them.

use crate::installed::LoadError;
use crate::pipeline::Pipeline;
use crate::router::{Route, Router, RouterError};
use crate::uplink::{Uplink, UplinkConfig, UplinkError};
use edgenlu::bundled;
use edgenlu::error::SkillError;
use edgenlu::flow::{Flow, FlowSpec};
use edgenlu::policy::Policy;
use edgenlu::{Limits, Runtime, Skill};
use edgenlu_trust::skills::SkillStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a pipeline could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A datastore is missing or is not one.
    #[error("datastore {index:?}: {reason}")]
    Datastore {
        /// Its name in the model store.
        index: String,
        /// What is wrong.
        reason: String,
    },
    /// A route could not be made, or the routes do not fit together.
    #[error(transparent)]
    Route(#[from] RouterError),
    /// A component failed to load.
    #[error(transparent)]
    Skill(#[from] SkillError),
    /// An installed skill could not be loaded.
    #[error(transparent)]
    Installed(#[from] LoadError),
    /// The uplink could not be set up.
    #[error(transparent)]
    Uplink(#[from] UplinkError),
    /// A policy setting the default policy does not understand.
    #[error(transparent)]
    Policy(#[from] edgenlu::bundled::PolicyConfigError),
}

/// The bundled intents skill answering from datastore `index`, over the encoder the datastore
/// was built with (its `edgenlu.index.encoder` metadata).
pub fn datastore_skill(rt: &Runtime, index: &str, limits: Limits) -> Result<Skill, BuildError> {
    let err = |reason: String| BuildError::Datastore {
        index: index.into(),
        reason,
    };
    let file = rt.catalog().get(index).map_err(|e| match e {
        edgenlu_models::StoreError::NotFound(_) => {
            err(format!("{e} (build it with `edgenlu skill index`)"))
        }
        other => err(other.to_string()),
    })?;
    let encoder = file
        .metadata("edgenlu.index.encoder")
        .and_then(|v| v.as_str())
        .ok_or_else(|| err("not a datastore: no edgenlu.index.encoder".into()))?
        .to_string();
    Ok(rt.load_skill(bundled::intents_skill(&encoder, Some(index), limits))?)
}

/// Builds a [`Pipeline`]: add routes, then [`build`](Self::build).
pub struct PipelineBuilder<'a> {
    runtime: &'a Runtime,
    routes: Vec<Route>,
    policy_config: BTreeMap<String, String>,
    phrase: bool,
    uplink: Option<UplinkConfig>,
    flow: FlowSpec,
    /// The flow store whose installed flow, if any, runs instead of `flow`.
    installed_flow: Option<SkillStore>,
}

impl<'a> PipelineBuilder<'a> {
    /// No routes yet, the default policy with its defaults, template replies, no uplink, the
    /// bundled default flow.
    pub fn new(runtime: &'a Runtime) -> Self {
        PipelineBuilder {
            runtime,
            routes: Vec::new(),
            policy_config: BTreeMap::new(),
            phrase: false,
            uplink: None,
            flow: bundled::default_flow(),
            installed_flow: None,
        }
    }

    /// A route to the bundled intents skill over datastore `index`, named after it: the
    /// vendor's own skill, which may use the uplink.
    pub fn datastore(mut self, index: &str) -> Result<Self, BuildError> {
        let skill = datastore_skill(self.runtime, index, Limits::default())?;
        let route = Route::new(index, Arc::new(skill), true, self.runtime.catalog())?;
        self.routes.push(route);
        Ok(self)
    }

    /// A route to installed skill `name` of `store`, under its manifest's grants.
    pub fn installed(mut self, store: &SkillStore, name: &str) -> Result<Self, BuildError> {
        self.routes
            .push(Route::installed(store, self.runtime, name)?);
        Ok(self)
    }

    /// A route made by the caller.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Config values of the default policy (`min-confidence`, `min-battery`, `max-chars`,
    /// `max-out-of-scope`).
    pub fn policy_config(mut self, config: BTreeMap<String, String>) -> Self {
        self.policy_config = config;
        self
    }

    /// Whether local answers are phrased by the bundled chat skill (else template replies).
    pub fn phrase(mut self, phrase: bool) -> Self {
        self.phrase = phrase;
        self
    }

    /// The owner's uplink, if any.
    pub fn uplink(mut self, config: Option<UplinkConfig>) -> Self {
        self.uplink = config;
        self
    }

    /// The flow component that handles each utterance (default: the bundled default flow,
    /// [`bundled::default_flow`]).
    pub fn flow(mut self, spec: FlowSpec) -> Self {
        self.flow = spec;
        self
    }

    /// The flow installed in flow store `flows` ([`SkillStore::flows_at`]) when there is one:
    /// the device's own NLU logic, which runs instead of [`flow`](Self::flow)'s.
    pub fn installed_flow(mut self, flows: SkillStore) -> Self {
        self.installed_flow = Some(flows);
        self
    }

    /// The pipeline: a router embedding with the first route's encoder, the default policy,
    /// the phraser and the uplink asked for, and the flow (the installed one, if asked for
    /// and there is one).
    pub fn build(self) -> Result<Pipeline, BuildError> {
        let rt = self.runtime;
        let encoder = self
            .routes
            .first()
            .ok_or(RouterError::NoSkills)?
            .encoder()?
            .to_string();
        let embedder = rt.load_skill(bundled::intents_skill(&encoder, None, Limits::default()))?;
        let router = Router::new(&encoder, Arc::new(embedder), self.routes)?;
        let phraser = if self.phrase {
            let limits = Limits {
                deadline: Duration::from_secs(3),
                ..bundled::chat_limits()
            };
            let chat = bundled::chat_skill(bundled::DEFAULT_DECODER, limits);
            Some(Arc::new(rt.load_skill(chat)?))
        } else {
            None
        };
        let pipeline = Pipeline {
            router: Arc::new(router),
            policy: Policy::load(rt, &bundled::default_policy(self.policy_config)?)?,
            phraser,
            uplink: self.uplink.map(Uplink::new).transpose()?,
            flow: Flow::load(rt, &self.flow)?,
        };
        let installed = match &self.installed_flow {
            Some(flows) => crate::installed::load_flow(flows, rt, &pipeline)?,
            None => None,
        };
        Ok(match installed {
            Some(installed) => pipeline.with_flow(installed.flow),
            None => pipeline,
        })
    }
}
