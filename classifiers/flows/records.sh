#!/usr/bin/env bash
# Turns the captures of capture.sh (target/flows/*.pcap) into classifiers/flows/records.csv with
# `palisade flow-features`: label 0 for the benign-* scenarios, 1 for the rest. With CORPUS set
# (the benchmark capture of ../shared/bench/make-corpus.sh: real clients and servers in
# namespaces, web, DNS, QUIC and bulk downloads), its flows join as benign records, spread over
# runs 1-4 by flow id (`benign-corpus-N`), so run 4 holds a quarter of them out.
#   CORPUS=/tmp/palisade-corpus/corpus.pcap bash classifiers/flows/records.sh [target/flows]
set -euo pipefail
cd "$(dirname "$0")/../.."
IN=${1:-target/flows}
cargo build --release -q
first=1
{
  for f in "$IN"/*.pcap; do
    case $(basename "$f") in benign-*) l=0 ;; *) l=1 ;; esac
    if [ $first = 1 ]; then h=(); first=0; else h=(--no-header); fi
    target/release/palisade flow-features --label $l ${h[@]+"${h[@]}"} "$f"
  done
  if [ -n "${CORPUS:-}" ]; then
    target/release/palisade flow-features --label 0 --no-header "$CORPUS" |
      python3 -c '
import sys
for line in sys.stdin:
    f = line.rstrip("\n").split(",")
    f[1] = "benign-corpus-%d.pcap" % (int(f[2]) % 4 + 1)
    print(",".join(f))'
  fi
} > classifiers/flows/records.csv
wc -l classifiers/flows/records.csv
