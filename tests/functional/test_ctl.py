#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: the control socket and stateline-ctl, on a live appliance and during a replay.

    python3 test_ctl.py [--binary build/src/stateline] [--ctl build/tools/stateline-ctl]
                        [--captures ../shared/captures]

Live: Stateline on a net_pcap vdev that loops StopDDoS's spoofed SYN flood (infinite_rx=1) with
--ctl-socket in a temporary folder. Checks the socket's mode (0600), every stateline-ctl command
(status, stats, alerts, top --once, victims, sources, conn, help, reload), the protocol's bad
input on a raw socket (unknown command, not JSON, an oversized request, a stalled client, a client
that does not read), reload with a valid changed config (the alert ends), with an invalid one
(every error with file:line:col, the running config stays), with a FIFO in its place (refused at
once), SIGHUP, a second Stateline on the same
socket (refused), SIGINT (the socket file is gone). Reload memory: with enough workers (one
net_pcap queue each, looping conf/demo.pcap) that 255 per-source rate_limit rules x
mitigation.source_buckets 1048576 x 16 B per worker exceed MemAvailable, the reload is refused
before anything is built and the running rule keeps counting. Group access (--ctl-group, as root): temporary
system group and users; the socket 0660 with the group and the folder Stateline makes 0750; members
(supplementary or primary) connect, a non-member is refused by the file modes and, with them opened
wide, by the server's peer check; an unknown group is an error at start. Replay: a sparse capture of 200 s of capture
time judged in 100 ms intervals replays for several seconds: status and conn answer meanwhile.

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import grp
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from harness import Checks, ctl, ctl_json, stop, wait_for  # noqa: E402

check = Checks()


def raw(sock, data, timeout=5.0, read_all=False):
    """Sends bytes on a new connection; returns (first answer line as JSON or None, rest, error)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    err = None
    try:
        s.sendall(data)
    except OSError as e:  # the server may close before taking everything (oversized requests)
        err = e
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            if not read_all and b"\n" in buf:
                break
    except OSError as e:
        err = err or e
    s.close()
    line, _, rest = buf.partition(b"\n")
    try:
        return json.loads(line), rest, err
    except ValueError:
        return None, buf, err


def eal_args(prefix, vdev):
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    return ["--lcores", "(0-1)@(%s)" % cpus, "--no-huge", "--no-pci", "--no-shconf", "-m", "1024",
            "--file-prefix=%s-%d" % (prefix, os.getpid()), "--vdev", vdev]


def extra_options(binary):
    """--metrics-listen off where Stateline has it: this test needs no port of the machine's."""
    try:
        h = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--metrics-listen", "off"] if "--metrics-listen" in h else []


# ---- a sparse capture, written here: long in capture time, small on disk ----

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def frame(src, dst, sport, dport, seq, ack, flags):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip + tcp


def write_sparse_capture(path, seconds=200.0, step=0.1):
    """One handshake every `step` s of capture time, client 10.1.x.y -> server 192.0.2.80:80, left open."""
    server = socket.inet_aton("192.0.2.80")
    t0 = 1_700_000_000.0
    n = int(seconds / step)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            client = socket.inet_aton("10.1.%d.%d" % (i // 250, i % 250 + 1))
            sport = 10000 + i % 50000
            t = t0 + i * step
            for dt, f in ((0.0, frame(client, server, sport, 80, 1000, 0, 0x02)),
                          (0.001, frame(server, client, 80, sport, 5000, 1001, 0x12)),
                          (0.002, frame(client, server, sport, 80, 1001, 5001, 0x10))):
                ts = t + dt
                sec = int(ts)
                fh.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(f), len(f)) + f)
    return n


def live(args, tmp):
    flood = os.path.join(args.captures, "stopddos", "pkt.TCP.synflood.spoofed.pcap")
    if not os.path.exists(flood):
        print("note: %s absent; the live checks are skipped" % flood)
        return
    sock = os.path.join(tmp, "ctl.sock")
    cfg = os.path.join(tmp, "stateline.yaml")
    base_cfg = "rx:\n  mbufs: 65535\n"  # infinite_rx keeps the whole file in mbufs (37,841 frames)
    # A monitor-mode alert rule the flood matches (every SYN).
    base_cfg += "rules:\n  - name: any-syn\n    match: {flags: SYN}\n    action: alert\n"
    with open(cfg, "w") as fh:
        fh.write(base_cfg)
    extra = extra_options(args.binary)
    cmd = [args.binary, *eal_args("stateline-ctl", "net_pcap0,rx_pcap=%s,infinite_rx=1" % flood), "--",
           "--config", cfg, "--ctl-socket", sock, "-q", *extra]
    errf = open(os.path.join(tmp, "live.err"), "w+")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, text=True)
    try:
        wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 30)
        if not check("live: the control socket appears", os.path.exists(sock) and p.poll() is None,
                     open(errf.name).read()[-500:]):
            return
        st = os.stat(sock)
        check("live: socket is a socket, mode 0600", stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
              oct(stat.S_IMODE(st.st_mode)))

        # status
        def packets():
            rc, j, _ = ctl_json(args.ctl, sock, "status")
            return j if rc == 0 and j and j.get("packets", 0) > 0 else None
        s = wait_for(packets, 10)
        check("live: status --json: mode live, packets > 0", bool(s) and s["mode"] == "live" and s["packets"] > 0,
              json.dumps(s)[:300])
        rc, out, err = ctl(args.ctl, sock, "status")
        check("live: status: live, packets, connections, alerts",
              rc == 0 and "live" in out and "packets" in out and "connections" in out and "alerts" in out, out + err)
        check("live: status names the config and the socket", cfg in out and sock in out, out)

        # stats
        rc, j, err = ctl_json(args.ctl, sock, "stats")
        check("live: stats --json: counters and workers",
              rc == 0 and j and j["counters"]["rx"]["rx_packets"] > 0 and len(j["workers"]) == 1, err)
        rc, out, err = ctl(args.ctl, sock, "stats")
        check("live: stats: a table of counters with rates", rc == 0 and "rx.rx_packets" in out and "PER SECOND" in out,
              out[:300] + err)

        # rules
        rc, j, _ = ctl_json(args.ctl, sock, "status")
        check("live: status --json: mitigation monitor, rules generation 1",
              rc == 0 and j and j.get("mitigation_mode") == "monitor" and j.get("rules_generation") == 1
              and j.get("rules") == 1, json.dumps(j)[:300])
        rc, out, err = ctl(args.ctl, sock, "status")
        check("live: status: mitigation line", rc == 0 and "mitigation" in out and "monitor, 1 rule, generation 1" in out,
              out + err)

        def rules_hit():
            rc, j, _ = ctl_json(args.ctl, sock, "rules")
            return j if rc == 0 and j and j["rules"] and j["rules"][0]["hits"] > 0 else None
        r = wait_for(rules_hit, 10)
        check("live: rules --json: any-syn (alert) hits > 0, drops 0, monitor, generation 1",
              bool(r) and r["mode"] == "monitor" and r["generation"] == 1 and len(r["rules"]) == 1
              and r["rules"][0]["name"] == "any-syn" and r["rules"][0]["action"] == "alert"
              and r["rules"][0]["drops"] == 0, json.dumps(r)[:300])
        hits0 = r["rules"][0]["hits"] if r else 0
        rc, out, err = ctl(args.ctl, sock, "rules")
        check("live: rules: a table with units", rc == 0 and "RULE" in out and "HITS (pkts)" in out and "any-syn" in out
              and "monitor" in out, out + err)
        # stats' "mitigation" and the rules answer agree for one snapshot.
        same = None
        for _ in range(20):
            rc1, a, _ = ctl_json(args.ctl, sock, "rules")
            rc2, st, _ = ctl_json(args.ctl, sock, "stats")
            rc3, b, _ = ctl_json(args.ctl, sock, "rules")
            if a and st and b and a["seq"] == st["seq"] == b["seq"]:
                same = (a, st)
                break
        if check("live: rules and stats from one snapshot", same is not None):
            a, st = same
            m = st.get("mitigation", {})
            check("live: stats --json mitigation == rules (seq %d)" % a["seq"],
                  m.get("mode") == a["mode"] and m.get("generation") == a["generation"] and m.get("rules") == a["rules"],
                  "%s vs %s" % (m, a))
            check("live: stats --json: rx.rules_alerted > 0, no drop counted (alert rule, monitor)",
                  st["counters"]["rx"]["rules_alerted"] > 0 and st["counters"]["rx"]["rules_would_drop"] == 0
                  and st["counters"]["rx"]["rules_dropped"] == 0, json.dumps(st["counters"]["rx"])[:300])

        # alerts
        def flood_alert():
            rc, j, _ = ctl_json(args.ctl, sock, "alerts")
            return j if rc == 0 and j and any(a["type"] == "syn_flood" and a["target"] == "10.10.10.10:25565"
                                               for a in j["active"]) else None
        a = wait_for(flood_alert, 10)
        check("live: alerts --json: syn_flood on 10.10.10.10:25565", bool(a), "")
        check("live: alerts have an age", bool(a) and all("age_s" in x for x in a["active"]), json.dumps(a)[:300])
        rc, out, err = ctl(args.ctl, sock, "alerts")
        check("live: alerts: a table with type, target, severity, age",
              rc == 0 and "syn_flood" in out and "10.10.10.10:25565" in out and "SEVERITY" in out and "AGE" in out, out)

        rc, out, err = ctl(args.ctl, sock, "top", "--once")
        check("live: top --once: workers, states, alerts, victims",
              rc == 0 and "WORKER" in out and "pps" in out and "half_open" in out and "syn_flood" in out
              and "TOP VICTIMS" in out and "\033[" not in out, out + err)
        rc, out, err = ctl(args.ctl, sock, "victims")
        check("live: victims: 10.10.10.10:25565 first", rc == 0 and "10.10.10.10:25565" in out.splitlines()[1], out)
        rc, out, err = ctl(args.ctl, sock, "sources")
        check("live: sources answers", rc == 0 and out.strip() != "", out + err)
        rc, out, err = ctl(args.ctl, sock, "help")
        check("live: help lists the commands", rc == 0 and all(c in out for c in ("status", "conn", "reload")), out)
        rc, out, err = ctl(args.ctl, sock, "frobnicate")
        check("live: stateline-ctl with an unknown command: exit 2, clear error",
              rc == 2 and "unknown command 'frobnicate'" in err, err)

        # conn
        rc, j, err = ctl_json(args.ctl, sock, "conn", "10.10.10.10", "25565")
        ok = rc == 0 and j and j["matches"] > 0 and j["connections"]
        check("live: conn 10.10.10.10 25565 finds connections", bool(ok), json.dumps(j)[:300] + err)
        if ok:
            c = j["connections"][0]
            check("live: conn: both sides' TCP states, history, counts, worker",
                  c["orig_state"] == "SYN-SENT" and c["resp_state"] and c["resp"] == "10.10.10.10:25565"
                  and "history" in c and c["orig_pkts"] > 0 and c["worker"] == 0 and c["conn_state"] == "S0",
                  json.dumps(c))
            addr, port = c["orig"].rsplit(":", 1)
            rc, j2, err = ctl_json(args.ctl, sock, "conn", "10.10.10.10", "25565", addr, port)
            check("live: conn with both endpoints finds that one connection",
                  rc == 0 and j2 and j2["matches"] == 1 and j2["connections"][0]["orig"] == c["orig"],
                  json.dumps(j2)[:300] + err)
        rc, out, err = ctl(args.ctl, sock, "conn", "10.10.10.10:25565")
        check("live: conn ADDR:PORT prints a table with the states",
              rc == 0 and "SYN-SENT" in out and "ORIG STATE" in out, out[:300] + err)
        rc, out, err = ctl(args.ctl, sock, "conn", "10.10.10.x")
        check("live: conn with a bad address: exit 1, clear error", rc == 1 and "IPv4 or IPv6 address" in err, err)
        rc, out, err = ctl(args.ctl, sock, "conn", "192.0.2.99", "80")
        check("live: conn with no match says so", rc == 0 and "no tracked connection" in out, out + err)

        # The protocol on a raw socket.
        j, _, _ = raw(sock, b'{"cmd":"frobnicate"}\n')
        check("raw: unknown command: ok false, clear error",
              j and j["ok"] is False and "unknown command 'frobnicate'" in j["error"] and "help" in j["error"], j)
        j, rest, _ = raw(sock, b'{"cmd": "status"\n', read_all=True)
        check("raw: not JSON: ok false, clear error, connection closed",
              j and j["ok"] is False and "not JSON" in j["error"] and rest == b"", j)
        j, _, _ = raw(sock, b'{"cmd":"status","id":42}\n')
        check("raw: a request's id comes back", j and j["ok"] is True and j.get("id") == 42, str(j)[:200])
        j, _, _ = raw(sock, b'{"cmd":"reload","file":"/etc/passwd"}\n')
        check("raw: reload names no path", j and j["ok"] is False and "named at start" in j["error"], j)
        # No command takes a file: every one refuses an argument that would name one.
        taking = []
        for c in ("help", "status", "stats", "alerts", "rules", "top", "victims", "sources", "conn", "reload"):
            for key in ("path", "file", "config"):
                j, _, _ = raw(sock, json.dumps({"cmd": c, "addr": "192.0.2.80", key: "/etc/shadow"}).encode() + b"\n"
                              if c == "conn" else json.dumps({"cmd": c, key: "/etc/shadow"}).encode() + b"\n")
                if not (j and j["ok"] is False and ("argument" in j["error"] or "arguments" in j["error"])):
                    taking.append("%s %s: %s" % (c, key, str(j)[:100]))
        check("raw: no command takes a path, file or config argument", not taking, "; ".join(taking))
        j, _, _ = raw(sock, b'{"cmd":"status"}\n' + b'{"cmd":"stats","detail":false}\n', read_all=False)
        check("raw: status answers ok", j and j["ok"] is True and j["result"]["mode"] == "live", str(j)[:200])
        t = time.time()
        j, _, e = raw(sock, b'{"cmd":"status","pad":"' + b"x" * (100 * 1024) + b'"}\n')
        check("raw: 100 KiB request refused with a clear error",
              j and j["ok"] is False and "longer than 4096 bytes" in j["error"], "%s %s" % (j, e))
        j, _, _ = raw(sock, b'{"cmd":"status"}\n')
        check("raw: ... and the server still serves others", j and j["ok"] is True, j)

        # A stuck client (half a request, then silence) and one that never reads its answers.
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.connect(sock)
        stuck.sendall(b'{"cmd":"sta')
        hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        hog.connect(sock)
        hog.setblocking(False)
        try:
            for _ in range(2000):
                hog.send(b'{"cmd":"stats"}\n')
        except BlockingIOError:
            pass  # its buffers are full: the server stopped taking its requests
        t = time.time()
        j, _, e = raw(sock, b'{"cmd":"status"}\n', timeout=1.0)
        took = time.time() - t
        check("raw: a stalled and a non-reading client block nobody (status < 1 s)",
              j and j["ok"] is True and took < 1.0, "%.3f s %s" % (took, e))
        t = time.time()
        j, _, e = raw(sock, b'{"cmd":"conn","addr":"10.10.10.10","port":25565}\n', timeout=5.0)
        check("raw: ... nor the control core (conn answered)", j and j["ok"] is True and j["result"]["matches"] > 0,
              "%.3f s %s" % (time.time() - t, str(j)[:200]))
        hog.close()
        stuck.close()

        # Reload: a valid changed config. The flood is ~1 Mpps of SYNs: far below 500M/s.
        with open(cfg, "w") as fh:
            fh.write(base_cfg + "  - name: any-rst\n    match: {flags: RST}\n    action: drop\n"
                     "detect:\n  hold_down: 0\nthresholds:\n  syn_flood_rate: 500000000\n"
                     "flow_table:\n  capacity: 4096\n")
        rc, j, err = ctl_json(args.ctl, sock, "reload")
        applied = [x["param"] for x in j["applied"]] if rc == 0 and j else []
        restart = [x["param"] for x in j["restart_needed"]] if rc == 0 and j else []
        check("reload (valid): ok, thresholds and hold_down applied",
              "thresholds.syn_flood_rate" in applied and "detect.hold_down" in applied, json.dumps(j) + err)
        check("reload (valid): flow_table.capacity needs a restart, not applied",
              restart == ["flow_table.capacity"], json.dumps(j))

        def flood_gone():
            rc, j, _ = ctl_json(args.ctl, sock, "alerts")
            return j is not None and rc == 0 and not any(a["type"] == "syn_flood" for a in j["active"])
        check("reload (valid): the syn_flood alert ends under the new threshold", wait_for(flood_gone, 8))
        rc, j, _ = ctl_json(args.ctl, sock, "status")
        check("reload (valid): status shows the reload",
              rc == 0 and j["reloads"] >= 1 and j["last_reload"]["ok"] is True, json.dumps(j.get("last_reload") if j else j))

        # The reload added a rule: generation 2, any-syn keeps its counts (carried by name).
        def gen2():
            rc, j, _ = ctl_json(args.ctl, sock, "rules")
            return j if rc == 0 and j and j["generation"] == 2 else None
        r = wait_for(gen2, 8)
        check("reload (valid): rules generation 2, any-syn then any-rst, any-syn's hits carried",
              bool(r) and [x["name"] for x in r["rules"]] == ["any-syn", "any-rst"]
              and r["rules"][0]["hits"] >= hits0 > 0, json.dumps(r)[:300])

        # Reload: an invalid config. Every error with its place; nothing changes.
        with open(cfg, "w") as fh:
            fh.write("rx:\n  mbufs: 65535\nthresholds:\n  syn_flood_rat: 5\n  scan_rate: 0\nflow_table:\n  capacity: 10\n")
        rc, out, err = ctl(args.ctl, sock, "reload")
        places = re.findall(re.escape(cfg) + r":(\d+):(\d+):", err)
        check("reload (invalid): exit 1, every error with file:line:col",
              rc == 1 and len(places) >= 3 and ("4", "3") in places and "syn_flood_rat" in err, err)
        j, _, _ = raw(sock, b'{"cmd":"reload"}\n')
        check("reload (invalid): raw answer lists the errors",
              j and j["ok"] is False and len(j.get("errors", [])) >= 3 and
              all(re.match(re.escape(cfg) + r":\d+:\d+$", x["where"]) for x in j["errors"]), str(j)[:300])
        time.sleep(2.5)
        rc, j, _ = ctl_json(args.ctl, sock, "alerts")
        check("reload (invalid): still running, the reloaded thresholds stay",
              p.poll() is None and rc == 0 and not any(a["type"] == "syn_flood" for a in j["active"]),
              json.dumps(j)[:200] if j else "")
        rc, j, _ = ctl_json(args.ctl, sock, "status")
        check("reload (invalid): status shows it refused", rc == 0 and j["last_reload"]["ok"] is False,
              json.dumps(j.get("last_reload") if j else j))

        # Reload: the config file replaced by a FIFO nobody writes. Opened without blocking and
        # refused from what was opened (not from an earlier stat), so the control core never
        # waits on it.
        os.unlink(cfg)
        os.mkfifo(cfg, 0o600)
        t0 = time.monotonic()
        rc, out, err = ctl(args.ctl, sock, "reload", timeout=10)
        took = time.monotonic() - t0
        check("reload (FIFO): refused at once, 'is not a regular file', the running config stays",
              rc == 1 and "is not a regular file" in err and "running config stays" in err and took < 5,
              "exit %d in %.1f s: %s" % (rc, took, err))
        check("reload (FIFO): still running and answering", p.poll() is None and ctl(args.ctl, sock, "status")[0] == 0)
        os.unlink(cfg)

        # SIGHUP reloads too: back to the defaults, the flood alert returns.
        with open(cfg, "w") as fh:
            fh.write(base_cfg)
        p.send_signal(signal.SIGHUP)
        check("SIGHUP: the syn_flood alert returns with the default threshold", wait_for(flood_alert, 10))
        errf.flush()
        check("SIGHUP: the reload is reported on stderr", "SIGHUP: reloaded" in open(errf.name).read(),
              open(errf.name).read()[-300:])

        # A second Stateline on the same socket.
        cmd2 = [args.binary, *eal_args("stateline-ctl2", "net_pcap0,rx_pcap=%s" % flood), "--",
                "--ctl-socket", sock, "-q", *extra]
        p2 = subprocess.run(cmd2, capture_output=True, text=True, timeout=60)
        check("second Stateline on the same socket: refused with a clear error",
              p2.returncode != 0 and ("another Stateline is running on " + sock) in p2.stderr, p2.stderr[-300:])
        check("... and the first still answers", ctl(args.ctl, sock, "status")[0] == 0)
    finally:
        stop(p)
    check("SIGINT: exit 0", p.returncode == 0, open(errf.name).read()[-300:])
    check("SIGINT: the socket file is gone", not os.path.exists(sock))
    rc, out, err = ctl(args.ctl, sock, "status")
    check("stateline-ctl without Stateline: exit 3, clear error",
          rc == 3 and ("cannot connect to " + sock + ": No such file or directory (is Stateline running? --socket PATH)")
          in err, err)


def run_quiet(cmd):
    """Runs an administration command; returns (ok, what it said)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "%s: %s" % (cmd[0], e)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def group_access(args, tmp):
    """--ctl-group: the socket 0660 with the group, its folder 0750; a member connects, others do not."""
    flood = os.path.join(args.captures, "stopddos", "pkt.TCP.synflood.spoofed.pcap")
    tag = "%d" % (os.getpid() % 100000)
    group, member, primary, other = "slctl-g" + tag, "slctl-m" + tag, "slctl-p" + tag, "slctl-n" + tag

    # An unknown group: a clear error before anything starts.
    p = subprocess.run([args.binary, "--pcap", flood, "--ctl-group", "nosuch-" + tag, "-q"],
                       capture_output=True, text=True, timeout=60)
    check("--ctl-group unknown: exit 2, names the fix",
          p.returncode == 2 and ("group 'nosuch-%s' does not exist: create it (groupadd nosuch-%s)" % (tag, tag))
          in p.stderr, p.stderr[-300:])
    # The same group from the config, and the fix the error names: --ctl-group "" (owner only).
    cfg = os.path.join(tmp, "ctl-group.yaml")
    with open(cfg, "w") as fh:
        fh.write("exports:\n  ctl_group: nosuch-%s\n" % tag)
    demo = os.path.join(SOURCE_ROOT, "conf", "demo.pcap")
    p = subprocess.run([args.binary, "--config", cfg, "--pcap", demo, "--ctl-socket", os.path.join(tmp, "g.sock"), "-q"],
                       capture_output=True, text=True, timeout=60)
    check("exports.ctl_group unknown: exit 2", p.returncode == 2 and "nosuch-" + tag in p.stderr, p.stderr[-300:])
    p = subprocess.run([args.binary, "--config", cfg, "--pcap", demo, "--ctl-socket", os.path.join(tmp, "g.sock"),
                        "--ctl-group", "", "-q"], capture_output=True, text=True, timeout=60)
    check('--ctl-group "" overrides exports.ctl_group: runs owner-only', p.returncode == 0, p.stderr[-300:])

    if os.geteuid() != 0:
        check("--ctl-group checks: need root (groupadd, useradd, runuser)", False, "running as uid %d" % os.geteuid())
        return
    if not os.path.exists(flood):
        check("--ctl-group checks: need %s" % flood, False)
        return
    made_users, made_group = [], False
    p = None
    gtmp = tempfile.mkdtemp(prefix="sl-grp-", dir="/tmp")
    try:
        ok, out = run_quiet(["groupadd", "--system", group])
        if not check("groupadd --system %s" % group, ok, out + " (groupadd and useradd come with Debian's passwd)"):
            return
        made_group = True
        for user, opts in ((member, ["-G", group]), (primary, ["-g", group]), (other, [])):
            ok, out = run_quiet(["useradd", "--system", "-M", "-s", "/usr/sbin/nologin", *opts, user])
            if not check("useradd --system %s %s" % (" ".join(opts), user), ok, out):
                return
            made_users.append(user)
        # Everyone may pass through (not list) the test's folder; Stateline makes run/ itself.
        os.chmod(gtmp, 0o711)
        ctl_bin = os.path.join(gtmp, "stateline-ctl")
        subprocess.run(["cp", args.ctl, ctl_bin], check=True)
        os.chmod(ctl_bin, 0o755)
        sock = os.path.join(gtmp, "run", "ctl.sock")
        cfg = os.path.join(tmp, "group.yaml")
        with open(cfg, "w") as fh:
            fh.write("rx:\n  mbufs: 65535\n")  # infinite_rx keeps the whole file in mbufs
        errf = open(os.path.join(tmp, "group.err"), "w+")
        p = subprocess.Popen([args.binary, *eal_args("stateline-grp", "net_pcap0,rx_pcap=%s,infinite_rx=1" % flood),
                              "--", "--config", cfg, "--ctl-socket", sock, "--ctl-group", group, "-q", *extra_options(args.binary)],
                             stdout=subprocess.DEVNULL, stderr=errf, text=True)
        wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 30)
        if not check("--ctl-group: the control socket appears", os.path.exists(sock) and p.poll() is None,
                     open(errf.name).read()[-500:]):
            return
        gid = grp.getgrnam(group).gr_gid
        st = os.stat(sock)
        check("--ctl-group: socket mode 0660, group %s" % group,
              stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid,
              "mode %o gid %d" % (stat.S_IMODE(st.st_mode), st.st_gid))
        dst = os.stat(os.path.dirname(sock))
        check("--ctl-group: the folder Stateline made is 0750, group %s" % group,
              stat.S_IMODE(dst.st_mode) == 0o750 and dst.st_gid == gid and dst.st_uid == 0,
              "mode %o uid %d gid %d" % (stat.S_IMODE(dst.st_mode), dst.st_uid, dst.st_gid))

        def as_user(user, *cmd):
            r = subprocess.run(["runuser", "-u", user, "--", ctl_bin, "--socket", sock, *cmd],
                               capture_output=True, text=True, timeout=30)
            return r.returncode, r.stdout, r.stderr
        rc, out, err = as_user(member, "status")
        check("--ctl-group: a supplementary member runs stateline-ctl status", rc == 0 and "live" in out, out + err)
        rc, out, err = as_user(primary, "--json", "status")
        check("--ctl-group: a member by primary group runs status --json", rc == 0 and '"mode"' in out, out + err)
        rc, out, err = as_user(other, "status")
        check("--ctl-group: a non-member is refused at connect(), with a clear message",
              rc == 3 and "Permission denied" in err and "--ctl-group" in err, err)
        # The server's own check, behind the file modes: open them wide for a moment.
        os.chmod(os.path.dirname(sock), 0o755)
        os.chmod(sock, 0o666)
        rc, out, err = as_user(other, "status")
        check("--ctl-group: the server refuses a non-member who reaches the socket",
              rc != 0 and ("nor a member of group '%s'" % group) in (out + err), out + err)
        rc, out, err = as_user(member, "status")
        check("... and still answers a member", rc == 0 and "live" in out, out + err)
    finally:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for user in made_users:
            ok, out = run_quiet(["userdel", user])
            check("cleanup: userdel %s" % user, ok, out)
        if made_group:
            ok, out = run_quiet(["groupdel", group])
            check("cleanup: groupdel %s" % group, ok, out)
        subprocess.run(["rm", "-rf", gtmp])


def replay(args, tmp):
    pcap = os.path.join(tmp, "sparse.pcap")
    n = write_sparse_capture(pcap)
    cfg = os.path.join(tmp, "replay.yaml")
    with open(cfg, "w") as fh:
        # 100 ms intervals: 2000 of them over 200 s of capture time, each a turn of the control
        # loop (2 ms at least), so the replay lasts seconds however fast the machine.
        fh.write("detect:\n  interval_ms: 100\n")
    sock = os.path.join(tmp, "replay.sock")
    t0 = time.time()
    p = subprocess.Popen([args.binary, "--pcap", pcap, "--config", cfg, "--ctl-socket", sock, "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 30, step=0.05)

        def some():
            rc, j, _ = ctl_json(args.ctl, sock, "status")
            return j if rc == 0 and j and j.get("packets", 0) > 0 else None
        s = wait_for(some, 10, step=0.1)
        check("replay: status during the replay: mode capture, packets > 0, running",
              bool(s) and s["mode"] == "capture" and s["running"] and p.poll() is None, json.dumps(s)[:300])
        check("replay: status gives the capture time", bool(s) and str(s.get("clock", "")).startswith("2023-11-14"),
              s.get("clock") if s else "")
        rc, j, err = ctl_json(args.ctl, sock, "conn", "192.0.2.80", "80")
        ok = rc == 0 and j and j["matches"] > 0
        check("replay: conn 192.0.2.80 80 during the replay: established connections", bool(ok) and all(
            c["orig_state"] == "ESTABLISHED" and c["resp_state"] == "ESTABLISHED" for c in j["connections"]),
            json.dumps(j)[:300] + err)
        rc, out, err = ctl(args.ctl, sock, "top", "--once")
        check("replay: top --once", rc == 0 and "capture" in out and "WORKER" in out, out + err)
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        check("replay: exit 0 at the end of the capture (%d connections, %.1f s)" % (n, time.time() - t0),
              p.returncode == 0, err[-300:])
        check("replay: the socket file is gone", not os.path.exists(sock))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def mem_available():
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def reload_memory(args, tmp):
    """A reload whose rules need more memory than the machine has: 255 per-source rate_limit
    rules x mitigation.source_buckets 1048576 x 16 B = 4 GiB per worker, with enough workers to
    pass MemAvailable. Refused before anything is built; the running rules keep counting."""
    demo = os.path.join(SOURCE_ROOT, "conf", "demo.pcap")
    per_worker = 255 * 1048576 * 16
    avail = mem_available()
    workers = avail // per_worker + 2
    if not avail or workers > 12:
        print("note: MemAvailable %d bytes: %d workers would be needed to exceed it; the reload memory "
              "check is not run" % (avail, workers))
        return
    sock = os.path.join(tmp, "mem.sock")
    cfg = os.path.join(tmp, "mem.yaml")
    # Small tables: the workers' EAL memory stays within -m 1024.
    base = "flow_table:\n  capacity: 16384\nrules:\n  - name: any-syn\n    match: {flags: SYN}\n    action: alert\n"
    with open(cfg, "w") as fh:
        fh.write(base)
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    # One queue per worker: net_pcap gives a port one RX queue per rx_pcap, each looping demo.pcap.
    vdev = "net_pcap0," + ",".join(["rx_pcap=" + demo] * workers) + ",infinite_rx=1"
    cmd = [args.binary, "--lcores", "(0-%d)@(%s)" % (workers, cpus), "--no-huge", "--no-pci", "--no-shconf",
           "-m", "1024", "--file-prefix=stateline-ctl-mem-%d" % os.getpid(), "--vdev", vdev, "--",
           "--config", cfg, "--ctl-socket", sock, "-q", *extra_options(args.binary)]
    errf = open(os.path.join(tmp, "mem.err"), "w+")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, text=True)
    try:
        wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 30)
        if not check("reload memory: Stateline with %d workers runs" % workers, p.poll() is None and os.path.exists(sock),
                     open(errf.name).read()[-500:]):
            return

        def hits():
            rc, j, _ = ctl_json(args.ctl, sock, "rules")
            return j["rules"][0]["hits"] if rc == 0 and j and j["rules"] and j["rules"][0]["hits"] > 0 else None
        h0 = wait_for(hits, 10)
        rules = "".join("  - name: rl-%d\n    match: {dst_port: %d, flags: SYN}\n    action: rate_limit\n"
                        "    rate: 10\n    burst: 20\n    per: source\n" % (i, 1000 + i) for i in range(255))
        with open(cfg, "w") as fh:
            fh.write(base + rules + "mitigation:\n  source_buckets: 1048576\n")
        t0 = time.time()
        rc, out, err = ctl(args.ctl, sock, "reload", timeout=60)
        took = time.time() - t0
        check("reload memory: refused, exit 1, the running config stays (%.1f s)" % took,
              rc == 1 and "the running config stays" in err and "MemAvailable" in err
              and "lower mitigation.source_buckets" in err and "255 per-source rate_limit rule(s)" in err, err + out)
        rc, j, _ = ctl_json(args.ctl, sock, "rules")
        check("reload memory: still generation 1 with the one rule", rc == 0 and j and j["generation"] == 1
              and [x["name"] for x in j["rules"]] == ["any-syn"], json.dumps(j)[:300] if j else "")
        h1 = wait_for(lambda: (hits() or 0) > (h0 or 0) and hits(), 10)
        check("reload memory: the running rule keeps counting", p.poll() is None and bool(h0) and bool(h1),
              "hits %s then %s" % (h0, h1))
    finally:
        stop(p)
        shutil.rmtree("/var/run/dpdk/stateline-ctl-mem-%d" % os.getpid(), ignore_errors=True)
    check("reload memory: SIGINT, exit 0", p.returncode == 0, open(errf.name).read()[-300:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--ctl", default=os.path.join(SOURCE_ROOT, "build", "tools", "stateline-ctl"))
    ap.add_argument("--captures", default=os.path.join(SOURCE_ROOT, "..", "shared", "captures"))
    args = ap.parse_args()
    # Unix socket paths are short (108 bytes): a short temporary folder.
    tmp = tempfile.mkdtemp(prefix="sl-ctl-", dir="/tmp")
    try:
        live(args, tmp)
        reload_memory(args, tmp)
        group_access(args, tmp)
        replay(args, tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
