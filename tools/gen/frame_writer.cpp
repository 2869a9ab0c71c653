// SPDX-License-Identifier: BSD-3-Clause
#include "frame_writer.hpp"

#include <array>
#include <cstring>

namespace stateline::gen {

namespace {

struct PatternTables {
    std::array<uint8_t, kMaxPayload> bytes{};
    // Unfolded one's-complement sum of the first n pattern bytes, n = 0..kMaxPayload (an odd
    // last byte counts as the high half of a word, RFC 1071). At most 750 words of 0xffff: no
    // overflow in 32 bits.
    std::array<uint32_t, kMaxPayload + 1> prefix_sum{};

    PatternTables() {
        // Neutral text: no protocol dissector mistakes it for its own (an "HTTP/1.1" start made
        // tshark report cleartext HTTP on port 443).
        static constexpr char kText[] =
            "stateline-gen synthetic payload; the quick brown fox jumps over the lazy dog 0123456789 ";
        constexpr uint32_t n = sizeof(kText) - 1;
        for (uint32_t i = 0; i < kMaxPayload; ++i) bytes[i] = static_cast<uint8_t>(kText[i % n]);
        uint32_t even = 0;  // sum of the complete words before position i (i even)
        prefix_sum[0] = 0;
        for (uint32_t len = 1; len <= kMaxPayload; ++len) {
            if (len % 2 == 0) {
                even += static_cast<uint32_t>(bytes[len - 2]) << 8 | bytes[len - 1];
                prefix_sum[len] = even;
            } else {
                prefix_sum[len] = even + (static_cast<uint32_t>(bytes[len - 1]) << 8);
            }
        }
    }
};

const PatternTables& tables() {
    static const PatternTables t;
    return t;
}

inline void put16(uint8_t* p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

inline void put32(uint8_t* p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

// Writes the options and returns their (padded) length.
inline uint32_t put_options(uint8_t* p, const Frame& f) noexcept {
    switch (f.options) {
        case TcpOptions::none:
            return 0;
        case TcpOptions::mss:
            p[0] = 2, p[1] = 4;
            put16(p + 2, f.mss);
            return 4;
        case TcpOptions::syn_linux:
            p[0] = 2, p[1] = 4;
            put16(p + 2, f.mss);
            p[4] = 4, p[5] = 2;  // SACK permitted
            p[6] = 8, p[7] = 10;
            put32(p + 8, f.tsval);
            put32(p + 12, f.tsecr);
            p[16] = 1;  // NOP
            p[17] = 3, p[18] = 3, p[19] = f.wscale;
            return 20;
        case TcpOptions::syn_windows:
            p[0] = 2, p[1] = 4;
            put16(p + 2, f.mss);
            p[4] = 1;
            p[5] = 3, p[6] = 3, p[7] = f.wscale;
            p[8] = 1, p[9] = 1;
            p[10] = 4, p[11] = 2;
            return 12;
        case TcpOptions::syn_nots:
            p[0] = 2, p[1] = 4;
            put16(p + 2, f.mss);
            p[4] = 1, p[5] = 1;
            p[6] = 4, p[7] = 2;
            p[8] = 1;
            p[9] = 3, p[10] = 3, p[11] = f.wscale;
            return 12;
        case TcpOptions::timestamps:
            p[0] = 1, p[1] = 1;
            p[2] = 8, p[3] = 10;
            put32(p + 4, f.tsval);
            put32(p + 8, f.tsecr);
            return 12;
    }
    return 0;
}

}  // namespace

uint32_t tcp_options_len(TcpOptions o) noexcept {
    switch (o) {
        case TcpOptions::none:
            return 0;
        case TcpOptions::mss:
            return 4;
        case TcpOptions::syn_linux:
            return 20;
        case TcpOptions::syn_windows:
        case TcpOptions::syn_nots:
        case TcpOptions::timestamps:
            return 12;
    }
    return 0;
}

const uint8_t* payload_pattern() noexcept { return tables().bytes.data(); }

uint32_t ones_sum(const uint8_t* p, uint32_t len, uint32_t acc) noexcept {
    uint64_t s = acc;
    uint32_t i = 0;
    for (; i + 1 < len; i += 2) s += static_cast<uint32_t>(p[i]) << 8 | p[i + 1];
    if (i < len) s += static_cast<uint32_t>(p[i]) << 8;
    while (s >> 32) s = (s & 0xffffffffu) + (s >> 32);
    return static_cast<uint32_t>(s);
}

uint16_t fold_checksum(uint32_t acc) noexcept {
    uint64_t s = acc;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s & 0xffff);
}

uint32_t write_frame(const Frame& f, uint8_t* out, uint32_t snaplen) noexcept {
    uint8_t* p = out;
    std::memcpy(p, f.dst_mac, 6);
    std::memcpy(p + 6, f.src_mac, 6);
    p += 12;
    if (f.vlan != 0) {
        put16(p, 0x8100);
        put16(p + 2, static_cast<uint16_t>(f.vlan & 0x0fff));
        p += 4;
    }
    put16(p, f.ipv6 ? 0x86dd : 0x0800);
    p += 2;

    const uint32_t opt_len = tcp_options_len(f.options);
    const uint32_t tcp_hlen = 20 + opt_len;
    const uint32_t payload = f.payload_len <= kMaxPayload ? f.payload_len : kMaxPayload;
    const uint32_t tcp_len = tcp_hlen + payload;

    uint8_t* ip = p;
    uint32_t pseudo;
    if (!f.ipv6) {
        // RFC 791 section 3.1; DF set, no options.
        ip[0] = 0x45;
        ip[1] = 0;
        put16(ip + 2, static_cast<uint16_t>(20 + tcp_len));
        put16(ip + 4, f.ip_id);
        put16(ip + 6, 0x4000);
        ip[8] = f.ttl;
        ip[9] = 6;
        ip[10] = ip[11] = 0;
        std::memcpy(ip + 12, f.src_ip, 4);
        std::memcpy(ip + 16, f.dst_ip, 4);
        put16(ip + 10, fold_checksum(ones_sum(ip, 20)));
        // RFC 9293 section 3.1 pseudo-header: addresses, zero, protocol, TCP length.
        pseudo = ones_sum(ip + 12, 8, 6 + tcp_len);
        p += 20;
    } else {
        // RFC 8200 section 3.
        const uint32_t vtf = 0x60000000u | (f.flow_label & 0xfffffu);
        put32(ip, vtf);
        put16(ip + 4, static_cast<uint16_t>(tcp_len));
        ip[6] = 6;
        ip[7] = f.ttl;
        std::memcpy(ip + 8, f.src_ip, 16);
        std::memcpy(ip + 24, f.dst_ip, 16);
        // RFC 8200 section 8.1 pseudo-header: addresses, upper-layer length, next header.
        pseudo = ones_sum(ip + 8, 32, 6 + tcp_len);
        p += 40;
    }

    uint8_t* tcp = p;
    put16(tcp, f.sport);
    put16(tcp + 2, f.dport);
    put32(tcp + 4, f.seq);
    put32(tcp + 8, f.ack);
    tcp[12] = static_cast<uint8_t>((tcp_hlen / 4) << 4);
    tcp[13] = f.flags;
    put16(tcp + 14, f.window);
    tcp[16] = tcp[17] = 0;
    put16(tcp + 18, f.urgent);
    put_options(tcp + 20, f);
    const uint32_t sum = ones_sum(tcp, tcp_hlen, pseudo) + tables().prefix_sum[payload];
    put16(tcp + 16, fold_checksum(sum));
    p += tcp_hlen;

    const uint32_t headers = static_cast<uint32_t>(p - out);
    const uint32_t wire_unpadded = headers + payload;
    if (payload != 0) {
        const uint32_t room = snaplen > headers ? snaplen - headers : 0;
        std::memcpy(p, tables().bytes.data(), payload < room ? payload : room);
    }
    if (wire_unpadded < kMinFrameLen) {
        // Ethernet padding, not counted by the IP length (RFC 894).
        std::memset(out + wire_unpadded, 0, kMinFrameLen - wire_unpadded);
        return kMinFrameLen;
    }
    return wire_unpadded;
}

}  // namespace stateline::gen
