#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes conf/demo.pcap, a small synthetic capture that shows what Stateline does.

Regenerate (deterministic: fixed seed, fixed start time, byte-identical output):

    /usr/bin/python3 tools/make-demo-pcap.py            # writes conf/demo.pcap
    /usr/bin/python3 tools/make-demo-pcap.py -o FILE    # elsewhere

then check it:

    capinfos conf/demo.pcap
    tshark -r conf/demo.pcap -q -z expert -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE \
        -o udp.check_checksum:TRUE

Classic pcap, microsecond timestamps, link type 1 (Ethernet), stdlib only. The capture is taken
on the server's LAN segment (server 192.0.2.10, 2001:db8::10; router 192.0.2.1), starting
2024-01-15 10:00:00 UTC and lasting about 30 seconds:

  - 40 HTTP/1.1 connections from 8 LAN clients and 2 remote ones (via the router) to
    192.0.2.10:80: 3-way handshake (SYN seq=x; SYN-ACK seq=y ack=x+1; ACK seq=x+1 ack=y+1),
    one GET, a text response sent in slow-start flights of MSS-sized segments and ACKed every
    second segment, then a 4-way close (FIN seq=u; ACK u+1; FIN seq=w; ACK w+1), closed by the
    client or by the server. RTTs 1-9 ms, server think time 0.3-3 ms.
  - 4 IPv6 connections from 2001:db8:1::/64 clients to [2001:db8::10]:80, same shape.
  - 2 connections inside VLAN 100 (802.1Q, both directions tagged) to 192.0.2.10:80.
  - 1 connection aborted by the client with RST after the response.
  - 1 refused connection: SYN to port 8080 answered by RST-ACK.
  - DNS over UDP (A and AAAA queries for www.example.com to 192.0.2.53 and their answers),
    ARP requests and replies, ICMP echo requests and replies from a monitor host.
  - A spoofed SYN flood: 1,000 SYNs toward 192.0.2.10:80 from random sources in
    198.51.100.0/24 and 203.0.113.0/24 (distinct source address/port pairs, random ISNs,
    windows, TTLs), spread over one second starting at t = 20 s; incoming direction only.

Only documentation ranges are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32, MACs 00:00:5e:00:53:xx, example.com). IP, TCP, UDP and ICMP checksums are
correct; Ethernet frames shorter than 60 bytes are zero-padded to 60 as on the wire.
"""

import argparse
import os
import random
import struct

SEED = 20240115
EPOCH = 1705312800  # 2024-01-15 10:00:00 UTC

# ---------------------------------------------------------------- encoding helpers


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4b(text):
    return bytes(int(x) for x in text.split("."))


def ip6b(text):
    # Minimal RFC 4291 text form parser (handles one "::").
    head, _, tail = text.partition("::")
    h = [int(x, 16) for x in head.split(":") if x]
    t = [int(x, 16) for x in tail.split(":") if x]
    words = h + [0] * (8 - len(h) - len(t)) + t
    return struct.pack("!8H", *words)


def macb(text):
    return bytes(int(x, 16) for x in text.split(":"))


BROADCAST = b"\xff" * 6


def ether(dst, src, ethertype, payload, vlan=None):
    hdr = dst + src
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, vlan)
    frame = hdr + struct.pack("!H", ethertype) + payload
    if len(frame) < 60:
        frame += b"\0" * (60 - len(frame))
    return frame


def ipv4(src, dst, proto, payload, ident, ttl=64, df=True):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF,
                      0x4000 if df else 0, ttl, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src, dst, nh, payload, flow, hlim=64):
    return struct.pack("!IHBB16s16s", (6 << 28) | (flow & 0xFFFFF), len(payload), nh, hlim,
                       src, dst) + payload


def pseudo(src, dst, proto, length):
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(src, dst, sport, dport, seq, ack, flags, win, opts=b"", data=b""):
    off = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      off << 4, flags, win, 0, 0) + opts
    seg = hdr + data
    c = csum(pseudo(src, dst, 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src, dst, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = csum(pseudo(src, dst, 17, len(seg)) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def syn_options(mss, wscale=7):
    # Linux without timestamps: MSS, NOP, NOP, SACK_PERM, NOP, WS.
    return struct.pack("!BBH", 2, 4, mss) + b"\x01\x01\x04\x02" + b"\x01" + \
        struct.pack("!BBB", 3, 3, wscale)


# ---------------------------------------------------------------- hosts and capture


class Host:
    def __init__(self, name, mac, ip, rng):
        self.name = name
        self.mac = macb(mac)
        self.v6 = ":" in ip
        self.ip = ip6b(ip) if self.v6 else ip4b(ip)
        self.text = ip
        self.ident = rng.randrange(1, 65536)

    def next_id(self):
        self.ident = (self.ident + 1) & 0xFFFF
        return self.ident


class Capture:
    def __init__(self):
        self.events = []  # (t seconds, order, frame)

    def add(self, t, frame):
        self.events.append((t, len(self.events), frame))

    def write(self, path):
        recs = []
        last = -1
        for t, _, frame in sorted(self.events, key=lambda e: (round(e[0] * 1e6), e[1])):
            us = EPOCH * 1_000_000 + round(t * 1e6)
            last = max(us, last)
            recs.append(struct.pack("<IIII", last // 1_000_000, last % 1_000_000, len(frame),
                                    len(frame)) + frame)
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            f.writelines(recs)
        return len(recs)


def l2_to(sender, receiver, router):
    """Ethernet next hop: a host off the LAN is reached through the router."""
    dst_mac = receiver.mac if receiver.local else router.mac
    src_mac = sender.mac if sender.local else router.mac
    return dst_mac, src_mac


class Conn:
    """One TCP connection seen at the server's switch port."""

    def __init__(self, cap, rng, client, server, sport, dport, rtt, router, vlan=None):
        self.cap, self.rng = cap, rng
        self.c, self.s = client, server
        self.sport, self.dport = sport, dport
        self.rtt = rtt
        self.router = router
        self.vlan = vlan
        self.flow = rng.randrange(1 << 20)
        self.cseq = rng.randrange(1 << 32)  # client's next sequence number
        self.sseq = rng.randrange(1 << 32)
        self.cack = 0
        self.sack = 0
        self.mss = 1440 if client.v6 else 1460

    def _send(self, t, from_client, flags, data=b"", opts=b"", win=None):
        a, b = (self.c, self.s) if from_client else (self.s, self.c)
        sport, dport = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        seq = self.cseq if from_client else self.sseq
        ack = self.cack if from_client else self.sack
        if win is None:
            win = 502 if from_client else 509  # scaled by 2^7: 64256 / 65152 bytes
        if not flags & ACK:
            ack = 0
        seg = tcp(a.ip, b.ip, sport, dport, seq, ack, flags, win, opts, data)
        if a.v6:
            pkt = ipv6(a.ip, b.ip, 6, seg, self.flow)
            et = 0x86DD
        else:
            pkt = ipv4(a.ip, b.ip, 6, seg, a.next_id(), ttl=64 if a.local else 61)
            et = 0x0800
        dmac, smac = l2_to(a, b, self.router)
        self.cap.add(t, ether(dmac, smac, et, pkt, self.vlan))
        step = len(data) + (1 if flags & (SYN | FIN) else 0)
        if from_client:
            self.cseq = (self.cseq + step) & 0xFFFFFFFF
        else:
            self.sseq = (self.sseq + step) & 0xFFFFFFFF

    def handshake(self, t):
        self._send(t, True, SYN, opts=syn_options(self.mss), win=64240)
        self.sack = self.cseq  # x + 1
        t += 0.00004 + self.rng.random() * 0.00003
        self._send(t, False, SYN | ACK, opts=syn_options(self.mss), win=65160)
        self.cack = self.sseq  # y + 1
        t += self.rtt
        self._send(t, True, ACK)
        return t

    def request(self, t, data):
        t += 0.00005 + self.rng.random() * 0.0001
        self._send(t, True, PSH | ACK, data)
        self.sack = self.cseq
        return t

    def response(self, t, data, think):
        """Server sends data in slow-start flights; the client ACKs every second segment.
        Returns (time of the last server segment, time of the last client ACK)."""
        t += think
        segs = [data[i:i + self.mss] for i in range(0, len(data), self.mss)]
        flight, i, last_ack, last_seg = 10, 0, t, t
        while i < len(segs):
            batch = segs[i:i + flight]
            times = []
            for k, seg in enumerate(batch):
                last = i + k == len(segs) - 1
                t += 0.000012 * (1 if k else 2)
                self._send(t, False, (PSH | ACK) if last else ACK, seg)
                times.append((t, self.sseq))
                last_seg = t
            # Client ACKs every second segment and the last of the flight, one RTT later.
            for k, (ts, end) in enumerate(times):
                if k % 2 == 1 or k == len(times) - 1:
                    self.cack = end
                    last_ack = ts + self.rtt + self.rng.random() * 0.00005
                    self._send(last_ack, True, ACK)
            i += len(batch)
            t = last_ack + 0.00002
            flight *= 2
        return last_seg, last_ack

    def close_by_client(self, t):
        # FIN seq=u; ACK u+1; FIN seq=w; ACK w+1.
        t += 0.0001 + self.rng.random() * 0.0005
        self._send(t, True, FIN | ACK)
        self.sack = self.cseq
        t += 0.00003
        self._send(t, False, ACK)
        t += 0.00005 + self.rng.random() * 0.0002
        self._send(t, False, FIN | ACK)
        self.cack = self.sseq
        t += self.rtt
        self._send(t, True, ACK)
        return t

    def close_by_server(self, t):
        t += 0.00002
        self._send(t, False, FIN | ACK)
        self.cack = self.sseq
        t += self.rtt + 0.0001
        self._send(t, True, ACK)
        t += 0.00005 + self.rng.random() * 0.0003
        self._send(t, True, FIN | ACK)
        self.sack = self.cseq
        t += 0.00003
        self._send(t, False, ACK)
        return t

    def reset_by_client(self, t):
        t += 0.0002 + self.rng.random() * 0.001
        self._send(t, True, RST | ACK, win=0)
        return t


# ---------------------------------------------------------------- application payloads

PAGES = [
    ("/", "text/html"), ("/index.html", "text/html"), ("/about.html", "text/html"),
    ("/news/2024/01/", "text/html"), ("/css/site.css", "text/css"),
    ("/docs/guide.txt", "text/plain"), ("/status", "text/plain"),
    ("/products/list.html", "text/html"), ("/robots.txt", "text/plain"),
]
ASSETS = [
    ("/css/site.css", "text/css"), ("/css/print.css", "text/css"),
    ("/js/README.txt", "text/plain"), ("/fragments/header.html", "text/html"),
    ("/fragments/footer.html", "text/html"), ("/data/prices.txt", "text/plain"),
]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "Wget/1.21.4",
]
SIZES = [700, 1800, 3200, 5600, 8100, 11500, 16400, 24000]
SIZE_WEIGHTS = [6, 8, 8, 6, 4, 3, 2, 1]


def http_request(rng, path, agent, last):
    return ("GET %s HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: %s\r\n"
            "Accept: */*\r\nAccept-Encoding: identity\r\nConnection: %s\r\n\r\n"
            % (path, agent, "close" if last else "keep-alive")).encode()


def http_response(rng, ctype, size, last):
    lines, n = [], 0
    words = ("stateline tracks every tcp connection from handshake to close "
             "and counts what it sees").split()
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randrange(6, 14)))
        if ctype == "text/html":
            line = "<p>" + line + "</p>"
        elif ctype == "text/css":
            line = ".c%d { margin: %dpx; } /* %s */" % (len(lines), rng.randrange(20), line)
        lines.append(line)
        n += len(line) + 1
    body = ("\n".join(lines) + "\n").encode()
    head = ("HTTP/1.1 200 OK\r\nDate: Mon, 15 Jan 2024 10:00:00 GMT\r\nServer: demo\r\n"
            "Content-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
            % (ctype, len(body), "close" if last else "keep-alive")).encode()
    return head + body


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def dns_query(txid, name, qtype):
    return struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + dns_name(name) + \
        struct.pack("!HH", qtype, 1)


def dns_answer(txid, name, qtype, rdata):
    return struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0) + dns_name(name) + \
        struct.pack("!HH", qtype, 1) + struct.pack("!HHHIH", 0xC00C, qtype, 1, 300,
                                                    len(rdata)) + rdata


def arp(op, smac, sip, tmac, tip):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, smac, sip, tmac, tip)


# ---------------------------------------------------------------- scenario


def build(rng):
    cap = Capture()

    def host(name, mac, ip, local=True):
        h = Host(name, mac, ip, rng)
        h.local = local
        return h

    router = host("router", "00:00:5e:00:53:01", "192.0.2.1")
    server = host("server", "00:00:5e:00:53:0a", "192.0.2.10")
    server6 = host("server6", "00:00:5e:00:53:0a", "2001:db8::10")
    resolver = host("resolver", "00:00:5e:00:53:35", "192.0.2.53")
    monitor = host("monitor", "00:00:5e:00:53:05", "192.0.2.5")
    clients = [host("c%d" % i, "00:00:5e:00:53:%02x" % (0x20 + i), "192.0.2.%d" % (20 + i))
               for i in range(1, 9)]
    remotes = [host("r1", "00:00:5e:00:53:01", "198.51.100.23", local=False),
               host("r2", "00:00:5e:00:53:01", "203.0.113.77", local=False)]
    clients6 = [host("v6c%d" % i, "00:00:5e:00:53:%02x" % (0x60 + i), "2001:db8:1::%x" % (0x20 + i))
                for i in range(1, 4)]
    vlan_clients = [host("vl%d" % i, "00:00:5e:00:53:%02x" % (0xa0 + i), "192.0.2.%d" % (100 + i))
                    for i in range(2)]
    for h in [router, server, server6, resolver, monitor] + clients + remotes + clients6 + \
            vlan_clients:
        h.rtt = (0.001 + rng.random() * 0.005) if h.local else (0.007 + rng.random() * 0.002)

    used_ports = {}

    def ephemeral(h):
        s = used_ports.setdefault(h.text, set())
        while True:
            p = rng.randrange(32768, 61000)
            if p not in s:
                s.add(p)
                return p

    stats = {"http": 0, "http6": 0, "vlan": 0, "rst": 0, "refused": 0, "dns": 0, "arp": 0,
             "icmp": 0, "flood": 0}

    # ARP: the clients and the monitor resolve the server, the server the router and resolver.
    t = 0.05
    arp_pairs = [(c, server) for c in clients[:4] + [monitor]] + [(server, router),
                                                                   (server, resolver)]
    for a, b in arp_pairs:
        t += 0.3 + rng.random() * 0.4
        cap.add(t, ether(BROADCAST, a.mac, 0x0806, arp(1, a.mac, a.ip, b"\0" * 6, b.ip)))
        cap.add(t + 0.00008 + rng.random() * 0.0001,
                ether(a.mac, b.mac, 0x0806, arp(2, b.mac, b.ip, a.mac, a.ip)))
        stats["arp"] += 2

    # DNS: each LAN client looks the server up (A, and AAAA for half of them).
    for i, c in enumerate(clients):
        t0 = 0.2 + i * 0.9 + rng.random() * 0.3
        qtypes = [(1, server.ip)] + ([(28, server6.ip)] if i % 2 == 0 else [])
        for qtype, rdata in qtypes:
            txid = rng.randrange(65536)
            sport = ephemeral(c)
            q = dns_query(txid, "www.example.com", qtype)
            r = dns_answer(txid, "www.example.com", qtype, rdata)
            cap.add(t0, ether(resolver.mac, c.mac, 0x0800,
                              ipv4(c.ip, resolver.ip, 17, udp(c.ip, resolver.ip, sport, 53, q),
                                   c.next_id())))
            t1 = t0 + 0.0003 + rng.random() * 0.0008
            cap.add(t1, ether(c.mac, resolver.mac, 0x0800,
                              ipv4(resolver.ip, c.ip, 17, udp(resolver.ip, c.ip, 53, sport, r),
                                   resolver.next_id())))
            stats["dns"] += 2
            t0 = t1 + 0.0002

    # ICMP echo: the monitor pings the server every 5 s.
    ident = 0x4D31
    for seq in range(1, 7):
        t0 = 1.0 + (seq - 1) * 5.0 + rng.random() * 0.01
        payload = struct.pack("!II", EPOCH + int(t0), int((t0 % 1) * 1e6)) + \
            bytes((0x10 + k) & 0xFF for k in range(48))
        req = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
        req = req[:2] + struct.pack("!H", csum(req)) + req[4:]
        rep = struct.pack("!BBHHH", 0, 0, 0, ident, seq) + payload
        rep = rep[:2] + struct.pack("!H", csum(rep)) + rep[4:]
        cap.add(t0, ether(server.mac, monitor.mac, 0x0800,
                          ipv4(monitor.ip, server.ip, 1, req, monitor.next_id())))
        cap.add(t0 + monitor.rtt * 0.05 + 0.00003,
                ether(monitor.mac, server.mac, 0x0800,
                      ipv4(server.ip, monitor.ip, 1, rep, server.next_id(), df=False)))
        stats["icmp"] += 2

    def http(t0, client, srv, vlan=None, end="fin"):
        """One connection: 1-4 GETs on a keep-alive connection, the last one says close."""
        conn = Conn(cap, rng, client, srv, ephemeral(client), 80, client.rtt, router, vlan)
        agent = rng.choice(AGENTS)
        n_req = rng.choices((1, 2, 3, 4), (3, 3, 3, 2))[0]
        t = conn.handshake(t0)
        for r in range(n_req):
            last = r == n_req - 1
            if r == 0:
                path, ctype = rng.choice(PAGES)
                size = rng.choices(SIZES, SIZE_WEIGHTS)[0] + rng.randrange(400)
            else:
                path, ctype = rng.choice(ASSETS)
                size = rng.randrange(300, 6000)
                t += 0.001 + rng.random() * 0.02  # the client parses, then asks for more
            t = conn.request(t, http_request(rng, path, agent, last))
            think = 0.0003 + rng.random() * 0.0027
            t_last, t = conn.response(t, http_response(rng, ctype, size, last), think)
        if end == "rst":
            conn.reset_by_client(t)
        elif end == "server":
            conn.close_by_server(t_last)
        else:
            conn.close_by_client(t)

    # 40 IPv4 HTTP connections over ~28 s from 8 LAN clients and 2 remote ones.
    everyone = clients + remotes
    starts = sorted(0.5 + rng.random() * 27.5 for _ in range(40))
    for k, t0 in enumerate(starts):
        c = everyone[k % len(everyone)] if k < 10 else rng.choice(everyone)
        http(t0, c, server, end="server" if k % 3 == 0 else "fin")
        stats["http"] += 1

    # IPv6: 4 connections.
    for k, t0 in enumerate([3.2, 9.7, 17.4, 26.1]):
        http(t0 + rng.random() * 0.2, clients6[k % len(clients6)], server6,
             end="server" if k % 2 else "fin")
        stats["http6"] += 1

    # VLAN 100: 2 connections, tagged both ways.
    for k, t0 in enumerate([5.3, 18.6]):
        http(t0 + rng.random() * 0.2, vlan_clients[k], server, vlan=100)
        stats["vlan"] += 1

    # A connection aborted by the client with RST after the response.
    http(12.4, clients[2], server, end="rst")
    stats["rst"] += 1

    # A refused connection: SYN to 8080, RST-ACK back.
    c = clients[5]
    conn = Conn(cap, rng, c, server, ephemeral(c), 8080, c.rtt, router)
    t0 = 15.1
    conn._send(t0, True, SYN, opts=syn_options(1460), win=64240)
    conn.sack = conn.cseq
    conn.sseq = 0
    conn._send(t0 + 0.00004, False, RST | ACK, win=0)
    stats["refused"] += 1

    # Spoofed SYN flood: 1,000 SYNs over one second from documentation ranges.
    seen = set()
    flood_times = sorted(20.0 + rng.random() for _ in range(1000))
    for t0 in flood_times:
        while True:
            net = rng.choice(("198.51.100.", "203.0.113."))
            src = net + str(rng.randrange(1, 255))
            sport = rng.randrange(1024, 65536)
            if (src, sport) not in seen and src not in (r.text for r in remotes):
                seen.add((src, sport))
                break
        sip = ip4b(src)
        opts = struct.pack("!BBH", 2, 4, rng.choice((536, 1360, 1460)))
        seg = tcp(sip, server.ip, sport, 80, rng.randrange(1 << 32), 0, SYN,
                  rng.choice((1024, 5840, 8192, 14600, 29200, 64240, 65535)), opts)
        pkt = ipv4(sip, server.ip, 6, seg, rng.randrange(65536), ttl=rng.randrange(40, 120),
                   df=rng.random() < 0.5)
        cap.add(t0, ether(server.mac, router.mac, 0x0800, pkt))
        stats["flood"] += 1

    return cap, stats


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Write the Stateline demo capture.")
    ap.add_argument("-o", "--output", default=os.path.join(here, "..", "conf", "demo.pcap"))
    args = ap.parse_args()
    rng = random.Random(SEED)
    cap, stats = build(rng)
    n = cap.write(args.output)
    size = os.path.getsize(args.output)
    print("wrote %s: %d packets, %d bytes" % (os.path.normpath(args.output), n, size))
    print("  " + ", ".join("%s=%d" % kv for kv in stats.items()))


if __name__ == "__main__":
    main()
