#!/usr/bin/env bash
# Corpus replay with and without QUIC inspection (issue 4). Real HTTP/3 traffic is made here
# (aioquic client and server in two network namespaces, $N connections, each a new name,
# captured with tcpdump), merged into the benchmark corpus, and the result replayed by Palisade
# with QUIC inspected (`--quic allow`, the default: Initials decrypted, ClientHellos parsed,
# names scored and checked) and not parsed (`--quic off`), and by ndpiReader as the peer.
# Run as root: ROUNDS=3 N=1000 bash bench/quic.sh   (CORPUS= the corpus pcap; bench/run.sh makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
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
  rm -rf "$W"
}
trap cleanup EXIT
for ns in $C $S; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add qc$$ type veth peer name qs$$; ip link set qc$$ netns $C; ip link set qs$$ netns $S
ip -n $C addr add 10.91.0.1/24 dev qc$$; ip -n $S addr add 10.91.0.2/24 dev qs$$
ip -n $C link set qc$$ up; ip -n $S link set qs$$ up
openssl req -x509 -newkey rsa:2048 -nodes -keyout $W/key.pem -out $W/cert.pem -days 1 -subj /CN=quic.example 2>/dev/null
ip netns exec $S "$PY" "$PEERS" server 10.91.0.2 443 $W/cert.pem $W/key.pem >$W/server.log 2>&1 &
sleep 1
ip netns exec $C tcpdump -i qc$$ -U -w $W/quic.pcap udp port 443 2>/dev/null &
DUMP=$!
sleep 0.5
t0=$(date +%s.%N)
ip netns exec $C "$PY" "$PEERS" many 10.91.0.2 443 qbench $N
t1=$(date +%s.%N)
sleep 0.5; kill $DUMP; wait $DUMP 2>/dev/null || true
mergecap -a -w $W/mixed.pcap "$CORPUS" $W/quic.pcap
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# $N HTTP/3 connections made in $(echo "$t1 - $t0" | bc) s; quic.pcap $(stat -c %s $W/quic.pcap) bytes,"\
  "$(tshark -r $W/quic.pcap 2>/dev/null | wc -l) packets; mixed.pcap $(stat -c %s $W/mixed.pcap) bytes"
rate() { grep -o '([0-9]* packets/s' | tr -d '( ' | sed 's/packets\/s//'; }
for mode in allow off; do
  for r in $(seq "$ROUNDS"); do
    out=$(taskset -c 0 "$P" replay $W/mixed.pcap --quic $mode --eve $W/eve-$mode.json 2>&1)
    echo "palisade --quic $mode: $(echo "$out" | grep -m1 'packets/s' | sed 's/^ *//')"
  done
  echo "palisade --quic $mode: quic events $(grep -c '"event_type":"quic"' $W/eve-$mode.json || true)"
done
for r in $(seq "$ROUNDS"); do
  echo "ndpiReader: $(taskset -c 0 ndpiReader -i $W/mixed.pcap -q 2>/dev/null | grep -iE 'Packet Processing Time|nDPI throughput' | tr -s ' ' | paste -sd' ')"
done
echo "ndpiReader QUIC flows: $(ndpiReader -i $W/mixed.pcap -v 1 2>/dev/null | grep -c 'QUIC' || true)"
