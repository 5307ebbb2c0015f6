# Shared by bench/inline.sh and bench/bypass-floor.sh (sourced): client, gateway and server
# namespaces joined by veth pairs (offloads off), nginx with TLS and an iperf3 server in the
# server namespace, a work folder $W; everything removed on exit. Sets C, G, S, W, P, ROUNDS, SECS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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
