//! How the client subcommands put a daemon's answers into words: the deployment table
//! (columns as wide as their cells), counts that agree with their nouns, ages in their two
//! largest units, the shipping line of `promptd logs status`, and an error answer's message.

use serde_json::Value;

/// `promptd deployments list`: the directory's and folders' errors, then one row per file
/// (a file that never loaded has version `-`), each file's error on the line under its row.
pub(super) fn deployment_list(value: &Value) -> String {
    let mut out = String::new();
    if let Some(err) = value["dir_error"].as_str() {
        out.push_str(&format!("prompts directory: {err}\n"));
    }
    for err in value["folder_errors"].as_array().into_iter().flatten() {
        out.push_str(&format!("folder: {}\n", err.as_str().unwrap_or("?")));
    }
    let deployments: &[Value] = value["deployments"].as_array().map_or(&[], Vec::as_slice);
    if deployments.is_empty() {
        let dir = value["prompts_dir"]
            .as_str()
            .unwrap_or("the prompts directory");
        out.push_str(&format!("no deployed prompts in {dir}\n"));
        return out;
    }
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            vec![
                text(&d["id"]),
                d["version"]
                    .as_u64()
                    .map_or("-".to_owned(), |v| v.to_string()),
                match d["status"].as_str() {
                    Some("from_store") => "from store".to_owned(),
                    _ => text(&d["status"]),
                },
                match d["serving"].as_bool() {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                }
                .to_owned(),
                text(&d["source"]),
            ]
        })
        .collect();
    let columns = [
        ("id", Align::Left),
        ("version", Align::Right),
        ("status", Align::Left),
        ("serving", Align::Left),
        ("source", Align::Left),
    ];
    let mut lines = table(&columns, &rows).into_iter();
    if let Some(header) = lines.next() {
        out.push_str(&format!("{header}\n"));
    }
    for (line, d) in lines.zip(deployments) {
        out.push_str(&format!("{line}\n"));
        if let Some(err) = d["last_error"].as_str() {
            out.push_str(&format!(
                "    error: {}\n",
                err.replace('\n', "\n           ")
            ));
        }
    }
    out
}

/// Where a column's cells sit in its width.
#[derive(Debug, Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A header line and one line per row, with each column as wide as its longest cell (header
/// included; in characters) and two spaces between columns; no trailing spaces.
fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> Vec<String> {
    let cell_width = |cell: &str| cell.chars().count();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(k, (name, _))| {
            rows.iter()
                .filter_map(|row| row.get(k))
                .map(|cell| cell_width(cell))
                .fold(cell_width(name), usize::max)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(columns.iter().zip(&widths))
            .map(|(cell, ((_, align), &width))| match align {
                Align::Left => format!("{cell:<width$}"),
                Align::Right => format!("{cell:>width$}"),
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    std::iter::once(line(columns.iter().map(|(name, _)| *name).collect()))
        .chain(
            rows.iter()
                .map(|row| line(row.iter().map(String::as_str).collect())),
        )
        .collect()
}

/// The fields of `/logs/status` that [`shipping_summary`] tells; the others are listed as
/// they come.
pub(super) const SHIPPING_KEYS: &[&str] = &[
    "flusher",
    "not_flushing_because",
    "healthy",
    "failing_since",
    "last_success_at",
    "last_error_at",
    "last_upstream_error",
];

/// The first line of `promptd logs status`: whether records reach the collector now, since
/// when they do not, and when the last one was sent and the last attempt failed (a past error
/// stays in the status after the collector recovered: its time tells it from a current one).
pub(super) fn shipping_summary(status: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let when = |field: &str| status[field].as_str().map(|t| moment(t, now));
    let sent =
        when("last_success_at").map_or("nothing sent yet".to_owned(), |w| format!("last sent {w}"));
    let error = status["last_upstream_error"]
        .as_str()
        .map(|message| match when("last_error_at") {
            Some(w) => format!("last error {w}: {message}"),
            None => format!("last error: {message}"),
        });
    match (status["flusher"].as_str(), status["healthy"].as_bool()) {
        (Some("disabled"), _) => format!(
            "shipping: disabled: {}",
            status["not_flushing_because"]
                .as_str()
                .unwrap_or("the daemon gives no reason")
        ),
        (Some("idle"), _) => "shipping: not started yet".to_owned(),
        (Some("stopped"), _) => "shipping: stopped (the daemon is shutting down)".to_owned(),
        (_, Some(true)) => match error {
            Some(error) => format!("shipping: healthy; {sent}; {error}"),
            None => format!("shipping: healthy; {sent}"),
        },
        (_, Some(false)) => format!(
            "shipping: failing since {}; {}; {sent}; records wait in the spool and are retried \
             (`promptd logs flush` retries now)",
            when("failing_since").unwrap_or_else(|| "?".to_owned()),
            error.unwrap_or_else(|| "last error: ?".to_owned()),
        ),
        // A daemon older than this CLI: it does not say whether the error is past.
        (state, None) => format!(
            "shipping: {}; {}",
            state.unwrap_or("?"),
            error.unwrap_or_else(|| "no error".to_owned())
        ),
    }
}

/// An RFC 3339 time of the daemon as "3m ago (2025-01-02 03:04:05 UTC)"; as it came if it
/// does not parse.
fn moment(time: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    match chrono::DateTime::parse_from_rfc3339(time) {
        Ok(t) => {
            let t = t.with_timezone(&chrono::Utc);
            format!(
                "{} ago ({})",
                age((now - t).num_seconds()),
                t.format("%Y-%m-%d %H:%M:%S UTC")
            )
        }
        Err(_) => time.to_owned(),
    }
}

/// A span of seconds in its two largest units: "42s", "3m", "2h 5m", "4d 1h".
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `n` with the noun in the number it takes: "1 entry", "0 entries", "2 entries".
pub(super) fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// [`count`] of a number in a daemon's answer; a missing one (an older daemon) is `?`.
pub(super) fn counted(value: &Value, one: &str, many: &str) -> String {
    match value {
        Value::Null => format!("? {many}"),
        other => match other.as_u64() {
            Some(n) => count(n, one, many),
            None => format!("{other} {many}"),
        },
    }
}

/// What an error answer says: its JSON `error.message`, else an excerpt of its text (a proxy or
/// an older daemon may answer with something else, an HTML page say).
pub(super) fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    from_json.unwrap_or_else(|| promptd::error_body_excerpt(body))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn table_columns_are_as_wide_as_their_longest_cell() {
        let columns = [
            ("id", Align::Left),
            ("n", Align::Right),
            ("note", Align::Left),
        ];
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned(), "x".to_owned()],
            vec!["longer-id".to_owned(), "100".to_owned(), String::new()],
            vec!["é".to_owned(), "-".to_owned(), "last".to_owned()],
        ];
        assert_eq!(
            table(&columns, &rows),
            [
                "id           n  note",
                "a            1  x",
                "longer-id  100",
                "é            -  last",
            ]
        );
    }

    #[test]
    fn deployment_list_shows_a_file_that_never_loaded_with_its_error() {
        let value = json!({
            "prompts_dir": "/p",
            "dir_error": null,
            "folder_errors": ["/p/locked: permission denied"],
            "deployments": [
                {"id": "greet", "version": 12, "source": "/p/greet.toml", "status": "ok",
                 "serving": true, "last_error": null},
                {"id": "bad", "version": null, "source": "/p/bad.yaml", "status": "error",
                 "serving": false, "last_error": "/p/bad.yaml:1: model: expected a string"},
                {"id": "kept", "version": 3, "source": "/p/kept.toml", "status": "from_store",
                 "serving": true, "last_error": null},
            ],
        });
        assert_eq!(
            deployment_list(&value),
            "folder: /p/locked: permission denied\n\
             id     version  status      serving  source\n\
             greet       12  ok          yes      /p/greet.toml\n\
             bad          -  error       no       /p/bad.yaml\n    \
             error: /p/bad.yaml:1: model: expected a string\n\
             kept         3  from store  yes      /p/kept.toml\n"
        );
        let empty = json!({"prompts_dir": "/p", "folder_errors": [], "deployments": []});
        assert_eq!(deployment_list(&empty), "no deployed prompts in /p\n");
    }

    #[test]
    fn ages_take_their_two_largest_units() {
        let cases = [
            (-5, "0s"),
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h 0m"),
            (7500, "2h 5m"),
            (86400 * 4 + 3700, "4d 1h"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(age(seconds), expected, "{seconds}");
        }
    }

    #[test]
    fn shipping_summary_tells_a_past_error_from_a_current_one() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:10:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let error = "POST http://c/trace_log: 503 Service Unavailable: down";
        let healthy = json!({
            "flusher": "running",
            "healthy": true,
            "failing_since": null,
            "last_success_at": "2025-01-02T03:09:58.123456Z",
            "last_error_at": "2025-01-02T03:07:00.5Z",
            "last_upstream_error": error,
        });
        assert_eq!(
            shipping_summary(&healthy, now),
            format!(
                "shipping: healthy; last sent 1s ago (2025-01-02 03:09:58 UTC); \
                 last error 2m ago (2025-01-02 03:07:00 UTC): {error}"
            )
        );
        let failing = json!({
            "flusher": "running",
            "healthy": false,
            "failing_since": "2025-01-02T01:00:00Z",
            "last_success_at": null,
            "last_error_at": "2025-01-02T03:09:00Z",
            "last_upstream_error": error,
        });
        assert_eq!(
            shipping_summary(&failing, now),
            format!(
                "shipping: failing since 2h 10m ago (2025-01-02 01:00:00 UTC); \
                 last error 1m ago (2025-01-02 03:09:00 UTC): {error}; nothing sent yet; \
                 records wait in the spool and are retried (`promptd logs flush` retries now)"
            )
        );
        let fresh = json!({"flusher": "running", "healthy": true});
        assert_eq!(
            shipping_summary(&fresh, now),
            "shipping: healthy; nothing sent yet"
        );
        let off = json!({"flusher": "disabled", "healthy": false,
                         "not_flushing_because": "no API key"});
        assert_eq!(
            shipping_summary(&off, now),
            "shipping: disabled: no API key"
        );
        let older_daemon = json!({"flusher": "running", "last_upstream_error": error});
        assert_eq!(
            shipping_summary(&older_daemon, now),
            format!("shipping: running; last error: {error}")
        );
    }

    #[test]
    fn counts_take_the_number_of_their_noun() {
        assert_eq!(count(0, "entry", "entries"), "0 entries");
        assert_eq!(count(1, "entry", "entries"), "1 entry");
        assert_eq!(count(2, "entry", "entries"), "2 entries");
        assert_eq!(counted(&json!(1), "miss", "misses"), "1 miss");
        assert_eq!(counted(&json!(3), "miss", "misses"), "3 misses");
        assert_eq!(counted(&Value::Null, "miss", "misses"), "? misses");
    }

    #[test]
    fn error_message_reads_json_errors_and_falls_back_to_the_text() {
        let json = br#"{"error":{"type":"not_found","message":"no cache entry with key ab"}}"#;
        assert_eq!(error_message(json), "no cache entry with key ab");
        assert_eq!(error_message(b"502 Bad Gateway\n"), "502 Bad Gateway");
        assert_eq!(error_message(br#"{"detail":"x"}"#), r#"{"detail":"x"}"#);
        assert_eq!(error_message(b""), "(empty body)");
        assert!(error_message("x".repeat(5000).as_bytes()).len() < 400);
    }
}
