#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds (default 600) on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags) and prints executions and crashes.
# Needs: cargo install cargo-fuzz. Seeds come from ../shared/data/pcaps via seeds.py.
set -uo pipefail
cd "$(dirname "$0")"
SECS=${SECS:-600}
TARGETS=${TARGETS:-"capture engine dns tls http intel quic rules sigmatch names fleet"}
python3 seeds.py
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O >/dev/null 2>&1 || { echo "build failed"; exit 1; }
for t in $TARGETS; do
  mkdir -p "corpus/$t" "seeds/$t"
  log="out-$t.log"
  regr=(); [ -d "regressions/$t" ] && regr=("regressions/$t")
  cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" "${regr[@]}" -- -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  crashes=$(ls artifacts/"$t" 2>/dev/null | wc -l)
  echo "$t: exit $rc, executions ${execs:-?}, corpus $(ls corpus/$t | wc -l), artifacts $crashes, $(date -u +%FT%TZ)"
done
