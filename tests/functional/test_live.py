#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: live mode, as on a NIC, with EAL arguments given by the user.

    python3 test_live.py [--binary build/src/stateline] [--captures ../shared/captures]

A net_pcap vdev with two rx_pcap files is a port with two RX queues; with `-l 0-2` Stateline runs
two workers, one queue each, until a signal. The test stops it with SIGINT (and once with
SIGTERM) and checks the clean shutdown: exit 0, every frame of both files counted (against
tshark), each worker fed by its own queue, every connection flushed, the summary written; with
SIGTERM also the connection log: a record for every connection (sent or counted as dropped), all
of them written and the log closed. A stalled conn log (a FIFO whose reader sleeps): the worker
counts the records it cannot hand over instead of waiting, and the counts still add up.
Also: a bad config is refused before anything starts, with every error and its place.

Prints one line per case and ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from harness import Checks  # noqa: E402
import tshark_oracle  # noqa: E402


def run_live(binary, files, sig, workdir, extra=()):
    summary = os.path.join(workdir, "live.json")
    vdev = "net_pcap0," + ",".join("rx_pcap=" + f for f in files)
    # Lcores float over the machine's CPUs: three lcores run on two cores.
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    cmd = [binary, "--lcores", "(0-%d)@(%s)" % (len(files), cpus), "--no-huge", "--no-pci", "--no-shconf", "-m", "1024",
           "--file-prefix=stateline-live-%d" % os.getpid(), "--vdev", vdev, "--", "--ctl-socket", "off", "--metrics-listen", "off",
           "--summary", summary, "-q", *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The files are small: well read within this time; the run only ends on the signal.
    time.sleep(4)
    p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, "did not stop within 60 s of the signal", err
    if p.returncode != 0:
        return None, "exit status %d" % p.returncode, err
    with open(summary) as fh:
        return json.load(fh), "", err


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--captures", default=os.path.join(SOURCE_ROOT, "..", "shared", "captures"))
    args = ap.parse_args()

    demo = os.path.join(SOURCE_ROOT, "conf", "demo.pcap")
    second = os.path.join(args.captures, "chrissanders", "synscan.pcapng")
    if not os.path.exists(second):
        print("note: %s absent; using the demo capture twice" % second)
        second = demo
    files = [demo, second]
    oracle = [tshark_oracle.analyse(f) for f in files]
    want_packets = sum(o["packets"] for o in oracle)
    want_tcp = sum(o["tcp_packets"] for o in oracle)

    check = Checks(width=58)

    with tempfile.TemporaryDirectory() as tmp:
        for sig in (signal.SIGINT, signal.SIGTERM):
            name = "live, 2 queues, 2 workers, stopped by %s" % sig.name
            extra = ("--conn-log", os.path.join(tmp, "live.conn.log")) if sig == signal.SIGTERM else ()
            s, why, err = run_live(args.binary, files, sig, tmp, extra)
            if s is None:
                check(name, False, why + "\n" + err)
                continue
            check(name + ": mode", s["mode"] == "live" and len(s["workers"]) == 2, str(s["mode"]))
            check(name + ": packets", s["packets"] == want_packets, "%d, tshark %d" % (s["packets"], want_packets))
            check(name + ": tcp_packets", s["tcp_packets"] == want_tcp, "%d, tshark %d" % (s["tcp_packets"], want_tcp))
            check(name + ": every frame has an outcome", sum(s["outcomes"].values()) == s["packets"])
            check(name + ": port counted the same", s["ports"][0]["ipackets"] == s["packets"],
                  "port %d" % s["ports"][0]["ipackets"])
            per = sorted(w["rx"]["rx_packets"] for w in s["workers"])
            want_per = sorted(o["packets"] for o in oracle) if second != demo else per
            check(name + ": one queue per worker", per == want_per, "%s, files %s" % (per, want_per))
            check(name + ": every connection flushed at the stop",
                  s["flows"]["removed"]["flushed"] + sum(v for k, v in s["flows"]["removed"].items() if k != "flushed")
                  == s["flows"]["created"] and s["flows"]["active"] == 0,
                  json.dumps(s["flows"]["removed"]))
            if sig == signal.SIGTERM:
                # SIGTERM (what systemd and `docker stop` send) flushes everything still buffered:
                # every connection created has its record, sent or counted as dropped, and every
                # record sent is in the log, which ends with Zeek's #close line.
                rx = s["rx"]
                sent, dropped = rx["conn_records_sent"], rx["conn_records_dropped"]
                with open(os.path.join(tmp, "live.conn.log")) as fh:
                    lines = fh.read().splitlines()
                logged = sum(1 for l in lines if l and not l.startswith("#"))
                check(name + ": conn records sent + dropped == connections",
                      sent + dropped == s["flows"]["created"], "%d + %d, created %d" % (sent, dropped, s["flows"]["created"]))
                check(name + ": every record sent is in the conn log, closed",
                      logged == sent == s["connections"]["records"] and bool(lines) and lines[-1].startswith("#close"),
                      "logged %d, sent %d, summary records %d, last line %r"
                      % (logged, sent, s["connections"]["records"], lines[-1] if lines else None))

        # Detection live: the clock is the TSC, intervals close on it without the dispatcher's
        # markers. StopDDoS's spoofed SYN flood, looped from memory at full speed, is a flood
        # on its victim; the alert starts while running and ends at the stop.
        flood = os.path.join(args.captures, "stopddos", "pkt.TCP.synflood.spoofed.pcap")
        if os.path.exists(flood):
            alerts = os.path.join(tmp, "live.alerts.jsonl")
            summary = os.path.join(tmp, "live-detect.json")
            cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
            # infinite_rx keeps the whole file in mbufs (37,841 frames).
            cfg = os.path.join(tmp, "mbufs.yaml")
            with open(cfg, "w") as fh:
                fh.write("rx:\n  mbufs: 65535\n")
            cmd = [args.binary, "--lcores", "(0-1)@(%s)" % cpus, "--no-huge", "--no-pci", "--no-shconf", "-m", "1024",
                   "--file-prefix=stateline-live-detect-%d" % os.getpid(),
                   "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % flood, "--", "--ctl-socket", "off", "--metrics-listen", "off",
                   "--config", cfg, "--alerts", alerts, "--summary", summary, "-q"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(4)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
            check("live detection: exit 0", p.returncode == 0, err.strip()[-300:])
            events = [json.loads(l) for l in open(alerts)] if os.path.exists(alerts) else []
            starts = [(e["type"], e["target"]) for e in events if e["event"] == "start"]
            ends = [e.get("reason") for e in events if e["event"] == "end"]
            check("live detection: syn_flood on 10.10.10.10:25565", ("syn_flood", "10.10.10.10:25565") in starts,
                  str(starts))
            check("live detection: every alert ends at the stop (reason shutdown)",
                  len(ends) == len(starts) and all(r == "shutdown" for r in ends), str(ends))
            s = json.load(open(summary)) if os.path.exists(summary) else {}
            iv = s.get("alerts", {}).get("intervals", 0)
            check("live detection: intervals judged on the clock", iv >= 2, "%d intervals" % iv)
        else:
            print("note: %s absent; live detection not checked" % flood)

        # A stalled log destination (a full disk, a hung NFS mount, a reader that stops reading):
        # the conn log is a FIFO whose reader sleeps for the first seconds, so the log's I/O
        # thread blocks in its write and each worker's record ring fills. Neither the worker nor
        # the control core may wait for it: the worker counts the records it cannot hand over
        # and goes on, the control core keeps taking snapshots (--stats lines). At SIGTERM what
        # was handed over is written once the reader wakes; every connection is a record, sent
        # or dropped.
        if os.path.exists(flood):
            fifo = os.path.join(tmp, "stalled.conn.log")
            os.mkfifo(fifo)
            summary = os.path.join(tmp, "live-stalled.json")
            cfg = os.path.join(tmp, "stalled.yaml")
            with open(cfg, "w") as fh:
                # A small table: every spoofed SYN of the looped flood evicts a half-open entry,
                # so records are produced as fast as the worker reads frames.
                fh.write("rx:\n  mbufs: 65535\nflow_table:\n  capacity: 4096\nstats:\n  interval_ms: 250\n")
            stats = os.path.join(tmp, "stalled.stats.jsonl")
            got = {}

            def reader():
                with open(fifo, "rb") as fh:
                    time.sleep(4)
                    got["stats_lines"] = sum(1 for _ in open(stats)) if os.path.exists(stats) else 0
                    data = fh.read()
                got["lines"] = data.decode(errors="replace").splitlines()

            t = threading.Thread(target=reader, daemon=True)
            t.start()
            cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
            cmd = [args.binary, "--lcores", "(0-1)@(%s)" % cpus, "--no-huge", "--no-pci", "--no-shconf", "-m", "1024",
                   "--file-prefix=stateline-live-stalled-%d" % os.getpid(),
                   "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % flood, "--", "--ctl-socket", "off",
                   "--metrics-listen", "off", "--config", cfg, "--conn-log", fifo, "--stats", stats,
                   "--summary", summary, "-q"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(3.5)
            p.send_signal(signal.SIGTERM)
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            t.join(timeout=30)
            check("stalled conn log: exit 0", p.returncode == 0, err.strip()[-300:])
            s = json.load(open(summary)) if os.path.exists(summary) else {}
            rx = s.get("rx", {})
            sent, dropped = rx.get("conn_records_sent", 0), rx.get("conn_records_dropped", 0)
            created = s.get("flows", {}).get("created", -1)
            check("stalled conn log: the worker counted the records it could not hand over",
                  dropped > 0, "dropped %d, sent %d" % (dropped, sent))
            check("stalled conn log: sent + dropped == connections", sent + dropped == created,
                  "%d + %d, created %d" % (sent, dropped, created))
            # 4 s of stall at 250 ms intervals: about 14 lines if the control core went on, 0
            # or 1 had it waited on the log.
            check("stalled conn log: the control core kept taking snapshots (--stats lines)",
                  got.get("stats_lines", 0) >= 4, "%d lines written while the log was stalled" % got.get("stats_lines", 0))
            lines = got.get("lines", [])
            logged = sum(1 for l in lines if l and not l.startswith("#"))
            check("stalled conn log: every record sent was written, log closed",
                  logged == sent and bool(lines) and lines[-1].startswith("#close"),
                  "logged %d, sent %d" % (logged, sent))
            check("stalled conn log: every frame has an outcome",
                  bool(s) and sum(s["outcomes"].values()) == s["packets"] == s["ports"][0]["ipackets"],
                  "packets %s" % s.get("packets"))

        # A bad config: refused with every error and its place, nothing started.
        bad = os.path.join(tmp, "bad config.yaml")
        with open(bad, "w") as fh:
            fh.write("workers: 0\nflow_table:\n  capacty: 10\n")
        p = subprocess.run([args.binary, "--config", bad, "--pcap", demo], capture_output=True, text=True, timeout=60)
        check("bad config: exit status 2", p.returncode == 2, str(p.returncode))
        check("bad config: both errors named with file:line:col",
              (bad + ":1:10:") in p.stderr and (bad + ":3:3:") in p.stderr and "capacty" in p.stderr, p.stderr.strip())
        check("bad config: nothing ran", "packets" not in p.stdout, p.stdout.strip()[:200])

        p = subprocess.run([args.binary, "--config", os.path.join(SOURCE_ROOT, "conf", "stateline.yaml"),
                            "--pcap", demo, "-q"], capture_output=True, text=True, timeout=120)
        check("canonical config runs", p.returncode == 0, p.stderr.strip()[-300:])

    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
