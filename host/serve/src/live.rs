//! The pipeline `/v1/nlu` answers through, following the skill store and the flow store: when
//! one of its installed skills or the device's installed flow gets a new version (an install,
//! a rollback or a removal), the next request builds a pipeline with it and swaps it in.
//! Requests hold an `Arc` of the pipeline they started with, so a swap never touches one in
//! flight: an utterance finishes on the flow and skills it started with.

use edgenlu::flow::Flow;
use edgenlu::{bundled, Runtime};
use edgenlu_device::installed::load_flow;
use edgenlu_device::pipeline::Pipeline;
use edgenlu_device::router::{InstalledFile, Route};
use edgenlu_trust::skills::{SkillStore, FLOW_SLOT};
use std::sync::{Arc, Mutex, RwLock, TryLockError};

/// A [`Pipeline`] whose installed routes ([`Route::installed`]) are swapped for the skill
/// store's current versions between requests, and whose flow, when it follows a flow store
/// ([`following_flow`](Self::following_flow)), for the installed flow's (or the bundled
/// default flow when none is installed).
pub struct LivePipeline {
    current: RwLock<Served>,
    /// Held by the worker loading a new version, so that the others keep answering with the
    /// pipeline they have instead of loading it too.
    swapping: Mutex<()>,
    store: SkillStore,
    /// The flow store followed, if any.
    flows: Option<SkillStore>,
    runtime: Runtime,
}

/// What is served now.
#[derive(Clone)]
struct Served {
    pipeline: Arc<Pipeline>,
    /// The installed flow it runs: its name and file (None: the pipeline's own flow).
    flow: Option<(String, InstalledFile)>,
}

impl LivePipeline {
    /// Serves `pipeline`; its installed routes are reloaded from `store` with `runtime`.
    pub fn new(pipeline: Pipeline, store: SkillStore, runtime: Runtime) -> LivePipeline {
        LivePipeline {
            current: RwLock::new(Served {
                pipeline: Arc::new(pipeline),
                flow: None,
            }),
            swapping: Mutex::new(()),
            store,
            flows: None,
            runtime,
        }
    }

    /// Runs the flow installed in `flows` ([`SkillStore::flows_at`]) from now on, and follows
    /// it: a new flow installed (or rolled back) is served from the next request, and when
    /// the installed flow is removed, the bundled default flow is. An installed flow that
    /// does not load (it no longer verifies, say) is logged and the pipeline's own flow
    /// answers meanwhile: the device keeps answering.
    pub fn following_flow(mut self, flows: SkillStore) -> LivePipeline {
        let served = self.served();
        *self.current.get_mut().unwrap_or_else(|e| e.into_inner()) =
            match load_flow(&flows, &self.runtime, &served.pipeline) {
                Ok(Some(f)) => Served {
                    pipeline: Arc::new(served.pipeline.with_flow(f.flow)),
                    flow: Some((f.name, f.file)),
                },
                Ok(None) => served,
                Err(e) => {
                    tracing::warn!("the installed flow does not load, serving the default: {e}");
                    served
                }
            };
        self.flows = Some(flows);
        self
    }

    fn served(&self) -> Served {
        // The lock guards one value, replaced whole: a poisoned lock still holds a valid one.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pipeline served now, without looking at the stores.
    pub fn get(&self) -> Arc<Pipeline> {
        self.served().pipeline
    }

    /// The pipeline to answer the next request with, after swapping in any installed skill
    /// whose current file in the store is not the one its route was loaded from, and the
    /// flow store's current flow (one small file read per installed route and flow when
    /// nothing changed). A version that fails to load is logged, and the device keeps the
    /// version that works; the next request tries again.
    pub fn current(&self) -> Arc<Pipeline> {
        let served = self.served();
        if !self.flow_is_stale(&served)
            && !served
                .pipeline
                .router
                .routes()
                .iter()
                .any(|r| self.is_stale(r))
        {
            return served.pipeline;
        }
        let _swapping = match self.swapping.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return served.pipeline,
        };
        // Another worker may have swapped since `served` was taken.
        let mut served = self.served();
        served.pipeline = self.with_current_routes(served.pipeline);
        if self.flow_is_stale(&served) {
            served = self.with_current_flow(served);
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = served.clone();
        served.pipeline
    }

    /// `pipeline` with each stale installed route reloaded.
    fn with_current_routes(&self, mut pipeline: Arc<Pipeline>) -> Arc<Pipeline> {
        let stale: Vec<String> = pipeline
            .router
            .routes()
            .iter()
            .filter(|r| self.is_stale(r))
            .map(|r| r.name.clone())
            .collect();
        for name in stale {
            let swapped = Route::installed(&self.store, &self.runtime, &name)
                .and_then(|route| pipeline.router.with_route(route));
            match swapped {
                Ok(router) => {
                    pipeline = Arc::new(pipeline.with_router(router));
                    tracing::info!("serving a new version of skill {name}");
                }
                Err(e) => tracing::warn!("skill {name}: keeping the version served: {e}"),
            }
        }
        pipeline
    }

    /// `served` with the flow store's current flow, or the bundled default flow when none is
    /// installed; `served` itself when the new one fails to load.
    fn with_current_flow(&self, served: Served) -> Served {
        let Some(flows) = &self.flows else {
            return served;
        };
        let loaded = load_flow(flows, &self.runtime, &served.pipeline).and_then(|f| match f {
            Some(f) => Ok((f.flow, Some((f.name, f.file)))),
            None => Ok((Flow::load(&self.runtime, &bundled::default_flow())?, None)),
        });
        match loaded {
            Ok((flow, file)) => {
                match &file {
                    Some((name, f)) => {
                        tracing::info!("serving flow {name} version {}", f.version)
                    }
                    None => tracing::info!("serving the bundled default flow"),
                }
                Served {
                    pipeline: Arc::new(served.pipeline.with_flow(flow)),
                    flow: file,
                }
            }
            Err(e) => {
                tracing::warn!("flow: keeping the flow served: {e}");
                served
            }
        }
    }

    /// Whether the flow store's current flow differs from the one served (or its install is
    /// still unchecked, or it was removed, or one was installed where none was).
    fn flow_is_stale(&self, served: &Served) -> bool {
        let Some(flows) = &self.flows else {
            return false;
        };
        let current = match &served.flow {
            Some((_, file)) => flows.is_current(FLOW_SLOT, &file.sha256),
            None => flows
                .state(FLOW_SLOT)
                .map(|s| s.is_none_or(|s| s.unchecked)),
        };
        match current {
            Ok(current) => !current,
            Err(e) => {
                tracing::warn!("flow: reading its state: {e}");
                false
            }
        }
    }

    /// Whether the store's current file of installed route `route` differs from the one it
    /// serves (or its install is still unchecked, or it was removed).
    fn is_stale(&self, route: &Route) -> bool {
        let Some(served) = &route.installed else {
            return false;
        };
        match self.store.is_current(&route.name, &served.sha256) {
            Ok(current) => !current,
            Err(e) => {
                tracing::warn!("skill {}: reading its state: {e}", route.name);
                false
            }
        }
    }

    /// The runtime the installed skills are loaded with.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Each route's name and the version of its skill served now (0: a bundled skill).
    pub fn versions(&self) -> Vec<(String, u64)> {
        self.get()
            .router
            .routes()
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.installed.as_ref().map_or(0, |f| f.version),
                )
            })
            .collect()
    }

    /// The installed flow served now and its version; None: the pipeline's own flow (the
    /// bundled default unless the pipeline was built with another).
    pub fn flow_version(&self) -> Option<(String, u64)> {
        self.served().flow.map(|(name, f)| (name, f.version))
    }
}
