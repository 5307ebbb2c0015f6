#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing, then runs the
# whole suite. Works on a fresh Debian 12 machine (root, or sudo); `.ci/run` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
# Inline tests: real servers and clients in network namespaces, iptables NFQUEUE.
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)
command -v dnsmasq >/dev/null 2>&1 || need_apt+=(dnsmasq-base)
command -v dig >/dev/null 2>&1 || need_apt+=(dnsutils)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
# The native nftables backend is tested too (its ruleset loads, or is refused cleanly).
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
command -v tcpdump >/dev/null 2>&1 || need_apt+=(tcpdump)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v ipset >/dev/null 2>&1 || need_apt+=(ipset)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
# Real DNS tunnels for the DNS tunnel detector's inline tests: TCP over TXT queries, IP over
# NULL queries with binary names.
command -v dns2tcpc >/dev/null 2>&1 || need_apt+=(dns2tcp)
command -v iodine >/dev/null 2>&1 || need_apt+=(iodine)
# Prometheus's own parser checks the metrics endpoint's text (the system Python's package).
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need_apt+=(python3-prometheus-client)
# promtool lints the endpoint's text and unit-tests the shipped alerting rules.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | as_root debconf-set-selections
  as_root apt-get update -qq
  # policy-rc.d keeps package scripts from starting nginx or dnsmasq as services.
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if [ -n "$made_policy" ]; then
    as_root rm -f /usr/sbin/policy-rc.d
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is missing; install Rust (rustup) first" >&2
  exit 1
fi
if [ ! -d ../shared/data ]; then
  echo "test.sh: ../shared/data is missing: the capture-based tests need it" >&2
  if [ "${CI:-}" = true ]; then
    exit 1
  fi
fi

# Real QUIC peers (aioquic) for the inline QUIC test, in a venv under target/.
venv=target/quic-venv
if ! "$venv/bin/python" -c 'import aioquic' >/dev/null 2>&1; then
  echo "test.sh: installing aioquic into $venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python needs its venv package.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q aioquic
fi
export PALISADE_QUIC_PY="$PWD/$venv/bin/python"

# The domain model's benign names (Chromium's HSTS preload list, BSD-3, from PyPI hstspreload):
# the model-card test reproduces the published metrics from them.
if ! "$venv/bin/python" -c 'import hstspreload' >/dev/null 2>&1; then
  echo "test.sh: installing hstspreload into $venv"
  "$venv/bin/pip" install -q hstspreload==2025.1.1
fi
if [ ! -s target/hsts-names.txt ]; then
  "$venv/bin/python" classifiers/scripts/hsts-names.py > target/hsts-names.txt.tmp
  mv target/hsts-names.txt.tmp target/hsts-names.txt
fi

# libtorch for the tch parity and reproducibility tests (classifiers, `train` feature): the
# CPU-usable part of PyPI's torch 2.13.0 wheel, as ../shared/NOTES.md describes (~1.3 GB).
torch_venv=target/torch-venv
if [ ! -e "$torch_venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so" ]; then
  echo "test.sh: installing libtorch (torch 2.13.0, CPU use) into $torch_venv"
  python3 -m venv "$torch_venv"
  "$torch_venv/bin/pip" install -q --no-deps torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
fi
libtorch="$PWD/$(ls -d "$torch_venv"/lib/python3*/site-packages/torch | head -n1)"

# The README's quick start, as written: the bundled demo must run and raise its alerts.
alerts=$(cargo run --release -q -- replay 2>/dev/null | grep -c '"event_type":"alert"' || true)
if [ "$alerts" -lt 5 ]; then
  echo "test.sh: README quick start (cargo run --release -- replay) gave $alerts alerts, want 5" >&2
  exit 1
fi
echo "test.sh: README quick start ok ($alerts alerts)"

cargo test --workspace --profile ci "$@"
LIBTORCH="$libtorch" cargo test -p palisade-classifiers --features train --profile ci --test parity "$@"
