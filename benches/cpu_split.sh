#!/usr/bin/env bash
# User and kernel CPU per request of promptd (or of the mock answering directly: FLOOR=1) under
# cache hits over loopback TCP, with no profiler attached: promptd pinned to core 1, the mock
# and oha on core 0, /proc/PID/stat's utime and stime read over DUR seconds of load, requests
# counted by promptd's own promptd_requests_total (the floor's from oha's rate).
#
#   benches/cpu_split.sh target/release/promptd            # OpenAI-route hits
#   FLOOR=1 benches/cpu_split.sh -                          # the mock answering directly
#   PATHP=/v1/responses BODY='{"model":"gpt-4o-mini","input":"Hello"}' benches/cpu_split.sh BIN
#   RESP=1 ...                                              # the provider serves /v1/responses
#   BYPASS=1 ...                                            # pass-through: x-promptd-cache: bypass
#   PATHP=/v1/messages HEADER='anthropic-version: 2023-06-01' \
#     BODY='{"model":"anthropic/claude-x","max_tokens":64,"messages":[...]}' ...  # Messages, same wire
#
# Prints one line: req/s, user, sys and total µs per request, how busy the pinned core was.
# Two builds compare only in alternating rounds in one sitting (this machine drifts by ±15 %
# between minutes):  for i in 1 2 3; do for b in A B; do benches/cpu_split.sh $b; done; done
# Env: DUR (5), C (connections, 32), Q (oha's rate limit, none), PATHP, BODY, HEADER, RESP,
# BYPASS, FLOOR.
# Needs oha, curl, python3, taskset and target/release/examples/fake_provider.
set -euo pipefail
BIN="$1"; DUR="${DUR:-5}"; C="${C:-32}"; FLOOR="${FLOOR:-0}"
PATHP="${PATHP:-/v1/chat/completions}"
DEFAULT_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
BODY="${BODY:-$DEFAULT_BODY}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FAKE="$ROOT/target/release/examples/fake_provider"
[[ -x "$FAKE" ]] || { echo "cpu_split.sh: build $FAKE first" >&2; exit 2; }
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
taskset -c 0 "$FAKE" --addr 127.0.0.1:0 >"$T/mock.out" 2>&1 &
for _ in $(seq 100); do grep -q '^listening on ' "$T/mock.out" && break; sleep 0.05; done
MOCK=$(sed -n 's/^listening on //p' "$T/mock.out")
PORT=$(free_port)
if [[ "$FLOOR" == 1 ]]; then
    taskset -c 1 "$FAKE" --addr "127.0.0.1:$PORT" >"$T/floor.out" 2>&1 &
    PID=$!
    PATHP=/v1/chat/completions
    for _ in $(seq 100); do grep -q '^listening on ' "$T/floor.out" && break; sleep 0.05; done
else
    mkdir -p "$T/state" "$T/prompts"
    cat >"$T/p.toml" <<EOT
socket = "$T/p.sock"
tcp = "127.0.0.1:$PORT"
state_dir = "$T/state"
prompts_dir = "$T/prompts"
log_level = "warn"
default_provider = "openai"
[providers.openai]
kind = "openai"
base_url = "http://$MOCK/v1"
api_key = "sk-bench"
max_retries = 0
${RESP:+responses = true}
[providers.anthropic]
kind = "anthropic"
base_url = "http://$MOCK/v1"
api_key = "sk-bench"
max_retries = 0
EOT
    taskset -c 1 "$BIN" serve --config "$T/p.toml" >"$T/promptd.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
        sleep 0.05
    done
fi
URL="http://127.0.0.1:$PORT$PATHP"
HDR=(); [[ -z "${BYPASS:-}" ]] || HDR=(-H 'x-promptd-cache: bypass')
[[ -z "${HEADER:-}" ]] || HDR+=(-H "$HEADER")
# The first call fills the cache: every request after it is a hit.
curl -fsS -o /dev/null "${HDR[@]}" -H 'content-type: application/json' -d "$BODY" "$URL"
requests() {
    curl -s "http://127.0.0.1:$PORT/metrics" |
        awk '/^promptd_requests_total\{/ {s += $NF} END {print s + 0}'
}
taskset -c 0 oha -n 100000000 -c "$C" ${Q:+-q "$Q"} --no-tui -m POST "${HDR[@]}" \
    -H 'content-type: application/json' -d "$BODY" "$URL" >"$T/oha.out" 2>&1 &
OHA=$!
sleep 1
read -r U0 S0 < <(awk '{print $14, $15}' "/proc/$PID/stat")
[[ "$FLOOR" == 1 ]] || R0=$(requests)
T0=$(date +%s.%N)
sleep "$DUR"
read -r U1 S1 < <(awk '{print $14, $15}' "/proc/$PID/stat")
T1=$(date +%s.%N)
[[ "$FLOOR" == 1 ]] || R1=$(requests)
kill -INT "$OHA"
wait "$OHA" 2>/dev/null || true
if [[ "$FLOOR" == 1 ]]; then
    RATE=$(awk '/Requests\/sec/ {print $2}' "$T/oha.out")
    N=$(python3 -c "print(int($RATE * ($T1 - $T0)))")
else
    N=$((R1 - R0))
fi
python3 -c "
n, tck, secs = $N, $(getconf CLK_TCK), $T1 - $T0
u, s = ($U1 - $U0) / tck, ($S1 - $S0) / tck
print(f'req/s {n / secs:8.0f}  user {u / n * 1e6:5.2f} us  sys {s / n * 1e6:5.2f} us  '
      f'total {(u + s) / n * 1e6:5.2f} us/req  busy {(u + s) / secs * 100:3.0f}%')"
