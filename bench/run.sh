#!/usr/bin/env bash
# Benchmark: `palisade replay` (with a one-million-domain list loaded) against `ndpiReader -i`
# and tshark on the shared corpus, in one run, on one core each. Reports packets/s, Gbit/s and
# peak RSS of each and the ratios, and checks that Palisade finds every DNS name, SNI and Host
# that tshark finds. Run as root (the corpus recipe uses network namespaces).
#   ROUNDS=3 bash bench/run.sh        # results in bench/out/, a table on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-/tmp/palisade-corpus}
CORPUS=$BASE/corpus.pcap
ROUNDS=${ROUNDS:-3}
OUTDIR=bench/out
mkdir -p "$OUTDIR" "$BASE"

for t in ndpiReader tshark /usr/bin/time python3; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (apt-get install libndpi-bin tshark time)"; exit 1; }
done

if [ ! -s "$CORPUS" ]; then
  # The shared recipe's `awk ... | head -n "$N_QUIC"` dies of SIGPIPE under pipefail (exit 141);
  # run a copy with that one pipeline written as an equivalent single awk.
  sed 's/awk '"'"'NR%7==3'"'"' "$W\/names.txt" | head -n "$N_QUIC"/awk -v n="$N_QUIC" '"'"'NR%7==3 \&\& c<n {print; c++}'"'"' "$W\/names.txt"/' \
    ../shared/bench/make-corpus.sh > "$BASE/make-corpus.sh"
  grep -q 'c<n {print; c++}' "$BASE/make-corpus.sh" || { echo "bench: could not patch make-corpus.sh"; exit 1; }
  BASE=$BASE bash "$BASE/make-corpus.sh"
fi
[ -s "$BASE/1m.txt" ] || python3 bench/gen-domains.py "$BASE/1m.txt" 1000000
cargo build --release -q
P=target/release/palisade

pkts=$(tshark -r "$CORPUS" -T fields -e frame.number 2>/dev/null | wc -l)
bytes=$(stat -c %s "$CORPUS")
echo "corpus: $CORPUS, $pkts packets, $bytes bytes; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

# One core each; warm page cache.
cat "$CORPUS" > /dev/null
run() { # name, then command; appends "name seconds maxrss_kb" to $OUTDIR/times.txt
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$OUTDIR/time.tmp" taskset -c 0 "$@" > "$OUTDIR/$name.out" 2> "$OUTDIR/$name.err" || true
  echo "$name $(cat "$OUTDIR/time.tmp")" >> "$OUTDIR/times.txt"
}
: > "$OUTDIR/times.txt"
for r in $(seq "$ROUNDS"); do
  run palisade "$P" replay "$CORPUS" --intel "$BASE/1m.txt" --eve "$OUTDIR/eve.json"
  run ndpi ndpiReader -i "$CORPUS"
  [ "$r" = 1 ] && run tshark tshark -n -o tcp.reassemble_out_of_order:TRUE -r "$CORPUS" -T fields \
      -e dns.qry.name -e tls.handshake.extensions_server_name -e http.host -e udp.srcport
done
# Palisade's own packet-phase rate (the summary line), and the list load alone.
grep -h "^palisade replay:" "$OUTDIR/palisade.err" | tail -1 > "$OUTDIR/palisade-phase.txt"
/usr/bin/time -f "%e %M" -o "$OUTDIR/load.tmp" "$P" intel check "$BASE/1m.txt" > /dev/null
python3 - "$OUTDIR" "$pkts" "$bytes" <<'PY'
import json, statistics, sys, re
out, pkts, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = {}
for line in open(f"{out}/times.txt"):
    n, s, kb = line.split()
    t.setdefault(n, []).append((float(s), int(kb)))
med = {n: (statistics.median(s for s, _ in v), max(k for _, k in v)) for n, v in t.items()}
rows = []
for n, (s, kb) in med.items():
    rows.append((n, s, pkts / s, size * 8 / s / 1e9, kb / 1024))
print("| tool | seconds (median) | packets/s | Gbit/s | peak RSS MB |")
print("|---|---|---|---|---|")
for n, s, pps, g, mb in rows:
    print(f"| {n} | {s:.2f} | {pps/1e6:.3f} M | {g:.2f} | {mb:.0f} |")
p, nd = med["palisade"][0], med["ndpi"][0]
print(f"\nwhole process, palisade vs ndpiReader: {nd/p:.2f}x; vs tshark: {med['tshark'][0]/p:.1f}x")
ph = open(f"{out}/palisade-phase.txt").read()
m = re.search(r"in ([0-9.]+) s \(([0-9]+) packets/s", ph)
nm = re.search(r"Packet Processing Time:\s+([0-9]+) msec", open(f"{out}/ndpi.out", errors="replace").read())
if m and nm:
    ppps, npps = int(m.group(2)), pkts / (int(nm.group(1)) / 1000)
    print(f"packet phase: palisade {ppps/1e6:.3f} M packets/s (list loaded), ndpiReader {npps/1e6:.3f} M (its 'Packet Processing Time'): {ppps/npps:.2f}x")
ls, lkb = open(f"{out}/load.tmp").read().split()
print(f"1M-domain list: load and count {float(ls):.2f} s, peak RSS {int(lkb)/1024:.0f} MB (palisade intel check)")
# Every name tshark finds, Palisade finds.
ts = {"dns": set(), "sni": set(), "host": set()}
for line in open(f"{out}/tshark.out", errors="replace"):
    c = line.rstrip("\n").split("\t")
    quic = len(c) > 3 and c[3] != ""   # SNI inside QUIC Initials is a later issue
    for i, k in enumerate(["dns", "sni", "host"]):
        if k == "sni" and quic:
            continue
        for v in (c[i].split(",") if i < len(c) and c[i] else []):
            if k == "host" and not v.startswith("[") and v.rsplit(":", 1)[-1].isdigit():
                v = v.rsplit(":", 1)[0]
            ts[k].add(v)
ps = {"dns": set(), "sni": set(), "host": set()}
for line in open(f"{out}/eve.json"):
    e = json.loads(line)
    et = e["event_type"]
    if et == "dns":
        for q in e["dns"].get("queries", []): ps["dns"].add(q["rrname"])
    elif et == "tls" and "sni" in e["tls"]: ps["sni"].add(e["tls"]["sni"])
    elif et == "http" and "hostname" in e["http"]: ps["host"].add(e["http"]["hostname"])
for k in ts:
    miss = ts[k] - ps[k]
    print(f"{k}: tshark {len(ts[k])} distinct, palisade {len(ps[k])}, missed by palisade {len(miss)} {sorted(miss)[:5]}")
PY
