#!/usr/bin/env bash
# Whole-daemon load test: the fake OpenAI server (examples/fake_provider.rs, zero delay) hit
# directly over loopback TCP, and through promptd over its Unix socket, at 1 and 32 connections,
# in the same run. Prints req/s, p50, p99 and the ratios promptd vs direct. See benches/README.md.
# `floor` is the fake answering its static body over a Unix socket: what a hyper server that
# does no work at all reaches on this machine, the baseline for cache hits (same transport).
#
# Env: DURATION (default 10s per scenario), CONNS (default "1 32"), DELAY_MS (fake provider
# delay, default 0), SKIP_BUILD=1 to reuse the existing release binaries, PROMPTD_BIN=path to
# measure another promptd binary.
set -euo pipefail

DURATION="${DURATION:-10s}"
CONNS="${CONNS:-1 32}"
DELAY_MS="${DELAY_MS:-0}"

cd "$(dirname "$0")/.."
ROOT="$PWD"

die() { echo "load.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "needs $1"; }
need cargo
need curl
need python3

if ! command -v oha >/dev/null 2>&1; then
    echo "oha not found; installing it with cargo (takes a few minutes)..." >&2
    cargo install oha --locked
    export PATH="$HOME/.cargo/bin:$PATH"
fi

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --bin promptd --example fake_provider
fi
# PROMPTD_BIN: another build of promptd to measure (e.g. an older commit's, for a before/after).
PROMPTD="${PROMPTD_BIN:-$ROOT/target/release/promptd}"
FAKE="$ROOT/target/release/examples/fake_provider"
[[ -x "$PROMPTD" && -x "$FAKE" ]] || die "release binaries missing (run without SKIP_BUILD)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/promptd-bench.XXXXXX")"
FAKE_PID=""
PROMPTD_PID=""
cleanup() {
    local pid
    for pid in "$PROMPTD_PID" "$FAKE_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- fake provider -----------------------------------------------------------------------------
"$FAKE" --addr 127.0.0.1:0 --delay-ms "$DELAY_MS" --unix "$TMP/fake.sock" >"$TMP/fake.out" 2>"$TMP/fake.err" &
FAKE_PID=$!
for _ in $(seq 100); do
    grep -q '^listening on ' "$TMP/fake.out" 2>/dev/null && break
    kill -0 "$FAKE_PID" 2>/dev/null || die "fake_provider exited: $(cat "$TMP/fake.err")"
    sleep 0.05
done
FAKE_ADDR="$(sed -n 's/^listening on //p' "$TMP/fake.out" | head -n1)"
[[ -n "$FAKE_ADDR" ]] || die "fake_provider did not report its address"
DIRECT_URL="http://$FAKE_ADDR/v1/chat/completions"
FLOOR_URL="http://localhost/v1/chat/completions"

# --- promptd -----------------------------------------------------------------------------------
SOCK="$TMP/promptd.sock"
mkdir -p "$TMP/state" "$TMP/prompts"
cat >"$TMP/promptd.toml" <<EOF
socket = "$SOCK"
state_dir = "$TMP/state"
prompts_dir = "$TMP/prompts"
log_level = "warn"

[providers.openai]
kind = "openai"
base_url = "http://$FAKE_ADDR/v1"
api_key = "sk-bench"
max_retries = 0
EOF
"$PROMPTD" serve --config "$TMP/promptd.toml" >"$TMP/promptd.log" 2>&1 &
PROMPTD_PID=$!
for _ in $(seq 200); do
    [[ -S "$SOCK" ]] && break
    kill -0 "$PROMPTD_PID" 2>/dev/null || die "promptd exited: $(cat "$TMP/promptd.log")"
    sleep 0.05
done
[[ -S "$SOCK" ]] || die "promptd socket $SOCK did not appear"
PROMPTD_URL="http://localhost/api/parea/v1/completion"

OPENAI_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
PAREA_BODY='{"llm_configuration":{"model":"gpt-4o-mini","provider":"openai","messages":[{"role":"user","content":"Hello"}]},"cache":false}'
# The same request with the cache on: after one priming call, every request is a cache hit.
HIT_BODY='{"llm_configuration":{"model":"gpt-4o-mini","provider":"openai","messages":[{"role":"user","content":"Hello"}]}}'

# --- smoke checks: both paths must answer 200 with the content -----------------------------------
check() { # name, body file, status
    local name="$1" out="$2" status="$3"
    if [[ "$status" != 200 ]] || ! grep -q 'Hello! How can I help you today?' "$out"; then
        echo "load.sh: $name smoke request failed: HTTP $status" >&2
        cat "$out" >&2; echo >&2
        [[ "$name" == promptd ]] && tail -n 20 "$TMP/promptd.log" >&2
        exit 1
    fi
}
status="$(curl -sS -o "$TMP/direct.smoke" -w '%{http_code}' -X POST \
    -H 'content-type: application/json' -d "$OPENAI_BODY" "$DIRECT_URL")"
check direct "$TMP/direct.smoke" "$status"
status="$(curl -sS -o "$TMP/promptd.smoke" -w '%{http_code}' --unix-socket "$SOCK" -X POST \
    -H 'content-type: application/json' -d "$PAREA_BODY" "$PROMPTD_URL")"
check promptd "$TMP/promptd.smoke" "$status"
status="$(curl -sS -o "$TMP/hit.smoke" -w '%{http_code}' --unix-socket "$SOCK" -X POST \
    -H 'content-type: application/json' -d "$HIT_BODY" "$PROMPTD_URL")"
check promptd "$TMP/hit.smoke" "$status"

# --- load --------------------------------------------------------------------------------------
# -w: wait for in-flight requests at the deadline instead of counting them as errors.
# Older oha spells the JSON flag -j/--json; newer ones --output-format json.
if oha --help 2>&1 | grep -q -- '--output-format'; then
    OHA_JSON=(--output-format json)
else
    OHA_JSON=(--json)
fi

# CPU time (user + system, clock ticks) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name, conns, extra args...
    local name="$1" conns="$2"; shift 2
    echo "running $name at $conns connection(s) for $DURATION..." >&2
    local p0 f0
    metrics >"$TMP/$name-$conns.metrics0"
    p0="$(ticks "$PROMPTD_PID")"; f0="$(ticks "$FAKE_PID")"
    oha -z "$DURATION" -w -c "$conns" --no-tui "${OHA_JSON[@]}" -m POST \
        -H 'content-type: application/json' "$@" >"$TMP/$name-$conns.json"
    echo "$(( $(ticks "$PROMPTD_PID") - p0 )) $(( $(ticks "$FAKE_PID") - f0 ))" >"$TMP/$name-$conns.cpu"
    metrics >"$TMP/$name-$conns.metrics1"
}
# promptd's own request-duration histogram (request read -> response headers), completions only.
metrics() {
    curl -sS --unix-socket "$SOCK" http://localhost/metrics |
        grep '^promptd_request_duration_seconds_bucket{.*route="completion"' || true
}
for c in $CONNS; do
    run direct "$c" -d "$OPENAI_BODY" "$DIRECT_URL"
    run floor "$c" -d "$OPENAI_BODY" --unix-socket "$TMP/fake.sock" "$FLOOR_URL"
    run promptd "$c" -d "$PAREA_BODY" --unix-socket "$SOCK" "$PROMPTD_URL"
    run hit "$c" -d "$HIT_BODY" --unix-socket "$SOCK" "$PROMPTD_URL"
done
RSS_KB="$(awk '/^VmRSS:/ {print $2}' "/proc/$PROMPTD_PID/status")"
HWM_KB="$(awk '/^VmHWM:/ {print $2}' "/proc/$PROMPTD_PID/status")"

# --- report ------------------------------------------------------------------------------------
python3 - "$TMP" "$CONNS" "$RSS_KB" "$HWM_KB" "$(getconf CLK_TCK)" <<'EOF'
import json, sys

tmp, conns, rss_kb, hwm_kb = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4])
clk_tck = int(sys.argv[5])

def load(name, c):
    with open(f"{tmp}/{name}-{c}.json") as f:
        d = json.load(f)
    s = d["summary"]
    pct = d.get("latencyPercentiles") or d.get("latency_percentiles") or {}
    codes = d.get("statusCodeDistribution", {})
    errors = d.get("errorDistribution", {})
    n = max(sum(codes.values()), 1)
    with open(f"{tmp}/{name}-{c}.cpu") as f:
        promptd_ticks, fake_ticks = (int(x) for x in f.read().split())
    handler = {}
    for q in (0.5, 0.99):
        handler[q] = handler_quantile(f"{tmp}/{name}-{c}.metrics0", f"{tmp}/{name}-{c}.metrics1", q)
    return {
        "promptd_us": promptd_ticks / clk_tck / n * 1e6,
        "fake_us": fake_ticks / clk_tck / n * 1e6,
        "rps": s["requestsPerSec"],
        "p50": pct["p50"] * 1000.0,
        "p99": pct["p99"] * 1000.0,
        "ok": s.get("successRate", 0.0),
        "codes": codes,
        "errors": errors,
        "handler": handler,
    }

def buckets(path):
    out = {}
    with open(path) as f:
        for line in f:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out

def handler_quantile(before, after, q):
    """Upper bound (ms) of the histogram bucket holding quantile q of the scenario's requests."""
    b0, b1 = buckets(before), buckets(after)
    total = b1.get(float("inf"), 0) - b0.get(float("inf"), 0)
    if total <= 0:
        return None
    for le in sorted(b1):
        if b1[le] - b0.get(le, 0) >= q * total:
            return le * 1000.0
    return None

bad = False
print(f"{'scenario':<9} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
      f"{'promptd cpu':>12} {'fake cpu':>9}  status codes")
rows = {}
for c in conns:
    for name in ("direct", "floor", "promptd", "hit"):
        r = load(name, c)
        rows[(name, c)] = r
        codes = ",".join(f"{k}:{v}" for k, v in sorted(r["codes"].items()))
        extra = f"  errors {r['errors']}" if r["errors"] else ""
        pcpu = f"{r['promptd_us']:.1f} us" if name in ("promptd", "hit") else "-"
        print(f"{name:<9} {c:>5} {r['rps']:>10.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} "
              f"{pcpu:>12} {r['fake_us']:>6.1f} us  {codes}{extra}")
        if r["errors"] or any(k != "200" for k in r["codes"]):
            bad = True
print()
print(f"{'conns':>5} {'added p50 ms':>12} {'added p99 ms':>12} {'promptd/direct req/s':>21}")
for c in conns:
    d, p = rows[("direct", c)], rows[("promptd", c)]
    print(f"{c:>5} {p['p50'] - d['p50']:>12.3f} {p['p99'] - d['p99']:>12.3f} {p['rps'] / d['rps']:>21.2f}")
print()
print(f"{'conns':>5} {'hit/floor req/s':>16} {'hit p99 - floor p99 ms':>23}")
for c in conns:
    f, h = rows[("floor", c)], rows[("hit", c)]
    print(f"{c:>5} {h['rps'] / f['rps']:>16.2f} {h['p99'] - f['p99']:>23.3f}")
print("(floor: the fake's static answer over a Unix socket, a server doing no work at all)")
print()
print("promptd's own time per completion, request read to response headers (its histogram:")
print("the upper bound of the bucket that holds the percentile); the rest of the end-to-end")
print("latency is the socket, the scheduler and oha")
print(f"{'scenario':<9} {'conns':>5} {'handler p50 <= ms':>18} {'handler p99 <= ms':>18}")
fmt = lambda v: f"{v:.3f}" if v is not None else "-"
for c in conns:
    for name in ("promptd", "hit"):
        h = rows[(name, c)]["handler"]
        print(f"{name:<9} {c:>5} {fmt(h[0.5]):>18} {fmt(h[0.99]):>18}")
print("(hit: the same request with the cache on, answered from sled without a provider call)")
print("(cpu: user+system CPU time of the process per request during the scenario)")
print("(targets: promptd >= 20000 req/s at 32 connections; < 0.3 ms added p50 at 1;")
print("          hits >= 50000 req/s and p99 < 1 ms at 32 connections, p50 < 0.1 ms at 1)")
print()
print(f"promptd RSS after the run: {rss_kb / 1024:.1f} MiB (peak {hwm_kb / 1024:.1f} MiB)")
if bad:
    print("load.sh: some requests failed (non-200 or errors above)", file=sys.stderr)
    sys.exit(1)
EOF
