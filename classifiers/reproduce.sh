#!/usr/bin/env bash
# Reproduces the published metrics of both models (domain and flow) from a clean checkout, in
# one command:
#
#   bash classifiers/reproduce.sh            # evaluate the shipped weights, check MODEL.md
#   bash classifiers/reproduce.sh --train    # retrain both first (libtorch), then evaluate
#   bash classifiers/reproduce.sh --crossfit # the domain model's cross-fitted estimate: four
#                                            # more trainings, each holding out another fifth
#                                            # (about 10 minutes on two cores), then a summary
#   bash classifiers/reproduce.sh --crossfit --ceiling
#                                            # the same five fifths trained on the held-out
#                                            # families too (their training days): the most
#                                            # this benign data allows on families a model has
#                                            # seen (about 40 minutes on two cores)
#
# Needs ../shared/data beside the repository (the OpenDNS lists, maltrail, the research DGA
# sets used for evaluation) and pip (for PyPI's hstspreload, and torch with --train).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/quic-venv
mkdir -p target
if ! "$venv/bin/python" -c 'import hstspreload' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q hstspreload==2025.1.1
fi
[ -s target/hsts-names.txt ] || "$venv/bin/python" classifiers/scripts/hsts-names.py > target/hsts-names.txt
if [ "${1:-}" = --train ] || [ "${1:-}" = --crossfit ]; then
  torch_venv=target/torch-venv
  if [ ! -e "$torch_venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so" ]; then
    python3 -m venv "$torch_venv"
    "$torch_venv/bin/pip" install -q --no-deps torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  fi
  export LIBTORCH="$PWD/$(ls -d "$torch_venv"/lib/python3*/site-packages/torch | head -n1)"
fi
if [ "${1:-}" = --crossfit ]; then
  cargo build -q --release -p palisade-classifiers --features train --bin domain-train --bin domain-eval
  out=target/crossfit fifths="1 2 3 4" ceiling=()
  if [ "${2:-}" = --ceiling ]; then
    out=target/ceiling fifths="0 1 2 3 4" ceiling=(--ceiling)
  fi
  mkdir -p "$out"
  export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  cpus=$(nproc) k=0
  for r in $fifths; do
    taskset -c $(( k % cpus )) target/release/domain-train --held-out-fifth "$r" "${ceiling[@]}" \
      --out "$out/fifth$r.safetensors" > "$out/fifth$r.log" 2>&1 &
    k=$(( k + 1 ))
    if [ $(( k % cpus )) -eq 0 ]; then wait; fi
  done
  wait
  [ -e "$out/fifth0.safetensors" ] || target/release/domain-eval > "$out/fifth0.md"
  for r in $fifths; do
    target/release/domain-eval --model "$out/fifth$r.safetensors" > "$out/fifth$r.md"
  done
  python3 - "$out" <<'PY'
import re, sys
rows = {"**held-out families, character-based**": "held-out families",
        "trained families, unseen days, character-based": "trained families, unseen days",
        "**chrmor, all character-based families**": "chrmor, character-based"}
print("| held-out fifth | model | set | AUC | at 1e-3 | at 1e-4 |\n|---|---|---|---:|---:|---:|")
acc = {}
for r in range(5):
    md = open(f"{sys.argv[1]}/fifth{r}.md").read()
    model = re.search(r"Model `([^`]+)`", md).group(1)
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] in rows:
            auc, d3, d4 = cells[2], cells[3], cells[4]
            print(f"| {r} | `{model}` | {rows[cells[0]]} | {auc} | {d3} | {d4} |")
            acc.setdefault(rows[cells[0]], []).append((float(auc), float(d3[:-1]), float(d4[:-1])))
for k, v in acc.items():
    m = [sum(x[i] for x in v) / len(v) for i in range(3)]
    lo, hi = min(x[2] for x in v), max(x[2] for x in v)
    print(f"| mean of 5 | | {k} | {m[0]:.5f} | {m[1]:.2f}% | {m[2]:.2f}% ({lo:.2f} to {hi:.2f}) |")
# Benign names under host parts: the share above each fifth's thresholds (false positives).
print("\n| held-out fifth | benign names under a host part | above 1e-3 | above 1e-4 |\n|---|---:|---:|---:|")
for r in range(5):
    for line in open(f"{sys.argv[1]}/fifth{r}.md").read().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0].startswith("held-out benign names under a host part"):
            print(f"| {r} | {cells[1]} | {cells[3]} | {cells[4]} |")
PY
  exit 0
fi
if [ "${1:-}" = --train ]; then
  cargo run -q --release -p palisade-classifiers --features train --bin domain-train
  LIBTORCH="$PWD/$(ls -d "$torch_venv"/lib/python3*/site-packages/torch | head -n1)" \
    cargo run -q --release -p palisade-classifiers --features train --bin flow-train
fi
cargo run -q --release -p palisade-classifiers --bin domain-eval -- --check classifiers/MODEL.md
cargo run -q --release -p palisade-classifiers --bin flow-eval -- --check classifiers/MODEL.md
