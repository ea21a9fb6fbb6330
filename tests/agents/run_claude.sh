#!/usr/bin/env bash
# Run Claude Code once, non-interactively, against BASE_URL (e.g. http://127.0.0.1:8080).
# Usage: run_claude.sh BASE_URL INSTALL_DIR [PROMPT] [extra claude flags...]
#   INSTALL_DIR is the npm --prefix dir holding node_modules/.bin/claude.
# Prints the client's stdout; its stderr goes to stderr; the exit code is the client's.
# Env: CLAUDE_TIMEOUT (seconds, default 120), ANTHROPIC_API_KEY (default sk-ant-fake).
set -u
base_url=${1:?usage: run_claude.sh BASE_URL INSTALL_DIR [PROMPT] [flags...]}
install_dir=${2:?usage: run_claude.sh BASE_URL INSTALL_DIR [PROMPT] [flags...]}
prompt=${3:-Say hello}
shift $(( $# < 3 ? $# : 3 ))
install_dir=$(cd "$install_dir" && pwd) || exit 127
bin="$install_dir/node_modules/.bin/claude"
[ -x "$bin" ] || { echo "run_claude.sh: no $bin" >&2; exit 127; }
home=$(mktemp -d "${TMPDIR:-/tmp}/claude-home.XXXXXX")
trap 'rm -rf "$home"' EXIT
work="$home/work"; mkdir -p "$work"
cd "$work"
env -u ANTHROPIC_AUTH_TOKEN -u CLAUDE_CODE_USE_BEDROCK -u CLAUDE_CODE_USE_VERTEX \
  HOME="$home" XDG_CONFIG_HOME="$home/.config" \
  ANTHROPIC_BASE_URL="$base_url" \
  ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-sk-ant-fake}" \
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
  DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 \
  timeout "${CLAUDE_TIMEOUT:-120}" "$bin" -p "$prompt" "$@" </dev/null
