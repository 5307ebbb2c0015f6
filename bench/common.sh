# Sourced by the benchmarks on the shared corpus (names.sh, beacons.sh, tunnels.sh), from the
# repository root: `corpus_bench NAME DEFAULT_ROUNDS` sets BASE, CORPUS (BASE/corpus.pcap,
# built by bench/run.sh or ../shared/bench/make-corpus.sh), ROUNDS and OUT (bench/out/NAME,
# made), stops when the corpus is missing, and prints the machine and the date.
corpus_bench() {
  BASE=${BASE:-/tmp/palisade-corpus}
  CORPUS=$BASE/corpus.pcap
  ROUNDS=${ROUNDS:-$2}
  OUT=bench/out/$1
  mkdir -p "$OUT"
  [ -s "$CORPUS" ] || { echo "bench: no corpus at $CORPUS: run bench/run.sh first (it builds it)"; exit 1; }
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
}
