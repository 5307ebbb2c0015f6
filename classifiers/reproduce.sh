#!/usr/bin/env bash
# Reproduces the published metrics of both models (domain and flow) from a clean checkout, in
# one command:
#
#   bash classifiers/reproduce.sh            # evaluate the shipped weights, check MODEL.md
#   bash classifiers/reproduce.sh --train    # retrain both first (libtorch), then evaluate
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
if [ "${1:-}" = --train ]; then
  torch_venv=target/torch-venv
  if [ ! -e "$torch_venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so" ]; then
    python3 -m venv "$torch_venv"
    "$torch_venv/bin/pip" install -q --no-deps torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  fi
  LIBTORCH="$PWD/$(ls -d "$torch_venv"/lib/python3*/site-packages/torch | head -n1)" \
    cargo run -q --release -p palisade-classifiers --features train --bin domain-train
  LIBTORCH="$PWD/$(ls -d "$torch_venv"/lib/python3*/site-packages/torch | head -n1)" \
    cargo run -q --release -p palisade-classifiers --features train --bin flow-train
fi
cargo run -q --release -p palisade-classifiers --bin domain-eval -- --check classifiers/MODEL.md
cargo run -q --release -p palisade-classifiers --bin flow-eval -- --check classifiers/MODEL.md
