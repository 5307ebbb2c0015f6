#!/usr/bin/env python3
"""New TLS connections per second through the filter, from one process (no process start-up
per connection), and the TCP connect latency: tls_clients.py HOST PORT SNI SECONDS.
Prints one JSON line: connections, per_second, connect_p50_ms, connect_p99_ms."""
import json, socket, ssl, sys, time

host, port, sni, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
lat, n, fail = [], 0, 0
end = time.monotonic() + secs
while time.monotonic() < end:
    t0 = time.perf_counter()
    try:
        s = socket.create_connection((host, port), timeout=2)
        lat.append((time.perf_counter() - t0) * 1000)
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: " + sni.encode() + b"\r\nConnection: close\r\n\r\n")
            t.recv(100)
        n += 1
    except OSError:
        fail += 1
lat.sort()
pct = lambda p: round(lat[min(len(lat) - 1, int(len(lat) * p))], 3) if lat else None
print(json.dumps({"connections": n, "failures": fail, "per_second": round(n / secs, 1),
                  "connect_p50_ms": pct(0.5), "connect_p99_ms": pct(0.99)}))
