#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""tshark as an independent oracle for Stateline's capture counters.

Runs tshark 4.0 on one capture with IP defragmentation and TCP reassembly off

    -o ip.defragment:FALSE -o ipv6.defragment:FALSE -o tcp.desegment_tcp_streams:FALSE

(names checked with `tshark -G defaultprefs`), with name resolution off and an empty private
configuration directory (WIRESHARK_CONFIG_DIR), so that a user's profile (decode-as rules,
preferences) cannot change the answer. From tshark's dissection it computes the figures the
appliance reports in its summary JSON:

  packets      frames in the capture
  bytes        sum of frame.cap_len (informative: see "snaplen" below)
  tcp_packets  frames whose OUTERMOST transport is TCP
  tcp_flows    distinct TCP connections: canonical bidirectional 5-tuple + outer two VLAN IDs

and, to let a test tell a parser bug from a legitimate disagreement on damaged frames:

  tcp_partial         tcp_packets frames whose TCP header tshark could only dissect in part
                      (see "partial" below); a parser that names such a frame malformed
                      (tcp_truncated, tcp_bad_data_offset, ipv4_bad_total_length...) is not wrong
  tcp_flows_complete  distinct flows among the tcp_packets frames that are not partial: the
                      flow count when every partial frame is dropped as malformed
  partial_frames      [[frame number, reason], ...]

How a frame is classified (per frame, from `frame.protocols`, e.g. "eth:ethertype:ip:tcp"):

* The link-layer prefix must be made of eth, sll, ethertype, vlan and ieee8021ad only, and be
  followed directly by "ip" or "ipv6" (the outermost IP). After an "ipv6", tokens "ipv6.*"
  (ipv6.hopopts, ipv6.routing, ipv6.fraghdr, ipv6.dstopts) are its extension headers and are
  skipped. The next token is the outermost transport: the frame is a TCP frame iff it is "tcp".
* The flow key is the first ip.src/ip.dst (or ipv6.src/ipv6.dst) and the first
  tcp.srcport/tcp.dstport, the two (address, port) endpoints sorted (addresses as 16 bytes,
  IPv4 mapped into ::ffff:0:0/96, then port: Stateline's FlowKey order), plus the IDs of the
  outer two VLAN tags. tshark puts 802.1Q (0x8100, and 0x9100) tags in vlan.id and 802.1ad
  (0x88a8) tags in ieee8021ad.id; the tags are taken in frame order by walking the "vlan" and
  "ieee8021ad" tokens of frame.protocols. VLAN 0 (a priority tag) is a tag: it keys a
  different flow than no tag.
* Partial (tcp_partial): the frame is a TCP frame and tshark has no tcp.hdr_len or no ports
  (the header is cut before them), or tcp.hdr_len < 20 (bogus data offset), or the tcp item is
  shorter than tcp.hdr_len (`len(tcp) < tcp.hdr_len`: options cut by the snaplen, by the IP
  length or by fragmentation), or the IPv4 total length field is 0 (tshark then presumes TCP
  segmentation offload and uses the captured length; a strict parser calls it malformed).

What tshark does with the shared captures (../shared/captures) and probe frames, and how the
oracle handles it:

1. ICMP errors quote the offending IP header and 8 bytes of TCP: tshark dissects them as
   "eth:ethertype:ip:icmp:ip:tcp" (ICMPv6: "ipv6:icmpv6:ipv6:tcp"), with tcp.srcport set.
   Outermost transport is icmp: NOT a TCP frame. Any field taken from such a frame would be the
   quoted one, so the oracle only reads addresses/ports of frames it counts.
2. Tunnels are decapsulated: IP-in-IP "ip:ip:tcp", 6in4 "ip:ipv6:tcp", GRE "ip:gre:ip:tcp" or
   "ip:gre:eth:ethertype:ip:tcp", VXLAN "ip:udp:vxlan:eth:ethertype:ip:tcp". The outer
   transport is not TCP: NOT counted. Likewise an EtherType-IPv4 frame whose version nibble is
   6: tshark's IPv4 dissector hands it to IPv6 ("ip:ipv6:..."): NOT counted (for Stateline it
   is ipv4_bad_version).
3. IPsec AH: tshark dissects through it ("ip:ah:tcp", "ipv6:ah:tcp"). The oracle does NOT
   treat "ah" as transparent (Stateline counts IPv4 AH as ipv4_other and its IPv6 walk covers
   the ipv6.* extension headers), so such frames are NOT counted. No shared capture has AH.
4. Link layers tshark decodes but Stateline does not (MPLS "eth:ethertype:mpls:ip:tcp", PPPoE
   "eth:ethertype:pppoes:ppp:ip:tcp", 802.3+LLC/SNAP "eth:llc:ip:tcp"): the IP does not follow
   the allowed link-layer prefix, NOT counted. No shared capture has them.
5. IP fragments (defragmentation off): an IPv4 first fragment (offset 0, MF set) is dissected
   as TCP ("ip:tcp"), later fragments as "ip:data". IPv6 likewise: first fragment
   "ipv6:ipv6.fraghdr:tcp", later ones "ipv6:ipv6.fraghdr:data". zeek/traces/ipv4/
   fragmented-syn.pcap: frame 1 is a first fragment carrying only 24 bytes of a 40-byte TCP
   header (the options continue in frame 2): tshark counts it as TCP ("BoundError",
   "Unreassembled Packet") -> partial. fragmented-1.pcap is UDP (NTP): 2 udp, 1 "ip:data".
6. Truncated TCP headers are still "tcp" in frame.protocols:
   - zeek/traces/tcp/truncated-header.pcap (snaplen 68): frame 1 is a SYN with a 40-byte
     header of which 34 bytes were captured ("option length should be 10", "Packet size
     limited during capture") -> partial; frame 2 lacks its Ethernet padding only; frames 3-24
     have whole 20-byte headers and truncated payloads (not partial).
   - tcpdump/heapoverflow-tcp_print.pcap: 64 bytes captured of a 262144-byte frame, IP total
     length 12336, TCP data offset 15 (60 bytes) of which 30 captured -> partial.
   - A frame cut inside the first 20 TCP bytes: "tcp" but no tcp.hdr_len -> partial. A data
     offset below 5: "tcp", tcp.hdr_len < 20 ("Bogus TCP header length") -> partial. An IPv4
     total length leaving fewer TCP bytes than the header needs: "tcp", _ws.malformed -> partial.
7. Truncated or bogus IP: no transport token, so not TCP. zeek/traces/trunc/ip4-trunc.pcap
   ("eth:ethertype:ip", 20 bytes captured), ip6-trunc.pcap ("eth:ethertype:ipv6", IPv6 header
   cut), ip6-ext-trunc.pcap ("ipv6:ipv6.hopopts", Malformed: hop-by-hop header cut),
   tcpdump/ip6_frag_asan.pcap ("ipv6:ipv6.fraghdr", fragment header cut by the 60-byte snaplen,
   wire length 262144), tcpdump/ipv6_frag6_negative_len.pcap ("ipv6:ipv6.fraghdr", payload
   length 0: tshark takes the rest of the frame as an Ethernet trailer, Malformed). An IPv4
   header length < 20 or a total length < the header: "eth:ethertype:ip", not TCP. An IPv6
   payload length of 0 ahead of TCP (TSO/jumbo): "ipv6:tcp" with no tcp.hdr_len -> partial.
8. zeek/traces/trunc/trunc-hdr.pcap: file snaplen 1 but the record's caplen is 8; tshark keeps
   8 bytes ("eth" only, 6 of the 14 Ethernet bytes) and sums bytes=8, while libpcap clamps a
   record's caplen to the file snaplen (1 byte; Stateline reports bytes=1). So `bytes` may
   legitimately differ from a libpcap-based reader: the tests print it but do not compare it.
   tcpdump/heapoverflow-tcp_print.pcap's header link-type field is 0x30000001: Ethernet with
   the FCS-length bits (28-31) set; tshark and libpcap both mask them (LT_LINKTYPE) and read
   Ethernet, and neither strips an FCS. A reader comparing the whole field with 1 rejects it.
9. tcpdump/tcp-handshake-nano.pcap: nanosecond pcap (magic a1b23c4d) with link type 113
   (Linux cooked capture v1): frame.protocols "sll:ethertype:ip:tcp", 3 TCP frames, 1 flow.
   tcpdump/802.1ad_QinQ.pcap: "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:arp",
   ieee8021ad.id 200 outside vlan.id 2001 (ARP, no TCP).
10. VLAN stacks: zeek http-vlan-0 (one tag, VID 0), http-qinq-0 (two tags, 0/0), vlan-qinqinq
   (three 802.1Q tags: vlan.id "30,20,10", outer two keyed: 30, 20). A 0x9100 tag is dissected
   as "vlan" too.
11. Bad checksums are not checked (tcp.check_checksum and ip.check_checksum default FALSE):
   zeek/traces/chksums/ip4-tcp-bad-chksum.pcap counts as TCP.
12. tshark's own tcp.stream index is not the flow count: it also numbers streams of quoted
   (ICMP) and tunnelled TCP and splits a 5-tuple reused after a close; it ignores VLANs.
   Hence the oracle keys flows itself.
13. frame.protocols never carries "_ws.malformed"/"_ws.short"; those are separate fields.

Usage as a module:  tshark_oracle.analyse(path) -> dict (keys listed above)
Usage as a CLI:     python3 tshark_oracle.py [--details] CAPTURE [CAPTURE...]
    prints {"packets": n, "tcp_packets": n, "tcp_flows": n} (one JSON line per capture, with
    "file" when several are given; --details adds every key above).
"""

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile

TSHARK_PREFS = [
    "-o", "ip.defragment:FALSE",
    "-o", "ipv6.defragment:FALSE",
    "-o", "tcp.desegment_tcp_streams:FALSE",
]

# Tokens of frame.protocols allowed before the outermost IP.
LINK_TOKENS = {"eth", "sll", "ethertype", "vlan", "ieee8021ad"}
VLAN_TOKENS = {"vlan": "vlan.id", "ieee8021ad": "ieee8021ad.id"}

FIELDS = [
    "frame.number",
    "frame.cap_len",
    "frame.protocols",
    "vlan.id",
    "ieee8021ad.id",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.hdr_len",
]

# Second-pass display filters: frames whose TCP header tshark had to cut short, and IPv4
# frames whose total length is 0 (tshark presumes TSO).
PARTIAL_FILTERS = [
    ("tcp header cut short (snaplen, IP length or fragment)",
     "tcp.hdr_len && len(tcp) < tcp.hdr_len"),
    ("IPv4 total length 0 (tshark presumes TSO)", "tcp && ip && ip[2:2] == 00:00"),
]


class OracleError(RuntimeError):
    pass


def tshark_path():
    p = shutil.which("tshark")
    if not p:
        raise OracleError("tshark not found in PATH")
    return p


def _run_tshark(path, extra, allow_errors=False):
    with tempfile.TemporaryDirectory(prefix="tshark-oracle-") as confdir:
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=confdir)
        cmd = [tshark_path(), "-n", "-r", path] + TSHARK_PREFS + extra
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           timeout=600)
    if p.returncode != 0 and not allow_errors:
        err = "\n".join(l for l in p.stderr.decode(errors="replace").splitlines()
                        if "Running as user" not in l)
        raise OracleError(f"tshark failed on {path} (exit {p.returncode}): {err.strip()}")
    return p.stdout.decode(errors="replace")


def _fields_args(fields):
    args = ["-T", "fields", "-E", "header=n", "-E", "separator=/t", "-E", "occurrence=a",
            "-E", "aggregator=,"]
    for f in fields:
        args += ["-e", f]
    return args


def _first(value):
    return value.split(",")[0] if value else ""


def _addr16(text):
    a = ipaddress.ip_address(text)
    if a.version == 4:
        return ipaddress.IPv6Address("::ffff:" + str(a)).packed
    return a.packed


def outer_transport(protocols):
    """Returns (transport token or None, ip token or None, vlan tokens before the IP)."""
    toks = protocols.split(":") if protocols else []
    vlans = []
    i = 0
    while i < len(toks) and toks[i] in LINK_TOKENS:
        if toks[i] in VLAN_TOKENS:
            vlans.append(toks[i])
        i += 1
    if i >= len(toks) or toks[i] not in ("ip", "ipv6"):
        return None, None, vlans
    ip_tok = toks[i]
    i += 1
    if ip_tok == "ipv6":
        while i < len(toks) and toks[i].startswith("ipv6."):
            i += 1
    return (toks[i] if i < len(toks) else None), ip_tok, vlans


def analyse(path, allow_errors=False):
    """Runs tshark on one capture and returns the oracle's figures (see module docstring)."""
    if not os.path.isfile(path):
        raise OracleError(f"no such capture: {path}")
    out = _run_tshark(path, _fields_args(FIELDS), allow_errors)

    packets = 0
    nbytes = 0
    tcp_frames = {}  # frame number -> flow key (None when tshark has no ports/addresses)
    partial = {}     # frame number -> reason
    for line in out.splitlines():
        if not line:
            continue
        cols = line.split("\t")
        cols += [""] * (len(FIELDS) - len(cols))
        row = dict(zip(FIELDS, cols))
        num = int(row["frame.number"])
        packets += 1
        nbytes += int(row["frame.cap_len"] or 0)
        transport, ip_tok, vlan_toks = outer_transport(row["frame.protocols"])
        if transport != "tcp":
            continue
        # Outer two VLAN IDs, in frame order across the vlan/ieee8021ad fields.
        pools = {t: (row[f].split(",") if row[f] else []) for t, f in VLAN_TOKENS.items()}
        vids = []
        for t in vlan_toks:
            vids.append(int(pools[t].pop(0)) if pools[t] else -1)
        vlan_key = tuple(vids[:2])
        if ip_tok == "ip":
            src, dst = _first(row["ip.src"]), _first(row["ip.dst"])
        else:
            src, dst = _first(row["ipv6.src"]), _first(row["ipv6.dst"])
        sport, dport = _first(row["tcp.srcport"]), _first(row["tcp.dstport"])
        hdr_len = _first(row["tcp.hdr_len"])
        key = None
        if src and dst and sport and dport:
            a = (_addr16(src), int(sport))
            b = (_addr16(dst), int(dport))
            key = (min(a, b), max(a, b), vlan_key)
        tcp_frames[num] = key
        if key is None:
            partial[num] = "tcp header cut before the ports"
        elif not hdr_len:
            partial[num] = "tcp header cut before the data offset"
        elif int(hdr_len) < 20:
            partial[num] = f"tcp data offset below 20 bytes ({hdr_len})"

    for reason, flt in PARTIAL_FILTERS:
        res = _run_tshark(path, ["-Y", flt] + _fields_args(["frame.number"]), allow_errors)
        for line in res.splitlines():
            if line.strip():
                num = int(line.strip())
                if num in tcp_frames and num not in partial:
                    partial[num] = reason

    flows = {k for k in tcp_frames.values() if k is not None}
    flows_complete = {k for n, k in tcp_frames.items() if k is not None and n not in partial}
    return {
        "packets": packets,
        "bytes": nbytes,
        "tcp_packets": len(tcp_frames),
        "tcp_flows": len(flows),
        "tcp_partial": len(partial),
        "tcp_flows_complete": len(flows_complete),
        "partial_frames": sorted([n, r] for n, r in partial.items()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="tshark oracle: packets, tcp_packets, tcp_flows")
    ap.add_argument("captures", nargs="+", metavar="CAPTURE")
    ap.add_argument("--details", action="store_true",
                    help="also print bytes, tcp_partial, tcp_flows_complete, partial_frames")
    args = ap.parse_args(argv)
    rc = 0
    for path in args.captures:
        try:
            r = analyse(path)
        except (OracleError, subprocess.TimeoutExpired) as e:
            print(f"tshark_oracle: {e}", file=sys.stderr)
            rc = 1
            continue
        if not args.details:
            r = {k: r[k] for k in ("packets", "tcp_packets", "tcp_flows")}
        if len(args.captures) > 1:
            r = dict(file=path, **r)
        print(json.dumps(r))
    return rc


if __name__ == "__main__":
    sys.exit(main())
