// SPDX-License-Identifier: BSD-3-Clause
// stateline-gen: the frame writer (checksums recomputed here independently, frames parsed back
// with the appliance's own parser), the pcap writer, scenario validation (every error with its
// place), determinism (same seed, same bytes), and the labels against what is really in the
// pcap (walked record by record): class counts, per-attack counts, flags per class, and the
// sequence/acknowledgement arithmetic of every legitimate connection.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "frame_writer.hpp"
#include "labels.hpp"
#include "parser.hpp"
#include "pcap_out.hpp"
#include "rng.hpp"
#include "scenario.hpp"
#include "traffic.hpp"

namespace {

using namespace stateline::gen;
using stateline::packet::LinkType;
using stateline::packet::Outcome;
using stateline::packet::PacketMeta;
namespace ib = stateline::packet::info_bit;

// ------------------------------------------------------------------ independent checksums

// RFC 1071, written again here from the RFC rather than reused from the writer.
uint16_t rfc1071(const std::vector<uint8_t>& bytes) {
    uint32_t sum = 0;
    for (size_t i = 0; i < bytes.size(); i += 2) {
        const uint32_t hi = bytes[i];
        const uint32_t lo = i + 1 < bytes.size() ? bytes[i + 1] : 0;
        sum += hi << 8 | lo;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(~sum & 0xffff);
}

struct Parsed {
    uint32_t l3 = 0;    // offset of the IP header
    bool v6 = false;
    uint32_t l4 = 0;    // offset of the TCP header
    uint32_t tcp_len = 0;
};

Parsed locate(const std::vector<uint8_t>& f) {
    Parsed p;
    uint32_t off = 12;
    uint16_t type = static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
    off += 2;
    if (type == 0x8100) {
        type = static_cast<uint16_t>(f[off + 2] << 8 | f[off + 3]);
        off += 4;
    }
    p.l3 = off;
    p.v6 = type == 0x86dd;
    if (p.v6) {
        p.l4 = off + 40;
        p.tcp_len = static_cast<uint32_t>(f[off + 4] << 8 | f[off + 5]);
    } else {
        const uint32_t ihl = (f[off] & 0x0f) * 4u;
        const uint32_t total = static_cast<uint32_t>(f[off + 2] << 8 | f[off + 3]);
        p.l4 = off + ihl;
        p.tcp_len = total - ihl;
    }
    return p;
}

// Checks the IPv4 header checksum and the TCP checksum (pseudo-header) of a whole frame.
void expect_checksums_valid(const std::vector<uint8_t>& f) {
    const Parsed p = locate(f);
    ASSERT_LE(p.l4 + p.tcp_len, f.size());
    std::vector<uint8_t> pseudo;
    if (!p.v6) {
        std::vector<uint8_t> iph(f.begin() + p.l3, f.begin() + p.l4);
        EXPECT_EQ(rfc1071(iph), 0) << "IPv4 header checksum";
        pseudo.insert(pseudo.end(), f.begin() + p.l3 + 12, f.begin() + p.l3 + 20);
        pseudo.push_back(0);
        pseudo.push_back(6);
        pseudo.push_back(static_cast<uint8_t>(p.tcp_len >> 8));
        pseudo.push_back(static_cast<uint8_t>(p.tcp_len));
    } else {
        pseudo.insert(pseudo.end(), f.begin() + p.l3 + 8, f.begin() + p.l3 + 40);
        const uint32_t l = p.tcp_len;
        for (int s = 24; s >= 0; s -= 8) pseudo.push_back(static_cast<uint8_t>(l >> s));
        pseudo.insert(pseudo.end(), {0, 0, 0, 6});
    }
    pseudo.insert(pseudo.end(), f.begin() + p.l4, f.begin() + p.l4 + p.tcp_len);
    EXPECT_EQ(rfc1071(pseudo), 0) << "TCP checksum";
}

std::vector<uint8_t> build(const Frame& fr, uint32_t snaplen = kMaxFrameLen) {
    std::vector<uint8_t> buf(kMaxFrameLen + 64, 0xee);
    const uint32_t wire = write_frame(fr, buf.data(), snaplen);
    buf.resize(std::min(wire, snaplen));
    return buf;
}

const uint8_t kMacA[6] = {0x00, 0x00, 0x5e, 0x00, 0x53, 0x01};
const uint8_t kMacB[6] = {0x00, 0x00, 0x5e, 0x00, 0x53, 0x10};

Frame base_frame(const IpAddr& src, const IpAddr& dst) {
    static IpAddr s, d;  // the frame points at them
    s = src;
    d = dst;
    Frame f;
    f.src_mac = kMacA;
    f.dst_mac = kMacB;
    f.ipv6 = src.v6;
    f.src_ip = s.data();
    f.dst_ip = d.data();
    return f;
}

IpAddr ip(const char* s) {
    IpAddr a;
    EXPECT_TRUE(parse_ip(s, a)) << s;
    return a;
}

PacketMeta parse_back(const std::vector<uint8_t>& f) {
    PacketMeta m{};
    // An exact-size heap copy: AddressSanitizer catches any read past the frame.
    std::vector<uint8_t> copy(f);
    EXPECT_EQ(stateline::packet::parse_frame(copy.data(), static_cast<uint32_t>(copy.size()), LinkType::ethernet, m),
              Outcome::tcp);
    return m;
}

// ------------------------------------------------------------------ frame writer

TEST(FrameWriter, Ipv4SynWithLinuxOptionsParsesBackAndChecksums) {
    Frame f = base_frame(ip("198.51.100.7"), ip("192.0.2.10"));
    f.sport = 40001;
    f.dport = 80;
    f.seq = 0xfffffff0u;
    f.flags = tcpf::syn;
    f.window = 64240;
    f.options = TcpOptions::syn_linux;
    f.mss = 1460;
    f.wscale = 7;
    f.tsval = 123456;
    f.ttl = 57;
    f.ip_id = 0xbeef;
    const auto frame = build(f);
    ASSERT_EQ(frame.size(), 14u + 20 + 40);
    expect_checksums_valid(frame);
    const PacketMeta m = parse_back(frame);
    EXPECT_EQ(m.seq, 0xfffffff0u);
    EXPECT_EQ(m.tcp_flags, tcpf::syn);
    EXPECT_EQ(m.window, 64240);
    EXPECT_EQ(m.mss, 1460);
    EXPECT_EQ(m.wscale, 7);
    EXPECT_EQ(m.tsval, 123456u);
    EXPECT_EQ(m.payload_len, 0u);
    EXPECT_TRUE(m.info & ib::has_mss);
    EXPECT_TRUE(m.info & ib::has_wscale);
    EXPECT_TRUE(m.info & ib::has_sack_permitted);
    EXPECT_TRUE(m.info & ib::has_timestamp);
    EXPECT_FALSE(m.info & ib::bad_tcp_options);
    EXPECT_EQ(frame[14 + 8], 57);                 // TTL
    EXPECT_EQ(frame[14 + 6], 0x40);               // DF
}

TEST(FrameWriter, Ipv6InVlanWithPayloadParsesBackAndChecksums) {
    Frame f = base_frame(ip("2001:db8:1000::5"), ip("2001:db8::10"));
    f.vlan = 100;
    f.sport = 50000;
    f.dport = 443;
    f.seq = 1000;
    f.ack = 2000;
    f.flags = tcpf::ack | tcpf::psh;
    f.window = 2048;
    f.options = TcpOptions::timestamps;
    f.tsval = 1;
    f.tsecr = 2;
    f.flow_label = 0xabcde;
    f.payload_len = 1428;
    const auto frame = build(f);
    ASSERT_EQ(frame.size(), 14u + 4 + 40 + 32 + 1428);
    expect_checksums_valid(frame);
    const PacketMeta m = parse_back(frame);
    EXPECT_EQ(m.vlan_depth, 1);
    EXPECT_EQ(m.key.vlan[0], (100 | stateline::flow::kVlanPresent));
    EXPECT_TRUE(m.info & ib::ipv6);
    EXPECT_EQ(m.payload_len, 1428u);
    EXPECT_EQ(m.ack, 2000u);
    EXPECT_EQ(m.tsecr, 2u);
    EXPECT_EQ(std::memcmp(frame.data() + 14 + 4 + 40 + 32, payload_pattern(), 1428), 0);
}

TEST(FrameWriter, EveryOptionLayoutParsesCleanly) {
    for (auto o : {TcpOptions::none, TcpOptions::mss, TcpOptions::syn_linux, TcpOptions::syn_windows,
                   TcpOptions::syn_nots, TcpOptions::timestamps}) {
        Frame f = base_frame(ip("10.0.0.1"), ip("10.0.0.2"));
        f.flags = tcpf::syn | tcpf::ack;
        f.options = o;
        f.mss = 1440;
        f.wscale = 8;
        const auto frame = build(f);
        expect_checksums_valid(frame);
        const PacketMeta m = parse_back(frame);
        EXPECT_FALSE(m.info & ib::bad_tcp_options) << static_cast<int>(o);
        const bool has_mss = o != TcpOptions::none && o != TcpOptions::timestamps;
        EXPECT_EQ(bool(m.info & ib::has_mss), has_mss);
        if (has_mss) {
            EXPECT_EQ(m.mss, 1440);
        }
        const bool has_ws = o == TcpOptions::syn_linux || o == TcpOptions::syn_windows || o == TcpOptions::syn_nots;
        EXPECT_EQ(bool(m.info & ib::has_wscale), has_ws);
        if (has_ws) {
            EXPECT_EQ(m.wscale, 8);
        }
        EXPECT_EQ(bool(m.info & ib::has_timestamp), o == TcpOptions::syn_linux || o == TcpOptions::timestamps);
        EXPECT_EQ(tcp_options_len(o) % 4, 0u);
    }
}

TEST(FrameWriter, ShortFramesArePaddedToSixtyBytesWithZeros) {
    Frame f = base_frame(ip("203.0.113.5"), ip("192.0.2.10"));
    f.flags = tcpf::rst;
    const auto frame = build(f);
    ASSERT_EQ(frame.size(), 60u);
    EXPECT_EQ(frame[14 + 2] << 8 | frame[14 + 3], 40);  // IP total length excludes the padding
    for (size_t i = 54; i < 60; ++i) EXPECT_EQ(frame[i], 0) << i;
    expect_checksums_valid(std::vector<uint8_t>(frame.begin(), frame.begin() + 54));
    parse_back(frame);
}

TEST(FrameWriter, SnaplenCutsPayloadButKeepsTheFullFramesChecksum) {
    Frame f = base_frame(ip("198.51.100.7"), ip("192.0.2.10"));
    f.flags = tcpf::ack;
    f.payload_len = 1000;
    const auto full = build(f);
    const auto cut = build(f, 128);
    ASSERT_EQ(cut.size(), 128u);
    EXPECT_TRUE(std::equal(cut.begin(), cut.end(), full.begin()));
    PacketMeta m{};
    std::vector<uint8_t> copy(cut);
    ASSERT_EQ(stateline::packet::parse_frame(copy.data(), 128, LinkType::ethernet, m), Outcome::tcp);
    EXPECT_TRUE(m.info & ib::payload_truncated);
    EXPECT_EQ(m.payload_len, 1000u);
}

TEST(FrameWriter, RandomFramesAllChecksumCorrectly) {
    Rng r(42);
    for (int i = 0; i < 2000; ++i) {
        const bool v6 = r.chance(0.5);
        IpAddr s, d;
        s.v6 = d.v6 = v6;
        for (auto& b : s.b) b = static_cast<uint8_t>(r.next());
        for (auto& b : d.b) b = static_cast<uint8_t>(r.next());
        if (!v6) std::fill(s.b.begin() + 4, s.b.end(), 0), std::fill(d.b.begin() + 4, d.b.end(), 0);
        Frame f = base_frame(s, d);
        f.vlan = r.chance(0.3) ? static_cast<uint16_t>(1 + r.below(4094)) : 0;
        f.sport = static_cast<uint16_t>(r.next());
        f.dport = static_cast<uint16_t>(r.next());
        f.seq = r.u32();
        f.ack = r.u32();
        f.flags = static_cast<uint8_t>(r.next());
        f.window = static_cast<uint16_t>(r.next());
        f.options = static_cast<TcpOptions>(r.below(6));
        f.tsval = r.u32();
        f.tsecr = r.u32();
        f.payload_len = static_cast<uint32_t>(r.below(kMaxPayload + 1));
        const auto frame = build(f);
        expect_checksums_valid(frame);
        const PacketMeta m = parse_back(frame);
        EXPECT_EQ(m.payload_len, f.payload_len);
        EXPECT_EQ(m.seq, f.seq);
        EXPECT_EQ(m.tcp_flags, f.flags);
        if (HasFailure()) break;
    }
}

// ------------------------------------------------------------------ pcap writer

std::string temp_path(const std::string& name) {
    return testing::TempDir() + "stateline_gen_" + std::to_string(getpid()) + "_" + name;
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

TEST(PcapWriter, HeaderAndRecordsInMicroAndNanoseconds) {
    for (auto res : {TsResolution::micro, TsResolution::nano}) {
        const std::string path = temp_path("hdr.pcap");
        PcapWriter w;
        std::string err;
        ASSERT_TRUE(w.open(path, res, 65535, err, 4096)) << err;  // a small buffer: flushes happen
        Frame f = base_frame(ip("198.51.100.7"), ip("192.0.2.10"));
        f.flags = tcpf::ack;
        f.payload_len = 1400;
        for (int i = 0; i < 10; ++i) {
            const uint32_t wire = write_frame(f, w.frame_slot());
            w.commit(1705312800123456789ull + static_cast<uint64_t>(i), wire);
        }
        ASSERT_TRUE(w.close(err)) << err;
        const auto b = slurp(path);
        std::remove(path.c_str());
        ASSERT_EQ(b.size(), 24u + 10 * (16u + 1454));
        EXPECT_EQ(le32(b.data()), res == TsResolution::nano ? 0xa1b23c4du : 0xa1b2c3d4u);
        EXPECT_EQ(le32(b.data() + 16), 65535u);
        EXPECT_EQ(le32(b.data() + 20), 1u);  // LINKTYPE_ETHERNET
        EXPECT_EQ(le32(b.data() + 24), 1705312800u);
        EXPECT_EQ(le32(b.data() + 28), res == TsResolution::nano ? 123456789u : 123456u);
        EXPECT_EQ(le32(b.data() + 32), 1454u);
        EXPECT_EQ(le32(b.data() + 36), 1454u);
    }
}

TEST(PcapWriter, ReportsAnUnwritablePath) {
    PcapWriter w;
    std::string err;
    EXPECT_FALSE(w.open("/nonexistent-dir/x.pcap", TsResolution::micro, 65535, err));
    EXPECT_NE(err.find("/nonexistent-dir/x.pcap"), std::string::npos) << err;
}

// ------------------------------------------------------------------ scenario validation

bool has_error(const LoadResult& r, const std::string& where, const std::string& what) {
    for (const auto& e : r.errors)
        if (e.where == where && e.what.find(what) != std::string::npos) return true;
    return false;
}

std::string dump(const LoadResult& r) { return format_errors(r.errors); }

TEST(Scenario, EveryErrorIsReportedWithFileLineAndColumn) {
    const std::string y =
        "name: t\n"                      // 1
        "duration: 5\n"                  // 2
        "servers:\n"                     // 3
        "  - name: web\n"                // 4
        "    ipv4: 192.0.2.10\n"         // 5
        "    ports: [80, 70000]\n"       // 6
        "    backlg: 10\n"               // 7
        "clients:\n"                     // 8
        "  rate: fast\n"                 // 9
        "attacks:\n"                     // 10
        "  - type: syn_flod\n"           // 11
        "    target: web:80\n"           // 12
        "  - type: stealth_scan\n"       // 13
        "    target: 192.0.2.0/28\n"     // 14
        "    rate: 100\n"                // 15
        "  - type: syn_flood\n"          // 16
        "    target: 192.0.2.1/24:80\n"  // 17
        "    rate: 1k\n"                 // 18
        "  - type: ack_flood\n"          // 19
        "    target: web:80\n"           // 20
        "    rate: 1k\n"                 // 21
        "    start: 9\n";                // 22
    const LoadResult r = load_scenario_string(y, "t.yaml");
    EXPECT_TRUE(has_error(r, "t.yaml:6:17", "'70000' is not a port")) << dump(r);
    EXPECT_TRUE(has_error(r, "t.yaml:7:5", "unknown key 'servers[0].backlg' (did you mean 'backlog'?)")) << dump(r);
    EXPECT_TRUE(has_error(r, "t.yaml:9:9", "'clients.rate' expects a number, got 'fast'")) << dump(r);
    EXPECT_TRUE(has_error(r, "t.yaml:11:11", "unknown attack type 'syn_flod'")) << dump(r);
    EXPECT_TRUE(has_error(r, "t.yaml:13:5", "'attacks[1].variant' is required")) << dump(r);
    EXPECT_TRUE(has_error(r, "t.yaml:17:13", "host bits set (did you mean 192.0.2.0/24?)")) << dump(r);
    EXPECT_TRUE(has_error(r, "t.yaml:19:5", "'attacks[3]' starts at 9 s, at or after the end of the capture (5 s)")) << dump(r);
    EXPECT_EQ(r.errors.size(), 7u) << dump(r);
}

TEST(Scenario, SyntaxAndFileErrorsHaveAPlace) {
    const LoadResult r = load_scenario_string("name: t\nservers: [\n", "bad.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].where.rfind("bad.yaml:", 0), 0u) << r.errors[0].where;
    EXPECT_NE(r.errors[0].what.find("YAML syntax"), std::string::npos);
    const LoadResult f = load_scenario_file("/nonexistent/x.yaml");
    ASSERT_EQ(f.errors.size(), 1u);
    EXPECT_EQ(f.errors[0].where, "/nonexistent/x.yaml");
}

TEST(Scenario, CrossFieldRules) {
    const std::string y =
        "servers:\n"
        "  - {name: web, ipv4: 192.0.2.10, ports: [80]}\n"
        "  - {name: web, ipv4: 192.0.2.10}\n"              // 3: name and address repeated
        "clients: {rate: 10, targets: [web:81]}\n"         // 4: no such service
        "attacks:\n"
        "  - {type: rst_injection, target: 192.0.2.99:80, rate: 1}\n"        // 6
        "  - {type: syn_scan, target: 192.0.2.10:80, rate: 1, variant: fin}\n"  // 7
        "  - {type: syn_flood, target: '[2001:db8::10]:80', rate: 1, sources: 10.0.0.0/8}\n";  // 8
    const LoadResult r = load_scenario_string(y, "c.yaml");
    EXPECT_TRUE(has_error(r, "c.yaml:3:12", "server name 'web' is used twice")) << dump(r);
    EXPECT_TRUE(has_error(r, "c.yaml:3:5", "same address as server 'web'")) << dump(r);
    EXPECT_TRUE(has_error(r, "c.yaml:4:31", "'web:81' names no service")) << dump(r);
    EXPECT_TRUE(has_error(r, "c.yaml:6:35", "must name a service")) << dump(r);
    EXPECT_TRUE(has_error(r, "c.yaml:7:30", "give ports in 'attacks[1].ports'")) << dump(r);
    EXPECT_TRUE(has_error(r, "c.yaml:7:63", "'attacks[1].variant' applies to stealth_scan only")) << dump(r);
    EXPECT_TRUE(has_error(r, "c.yaml:8:70", "must be of the target's family (IPv6)")) << dump(r);
    EXPECT_EQ(r.errors.size(), 7u) << dump(r);
}

TEST(Scenario, CommandLineErrorsNameTheArgument) {
    const std::vector<std::string> args = {"syn_flood:target=192.0.2.10:80,rate=50k,start=2,duration=5",
                                           "fin_flood:target=192.0.2.10:80,rat=5"};
    const LoadResult r = scenario_from_cli(100, args, 10);
    ASSERT_EQ(r.errors.size(), 2u) << dump(r);
    EXPECT_TRUE(has_error(r, "--attack " + args[1], "unknown key 'attacks[1].rat' (did you mean 'rate'?)")) << dump(r);
    EXPECT_TRUE(has_error(r, "--attack " + args[1], "'attacks[1].rate' is required")) << dump(r);
    const LoadResult ok = scenario_from_cli(100, {args[0], "syn_scan:target=192.0.2.0/28,ports=22,80,443,rate=10"}, 10);
    ASSERT_TRUE(ok.ok()) << dump(ok);
    const AttackSpec& a = ok.scenario.attacks[0];
    EXPECT_EQ(a.rate, 50000);
    EXPECT_EQ(a.port, 80);
    EXPECT_EQ(a.start, 2);
    EXPECT_EQ(a.duration, 5);
    EXPECT_GE(a.service, 0);
    EXPECT_EQ(ok.scenario.attacks[1].ports, (std::vector<uint16_t>{22, 80, 443}));
}

// The suite: tools/scenarios/*.yaml, found from the source tree.
std::string source_root() {
#ifdef STATELINE_SOURCE_ROOT
    return STATELINE_SOURCE_ROOT;
#else
    std::string f = __FILE__;  // .../tests/unit/test_gen.cpp
    for (int i = 0; i < 3; ++i) f = f.substr(0, f.find_last_of('/'));
    return f;
#endif
}

std::vector<std::string> suite_files() {
    std::vector<std::string> v;
    const std::string dir = source_root() + "/tools/scenarios";
    if (std::FILE* p = popen(("ls " + dir + "/*.yaml 2>/dev/null").c_str(), "r")) {
        char line[4096];
        while (std::fgets(line, sizeof(line), p)) {
            std::string s(line);
            if (!s.empty() && s.back() == '\n') s.pop_back();
            v.push_back(s);
        }
        pclose(p);
    }
    return v;
}

TEST(Scenario, TheSuiteLoadsCleanlyAndCoversEveryAttackType) {
    const auto files = suite_files();
    if (files.empty()) GTEST_SKIP() << "no tools/scenarios under " << source_root();
    std::set<std::string> types;
    for (const auto& f : files) {
        const LoadResult r = load_scenario_file(f);
        EXPECT_TRUE(r.ok()) << f << "\n" << dump(r);
        EXPECT_GE(r.scenario.duration, 5) << f;
        EXPECT_LE(r.scenario.duration, 20) << f;
        for (const auto& a : r.scenario.attacks) {
            types.insert(attack_type_name(a.type));
            if (a.type == AttackType::stealth_scan) types.insert(std::string("stealth_") + stealth_variant_name(a.variant));
        }
    }
    for (unsigned t = 0; t < kAttackTypeCount; ++t) EXPECT_TRUE(types.count(attack_type_name(static_cast<AttackType>(t)))) << attack_type_name(static_cast<AttackType>(t));
    for (const char* v : {"stealth_fin", "stealth_null", "stealth_xmas"}) EXPECT_TRUE(types.count(v)) << v;
}

// ------------------------------------------------------------------ generation

struct Generated {
    std::vector<uint8_t> pcap;
    std::vector<uint8_t> packet_labels;
    std::string labels_text;
    nlohmann::json labels;
    RunStats stats;
};

Generated generate_to_memory(const Scenario& sc, uint64_t seed) {
    Generated g;
    const std::string path = temp_path("gen.pcap");
    const std::string pl_path = temp_path("gen.pl");
    PcapWriter w;
    std::string err;
    EXPECT_TRUE(w.open(path, sc.resolution, sc.snaplen, err)) << err;
    std::FILE* pl = std::fopen(pl_path.c_str(), "wb");
    GenerateOptions opt;
    opt.seed = seed;
    opt.packet_labels = pl;
    g.stats = generate(sc, w, opt);
    EXPECT_TRUE(w.close(err)) << err;
    std::fclose(pl);
    g.pcap = slurp(path);
    g.packet_labels = slurp(pl_path);
    std::remove(path.c_str());
    std::remove(pl_path.c_str());
    g.labels_text = make_labels(sc, g.stats, seed).dump(2);
    g.labels = nlohmann::json::parse(g.labels_text);
    return g;
}

Scenario must_load(const std::string& yaml) {
    LoadResult r = load_scenario_string(yaml, "test.yaml");
    EXPECT_TRUE(r.ok()) << dump(r);
    return r.scenario;
}

// Every kind of traffic, small enough for a sanitizer build.
const char* kMixed = R"(
name: mixed
duration: 4
servers:
  - {name: web, ipv4: 192.0.2.10, ipv6: "2001:db8::10", ports: [80, 443], backlog: 256}
  - {name: app, ipv4: 192.0.2.20, ports: [8080], vlan: 100, backlog: 32, syncookies: false}
  - {name: mail, ipv4: 198.51.100.25, ipv6: "2001:db8:1::25", ports: [25]}
clients:
  rate: 150
  ipv6_share: 0.3
  retransmit_share: 0.05
  reorder_share: 0.05
  close: {server_first: 0.3, rst: 0.1, simultaneous: 0.1}
attacks:
  - {type: syn_flood, target: web:80, rate: 3000, start: 0.5, duration: 1}
  - {type: half_open_exhaustion, target: app:8080, rate: 60, start: 0.2}
  - {type: synack_reflection, target: 192.0.2.10, rate: 500, start: 1, duration: 1}
  - {type: ack_flood, target: "[2001:db8::10]:443", rate: 800, start: 1, duration: 1}
  - {type: rst_flood, target: mail:25, rate: 500, start: 2, duration: 1}
  - {type: fin_flood, target: 192.0.2.0/28:80, rate: 500, start: 2, duration: 1}
  - {type: syn_scan, target: 192.0.2.8/29, ports: "20-25,80,443,8080", rate: 300, start: 0.1}
  - {type: stealth_scan, variant: xmas, target: 192.0.2.10, ports: "1-100", rate: 200, start: 1}
  - {type: stealth_scan, variant: null, target: 192.0.2.20, ports: "8000-8100", rate: 200, start: 1}
  - {type: stealth_scan, variant: fin, target: "2001:db8::10", ports: "70-90", rate: 100, start: 1}
  - {type: connect_scan, target: 192.0.2.10, ports: "75-85,440-445", rate: 50, start: 0.5}
  - {type: rst_injection, target: web:443, rate: 8, start: 1}
  - {type: flash_crowd, target: web:80, rate: 200, start: 1.5, duration: 2, ramp: 0.5}
)";

TEST(Generate, SameSeedSameBytesOtherSeedOtherBytes) {
    const Scenario sc = must_load(kMixed);
    const Generated a = generate_to_memory(sc, 7);
    const Generated b = generate_to_memory(sc, 7);
    const Generated c = generate_to_memory(sc, 8);
    ASSERT_GT(a.pcap.size(), 100000u);
    EXPECT_TRUE(a.pcap == b.pcap) << "same seed, different pcap";
    EXPECT_TRUE(a.packet_labels == b.packet_labels);
    EXPECT_EQ(a.labels_text, b.labels_text);
    EXPECT_FALSE(a.pcap == c.pcap);
}

TEST(Generate, ABaselineDoesNotChangeWhenAnAttackIsAdded) {
    // Every source has its own random stream: adding a scan leaves the clients' traffic alone.
    std::string y = "duration: 3\nservers: [{name: web, ipv4: 192.0.2.10, ports: [80]}]\nclients: {rate: 100}\n";
    const Generated plain = generate_to_memory(must_load(y), 3);
    y += "attacks: [{type: syn_scan, target: 192.0.2.200, ports: '1-500', rate: 300}]\n";
    const Generated with = generate_to_memory(must_load(y), 3);
    for (unsigned c = 0; c < kLegitClassCount; ++c) EXPECT_EQ(plain.stats.class_packets[c], with.stats.class_packets[c]) << class_name(c);
}

struct Record {
    uint64_t ts_ns;
    std::vector<uint8_t> frame;
    uint32_t wire;
};

std::vector<Record> records(const std::vector<uint8_t>& b) {
    std::vector<Record> v;
    EXPECT_GE(b.size(), 24u);
    const bool nano = le32(b.data()) == 0xa1b23c4du;
    size_t off = 24;
    while (off + 16 <= b.size()) {
        Record r;
        const uint32_t cap = le32(&b[off + 8]);
        r.wire = le32(&b[off + 12]);
        r.ts_ns = static_cast<uint64_t>(le32(&b[off])) * 1000000000ull + le32(&b[off + 4]) * (nano ? 1ull : 1000ull);
        EXPECT_LE(off + 16 + cap, b.size());
        r.frame.assign(b.begin() + static_cast<long>(off + 16), b.begin() + static_cast<long>(off + 16 + cap));
        v.push_back(std::move(r));
        off += 16 + cap;
    }
    EXPECT_EQ(off, b.size()) << "trailing bytes";
    return v;
}

IpAddr src_of(const std::vector<uint8_t>& f) {
    const Parsed p = locate(f);
    IpAddr a;
    a.v6 = p.v6;
    std::memcpy(a.b.data(), &f[p.l3 + (p.v6 ? 8 : 12)], p.v6 ? 16 : 4);
    return a;
}

IpAddr dst_of(const std::vector<uint8_t>& f) {
    const Parsed p = locate(f);
    IpAddr a;
    a.v6 = p.v6;
    std::memcpy(a.b.data(), &f[p.l3 + (p.v6 ? 24 : 16)], p.v6 ? 16 : 4);
    return a;
}

// Per direction of a legitimate connection: what was sent, relative to the ISN.
struct Side {
    bool have_isn = false;
    uint32_t isn = 0;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;  // data bytes [a, b)
    uint32_t hi = 0;             // highest data byte end seen
    bool fin = false;
    uint32_t fin_rel = 0;
    bool fin_acked = false;
};
struct Flow {
    Side side[2];
    bool rst = false;
};

TEST(Generate, LabelsMatchThePcapAndEveryConnectionsArithmeticHolds) {
    const Scenario sc = must_load(kMixed);
    const Generated g = generate_to_memory(sc, 11);
    const auto recs = records(g.pcap);
    ASSERT_EQ(recs.size(), g.stats.packets);
    ASSERT_EQ(g.packet_labels.size(), 2 * recs.size());
    EXPECT_EQ(g.labels["totals"]["packets"].get<uint64_t>(), recs.size());

    std::vector<uint64_t> per_class(kClassCount, 0);
    std::vector<uint64_t> per_label(sc.attacks.size() + 1, 0), attacker(sc.attacks.size() + 1, 0);
    std::map<std::pair<std::string, uint16_t>, int> flow_ids;
    std::map<std::vector<uint8_t>, Flow> flows;
    uint64_t wire = 0, prev_ts = 0, v6 = 0, vlan = 0;
    const uint64_t t0 = sc.start_epoch_ns, t1 = t0 + static_cast<uint64_t>(sc.duration * 1e9);
    for (size_t i = 0; i < recs.size(); ++i) {
        const Record& r = recs[i];
        const unsigned label = g.packet_labels[2 * i], cls = g.packet_labels[2 * i + 1];
        ASSERT_LT(cls, kClassCount);
        ASSERT_LE(label, sc.attacks.size());
        ++per_class[cls];
        ++per_label[label];
        wire += r.wire;
        EXPECT_GE(r.ts_ns, prev_ts) << "record " << i << " goes back in time";
        prev_ts = r.ts_ns;
        EXPECT_GE(r.ts_ns, t0);
        EXPECT_LT(r.ts_ns, t1);
        expect_checksums_valid(r.frame);
        PacketMeta m = parse_back(r.frame);
        if (m.info & ib::ipv6) ++v6;
        if (m.vlan_depth) ++vlan;
        const uint8_t fl = m.tcp_flags;
        const uint32_t len = m.payload_len;
        const double t = static_cast<double>(r.ts_ns - t0) / 1e9;

        if (label > 0) {
            const AttackSpec& a = sc.attacks[label - 1];
            const bool scan = a.type == AttackType::syn_scan || a.type == AttackType::stealth_scan ||
                              a.type == AttackType::connect_scan;
            bool from_attacker;
            if (scan) {
                from_attacker = src_of(r.frame) == a.source;
            } else if (a.service >= 0 && (a.type == AttackType::rst_injection || a.type == AttackType::flash_crowd)) {
                // Toward the service, over either of its server's addresses.
                const ServerSpec& srv = sc.servers[sc.services[static_cast<size_t>(a.service)].server];
                const IpAddr d = dst_of(r.frame);
                from_attacker = m.key.port[static_cast<int>(m.sender) ^ 1] == a.port &&
                                ((srv.has_v4 && d == srv.v4) || (srv.has_v6 && d == srv.v6));
            } else {
                from_attacker = a.target.contains(dst_of(r.frame)) && !a.target.contains(src_of(r.frame));
            }
            if (from_attacker) {
                ++attacker[label];
                const double end = a.duration < 0 ? sc.duration : a.start + a.duration;
                // An attacker's own packets lie in its window (a connect scan's handshake may
                // finish one RTT after its last SYN; a crowd's connections outlive the surge).
                if (a.type != AttackType::connect_scan && a.type != AttackType::syn_scan && a.type != AttackType::flash_crowd) {
                    EXPECT_GE(t, a.start - 1e-6) << attack_type_name(a.type);
                    EXPECT_LE(t, end + 1e-6) << attack_type_name(a.type);
                }
            }
            if (a.type != AttackType::flash_crowd) {
                EXPECT_EQ(cls, kLegitClassCount + static_cast<unsigned>(a.type)) << i;
                // Flags an attack of this type can produce, attacker side then victim side.
                std::set<uint8_t> ok;
                switch (a.type) {
                    case AttackType::syn_flood:
                    case AttackType::half_open_exhaustion:
                        ok = from_attacker ? std::set<uint8_t>{tcpf::syn} : std::set<uint8_t>{0x12, 0x14};
                        break;
                    case AttackType::synack_reflection:
                        ok = from_attacker ? std::set<uint8_t>{0x12} : std::set<uint8_t>{tcpf::rst};
                        break;
                    case AttackType::ack_flood:
                        ok = from_attacker ? std::set<uint8_t>{tcpf::ack} : std::set<uint8_t>{tcpf::rst};
                        break;
                    case AttackType::rst_flood:
                        ok = {tcpf::rst, 0x14};
                        EXPECT_TRUE(from_attacker);
                        break;
                    case AttackType::fin_flood:
                        ok = from_attacker ? std::set<uint8_t>{0x11} : std::set<uint8_t>{tcpf::rst};
                        break;
                    case AttackType::syn_scan:
                        ok = from_attacker ? std::set<uint8_t>{tcpf::syn, tcpf::rst} : std::set<uint8_t>{0x12, 0x14};
                        break;
                    case AttackType::stealth_scan: {
                        const uint8_t probe = a.variant == StealthVariant::fin ? 0x01 : a.variant == StealthVariant::null ? 0x00 : 0x29;
                        ok = from_attacker ? std::set<uint8_t>{probe} : std::set<uint8_t>{0x14};
                        break;
                    }
                    case AttackType::connect_scan:
                        ok = from_attacker ? std::set<uint8_t>{tcpf::syn, tcpf::ack, 0x14} : std::set<uint8_t>{0x12, 0x14};
                        break;
                    case AttackType::rst_injection:
                        ok = {tcpf::rst};
                        break;
                    default:
                        break;
                }
                EXPECT_TRUE(ok.count(fl)) << attack_type_name(a.type) << (from_attacker ? " attacker" : " victim")
                                          << " flags 0x" << std::hex << int(fl) << " record " << std::dec << i;
                EXPECT_EQ(len, 0u);
                continue;
            }
        }

        // Legitimate (baseline or crowd): flags by class.
        switch (static_cast<LegitClass>(cls)) {
            case LegitClass::legit_syn:
                EXPECT_EQ(fl, tcpf::syn);
                break;
            case LegitClass::legit_synack:
                EXPECT_EQ(fl, tcpf::syn | tcpf::ack);
                break;
            case LegitClass::legit_ack:
                EXPECT_EQ(fl, tcpf::ack);
                EXPECT_EQ(len, 0u);
                break;
            case LegitClass::legit_data:
            case LegitClass::legit_out_of_order:
                EXPECT_GT(len, 0u);
                EXPECT_EQ(fl & ~tcpf::psh, tcpf::ack);
                break;
            case LegitClass::legit_fin:
                EXPECT_EQ(fl, tcpf::fin | tcpf::ack);
                break;
            case LegitClass::legit_rst:
                EXPECT_EQ(fl, tcpf::rst | tcpf::ack);
                break;
            case LegitClass::legit_retransmit:
                EXPECT_TRUE(len > 0 || fl == tcpf::syn) << std::hex << int(fl);
                break;
            default:
                ADD_FAILURE() << "attack class " << cls << " on a legitimate packet";
        }

        // Sequence arithmetic per connection (RFC 9293 section 3.4).
        std::vector<uint8_t> key(reinterpret_cast<const uint8_t*>(&m.key),
                                 reinterpret_cast<const uint8_t*>(&m.key) + sizeof(m.key));
        Flow& f = flows[key];
        const int s = static_cast<int>(m.sender), o = 1 - s;
        Side& me = f.side[s];
        Side& peer = f.side[o];
        if (fl & tcpf::syn) {
            if (!(fl & tcpf::ack)) {
                if (me.have_isn) {
                    EXPECT_EQ(m.seq, me.isn) << "a retransmitted SYN keeps its ISN";
                }
            } else {
                ASSERT_TRUE(peer.have_isn) << "SYN-ACK without a SYN, record " << i;
                EXPECT_EQ(m.ack, peer.isn + 1) << "SYN-ACK ack = x + 1, record " << i;
            }
            me.have_isn = true;
            me.isn = m.seq;
            continue;
        }
        ASSERT_TRUE(me.have_isn && peer.have_isn) << "segment before the handshake, record " << i;
        const uint32_t rel = m.seq - me.isn - 1;
        if (fl & tcpf::rst) {
            EXPECT_EQ(rel, me.hi + (me.fin ? 1 : 0)) << "RST seq = SND.NXT, record " << i;
            f.rst = true;
            continue;
        }
        if (len) {
            me.ranges.push_back({rel, rel + len});
            me.hi = std::max(me.hi, rel + len);
        }
        if (fl & tcpf::fin) {
            EXPECT_EQ(rel, me.hi) << "FIN after the last data byte, record " << i;
            me.fin = true;
            me.fin_rel = rel;
        }
        const uint32_t ack_rel = m.ack - peer.isn - 1;
        const uint32_t can_ack = peer.hi + (peer.fin ? 1 : 0);
        EXPECT_LE(ack_rel, can_ack) << "ACK of unseen data, record " << i;
        if (peer.fin && ack_rel == peer.fin_rel + 1) peer.fin_acked = true;
    }
    (void)flow_ids;

    // Counts: classes and per-label packets in the labels = what the pcap holds.
    for (unsigned c = 0; c < kClassCount; ++c) {
        EXPECT_EQ(per_class[c], g.stats.class_packets[c]) << class_name(c);
        if (g.labels["classes"].contains(class_name(c))) {
            EXPECT_EQ(g.labels["classes"][class_name(c)].get<uint64_t>(), per_class[c]) << class_name(c);
        }
    }
    EXPECT_EQ(g.labels["totals"]["bytes"].get<uint64_t>(), wire);
    for (size_t k = 0; k < sc.attacks.size(); ++k) {
        const auto& e = g.labels["attacks"][k];
        EXPECT_EQ(e["id"].get<size_t>(), k + 1);
        EXPECT_EQ(e["packets"].get<uint64_t>(), per_label[k + 1]) << e["type"];
        EXPECT_EQ(e["packets_attacker"].get<uint64_t>(), attacker[k + 1]) << e["type"];
        EXPECT_EQ(e["packets_attacker"].get<uint64_t>() + e["packets_response"].get<uint64_t>(), per_label[k + 1]);
        EXPECT_GT(per_label[k + 1], 0u) << e["type"];
        EXPECT_EQ(e["control"].get<bool>(), sc.attacks[k].type == AttackType::flash_crowd);
    }
    EXPECT_GT(v6, 0u);
    EXPECT_GT(vlan, 0u);

    // Completed connections: every byte sent once or more without holes, every FIN ACKed.
    size_t completed = 0;
    for (auto& [key, f] : flows) {
        const bool closed = f.side[0].fin_acked && f.side[1].fin_acked;
        if (!closed) continue;
        ++completed;
        for (auto& sd : f.side) {
            std::sort(sd.ranges.begin(), sd.ranges.end());
            uint32_t reach = 0;
            for (auto [a, b] : sd.ranges) {
                EXPECT_LE(a, reach) << "a hole in the data";
                reach = std::max(reach, b);
            }
            EXPECT_EQ(reach, sd.hi);
        }
    }
    EXPECT_GT(completed, 200u);
    // The small backlog without cookies under half-open exhaustion drops legitimate SYNs,
    // which are retransmitted.
    EXPECT_GT(g.stats.legit_syn_dropped, 0u);
}

TEST(Generate, ProgressAndNanosecondTimestamps) {
    Scenario sc = must_load("duration: 2\ntimestamps: ns\nservers: [{name: w, ipv4: 192.0.2.10}]\n"
                            "attacks: [{type: syn_flood, target: w:80, rate: 300k}]\n");
    const std::string path = temp_path("ns.pcap");
    PcapWriter w;
    std::string err;
    ASSERT_TRUE(w.open(path, sc.resolution, sc.snaplen, err));
    GenerateOptions opt;
    int calls = 0;
    opt.progress = [&](const Progress& p) {
        ++calls;
        EXPECT_GT(p.packets, 0u);
        EXPECT_LE(p.capture_seconds, 2.0);
    };
    const RunStats st = generate(sc, w, opt);
    ASSERT_TRUE(w.close(err));
    const auto recs = records(slurp(path));
    std::remove(path.c_str());
    EXPECT_GT(calls, 0);
    ASSERT_EQ(recs.size(), st.packets);
    size_t sub_us = 0;
    for (const auto& r : recs) sub_us += (r.ts_ns % 1000) != 0;
    EXPECT_GT(sub_us, recs.size() / 2) << "nanosecond timestamps";
}

}  // namespace
