// SPDX-License-Identifier: BSD-3-Clause
#include "parser.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace stateline::packet {

const OutcomeInfo kOutcomeInfo[kOutcomeCount] = {
#define STATELINE_X(name, category, help) {#name, OutcomeCategory::category, help},
    STATELINE_PACKET_OUTCOMES(STATELINE_X)
#undef STATELINE_X
};

namespace {

// Every multi-byte read goes through memcpy: headers after a VLAN tag or IPv4 options sit at
// any alignment.
inline uint16_t rd16(const uint8_t* p) noexcept {
    uint16_t v;
    std::memcpy(&v, p, sizeof(v));
    return ntohs(v);
}

inline uint32_t rd32(const uint8_t* p) noexcept {
    uint32_t v;
    std::memcpy(&v, p, sizeof(v));
    return ntohl(v);
}

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherIpv6 = 0x86dd;

// 802.1Q, 802.1ad, and the pre-standard QinQ TPIDs still sent by some switches.
inline bool is_vlan_tpid(uint16_t t) noexcept {
    return t == 0x8100 || t == 0x88a8 || t == 0x9100 || t == 0x9200;
}

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmpv6 = 58;

constexpr uint8_t kExtHopByHop = 0;
constexpr uint8_t kExtRouting = 43;
constexpr uint8_t kExtFragment = 44;
constexpr uint8_t kExtAh = 51;
constexpr uint8_t kExtDestOpts = 60;

// Where the IP layer leaves the transport header: captured bytes (never past the IP length,
// so Ethernet padding is not mistaken for TCP data) and the length the IP header claims.
struct L4 {
    const uint8_t* p;
    uint32_t captured;
    uint32_t wire;
};

inline Outcome finish(PacketMeta& meta, Outcome o) noexcept {
    meta.outcome = o;
    return o;
}

// RFC 9293 section 3.1 (header), 3.2 (options); RFC 7323 (window scale, timestamps);
// RFC 2018 (SACK).
Outcome parse_tcp(const L4& l4, const uint8_t* src, const uint8_t* dst, const uint16_t vlan[2],
                  PacketMeta& meta) noexcept {
    const uint8_t* t = l4.p;
    if (l4.captured < 20) return finish(meta, Outcome::tcp_truncated);
    const uint32_t hlen = static_cast<uint32_t>(t[12] >> 4) * 4;
    if (hlen < 20 || hlen > l4.wire) return finish(meta, Outcome::tcp_bad_data_offset);
    if (hlen > l4.captured) return finish(meta, Outcome::tcp_truncated);

    const uint16_t sport = rd16(t);
    const uint16_t dport = rd16(t + 2);
    meta.seq = rd32(t + 4);
    meta.ack = rd32(t + 8);
    meta.tcp_flags = t[13];
    meta.window = rd16(t + 14);
    meta.mss = 0;
    meta.wscale = 0;
    meta.tsval = 0;
    meta.tsecr = 0;

    // Each step advances by at least one byte and the header is at most 60 bytes, so the walk
    // is bounded. A known option with the wrong length is skipped, as Linux's
    // tcp_parse_options() does, and flagged; one that overruns the header ends the walk.
    uint32_t i = 20;
    while (i < hlen) {
        const uint8_t kind = t[i];
        if (kind == 0) break;  // end of option list
        if (kind == 1) {       // NOP
            ++i;
            continue;
        }
        if (i + 1 >= hlen) {
            meta.info |= info_bit::bad_tcp_options;
            break;
        }
        const uint32_t olen = t[i + 1];
        if (olen < 2 || i + olen > hlen) {
            meta.info |= info_bit::bad_tcp_options;
            break;
        }
        const uint8_t* o = t + i;
        switch (kind) {
            case 2:
                if (olen == 4) {
                    meta.mss = rd16(o + 2);
                    meta.info |= info_bit::has_mss;
                } else {
                    meta.info |= info_bit::bad_tcp_options;
                }
                break;
            case 3:
                if (olen == 3) {
                    meta.wscale = o[2];
                    meta.info |= info_bit::has_wscale;
                } else {
                    meta.info |= info_bit::bad_tcp_options;
                }
                break;
            case 4:
                if (olen == 2) {
                    meta.info |= info_bit::has_sack_permitted;
                } else {
                    meta.info |= info_bit::bad_tcp_options;
                }
                break;
            case 8:
                if (olen == 10) {
                    meta.tsval = rd32(o + 2);
                    meta.tsecr = rd32(o + 6);
                    meta.info |= info_bit::has_timestamp;
                } else {
                    meta.info |= info_bit::bad_tcp_options;
                }
                break;
            default:  // SACK blocks (5) and everything else: not needed by the state machine
                break;
        }
        i += olen;
    }

    meta.payload_len = l4.wire - hlen;
    meta.sender = flow::make_key(meta.key, src, sport, dst, dport, vlan[0], vlan[1]);
    meta.hash = flow::flow_hash(meta.key);
    return finish(meta, Outcome::tcp);
}

// RFC 791 section 3.1.
Outcome parse_ipv4(const uint8_t* ip, uint32_t cap, const uint16_t vlan[2],
                   PacketMeta& meta) noexcept {
    if (cap < 20) return finish(meta, Outcome::ipv4_truncated);
    if ((ip[0] >> 4) != 4) return finish(meta, Outcome::ipv4_bad_version);
    const uint32_t ihl = static_cast<uint32_t>(ip[0] & 0x0f) * 4;
    if (ihl < 20) return finish(meta, Outcome::ipv4_bad_ihl);
    if (ihl > cap) return finish(meta, Outcome::ipv4_truncated);
    const uint32_t total = rd16(ip + 2);
    if (total < ihl) return finish(meta, Outcome::ipv4_bad_total_length);
    meta.ip_len = total;

    // Bytes past the total length are Ethernet padding (frames shorter than 60 bytes); bytes
    // missing before it were cut by the capture's snaplen.
    uint32_t ip_cap = total;
    if (cap < total) {
        ip_cap = cap;
        meta.info |= info_bit::payload_truncated;
    }

    const uint8_t proto = ip[9];
    const uint16_t frag = rd16(ip + 6);
    // Non-first fragments carry no transport header (RFC 791; RFC 1858 on why a TCP header
    // must not be split), so they are counted but never reach the flow table.
    if ((frag & 0x1fff) != 0)
        return finish(meta, proto == kProtoTcp ? Outcome::tcp_fragment : Outcome::ipv4_fragment);

    switch (proto) {
        case kProtoTcp:
            break;
        case kProtoUdp:
            return finish(meta, Outcome::ipv4_udp);
        case kProtoIcmp:
            return finish(meta, Outcome::ipv4_icmp);
        default:
            return finish(meta, Outcome::ipv4_other);
    }
    // A first fragment (MF set, offset 0) holds the whole TCP header: track it like any
    // segment; payload_len is then the bytes of this fragment only.
    if ((frag & 0x2000) != 0) meta.info |= info_bit::ip_first_fragment;

    uint8_t src[16], dst[16];
    flow::map_ipv4(src, ip + 12);
    flow::map_ipv4(dst, ip + 16);
    return parse_tcp(L4{ip + ihl, ip_cap - ihl, total - ihl}, src, dst, vlan, meta);
}

// RFC 8200 sections 3 and 4; AH length per RFC 4302 section 2.2.
Outcome parse_ipv6(const uint8_t* ip, uint32_t cap, const uint16_t vlan[2],
                   PacketMeta& meta) noexcept {
    meta.info |= info_bit::ipv6;
    if (cap < 40) return finish(meta, Outcome::ipv6_truncated);
    if ((ip[0] >> 4) != 6) return finish(meta, Outcome::ipv6_bad_version);
    const uint32_t total = 40 + static_cast<uint32_t>(rd16(ip + 4));
    meta.ip_len = total;

    uint32_t ip_cap = total;
    if (cap < total) {
        ip_cap = cap;
        meta.info |= info_bit::payload_truncated;
    }

    // Extension headers must lie within both the captured bytes and the payload length; one
    // that does not is cut short either way, and the payload length can no longer underflow.
    uint8_t nh = ip[6];
    uint32_t pos = 40;
    bool more_fragments = false;
    for (unsigned n = 0;; ++n) {
        if (nh != kExtHopByHop && nh != kExtRouting && nh != kExtDestOpts && nh != kExtFragment &&
            nh != kExtAh)
            break;
        if (n == kMaxIpv6ExtHeaders) return finish(meta, Outcome::ipv6_ext_chain_too_long);
        if (ip_cap - pos < 2) return finish(meta, Outcome::ipv6_ext_truncated);
        uint32_t hlen;
        if (nh == kExtFragment)
            hlen = 8;
        else if (nh == kExtAh)
            hlen = (static_cast<uint32_t>(ip[pos + 1]) + 2) * 4;
        else
            hlen = (static_cast<uint32_t>(ip[pos + 1]) + 1) * 8;
        if (ip_cap - pos < hlen) return finish(meta, Outcome::ipv6_ext_truncated);
        const uint8_t next = ip[pos];
        if (nh == kExtFragment) {
            // RFC 8200 section 4.5: offset in 8-octet units in the top 13 bits, M flag in bit 0.
            const uint16_t fo = rd16(ip + pos + 2);
            if ((fo & 0xfff8) != 0)
                return finish(meta,
                              next == kProtoTcp ? Outcome::tcp_fragment : Outcome::ipv6_fragment);
            if ((fo & 0x0001) != 0) more_fragments = true;
        }
        nh = next;
        pos += hlen;
    }

    switch (nh) {
        case kProtoTcp:
            break;
        case kProtoUdp:
            return finish(meta, Outcome::ipv6_udp);
        case kProtoIcmpv6:
            return finish(meta, Outcome::ipv6_icmp);
        default:  // includes 59 (no next header) and 50 (ESP, opaque)
            return finish(meta, Outcome::ipv6_other);
    }
    if (more_fragments) meta.info |= info_bit::ip_first_fragment;
    return parse_tcp(L4{ip + pos, ip_cap - pos, total - pos}, ip + 8, ip + 24, vlan, meta);
}

}  // namespace

Outcome parse_frame(const uint8_t* data, uint32_t len, LinkType link, PacketMeta& meta) noexcept {
    meta.wire_len = static_cast<uint16_t>(len > 0xffff ? 0xffff : len);
    meta.vlan_depth = 0;
    meta.info = 0;

    uint32_t off;
    uint16_t type;
    if (link == LinkType::linux_sll) {
        // Linux cooked capture v1: packet type, ARPHRD, address length, 8 address bytes,
        // protocol (an EtherType for Ethernet-like devices).
        if (len < 16) return finish(meta, Outcome::sll_truncated);
        type = rd16(data + 14);
        off = 16;
    } else {
        if (len < 14) return finish(meta, Outcome::eth_truncated);
        type = rd16(data + 12);
        off = 14;
    }

    // IEEE 802.1Q: 2-byte TCI then the inner type. The outermost two VIDs name the flow
    // (QinQ: service and customer VLAN); deeper tags are counted but not keyed.
    uint16_t vlan[2] = {0, 0};
    unsigned depth = 0;
    while (is_vlan_tpid(type)) {
        if (depth == kMaxVlanTags) return finish(meta, Outcome::vlan_too_deep);
        if (len - off < 4) return finish(meta, Outcome::vlan_truncated);
        if (depth < 2)
            vlan[depth] =
                static_cast<uint16_t>((rd16(data + off) & flow::kVlanVidMask) | flow::kVlanPresent);
        type = rd16(data + off + 2);
        off += 4;
        meta.vlan_depth = static_cast<uint8_t>(++depth);
    }

    switch (type) {
        case kEtherIpv4:
            meta.l3_off = static_cast<uint16_t>(off);
            return parse_ipv4(data + off, len - off, vlan, meta);
        case kEtherIpv6:
            meta.l3_off = static_cast<uint16_t>(off);
            return parse_ipv6(data + off, len - off, vlan, meta);
        case kEtherArp:
            return finish(meta, Outcome::arp);
        default:
            // Values below 0x0600 are an IEEE 802.3 length (LLC follows), not a type: passed over
            // like any other EtherType. On a cooked capture the protocol of a non-Ethernet
            // device may not be an EtherType at all.
            return finish(meta, link == LinkType::linux_sll ? Outcome::other_linktype
                                                            : Outcome::other_ethertype);
    }
}

}  // namespace stateline::packet
