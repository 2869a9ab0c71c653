#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Functional test: inline mode (bump in the wire) and hot reload of the rules under traffic.

    python3 test_inline.py --binary build/src/stateline --ctl build/tools/stateline-ctl
                           --captures ../shared/captures

Two virtual ports, paired: traffic comes in on net_pcap0 and what the rules let through leaves
by net_pcap1, written to a pcap. The input is real captures played back to back (StopDDoS's
spoofed SYN flood, HTTP over IPv4 and IPv6, HTTP in VLAN and QinQ tags, handshakes,
teardowns, a SYN scan, odd flag combinations). Rules drop the flood's SYNs to its victim (a
header rule) and HTTP requests (a Hyperscan payload rule). What passed is checked exactly: the
frames out of net_pcap1 are, byte for byte and in order, the input minus the frames tshark
picks out independently with the rules' meaning; nothing goes back out of net_pcap0; the
counters add up (rx_packets = tx_packets + rules_dropped + tx_failed). The same run in monitor
mode forwards nothing and counts the same frames as would-drop.

Reload under traffic: net_pcap0 loops the SYN flood (infinite_rx=1), net_pcap1 writes to
/dev/null. The rules drop half the source space; a catch-all rule alerts on the rest, so every
TCP segment matches exactly one rule. Mid-run, `stateline-ctl reload` swaps in rules that drop
the other half. At the stop: the worker swapped once; every frame the port received reached
the worker and left by the pair or was dropped by a rule, to the packet; the rules' hits, kept
by name across the swap, add up to the TCP segments received (nothing lost or counted twice);
the old rule dropped before the swap and the new one after; a reload with an error changes nothing.

SYN-flood policy, live: the flood loops through the pair with the rule that drops SYNs to the
victim of an active syn_flood from sources that completed no handshake; the alert starts, the
flood passed before it and is dropped after it, and the frames still add up.

Prints one line per check and ends with "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Checks, ctl_json, pcap_frames, stop  # noqa: E402

check = Checks(width=70)


INPUTS = [
    "stopddos/pkt.TCP.synflood.spoofed.pcap",
    "chrissanders/http_ip4and6.pcapng",
    "zeek/traces/http-vlan-0.pcap",
    "zeek/traces/http-qinq-0.pcap",
    "chrissanders/tcp_handshake.pcapng",
    "chrissanders/tcp_teardown.pcapng",
    "chrissanders/synscan.pcapng",
    "tcpdump/print-flags.pcap",
]

RULES = """
rules:
  - name: drop-flood-syn
    match: {dst: 10.10.10.10, dst_port: 25565, flags: SYN}
    action: drop
  - name: drop-http-request
    match: {dst_port: 80, payload: "^(GET|POST|HEAD) "}
    action: drop
  - name: watch-syn
    match: {flags: SYN}
    action: alert
"""

# The same meaning, for tshark: a pure SYN (the rule's SYN: FIN, RST, ACK clear) to the flood's
# victim; an HTTP request verb at the start of a segment within the first 256 bytes of its
# direction (relative sequence numbers start at 1).
FLOOD_FILTER = ("ip.dst == 10.10.10.10 && tcp.dstport == 25565 && tcp.flags.syn == 1 && tcp.flags.ack == 0 && "
                "tcp.flags.fin == 0 && tcp.flags.reset == 0")
HTTP_FILTER = ("tcp.dstport == 80 && tcp.seq <= 252 && (tcp.payload[0:4] == \"GET \" || "
               "tcp.payload[0:5] == \"POST \" || tcp.payload[0:5] == \"HEAD \")")
DROPPED_FILTER = "(%s) || (%s)" % (FLOOD_FILTER, HTTP_FILTER)


def write_empty_pcap(path):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))


def find_key(obj, key):
    """First value of `key` anywhere in a JSON object."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find_key(v, key)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_key(v, key)
            if r is not None:
                return r
    return None


def start(args, tmp, name, vdevs, cfg_path):
    sock = os.path.join(tmp, name + ".sock")
    summary = os.path.join(tmp, name + ".json")
    cmd = [args.binary, "-l", "0-1", "--no-huge", "--no-pci", "--no-shconf", "-m", "512",
           "--file-prefix=inline-%s-%d" % (name, os.getpid())]
    for v in vdevs:
        cmd += ["--vdev", v]
    cmd += ["--", "--config", cfg_path, "--ctl-socket", sock, "--metrics-listen", "off", "--summary", summary, "-q"]
    errf = open(os.path.join(tmp, name + ".err"), "w+")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, text=True)
    return p, sock, summary, errf


def wait_socket(p, sock, secs=20):
    end = time.time() + secs
    while time.time() < end and p.poll() is None:
        if os.path.exists(sock):
            return True
        time.sleep(0.1)
    return False


def stop_with_stderr(p, errf):
    """SIGINT, wait; (exit status, what it wrote on stderr)."""
    stop(p)
    errf.seek(0)
    return p.returncode, errf.read()


def rx_of(args, sock):
    rc, j, _ = ctl_json(args.ctl, sock, "stats")
    if rc != 0 or j is None:
        return None
    return find_key(j, "rx_packets")


def run_finite(args, tmp, name, mode, inp, n_in):
    """Plays `inp` once through the pair; returns (summary, frames out of port 1, out of port 0)."""
    cfg = os.path.join(tmp, name + ".yaml")
    with open(cfg, "w") as f:
        f.write("mitigation:\n  mode: %s\n" % mode + RULES)
    empty = os.path.join(tmp, "empty.pcap")
    write_empty_pcap(empty)
    out0 = os.path.join(tmp, name + "-out0.pcap")
    out1 = os.path.join(tmp, name + "-out1.pcap")
    p, sock, summary, errf = start(args, tmp, name,
                                   ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (inp, out0),
                                    "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (empty, out1)], cfg)
    check("%s: control socket up" % name, wait_socket(p, sock), "")
    # The capture plays once: wait until the worker has taken every frame (the ports' counters
    # and the workers' are published every 10 ms, aggregated every stats interval).
    end = time.time() + 60
    rx = None
    while time.time() < end and p.poll() is None:
        rx = rx_of(args, sock)
        if rx == n_in:
            break
        time.sleep(0.3)
    check("%s: every input frame received (%s of %d)" % (name, rx, n_in), rx == n_in)
    time.sleep(0.5)
    rc, err = stop_with_stderr(p, errf)
    check("%s: exits 0 on SIGINT" % name, rc == 0, err[-800:])
    try:
        with open(summary) as f:
            s = json.load(f)
    except (OSError, ValueError) as e:
        check("%s: summary written" % name, False, e)
        return None, [], []
    return s, pcap_frames(out1) if os.path.exists(out1) else [], pcap_frames(out0) if os.path.exists(out0) else []


def inline_exact(args, tmp):
    inp = os.path.join(tmp, "in.pcap")
    srcs = [os.path.join(args.captures, c) for c in INPUTS]
    missing = [s for s in srcs if not os.path.exists(s)]
    if not check("input captures present", not missing, missing):
        return
    r = subprocess.run(["mergecap", "-F", "pcap", "-a", "-w", inp, *srcs], capture_output=True, text=True)
    if not check("mergecap concatenates the captures", r.returncode == 0, r.stderr):
        return
    frames_in = pcap_frames(inp)
    n_in = len(frames_in)
    r = subprocess.run(["tshark", "-r", inp, "-Y", DROPPED_FILTER, "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True)
    if not check("tshark selects the frames the rules drop", r.returncode == 0, r.stderr):
        return
    dropped = {int(x) for x in r.stdout.split()}
    http = subprocess.run(["tshark", "-r", inp, "-Y", "http.request", "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True).stdout.split()
    requests = {int(x) for x in subprocess.run(["tshark", "-r", inp, "-Y", HTTP_FILTER, "-T", "fields", "-e",
                                                "frame.number"], capture_output=True, text=True).stdout.split()}
    check("the input holds flood SYNs and HTTP requests (%d to drop of %d frames, %d request segments, "
          "%d HTTP requests by tshark's dissector)" % (len(dropped), n_in, len(requests), len(http)),
          len(dropped) > 30000 and len(http) >= 4 and {int(x) for x in http} <= requests <= dropped)
    expected = [fr for i, fr in enumerate(frames_in, 1) if i not in dropped]

    s, out1, out0 = run_finite(args, tmp, "inline", "inline", inp, n_in)
    if s is None:
        return
    rx = s.get("rx", {})
    check("inline: out of net_pcap1 = the input minus the dropped frames (%d frames), byte for byte, in order" %
          len(expected), out1 == expected,
          "got %d frames, expected %d; first difference at %s" % (
              len(out1), len(expected),
              next((i for i, (a, b) in enumerate(zip(out1, expected)) if a != b), min(len(out1), len(expected)))))
    check("inline: nothing leaves by net_pcap0 (its pair sent nothing)", len(out0) == 0, len(out0))
    check("inline: rx_packets = frames in (%s)" % rx.get("rx_packets"), rx.get("rx_packets") == n_in)
    check("inline: rules_dropped = tshark's count (%s = %d)" % (rx.get("rules_dropped"), len(dropped)),
          rx.get("rules_dropped") == len(dropped))
    check("inline: tx_packets = frames out (%s = %d)" % (rx.get("tx_packets"), len(out1)),
          rx.get("tx_packets") == len(out1))
    check("inline: rx_packets = tx_packets + rules_dropped + tx_failed",
          rx.get("rx_packets") == rx.get("tx_packets", 0) + rx.get("rules_dropped", 0) + rx.get("tx_failed", 0), rx)
    check("inline: nothing would-dropped (inline drops for real)", rx.get("rules_would_drop") == 0, rx)
    rules = {r["name"]: r for r in (s.get("mitigation") or {}).get("rules", [])}
    if check("inline: the summary lists the rules", set(rules) == {"drop-flood-syn", "drop-http-request", "watch-syn"},
             s.get("mitigation")):
        check("inline: per-rule drops add up to rules_dropped",
              rules["drop-flood-syn"]["drops"] + rules["drop-http-request"]["drops"] == rx.get("rules_dropped"), rules)
        check("inline: the HTTP rule dropped exactly the request segments (%d)" % len(requests),
              rules["drop-http-request"]["drops"] == len(requests), rules["drop-http-request"])
        check("inline: the alert rule counted its SYNs and dropped none",
              rules["watch-syn"]["hits"] > 0 and rules["watch-syn"]["drops"] == 0 and
              rules["watch-syn"]["hits"] == rx.get("rules_alerted"), (rules["watch-syn"], rx.get("rules_alerted")))

    s, out1, out0 = run_finite(args, tmp, "monitor", "monitor", inp, n_in)
    if s is None:
        return
    rx = s.get("rx", {})
    check("monitor: nothing forwarded (%d, %d frames out)" % (len(out1), len(out0)), len(out1) == 0 and len(out0) == 0)
    check("monitor: rules_would_drop = tshark's count (%s = %d)" % (rx.get("rules_would_drop"), len(dropped)),
          rx.get("rules_would_drop") == len(dropped))
    check("monitor: nothing dropped, nothing sent", rx.get("rules_dropped") == 0 and rx.get("tx_packets") == 0, rx)


RELOAD_A = """mitigation:
  mode: inline
rx:
  mbufs: 65535
rules:
  - name: drop-half
    match: {src: 0.0.0.0/1, flags: SYN}
    action: drop
  - name: everything-else
    action: alert
"""
RELOAD_B = RELOAD_A.replace("0.0.0.0/1", "128.0.0.0/1").replace("name: drop-half", "name: drop-other-half")


def reload_under_traffic(args, tmp):
    flood = os.path.join(args.captures, "stopddos/pkt.TCP.synflood.spoofed.pcap")
    cfg = os.path.join(tmp, "reload.yaml")
    with open(cfg, "w") as f:
        f.write(RELOAD_A)
    empty = os.path.join(tmp, "empty.pcap")
    write_empty_pcap(empty)
    p, sock, summary, errf = start(args, tmp, "reload",
                                   ["net_pcap0,rx_pcap=%s,infinite_rx=1" % flood,
                                    "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % empty], cfg)
    if not check("reload: control socket up", wait_socket(p, sock), ""):
        stop_with_stderr(p, errf)
        return
    time.sleep(2.0)
    rx_before = rx_of(args, sock) or 0
    with open(cfg, "w") as f:
        f.write(RELOAD_B)
    rc, j, err = ctl_json(args.ctl, sock, "reload")
    check("reload: stateline-ctl reload applies the new rules", rc == 0 and j is not None and
          any(i.get("param") == "rules" for i in j.get("applied", [])), (rc, j, err))
    time.sleep(2.0)
    rx_after = rx_of(args, sock) or 0
    check("reload: traffic kept flowing through the swap (%d frames after it)" % (rx_after - rx_before),
          rx_after - rx_before > 10000)
    # A broken file: refused, the running rules stay.
    with open(cfg, "w") as f:
        f.write(RELOAD_B.replace("action: drop", "action: explode"))
    rc, j, err = ctl_json(args.ctl, sock, "reload")
    check("reload: a config with an error is refused (exit 1)", rc == 1, (rc, j, err))
    time.sleep(1.0)
    rc, err = stop_with_stderr(p, errf)
    check("reload: exits 0 on SIGINT", rc == 0, err[-800:])
    try:
        with open(summary) as f:
            s = json.load(f)
    except (OSError, ValueError) as e:
        check("reload: summary written", False, e)
        return
    rx = s.get("rx", {})
    port0 = next((q for q in s.get("ports", []) if q.get("name") == "net_pcap0"), {})
    port1 = next((q for q in s.get("ports", []) if q.get("name") == "net_pcap1"), {})
    n = rx.get("rx_packets", 0)
    check("reload: the worker swapped rules once", rx.get("rules_swaps") == 1, rx.get("rules_swaps"))
    check("reload: every frame the port received reached the worker (%s = %s)" % (port0.get("ipackets"), n),
          port0.get("ipackets") == n and port0.get("imissed", 0) == 0 and port0.get("rx_nombuf", 0) == 0, port0)
    check("reload: rx_packets = tx_packets + rules_dropped + tx_failed (%s = %s + %s + %s)" % (
        n, rx.get("tx_packets"), rx.get("rules_dropped"), rx.get("tx_failed")),
          n == rx.get("tx_packets", 0) + rx.get("rules_dropped", 0) + rx.get("tx_failed", 0))
    if "opackets" in port1:
        check("reload: net_pcap1 sent what the worker forwarded (%s)" % port1.get("opackets"),
              port1.get("opackets") == rx.get("tx_packets"), port1)
    rules = {r["name"]: r for r in (s.get("mitigation") or {}).get("rules", [])}
    tcp = s.get("tcp_packets")
    if check("reload: the summary lists every rule that ran", set(rules) == {"drop-half", "drop-other-half",
                                                                              "everything-else"}, s.get("mitigation")):
        hits = sum(r["hits"] for r in rules.values())
        check("reload: rule hits across the swap = TCP segments (%d = %s): none lost or counted twice" % (hits, tcp),
              hits == tcp)
        check("reload: rule drops = rules_dropped (%s)" % rx.get("rules_dropped"),
              rules["drop-half"]["drops"] + rules["drop-other-half"]["drops"] == rx.get("rules_dropped"))
        check("reload: the old rule dropped before the swap and is reported removed (%d drops)" %
              rules["drop-half"]["drops"], rules["drop-half"]["drops"] > 0 and rules["drop-half"]["action"] == "removed",
              rules["drop-half"])
        check("reload: the new rule dropped after it (%d drops)" % rules["drop-other-half"]["drops"],
              rules["drop-other-half"]["drops"] > 0, rules["drop-other-half"])
        check("reload: the catch-all alerted on the rest", rules["everything-else"]["hits"] == rx.get("rules_alerted"),
              (rules["everything-else"], rx.get("rules_alerted")))


POLICY = """mitigation:
  mode: inline
rx:
  mbufs: 65535
rules:
  - name: syn-flood-unverified
    match: {flags: SYN, victim_of: syn_flood, src_verified: false}
    action: drop
"""


def syn_flood_policy_live(args, tmp):
    """The SYN-flood policy on a live pair: nothing dropped until the alert, then the flood's SYNs."""
    flood = os.path.join(args.captures, "stopddos/pkt.TCP.synflood.spoofed.pcap")
    cfg = os.path.join(tmp, "policy.yaml")
    with open(cfg, "w") as f:
        f.write(POLICY)
    empty = os.path.join(tmp, "empty.pcap")
    write_empty_pcap(empty)
    p, sock, summary, errf = start(args, tmp, "policy",
                                   ["net_pcap0,rx_pcap=%s,infinite_rx=1" % flood,
                                    "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % empty], cfg)
    if not check("policy: control socket up", wait_socket(p, sock), ""):
        stop_with_stderr(p, errf)
        return
    # Detection judges 1 s intervals; the alert starts after the first, the drops right after.
    end = time.time() + 15
    alerts = []
    while time.time() < end and p.poll() is None:
        rc, j, _ = ctl_json(args.ctl, sock, "alerts")
        alerts = (j or {}).get("active", [])
        if any(a.get("type") == "syn_flood" for a in alerts if isinstance(a, dict)):
            break
        time.sleep(0.3)
    check("policy: a syn_flood alert on the victim", any(
        isinstance(a, dict) and a.get("type") == "syn_flood" and "10.10.10.10" in str(a.get("target"))
        for a in alerts), alerts)
    time.sleep(2.0)
    rc, err = stop_with_stderr(p, errf)
    check("policy: exits 0 on SIGINT", rc == 0, err[-800:])
    try:
        with open(summary) as f:
            s = json.load(f)
    except (OSError, ValueError) as e:
        check("policy: summary written", False, e)
        return
    rx = s.get("rx", {})
    n, dropped = rx.get("rx_packets", 0), rx.get("rules_dropped", 0)
    # Before the alert everything passes; after it, the spoofed sources' SYNs (none of them ever
    # completes a handshake) are dropped.
    check("policy: the flood passed until the alert, then was dropped (%d of %d frames dropped)" % (dropped, n),
          0 < dropped < n and rx.get("tx_packets", 0) > 0, rx)
    check("policy: rx_packets = tx_packets + rules_dropped + tx_failed",
          n == rx.get("tx_packets", 0) + dropped + rx.get("tx_failed", 0), rx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--captures", required=True)
    args = ap.parse_args()
    for tool in ("mergecap", "tshark"):
        if not shutil.which(tool):
            print("%s is missing: install wireshark-common and tshark (tools/bootstrap.sh test does)" % tool)
            return 1
    tmp = tempfile.mkdtemp(prefix="stateline-inline-")
    try:
        inline_exact(args, tmp)
        reload_under_traffic(args, tmp)
        syn_flood_policy_live(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
