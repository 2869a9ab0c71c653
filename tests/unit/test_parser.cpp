// SPDX-License-Identifier: BSD-3-Clause
// Frame parser and flow key: outcomes, key canonicalisation, VLANs, IPv4/IPv6 headers and
// fragments, TCP options, truncation at every length, flow_hash and format_endpoint.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "flow_key.hpp"
#include "packet_builder.hpp"
#include "parser.hpp"

namespace {

using stateline::flow::FlowKey;
using stateline::flow::kVlanPresent;
using stateline::flow::Side;
using stateline::packet::kMaxIpv6ExtHeaders;
using stateline::packet::kMaxVlanTags;
using stateline::packet::kOutcomeCount;
using stateline::packet::kOutcomeInfo;
using stateline::packet::LinkType;
using stateline::packet::Outcome;
using stateline::packet::OutcomeCategory;
using stateline::packet::PacketMeta;
using stateline::packet::info_bit::bad_tcp_options;
using stateline::packet::info_bit::has_mss;
using stateline::packet::info_bit::has_sack_permitted;
using stateline::packet::info_bit::has_timestamp;
using stateline::packet::info_bit::has_wscale;
using stateline::packet::info_bit::ip_first_fragment;
using stateline::packet::info_bit::payload_truncated;
using namespace stateline::test;
using L = PacketBuilder::Layer;

constexpr uint8_t kIpv6Bit = stateline::packet::info_bit::ipv6;

// Outcomes produced by any test, checked by the last test.
std::array<unsigned, kOutcomeCount> g_hits{};

// Parses the first `len` bytes of a frame from an exactly sized heap copy, so that
// AddressSanitizer reports any read past `len`.
Outcome parse(const std::vector<uint8_t>& frame, PacketMeta& meta, size_t len,
              LinkType link = LinkType::ethernet) {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[len]);
    if (len != 0) std::memcpy(copy.get(), frame.data(), len);
    const Outcome o =
        stateline::packet::parse_frame(copy.get(), static_cast<uint32_t>(len), link, meta);
    EXPECT_EQ(o, meta.outcome);
    EXPECT_LT(static_cast<unsigned>(o), kOutcomeCount);
    if (static_cast<unsigned>(o) < kOutcomeCount) ++g_hits[static_cast<unsigned>(o)];
    return o;
}

Outcome parse(const std::vector<uint8_t>& frame, PacketMeta& meta,
              LinkType link = LinkType::ethernet) {
    return parse(frame, meta, frame.size(), link);
}

Outcome outcome_of(const std::vector<uint8_t>& frame, LinkType link = LinkType::ethernet) {
    PacketMeta m{};
    return parse(frame, m, link);
}

OutcomeCategory category(Outcome o) { return kOutcomeInfo[static_cast<unsigned>(o)].category; }
const char* name(Outcome o) { return kOutcomeInfo[static_cast<unsigned>(o)].name; }

std::array<uint8_t, 16> v4mapped(const char* s) {
    std::array<uint8_t, 16> a{};
    a[10] = a[11] = 0xff;
    EXPECT_EQ(inet_pton(AF_INET, s, a.data() + 12), 1);
    return a;
}

std::array<uint8_t, 16> v6(const char* s) {
    std::array<uint8_t, 16> a{};
    EXPECT_EQ(inet_pton(AF_INET6, s, a.data()), 1);
    return a;
}

bool addr_eq(const uint8_t* a, const std::array<uint8_t, 16>& b) {
    return std::memcmp(a, b.data(), 16) == 0;
}

std::string endpoint(const FlowKey& k, Side s) {
    char buf[64];
    return stateline::flow::format_endpoint(k, s, buf, sizeof(buf));
}

// A full-featured SYN: the reference frame for option and truncation tests.
PacketBuilder syn_v4() {
    return PacketBuilder()
        .eth()
        .ipv4("10.0.0.1", "10.0.0.2")
        .tcp(40000, 80, SYN, 1000, 0, 64240)
        .mss(1460)
        .sack_permitted()
        .timestamps(111, 0)
        .wscale(7);
}

// ---------------------------------------------------------------------------------------------
// Outcome table

TEST(OutcomeInfo, TableMatchesEnum) {
    EXPECT_STREQ(kOutcomeInfo[static_cast<unsigned>(Outcome::tcp)].name, "tcp");
    EXPECT_STREQ(name(Outcome::tcp_bad_data_offset), "tcp_bad_data_offset");
    EXPECT_STREQ(name(Outcome::arp), "arp");
    std::set<std::string> names;
    unsigned tracked = 0;
    for (unsigned i = 0; i < kOutcomeCount; ++i) {
        ASSERT_NE(kOutcomeInfo[i].name, nullptr);
        ASSERT_NE(kOutcomeInfo[i].help, nullptr);
        EXPECT_GT(std::strlen(kOutcomeInfo[i].help), 0u);
        names.insert(kOutcomeInfo[i].name);
        if (kOutcomeInfo[i].category == OutcomeCategory::tracked) ++tracked;
    }
    EXPECT_EQ(names.size(), kOutcomeCount);
    EXPECT_EQ(tracked, 1u);
    EXPECT_EQ(category(Outcome::tcp), OutcomeCategory::tracked);
    EXPECT_EQ(category(Outcome::tcp_fragment), OutcomeCategory::counted);
    EXPECT_EQ(category(Outcome::eth_truncated), OutcomeCategory::malformed);
}

// ---------------------------------------------------------------------------------------------
// TCP over IPv4

TEST(ParserTcp, Ipv4SynFields) {
    PacketBuilder b = syn_v4();
    b.payload(0);
    const auto f = b.build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.seq, 1000u);
    EXPECT_EQ(m.ack, 0u);
    EXPECT_EQ(m.window, 64240);
    EXPECT_EQ(m.tcp_flags, SYN);
    EXPECT_EQ(m.mss, 1460);
    EXPECT_EQ(m.wscale, 7);
    EXPECT_EQ(m.tsval, 111u);
    EXPECT_EQ(m.tsecr, 0u);
    EXPECT_EQ(m.info, has_mss | has_wscale | has_sack_permitted | has_timestamp);
    EXPECT_EQ(m.payload_len, 0u);
    EXPECT_EQ(m.ip_len, 20u + 20u + 24u);  // 22 option bytes, padded
    EXPECT_EQ(m.wire_len, f.size());
    EXPECT_EQ(m.vlan_depth, 0);
    EXPECT_TRUE(addr_eq(m.key.addr[0], v4mapped("10.0.0.1")));
    EXPECT_TRUE(addr_eq(m.key.addr[1], v4mapped("10.0.0.2")));
    EXPECT_EQ(m.key.port[0], 40000);
    EXPECT_EQ(m.key.port[1], 80);
    EXPECT_EQ(m.key.vlan[0], 0);
    EXPECT_EQ(m.key.vlan[1], 0);
    EXPECT_EQ(m.sender, Side::lo);
    EXPECT_EQ(m.hash, stateline::flow::flow_hash(m.key));
}

TEST(ParserTcp, PayloadLengthAndFlags) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("192.168.1.20", "192.168.1.10")
                       .tcp(80, 40000, PSH | ACK, 7, 9, 501)
                       .timestamps(5, 6)
                       .payload(1448)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.payload_len, 1448u);
    EXPECT_EQ(m.ip_len, 20u + 32u + 1448u);
    EXPECT_EQ(m.tcp_flags, PSH | ACK);
    EXPECT_EQ(m.seq, 7u);
    EXPECT_EQ(m.ack, 9u);
    EXPECT_EQ(m.window, 501);
    EXPECT_EQ(m.info, has_timestamp);
    EXPECT_EQ(m.tsval, 5u);
    EXPECT_EQ(m.tsecr, 6u);
    // 192.168.1.10 sorts lower: the sender (192.168.1.20) is side hi.
    EXPECT_EQ(m.sender, Side::hi);
    EXPECT_EQ(m.key.port[0], 40000);
    EXPECT_EQ(m.key.port[1], 80);
}

TEST(ParserTcp, AllFlagBitsKept) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1, 2, FIN | SYN | RST | PSH | ACK | URG | ECE | CWR)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.tcp_flags, 0xff);
}

TEST(ParserTcp, EthernetPaddingIgnored) {
    // A bare ACK is 54 bytes; the NIC pads it to the 60-byte minimum.
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1234, 80, ACK, 1, 1)
                       .trailer(6, 0xee)
                       .build();
    ASSERT_EQ(f.size(), 60u);
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.payload_len, 0u);
    EXPECT_EQ(m.ip_len, 40u);
    EXPECT_EQ(m.wire_len, 60);
    EXPECT_EQ(m.info & payload_truncated, 0);
}

TEST(ParserTcp, SnaplenTruncatedPayloadStillTracked) {
    PacketBuilder b;
    b.eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, ACK, 1, 1).payload(1000);
    const auto f = b.build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m, b.end_of(L::tcp) + 10), Outcome::tcp);
    EXPECT_EQ(m.payload_len, 1000u);  // the wire length, not what was captured
    EXPECT_EQ(m.ip_len, 1040u);
    EXPECT_EQ(m.wire_len, b.end_of(L::tcp) + 10);
    EXPECT_NE(m.info & payload_truncated, 0);
}

TEST(ParserTcp, WireLenClampedTo16Bits) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1234, 80, ACK)
                       .payload(65000)
                       .trailer(5000)
                       .build();
    ASSERT_GT(f.size(), 65535u);
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.wire_len, 65535);
    EXPECT_EQ(m.payload_len, 65000u);
}

TEST(ParserTcp, NonTcpOutcomeLeavesKeyAndTcpFieldsAlone) {
    PacketMeta m;
    std::memset(&m, 0x5a, sizeof(m));
    PacketMeta before = m;
    const auto f = PacketBuilder().eth().vlan(7).ipv4("10.0.0.1", "10.0.0.2").udp(53, 53).build();
    ASSERT_EQ(parse(f, m), Outcome::ipv4_udp);
    EXPECT_EQ(std::memcmp(&m.key, &before.key, sizeof(FlowKey)), 0);
    EXPECT_EQ(m.hash, before.hash);
    EXPECT_EQ(m.seq, before.seq);
    EXPECT_EQ(m.tcp_flags, before.tcp_flags);
    EXPECT_EQ(m.wire_len, f.size());
    EXPECT_EQ(m.vlan_depth, 1);
    EXPECT_EQ(m.info, 0);
}

// ---------------------------------------------------------------------------------------------
// Key canonicalisation

TEST(ParserKey, BothDirectionsSameKeyOppositeSender) {
    const auto a =
        PacketBuilder().eth().ipv4("10.1.2.3", "172.16.0.9").tcp(51000, 443, SYN, 100).build();
    const auto b = PacketBuilder()
                       .eth(0x020000000002, 0x020000000001)
                       .ipv4("172.16.0.9", "10.1.2.3")
                       .tcp(443, 51000, SYN | ACK, 500, 101)
                       .build();
    PacketMeta ma{}, mb{};
    ASSERT_EQ(parse(a, ma), Outcome::tcp);
    ASSERT_EQ(parse(b, mb), Outcome::tcp);
    EXPECT_TRUE(ma.key == mb.key);
    EXPECT_EQ(ma.hash, mb.hash);
    EXPECT_NE(ma.sender, mb.sender);
    EXPECT_EQ(ma.sender, Side::lo);
}

TEST(ParserKey, SameAddressOrderedByPort) {
    const auto a =
        PacketBuilder().eth().ipv4("127.0.0.1", "127.0.0.1").tcp(5000, 6000, SYN).build();
    const auto b =
        PacketBuilder().eth().ipv4("127.0.0.1", "127.0.0.1").tcp(6000, 5000, SYN | ACK).build();
    PacketMeta ma{}, mb{};
    ASSERT_EQ(parse(a, ma), Outcome::tcp);
    ASSERT_EQ(parse(b, mb), Outcome::tcp);
    EXPECT_TRUE(ma.key == mb.key);
    EXPECT_EQ(ma.key.port[0], 5000);
    EXPECT_EQ(ma.sender, Side::lo);
    EXPECT_EQ(mb.sender, Side::hi);
}

TEST(ParserKey, Ipv6BothDirections) {
    const auto a =
        PacketBuilder().eth().ipv6("2001:db8::20", "2001:db8::10").tcp(33000, 22, SYN).build();
    const auto b = PacketBuilder()
                       .eth()
                       .ipv6("2001:db8::10", "2001:db8::20")
                       .dest_opts()
                       .tcp(22, 33000, SYN | ACK)
                       .build();
    PacketMeta ma{}, mb{};
    ASSERT_EQ(parse(a, ma), Outcome::tcp);
    ASSERT_EQ(parse(b, mb), Outcome::tcp);
    EXPECT_TRUE(ma.key == mb.key);
    EXPECT_EQ(ma.hash, mb.hash);
    EXPECT_EQ(ma.sender, Side::hi);
    EXPECT_EQ(mb.sender, Side::lo);
    EXPECT_TRUE(addr_eq(ma.key.addr[0], v6("2001:db8::10")));
}

TEST(ParserKey, Ipv4AndItsMappedIpv6AreOneFlow) {
    // Both are stored as ::ffff:a.b.c.d; a frame that carries the mapped form in IPv6 is
    // unusual but names the same endpoints.
    const auto a = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, SYN).build();
    const auto b =
        PacketBuilder().eth().ipv6("::ffff:10.0.0.1", "::ffff:10.0.0.2").tcp(1, 2, SYN).build();
    PacketMeta ma{}, mb{};
    ASSERT_EQ(parse(a, ma), Outcome::tcp);
    ASSERT_EQ(parse(b, mb), Outcome::tcp);
    EXPECT_TRUE(ma.key == mb.key);
}

// ---------------------------------------------------------------------------------------------
// VLANs

TEST(ParserVlan, SameFiveTupleInTwoVlansDiffers) {
    auto in_vlan = [](uint16_t vid) {
        return PacketBuilder()
            .eth()
            .vlan(vid)
            .ipv4("10.0.0.1", "10.0.0.2")
            .tcp(1234, 80, SYN)
            .build();
    };
    PacketMeta m100{}, m200{}, untagged{}, prio{};
    ASSERT_EQ(parse(in_vlan(100), m100), Outcome::tcp);
    ASSERT_EQ(parse(in_vlan(200), m200), Outcome::tcp);
    ASSERT_EQ(parse(in_vlan(0), prio), Outcome::tcp);
    ASSERT_EQ(parse(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, SYN).build(),
                    untagged),
              Outcome::tcp);
    EXPECT_FALSE(m100.key == m200.key);
    EXPECT_NE(m100.hash, m200.hash);
    EXPECT_EQ(m100.key.vlan[0], 100 | kVlanPresent);
    EXPECT_EQ(m100.key.vlan[1], 0);
    EXPECT_EQ(m100.vlan_depth, 1);
    // A priority tag (VID 0) is not "untagged".
    EXPECT_EQ(prio.key.vlan[0], kVlanPresent);
    EXPECT_FALSE(prio.key == untagged.key);
}

TEST(ParserVlan, PriorityBitsAreNotPartOfTheKey) {
    const auto a = PacketBuilder()
                       .eth()
                       .vlan(42, 0x8100, 0)
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1, 2, ACK)
                       .build();
    const auto b = PacketBuilder()
                       .eth()
                       .vlan(42, 0x8100, 5)
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1, 2, ACK)
                       .build();
    PacketMeta ma{}, mb{};
    ASSERT_EQ(parse(a, ma), Outcome::tcp);
    ASSERT_EQ(parse(b, mb), Outcome::tcp);
    EXPECT_TRUE(ma.key == mb.key);
    EXPECT_EQ(ma.key.vlan[0], 42 | kVlanPresent);
}

TEST(ParserVlan, QinQ) {
    const auto f = PacketBuilder()
                       .eth()
                       .vlan(10, 0x88a8)
                       .vlan(20, 0x8100)
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1234, 80, SYN)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.vlan_depth, 2);
    EXPECT_EQ(m.key.vlan[0], 10 | kVlanPresent);
    EXPECT_EQ(m.key.vlan[1], 20 | kVlanPresent);

    // Outer and inner are distinct roles: swapping them is another flow.
    const auto swapped = PacketBuilder()
                             .eth()
                             .vlan(20, 0x88a8)
                             .vlan(10, 0x8100)
                             .ipv4("10.0.0.1", "10.0.0.2")
                             .tcp(1234, 80, SYN)
                             .build();
    PacketMeta ms{};
    ASSERT_EQ(parse(swapped, ms), Outcome::tcp);
    EXPECT_FALSE(m.key == ms.key);
}

TEST(ParserVlan, ThreeDeepKeepsOuterTwo) {
    auto three = [](uint16_t third) {
        return PacketBuilder()
            .eth()
            .vlan(10, 0x9100)
            .vlan(20, 0x88a8)
            .vlan(third, 0x8100)
            .ipv6("2001:db8::1", "2001:db8::2")
            .tcp(1234, 80, SYN)
            .build();
    };
    PacketMeta a{}, b{};
    ASSERT_EQ(parse(three(30), a), Outcome::tcp);
    ASSERT_EQ(parse(three(31), b), Outcome::tcp);
    EXPECT_EQ(a.vlan_depth, 3);
    EXPECT_EQ(a.key.vlan[0], 10 | kVlanPresent);
    EXPECT_EQ(a.key.vlan[1], 20 | kVlanPresent);
    EXPECT_TRUE(a.key == b.key);  // the third tag is counted, not keyed
}

TEST(ParserVlan, AllTpidsAndMaximumDepth) {
    PacketBuilder b;
    b.eth();
    const uint16_t tpids[] = {0x8100, 0x88a8, 0x9100, 0x9200};
    for (unsigned i = 0; i < kMaxVlanTags; ++i) b.vlan(static_cast<uint16_t>(i + 1), tpids[i % 4]);
    b.ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, SYN);
    PacketMeta m{};
    ASSERT_EQ(parse(b.build(), m), Outcome::tcp);
    EXPECT_EQ(m.vlan_depth, kMaxVlanTags);
    EXPECT_EQ(m.key.vlan[0], 1 | kVlanPresent);
    EXPECT_EQ(m.key.vlan[1], 2 | kVlanPresent);
}

TEST(ParserVlan, TooDeep) {
    PacketBuilder b;
    b.eth();
    for (unsigned i = 0; i <= kMaxVlanTags; ++i) b.vlan(static_cast<uint16_t>(i + 1));
    b.ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, SYN);
    PacketMeta m{};
    EXPECT_EQ(parse(b.build(), m), Outcome::vlan_too_deep);
    EXPECT_EQ(m.vlan_depth, kMaxVlanTags);
}

TEST(ParserVlan, Truncated) {
    const auto f = PacketBuilder().eth().vlan(5).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build();
    PacketMeta m{};
    for (size_t len = 14; len < 18; ++len) EXPECT_EQ(parse(f, m, len), Outcome::vlan_truncated);
    EXPECT_EQ(parse(f, m, 18), Outcome::ipv4_truncated);
}

TEST(ParserVlan, VlanThenArp) {
    PacketMeta m{};
    EXPECT_EQ(parse(PacketBuilder().eth().vlan(3).arp().build(), m), Outcome::arp);
    EXPECT_EQ(m.vlan_depth, 1);
}

// ---------------------------------------------------------------------------------------------
// Link layer

TEST(ParserLink, EthernetKinds) {
    EXPECT_EQ(outcome_of(PacketBuilder().eth().arp().build()), Outcome::arp);
    // LLDP.
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ethertype(0x88cc).payload(46).build()),
              Outcome::other_ethertype);
    // An 802.3 length field with LLC (spanning tree).
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ethertype(38)
                             .payload({0x42, 0x42, 0x03, 0, 0, 0})
                             .trailer(40)
                             .build()),
              Outcome::other_ethertype);
    // MPLS is not decapsulated.
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ethertype(0x8847).payload(50).build()),
              Outcome::other_ethertype);
    EXPECT_EQ(outcome_of(PacketBuilder().eth().vlan(9).ethertype(0x8864).payload(50).build()),
              Outcome::other_ethertype);
}

TEST(ParserLink, EthernetTruncated) {
    const auto f = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, SYN).build();
    PacketMeta m{};
    for (size_t len = 0; len < 14; ++len) {
        EXPECT_EQ(parse(f, m, len), Outcome::eth_truncated);
        EXPECT_EQ(m.wire_len, len);
    }
}

TEST(ParserLink, LinuxCookedCapture) {
    const auto f = PacketBuilder()
                       .linux_sll(4)
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1234, 80, SYN, 77)
                       .mss(1400)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m, LinkType::linux_sll), Outcome::tcp);
    EXPECT_EQ(m.seq, 77u);
    EXPECT_EQ(m.mss, 1400);
    EXPECT_EQ(m.key.port[0], 1234);
    EXPECT_EQ(m.sender, Side::lo);

    const auto f6 = PacketBuilder().linux_sll().ipv6("::1", "::2").tcp(1, 2, SYN).build();
    ASSERT_EQ(parse(f6, m, LinkType::linux_sll), Outcome::tcp);
    EXPECT_NE(m.info & kIpv6Bit, 0);

    EXPECT_EQ(outcome_of(PacketBuilder().linux_sll().arp().build(), LinkType::linux_sll),
              Outcome::arp);
    const auto tagged =
        PacketBuilder().linux_sll().vlan(12).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, SYN).build();
    ASSERT_EQ(parse(tagged, m, LinkType::linux_sll), Outcome::tcp);
    EXPECT_EQ(m.key.vlan[0], 12 | kVlanPresent);
}

TEST(ParserLink, LinuxCookedOtherProtocols) {
    // ETH_P_802_2 (an LLC frame) and LLDP.
    EXPECT_EQ(outcome_of(PacketBuilder().linux_sll().ethertype(0x0004).payload(20).build(),
                         LinkType::linux_sll),
              Outcome::other_linktype);
    EXPECT_EQ(outcome_of(PacketBuilder().linux_sll().ethertype(0x88cc).payload(20).build(),
                         LinkType::linux_sll),
              Outcome::other_linktype);
}

TEST(ParserLink, LinuxCookedTruncated) {
    const auto f = PacketBuilder().linux_sll().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, SYN).build();
    PacketMeta m{};
    for (size_t len = 0; len < 16; ++len)
        EXPECT_EQ(parse(f, m, len, LinkType::linux_sll), Outcome::sll_truncated);
    EXPECT_EQ(parse(f, m, 16, LinkType::linux_sll), Outcome::ipv4_truncated);
}

// ---------------------------------------------------------------------------------------------
// IPv4

TEST(ParserIpv4, OptionsAreSkipped) {
    // Record route with room for two addresses (11 bytes) and a router alert (4 bytes).
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .ip_options({7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 148, 4, 0, 0})
                       .tcp(1234, 80, SYN, 42)
                       .mss(1200)
                       .payload(10)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.seq, 42u);
    EXPECT_EQ(m.mss, 1200);
    EXPECT_EQ(m.key.port[0], 1234);
    EXPECT_EQ(m.payload_len, 10u);
    EXPECT_EQ(m.ip_len, 36u + 24u + 10u);
}

TEST(ParserIpv4, MaximumHeaderLength) {
    PacketBuilder b;
    b.eth().ipv4("10.0.0.1", "10.0.0.2");
    for (int i = 0; i < 40; ++i) b.ip_options({1});  // 40 NOPs: IHL 15
    b.tcp(1234, 80, SYN).payload(3);
    PacketMeta m{};
    ASSERT_EQ(parse(b.build(), m), Outcome::tcp);
    EXPECT_EQ(m.payload_len, 3u);
}

TEST(ParserIpv4, Protocols) {
    PacketMeta m{};
    EXPECT_EQ(parse(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").udp(5353, 5353).build(), m),
              Outcome::ipv4_udp);
    EXPECT_EQ(m.ip_len, 28u);
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").icmp().build()),
              Outcome::ipv4_icmp);
    EXPECT_EQ(
        outcome_of(
            PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").ip_proto(47).payload(24).build()),
        Outcome::ipv4_other);
    EXPECT_EQ(
        outcome_of(
            PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").ip_proto(50).payload(24).build()),
        Outcome::ipv4_other);
    // IP-in-IP is not decapsulated.
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv4("10.0.0.1", "10.0.0.2")
                             .ipv4("10.1.0.1", "10.1.0.2")
                             .tcp(1, 2, SYN)
                             .build()),
              Outcome::ipv4_other);
}

TEST(ParserIpv4, HeaderErrors) {
    PacketBuilder b;
    b.eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, SYN);
    const size_t ip = b.offset_of(L::ipv4);
    const auto good = b.build();
    PacketMeta m{};

    auto f = good;
    f[ip] = 0x65;  // version 6 under EtherType IPv4
    EXPECT_EQ(parse(f, m), Outcome::ipv4_bad_version);

    f = good;
    f[ip] = 0x44;  // IHL 16 bytes
    EXPECT_EQ(parse(f, m), Outcome::ipv4_bad_ihl);
    f[ip] = 0x40;
    EXPECT_EQ(parse(f, m), Outcome::ipv4_bad_ihl);

    f = good;
    f[ip + 2] = 0;
    f[ip + 3] = 19;  // total length below the header
    EXPECT_EQ(parse(f, m), Outcome::ipv4_bad_total_length);
    f[ip + 3] = 0;  // 0, as a TSO capture might show: still an error by the rule
    EXPECT_EQ(parse(f, m), Outcome::ipv4_bad_total_length);

    for (size_t len = ip; len < ip + 20; ++len)
        EXPECT_EQ(parse(good, m, len), Outcome::ipv4_truncated);

    // IHL says 60 bytes; only 40 captured after the Ethernet header.
    f = good;
    f[ip] = 0x4f;
    EXPECT_EQ(parse(f, m), Outcome::ipv4_truncated);
}

TEST(ParserIpv4, OptionsTotalLengthBelowHeader) {
    PacketBuilder b;
    b.eth().ipv4("10.0.0.1", "10.0.0.2").ip_options({1, 1, 1, 1}).tcp(1, 2, SYN);
    auto f = b.build();
    const size_t ip = b.offset_of(L::ipv4);
    f[ip + 2] = 0;
    f[ip + 3] = 22;  // above 20, below IHL 24
    EXPECT_EQ(outcome_of(f), Outcome::ipv4_bad_total_length);
}

TEST(ParserIpv4, FirstFragmentIsTracked) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .fragment(0, true)
                       .tcp(1234, 80, ACK, 5, 6)
                       .payload(1000)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_NE(m.info & ip_first_fragment, 0);
    EXPECT_EQ(m.payload_len, 1000u);  // this fragment's share
    EXPECT_EQ(m.seq, 5u);
}

TEST(ParserIpv4, LaterFragmentsAreCounted) {
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv4("10.0.0.1", "10.0.0.2")
                             .fragment(128, true)
                             .ip_proto(6)
                             .payload(1000)
                             .build()),
              Outcome::tcp_fragment);
    // The last fragment, shorter than a TCP header: still a fragment, not a truncated segment.
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv4("10.0.0.1", "10.0.0.2")
                             .fragment(256, false)
                             .ip_proto(6)
                             .payload(4)
                             .build()),
              Outcome::tcp_fragment);
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv4("10.0.0.1", "10.0.0.2")
                             .fragment(185, false)
                             .ip_proto(17)
                             .payload(100)
                             .build()),
              Outcome::ipv4_fragment);
    // A non-TCP first fragment is counted by protocol.
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv4("10.0.0.1", "10.0.0.2")
                             .fragment(0, true)
                             .udp(1, 2)
                             .payload(1400)
                             .build()),
              Outcome::ipv4_udp);
}

TEST(ParserIpv4, DontFragmentIsNotAFragment) {
    PacketMeta m{};
    ASSERT_EQ(parse(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, SYN).build(), m),
              Outcome::tcp);
    EXPECT_EQ(m.info & ip_first_fragment, 0);
}

// ---------------------------------------------------------------------------------------------
// IPv6

TEST(ParserIpv6, Plain) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv6("2001:db8::1", "2001:db8::2")
                       .tcp(40000, 443, SYN, 9)
                       .mss(1440)
                       .payload(5)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.info, kIpv6Bit | has_mss);
    EXPECT_EQ(m.ip_len, 40u + 24u + 5u);
    EXPECT_EQ(m.payload_len, 5u);
    EXPECT_TRUE(addr_eq(m.key.addr[0], v6("2001:db8::1")));
    EXPECT_TRUE(addr_eq(m.key.addr[1], v6("2001:db8::2")));
    EXPECT_EQ(m.sender, Side::lo);
}

struct ExtCase {
    const char* what;
    void (*add)(PacketBuilder&);
    uint32_t ext_len;
};

TEST(ParserIpv6, EachExtensionHeader) {
    const ExtCase cases[] = {
        {"hop-by-hop", [](PacketBuilder& b) { b.hop_by_hop(); }, 8},
        {"hop-by-hop, 3 units", [](PacketBuilder& b) { b.hop_by_hop(2); }, 24},
        {"routing", [](PacketBuilder& b) { b.routing(); }, 8},
        {"routing, 2 units", [](PacketBuilder& b) { b.routing(1); }, 16},
        {"destination options", [](PacketBuilder& b) { b.dest_opts(); }, 8},
        {"atomic fragment", [](PacketBuilder& b) { b.ipv6_fragment(0, false); }, 8},
        {"authentication", [](PacketBuilder& b) { b.ah(); }, 24},
        {"authentication, 5 ICV words", [](PacketBuilder& b) { b.ah(5); }, 32},
        {"all of them",
         [](PacketBuilder& b) {
             b.hop_by_hop().dest_opts().routing().ipv6_fragment(0, false).ah().dest_opts();
         },
         8 + 8 + 8 + 8 + 24 + 8},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        PacketBuilder b;
        b.eth().ipv6("2001:db8::1", "2001:db8::2");
        c.add(b);
        b.tcp(1234, 80, PSH | ACK, 1, 2).timestamps(3, 4).payload(100);
        PacketMeta m{};
        ASSERT_EQ(parse(b.build(), m), Outcome::tcp);
        EXPECT_EQ(m.payload_len, 100u);
        EXPECT_EQ(m.ip_len, 40u + c.ext_len + 32u + 100u);
        EXPECT_EQ(m.tsval, 3u);
        EXPECT_EQ(m.key.port[0], 1234);
        EXPECT_EQ(m.info, kIpv6Bit | has_timestamp);
    }
}

TEST(ParserIpv6, Fragments) {
    PacketMeta m{};
    ASSERT_EQ(parse(PacketBuilder()
                        .eth()
                        .ipv6("2001:db8::1", "2001:db8::2")
                        .ipv6_fragment(0, true)
                        .tcp(1234, 80, ACK)
                        .payload(1200)
                        .build(),
                    m),
              Outcome::tcp);
    EXPECT_NE(m.info & ip_first_fragment, 0);
    EXPECT_EQ(m.payload_len, 1200u);

    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv6("2001:db8::1", "2001:db8::2")
                             .ipv6_fragment(150, false)
                             .ip_proto(6)
                             .payload(200)
                             .build()),
              Outcome::tcp_fragment);
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv6("2001:db8::1", "2001:db8::2")
                             .hop_by_hop()
                             .ipv6_fragment(150, true)
                             .ip_proto(17)
                             .payload(200)
                             .build()),
              Outcome::ipv6_fragment);
    EXPECT_EQ(outcome_of(PacketBuilder()
                             .eth()
                             .ipv6("2001:db8::1", "2001:db8::2")
                             .ipv6_fragment(0, true)
                             .udp(1, 2)
                             .payload(200)
                             .build()),
              Outcome::ipv6_udp);
}

TEST(ParserIpv6, UpperLayers) {
    const char* s = "fe80::1";
    const char* d = "ff02::1";
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ipv6(s, d).udp(546, 547).build()),
              Outcome::ipv6_udp);
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ipv6(s, d).icmp().build()), Outcome::ipv6_icmp);
    // MLD report behind hop-by-hop (router alert), as sent on every link.
    EXPECT_EQ(
        outcome_of(PacketBuilder().eth().ipv6(s, d).hop_by_hop().icmp(143).payload(20).build()),
        Outcome::ipv6_icmp);
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ipv6(s, d).build()), Outcome::ipv6_other);  // 59
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ipv6(s, d).ip_proto(50).payload(40).build()),
              Outcome::ipv6_other);
    EXPECT_EQ(outcome_of(PacketBuilder().eth().ipv6(s, d).dest_opts().ip_proto(59).build()),
              Outcome::ipv6_other);
    PacketMeta m{};
    parse(PacketBuilder().eth().ipv6(s, d).udp(1, 2).build(), m);
    EXPECT_EQ(m.info, kIpv6Bit);
    EXPECT_EQ(m.ip_len, 48u);
}

TEST(ParserIpv6, HeaderErrors) {
    PacketBuilder b;
    b.eth().ipv6("2001:db8::1", "2001:db8::2").tcp(1, 2, SYN);
    const auto good = b.build();
    const size_t ip = b.offset_of(L::ipv6);
    PacketMeta m{};
    for (size_t len = ip; len < ip + 40; ++len)
        EXPECT_EQ(parse(good, m, len), Outcome::ipv6_truncated);
    auto f = good;
    f[ip] = 0x45;
    EXPECT_EQ(parse(f, m), Outcome::ipv6_bad_version);
}

TEST(ParserIpv6, ExtensionHeaderCutShort) {
    PacketBuilder b;
    b.eth().ipv6("2001:db8::1", "2001:db8::2").hop_by_hop(1).tcp(1, 2, SYN);
    const auto good = b.build();
    const size_t ext = b.offset_of(L::ipv6_ext);
    PacketMeta m{};
    // Captured bytes end inside the extension header.
    for (size_t len = ext; len < ext + 16; ++len)
        EXPECT_EQ(parse(good, m, len), Outcome::ipv6_ext_truncated);

    // The payload length ends inside it, whatever follows in the frame.
    auto f = good;
    const size_t ip = b.offset_of(L::ipv6);
    f[ip + 4] = 0;
    f[ip + 5] = 12;
    EXPECT_EQ(parse(f, m), Outcome::ipv6_ext_truncated);
    f[ip + 5] = 0;
    EXPECT_EQ(parse(f, m), Outcome::ipv6_ext_truncated);

    // A header length that runs past the payload: the subtraction never underflows.
    f = good;
    f[ext + 1] = 255;
    EXPECT_EQ(parse(f, m), Outcome::ipv6_ext_truncated);
}

TEST(ParserIpv6, ExtensionChainLimit) {
    auto chain = [](unsigned n) {
        PacketBuilder b;
        b.eth().ipv6("2001:db8::1", "2001:db8::2");
        for (unsigned i = 0; i < n; ++i) b.dest_opts();
        b.tcp(1, 2, SYN);
        return b.build();
    };
    EXPECT_EQ(outcome_of(chain(kMaxIpv6ExtHeaders)), Outcome::tcp);
    EXPECT_EQ(outcome_of(chain(kMaxIpv6ExtHeaders + 1)), Outcome::ipv6_ext_chain_too_long);
}

// ---------------------------------------------------------------------------------------------
// TCP header and options

TEST(ParserTcpHeader, Errors) {
    PacketBuilder b;
    b.eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, SYN).mss(1460).payload(20);
    const auto good = b.build();
    const size_t ip = b.offset_of(L::ipv4);
    const size_t t = b.offset_of(L::tcp);
    PacketMeta m{};

    for (size_t len = t; len < t + 20; ++len)
        EXPECT_EQ(parse(good, m, len), Outcome::tcp_truncated);
    // Options cut by the capture: the header is incomplete.
    EXPECT_EQ(parse(good, m, t + 22), Outcome::tcp_truncated);

    auto f = good;
    f[t + 12] = 4 << 4;
    EXPECT_EQ(parse(f, m), Outcome::tcp_bad_data_offset);
    f[t + 12] = 0;
    EXPECT_EQ(parse(f, m), Outcome::tcp_bad_data_offset);
    // 60-byte header in a 44-byte IP payload.
    f[t + 12] = 15 << 4;
    EXPECT_EQ(parse(f, m), Outcome::tcp_bad_data_offset);
    // Data offset fits the captured bytes but not the IP length.
    f = good;
    f[ip + 2] = 0;
    f[ip + 3] = 20 + 22;
    EXPECT_EQ(parse(f, m), Outcome::tcp_bad_data_offset);
    // The IP length leaves less than a minimal TCP header (the rest is padding).
    f[ip + 3] = 20 + 19;
    EXPECT_EQ(parse(f, m), Outcome::tcp_truncated);
}

TEST(ParserTcpHeader, DataOffsetExactlyTheIpPayload) {
    PacketBuilder b;
    b.eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, ACK).timestamps(1, 2).trailer(10);
    PacketMeta m{};
    ASSERT_EQ(parse(b.build(), m), Outcome::tcp);
    EXPECT_EQ(m.payload_len, 0u);
}

TEST(ParserTcpOptions, Values) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1234, 80, SYN | ACK, 1, 2)
                       .mss(536)
                       .nop()
                       .wscale(14)
                       .sack_permitted()
                       .timestamps(0xdeadbeef, 0x01020304)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.mss, 536);
    EXPECT_EQ(m.wscale, 14);
    EXPECT_EQ(m.tsval, 0xdeadbeefu);
    EXPECT_EQ(m.tsecr, 0x01020304u);
    EXPECT_EQ(m.info, has_mss | has_wscale | has_sack_permitted | has_timestamp);
}

TEST(ParserTcpOptions, WscaleStoredRaw) {
    const auto f =
        PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, SYN).wscale(200).build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.wscale, 200);  // RFC 7323 clamping to 14 is the state machine's business
}

TEST(ParserTcpOptions, NoOptionsClearsValues) {
    PacketMeta m{};
    ASSERT_EQ(parse(syn_v4().build(), m), Outcome::tcp);
    ASSERT_EQ(m.mss, 1460);
    ASSERT_EQ(parse(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, ACK).build(), m),
              Outcome::tcp);
    EXPECT_EQ(m.info, 0);
    EXPECT_EQ(m.mss, 0);
    EXPECT_EQ(m.wscale, 0);
    EXPECT_EQ(m.tsval, 0u);
}

TEST(ParserTcpOptions, SackAndUnknownOptionsSkipped) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1, 2, ACK)
                       .sack({{100, 200}, {300, 400}})
                       .tcp_option_bytes({30, 6, 1, 2, 3, 4})  // MPTCP-ish, unknown here
                       .tcp_option_bytes({254, 2})             // experimental, no data
                       .timestamps(8, 9)
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.info, has_timestamp);
    EXPECT_EQ(m.tsval, 8u);
}

TEST(ParserTcpOptions, EndOfListStopsTheWalk) {
    const auto f = PacketBuilder()
                       .eth()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .tcp(1, 2, SYN)
                       .mss(1000)
                       .eol()
                       .tcp_option_bytes({3, 3, 5})  // after EOL: not an option
                       .build();
    PacketMeta m{};
    ASSERT_EQ(parse(f, m), Outcome::tcp);
    EXPECT_EQ(m.info, has_mss);
}

TEST(ParserTcpOptions, Malformed) {
    struct Case {
        const char* what;
        std::vector<uint8_t> opts;
        uint8_t info;
    };
    const Case cases[] = {
        {"length 0", {2, 4, 0x05, 0xb4, 99, 0, 0, 0}, has_mss | bad_tcp_options},
        {"length 1", {99, 1, 0, 0}, bad_tcp_options},
        {"runs past the header", {2, 4, 0x05, 0xb4, 8, 10, 0, 0}, has_mss | bad_tcp_options},
        {"kind in the last byte", {1, 1, 1, 3}, bad_tcp_options},
        {"MSS of length 3 skipped, timestamps still read",
         {2, 3, 5, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0},
         has_timestamp | bad_tcp_options},
        {"timestamps of length 6", {8, 6, 0, 0, 0, 1, 0, 0}, bad_tcp_options},
        {"window scale of length 4", {3, 4, 7, 0}, bad_tcp_options},
        {"SACK-permitted of length 3", {4, 3, 0, 0}, bad_tcp_options},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        PacketBuilder b;
        b.eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, SYN, 55);
        b.tcp_option_bytes(c.opts).payload(7);
        PacketMeta m{};
        ASSERT_EQ(parse(b.build(), m), Outcome::tcp);
        EXPECT_EQ(m.info, c.info);
        EXPECT_EQ(m.seq, 55u);
        EXPECT_EQ(m.payload_len, 7u);
    }
}

// ---------------------------------------------------------------------------------------------
// Truncation at every length

// Parses every prefix of `frame`: always a named outcome; malformed before the end of the TCP
// header; tracked from there on, with payload_truncated until the IP end. Returns the outcome
// of each prefix length.
std::vector<Outcome> sweep(const std::vector<uint8_t>& frame, size_t tcp_end, size_t ip_end,
                           LinkType link = LinkType::ethernet) {
    std::vector<Outcome> out;
    PacketMeta full{};
    EXPECT_EQ(parse(frame, full, link), Outcome::tcp);
    for (size_t len = 0; len <= frame.size(); ++len) {
        SCOPED_TRACE("prefix length " + std::to_string(len));
        PacketMeta m;
        std::memset(&m, 0xa5, sizeof(m));
        const Outcome o = parse(frame, m, len, link);
        out.push_back(o);
        EXPECT_EQ(m.wire_len, len);
        if (len < tcp_end) {
            EXPECT_EQ(category(o), OutcomeCategory::malformed) << name(o);
        } else {
            EXPECT_EQ(o, Outcome::tcp);
            if (o != Outcome::tcp) continue;
            EXPECT_TRUE(m.key == full.key);
            EXPECT_EQ(m.hash, full.hash);
            EXPECT_EQ(m.payload_len, full.payload_len);
            EXPECT_EQ(m.mss, full.mss);
            EXPECT_EQ(m.tsval, full.tsval);
            EXPECT_EQ((m.info & payload_truncated) != 0, len < ip_end);
        }
    }
    return out;
}

TEST(ParserTruncation, EveryPrefixOfTcpIpv4) {
    PacketBuilder b = syn_v4();
    b.ip_options({1, 1, 1, 0});
    b.payload(32);
    const auto f = b.build();
    const auto out = sweep(f, b.end_of(L::tcp), f.size());
    const size_t ip = b.offset_of(L::ipv4), t = b.offset_of(L::tcp);
    for (size_t len = 0; len < f.size(); ++len) {
        Outcome want = Outcome::tcp;
        if (len < ip)
            want = Outcome::eth_truncated;
        else if (len < t)
            want = Outcome::ipv4_truncated;
        else if (len < b.end_of(L::tcp))
            want = Outcome::tcp_truncated;
        EXPECT_EQ(out[len], want) << "prefix length " << len;
    }
}

TEST(ParserTruncation, EveryPrefixOfTcpIpv6WithVlanAndExtensions) {
    PacketBuilder b;
    b.eth()
        .vlan(300)
        .ipv6("2001:db8:1::1", "2001:db8:2::2")
        .hop_by_hop()
        .routing(1)
        .dest_opts()
        .ipv6_fragment(0, true)
        .ah()
        .tcp(443, 50000, SYN | ACK, 1, 2)
        .mss(1220)
        .wscale(9)
        .sack_permitted()
        .timestamps(5, 6)
        .payload(25);
    const auto f = b.build();
    const auto out = sweep(f, b.end_of(L::tcp), f.size());
    const size_t vl = b.offset_of(L::vlan), ip = b.offset_of(L::ipv6),
                 ext = b.offset_of(L::ipv6_ext), t = b.offset_of(L::tcp);
    for (size_t len = 0; len < f.size(); ++len) {
        Outcome want = Outcome::tcp;
        if (len < vl)
            want = Outcome::eth_truncated;
        else if (len < ip)
            want = Outcome::vlan_truncated;
        else if (len < ext)
            want = Outcome::ipv6_truncated;
        else if (len < t)
            want = Outcome::ipv6_ext_truncated;
        else if (len < b.end_of(L::tcp))
            want = Outcome::tcp_truncated;
        EXPECT_EQ(out[len], want) << "prefix length " << len;
    }
}

TEST(ParserTruncation, EveryPrefixOfLinuxCookedQinQ) {
    PacketBuilder b;
    b.linux_sll().vlan(1, 0x88a8).vlan(2).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, ACK).payload(9);
    const auto f = b.build();
    sweep(f, b.end_of(L::tcp), f.size(), LinkType::linux_sll);
}

// Random corruption of valid frames: the parser must stay within bounds (ASan) and always
// return a named outcome.
TEST(ParserTruncation, RandomCorruption) {
    const std::vector<std::vector<uint8_t>> seeds = {
        syn_v4().payload(40).build(),
        PacketBuilder()
            .eth()
            .vlan(1, 0x88a8)
            .vlan(2)
            .ipv6("2001:db8::1", "2001:db8::2")
            .hop_by_hop()
            .ipv6_fragment(0, true)
            .ah()
            .tcp(1, 2, ACK)
            .timestamps(1, 2)
            .payload(30)
            .build(),
    };
    std::mt19937 rng(12345);
    for (const auto& seed : seeds) {
        for (int iter = 0; iter < 20000; ++iter) {
            auto f = seed;
            const int flips = 1 + static_cast<int>(rng() % 4);
            for (int k = 0; k < flips; ++k) f[rng() % f.size()] = static_cast<uint8_t>(rng());
            const size_t len = rng() % (f.size() + 1);
            PacketMeta m{};
            const LinkType link = (iter & 1) ? LinkType::linux_sll : LinkType::ethernet;
            parse(f, m, len, link);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// flow_key.cpp: format_endpoint and flow_hash

TEST(FlowKey, FormatEndpoint) {
    PacketMeta m{};
    ASSERT_EQ(
        parse(PacketBuilder().eth().ipv4("192.0.2.7", "10.0.0.1").tcp(5555, 22, SYN).build(), m),
        Outcome::tcp);
    EXPECT_EQ(endpoint(m.key, Side::lo), "10.0.0.1:22");
    EXPECT_EQ(endpoint(m.key, Side::hi), "192.0.2.7:5555");

    ASSERT_EQ(
        parse(PacketBuilder().eth().ipv6("2001:db8::1", "fe80::a:b").tcp(443, 65535, ACK).build(),
              m),
        Outcome::tcp);
    EXPECT_EQ(endpoint(m.key, Side::lo), "[2001:db8::1]:443");
    EXPECT_EQ(endpoint(m.key, Side::hi), "[fe80::a:b]:65535");

    FlowKey k{};
    EXPECT_EQ(endpoint(k, Side::lo), "[::]:0");

    // A short buffer is truncated, never overrun; an empty one is not touched.
    char small[8];
    EXPECT_STREQ(stateline::flow::format_endpoint(m.key, Side::lo, small, sizeof(small)),
                 "[2001:d");
    EXPECT_STREQ(stateline::flow::format_endpoint(m.key, Side::lo, small, 0), "");
}

TEST(FlowKey, FormatEndpointLongestFitsIn64) {
    FlowKey k{};
    std::memset(k.addr[1], 0xff, 16);
    k.addr[1][0] = 0xfe;  // not IPv4-mapped
    k.port[1] = 65535;
    EXPECT_EQ(endpoint(k, Side::hi), "[feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

// Reference CRC32-C, bit at a time (RFC 3720 appendix B.4).
uint32_t crc32c_ref(const uint8_t* p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b) crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

FlowKey random_key(std::mt19937_64& rng) {
    FlowKey k{};
    uint8_t a[16], b[16];
    for (auto& x : a) x = static_cast<uint8_t>(rng());
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    stateline::flow::make_key(k, a, static_cast<uint16_t>(rng()), b, static_cast<uint16_t>(rng()),
                              0, 0);
    return k;
}

TEST(FlowHash, IsStandardCrc32c) {
    const char* check = "123456789";
    ASSERT_EQ(crc32c_ref(reinterpret_cast<const uint8_t*>(check), 9), 0xe3069283u);
    std::mt19937_64 rng(7);
    for (int i = 0; i < 1000; ++i) {
        const FlowKey k = random_key(rng);
        EXPECT_EQ(stateline::flow::flow_hash(k),
                  crc32c_ref(reinterpret_cast<const uint8_t*>(&k), sizeof(k)));
    }
}

TEST(FlowHash, Symmetric) {
    std::mt19937_64 rng(11);
    for (int i = 0; i < 1000; ++i) {
        uint8_t a[16], b[16];
        for (auto& x : a) x = static_cast<uint8_t>(rng());
        for (auto& x : b) x = static_cast<uint8_t>(rng());
        const auto pa = static_cast<uint16_t>(rng()), pb = static_cast<uint16_t>(rng());
        FlowKey k1{}, k2{};
        const Side s1 = stateline::flow::make_key(k1, a, pa, b, pb, 5 | kVlanPresent, 0);
        const Side s2 = stateline::flow::make_key(k2, b, pb, a, pa, 5 | kVlanPresent, 0);
        EXPECT_TRUE(k1 == k2);
        EXPECT_NE(s1, s2);
        EXPECT_EQ(stateline::flow::flow_hash(k1), stateline::flow::flow_hash(k2));
    }
}

TEST(FlowHash, DifferentKeysMostlyDiffer) {
    // Realistic, low-entropy keys: one server, clients in a /16, every ephemeral port step.
    std::unordered_set<uint32_t> hashes;
    std::array<unsigned, 1024> low{}, high{};
    unsigned n = 0;
    const auto server = v4mapped("10.0.0.1");
    for (unsigned c = 0; c < 256; ++c) {
        for (unsigned p = 0; p < 400; ++p) {
            auto client = v4mapped("172.16.0.0");
            client[14] = static_cast<uint8_t>(c);
            client[15] = static_cast<uint8_t>(p & 7);
            FlowKey k{};
            stateline::flow::make_key(k, client.data(), static_cast<uint16_t>(32768 + p),
                                      server.data(), 443, 0, 0);
            const uint32_t h = stateline::flow::flow_hash(k);
            hashes.insert(h);
            ++low[h & 1023];
            ++high[h >> 22];
            ++n;
        }
    }
    // 102400 keys in 2^32 values: about 1.2 collisions expected.
    EXPECT_GE(hashes.size(), n - 10);
    // Both ends of the hash spread evenly over 1024 buckets (mean 100).
    for (unsigned i = 0; i < 1024; ++i) {
        EXPECT_GT(low[i], 50u) << "low bucket " << i;
        EXPECT_LT(low[i], 150u) << "low bucket " << i;
        EXPECT_GT(high[i], 50u) << "high bucket " << i;
        EXPECT_LT(high[i], 150u) << "high bucket " << i;
    }
    // A VLAN alone changes the hash.
    FlowKey a{}, b{};
    stateline::flow::make_key(a, server.data(), 1, server.data(), 2, 1 | kVlanPresent, 0);
    stateline::flow::make_key(b, server.data(), 1, server.data(), 2, 2 | kVlanPresent, 0);
    EXPECT_NE(stateline::flow::flow_hash(a), stateline::flow::flow_hash(b));
}

// ---------------------------------------------------------------------------------------------
// Keep last: every outcome of the X-macro was produced by some test above.

TEST(ZzOutcomeCoverage, EveryOutcomeProduced) {
    const auto* ut = ::testing::UnitTest::GetInstance();
    if (ut->test_to_run_count() != ut->total_test_count() || GTEST_FLAG_GET(shuffle))
        GTEST_SKIP() << "needs the whole suite, in order";
    for (unsigned i = 0; i < kOutcomeCount; ++i)
        EXPECT_GT(g_hits[i], 0u) << "no test produced outcome " << kOutcomeInfo[i].name;
}

}  // namespace
