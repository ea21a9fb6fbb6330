#!/usr/bin/env bash
# Minimise each target's corpus (cargo fuzz cmin) and keep N of its inputs (default 20: the
# smallest and the largest halves) in fuzz/regressions/TARGET/, where tests/fuzz_regressions.rs
# checks them on stable. Crash inputs (fuzz/artifacts/TARGET/) are copied too: they must be
# fixed first.
set -euo pipefail
cd "$(dirname "$0")"
KEEP="${1:-20}"
for target in decode_requests sse_parser template prompt_file spool_segment provider_stream; do
    mkdir -p "regressions/$target"
    if [[ -d "corpus/$target" ]]; then
        cargo +nightly fuzz cmin "$target" >/dev/null 2>&1 || true
        # The smallest and the largest halves of the minimised corpus (each input there adds
        # coverage; the large ones reach deepest).
        find "corpus/$target" -type f -printf '%s %p\n' | sort -n |
            awk -v h="$((KEEP / 2))" '{ a[NR] = $0 } END { for (i = 1; i <= NR; i++) if (i <= h || i > NR - h) print a[i] }' |
            while read -r _ path; do cp "$path" "regressions/$target/"; done
    fi
    if [[ -d "artifacts/$target" ]]; then
        find "artifacts/$target" -type f -exec cp {} "regressions/$target/" \;
    fi
    echo "$target: $(ls "regressions/$target" | wc -l) inputs kept"
done
