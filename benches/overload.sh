#!/usr/bin/env bash
# Overload: a real promptd with IDLE idle keep-alive connections and STREAMS streams from a
# slow fake provider (examples/fake_provider.rs --chunk-gap-ms) open at once, while
# examples/overload_client.rs times GET /health on fresh connections. Prints /health p50/p99/max
# per phase, and promptd's RSS and open file descriptors before, at the peak, and after the
# clients have gone. See benches/README.md.
#
# Env: IDLE (default 1000), STREAMS (default 1000), HOLD_SECS (time everything stays open,
# default 15), STREAM_SECS (length of one stream, default 30, so the clients leave mid-stream),
# CHUNK_MS (pause between a stream's events, default 100), HEALTH_EVERY_MS (default 5),
# AFTER_SECS (seconds after the clients close before the "after" sample, default 5),
# READ_FULL=1 (read every stream to its end before closing), SKIP_BUILD=1 (reuse the release
# binaries), PROMPTD_BIN=path (measure another promptd binary), KEEP_TMP=1 (keep the temp dir:
# the config, the logs, watch.jsonl with a sample of promptd every 250 ms).
set -euo pipefail

IDLE="${IDLE:-1000}"
STREAMS="${STREAMS:-1000}"
HOLD_SECS="${HOLD_SECS:-15}"
STREAM_SECS="${STREAM_SECS:-30}"
CHUNK_MS="${CHUNK_MS:-100}"
HEALTH_EVERY_MS="${HEALTH_EVERY_MS:-5}"
AFTER_SECS="${AFTER_SECS:-5}"
READ_FULL="${READ_FULL:-0}"

cd "$(dirname "$0")/.."
ROOT="$PWD"

die() { echo "overload.sh: $*" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 || die "needs cargo"
command -v python3 >/dev/null 2>&1 || die "needs python3"

# A stream is CHUNKS chunk events (role, deltas, finish, usage) and [DONE], one every CHUNK_MS.
(( CHUNK_MS > 0 )) || die "CHUNK_MS must be at least 1"
CHUNKS=$(( STREAM_SECS * 1000 / CHUNK_MS ))
(( CHUNKS >= 4 )) || die "STREAM_SECS too short for CHUNK_MS"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --bin promptd --example fake_provider --example overload_client
fi
PROMPTD="${PROMPTD_BIN:-$ROOT/target/release/promptd}"
FAKE="$ROOT/target/release/examples/fake_provider"
CLIENT="$ROOT/target/release/examples/overload_client"
[[ -x "$PROMPTD" && -x "$FAKE" && -x "$CLIENT" ]] || die "release binaries missing (run without SKIP_BUILD)"

# --- file descriptors ----------------------------------------------------------------------
# The client holds IDLE + STREAMS sockets plus its health checks; promptd as many plus one
# upstream connection per stream (it raises its own soft limit to the hard one); the fake one
# per stream. All three inherit this shell's limit.
NEED=$(( IDLE + 2 * STREAMS + 512 ))
SOFT="$(ulimit -Sn)"
HARD="$(ulimit -Hn)"
if [[ "$SOFT" != unlimited ]] && (( SOFT < NEED )); then
    if [[ "$HARD" == unlimited ]] || (( HARD >= NEED )); then
        ulimit -Sn "$NEED"
        echo "overload.sh: raised the soft fd limit from $SOFT to $NEED" >&2
    else
        die "needs $NEED file descriptors but the hard limit is $HARD: raise it (limits.conf, LimitNOFILE=) or lower IDLE/STREAMS"
    fi
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/promptd-overload.XXXXXX")"
FAKE_PID=""
PROMPTD_PID=""
WATCH_PID=""
cleanup() {
    local pid
    for pid in "$WATCH_PID" "$PROMPTD_PID" "$FAKE_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        echo "overload.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the /proc sampler and the report --------------------------------------------------------
cat >"$TMP/procs.py" <<'EOF'
"""Samples of a process's memory and file descriptors (sockets split into unix, tcp, other),
and the report of an overload run."""
import json, os, sys, time

def inodes(path, col):
    found = set()
    try:
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) > col:
                    found.add(parts[col])
    except OSError:
        pass
    return found

def sample(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    sockets = [l[8:-1] for l in links if l.startswith("socket:[")]
    unix = inodes("/proc/net/unix", 6)
    tcp = inodes("/proc/net/tcp", 9) | inodes("/proc/net/tcp6", 9)
    n_unix = sum(1 for s in sockets if s in unix)
    n_tcp = sum(1 for s in sockets if s in tcp)
    return {
        "t": time.time(),
        "rss_kb": int(status["VmRSS"][0]),
        "hwm_kb": int(status["VmHWM"][0]),
        "threads": int(status["Threads"][0]),
        "fds": len(links),
        "unix": n_unix,
        "tcp": n_tcp,
        "other": len(links) - n_unix - n_tcp,
    }

def watch(pid, out, stop):
    with open(out, "w") as f:
        while not os.path.exists(stop):
            try:
                f.write(json.dumps(sample(pid)) + "\n")
                f.flush()
            except OSError:
                return
            time.sleep(0.25)

def report(before, watched, after, client, settings):
    with open(before) as f:
        before = json.loads(f.read())
    with open(after) as f:
        after = json.loads(f.read())
    samples = []
    with open(watched) as f:
        for line in f:
            if line.strip():
                samples.append(json.loads(line))
    with open(client) as f:
        c = json.loads(f.read().strip().splitlines()[-1])
    s = json.loads(settings)
    mib = lambda kb: kb / 1024.0
    peak_fds = max(samples, key=lambda x: x["fds"]) if samples else before
    peak_rss = max(samples, key=lambda x: x["rss_kb"]) if samples else before

    print(f"overload: {s['idle']} idle + {s['streams']} streaming connections to promptd "
          f"(streams of ~{s['stream_secs']} s, an event every {s['chunk_ms']} ms, cache off), "
          f"held {s['hold_secs']} s{', streams read to their end' if s['read_full'] else ''}")
    print()
    print("GET /health on a fresh connection, one at a time, every "
          f"{s['health_every_ms']} ms (connect to last byte)")
    print(f"{'phase':<24} {'n':>6} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    names = [("quiet", "quiet (nothing open)"), ("ramp", "ramp (opening)"),
             ("hold", "hold (all open)"), ("under_load", "ramp + hold"),
             ("after", "after close")]
    for key, label in names:
        h = c["health"][key]
        print(f"{label:<24} {h['n']:>6} {h['errors']:>6} {h['p50_ms']:>8.2f} "
              f"{h['p99_ms']:>8.2f} {h['max_ms']:>8.2f}")
    ramp = c["phases"].get("ramp", [0, 0])
    print(f"(ramp took {ramp[1] - ramp[0]:.1f} s, {c['connect_retries']} connects retried "
          "on a full backlog)")
    print()
    print(f"{'promptd':<28} {'RSS MiB':>8} {'fds':>6} {'unix':>6} {'tcp':>6} {'other':>6} {'threads':>7}")
    def row(label, x, rss=None):
        print(f"{label:<28} {mib(x['rss_kb'] if rss is None else rss):>8.1f} {x['fds']:>6} "
              f"{x['unix']:>6} {x['tcp']:>6} {x['other']:>6} {x['threads']:>7}")
    row("before", before)
    row("peak fds", peak_fds)
    row("peak RSS", peak_rss)
    row(f"after ({after['t'] - c['closed_at']:.0f} s after close)", after)
    print(f"{'VmHWM (peak RSS, kernel)':<28} {mib(after['hwm_kb']):>8.1f}")
    conns = s["idle"] + s["streams"]
    if conns:
        print(f"(peak RSS - before: {(peak_rss['rss_kb'] - before['rss_kb']) / conns:.1f} KiB "
              "per connection)")
    print()
    print(f"connections: idle {c['idle_opened']}/{c['idle']} opened, "
          f"{c['idle_closed_by_daemon']} closed by the daemon during the hold; "
          f"streams {c['streams_opened']}/{c['streams']} opened, "
          f"{c['streams_completed_before_close']} ended before the close, "
          f"{c['stream_read_errors']} read errors, {c['stream_bytes'] / 1e6:.1f} MB read")
    if c.get("first_error"):
        print(f"first connection error: {c['first_error']}")
    if c.get("first_health_error"):
        print(f"first health error: {c['first_health_error']}")
    load = c["health"]["under_load"]
    # Upstream (tcp) connections of streams that ended cleanly stay in the provider's pool
    # until they have been idle for 90 s (checked every 90 s): the pool's, not the clients'.
    leaked = (after["fds"] - after["tcp"]) - (before["fds"] - before["tcp"])
    pooled = after["tcp"] - before["tcp"]
    print()
    print(f"target /health p99 < 50 ms under load: {load['p99_ms']:.2f} ms, "
          f"{'met' if load['p99_ms'] < 50 and load['errors'] == 0 else 'NOT met'}")
    print(f"target no fd left behind: {leaked:+d} fds after vs before besides upstream "
          f"connections, {'met' if leaked <= 0 else 'NOT met'}; upstream connections "
          f"{pooled:+d}" + (" (idle in the provider's pool: closed once idle 90 s, "
          "within 180 s)" if pooled > 0 else ""))
    failed = c["idle_open_errors"] or c["stream_open_errors"] or c["stream_read_errors"]
    return 1 if failed else 0

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "sample":
        print(json.dumps(sample(sys.argv[2])))
    elif mode == "watch":
        watch(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(report(*sys.argv[2:7]))
EOF

# --- fake provider -----------------------------------------------------------------------------
"$FAKE" --addr 127.0.0.1:0 --chunk-gap-ms "$CHUNK_MS" --stream-chunks "$CHUNKS" \
    >"$TMP/fake.out" 2>"$TMP/fake.err" &
FAKE_PID=$!
for _ in $(seq 100); do
    grep -q '^listening on ' "$TMP/fake.out" 2>/dev/null && break
    kill -0 "$FAKE_PID" 2>/dev/null || die "fake_provider exited: $(cat "$TMP/fake.err")"
    sleep 0.05
done
FAKE_ADDR="$(sed -n 's/^listening on //p' "$TMP/fake.out" | head -n1)"
[[ -n "$FAKE_ADDR" ]] || die "fake_provider did not report its address"

# --- promptd -----------------------------------------------------------------------------------
SOCK="$TMP/promptd.sock"
MAX_CONNECTIONS=$(( IDLE + STREAMS + 64 > 4096 ? IDLE + STREAMS + 64 : 4096 ))
mkdir -p "$TMP/state" "$TMP/prompts"
# max_concurrent: every stream is its own provider call (the default of 256 would queue the
# rest and answer them 503 provider_busy after queue_timeout).
cat >"$TMP/promptd.toml" <<EOF
socket = "$SOCK"
state_dir = "$TMP/state"
prompts_dir = "$TMP/prompts"
log_level = "warn"
max_connections = $MAX_CONNECTIONS

[upstream]
base_url = ""

[providers.openai]
kind = "openai"
base_url = "http://$FAKE_ADDR/v1"
api_key = "sk-bench"
max_retries = 0
max_concurrent = $(( STREAMS + 16 ))
EOF
"$PROMPTD" serve --config "$TMP/promptd.toml" >"$TMP/promptd.log" 2>&1 &
PROMPTD_PID=$!
for _ in $(seq 200); do
    [[ -S "$SOCK" ]] && break
    kill -0 "$PROMPTD_PID" 2>/dev/null || die "promptd exited: $(cat "$TMP/promptd.log")"
    sleep 0.05
done
[[ -S "$SOCK" ]] || die "promptd socket $SOCK did not appear"

# A request over the socket: METHOD PATH [BODY]; prints the answer's body, fails unless 200.
request() {
    python3 - "$SOCK" "$@" <<'EOF'
import socket, sys
sock, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else b""
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
data = b""
while chunk := s.recv(65536):
    data += chunk
head, _, rest = data.partition(b"\r\n\r\n")
sys.stdout.write(rest.decode(errors="replace"))
sys.exit(0 if head.startswith(b"HTTP/1.1 200") else 1)
EOF
}

# One completion first, so that what promptd opens lazily on its first one (the log spool's
# segment, its first pooled upstream connection) counts in its baseline.
request POST /api/parea/v1/completion \
    '{"llm_configuration":{"model":"gpt-4o-mini","provider":"openai","messages":[{"role":"user","content":"Hello"}]},"cache":false}' \
    >"$TMP/warmup.out" || die "warm-up completion failed: $(cat "$TMP/warmup.out")"
sleep 1
python3 "$TMP/procs.py" sample "$PROMPTD_PID" >"$TMP/before.json"

python3 "$TMP/procs.py" watch "$PROMPTD_PID" "$TMP/watch.jsonl" "$TMP/stop" &
WATCH_PID=$!
CLIENT_ARGS=(--socket "$SOCK" --idle "$IDLE" --streams "$STREAMS" --hold-secs "$HOLD_SECS"
    --health-every-ms "$HEALTH_EVERY_MS" --after-secs "$AFTER_SECS")
[[ "$READ_FULL" == 1 ]] && CLIENT_ARGS+=(--read-full)
echo "overload.sh: $IDLE idle + $STREAMS streaming connections for ${HOLD_SECS}s..." >&2
client_rc=0
"$CLIENT" "${CLIENT_ARGS[@]}" >"$TMP/client.json" 2> >(tee "$TMP/client.err" >&2) || client_rc=$?
python3 "$TMP/procs.py" sample "$PROMPTD_PID" >"$TMP/after.json"
touch "$TMP/stop"
wait "$WATCH_PID" 2>/dev/null || true
WATCH_PID=""
kill -0 "$PROMPTD_PID" 2>/dev/null || die "promptd died during the run: $(tail -n 20 "$TMP/promptd.log")"
(( client_rc == 0 )) || die "overload_client failed ($client_rc)"

SETTINGS="$(printf '{"idle":%d,"streams":%d,"stream_secs":%d,"chunk_ms":%d,"hold_secs":%d,"health_every_ms":%d,"read_full":%s}' \
    "$IDLE" "$STREAMS" "$STREAM_SECS" "$CHUNK_MS" "$HOLD_SECS" "$HEALTH_EVERY_MS" \
    "$([[ "$READ_FULL" == 1 ]] && echo true || echo false)")"
status=0
python3 "$TMP/procs.py" report "$TMP/before.json" "$TMP/watch.jsonl" "$TMP/after.json" \
    "$TMP/client.json" "$SETTINGS" || status=$?
echo
echo "promptd's answers by route and status:"
request GET /metrics | grep '^promptd_requests_total{' | sed 's/^/  /' || true
if grep -v '^$' "$TMP/promptd.log" | grep -q .; then
    echo
    echo "promptd's log (warnings and errors, last 10 lines):"
    tail -n 10 "$TMP/promptd.log"
fi
exit "$status"
