//! Per-instance state of a guest component: its handle table, budgets, grants and config.
//! A fresh `ComponentState` (and `Store`) is made for every request, so nothing a guest did
//! in one request can be seen by the next.

use crate::bindings::edgenlu::nlu::{config, log, types};
use crate::bindings::{TokenSpan, WitError};
use crate::catalog::ModelCatalog;
use crate::error::{HostError, SkillError};
use crate::escape::escape_for_log;
use crate::log_rate::{Admit, LogRate};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{
    Engine, ResourceLimiter, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder,
    UpdateDeadline,
};

/// How often the epoch advances. Running Wasm looks at the clock once per tick, so it stops
/// at most a tick (plus however late the ticker thread is scheduled) after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits for one request to one component. Defaults suit a MiniLM skill on a small device.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Guest linear memory, bytes.
    pub guest_memory: usize,
    /// Host memory the guest may hold in tensors, bytes.
    pub host_memory: usize,
    /// Wall-clock time per request, including time in host kernels.
    pub deadline: Duration,
    /// Live handles (tensors, models) the guest may hold at once.
    pub handles: usize,
    /// Largest list a host call returns, in elements.
    pub max_output_elems: usize,
    /// Largest text a guest may pass to the tokenizer, bytes.
    pub max_text_bytes: usize,
    /// Largest response (intent, reply, slots) a skill may return, bytes.
    pub max_response_bytes: usize,
    /// Bytes of log text per request; past that, log calls are dropped.
    pub log_bytes: usize,
    /// Log lines per second the component may write, shared by all its requests and
    /// instances (unlike the other limits, which are per request); lines past it are dropped
    /// and the next line written says how many. The default, 100, is far above what a skill
    /// logging a line or two per request at the device's request rate writes.
    pub log_lines_per_second: u32,
    /// Log lines the component may write at once before the rate applies (default 200).
    pub log_burst: u32,
    /// Tokens one generation may produce.
    pub max_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            guest_memory: 64 << 20,
            host_memory: 64 << 20,
            deadline: Duration::from_secs(5),
            handles: 1024,
            max_output_elems: 4 << 20,
            max_text_bytes: 1 << 20,
            max_response_bytes: 64 << 10,
            log_bytes: 16 << 10,
            log_lines_per_second: 100,
            log_burst: 200,
            max_tokens: 256,
        }
    }
}

/// What a component may use: model names, config values, and limits.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Model names the component may open (never paths).
    pub models: Vec<String>,
    /// Values for the `config` interface.
    pub config: BTreeMap<String, String>,
    /// Budgets for each request to the component.
    pub limits: Limits,
    /// Whether the component may run a decoder through `wasi:nn` (a llama graph resolves by
    /// name only then): an installed skill's manifest grants it with the `generate`
    /// capability, as it grants the `llm` interface.
    pub generate: bool,
}

/// Budget accounting for host-side resources during one request.
///
/// Host memory counts everything the host holds for the guest: tensors and caches for as long
/// as their handles live, and a call's transient buffers (dequantized weights, kernel
/// scratch) for the length of the call ([`Budget::charge_scratch`]). Both are charged before
/// they are allocated, so the budget, not the allocator, says no.
#[derive(Debug)]
pub struct Budget {
    /// The request's limits.
    pub limits: Limits,
    /// When the request's time is up.
    pub deadline: Instant,
    /// Host bytes in use and the deadline, shared with what charges them outside the store's
    /// data (`wasi:nn`'s graphs and contexts); atomic, so a kernel that borrows the state's
    /// tensors can still charge its scratch.
    shared: Arc<SharedBudget>,
    log_bytes: usize,
    /// Time spent inside host kernels, for the response's timings.
    pub kernel_time: Duration,
    /// Weight bytes read by kernels on the skill's behalf.
    pub weight_bytes_read: u64,
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        let deadline = Instant::now() + limits.deadline;
        Budget {
            deadline,
            shared: Arc::new(SharedBudget {
                host_memory: limits.host_memory,
                deadline_ms: limits.deadline.as_millis() as u64,
                host_bytes: AtomicUsize::new(0),
                tensor_bytes: AtomicUsize::new(0),
                deadline: Mutex::new(deadline),
            }),
            limits,
            log_bytes: 0,
            kernel_time: Duration::ZERO,
            weight_bytes_read: 0,
        }
    }

    /// Starts a new request: its deadline, and the counters kept per request (log bytes,
    /// kernel time, weight bytes read). Host bytes stay: they count what is still allocated.
    pub fn renew(&mut self, deadline: Instant) {
        self.deadline = deadline;
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = deadline;
        self.log_bytes = 0;
        self.kernel_time = Duration::ZERO;
        self.weight_bytes_read = 0;
    }

    /// The host bytes and deadline, for host objects that charge them outside the store.
    pub(crate) fn shared(&self) -> &Arc<SharedBudget> {
        &self.shared
    }

    /// Fails if allocating `bytes` more would pass the host-memory budget.
    pub fn check_host_bytes(&self, bytes: usize) -> Result<(), HostError> {
        self.shared.check(bytes).map_err(HostError::budget)
    }

    /// Counts `bytes` against the host-memory budget, or fails without counting them.
    pub fn charge_host_bytes(&self, bytes: usize) -> Result<(), HostError> {
        self.shared.charge(bytes).map_err(HostError::budget)
    }

    /// Gives back bytes charged by [`Budget::charge_host_bytes`].
    pub fn release_host_bytes(&self, bytes: usize) {
        self.shared.release(bytes);
    }

    /// Charges `bytes` of a host call's transient buffer until the returned charge is dropped.
    pub fn charge_scratch(&self, bytes: usize) -> Result<ScratchCharge<'_>, HostError> {
        self.charge_host_bytes(bytes)?;
        Ok(ScratchCharge {
            budget: self,
            bytes,
        })
    }

    /// Fails if a call would return more than `max_output_elems` elements.
    pub fn check_output_elems(&self, n: usize) -> Result<(), HostError> {
        if n > self.limits.max_output_elems {
            return Err(HostError::budget(format!(
                "{n} elements is more than one call may return"
            )));
        }
        Ok(())
    }

    /// True once the request's deadline has passed: the stop check of interruptible kernels.
    pub fn deadline_passed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Host calls check this on entry; long kernels also between tiles and inside their loops.
    pub fn check_deadline(&self) -> Result<(), HostError> {
        if self.deadline_passed() {
            return Err(HostError::budget(format!(
                "deadline of {} ms passed",
                self.limits.deadline.as_millis()
            )));
        }
        Ok(())
    }
}

/// One request's host memory in use and its deadline, shared (`Send + Sync`) by the store's
/// data and the host objects the `wasi:nn` plumbing keeps in a table of its own.
#[derive(Debug)]
pub(crate) struct SharedBudget {
    host_memory: usize,
    deadline_ms: u64,
    /// Bytes charged (tensors, caches, scratch) and not yet released.
    host_bytes: AtomicUsize,
    /// Bytes of the `wasi:nn` tensors the guest holds, as last counted: they are counted, not
    /// charged, because the plumbing creates and drops them out of the host's sight.
    tensor_bytes: AtomicUsize,
    deadline: Mutex<Instant>,
}

impl SharedBudget {
    /// Why allocating `bytes` more would pass the host-memory budget, if it would.
    pub(crate) fn check(&self, bytes: usize) -> Result<(), String> {
        let in_use = self
            .host_bytes
            .load(Ordering::Relaxed)
            .saturating_add(self.tensor_bytes.load(Ordering::Relaxed));
        if in_use.saturating_add(bytes) > self.host_memory {
            return Err(format!(
                "{bytes} bytes of host memory would pass the skill's budget of {} bytes ({in_use} in use)",
                self.host_memory
            ));
        }
        Ok(())
    }

    /// Counts `bytes`, or fails without counting them.
    pub(crate) fn charge(&self, bytes: usize) -> Result<(), String> {
        self.check(bytes)?;
        self.host_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back charged bytes.
    pub(crate) fn release(&self, bytes: usize) {
        let _ = self
            .host_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(bytes))
            });
    }

    /// Host memory left in the budget.
    pub(crate) fn available(&self) -> usize {
        self.host_memory.saturating_sub(
            self.host_bytes
                .load(Ordering::Relaxed)
                .saturating_add(self.tensor_bytes.load(Ordering::Relaxed)),
        )
    }

    /// Records the bytes of the `wasi:nn` tensors the guest holds now.
    pub(crate) fn set_tensor_bytes(&self, bytes: usize) {
        self.tensor_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The request's deadline now.
    pub(crate) fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the request must stop, once its deadline has passed.
    pub(crate) fn check_deadline(&self) -> Result<(), String> {
        if Instant::now() >= self.deadline() {
            return Err(format!("deadline of {} ms passed", self.deadline_ms));
        }
        Ok(())
    }
}

/// Host memory charged for one call's transient buffer; released when dropped.
#[derive(Debug)]
pub struct ScratchCharge<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Drop for ScratchCharge<'_> {
    fn drop(&mut self) {
        self.budget.release_host_bytes(self.bytes);
    }
}

/// Receives generated text piece by piece (always whole UTF-8 characters).
pub type TextSink = Box<dyn FnMut(&str) + Send>;

/// The tokenizer a skill's `tokenize` import calls, for one request. The state holds it by
/// this interface so that it does not depend on how a tokenizer component is linked.
pub(crate) trait RequestTokenizer: Send {
    /// Token ids of `text`.
    fn encode(&mut self, text: &str) -> Result<Vec<u32>, SkillError>;
    /// Tokens of `text` with the byte ranges they came from.
    fn encode_spans(&mut self, text: &str) -> Result<Vec<TokenSpan>, SkillError>;
    /// Text of `ids`.
    fn decode(&mut self, ids: &[u32]) -> Result<String, SkillError>;
    /// Raw bytes of `ids`' text (may end inside a UTF-8 character).
    fn decode_bytes(&mut self, ids: &[u32]) -> Result<Vec<u8>, SkillError>;
    /// Time spent in the tokenizer during this request.
    fn elapsed(&self) -> Duration;
}

/// The store data of one instantiated component.
pub struct ComponentState {
    pub table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub budget: Budget,
    /// Models this component may open, by name.
    pub models: Arc<ModelCatalog>,
    pub grants: Vec<String>,
    pub config: BTreeMap<String, String>,
    /// The tokenizer component a skill imports `tokenize` from, in a store of its own.
    pub(crate) tokenizer: Option<Box<dyn RequestTokenizer>>,
    /// Name used in log lines.
    pub component: String,
    /// The component's log-line rate, shared by all its requests and instances.
    pub(crate) log_rate: Arc<LogRate>,
    /// Where generated text goes as the guest pulls it (`generation.next`), e.g. stdout.
    pub on_text: Option<TextSink>,
    /// For a flow component, the utterance it handles: the device's host and the calls made.
    pub(crate) flow: Option<crate::flow_host::FlowCalls>,
    /// Whether a `wasi:nn` decoder graph may resolve ([`Grants::generate`]).
    pub(crate) generate: bool,
    /// The `wasi:nn` state (its own handle table, backends and the graphs granted), made on the
    /// component's first `wasi:nn` call.
    pub(crate) nn: Option<crate::nn::NnState>,
    /// Handles (tensors, models) the guest holds now.
    live_handles: usize,
}

impl ComponentState {
    pub fn new(
        component: String,
        models: Arc<ModelCatalog>,
        grants: Vec<String>,
        config: BTreeMap<String, String>,
        limits: Limits,
        log_rate: Arc<LogRate>,
    ) -> ComponentState {
        ComponentState {
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(
                StoreLimitsBuilder::new()
                    .memory_size(limits.guest_memory)
                    .instances(4)
                    .tables(8)
                    .memories(2)
                    .trap_on_grow_failure(true)
                    .build(),
            ),
            budget: Budget::new(limits),
            models,
            grants,
            config,
            tokenizer: None,
            component,
            log_rate,
            on_text: None,
            flow: None,
            generate: false,
            nn: None,
            live_handles: 0,
        }
    }

    /// Adds a resource to the guest's table, within its handle budget.
    pub(crate) fn push_handle<T: Send + 'static>(
        &mut self,
        value: T,
    ) -> Result<Resource<T>, HostError> {
        if self.live_handles >= self.budget.limits.handles {
            return Err(HostError::budget(format!(
                "the skill already holds {} handles, its limit",
                self.live_handles
            )));
        }
        let r = self.table.push(value)?;
        self.live_handles += 1;
        Ok(r)
    }

    /// Removes a resource the guest dropped.
    pub(crate) fn delete_handle<T: 'static>(&mut self, r: Resource<T>) -> Result<T, HostError> {
        let value = self.table.delete(r)?;
        self.live_handles -= 1;
        Ok(value)
    }
}

/// Advances an engine's epoch every [`EPOCH_TICK`] on a thread of its own, until dropped.
/// Whatever can still make stores on the engine holds it, so their deadlines keep ticking.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts ticking `engine`'s epoch.
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Arc<EpochTicker>> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, stopped) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("edgenlu-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Arc::new(EpochTicker { stop }))
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A fresh store for one request to the component `name` with `grants`, on `engine`, opening
/// models from `catalog`, logging within the component's `log_rate`.
pub(crate) fn new_store(
    engine: &Engine,
    catalog: &Arc<ModelCatalog>,
    name: &str,
    log_rate: &Arc<LogRate>,
    grants: &Grants,
    deadline: Instant,
) -> Store<ComponentState> {
    let state = ComponentState::new(
        name.to_string(),
        catalog.clone(),
        grants.models.clone(),
        grants.config.clone(),
        grants.limits.clone(),
        log_rate.clone(),
    );
    let mut state = state;
    state.generate = grants.generate;
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(check_deadline_at_tick);
    renew_store(&mut store, deadline);
    store
}

/// Gives `store` a new request: `deadline` and fresh per-request counters.
pub(crate) fn renew_store(store: &mut Store<ComponentState>, deadline: Instant) {
    store.data_mut().budget.renew(deadline);
    store.set_epoch_deadline(1);
}

/// Runs at every epoch tick while the store's Wasm runs: interrupts it (a
/// [`wasmtime::Trap::Interrupt`]) once the clock has passed the request's deadline, else lets
/// it run to the next tick. The clock decides, not a count of ticks: a ticker thread starved
/// under load ticks late, and a deadline counted in ticks would drift by all of that lateness.
fn check_deadline_at_tick(
    store: StoreContextMut<'_, ComponentState>,
) -> wasmtime::Result<UpdateDeadline> {
    Ok(if store.data().budget.deadline_passed() {
        UpdateDeadline::Interrupt
    } else {
        UpdateDeadline::Continue(1)
    })
}

/// A panic inside a host implementation, caught before it could unwind into wasmtime.
#[derive(Debug, thiserror::Error)]
#[error("host bug: a host call panicked: {0}")]
pub struct HostPanic(pub String);

/// A host call refused to go on because the guest passed a budget it cannot be told about
/// with a typed error (a `wasi:nn` tensor constructor, which returns no error): a trap.
#[derive(Debug, thiserror::Error)]
#[error("budget-exceeded: {0}")]
pub struct BudgetTrap(pub String);

/// Runs host code that might panic on a bug, catching the panic before it could unwind into
/// wasmtime.
pub(crate) fn guard_panics<R>(f: impl FnOnce() -> R) -> Result<R, HostPanic> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        HostPanic(
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into()),
        )
    })
}

/// Runs host code that might panic on a bug; a panic becomes a trap (the instance is then
/// discarded) instead of taking the host process down.
pub(crate) fn guard<R>(f: impl FnOnce() -> Result<R, HostError>) -> Result<R, HostError> {
    guard_panics(f).unwrap_or_else(|panic| Err(HostError::Trap(wasmtime::Error::new(panic))))
}

impl ComponentState {}

impl types::Host for ComponentState {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<WitError> {
        match err {
            HostError::Guest(e) => Ok(e),
            HostError::Trap(e) => Err(e),
        }
    }
}

impl config::Host for ComponentState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }
}

/// A guest's message is one host log line naming its component, with every hidden character
/// escaped ([`escape_for_log`]), within the request's log bytes and the component's line rate.
impl log::Host for ComponentState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.budget.log_bytes + message.len() > self.budget.limits.log_bytes {
            self.log_rate.count_dropped();
            return Ok(());
        }
        self.budget.log_bytes += message.len();
        let Admit::Write { dropped_before } = self.log_rate.admit(Instant::now()) else {
            return Ok(());
        };
        let c = escape_for_log(&self.component);
        if dropped_before > 0 {
            tracing::warn!(
                component = %c,
                dropped = dropped_before,
                "guest log lines dropped (line rate or per-request log bytes)"
            );
        }
        let message = escape_for_log(&message);
        match level {
            log::Level::Trace => tracing::trace!(component = %c, "{message}"),
            log::Level::Debug => tracing::debug!(component = %c, "{message}"),
            log::Level::Info => tracing::info!(component = %c, "{message}"),
            log::Level::Warn => tracing::warn!(component = %c, "{message}"),
            log::Level::Error => tracing::error!(component = %c, "{message}"),
        }
        Ok(())
    }
}

/// Store limiter: wasmtime's `StoreLimits`, remembering whether it refused memory so a trap
/// can be reported as a memory budget error rather than a generic one.
pub(crate) struct GuestLimiter {
    inner: StoreLimits,
    pub(crate) memory_refused: bool,
}

impl GuestLimiter {
    pub(crate) fn new(inner: StoreLimits) -> Self {
        GuestLimiter {
            inner,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.inner.memory_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.memory_refused = true;
        }
        r
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl ComponentState {
    /// Turns a wasmtime error from a guest call on this instance into the host API's error.
    pub(crate) fn trap_error(&self, e: wasmtime::Error) -> SkillError {
        if self.limiter.memory_refused {
            return SkillError::Memory(self.budget.limits.guest_memory);
        }
        if let Some(panic) = e.downcast_ref::<HostPanic>() {
            return SkillError::HostPanic(panic.to_string());
        }
        if let Some(BudgetTrap(why)) = e.downcast_ref::<BudgetTrap>() {
            return SkillError::Guest(WitError::BudgetExceeded(why.clone()));
        }
        if let Some(wasmtime::component::ResourceTableError::Full) =
            e.downcast_ref::<wasmtime::component::ResourceTableError>()
        {
            return SkillError::Guest(WitError::BudgetExceeded(format!(
                "the component already holds {} wasi:nn handles, its limit",
                self.budget.limits.handles
            )));
        }
        if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
            return SkillError::Deadline(self.budget.limits.deadline.as_millis() as u64);
        }
        // The trap's own words, not the wasm backtrace (which names only function indexes).
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => SkillError::Trap(format!("wasm trap: {trap}")),
            None => SkillError::Trap(e.root_cause().to_string()),
        }
    }
}
