#!/usr/bin/env bash
# Inline benchmark, gateway role: client, gateway and server namespaces; Palisade on the
# gateway's FORWARD chain. In one run: iperf3 TCP throughput with no filter, with Palisade
# inspecting every packet (--no-bypass), and with bypass; new TLS connections per second and
# TCP connect latency (p50/p99) through each. Run as root: ROUNDS=3 bash bench/inline.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
P=$PWD/target/release/palisade
cargo build --release -q
for t in iperf3 nginx ethtool python3 ip iptables; do command -v $t >/dev/null || { echo "bench: $t missing"; exit 1; }; done
W=$(mktemp -d /tmp/palisade-inline-bench.XXXX)
C=pbc$$; G=pbg$$; S=pbs$$
cleanup() {
  for ns in $C $G $S; do ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true; ip netns del $ns 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
for ns in $C $G $S; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add bc$$ type veth peer name bg1$$; ip link set bc$$ netns $C; ip link set bg1$$ netns $G
ip link add bs$$ type veth peer name bg2$$; ip link set bs$$ netns $S; ip link set bg2$$ netns $G
ip -n $C addr add 10.90.1.1/24 dev bc$$; ip -n $G addr add 10.90.1.254/24 dev bg1$$
ip -n $G addr add 10.90.2.254/24 dev bg2$$; ip -n $S addr add 10.90.2.2/24 dev bs$$
for pair in "$C bc$$" "$G bg1$$" "$G bg2$$" "$S bs$$"; do
  set -- $pair; ip -n $1 link set $2 up; ip netns exec $1 ethtool -K $2 gro off gso off tso off >/dev/null 2>&1 || true
done
ip -n $C route add default via 10.90.1.254; ip -n $S route add default via 10.90.2.254
ip netns exec $G sysctl -qw net.ipv4.ip_forward=1
openssl req -x509 -newkey rsa:2048 -nodes -keyout $W/key.pem -out $W/cert.pem -days 1 -subj /CN=bench.example 2>/dev/null
cat > $W/nginx.conf <<NG
daemon off; pid $W/nginx.pid; error_log $W/nginx.log; worker_processes 1;
events {} http { access_log off; server { listen 10.90.2.2:443 ssl; ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem; location / { return 200 "ok\n"; } } }
NG
ip netns exec $S setsid nginx -c $W/nginx.conf -p $W </dev/null >/dev/null 2>&1 &
ip netns exec $S setsid iperf3 -s -D >/dev/null 2>&1
echo "blocked.example" > $W/block.txt
sleep 1

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
