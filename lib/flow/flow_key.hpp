// SPDX-License-Identifier: BSD-3-Clause
// The canonical, direction-free name of a TCP connection and its symmetric hash.
//
// Thread safety: plain values and pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <cstring>

namespace stateline::flow {

// A VLAN slot holds the 12-bit VID with kVlanPresent set, so that "VLAN 0" (a priority tag) and
// "no tag" stay two different flows, as in Zeek's conn key (vlan, inner_vlan).
inline constexpr uint16_t kVlanPresent = 0x1000;
inline constexpr uint16_t kVlanVidMask = 0x0fff;

// Canonical bidirectional key. The endpoint that sorts lower (address bytes, then port) is
// side 0, so both directions of a connection build the same bytes and hash to the same value.
// IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d): one layout, no family byte, and the
// key stays 40 bytes, five 8-byte words for the CRC.
struct FlowKey {
    uint8_t addr[2][16];  // network byte order
    uint16_t port[2];     // host byte order
    uint16_t vlan[2];     // outermost two tags: VID | kVlanPresent, 0 when absent
};
static_assert(sizeof(FlowKey) == 40, "FlowKey is hashed as five 64-bit words");

inline bool operator==(const FlowKey& a, const FlowKey& b) noexcept {
    return std::memcmp(&a, &b, sizeof(FlowKey)) == 0;
}

// Which side of the canonical key sent a packet.
enum class Side : uint8_t { lo = 0, hi = 1 };

// Builds the canonical key from one packet's source and destination. Returns the sender's side.
// src/dst are 16-byte addresses (IPv4 already mapped); ports in host order.
inline Side make_key(FlowKey& key, const uint8_t* src, uint16_t sport, const uint8_t* dst,
                     uint16_t dport, uint16_t vlan_outer, uint16_t vlan_inner) noexcept {
    int c = std::memcmp(src, dst, 16);
    bool src_lo = c < 0 || (c == 0 && sport <= dport);
    const uint8_t* a0 = src_lo ? src : dst;
    const uint8_t* a1 = src_lo ? dst : src;
    std::memcpy(key.addr[0], a0, 16);
    std::memcpy(key.addr[1], a1, 16);
    key.port[0] = src_lo ? sport : dport;
    key.port[1] = src_lo ? dport : sport;
    key.vlan[0] = vlan_outer;
    key.vlan[1] = vlan_inner;
    return src_lo ? Side::lo : Side::hi;
}

// Writes the IPv4-mapped form of a 4-byte address into a 16-byte slot.
inline void map_ipv4(uint8_t out[16], const uint8_t v4[4]) noexcept {
    static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(out, prefix, 12);
    std::memcpy(out + 12, v4, 4);
}

inline bool is_ipv4_mapped(const uint8_t a[16]) noexcept {
    static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(a, prefix, 12) == 0;
}

// Symmetric flow hash: CRC32-C of the canonical key (one crc32 instruction per 8 bytes on
// x86-64 with SSE4.2, a portable table-free fallback elsewhere). Computed once per packet by the
// parser and reused for worker selection and as the flow-table hash.
uint32_t flow_hash(const FlowKey& key) noexcept;

// Formats "addr:port" (IPv6 in brackets) for logs and tests. buf must hold 64 bytes.
const char* format_endpoint(const FlowKey& key, Side side, char* buf, size_t len) noexcept;

}  // namespace stateline::flow
