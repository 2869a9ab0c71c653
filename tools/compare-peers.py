#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Runs one capture through Stateline and through the tools an operator would otherwise reach
for, when they are installed, and prints each one's packets per second beside Stateline's,
with the exact command lines used.

    tools/compare-peers.py [--capture FILE] [--runs 3] [--build build]

Without --capture it generates one with stateline-gen (tools/scenarios/mix_synflood6_scan.yaml
at --scale 20: legitimate traffic, a SYN flood and a scan, about 1.5 M packets). Peers, each skipped with a note when absent:
  ndpiReader  (Debian libndpi-bin)   flow tracking with DPI
  argus       (Debian argus-server)  flow records
  tshark      (Debian tshark)        dissection with its TCP conversation table (-z conv,tcp)
  softflowd   (Debian softflowd)     NetFlow export to a local port nobody listens on
All read the same file from the page cache (one warm-up run first); the best of --runs wall
times counts, process start-up included for everyone (Stateline's includes DPDK's EAL set-up).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, runs):
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the cache
    best = None
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        dt = time.monotonic() - t0
        if p.returncode != 0:
            return None, p.stderr.strip().splitlines()[-1:] or ["exit %d" % p.returncode]
        best = dt if best is None else min(best, dt)
    return best, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=20.0,
                    help="rate multiplier for the generated capture (default 20: about 1.5 M packets)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args()

    stateline = os.path.join(args.build, "src", "stateline")
    if not os.path.exists(stateline):
        sys.exit("compare-peers: %s not built: run tools/bootstrap.sh build" % stateline)
    tmp = tempfile.mkdtemp(prefix="stateline-peers.")
    try:
        cap = args.capture
        if not cap:
            cap = os.path.join(tmp, "mix.pcap")
            gen = [os.path.join(args.build, "tools", "stateline-gen"), "--scenario",
                   os.path.join(ROOT, "tools", "scenarios", "mix_synflood6_scan.yaml"),
                   "--out", cap, "--labels", os.path.join(tmp, "mix.labels.json"), "--scale", str(args.scale)]
            print("generating:", " ".join(gen), file=sys.stderr)
            subprocess.run(gen, check=True, stdout=subprocess.DEVNULL)
        summary = os.path.join(tmp, "summary.json")
        subprocess.run([stateline, "--pcap", cap, "-q", "--no-progress", "--summary", summary], check=True)
        s = json.load(open(summary))
        packets = s["packets"]
        print("stateline's own processing time (summary elapsed_s, EAL set-up excluded): %.3f s, %.0f kpps"
              % (s["elapsed_s"], packets / s["elapsed_s"] / 1e3), file=sys.stderr)
        print("capture: %s, %d packets, %d TCP connections" % (cap, packets, s["tcp_connections"]), file=sys.stderr)

        peers = [
            ("stateline", stateline, [stateline, "--pcap", cap, "-q", "--no-progress"]),
            ("stateline (2 workers)", stateline, [stateline, "--pcap", cap, "-q", "--no-progress", "--workers", "2"]),
            ("ndpiReader", "ndpiReader", ["ndpiReader", "-i", cap, "-q"]),
            ("argus", "argus", ["argus", "-r", cap, "-w", os.path.join(tmp, "argus.out")]),
            ("tshark", "tshark", ["tshark", "-n", "-r", cap, "-q", "-z", "conv,tcp"]),
            ("softflowd", "softflowd", ["softflowd", "-r", cap, "-n", "127.0.0.1:9", "-d", "-D"]),
        ]
        rows = []
        for name, exe, cmd in peers:
            if not (os.path.exists(exe) or shutil.which(exe)):
                rows.append((name, None, "not installed", cmd))
                continue
            dt, err = timed(cmd, args.runs)
            rows.append((name, dt, err[0] if err else "", cmd))

        if args.markdown:
            print("| tool | wall s | kpps | command |")
            print("|---|---|---|---|")
        for name, dt, note, cmd in rows:
            shown = " ".join(os.path.basename(c) if c == cap else c for c in cmd)
            if args.markdown:
                print("| %s | %s | %s | `%s` %s |" % (name, "%.3f" % dt if dt else "-",
                                                     "%.0f" % (packets / dt / 1e3) if dt else "-", shown, note))
            else:
                print("%-22s %8s s %10s kpps   %s %s" % (name, "%.3f" % dt if dt else "-",
                                                       "%.0f" % (packets / dt / 1e3) if dt else "-", shown, note))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
