#!/usr/bin/env bash
# Name-scoring benchmark, one core: (1) the domain model's cost per name in plain Rust against the
# same network through tch at batch 1 and 1024 (`domain-bench`, needs LIBTORCH; skipped with a
# note otherwise), and the flow model's cost per flow; (2) the corpus replay with scoring on (the
# default: name scores and alerts, flow scores logged), names in shadow mode, and both models off,
# ROUNDS each, interleaved, with the number of names scored.
#   ROUNDS=5 LIBTORCH=... bash bench/names.sh        # results in bench/out/names/
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
corpus_bench names 5
if [ -n "${LIBTORCH:-}" ]; then
  cargo build --release -q -p palisade-classifiers --features train --bin domain-bench
  taskset -c 0 target/release/domain-bench | tee "$OUT/micro.txt"
else
  echo "domain-bench skipped: set LIBTORCH (see classifiers/MODEL.md) for the tch comparison"
fi
cargo build --release -q
P=target/release/palisade
cat "$CORPUS" > /dev/null
: > "$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
  for mode in on shadow off; do
    case $mode in on) extra=() ;; shadow) extra=(--name-shadow) ;; off) extra=(--name-model off --flow-model off) ;; esac
    taskset -c 0 "$P" replay "$CORPUS" --eve "$OUT/eve-$mode.json" ${extra[@]+"${extra[@]}"} 2> "$OUT/$mode.err" || true
    pps=$(grep -oE '\(([0-9]+) packets/s' "$OUT/$mode.err" | grep -oE '[0-9]+')
    echo "$mode $pps" >> "$OUT/runs.txt"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
runs = {}
for l in open(f"{out}/runs.txt"):
    m, p = l.split(); runs.setdefault(m, []).append(int(p))
on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
paired = statistics.median(a / b for a, b in zip(runs["on"], runs["off"]))
sh = statistics.median(runs["shadow"])
import re
m = re.search(r"names: ([0-9]+) scored with (\S+) .*?, ([0-9]+) at or above", open(f"{out}/on.err").read())
scored, model, alerted = (m.group(1), m.group(2), m.group(3)) if m else ("?", "?", "?")
ev = sum(1 for l in open(f"{out}/eve-on.json") if '"name_score"' in l)
print(f"replay packets/s (median of {len(runs['on'])}): scoring on {on/1e6:.3f} M, shadow {sh/1e6:.3f} M, off {off/1e6:.3f} M")
print(f"on/off {on/off:.3f} ({(1-on/off)*100:.1f}% slower); shadow/off {sh/off:.3f} ({(1-sh/off)*100:.1f}% slower); median of the rounds' own on/off {paired:.3f}")
print(f"names scored {scored} by {model} (at or above the alert threshold: {alerted}); events carrying a score {ev}")
PY
if command -v perf > /dev/null; then
  perf record -q -F 4999 -o "$OUT/perf.data" -- bash -c \
    "for i in 1 2 3; do taskset -c 0 '$P' replay '$CORPUS' --eve /dev/null 2> /dev/null; done"
  perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2> /dev/null > "$OUT/perf.txt"
  python3 - "$OUT/perf.txt" <<'PY'
import re, sys
load = ("mlp::transpose", "mlp::tensor", "Psl::parse", "Psl::add_dynamic", "Mlp::from_bytes",
        "Layers::read", "CharLm::from_cost", "::bundled")
score = ("palisade_classifiers::", "engine::names::", "log1p", "expf")
shares = {"scoring": 0.0, "loading": 0.0}
top = []
for line in open(sys.argv[1]):
    m = re.match(r"\s+([0-9.]+)%\s+\[.\]\s+(\S.*?)\s*(-\s+-\s*)?$", line)
    if not m:
        continue
    pct, sym = float(m.group(1)), m.group(2)
    if any(k in sym for k in load):
        shares["loading"] += pct
    elif any(k in sym for k in score):
        shares["scoring"] += pct
        top.append((pct, sym))
print(f"CPU samples in scoring over 3 default replays: {shares['scoring']:.2f}% (loading the models apart: {shares['loading']:.2f}%)")
for pct, sym in sorted(top, reverse=True)[:8]:
    print(f"  {pct:5.2f}%  {sym}")
PY
else
  echo "perf not installed: no share of CPU samples (apt install linux-perf)"
fi
