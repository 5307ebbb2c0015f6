#!/usr/bin/env bash
# Inline benchmark, gateway role: client, gateway and server namespaces; Palisade on the
# gateway's FORWARD chain. In one run: iperf3 TCP throughput with no filter, with Palisade
# inspecting every packet (--no-bypass), and with bypass; new TLS connections per second and
# TCP connect latency (p50/p99) through each. Run as root: ROUNDS=3 bash bench/inline.sh
source "$(dirname "$0")/gateway-lab.sh"

measure() { # label
  local label=$1 r
  for r in $(seq "$ROUNDS"); do
    gbps=$(ip netns exec $C iperf3 -c 10.90.2.2 -t "$SECS" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,3))')
    tls=$(ip netns exec $C python3 bench/tls_clients.py 10.90.2.2 443 ok.example 3)
    echo "$label round $r: $gbps Gbit/s $tls" | tee -a $W/results.txt
  done
}
start_palisade() { # extra flags
  ip netns exec $G $P firewall install --role gateway --queue 0 --fail closed >/dev/null
  ip netns exec $G $P inline --queue 0 --intel $W/block.txt --eve /dev/null --metrics off "$@" 2>$W/inline.log &
  for _ in $(seq 50); do grep -q ready $W/inline.log 2>/dev/null && break; sleep 0.1; done
}
stop_palisade() {
  ip netns exec $G pkill -f "palisade inline" || true; sleep 0.3
  ip netns exec $G $P firewall uninstall >/dev/null
}
measure "no queue"
# The floor of the bypass path: Palisade's rules with every flow pre-marked for bypass, so nothing
# is queued and only conntrack and the mark/connmark matches cost anything.
ip netns exec $G $P firewall install --role gateway --queue 0 --fail closed >/dev/null
ip netns exec $G iptables -I PALISADE 1 -j CONNMARK --set-xmark 0x200000/0x200000
measure "rules only, every flow bypassed"
ip netns exec $G $P firewall uninstall >/dev/null
start_palisade --no-bypass; measure "palisade, no bypass"; stop_palisade
start_palisade; measure "palisade, bypass"; stop_palisade
python3 - "$W/results.txt" <<'PY'
import json, re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, rest = line.split(" round ", 1)
    g = float(rest.split(":", 1)[1].split()[0])
    t = json.loads(rest[rest.index("{"):])
    rows.setdefault(label, []).append((g, t))
base = statistics.median(g for g, _ in rows["no queue"])
print("| gateway | iperf3 Gbit/s (median) | vs no queue | TLS conns/s | TCP connect p50 / p99 ms |")
print("|---|---|---|---|---|")
for label, v in rows.items():
    g = statistics.median(x for x, _ in v)
    cps = statistics.median(t["per_second"] for _, t in v)
    p50 = statistics.median(t["connect_p50_ms"] for _, t in v)
    p99 = statistics.median(t["connect_p99_ms"] for _, t in v)
    fails = sum(t["failures"] for _, t in v)
    print(f"| {label} | {g:.2f} | {g/base:.2f} | {cps:.0f} | {p50:.3f} / {p99:.3f} |" + (f" ({fails} failures)" if fails else ""))
PY
