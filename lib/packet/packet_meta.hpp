// SPDX-License-Identifier: BSD-3-Clause
// What the parser learns of one frame: its outcome (exactly one per frame) and, for a tracked
// TCP segment, the canonical flow key, the hash and the TCP fields the state machine needs.
//
// Thread safety: plain data.
#pragma once

#include <cstdint>

#include "flow_key.hpp"

namespace stateline::packet {

// Every frame ends in exactly one outcome, so the per-outcome counters add up to the frames
// received: nothing is lost without a name. X(name, category, help)
//   tracked   - a TCP segment whose headers are whole: goes to the flow table
//   counted   - well-formed traffic Stateline does not track: counted by kind and passed over
//   malformed - a named parse error; the frame is never read past its captured length
#define STATELINE_PACKET_OUTCOMES(X)                                                              \
    X(tcp, tracked, "TCP segment with a complete header")                                        \
    X(tcp_fragment, counted, "Non-first IP fragment of a TCP datagram (counted, not tracked)")   \
    X(arp, counted, "ARP")                                                                        \
    X(ipv4_udp, counted, "IPv4 UDP")                                                              \
    X(ipv4_icmp, counted, "IPv4 ICMP")                                                            \
    X(ipv4_other, counted, "IPv4 with another protocol (GRE, ESP, IGMP, ...)")                    \
    X(ipv4_fragment, counted, "Non-first IPv4 fragment of a non-TCP datagram")                    \
    X(ipv6_udp, counted, "IPv6 UDP")                                                              \
    X(ipv6_icmp, counted, "ICMPv6")                                                               \
    X(ipv6_other, counted, "IPv6 with another next header (ESP, no next header, ...)")           \
    X(ipv6_fragment, counted, "Non-first IPv6 fragment of a non-TCP datagram")                    \
    X(other_ethertype, counted, "Another EtherType (LLDP, MPLS, PPPoE, 802.3 length, ...)")     \
    X(other_linktype, counted, "A Linux cooked-capture frame that is not IP or ARP")            \
    X(eth_truncated, malformed, "Frame shorter than an Ethernet header")                          \
    X(sll_truncated, malformed, "Frame shorter than a Linux cooked-capture header")             \
    X(vlan_truncated, malformed, "VLAN tag cut short")                                            \
    X(vlan_too_deep, malformed, "More than 8 stacked VLAN tags")                                  \
    X(ipv4_truncated, malformed, "IPv4 header cut short")                                         \
    X(ipv4_bad_version, malformed, "EtherType IPv4 but the version field is not 4")              \
    X(ipv4_bad_ihl, malformed, "IPv4 header length below 20 bytes")                              \
    X(ipv4_bad_total_length, malformed, "IPv4 total length smaller than its header")             \
    X(ipv6_truncated, malformed, "IPv6 header cut short")                                         \
    X(ipv6_bad_version, malformed, "EtherType IPv6 but the version field is not 6")              \
    X(ipv6_ext_truncated, malformed, "IPv6 extension header cut short")                           \
    X(ipv6_ext_chain_too_long, malformed, "More than 8 IPv6 extension headers")                  \
    X(tcp_truncated, malformed, "TCP header cut short")                                           \
    X(tcp_bad_data_offset, malformed, "TCP data offset below 20 bytes or past the IP payload")

enum class Outcome : uint8_t {
#define STATELINE_X(name, category, help) name,
    STATELINE_PACKET_OUTCOMES(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kOutcomeCount = static_cast<unsigned>(Outcome::count_);

enum class OutcomeCategory : uint8_t { tracked, counted, malformed };

struct OutcomeInfo {
    const char* name;
    OutcomeCategory category;
    const char* help;
};
extern const OutcomeInfo kOutcomeInfo[kOutcomeCount];

// Link layer of a port, fixed when the port is opened (a capture's link type, or Ethernet).
enum class LinkType : uint8_t { ethernet, linux_sll };

// TCP flag bits as on the wire (RFC 9293 section 3.1, plus ECE/CWR).
namespace tcp_flag {
inline constexpr uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10, urg = 0x20,
                         ece = 0x40, cwr = 0x80;
}

// Option and anomaly bits in PacketMeta::info.
namespace info_bit {
inline constexpr uint8_t has_mss = 0x01;
inline constexpr uint8_t has_wscale = 0x02;
inline constexpr uint8_t has_sack_permitted = 0x04;
inline constexpr uint8_t has_timestamp = 0x08;
inline constexpr uint8_t bad_tcp_options = 0x10;   // option walk stopped early; segment kept
inline constexpr uint8_t payload_truncated = 0x20; // captured bytes end before the IP length
inline constexpr uint8_t ipv6 = 0x40;
inline constexpr uint8_t ip_first_fragment = 0x80; // a first fragment: ports present, more follows
}  // namespace info_bit

// One parsed frame. Key first: the flow lookup reads it before anything else. Lives in the
// mbuf private area between the parse stage and the state stage (see docs/architecture.md).
struct PacketMeta {
    flow::FlowKey key;      // 40: valid when outcome == tcp
    uint32_t hash;          // flow::flow_hash(key)
    uint32_t seq;           // host order
    uint32_t ack;
    uint16_t window;        // raw, unscaled
    uint16_t mss;           // when info & has_mss
    uint32_t tsval;         // when info & has_timestamp
    uint32_t tsecr;
    uint32_t payload_len;   // TCP payload bytes per the IP length field (wire, not captured)
    uint32_t ip_len;        // IP header + payload bytes per the IP length field
    uint64_t ts_ns;         // capture time (pcap) or receive time (live), ns since the epoch
    Outcome outcome;
    flow::Side sender;      // which side of key sent this segment
    uint8_t tcp_flags;
    uint8_t wscale;         // when info & has_wscale
    uint8_t info;           // info_bit::*
    uint8_t vlan_depth;     // tags seen, including those beyond the two kept in the key
    uint16_t wire_len;      // captured frame length
    uint16_t l3_off;        // offset of the IP header in the frame (link header and VLAN tags)

    // Offset of the TCP payload in the frame (outcome tcp): the IP datagram's last payload_len
    // bytes. May be past the captured bytes.
    uint32_t payload_off() const noexcept { return uint32_t{l3_off} + ip_len - payload_len; }
};
static_assert(sizeof(PacketMeta) <= 128, "PacketMeta must fit the mbuf private area");

}  // namespace stateline::packet
