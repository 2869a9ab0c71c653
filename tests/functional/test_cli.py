#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: Stateline's error paths with --pcap.

    python3 test_cli.py [--binary build/src/stateline] [--captures ../shared/captures]
                        [--timeout 60]

Builds its inputs in a temporary directory: a missing file, a text file, an empty file, a pcap
file header cut short, a pcap
of link type 147 (USER0) written by hand, a real capture cut in the middle of a packet (classic
pcap and pcapng), a record whose length field is absurd, a valid capture with no packets, a
capture under a path with spaces and commas, and a good file followed by a missing one.

In every case the binary must not die of a signal nor hang. Missing / not a capture / unknown
link type: non-zero exit and a message on stderr naming the file. Cut or corrupt captures:
either exit 0 having counted exactly the packets before the damage, or a non-zero exit with a
message on stderr naming the file; the test prints which. The real capture is
tcpdump/print-flags.pcap and chrissanders/tcp_handshake.pcapng from --captures when present,
else conf/demo.pcap from the source tree (pcapng cases skipped), so this test never skips.

Prints one line per case and ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))


# ---- capture walkers (stdlib only): offsets where each whole packet record ends ----

def pcap_record_ends(data):
    """Classic pcap: list of end offsets of the whole records; raises ValueError if not pcap."""
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("not a classic pcap")
    ends, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        if off + 16 + incl > len(data):
            break
        off += 16 + incl
        ends.append(off)
    return ends


def pcapng_packet_ends(data):
    """pcapng: list of (start, end) offsets of whole packet blocks (EPB, SPB, PB)."""
    if data[:4] != b"\x0a\x0d\x0d\x0a":
        raise ValueError("not a pcapng")
    out, off, e = [], 0, "<"
    while off + 12 <= len(data):
        btype = data[off:off + 4]
        if btype == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        t, blen = struct.unpack(e + "II", data[off:off + 8])
        if blen < 12 or off + blen > len(data):
            break
        if t in (2, 3, 6):
            out.append((off, off + blen))
        off += blen
    return out


def pcap_header(linktype, snaplen=65535):
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(frame, ts=1_700_000_000):
    return struct.pack("<IIII", ts, 0, len(frame), len(frame)) + frame


# ---- running the binary ----

def run(binary, pcaps, summary, timeout):
    cmd = [binary, "--pcap"] + list(pcaps) + ["--workers", "1", "--summary", summary]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           cwd=os.path.dirname(summary))
    except subprocess.TimeoutExpired:
        return None, ""
    return p.returncode, p.stderr.decode(errors="replace")


def describe_rc(rc):
    if rc is None:
        return "timed out"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


def first_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    # The last line usually holds the fatal message; show it.
    return lines[-1].strip()[:200] if lines else "(empty)"


def names_file(stderr, path):
    return path in stderr or os.path.basename(path) in stderr


def read_summary(path):
    try:
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
        return s if isinstance(s, dict) else None
    except (OSError, ValueError):
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stateline --pcap error paths")
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--captures",
                    default=os.path.normpath(os.path.join(SOURCE_ROOT, "..", "shared", "captures")))
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    args.captures = os.path.abspath(args.captures)  # the binary runs in a temp directory

    binary = os.path.abspath(args.binary)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"ERROR: appliance binary {binary} not found or not executable (--binary PATH)")
        print("0 passed, 1 failed")
        return 1

    real_pcap = os.path.join(args.captures, "tcpdump", "print-flags.pcap")
    real_pcapng = os.path.join(args.captures, "chrissanders", "tcp_handshake.pcapng")
    if not os.path.isfile(real_pcap):
        real_pcap = os.path.join(SOURCE_ROOT, "conf", "demo.pcap")
        real_pcapng = None
        print(f"note: {args.captures} not found: using {real_pcap}, pcapng cases skipped")
    elif not os.path.isfile(real_pcapng):
        real_pcapng = None
    if not os.path.isfile(real_pcap):
        print(f"ERROR: no real capture to cut (looked for print-flags.pcap and {real_pcap})")
        print("0 passed, 1 failed")
        return 1

    results = []  # (ok, line)

    def report(ok, name, what):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {what}")
        sys.stdout.flush()

    tmp = tempfile.mkdtemp(prefix="stateline-cli-")
    try:
        summary = os.path.join(tmp, "summary.json")

        def expect_error(name, pcaps, culprit):
            if os.path.exists(summary):
                os.unlink(summary)
            rc, err = run(binary, pcaps, summary, args.timeout)
            what = f"{describe_rc(rc)}; stderr: {first_line(err)}"
            if rc is None or rc < 0:
                report(False, name, what + " (must not crash or hang)")
            elif rc == 0:
                report(False, name, what + " (must exit non-zero)")
            elif not names_file(err, culprit):
                report(False, name, what + f" (stderr must name {os.path.basename(culprit)})")
            else:
                report(True, name, what)

        def expect_cut(name, pcaps, culprit, before):
            """Damaged capture: exit 0 with exactly `before` packets, or a clear error."""
            if os.path.exists(summary):
                os.unlink(summary)
            rc, err = run(binary, pcaps, summary, args.timeout)
            if rc is None or rc < 0:
                report(False, name, f"{describe_rc(rc)}; stderr: {first_line(err)} "
                                    "(must not crash or hang)")
                return
            if rc != 0:
                ok = names_file(err, culprit)
                report(ok, name, f"stopped with an error: {describe_rc(rc)}; stderr: "
                                 f"{first_line(err)}"
                       + ("" if ok else f" (stderr must name {os.path.basename(culprit)})"))
                return
            s = read_summary(summary)
            got = s.get("packets") if s else None
            ok = got == before
            warn = f"; stderr: {first_line(err)}" if err.strip() else "; no warning on stderr"
            report(ok, name, f"exit 0, processed {got} packets (whole packets before the damage: "
                             f"{before}){warn}")

        def expect_ok(name, pcaps, packets):
            if os.path.exists(summary):
                os.unlink(summary)
            rc, err = run(binary, pcaps, summary, args.timeout)
            if rc != 0:
                report(False, name, f"{describe_rc(rc)}; stderr: {first_line(err)}")
                return
            s = read_summary(summary)
            got = s.get("packets") if s else None
            outs = s.get("outcomes") if s else None
            total = sum(outs.values()) if isinstance(outs, dict) else None
            ok = got == packets and total == packets
            report(ok, name, f"exit 0, packets {got} (expected {packets}), sum(outcomes) {total}")

        # 1. Missing file.
        missing = os.path.join(tmp, "no-such-capture.pcap")
        expect_error("missing file", [missing], missing)

        # 2. Not a capture: a text file.
        text = os.path.join(tmp, "notes.txt")
        with open(text, "w") as f:
            f.write("This is not a packet capture.\n" * 20)
        expect_error("text file", [text], text)

        # 3. Empty file.
        empty = os.path.join(tmp, "empty.pcap")
        open(empty, "wb").close()
        expect_error("empty file", [empty], empty)

        # 3b. A file header cut short: the pcap magic and version, then nothing (12 of 24 bytes).
        short_hdr = os.path.join(tmp, "short-header.pcap")
        with open(short_hdr, "wb") as f:
            f.write(pcap_header(1)[:12])
        expect_error("file header cut at 12 of 24 bytes", [short_hdr], short_hdr)

        # 4. Unknown link type 147 (LINKTYPE_USER0), one 60-byte record.
        user0 = os.path.join(tmp, "linktype147.pcap")
        with open(user0, "wb") as f:
            f.write(pcap_header(147) + pcap_record(bytes(range(60))))
        expect_error("unknown link type 147", [user0], user0)

        # 5. Real classic pcap cut in the middle of a packet.
        with open(real_pcap, "rb") as f:
            data = f.read()
        ends = pcap_record_ends(data)
        k = max(1, len(ends) // 2)           # cut inside record k (0-based), k records whole
        start = ends[k - 1]
        rec_len = ends[k] - start if k < len(ends) else 40
        cut = start + 16 + max(1, (rec_len - 16) // 2)
        cutpcap = os.path.join(tmp, "cut-mid-packet.pcap")
        with open(cutpcap, "wb") as f:
            f.write(data[:cut])
        expect_cut(f"pcap cut mid-packet ({os.path.basename(real_pcap)}, {cut} of {len(data)} "
                   "bytes)", [cutpcap], cutpcap, len(pcap_record_ends(data[:cut])))

        # 6. Same capture cut inside a record header.
        cut2 = start + 7
        cuthdr = os.path.join(tmp, "cut-mid-record-header.pcap")
        with open(cuthdr, "wb") as f:
            f.write(data[:cut2])
        expect_cut("pcap cut mid-record-header", [cuthdr], cuthdr, k)

        # 7. A record whose captured length is absurd (0x7ffffff0).
        badlen = os.path.join(tmp, "absurd-record-length.pcap")
        hdr = bytearray(data[start:start + 16])
        e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        hdr[8:12] = struct.pack(e + "I", 0x7FFFFFF0)
        with open(badlen, "wb") as f:
            f.write(data[:start] + bytes(hdr) + data[start + 16:])
        expect_cut("pcap record with caplen 0x7ffffff0", [badlen], badlen, k)

        # 8. Real pcapng cut in the middle of a packet block.
        if real_pcapng:
            with open(real_pcapng, "rb") as f:
                ng = f.read()
            blocks = pcapng_packet_ends(ng)
            j = max(0, len(blocks) // 2)
            b0, b1 = blocks[j]
            ngcut = b0 + (b1 - b0) // 2
            cutng = os.path.join(tmp, "cut-mid-block.pcapng")
            with open(cutng, "wb") as f:
                f.write(ng[:ngcut])
            expect_cut(f"pcapng cut mid-block ({os.path.basename(real_pcapng)})", [cutng], cutng,
                       len(pcapng_packet_ends(ng[:ngcut])))

        # 9. A valid capture with no packets at all.
        nopkt = os.path.join(tmp, "no-packets.pcap")
        with open(nopkt, "wb") as f:
            f.write(pcap_header(1))
        expect_ok("valid pcap with no packets", [nopkt], 0)

        # 10. Path with spaces and commas (capture and summary both there).
        odd_dir = os.path.join(tmp, "dir with spaces, and commas")
        os.mkdir(odd_dir)
        odd = os.path.join(odd_dir, "a capture, v1 (copy).pcap")
        shutil.copyfile(real_pcap, odd)
        odd_summary = os.path.join(odd_dir, "sum mary, 1.json")
        rc, err = run(binary, [odd], odd_summary, args.timeout)
        s = read_summary(odd_summary) if rc == 0 else None
        want = len(pcap_record_ends(data))
        got = s.get("packets") if s else None
        report(rc == 0 and got == want, "path with spaces and commas",
               f"{describe_rc(rc)}, packets {got} (expected {want})"
               + (f"; stderr: {first_line(err)}" if rc != 0 else ""))

        # 11. A good capture followed by a missing one.
        missing2 = os.path.join(tmp, "second-missing.pcap")
        expect_error("good file then missing file", [real_pcap, missing2], missing2)

        # 12. Rules in a replay (monitor mode): the summary's per-rule counts add up to the
        # rules counters, and do not depend on the number of workers.
        demo = os.path.join(SOURCE_ROOT, "conf", "demo.pcap")
        rules_cfg = os.path.join(tmp, "rules.yaml")
        with open(rules_cfg, "w") as f:
            f.write("rules:\n"
                    "  - name: syn-drop\n    match: {flags: SYN}\n    action: drop\n"
                    "  - name: any-ack\n    match: {flags: ACK}\n    action: alert\n")
        by_workers = {}
        for w in (1, 4):
            out = os.path.join(tmp, f"rules-{w}.json")
            try:
                p = subprocess.run([binary, "--pcap", demo, "--config", rules_cfg, "--workers", str(w),
                                    "--summary", out], stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=args.timeout, cwd=tmp, text=True)
                rc, text, err = p.returncode, p.stdout, p.stderr
            except subprocess.TimeoutExpired:
                rc, text, err = None, "", ""
            s = read_summary(out) if rc == 0 else None
            m = (s or {}).get("mitigation", {})
            rules = m.get("rules", [])
            rx = (s or {}).get("rx", {})
            alerted = sum(r["hits"] for r in rules if r["action"] == "alert")
            would = sum(r["drops"] for r in rules)
            ok = (rc == 0 and m.get("mode") == "monitor" and [r["name"] for r in rules] == ["syn-drop", "any-ack"]
                  and all(r["hits"] > 0 for r in rules) and rules[0]["drops"] == rules[0]["hits"]
                  and rules[1]["drops"] == 0 and alerted == rx.get("rules_alerted")
                  and would == rx.get("rules_would_drop") and rx.get("rules_dropped") == 0 and rx.get("tx_packets") == 0)
            report(ok, f"rules replay, --workers {w}: summary per rule == rx counters",
                   f"{describe_rc(rc)}, rules {rules}, rules_alerted {rx.get('rules_alerted')}, "
                   f"rules_would_drop {rx.get('rules_would_drop')}" + (f"; stderr: {first_line(err)}" if rc != 0 else ""))
            text_ok = rc == 0 and "rules" in text and "syn-drop (drop)" in text and "would drop" in text
            report(text_ok, f"rules replay, --workers {w}: text summary lists the rules",
                   "ok" if text_ok else text[-600:])
            by_workers[w] = rules
        report(by_workers.get(1) == by_workers.get(4) and bool(by_workers.get(1)),
               "rules replay: identical rule counts with 1 and 4 workers", f"{by_workers.get(1)} vs {by_workers.get(4)}")

        # 13. Without rules, no rules block in the text summary; the JSON says so.
        out = os.path.join(tmp, "norules.json")
        p = subprocess.run([binary, "--pcap", demo, "--workers", "1", "--summary", out], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=args.timeout, cwd=tmp, text=True)
        s = read_summary(out) or {}
        report(p.returncode == 0 and s.get("mitigation") == {"mode": "monitor", "rules": []}
               and "\n  rules " not in p.stdout, "no rules: empty mitigation, no rules block",
               f"exit {p.returncode}, mitigation {s.get('mitigation')}")

        # 14. Live mode from the config alone: dpdk.eal_args names the lcores and the port,
        # `stateline -- --config FILE`; a bad one is refused with its place.
        cfg = os.path.join(tmp, "eal.yaml")
        with open(cfg, "w") as f:
            f.write('dpdk:\n  eal_args: "-l 0-1 --no-huge --no-pci --no-shconf -m 256 --file-prefix=cli-eal-%d '
                    '--vdev net_pcap0,rx_pcap=%s"\n' % (os.getpid(), os.path.abspath(demo)))
        out = os.path.join(tmp, "eal.json")
        lp = subprocess.Popen([binary, "--", "--config", cfg, "--ctl-socket", "off", "--metrics-listen", "off", "-q",
                               "--summary", out], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, cwd=tmp, text=True)
        time.sleep(4)
        lp.send_signal(signal.SIGINT)
        try:
            _, err = lp.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            lp.kill()
            _, err = lp.communicate()
        s = read_summary(out) or {}
        demo_frames = len(pcap_record_ends(open(demo, "rb").read()))
        report(lp.returncode == 0 and s.get("mode") == "live" and s.get("rx", {}).get("rx_packets") == demo_frames,
               "live from dpdk.eal_args: the port of the config, every frame",
               f"exit {lp.returncode}, mode {s.get('mode')}, rx {s.get('rx', {}).get('rx_packets')} of {demo_frames}; "
               f"stderr: {first_line(err or '')}")
        with open(cfg, "w") as f:
            f.write('dpdk:\n  eal_args: "-l 0-1 -- --pcap x"\n')
        p = subprocess.run([binary, "--", "--config", cfg], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=args.timeout, cwd=tmp, text=True)
        report(p.returncode == 2 and "eal.yaml:2:13" in p.stderr and "dpdk.eal_args" in p.stderr,
               "dpdk.eal_args with '--': refused with its place", f"exit {p.returncode}; {first_line(p.stderr)}")

        # 15. A config that needs more memory than the machine has is refused before anything is
        # allocated: exit 2, quickly, naming the consumer and what to lower (no OOM, no crash).
        cfg = os.path.join(tmp, "huge.yaml")
        with open(cfg, "w") as f:
            f.write("flow_table:\n  capacity: 268435456\n")
        t0 = time.monotonic()
        p = subprocess.run([binary, "--config", cfg, "--pcap", demo, "--workers", "4"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=args.timeout, cwd=tmp, text=True)
        took = time.monotonic() - t0
        report(p.returncode == 2 and "flow_table.capacity 268435456 x 4 workers needs" in p.stderr
               and "GiB available (MemAvailable)" in p.stderr and "lower flow_table.capacity" in p.stderr
               and "nothing started" in p.stderr and "packets" not in p.stdout and took < 20,
               "flow_table.capacity at its maximum x 4 workers: refused, exit 2, before EAL",
               f"exit {p.returncode} in {took:.1f} s; {first_line(p.stderr)}")
        # Live: the tables come out of EAL memory (-m 256 here), checked before the pool is made.
        with open(cfg, "w") as f:
            f.write("flow_table:\n  capacity: 4194304\n")
        p = subprocess.run([binary, "-l", "0-1", "--no-huge", "--no-pci", "--no-shconf", "-m", "256",
                            "--file-prefix=cli-mem-%d" % os.getpid(), "--vdev", "net_pcap0,rx_pcap=" + os.path.abspath(demo),
                            "--", "--config", cfg, "--ctl-socket", "off", "--metrics-listen", "off", "-q"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=args.timeout, cwd=tmp, text=True)
        report(p.returncode == 2 and "flow_table.capacity 4194304 x 1 worker needs" in p.stderr
               and "(EAL memory, -m)" in p.stderr and "lower flow_table.capacity" in p.stderr,
               "live, flow tables over EAL's -m: refused, exit 2", f"exit {p.returncode}; {first_line(p.stderr)}")
        shutil.rmtree("/var/run/dpdk/cli-mem-%d" % os.getpid(), ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
