#!/usr/bin/env bash
# Run Codex CLI once, non-interactively (`codex exec`), against BASE_URL
# (the server root, e.g. http://127.0.0.1:8080; "/v1" is appended).
# Usage: run_codex.sh BASE_URL INSTALL_DIR [PROMPT] [extra codex exec flags...]
#   INSTALL_DIR is the npm --prefix dir holding node_modules/.bin/codex.
# Prints the client's stdout; its stderr goes to stderr; the exit code is the client's.
# Env: CODEX_TIMEOUT (seconds, default 120), CODEX_MODEL (default gpt-5-codex),
#      FAKE_KEY (default sk-fake).
set -u
base_url=${1:?usage: run_codex.sh BASE_URL INSTALL_DIR [PROMPT] [flags...]}
install_dir=${2:?usage: run_codex.sh BASE_URL INSTALL_DIR [PROMPT] [flags...]}
prompt=${3:-Say hello}
shift $(( $# < 3 ? $# : 3 ))
install_dir=$(cd "$install_dir" && pwd) || exit 127
bin="$install_dir/node_modules/.bin/codex"
[ -x "$bin" ] || { echo "run_codex.sh: no $bin" >&2; exit 127; }
home=$(mktemp -d "${TMPDIR:-/tmp}/codex-home.XXXXXX")
trap 'rm -rf "$home"' EXIT
mkdir -p "$home/codex" "$home/work"
cat > "$home/codex/config.toml" <<TOML
model_provider = "fake"
model = "${CODEX_MODEL:-gpt-5-codex}"

[model_providers.fake]
name = "fake"
base_url = "${base_url%/}/v1"
env_key = "FAKE_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[otel]
exporter = "none"
TOML
cd "$home/work"
env -u OPENAI_API_KEY -u OPENAI_BASE_URL \
  HOME="$home" CODEX_HOME="$home/codex" FAKE_KEY="${FAKE_KEY:-sk-fake}" \
  timeout "${CODEX_TIMEOUT:-120}" "$bin" exec --skip-git-repo-check "$@" "$prompt" </dev/null
