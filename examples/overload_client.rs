//! The load of `benches/overload.sh`: many connections held open against a running promptd,
//! while `GET /health` is timed on fresh connections.
//!
//! `cargo run --release --example overload_client -- --socket PATH [--idle N] [--streams M]
//! [--hold-secs S] [--quiet-secs Q] [--after-secs A] [--health-every-ms MS]
//! [--ramp-concurrency C] [--read-delay-ms D] [--read-full]`
//!
//! Phases, each timed on the wall clock (the report gives their bounds in Unix seconds, so a
//! script sampling the daemon's `/proc` entries can place its samples):
//!
//! 1. `quiet`: `--quiet-secs` (default 2) of health checks with nothing else open;
//! 2. `ramp`: `--idle` connections (default 1000) each ask `GET /health` once and then stay
//!    open without a word (a keep-alive connection at rest), and `--streams` connections
//!    (default 1000) each `POST /api/parea/v1/completion/stream` with `cache: false` (every
//!    stream is its own provider call) and read the events as they come, after a pause of
//!    `--read-delay-ms` between reads (default 0); at most `--ramp-concurrency` (default 64)
//!    are being opened at once. The phase ends when every connection is open (its first answer
//!    head read) or has failed;
//! 3. `hold`: `--hold-secs` (default 15) with everything open; with `--read-full`, then until
//!    every stream has ended by itself;
//! 4. `after`: every connection is closed at once (streams mid-way unless they have ended),
//!    then `--after-secs` (default 3) of health checks.
//!
//! Health checks run on their own thread and runtime, one at a time, every
//! `--health-every-ms` (default 5): connect, `GET /health` with `Connection: close`, read to
//! the end; the time from connect to the last byte is the sample, an answer that is not a 200
//! or takes over 10 s is an error. Progress goes to stderr; stdout gets one JSON object (the
//! per-phase percentiles, the connection counts, the phase bounds).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, Semaphore};

const USAGE: &str = "usage: overload_client --socket PATH [--idle N] [--streams M] \
    [--hold-secs S] [--quiet-secs Q] [--after-secs A] [--health-every-ms MS] \
    [--ramp-concurrency C] [--read-delay-ms D] [--read-full]";

/// A health check slower than this counts as an error.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Opening one connection (connect, request, answer head) longer than this is a failure.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// With `--read-full`, the longest wait for the streams to end by themselves.
const READ_FULL_MAX: Duration = Duration::from_secs(300);
/// A full listen backlog makes a Unix-socket connect fail with EAGAIN: retried this often,
/// this far apart.
const CONNECT_TRIES: u32 = 1000;
const CONNECT_PAUSE: Duration = Duration::from_millis(5);
/// File descriptors the client needs beyond its connections (health checks, stdio, runtime).
const SPARE_FDS: u64 = 64;

const STREAM_BODY: &str = r#"{"llm_configuration":{"model":"gpt-4o-mini","provider":"openai","messages":[{"role":"user","content":"Hello"}]},"cache":false}"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Phase {
    Quiet = 0,
    Ramp = 1,
    Hold = 2,
    After = 3,
    Done = 4,
}

const PHASES: [Phase; 4] = [Phase::Quiet, Phase::Ramp, Phase::Hold, Phase::After];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Quiet => "quiet",
            Phase::Ramp => "ramp",
            Phase::Hold => "hold",
            Phase::After => "after",
            Phase::Done => "done",
        }
    }

    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Quiet,
            1 => Phase::Ramp,
            2 => Phase::Hold,
            3 => Phase::After,
            _ => Phase::Done,
        }
    }
}

struct Options {
    socket: PathBuf,
    idle: usize,
    streams: usize,
    quiet: Duration,
    hold: Duration,
    after: Duration,
    health_every: Duration,
    ramp_concurrency: usize,
    read_delay: Duration,
    read_full: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut socket = None;
    let mut o = Options {
        socket: PathBuf::new(),
        idle: 1000,
        streams: 1000,
        quiet: Duration::from_secs(2),
        hold: Duration::from_secs(15),
        after: Duration::from_secs(3),
        health_every: Duration::from_millis(5),
        ramp_concurrency: 64,
        read_delay: Duration::ZERO,
        read_full: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let mut number = |name: &str| -> Result<u64, String> {
            let v = value(name)?;
            v.parse().map_err(|e| format!("{name} {v}: {e}"))
        };
        match arg.as_str() {
            "--socket" => socket = Some(PathBuf::from(value("--socket")?)),
            "--idle" => o.idle = number("--idle")? as usize,
            "--streams" => o.streams = number("--streams")? as usize,
            "--quiet-secs" => o.quiet = Duration::from_secs(number("--quiet-secs")?),
            "--hold-secs" => o.hold = Duration::from_secs(number("--hold-secs")?),
            "--after-secs" => o.after = Duration::from_secs(number("--after-secs")?),
            "--health-every-ms" => {
                o.health_every = Duration::from_millis(number("--health-every-ms")?)
            }
            "--ramp-concurrency" => {
                o.ramp_concurrency = (number("--ramp-concurrency")? as usize).max(1)
            }
            "--read-delay-ms" => o.read_delay = Duration::from_millis(number("--read-delay-ms")?),
            "--read-full" => o.read_full = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    o.socket = socket.ok_or("--socket is required")?;
    Ok(o)
}

/// Seconds since the Unix epoch, for phase bounds a script can compare with its own clock.
fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Raise the soft fd limit to the hard one; an error names what is needed when even that is
/// too low.
fn ensure_fd_limit(needed: u64) -> Result<u64, String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    if soft < needed && soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|e| format!("setrlimit: {e}"))?;
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    if soft < needed {
        return Err(format!(
            "the file descriptor limit is {soft} (hard {hard}) but {needed} are needed: \
             raise it (ulimit -n) or open fewer connections"
        ));
    }
    Ok(soft)
}

/// Connect, retrying while the listen backlog is full (EAGAIN); counts the retries.
async fn connect(socket: &Path, retries: &AtomicU64) -> io::Result<UnixStream> {
    let mut tries = 0;
    loop {
        match UnixStream::connect(socket).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < CONNECT_TRIES => {
                tries += 1;
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(CONNECT_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Read until the end of a response head; returns the bytes read so far and the head's length.
async fn read_head(s: &mut UnixStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(at + 4);
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the answer's head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn status_of(head: &[u8]) -> u16 {
    String::from_utf8_lossy(head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn first_line(head: &[u8]) -> String {
    String::from_utf8_lossy(head)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// One health check on a fresh connection.
async fn health_once(socket: &Path) -> io::Result<()> {
    let retries = AtomicU64::new(0);
    let mut s = connect(socket, &retries).await?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::with_capacity(512);
    s.read_to_end(&mut answer).await?;
    match status_of(&answer) {
        200 => Ok(()),
        _ => Err(io::Error::other(format!(
            "health answered {:?}",
            first_line(&answer)
        ))),
    }
}

/// An idle connection: one `GET /health` answered (so the daemon has accepted and served it),
/// then nothing.
async fn open_idle(socket: &Path, retries: &AtomicU64) -> io::Result<UnixStream> {
    let mut s = connect(socket, retries).await?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut buf = Vec::with_capacity(512);
    let head_len = read_head(&mut s, &mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    if status_of(&buf) != 200 {
        return Err(io::Error::other(format!(
            "idle connection's health answered {:?}",
            first_line(&buf)
        )));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("health answer without content-length"))?;
    let mut chunk = [0u8; 1024];
    while buf.len() < head_len + length {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed mid-answer",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(s)
}

#[derive(Default)]
struct StreamStats {
    /// Streams that ended by themselves (the daemon closed the connection after the answer).
    completed: AtomicU64,
    /// Streams that failed after their head (a read error).
    errors: AtomicU64,
    bytes: AtomicU64,
}

/// One streaming request, opened while holding a permit of `gate`: `opened` gets the head's
/// verdict, then the events are read (with `read_delay` between reads) until the daemon ends
/// the stream.
async fn run_stream(
    socket: PathBuf,
    gate: Arc<Semaphore>,
    retries: Arc<AtomicU64>,
    read_delay: Duration,
    stats: Arc<StreamStats>,
    opened: oneshot::Sender<Result<(), String>>,
) {
    let permit = gate.acquire_owned().await;
    let open = async {
        let mut s = connect(&socket, &retries).await?;
        let request = format!(
            "POST /api/parea/v1/completion/stream HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{STREAM_BODY}",
            STREAM_BODY.len()
        );
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(4096);
        read_head(&mut s, &mut buf).await?;
        io::Result::Ok((s, buf))
    };
    let (mut s, buf) = match tokio::time::timeout(OPEN_TIMEOUT, open).await {
        Ok(Ok((s, buf))) if status_of(&buf) == 200 => (s, buf),
        Ok(Ok((_, buf))) => {
            let _ = opened.send(Err(format!("stream answered {:?}", first_line(&buf))));
            return;
        }
        Ok(Err(e)) => {
            let _ = opened.send(Err(format!("stream: {e}")));
            return;
        }
        Err(_) => {
            let _ = opened.send(Err(format!("stream: no answer head in {OPEN_TIMEOUT:?}")));
            return;
        }
    };
    drop(permit);
    let _ = opened.send(Ok(()));
    stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) => {
                stats.completed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(n) => {
                stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if !read_delay.is_zero() {
            tokio::time::sleep(read_delay).await;
        }
    }
}

/// Health samples: (phase, latency, ok).
type Samples = Arc<Mutex<Vec<(Phase, Duration, bool)>>>;

/// Time health checks one after the other on this thread's own runtime until the phase is
/// `Done`.
fn health_sampler(
    socket: PathBuf,
    every: Duration,
    phase: Arc<AtomicU8>,
    samples: Samples,
    first_error: Arc<Mutex<Option<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("overload_client: health runtime: {e}");
                return;
            }
        };
        runtime.block_on(async {
            loop {
                let now = Phase::from_u8(phase.load(Ordering::SeqCst));
                if now == Phase::Done {
                    return;
                }
                let started = Instant::now();
                let result = match tokio::time::timeout(HEALTH_TIMEOUT, health_once(&socket)).await
                {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::other(format!("no answer in {HEALTH_TIMEOUT:?}"))),
                };
                let took = started.elapsed();
                if let Err(e) = &result {
                    let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert_with(|| e.to_string());
                }
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((now, took, result.is_ok()));
                tokio::time::sleep(every).await;
            }
        });
    })
}

/// Percentile `q` (0..=1) of sorted `v`, nearest rank.
fn percentile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn summary(samples: &[(Phase, Duration, bool)], phases: &[Phase]) -> Value {
    let mut ok: Vec<Duration> = samples
        .iter()
        .filter(|(p, _, good)| *good && phases.contains(p))
        .map(|(_, d, _)| *d)
        .collect();
    ok.sort();
    let errors = samples
        .iter()
        .filter(|(p, _, good)| !*good && phases.contains(p))
        .count();
    json!({
        "n": ok.len(),
        "errors": errors,
        "p50_ms": ms(percentile(&ok, 0.50)),
        "p99_ms": ms(percentile(&ok, 0.99)),
        "max_ms": ms(ok.last().copied().unwrap_or_default()),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("overload_client: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let needed = (o.idle + o.streams) as u64 + SPARE_FDS;
    match ensure_fd_limit(needed) {
        Ok(limit) => eprintln!("overload_client: fd limit {limit} (needs {needed})"),
        Err(e) => {
            eprintln!("overload_client: {e}");
            std::process::exit(2);
        }
    }
    if let Err(e) = health_once(&o.socket).await {
        eprintln!(
            "overload_client: promptd at {} does not answer /health: {e}",
            o.socket.display()
        );
        std::process::exit(1);
    }

    let phase = Arc::new(AtomicU8::new(Phase::Quiet as u8));
    let samples: Samples = Arc::default();
    let health_error = Arc::new(Mutex::new(None));
    let mut bounds: Vec<(Phase, f64, f64)> = Vec::new();
    let sampler = health_sampler(
        o.socket.clone(),
        o.health_every,
        Arc::clone(&phase),
        Arc::clone(&samples),
        Arc::clone(&health_error),
    );
    let mut began = epoch();
    let mut enter = |next: Phase, bounds: &mut Vec<(Phase, f64, f64)>| {
        let now = epoch();
        let previous = Phase::from_u8(phase.swap(next as u8, Ordering::SeqCst));
        bounds.push((previous, began, now));
        began = now;
        if next != Phase::Done {
            eprintln!("overload_client: {}", next.name());
        }
    };

    eprintln!("overload_client: quiet");
    tokio::time::sleep(o.quiet).await;

    // --- ramp ---
    enter(Phase::Ramp, &mut bounds);
    let ramp_started = Instant::now();
    let retries = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(StreamStats::default());
    let gate = Arc::new(Semaphore::new(o.ramp_concurrency));
    let mut idle_opening = tokio::task::JoinSet::new();
    let mut stream_tasks = Vec::with_capacity(o.streams);
    let mut stream_heads = Vec::with_capacity(o.streams);
    for i in 0..o.idle.max(o.streams) {
        if i < o.idle {
            let (socket, retries, gate) =
                (o.socket.clone(), Arc::clone(&retries), Arc::clone(&gate));
            idle_opening.spawn(async move {
                let _permit = gate.acquire_owned().await;
                match tokio::time::timeout(OPEN_TIMEOUT, open_idle(&socket, &retries)).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::other(format!("not served in {OPEN_TIMEOUT:?}"))),
                }
            });
        }
        if i < o.streams {
            let (tx, rx) = oneshot::channel();
            stream_tasks.push(tokio::spawn(run_stream(
                o.socket.clone(),
                Arc::clone(&gate),
                Arc::clone(&retries),
                o.read_delay,
                Arc::clone(&stats),
                tx,
            )));
            stream_heads.push(rx);
        }
    }
    let mut idle = Vec::with_capacity(o.idle);
    let mut idle_errors = 0usize;
    let mut first_error: Option<String> = None;
    while let Some(joined) = idle_opening.join_next().await {
        match joined {
            Ok(Ok(s)) => idle.push(s),
            Ok(Err(e)) => {
                idle_errors += 1;
                first_error.get_or_insert_with(|| format!("idle: {e}"));
            }
            Err(e) => {
                idle_errors += 1;
                first_error.get_or_insert_with(|| format!("idle task: {e}"));
            }
        }
    }
    let mut streams_opened = 0usize;
    let mut stream_open_errors = 0usize;
    for head in stream_heads {
        match head.await {
            Ok(Ok(())) => streams_opened += 1,
            Ok(Err(e)) => {
                stream_open_errors += 1;
                first_error.get_or_insert(e);
            }
            Err(_) => {
                stream_open_errors += 1;
                first_error.get_or_insert_with(|| "a stream task ended".to_owned());
            }
        }
    }
    let ramp_took = ramp_started.elapsed();
    eprintln!(
        "overload_client: {} idle and {streams_opened} streams open in {:.1} s \
         ({idle_errors} + {stream_open_errors} failed, {} connect retries)",
        idle.len(),
        ramp_took.as_secs_f64(),
        retries.load(Ordering::Relaxed)
    );

    // --- hold ---
    enter(Phase::Hold, &mut bounds);
    tokio::time::sleep(o.hold).await;
    if o.read_full {
        let deadline = Instant::now() + READ_FULL_MAX;
        while stream_tasks.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // An idle connection the daemon closed reads EOF now; an open one has nothing to read.
    let mut idle_closed_by_daemon = 0usize;
    for s in &idle {
        let mut b = [0u8; 64];
        if s.try_read(&mut b).is_ok() {
            idle_closed_by_daemon += 1;
        }
    }
    let streams_completed = stats.completed.load(Ordering::Relaxed);
    let stream_errors = stats.errors.load(Ordering::Relaxed);

    // --- after: everything closed at once ---
    enter(Phase::After, &mut bounds);
    let closed_at = epoch();
    drop(idle);
    for task in &stream_tasks {
        task.abort();
    }
    for task in stream_tasks {
        let _ = task.await;
    }
    tokio::time::sleep(o.after).await;
    enter(Phase::Done, &mut bounds);
    let _ = sampler.join();

    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut health = serde_json::Map::new();
    for p in PHASES {
        health.insert(p.name().to_owned(), summary(&samples, &[p]));
    }
    health.insert(
        "under_load".to_owned(),
        summary(&samples, &[Phase::Ramp, Phase::Hold]),
    );
    let phases: serde_json::Map<String, Value> = bounds
        .iter()
        .map(|(p, from, to)| (p.name().to_owned(), json!([from, to])))
        .collect();
    let report = json!({
        "idle": o.idle,
        "streams": o.streams,
        "idle_opened": o.idle - idle_errors,
        "idle_open_errors": idle_errors,
        "idle_closed_by_daemon": idle_closed_by_daemon,
        "streams_opened": streams_opened,
        "stream_open_errors": stream_open_errors,
        "streams_completed_before_close": streams_completed,
        "stream_read_errors": stream_errors,
        "stream_bytes": stats.bytes.load(Ordering::Relaxed),
        "connect_retries": retries.load(Ordering::Relaxed),
        "ramp_secs": ramp_took.as_secs_f64(),
        "closed_at": closed_at,
        "first_error": first_error,
        "first_health_error": health_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        "phases": phases,
        "health": health,
    });
    println!("{report}");
}
