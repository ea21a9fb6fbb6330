//! The subcommands that talk to a running daemon over its socket: `complete` and `stream`,
//! `health`, `socket` (where they connect), `status`, `cache`, `deployments`, `logs`. Each
//! sends one request and prints the answer (through [`super::render`] where it needs words),
//! or the error answer's message with exit code 1.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Map, Value};

use promptd::client::DaemonClient;
use promptd::config::{default_socket, Config, Overrides};
use promptd::providers::sse::SseParser;
use promptd::server::PAREA_PREFIX;

use super::args::{
    CacheCommand, CompleteArgs, DeploymentsCommand, LogsCommand, SocketArg, StatusArgs,
};
use super::render::{counted, deployment_list, error_message, shipping_summary, SHIPPING_KEYS};

/// The socket to connect to, refused when its directory is another user's to tamper with
/// (whoever listens there would read the request and write the answer).
pub(super) fn socket_of(target: &SocketArg) -> anyhow::Result<PathBuf> {
    let socket = socket_path(target)?;
    promptd::server::socket_dir::check(&socket)?;
    Ok(socket)
}

/// The socket `target` names, unchecked (what `promptd socket` prints).
pub(super) fn socket_path(target: &SocketArg) -> anyhow::Result<PathBuf> {
    if let Some(socket) = &target.socket {
        return Ok(socket.clone());
    }
    match &target.config {
        Some(path) => Ok(Config::load(Some(path), &Overrides::default())?.socket),
        None => Ok(default_socket()),
    }
}

pub(super) async fn complete(args: CompleteArgs, stream: bool) -> anyhow::Result<i32> {
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
        parser.feed(&data, &mut events)?;
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

pub(super) async fn health(args: SocketArg) -> anyhow::Result<i32> {
    let client = DaemonClient::new(&socket_of(&args)?);
    let (status, body) = client.call(Method::GET, "/health", None).await?;
    println!("{}", String::from_utf8_lossy(&body));
    Ok(if status.is_success() { 0 } else { 1 })
}

pub(super) async fn status(args: StatusArgs) -> anyhow::Result<i32> {
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

pub(super) async fn cache(command: CacheCommand) -> anyhow::Result<i32> {
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

pub(super) async fn deployments(command: DeploymentsCommand) -> anyhow::Result<i32> {
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

pub(super) async fn logs(command: LogsCommand) -> anyhow::Result<i32> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
