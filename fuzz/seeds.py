#!/usr/bin/env python3
"""Builds fuzz seed corpora from real captures (../../shared/data/pcaps) into seeds/<target>/.
Seeds are generated, not committed. Only classic pcap with Ethernet or raw IP is read here."""
import os, struct, sys, hashlib

root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "pcaps")
out = os.path.join(os.path.dirname(__file__), "seeds")

def pcaps():
    for d, _, fs in os.walk(root):
        for f in sorted(fs):
            if f.endswith(".pcap"):
                p = os.path.join(d, f)
                if os.path.getsize(p) < 200_000:
                    yield p

def records(p):
    b = open(p, "rb").read()
    if len(b) < 24:
        return
    m = b[:4]
    e = "<" if m in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">" if m in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d") else None
    if not e:
        return
    lt = struct.unpack(e + "I", b[20:24])[0]
    o = 24
    while o + 16 <= len(b):
        _, _, cl, _ = struct.unpack(e + "IIII", b[o:o + 16])
        yield lt, b[o + 16:o + 16 + cl]
        o += 16 + cl

def l4(lt, f):
    if lt == 1:
        if len(f) < 14: return None
        et, f = struct.unpack(">H", f[12:14])[0], f[14:]
        if et == 0x8100 and len(f) >= 4: et, f = struct.unpack(">H", f[2:4])[0], f[4:]
        if et != 0x0800: return None
    elif lt not in (101, 228, 12):
        return None
    if len(f) < 20 or f[0] >> 4 != 4: return None
    ihl = (f[0] & 15) * 4
    proto, p = f[9], f[ihl:]
    if proto == 17 and len(p) >= 8:
        return "udp", struct.unpack(">HH", p[:4]), p[8:]
    if proto == 6 and len(p) >= 20:
        return "tcp", struct.unpack(">HH", p[:4]), p[(p[12] >> 4) * 4:]
    return None

def save(t, data):
    d = os.path.join(out, t)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb").write(data)

for p in pcaps():
    raw = open(p, "rb").read()
    if len(raw) < 20_000:
        save("capture", raw)
    eng = b""
    sel = {1: 0, 101: 1, 113: 2, 276: 3, 0: 4, 239: 5, 228: 6, 229: 7}
    for i, (lt, f) in enumerate(records(p)):
        if i < 64 and lt in sel and len(eng) < 30_000 and len(f) < 65536:
            eng += bytes([sel[lt], 1]) + struct.pack("<H", len(f)) + f
        r = l4(lt, f)
        if not r or not r[2]: continue
        kind, (sp, dp), pl = r
        if kind == "udp" and 53 in (sp, dp): save("dns", pl)
        if kind == "tcp" and pl[:1] == b"\x16": save("tls", bytes([len(pl) // 2 % 256]) + pl)
        if kind == "udp" and 443 in (sp, dp) and pl[:1] and pl[0] & 0x80: save("quic", pl)
        if kind == "tcp" and (pl[:4] in (b"GET ", b"POST", b"HTTP", b"HEAD", b"PUT ")): save("http", bytes([7]) + pl)
    if eng: save("engine", eng)
for name in ("domains/malicious/urlhaus-filter/urlhaus-filter-hosts-online.txt",):
    p = os.path.join(root, "..", name)
    if os.path.exists(p):
        lines = open(p, "rb").read().split(b"\n")
        for i in range(0, min(len(lines), 400), 40):
            save("intel", b"\n".join(lines[i:i + 40]))
save("intel", b"||a.example^\n@@||b.a.example^\n10.0.0.0/8\nhttp://c.example/x.php\n/gate.php\n")
print({t: len(os.listdir(os.path.join(out, t))) for t in os.listdir(out)})

# Rule seeds: the suricata-verify rules files and a slice of ET Open, one rule per seed; matcher
# seeds pair a rule with a payload from the captures.
sig_root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
rule_lines = []
for d, _, fs in os.walk(os.path.join(sig_root, "pcaps", "suricata-verify")):
    for f in fs:
        if f.endswith(".rules"):
            rule_lines += [l for l in open(os.path.join(d, f), errors="replace").read().splitlines() if l.strip() and not l.startswith("#")]
et = os.path.join(sig_root, "signatures", "et-open-suricata-5.0-enhanced-2024-04-21")
if os.path.isdir(et):
    for f in sorted(os.listdir(et)):
        if f.endswith(".rules"):
            ls = [l for l in open(os.path.join(et, f), errors="replace").read().splitlines() if l.startswith("alert")]
            rule_lines += ls[::97]
for l in rule_lines:
    save("rules", l.encode())
payloads = [open(os.path.join(out, "http", f), "rb").read() for f in sorted(os.listdir(os.path.join(out, "http")))[:64]] if os.path.isdir(os.path.join(out, "http")) else [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
for i, l in enumerate(rule_lines[:400]):
    save("sigmatch", l.encode() + b"\0" + payloads[i % len(payloads)])
