#!/usr/bin/env bash
# DNS tunnel benchmark, one core: (1) detection on a capture of 500,000 ordinary lookups from
# 4,096 clients (short hosts of 50,000 domains, big sites' many hosts, search-list expansions,
# blocklist lookups) with 100 tunnels (a TXT query a second on average, 40- to 60-character
# labels) and 100 slow ones (a query every 10 s, about 40% of the threshold per window) over
# 30 minutes (`bench/gen-dns.py`), and what --dns-tunnel-block would sinkhole; (2) the replay
# cost of counting names: that capture and the benchmark corpus with DNS tunnels on (the default) and off, and the DNS capture also with both
# models off (the detector's own cost per query), ROUNDS each, interleaved, packets/s medians.
#   ROUNDS=5 bash bench/tunnels.sh        # results in bench/out/tunnels/
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
corpus_bench tunnels 5
python3 bench/gen-dns.py "$OUT/dns.pcap" 500000 100 1 1800
cargo build --release -q
P=target/release/palisade
cat "$CORPUS" "$OUT/dns.pcap" > /dev/null
"$P" replay "$OUT/dns.pcap" --eve "$OUT/eve-dns.json" 2> "$OUT/detect.err"
# Blocking: the same capture with --dns-tunnel-block (what an inline filter would sinkhole).
"$P" replay "$OUT/dns.pcap" --dns-tunnel-block --eve "$OUT/eve-block.json" 2> "$OUT/block.err"
# One unrecorded round first: the first runs on this VM are the slowest.
for f in "$OUT/dns.pcap" "$CORPUS"; do taskset -c 0 "$P" replay "$f" --eve /dev/null 2>/dev/null || true; done
: > "$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
  for cap in dns dns-nomodels corpus; do
    f=$OUT/dns.pcap; models=()
    [ "$cap" = corpus ] && f=$CORPUS
    [ "$cap" = dns-nomodels ] && models=(--name-model off --flow-model off)
    for mode in on off; do
      extra=(${models[@]+"${models[@]}"}); [ "$mode" = off ] && extra+=(--dns-tunnel off)
      taskset -c 0 "$P" replay "$f" --eve /dev/null ${extra[@]+"${extra[@]}"} 2> "$OUT/$cap-$mode.err" || true
      pps=$(grep -oE '\(([0-9]+) packets/s' "$OUT/$cap-$mode.err" | grep -oE '[0-9]+')
      pkts=$(grep -oE 'replay: [0-9]+ packets' "$OUT/$cap-$mode.err" | grep -oE '[0-9]+')
      echo "$cap $mode $pps $pkts" >> "$OUT/runs.txt"
    done
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
hits = {"10.2": [], "10.3": [], "other": []}
for l in open(f"{out}/eve-dns.json"):
    e = json.loads(l)
    if e.get("event_type") == "alert" and e["alert"]["signature_id"] == 9100031:
        t = e["palisade"]["dns_tunnel"]
        c = t["client"]
        hits[c[:4] if c[:4] in hits else "other"].append(t)
fast = hits["10.2"]
print(f"detection: tunnels alerted {len({t['client'] for t in fast})} of 100 ({len(fast)} alerts), "
      f"slow tunnels {len(hits['10.3'])} of 100, ordinary clients {len(hits['other'])}")
if fast:
    print(f"  at the alert: median {statistics.median(t['names'] for t in fast)} distinct names, "
          f"{statistics.median(t['span_s'] for t in fast):.1f} s after the window's first")
# Blocking: per client, the queries after its alert and those blocked; every blocked query is
# a tunnel's (ordinary clients' queries pass), and every query of a tunnel after its alert whose
# subdomain part is longer than the allowance is blocked.
crossed, blocked_by, notes, stats = {}, {}, 0, None
later = {}
for l in open(f"{out}/eve-block.json"):
    e = json.loads(l)
    t = e.get("event_type")
    if t == "alert" and e["alert"]["signature_id"] == 9100031:
        crossed[e["src_ip"]] = e["pcap_cnt"]
    elif t == "alert" and e["alert"]["signature_id"] == 9100032:
        notes += 1
        blocked_by[e["src_ip"]] = blocked_by.get(e["src_ip"], 0) + e["palisade"]["dns_tunnel"]["blocked_queries"]
    elif t == "dns" and e["dns"]["type"] == "request" and e["src_ip"] in crossed and e["pcap_cnt"] > crossed[e["src_ip"]]:
        q = e["dns"]["queries"][0]["rrname"]
        later[e["src_ip"]] = later.get(e["src_ip"], 0) + 1
    elif t == "stats":
        stats = e["stats"]["detect"]
blocked_line = open(f"{out}/block.err").read()
import re
would = int(re.search(r"(\d+) later queries blocked", blocked_line).group(1))
print(f"blocking: {len(crossed)} tunnels blocked ({sum(c.startswith('10.2') for c in crossed)} of the 100), "
      f"{stats['dns_tunnel_blocked']} later queries blocked (summary {would}) of {sum(later.values())} "
      f"their clients asked after their alerts; {notes} notes (sid 9100032) counting "
      f"{sum(blocked_by.values())}, all from tunnels: {all(c.startswith('10.2') for c in blocked_by)}")
runs = {}
for l in open(f"{out}/runs.txt"):
    cap, mode, pps, pkts = l.split()
    runs.setdefault((cap, mode), []).append((int(pps), int(pkts)))
for cap in ("dns", "dns-nomodels", "corpus"):
    on, off = (statistics.median(p for p, _ in runs[(cap, m)]) for m in ("on", "off"))
    pkts = runs[(cap, "on")][0][1]
    extra = ""
    if cap.startswith("dns"):
        extra = f", {(pkts / on - pkts / off) / pkts * 1e9:.0f} ns per query"
    print(f"{cap}: DNS tunnels on {on:,.0f} packets/s, off {off:,.0f} packets/s: "
          f"on/off {on / off:.3f} ({(1 - on / off) * 100:.1f}% slower{extra}), "
          f"rounds on {[p for p, _ in runs[(cap, 'on')]]} off {[p for p, _ in runs[(cap, 'off')]]}")
PY
