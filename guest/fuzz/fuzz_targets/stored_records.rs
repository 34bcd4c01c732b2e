//! The stored-record decoders: `connection::store::read` is
//! `serde_json::from_slice` on the stored bytes, so this fuzzes exactly that
//! for every stored type.
//!
//! Input layout: byte 0 picks the type (`b % 4`: `TokensRecord`,
//! `FlowRecord`, `Status`, `ConnectionConfig`); the rest is the stored value.
//!
//! Beyond "no panic" it checks that a record that decodes round-trips:
//! `to_vec` then `from_slice` gives an equal record, and encoding that again
//! gives the same bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pleo_oauth_core::connection::{ConnectionConfig, FlowRecord, Status, TokensRecord};

/// `Serialize`/`Deserialize` are bounds of `serde_json` functions; a macro
/// avoids naming them, and so a direct `serde` dependency.
macro_rules! round_trip {
    ($type:ty, $bytes:expr) => {
        if let Ok(record) = serde_json::from_slice::<$type>($bytes) {
            check::<$type>(
                &record,
                |r| serde_json::to_vec(r),
                |b| serde_json::from_slice(b),
            );
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let [kind, value @ ..] = data else {
        return;
    };
    match kind % 4 {
        0 => round_trip!(TokensRecord, value),
        1 => round_trip!(FlowRecord, value),
        2 => round_trip!(Status, value),
        _ => round_trip!(ConnectionConfig, value),
    }
});

fn check<T: PartialEq + std::fmt::Debug>(
    record: &T,
    encode: impl Fn(&T) -> serde_json::Result<Vec<u8>>,
    decode: impl Fn(&[u8]) -> serde_json::Result<T>,
) {
    let encoded = encode(record).expect("a decoded record must encode");
    let decoded = decode(&encoded).expect("an encoded record must decode");
    assert!(&decoded == record, "record does not round-trip: {record:?}");
    let again = encode(&decoded).expect("a decoded record must encode");
    assert_eq!(encoded, again, "encoding is not stable");
}
