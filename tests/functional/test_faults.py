#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: faults a live Stateline rides out (issue 8): a link going down and up, an
exhausted mbuf pool, and an RX ring overrun (imissed).

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

RX ring overrun: of DPDK 22.11's virtual PMDs only net_pcap on an interface (iface=, rx_iface=)
and net_af_xdp fill imissed (net_pcap: libpcap's pcap_stats() ps_drop, on Linux the kernel's
PACKET_STATISTICS tp_drops for the capture socket's ring; net_af_xdp: XDP_STATISTICS rx_dropped).
net_af_packet, net_tap, net_ring and net_memif leave it 0 whatever the kernel drops. So the port
is a net_pcap on one end of a veth pair in the namespace; Stateline is stopped whole (SIGSTOP) while
tcpreplay sends ten times conf/demo.pcap at top speed into the other end, far more than libpcap's
2 MB ring holds; then SIGCONT. Checks: a short burst before is all received with imissed 0; after
the overrun /metrics has stateline_port_drops_total{reason="imissed"} > 0 and every frame sent is
accounted for (ipackets + imissed + the veth's own drops = frames sent); Stateline still runs and
serves /metrics; a burst after it is received by the port and counted by the workers in full,
imissed unchanged; the last --stats line, the summary's ports[] and its LOST line carry the same
imissed; SIGTERM: exit 0. A NIC reports imissed through the same rte_eth_stats_get().

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from harness import Checks, has, parse_exposition, pcap_frames, read_text, stop, total, wait_for  # noqa: E402

SKIP = 77
SHORT = 600  # frames of a burst that libpcap's 2 MB ring holds whatever the worker does

check = Checks(width=72)


def scrape(nsrun):
    """/metrics of the Stateline in the namespace (its loopback): the samples, [] if unreachable."""
    p = nsrun(sys.executable, "-c", "import urllib.request;print(urllib.request.urlopen("
              "'http://127.0.0.1:9469/metrics', timeout=5).read().decode())")
    return parse_exposition(p.stdout)[1] if p.returncode == 0 else []


def start(cmd, log, what):
    """Starts Stateline with its output in `log`; checks it reaches "tracking on". The process, or
    None (after a failed check) if it did not."""
    with open(log, "w") as fh:
        sl = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if check(what, wait_for(lambda: "tracking on" in read_text(log) or sl.poll() is not None, 30, 0.1)
             and sl.poll() is None, read_text(log)):
        return sl
    stop(sl)
    return None


def stop_with_summary(sl, summary, log, what):
    """SIGTERM; checks exit 0 with the summary written. The summary, or None."""
    rc = stop(sl, signal.SIGTERM)
    if not check(what, rc == 0 and os.path.exists(summary), "exit %s\n%s" % (rc, read_text(log))):
        return None
    with open(summary) as fh:
        return json.load(fh)


def proc_state(pid):
    """The one-letter state of a process (R, S, T ...), or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def imissed_case(binary, ip, tcpreplay, nsrun, ns, pid, tmp, demo, frames, cpus, prefix):
    """RX ring overrun: net_pcap on a veth whose capture ring overflows while Stateline is stopped.

    Checks: imissed stays 0 for a short burst; after the overrun /metrics says imissed > 0 for the
    port and every frame sent is either received or missed (ipackets + imissed + the veth's own
    drops = frames sent); Stateline is still running and serving; a burst after the overrun is
    received and counted in full by the workers; the --stats lines, the summary's ports[] and its
    LOST line carry the same imissed; SIGTERM stops it cleanly."""
    tx, rx = "slva%d" % pid, "slvb%d" % pid
    p = nsrun(ip, "link", "add", tx, "type", "veth", "peer", "name", rx)
    if not check("imissed: a veth pair in the namespace", p.returncode == 0, p.stderr):
        return
    for dev in (tx, rx):
        nsrun(ip, "link", "set", dev, "arp", "off", "up")
    cfg = os.path.join(tmp, "imissed.yaml")
    with open(cfg, "w") as fh:
        fh.write("stats:\n  interval_ms: 250\n")
    summary, stats, log = (os.path.join(tmp, n) for n in ("imissed.json", "imissed.stats", "imissed.log"))
    # Not -q: the summary's text (its LOST line) is part of what is checked.
    cmd = [ip, "netns", "exec", ns, binary, "--lcores", "(0-1)@(%s)" % cpus, "--no-huge", "--no-pci", "--no-shconf",
           "-m", "512", "--file-prefix=%s-pcap" % prefix, "--vdev", "net_pcap0,iface=" + rx, "--", "--config", cfg,
           "--ctl-socket", "off", "--metrics-listen", "127.0.0.1:9469", "--summary", summary, "--stats", stats]

    def log_text():
        return read_text(log)

    def metrics():
        smp = scrape(nsrun)
        if not (has(smp, "stateline_port_packets_total")
                and any(n == "stateline_port_drops_total" and lb.get("reason") == "imissed" for n, lb, _ in smp)):
            return {}
        return {"ipackets": int(total(smp, "stateline_port_packets_total")),
                "imissed": int(total(smp, "stateline_port_drops_total", reason="imissed")),
                "workers": int(total(smp, "stateline_rx_packets_total"))}

    def veth_drops():
        # Frames the veth itself could not hand over (a full backlog): they never reach the socket.
        p = nsrun("cat", "/sys/class/net/%s/statistics/tx_dropped" % tx, "/sys/class/net/%s/statistics/rx_dropped" % rx)
        return sum(int(x) for x in p.stdout.split()) if p.returncode == 0 else 0

    def replay(*opts):
        t = nsrun(tcpreplay, "-i", tx, *opts, demo)
        m = re.search(r"Successful packets:\s+(\d+)", t.stdout)
        return (int(m.group(1)) if m and t.returncode == 0 else 0), t.stdout + t.stderr

    sl = None
    try:
        sl = start(cmd, log, "imissed: stateline started on net_pcap,iface=<veth>")
        if sl is None:
            return
        # A short burst first, which the ring holds even if the worker did not read at all:
        # everything is received, nothing missed. (Bursts at top speed fill libpcap's TPACKET_V3
        # blocks; at a slow rate the kernel retires each block after ~1 ms, partly empty, and a
        # stalled reader would lose frames of a much smaller replay.)
        sent, out = replay("--topspeed", "--limit", str(SHORT))
        m = wait_for(lambda: (lambda x: x if x.get("ipackets") == sent == SHORT else None)(metrics()), 10)
        check("imissed: a short burst all received, imissed 0", bool(m) and m["imissed"] == 0,
              "%s\n%s" % (json.dumps(metrics()), out))

        # The overrun: the whole process stopped, ten replays at top speed (6.7 MB) into a 2 MB ring.
        os.kill(sl.pid, signal.SIGSTOP)
        try:
            stopped = wait_for(lambda: proc_state(sl.pid) == "T", 10, 0.02)
            check("imissed: stateline stopped (SIGSTOP)", stopped, proc_state(sl.pid))
            burst, out = replay("--topspeed", "--loop", "10")
            check("imissed: tcpreplay sent 10 x demo.pcap at top speed", burst == 10 * frames, out)
        finally:
            os.kill(sl.pid, signal.SIGCONT)
        sent_total = sent + burst

        def settled():
            x = metrics()
            return x if x and x["imissed"] > 0 and x["ipackets"] + x["imissed"] + veth_drops() == sent_total else None
        m = wait_for(settled, 15)
        check("imissed: /metrics imissed > 0, every frame received or missed", bool(m),
              "%s, veth drops %d, frames sent %d" % (json.dumps(metrics()), veth_drops(), sent_total))
        check("imissed: still running and serving /metrics after the overrun",
              sl.poll() is None and bool(metrics()), log_text()[-800:])
        before = m or metrics()

        # Traffic after the overrun: received and analysed in full (the ring holds all of it).
        sent2, out = replay("--topspeed", "--limit", str(SHORT))
        want = before.get("ipackets", 0) + sent2
        m = wait_for(lambda: (lambda x: x if x.get("ipackets") == want and x.get("workers") == want else None)(metrics()),
                     10)
        check("imissed: a burst after the overrun counted by the port and the workers",
              sent2 == SHORT and bool(m) and m["imissed"] == before.get("imissed"),
              "%s, want ipackets = workers = %d\n%s" % (json.dumps(metrics()), want, out))

        # --stats: the interval lines carry the port's imissed (the last line written so far).
        def last_stats():
            try:
                with open(stats) as fh:
                    lines = [ln for ln in fh.read().splitlines() if ln.strip()]
                return json.loads(lines[-1]) if lines else None
            except (OSError, ValueError):
                return None
        line = wait_for(lambda: (lambda x: x if x and x["ports"][0]["imissed"] == metrics().get("imissed") > 0 else None)(
            last_stats()), 5)
        check("imissed: --stats ports[0].imissed as in /metrics", bool(line), json.dumps(last_stats()))

        final = metrics()
        s = stop_with_summary(sl, summary, log, "imissed: SIGTERM, exit 0, summary written")
        if s:
            port = s["ports"][0]
            check("imissed: summary ports[0] imissed and ipackets as in /metrics, all analysed",
                  port["imissed"] == final.get("imissed") and port["ipackets"] == final.get("ipackets") == s["packets"],
                  "%s, packets %d, /metrics %s" % (json.dumps(port), s["packets"], json.dumps(final)))
            lost = "port net_pcap0: %s frames missed (RX ring full)" % format(port["imissed"], ",")
            check("imissed: the summary's LOST line with the same figure",
                  any(ln.split()[:1] == ["LOST"] and lost in ln for ln in log_text().splitlines()),
                  lost + "\n" + log_text()[-1500:])
    finally:
        if sl is not None and sl.poll() is None:
            os.kill(sl.pid, signal.SIGCONT)
            stop(sl, timeout=30)
        shutil.rmtree("/var/run/dpdk/%s-pcap" % prefix, ignore_errors=True)


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
    frames = len(pcap_frames(demo))
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
        def log_text():
            return read_text(log)
        sl = start(cmd, log, "stateline started on net_tap")
        if sl is None:
            return check.summary()
        nsrun(ip, "link", "set", tap, "arp", "off", "up")

        def metrics():
            smp = scrape(nsrun)
            out = {n: total(smp, n) for n in ("stateline_port_link_up", "stateline_port_link_changes_total",
                                              "stateline_port_packets_total") if any(s[0] == n for s in smp)}
            if smp:
                out["nombuf"] = total(smp, "stateline_port_drops_total", reason="rx_nombuf")
            return out

        def replay(rate=("--pps", "5000")):
            t = nsrun(tcpreplay, "-i", tap, *rate, demo)
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

        s = stop_with_summary(sl, summary, log, "SIGTERM: exit 0, summary written")
        if s:
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
        if os.path.exists(summary):
            os.unlink(summary)
        sl = start(cmd, log, "mbufs: stateline started with rx.mbufs 1023, 1022 descriptors")
        if sl is None:
            return check.summary()
        nsrun(ip, "link", "set", tap, "arp", "off", "up")
        # At top speed: frames queue in the tap, so a burst needs more fresh mbufs than the one
        # spare. (At 5000 pps a quick worker takes them one by one and recycles that one.)
        replay(("--topspeed",))
        m = wait_for(lambda: (lambda x: x if x.get("nombuf", 0) > 0 else None)(metrics()), 10)
        check("mbufs: /metrics port_drops_total{reason=rx_nombuf} > 0, still serving",
              bool(m) and sl.poll() is None, json.dumps(metrics()))
        s = stop_with_summary(sl, summary, log, "mbufs: SIGTERM, exit 0, summary written")
        if s:
            port = s["ports"][0]
            check("mbufs: summary rx_nombuf > 0, every frame received counted",
                  port["rx_nombuf"] > 0 and s["packets"] == port["ipackets"], json.dumps(port))

        # RX ring overrun (imissed): net_pcap on a veth, flooded while Stateline is stopped (see
        # the docstring for why net_pcap).
        imissed_case(args.binary, ip, tcpreplay, nsrun, ns, pid, tmp, demo, frames, cpus, prefix)
    finally:
        if sl is not None:
            stop(sl, timeout=30)
        subprocess.run([ip, "netns", "del", ns], capture_output=True)
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
