//! The imports the component needs, one module per WIT interface. Each
//! module holds the small trait a backend implements, the reference and test
//! backends, and the glue from the generated `Host` trait to the backend.

pub mod clock;
pub mod http;
pub mod log;
pub mod random;
pub mod storage;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings;

/// The backends one instance uses for its imports.
///
/// `Default` gives an isolated, deterministic set: an HTTP backend with no
/// scripted responses, in-memory storage, the system clock, the OS CSPRNG
/// and a collecting log. Real HTTP and SQLite backends come with the CLI.
#[derive(Clone)]
pub struct Backends {
    pub http: Arc<dyn http::Http>,
    pub storage: Arc<dyn storage::Storage>,
    pub clock: Arc<dyn clock::Clock>,
    pub random: Arc<dyn random::Random>,
    pub log: Arc<dyn log::Log>,
}

impl Default for Backends {
    fn default() -> Self {
        Self {
            http: Arc::new(http::ScriptedHttp::default()),
            storage: Arc::new(storage::MemoryStorage::default()),
            clock: Arc::new(clock::SystemClock),
            random: Arc::new(random::OsRandom),
            log: Arc::new(log::CollectingLog::default()),
        }
    }
}

/// What a store holds: the backends, and the bookkeeping of the runtime's
/// limits for the call in progress.
pub struct HostState {
    pub(crate) backends: Backends,
    /// Linear memory the guest may have, in bytes.
    pub(crate) memory_limit: usize,
    /// Set when the guest asked for more memory than `memory_limit`.
    pub(crate) memory_limit_hit: bool,
    /// The guest's linear memory, in bytes, as last allowed.
    pub(crate) memory_bytes: usize,
    /// The runtime's epoch ticks so far, counted by its ticker thread: the
    /// clock of the CPU budget. Reading it is an atomic load, not a system
    /// call, so timing every import costs next to nothing.
    pub(crate) ticks: Arc<AtomicU64>,
    /// The tick the current export call began at.
    pub(crate) call_started_tick: u64,
    /// Ticks that passed while the current call was in host imports: they
    /// do not count against the guest's CPU budget.
    pub(crate) host_ticks: u64,
}

impl HostState {
    pub(crate) fn new(backends: Backends, memory_limit: usize, ticks: Arc<AtomicU64>) -> Self {
        let now = ticks.load(Ordering::Relaxed);
        Self {
            backends,
            memory_limit,
            memory_limit_hit: false,
            memory_bytes: 0,
            ticks,
            call_started_tick: now,
            host_ticks: 0,
        }
    }

    fn tick(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Resets the per-call bookkeeping.
    pub(crate) fn begin_call(&mut self) {
        self.call_started_tick = self.tick();
        self.host_ticks = 0;
    }

    /// Runs a host import, keeping its time out of the guest's budget: the
    /// ticks that pass while it runs are the host's. Counting ticks samples
    /// time at the budget's own granularity: an import is charged a tick
    /// when one passes during it, so over a call the guest is charged the
    /// ticks that passed while it ran, without a clock read per import.
    pub(crate) fn timed<R>(&mut self, f: impl FnOnce(&Backends) -> R) -> R {
        let started = self.tick();
        let result = f(&self.backends);
        self.host_ticks += self.tick().wrapping_sub(started);
        result
    }

    /// The ticks the current call has spent in the guest: all that passed
    /// since it began, less those in imports.
    pub(crate) fn guest_ticks(&self) -> u64 {
        self.tick()
            .wrapping_sub(self.call_started_tick)
            .saturating_sub(self.host_ticks)
    }
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_limit_hit = true;
            wasmtime::bail!(
                "the guest asked for {desired} bytes of memory; the limit is {}",
                self.memory_limit
            );
        }
        self.memory_bytes = desired;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The guest's one function table never grows at run time.
        Ok(desired <= 10_000)
    }
}

/// Adds every import to a linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    bindings::TokenLifecycle::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}
