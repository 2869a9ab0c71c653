#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: live mode on net_af_packet with two queues, fed by tcpreplay over a veth pair.

    python3 test_af_packet.py [--binary build/src/stateline] [--captures ../shared/captures]
                              [--pps 20000] [--framecnt 4096]

Needs root, iproute2 (`ip netns`), tcpreplay and tshark/mergecap (Debian packages iproute2,
tcpreplay, tshark, wireshark-common). Without any of them it prints "SKIP: <why>" and exits 77
(meson's "skipped").

Set-up, all of it private to this test and removed at the end (even on failure or SIGTERM):

    ip netns add sl-afp-<pid>-rx ; ip netns add sl-afp-<pid>-tx     (IPv6 off in both, so the
                                                                     kernels stay silent)
    ip link add sltx<pid> netns sl-afp-<pid>-tx type veth peer name slrx<pid> netns sl-afp-<pid>-rx
    ip netns exec sl-afp-<pid>-rx stateline --lcores '(0-2)@(<cpus>)' --no-huge --no-pci ...
        --vdev net_af_packet0,iface=slrx<pid>,qpairs=2,framecnt=4096 -- --summary S.json -q
    ip netns exec sl-afp-<pid>-tx tcpreplay -i sltx<pid> --pps 20000 replay.pcapng

replay.pcapng is conf/demo.pcap followed by chrissanders/synscan.pcapng (mergecap -a): IPv4,
IPv6, 802.1Q-tagged, TCP with both directions of ~1000 connections, and a SYN scan of ~2000
ports. Nothing in them is an IP fragment (DPDK 22.11's af_packet asks the kernel to defragment,
which would change the frame count).

How the two queues are fed: DPDK 22.11's net_af_packet opens one AF_PACKET socket per queue and
joins them in one PACKET_FANOUT group of type PACKET_FANOUT_HASH | FLAG_DEFRAG | FLAG_ROLLOVER
(no kvarg changes that in 22.11). Linux's fanout_demux_hash() picks the socket with
reciprocal_scale(__skb_get_hash_symmetric(skb), members): the flow dissector's symmetric keys
(addresses and ports, each pair sorted), so both directions of a connection land on the same
socket, hence the same queue and worker. The exception is ROLLOVER: a socket whose ring is
nearly full passes packets to the other one, which splits connections; the modest rate and the
4096-frame rings are there to keep that from happening.

Checks (one line each, then "N passed, M failed"; exit 1 on any failure):
  * stateline stops cleanly on SIGINT and writes its summary;
  * tcpreplay sent every frame; the port and the workers counted every one of them (a shortfall
    is reported with the port's imissed and the veth's own RX counters: note that DPDK 22.11's
    af_packet does not report the kernel ring's drops in imissed);
  * tcp_packets and tcp_flows equal tshark's figures for the replayed file;
  * every TCP connection reached exactly one worker: the sum of the workers' flows.created equals
    tcp_flows (a connection split over two workers would be created on both);
  * both workers got packets and connections (the spreading works);
  * an independent probe (this script with --probe, two plain AF_PACKET sockets in their own
    hash fanout group on the same interface, receiving a copy of the same frames) saw no
    connection on both sockets, and split the frames exactly as Stateline's workers did.
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from harness import Checks  # noqa: E402
import tshark_oracle  # noqa: E402

SKIP = 77

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_ROLLOVER = 0x1000
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
ETH_P_ALL = 3
SO_RCVBUFFORCE = 33


# ---------------------------------------------------------------------------------------------
# The probe: run inside the receiving namespace as `test_af_packet.py --probe IFACE`.

def probe(iface):
    """Two AF_PACKET sockets in a hash fanout group (the same flags as DPDK 22.11's af_packet);
    records which socket saw each TCP connection; on SIGINT prints one JSON line and exits."""
    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    group = (os.getpid() ^ 0x5a5a) & 0xFFFF
    arg = group | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG | PACKET_FANOUT_FLAG_ROLLOVER) << 16)
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        s.bind((iface, ETH_P_ALL))
        s.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", arg))
        s.setblocking(False)
        socks.append(s)
    print("ready", flush=True)

    packets = [0, 0]
    conns = {}  # canonical (addr, port) pair -> set of socket indexes
    while not stop:
        try:
            ready, _, _ = select.select(socks, [], [], 0.1)
        except InterruptedError:
            continue
        for s in ready:
            i = socks.index(s)
            while True:
                try:
                    d = s.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                packets[i] += 1
                key = _tcp_key(d)
                if key is not None:
                    conns.setdefault(key, set()).add(i)
    print(json.dumps({
        "packets": packets,
        "connections": len(conns),
        "split": sum(1 for v in conns.values() if len(v) > 1),
        "connections_per_socket": [sum(1 for v in conns.values() if v == {i}) for i in range(2)],
    }), flush=True)
    return 0


def _tcp_key(d):
    """Canonical TCP connection key of an Ethernet frame (the kernel hands plain sockets the
    frame with its outer VLAN tag removed; any tag left is skipped), or None."""
    if len(d) < 14:
        return None
    et, off = struct.unpack("!H", d[12:14])[0], 14
    while et in (0x8100, 0x88A8, 0x9100) and len(d) >= off + 4:
        et, off = struct.unpack("!H", d[off + 2:off + 4])[0], off + 4
    if et == 0x0800 and len(d) >= off + 20:
        proto, src, dst, l4 = d[off + 9], d[off + 12:off + 16], d[off + 16:off + 20], off + (d[off] & 15) * 4
    elif et == 0x86DD and len(d) >= off + 40:
        proto, src, dst, l4 = d[off + 6], d[off + 8:off + 24], d[off + 24:off + 40], off + 40
    else:
        return None
    if proto != 6 or len(d) < l4 + 4:
        return None
    sp, dp = struct.unpack("!HH", d[l4:l4 + 4])
    return tuple(sorted([(src, sp), (dst, dp)]))


# ---------------------------------------------------------------------------------------------
# The test.

class Skip(Exception):
    pass


class Abort(Exception):
    """Nothing more can be checked (the failure was already reported)."""


class Sandbox:
    """Two network namespaces joined by a veth pair; removed on exit, whatever happened."""

    def __init__(self, ip):
        pid = os.getpid()
        self.ip = ip
        self.rx_ns, self.tx_ns = "sl-afp-%d-rx" % pid, "sl-afp-%d-tx" % pid
        self.rx_if, self.tx_if = "slrx%d" % pid, "sltx%d" % pid  # at most 11 characters
        self.made = []

    def _ip(self, *args, check=True):
        p = subprocess.run([self.ip, *args], capture_output=True, text=True, timeout=30)
        if check and p.returncode != 0:
            raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
        return p

    def __enter__(self):
        try:
            for ns in (self.rx_ns, self.tx_ns):
                p = self._ip("netns", "add", ns, check=False)
                if p.returncode != 0:
                    raise Skip("cannot create a network namespace (%s): %s" % (ns, p.stderr.strip()))
                self.made.append(ns)
                # No IPv6 (no router solicitations, no MLD) and no addresses: the kernels send
                # nothing on the veth, so every frame Stateline sees comes from tcpreplay.
                self._ip("netns", "exec", ns, "sh", "-c",
                         "for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 "
                         "/proc/sys/net/ipv6/conf/all/disable_ipv6; do [ -e $f ] && echo 1 > $f; done; true")
            self._ip("link", "add", self.tx_if, "netns", self.tx_ns, "type", "veth",
                     "peer", "name", self.rx_if, "netns", self.rx_ns)
            self._ip("-n", self.rx_ns, "link", "set", self.rx_if, "arp", "off", "up")
            self._ip("-n", self.tx_ns, "link", "set", self.tx_if, "arp", "off", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def rx_counters(self):
        p = self._ip("-n", self.rx_ns, "-s", "-j", "link", "show", self.rx_if, check=False)
        try:
            rx = json.loads(p.stdout)[0]["stats64"]["rx"]
            return "veth %s rx packets %d dropped %d missed %d" % (
                self.rx_if, rx["packets"], rx["dropped"], rx.get("missed", 0))
        except (ValueError, KeyError, IndexError):
            return "veth counters unavailable"

    def __exit__(self, *exc):
        for ns in reversed(self.made):  # deleting a namespace deletes the veth end inside it
            self._ip("netns", "del", ns, check=False)
        self.made = []
        return False


def prerequisites(args):
    if os.geteuid() != 0:
        raise Skip("needs root to create a network namespace and a veth pair (run the suite as root)")
    ip = shutil.which("ip")
    if not ip:
        raise Skip("`ip` not found: install the Debian package iproute2")
    p = subprocess.run([ip, "netns", "list"], capture_output=True, text=True)
    if p.returncode != 0:
        raise Skip("`ip netns` is unavailable: %s" % p.stderr.strip())
    tcpreplay = shutil.which("tcpreplay")
    if not tcpreplay:
        raise Skip("tcpreplay not found: install the Debian package tcpreplay (apt-get install tcpreplay)")
    mergecap = shutil.which("mergecap")
    if not mergecap or not shutil.which("tshark"):
        raise Skip("tshark/mergecap not found: install the Debian packages tshark and wireshark-common")
    if not os.access(args.binary, os.X_OK):
        raise Skip("%s not built" % args.binary)
    return ip, tcpreplay, mergecap


def wait_for(path_or_proc, pattern, proc, timeout):
    """Waits until `pattern` shows in the file (or a line of the pipe); False if proc ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if isinstance(path_or_proc, str):
            with open(path_or_proc, errors="replace") as fh:
                if pattern in fh.read():
                    return True
        else:
            r, _, _ = select.select([path_or_proc], [], [], 0.2)
            if r and pattern in path_or_proc.readline():
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def stop(proc, timeout=30):
    """SIGINT, then the exit status (None if it had to be killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
    return proc.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(SOURCE_ROOT, "build", "src", "stateline"))
    ap.add_argument("--captures", default=os.path.join(SOURCE_ROOT, "..", "shared", "captures"))
    ap.add_argument("--pps", type=int, default=20000, help="tcpreplay rate (default 20000 packets/s)")
    ap.add_argument("--framecnt", type=int, default=4096, help="frames in each queue's AF_PACKET ring (default 4096)")
    ap.add_argument("--probe", metavar="IFACE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(args.probe)

    # SIGTERM (meson's timeout) unwinds through the finally blocks: namespaces get removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        ip, tcpreplay, mergecap = prerequisites(args)
    except Skip as e:
        print("SKIP: af_packet multi-queue test: %s" % e)
        return SKIP

    captures = [os.path.join(SOURCE_ROOT, "conf", "demo.pcap")]
    second = os.path.join(args.captures, "chrissanders", "synscan.pcapng")
    if os.path.exists(second):
        captures.append(second)
    else:
        print("note: %s absent; replaying the demo capture only" % second)

    check = Checks()

    procs = []
    try:
        with tempfile.TemporaryDirectory() as tmp, Sandbox(ip) as box:
            replay = os.path.join(tmp, "replay.pcapng")
            subprocess.run([mergecap, "-a", "-w", replay, *captures], check=True, capture_output=True, timeout=60)
            oracle = tshark_oracle.analyse(replay)
            print("replaying %s (%d frames, %d TCP, %d connections per tshark) at %d packets/s into %s"
                  % (" + ".join(os.path.basename(c) for c in captures), oracle["packets"], oracle["tcp_packets"],
                     oracle["tcp_flows"], args.pps, box.rx_if), flush=True)

            summary = os.path.join(tmp, "summary.json")
            log = os.path.join(tmp, "stateline.log")
            cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
            vdev = "net_af_packet0,iface=%s,qpairs=2,framecnt=%d" % (box.rx_if, args.framecnt)
            cmd = [ip, "netns", "exec", box.rx_ns, args.binary, "--lcores", "(0-2)@(%s)" % cpus,
                   "--no-huge", "--no-pci", "--no-shconf", "-m", "1024",
                   "--file-prefix=stateline-afp-%d" % os.getpid(), "--vdev", vdev,
                   "--", "--ctl-socket", "off", "--metrics-listen", "off", "--summary", summary, "-q"]
            with open(log, "w") as logfh:
                sl = subprocess.Popen(cmd, stdout=logfh, stderr=subprocess.STDOUT)
            procs.append(sl)
            if not wait_for(log, "tracking on", sl, 30):
                stop(sl)
                with open(log, errors="replace") as fh:
                    check("stateline started on net_af_packet, 2 queues, 2 workers", False, fh.read()[-2000:])
                raise Abort

            pr = subprocess.Popen([ip, "netns", "exec", box.rx_ns, sys.executable, os.path.abspath(__file__),
                                   "--probe", box.rx_if], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append(pr)
            probe_ready = wait_for(pr.stdout, "ready", pr, 15)

            t = subprocess.run([ip, "netns", "exec", box.tx_ns, tcpreplay, "-i", box.tx_if, "--pps", str(args.pps),
                                replay], capture_output=True, text=True, timeout=120)
            m = re.search(r"Successful packets:\s+(\d+)", t.stdout)
            sent = int(m.group(1)) if m else -1
            check("tcpreplay sent every frame", t.returncode == 0 and sent == oracle["packets"],
                  "%d of %d%s" % (sent, oracle["packets"], "" if t.returncode == 0 else ": " + t.stderr.strip()[-300:]))

            time.sleep(1.5)  # let the workers drain their rings
            veth = box.rx_counters()
            rc = stop(sl)
            probe_out = ""
            if probe_ready:
                stop(pr, 10)
                probe_out = pr.stdout.read()
            else:
                pr.kill()
                pr.wait()
            with open(log, errors="replace") as fh:
                log_text = fh.read()
            check("stateline stopped by SIGINT: exit 0, summary written",
                  rc == 0 and os.path.exists(summary), "exit %s\n%s" % (rc, log_text[-1500:]) if rc != 0 else "")
            if rc != 0 or not os.path.exists(summary):
                raise Abort
            with open(summary) as fh:
                s = json.load(fh)

            port = s["ports"][0] if s.get("ports") else {}
            if not isinstance(port, dict):  # a summary from before ports had counters: names only
                port = {"name": str(port)}
            for k in ("ipackets", "imissed", "ierrors", "rx_nombuf"):
                port.setdefault(k, -1)
            workers = s["workers"]
            lost = ("; port imissed %d, ierrors %d, rx_nombuf %d; %s (more on the veth than in Stateline: "
                    "dropped in the AF_PACKET rings, which DPDK 22.11 does not count in imissed; "
                    "lower --pps or raise --framecnt)" % (port["imissed"], port["ierrors"], port["rx_nombuf"], veth))
            check("mode live, one port, 2 workers", s["mode"] == "live" and len(s["ports"]) == 1 and len(workers) == 2,
                  "%s, %d port(s), %d worker(s)" % (s["mode"], len(s["ports"]), len(workers)))
            check("packets == frames replayed (none lost)", s["packets"] == sent == oracle["packets"],
                  "%d, replayed %d%s" % (s["packets"], sent, "" if s["packets"] == sent else lost))
            check("port ipackets == packets", port["ipackets"] == s["packets"],
                  "%s ipackets %d, imissed %d" % (port["name"], port["ipackets"], port["imissed"])
                  if port["ipackets"] >= 0 else "the summary's ports carry no counters")
            check("workers' rx_packets add up to packets",
                  sum(w["rx"]["rx_packets"] for w in workers) == s["packets"],
                  "+".join(str(w["rx"]["rx_packets"]) for w in workers))
            check("every frame has an outcome", sum(s["outcomes"].values()) == s["packets"],
                  "%d outcomes" % sum(s["outcomes"].values()))
            check("tcp_packets == tshark", s["tcp_packets"] == oracle["tcp_packets"],
                  "%d, tshark %d" % (s["tcp_packets"], oracle["tcp_packets"]))
            check("tcp_flows == tshark's distinct TCP connections", s["tcp_flows"] == oracle["tcp_flows"],
                  "%d, tshark %d" % (s["tcp_flows"], oracle["tcp_flows"]))
            created = [w["flows"]["created"] for w in workers]
            check("each connection on one worker: sum(flows.created) == tshark",
                  sum(created) == oracle["tcp_flows"],
                  "%s = %d, tshark %d%s" % ("+".join(map(str, created)), sum(created), oracle["tcp_flows"],
                                            "" if sum(created) <= oracle["tcp_flows"] else
                                            ": %d connection(s) created on both workers" % (sum(created) - oracle["tcp_flows"])))
            check("both workers got packets and connections",
                  all(w["rx"]["rx_packets"] > 0 and w["flows"]["created"] > 0 for w in workers),
                  "rx %s, connections %s" % ([w["rx"]["rx_packets"] for w in workers], created))

            # The kernel's own view, from the probe's separate fanout group.
            try:
                pj = json.loads(probe_out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                pj = None
            if pj is None:
                print("note: the fanout probe gave no result (%s); its checks are left out"
                      % (pr.stderr.read().strip()[-300:] if not probe_ready else "no output"))
            elif sum(pj["packets"]) != sent:
                print("note: the fanout probe saw %d of %d frames (its socket buffers overflowed?); "
                      "its checks are left out" % (sum(pj["packets"]), sent))
            else:
                check("kernel hash fanout: no connection on both sockets (probe)",
                      pj["split"] == 0 and pj["connections"] == oracle["tcp_flows"],
                      "%d connections, %d split, per socket %s, frames %s"
                      % (pj["connections"], pj["split"], pj["connections_per_socket"], pj["packets"]))
                per_worker = [w["rx"]["rx_packets"] for w in workers]
                check("workers split the frames as the kernel's hash did (probe)",
                      pj["packets"] == per_worker and pj["connections_per_socket"] == created,
                      "probe frames %s connections %s; workers frames %s connections %s%s"
                      % (pj["packets"], pj["connections_per_socket"], per_worker, created,
                         "" if pj["packets"] == per_worker else
                         " (FLAG_ROLLOVER moved frames to the other queue: rings too full for the rate)"))
    except Abort:
        pass
    except Skip as e:
        print("SKIP: af_packet multi-queue test: %s" % e)
        return SKIP
    finally:
        for p in procs:  # only the processes this test started, by their own handles
            if p.poll() is None:
                stop(p, 10)  # SIGINT first: DPDK then cleans up after itself
        # EAL's runtime directory for this test's own file prefix (left behind even on a clean exit).
        shutil.rmtree("/var/run/dpdk/stateline-afp-%d" % os.getpid(), ignore_errors=True)

    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
