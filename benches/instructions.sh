#!/usr/bin/env bash
# Instructions per request of a promptd binary, counted by callgrind, on /v1/chat/completions
# against examples/fake_provider: cache hits, pass-through (bypass) and stored calls (refresh:
# the provider called and the answer stored). Unlike CPU time on a shared machine, the count is repeatable run to run, so two binaries compare within ~1 %
# (user space only: the kernel's share and jemalloc's purging are not counted).
#
#   benches/instructions.sh target/release/promptd [N]     # N requests per figure (2000)
#
# DOOR=messages asks Anthropic's Messages door (POST /v1/messages, `max_tokens` in the body and
# `anthropic-version: 2023-06-01`, as the Anthropic SDK sends) instead of the OpenAI route;
# MODEL (default gpt-4o-mini: the OpenAI-kind provider) `anthropic/NAME` goes to an
# Anthropic-kind provider on the same fake. So DOOR=messages MODEL=anthropic/NAME is the Messages
# door on the same wire (the body forwarded to the fake's /v1/messages), DOOR=messages alone the
# Messages door translated to chat completions, MODEL=anthropic/NAME alone the OpenAI route
# translated to Anthropic's. DOOR=parea asks Parea's POST /api/parea/v1/completion (MODEL's name after any
# `provider/`, to the openai provider). DOOR=responses asks OpenAI's Responses door (POST /v1/responses, the
# conversation as `input` items): with the default MODEL translated to the fake's chat completions,
# with `anthropic/NAME` to its /v1/messages, with `responses/NAME` (a provider marked
# `responses = true`) on the same wire, the body forwarded to the fake's /v1/responses.
# TRANSPORT=tcp asks over promptd's loopback TCP listener instead of its Unix socket (the
# transport gateways are compared on; a record then notes the TCP peer, not a uid and gid).
# The last line ends with door= and model=. CG_OUT=DIR keeps the three
# callgrind profiles there (hit.cg, pass.cg, stored.cg), for `callgrind_annotate`.
#
# Needs valgrind (callgrind_control), oha, curl, and target/release/examples/fake_provider
# (cargo build --release --example fake_provider).
set -euo pipefail
BIN="$(realpath "$1")"; N="${2:-2000}"; DOOR="${DOOR:-chat}"; MODEL="${MODEL:-gpt-4o-mini}"
case "$DOOR" in
  chat) URL=http://localhost/v1/chat/completions; WIRE=(); MAX="" ;;
  messages) URL=http://localhost/v1/messages; WIRE=(-H 'anthropic-version: 2023-06-01'); MAX='"max_tokens":1024,' ;;
  responses) URL=http://localhost/v1/responses; WIRE=(); MAX="" ;;
  parea) URL=http://localhost/api/parea/v1/completion; WIRE=(); MAX="" ;;
  *) echo "instructions.sh: DOOR is chat, messages, responses or parea, not $DOOR" >&2; exit 2 ;;
esac
# The conversation's key: the Responses API calls it input (a list of items, here messages).
LIST=messages; [[ "$DOOR" != responses ]] || LIST=input
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TCP=""; CONN=(--unix-socket p.sock)
if [[ "${TRANSPORT:-uds}" == tcp ]]; then
  TCP="127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  URL="http://$TCP${URL#http://localhost}"; CONN=()
fi
CG_OUT="${CG_OUT:+$(realpath -m "$CG_OUT")}"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; cd "$T"
$ROOT/target/release/examples/fake_provider --addr 127.0.0.1:0 > mock.out 2>&1 & MOCK=$!
sleep 0.5; ADDR=$(sed -n 's/^listening on //p' mock.out)
cat > p.toml <<EOT
socket = "$T/p.sock"
${TCP:+tcp = \"$TCP\"}
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
if [[ "$MODEL" == anthropic/* ]]; then cat >> p.toml <<EOT
[providers.anthropic]
kind = "anthropic"
base_url = "http://$ADDR/v1"
api_key = "sk-bench"
max_retries = 0
EOT
fi
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
for i in $(seq 600); do [[ -S p.sock ]] && break; sleep 0.1; done
BODY="{\"model\":\"$MODEL\",$MAX\"$LIST\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"
# Parea's route: the configuration names the provider; `cache: false` is its bypass, and it has
# no refresh (its stored figure repeats the bypass).
PAREA_CONFIG="\"llm_configuration\":{\"model\":\"${MODEL#*/}\",\"provider\":\"openai\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}"
[[ "$DOOR" != parea ]] || BODY="{$PAREA_CONFIG}"
curl -s "${CONN[@]}" $URL -H 'content-type: application/json' "${WIRE[@]}" -d "$BODY" > first.out
curl -s "${CONN[@]}" $URL -H 'content-type: application/json' "${WIRE[@]}" -d "$BODY" -H 'x-promptd-cache: bypass' >/dev/null
grep -q 'Hello!' first.out || { echo "instructions.sh: the first answer: $(cat first.out)" >&2; exit 1; }
sleep 1
measure() {
  callgrind_control -z $VG >/dev/null 2>&1
  oha --no-tui -n $N -c 4 "${CONN[@]}" -m POST -H 'content-type: application/json' "${WIRE[@]}" "$@" -d "$BODY" $URL > oha.out
  callgrind_control -d $VG >/dev/null 2>&1; sleep 1
  local f; f=$(ls -t cg.out.* | head -1)
  local ir; ir=$(grep -m1 '^summary:\|^totals:' "$f" | awk '{print $2}')
  if [[ -n "${CG_OUT:-}" ]]; then mkdir -p "$CG_OUT"; cp "$f" "$CG_OUT/$CG.cg"; fi
  echo "$ir" ; rm -f cg.out.*
}
HIT=$(CG=hit measure)
if [[ "$DOOR" == parea ]]; then
  BODY="{\"cache\":false,$PAREA_CONFIG}"
  PASS=$(CG=pass measure); STORED=$PASS
else
  PASS=$(CG=pass measure -H 'x-promptd-cache: bypass')
  STORED=$(CG=stored measure -H 'x-promptd-cache: refresh')
fi
echo "$BIN hit_instr_per_req=$((HIT / N)) pass_instr_per_req=$((PASS / N)) stored_instr_per_req=$((STORED / N)) door=$DOOR model=$MODEL"
kill $VG $MOCK; wait 2>/dev/null || true
