//! `classify::retry_after` on arbitrary field values (lossy UTF-8).
//!
//! Beyond "no panic" it checks that a retry time is never before now (at
//! three values of now, including 0 and `u64::MAX`), that whether a value is
//! valid does not depend on now, that delta-seconds are exactly `now + 1000
//! * delta` (saturating) and a date is `max(date, now)`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pleo_oauth_core::classify::retry_after;

const NOW: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let at_now = retry_after(&text, NOW);
    let at_zero = retry_after(&text, 0);
    let at_max = retry_after(&text, u64::MAX);
    assert_eq!(
        at_now.is_some(),
        at_zero.is_some(),
        "validity depends on now"
    );
    assert_eq!(
        at_now.is_some(),
        at_max.is_some(),
        "validity depends on now"
    );
    let (Some(at_now), Some(at_zero), Some(at_max)) = (at_now, at_zero, at_max) else {
        return;
    };
    assert!(at_now >= NOW, "{at_now} before {NOW}");
    assert_eq!(at_max, u64::MAX);
    let trimmed = text.trim_matches([' ', '\t']);
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        // `at_zero` is the delta in ms (saturated).
        assert_eq!(at_now, NOW.saturating_add(at_zero));
    } else {
        // `at_zero` is the date itself.
        assert_eq!(at_now, at_zero.max(NOW));
    }
});
