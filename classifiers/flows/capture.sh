#!/usr/bin/env bash
# Makes the flow model's labelled captures with real tools in two network namespaces: a client
# (10.77.0.1) and a server (10.77.0.2: nginx on 80 and 443 with a throwaway certificate, dnsmasq
# answering every name), tcpdump on the client's side. One capture per scenario and run:
#
#   benign-web   curl fetching pages of assorted sizes over HTTP and HTTPS, some several per
#                connection, at irregular intervals
#   benign-dns   dig looking up ordinary names (A, AAAA, MX)
#   beacon       curl posting small check-ins to /checkin at a fixed period with jitter
#   dnstunnel    dig sending data as long base32 labels under one domain (TXT)
#   scan         TCP connects to a few hundred closed ports
#   exfil        curl uploading 100-600 KB bodies to /upload
#
#   sudo bash classifiers/flows/capture.sh [RUNS] [OUTDIR]     # default 3 runs, target/flows
#   (SCENARIOS="beacon scan" limits the scenarios)
#
# Then `palisade flow-features` turns each capture into labelled flow records (see
# classifiers/flows/README.md). Needs root, nginx-light, dnsmasq-base, curl, dnsutils,
# tcpdump, openssl, python3. Only addresses inside its own namespaces are used.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
OUT=${2:-target/flows}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
C=pfcap-cli
S=pfcap-srv
W=$(mktemp -d /tmp/pfcap.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns pids $S 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns pids $C 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del $C 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
cleanup 2>/dev/null || true
W=$(mktemp -d /tmp/pfcap.XXXXXX)

ip netns add $C
ip netns add $S
# IPv4 only: neighbour discovery would add ICMPv6 flows to every scenario's capture.
for ns in $C $S; do
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add pfc0 type veth peer name pfs0
ip link set pfc0 netns $C
ip link set pfs0 netns $S
ip -n $C addr add 10.77.0.1/24 dev pfc0
ip -n $S addr add 10.77.0.2/24 dev pfs0
ip -n $C link set pfc0 up
ip -n $S link set pfs0 up
ip -n $C link set lo up
ip -n $S link set lo up

# Server content: pages of assorted sizes.
mkdir -p "$W/www"
for s in 512 2048 8192 15000 40000 90000 250000; do head -c $s /dev/urandom > "$W/www/p$s.bin"; done
printf 'ok\n' > "$W/www/index.html"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=server.test \
  -keyout "$W/key.pem" -out "$W/cert.pem" >/dev/null 2>&1
cat > "$W/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $W/body;
  proxy_temp_path $W/proxy;
  fastcgi_temp_path $W/fcgi;
  uwsgi_temp_path $W/uwsgi;
  scgi_temp_path $W/scgi;
  keepalive_requests 100;
  server {
    listen 10.77.0.2:80;
    listen 10.77.0.2:443 ssl;
    ssl_certificate $W/cert.pem;
    ssl_certificate_key $W/key.pem;
    root $W/www;
    client_max_body_size 20m;
    location /checkin { client_body_buffer_size 64k; return 200 "ok\n"; }
    location /upload { client_body_buffer_size 1m; proxy_pass http://127.0.0.1:9; error_page 502 =200 /index.html; }
  }
}
EOF
ip netns exec $S nginx -c "$W/nginx.conf"
ip netns exec $S dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.77.0.2 \
  --bind-interfaces --address=/#/10.77.0.2 --pid-file="$W/dnsmasq.pid" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

cli() { ip netns exec $C "$@"; }
rand() { python3 -c "import random,sys; random.seed(int(sys.argv[1])); print(random.randint(int(sys.argv[2]), int(sys.argv[3])))" "$@"; }

# Ordinary names for benign DNS: from the HSTS list when present, else a built-in few.
names=()
if [ -s target/hsts-names.txt ]; then
  mapfile -t names < <(awk 'NR % 397 == 1' target/hsts-names.txt | head -n 400)
fi
[ ${#names[@]} -gt 0 ] || names=(example.com wikipedia.org debian.org kernel.org python.org rust-lang.org)

scenario() { # name run
  local name=$1 run=$2 seed=$((run * 1000 + ${#1}))
  local pcap="$OUT/$name-$run.pcap"
  ip netns exec $C tcpdump -i pfc0 -w "$pcap" -U -s 0 >/dev/null 2>&1 &
  local tp=$!
  sleep 0.4
  python3 - "$name" "$seed" "${names[@]}" <<'PY'
import base64, os, random, socket, subprocess, sys, time
name, seed, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
r = random.Random(seed)
NS = ["ip", "netns", "exec", "pfcap-cli"]
def run(args):
    subprocess.run(NS + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
def curl(*a):
    run(["curl", "-s", "-k", "--max-time", "10", "-o", "/dev/null", *a])
sizes = [512, 2048, 8192, 15000, 40000, 90000, 250000]
if name == "benign-web":
    for _ in range(70):
        scheme = r.choice(["http", "https", "https"])
        urls = [f"{scheme}://10.77.0.2/p{r.choice(sizes)}.bin" for _ in range(r.choice([1, 1, 1, 2, 3]))]
        curl(*urls)
        time.sleep(r.uniform(0.0, 0.25))
elif name == "benign-dns":
    for _ in range(80):
        run(["dig", "@10.77.0.2", "+tries=1", "+time=1", r.choice(["A", "AAAA", "MX"]), r.choice(names)])
        time.sleep(r.uniform(0.0, 0.05))
elif name == "beacon":
    period, jitter = r.uniform(0.15, 0.3), r.uniform(0.1, 0.4)
    # Runs alternate the scheme, so training and the held-out run see both.
    host = "http" if seed // 1000 % 2 == 1 else "https"
    bot = "%08x" % r.getrandbits(32)
    for i in range(70):
        curl("-X", "POST", "-d", f"id={bot}&seq={i}&st={r.getrandbits(16)}", f"{host}://10.77.0.2/checkin")
        time.sleep(period * (1 + r.uniform(-jitter, jitter)))
elif name == "dnstunnel":
    dom = r.choice(["t.exfil-dns.test", "x.cdn-sync.test", "a.updates-check.test"])
    for i in range(90):
        data = base64.b32encode(os.urandom(r.randint(60, 110))).decode().rstrip("=").lower()
        labels = [data[k:k + 57] for k in range(0, len(data), 57)]
        run(["dig", "@10.77.0.2", "+tries=1", "+time=1", "TXT", ".".join(labels + [dom])])
        time.sleep(r.uniform(0.0, 0.03))
elif name == "scan":
    ports = r.sample(range(1, 65535), 300)
    code = ("import socket,sys\n"
            "for p in map(int, sys.argv[1:]):\n"
            "    s = socket.socket(); s.settimeout(0.3)\n"
            "    try: s.connect(('10.77.0.2', p))\n"
            "    except OSError: pass\n"
            "    s.close()\n")
    run(["python3", "-c", code, *map(str, ports)])
elif name == "exfil":
    for _ in range(20):
        n = r.randint(100_000, 600_000)
        path = f"/tmp/pfcap-exfil-{seed}"
        with open(path, "wb") as f:
            f.write(os.urandom(n))
        curl("-X", "POST", "--data-binary", f"@{path}", f"{r.choice(['http', 'https'])}://10.77.0.2/upload")
        os.unlink(path)
        time.sleep(r.uniform(0.0, 0.3))
PY
  sleep 0.5
  kill -INT $tp 2>/dev/null || true
  wait $tp 2>/dev/null || true
  echo "capture.sh: $pcap ($(stat -c %s "$pcap") bytes)"
}

for run in $(seq 1 "$RUNS"); do
  for s in ${SCENARIOS:-benign-web benign-dns beacon dnstunnel scan exfil}; do
    scenario "$s" "$run"
  done
done
kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
