#!/usr/bin/env bash
# Corpus replay with and without QUIC inspection (issue 4). Real HTTP/3 traffic is made here
# (aioquic client and server in two network namespaces, $N connections, each a new name,
# captured with tcpdump), merged into the benchmark corpus, and the result replayed by Palisade
# with QUIC inspected (`--quic allow`, the default: Initials decrypted, ClientHellos parsed,
# names scored and checked) and not parsed (`--quic off`), and by ndpiReader as the peer.
# Run as root: ROUNDS=3 N=1000 bash bench/quic.sh   (CORPUS= the corpus pcap; bench/run.sh makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
N=${N:-1000}
CORPUS=${CORPUS:-/tmp/palisade-corpus/corpus.pcap}
[ -f "$CORPUS" ] || { echo "bench: $CORPUS missing (bash bench/run.sh builds it)"; exit 1; }
cargo build --release -q
P=$PWD/target/release/palisade
venv=target/quic-venv
if ! "$venv/bin/python" -c 'import aioquic' >/dev/null 2>&1; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q aioquic
fi
PY=$PWD/$venv/bin/python
PEERS=$PWD/filter/tests/quic_peers.py
W=$(mktemp -d /tmp/palisade-quic-bench.XXXX)
C=pqc$$; S=pqs$$
cleanup() {
  for ns in $C $S; do ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true; ip netns del $ns 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT
for ns in $C $S; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add qc$$ type veth peer name qs$$; ip link set qc$$ netns $C; ip link set qs$$ netns $S
ip -n $C addr add 10.91.0.1/24 dev qc$$; ip -n $S addr add 10.91.0.2/24 dev qs$$
ip -n $C link set qc$$ up; ip -n $S link set qs$$ up
openssl req -x509 -newkey rsa:2048 -nodes -keyout $W/key.pem -out $W/cert.pem -days 1 -subj /CN=quic.example 2>/dev/null
ip netns exec $S "$PY" "$PEERS" server 10.91.0.2 443 $W/cert.pem $W/key.pem >$W/server.log 2>&1 &
SERVER=$!
sleep 1
ip netns exec $C tcpdump -i qc$$ -U -w $W/quic.pcap udp port 443 2>/dev/null &
DUMP=$!
sleep 0.5
t0=$(date +%s.%N)
ip netns exec $C "$PY" "$PEERS" many 10.91.0.2 443 qbench $N
t1=$(date +%s.%N)
sleep 0.5; kill $DUMP; wait $DUMP 2>/dev/null || true
kill $SERVER; wait $SERVER 2>/dev/null || true   # nothing else runs during the replays
mergecap -a -w $W/mixed.pcap "$CORPUS" $W/quic.pcap
PKTS=$(capinfos -M -c $W/mixed.pcap | awk '/Number of packets/ {print $NF}')
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# $N HTTP/3 connections made in $(echo "$t1 - $t0" | bc) s; quic.pcap $(stat -c %s $W/quic.pcap) bytes,"\
  "$(tshark -r $W/quic.pcap 2>/dev/null | wc -l) packets; mixed.pcap $(stat -c %s $W/mixed.pcap) bytes"
for mode in allow off; do
  : > $W/rates-$mode
  for r in $(seq "$ROUNDS"); do
    out=$(taskset -c 0 "$P" replay $W/mixed.pcap --quic $mode --eve $W/eve-$mode.json 2>&1)
    line=$(echo "$out" | grep -m1 'packets/s' | sed 's/^ *//')
    echo "palisade --quic $mode: $line"
    echo "$line" | grep -o '([0-9]* packets/s' | tr -dc '0-9' >> $W/rates-$mode; echo >> $W/rates-$mode
  done
  echo "palisade --quic $mode: quic events $(grep -c '"event_type":"quic"' $W/eve-$mode.json || true)"
done
: > $W/rates-ndpi
for r in $(seq "$ROUNDS"); do
  taskset -c 0 ndpiReader -i $W/mixed.pcap > $W/ndpi.out 2>&1
  echo "ndpiReader: $(grep -E 'Packet Processing Time|nDPI throughput' $W/ndpi.out | tr -s ' \t' ' ' | paste -sd' ')"
  ms=$(grep -o 'Packet Processing Time: *[0-9]*' $W/ndpi.out | tr -dc '0-9')
  echo $(( PKTS * 1000 / (ms > 0 ? ms : 1) )) >> $W/rates-ndpi   # its packet phase
done
echo "ndpiReader QUIC: $(grep -E '^\s+QUIC\s' $W/ndpi.out | tr -s ' \t' ' ')"
python3 - $W <<'PY'
import statistics, sys
w = sys.argv[1]
med = {m: statistics.median(int(x) for x in open(f"{w}/rates-{m}") if x.strip()) for m in ("allow", "off", "ndpi")}
print(f"median packets/s: inspected {med['allow']:,.0f}, not parsed {med['off']:,.0f}, ndpiReader {med['ndpi']:,.0f}")
print(f"QUIC inspection costs {1 - med['allow'] / med['off']:.1%} of the replay rate; inspected vs ndpiReader {med['allow'] / med['ndpi']:.2f}x")
PY
