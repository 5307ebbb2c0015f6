#!/usr/bin/env python3
"""Real QUIC peers (aioquic) for the inline tests.
  quic_peers.py server HOST PORT CERT KEY       serve until killed
  quic_peers.py client HOST PORT SNI SECONDS    exit 0 when the handshake completes in time"""
import asyncio, ssl, sys

from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration

ALPN = ["h3"]


async def server(host, port, cert, key):
    cfg = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
    cfg.load_cert_chain(cert, key)
    await serve(host, int(port), configuration=cfg)
    print("listening", flush=True)
    await asyncio.Future()


async def client(host, port, sni):
    cfg = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name=sni, verify_mode=ssl.CERT_NONE)
    async with connect(host, int(port), configuration=cfg, wait_connected=True) as c:
        await c.ping()


if sys.argv[1] == "server":
    asyncio.run(server(*sys.argv[2:6]))
else:
    host, port, sni, secs = sys.argv[2:6]
    try:
        asyncio.run(asyncio.wait_for(client(host, port, sni), float(secs)))
        print("connected")
    except Exception as e:  # timeout or refused: the handshake did not complete
        print(f"failed: {type(e).__name__}")
        sys.exit(1)
