//! Picking which installed skill answers an utterance. A device has many third-party intent
//! skills; the host embeds the utterance once with the encoder they share, scores each skill by
//! how close the utterance is to the examples in that skill's own datastore, and hands the
//! winner the encoding (so it does not run the encoder again). Skills never see each other's
//! data: only the host reads every datastore, and each skill gets the utterance and its
//! encoding, nothing of the other skills.
//!
//! The same search gives the out-of-scope score the policy sees: 1 − the similarity of the
//! nearest example among all skills.

use crate::installed::InstalledSkills;
use edgenlu::error::SkillError;
use edgenlu::ModelCatalog;
use edgenlu::{Answer, Skill};
use edgenlu::{Encoded, Request};
use edgenlu_kernels::{ops, WeightView};
use edgenlu_models::gguf::GgufFile;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many of a skill's nearest examples its score averages: more than one, so that a
/// single stray example does not pull utterances of another domain in.
pub const ROUTE_NEIGHBOURS: usize = 3;

/// Why a router could not be set up or could not route.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("a router needs at least one skill")]
    NoSkills,
    #[error("skill {skill:?} has no `{key}` in its config, so it cannot be routed to")]
    MissingConfig { skill: String, key: &'static str },
    #[error("skill {skill:?} uses encoder {encoder:?}, the router embeds with {router:?}")]
    EncoderMismatch {
        skill: String,
        encoder: String,
        router: String,
    },
    #[error("two skills are named {0:?}")]
    DuplicateName(String),
    #[error("datastore {index:?} of skill {skill:?}: {reason}")]
    BadDatastore {
        skill: String,
        index: String,
        reason: String,
    },
    #[error("loading installed skill {name:?}: {source}")]
    Installed {
        name: String,
        source: crate::installed::LoadError,
    },
    #[error(transparent)]
    Skill(#[from] SkillError),
}

/// The installed file a route's skill was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    /// The manifest's version.
    pub version: u64,
    /// SHA-256 of the file, hex (as the skill store's `state.json` records it).
    pub sha256: String,
}

/// A skill the router may pick. Cloning shares the skill and the datastore.
#[derive(Clone)]
pub struct Route {
    /// The skill's name (what the policy and the response see).
    pub name: String,
    pub skill: Arc<Skill>,
    /// Whether its manifest grants the `uplink` capability.
    pub may_uplink: bool,
    /// For an installed skill ([`Route::installed`]), the file it was loaded from: what a
    /// server compares with the skill store to notice a new version. None for a bundled one.
    pub installed: Option<InstalledFile>,
    /// Its datastore's name, and the file, whose `index.embeddings` rows the router searches.
    index: String,
    datastore: Arc<GgufFile>,
    /// Norms of those rows, computed once (every utterance searches them).
    norms: Vec<f32>,
}

/// Where an utterance went and what it cost.
pub struct Routed<'a> {
    pub route: &'a Route,
    /// The utterance through the shared encoder (handed to the skill).
    pub encoded: Encoded,
    /// 1 − the cosine similarity of the nearest example among all skills, in [0, 1].
    pub out_of_scope: f32,
    /// Encoding the utterance (tokenizer included).
    pub embed: Duration,
    /// Of which the tokenizer component.
    pub tokenize: Duration,
    /// Searching every skill's examples.
    pub search: Duration,
}

/// Every skill scored for an utterance, and what it cost.
pub struct Ranked {
    /// (index into [`Router::routes`], mean cosine of the skill's nearest examples), best
    /// first.
    pub scores: Vec<(usize, f32)>,
    /// The utterance through the shared encoder.
    pub encoded: Encoded,
    /// 1 − the cosine similarity of the nearest example among all skills, in [0, 1].
    pub out_of_scope: f32,
    /// Encoding the utterance (tokenizer included).
    pub embed: Duration,
    /// Of which the tokenizer component.
    pub tokenize: Duration,
    /// Searching every skill's examples.
    pub search: Duration,
}

/// Several intent skills behind one shared encoder.
pub struct Router {
    encoder: String,
    embedder: Arc<Skill>,
    routes: Vec<Route>,
}

fn bad_datastore(skill: &str, index: &str, reason: impl ToString) -> RouterError {
    RouterError::BadDatastore {
        skill: skill.into(),
        index: index.into(),
        reason: reason.to_string(),
    }
}

fn config<'a>(skill: &'a Skill, key: &'static str) -> Result<&'a str, RouterError> {
    skill
        .spec()
        .skill
        .grants
        .config
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| RouterError::MissingConfig {
            skill: skill.spec().name.clone(),
            key,
        })
}

impl Route {
    /// A route to `skill` (its config names its `encoder` and `index`), called `name`.
    pub fn new(
        name: &str,
        skill: Arc<Skill>,
        may_uplink: bool,
        catalog: &ModelCatalog,
    ) -> Result<Route, RouterError> {
        let index = config(&skill, "index")?.to_string();
        let datastore = catalog
            .get(&index)
            .map_err(|e| bad_datastore(name, &index, e))?;
        let norms = ops::row_norms(&rows(name, &index, &datastore)?)
            .map_err(|e| bad_datastore(name, &index, e))?;
        Ok(Route {
            norms,
            name: name.into(),
            skill,
            may_uplink,
            installed: None,
            index,
            datastore,
        })
    }

    /// A route to the current version of installed skill `name`, loaded under its manifest's
    /// grants; it may use the uplink only if the manifest asks for the `uplink` capability
    /// (which its publisher's delegation must allow for the install to have been accepted).
    pub fn installed(
        store: &edgenlu_trust::skills::SkillStore,
        rt: &edgenlu::Runtime,
        name: &str,
    ) -> Result<Route, RouterError> {
        let (verified, skill) = store
            .load(rt, name)
            .map_err(|source| RouterError::Installed {
                name: name.into(),
                source,
            })?;
        let may_uplink = verified
            .manifest
            .capabilities
            .contains(&edgenlu_trust::manifest::Capability::Uplink);
        Ok(Route {
            installed: Some(InstalledFile {
                version: verified.manifest.version,
                sha256: verified.sha256,
            }),
            ..Route::new(name, Arc::new(skill), may_uplink, rt.catalog())?
        })
    }

    /// The skill's encoder (its `encoder` config).
    pub fn encoder(&self) -> Result<&str, RouterError> {
        config(&self.skill, "encoder")
    }

    /// The intents the skill's datastore lists.
    pub fn intents(&self) -> Vec<String> {
        self.datastore
            .index()
            .get_str_array("edgenlu.index.intents")
            .unwrap_or_default()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// The route's skill answers `text`, given its encoding.
    pub fn answer(&self, text: &str, encoded: Encoded) -> Result<Answer, SkillError> {
        self.skill.handle_request(&Request {
            text: text.into(),
            locale: None,
            encoded: Some(encoded),
        })
    }
}

/// The datastore's example rows, checked to be a matrix the search can read.
fn rows<'a>(skill: &str, index: &str, file: &'a GgufFile) -> Result<WeightView<'a>, RouterError> {
    let bad = |reason: String| bad_datastore(skill, index, reason);
    let t = file
        .tensor("index.embeddings")
        .ok_or_else(|| bad("no index.embeddings".into()))?;
    match *t.shape() {
        [r, c] if r > 0 => {
            WeightView::new(t.dtype(), r, c, t.data()).map_err(|e| bad(e.to_string()))
        }
        ref s => Err(bad(format!("index.embeddings is {s:?}, not [rows, dim]"))),
    }
}

impl Router {
    /// A router over `routes`, embedding with `embedder` (a skill exporting `embedder` over
    /// `encoder`). Every route must use the same encoder.
    pub fn new(
        encoder: &str,
        embedder: Arc<Skill>,
        routes: Vec<Route>,
    ) -> Result<Router, RouterError> {
        if routes.is_empty() {
            return Err(RouterError::NoSkills);
        }
        for (i, r) in routes.iter().enumerate() {
            let theirs = r.encoder()?;
            if theirs != encoder {
                return Err(RouterError::EncoderMismatch {
                    skill: r.name.clone(),
                    encoder: theirs.into(),
                    router: encoder.into(),
                });
            }
            if routes[..i].iter().any(|o| o.name == r.name) {
                return Err(RouterError::DuplicateName(r.name.clone()));
            }
        }
        Ok(Router {
            encoder: encoder.into(),
            embedder,
            routes,
        })
    }

    /// The encoder every route shares.
    pub fn encoder(&self) -> &str {
        &self.encoder
    }

    /// The skill that embeds utterances with that encoder (no datastore of its own).
    pub fn embedder(&self) -> &Arc<Skill> {
        &self.embedder
    }

    /// The same router with `route` in place of the route of the same name (checked as
    /// [`Router::new`] checks), e.g. a newly installed version of a skill.
    pub fn with_route(&self, route: Route) -> Result<Router, RouterError> {
        let routes = self
            .routes
            .iter()
            .map(|r| {
                if r.name == route.name {
                    route.clone()
                } else {
                    r.clone()
                }
            })
            .collect();
        Router::new(&self.encoder, self.embedder.clone(), routes)
    }

    /// The skills, in the order given.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Encodes `text` once and picks the skill whose nearest examples are closest on average
    /// (the first on a tie).
    pub fn route(&self, text: &str) -> Result<Routed<'_>, RouterError> {
        let ranked = self.rank(text)?;
        Ok(Routed {
            route: &self.routes[ranked.scores[0].0],
            encoded: ranked.encoded,
            out_of_scope: ranked.out_of_scope,
            embed: ranked.embed,
            tokenize: ranked.tokenize,
            search: ranked.search,
        })
    }

    /// Encodes `text` once and scores every skill by how close its nearest examples are on
    /// average: best first, equal scores in the routes' order.
    pub fn rank(&self, text: &str) -> Result<Ranked, RouterError> {
        let start = Instant::now();
        let (encoded, tokenize) = self.embedder.encode_timed(text)?;
        let embed = start.elapsed();
        let start = Instant::now();
        let mut scores = Vec::with_capacity(self.routes.len());
        let mut nearest = f32::NEG_INFINITY;
        for (i, route) in self.routes.iter().enumerate() {
            let view = rows(&route.name, &route.index, &route.datastore)?;
            let hits =
                ops::nn_search_with_norms(&view, &route.norms, &encoded.sentence, ROUTE_NEIGHBOURS)
                    .map_err(|e| bad_datastore(&route.name, &route.index, e))?;
            // NaN scores (a corrupt row) count as unrelated.
            let score = |h: &ops::Hit| if h.score.is_nan() { -1.0 } else { h.score };
            let mean = hits.iter().map(score).sum::<f32>() / hits.len().max(1) as f32;
            nearest = hits.first().map_or(nearest, |h| nearest.max(score(h)));
            scores.push((i, mean));
        }
        // Stable: equal scores keep the routes' order, so the first of them is best.
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(Ranked {
            scores,
            encoded,
            out_of_scope: (1.0 - nearest).clamp(0.0, 1.0),
            embed,
            tokenize,
            search: start.elapsed(),
        })
    }
}
