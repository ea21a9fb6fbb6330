//! Command-line interface: `serve` runs the daemon; the other subcommands are clients of a
//! running daemon (over its socket) or check a config without starting.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Map, Value};

use promptd::client::DaemonClient;
use promptd::config::{default_socket, Config, Overrides, DEFAULT_CONFIG_TOML};
use promptd::providers::sse::SseParser;
use promptd::server::PAREA_PREFIX;

mod args;
mod serve;

use args::{
    CacheCommand, CompleteArgs, DeploymentsCommand, InstallArgs, LogsCommand, SocketArg,
    StatusArgs, ValidateArgs,
};
pub use args::{Cli, Command};
use serve::serve;

/// Run a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Validate(args) => validate(args),
        Command::DefaultConfig => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(0)
        }
        Command::Complete(args) => runtime()?.block_on(complete(args, false)),
        Command::Stream(args) => runtime()?.block_on(complete(args, true)),
        Command::Health(args) => runtime()?.block_on(health(args)),
        Command::Socket(args) => {
            println!("{}", socket_of(&args)?.display());
            Ok(0)
        }
        Command::Status(args) => runtime()?.block_on(status(args)),
        Command::Cache(command) => runtime()?.block_on(cache(command)),
        Command::Deployments(command) => runtime()?.block_on(deployments(command)),
        Command::Logs(command) => runtime()?.block_on(logs(command)),
        Command::InstallUnits(args) => install_units(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn install_units(args: InstallArgs) -> anyhow::Result<i32> {
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe().context("cannot find this binary's path; give --binary")?,
    };
    let opts = promptd::install::InstallOptions {
        user: args.user,
        prefix: args.prefix,
        binary,
        config_home: promptd::config::user_config_home(),
    };
    for file in promptd::install::install_units(&opts)? {
        let note = if file.kept_existing {
            " (exists, kept)"
        } else {
            ""
        };
        println!("{}{note}", file.path.display());
    }
    if args.user {
        println!(
            "next: systemctl --user daemon-reload && systemctl --user enable --now promptd.socket"
        );
    } else {
        println!("next: systemd-sysusers && systemctl daemon-reload && systemctl enable --now promptd.socket");
    }
    Ok(0)
}

fn validate(args: ValidateArgs) -> anyhow::Result<i32> {
    let config = Config::load(args.config.config.as_deref(), &Overrides::default())?;
    let origin = args
        .config
        .config
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "embedded default config".to_owned());
    println!(
        "{origin}: ok (socket {}, {}: {})",
        config.socket.display(),
        count(config.providers.len() as u64, "provider", "providers"),
        config.provider_names().join(", ")
    );
    let dir = &config.prompts_dir;
    let bad = match promptd::deployments::validate_dir(dir, &config.provider_names()) {
        Ok(v) => {
            println!(
                "{}: {}, {} refused, {}",
                dir.display(),
                count(v.files as u64, "prompt file", "prompt files"),
                v.errors.len() - v.unreadable_folders,
                count(
                    v.unreadable_folders as u64,
                    "unreadable folder",
                    "unreadable folders"
                )
            );
            for e in &v.errors {
                eprintln!("warning: {e}");
            }
            !v.errors.is_empty()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("{}: does not exist (no deployed prompts)", dir.display());
            false
        }
        Err(e) => {
            eprintln!("warning: prompts directory {}: {e}", dir.display());
            true
        }
    };
    Ok(if bad && args.strict { 1 } else { 0 })
}

fn socket_of(target: &SocketArg) -> anyhow::Result<PathBuf> {
    if let Some(socket) = &target.socket {
        return Ok(socket.clone());
    }
    match &target.config {
        Some(path) => Ok(Config::load(Some(path), &Overrides::default())?.socket),
        None => Ok(default_socket()),
    }
}

async fn health(args: SocketArg) -> anyhow::Result<i32> {
    let client = DaemonClient::new(&socket_of(&args)?);
    let (status, body) = client.call(Method::GET, "/health", None).await?;
    println!("{}", String::from_utf8_lossy(&body));
    Ok(if status.is_success() { 0 } else { 1 })
}

async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let client = DaemonClient::new(&socket_of(&args.target)?);
    let (status, body) = client.call(Method::GET, "/status", None).await?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!("promptd: {status}: {}", error_message(&body));
        return Ok(1);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let s = |v: &Value| match v {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    println!(
        "promptd {} (pid {})",
        s(&value["version"]),
        s(&value["pid"])
    );
    println!(
        "  uptime      {} s (since {})",
        s(&value["uptime_seconds"]),
        s(&value["started_at"])
    );
    println!("  listening   {}", s(&value["listeners"]));
    println!("  state dir   {}", s(&value["state_dir"]));
    println!("  prompts dir {}", s(&value["prompts_dir"]));
    println!("  requests    {}", s(&value["requests"]));
    println!("providers");
    for p in value["providers"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<10} {:<40} key: {}",
            s(&p["name"]),
            s(&p["kind"]),
            s(&p["base_url"]),
            s(&p["api_key"])
        );
    }
    let c = &value["cache"];
    println!("cache");
    println!(
        "  {}, {} of {}; {}, {}, {} stale, {}, {} coalesced, {}",
        counted(&c["entries"], "entry", "entries"),
        s(&c["bytes"]),
        counted(&c["max_bytes"], "byte", "bytes"),
        counted(&c["hits"], "hit", "hits"),
        counted(&c["misses"], "miss", "misses"),
        s(&c["stale"]),
        counted(&c["bypass"], "bypass", "bypasses"),
        s(&c["coalesced"]),
        counted(&c["evictions"], "eviction", "evictions"),
    );
    let d = &value["deployments"];
    println!("deployments");
    println!(
        "  {} serving, {}, {} from the store",
        s(&d["serving"]),
        counted(&d["failed"], "refused file", "refused files"),
        s(&d["from_store"])
    );
    Ok(0)
}

async fn deployments(command: DeploymentsCommand) -> anyhow::Result<i32> {
    let (target, method, path, body) = match &command {
        DeploymentsCommand::List(target) => (target, Method::GET, "/deployments".to_owned(), None),
        DeploymentsCommand::Show { target, id } => (
            target,
            Method::POST,
            format!("{PAREA_PREFIX}/deployed-prompt"),
            Some(json!({"deployment_id": id})),
        ),
        DeploymentsCommand::Render { target, id, inputs } => {
            let inputs: Map<String, Value> =
                inputs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            (
                target,
                Method::POST,
                format!("{PAREA_PREFIX}/deployed-prompt"),
                Some(json!({"deployment_id": id, "llm_inputs": inputs})),
            )
        }
    };
    let client = DaemonClient::new(&socket_of(target)?);
    let body = body.map(|b| Bytes::from(b.to_string()));
    let (status, bytes) = client.call(method, &path, body).await?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!("promptd: {status}: {}", error_message(&bytes));
        return Ok(1);
    }
    match command {
        DeploymentsCommand::List(_) => print!("{}", deployment_list(&value)),
        DeploymentsCommand::Show { .. } => println!("{}", serde_json::to_string_pretty(&value)?),
        DeploymentsCommand::Render { .. } => {
            for m in value["prompt"]["messages"].as_array().into_iter().flatten() {
                println!(
                    "[{}]\n{}\n",
                    m["role"].as_str().unwrap_or("?"),
                    m["content"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(0)
}

/// `promptd deployments list`: the directory's and folders' errors, then one row per file
/// (a file that never loaded has version `-`), each file's error on the line under its row.
fn deployment_list(value: &Value) -> String {
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

async fn logs(command: LogsCommand) -> anyhow::Result<i32> {
    let (target, method, path) = match &command {
        LogsCommand::Status(target) => (target, Method::GET, "/logs/status"),
        LogsCommand::Flush(target) => (target, Method::POST, "/logs/flush"),
    };
    let client = DaemonClient::new(&socket_of(target)?);
    let (status, body) = client.call(method, path, None).await?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!("promptd: {status}: {}", error_message(&body));
        return Ok(1);
    }
    match command {
        LogsCommand::Flush(_) => println!("flush requested"),
        LogsCommand::Status(_) => {
            let Value::Object(map) = &value else {
                bail!("unexpected answer: {}", String::from_utf8_lossy(&body));
            };
            println!("{}", shipping_summary(&value, chrono::Utc::now()));
            for (name, v) in map {
                if !v.is_null() && !SHIPPING_KEYS.contains(&name.as_str()) {
                    println!(
                        "{name:<24} {}",
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    );
                }
            }
        }
    }
    Ok(0)
}

/// The fields of `/logs/status` that [`shipping_summary`] tells; the others are listed as
/// they come.
const SHIPPING_KEYS: &[&str] = &[
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
fn shipping_summary(status: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
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

async fn cache(command: CacheCommand) -> anyhow::Result<i32> {
    let (target, method, path) = match &command {
        CacheCommand::Stats(target) => (target, Method::GET, "/cache/stats".to_owned()),
        CacheCommand::Purge { target, key: None } => (target, Method::DELETE, "/cache".to_owned()),
        CacheCommand::Purge {
            target,
            key: Some(key),
        } => {
            // Checked here: anything else would not even make a valid request path.
            let Some(key) = promptd::cache::CacheKey::from_hex(key) else {
                bail!("`{key}` is not a cache key (64 hex digits, as in x-promptd-cache-key)");
            };
            (target, Method::DELETE, format!("/cache/{}", key.to_hex()))
        }
    };
    let client = DaemonClient::new(&socket_of(target)?);
    let (status, body) = client.call(method, &path, None).await?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!("promptd: {status}: {}", error_message(&body));
        return Ok(1);
    }
    match command {
        CacheCommand::Stats(_) => {
            let Value::Object(map) = value else {
                bail!("unexpected answer: {}", String::from_utf8_lossy(&body));
            };
            for (name, v) in map {
                println!("{name:<14} {v}");
            }
        }
        CacheCommand::Purge { .. } => {
            println!("deleted {}", counted(&value["deleted"], "entry", "entries"))
        }
    }
    Ok(0)
}

fn request_body(args: &CompleteArgs) -> anyhow::Result<Value> {
    let mut config = Map::new();
    if let Some(m) = &args.model {
        config.insert("model".into(), json!(m));
    }
    if let Some(p) = &args.provider {
        config.insert("provider".into(), json!(p));
    }
    let mut params = Map::new();
    if let Some(t) = args.temp {
        params.insert("temp".into(), json!(t));
    }
    if let Some(n) = args.max_tokens {
        params.insert("max_length".into(), json!(n));
    }
    if !params.is_empty() {
        config.insert("model_params".into(), Value::Object(params));
    }
    // Before reading stdin: a request that cannot be sent must not wait for input first.
    if args.deployment.is_none() && (args.model.is_none() || args.provider.is_none()) {
        bail!("give --model and --provider, or --deployment");
    }
    let text = match args.text.as_deref() {
        Some("-") => Some(read_stdin()?),
        Some(t) => Some(t.to_owned()),
        None if args.deployment.is_none() => Some(read_stdin()?),
        None => None,
    };
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    if let Some(text) = text {
        messages.push(json!({"role": "user", "content": text}));
    }
    if !messages.is_empty() {
        config.insert("messages".into(), Value::Array(messages));
    }
    let mut body = Map::new();
    body.insert("llm_configuration".into(), Value::Object(config));
    if args.no_cache {
        body.insert("cache".into(), json!(false));
    }
    if let Some(d) = &args.deployment {
        body.insert("deployment_id".into(), json!(d));
    }
    if !args.inputs.is_empty() {
        let inputs: Map<String, Value> = args
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        body.insert("llm_inputs".into(), Value::Object(inputs));
    }
    Ok(Value::Object(body))
}

/// The message on standard input, without the line end that `echo` or an editor puts after it.
fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the message from standard input")?;
    Ok(without_final_line_end(text))
}

/// `text` without one trailing `\n` or `\r\n`; anything before it (blank lines too) stays.
fn without_final_line_end(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

async fn complete(args: CompleteArgs, stream: bool) -> anyhow::Result<i32> {
    let body = Bytes::from(serde_json::to_vec(&request_body(&args)?)?);
    let client = DaemonClient::new(&socket_of(&args.target)?);
    if !stream {
        let (status, bytes) = client
            .call(
                Method::POST,
                &format!("{PAREA_PREFIX}/completion"),
                Some(body),
            )
            .await?;
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        if !status.is_success() {
            eprintln!("promptd: {status}: {}", error_message(&bytes));
            return Ok(1);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            println!("{}", value["content"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let response = client
        .send(
            Method::POST,
            &format!("{PAREA_PREFIX}/completion/stream"),
            Some(body),
        )
        .await?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = http_body_util::BodyExt::collect(body).await?.to_bytes();
        eprintln!("promptd: {status}: {}", error_message(&bytes));
        return Ok(1);
    }
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut out = std::io::stdout().lock();
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        parser.feed(&data, &mut events);
        for event in events.drain(..) {
            if event.data.starts_with("ID_START") {
                continue;
            }
            let value: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if let Some(error) = value.get("error").and_then(Value::as_str) {
                writeln!(out)?;
                eprintln!("promptd: stream failed: {error}");
                return Ok(1);
            }
            write!(out, "{}", value["chunk"].as_str().unwrap_or_default())?;
            out.flush()?;
        }
    }
    writeln!(out)?;
    Ok(0)
}

/// `n` with the noun in the number it takes: "1 entry", "0 entries", "2 entries".
fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// [`count`] of a number in a daemon's answer; a missing one (an older daemon) is `?`.
fn counted(value: &Value, one: &str, many: &str) -> String {
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
fn error_message(body: &[u8]) -> String {
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
    fn one_final_line_end_is_dropped() {
        let cases = [
            ("hi\n", "hi"),
            ("hi\r\n", "hi"),
            ("hi", "hi"),
            ("hi\n\n", "hi\n"),
            ("hi\r\n\r\n", "hi\r\n"),
            ("hi\r", "hi\r"),
            (" a\n b \n", " a\n b "),
            ("\n", ""),
            ("", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(
                without_final_line_end(text.to_owned()),
                expected,
                "{text:?}"
            );
        }
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
