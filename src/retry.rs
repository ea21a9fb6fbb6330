//! When to ask an upstream again, and how long to wait first: the one retry policy of the two
//! paths that retry, provider calls ([`crate::providers::client`]) and log shipping (the
//! flusher's delivery in [`crate::logs`]).
//!
//! - [`retryable`]: which answers are worth another try. 408, 429, 500, 502, 503, 504 and 529
//!   (Anthropic's "overloaded") say "not now" to anyone. What else is retried depends on who
//!   waits, said by the caller as a [`Caller`]: a client waiting on a provider call gets every
//!   other answer at once; the log backlog, which must not lose records, also waits out answers
//!   that say the upstream or promptd's config is wrong rather than the record.
//! - [`retry_after`]: the `Retry-After` header, as seconds or as an HTTP date.
//! - [`Backoff`]: capped exponential backoff with jitter, for when there is no `Retry-After`.
//!
//! How long a `Retry-After` may be is each caller's choice: a provider call gives up on one
//! longer than it will hold a client, the flusher waits at most a cap.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// Who waits on a retried request; decides which failed answers are worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A client waits for the answer (a provider call): only "not now" answers are retried;
    /// any other goes back to the client at once, as retrying would only delay the same error.
    ClientWaiting,
    /// Records that must not be lost wait (the log backlog). A redirect, 401, 403, 404 or any
    /// 5xx is not a verdict on the record but on the collector or the config: dropping the
    /// backlog over a rotated key or a wrong `base_url` would lose every record, so these are
    /// retried (and shown as the last upstream error) until the config is fixed. Only the
    /// other 4xx reject the record itself.
    Backlog,
}

/// Whether a non-2xx answer with `status` is worth another try for `caller`.
pub fn retryable(status: StatusCode, caller: Caller) -> bool {
    let not_now = matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504 | 529);
    match caller {
        Caller::ClientWaiting => not_now,
        Caller::Backlog => {
            not_now
                || status.is_redirection()
                || status.is_server_error()
                || matches!(
                    status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
                )
        }
    }
}

/// The wait an upstream asked for in `Retry-After`: seconds, or an HTTP date (a date already
/// past asks for no wait). `None` without the header or with a value that is neither.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(text, Utc::now())
}

/// [`retry_after`] of the header's text, with the clock given.
fn parse_retry_after(text: &str, now: DateTime<Utc>) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        // A number too large for a Duration (say `1e300`) is "a very long time", not a panic.
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    // An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`) is a valid RFC 2822 date.
    let at = DateTime::parse_from_rfc2822(text).ok()?;
    Some(
        at.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Capped exponential backoff with jitter: retry `n` (counting from 0) waits `first * 2^n`,
/// at most `cap`, times a random factor between a half and one, so that many clients failing
/// together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The wait before retry `n` (the first retry is 0).
    pub fn wait(&self, n: u32) -> Duration {
        // 2^20 times any sensible `first` is past any sensible cap; the bound keeps the shift
        // from overflowing.
        let exp = self.first.saturating_mul(1 << n.min(20)).min(self.cap);
        exp.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).expect("status")
    }

    #[test]
    fn not_now_answers_are_retried_for_every_caller() {
        for code in [408, 429, 500, 502, 503, 504, 529] {
            assert!(retryable(status(code), Caller::ClientWaiting), "{code}");
            assert!(retryable(status(code), Caller::Backlog), "{code}");
        }
        for code in [400, 409, 413, 422] {
            assert!(!retryable(status(code), Caller::ClientWaiting), "{code}");
            assert!(!retryable(status(code), Caller::Backlog), "{code}");
        }
    }

    #[test]
    fn the_backlog_also_waits_out_a_wrong_config_but_a_client_does_not() {
        for code in [301, 307, 401, 403, 404, 501, 505] {
            assert!(retryable(status(code), Caller::Backlog), "{code}");
            assert!(!retryable(status(code), Caller::ClientWaiting), "{code}");
        }
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 1.5 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&headers), Some(Duration::MAX));
        for bad in ["-1", "NaN", "soon", ""] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(bad));
            assert_eq!(retry_after(&headers), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "read now");
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_its_cap() {
        let backoff = Backoff {
            first: Duration::from_millis(250),
            cap: Duration::from_secs(4),
        };
        for _ in 0..50 {
            let first = backoff.wait(0);
            assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(250));
            let third = backoff.wait(2);
            assert!(third >= Duration::from_millis(500) && third <= Duration::from_secs(1));
        }
        let mut longest = Duration::ZERO;
        for n in 0..40 {
            let wait = backoff.wait(n);
            assert!(wait <= backoff.cap, "{n}: {wait:?}");
            assert!(wait >= backoff.first / 2, "{n}: {wait:?}");
            longest = longest.max(wait);
        }
        assert!(longest >= backoff.cap / 2, "reaches the cap: {longest:?}");
    }
}
