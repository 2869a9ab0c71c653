// SPDX-License-Identifier: BSD-3-Clause
// PacketBuilder: crafted frames for unit tests, written outermost layer first so a test reads
// like the packet it sends:
//
//   auto syn = PacketBuilder().eth().vlan(100).ipv4("10.0.0.1", "10.0.0.2")
//                  .tcp(1234, 80, SYN, 1000, 0).mss(1460).wscale(7).sack_permitted()
//                  .build();
//
// build() derives everything that depends on the layers around a header, so tests state only
// what they mean:
//   - the EtherType of Ethernet, Linux cooked (SLL) and VLAN headers, from the next layer
//     (VLAN -> its TPID, IPv4 0x0800, IPv6 0x86dd, ARP 0x0806; otherwise 0x88b5, the IEEE
//     local-experimental EtherType), unless ethertype() set one;
//   - the IPv4 protocol and IPv6 next header, from the next layer (TCP 6, UDP 17, ICMP 1 or 58,
//     an IPv6 extension header its own number; nothing or a bare payload: 253 for IPv4,
//     the RFC 3692 experimental value, 59 "no next header" for IPv6), unless ip_proto() set one;
//   - lengths: IPv4 header length and total length, IPv6 payload length, extension header
//     lengths, TCP data offset, UDP length;
//   - checksums: IPv4 header, TCP, UDP, ICMP and ICMPv6 (with the pseudo-header), so the frames
//     can also be written to a pcap and read by tools that verify them. A transport checksum
//     is not computed inside a fragment (it would cover bytes that are not there): it stays 0.
// trailer() appends bytes no length counts, like the padding of a short Ethernet frame.
//
// Options (IPv4 and TCP) are padded to a 4-byte boundary with zeros (end of option list).
// Modifiers such as mss() or fragment() apply to the most recent layer of their kind and throw
// std::logic_error when there is none. To craft a malformed frame, build a valid one and patch
// bytes at offset_of(layer) + field offset.
//
// Thread safety: a plain value; not for sharing between threads while being built.
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace stateline::test {

// TCP flags, as in a sequence chart (RFC 9293 section 3.1).
inline constexpr uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20,
                         ECE = 0x40, CWR = 0x80;

class PacketBuilder {
public:
    enum class Layer : uint8_t {
        eth,
        linux_sll,
        vlan,
        ipv4,
        ipv6,
        ipv6_ext,  // any IPv6 extension header
        tcp,
        udp,
        icmp,
        arp,
        payload,
        trailer,
    };

    // IPv6 extension header numbers (RFC 8200 section 4; AH RFC 4302).
    static constexpr uint8_t kHopByHop = 0, kRouting = 43, kFragment = 44, kAh = 51, kDestOpts = 60;

    // ---- Link layer -------------------------------------------------------------------------

    // Ethernet II header, 14 bytes. MACs are the low 48 bits of the arguments.
    PacketBuilder& eth(uint64_t src_mac = 0x020000000001, uint64_t dst_mac = 0x020000000002) {
        Part p(Layer::eth);
        p.hdr.resize(14);
        put_mac(p.hdr.data(), dst_mac);
        put_mac(p.hdr.data() + 6, src_mac);
        parts_.push_back(std::move(p));
        return *this;
    }

    // Linux cooked capture (SLL v1) header, 16 bytes: packet type (0 to us, 4 outgoing),
    // ARPHRD type (1 Ethernet), a 6-byte link-layer address, protocol.
    PacketBuilder& linux_sll(uint16_t packet_type = 0, uint16_t arphrd = 1) {
        Part p(Layer::linux_sll);
        p.hdr.resize(16);
        put16(p.hdr.data(), packet_type);
        put16(p.hdr.data() + 2, arphrd);
        put16(p.hdr.data() + 4, 6);
        put_mac(p.hdr.data() + 6, 0x020000000001);
        parts_.push_back(std::move(p));
        return *this;
    }

    // An 802.1Q tag (or 802.1ad with tpid 0x88a8, ...): 4 bytes, TPID in the previous header.
    PacketBuilder& vlan(uint16_t vid, uint16_t tpid = 0x8100, uint8_t pcp = 0) {
        Part p(Layer::vlan);
        p.hdr.resize(4);
        put16(p.hdr.data(), static_cast<uint16_t>((pcp & 7u) << 13 | (vid & 0x0fffu)));
        p.tpid = tpid;
        parts_.push_back(std::move(p));
        return *this;
    }

    // Sets the type field of the most recent Ethernet, SLL or VLAN header explicitly (values
    // below 0x0600 are an 802.3 length).
    PacketBuilder& ethertype(uint16_t type) {
        last_of({Layer::eth, Layer::linux_sll, Layer::vlan}, "ethertype()").next = type;
        return *this;
    }

    // ---- IP ---------------------------------------------------------------------------------

    PacketBuilder& ipv4(const std::string& src, const std::string& dst, uint8_t ttl = 64) {
        Part p(Layer::ipv4);
        p.hdr.resize(20);
        p.hdr[1] = 0;                     // DSCP/ECN
        put16(p.hdr.data() + 4, 0x1234);  // identification
        put16(p.hdr.data() + 6, 0x4000);  // DF, as Linux sends TCP
        p.hdr[8] = ttl;
        parse_addr(AF_INET, src, p.hdr.data() + 12);
        parse_addr(AF_INET, dst, p.hdr.data() + 16);
        parts_.push_back(std::move(p));
        return *this;
    }

    // Appends raw option bytes to the most recent IPv4 header (padded to 4 bytes at build).
    PacketBuilder& ip_options(std::initializer_list<uint8_t> bytes) {
        auto& p = last_of({Layer::ipv4}, "ip_options()");
        p.opts.insert(p.opts.end(), bytes.begin(), bytes.end());
        return *this;
    }

    // Makes the most recent IPv4 header a fragment: offset in 8-byte units, MF flag.
    PacketBuilder& fragment(uint16_t offset_units, bool more_fragments) {
        auto& p = last_of({Layer::ipv4}, "fragment()");
        put16(p.hdr.data() + 6,
              static_cast<uint16_t>((more_fragments ? 0x2000u : 0u) | (offset_units & 0x1fffu)));
        p.fragmented = offset_units != 0 || more_fragments;
        return *this;
    }

    PacketBuilder& ip_id(uint16_t id) {
        put16(last_of({Layer::ipv4}, "ip_id()").hdr.data() + 4, id);
        return *this;
    }

    // Sets the protocol / next header of the most recent IPv4, IPv6 or extension header.
    PacketBuilder& ip_proto(uint8_t proto) {
        last_of({Layer::ipv4, Layer::ipv6, Layer::ipv6_ext}, "ip_proto()").next = proto;
        return *this;
    }

    PacketBuilder& ipv6(const std::string& src, const std::string& dst, uint8_t hop_limit = 64) {
        Part p(Layer::ipv6);
        p.hdr.resize(40);
        p.hdr[0] = 0x60;
        p.hdr[7] = hop_limit;
        parse_addr(AF_INET6, src, p.hdr.data() + 8);
        parse_addr(AF_INET6, dst, p.hdr.data() + 24);
        parts_.push_back(std::move(p));
        return *this;
    }

    // Hop-by-hop options, (1 + extra_units) * 8 bytes of PadN.
    PacketBuilder& hop_by_hop(uint8_t extra_units = 0) {
        return options_ext(kHopByHop, extra_units);
    }

    // Destination options, (1 + extra_units) * 8 bytes of PadN.
    PacketBuilder& dest_opts(uint8_t extra_units = 0) {
        return options_ext(kDestOpts, extra_units);
    }

    // Routing header with segments left 0 (ignored by every node, RFC 8200 section 4.4) of the
    // experimental routing type 253 (RFC 4727); (1 + extra_units) * 8 bytes.
    PacketBuilder& routing(uint8_t extra_units = 0) {
        Part p = ext_part(kRouting, static_cast<size_t>(extra_units + 1) * 8);
        p.hdr[1] = extra_units;
        p.hdr[2] = 253;
        p.hdr[3] = 0;
        parts_.push_back(std::move(p));
        return *this;
    }

    // Fragment header, 8 bytes: offset in 8-byte units, M flag, identification.
    PacketBuilder& ipv6_fragment(uint16_t offset_units, bool more_fragments,
                                 uint32_t id = 0x12345678) {
        Part p = ext_part(kFragment, 8);
        put16(p.hdr.data() + 2,
              static_cast<uint16_t>((offset_units & 0x1fffu) << 3 | (more_fragments ? 1u : 0u)));
        put32(p.hdr.data() + 4, id);
        p.fragmented = true;
        parts_.push_back(std::move(p));
        return *this;
    }

    // Authentication header: 12 fixed bytes plus icv_words * 4 bytes of ICV; its length field
    // counts 4-byte words minus 2 (RFC 4302 section 2.2).
    PacketBuilder& ah(uint8_t icv_words = 3, uint32_t spi = 0x100) {
        const size_t len = 12 + static_cast<size_t>(icv_words) * 4;
        Part p = ext_part(kAh, len);
        p.hdr[1] = static_cast<uint8_t>(len / 4 - 2);
        put32(p.hdr.data() + 4, spi);
        put32(p.hdr.data() + 8, 1);
        parts_.push_back(std::move(p));
        return *this;
    }

    // ---- Transport --------------------------------------------------------------------------

    PacketBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq = 0,
                       uint32_t ack = 0, uint16_t window = 65535) {
        Part p(Layer::tcp);
        p.hdr.resize(20);
        put16(p.hdr.data(), sport);
        put16(p.hdr.data() + 2, dport);
        put32(p.hdr.data() + 4, seq);
        put32(p.hdr.data() + 8, ack);
        p.hdr[13] = flags;
        put16(p.hdr.data() + 14, window);
        parts_.push_back(std::move(p));
        return *this;
    }

    // TCP options, appended in call order to the most recent TCP header.
    PacketBuilder& mss(uint16_t v) { return tcp_option_bytes({2, 4, hi(v), lo(v)}); }
    // Preceded by a NOP so the options after it stay 4-byte aligned, as Linux sends it.
    PacketBuilder& wscale(uint8_t shift) { return tcp_option_bytes({1, 3, 3, shift}); }
    PacketBuilder& sack_permitted() { return tcp_option_bytes({4, 2}); }
    PacketBuilder& timestamps(uint32_t tsval, uint32_t tsecr) {
        tcp_option_bytes({1, 1, 8, 10});  // two NOPs align the values, as Linux sends them
        return tcp_option_bytes({b3(tsval), b2(tsval), b1(tsval), b0(tsval), b3(tsecr), b2(tsecr),
                                 b1(tsecr), b0(tsecr)});
    }
    // SACK blocks as (left edge, right edge) pairs (RFC 2018).
    PacketBuilder& sack(std::initializer_list<std::pair<uint32_t, uint32_t>> blocks) {
        tcp_option_bytes({1, 1, 5, static_cast<uint8_t>(2 + 8 * blocks.size())});
        for (const auto& [l, r] : blocks)
            tcp_option_bytes({b3(l), b2(l), b1(l), b0(l), b3(r), b2(r), b1(r), b0(r)});
        return *this;
    }
    PacketBuilder& nop() { return tcp_option_bytes({1}); }
    PacketBuilder& eol() { return tcp_option_bytes({0}); }
    // Raw option bytes, for malformed or unusual options.
    PacketBuilder& tcp_option_bytes(std::initializer_list<uint8_t> bytes) {
        auto& p = last_of({Layer::tcp}, "a TCP option");
        p.opts.insert(p.opts.end(), bytes.begin(), bytes.end());
        return *this;
    }
    PacketBuilder& tcp_option_bytes(const std::vector<uint8_t>& bytes) {
        auto& p = last_of({Layer::tcp}, "a TCP option");
        p.opts.insert(p.opts.end(), bytes.begin(), bytes.end());
        return *this;
    }

    PacketBuilder& udp(uint16_t sport, uint16_t dport) {
        Part p(Layer::udp);
        p.hdr.resize(8);
        put16(p.hdr.data(), sport);
        put16(p.hdr.data() + 2, dport);
        parts_.push_back(std::move(p));
        return *this;
    }

    // ICMP (over IPv4) or ICMPv6 (over IPv6) header; default echo request of either family.
    PacketBuilder& icmp(int type = -1, uint8_t code = 0) {
        Part p(Layer::icmp);
        p.hdr.resize(8);
        p.icmp_type = type;
        p.hdr[1] = code;
        put16(p.hdr.data() + 4, 1);  // identifier
        put16(p.hdr.data() + 6, 1);  // sequence
        parts_.push_back(std::move(p));
        return *this;
    }

    // ARP request for Ethernet/IPv4, 28 bytes (RFC 826).
    PacketBuilder& arp(const std::string& sender_ip = "10.0.0.1",
                       const std::string& target_ip = "10.0.0.2") {
        Part p(Layer::arp);
        p.hdr.resize(28);
        put16(p.hdr.data(), 1);
        put16(p.hdr.data() + 2, 0x0800);
        p.hdr[4] = 6;
        p.hdr[5] = 4;
        put16(p.hdr.data() + 6, 1);
        put_mac(p.hdr.data() + 8, 0x020000000001);
        parse_addr(AF_INET, sender_ip, p.hdr.data() + 14);
        parse_addr(AF_INET, target_ip, p.hdr.data() + 24);
        parts_.push_back(std::move(p));
        return *this;
    }

    // ---- Data -------------------------------------------------------------------------------

    // n bytes of payload; byte i is (i & 0xff) so truncations are easy to spot in a dump.
    PacketBuilder& payload(size_t n) {
        Part p(Layer::payload);
        p.hdr.resize(n);
        for (size_t i = 0; i < n; ++i) p.hdr[i] = static_cast<uint8_t>(i);
        parts_.push_back(std::move(p));
        return *this;
    }
    PacketBuilder& payload(std::vector<uint8_t> bytes) {
        Part p(Layer::payload);
        p.hdr = std::move(bytes);
        parts_.push_back(std::move(p));
        return *this;
    }

    // n bytes after the end of everything, counted by no length field (Ethernet padding).
    PacketBuilder& trailer(size_t n, uint8_t fill = 0) {
        Part p(Layer::trailer);
        p.hdr.assign(n, fill);
        parts_.push_back(std::move(p));
        return *this;
    }

    // ---- Output -----------------------------------------------------------------------------

    std::vector<uint8_t> build() const {
        std::vector<std::vector<uint8_t>> r;
        r.reserve(parts_.size());
        for (const Part& p : parts_) r.push_back(render(p));

        std::vector<size_t> off(parts_.size() + 1, 0);
        for (size_t i = 0; i < parts_.size(); ++i) off[i + 1] = off[i] + r[i].size();
        size_t body_end = off[parts_.size()];
        for (size_t i = parts_.size(); i > 0 && parts_[i - 1].kind == Layer::trailer; --i)
            body_end = off[i - 1];

        for (size_t i = 0; i < parts_.size(); ++i) {
            const Part& p = parts_[i];
            uint8_t* h = r[i].data();
            const Part* next = i + 1 < parts_.size() ? &parts_[i + 1] : nullptr;
            switch (p.kind) {
                case Layer::eth:
                    put16(h + 12, link_type(p, next));
                    break;
                case Layer::linux_sll:
                    put16(h + 14, link_type(p, next));
                    break;
                case Layer::vlan:
                    put16(h + 2, link_type(p, next));
                    break;
                case Layer::ipv4: {
                    const size_t ihl = r[i].size();
                    if (ihl > 60) throw std::logic_error("PacketBuilder: IPv4 options > 40 bytes");
                    h[0] = static_cast<uint8_t>(0x40 | ihl / 4);
                    put16(h + 2, checked16(body_end - off[i], "IPv4 total length"));
                    h[9] = ip_next(p, next, false);
                    break;
                }
                case Layer::ipv6:
                    put16(h + 4, checked16(body_end - off[i] - 40, "IPv6 payload length"));
                    h[6] = ip_next(p, next, true);
                    break;
                case Layer::ipv6_ext:
                    h[0] = ip_next(p, next, true);
                    break;
                case Layer::tcp: {
                    const size_t doff = r[i].size();
                    if (doff > 60) throw std::logic_error("PacketBuilder: TCP options > 40 bytes");
                    h[12] = static_cast<uint8_t>(doff / 4 << 4);
                    break;
                }
                case Layer::udp:
                    put16(h + 4, checked16(body_end - off[i], "UDP length"));
                    break;
                case Layer::icmp:
                    if (p.icmp_type < 0)
                        h[0] = enclosing_is_v6(i) ? 128 : 8;  // echo request
                    else
                        h[0] = static_cast<uint8_t>(p.icmp_type);
                    break;
                default:
                    break;
            }
        }

        std::vector<uint8_t> out;
        out.reserve(off[parts_.size()]);
        for (const auto& b : r) out.insert(out.end(), b.begin(), b.end());

        // Checksums last, over the final bytes: IP headers first, then transport.
        for (size_t i = 0; i < parts_.size(); ++i) {
            if (parts_[i].kind != Layer::ipv4) continue;
            uint8_t* h = out.data() + off[i];
            const size_t ihl = static_cast<size_t>(h[0] & 0x0f) * 4;
            put16(h + 10, fold(sum(h, ihl, 0)));
        }
        for (size_t i = 0; i < parts_.size(); ++i) {
            const Layer k = parts_[i].kind;
            if (k != Layer::tcp && k != Layer::udp && k != Layer::icmp) continue;
            const size_t ip = enclosing_ip(i);
            if (ip == npos || in_fragment(ip, i)) continue;
            const uint8_t* iph = out.data() + off[ip];
            const bool v6 = parts_[ip].kind == Layer::ipv6;
            const size_t l4_len = body_end - off[i];
            const uint8_t proto = k == Layer::tcp ? 6 : k == Layer::udp ? 17 : 58;
            uint32_t acc = 0;
            if (v6) {
                acc = sum(iph + 8, 32, acc);
                acc += static_cast<uint32_t>(l4_len >> 16) + static_cast<uint32_t>(l4_len & 0xffff);
                acc += proto;
            } else if (k != Layer::icmp) {  // ICMPv4 has no pseudo-header
                acc = sum(iph + 12, 8, acc);
                acc += static_cast<uint32_t>(l4_len) + proto;
            }
            uint8_t* l4 = out.data() + off[i];
            const size_t csum_at = k == Layer::tcp ? 16 : k == Layer::udp ? 6 : 2;
            put16(l4 + csum_at, 0);
            uint16_t c = fold(sum(l4, l4_len, acc));
            if (k == Layer::udp && c == 0) c = 0xffff;  // RFC 768: 0 means "no checksum"
            put16(l4 + csum_at, c);
        }
        return out;
    }

    // Offset in build()'s output of the nth layer of a kind (0 = the first).
    size_t offset_of(Layer kind, unsigned nth = 0) const {
        size_t off = 0;
        for (const Part& p : parts_) {
            if (p.kind == kind && nth-- == 0) return off;
            off += rendered_size(p);
        }
        throw std::logic_error("PacketBuilder::offset_of: no such layer");
    }

    // Offset just past the nth layer of a kind (for a header: where the next one starts).
    size_t end_of(Layer kind, unsigned nth = 0) const {
        size_t off = 0;
        for (const Part& p : parts_) {
            off += rendered_size(p);
            if (p.kind == kind && nth-- == 0) return off;
        }
        throw std::logic_error("PacketBuilder::end_of: no such layer");
    }

private:
    static constexpr size_t npos = static_cast<size_t>(-1);

    struct Part {
        explicit Part(Layer k) : kind(k) {}
        Layer kind;
        std::vector<uint8_t> hdr{};   // fixed part; derived fields are filled by build()
        std::vector<uint8_t> opts{};  // IPv4 or TCP options, padded by render()
        int next = -1;                // explicit EtherType or protocol; -1: derive
        uint16_t tpid = 0;            // VLAN: the TPID announcing this tag
        uint8_t ext_type = 0;         // ipv6_ext: its next-header number
        int icmp_type = -1;           // ICMP: -1 for the family's echo request
        bool fragmented = false;      // IPv4 with MF or offset, or an IPv6 fragment header
    };

    std::vector<Part> parts_;

    static size_t pad4(size_t n) { return (n + 3) & ~size_t{3}; }
    static size_t rendered_size(const Part& p) { return p.hdr.size() + pad4(p.opts.size()); }

    static std::vector<uint8_t> render(const Part& p) {
        std::vector<uint8_t> b = p.hdr;
        b.insert(b.end(), p.opts.begin(), p.opts.end());
        b.resize(rendered_size(p), 0);
        return b;
    }

    Part& last_of(std::initializer_list<Layer> kinds, const char* what) {
        for (size_t i = parts_.size(); i > 0; --i)
            for (Layer k : kinds)
                if (parts_[i - 1].kind == k) return parts_[i - 1];
        throw std::logic_error(std::string("PacketBuilder: no layer for ") + what);
    }

    static Part ext_part(uint8_t type, size_t len) {
        Part p(Layer::ipv6_ext);
        p.ext_type = type;
        p.hdr.assign(len, 0);
        return p;
    }

    PacketBuilder& options_ext(uint8_t type, uint8_t extra_units) {
        const size_t len = static_cast<size_t>(extra_units + 1) * 8;
        Part p = ext_part(type, len);
        p.hdr[1] = extra_units;
        p.hdr[2] = 1;  // PadN over the rest (RFC 8200 section 4.2)
        p.hdr[3] = static_cast<uint8_t>(len - 4);
        parts_.push_back(std::move(p));
        return *this;
    }

    static uint16_t link_type(const Part& p, const Part* next) {
        if (p.next >= 0) return static_cast<uint16_t>(p.next);
        if (next == nullptr) return 0x88b5;
        switch (next->kind) {
            case Layer::vlan:
                return next->tpid;
            case Layer::ipv4:
                return 0x0800;
            case Layer::ipv6:
                return 0x86dd;
            case Layer::arp:
                return 0x0806;
            default:
                return 0x88b5;
        }
    }

    static uint8_t ip_next(const Part& p, const Part* next, bool v6) {
        if (p.next >= 0) return static_cast<uint8_t>(p.next);
        if (next == nullptr) return v6 ? 59 : 253;
        switch (next->kind) {
            case Layer::tcp:
                return 6;
            case Layer::udp:
                return 17;
            case Layer::icmp:
                return v6 ? 58 : 1;
            case Layer::ipv6_ext:
                return next->ext_type;
            case Layer::ipv4:
                return 4;
            case Layer::ipv6:
                return 41;
            default:
                return v6 ? 59 : 253;
        }
    }

    size_t enclosing_ip(size_t i) const {
        for (size_t j = i; j > 0; --j)
            if (parts_[j - 1].kind == Layer::ipv4 || parts_[j - 1].kind == Layer::ipv6)
                return j - 1;
        return npos;
    }

    bool enclosing_is_v6(size_t i) const {
        const size_t ip = enclosing_ip(i);
        return ip != npos && parts_[ip].kind == Layer::ipv6;
    }

    bool in_fragment(size_t ip, size_t upto) const {
        for (size_t j = ip; j < upto; ++j)
            if (parts_[j].fragmented) return true;
        return false;
    }

    static uint16_t checked16(size_t v, const char* what) {
        if (v > 0xffff) throw std::logic_error(std::string("PacketBuilder: ") + what + " > 65535");
        return static_cast<uint16_t>(v);
    }

    // RFC 1071 one's-complement sum.
    static uint32_t sum(const uint8_t* p, size_t n, uint32_t acc) {
        uint64_t a = acc;
        for (size_t i = 0; i + 1 < n; i += 2) a += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
        if (n & 1) a += static_cast<uint32_t>(p[n - 1]) << 8;
        while (a >> 32) a = (a & 0xffffffff) + (a >> 32);
        return static_cast<uint32_t>(a);
    }
    static uint16_t fold(uint32_t acc) {
        while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
        return static_cast<uint16_t>(~acc);
    }

    static void parse_addr(int af, const std::string& s, uint8_t* out) {
        if (inet_pton(af, s.c_str(), out) != 1)
            throw std::invalid_argument("PacketBuilder: bad address " + s);
    }

    static void put16(uint8_t* p, uint16_t v) {
        p[0] = static_cast<uint8_t>(v >> 8);
        p[1] = static_cast<uint8_t>(v);
    }
    static void put32(uint8_t* p, uint32_t v) {
        put16(p, static_cast<uint16_t>(v >> 16));
        put16(p + 2, static_cast<uint16_t>(v));
    }
    static void put_mac(uint8_t* p, uint64_t mac) {
        for (int i = 0; i < 6; ++i) p[i] = static_cast<uint8_t>(mac >> (8 * (5 - i)));
    }
    static uint8_t hi(uint16_t v) { return static_cast<uint8_t>(v >> 8); }
    static uint8_t lo(uint16_t v) { return static_cast<uint8_t>(v); }
    static uint8_t b3(uint32_t v) { return static_cast<uint8_t>(v >> 24); }
    static uint8_t b2(uint32_t v) { return static_cast<uint8_t>(v >> 16); }
    static uint8_t b1(uint32_t v) { return static_cast<uint8_t>(v >> 8); }
    static uint8_t b0(uint32_t v) { return static_cast<uint8_t>(v); }
};

}  // namespace stateline::test
