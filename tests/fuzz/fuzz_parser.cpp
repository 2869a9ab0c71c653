// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: packet::parse_frame on arbitrary bytes.
//
// Input: byte 0 picks the link type (bit 0: 0 Ethernet, 1 Linux cooked capture), the rest is
// the frame. The frame is copied into a buffer of exactly its length, so ASan reports any read
// past the captured bytes (the parser's contract). Invariants checked (abort on failure):
//   - the outcome is a valid enumerator, and wire_len is the length (saturated at 65535);
//   - outcome tcp: l3_off past the link header and inside the frame; payload_off() <= the frame
//     when the IP length is within the captured bytes (payload_truncated clear), and then the
//     whole payload is captured too; payload_len <= ip_len;
//   - the key is canonical (side lo <= side hi), the sender's side holds the source address and
//     port of the frame's IP/TCP headers, the hash is flow_hash(key);
//   - parsing is deterministic (a second parse gives the same fields).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "flow_key.hpp"
#include "parser.hpp"

using namespace stateline;
using packet::Outcome;

#define FUZZ_CHECK(cond)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::fprintf(stderr, "fuzz_parser: invariant failed: %s (line %d)\n", #cond, __LINE__); \
            std::abort();                                                                   \
        }                                                                                   \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const packet::LinkType link = (data[0] & 1) ? packet::LinkType::linux_sll : packet::LinkType::ethernet;
    const uint32_t len = static_cast<uint32_t>(size - 1);
    // Exactly len bytes on the heap: one byte more read is an ASan report.
    std::vector<uint8_t> frame(data + 1, data + size);
    const uint8_t* f = frame.empty() ? nullptr : frame.data();
    if (f == nullptr) {
        static const uint8_t none[1] = {0};
        f = none;  // len 0: the parser must not read it
    }

    packet::PacketMeta m;
    std::memset(&m, 0xcd, sizeof m);
    const Outcome o = packet::parse_frame(f, len, link, m);
    FUZZ_CHECK(o == m.outcome);
    FUZZ_CHECK(static_cast<unsigned>(o) < packet::kOutcomeCount);
    FUZZ_CHECK(m.wire_len == (len > 0xffff ? 0xffff : len));
    FUZZ_CHECK(m.vlan_depth <= packet::kMaxVlanTags);

    if (o == Outcome::tcp) {
        const uint32_t link_hdr = link == packet::LinkType::linux_sll ? 16 : 14;
        FUZZ_CHECK(m.l3_off == link_hdr + 4u * m.vlan_depth);
        FUZZ_CHECK(m.l3_off < len);
        FUZZ_CHECK(m.payload_len <= m.ip_len);
        const bool v6 = (m.info & packet::info_bit::ipv6) != 0;
        const uint32_t min_hdr = v6 ? 40 + 20 : 20 + 20;
        FUZZ_CHECK(m.ip_len - m.payload_len >= min_hdr);
        const uint64_t pay_off = m.payload_off();
        const uint64_t ip_end = uint64_t{m.l3_off} + m.ip_len;
        if ((m.info & packet::info_bit::payload_truncated) == 0) {
            // The whole IP datagram, hence the whole payload, is in the captured bytes.
            FUZZ_CHECK(ip_end <= len);
            FUZZ_CHECK(pay_off <= len);
            FUZZ_CHECK(pay_off + m.payload_len <= len);
        } else {
            FUZZ_CHECK(ip_end > len);
        }
        // TCP header within the captured bytes: it starts at pay_off - data offset.
        FUZZ_CHECK(pay_off <= ip_end);

        // Canonical key: side lo is the smaller (address, port).
        const int c = std::memcmp(m.key.addr[0], m.key.addr[1], 16);
        FUZZ_CHECK(c < 0 || (c == 0 && m.key.port[0] <= m.key.port[1]));
        FUZZ_CHECK(m.sender == flow::Side::lo || m.sender == flow::Side::hi);
        FUZZ_CHECK(m.hash == flow::flow_hash(m.key));

        // The sender's side holds the frame's source address and port.
        const uint8_t* ip = f + m.l3_off;
        const unsigned s = static_cast<unsigned>(m.sender);
        uint8_t src[16], dst[16];
        if (v6) {
            std::memcpy(src, ip + 8, 16);
            std::memcpy(dst, ip + 24, 16);
        } else {
            FUZZ_CHECK(flow::is_ipv4_mapped(m.key.addr[0]) && flow::is_ipv4_mapped(m.key.addr[1]));
            flow::map_ipv4(src, ip + 12);
            flow::map_ipv4(dst, ip + 16);
        }
        FUZZ_CHECK(std::memcmp(m.key.addr[s], src, 16) == 0);
        FUZZ_CHECK(std::memcmp(m.key.addr[1 - s], dst, 16) == 0);
        // IPv4: the TCP header follows the IHL; both ports and the payload offset must match it.
        // (IPv6: after the extension headers, which the parser alone walks.)
        if (!v6) {
            const uint32_t ihl = (ip[0] & 0x0f) * 4u;
            const uint8_t* t = ip + ihl;
            FUZZ_CHECK(m.l3_off + ihl + 20 <= len);
            const uint16_t sport = static_cast<uint16_t>(t[0] << 8 | t[1]);
            const uint16_t dport = static_cast<uint16_t>(t[2] << 8 | t[3]);
            FUZZ_CHECK(m.key.port[s] == sport);
            FUZZ_CHECK(m.key.port[1 - s] == dport);
            FUZZ_CHECK(pay_off == m.l3_off + ihl + (t[12] >> 4) * 4u);
        }
        FUZZ_CHECK(m.key.vlan[0] == 0 || (m.key.vlan[0] & flow::kVlanPresent) != 0);
        FUZZ_CHECK((m.key.vlan[0] == 0) == (m.vlan_depth == 0));
    }

    // Deterministic: the same frame gives the same meta (outcome and, for tcp, every field).
    packet::PacketMeta m2;
    std::memset(&m2, 0x3c, sizeof m2);
    FUZZ_CHECK(packet::parse_frame(f, len, link, m2) == o);
    if (o == Outcome::tcp) {
        FUZZ_CHECK(m2.key == m.key && m2.hash == m.hash && m2.seq == m.seq && m2.ack == m.ack &&
                   m2.tcp_flags == m.tcp_flags && m2.payload_len == m.payload_len && m2.ip_len == m.ip_len &&
                   m2.info == m.info && m2.sender == m.sender);
    }
    return 0;
}
