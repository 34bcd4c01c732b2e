//! The refresh lease (`lease/{id}`): single-flight refresh across
//! instances, processes and machines that share storage.
//!
//! Pleo rotates the refresh token on every refresh and treats a reused one
//! as theft, invalidating the whole grant (DESIGN §1). So at most one
//! refresh per connection may be in flight anywhere. The lease is taken by
//! compare-and-swap and carries an expiry, so a holder that crashed blocks
//! the others only until then.

use serde::{Deserialize, Serialize};

use super::store::{self, StoreError};
use crate::io::Io;
use crate::types::StorageError;

/// How long a lease lasts: twice the refresh request's timeout, so a live
/// holder always finishes (or gives up) before it lapses.
pub const LEASE_MS: u64 = 2 * REFRESH_TIMEOUT_MS as u64;
/// Timeout of a refresh request.
pub const REFRESH_TIMEOUT_MS: u32 = 30_000;
/// How soon a caller that found the lease held should look again: a
/// refresh takes a round trip, not the whole lease.
pub const POLL_MS: u64 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LeaseRecord {
    /// Random, per acquisition: only the holder releases it.
    holder: String,
    until_ms: u64,
}

/// A lease this caller holds.
#[derive(Debug)]
pub struct Lease {
    key: String,
    version: u64,
}

/// The outcome of trying to take the lease.
#[derive(Debug)]
pub enum Acquire {
    Acquired(Lease),
    /// Another caller holds it; look again at this time (Unix ms).
    Held {
        retry_at_ms: u64,
    },
}

/// Takes the lease unless another caller holds a live one.
///
/// A lease is live while `now < until`. One whose `until` is more than
/// [`LEASE_MS`] ahead was written by a clock far ahead of ours (or ours
/// jumped back): it is treated as stale rather than trusted for an
/// unbounded time. An unreadable lease is stale too: it must not block
/// refreshes forever.
pub fn acquire(io: &mut dyn Io, connection: &str, now_ms: u64) -> Result<Acquire, StoreError> {
    let key = store::lease_key(connection);
    let current = io.get(&key)?;
    if let Some(entry) = &current
        && let Ok(lease) = serde_json::from_slice::<LeaseRecord>(&entry.value)
        && now_ms < lease.until_ms
        && lease.until_ms <= now_ms.saturating_add(LEASE_MS)
    {
        return Ok(Acquire::Held {
            retry_at_ms: lease.until_ms.min(now_ms.saturating_add(POLL_MS)),
        });
    }
    let mut holder = [0u8; 16];
    io.random(&mut holder);
    let record = LeaseRecord {
        holder: holder.iter().map(|b| format!("{b:02x}")).collect(),
        until_ms: now_ms.saturating_add(LEASE_MS),
    };
    match store::write(io, &key, &record, current.map(|e| e.version)) {
        Ok(version) => Ok(Acquire::Acquired(Lease { key, version })),
        // Another caller took it between our read and our write.
        Err(StoreError::Conflict) => Ok(Acquire::Held {
            retry_at_ms: now_ms.saturating_add(POLL_MS),
        }),
        Err(error) => Err(error),
    }
}

/// Gives the lease back. Best effort: a lease that cannot be deleted
/// lapses at its expiry, and one that changed hands is not ours to delete.
pub fn release(io: &mut dyn Io, lease: Lease) {
    match io.delete(&lease.key, lease.version) {
        Ok(()) | Err(StorageError::Conflict) | Err(StorageError::Unavailable(_)) => {}
    }
}

/// Until when a live lease is held, for status; `None` when free.
pub fn held_until(
    io: &mut dyn Io,
    connection: &str,
    now_ms: u64,
) -> Result<Option<u64>, StoreError> {
    let Some(entry) = io.get(&store::lease_key(connection))? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<LeaseRecord>(&entry.value)
        .ok()
        .map(|lease| lease.until_ms)
        .filter(|&until| now_ms < until && until <= now_ms.saturating_add(LEASE_MS)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::fake::FakeIo;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn one_holder_at_a_time_until_it_lapses() {
        let mut io = FakeIo::default();
        let Acquire::Acquired(first) = acquire(&mut io, "c1", NOW).unwrap() else {
            panic!("free lease");
        };
        assert!(matches!(
            acquire(&mut io, "c1", NOW + 1).unwrap(),
            Acquire::Held { retry_at_ms } if retry_at_ms == NOW + 1 + POLL_MS
        ));
        // A crashed holder never releases: the lease lapses.
        assert!(matches!(
            acquire(&mut io, "c1", NOW + LEASE_MS).unwrap(),
            Acquire::Acquired(_)
        ));
        // The first holder's late release does not free the new lease.
        release(&mut io, first);
        assert!(
            held_until(&mut io, "c1", NOW + LEASE_MS + 1)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_lease_from_a_far_future_clock_is_stale() {
        let mut io = FakeIo::default();
        acquire(&mut io, "c1", NOW + 10 * LEASE_MS).unwrap();
        // Our clock is behind the writer's by ten leases: not trusted.
        assert!(matches!(
            acquire(&mut io, "c1", NOW).unwrap(),
            Acquire::Acquired(_)
        ));
    }

    #[test]
    fn release_frees_it() {
        let mut io = FakeIo::default();
        let Acquire::Acquired(lease) = acquire(&mut io, "c1", NOW).unwrap() else {
            panic!("free lease");
        };
        release(&mut io, lease);
        assert_eq!(held_until(&mut io, "c1", NOW).unwrap(), None);
        assert!(matches!(
            acquire(&mut io, "c1", NOW).unwrap(),
            Acquire::Acquired(_)
        ));
    }
}
