"""What the benchmark's capture generators (gen-conns.py, gen-dns.py) share: Ethernet frames of
IPv4 packets with their checksums, and a classic pcap writer (microsecond timestamps from
2023-11-14, the same base in every generated capture)."""
import struct

ETHERNET = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"


def csum(b):
    """The Internet checksum of `b`."""
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload):
    """An Ethernet frame of an IPv4 packet (DF set, TTL 64) carrying `payload`."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ETHERNET + ip + payload


def write_pcap(path, frames):
    """Writes `(seconds from the base, frame)` pairs, in the order given, as a pcap file."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, p in frames:
            sec = 1_700_000_000 + int(t)
            f.write(struct.pack("<IIII", sec, int((t % 1) * 1e6), len(p), len(p)))
            f.write(p)
