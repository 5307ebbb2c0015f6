#!/usr/bin/env python3
"""Writes a connection-heavy capture for the beacon benchmark (bench/beacons.sh): one-off TCP
connections (a SYN each) from 4,096 clients to 65,536 servers, and among them BEACONS clients
that each open a connection to their own server every PERIOD seconds, less up to 30% (even
jitter, as Cobalt Strike's), and as many clients that connect to their own server at random
times (a Poisson process with the same mean gap: a person, or a program acting on events).
Every connection is a bare SYN, so sizes never tell series apart (the worst case: only the
gaps do). Deterministic (seeded).

    python3 bench/gen-conns.py OUT.pcap [CONNS] [BEACONS] [PERIOD] [SECONDS]
"""
import random
import struct
import sys

from pcapgen import csum, ipv4, write_pcap

out = sys.argv[1]
conns = int(sys.argv[2]) if len(sys.argv) > 2 else 300_000
beacons = int(sys.argv[3]) if len(sys.argv) > 3 else 200
period = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
secs = float(sys.argv[5]) if len(sys.argv) > 5 else 600.0
r = random.Random(1)


def syn(src, dst, sport, dport, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    return ipv4(src, dst, 6, tcp)


events = []
for _ in range(conns):
    t = r.uniform(0, secs)
    c = r.randrange(4096)
    s = r.randrange(65536)
    events.append((t, bytes([10, 1, c >> 8, c & 255]), bytes([172, 16, s >> 8, s & 255]), 443))
for b in range(beacons):
    t = r.uniform(0, period)
    src = bytes([10, 2, b >> 8, b & 255])
    dst = bytes([192, 168, b >> 8, b & 255])
    while t < secs:
        events.append((t, src, dst, 8443))
        t += period * (1 - 0.3 * r.random())
for b in range(beacons):
    t = r.expovariate(1 / period)
    src = bytes([10, 3, b >> 8, b & 255])
    dst = bytes([192, 169, b >> 8, b & 255])
    while t < secs:
        events.append((t, src, dst, 8443))
        t += r.expovariate(1 / period)
events.sort()
write_pcap(out, ((t, syn(src, dst, 1024 + i % 60000, dport, r.getrandbits(32)))
                 for i, (t, src, dst, dport) in enumerate(events)))
print(f"{out}: {len(events)} connections ({beacons} beacons every {period} s less up to 30%, "
      f"{beacons} random series of mean gap {period} s)")
