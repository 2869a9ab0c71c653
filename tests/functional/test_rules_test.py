#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""stateline-rules test: replaying a generated capture through the rules.

Generates tools/scenarios/syn_flood.yaml with stateline-gen (pcap, labels JSON, packet labels),
writes a config with one rule dropping pure SYNs from new connections to 192.0.2.10 port 80, and
runs `stateline-rules test` (--json and the human table). Checks, against an independent count
from the pcap (a minimal reader here, no tshark needed): the rule's hits equal the pure SYNs to
192.0.2.10:80 (every one opens a new tuple in this scenario, also checked), the attack's share of
its attacker's packets dropped is > 0.9, and the legitimate packets dropped are exactly the
legitimate SYNs to that service. Error cases: packet labels of the wrong length (exit 3, both
counts named), a missing capture (exit 3), a bad config (exit 2, every error).

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))

CONFIG = """\
rules:
  - name: web80-new-syn
    match:
      dst: [192.0.2.10]
      dst_port: 80
      flags: SYN
      state: new
    action: drop
"""

BAD = """\
rules:
  - name: a
    match:
      dst_port: 99999
    action: drop
  - name: b
    action: explode
"""

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'}: {name}" + ("" if ok else f" ({detail})"))


def run(*cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def frames(path):
    """Yields (index, frame bytes) of a classic pcap (either byte order, us or ns)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    assert linktype == 1, f"linktype {linktype}"
    off, i = 24, 0
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        yield i, data[off + 16:off + 16 + incl]
        off += 16 + incl
        i += 1


def tcp_of(fr):
    """(src, dst, sport, dport, flags) of an IPv4 TCP frame (VLAN tags skipped), else None."""
    o = 12
    etype = struct.unpack(">H", fr[o:o + 2])[0]
    while etype in (0x8100, 0x88A8):
        o += 4
        etype = struct.unpack(">H", fr[o:o + 2])[0]
    o += 2
    if etype != 0x0800 or fr[o + 9] != 6:
        return None
    ihl = (fr[o] & 0x0F) * 4
    src, dst = fr[o + 12:o + 16], fr[o + 16:o + 20]
    t = o + ihl
    sport, dport = struct.unpack(">HH", fr[t:t + 4])
    return src, dst, sport, dport, fr[t + 13]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--source", default=SOURCE_ROOT)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "syn_flood.pcap")
        labels = os.path.join(tmp, "syn_flood.labels.json")
        plabels = os.path.join(tmp, "syn_flood.labels.bin")
        rc, out, err = run(args.gen, "-q", "--scenario", os.path.join(args.source, "tools", "scenarios", "syn_flood.yaml"),
                           "--out", pcap, "--labels", labels, "--packet-labels", plabels)
        check("stateline-gen syn_flood: exit 0", rc == 0, err)
        if rc != 0:
            print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
            return 1
        conf = os.path.join(tmp, "rules.yaml")
        with open(conf, "w") as f:
            f.write(CONFIG)

        # Independent count from the pcap and the packet labels.
        with open(plabels, "rb") as f:
            lab = f.read()
        web = bytes([192, 0, 2, 10])
        syns, legit_syns, attack_id_syns, tuples = 0, 0, 0, set()
        nframes = 0
        for i, fr in frames(pcap):
            nframes += 1
            t = tcp_of(fr)
            if t is None:
                continue
            src, dst, sport, dport, flags = t
            if dst == web and dport == 80 and (flags & 0x17) == 0x02:  # pure SYN (ECN bits allowed)
                syns += 1
                tuples.add((src, sport))
                if lab[2 * i] == 0:
                    legit_syns += 1
                else:
                    attack_id_syns += 1
        check("capture: packet labels are 2 bytes per frame", len(lab) == 2 * nframes, f"{len(lab)} vs {nframes}")
        check("capture: every pure SYN to 192.0.2.10:80 opens a new tuple", len(tuples) == syns,
              f"{len(tuples)} tuples, {syns} SYNs")

        rc, out, err = run(args.binary, "test", conf, "--pcap", pcap, "--labels", labels, "--packet-labels", plabels,
                           "--json")
        check("test --json: exit 0", rc == 0, f"rc={rc} {err!r}")
        try:
            rep = json.loads(out)
        except ValueError:
            rep = {}
        check("test --json: parses", bool(rep), repr(out[:200]))
        if rep:
            rule = rep["rules"][0]
            print(f"  rule {rule['name']}: hits {rule['hits']}, drops {rule['drops']}; "
                  f"pcap: {syns} pure SYNs to 192.0.2.10:80 ({legit_syns} legitimate)")
            check("frames counted", rep["frames"] == nframes, f"{rep['frames']} vs {nframes}")
            check("rule hits = pure SYNs to 192.0.2.10:80", rule["hits"] == syns, f"{rule['hits']} vs {syns}")
            check("rule drops = hits (action drop)", rule["drops"] == rule["hits"] and rule["action"] == "drop", rule)
            with open(labels) as f:
                lj = json.load(f)
            att = rep["attacks"][0]
            check("attack listed with id, type and target from the labels",
                  att["id"] == lj["attacks"][0]["id"] and att["type"] == "syn_flood" and att["target"] == "192.0.2.10:80",
                  att)
            print(f"  attack: {att['dropped']} of {att['packets_attacker']} attacker packets dropped "
                  f"({att['dropped_share_attacker']:.3f}); of all its packets {att['dropped_share']:.3f}")
            check("attack: dropped share of its attacker's packets > 0.9", att["dropped_share_attacker"] > 0.9, att)
            check("attack: its dropped packets are its SYNs to the service", att["dropped"] == attack_id_syns,
                  f"{att['dropped']} vs {attack_id_syns}")
            lg = rep["legit"]
            print(f"  legitimate: {lg['dropped']} of {lg['packets']} dropped ({lg['dropped_share']:.4f})")
            check("legit: dropped = the legitimate SYNs to 192.0.2.10:80 only", lg["dropped"] == legit_syns and legit_syns > 0,
                  f"{lg['dropped']} vs {legit_syns}")
            check("legit: packets = frames labelled 0", lg["packets"] == sum(1 for j in range(0, len(lab), 2) if lab[j] == 0))
            check("victim_of not replayed: said in the report", rep.get("victim_of_replayed") is False, rep.keys())

        rc, out, err = run(args.binary, "test", conf, "--pcap", pcap, "--labels", labels, "--packet-labels", plabels)
        check("test (table): exit 0, rule row and legitimate row",
              rc == 0 and "web80-new-syn" in out and "legitimate" in out and "hits (pkts)" in out
              and "detector state is not replayed offline yet" in out, repr(out))

        short = os.path.join(tmp, "short.bin")
        with open(short, "wb") as f:
            f.write(lab[:-20])
        rc, out, err = run(args.binary, "test", conf, "--pcap", pcap, "--labels", labels, "--packet-labels", short)
        check("packet labels too short: exit 3, both counts named",
              rc == 3 and f"{(len(lab) - 20) // 2}" in err.replace(" ", "") and "not the labels of this capture" in err
              and out == "", f"rc={rc} {err!r}")
        longer = os.path.join(tmp, "long.bin")
        with open(longer, "wb") as f:
            f.write(lab + b"\x00\x00")
        rc, out, err = run(args.binary, "test", conf, "--pcap", pcap, "--labels", labels, "--packet-labels", longer)
        check("packet labels too long: exit 3, capture's frame count named",
              rc == 3 and str(nframes) in err.replace(" ", "") and out == "", f"rc={rc} {err!r}")

        missing = os.path.join(tmp, "nonexistent.pcap")
        rc, out, err = run(args.binary, "test", conf, "--pcap", missing)
        check("missing capture: exit 3, named", rc == 3 and missing in err, f"rc={rc} {err!r}")

        bad = os.path.join(tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write(BAD)
        rc, out, err = run(args.binary, "test", bad, "--pcap", pcap)
        check("bad config: exit 2, every error", rc == 2 and "2 errors" in err and "bad.yaml:4" in err and "bad.yaml:7" in err,
              f"rc={rc} {err!r}")

    passed = sum(1 for r in results if r)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
