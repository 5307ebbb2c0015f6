#!/usr/bin/env bash
# Fleet benchmark: one manager and N simulated nodes on this machine (loopback), for N in
# $NODES. Measures (1) the distribution of a new signed bundle to every connected node (from
# its rename into the policy directory to the last node receiving it) and (2) event ingestion
# at the manager (events per second acknowledged, delivery latency p50/p99 from a frame sent to
# its acknowledgement). The nodes are `palisade manager simulate` (one QUIC endpoint, one
# certificate per node, connections multiplexed). The total number of events is the same for
# every N ($EVENTS), so the rows compare per-connection overhead.
#
#   NODES="10 100 1000" EVENTS=200000 NAMES=10000 bash bench/fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-"10 100 1000"}
EVENTS=${EVENTS:-200000}
NAMES=${NAMES:-10000}
RATE=${RATE:-20000}
cargo build --release -q
BIN=$PWD/target/release/palisade
W=$(mktemp -d /tmp/palisade-fleet-bench.XXXXXX)
MGR=
cleanup() { [ -n "$MGR" ] && kill "$MGR" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
"$BIN" manager init-ca --out "$W/pki" >/dev/null
"$BIN" manager issue-cert 127.0.0.1 --ca "$W/pki" --out "$W/pki" >/dev/null
"$BIN" manager keygen --out "$W/signer" >/dev/null
bundle() { # DIR VERSION: a policy with $NAMES listed names
  mkdir -p "$1"
  awk -v n="$NAMES" -v v="$2" 'BEGIN { for (i = 0; i < n; i++) printf "host%d-v%d.blocked.example\n", i, v }' > "$1/block.txt"
  printf '[[intel]]\npath = "block.txt"\naction = "block"\n' > "$1/policy.toml"
  "$BIN" manager sign "$1" --key "$W/signer.key" --version "$2" >/dev/null 2>&1
}
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# bundle: $NAMES names, $(du -sb "$W" >/dev/null; bundle "$W/probe" 1; cat "$W/probe"/* | wc -c) bytes; $EVENTS events in all per run"
port=17790
for n in $NODES; do
  port=$((port + 1))
  rm -rf "$W/policy" "$W/stage" "$W/mstate" "$W/meve.json"
  bundle "$W/policy/v1" 1
  bundle "$W/stage/v2" 2
  "$BIN" manager --listen 127.0.0.1:$port --policy "$W/policy" --ca "$W/pki/ca.pem" \
    --cert "$W/pki/127.0.0.1.pem" --key "$W/pki/127.0.0.1.key" --state-dir "$W/mstate" \
    --status off --eve "$W/meve.json" --idle 30 2>"$W/manager.log" &
  MGR=$!
  sleep 0.5
  per=$((EVENTS / n))
  echo "## $n nodes, as fast as acknowledgements allow (100 events a frame, 20 frames in flight per node)"
  "$BIN" manager simulate --manager 127.0.0.1:$port --manager-name 127.0.0.1 --ca-dir "$W/pki" \
    --nodes "$n" --publish-from "$W/stage/v2" --publish-to "$W/policy/v2" --events "$per" --batch 100
  # Steady load: $RATE events/s in all, 10 events a frame, for about 10 s.
  rm -rf "$W/policy/v2"; bundle "$W/stage/v2" 2
  sleep 0.5   # the manager's next scan sees v2 gone, so the new nodes start from v1
  echo "## $n nodes, paced at $RATE events/s in all"
  "$BIN" manager simulate --manager 127.0.0.1:$port --manager-name 127.0.0.1 --ca-dir "$W/pki" \
    --nodes "$n" --publish-from "$W/stage/v2" --publish-to "$W/policy/v2" \
    --events $(( RATE * 10 / n )) --batch 10 --rate "$RATE"
  rss=$(grep VmHWM /proc/$MGR/status | awk '{print $2}')
  stored=$(wc -l < "$W/meve.json")
  echo "manager: peak RSS ${rss} KB, events stored $stored (both runs)"
  kill "$MGR"; wait "$MGR" 2>/dev/null || true
  MGR=
done
# A familiar event bus as the peer: redis-server ingesting the same volume of 450-byte LPUSHes,
# pipelined 100 deep, on this machine (what the manager's ingestion rate compares with).
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
  redis-server --port 17999 --save '' --appendonly no >/dev/null 2>&1 &
  R=$!
  sleep 0.5
  echo "## peer: redis-benchmark LPUSH, $EVENTS values of 450 bytes, pipeline 100, 50 clients"
  redis-benchmark -p 17999 -q -t lpush -n "$EVENTS" -d 450 -P 100 -c 50 | tr '\r' '\n' | grep 'LPUSH:' | tail -1
  kill $R
fi
