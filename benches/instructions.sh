#!/usr/bin/env bash
# Instructions per request of a promptd binary, counted by callgrind, on /v1/chat/completions
# against examples/fake_provider: cache hits, pass-through (bypass) and stored calls (refresh:
# the provider called and the answer stored). Unlike CPU time on a shared machine, the count is repeatable run to run, so two binaries compare within ~1 %
# (user space only: the kernel's share and jemalloc's purging are not counted).
#
#   benches/instructions.sh target/release/promptd [N]     # N requests per figure (2000)
#
# Needs valgrind (callgrind_control), oha, curl, and target/release/examples/fake_provider
# (cargo build --release --example fake_provider).
set -euo pipefail
BIN="$(realpath "$1")"; N="${2:-2000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; cd "$T"
$ROOT/target/release/examples/fake_provider --addr 127.0.0.1:0 > mock.out 2>&1 & MOCK=$!
sleep 0.5; ADDR=$(sed -n 's/^listening on //p' mock.out)
cat > p.toml <<EOT
socket = "$T/p.sock"
state_dir = "$T/state"
prompts_dir = "$T/prompts"
log_level = "warn"
default_provider = "openai"
[providers.openai]
kind = "openai"
base_url = "http://$ADDR/v1"
api_key = "sk-bench"
max_retries = 0
EOT
valgrind --tool=callgrind --callgrind-out-file=cg.out "$BIN" serve --config p.toml > d.log 2>&1 & VG=$!
for i in $(seq 600); do [[ -S p.sock ]] && break; sleep 0.1; done
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
curl -s --unix-socket p.sock http://localhost/v1/chat/completions -H 'content-type: application/json' -d "$BODY" >/dev/null
curl -s --unix-socket p.sock http://localhost/v1/chat/completions -H 'content-type: application/json' -d "$BODY" -H 'x-promptd-cache: bypass' >/dev/null
sleep 1
measure() {
  callgrind_control -z $VG >/dev/null 2>&1
  oha --no-tui -n $N -c 4 --unix-socket p.sock -m POST -H 'content-type: application/json' "$@" -d "$BODY" http://localhost/v1/chat/completions > oha.out
  callgrind_control -d $VG >/dev/null 2>&1; sleep 1
  local f; f=$(ls -t cg.out.* | head -1)
  local ir; ir=$(grep -m1 '^summary:\|^totals:' "$f" | awk '{print $2}')
  echo "$ir" ; rm -f cg.out.*
}
HIT=$(measure)
PASS=$(measure -H 'x-promptd-cache: bypass')
STORED=$(measure -H 'x-promptd-cache: refresh')
echo "$BIN hit_instr_per_req=$((HIT / N)) pass_instr_per_req=$((PASS / N)) stored_instr_per_req=$((STORED / N))"
kill $VG $MOCK; wait 2>/dev/null || true
