//! `Retry-After` (RFC 9110 §10.2.3).

use std::time::UNIX_EPOCH;

use crate::types::{Header, header_values};

/// Parses a `Retry-After` value: delta-seconds, or an HTTP date in any of the
/// three formats recipients must accept (RFC 9110 §5.6.7). Returns the retry
/// time in Unix milliseconds, never before `now_ms`; `None` when invalid.
///
/// A huge delta saturates instead of overflowing; capping the wait is the
/// caller's policy, not the parser's.
pub fn retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(now_ms.saturating_add(seconds.saturating_mul(1000)));
    }
    // httpdate parses IMF-fixdate, RFC 850 and asctime dates without a clock.
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some(u64::try_from(at_ms).unwrap_or(u64::MAX).max(now_ms))
}

/// The retry time from a response's headers: the first `Retry-After` field
/// decides (the field is a singleton; a combined `a, b` value is invalid).
pub fn retry_after_header(headers: &[Header], now_ms: u64) -> Option<u64> {
    header_values(headers, "retry-after")
        .next()
        .and_then(|value| retry_after(value, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 784_111_000_000; // 1994-11-06T08:36:40Z

    #[test]
    fn rfc9110_5_6_7_all_three_date_formats() {
        let expected = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOW),
            Some(expected)
        );
        assert_eq!(
            retry_after("Sunday, 06-Nov-94 08:49:37 GMT", NOW),
            Some(expected)
        );
        assert_eq!(retry_after("Sun Nov  6 08:49:37 1994", NOW), Some(expected));
    }

    #[test]
    fn rfc9110_10_2_3_delta_seconds() {
        assert_eq!(retry_after("120", NOW), Some(NOW + 120_000));
        assert_eq!(retry_after("0", NOW), Some(NOW));
        assert_eq!(retry_after("99999999999999999999999", NOW), Some(u64::MAX));
    }

    #[test]
    fn past_dates_mean_now_and_garbage_means_none() {
        assert_eq!(retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW), Some(NOW));
        for bad in ["", "-1", "1.5", "soon", "120, 120", "Sun, 06 Nov 1994"] {
            assert_eq!(retry_after(bad, NOW), None, "{bad:?}");
        }
    }
}
