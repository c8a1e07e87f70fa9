//! The wasmtime embedding: one `Engine` per process, compiled components cached on disk,
//! `InstancePre` reused across requests, and a fresh `Store` (fresh memory, handle table and
//! budgets) for every request. An epoch ticker stops guests that run past their deadline.

use crate::bindings::chat::ChatSkill;
use crate::bindings::embedding::EmbeddingSkill;
use crate::bindings::tokenizer::TokenizerPre;
use crate::bindings::{ChatError, ChatRequest, ChatResponse, ChatTurn, Encoded};
use crate::bindings::{Request, Response, Skill as SkillBindings, Timing, WitError};
use crate::catalog::ModelCatalog;
use crate::error::SkillError;
use crate::log_rate::LogRate;
use crate::response;
use crate::state::{self, ComponentState, EpochTicker, Grants, TextSink};
use crate::tokenizer::TokenizerLink;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, Store};

/// Where a component's bytes come from.
#[derive(Clone)]
pub enum ComponentSource {
    /// A component file, read when the component is compiled.
    File(PathBuf),
    /// Bytes the caller already read and verified (a signed skill): the host compiles exactly
    /// these instead of reading `path` again, which could have changed since the check.
    Verified {
        /// The file the bytes were read from, for errors.
        path: PathBuf,
        /// The verified bytes.
        bytes: Arc<[u8]>,
    },
    /// Bytes compiled into the program (the bundled components), named for errors.
    Embedded {
        /// The component's name, for errors.
        name: &'static str,
        /// The component's bytes.
        bytes: &'static [u8],
    },
}

impl ComponentSource {
    /// What errors call this component: its path, or its name when it is embedded.
    pub fn describe(&self) -> String {
        match self {
            ComponentSource::File(path) | ComponentSource::Verified { path, .. } => {
                path.display().to_string()
            }
            ComponentSource::Embedded { name, .. } => format!("{name} (embedded)"),
        }
    }
}

impl std::fmt::Debug for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A component plus what it is granted.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    /// Where the component's bytes come from.
    pub source: ComponentSource,
    /// What it may use.
    pub grants: Grants,
}

impl ComponentSpec {
    /// The error for a failure to link or instantiate this component.
    pub(crate) fn link_error(&self, e: wasmtime::Error) -> SkillError {
        SkillError::Load {
            what: self.source.describe(),
            reason: format!("{e:?}"),
        }
    }
}

/// A skill and the tokenizer component it links.
#[derive(Debug, Clone)]
pub struct SkillSpec {
    /// Name used in logs and errors.
    pub name: String,
    /// The skill component.
    pub skill: ComponentSpec,
    /// The tokenizer component its `tokenize` import calls, if it imports one.
    pub tokenizer: Option<ComponentSpec>,
}

/// The shared host runtime: cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    catalog: Arc<ModelCatalog>,
    cache_dir: Option<PathBuf>,
    ticker: Arc<EpochTicker>,
}

/// The MAC of a compiled-component cache entry: SHA-256(secret ‖ SHA-256(code)).
fn cache_mac(secret: &[u8; 32], code: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(Sha256::digest(code));
    h.finalize().into()
}

/// A temporary file name in `dir` for `stem`, unique per call: threads of one process may
/// write the same cache entry (or the key) at once, and a shared name let one thread's rename
/// or removal take the other's file.
fn unique_tmp(dir: &Path, stem: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    dir.join(format!(
        "{stem}.tmp{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// This device's secret for cache MACs, created (mode 0600) on first use.
fn cache_secret(dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("mac.key");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(secret) = bytes.try_into() {
            return Ok(secret);
        }
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = unique_tmp(dir, "mac.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&secret)?;
    f.sync_all()?;
    // Another process may have won the race: whichever key is in place is the key.
    if std::fs::hard_link(&tmp, &path).is_err() {
        std::fs::remove_file(&tmp)?;
        return std::fs::read(&path)?
            .try_into()
            .map_err(|_| std::io::Error::other("mac.key is not 32 bytes"));
    }
    std::fs::remove_file(&tmp)?;
    Ok(secret)
}

/// Makes freed per-request buffers (tensors, guest memories) go back to the OS.
///
/// glibc raises its mmap threshold to the size of the largest block freed, after which large
/// blocks come from the heap and stay resident: after many requests that allocated big host
/// tensors, RSS stays at the high-water mark. A device daemon wants its RSS back near
/// baseline between requests, so the threshold is pinned (at glibc's own default).
///
/// This changes the allocator of the whole process, so the runtime never calls it by itself:
/// a daemon embedding it (the `edgenlu` CLI does) calls it once at start. Idempotent; does
/// nothing off glibc.
pub fn return_freed_memory_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes allocator tuning; called once, before heavy allocation.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        });
    }
}

/// How the engine lays out guest memory. The defaults suit a device; an emulator such as
/// qemu-user, where reserving gigabytes of address space per instance is slow, wants less.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Address space reserved for each linear memory, bytes (wasmtime's default: 4 GiB plus
    /// guard pages on 64-bit hosts). When set, the guard shrinks to 64 KiB and memories grow
    /// by moving instead of into reserved space: bounds are checked in code, which is slower.
    pub memory_reservation: Option<u64>,
}

/// The environment variable [`RuntimeOptions::from_env`] reads.
pub const MEMORY_RESERVATION_ENV: &str = "EDGENLU_WASM_MEMORY_RESERVATION_MIB";

impl RuntimeOptions {
    /// Options from the environment, for a program that wants them configurable that way
    /// (the runtime itself never reads it): `EDGENLU_WASM_MEMORY_RESERVATION_MIB=64` sets
    /// [`RuntimeOptions::memory_reservation`] (the ARM check under qemu does).
    pub fn from_env() -> Result<RuntimeOptions, SkillError> {
        let Ok(value) = std::env::var(MEMORY_RESERVATION_ENV) else {
            return Ok(RuntimeOptions::default());
        };
        match value.trim().parse::<u64>() {
            Ok(mib) if (1..=1 << 20).contains(&mib) => Ok(RuntimeOptions {
                memory_reservation: Some(mib << 20),
            }),
            _ => Err(SkillError::Load {
                what: MEMORY_RESERVATION_ENV.into(),
                reason: format!("{value:?} is not a size in MiB between 1 and 1048576"),
            }),
        }
    }

    fn apply(&self, config: &mut Config) {
        if let Some(bytes) = self.memory_reservation {
            config.memory_reservation(bytes);
            config.memory_guard_size(64 << 10);
            config.memory_reservation_for_growth(0);
        }
    }
}

/// Feeds `Hash` output into SHA-256, so a cache key does not depend on std's hasher, which may
/// change between Rust releases.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

impl Runtime {
    /// A runtime opening models from `catalog`, caching compiled components in `cache_dir`,
    /// with the default [`RuntimeOptions`].
    pub fn new(catalog: ModelCatalog, cache_dir: Option<PathBuf>) -> Result<Runtime, SkillError> {
        Runtime::with_options(catalog, cache_dir, RuntimeOptions::default())
    }

    /// A runtime with explicit engine options.
    pub fn with_options(
        catalog: ModelCatalog,
        cache_dir: Option<PathBuf>,
        options: RuntimeOptions,
    ) -> Result<Runtime, SkillError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        options.apply(&mut config);
        let engine = Engine::new(&config).map_err(|e| SkillError::Load {
            what: "engine".into(),
            reason: e.to_string(),
        })?;
        let ticker = EpochTicker::start(&engine).map_err(|e| SkillError::Load {
            what: "epoch thread".into(),
            reason: e.to_string(),
        })?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                catalog: Arc::new(catalog),
                cache_dir,
                ticker,
            }),
        })
    }

    /// The model catalog guests open models from.
    pub fn catalog(&self) -> &Arc<ModelCatalog> {
        &self.inner.catalog
    }

    /// What a tokenizer link needs to make its own stores: the models, and the epoch ticker
    /// (kept running while the link lives, even past this runtime).
    pub(crate) fn store_parts(&self) -> (Arc<ModelCatalog>, Arc<EpochTicker>) {
        (self.inner.catalog.clone(), self.inner.ticker.clone())
    }

    /// A fresh store for one request to one component, logging within its `log_rate`.
    pub(crate) fn new_store(
        &self,
        name: &str,
        log_rate: &Arc<LogRate>,
        grants: &Grants,
        deadline: Instant,
    ) -> Store<ComponentState> {
        state::new_store(
            &self.inner.engine,
            &self.inner.catalog,
            name,
            log_rate,
            grants,
            deadline,
        )
    }

    /// Compiles the component file at `path` (see [`Runtime::compile`]).
    pub(crate) fn load_component(&self, path: &Path) -> Result<Component, SkillError> {
        let bytes = std::fs::read(path).map_err(|e| SkillError::Load {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.compile(&path.display().to_string(), &bytes)
    }

    /// Compiles the component `spec` names, from the bytes it carries or else its file.
    pub(crate) fn spec_component(&self, spec: &ComponentSpec) -> Result<Component, SkillError> {
        match &spec.source {
            ComponentSource::File(path) => self.load_component(path),
            ComponentSource::Verified { bytes, .. } => self.compile(&spec.source.describe(), bytes),
            ComponentSource::Embedded { bytes, .. } => self.compile(&spec.source.describe(), bytes),
        }
    }

    /// Compiles a component, or loads it from the on-disk cache of compiled components.
    ///
    /// Entries live in a folder per CPU architecture and are keyed by the component's SHA-256
    /// and a SHA-256 of the engine's compatibility hash (wasmtime version, target, CPU
    /// features, engine settings), so a cache shared by two hosts, or kept across an upgrade,
    /// never hands one of them the other's code; wasmtime also checks the header on load, and
    /// an entry it refuses is recompiled and replaced.
    ///
    /// A cached entry is native code, so it is trusted only if it carries this device's MAC:
    /// SHA-256(secret ‖ SHA-256(code)) with a 32-byte secret kept 0600 beside the cache (fixed
    /// length input, so no length extension). A file dropped into the cache by anyone without
    /// the secret is ignored and recompiled, never loaded.
    pub(crate) fn compile(&self, what: &str, bytes: &[u8]) -> Result<Component, SkillError> {
        let err = |reason: String| SkillError::Load {
            what: what.to_string(),
            reason,
        };
        let engine = &self.inner.engine;
        let Some(root) = &self.inner.cache_dir else {
            return Component::new(engine, bytes).map_err(|e| err(format!("{e:?}")));
        };
        let mut engine_hash = Sha256Hasher(Sha256::new());
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let key = format!("{:x}-{:016x}", Sha256::digest(bytes), engine_hash.finish());
        let dir = &root.join(std::env::consts::ARCH);
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cache: {e}")))?;
        let cached = dir.join(format!("{key}.cwasm"));
        let secret = cache_secret(root).map_err(|e| err(format!("cache key: {e}")))?;
        if let Ok(file) = std::fs::read(&cached) {
            if let Some(code) =
                file.strip_suffix(&cache_mac(&secret, &file[..file.len().saturating_sub(32)])[..])
            {
                // SAFETY: the code carries this device's MAC, so this host wrote it with
                // `precompile_component` for this engine configuration (the key includes the
                // engine's compatibility hash); it is deserialized from the bytes just checked.
                if let Ok(c) = unsafe { Component::deserialize(engine, code) } {
                    return Ok(c);
                }
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| err(format!("{e:?}")))?;
        let mut file = compiled.clone();
        file.extend_from_slice(&cache_mac(&secret, &compiled));
        let tmp = unique_tmp(dir, &key);
        std::fs::write(&tmp, &file)
            .and_then(|_| std::fs::rename(&tmp, &cached))
            .map_err(|e| err(e.to_string()))?;
        // SAFETY: produced just now by `precompile_component` for this engine.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| err(format!("{e:?}")))
    }

    fn linker(&self) -> Linker<ComponentState> {
        Linker::new(&self.inner.engine)
    }

    /// Loads a skill and its tokenizer, compiled and linked, ready to serve requests.
    pub fn load_skill(&self, spec: SkillSpec) -> Result<Skill, SkillError> {
        let tokenizer = match &spec.tokenizer {
            Some(t) => {
                let component = self.spec_component(t)?;
                let mut linker = self.linker();
                crate::bindings::tokenizer::Tokenizer::add_to_linker::<_, HasSelf<ComponentState>>(
                    &mut linker,
                    |s| s,
                )
                .map_err(|e| t.link_error(e))?;
                let pre = linker
                    .instantiate_pre(&component)
                    .map_err(|e| t.link_error(e))?;
                let pre = TokenizerPre::new(pre).map_err(|e| t.link_error(e))?;
                Some(TokenizerLink::new(
                    pre,
                    t.grants.clone(),
                    self.store_parts(),
                ))
            }
            None => None,
        };
        let component = self.spec_component(&spec.skill)?;
        let mut linker = self.linker();
        SkillBindings::add_to_linker::<_, HasSelf<ComponentState>>(&mut linker, |s| s)
            .map_err(|e| spec.skill.link_error(e))?;
        // A skill may also use the standard wasi:nn, over the same grants and budgets.
        crate::nn::add_to_linker(&mut linker).map_err(|e| spec.skill.link_error(e))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| spec.skill.link_error(e))?;
        Ok(Skill {
            runtime: self.clone(),
            log_rate: Arc::new(LogRate::for_limits(&spec.skill.grants.limits)),
            spec,
            pre,
            tokenizer,
        })
    }
}

/// Bytes of text a response carries (what `max_response_bytes` limits).
pub(crate) fn response_bytes(r: &Response) -> usize {
    let slots: usize = r
        .slots
        .iter()
        .map(|s| s.name.len() + s.value.len() + 8)
        .sum();
    let timings: usize = r.timings.iter().map(|t| t.stage.len() + 8).sum();
    r.intent.len() + r.reply.as_ref().map_or(0, String::len) + slots + timings
}

/// A loaded skill. Each call gets a fresh instance; a trap never poisons later calls.
pub struct Skill {
    runtime: Runtime,
    /// The skill's log-line rate, shared by every request to it.
    log_rate: Arc<LogRate>,
    spec: SkillSpec,
    pre: InstancePre<ComponentState>,
    tokenizer: Option<TokenizerLink>,
}

/// A response plus what the request cost on the host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer {
    /// What the skill answered, with the host's timings added.
    #[serde(flatten)]
    pub response: Response,
    /// Bytes of model weights host kernels read for this request.
    pub weight_bytes_read: u64,
}

impl Skill {
    /// The spec this skill was loaded from.
    pub fn spec(&self) -> &SkillSpec {
        &self.spec
    }

    /// The runtime it was loaded on (its model catalog, its engine).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Runs `f` against a fresh instance of the skill; returns its result, the store (with the
    /// host's counters) and how long instantiating took.
    fn with_instance<R>(
        &self,
        on_text: Option<TextSink>,
        f: impl FnOnce(
            &mut Store<ComponentState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<Result<R, WitError>>,
    ) -> Result<(R, Store<ComponentState>, Duration), SkillError> {
        self.with_instance_until(None, on_text, f)
    }

    /// [`with_instance`](Self::with_instance), its deadline no later than `cap` when given
    /// (the caller's own deadline, e.g. a flow's).
    fn with_instance_until<R>(
        &self,
        cap: Option<Instant>,
        on_text: Option<TextSink>,
        f: impl FnOnce(
            &mut Store<ComponentState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<Result<R, WitError>>,
    ) -> Result<(R, Store<ComponentState>, Duration), SkillError> {
        let own = Instant::now() + self.spec.skill.grants.limits.deadline;
        let deadline = cap.map_or(own, |cap| cap.min(own));
        let mut store = self.runtime.new_store(
            &self.spec.name,
            &self.log_rate,
            &self.spec.skill.grants,
            deadline,
        );
        store.data_mut().tokenizer = self
            .tokenizer
            .as_ref()
            .map(|t| Box::new(t.for_request(deadline)) as Box<dyn state::RequestTokenizer>);
        store.data_mut().on_text = on_text;
        let start = Instant::now();
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| store.data().trap_error(e))?;
        let instantiate = start.elapsed();
        match f(&mut store, &instance) {
            Ok(Ok(r)) => Ok((r, store, instantiate)),
            Ok(Err(e)) => Err(SkillError::Guest(e)),
            Err(trap) => Err(store.data().trap_error(trap)),
        }
    }

    /// Answers one utterance.
    pub fn handle(&self, text: &str) -> Result<Answer, SkillError> {
        self.handle_request(&Request {
            text: text.to_string(),
            locale: None,
            encoded: None,
        })
    }

    /// Answers one request (which may carry the utterance already encoded). The host adds its
    /// timings to the skill's: `host:instantiate` (the request's fresh instance),
    /// `host:tokenize` (the linked tokenizer), `host:kernels` and `host:total`.
    pub fn handle_request(&self, req: &Request) -> Result<Answer, SkillError> {
        self.handle_request_until(req, None)
    }

    /// [`handle_request`](Self::handle_request) within the caller's `deadline` too, when
    /// given: the request's deadline is the earlier of it and the skill's own.
    pub fn handle_request_until(
        &self,
        req: &Request,
        deadline: Option<Instant>,
    ) -> Result<Answer, SkillError> {
        let start = Instant::now();
        let (mut response, store, instantiate) =
            self.with_instance_until(deadline, None, |store, instance| {
                let bindings = SkillBindings::new(&mut *store, instance)?;
                bindings.edgenlu_nlu_nlu().call_handle(store, req)
            })?;
        let state = store.data();
        let limit = state.budget.limits.max_response_bytes;
        let bytes = response_bytes(&response);
        if bytes > limit {
            return Err(SkillError::ResponseTooLarge { bytes, limit });
        }
        response::validate(&req.text, &response)?;
        let micros = |d: Duration| d.as_micros() as u64;
        response.timings.push(Timing {
            stage: "host:instantiate".into(),
            micros: micros(instantiate),
        });
        if let Some(t) = &state.tokenizer {
            response.timings.push(Timing {
                stage: "host:tokenize".into(),
                micros: micros(t.elapsed()),
            });
        }
        response.timings.push(Timing {
            stage: "host:kernels".into(),
            micros: micros(state.budget.kernel_time),
        });
        response.timings.push(Timing {
            stage: "host:total".into(),
            micros: micros(start.elapsed()),
        });
        Ok(Answer {
            response,
            weight_bytes_read: state.budget.weight_bytes_read,
        })
    }

    /// The skill's embedding of `text` (its `embedder` export).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, SkillError> {
        let (v, _, _) = self.with_instance(None, |store, instance| {
            EmbeddingSkill::new(&mut *store, instance)?
                .edgenlu_nlu_embedder()
                .call_embed(store, text)
        })?;
        Ok(v)
    }

    /// The encoder's state for every token of `text`, with the tokens' spans and the sentence
    /// embedding, in a fresh instance (needs a skill exporting `edgenlu:nlu/embedder`).
    pub fn encode(&self, text: &str) -> Result<Encoded, SkillError> {
        Ok(self.encode_timed(text)?.0)
    }

    /// [`encode`](Self::encode), with the time the linked tokenizer took.
    pub fn encode_timed(&self, text: &str) -> Result<(Encoded, Duration), SkillError> {
        let (v, store, _) = self.with_instance(None, |store, instance| {
            EmbeddingSkill::new(&mut *store, instance)?
                .edgenlu_nlu_embedder()
                .call_encode(store, text)
        })?;
        let tokenize = store
            .data()
            .tokenizer
            .as_ref()
            .map_or(Duration::ZERO, |t| t.elapsed());
        Ok((v, tokenize))
    }

    /// Generates text with a chat skill (one exporting `edgenlu:nlu/chat`), in a fresh
    /// instance. With the fused forward pass, each piece of text also goes to `on_text` as
    /// the skill pulls it from the host.
    pub fn chat(
        &self,
        req: &ChatRequest,
        on_text: Option<TextSink>,
    ) -> Result<ChatResponse, SkillError> {
        self.chat_with_history(&[], req, on_text)
    }

    /// [`chat`](Self::chat) continuing a conversation: `history` are the turns before
    /// `req.prompt`, oldest first.
    pub fn chat_with_history(
        &self,
        history: &[ChatTurn],
        req: &ChatRequest,
        on_text: Option<TextSink>,
    ) -> Result<ChatResponse, SkillError> {
        let (response, _, _) = self.with_instance(on_text, |store, instance| {
            let bindings = ChatSkill::new(&mut *store, instance)?;
            // The context overflow travels apart so that it reaches the caller typed.
            Ok(
                match bindings
                    .edgenlu_nlu_chat()
                    .call_complete(store, req, history)?
                {
                    Ok(r) => Ok(Ok(r)),
                    Err(ChatError::ContextLengthExceeded(o)) => Ok(Err(o)),
                    Err(ChatError::Failed(e)) => Err(e),
                },
            )
        })?;
        response.map_err(SkillError::ContextLength)
    }

    /// Tokenizes with the linked tokenizer, in a fresh instance (for tests and tools).
    pub fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>, SkillError> {
        let link = self.tokenizer.as_ref().ok_or_else(|| SkillError::Load {
            what: self.spec.name.clone(),
            reason: "no tokenizer linked".into(),
        })?;
        let deadline = Instant::now() + link.grants.limits.deadline;
        let mut tok = link.for_request(deadline);
        texts.iter().map(|t| tok.encode(t)).collect()
    }
}
