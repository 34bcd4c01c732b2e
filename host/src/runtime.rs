//! The wasmtime runtime: one engine, the compiled component, and instances
//! that recycle themselves after a trap.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::cell::OnceCell;

use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Func, InstancePre, Lift, Linker, Lower, TypedFunc,
};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};

use crate::bindings::exports::pleo::oauth::{authorize, classify, connections, steps};
use crate::cache::{self, CacheStatus};
use crate::imports::{self, Backends, HostState};

/// How the runtime is sized and where it caches compiled code.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where the compiled component is cached; `None` compiles once per process.
    pub cache_dir: Option<PathBuf>,
    /// Most instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Linear memory one instance may use, in bytes.
    pub memory_limit: usize,
    /// Guest CPU time one call may use; time spent in imports does not count.
    pub call_budget: Duration,
    /// How often the epoch ticks: the granularity of `call_budget`.
    pub epoch_tick: Duration,
    /// Whether the CPU's page protection, rather than compiled checks,
    /// keeps the guest inside its linear memory. `true` (the default on
    /// 64-bit hosts): each pooled slot reserves 4 GiB of address space and
    /// a 32 MiB guard (64 slots: about 258 GiB of virtual addresses, none of
    /// it committed), and the compiled code carries no bounds check, so
    /// every call runs faster (README, "Benchmarks"). `false`: each slot
    /// reserves `memory_limit` and a 64 KiB guard, and every memory access
    /// is checked; for a host under a virtual-memory limit (`ulimit -v`).
    /// `memory_limit` holds either way.
    pub elide_bounds_checks: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: cache::default_dir(),
            max_instances: 64,
            memory_limit: 32 << 20,
            call_budget: Duration::from_secs(1),
            epoch_tick: Duration::from_millis(10),
            elide_bounds_checks: cfg!(target_pointer_width = "64"),
        }
    }
}

/// Why the runtime could not start or make an instance.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("configuring wasmtime failed: {0}")]
    Engine(String),
    #[error("compiling or loading the component failed: {0}")]
    Component(String),
    #[error("instantiating the component failed (all {0} instance slots may be in use): {1}")]
    Instantiate(u32, String),
}

/// Why a call into the guest failed. The instance that failed is dropped;
/// the next call on the same [`Instance`] gets a fresh one.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The call used more guest CPU time than the budget: a runaway guest.
    #[error("the guest exceeded its CPU budget of {0:?} and was stopped")]
    BudgetExceeded(Duration),
    /// The guest asked for more memory than its limit.
    #[error("the guest exceeded its memory limit of {0} bytes")]
    MemoryLimit(usize),
    /// The guest trapped: a bug in the guest (a panic is an `unreachable` trap).
    #[error("the guest trapped: {0}")]
    Trap(String),
    /// A fresh instance could not be made.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A `steps` operation of an instance that has since been replaced
    /// (after a trap): it is gone; start the operation again.
    #[error("the operation was lost with the instance it ran in")]
    OperationLost,
}

struct Shared {
    engine: Engine,
    pre: InstancePre<HostState>,
    indices: Arc<ExportIndices>,
    config: RuntimeConfig,
    cache_status: CacheStatus,
    stop_ticker: Arc<AtomicBool>,
    /// The epoch ticks so far (the ticker counts them as it ticks the
    /// engine): what each store times the guest's CPU budget with.
    ticks: Arc<AtomicU64>,
    /// `config.call_budget` in ticks, worked out once rather than per call.
    budget_ticks: u64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The engine and the pre-linked component. Cheap to clone; share one per
/// process.
#[derive(Clone)]
pub struct Runtime(Arc<Shared>);

impl Runtime {
    /// A runtime for the embedded component.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        Self::load(config, crate::COMPONENT, crate::COMPONENT_SHA256)
    }

    /// A runtime for another build of the component (it must have the same
    /// world).
    pub fn with_component(config: RuntimeConfig, bytes: &[u8]) -> Result<Self, RuntimeError> {
        Self::load(config, bytes, &cache::digest(bytes))
    }

    fn load(config: RuntimeConfig, bytes: &[u8], digest: &str) -> Result<Self, RuntimeError> {
        let engine = engine(&config)?;
        let (component, cache_status) =
            cache::load(&engine, bytes, digest, config.cache_dir.as_deref())
                .map_err(|e| RuntimeError::Component(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker).map_err(|e| RuntimeError::Component(e.to_string()))?;
        let (pre, indices) = linker
            .instantiate_pre(&component)
            .and_then(|pre| {
                let indices = ExportIndices::new(&pre)?;
                Ok((pre, Arc::new(indices)))
            })
            .map_err(|e| RuntimeError::Component(e.to_string()))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        spawn_ticker(
            engine.clone(),
            config.epoch_tick,
            stop_ticker.clone(),
            ticks.clone(),
        );
        let runtime = Self(Arc::new(Shared {
            engine,
            pre,
            indices,
            budget_ticks: budget_ticks(config.call_budget, config.epoch_tick),
            config,
            cache_status,
            stop_ticker,
            ticks,
        }));
        runtime.check_exports()?;
        Ok(runtime)
    }

    /// Type-checks every export once, on a throwaway instance, so a
    /// component of another world fails here rather than at its first call.
    fn check_exports(&self) -> Result<(), RuntimeError> {
        let mut store = self.store(Backends::default());
        let instance = self
            .0
            .pre
            .instantiate(&mut store)
            .map_err(|e| RuntimeError::Component(format!("{e:#}")))?;
        let exports = Exports::new(self.0.indices.clone(), instance);
        exports
            .check_all(&mut store)
            .map_err(|e| RuntimeError::Component(format!("{e:#}")))
    }

    /// A new instance using `backends` for its imports.
    pub fn instance(&self, backends: Backends) -> Result<Instance, RuntimeError> {
        let mut instance = Instance {
            runtime: self.clone(),
            backends,
            live: None,
            instantiations: 0,
        };
        instance.live()?;
        Ok(instance)
    }

    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.0.config
    }

    /// Whether the compiled component came from the cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.0.cache_status
    }

    /// The component's imports, by name, e.g. `pleo:oauth/http@0.3.0`.
    pub fn imports(&self) -> Vec<String> {
        let component = self.0.pre.component();
        component
            .component_type()
            .imports(&self.0.engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// The component's exports, by name.
    pub fn exports(&self) -> Vec<String> {
        let component = self.0.pre.component();
        component
            .component_type()
            .exports(&self.0.engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// A store with this runtime's limits, for `backends`.
    fn store(&self, backends: Backends) -> Store<HostState> {
        let config = &self.0.config;
        let mut store = Store::new(
            &self.0.engine,
            HostState::new(backends, config.memory_limit, self.0.ticks.clone()),
        );
        store.limiter(|state| state);
        let budget = self.0.budget_ticks;
        // Past the deadline, stop only when the guest itself used the budget:
        // time in imports (a slow token endpoint) is not the guest's fault.
        store.epoch_deadline_callback(move |context| {
            let used = context.data().guest_ticks();
            if used >= budget {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(budget - used))
        });
        store
    }
}

/// A budget in whole ticks, at least one.
fn budget_ticks(budget: Duration, tick: Duration) -> u64 {
    (budget.as_nanos() / tick.as_nanos().max(1)).max(1) as u64
}

/// The engine: Cranelift, epoch interruption, and a pooling allocator sized
/// for `max_instances` instances of at most `memory_limit` bytes each.
fn engine(config: &RuntimeConfig) -> Result<Engine, RuntimeError> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(config.max_instances)
        // The component has a few core instances (the guest, its shims).
        .max_core_instances_per_component(8)
        .total_core_instances(config.max_instances * 8)
        // One linear memory: the guest's.
        .max_memories_per_component(1)
        .total_memories(config.max_instances)
        .max_tables_per_component(4)
        .total_tables(config.max_instances * 4)
        .max_memory_size(config.memory_limit)
        // A slot handed back is reset page by page: the pages the instance
        // wrote are found with Linux's PAGEMAP_SCAN (6.7 and later) and
        // zeroed or copied back from the image, up to this much, instead of
        // being dropped with `madvise` and faulted in again by the next
        // instance. Elsewhere the first bytes are zeroed, the rest dropped.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let (reservation, guard) = if config.elide_bounds_checks {
        // A 32-bit memory can address 4 GiB: reserve all of it, and a guard
        // past it for the static offsets of loads and stores.
        (4 << 30, 32 << 20)
    } else {
        (config.memory_limit as u64, 64 << 10)
    };
    let mut wasm = Config::new();
    wasm.epoch_interruption(true)
        .memory_reservation(reservation)
        .memory_guard_size(guard)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| RuntimeError::Engine(e.to_string()))
}

/// Bytes of a pooled slot kept resident between instances: more than a call
/// writes (the top of its 1 MiB stack, the data, the heap's arena), so a
/// fresh instance takes no page faults; only pages that were written stay
/// resident. README, "Benchmarks".
const KEEP_RESIDENT: usize = 2 << 20;

/// Ticks the engine's epoch, counting the ticks in `ticks`, until the
/// runtime is dropped.
fn spawn_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>, ticks: Arc<AtomicU64>) {
    std::thread::Builder::new()
        .name("pleo-oauth-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                ticks.fetch_add(1, Ordering::Relaxed);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}

struct Live {
    store: Store<HostState>,
    exports: Exports,
}

/// Where each exported function is in the component: found once per
/// runtime.
struct ExportIndices {
    classify: classify::GuestIndices,
    connections: connections::GuestIndices,
    authorize: authorize::GuestIndices,
    steps: steps::GuestIndices,
    access_token: ComponentExportIndex,
    token_response: ComponentExportIndex,
    api_response: ComponentExportIndex,
}

impl ExportIndices {
    fn new(pre: &InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(Self {
            classify: classify::GuestIndices::new(pre)?,
            connections: connections::GuestIndices::new(pre)?,
            authorize: authorize::GuestIndices::new(pre)?,
            steps: steps::GuestIndices::new(pre)?,
            access_token: function_index(pre, "connections", "access-token")?,
            token_response: function_index(pre, "classify", "token-response")?,
            api_response: function_index(pre, "classify", "api-response")?,
        })
    }
}

/// Where function `name` of the exported interface `pleo:oauth/{interface}`
/// (any version: `Runtime::new` checks the types) is.
fn function_index(
    pre: &InstancePre<HostState>,
    interface: &str,
    name: &str,
) -> wasmtime::Result<ComponentExportIndex> {
    let component = pre.component();
    let prefix = format!("pleo:oauth/{interface}@");
    let exported = component
        .component_type()
        .exports(pre.engine())
        .map(|(exported, _)| exported.to_owned())
        .find(|exported| exported.starts_with(&prefix))
        .ok_or_else(|| wasmtime::format_err!("no exported interface {prefix}..."))?;
    let instance = component
        .get_export_index(None, &exported)
        .ok_or_else(|| wasmtime::format_err!("no exported interface {exported}"))?;
    component
        .get_export_index(Some(&instance), name)
        .ok_or_else(|| wasmtime::format_err!("{exported} does not export `{name}`"))
}

/// `connections.access-token` as the gate calls it.
pub(crate) type AccessToken<'a> =
    TypedFunc<(&'a str,), (Result<connections::Bearer, connections::Refusal>,)>;

/// An instance's exported interfaces, each fetched and type-checked the
/// first time a call on that instance uses it. Why not all at once, as the
/// generated `TokenLifecyclePre::instantiate` does: the type check walks
/// every function's types (the `steps` variants are large), and repeating it
/// for interfaces a short-lived instance never calls was a fifth of the
/// cost of a fresh instance (README, "Benchmarks"). The types cannot differ
/// between instances of one component; `Runtime::new` checks them all once.
pub(crate) struct Exports {
    indices: Arc<ExportIndices>,
    instance: wasmtime::component::Instance,
    classify: OnceCell<classify::Guest>,
    connections: OnceCell<connections::Guest>,
    authorize: OnceCell<authorize::Guest>,
    steps: OnceCell<steps::Guest>,
    access_token: OnceCell<Func>,
    token_response: OnceCell<Func>,
    api_response: OnceCell<Func>,
}

impl Exports {
    fn new(indices: Arc<ExportIndices>, instance: wasmtime::component::Instance) -> Self {
        Self {
            indices,
            instance,
            classify: OnceCell::new(),
            connections: OnceCell::new(),
            authorize: OnceCell::new(),
            steps: OnceCell::new(),
            access_token: OnceCell::new(),
            token_response: OnceCell::new(),
            api_response: OnceCell::new(),
        }
    }

    pub(crate) fn pleo_oauth_classify(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<&classify::Guest> {
        fetch(&self.classify, || {
            self.indices.classify.load(store, &self.instance)
        })
    }

    pub(crate) fn pleo_oauth_connections(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<&connections::Guest> {
        fetch(&self.connections, || {
            self.indices.connections.load(store, &self.instance)
        })
    }

    pub(crate) fn pleo_oauth_authorize(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<&authorize::Guest> {
        fetch(&self.authorize, || {
            self.indices.authorize.load(store, &self.instance)
        })
    }

    pub(crate) fn pleo_oauth_steps(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<&steps::Guest> {
        fetch(&self.steps, || {
            self.indices.steps.load(store, &self.instance)
        })
    }

    /// `connections.access-token` on its own: the gate runs before every
    /// API request, and an instance made for one call type-checks this one
    /// function, not the ten of its interface (README, "Benchmarks").
    pub(crate) fn access_token<'a>(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<AccessToken<'a>> {
        // SAFETY: this cell only ever holds `access-token`, checked as an
        // `AccessToken`.
        unsafe { self.typed(store, &self.access_token, &self.indices.access_token) }
    }

    /// `classify.token-response`, taking the response borrowed.
    pub(crate) fn token_response<'a>(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<crate::classify::TokenResponseFunc<'a>> {
        // SAFETY: this cell only ever holds `token-response`, checked as a
        // `TokenResponseFunc`.
        unsafe { self.typed(store, &self.token_response, &self.indices.token_response) }
    }

    /// `classify.api-response`, taking the response head borrowed.
    pub(crate) fn api_response<'a>(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<crate::classify::ApiResponseFunc<'a>> {
        // SAFETY: this cell only ever holds `api-response`, checked as an
        // `ApiResponseFunc`.
        unsafe { self.typed(store, &self.api_response, &self.indices.api_response) }
    }

    /// The export at `index` as a `TypedFunc<P, R>`, type-checked the
    /// first time and kept in `cell`. Typed functions of our own, rather
    /// than the generated ones, let a call lower borrowed arguments (the
    /// generated types own their strings, so every call would copy them).
    ///
    /// # Safety
    ///
    /// Every call with the same `cell` must name the same `P` and `R`, up
    /// to lifetimes: the check runs once per cell, and the lifetime of a
    /// borrowed parameter is not part of its component type.
    unsafe fn typed<P, R>(
        &self,
        store: &mut Store<HostState>,
        cell: &OnceCell<Func>,
        index: &ComponentExportIndex,
    ) -> wasmtime::Result<TypedFunc<P, R>>
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        if let Some(func) = cell.get() {
            // SAFETY: `func` was checked as `TypedFunc<P, R>` when it was
            // fetched (below), and the caller names the same types.
            return Ok(unsafe { TypedFunc::new_unchecked(*func) });
        }
        let typed: TypedFunc<P, R> = self.instance.get_typed_func(&mut *store, index)?;
        let _ = cell.set(*typed.func());
        Ok(typed)
    }

    fn check_all(&self, store: &mut Store<HostState>) -> wasmtime::Result<()> {
        self.access_token(store)?;
        self.token_response(store)?;
        self.api_response(store)?;
        self.pleo_oauth_classify(store)?;
        self.pleo_oauth_connections(store)?;
        self.pleo_oauth_authorize(store)?;
        self.pleo_oauth_steps(store)?;
        Ok(())
    }
}

fn fetch<G>(
    cell: &OnceCell<G>,
    load: impl FnOnce() -> wasmtime::Result<G>,
) -> wasmtime::Result<&G> {
    if let Some(guest) = cell.get() {
        return Ok(guest);
    }
    let guest = load()?;
    Ok(cell.get_or_init(|| guest))
}

/// One guest instance with its own store and backends. Calls are
/// sequential (`&mut self`); use one instance per thread.
///
/// A trap drops the instance; the next call instantiates a fresh one from
/// the pre-linked component, so a poisoned instance is never re-entered.
pub struct Instance {
    runtime: Runtime,
    backends: Backends,
    live: Option<Live>,
    instantiations: u64,
}

impl Instance {
    /// How many times this instance was (re)instantiated.
    pub fn instantiations(&self) -> u64 {
        self.instantiations
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The guest's linear memory, in bytes (0 after a trap, until the next
    /// call makes a fresh instance).
    pub fn memory_bytes(&self) -> usize {
        self.live
            .as_ref()
            .map_or(0, |live| live.store.data().memory_bytes)
    }

    /// Whether a guest instance is alive (none after a trap, until the next
    /// call makes one).
    pub(crate) fn is_live(&self) -> bool {
        self.live.is_some()
    }

    fn live(&mut self) -> Result<&mut Live, RuntimeError> {
        if self.live.is_none() {
            let mut store = self.runtime.store(self.backends.clone());
            let instance = self.runtime.0.pre.instantiate(&mut store).map_err(|e| {
                RuntimeError::Instantiate(self.runtime.0.config.max_instances, format!("{e:#}"))
            })?;
            let exports = Exports::new(self.runtime.0.indices.clone(), instance);
            self.instantiations += 1;
            self.live = Some(Live { store, exports });
        }
        Ok(self.live.as_mut().expect("instantiated above"))
    }

    /// Runs one export call under the runtime's limits.
    pub(crate) fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>, &Exports) -> wasmtime::Result<R>,
    ) -> Result<R, GuestError> {
        let deadline = self.runtime.0.budget_ticks;
        let live = self.live()?;
        live.store.data_mut().begin_call();
        live.store.data_mut().memory_limit_hit = false;
        live.store.set_epoch_deadline(deadline);
        let error = match f(&mut live.store, &live.exports) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let memory_limit_hit = live.store.data().memory_limit_hit;
        self.live = None;
        Err(guest_error(
            &error,
            memory_limit_hit,
            &self.runtime.0.config,
        ))
    }
}

/// Names what stopped a call.
fn guest_error(
    error: &wasmtime::Error,
    memory_limit_hit: bool,
    config: &RuntimeConfig,
) -> GuestError {
    if memory_limit_hit {
        GuestError::MemoryLimit(config.memory_limit)
    } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        GuestError::BudgetExceeded(config.call_budget)
    } else {
        GuestError::Trap(format!("{error:#}"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use wasmtime::StoreContextMut;
    use wasmtime::component::{Component, Linker};

    use super::*;

    /// A runtime with a short budget, and a store from it, for components
    /// written in WAT that misbehave on purpose.
    fn setup(budget_ms: u64) -> (Runtime, Store<HostState>) {
        let config = RuntimeConfig {
            cache_dir: None,
            max_instances: 4,
            call_budget: Duration::from_millis(budget_ms),
            epoch_tick: Duration::from_millis(5),
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(config).expect("runtime");
        let mut store = runtime.store(Backends::default());
        store.data_mut().begin_call();
        store.set_epoch_deadline(runtime.0.budget_ticks);
        (runtime, store)
    }

    fn call(
        runtime: &Runtime,
        store: &mut Store<HostState>,
        wat: &str,
        linker: &Linker<HostState>,
    ) -> wasmtime::Result<()> {
        let component = Component::new(runtime.engine(), wat::parse_str(wat).expect("valid WAT"))?;
        let instance = linker.instantiate(&mut *store, &component)?;
        let run = instance.get_typed_func::<(), ()>(&mut *store, "run")?;
        run.call(&mut *store, ())
    }

    /// A component of another world is refused when the runtime loads it,
    /// not at its first call.
    #[test]
    fn a_component_of_another_world_is_refused_at_load() {
        let wat = r#"(component
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func (export "run") (canon lift (core func $i "run"))))"#;
        let config = RuntimeConfig {
            cache_dir: None,
            max_instances: 2,
            ..RuntimeConfig::default()
        };
        let bytes = wat::parse_str(wat).expect("valid WAT");
        let error = Runtime::with_component(config, &bytes)
            .err()
            .expect("refused");
        assert!(
            matches!(&error, RuntimeError::Component(why) if why.contains("pleo:oauth/classify")),
            "{error}"
        );
    }

    /// A guest that loops forever is interrupted once it has used its
    /// budget, and the error says so.
    #[test]
    fn a_runaway_guest_is_interrupted() {
        let (runtime, mut store) = setup(50);
        let started = Instant::now();
        let wat = r#"(component
            (core module $m (func (export "run") (loop $l (br $l))))
            (core instance $i (instantiate $m))
            (func (export "run") (canon lift (core func $i "run"))))"#;
        let error = call(&runtime, &mut store, wat, &Linker::new(runtime.engine())).unwrap_err();
        let error = guest_error(&error, store.data().memory_limit_hit, runtime.config());
        assert!(matches!(error, GuestError::BudgetExceeded(_)), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// Time in host imports is not the guest's: a guest that waits on a
    /// slow import for longer than its budget is not interrupted.
    #[test]
    fn time_in_imports_does_not_count_against_the_budget() {
        let (runtime, mut store) = setup(50);
        let mut linker = Linker::new(runtime.engine());
        linker
            .root()
            .func_wrap(
                "nap",
                |mut context: StoreContextMut<'_, HostState>, (): ()| {
                    context
                        .data_mut()
                        .timed(|_| std::thread::sleep(Duration::from_millis(40)));
                    Ok(())
                },
            )
            .unwrap();
        let wat = r#"(component
            (import "nap" (func $nap))
            (core func $nap_core (canon lower (func $nap)))
            (core module $m
                (import "host" "nap" (func $nap))
                (func (export "run") (call $nap) (call $nap) (call $nap) (call $nap)))
            (core instance $host (export "nap" (func $nap_core)))
            (core instance $i (instantiate $m (with "host" (instance $host))))
            (func (export "run") (canon lift (core func $i "run"))))"#;
        call(&runtime, &mut store, wat, &linker)
            .expect("160 ms in imports, almost none in the guest");
        // About 32 ticks of 5 ms passed in the imports; the ticker thread may
        // be late on a loaded machine, never early.
        assert!(
            store.data().host_ticks >= 10,
            "{} ticks in imports",
            store.data().host_ticks
        );
    }
}
