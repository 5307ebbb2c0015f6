#!/usr/bin/env bash
# Beacon benchmark, one core: (1) detection on a capture of 200 beacons (period 30 s less up to
# 30%) and 200 random series (Poisson, mean gap 30 s) among 300,000 one-off connections over
# 30 minutes (`bench/gen-conns.py`: bare SYNs, so only gaps tell series apart); (2) the replay
# cost of following connections: that capture and the benchmark corpus with beacons on (the
# default) and off, ROUNDS each, interleaved, packets/s medians and ratios. Also what
# --beacon-block would block on that capture (every later connection of each beacon, checked
# against the capture's flow events; none of another series).
#   ROUNDS=5 bash bench/beacons.sh        # results in bench/out/beacons/
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
corpus_bench beacons 5
python3 bench/gen-conns.py "$OUT/conns.pcap" 300000 200 30 1800
cargo build --release -q
P=target/release/palisade
cat "$CORPUS" "$OUT/conns.pcap" > /dev/null
"$P" replay "$OUT/conns.pcap" --eve "$OUT/eve-conns.json" 2> "$OUT/detect.err"
"$P" replay "$OUT/conns.pcap" --beacon-block --eve "$OUT/eve-block.json" 2> "$OUT/block.err"
: > "$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
  for cap in conns corpus; do
    f=$OUT/conns.pcap; [ "$cap" = corpus ] && f=$CORPUS
    for mode in on off; do
      extra=(); [ "$mode" = off ] && extra=(--beacon off)
      taskset -c 0 "$P" replay "$f" --eve /dev/null ${extra[@]+"${extra[@]}"} 2> "$OUT/$cap-$mode.err" || true
      pps=$(grep -oE '\(([0-9]+) packets/s' "$OUT/$cap-$mode.err" | grep -oE '[0-9]+')
      echo "$cap $mode $pps" >> "$OUT/runs.txt"
    done
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
hits = {"10.2": 0, "10.3": 0, "other": 0}
for l in open(f"{out}/eve-conns.json"):
    e = json.loads(l)
    if e.get("event_type") == "alert" and e["alert"]["signature_id"] == 9100030:
        c = e["palisade"]["beacon"]["client"]
        hits[c[:4] if c[:4] in hits else "other"] += 1
print(f"detection: beacons alerted {hits['10.2']} of 200, random series {hits['10.3']} of 200, "
      f"one-off clients {hits['other']}")
# Blocking: each beacon's connections after its alert (by the flow events' start times, which
# sort as text), against what the replay blocked; every note names a beacon's client.
alerted, flows, notes, blocked = {}, [], [], None
for l in open(f"{out}/eve-block.json"):
    e = json.loads(l)
    t = e.get("event_type")
    if t == "alert" and e["alert"]["signature_id"] == 9100030:
        alerted[(e["src_ip"], e["dest_ip"], e["dest_port"])] = e["timestamp"]
    elif t == "alert" and e["alert"]["signature_id"] == 9100033:
        notes.append(e["palisade"]["beacon"])
    elif t == "flow":
        flows.append(((e["src_ip"], e["dest_ip"], e["dest_port"]), e["flow"]["start"],
                      "action" in e["flow"]))
    elif t == "stats":
        blocked = e["stats"]["detect"]["beacon_blocked"]
later = sum(1 for k, start, _ in flows if k in alerted and start > alerted[k])
# Flows blocked that are neither an alerting connection nor a later one of its series.
stray = sum(1 for k, start, act in flows if act and not (k in alerted and start >= alerted[k]))
print(f"blocking: {len(alerted)} series blocked ({sum(k[0].startswith('10.2.') for k in alerted)} beacons), "
      f"{blocked} later connections blocked of {later} they opened after their alerts, "
      f"{stray} other flows blocked; "
      f"{len(notes)} notes (sid 9100033) counting {sum(n['blocked_connections'] for n in notes)}, "
      f"all beacons': {all(n['client'].startswith('10.2.') for n in notes)}")
runs = {}
for l in open(f"{out}/runs.txt"):
    cap, mode, pps = l.split()
    runs.setdefault((cap, mode), []).append(int(pps))
for cap in ("conns", "corpus"):
    on, off = (statistics.median(runs[(cap, m)]) for m in ("on", "off"))
    print(f"{cap}: beacons on {on:,.0f} packets/s, off {off:,.0f} packets/s: "
          f"on/off {on / off:.3f} ({(1 - on / off) * 100:.1f}% slower), "
          f"rounds on {runs[(cap, 'on')]} off {runs[(cap, 'off')]}")
PY
