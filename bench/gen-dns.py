#!/usr/bin/env python3
"""Writes a DNS-query capture for the DNS tunnel benchmark (bench/tunnels.sh): QUERIES ordinary
lookups from 4,096 clients (host names of up to 20 characters under 50,000 registered domains,
some domains asked for many distinct hosts, a search list's expansions, reversed-address
blocklist lookups, repeats), and among them TUNNELS clients that each run a tunnel under their
own domain (a 40- to 60-character base32 label and a session label per query, a query every
RATE seconds with even jitter, TXT) and as many slow clients that send the same names at a
tenth of that rate (about 40% of the threshold per 300 s window at the defaults, so they must
not alert). Deterministic (seeded).

    python3 bench/gen-dns.py OUT.pcap [QUERIES] [TUNNELS] [RATE] [SECONDS]
"""
import random
import struct
import sys

from pcapgen import ipv4, write_pcap

out = sys.argv[1]
queries = int(sys.argv[2]) if len(sys.argv) > 2 else 500_000
tunnels = int(sys.argv[3]) if len(sys.argv) > 3 else 100
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
secs = float(sys.argv[5]) if len(sys.argv) > 5 else 1800.0
r = random.Random(1)
B32 = "abcdefghijklmnopqrstuvwxyz234567"
WORDS = ["www", "mail", "api", "cdn", "img", "static", "login", "app", "m", "shop", "news",
         "video", "assets", "auth", "edge", "push", "sync", "ws", "docs", "blog"]
TLDS = ["com", "net", "org", "io", "de", "co.uk", "info", "xyz"]


def qname(name):
    b = b""
    for label in name.split("."):
        b += bytes([len(label)]) + label.encode()
    return b + b"\0"


def query(src, dst, sport, qid, name, qtype):
    dns = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname(name) + struct.pack("!HH", qtype, 1)
    udp = struct.pack("!HHHH", sport, 53, 8 + len(dns), 0) + dns
    return ipv4(src, dst, 17, udp)


def ordinary():
    k = r.random()
    d = f"site{r.randrange(50_000)}.{r.choice(TLDS)}"
    if k < 0.5:
        return f"{r.choice(WORDS)}.{d}", r.choice([1, 28, 65])
    if k < 0.7:
        # A big site's many hosts (CDN shards, regional APIs): distinct, short.
        return f"{r.choice(WORDS)}{r.randrange(1000)}-{r.choice(['eu', 'us', 'ap'])}.bigsite{r.randrange(20)}.com", 1
    if k < 0.8:
        # A search list's expansion: an ordinary name under the local domain.
        return f"{r.choice(WORDS)}.{d}.corp{r.randrange(4)}.example", 1
    if k < 0.9:
        a = ".".join(str(r.randrange(256)) for _ in range(4))
        return f"{a}.zen.spamhaus.org", 1
    return d, r.choice([1, 15, 16])


events = []
for _ in range(queries):
    c = r.randrange(4096)
    name, qtype = ordinary()
    events.append((r.uniform(0, secs), bytes([10, 1, c >> 8, c & 255]), name, qtype))
for kind, net, gap in (("fast", 2, rate), ("slow", 3, rate * 10)):
    for b in range(tunnels):
        src = bytes([10, net, b >> 8, b & 255])
        t = r.uniform(0, gap)
        n = 0
        while t < secs:
            label = "".join(r.choice(B32) for _ in range(r.randint(40, 60)))
            events.append((t, src, f"{label}.s{n % 1000}.t{b}-{kind}.example.net", 16))
            n += 1
            t += gap * (0.5 + r.random())
events.sort()
write_pcap(out, ((t, query(src, bytes([10, 0, 0, 53]), 1024 + i % 60000, i & 0xFFFF, name, qtype))
                 for i, (t, src, name, qtype) in enumerate(events)))
print(f"{out}: {len(events)} queries ({queries} ordinary, {tunnels} tunnels a query every "
      f"{rate} s on average, {tunnels} slow ones every {rate * 10} s)")
