#!/usr/bin/env python3
"""Real QUIC and HTTP/3 peers (aioquic) for the inline tests.
  quic_peers.py server HOST PORT CERT KEY       HTTP/3 server (200 "ok") until killed
  quic_peers.py client HOST PORT SNI SECONDS    exit 0 when the handshake completes in time
  quic_peers.py get HOST PORT SNI SECONDS       exit 0 when GET / over HTTP/3 answers 200
  quic_peers.py fetch HOST PORT SNI SECONDS     as a browser does: HTTP/3 first, HTTPS over TCP
                                                when HTTP/3 fails; prints "h3 200" or "tcp 200"
  quic_peers.py many HOST PORT PREFIX COUNT     COUNT HTTP/3 GETs, one connection each, to the names
                                                PREFIX0.example, PREFIX1.example, ... (benchmarks)
  quic_peers.py get-big HOST PORT SNI SECONDS   as get, with a ClientHello of about 1.6 KB (sixty
                                                more ALPN names), so it spans several Initials
"""
import asyncio, http.client, ssl, sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration

ALPN = H3_ALPN


class H3Server(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.h3 = None

    def quic_event_received(self, event):
        if self.h3 is None:
            self.h3 = H3Connection(self._quic)
        for e in self.h3.handle_event(event):
            if isinstance(e, HeadersReceived) and e.stream_ended or isinstance(e, DataReceived) and e.stream_ended:
                self.h3.send_headers(e.stream_id, [(b":status", b"200"), (b"content-type", b"text/plain")])
                self.h3.send_data(e.stream_id, b"ok\n", end_stream=True)
        self.transmit()


class H3Client(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.h3 = H3Connection(self._quic)
        self.status = asyncio.get_event_loop().create_future()

    def quic_event_received(self, event):
        for e in self.h3.handle_event(event):
            if isinstance(e, HeadersReceived) and not self.status.done():
                self.status.set_result(dict(e.headers).get(b":status", b"").decode())

    async def get(self, authority):
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                   (b":authority", authority.encode()), (b":path", b"/")], end_stream=True)
        self.transmit()
        return await self.status


async def server(host, port, cert, key):
    cfg = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
    cfg.load_cert_chain(cert, key)
    await serve(host, int(port), configuration=cfg, create_protocol=H3Server)
    print("listening", flush=True)
    await asyncio.Future()


BIG = False


def client_cfg(sni):
    alpn = ALPN + ([f"x-palisade-padding-{i:03d}" for i in range(60)] if BIG else [])
    return QuicConfiguration(is_client=True, alpn_protocols=alpn, server_name=sni, verify_mode=ssl.CERT_NONE)


async def handshake(host, port, sni):
    async with connect(host, int(port), configuration=client_cfg(sni), wait_connected=True) as c:
        await c.ping()


async def h3_get(host, port, sni):
    async with connect(host, int(port), configuration=client_cfg(sni), create_protocol=H3Client,
                       wait_connected=True) as c:
        return await c.get(sni)


def tcp_get(host, port, sni, secs):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(host, int(port), timeout=secs, context=ctx)
    # The SNI and Host are the name, the connection goes to the address.
    c.sock = ctx.wrap_socket(__import__("socket").create_connection((host, int(port)), timeout=secs),
                             server_hostname=sni)
    c.request("GET", "/", headers={"Host": sni})
    return str(c.getresponse().status)


def run(coro, secs):
    return asyncio.run(asyncio.wait_for(coro, float(secs)))


async def many(host, port, prefix, count):
    ok = 0
    for i in range(count):
        try:
            ok += await asyncio.wait_for(h3_get(host, port, f"{prefix}{i}.example"), 3) == "200"
        except Exception:
            pass
    return ok


if sys.argv[1] == "server":
    asyncio.run(server(*sys.argv[2:6]))
    sys.exit(0)
if sys.argv[1] == "many":
    host, port, prefix, count = sys.argv[2:6]
    print(f"{asyncio.run(many(host, port, prefix, int(count)))} of {count} answered")
    sys.exit(0)
mode = sys.argv[1]
host, port, sni, secs = sys.argv[2:6]
if mode == "get-big":
    BIG, mode = True, "get"
try:
    if mode == "client":
        run(handshake(host, port, sni), secs)
        print("connected")
    elif mode == "get":
        status = run(h3_get(host, port, sni), secs)
        print(f"h3 {status}")
        sys.exit(0 if status == "200" else 1)
    elif mode == "fetch":
        try:
            status = run(h3_get(host, port, sni), secs)
            print(f"h3 {status}")
        except Exception:
            status = tcp_get(host, port, sni, float(secs))
            print(f"tcp {status}")
        sys.exit(0 if status == "200" else 1)
except Exception as e:  # timeout, reset or refused: no answer
    print(f"failed: {type(e).__name__}")
    sys.exit(1)
