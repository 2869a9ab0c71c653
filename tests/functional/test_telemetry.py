#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: the /stateline/* DPDK telemetry commands, read with DPDK's own client.

    python3 test_telemetry.py [--binary build/src/stateline] [--captures ../shared/captures]
                              [--client /usr/bin/dpdk-telemetry.py]

Runs Stateline live on a net_pcap port looping StopDDoS's spoofed SYN flood (infinite_rx=1)
with a file prefix of its own, so the telemetry socket is <runtime dir>/<prefix>/dpdk_telemetry.v2,
and queries it with DPDK's dpdk-telemetry.py (-f PREFIX, commands on its standard input, one JSON
reply per line), as an operator would:
  - Stateline names the socket on stderr at the start;
  - "/" lists the six /stateline/ commands and /help explains one;
  - /stateline/stats: packets > 0, mode live, and the same total the workers add up to;
  - /stateline/rates and /stateline/workers: packets per second > 0;
  - /stateline/alerts: syn_flood on 10.10.10.10:25565 within a few seconds, with its fields;
  - /stateline/flows: half_open > 0, the states add up to active; per worker with a worker id;
  - /stateline/top: the victim first;
  - bad parameters get {"error": ...} saying what is accepted, and the session goes on.
Then a replay: telemetry is on there too (its socket in the replay's private runtime folder while
it runs, the folder gone after) and silent on stderr.

Exit 77 (skip) when dpdk-telemetry.py or the capture is absent. Prints one line per check and
ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
COMMANDS = ["/stateline/stats", "/stateline/rates", "/stateline/workers", "/stateline/flows",
            "/stateline/alerts", "/stateline/top", "/stateline/rules"]
sys.path.insert(0, HERE)
from harness import Checks, stop  # noqa: E402


def runtime_dir(prefix):
    """Where EAL puts a file prefix's runtime folder (and where dpdk-telemetry.py looks)."""
    base = os.environ.get("RUNTIME_DIRECTORY")
    if not base:
        base = "/var/run" if os.getuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp")
    return os.path.join(base, "dpdk", prefix)


class Client:
    """DPDK's dpdk-telemetry.py, driven through its standard input."""

    def __init__(self, tool, prefix):
        self.tool, self.prefix = tool, prefix

    def ask(self, *cmds):
        p = subprocess.run([self.tool, "-f", self.prefix], input="".join(c + "\n" for c in cmds),
                           capture_output=True, text=True, timeout=30)
        replies = []
        for line in p.stdout.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                replies.append(json.loads(line))
            except ValueError:
                raise RuntimeError("dpdk-telemetry.py printed a line that is not JSON: %r (stderr: %s)"
                                   % (line[:200], p.stderr.strip()[-300:]))
        if len(replies) != len(cmds):
            raise RuntimeError("%d replies to %d commands: %s %s" % (len(replies), len(cmds), p.stdout.strip()[-300:],
                                                                     p.stderr.strip()[-300:]))
        return [r.get(c.split(",")[0]) for r, c in zip(replies, cmds)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--captures", default=os.path.join(SOURCE_ROOT, "..", "shared", "captures"))
    ap.add_argument("--client", default="/usr/bin/dpdk-telemetry.py")
    args = ap.parse_args()

    if not os.access(args.client, os.X_OK):
        print("skip: %s is absent: install Debian's dpdk package (tools/bootstrap.sh does), which "
              "provides DPDK's telemetry client" % args.client)
        return 77
    flood = os.path.join(args.captures, "stopddos", "pkt.TCP.synflood.spoofed.pcap")
    if not os.path.exists(flood):
        print("skip: %s is absent: the live flood cannot be run" % flood)
        return 77

    check = Checks(width=62)

    print("client: %s (DPDK's own, commands on its standard input)" % args.client)
    prefix = "stateline-tel-%d" % os.getpid()
    rdir = runtime_dir(prefix)
    sock = os.path.join(rdir, "dpdk_telemetry.v2")
    cli = Client(args.client, prefix)
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "mbufs.yaml")
        with open(cfg, "w") as fh:   # infinite_rx keeps the whole file (37,841 frames) in mbufs
            fh.write("rx:\n  mbufs: 65535\n")
            # A monitor-mode rule the flood matches: its SYNs are counted as would-drops.
            fh.write("rules:\n  - name: flood-syn\n    match: {flags: SYN}\n    action: drop\n")
        err_path = os.path.join(tmp, "stderr")
        cmd = [args.binary, "--lcores", "(0-1)@(%s)" % cpus, "--no-huge", "--no-pci", "--no-shconf", "-m", "1024",
               "--file-prefix=" + prefix, "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % flood, "--", "--ctl-socket", "off", "--metrics-listen", "off",
               "--config", cfg, "-q"]
        with open(err_path, "w") as err_fh:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_fh)
        try:
            run_live(cli, p, sock, err_path, check)
        finally:
            stop(p)
            shutil.rmtree(rdir, ignore_errors=True)   # live mode leaves EAL's folder; this one is ours
        check("live: exit 0 on SIGINT", p.returncode == 0, open(err_path).read().strip()[-300:])

        run_replay(args, cli.tool, flood, cpus, check)

    return check.summary()


def run_live(cli, p, sock, err_path, check):
    """The live checks, while Stateline runs."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and p.poll() is None and not os.path.exists(sock):
        time.sleep(0.1)
    if not check("live: telemetry socket %s" % sock, os.path.exists(sock),
                 "exit %s; %s" % (p.poll(), open(err_path).read().strip()[-300:])):
        return
    # The socket opens within EAL's start; the line naming it comes once the ports are up.
    want = "DPDK telemetry on %s" % sock
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and p.poll() is None and want not in open(err_path).read():
        time.sleep(0.1)
    err = open(err_path).read()
    check("live: stderr names the socket and the client command",
          want in err and "dpdk-telemetry.py -f " in err, err.strip()[-300:])

    # Wait for the first snapshot and the alert (detection judges 1 s intervals).
    alerts, last = None, None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alerts, = cli.ask("/stateline/alerts")
        last = alerts
        if isinstance(alerts, dict) and any(isinstance(v, dict) and v.get("type") == "syn_flood"
                                            for v in alerts.values()):
            break
        time.sleep(0.5)
    found = [v for v in (alerts or {}).values() if isinstance(v, dict) and v.get("type") == "syn_flood"
             and v.get("target") == "10.10.10.10:25565"]
    check("/stateline/alerts: syn_flood 10.10.10.10:25565 within 10 s", bool(found), json.dumps(last)[:300])
    if found:
        a = found[0]
        check("/stateline/alerts: type, target, severity, group, start, id",
              all(k in a for k in ("type", "target", "severity", "group", "start", "id"))
              and a["severity"] in ("low", "medium", "high", "critical") and a["start"].endswith("Z"), json.dumps(a))
        check("/stateline/alerts: active count and started by type",
              alerts.get("active", 0) >= 1 and alerts.get("started", {}).get("syn_flood", 0) >= 1,
              "active %s, started %s" % (alerts.get("active"), alerts.get("started")))

    # Listing and help.
    listing, helptext = cli.ask("/", "/help,/stateline/flows")
    missing = [c for c in COMMANDS if c not in (listing or [])]
    check("/ lists the seven /stateline/ commands", not missing, "missing %s" % missing)
    check("/help,/stateline/flows explains it",
          isinstance(helptext, dict) and "state" in str(helptext.get("/stateline/flows", "")), json.dumps(helptext))

    # Totals against the workers' sum, from the same snapshot (same seq).
    stats = workers = None
    for _ in range(5):
        stats, workers = cli.ask("/stateline/stats", "/stateline/workers")
        if stats.get("seq") == workers.get("seq"):
            break
    total = stats.get("rx/rx_packets", 0)
    check("/stateline/stats: rx/rx_packets > 0", total > 0, str(total))
    check("/stateline/stats: mode live, running, time and uptime",
          stats.get("mode") == "live" and stats.get("running") == 1 and stats.get("uptime_ms", 0) > 0
          and abs(stats.get("time_ms", 0) / 1000 - time.time()) < 30,
          "mode %s running %s uptime_ms %s time_ms %s" % (stats.get("mode"), stats.get("running"),
                                                         stats.get("uptime_ms"), stats.get("time_ms")))
    check("/stateline/stats: every group, 'group/name' keys",
          all(k in stats for k in ("outcomes/tcp", "tcp/handshake_completed", "flows/active",
                                   "flows/by_state/half_open", "flows/removed/expired",
                                   "flows/insert_failed/table_full")), "%d keys" % len(stats))
    per = [v for k, v in workers.items() if isinstance(v, dict)]
    wsum = sum(w.get("rx_packets", 0) for w in per)
    same = stats.get("seq") == workers.get("seq")
    check("/stateline/workers: rx_packets add up to the total" + (" (same snapshot)" if same else " (within 2 s of packets)"),
          len(per) == workers.get("workers") == 1 and
          (wsum == total if same else abs(wsum - total) <= 2 * max(w.get("rx_pps", 0) for w in per)),
          "workers %d, stats %d, seq %s/%s" % (wsum, total, stats.get("seq"), workers.get("seq")))
    check("/stateline/workers: rx_pps > 0, polls, flows_active",
          all(w.get("rx_pps", 0) > 0 and "polls_busy" in w and "polls_idle" in w and w.get("flows_active", 0) > 0
              for w in per), json.dumps(per)[:300])

    rates, tcp_rates = cli.ask("/stateline/rates", "/stateline/rates,tcp")
    check("/stateline/rates: rx/rx_packets per second > 0, with its unit",
          rates.get("rx/rx_packets", 0) > 0 and "per second" in rates.get("unit", ""), str(rates.get("rx/rx_packets")))
    check("/stateline/rates,tcp: only that group",
          "tcp/syn_retransmitted" in tcp_rates and not any(k.startswith("rx/") for k in tcp_rates), str(list(tcp_rates)[:6]))

    flows, flows0 = cli.ask("/stateline/flows", "/stateline/flows,0")
    by_state = flows.get("by_state", {})
    check("/stateline/flows: half_open > 0", by_state.get("half_open", 0) > 0, json.dumps(by_state))
    check("/stateline/flows: the states add up to active", sum(by_state.values()) == flows.get("active"),
          "%d vs %s" % (sum(by_state.values()), flows.get("active")))
    check("/stateline/flows: created, removed by reason, insert failures",
          flows.get("created", 0) >= flows.get("active", 0) > 0 and "expired" in flows.get("removed", {})
          and "table_full" in flows.get("insert_failed", {}), json.dumps(flows)[:300])
    check("/stateline/flows,0: worker 0's", flows0.get("worker") == 0 and flows0.get("by_state", {}).get("half_open", 0) > 0,
          json.dumps(flows0)[:200])

    top, = cli.ask("/stateline/top")
    v1 = top.get("victim_1", {})
    check("/stateline/top: the flood's victim first", str(v1.get("target", "")).startswith("10.10.10.10"),
          json.dumps(v1)[:200])

    # Mitigation: monitor mode, generation 1, the rule keyed "1" with its counts.
    rules = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rules, = cli.ask("/stateline/rules")
        if isinstance(rules, dict) and rules.get("1", {}).get("hits", 0) > 0:
            break
        time.sleep(0.5)
    r1 = (rules or {}).get("1", {})
    check("/stateline/rules: mode monitor, generation 1, 1 rule",
          rules and rules.get("mode") == "monitor" and rules.get("generation") == 1 and rules.get("rules") == 1,
          json.dumps(rules)[:300])
    check("/stateline/rules: flood-syn (drop) hits > 0, would-drops == hits",
          r1.get("name") == "flood-syn" and r1.get("action") == "drop" and r1.get("hits", 0) > 0
          and r1.get("drops") == r1.get("hits"), json.dumps(r1))
    stats2, rules2 = cli.ask("/stateline/stats,rx", "/stateline/rules")
    check("/stateline/stats,rx: rx/rules_would_drop > 0, nothing dropped (monitor)",
          stats2.get("rx/rules_would_drop", 0) > 0 and stats2.get("rx/rules_dropped") == 0
          and stats2.get("rx/tx_packets") == 0, json.dumps({k: v for k, v in stats2.items() if "rules" in k or "tx" in k}))

    # Bad parameters and commands: an answer saying what to do, and the session goes on.
    bad = cli.ask("/stateline/flows,99", "/stateline/workers,abc", "/stateline/stats,nosuch",
                  "/stateline/alerts,x", "/stateline/nosuch", "/stateline/stats")
    check("/stateline/flows,99: error naming the worker ids",
          "error" in bad[0] and "99" in bad[0]["error"] and "0 to 0" in bad[0]["error"], json.dumps(bad[0]))
    check("/stateline/workers,abc: error", "error" in bad[1] and "abc" in bad[1]["error"], json.dumps(bad[1]))
    check("/stateline/stats,nosuch: error and the accepted groups",
          "error" in bad[2] and "flows.by_state" in bad[2].get("accepted", ""), json.dumps(bad[2]))
    check("/stateline/alerts,x: error, takes no parameter",
          "error" in bad[3] and "no parameter" in bad[3]["error"], json.dumps(bad[3]))
    check("/stateline/nosuch: DPDK answers null", bad[4] is None, json.dumps(bad[4]))
    check("after the errors the session still answers", bad[5].get("rx/rx_packets", 0) > 0)


def run_replay(args, tool, flood, cpus, check):
    """A replay keeps telemetry on (in its private runtime folder) and says nothing about it."""
    files = [flood] * 24   # ~0.9 M frames: the replay lasts long enough to see the socket
    p = subprocess.Popen([args.binary, "--pcap", *files, "-q", "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sock = os.path.join(runtime_dir("stateline-%d" % p.pid), "dpdk_telemetry.v2")
    seen, reply = False, None
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        if os.path.exists(sock):
            seen = True
            try:
                reply, = Client(tool, "stateline-%d" % p.pid).ask("/stateline/workers")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass   # the replay ended while asking
            break
        time.sleep(0.01)
    out, err = p.communicate(timeout=120)
    check("replay: exit 0", p.returncode == 0, err.strip()[-300:])
    check("replay: telemetry socket in its runtime folder while it runs", seen, sock)
    if reply is not None:
        check("replay: /stateline/workers answers (%s)" % ("not ready yet" if "error" in reply else "figures"),
              isinstance(reply, dict) and ("error" in reply or "0" in reply), json.dumps(reply)[:200])
    check("replay: nothing on stderr with -q (no telemetry notice)", err.strip() == "", err.strip()[-300:])
    check("replay: its runtime folder removed at the end", not os.path.exists(os.path.dirname(sock)))


if __name__ == "__main__":
    sys.exit(main())
