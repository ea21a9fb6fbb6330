#!/usr/bin/env bash
# Instructions per stream of a promptd binary, counted by callgrind: 200 streams on
# /v1/chat/completions through curl over the Unix socket (cache bypassed) against
# examples/fake_provider, which serves OpenAI chunks and Anthropic events alike. MODEL
# `gpt-4o-mini` is the same-wire path (an OpenAI-kind provider), `anthropic/<name>` the
# translation to an Anthropic-kind provider. User space only, repeatable to about 1 %.
#
#   benches/stream_instructions.sh target/release/promptd gpt-4o-mini [N]
#
# Needs valgrind (callgrind_control), curl, and target/release/examples/fake_provider.
set -euo pipefail
BIN="$(realpath "$1")"; MODEL="$2"; N="${3:-200}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; cd "$T"
"$ROOT"/target/release/examples/fake_provider --addr 127.0.0.1:0 > mock.out 2>&1 & MOCK=$!
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
[providers.anthropic]
kind = "anthropic"
base_url = "http://$ADDR/v1"
api_key = "sk-bench"
max_retries = 0
EOT
valgrind --tool=callgrind --callgrind-out-file=cg.out "$BIN" serve --config p.toml > d.log 2>&1 & VG=$!
for _ in $(seq 600); do [[ -S p.sock ]] && break; sleep 0.1; done
BODY="{\"model\":\"$MODEL\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"
post() {
  curl -s --unix-socket p.sock http://localhost/v1/chat/completions \
    -H 'content-type: application/json' -H 'x-promptd-cache: bypass' -d "$BODY"
}
post > first.out
sleep 1
callgrind_control -z $VG >/dev/null 2>&1
for _ in $(seq "$N"); do post > /dev/null; done
callgrind_control -d $VG >/dev/null 2>&1; sleep 1
f=$(ls -t cg.out.* | head -1)
ir=$(grep -m1 '^summary:\|^totals:' "$f" | awk '{print $2}')
echo "$BIN model=$MODEL per_stream=$((ir / N)) data_lines=$(grep -c '^data:' first.out)"
kill $VG $MOCK 2>/dev/null; wait 2>/dev/null || true
