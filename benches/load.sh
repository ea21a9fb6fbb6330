#!/usr/bin/env bash
# Whole-daemon load test. The measured process (promptd, the floor, or a peer gateway) is pinned
# to core 1; the load generators (oha, examples/sse_load.rs) and the mock provider
# (examples/fake_provider.rs) to core 0. Targets, each loaded at 32 and 1 connections with oha
# and (all but the hits) with 8 streaming connections with sse_load:
#   floor      the fake answering static bytes on a Unix socket, pinned like promptd  (uds)
#   hit        promptd over its Unix socket, answered from its cache                  (uds)
#   pass       promptd over its Unix socket, calling the mock over TCP (bypass)       (uds)
#   floor-tcp  the floor over loopback TCP                                            (tcp; PEERS=1)
#   hit-tcp    promptd over its loopback TCP listener, answered from its cache        (tcp)
#   pass-tcp   promptd over its loopback TCP listener, calling the mock (bypass)      (tcp)
#   noveum     noveum-ai-gateway 2.0.1 over TCP, calling the mock                     (PEERS=1)
# TRANSPORT=uds|tcp|both (default both) says which of the (uds) and (tcp) targets run; promptd
# is started with its Unix socket and, for tcp, its loopback TCP listener (requests carry
# Host: 127.0.0.1:PORT, which the listener accepts). Every promptd row is compared with the floor
# of its own transport. ROUTE says what promptd is asked: openai (POST /v1/chat/completions to an
# OpenAI-kind provider), openai-anthropic (the same route and body, the model routed to an
# Anthropic-kind provider: promptd translates to the mock's POST /v1/messages, and the answer and
# the stream back), parea (/api/parea/v1/completion[/stream]), messages (Anthropic's Messages
# door, POST /v1/messages, the model routed to an Anthropic-kind provider: the same wire, the
# client's body forwarded to the mock's /v1/messages), messages-openai (the Messages door, the
# model going to the OpenAI-kind provider: translated to the mock's /chat/completions and back)
# responses (OpenAI's Responses door, POST /v1/responses, to the OpenAI-kind provider marked
# `responses = true`: the same wire, the client's body forwarded to the mock's /v1/responses) or
# responses-openai (the Responses door to a provider that does not serve it: translated to the
# mock's /chat/completions and back).
# The floor answers the wire the client sees: the OpenAI shapes for openai, openai-anthropic and
# parea; for messages and messages-openai the mock's static Anthropic answers (POST /v1/messages:
# a whole message, or its event stream, done at message_stop); for both responses routes the mock's
# static Responses answers (POST /v1/responses: a whole response object, or its typed events,
# done at response.completed).
# REPS repetitions, interleaved; every cell is the median of its repetitions. Prints the raw
# lines, then one table with req/s, p50/p99, the measured process's CPU µs per request, stream
# TTFB, RSS, the ratios to the floor of the same transport and the targets. See benches/README.md.
#
# Env: DURATION (per run, default 5s), REPS (default 3), CONNS (oha connection counts, default
# "1 32"), STREAM_CONNS (default 8), STREAM_CHUNKS (chunks per streamed answer, default 21),
# CHUNK_GAP_MS (between the chunks, default 0: all at once), DELAY_MS (the mock's delay before
# it answers, default 0), PIN=0 (no pinning), TRANSPORT (uds, tcp or both, default both), ROUTE
# (openai, openai-anthropic, parea, messages, messages-openai, responses or responses-openai,
# default openai), STORE=false (the Responses routes' body says store: false), PEERS=1 (also
# noveum-ai-gateway, on the OpenAI routes and parea only, installed into PEERS_CACHE, default
# ~/.cache/promptd-bench/peers), SKIP_BUILD=1 (reuse target/release), PROMPTD_BIN=path (measure
# another promptd binary), KEEP=1 (keep the temp directory with the run files and the logs).
set -euo pipefail

DURATION="${DURATION:-5s}"
REPS="${REPS:-3}"
CONNS="${CONNS:-1 32}"
STREAM_CONNS="${STREAM_CONNS:-8}"
STREAM_CHUNKS="${STREAM_CHUNKS:-21}"
CHUNK_GAP_MS="${CHUNK_GAP_MS:-0}"
DELAY_MS="${DELAY_MS:-0}"
PIN="${PIN:-1}"
ROUTE="${ROUTE:-openai}"
TRANSPORT="${TRANSPORT:-both}"
PEERS="${PEERS:-0}"
PEERS_CACHE="${PEERS_CACHE:-$HOME/.cache/promptd-bench/peers}"
NOVEUM_VERSION=2.0.1

cd "$(dirname "$0")/.."
ROOT="$PWD"

die() { echo "load.sh: $*" >&2; exit 1; }
note() { echo "load.sh: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "needs $1"; }
need cargo
need curl
need python3
[[ "$ROUTE" =~ ^(openai|openai-anthropic|parea|messages|messages-openai|responses|responses-openai)$ ]] ||
    die "ROUTE is openai, openai-anthropic, parea, messages, messages-openai, responses or" \
        "responses-openai, not $ROUTE"
# The Messages and Responses doors' floors answer their own shapes; noveum is called on the chat
# completions wire.
[[ "$PEERS" != 1 || "$ROUTE" != messages* && "$ROUTE" != responses* ]] ||
    die "PEERS=1 compares noveum-ai-gateway on the OpenAI wire: not with ROUTE=$ROUTE"
[[ "$TRANSPORT" =~ ^(uds|tcp|both)$ ]] || die "TRANSPORT is uds, tcp or both, not $TRANSPORT"
UDS=0
TCP=0
[[ "$TRANSPORT" == tcp ]] || UDS=1
[[ "$TRANSPORT" == uds ]] || TCP=1
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "REPS is a positive number, not $REPS"

if ! command -v oha >/dev/null 2>&1; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v oha >/dev/null 2>&1; then
    note "oha not found; installing it with cargo (takes a few minutes)..."
    cargo install oha --locked
fi

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --bin promptd --example fake_provider --example sse_load
fi
# PROMPTD_BIN: another build of promptd to measure (e.g. an older commit's, for a before/after).
PROMPTD="${PROMPTD_BIN:-$ROOT/target/release/promptd}"
FAKE="$ROOT/target/release/examples/fake_provider"
SSE="$ROOT/target/release/examples/sse_load"
for bin in "$PROMPTD" "$FAKE" "$SSE"; do
    [[ -x "$bin" ]] || die "$bin missing (run without SKIP_BUILD=1)"
done

# --- the peer: installed before anything is started, so its build does not overlap the load ----
NOVEUM=""
if [[ "$PEERS" == 1 ]]; then
    NOVEUM_BIN="$PEERS_CACHE/bin/noveum-ai-gateway"
    if [[ -x "$NOVEUM_BIN" ]] &&
        grep -qF "noveum-ai-gateway $NOVEUM_VERSION " "$PEERS_CACHE/.crates.toml" 2>/dev/null; then
        NOVEUM="$NOVEUM_BIN"
    else
        mkdir -p "$PEERS_CACHE"
        note "installing noveum-ai-gateway $NOVEUM_VERSION into $PEERS_CACHE" \
            "(a release build: 10-20 minutes on 2 cores)..."
        if cargo install noveum-ai-gateway --version "$NOVEUM_VERSION" --locked \
            --root "$PEERS_CACHE" >"$PEERS_CACHE/install.log" 2>&1; then
            NOVEUM="$NOVEUM_BIN"
        else
            note "cargo install noveum-ai-gateway failed; going on without the peer." \
                "The end of $PEERS_CACHE/install.log:"
            tail -n 15 "$PEERS_CACHE/install.log" >&2
        fi
    fi
fi

# --- pinning -----------------------------------------------------------------------------------
GW_CORE=1
LOAD_CORE=0
PIN_GW=()
PIN_LOAD=()
PINNING="off (PIN=0)"
if [[ "$PIN" != 0 ]]; then
    if ! command -v taskset >/dev/null 2>&1; then
        PINNING="off: no taskset (Debian package util-linux)"
    elif (($(getconf _NPROCESSORS_ONLN) < 2)); then
        PINNING="off: $(getconf _NPROCESSORS_ONLN) CPU online, pinning needs 2"
    elif ! taskset -c "$LOAD_CORE,$GW_CORE" true 2>/dev/null; then
        PINNING="off: this shell may not run on CPUs $LOAD_CORE and $GW_CORE ($(taskset -pc $$ 2>&1))"
    else
        PIN_GW=(taskset -c "$GW_CORE")
        PIN_LOAD=(taskset -c "$LOAD_CORE")
        PINNING="measured process on CPU $GW_CORE; oha, sse_load and the mock provider on CPU $LOAD_CORE"
    fi
    [[ ${#PIN_GW[@]} -gt 0 ]] || note "pinning $PINNING; running unpinned"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/promptd-bench.XXXXXX")"
RUNS="$TMP/runs"
mkdir -p "$RUNS"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ "${KEEP:-0}" == 1 ]]; then
        note "run files kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# RSS of a process in KiB: rss PID VmRSS|VmHWM
rss() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Forget a process's peak RSS, so the next VmHWM is the peak of what follows (Linux >= 4.0).
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "no-reset" >"$RUNS/peak-not-reset"; }
# CPU a process used so far: "TICKS NS TIDS": user+system clock ticks (threads that exited
# included), the sum of its live threads' run time in ns (schedstat), and their ids.
cpu() {
    local pid="$1" ticks ns tids
    ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
    # A thread that ends between the glob and the read (sled starts short-lived I/O threads)
    # fails cat: what the others read still counts.
    ns="$({ cat /proc/"$pid"/task/*/schedstat 2>/dev/null || true; } |
        awk '{s += $1} END {printf "%.0f", s}')"
    tids="$(ls "/proc/$pid/task" | paste -sd, -)"
    echo "$ticks ${ns:-0} $tids"
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
wait_line() { # file, pid, what
    for _ in $(seq 200); do
        grep -q '^listening on ' "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || die "$3 exited: $(cat "$1" "$1.err" 2>/dev/null)"
        sleep 0.05
    done
    die "$3 did not report its address"
}

# --- the mock provider (core 0) and the floor (pinned like the measured process) ---------------
FAKE_ARGS=(--delay-ms "$DELAY_MS" --stream-chunks "$STREAM_CHUNKS" --chunk-gap-ms "$CHUNK_GAP_MS")
"${PIN_LOAD[@]}" "$FAKE" --addr 127.0.0.1:0 "${FAKE_ARGS[@]}" >"$TMP/mock.out" 2>"$TMP/mock.out.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
wait_line "$TMP/mock.out" "$MOCK_PID" "the mock provider"
MOCK_ADDR="$(sed -n 's/^listening on //p' "$TMP/mock.out" | head -n1)"

FLOOR_SOCK="$TMP/floor.sock"
"${PIN_GW[@]}" "$FAKE" --addr 127.0.0.1:0 --unix "$FLOOR_SOCK" "${FAKE_ARGS[@]}" \
    >"$TMP/floor.out" 2>"$TMP/floor.out.err" &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
wait_line "$TMP/floor.out" "$FLOOR_PID" "the floor fake"
FLOOR_ADDR="$(sed -n 's/^listening on //p' "$TMP/floor.out" | head -n1)"
sleep 0.5
FLOOR_IDLE="$(rss "$FLOOR_PID" VmRSS)"

# --- promptd (pinned) --------------------------------------------------------------------------
SOCK="$TMP/promptd.sock"
mkdir -p "$TMP/state" "$TMP/prompts"
# With TCP: the loopback listener on a free port (its Host check accepts 127.0.0.1:PORT).
P_TCP=""
if [[ "$TCP" == 1 ]]; then
    P_TCP="127.0.0.1:$(free_port)"
fi
{
    echo "socket = \"$SOCK\""
    [[ -z "$P_TCP" ]] || echo "tcp = \"$P_TCP\""
    cat <<EOF
state_dir = "$TMP/state"
prompts_dir = "$TMP/prompts"
log_level = "warn"
default_provider = "openai"

[providers.openai]
kind = "openai"
base_url = "http://$MOCK_ADDR/v1"
api_key = "sk-bench"
max_retries = 0
EOF
    # ROUTE=responses: the mock serves the Responses API too.
    [[ "$ROUTE" != responses ]] || echo 'responses = true'
    # ROUTE=openai-anthropic or messages: the mock's POST /v1/messages as an Anthropic-kind
    # provider.
    [[ "$ROUTE" != openai-anthropic && "$ROUTE" != messages ]] || cat <<EOF

[providers.anthropic]
kind = "anthropic"
base_url = "http://$MOCK_ADDR/v1"
api_key = "sk-ant-bench"
max_retries = 0
EOF
} >"$TMP/promptd.toml"
"${PIN_GW[@]}" "$PROMPTD" serve --config "$TMP/promptd.toml" >"$TMP/promptd.log" 2>&1 &
PROMPTD_PID=$!
PIDS+=("$PROMPTD_PID")
for _ in $(seq 200); do
    [[ -S "$SOCK" ]] && break
    kill -0 "$PROMPTD_PID" 2>/dev/null || die "promptd exited: $(cat "$TMP/promptd.log")"
    sleep 0.05
done
[[ -S "$SOCK" ]] || die "promptd socket $SOCK did not appear"
if [[ -n "$P_TCP" ]]; then
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "http://$P_TCP/health" 2>/dev/null && break
        kill -0 "$PROMPTD_PID" 2>/dev/null || die "promptd exited: $(cat "$TMP/promptd.log")"
        sleep 0.05
    done
    curl -fsS -o /dev/null "http://$P_TCP/health" ||
        die "promptd's TCP listener $P_TCP does not answer: $(tail -n 20 "$TMP/promptd.log")"
fi
sleep 0.5
PROMPTD_IDLE="$(rss "$PROMPTD_PID" VmRSS)"

# --- noveum-ai-gateway (pinned), a transparent proxy of x-provider: openai to the mock ---------
NOVEUM_PID=""
if [[ -n "$NOVEUM" ]]; then
    NOVEUM_PORT="$(free_port)"
    mkdir -p "$TMP/noveum" # its working directory: it reads a .env from there, and there is none
    (cd "$TMP/noveum" && exec "${PIN_GW[@]}" env HOST=127.0.0.1 PORT="$NOVEUM_PORT" \
        OPENAI_BASE_URL="http://$MOCK_ADDR" NOVEUM_GUARD_ENABLED=false RUST_LOG=warn \
        "$NOVEUM") >"$TMP/noveum.log" 2>&1 &
    NOVEUM_PID=$!
    PIDS+=("$NOVEUM_PID")
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "http://127.0.0.1:$NOVEUM_PORT/health" 2>/dev/null && break
        if ! kill -0 "$NOVEUM_PID" 2>/dev/null; then
            note "noveum-ai-gateway exited: $(tail -n 20 "$TMP/noveum.log")"
            NOVEUM_PID=""
            break
        fi
        sleep 0.05
    done
    if [[ -n "$NOVEUM_PID" ]]; then
        sleep 0.5
        rss "$NOVEUM_PID" VmRSS >"$RUNS/noveum.idle"
    fi
fi

# --- requests ----------------------------------------------------------------------------------
OPENAI_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
STREAM_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true}'
OPENAI_PATH=/v1/chat/completions
BYPASS=(-H 'x-promptd-cache: bypass')
ANTHROPIC_MODEL=anthropic/claude-3-5-sonnet-20241022
# What the floor is asked: the wire promptd's client speaks (ROUTE=messages* changes it), and the
# headers of that wire's client (to the floor and to promptd).
FLOOR_PATH="$OPENAI_PATH"
FLOOR_BODY="$OPENAI_BODY"
FLOOR_STREAM_BODY="$STREAM_BODY"
WIRE_HEADERS=()
if [[ "$ROUTE" == openai ]]; then
    PROMPTD_PATH="$OPENAI_PATH"
    PASS_BODY="$OPENAI_BODY"
    PASS_HEADERS=("${BYPASS[@]}")
    HIT_BODY="$OPENAI_BODY"
    PROMPTD_STREAM_PATH="$OPENAI_PATH"
    PROMPTD_STREAM_BODY="$STREAM_BODY"
elif [[ "$ROUTE" == openai-anthropic ]]; then
    # The same OpenAI request, its model routed to the Anthropic-kind provider.
    PROMPTD_PATH="$OPENAI_PATH"
    PASS_BODY="${OPENAI_BODY/gpt-4o-mini/$ANTHROPIC_MODEL}"
    PASS_HEADERS=("${BYPASS[@]}")
    HIT_BODY="$PASS_BODY"
    PROMPTD_STREAM_PATH="$OPENAI_PATH"
    PROMPTD_STREAM_BODY="${STREAM_BODY/gpt-4o-mini/$ANTHROPIC_MODEL}"
elif [[ "$ROUTE" == messages* ]]; then
    # Anthropic's Messages door, as the Anthropic SDK calls it (anthropic-version, max_tokens);
    # messages: the model to the Anthropic-kind provider (same wire); messages-openai: the default
    # provider, OpenAI-kind (translated). The floor is asked the same request.
    MODEL="$ANTHROPIC_MODEL"
    [[ "$ROUTE" == messages ]] || MODEL=gpt-4o-mini
    FLOOR_PATH=/v1/messages
    FLOOR_BODY="{\"model\":\"$MODEL\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"
    FLOOR_STREAM_BODY="${FLOOR_BODY%\}},\"stream\":true}"
    WIRE_HEADERS=(-H 'anthropic-version: 2023-06-01')
    PROMPTD_PATH="$FLOOR_PATH"
    PASS_BODY="$FLOOR_BODY"
    PASS_HEADERS=("${BYPASS[@]}" "${WIRE_HEADERS[@]}")
    HIT_BODY="$FLOOR_BODY"
    PROMPTD_STREAM_PATH="$FLOOR_PATH"
    PROMPTD_STREAM_BODY="$FLOOR_STREAM_BODY"
elif [[ "$ROUTE" == responses* ]]; then
    # OpenAI's Responses door, as the OpenAI SDK's responses.create calls it (an input item
    # list), to the default provider, OpenAI-kind; responses: it serves the Responses API (the
    # same wire); responses-openai: it does not (translated to its chat completions). The
    # floor is asked the same request.
    # STORE=false: the client asks promptd to keep nothing (as Codex does); unset, as OpenAI's
    # default, every answer is kept for previous_response_id.
    FLOOR_PATH=/v1/responses
    FLOOR_BODY='{"model":"gpt-4o-mini","input":[{"role":"user","content":"Hello"}]}'
    [[ -z "${STORE:-}" ]] || FLOOR_BODY="${FLOOR_BODY%\}},\"store\":$STORE}"
    FLOOR_STREAM_BODY="${FLOOR_BODY%\}},\"stream\":true}"
    PROMPTD_PATH="$FLOOR_PATH"
    PASS_BODY="$FLOOR_BODY"
    PASS_HEADERS=("${BYPASS[@]}")
    HIT_BODY="$FLOOR_BODY"
    PROMPTD_STREAM_PATH="$FLOOR_PATH"
    PROMPTD_STREAM_BODY="$FLOOR_STREAM_BODY"
else
    PROMPTD_PATH=/api/parea/v1/completion
    PASS_BODY='{"llm_configuration":{"model":"gpt-4o-mini","provider":"openai","messages":[{"role":"user","content":"Hello"}]},"cache":false}'
    PASS_HEADERS=()
    HIT_BODY='{"llm_configuration":{"model":"gpt-4o-mini","provider":"openai","messages":[{"role":"user","content":"Hello"}]}}'
    # Parea's stream: an id event, then one event per text delta; no [DONE].
    PROMPTD_STREAM_PATH=/api/parea/v1/completion/stream
    PROMPTD_STREAM_BODY="$PASS_BODY"
fi
NOVEUM_HEADERS=(-H 'authorization: Bearer sk-bench' -H 'x-provider: openai')

# --- smoke checks: every path answers 200 with the content, streams end with [DONE] ------------
smoke() { # name, expect (cache header value or -), curl args...
    local name="$1" expect="$2" out="$TMP/$1.smoke" status
    shift 2
    status="$(curl -sS -D "$out.headers" -o "$out" -w '%{http_code}' -X POST \
        -H 'content-type: application/json' "$@")" || status="curl failed"
    if [[ "$status" != 200 ]] || ! grep -q 'Hello!' "$out"; then
        note "$name smoke request failed: HTTP $status"
        cat "$out" >&2 2>/dev/null; echo >&2
        [[ "$name" == noveum* ]] && tail -n 20 "$TMP/noveum.log" >&2
        [[ "$name" == noveum* ]] || tail -n 20 "$TMP/promptd.log" >&2
        return 1
    fi
    if [[ "$expect" != - ]] && ! grep -qi "^x-promptd-cache: $expect" "$out.headers"; then
        note "$name smoke request: expected x-promptd-cache: $expect," \
            "got: $(grep -i '^x-promptd-cache:' "$out.headers")"
        return 1
    fi
    if grep -q '^data: {"id"' "$out" && ! grep -q '^data: \[DONE\]' "$out"; then
        note "$name smoke stream did not end with data: [DONE]"
        return 1
    fi
    if grep -q '^event: response\.' "$out"; then
        if ! grep -q '^event: response.completed' "$out"; then
            note "$name smoke stream (Responses events) did not end with response.completed"
            cat "$out" >&2
            return 1
        fi
    elif grep -q '^event: ' "$out" && ! grep -q '^event: message_stop' "$out"; then
        note "$name smoke stream (Anthropic's events) did not end with message_stop"
        cat "$out" >&2
        return 1
    fi
}
# An Anthropic event stream of STREAM_CHUNKS - 3 text deltas ending with message_stop: name.
anthropic_stream() {
    local got
    got="$(grep -c '^event: content_block_delta' "$TMP/$1.smoke")" || true
    if [[ "$got" != $((STREAM_CHUNKS - 3)) ]] || ! grep -q '^event: message_stop' "$TMP/$1.smoke"; then
        die "$1: an Anthropic stream with $got text deltas, not $((STREAM_CHUNKS - 3)), or no" \
            "message_stop: $(cat "$TMP/$1.smoke")"
    fi
}
# A Responses event stream of STREAM_CHUNKS - 3 text deltas ending with response.completed: name.
responses_stream() {
    local got
    got="$(grep -c '^event: response.output_text.delta' "$TMP/$1.smoke")" || true
    if [[ "$got" != $((STREAM_CHUNKS - 3)) ]] ||
        ! grep -q '^event: response.completed' "$TMP/$1.smoke"; then
        die "$1: a Responses stream with $got text deltas, not $((STREAM_CHUNKS - 3)), or no" \
            "response.completed: $(cat "$TMP/$1.smoke")"
    fi
}
# Transport arguments, for curl and oha (the URL last) and for sse_load: the floor's and promptd's.
FLOOR_UDS=(--unix-socket "$FLOOR_SOCK" "http://localhost$FLOOR_PATH")
FLOOR_UDS_SSE=(--unix "$FLOOR_SOCK" --path "$FLOOR_PATH")
FLOOR_TCP=("http://$FLOOR_ADDR$FLOOR_PATH")
FLOOR_TCP_SSE=(--url "http://$FLOOR_ADDR$FLOOR_PATH")
P_UDS=(--unix-socket "$SOCK" "http://localhost$PROMPTD_PATH")
P_UDS_SSE=(--unix "$SOCK" --path "$PROMPTD_STREAM_PATH")
P_TCP_URL=("http://$P_TCP$PROMPTD_PATH")
P_TCP_SSE=(--url "http://$P_TCP$PROMPTD_STREAM_PATH")

smoke floor - -d "$FLOOR_BODY" "${WIRE_HEADERS[@]}" "${FLOOR_UDS[@]}" || exit 1
smoke floor-stream - -d "$FLOOR_STREAM_BODY" "${WIRE_HEADERS[@]}" "${FLOOR_UDS[@]}" || exit 1
if [[ "$FLOOR_PATH" == "$OPENAI_PATH" ]]; then
    got="$(grep -c '^data: {' "$TMP/floor-stream.smoke")"
    [[ "$got" == "$STREAM_CHUNKS" ]] || die "the floor streamed $got chunks, not $STREAM_CHUNKS"
elif [[ "$ROUTE" == responses* ]]; then
    responses_stream floor-stream
else
    anthropic_stream floor-stream
fi
if [[ "$ROUTE" == openai-anthropic || "$ROUTE" == messages ]]; then
    # The mock's Anthropic stream, as promptd gets it: every event, STREAM_CHUNKS - 3 deltas.
    smoke mock-anthropic - -d "$STREAM_BODY" "http://$MOCK_ADDR/v1/messages" || exit 1
    anthropic_stream mock-anthropic
fi
# promptd, over each transport measured: a pass-through, a hit (primed once: the cache is the
# same whichever door the request came in by) and a pass-through stream.
PRIMED=0
smoke_promptd() { # suffix ("" or -tcp), curl transport arguments...
    local sfx="$1"
    shift
    smoke "pass$sfx" bypass -d "$PASS_BODY" "${PASS_HEADERS[@]}" "$@" || exit 1
    if [[ "$PRIMED" == 0 ]]; then
        smoke hit-prime - -d "$HIT_BODY" "${WIRE_HEADERS[@]}" "$@" || exit 1
        PRIMED=1
    fi
    smoke "hit$sfx" hit -d "$HIT_BODY" "${WIRE_HEADERS[@]}" "$@" || exit 1
}
smoke_promptd_stream() { # suffix, curl transport arguments...
    local sfx="$1" lines
    shift
    smoke "pass$sfx-stream" bypass -d "$PROMPTD_STREAM_BODY" "${BYPASS[@]}" "${WIRE_HEADERS[@]}" \
        "$@" || exit 1
    if [[ "$ROUTE" == messages* ]]; then
        # message_start, ping, the text block (its start, the deltas, its stop), message_delta,
        # message_stop
        anthropic_stream "pass$sfx-stream"
    elif [[ "$ROUTE" == responses* ]]; then
        # response.created, in_progress, the message item (added, its part added, the deltas,
        # the text and part done, the item done), response.completed
        responses_stream "pass$sfx-stream"
    elif [[ "$ROUTE" != parea ]]; then
        # role, the deltas, finish (no usage chunk: not asked for), [DONE]
        lines="$(grep -c '^data: ' "$TMP/pass$sfx-stream.smoke")"
        [[ "$lines" == "$STREAM_CHUNKS" ]] ||
            die "promptd's stream (pass$sfx) had $lines data: lines, not $STREAM_CHUNKS:" \
                "$(cat "$TMP/pass$sfx-stream.smoke")"
    fi
}
if [[ "$UDS" == 1 ]]; then
    smoke_promptd "" "${P_UDS[@]}"
    smoke_promptd_stream "" --unix-socket "$SOCK" "http://localhost$PROMPTD_STREAM_PATH"
fi
if [[ "$TCP" == 1 ]]; then
    smoke floor-tcp - -d "$FLOOR_BODY" "${WIRE_HEADERS[@]}" "${FLOOR_TCP[@]}" || exit 1
    smoke_promptd -tcp "${P_TCP_URL[@]}"
    smoke_promptd_stream -tcp "http://$P_TCP$PROMPTD_STREAM_PATH"
fi
if [[ -n "$NOVEUM_PID" ]]; then
    smoke floor-tcp - -d "$OPENAI_BODY" "${FLOOR_TCP[@]}" || exit 1
    N_URL="http://127.0.0.1:$NOVEUM_PORT$OPENAI_PATH"
    if ! smoke noveum - -d "$OPENAI_BODY" "${NOVEUM_HEADERS[@]}" "$N_URL" ||
        ! smoke noveum-stream - -d "$STREAM_BODY" "${NOVEUM_HEADERS[@]}" "$N_URL"; then
        note "noveum-ai-gateway does not answer like the floor; going on without it"
        kill "$NOVEUM_PID" 2>/dev/null || true
        wait "$NOVEUM_PID" 2>/dev/null || true
        NOVEUM_PID=""
    fi
fi

# Which targets run: the report takes those with an idle RSS file.
FLOOR_TCP_ON=0
[[ "$TCP" == 1 || -n "$NOVEUM_PID" ]] && FLOOR_TCP_ON=1
if [[ "$UDS" == 1 ]]; then
    echo "$FLOOR_IDLE" >"$RUNS/floor.idle"
    echo "$PROMPTD_IDLE" >"$RUNS/hit.idle"
    echo "$PROMPTD_IDLE" >"$RUNS/pass.idle"
fi
[[ "$FLOOR_TCP_ON" == 0 ]] || echo "$FLOOR_IDLE" >"$RUNS/floor-tcp.idle"
if [[ "$TCP" == 1 ]]; then
    echo "$PROMPTD_IDLE" >"$RUNS/hit-tcp.idle"
    echo "$PROMPTD_IDLE" >"$RUNS/pass-tcp.idle"
fi

# --- load --------------------------------------------------------------------------------------
# promptd's own time per completion: the buckets of its promptd_overhead_seconds histogram.
metrics() {
    curl -sS --unix-socket "$SOCK" http://localhost/metrics |
        grep '^promptd_overhead_seconds_bucket' || true
}
# measure RUN PID CMD...: CPU of the measured process and of the mock around one load command.
measure() {
    local run="$1" pid="$2"
    shift 2
    [[ "$pid" == "$PROMPTD_PID" ]] && metrics >"$RUNS/$run.metrics0"
    cpu "$pid" >"$RUNS/$run.cpu0"
    cpu "$MOCK_PID" >"$RUNS/$run.mock0"
    "$@" >"$RUNS/$run.json" 2>"$RUNS/$run.err" ||
        note "$run: load command failed: $(head -c 500 "$RUNS/$run.err")"
    cpu "$pid" >"$RUNS/$run.cpu1"
    cpu "$MOCK_PID" >"$RUNS/$run.mock1"
    [[ "$pid" == "$PROMPTD_PID" ]] && metrics >"$RUNS/$run.metrics1"
    return 0
}
oha_run() { # target, pid, rep, conns, oha args...
    local target="$1" pid="$2" rep="$3" c="$4"
    shift 4
    note "rep $rep/$REPS: $target, $c connection(s), $DURATION"
    # -w: wait for in-flight requests at the deadline instead of counting them as errors.
    measure "$target.oha.c$c.r$rep" "$pid" "${PIN_LOAD[@]}" oha -z "$DURATION" -w -c "$c" --no-tui \
        --output-format json -m POST -H 'content-type: application/json' "$@"
}
sse_run() { # target, pid, rep, sse_load args... (the body: $SSE_BODY, else $STREAM_BODY)
    local target="$1" pid="$2" rep="$3"
    shift 3
    note "rep $rep/$REPS: $target, $STREAM_CONNS streaming connection(s), $DURATION"
    measure "$target.sse.c$STREAM_CONNS.r$rep" "$pid" "${PIN_LOAD[@]}" "$SSE" -c "$STREAM_CONNS" \
        -z "$DURATION" -d "${SSE_BODY:-$STREAM_BODY}" --json "$@"
}
# target, pid, rep: forget the peak RSS now, record it after the target's runs.
peak_begin() { reset_peak "$2"; }
peak_end() { rss "$2" VmHWM >"$RUNS/$1.peak.r$3"; }

uptime >"$RUNS/load-before"
# One transport's floor, hits and pass-through (oha, then streams): suffix ("" or -tcp), then the
# floor's and promptd's transport arguments are taken from the arrays named for it.
run_transport() { # rep, suffix
    local rep="$1" sfx="$2" c
    local -a f_oha f_sse p_oha p_sse
    if [[ -z "$sfx" ]]; then
        f_oha=("${FLOOR_UDS[@]}") f_sse=("${FLOOR_UDS_SSE[@]}")
        p_oha=("${P_UDS[@]}") p_sse=("${P_UDS_SSE[@]}")
    else
        f_oha=("${FLOOR_TCP[@]}") f_sse=("${FLOOR_TCP_SSE[@]}")
        p_oha=("${P_TCP_URL[@]}") p_sse=("${P_TCP_SSE[@]}")
    fi
    peak_begin "floor$sfx" "$FLOOR_PID"
    for c in $CONNS; do
        oha_run "floor$sfx" "$FLOOR_PID" "$rep" "$c" -d "$FLOOR_BODY" "${WIRE_HEADERS[@]}" \
            "${f_oha[@]}"
    done
    SSE_BODY="$FLOOR_STREAM_BODY" sse_run "floor$sfx" "$FLOOR_PID" "$rep" "${f_sse[@]}" \
        "${WIRE_HEADERS[@]}"
    peak_end "floor$sfx" "$FLOOR_PID" "$rep"
    # The floor alone over TCP when only the peer needs it (TRANSPORT=uds PEERS=1).
    [[ -n "$sfx" && "$TCP" == 0 ]] && return 0

    peak_begin "hit$sfx" "$PROMPTD_PID"
    for c in $CONNS; do
        oha_run "hit$sfx" "$PROMPTD_PID" "$rep" "$c" -d "$HIT_BODY" "${WIRE_HEADERS[@]}" \
            "${p_oha[@]}"
    done
    peak_end "hit$sfx" "$PROMPTD_PID" "$rep"

    peak_begin "pass$sfx" "$PROMPTD_PID"
    for c in $CONNS; do
        oha_run "pass$sfx" "$PROMPTD_PID" "$rep" "$c" -d "$PASS_BODY" "${PASS_HEADERS[@]}" \
            "${p_oha[@]}"
    done
    SSE_BODY="$PROMPTD_STREAM_BODY" sse_run "pass$sfx" "$PROMPTD_PID" "$rep" "${p_sse[@]}" \
        -H 'x-promptd-cache: bypass' "${WIRE_HEADERS[@]}"
    peak_end "pass$sfx" "$PROMPTD_PID" "$rep"
}
for rep in $(seq "$REPS"); do
    [[ "$UDS" == 0 ]] || run_transport "$rep" ""
    [[ "$FLOOR_TCP_ON" == 0 ]] || run_transport "$rep" -tcp

    if [[ -n "$NOVEUM_PID" ]]; then
        peak_begin noveum "$NOVEUM_PID"
        for c in $CONNS; do
            oha_run noveum "$NOVEUM_PID" "$rep" "$c" -d "$OPENAI_BODY" "${NOVEUM_HEADERS[@]}" "$N_URL"
        done
        sse_run noveum "$NOVEUM_PID" "$rep" --url "$N_URL" -H 'authorization: Bearer sk-bench' \
            -H 'x-provider: openai'
        peak_end noveum "$NOVEUM_PID" "$rep"
    fi
done
uptime >"$RUNS/load-after"

# --- report ------------------------------------------------------------------------------------
{
    echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "cpus=$(getconf _NPROCESSORS_ONLN)"
    echo "kernel=$(uname -r)"
    echo "oha=$(oha --version 2>/dev/null | head -n1)"
    echo "pinning=$PINNING"
    echo "promptd=$PROMPTD"
    echo "noveum=${NOVEUM_PID:+noveum-ai-gateway $NOVEUM_VERSION ($NOVEUM)}"
    echo "route=$ROUTE"
    echo "transport=$TRANSPORT"
    echo "promptd_path=$PROMPTD_PATH"
} >"$RUNS/about"
python3 "$ROOT/benches/load_report.py" "$RUNS" "$(getconf CLK_TCK)" "$DURATION" "$REPS" \
    "$CONNS" "$STREAM_CONNS" "$STREAM_CHUNKS" "$CHUNK_GAP_MS" "$DELAY_MS"
