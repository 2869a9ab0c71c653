#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: faults a live Stateline rides out (issue 8): a link going down and up, and
an exhausted mbuf pool.

    python3 test_faults.py [--binary build/src/stateline]

Needs root and iproute2 (a network namespace of its own) and tcpreplay; without them it prints
"SKIP: <why>" and exits 77.

Link down and up: DPDK 22.11's net_af_packet never reports a link change (its link_update does
nothing; the link is "up" from start to stop), so the port here is a net_tap in a namespace of the
test's own: the kernel's side of the tap is the link, and `ip link set <tap> down/up` is what a
cable pull is to a NIC (the tap PMD reads IFF_UP/IFF_RUNNING in its link_update). tcpreplay sends
conf/demo.pcap out of the kernel side of the tap, which the PMD receives. Checks:
  * frames replayed before the flap are counted;
  * Stateline prints "port ... link down (was up); still polling" then "link up (was down)";
  * it keeps running through the flap, and /metrics (scraped inside the namespace) says
    stateline_port_link_up 0 while down, then 1 and stateline_port_link_changes_total 2;
  * frames replayed after the link came back are counted too (ipackets = both replays);
  * SIGTERM: exit 0, the summary's port has link_up true and link_changes >= 2.

mbuf pool exhaustion: the tap PMD holds one mbuf per RX descriptor and takes a fresh one for each
frame it reads, so rx.descriptors 1022 with rx.mbufs 1023 (the least allowed) empties the pool as
soon as frames arrive: rx_nombuf > 0 in /metrics while running and in the summary, Stateline keeps
running and stops cleanly on SIGTERM.

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
SKIP = 77

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    print("%-66s %s%s" % (name, "ok" if ok else "FAIL", ("  " + str(detail)[-1500:]) if detail and not ok else ""),
          flush=True)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


def pcap_frames(path):
    with open(path, "rb") as fh:
        data = fh.read()
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    import struct
    n, off = 0, 24
    while off + 16 <= len(data):
        off += 16 + struct.unpack(e + "I", data[off + 8:off + 12])[0]
        n += 1
    return n


def wait_for(pred, timeout, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # meson's timeout: the finally blocks run

    ip, tcpreplay = shutil.which("ip"), shutil.which("tcpreplay")
    if os.geteuid() != 0:
        print("SKIP: needs root for a network namespace and a tap")
        return SKIP
    if not ip or not tcpreplay:
        print("SKIP: needs iproute2 and tcpreplay (apt-get install iproute2 tcpreplay)")
        return SKIP
    if not os.path.exists("/dev/net/tun"):
        print("SKIP: no /dev/net/tun (the tap PMD needs it)")
        return SKIP

    demo = os.path.join(SOURCE_ROOT, "conf", "demo.pcap")
    frames = pcap_frames(demo)
    pid = os.getpid()
    ns, tap, prefix = "sl-fault-%d" % pid, "sltap%d" % pid, "stateline-fault-%d" % pid
    tmp = tempfile.mkdtemp(prefix="sl-fault-")
    sl = None
    try:
        p = subprocess.run([ip, "netns", "add", ns], capture_output=True, text=True)
        if p.returncode != 0:
            print("SKIP: cannot create a network namespace: %s" % p.stderr.strip())
            return SKIP

        def nsrun(*cmd, **kw):
            return subprocess.run([ip, "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=60, **kw)
        # Quiet kernel (no IPv6 router solicitations on the tap), loopback up for /metrics.
        nsrun("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; "
                          "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; ip link set lo up")
        cfg = os.path.join(tmp, "faults.yaml")
        with open(cfg, "w") as fh:
            # 250 ms stats: the link is polled four times a second. 512 descriptors: the tap PMD
            # reads a frame with one readv() over all of them (IOV_MAX is 1024).
            fh.write("stats:\n  interval_ms: 250\nrx:\n  descriptors: 512\n")
        summary = os.path.join(tmp, "summary.json")
        log = os.path.join(tmp, "stateline.log")
        cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
        cmd = [ip, "netns", "exec", ns, args.binary, "--lcores", "(0-1)@(%s)" % cpus, "--no-huge", "--no-pci",
               "--no-shconf", "-m", "512", "--file-prefix=" + prefix, "--vdev", "net_tap0,iface=" + tap, "--",
               "--config", cfg, "--ctl-socket", "off", "--metrics-listen", "127.0.0.1:9469", "--summary", summary, "-q"]
        with open(log, "w") as fh:
            sl = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)

        def log_text():
            with open(log, errors="replace") as fh:
                return fh.read()
        if not check("stateline started on net_tap", wait_for(lambda: "tracking on" in log_text() or sl.poll() is not None, 30)
                     and sl.poll() is None, log_text()):
            return 1
        nsrun(ip, "link", "set", tap, "arp", "off", "up")

        def metrics():
            p = nsrun(sys.executable, "-c", "import urllib.request;print(urllib.request.urlopen("
                      "'http://127.0.0.1:9469/metrics', timeout=5).read().decode())")
            out = {}
            for line in p.stdout.splitlines():
                if line.startswith("stateline_port_link_up{") or line.startswith("stateline_port_link_changes_total{") \
                        or line.startswith("stateline_port_packets_total{"):
                    out[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
                elif line.startswith("stateline_port_drops_total{") and 'reason="rx_nombuf"' in line:
                    out["nombuf"] = float(line.rsplit(" ", 1)[1])
            return out

        def replay():
            t = nsrun(tcpreplay, "-i", tap, "--pps", "5000", demo)
            return t.returncode == 0 and ("Successful packets:        %d" % frames) in t.stdout, t.stdout + t.stderr
        ok, out = replay()
        check("tcpreplay into the tap (before the flap)", ok, out)
        m = wait_for(lambda: (lambda x: x if x.get("stateline_port_packets_total") == frames else None)(metrics()), 10)
        check("frames before the flap counted, link up", bool(m) and m.get("stateline_port_link_up") == 1,
              json.dumps(m or metrics()))

        nsrun(ip, "link", "set", tap, "down")
        down = wait_for(lambda: "link down (was up); still polling" in log_text(), 10)
        check("link down: the warning line", bool(down), log_text()[-800:])
        m = wait_for(lambda: (lambda x: x if x.get("stateline_port_link_up") == 0 else None)(metrics()), 5)
        check("link down: /metrics link_up 0, still serving", bool(m) and sl.poll() is None, json.dumps(metrics()))
        time.sleep(1)
        check("link down: still running", sl.poll() is None, log_text()[-800:])

        nsrun(ip, "link", "set", tap, "up")
        up = wait_for(lambda: "link up (was down)" in log_text(), 10)
        check("link up: the line", bool(up), log_text()[-800:])
        m = wait_for(lambda: (lambda x: x if x.get("stateline_port_link_up") == 1 else None)(metrics()), 5)
        check("link up: /metrics link_up 1, link_changes_total 2",
              bool(m) and m.get("stateline_port_link_changes_total") == 2, json.dumps(metrics()))

        ok, out = replay()
        check("tcpreplay into the tap (after the flap)", ok, out)
        m = wait_for(lambda: (lambda x: x if x.get("stateline_port_packets_total") == 2 * frames else None)(metrics()), 10)
        check("frames after the link came back counted", bool(m), json.dumps(metrics()))

        sl.send_signal(signal.SIGTERM)
        try:
            rc = sl.wait(timeout=60)
        except subprocess.TimeoutExpired:
            sl.kill()
            rc = sl.wait()
        check("SIGTERM: exit 0, summary written", rc == 0 and os.path.exists(summary), "exit %s\n%s" % (rc, log_text()))
        if os.path.exists(summary):
            with open(summary) as fh:
                s = json.load(fh)
            port = s["ports"][0]
            check("summary: link_changes >= 2, link up at the stop",
                  port.get("link_changes", 0) >= 2 and port.get("link_up") is True, json.dumps(port))
            check("summary: both replays counted", s["packets"] == 2 * frames == port["ipackets"],
                  "packets %d, ipackets %d, want %d" % (s["packets"], port["ipackets"], 2 * frames))

        # The mbuf pool exhausted: the tap PMD keeps one mbuf per RX descriptor in its queue and
        # needs a fresh one for every frame it reads; with rx.descriptors 1022 out of a pool of
        # 1023 (the least rx.mbufs allows), the pool is empty as soon as frames arrive.
        with open(cfg, "w") as fh:
            fh.write("stats:\n  interval_ms: 250\nrx:\n  descriptors: 1022\n  mbufs: 1023\n")
        os.unlink(summary)
        with open(log, "w") as fh:
            sl = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        if not check("mbufs: stateline started with rx.mbufs 1023, 1022 descriptors",
                     wait_for(lambda: "tracking on" in log_text() or sl.poll() is not None, 30) and sl.poll() is None,
                     log_text()):
            return 1
        nsrun(ip, "link", "set", tap, "arp", "off", "up")
        replay()
        m = wait_for(lambda: (lambda x: x if x.get("nombuf", 0) > 0 else None)(metrics()), 10)
        check("mbufs: /metrics port_drops_total{reason=rx_nombuf} > 0, still serving",
              bool(m) and sl.poll() is None, json.dumps(metrics()))
        sl.send_signal(signal.SIGTERM)
        try:
            rc = sl.wait(timeout=60)
        except subprocess.TimeoutExpired:
            sl.kill()
            rc = sl.wait()
        check("mbufs: SIGTERM, exit 0, summary written", rc == 0 and os.path.exists(summary), "exit %s\n%s" % (rc, log_text()))
        if os.path.exists(summary):
            with open(summary) as fh:
                s = json.load(fh)
            port = s["ports"][0]
            check("mbufs: summary rx_nombuf > 0, every frame received counted",
                  port["rx_nombuf"] > 0 and s["packets"] == port["ipackets"], json.dumps(port))
    finally:
        if sl is not None and sl.poll() is None:
            sl.send_signal(signal.SIGINT)
            try:
                sl.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sl.kill()
                sl.wait()
        subprocess.run([ip, "netns", "del", ns], capture_output=True)
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
