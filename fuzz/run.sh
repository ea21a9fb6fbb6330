#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), with cargo-fuzz on the nightly toolchain
# (`cargo install cargo-fuzz`). Crashes land in fuzz/artifacts/TARGET/; keep an interesting
# input as a regression test in the normal suite with fuzz/keep.sh (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
for target in decode_requests sse_parser template prompt_file spool_segment provider_stream; do
    echo "== $target for ${SECONDS_EACH}s"
    if ! cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048; then
        echo "== $target FAILED: see fuzz/artifacts/$target/"
        failed=1
    fi
done
exit "${failed:-0}"
