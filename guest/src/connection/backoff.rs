//! Back-off between failed refreshes: exponential with full jitter
//! ("Exponential Backoff and Jitter", AWS Architecture Blog, 2015), so that
//! many workers failing together do not retry together.

use crate::effects::Effects;

/// The first ceiling: 2 s. It doubles with each consecutive failure.
pub const BASE_MS: u64 = 2_000;
/// The shortest wait: 1 s, so a failing server is never hammered.
pub const MIN_MS: u64 = 1_000;
/// The longest `Retry-After` honoured: one hour. A larger value is clamped,
/// so a hostile or broken header cannot park a connection for days.
pub const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

/// The ceiling of the wait after `failures` consecutive failures (1-based):
/// `min(cap, BASE · 2^(failures-1))`, never below [`MIN_MS`].
pub fn ceiling_ms(failures: u32, cap_ms: u64) -> u64 {
    let exponent = failures.saturating_sub(1).min(32);
    BASE_MS
        .saturating_mul(1u64 << exponent)
        .min(cap_ms)
        .max(MIN_MS)
}

/// When to try again after the `failures`-th consecutive failure: a
/// uniformly random wait in `[MIN_MS, ceiling]` from the random import, or
/// the server's `Retry-After` when that is later (clamped to an hour).
pub async fn next_retry_ms(
    fx: &Effects,
    now_ms: u64,
    failures: u32,
    cap_ms: u64,
    retry_after_ms: Option<u64>,
) -> u64 {
    let ceiling = ceiling_ms(failures, cap_ms);
    let mut bytes = [0u8; 8];
    fx.random(&mut bytes).await;
    let wait = MIN_MS + u64::from_le_bytes(bytes) % (ceiling - MIN_MS + 1);
    let jittered = now_ms.saturating_add(wait);
    let server = retry_after_ms.map_or(0, |at| at.min(now_ms.saturating_add(MAX_RETRY_AFTER_MS)));
    jittered.max(server)
}

/// A stored retry time as seen at `now`: a clock that jumped backwards
/// must not stretch a back-off beyond its longest possible wait.
pub fn effective_retry_ms(stored: Option<u64>, now_ms: u64, cap_ms: u64) -> Option<u64> {
    stored.map(|at| at.min(now_ms.saturating_add(cap_ms.max(MAX_RETRY_AFTER_MS))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::drive;
    use crate::io::fake::FakeIo;

    #[test]
    fn ceiling_doubles_to_the_cap() {
        let cap = 300_000;
        let ceilings: Vec<u64> = (1..=10).map(|n| ceiling_ms(n, cap)).collect();
        assert_eq!(
            ceilings,
            [
                2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000
            ]
        );
        assert_eq!(ceiling_ms(u32::MAX, cap), cap);
        assert_eq!(ceiling_ms(1, 500), MIN_MS);
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_spreads() {
        let mut io = FakeIo::default();
        let now = 1_000_000;
        let waits: Vec<u64> = (0..200)
            .map(|_| {
                drive(&mut io, async |fx| {
                    next_retry_ms(fx, now, 6, 300_000, None).await
                }) - now
            })
            .collect();
        assert!(waits.iter().all(|w| (MIN_MS..=64_000).contains(w)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 150, "jitter spreads the waits");
    }

    /// RFC 9110 §10.2.3: a later `Retry-After` wins; an absurd one is clamped.
    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let mut io = FakeIo::default();
        let now = 1_000_000;
        assert_eq!(
            drive(&mut io, async |fx| next_retry_ms(
                fx,
                now,
                1,
                300_000,
                Some(now + 120_000)
            )
            .await),
            now + 120_000
        );
        assert_eq!(
            drive(&mut io, async |fx| next_retry_ms(
                fx,
                now,
                1,
                300_000,
                Some(u64::MAX)
            )
            .await),
            now + MAX_RETRY_AFTER_MS
        );
        assert_eq!(
            effective_retry_ms(Some(now + 10 * MAX_RETRY_AFTER_MS), now, 300_000),
            Some(now + MAX_RETRY_AFTER_MS)
        );
    }
}
