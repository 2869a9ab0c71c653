#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Seed corpora for the libFuzzer targets of tests/fuzz/, generated at run time (never committed).

  tools/fuzz/make-corpus.py OUT_DIR [--captures DIR] [--gen PATH]

Writes OUT_DIR/<target>/<sha1> files:
  parser  every frame (at most 400 per file) of the shared captures (../shared/captures, pcap and
          pcapng, Ethernet and Linux cooked), conf/demo.pcap and stateline-gen's output for each
          tools/scenarios/*.yaml; byte 0 is the link type as fuzz_parser reads it.
  tcp     the TCP segment sequences of real captures in fuzz_tcp's 8-byte encoding: each
          connection alone and each capture's first 8 connections interleaved as they were
          captured, at most 64 segments each (fuzz_tcp's -max_len in run.sh is 1 + 8 * 64).
  config  conf/stateline.yaml (whole when under 4 KiB, and each top-level section), the YAML of
          the unit tests (raw strings of tests/unit/test_config.cpp and test_rules.cpp), the
          scenarios.
  ctl     valid and invalid control-socket requests (docs/operations.md's protocol).
stateline-gen (default build/tools/stateline-gen) is optional: without it its frames are left out.
"""
import argparse
import hashlib
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_FRAMES_PER_FILE = 400
MAX_TCP_SEGMENTS = 64  # run.sh: fuzz_tcp -max_len=513
LINK_ETH, LINK_SLL = 1, 113


def write(out, target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    p = os.path.join(d, name)
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(data)
        return 1
    return 0


def read_pcap(path):
    """Yields (linktype, ts_ns, frame) for pcap and pcapng files; nothing for other files."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xd4, 0x4d) else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        link = struct.unpack(e + "I", data[20:24])[0] & 0xffff
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
            off += 16
            if off + incl > len(data):
                break
            yield link, sec * 10**9 + (frac if nano else frac * 1000), data[off:off + incl]
            off += incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        e = "<"
        links = []
        off = 0
        while off + 12 <= len(data):
            btype = struct.unpack(e + "I", data[off:off + 4])[0]
            if btype == 0x0A0D0D0A:
                bom = data[off + 8:off + 12]
                e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                links = []
            blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
            if blen < 12 or off + blen > len(data):
                break
            body = data[off + 8:off + blen - 4]
            if btype == 1 and len(body) >= 2:
                links.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6 and len(body) >= 20:
                iface, hi, lo, cap, _orig = struct.unpack(e + "IIIII", body[:20])
                if iface < len(links):
                    yield links[iface], ((hi << 32) | lo) * 1000, body[20:20 + cap]
            elif btype == 3 and len(body) >= 4 and links:
                yield links[0], 0, body[4:]
            off += blen


def captures(dirs):
    for d in dirs:
        if os.path.isfile(d):
            yield d
            continue
        for base, _, files in sorted(os.walk(d)):
            for f in sorted(files):
                if f.endswith((".pcap", ".pcapng", ".cap")):
                    yield os.path.join(base, f)


# --- parser -------------------------------------------------------------------------------------
def parser_seeds(out, files):
    n = 0
    for path in files:
        k = 0
        try:
            for link, _ts, frame in read_pcap(path):
                if link not in (LINK_ETH, LINK_SLL):
                    break
                n += write(out, "parser", bytes([0 if link == LINK_ETH else 1]) + frame)
                k += 1
                if k >= MAX_FRAMES_PER_FILE:
                    break
        except (OSError, struct.error) as exc:
            print(f"make-corpus: {path}: {exc}", file=sys.stderr)
    return n


# --- tcp ----------------------------------------------------------------------------------------
def tcp_of(link, frame):
    """(src, sport, dst, dport, seq, ack, flags, window, has_opts, payload_len) or None."""
    if link == LINK_ETH:
        off, et = 14, frame[12:14]
    elif link == LINK_SLL:
        off, et = 16, frame[14:16]
    else:
        return None
    if len(frame) < off:
        return None
    while et in (b"\x81\x00", b"\x88\xa8", b"\x91\x00") and len(frame) >= off + 4:
        et = frame[off + 2:off + 4]
        off += 4
    if et == b"\x08\x00" and len(frame) >= off + 20:
        ihl = (frame[off] & 15) * 4
        if frame[off + 9] != 6 or ihl < 20:
            return None
        total = struct.unpack(">H", frame[off + 2:off + 4])[0]
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        t, l4 = off + ihl, total - ihl
    elif et == b"\x86\xdd" and len(frame) >= off + 40:
        if frame[off + 6] != 6:
            return None
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        t, l4 = off + 40, struct.unpack(">H", frame[off + 4:off + 6])[0]
    else:
        return None
    if len(frame) < t + 20:
        return None
    sport, dport, seq, ack, doff, flags, win = struct.unpack(">HHIIBBH", frame[t:t + 16])
    hlen = (doff >> 4) * 4
    return src, sport, dst, dport, seq, ack, flags, win, hlen > 20, max(0, l4 - hlen)


CLOCK_MS = [0, 1, 20, 500, 5000, 31000, 125000, 7300000]


def clock_class(dt_ns):
    ms = dt_ns / 1e6
    best = 0
    for i, c in enumerate(CLOCK_MS):
        if c <= ms:
            best = i
    return best


def s16(v):
    v &= 0xffffffff
    if v >= 0x80000000:
        v -= 1 << 32
    return max(-32767, min(32767, v))


def encode(segments):
    """segments: list of (conn_index, tuple as tcp_of gives, ts_ns) -> fuzz_tcp input."""
    out = bytearray([15])  # capacity 16
    state = {}  # conn -> {client: (addr, port), nxt: [None, None]}
    last_ts = None
    for ci, seg, ts in segments:
        src, sport, dst, dport, seq, ack, flags, win, opts, plen = seg
        st = state.setdefault(ci, {"client": (src, sport), "nxt": [None, None]})
        d = 0 if (src, sport) == st["client"] else 1
        nxt = st["nxt"]
        if nxt[d] is None:
            nxt[d] = seq
        dseq = s16(seq - nxt[d])
        dack = s16(ack - nxt[1 - d]) if nxt[1 - d] is not None else 0
        cls = clock_class(ts - last_ts) if last_ts is not None and ts >= last_ts else 0
        last_ts = ts
        wbyte = (win >> 8) & 0xfe
        if plen > 255:
            wbyte |= 1
            pbyte = min(255, plen // 4)
            enc_len = pbyte * 4
        else:
            pbyte = enc_len = plen
        out += bytes([d | (ci & 7) << 1 | (0x10 if opts else 0) | cls << 5, flags])
        out += struct.pack(">hh", dseq, dack) + bytes([wbyte, pbyte])
        # Mirror fuzz_tcp's update of the sender's next sequence number.
        hseq = (nxt[d] + dseq) & 0xffffffff
        used = enc_len + (1 if flags & 2 else 0) + (1 if flags & 1 else 0)
        if 0 < (hseq + used - nxt[d]) & 0xffffffff < 1 << 31:
            nxt[d] = (hseq + used) & 0xffffffff
    return bytes(out)


def tcp_seeds(out, files):
    n = 0
    for path in files:
        conns, order, segs = {}, [], []
        try:
            for link, ts, frame in read_pcap(path):
                t = tcp_of(link, frame)
                if t is None:
                    continue
                a, b = (t[0], t[1]), (t[2], t[3])
                key = (min(a, b), max(a, b))
                if key not in conns:
                    conns[key] = len(conns)
                    order.append(key)
                segs.append((conns[key], t, ts))
                if len(segs) >= 20000:
                    break
        except (OSError, struct.error):
            continue
        if not segs:
            continue
        per = {}
        for ci, t, ts in segs:
            per.setdefault(ci, []).append((0, t, ts))
        for ci in list(per)[:32]:
            n += write(out, "tcp", encode(per[ci][:MAX_TCP_SEGMENTS]))
        mixed = [(ci, t, ts) for ci, t, ts in segs if ci < 8][:MAX_TCP_SEGMENTS]
        n += write(out, "tcp", encode(mixed))
    return n


# --- config -------------------------------------------------------------------------------------
RAW = re.compile(r'R"([a-z]*)\((.*?)\)\1"', re.S)


def config_seeds(out):
    n = 0
    texts = []
    main = open(os.path.join(ROOT, "conf", "stateline.yaml")).read()
    texts.append(main)
    # Each top-level section alone, comments dropped (the whole file is over 4 KiB).
    lines = [l for l in main.splitlines() if not l.lstrip().startswith("#")]
    sec = []
    for l in lines + ["END:"]:
        if l and not l[0].isspace() and sec:
            texts.append("\n".join(sec) + "\n")
            sec = []
        if l.strip():
            sec.append(l)
    texts.append("\n".join(lines) + "\n")
    for f in ("test_config.cpp", "test_rules.cpp"):
        p = os.path.join(ROOT, "tests", "unit", f)
        if os.path.exists(p):
            texts += [m.group(2) for m in RAW.finditer(open(p).read())]
    sdir = os.path.join(ROOT, "tools", "scenarios")
    texts += [open(os.path.join(sdir, f)).read() for f in sorted(os.listdir(sdir)) if f.endswith(".yaml")]
    texts += ["", "{}", "[]", "workers: 2\n", "rules:\n  - name: x\n    payload: 'a+b'\n    action: drop\n"]
    for t in texts:
        data = t.encode()
        if len(data) <= 4096:
            n += write(out, "config", data)
    return n


# --- ctl ----------------------------------------------------------------------------------------
CTL = [
    '{"cmd":"help"}', '{"cmd":"status","id":1}', '{"cmd":"stats","detail":false}', '{"cmd":"stats","detail":1}',
    '{"cmd":"alerts","id":"a"}', '{"cmd":"rules"}', '{"cmd":"top"}', '{"cmd":"victims"}', '{"cmd":"sources"}',
    '{"cmd":"reload"}', '{"cmd":"reload","path":"/etc/passwd"}',
    '{"cmd":"conn","addr":"192.0.2.10","port":80}', '{"cmd":"conn","addr":"2001:db8::1","peer":"::ffff:10.0.0.1","peer_port":443}',
    '{"cmd":"conn","addr":"192.0.2.999"}', '{"cmd":"conn","port":80}', '{"cmd":"conn","addr":"10.0.0.1","peer_port":1}',
    '{"cmd":"conn","addr":"10.0.0.1","port":70000}', '{"cmd":"conn","addr":"10.0.0.1","port":-1}', '{"cmd":"conn","addr":1}',
    '{"cmd":"conn","addr":"10.0.0.1","port":8.5}', '{"cmd":"conn","addr":"10.0.0.1","bogus":true}',
    '{"cmd":"nope"}', '{"id":[1]}', '{"id":"' + "x" * 65 + '","cmd":"help"}', '{}', '[]', '"status"', 'status', '',
    '   \t ', '{"cmd":"help"}\r', '{"cmd":"status","id":1e400}', '{"cmd":"st\\u0000atus"}', '{"cmd":"\xff"}',
    '2024-05-01T12:00:00.123456Z', '{"cmd":"help","id":-9223372036854775809}',
]


def ctl_seeds(out):
    return sum(write(out, "ctl", t.encode("utf-8", "surrogateescape")) for t in CTL)


# --- stateline-gen ------------------------------------------------------------------------------
def gen_captures(gen, tmp):
    if not gen or not os.access(gen, os.X_OK):
        print(f"make-corpus: no stateline-gen at {gen}: its frames are left out", file=sys.stderr)
        return []
    sdir = os.path.join(ROOT, "tools", "scenarios")
    outs = []
    for f in sorted(os.listdir(sdir)):
        if not f.endswith(".yaml"):
            continue
        o = os.path.join(tmp, f[:-5] + ".pcap")
        r = subprocess.run([gen, "--scenario", os.path.join(sdir, f), "--out", o, "--duration", "1",
                            "--scale", "0.02", "--quiet"], capture_output=True, timeout=120)
        if r.returncode == 0 and os.path.exists(o):
            outs.append(o)
        else:
            print(f"make-corpus: stateline-gen {f}: exit {r.returncode}", file=sys.stderr)
    return outs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--captures", default=os.path.join(ROOT, "..", "shared", "captures"))
    ap.add_argument("--gen", default=os.path.join(ROOT, "build", "tools", "stateline-gen"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = list(captures([a.captures, os.path.join(ROOT, "conf", "demo.pcap")]))
        gen = gen_captures(a.gen, tmp)
        counts = {
            "parser": parser_seeds(a.out, files + gen),
            "tcp": tcp_seeds(a.out, files + gen),
            "config": config_seeds(a.out),
            "ctl": ctl_seeds(a.out),
        }
    print("make-corpus: " + ", ".join(f"{t} {n} new seeds" for t, n in counts.items()) +
          f" in {a.out} ({len(files)} captures, {len(gen)} generated)")


if __name__ == "__main__":
    main()
