//! The `clock` import: wall-clock time in Unix milliseconds, and a short
//! sleep for the guest's retries of a write that must not be lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::HostState;
use crate::bindings::pleo::oauth::clock as wit;

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Waits about `ms` milliseconds. A test clock advances instead.
    fn sleep_ms(&self, ms: u32) {
        std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
    }
}

/// The longest one `sleep-ms` call blocks, as the contract says.
pub const MAX_SLEEP_MS: u32 = 5_000;

/// A guest's `sleep-ms`, by import or as a `steps` effect: at most
/// [`MAX_SLEEP_MS`].
pub(crate) fn guest_sleep(clock: &dyn Clock, ms: u32) {
    clock.sleep_ms(ms.min(MAX_SLEEP_MS));
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 reads as the epoch rather than failing.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A test clock that moves only when told, so tests drive time faster than
/// real time and never sleep.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_ms: u64) -> Self {
        Self(AtomicU64::new(now_ms))
    }

    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Time passes for the sleeper: the clock moves on, nobody waits.
    fn sleep_ms(&self, ms: u32) {
        self.advance(u64::from(ms));
    }
}

/// The system clock shifted by an offset that can move: the demo moves
/// time forward an hour in an instant, with the component and the mock
/// server reading the same clock. `PLEO_OAUTH_CLOCK_OFFSET_MS` sets the
/// command line's offset, for tests that need a process to see the future.
#[derive(Debug, Default)]
pub struct OffsetClock(std::sync::atomic::AtomicI64);

impl OffsetClock {
    pub fn new(offset_ms: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(offset_ms))
    }

    /// Moves the clock forward (or back, for a negative `ms`).
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        SystemClock
            .now_ms()
            .saturating_add_signed(self.0.load(Ordering::SeqCst))
    }
}

impl wit::Host for HostState {
    fn now_ms(&mut self) -> u64 {
        self.timed(|backends| backends.clock.now_ms())
    }

    fn sleep_ms(&mut self, ms: u32) {
        self.timed(|backends| guest_sleep(backends.clock.as_ref(), ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(500);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set(10);
        assert_eq!(clock.now_ms(), 10);
    }

    #[test]
    fn offset_clock_follows_the_system_clock_shifted() {
        let clock = OffsetClock::new(3_600_000);
        let ahead = clock.now_ms() - SystemClock.now_ms();
        assert!((3_599_000..=3_600_000).contains(&ahead), "{ahead}");
        clock.advance(-7_200_000);
        assert!(clock.now_ms() < SystemClock.now_ms());
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
