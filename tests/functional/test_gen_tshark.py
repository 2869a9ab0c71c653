#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""stateline-gen checked by tshark, an independent dissector.

    python3 test_gen_tshark.py --gen build/tools/stateline-gen [--scenario FILE] [--keep DIR]

Generates a small mixed scenario (legitimate clients over IPv4, IPv6 and a VLAN, with more
retransmissions, reordering and odd teardowns than usual, plus a few attacks), with the per-packet
label file, and checks with tshark 4.0 (checksum validation on: -o tcp.check_checksum:TRUE
-o ip.check_checksum:TRUE; an empty WIRESHARK_CONFIG_DIR so no profile changes the answer):

  - tshark reads as many frames as the labels say, and none is malformed;
  - every IPv4 header checksum and every TCP checksum is good;
  - on legitimate connections, tshark's TCP analysis flags are exactly what was generated:
    retransmissions exactly on the frames labelled legit_retransmit, out-of-order exactly on
    legit_out_of_order, one duplicate ACK and one "previous segment not captured" per reordering,
    and no other analysis flag at all (no ACKed-unseen segment, window full, zero window,
    keep-alive, window update, reused ports...);
  - SYN, SYN-ACK, FIN and RST counts of legitimate traffic equal the labels' classes;
  - every attack's frames are where its label says (count, time window);
  - a second run with the same seed gives the same bytes; another seed does not.

Prints one line per check and ends with "N passed, M failed"; exit status 1 if any failed.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

MIXED = """
name: tshark_mixed
duration: 6
seed: 4242
servers:
  - {name: web, ipv4: 192.0.2.10, ipv6: "2001:db8::10", ports: [80, 443], backlog: 256}
  - {name: app, ipv4: 192.0.2.20, ports: [8080], vlan: 100, backlog: 32, syncookies: false}
  - {name: mail, ipv4: 198.51.100.25, ipv6: "2001:db8:1::25", ports: [25]}
clients:
  rate: 120
  ipv6_share: 0.3
  retransmit_share: 0.05
  reorder_share: 0.05
  close: {server_first: 0.3, rst: 0.08, simultaneous: 0.08}
attacks:
  - {type: syn_flood, target: web:80, rate: 2000, start: 1, duration: 1}
  - {type: half_open_exhaustion, target: app:8080, rate: 40, start: 0.5}
  - {type: ack_flood, target: "[2001:db8::10]:443", rate: 500, start: 2, duration: 1}
  - {type: stealth_scan, variant: xmas, target: 192.0.2.10, ports: "1-200", rate: 300, start: 2}
  - {type: connect_scan, target: 198.51.100.25, ports: "20-30", rate: 20, start: 1}
  - {type: rst_injection, target: web:443, rate: 5, start: 1}
  - {type: flash_crowd, target: web:80, rate: 150, start: 3, duration: 2, ramp: 0.5}
"""

# TCP analysis fields (FT_NONE: tshark prints "1" where present).
ANALYSIS = [
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.out_of_order",
    "tcp.analysis.lost_segment",
    "tcp.analysis.ack_lost_segment",
    "tcp.analysis.duplicate_ack",
    "tcp.analysis.window_full",
    "tcp.analysis.zero_window",
    "tcp.analysis.zero_window_probe",
    "tcp.analysis.keep_alive",
    "tcp.analysis.window_update",
    "tcp.analysis.reused_ports",
]
FIELDS = ["frame.number", "frame.time_epoch", "_ws.malformed", "ip.checksum.status",
          "tcp.checksum.status", "tcp.flags", "ip.dst", "ipv6.dst"] + ANALYSIS


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""))
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def run_gen(gen, scenario, out_dir, stem, seed=None):
    pcap = os.path.join(out_dir, stem + ".pcap")
    labels = os.path.join(out_dir, stem + ".labels.json")
    plabels = os.path.join(out_dir, stem + ".pl")
    cmd = [gen, "--scenario", scenario, "--out", pcap, "--labels", labels, "--packet-labels", plabels, "--quiet"]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p, pcap, labels, plabels


def tshark_rows(pcap, config_dir):
    cmd = ["tshark", "-r", pcap, "-n", "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
           "-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=config_dir)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError("tshark failed: " + p.stderr.strip())
    rows = []
    for line in p.stdout.splitlines():
        parts = line.split("\t")
        parts += [""] * (len(FIELDS) - len(parts))
        rows.append(dict(zip(FIELDS, parts)))
    return rows


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gen", required=True, help="the stateline-gen binary")
    ap.add_argument("--scenario", help="a scenario file instead of the built-in mixed one")
    ap.add_argument("--keep", help="keep the generated files in this directory")
    args = ap.parse_args()
    if not shutil.which("tshark"):
        print("FAIL tshark: not found (tools/bootstrap.sh installs it)")
        print("0 passed, 1 failed")
        return 1

    c = Checks()
    work = args.keep or tempfile.mkdtemp(prefix="stateline_gen_tshark_")
    os.makedirs(work, exist_ok=True)
    config_dir = os.path.join(work, "wireshark-config")
    os.makedirs(config_dir, exist_ok=True)
    scenario = args.scenario
    # The built-in scenario is known to contain every event; another may lack some (a baseline
    # has no attack, a few hundred connections may have no reordering).
    need = not args.scenario
    if not scenario:
        scenario = os.path.join(work, "mixed.yaml")
        with open(scenario, "w") as f:
            f.write(MIXED)
    try:
        p, pcap, labels_path, pl_path = run_gen(args.gen, scenario, work, "a")
        if not c.check("generate", p.returncode == 0, (p.stderr or "").strip()[:500]):
            print(f"{c.passed} passed, {c.failed} failed")
            return 1
        with open(labels_path) as f:
            labels = json.load(f)
        with open(pl_path, "rb") as f:
            pl = f.read()
        class_names = list(labels["classes"].keys())
        # Class ids in the per-packet file: legit classes then attack_<type> in declaration
        # order, flash_crowd's (always empty, left out of the labels) included.
        attack_types = ["syn_flood", "half_open_exhaustion", "synack_reflection", "ack_flood", "rst_flood",
                        "fin_flood", "syn_scan", "stealth_scan", "connect_scan", "rst_injection", "flash_crowd"]
        ids = [n for n in class_names if n.startswith("legit_")] + ["attack_" + t for t in attack_types]
        rows = tshark_rows(pcap, config_dir)
        n = labels["totals"]["packets"]
        c.check("frame count", len(rows) == n and len(pl) == 2 * n,
                f"tshark {len(rows)}, labels {n}, per-packet labels {len(pl) // 2}")
        rows = rows[:min(len(rows), len(pl) // 2)]
        frame_label = [pl[2 * i] for i in range(len(rows))]
        frame_class = [ids[pl[2 * i + 1]] for i in range(len(rows))]

        malformed = [r["frame.number"] for r in rows if r["_ws.malformed"]]
        c.check("no malformed frames", not malformed, f"frames {malformed[:10]}")
        bad_ip = [r["frame.number"] for r in rows if r["ip.checksum.status"] not in ("", "1")]
        n_ip = sum(1 for r in rows if r["ip.checksum.status"])
        c.check("IPv4 header checksums good", not bad_ip and n_ip > 0, f"{n_ip} IPv4 frames, bad {bad_ip[:10]}")
        bad_tcp = [r["frame.number"] for r in rows if r["tcp.checksum.status"] != "1"]
        c.check("TCP checksums good", not bad_tcp, f"{len(rows)} frames, bad {bad_tcp[:10]}")

        # Legitimate traffic: the baseline (label 0) and flash crowds (their label ids).
        crowd_ids = {a["id"] for a in labels["attacks"] if a["control"]}
        legit = [i for i in range(len(rows)) if frame_label[i] == 0 or frame_label[i] in crowd_ids]

        def frames_with(field):
            return {i for i in legit if rows[i][field]}

        def frames_of(cls):
            return {i for i in legit if frame_class[i] == cls}

        rtx = frames_with("tcp.analysis.retransmission") | frames_with("tcp.analysis.fast_retransmission") | \
            frames_with("tcp.analysis.spurious_retransmission")
        want_rtx = frames_of("legit_retransmit")
        c.check("legit retransmissions exactly where generated", rtx == want_rtx and (want_rtx or not need),
                f"tshark {len(rtx)}, generated {len(want_rtx)}, differ at frames "
                f"{sorted(i + 1 for i in rtx ^ want_rtx)[:10]}")
        ooo = frames_with("tcp.analysis.out_of_order")
        want_ooo = frames_of("legit_out_of_order")
        c.check("legit out-of-order exactly where generated", ooo == want_ooo and (want_ooo or not need),
                f"tshark {len(ooo)}, generated {len(want_ooo)}, differ at frames "
                f"{sorted(i + 1 for i in ooo ^ want_ooo)[:10]}")
        dup = frames_with("tcp.analysis.duplicate_ack")
        lost = frames_with("tcp.analysis.lost_segment")
        c.check("one duplicate ACK and one 'previous segment not captured' per reordering",
                len(dup) == len(want_ooo) and len(lost) == len(want_ooo),
                f"dup ACKs {len(dup)}, lost-segment {len(lost)}, reorderings {len(want_ooo)}")
        others = {}
        for field in ANALYSIS:
            if field in ("tcp.analysis.retransmission", "tcp.analysis.out_of_order",
                         "tcp.analysis.duplicate_ack", "tcp.analysis.lost_segment"):
                continue
            hit = frames_with(field)
            if hit:
                others[field] = sorted(i + 1 for i in hit)[:5]
        c.check("no other TCP analysis flag on legitimate traffic", not others, json.dumps(others))

        def count_flags(pred):
            return sum(1 for i in legit if rows[i]["tcp.flags"] and pred(int(rows[i]["tcp.flags"], 16)))

        cls = labels["classes"]
        syn = count_flags(lambda f: f & 0x12 == 0x02)
        synack = count_flags(lambda f: f & 0x12 == 0x12)
        fin = count_flags(lambda f: f & 0x01)
        rst = count_flags(lambda f: f & 0x04)
        syn_rtx = sum(1 for i in want_rtx if int(rows[i]["tcp.flags"], 16) & 0x02)
        c.check("legit SYN / SYN-ACK / FIN / RST counts equal the labels",
                syn == cls["legit_syn"] + syn_rtx and synack == cls["legit_synack"] and fin == cls["legit_fin"]
                and rst == cls["legit_rst"],
                f"SYN {syn} (labels {cls['legit_syn']} + {syn_rtx} retransmitted), SYN-ACK {synack} "
                f"({cls['legit_synack']}), FIN {fin} ({cls['legit_fin']}), RST {rst} ({cls['legit_rst']})")

        # Attacks: frames per label id, inside the capture, attacker frames not before the start.
        start_epoch = labels["capture_start_epoch_ns"] / 1e9
        bad = []
        for a in labels["attacks"]:
            idx = [i for i in range(len(rows)) if frame_label[i] == a["id"]]
            times = [float(rows[i]["frame.time_epoch"]) - start_epoch for i in idx]
            if len(idx) != a["packets"]:
                bad.append(f"{a['type']}: {len(idx)} frames, label {a['packets']}")
            elif idx and (min(times) < a["start"] - 1e-6 or max(times) > labels["duration"]):
                bad.append(f"{a['type']}: frames from {min(times):.6f} to {max(times):.6f} s, window starts {a['start']}")
        c.check("attack frames match their labels", not bad and (labels["attacks"] or not need), "; ".join(bad))

        # Determinism.
        p2, pcap2, labels2, _ = run_gen(args.gen, scenario, work, "b")
        same = p2.returncode == 0 and sha256(pcap) == sha256(pcap2) and sha256(labels_path) == sha256(labels2)
        c.check("same seed, same bytes (pcap and labels)", same)
        p3, pcap3, _, _ = run_gen(args.gen, scenario, work, "c", seed=labels["seed"] + 1)
        c.check("another seed, other bytes", p3.returncode == 0 and sha256(pcap) != sha256(pcap3))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
