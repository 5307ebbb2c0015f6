#!/usr/bin/env bash
# The floor of a connmark bypass on this kernel: iperf3 through the gateway namespaces with
# (1) no rules, (2) conntrack plus one rule that marks new connections for bypass, (3) Palisade's
# installed rules on top (every flow pre-marked, so nothing is queued), (4) the same rules
# reordered (connmark test first) with the mangle save-mark as one rule instead of a chain, and
# (5) the connmark test as an ACCEPT directly in FORWARD, and (6) no conntrack: a dynamic set
# of 5-tuples learnt at the SYN and looked up before the queue rule. No Palisade process runs: this
# measures the kernel path a bypassed packet takes. Run as root: taskset -c 0 bash bench/bypass-floor.sh
source "$(dirname "$0")/gateway-lab.sh"
run() { # label
  for r in $(seq "$ROUNDS"); do
    g=$(ip netns exec $C iperf3 -c 10.90.2.2 -t "$SECS" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,3))')
    echo "$1: $g"
  done
}
X="ip netns exec $G iptables"
run "none"
# Current layout, flows pre-marked once (NEW packets only).
$X -t mangle -A PREROUTING -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x200000/0x200000
run "ct new-mark only"
ip netns exec $G $P firewall install --role gateway --queue 0 --fail closed >/dev/null
run "current rules"
ip netns exec $G $P firewall uninstall >/dev/null
# Reordered: connmark first, mangle rule without a chain jump.
$X -N PAL; $X -A PAL -m connmark --mark 0x200000/0x200000 -j RETURN; $X -A PAL -m mark --mark 0x100000/0x100000 -j RETURN; $X -A PAL -j NFQUEUE --queue-num 0
$X -I FORWARD 1 -j PAL
$X -t mangle -I POSTROUTING 1 -m mark --mark 0x200000/0x200000 -j CONNMARK --save-mark --nfmask 0x200000 --ctmask 0x200000
run "reordered, flat mangle"
$X -D FORWARD -j PAL
# Flat: the bypass test directly in FORWARD, no jump for bypassed packets.
$X -I FORWARD 1 -m connmark --mark 0x200000/0x200000 -j ACCEPT
$X -I FORWARD 2 -j PAL
run "connmark accept in FORWARD, then jump"
$X -F FORWARD; $X -F PAL; $X -X PAL; $X -t mangle -F   # back to no rules (conntrack unhooked)
# (6) No conntrack at all: flows learnt into a dynamic nftables set of 5-tuples and looked up
# before the queue rule.
N="ip netns exec $G nft"
# Tuple-set fast path: no conntrack anywhere. Flows learnt into a dynamic set by the bypass mark
# (here: every packet marked on its way, as if Palisade had said bypass), looked up before the
# queue rule; the iptables chain returns marked packets.
cat > $W/set.nft <<NFT
table inet pfast {
  set byp4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service; flags dynamic, timeout; timeout 120s; size 65536; }
  chain early {
    type filter hook forward priority -10; policy accept;
    ip saddr . ip daddr . meta l4proto . th sport . th dport @byp4 meta mark set meta mark | 0x200000
  }
  chain learn {
    type filter hook forward priority 10; policy accept;
    meta mark & 0x200000 == 0x200000 update @byp4 { ip saddr . ip daddr . meta l4proto . th sport . th dport } update @byp4 { ip daddr . ip saddr . meta l4proto . th dport . th sport }
  }
}
NFT
$N -f $W/set.nft
$X -N PAL 2>/dev/null || true; $X -A PAL -m mark --mark 0x200000/0x200000 -j RETURN; $X -A PAL -m mark --mark 0x100000/0x100000 -j RETURN; $X -A PAL -j NFQUEUE --queue-num 0 --queue-bypass
$X -I FORWARD 1 -j PAL
# Seed: mark the first packets so the flow is learnt (stands in for Palisade's verdict).
$X -t mangle -A FORWARD -p tcp --syn -j MARK --or-mark 0x200000
run "tuple set: flows learnt at the SYN, then looked up (no conntrack)"
$N list set inet pfast byp4 | head -5
