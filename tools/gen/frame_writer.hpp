// SPDX-License-Identifier: BSD-3-Clause
// Writes one Ethernet / optional 802.1Q / IPv4 or IPv6 / TCP frame straight into the caller's
// buffer (the pcap writer's output buffer), with correct IPv4 header and TCP checksums, and no
// allocation. Payload bytes come from one fixed pattern whose one's-complement sums are
// precomputed for every length, so the TCP checksum costs the header only, whatever the payload
// size, and a frame cut by a snaplen still carries the checksum of its full payload.
//
// Thread safety: write_frame() is a pure function of its arguments (the pattern tables are
// built once, on first use, under the function-local static guard, then only read).
#pragma once

#include <cstdint>

namespace stateline::gen {

// TCP flag bits as on the wire (RFC 9293 section 3.1).
namespace tcpf {
inline constexpr uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10, urg = 0x20;
}

// Option layouts as real stacks send them (each padded to a multiple of 4 bytes):
//   none          hping3-style crafted segments
//   mss           MSS only (4): nmap SYN probes, SYN-cookie replies of minimal stacks
//   syn_linux     MSS, SACK-permitted, timestamps, NOP, window scale (20): Linux SYN, SYN-ACK
//   syn_windows   MSS, NOP, window scale, NOP, NOP, SACK-permitted (12): Windows SYN, SYN-ACK
//   syn_nots      MSS, NOP, NOP, SACK-permitted, NOP, window scale (12): a SYN-ACK answering a
//                 SYN without timestamps (Linux)
//   timestamps    NOP, NOP, timestamps (12): every later segment of a timestamp connection
enum class TcpOptions : uint8_t { none, mss, syn_linux, syn_windows, syn_nots, timestamps };

// Longest frame written: Ethernet 14 + 802.1Q 4 + IPv6 40 + TCP 60 + payload.
inline constexpr uint32_t kMaxPayload = 1500;
inline constexpr uint32_t kMaxFrameLen = 14 + 4 + 40 + 60 + kMaxPayload;
inline constexpr uint32_t kMinFrameLen = 60;  // Ethernet minimum without FCS: zero padded

struct Frame {
    const uint8_t* src_mac = nullptr;  // 6 bytes
    const uint8_t* dst_mac = nullptr;
    uint16_t vlan = 0;                 // 802.1Q VID 1..4094; 0 = untagged
    bool ipv6 = false;
    const uint8_t* src_ip = nullptr;   // 4 or 16 bytes, network order
    const uint8_t* dst_ip = nullptr;
    uint8_t ttl = 64;                  // IPv4 TTL / IPv6 hop limit
    uint16_t ip_id = 0;                // IPv4 identification (DF is always set, as Linux does)
    uint32_t flow_label = 0;           // IPv6, 20 bits
    uint16_t sport = 0, dport = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    uint16_t window = 0;
    uint16_t urgent = 0;
    TcpOptions options = TcpOptions::none;
    uint16_t mss = 1460;
    uint8_t wscale = 7;
    uint32_t tsval = 0, tsecr = 0;
    uint32_t payload_len = 0;          // <= kMaxPayload; bytes from payload_pattern()
};

// Writes the frame at `out` and returns its wire length (at least kMinFrameLen). Headers are
// always written whole; payload bytes only up to `snaplen` bytes of frame. `out` must have room
// for min(wire length, max(snaplen, headers)) bytes; kMaxFrameLen always suffices.
uint32_t write_frame(const Frame& f, uint8_t* out, uint32_t snaplen = kMaxFrameLen) noexcept;

// Length of the TCP options for a layout (already padded).
uint32_t tcp_options_len(TcpOptions o) noexcept;

// The payload pattern (kMaxPayload bytes): printable text, so a capture viewer shows something
// readable, and not all-equal, so checksum tests mean something.
const uint8_t* payload_pattern() noexcept;

// RFC 1071 one's-complement sum helpers, exposed for tests.
uint32_t ones_sum(const uint8_t* p, uint32_t len, uint32_t acc = 0) noexcept;
uint16_t fold_checksum(uint32_t acc) noexcept;  // folded and complemented

}  // namespace stateline::gen
