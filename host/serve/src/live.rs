//! The pipeline `/v1/nlu` answers through, following the skill store: when one of its
//! installed skills gets a new version (an install or a rollback), the next request builds a
//! pipeline with that version and swaps it in. Requests hold an `Arc` of the pipeline they
//! started with, so a swap never touches one in flight.

use edgenlu::Runtime;
use edgenlu_device::pipeline::Pipeline;
use edgenlu_device::router::Route;
use edgenlu_trust::skills::SkillStore;
use std::sync::{Arc, Mutex, RwLock, TryLockError};

/// A [`Pipeline`] whose installed routes ([`Route::installed`]) are swapped for the skill
/// store's current versions between requests.
pub struct LivePipeline {
    current: RwLock<Arc<Pipeline>>,
    /// Held by the worker loading a new version, so that the others keep answering with the
    /// pipeline they have instead of loading it too.
    swapping: Mutex<()>,
    store: SkillStore,
    runtime: Runtime,
}

impl LivePipeline {
    /// Serves `pipeline`; its installed routes are reloaded from `store` with `runtime`.
    pub fn new(pipeline: Pipeline, store: SkillStore, runtime: Runtime) -> LivePipeline {
        LivePipeline {
            current: RwLock::new(Arc::new(pipeline)),
            swapping: Mutex::new(()),
            store,
            runtime,
        }
    }

    /// The pipeline served now, without looking at the store.
    pub fn get(&self) -> Arc<Pipeline> {
        // The lock guards one `Arc`, replaced whole: a poisoned lock still holds a valid one.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pipeline to answer the next request with, after swapping in any installed skill
    /// whose current file in the store is not the one its route was loaded from (one small
    /// file read per installed route when nothing changed). A version that fails to load is
    /// logged, and the route keeps the version that works; the next request tries again.
    pub fn current(&self) -> Arc<Pipeline> {
        let served = self.get();
        if !served.router.routes().iter().any(|r| self.is_stale(r)) {
            return served;
        }
        let _swapping = match self.swapping.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return served,
        };
        // Another worker may have swapped since `served` was taken.
        let mut pipeline = self.get();
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
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = pipeline.clone();
        pipeline
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
}
