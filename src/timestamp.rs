//! Timestamps as promptd writes them (RFC 3339, UTC, microseconds): in log records, answers,
//! projects and status. A module of its own so that everything that stamps a time takes it from
//! the same place without importing the engine.
//!
//! Every completion stamps two (its start and end), so they are written digit by digit into a
//! fixed buffer: chrono's general formatter costs several times as much per stamp. Years
//! outside 0000–9999 (which no clock of a running daemon shows) take chrono's path.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// The current time as promptd writes timestamps (RFC 3339, UTC, microseconds).
pub fn now_iso() -> String {
    iso(Utc::now())
}

/// `t` (a system time, as the flusher keeps them) as promptd writes timestamps.
pub fn system_time_iso(t: std::time::SystemTime) -> String {
    iso(DateTime::<Utc>::from(t))
}

/// `t` as promptd writes timestamps: `2026-12-07T14:11:20.123456Z`.
pub fn iso(t: DateTime<Utc>) -> String {
    // The parts read from the UTC date and time once (each accessor of a `DateTime` would
    // convert it to its local time again).
    let n = t.naive_utc();
    let Ok(year @ 0..=9999) = u32::try_from(n.year()) else {
        return t.to_rfc3339_opts(SecondsFormat::Micros, true);
    };
    // A leap second is shown as chrono shows it (second 59, over a million microseconds
    // otherwise): rare enough to take the general path.
    let nanos = n.nanosecond();
    if nanos >= 1_000_000_000 {
        return t.to_rfc3339_opts(SecondsFormat::Micros, true);
    }
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], n.month());
    digits(&mut out[8..10], n.day());
    digits(&mut out[11..13], n.hour());
    digits(&mut out[14..16], n.minute());
    digits(&mut out[17..19], n.second());
    digits(&mut out[20..26], nanos / 1000);
    // Only ASCII digits and the fixed punctuation were written.
    String::from_utf8_lossy(&out).into_owned()
}

/// `n` as the decimal digits that fill `out` (zero-padded on the left; `n` fits).
fn digits(out: &mut [u8], mut n: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_what_chronos_rfc3339_writes() {
        let chrono_way = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut seconds: i64 = 0;
        // Across four centuries in uneven steps (every month length, leap years, 1970, 2000).
        while seconds < 13_000_000_000 {
            for nanos in [0, 1_000, 999_999_999, 123_456_789] {
                let t = DateTime::from_timestamp(seconds, nanos).expect("a time");
                assert_eq!(iso(t), chrono_way(t), "{seconds} {nanos}");
            }
            seconds += 7_777_777;
        }
        let before_epoch = DateTime::from_timestamp(-1_000_000_000, 5_000).expect("a time");
        assert_eq!(iso(before_epoch), chrono_way(before_epoch));
        let far = DateTime::from_timestamp(300_000_000_000, 0).expect("a time");
        assert_eq!(iso(far), chrono_way(far));
        assert_eq!(now_iso().len(), "2026-12-07T14:11:20.123456Z".len());
    }
}
