//! The imports the component needs, one module per WIT interface. Each
//! module holds the small trait a backend implements, the reference and test
//! backends, and the glue from the generated `Host` trait to the backend.

pub mod clock;
pub mod http;
pub mod log;
pub mod random;
pub mod storage;

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// When the current export call began.
    pub(crate) call_started: Instant,
    /// Time the current call spent in host imports, which does not count
    /// against the guest's CPU budget.
    pub(crate) host_time: Duration,
}

impl HostState {
    pub(crate) fn new(backends: Backends, memory_limit: usize) -> Self {
        Self {
            backends,
            memory_limit,
            memory_limit_hit: false,
            memory_bytes: 0,
            call_started: Instant::now(),
            host_time: Duration::ZERO,
        }
    }

    /// Resets the per-call bookkeeping.
    pub(crate) fn begin_call(&mut self) {
        self.call_started = Instant::now();
        self.host_time = Duration::ZERO;
    }

    /// Runs a host import, keeping its time out of the guest's budget.
    pub(crate) fn timed<R>(&mut self, f: impl FnOnce(&Backends) -> R) -> R {
        let started = Instant::now();
        let result = f(&self.backends);
        self.host_time += started.elapsed();
        result
    }

    /// Guest time of the current call: wall time minus time in imports.
    pub(crate) fn guest_time(&self) -> Duration {
        self.call_started.elapsed().saturating_sub(self.host_time)
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
