//! Telemetry: logging (here) and Prometheus metrics ([`metrics`]).
//!
//! Logging: `tracing` to stderr (journald picks it up under systemd), without colours when
//! stderr is not a terminal. The level comes from `RUST_LOG` when set, else the config's
//! `log_level`. Control characters in an event's text are escaped, so nothing a client sends
//! can forge a log line.

pub mod metrics;

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the filter of the installed subscriber (config reload).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Install the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(default_level: &str) {
    let (filter, handle) = reload::Layer::new(filter_for(default_level));
    let ansi = std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(EscapingStderr { ansi })
        .with_ansi(ansi);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
}

/// Standard error, with every control character of an event's text escaped (a newline as
/// `\n`, a NUL as `\0`, others as `\u{..}`) but the newline that ends the event: a client's
/// trace id, a prompt file's id or an upstream's error text cannot forge a log line or reach
/// the terminal raw. With colours on, the escape character of the formatter's own colour codes
/// stays (tracing-subscriber escapes those in field values itself).
#[derive(Debug, Clone, Copy)]
struct EscapingStderr {
    ansi: bool,
}

impl<'a> MakeWriter<'a> for EscapingStderr {
    type Writer = EscapingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter { ansi: self.ansi }
    }
}

/// One event's writer (the fmt layer writes each event whole, in one call).
struct EscapingWriter {
    ansi: bool,
}

impl std::io::Write for EscapingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let escaped = escape_controls(buf, self.ansi);
        std::io::stderr().lock().write_all(&escaped)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `text` with its control characters escaped, except one trailing newline (and ESC when
/// `keep_escape`). Borrowed when there is nothing to escape, as for nearly every line.
fn escape_controls(text: &[u8], keep_escape: bool) -> Cow<'_, [u8]> {
    let (body, end) = match text.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (text, &b""[..]),
    };
    let needs = |b: u8| (b < 0x20 && !(keep_escape && b == 0x1b) && b != b'\t') || b == 0x7f;
    if !body.iter().copied().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            b if needs(b) => out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes()),
            b => out.push(b),
        }
    }
    out.extend_from_slice(end);
    Cow::Owned(out)
}

/// Apply the config's `log_level` (`RUST_LOG`, when set, still wins).
pub fn set_level(level: &str) {
    if let Some(handle) = FILTER.get() {
        if let Err(e) = handle.reload(filter_for(level)) {
            tracing::warn!(error = %e, "cannot change the log level");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_a_line() {
        let line = "INFO trace_id=a\n2026 ERROR x\u{1b}[31m\0\r\t!\n";
        let escaped = escape_controls(line.as_bytes(), false);
        assert_eq!(
            std::str::from_utf8(&escaped).unwrap(),
            "INFO trace_id=a\\n2026 ERROR x\\u{1b}[31m\\0\\r\t!\n"
        );
        assert!(matches!(
            escape_controls(b"plain line\n", false),
            Cow::Borrowed(_)
        ));
        let coloured = "\u{1b}[32mINFO\u{1b}[0m ok\n";
        assert_eq!(
            escape_controls(coloured.as_bytes(), true).as_ref(),
            coloured.as_bytes(),
            "the formatter's own colours stay with ANSI on"
        );
    }
}
