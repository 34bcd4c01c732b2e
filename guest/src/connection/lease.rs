//! The refresh lease (`lease/{id}`): single-flight refresh across
//! instances, processes and machines that share storage.
//!
//! Pleo rotates the refresh token on every refresh and treats a rotated-away
//! one that comes back as theft, revoking the whole grant. The invariant this
//! module exists for: **at most one refresh request per refresh token**,
//! across every worker sharing the store, provided that
//!
//! 1. the clocks of any two workers differ by at most [`MAX_CLOCK_SKEW_MS`];
//! 2. the host enforces the refresh request's timeout,
//!    [`REFRESH_TIMEOUT_MS`];
//! 3. a worker pauses for at most [`MAX_PAUSE_MS`] in all between renewing
//!    its lease (immediately before sending) and storing the result.
//!
//! How: a lease is taken by compare-and-swap and carries its holder's
//! deadline, written by the holder's clock. A reader honours it until
//! `until + MAX_CLOCK_SKEW_MS` by its own clock, so a reader whose clock is
//! ahead never takes over before the holder's own clock has passed `until`.
//! Right before sending, the holder renews the lease by compare-and-swap on
//! the version it holds, reading the clock afresh: the write succeeds only
//! if nobody took the lease over (whatever anyone's clock says, versions
//! only move forward). It reads the clock once more after the write: a
//! pause between the first reading and the write would have left a deadline
//! already spent, so unless [`REFRESH_TIMEOUT_MS`] `+` [`MAX_PAUSE_MS`] still
//! remain, it sends nothing. [`LEASE_MS`] is those two plus
//! [`RENEW_SLACK_MS`] for the renewal itself. A holder that lost its lease,
//! or renewed it too slowly, sends nothing.
//!
//! What no lease can do (a lease is not a lock): a worker that pauses longer
//! than the bound after its renewal may find that another worker has sent
//! the same refresh token. The authorisation server cannot check a fencing
//! token, so the bound is the guarantee; the write-ahead record in the
//! status (`refresh`) makes the consequence visible as `rotation-lost`.

use serde::{Deserialize, Serialize};

use super::store;
use crate::effects::Effects;
use crate::events::{self, Kind};
use crate::types::{Level, StorageError};

/// Timeout of a refresh request; the host enforces it.
pub const REFRESH_TIMEOUT_MS: u32 = super::request::TOKEN_TIMEOUT_MS;
/// The largest difference between two workers' clocks that single flight
/// tolerates. Hosts synchronised by NTP differ by milliseconds; this leaves
/// room for a host whose synchronisation is failing.
pub const MAX_CLOCK_SKEW_MS: u64 = 30_000;
/// The longest a holder may pause, in all, between renewing its lease and
/// storing the refresh's result.
pub const MAX_PAUSE_MS: u64 = 30_000;
/// How long a renewal (a clock reading, a compare-and-swap, a clock
/// reading) may take before the holder no longer trusts it.
pub const RENEW_SLACK_MS: u64 = 5_000;
/// How long a lease lasts from its last renewal.
pub const LEASE_MS: u64 = REFRESH_TIMEOUT_MS as u64 + MAX_PAUSE_MS + RENEW_SLACK_MS;
/// How soon a caller that found the lease held should look again: a
/// refresh takes a round trip, not the whole lease.
pub const POLL_MS: u64 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LeaseRecord {
    /// Random, per acquisition: only the holder renews or releases it.
    holder: String,
    /// The holder's deadline, by the holder's clock (Unix ms).
    until_ms: u64,
}

/// A lease this caller holds.
#[derive(Debug)]
pub struct Lease {
    key: String,
    holder: String,
    version: u64,
    until_ms: u64,
}

impl Lease {
    /// The holder's deadline, by its own clock: the refresh's result must be
    /// stored by then.
    pub fn until_ms(&self) -> u64 {
        self.until_ms
    }

    /// Whether, at `now_ms` (read after a renewal), enough of the lease
    /// remains for a request's whole timeout and the pause allowance.
    pub fn covers_a_request(&self, now_ms: u64) -> bool {
        now_ms.saturating_add(REFRESH_TIMEOUT_MS as u64 + MAX_PAUSE_MS) <= self.until_ms
    }
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

/// Until when (by the reader's clock) a lease record keeps others out:
/// `None` when it no longer does.
///
/// A lease whose `until` lies more than `LEASE_MS + MAX_CLOCK_SKEW_MS`
/// ahead was written by a clock beyond the skew bound (or ours jumped
/// back): trusting it would block refreshes for as long as that clock is
/// wrong, so it is stale, and taking it over says so in an event.
fn honoured_until(lease: &LeaseRecord, now_ms: u64) -> Option<u64> {
    let end = lease.until_ms.saturating_add(MAX_CLOCK_SKEW_MS);
    let within_bound = lease.until_ms <= now_ms.saturating_add(LEASE_MS + MAX_CLOCK_SKEW_MS);
    (now_ms < end && within_bound).then_some(end)
}

/// A stored lease: `None` when damaged (a damaged lease is stale: it must
/// not block refreshes forever); a lease of a newer record format is an
/// error, because a worker of a newer release may hold it.
fn decode_lease(key: &str, bytes: &[u8]) -> Result<Option<LeaseRecord>, StorageError> {
    store::check_format(key, bytes)?;
    Ok(store::decode(key, bytes).ok())
}

/// Takes the lease unless another caller holds a live one.
pub async fn acquire(fx: &Effects, connection: &str, now_ms: u64) -> Result<Acquire, StorageError> {
    let key = store::lease_key(connection);
    let current = fx.get(&key).await?;
    let record = match &current {
        Some(entry) => decode_lease(&key, &entry.value)?,
        None => None,
    };
    if let Some(lease) = &record {
        if let Some(end) = honoured_until(lease, now_ms) {
            return Ok(Acquire::Held {
                retry_at_ms: end.min(now_ms.saturating_add(POLL_MS)),
            });
        }
        if lease.until_ms > now_ms {
            events::emit(
                fx,
                Level::Warn,
                Kind::LeaseClockSkew,
                connection,
                &[("ahead-ms", (lease.until_ms - now_ms - LEASE_MS).to_string())],
                "a refresh lease from a clock further ahead than the skew bound was taken over; check the hosts' clocks",
            ).await;
        }
    }
    let mut holder = [0u8; 16];
    fx.random(&mut holder).await;
    let holder: String = holder.iter().map(|b| format!("{b:02x}")).collect();
    let until_ms = now_ms.saturating_add(LEASE_MS);
    let record = LeaseRecord {
        holder: holder.clone(),
        until_ms,
    };
    match store::write(fx, &key, &record, current.map(|e| e.version)).await {
        Ok(version) => Ok(Acquire::Acquired(Lease {
            key,
            holder,
            version,
            until_ms,
        })),
        // Another caller took it between our read and our write.
        Err(StorageError::Conflict) => Ok(Acquire::Held {
            retry_at_ms: now_ms.saturating_add(POLL_MS),
        }),
        Err(error) => Err(error),
    }
}

/// Renews the lease at `now_ms`, read from the clock just now: `false` when
/// another caller has taken it over (then the caller must not send).
///
/// The compare-and-swap on the version this caller holds is the proof of
/// ownership; it does not depend on any clock.
pub async fn renew(fx: &Effects, lease: &mut Lease, now_ms: u64) -> Result<bool, StorageError> {
    let until_ms = now_ms.saturating_add(LEASE_MS);
    let record = LeaseRecord {
        holder: lease.holder.clone(),
        until_ms,
    };
    match store::write(fx, &lease.key, &record, Some(lease.version)).await {
        Ok(version) => {
            lease.version = version;
            lease.until_ms = until_ms;
            Ok(true)
        }
        Err(StorageError::Conflict) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Gives the lease back. Best effort: a lease that cannot be deleted
/// lapses at its expiry, and one that changed hands is not ours to delete.
pub async fn release(fx: &Effects, lease: Lease) {
    let _ = fx.delete(&lease.key, lease.version).await;
}

/// Until when (by our clock) a live lease keeps refreshes out, for status;
/// `None` when free.
pub async fn held_until(
    fx: &Effects,
    connection: &str,
    now_ms: u64,
) -> Result<Option<u64>, StorageError> {
    let key = store::lease_key(connection);
    let Some(entry) = fx.get(&key).await? else {
        return Ok(None);
    };
    Ok(decode_lease(&key, &entry.value)?.and_then(|lease| honoured_until(&lease, now_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::drive;
    use crate::io::fake::FakeIo;

    const NOW: u64 = 1_700_000_000_000;

    fn acquired(io: &mut FakeIo, now: u64) -> Lease {
        match drive(io, async |fx| acquire(fx, "c1", now).await).unwrap() {
            Acquire::Acquired(lease) => lease,
            Acquire::Held { .. } => panic!("the lease is free"),
        }
    }

    #[test]
    fn one_holder_at_a_time_until_it_lapses_plus_the_skew_bound() {
        let mut io = FakeIo::default();
        let first = acquired(&mut io, NOW);
        assert!(matches!(
            drive(&mut io, async |fx| acquire(fx, "c1", NOW + 1).await).unwrap(),
            Acquire::Held { retry_at_ms } if retry_at_ms == NOW + 1 + POLL_MS
        ));
        // A crashed holder never releases. Its deadline passing is not
        // enough: our clock may be up to the skew bound ahead of its.
        assert!(matches!(
            drive(&mut io, async |fx| acquire(fx, "c1", NOW + LEASE_MS).await).unwrap(),
            Acquire::Held { .. }
        ));
        let second = acquired(&mut io, NOW + LEASE_MS + MAX_CLOCK_SKEW_MS);
        // The first holder's late release does not free the new lease.
        drive(&mut io, async |fx| release(fx, first).await);
        assert!(
            drive(&mut io, async |fx| held_until(
                fx,
                "c1",
                NOW + LEASE_MS + MAX_CLOCK_SKEW_MS + 1
            )
            .await)
            .unwrap()
            .is_some()
        );
        drive(&mut io, async |fx| release(fx, second).await);
    }

    /// A holder whose clock runs ahead of ours, by anything up to the
    /// bound, is honoured: its lease is not "from the future" to us.
    #[test]
    fn a_lease_from_a_clock_ahead_within_the_bound_is_honoured() {
        for ahead in [1, 100, 2_000, MAX_CLOCK_SKEW_MS] {
            let mut io = FakeIo::default();
            acquired(&mut io, NOW + ahead);
            assert!(
                matches!(
                    drive(&mut io, async |fx| acquire(fx, "c1", NOW).await).unwrap(),
                    Acquire::Held { .. }
                ),
                "{ahead} ms ahead"
            );
            // Until the holder's own clock has passed its deadline.
            let holder_deadline_in_our_time = NOW + LEASE_MS;
            assert!(matches!(
                drive(&mut io, async |fx| acquire(
                    fx,
                    "c1",
                    holder_deadline_in_our_time - 1
                )
                .await)
                .unwrap(),
                Acquire::Held { .. }
            ));
        }
    }

    #[test]
    fn a_lease_from_a_clock_beyond_the_bound_is_taken_over_and_reported() {
        let mut io = FakeIo::default();
        acquired(&mut io, NOW + 10 * LEASE_MS);
        acquired(&mut io, NOW);
        assert_eq!(io.kinds(), ["lease-clock-skew"]);
    }

    #[test]
    fn renewal_proves_ownership_whatever_the_clocks_say() {
        let mut io = FakeIo::default();
        let mut first = acquired(&mut io, NOW);
        // Paused past its own deadline, but nobody took over: renewal works
        // and restores the whole lease.
        assert!(
            drive(&mut io, async |fx| renew(
                fx,
                &mut first,
                NOW + LEASE_MS + 5_000
            )
            .await)
            .unwrap()
        );
        assert_eq!(first.until_ms(), NOW + 2 * LEASE_MS + 5_000);
        assert!(first.covers_a_request(NOW + LEASE_MS + 5_000 + RENEW_SLACK_MS));
        // A pause between reading the clock and renewing: the deadline is
        // partly spent, and the holder can tell.
        assert!(!first.covers_a_request(NOW + LEASE_MS + 5_000 + RENEW_SLACK_MS + 1));
        // Taken over while paused: renewal fails, and the holder must not send.
        let taker_now = first.until_ms() + MAX_CLOCK_SKEW_MS;
        acquired(&mut io, taker_now);
        assert!(
            !drive(&mut io, async |fx| renew(fx, &mut first, taker_now + 1)
                .await)
            .unwrap()
        );
    }

    #[test]
    fn release_frees_it() {
        let mut io = FakeIo::default();
        let lease = acquired(&mut io, NOW);
        drive(&mut io, async |fx| release(fx, lease).await);
        assert_eq!(
            drive(&mut io, async |fx| held_until(fx, "c1", NOW).await).unwrap(),
            None
        );
        acquired(&mut io, NOW);
    }
}
