#!/usr/bin/env bash
# Instructions per stream of a promptd binary, counted by callgrind: 200 streams on
# /v1/chat/completions through curl over the Unix socket (cache bypassed) against
# examples/fake_provider, which serves OpenAI chunks and Anthropic events alike. MODEL
# `gpt-4o-mini` is the same-wire path (an OpenAI-kind provider), `anthropic/<name>` the
# translation to an Anthropic-kind provider. User space only, repeatable to about 1 %.
#
#   benches/stream_instructions.sh target/release/promptd gpt-4o-mini [N]
#
# DOOR=messages streams through Anthropic's Messages door instead (POST /v1/messages,
# `max_tokens` and `anthropic-version: 2023-06-01`): MODEL `anthropic/<name>` is then the same
# wire (the fake's Anthropic events decoded and rendered back as Anthropic's), `gpt-4o-mini` the
# translation from the fake's OpenAI chunks. DOOR=responses streams through OpenAI's Responses door
# (POST /v1/responses, the conversation as `input` items): `gpt-4o-mini` translated from the fake's
# chat chunks, `anthropic/<name>` from its Anthropic events, rendered as Responses events;
# `responses/<name>` (a provider marked `responses = true`) the fake's Responses events forwarded
# as they came. DOOR=parea streams through Parea's POST /api/parea/v1/completion/stream
# (`llm_configuration`, `cache: false`; MODEL's provider before a `/`, else openai). The line
# ends with door= and the answer's end (`end=message_stop`, `end=response.completed` or
# `end=[DONE]` if the first stream had it); `data_lines` counts the answer's events. CG_OUT=DIR keeps the callgrind
# profile there (stream.cg), for `callgrind_annotate`.
#
# Needs valgrind (callgrind_control), curl, and target/release/examples/fake_provider.
set -euo pipefail
BIN="$(realpath "$1")"; MODEL="$2"; N="${3:-200}"; DOOR="${DOOR:-chat}"
case "$DOOR" in
  chat) URL=http://localhost/v1/chat/completions; WIRE=(); MAX="" ;;
  messages) URL=http://localhost/v1/messages; WIRE=(-H 'anthropic-version: 2023-06-01'); MAX='"max_tokens":1024,' ;;
  responses) URL=http://localhost/v1/responses; WIRE=(); MAX="" ;;
  parea) URL=http://localhost/api/parea/v1/completion/stream; WIRE=(); MAX="" ;;
  *) echo "stream_instructions.sh: DOOR is chat, messages, responses or parea, not $DOOR" >&2; exit 2 ;;
esac
# The conversation's key: the Responses API calls it input (a list of items, here messages).
LIST=messages; [[ "$DOOR" != responses ]] || LIST=input
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CG_OUT="${CG_OUT:+$(realpath -m "$CG_OUT")}"
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
# MODEL=responses/NAME: a provider that serves the Responses API (the same wire for DOOR=responses).
if [[ "$MODEL" == responses/* ]]; then cat >> p.toml <<EOT
[providers.responses]
kind = "openai"
base_url = "http://$ADDR/v1"
api_key = "sk-bench"
max_retries = 0
responses = true
EOT
fi
valgrind --tool=callgrind --callgrind-out-file=cg.out "$BIN" serve --config p.toml > d.log 2>&1 & VG=$!
for _ in $(seq 600); do [[ -S p.sock ]] && break; sleep 0.1; done
BODY="{\"model\":\"$MODEL\",$MAX\"stream\":true,\"$LIST\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"
# Parea's stream route: the configuration in llm_configuration (provider and model apart), no
# cache (`cache: false`, its bypass).
if [[ "$DOOR" == parea ]]; then
  PROVIDER=openai; NAME="$MODEL"; [[ "$MODEL" != */* ]] || { PROVIDER="${MODEL%%/*}"; NAME="${MODEL#*/}"; }
  BODY="{\"llm_configuration\":{\"model\":\"$NAME\",\"provider\":\"$PROVIDER\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]},\"cache\":false}"
fi
post() {
  curl -s --unix-socket p.sock $URL "${WIRE[@]}" \
    -H 'content-type: application/json' -H 'x-promptd-cache: bypass' -d "$BODY"
}
post > first.out
sleep 1
callgrind_control -z $VG >/dev/null 2>&1
for _ in $(seq "$N"); do post > /dev/null; done
callgrind_control -d $VG >/dev/null 2>&1; sleep 1
f=$(ls -t cg.out.* | head -1)
ir=$(grep -m1 '^summary:\|^totals:' "$f" | awk '{print $2}')
if [[ -n "${CG_OUT:-}" ]]; then mkdir -p "$CG_OUT"; cp "$f" "$CG_OUT/stream.cg"; fi
END=$(grep -o -m1 '^event: message_stop\|^event: response\.completed\|^data: \[DONE\]' first.out |
  sed 's/^event: //; s/^data: //') || END=none
echo "$BIN model=$MODEL per_stream=$((ir / N)) data_lines=$(grep -c '^data:' first.out) door=$DOOR end=$END"
kill $VG $MOCK 2>/dev/null; wait 2>/dev/null || true
