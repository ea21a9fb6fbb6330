#!/usr/bin/env python3
"""The report of benches/load.sh: reads the run files it wrote into RUNS and prints the raw
lines of every run, then the summary (the median of each cell over the repetitions), the
ratios to the floor of the same transport, and the targets. Exits 1 if any request failed.

Run files, one set per run `TARGET.KIND.cCONNS.rREP` (KIND oha or sse): `.json` (the load
tool's output), `.cpu0`/`.cpu1` and `.mock0`/`.mock1` (the measured process's and the mock's
CPU before and after: clock ticks, schedstat ns of the live threads, thread ids), for promptd
`.metrics0`/`.metrics1` (its promptd_overhead_seconds buckets). Per target: `TARGET.idle` (VmRSS
in KiB after start) and `TARGET.peak.rREP` (VmHWM in KiB after the target's runs).
"""

import json
import math
import os
import statistics
import sys

RUNS, CLK_TCK, DURATION, REPS, CONNS, STREAM_CONNS, CHUNKS, GAP_MS, DELAY_MS = sys.argv[1:10]
CLK_TCK = int(CLK_TCK)
REPS = int(REPS)
CONNS = [int(c) for c in CONNS.split()]
HI, LO = max(CONNS), min(CONNS)
SC = int(STREAM_CONNS)

about = dict(
    line.rstrip("\n").split("=", 1) for line in open(f"{RUNS}/about") if "=" in line
)
# ROUTE=openai-anthropic: promptd's OpenAI route calls an Anthropic-kind provider. ROUTE=messages
# and messages-openai: Anthropic's Messages door, to an Anthropic-kind provider (the same wire)
# or translated to an OpenAI-kind one; the floor answers Anthropic's shapes. ROUTE=responses and
# responses-openai: OpenAI's Responses door, to an OpenAI-kind provider serving it (the same wire)
# or translated to its chat completions; the floor answers the Responses shapes.
ROUTE = about.get("route")
TO = {
    "openai-anthropic": ", translated to Anthropic",
    "messages-openai": ", translated to OpenAI",
    "responses-openai": ", translated to chat completions",
}.get(ROUTE, "")
DOOR = {
    "messages": ", Messages door",
    "messages-openai": ", Messages door",
    "responses": ", Responses door",
    "responses-openai": ", Responses door",
}.get(ROUTE, "")
SHAPES = {
    "messages": ", Anthropic shapes",
    "messages-openai": ", Anthropic shapes",
    "responses": ", Responses shapes",
    "responses-openai": ", Responses shapes",
}.get(ROUTE, "")
LABELS = {
    "floor": f"mock provider direct (floor{SHAPES}), Unix socket",
    "hit": f"promptd, cache hits{DOOR} (Unix socket)",
    "pass": f"promptd, pass-through{DOOR}{TO} (Unix socket, mock over TCP)",
    "floor-tcp": f"mock provider direct (floor{SHAPES}), TCP",
    "hit-tcp": f"promptd, cache hits{DOOR} (TCP)",
    "pass-tcp": f"promptd, pass-through{DOOR}{TO} (TCP, mock over TCP)",
    "noveum": "noveum-ai-gateway 2.0.1 (Rust), pass-through (TCP, mock over TCP)",
}
FLOOR_OF = {
    "hit": "floor",
    "pass": "floor",
    "hit-tcp": "floor-tcp",
    "pass-tcp": "floor-tcp",
    "noveum": "floor-tcp",
}
# The script writes TARGET.idle for every target it ran (the floor over TCP with TRANSPORT=tcp or
# both, or for the peer).
TARGETS = [t for t in LABELS if os.path.exists(f"{RUNS}/{t}.idle")]
if "noveum" in TARGETS and not about.get("noveum"):
    TARGETS.remove("noveum")


def base(target):
    """The kind of a target whatever its transport: hit-tcp is a hit."""
    return target.removesuffix("-tcp")


def read(path):
    with open(path) as f:
        return f.read().strip()


def cpu_seconds(run, which):
    """CPU seconds the process used during the run: the schedstat ns of its threads when no
    thread ended meanwhile and the clock ticks agree with them to within two ticks, else the
    ticks (which count the threads that ended too)."""
    a, b = read(f"{RUNS}/{run}.{which}0").split(), read(f"{RUNS}/{run}.{which}1").split()
    ticks = (int(b[0]) - int(a[0])) / CLK_TCK
    ns = (int(b[1]) - int(a[1])) / 1e9
    same_threads = set(a[2].split(",")) <= set(b[2].split(","))
    if same_threads and abs(ticks - ns) < 2.0 / CLK_TCK:
        return ns
    return ticks


def overhead_quantiles(run):
    """promptd's own time per completion (its promptd_overhead_seconds histogram, all cache
    outcomes of the route): the upper bound in µs of the bucket holding p50 and p99."""
    def buckets(path):
        out = {}
        if not os.path.exists(path):
            return out
        for line in open(path):
            if f'route="{about["route_label"]}"' not in line:
                continue
            le = float(line.split('le="', 1)[1].split('"', 1)[0])
            out[le] = out.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    b0, b1 = buckets(f"{RUNS}/{run}.metrics0"), buckets(f"{RUNS}/{run}.metrics1")
    total = b1.get(math.inf, 0) - b0.get(math.inf, 0)
    if total <= 0:
        return None, None
    found = []
    for q in (0.5, 0.99):
        for le in sorted(b1):
            if b1[le] - b0.get(le, 0) >= q * total:
                found.append(le * 1e6)
                break
        else:
            found.append(None)
    return found[0], found[1]


about["route_label"] = {
    "/v1/chat/completions": "openai_chat_completions",
    "/v1/messages": "anthropic_messages",
    "/v1/responses": "openai_responses",
}.get(about["promptd_path"], "completion")


def load(target, kind, conns, rep):
    run = f"{target}.{kind}.c{conns}.r{rep}"
    path = f"{RUNS}/{run}.json"
    try:
        d = json.loads(read(path))
    except (OSError, ValueError) as e:
        return {"run": run, "failed": f"no result ({e}): {read(f'{RUNS}/{run}.err')[:300]}"}
    if kind == "oha":
        pct = d.get("latencyPercentiles") or {}
        codes = {str(k): v for k, v in d.get("statusCodeDistribution", {}).items()}
        errors = d.get("errorDistribution", {})
        n = sum(codes.values())
        r = {
            "rps": d["summary"]["requestsPerSec"],
            "seconds": d["summary"]["total"],
            "p50": (pct.get("p50") or math.nan) * 1000.0,
            "p99": (pct.get("p99") or math.nan) * 1000.0,
            "codes": codes,
            "errors": errors,
        }
    else:
        codes = d["statuses"]
        n = d["requests"]
        r = {
            "rps": d["rps"],
            "seconds": d["seconds"],
            "p50": d["ttfb_p50_ms"],
            "p99": d["ttfb_p99_ms"],
            "total50": d["total_p50_ms"],
            "total99": d["total_p99_ms"],
            "events": (d["events_min"], d["events_max"]),
            "codes": codes,
            "errors": {d["first_error"]: d["errors"]} if d["errors"] else {},
        }
    r["run"] = run
    r["n"] = n
    cpu = cpu_seconds(run, "cpu")
    r["cpu"] = cpu / max(n, 1) * 1e6
    # How busy the measured process's core was: near 100 % it is the bottleneck; well below,
    # the load generator's core (or other work on the machine) is.
    r["busy"] = cpu / r["seconds"] * 100.0 if r["seconds"] else math.nan
    r["mock"] = cpu_seconds(run, "mock") / max(n, 1) * 1e6
    if base(target) in ("hit", "pass") and kind == "oha":
        r["own"] = overhead_quantiles(run)
    return r


def fmt(v, spec=".3f", none="-"):
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


# --- raw lines ---------------------------------------------------------------------------------
results = {}
bad = []
for target in TARGETS:
    for rep in range(1, REPS + 1):
        for c in CONNS:
            results.setdefault((target, "oha", c), []).append(load(target, "oha", c, rep))
        if base(target) != "hit":
            results.setdefault((target, "sse", SC), []).append(load(target, "sse", SC, rep))
for rs in results.values():
    for r in rs:
        if "failed" in r:
            bad.append(f"{r['run']}: {r['failed']}")
        elif r["errors"] or any(k != "200" for k in r["codes"]):
            bad.append(f"{r['run']}: status {r['codes']} errors {r['errors']}")
        elif r.get("events") and r["events"][0] < 2:
            bad.append(f"{r['run']}: an answer with {r['events'][0]} data: lines")

print(f"# benches/load.sh: {about['cpu_model']}, {about['cpus']} CPUs, Linux {about['kernel']}, {about['oha']}")
print(f"# pinning: {about['pinning']}")
print(f"# {DURATION} per run, {REPS} repetition(s), medians; streams: {CHUNKS} chunks "
      f"{GAP_MS} ms apart; mock delay {DELAY_MS} ms; promptd route {about['promptd_path']}"
      + {
          "openai-anthropic": " to an Anthropic-kind provider (the mock's /v1/messages)",
          "messages": " to an Anthropic-kind provider (the mock's /v1/messages, the same wire)",
          "messages-openai": " to an OpenAI-kind provider (the mock's /v1/chat/completions)",
      }.get(ROUTE, "")
      + f"; transport {about.get('transport', 'uds')}")
print(f"# load average before: {read(f'{RUNS}/load-before').split('load average:')[-1].strip()}; "
      f"after: {read(f'{RUNS}/load-after').split('load average:')[-1].strip()}")
print()
print("oha runs (cpu: the measured process's user+system CPU per request; busy: that CPU over "
      "the run's time; mock: the mock provider's CPU per request; own: promptd's own time per "
      "completion, its histogram's bucket bound)")
print(f"{'run':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu us':>8} {'busy':>5} "
      f"{'mock us':>8} {'own p50/p99 us':>15}  status")
for target in TARGETS:
    for c in CONNS:
        for r in results[(target, "oha", c)]:
            if "failed" in r:
                print(f"{r['run']:<22} failed: {r['failed']}")
                continue
            own = r.get("own")
            own_s = f"{fmt(own[0], '.0f')}/{fmt(own[1], '.0f')}" if own else "-"
            mock = fmt(r["mock"], ".1f") if base(target) in ("pass", "noveum") else "-"
            codes = ",".join(f"{k}:{v}" for k, v in sorted(r["codes"].items()))
            print(f"{r['run']:<22} {r['rps']:>9.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} "
                  f"{r['cpu']:>8.1f} {r['busy']:>4.0f}% {mock:>8} {own_s:>15}  {codes}"
                  + (f" errors {r['errors']}" if r["errors"] else ""))
print()
print("sse_load runs (TTFB: request sent to the first data: event; total: to the answer's end; "
      "cpu per stream)")
print(f"{'run':<22} {'streams/s':>9} {'TTFB p50':>9} {'TTFB p99':>9} {'total p50':>9} "
      f"{'total p99':>9} {'cpu us':>8} {'busy':>5} {'mock us':>8} {'events':>7}  status")
for target in TARGETS:
    for r in results.get((target, "sse", SC), []):
        if "failed" in r:
            print(f"{r['run']:<22} failed: {r['failed']}")
            continue
        mock = fmt(r["mock"], ".1f") if base(target) in ("pass", "noveum") else "-"
        codes = ",".join(f"{k}:{v}" for k, v in sorted(r["codes"].items()))
        ev = f"{r['events'][0]}..{r['events'][1]}"
        print(f"{r['run']:<22} {r['rps']:>9.0f} {r['p50']:>9.3f} {r['p99']:>9.3f} "
              f"{r['total50']:>9.3f} {r['total99']:>9.3f} {r['cpu']:>8.1f} {r['busy']:>4.0f}% "
              f"{mock:>8} {ev:>7}  {codes}"
              + (f" errors {r['errors']}" if r["errors"] else ""))
print()


# --- summary -----------------------------------------------------------------------------------
def cell(target, kind, c, key):
    return median(r.get(key) for r in results.get((target, kind, c), []) if "failed" not in r)


def kib_file(path):
    try:
        return int(read(path)) / 1024.0
    except (OSError, ValueError):
        return None


summary = {}
for target in TARGETS:
    s = {
        "rps": cell(target, "oha", HI, "rps"),
        "p99": cell(target, "oha", HI, "p99"),
        "p50lo": cell(target, "oha", LO, "p50"),
        "cpu": cell(target, "oha", HI, "cpu"),
        "cpulo": cell(target, "oha", LO, "cpu"),
        "ttfb50": cell(target, "sse", SC, "p50"),
        "ttfb99": cell(target, "sse", SC, "p99"),
        "scpu": cell(target, "sse", SC, "cpu"),
        "idle": kib_file(f"{RUNS}/{target}.idle"),
        "peak": median(kib_file(f"{RUNS}/{target}.peak.r{rep}") for rep in range(1, REPS + 1)),
    }
    summary[target] = s

peak_note = ""
if os.path.exists(f"{RUNS}/peak-not-reset"):
    peak_note = " (clear_refs refused: peaks are since the process started)"
print(f"Summary: medians of {REPS} repetition(s); CPU is the measured process's; peak RSS is "
      f"VmHWM over the target's own runs{peak_note}")
print()
print(f"| target | req/s c{HI} | p99 c{HI} | p50 c{LO} | CPU µs/req c{HI} (c{LO}) "
      f"| stream TTFB p50/p99 (c{SC}) | CPU µs/stream | RSS idle/peak |")
print("|---|---|---|---|---|---|---|---|")
for target in TARGETS:
    s = summary[target]
    stream = "-" if base(target) == "hit" else f"{fmt(s['ttfb50'])}/{fmt(s['ttfb99'])} ms"
    scpu = "-" if base(target) == "hit" else fmt(s["scpu"], ".0f")
    print(f"| {LABELS[target]} | {fmt(s['rps'], ',.0f')} | {fmt(s['p99'])} ms | "
          f"{fmt(s['p50lo'])} ms | {fmt(s['cpu'], '.1f')} ({fmt(s['cpulo'], '.1f')}) | {stream} | "
          f"{scpu} | {fmt(s['idle'], '.1f')}/{fmt(s['peak'], '.1f')} MiB |")
print()


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "-"


def plus(a, b):
    return f"{a - b:+.3f} ms" if a is not None and b is not None else "-"


print("Against the floor of the same transport (× floor, or + over it)")
print()
print(f"| target | req/s c{HI} | p99 c{HI} | p50 c{LO} | CPU/req c{HI} | TTFB p50 (c{SC}) "
      f"| TTFB p99 (c{SC}) | CPU/stream |")
print("|---|---|---|---|---|---|---|---|")
for target in TARGETS:
    floor = FLOOR_OF.get(target)
    if floor not in summary:
        continue
    s, f = summary[target], summary[floor]
    streamed = base(target) != "hit"
    print(f"| {LABELS[target]} | {ratio(s['rps'], f['rps'])} | {ratio(s['p99'], f['p99'])} | "
          f"{ratio(s['p50lo'], f['p50lo'])} | {ratio(s['cpu'], f['cpu'])} | "
          f"{plus(s['ttfb50'], f['ttfb50']) if streamed else '-'} | "
          f"{plus(s['ttfb99'], f['ttfb99']) if streamed else '-'} | "
          f"{ratio(s['scpu'], f['scpu']) if streamed else '-'} |")
print()

# --- targets -----------------------------------------------------------------------------------
# Issue 15's goals, one column pair for each transport promptd was measured over (the stream TTFB
# over the floor of the same transport).
DOORS = [(sfx, door) for sfx, door in (("", "Unix socket"), ("-tcp", "TCP")) if f"hit{sfx}" in summary]


def goals(sfx):
    hit, pas = summary.get(f"hit{sfx}", {}), summary.get(f"pass{sfx}", {})
    floor = summary.get(f"floor{sfx}", {})
    overhead = (
        pas["ttfb50"] - floor["ttfb50"]
        if pas.get("ttfb50") is not None and floor.get("ttfb50") is not None
        else None
    )
    return [
        (f"pass-through: promptd CPU per request (c{HI})", pas.get("cpu"), 30.0, "µs", ".1f"),
        (f"cache hits: promptd CPU per request (c{HI})", hit.get("cpu"), 12.0, "µs", ".1f"),
        (f"cache hits: p50 at c{LO}", hit.get("p50lo") and hit["p50lo"] * 1000.0, 70.0, "µs",
         ".0f"),
        (f"streams: TTFB p50 over the direct stream (c{SC})", overhead, 0.3, "ms", ".3f"),
        (f"streams: promptd CPU per {CHUNKS}-chunk stream", pas.get("scpu"), 150.0, "µs", ".0f"),
        ("RSS idle", hit.get("idle"), 15.0, "MiB", ".1f"),
        ("RSS peak under hit load", hit.get("peak"), 30.0, "MiB", ".1f"),
    ]


if DOORS:
    print("| target | goal | " + " | ".join(f"{door} | met" for _, door in DOORS) + " |")
    print("|---|---|" + "---|---|" * len(DOORS))
    rows = [goals(sfx) for sfx, _ in DOORS]
    for i, (name, _, goal, unit, spec) in enumerate(rows[0]):
        cells = []
        for row in rows:
            value = row[i][1]
            met = "-" if value is None else ("yes" if value <= goal else "**no**")
            cells.append(f"{fmt(value, spec)} {unit} | {met}")
        print(f"| {name} | ≤ {goal:g} {unit} | " + " | ".join(cells) + " |")

if bad:
    print()
    print("load.sh: some requests failed:", file=sys.stderr)
    for b in bad:
        print(f"  {b}", file=sys.stderr)
    sys.exit(1)
