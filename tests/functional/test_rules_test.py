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

Detection replayed offline (victim_of, src_verified), with the SYN-flood policy rule
(flags: SYN, victim_of: syn_flood, src_verified: false -> drop):
  - syn_flood: the JSON lists the syn_flood alert on 192.0.2.10:80 (starting at the end of the
    first interval of the attack, 10:00:04, as the appliance's capture replay raises it); the rule
    hits; the attacker's SYNs from the alert's start on are dropped (>= 99 % of them, counted
    independently from the pcap) and so >= 0.55 of all its attacker's packets (measured 0.602:
    the attack's first interval, 3 s to 4 s of its 2.5 s, passes while it is being detected);
    legitimate packets dropped are at most the legitimate SYNs to 192.0.2.10:80 sent during the
    alert (new clients: 20000 hosts, few come back verified) and < 2 % of the legitimate packets
    (measured 0.5 %);
  - baseline (no attack): no alert, the rule never hits;
  - detect.enabled: false: the report says victim_of is not replayed, no alert, the rule never hits.

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
sys.path.insert(0, HERE)
from harness import Checks  # noqa: E402

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

check = Checks()


def run(*cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def frames(path, with_ts=False):
    """Yields (index, frame bytes) of a classic pcap (either byte order, us or ns); with_ts:
    (index, frame bytes, timestamp in ns)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
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
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        if with_ts:
            yield i, data[off + 16:off + 16 + incl], sec * 1_000_000_000 + (frac if nano else frac * 1000)
        else:
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


POLICY = """\
rules:
  - name: syn-flood-unverified
    match: {flags: SYN, victim_of: syn_flood, src_verified: false}
    action: drop
"""


def policy_tests(args, tmp, pcap, labels, plabels, lab):
    """The SYN-flood policy with detection replayed: syn_flood, baseline, detect.enabled: false."""
    conf = os.path.join(tmp, "policy.yaml")
    with open(conf, "w") as f:
        f.write(POLICY)
    rc, out, err = run(args.binary, "test", conf, "--pcap", pcap, "--labels", labels, "--packet-labels", plabels,
                       "--json")
    check("policy, syn_flood --json: exit 0", rc == 0, f"rc={rc} {err!r}")
    try:
        rep = json.loads(out)
    except ValueError:
        rep = {}
    if not rep:
        check("policy, syn_flood --json: parses", False, repr(out[:200]))
        return
    check("policy, syn_flood: victim_of replayed", rep.get("victim_of_replayed") is True, rep.get("victim_of_replayed"))
    alerts = rep.get("alerts", [])
    print(f"  alerts: {[(a['type'], a['target'], a['start'], a.get('end'), a.get('end_reason')) for a in alerts]}")
    syn = [a for a in alerts if a["type"] == "syn_flood" and a["target"] == "192.0.2.10:80"]
    check("policy, syn_flood: the JSON lists a syn_flood alert on 192.0.2.10:80", len(syn) == 1, alerts)
    check("policy, syn_flood: no other alert", len(alerts) == 1, alerts)
    if not syn:
        return
    a = syn[0]
    check("policy, syn_flood: the alert starts at the end of the attack's first interval (10:00:04)",
          a["start"] == "2024-01-15T10:00:04.000000Z" and a["target_kind"] == "victim_endpoint", a)
    start_ns = a["start_ns"]
    end_ns = a.get("end_ns", 1 << 63)

    # Independent count: pure SYNs to 192.0.2.10:80 while the alert was active (the workers see
    # it from the first packet of the interval after the one that raised it: start_ns on).
    web = bytes([192, 0, 2, 10])
    att_syns_during, att_syns, legit_syns_during = 0, 0, 0
    for i, fr, ts in frames(pcap, with_ts=True):
        t = tcp_of(fr)
        if t is None:
            continue
        src, dst, sport, dport, flags = t
        if not (dst == web and dport == 80 and (flags & 0x17) == 0x02):
            continue
        during = start_ns <= ts < end_ns
        if lab[2 * i] != 0:
            att_syns += 1
            att_syns_during += during
        else:
            legit_syns_during += during

    rule = rep["rules"][0]
    att = rep["attacks"][0]
    lg = rep["legit"]
    print(f"  rule {rule['name']}: hits {rule['hits']}, drops {rule['drops']}")
    print(f"  attack: {att['dropped']} of {att['packets_attacker']} attacker packets dropped "
          f"({att['dropped_share_attacker']:.3f}); its SYNs to 192.0.2.10:80: {att_syns}, "
          f"{att_syns_during} during the alert")
    print(f"  legitimate: {lg['dropped']} of {lg['packets']} dropped ({lg['dropped_share']:.4f}); "
          f"legitimate SYNs to 192.0.2.10:80 during the alert: {legit_syns_during}")
    check("policy, syn_flood: the rule hits, every hit dropped", rule["hits"] > 0 and rule["drops"] == rule["hits"], rule)
    check("policy, syn_flood: >= 99 % of the attacker's SYNs during the alert dropped, no more",
          att_syns_during > 0 and 0.99 * att_syns_during <= att["dropped"] <= att_syns_during,
          f"{att['dropped']} of {att_syns_during}")
    check("policy, syn_flood: attacker's packets dropped >= 0.55 (one interval to detect)",
          att["dropped_share_attacker"] >= 0.55, att)
    check("policy, syn_flood: legitimate dropped only among its SYNs to the victim during the alert",
          lg["dropped"] <= legit_syns_during, f"{lg['dropped']} vs {legit_syns_during}")
    check("policy, syn_flood: legitimate packets dropped < 2 %", lg["dropped_share"] < 0.02, lg)
    check("policy, syn_flood: hits = attack's and legitimate drops",
          rule["hits"] == att["dropped"] + lg["dropped"], f"{rule['hits']} vs {att['dropped']} + {lg['dropped']}")

    # The appliance's own replay runs the same rules in its workers (monitor mode: would-drop):
    # the same drops as the offline replay, for 1, 2 and 4 workers.
    if args.stateline:
        for workers in (1, 2, 4):
            summ = os.path.join(tmp, "appliance-%d.json" % workers)
            rc, out, err = run(args.stateline, "--pcap", pcap, "--config", conf, "--workers", str(workers),
                               "--summary", summ, "--ctl-socket", "off", "-q")
            try:
                with open(summ) as f:
                    srx = json.load(f).get("rx", {})
            except (OSError, ValueError):
                srx = {}
            check("policy, syn_flood: stateline --pcap --workers %d would drop what the offline replay drops (%s)" %
                  (workers, srx.get("rules_would_drop")),
                  rc == 0 and srx.get("rules_would_drop") == rule["drops"] and srx.get("rules_dropped") == 0,
                  f"rc={rc} {err[-300:]!r} {srx.get('rules_would_drop')} vs {rule['drops']}")

    rc, out, err = run(args.binary, "test", conf, "--pcap", pcap)
    check("policy, syn_flood (table): the alert listed",
          rc == 0 and "detection replayed" in out and "1 alert raised" in out and "syn_flood" in out
          and "192.0.2.10:80" in out, repr(out))

    # Baseline: no attack, no alert, no hit.
    bl = os.path.join(tmp, "baseline.pcap")
    rc, out, err = run(args.gen, "-q", "--scenario", os.path.join(args.source, "tools", "scenarios", "baseline.yaml"),
                       "--out", bl)
    check("stateline-gen baseline: exit 0", rc == 0, err)
    if rc == 0:
        rc, out, err = run(args.binary, "test", conf, "--pcap", bl, "--json")
        rep = json.loads(out) if rc == 0 else {}
        check("policy, baseline: no alert, the rule never hits",
              rep.get("victim_of_replayed") is True and rep.get("alerts") == [] and rep["rules"][0]["hits"] == 0,
              f"rc={rc} {out[:400]!r}")

    # Detection off: nothing replayed, said so; the rule never hits.
    off = os.path.join(tmp, "policy-off.yaml")
    with open(off, "w") as f:
        f.write("detect:\n  enabled: false\n" + POLICY)
    rc, out, err = run(args.binary, "test", off, "--pcap", pcap, "--labels", labels, "--packet-labels", plabels,
                       "--json")
    rep = json.loads(out) if rc == 0 else {}
    check("detect.enabled false --json: victim_of not replayed, said, no alert, the rule never hits",
          rep.get("victim_of_replayed") is False and "victim_of" in rep.get("victim_of_note", "")
          and rep.get("alerts") == [] and rep["rules"][0]["hits"] == 0, f"rc={rc} {out[:400]!r}")
    rc, out, err = run(args.binary, "test", off, "--pcap", pcap)
    check("detect.enabled false (table): says victim_of conditions never match",
          rc == 0 and "detection is not replayed" in out and "victim_of conditions never match" in out, repr(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--stateline", help="the appliance, to compare its capture replay with the offline one")
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
            return check.summary()
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
            check("victim_of replayed (detect.enabled by default): said in the report",
                  rep.get("victim_of_replayed") is True and "victim_of_note" not in rep, rep.keys())

        rc, out, err = run(args.binary, "test", conf, "--pcap", pcap, "--labels", labels, "--packet-labels", plabels)
        check("test (table): exit 0, rule row and legitimate row",
              rc == 0 and "web80-new-syn" in out and "legitimate" in out and "hits (pkts)" in out
              and "detection replayed" in out, repr(out))

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

        policy_tests(args, tmp, pcap, labels, plabels, lab)

    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
