//! The `random` import: cryptographically secure bytes.

use std::sync::Mutex;

use super::HostState;
use crate::bindings::pleo::oauth::random as wit;

/// The most bytes the guest may ask for at once (the WIT contract).
pub const MAX_RANDOM_BYTES: u32 = 1024;

pub trait Random: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // Without OS randomness no secure verifier or state can be made;
        // continuing would be worse than stopping.
        getrandom::fill(buf).expect("the operating system's random source failed");
    }
}

/// A deterministic generator for tests, so a test can predict verifiers and
/// states. SplitMix64: tiny, well distributed, and NOT secure; hand-written
/// because a test double needs no crate.
#[derive(Debug)]
pub struct SeededRandom(Mutex<u64>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(seed))
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        let mut state = self.0.lock().expect("random lock");
        for chunk in buf.chunks_mut(8) {
            *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

impl wit::Host for HostState {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        self.timed(|backends| guest_bytes(backends.random.as_ref(), len))
            .map_err(wasmtime::Error::msg)
    }
}

/// A guest's `random.bytes`, by import or as a `steps` effect. Asking for
/// more than [`MAX_RANDOM_BYTES`] is a guest bug, which the caller turns
/// into a trap.
pub(crate) fn guest_bytes(random: &dyn Random, len: u32) -> Result<Vec<u8>, String> {
    if len > MAX_RANDOM_BYTES {
        return Err(format!(
            "the guest asked for {len} random bytes; the contract allows {MAX_RANDOM_BYTES}"
        ));
    }
    let mut buf = vec![0; len as usize];
    random.fill(&mut buf);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_random_is_repeatable_and_seed_dependent() {
        let (mut a, mut b, mut c) = ([0u8; 37], [0u8; 37], [0u8; 37]);
        SeededRandom::new(7).fill(&mut a);
        SeededRandom::new(7).fill(&mut b);
        SeededRandom::new(8).fill(&mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn os_random_fills() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OsRandom.fill(&mut a);
        OsRandom.fill(&mut b);
        assert_ne!(a, b);
    }
}
