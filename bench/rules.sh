#!/usr/bin/env bash
# Signature benchmark on the shared corpus, in one run, one core each: `palisade replay` with no
# rules, with the URLhaus http.host and tls.sni rules, and with all of ET Open; ndpiReader as the
# outside reference. Reports the packet phase (packets/s from Palisade's summary, ndpiReader's
# "Packet Processing Time"), whole-process time, peak RSS and the rule-set build time.
#   ROUNDS=3 bash bench/rules.sh       # results in bench/out/rules/, a table on stdout
# The corpus is built by bench/run.sh (or ../shared/bench/make-corpus.sh) when missing. Its
# clients and servers all sit in 10.0.0.0/8 (the default HOME_NET), so EXTERNAL_NET is set to
# `any`: the rules then treat the servers as the outside world, as a deployment would.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-/tmp/palisade-corpus}
CORPUS=$BASE/corpus.pcap
ROUNDS=${ROUNDS:-3}
OUT=bench/out/rules
SIG=../shared/data/signatures
mkdir -p "$OUT"
for t in ndpiReader /usr/bin/time python3 taskset; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (apt-get install libndpi-bin time)"; exit 1; }
done
[ -s "$CORPUS" ] || { echo "bench: no corpus at $CORPUS: run bench/run.sh first (it builds it)"; exit 1; }
cargo build --release -q
P=target/release/palisade

# The URLhaus files as published: the http rules lack a ';' after each sid ("sid:1 rev:1;"),
# and the SNI file reuses the http file's sids. Both are fixed in copies (sid + 50,000,000 for
# SNI rules) so every rule loads; `palisade rules check` on the originals reports the errors.
zcat "$SIG/urlhaus-filter/urlhaus-filter-suricata-online.rules.gz" |
  sed -E 's/sid:([0-9]+) rev:/sid:\1; rev:/' > "$OUT/urlhaus-http.rules"
sed -E 's/sid:1([0-9]{8}) rev:/sid:15\1; rev:/' "$SIG/urlhaus-filter/urlhaus-filter-suricata-sni-online.rules" > "$OUT/urlhaus-sni.rules"
ET="$SIG/et-open-suricata-5.0-enhanced-2024-04-21"

pkts=$(tcpdump -r "$CORPUS" -nn 2>/dev/null | wc -l)
bytes=$(stat -c %s "$CORPUS")
echo "corpus: $CORPUS, $pkts packets, $bytes bytes; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cat "$CORPUS" > /dev/null
: > "$OUT/times.txt"
run() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$OUT/time.tmp" taskset -c 0 "$@" > "$OUT/$name.out" 2> "$OUT/$name.err" || true
  echo "$name $(cat "$OUT/time.tmp")" >> "$OUT/times.txt"
}
for r in $(seq "$ROUNDS"); do
  run none "$P" replay "$CORPUS" --eve /dev/null
  run urlhaus "$P" replay "$CORPUS" --var EXTERNAL_NET=any --rules "$OUT/urlhaus-http.rules" --rules "$OUT/urlhaus-sni.rules" --eve "$OUT/eve-urlhaus.json"
  run etopen "$P" replay "$CORPUS" --var EXTERNAL_NET=any --rules "$ET" --eve "$OUT/eve-etopen.json"
  run ndpi ndpiReader -i "$CORPUS"
done
# Build time alone (one core), from `rules check`.
for n in urlhaus etopen; do
  if [ $n = urlhaus ]; then a=("$OUT/urlhaus-http.rules" "$OUT/urlhaus-sni.rules"); else a=("$ET"); fi
  /usr/bin/time -f "%e %M" -o "$OUT/build-$n.tmp" taskset -c 0 "$P" rules check "${a[@]}" > "$OUT/check-$n.txt" 2>&1 || true
done
python3 - "$OUT" "$pkts" <<'PY'
import re, statistics, sys
out, pkts = sys.argv[1], int(sys.argv[2])
t = {}
for line in open(f"{out}/times.txt"):
    n, s, kb = line.split()
    t.setdefault(n, []).append((float(s), int(kb)))
nd = re.search(r"Packet Processing Time:\s+([0-9]+) msec", open(f"{out}/ndpi.out", errors="replace").read())
npps = pkts / (int(nd.group(1)) / 1000) if nd else None
print("| run | rules loaded | build s | packet phase packets/s | vs ndpiReader | whole s (median) | peak RSS MB | alerts |")
print("|---|---|---|---|---|---|---|---|")
for n in ["none", "urlhaus", "etopen"]:
    s = statistics.median(x for x, _ in t[n]); kb = max(k for _, k in t[n])
    err = open(f"{out}/{n}.err", errors="replace").read()
    m = re.search(r"\(([0-9]+) packets/s", err)
    pps = int(m.group(1)) if m else 0
    r = re.search(r"rules: ([0-9]+) loaded, ([0-9]+) skipped, ([0-9]+) errors, built in ([0-9]+) ms", err)
    loaded = r.group(1) if r else "0"
    build = f"{int(r.group(4))/1000:.2f}" if r else "-"
    a = re.search(r"alerts?[^0-9]*([0-9]+)", err.split("palisade replay:")[-1]) if "palisade replay:" in err else None
    eve = f"{out}/eve-{n}.json"
    try:
        alerts = sum(1 for l in open(eve) if '"event_type":"alert"' in l)
    except OSError:
        alerts = 0
    ratio = f"{pps/npps:.2f}x" if npps else "-"
    print(f"| {n} | {loaded} | {build} | {pps/1e6:.3f} M | {ratio} | {s:.2f} | {kb/1024:.0f} | {alerts} |")
nds = statistics.median(x for x, _ in t["ndpi"]); nkb = max(k for _, k in t["ndpi"])
print(f"| ndpiReader | - | - | {npps/1e6:.3f} M | 1.00x | {nds:.2f} | {nkb/1024:.0f} | - |" if npps else "ndpiReader: no timing")
for n in ["urlhaus", "etopen"]:
    s, kb = open(f"{out}/build-{n}.tmp").read().split()
    first = open(f"{out}/check-{n}.txt").read().splitlines()
    line = next((l for l in first if "rules loaded" in l), "")
    print(f"rules check {n}: {s} s wall, {int(kb)/1024:.0f} MB peak: {line}")
PY
