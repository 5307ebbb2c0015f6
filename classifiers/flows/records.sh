#!/usr/bin/env bash
# Turns the captures of capture.sh (target/flows/*.pcap) into classifiers/flows/records.csv with
# `palisade flow-features`: label 0 for the benign-* scenarios, 1 for the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."
IN=${1:-target/flows}
cargo build --release -q
first=1
for f in "$IN"/*.pcap; do
  case $(basename "$f") in benign-*) l=0 ;; *) l=1 ;; esac
  if [ $first = 1 ]; then h=(); first=0; else h=(--no-header); fi
  target/release/palisade flow-features --label $l ${h[@]+"${h[@]}"} "$f"
done > classifiers/flows/records.csv
wc -l classifiers/flows/records.csv
