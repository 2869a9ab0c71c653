#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: --stats on a replay, and tools/stateline-chart on what it wrote.

    python3 test_stats_chart.py [--binary build/src/stateline] [--gen build/tools/stateline-gen]
                                [--chart build/tools/stateline-chart] [--source .]

Replays the generator's syn_flood scenario (10 s of capture, a 30,000 SYN/s flood on
192.0.2.10:80 from 3 s to 5.5 s) with two workers and --stats, then checks the file against the
scenario's labels and the run's own --summary:
  - one line per second of capture time (10) and a last one with "running": false;
  - clock_ns steps by exactly 1 s from the capture's start, interval_s is 1 (0 on the last line);
  - every counter is monotonic, and each rate x interval_s is that counter's change;
  - the workers' rx_packets add up to the total on every line;
  - flows.by_state.half_open rises during the flood;
  - the syn_flood alert on the labelled target is in detection.active during the flood, not before;
  - the last line's counters are the --summary's (packets, bytes, tcp_packets, flows ...).
Then stateline-chart: exit 0, a PNG (magic bytes, IHDR dimensions, a real size), the message
naming what it wrote; and its errors: missing file, empty file, a garbage line (named by number),
a JSON line that is no aggregate: exit status 2 and a message naming the problem.

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure, 77 (skip)
when python3-matplotlib is missing (after checking the tool says so).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--gen", default=os.path.join(SOURCE_ROOT, "build", "tools", "stateline-gen"))
    ap.add_argument("--chart", default=os.path.join(SOURCE_ROOT, "build", "tools", "stateline-chart"))
    ap.add_argument("--source", default=SOURCE_ROOT)
    args = ap.parse_args()

    check = Checks()

    scenario = os.path.join(args.source, "tools", "scenarios", "syn_flood.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "syn_flood.pcap")
        labels_path = os.path.join(tmp, "syn_flood.labels.json")
        p = subprocess.run([args.gen, "-q", "--scenario", scenario, "--out", pcap, "--labels", labels_path],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            print("FAIL: stateline-gen exit %d: %s" % (p.returncode, p.stderr.strip()))
            return 1
        labels = json.load(open(labels_path))
        attack = next(a for a in labels["attacks"] if a["type"] == "syn_flood")
        start_ns = labels["capture_start_epoch_ns"]
        want_intervals = int(round(labels["duration"]))

        stats = os.path.join(tmp, "syn_flood.stats.jsonl")
        summary_path = os.path.join(tmp, "syn_flood.summary.json")
        p = subprocess.run([args.binary, "--pcap", pcap, "--workers", "2", "--stats", stats,
                            "--summary", summary_path, "-q"], capture_output=True, text=True, timeout=180)
        if not check("replay with --stats: exit 0", p.returncode == 0, p.stderr.strip()[-300:]):
            return 1
        lines = [json.loads(l) for l in open(stats) if l.strip()]
        summary = json.load(open(summary_path))

        # Shape: one line per second of capture time, then the last.
        check("one line per second of capture time, plus the last",
              len(lines) == want_intervals + 1, "%d lines for %d s" % (len(lines), want_intervals))
        body, last = lines[:-1], lines[-1]
        check("every line but the last running, the last not",
              all(l["running"] for l in body) and last["running"] is False,
              str([l["running"] for l in lines]))
        check("mode capture on every line", all(l["mode"] == "capture" for l in lines))
        clocks = [l["clock_ns"] for l in body]
        want_clocks = [start_ns + (i + 1) * 1_000_000_000 for i in range(len(body))]
        check("clock_ns: capture start + 1 s, + 2 s, ...", clocks == want_clocks,
              "%s, first expected %d" % (clocks[:3], want_clocks[0] if want_clocks else 0))
        check("last line keeps the last interval's clock", last["clock_ns"] == clocks[-1] if clocks else False)
        check("interval_s 1 on each interval, 0 on the last",
              all(abs(l["interval_s"] - 1.0) < 1e-9 for l in body) and last["interval_s"] == 0,
              str([l["interval_s"] for l in lines]))
        check("seq 1, 2, 3 ...", [l["seq"] for l in lines] == list(range(1, len(lines) + 1)))

        # Counters (the kinds with a rate) never go back; rate x interval is the change.
        names = [(g, n) for g, d in lines[0]["rates"].items() for n in d]
        back, mismatch = [], []
        prev = {k: 0 for k in names}
        for i, l in enumerate(lines):
            for g, n in names:
                v = l["counters"][g][n]
                if v < prev[(g, n)]:
                    back.append("%s.%s line %d: %d < %d" % (g, n, i + 1, v, prev[(g, n)]))
                want = v - prev[(g, n)]
                got = l["rates"][g][n] * l["interval_s"]
                if l["interval_s"] > 0 and abs(got - want) > 1e-6 * max(1, want):
                    mismatch.append("%s.%s line %d: %g x %g != %d" % (g, n, i + 1, l["rates"][g][n],
                                                                      l["interval_s"], want))
                prev[(g, n)] = v
        check("%d counters monotonic over every line" % len(names), not back, "; ".join(back[:3]))
        check("rate x interval_s = the counter's change, every line", not mismatch, "; ".join(mismatch[:3]))
        check("rates 0 on the last line (no capture time passed)",
              all(v == 0 for d in last["rates"].values() for v in d.values()))
        sums = [(sum(w["rx_packets"] for w in l["workers"]), l["counters"]["rx"]["rx_packets"]) for l in lines]
        check("2 workers, their rx_packets add up to the total on every line",
              all(len(l["workers"]) == 2 for l in lines) and all(a == b for a, b in sums), str(sums[:3]))
        check("some packets in every interval of capture time",
              all(l["rates"]["rx"]["rx_packets"] > 0 for l in body),
              str([round(l["rates"]["rx"]["rx_packets"]) for l in body]))

        # The flood: half-open connections pile up, and the alert is active while it lasts.
        def sec(l):
            return (l["clock_ns"] - start_ns) / 1e9   # the end of the line's interval

        flood_a, flood_b = attack["start_epoch_ns"], attack["end_epoch_ns"]
        half = [l["counters"]["flows.by_state"]["half_open"] for l in body]
        before = [h for l, h in zip(body, half) if l["clock_ns"] <= flood_a]
        during = [h for l, h in zip(body, half) if flood_a < l["clock_ns"] <= flood_b + 1_000_000_000]
        check("flows.by_state half_open rises during the flood",
              bool(before) and bool(during) and max(during) > 10 * max(max(before), 100) and
              all(b >= a for a, b in zip(during, during[1:])),
              "before %s, during %s" % (before, during))
        flood_rate = max(l["rates"]["flows"]["created"] for l in body if flood_a < l["clock_ns"] <= flood_b + 10**9)
        check("connections created/s near the flood's rate during it",
              flood_rate > 0.5 * attack["rate_pps"], "%.0f/s, flood %.0f SYN/s" % (flood_rate, attack["rate_pps"]))

        def active(l):
            d = l.get("detection") or {}
            return [(a["type"], a["target"]) for a in d.get("active", [])]

        key = ("syn_flood", attack["target"])
        on = [sec(l) for l in body if key in active(l)]
        check("syn_flood %s in detection.active during the flood" % attack["target"],
              any(flood_a < l["clock_ns"] <= flood_b + 10**9 for l in body if key in active(l)),
              "active at %s s" % on)
        check("no alert active before the flood",
              all(not active(l) for l in body if l["clock_ns"] <= flood_a),
              str([(sec(l), active(l)) for l in body if l["clock_ns"] <= flood_a and active(l)]))
        check("detection.started counts it by the last line",
              (last.get("detection") or {}).get("started", {}).get("syn_flood", 0) >= 1)

        # The last line is the summary's figures.
        c = last["counters"]
        pairs = [("packets", summary["packets"], c["rx"]["rx_packets"]),
                 ("bytes", summary["bytes"], c["rx"]["rx_bytes"]),
                 ("tcp_packets", summary["tcp_packets"], c["outcomes"]["tcp"]),
                 ("flows.created", summary["flows"]["created"], c["flows"]["created"])]
        for g in ("tcp", "outcomes"):
            for n, v in summary.get(g, {}).items():
                if isinstance(v, int) and n in c.get(g, {}):
                    pairs.append(("%s.%s" % (g, n), v, c[g][n]))
        for n, v in summary["flows"].get("removed", {}).items():
            if n != "flushed" and n in c["flows.removed"]:   # flushed comes after the last line
                pairs.append(("flows.removed.%s" % n, v, c["flows.removed"][n]))
        diff = ["%s: summary %s, stats %s" % (n, a, b) for n, a, b in pairs if a != b]
        check("last line's counters = --summary's (%d figures)" % len(pairs), not diff, "; ".join(diff[:4]))
        check("packets = the labels' total", c["rx"]["rx_packets"] == labels["totals"]["packets"],
              "%d, labels %d" % (c["rx"]["rx_packets"], labels["totals"]["packets"]))

        # The chart.
        png = os.path.join(tmp, "chart.png")
        p = subprocess.run([args.chart, stats, "-o", png, "--title", "syn_flood replay"],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0 and "python3-matplotlib" in p.stderr:
            check("chart: without matplotlib, says to install python3-matplotlib", True, p.stderr.strip())
            check.summary()
            print("skip: python3-matplotlib is not installed (tools/bootstrap.sh installs it); the chart is not checked")
            return 1 if check.failed else 77
        check("chart: exit 0", p.returncode == 0, p.stderr.strip())
        data = open(png, "rb").read() if os.path.exists(png) else b""
        check("chart: a PNG (magic bytes)", data[:8] == b"\x89PNG\r\n\x1a\n", repr(data[:8]))
        check("chart: a real picture (> 30 KiB)", len(data) > 30 * 1024, "%d bytes" % len(data))
        w, h = struct.unpack(">II", data[16:24]) if len(data) >= 24 and data[12:16] == b"IHDR" else (0, 0)
        check("chart: IHDR dimensions of four panels (>= 800 x 1000 px)", w >= 800 and h >= 1000, "%d x %d" % (w, h))
        out = p.stdout.strip()
        check("chart: says what it wrote",
              out.startswith("wrote " + png) and ("%d intervals" % want_intervals) in out and "1 alert" in out
              and "syn_flood" in out, out)
        # Without -o: next to the input, .jsonl replaced by .png.
        p = subprocess.run([args.chart, stats], capture_output=True, text=True, timeout=120)
        check("chart: default output name", p.returncode == 0 and os.path.exists(stats[:-len(".jsonl")] + ".png"),
              p.stdout.strip() or p.stderr.strip())

        # Its errors: exit 2, the problem named.
        def chart_error(name, path, want):
            p = subprocess.run([args.chart, path, "-o", os.path.join(tmp, "err.png")],
                               capture_output=True, text=True, timeout=60)
            check("chart error, %s: exit 2, says %r" % (name, want),
                  p.returncode == 2 and want in p.stderr and p.stderr.startswith("stateline-chart: error:")
                  and "Traceback" not in p.stderr, "exit %d: %s" % (p.returncode, p.stderr.strip()))

        chart_error("missing file", os.path.join(tmp, "absent.jsonl"), "does not exist")
        empty = os.path.join(tmp, "empty.jsonl")
        open(empty, "w").close()
        chart_error("empty file", empty, "is empty")
        garbage = os.path.join(tmp, "garbage.jsonl")
        with open(garbage, "w") as fh:
            fh.write(json.dumps(lines[0]) + "\n" + json.dumps(lines[1]) + "\n" + "this is not json\n")
        chart_error("garbage on line 3", garbage, "line 3 is not JSON")
        other = os.path.join(tmp, "other.jsonl")
        with open(other, "w") as fh:
            fh.write('{"event": "start", "type": "syn_flood"}\n')
        chart_error("JSON that is no aggregate", other, "line 1 is JSON but not a Stateline aggregate")
        only_last = os.path.join(tmp, "last.jsonl")
        with open(only_last, "w") as fh:
            fh.write(json.dumps(last) + "\n")
        chart_error("no interval", only_last, "no intervals")

    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
