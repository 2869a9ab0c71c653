// SPDX-License-Identifier: BSD-3-Clause
// Mitigation rules without DPDK: matching by every field, first match wins, flag masks, state
// classes, victim_of, payload patterns through real Hyperscan (nocase, the scan limit), per-rule
// counters, token buckets per rule and per source on a synthetic clock, and every YAML error
// reported with its place.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "flow_key.hpp"
#include "rules.hpp"
#include "rules_yaml.hpp"

namespace stateline::rules {
namespace {

namespace tf = packet::tcp_flag;
constexpr uint64_t kSec = 1'000'000'000;

struct Addr {
    uint8_t b[16];
};

Addr ip(const char* text) {
    Addr a{};
    if (std::strchr(text, ':')) {
        EXPECT_EQ(inet_pton(AF_INET6, text, a.b), 1) << text;
    } else {
        uint8_t v4[4]{};
        EXPECT_EQ(inet_pton(AF_INET, text, v4), 1) << text;
        flow::map_ipv4(a.b, v4);
    }
    return a;
}

// A packet builder: defaults are a pure ACK on an established connection, 10.0.0.1 -> 192.0.2.10:80.
struct Pkt {
    Addr src = ip("10.0.0.1"), dst = ip("192.0.2.10");
    uint16_t sport = 40000, dport = 80;
    uint8_t flags = tf::ack;
    uint8_t state = state_bit::established;
    uint32_t victim_of = 0;
    const VictimSet* victims = nullptr;
    VerifiedFn verified = nullptr;
    const void* verified_ctx = nullptr;
    std::string payload;
    uint32_t stream_offset = 0;
    uint64_t ts = kSec;
    PacketView view() const {
        PacketView v{};
        v.src = src.b;
        v.dst = dst.b;
        v.sport = sport;
        v.dport = dport;
        v.tcp_flags = flags;
        v.state = state;
        v.victim_of = victim_of;
        v.victims = victims;
        v.verified = verified;
        v.verified_ctx = verified_ctx;
        v.stream_offset = stream_offset;
        v.payload = reinterpret_cast<const uint8_t*>(payload.data());
        v.payload_len = static_cast<uint32_t>(payload.size());
        v.ts_ns = ts;
        return v;
    }
};

std::shared_ptr<const RuleSet> load(const std::string& yaml, const Options& opt = {}) {
    auto r = load_rules_string(yaml, "rules.yaml", opt);
    EXPECT_TRUE(r.ok()) << format_errors(r.errors);
    return r.set;
}

// The errors of a document that must fail, one "where: what" per line.
std::string errors_of(const std::string& yaml) {
    auto r = load_rules_string(yaml, "rules.yaml");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.set, nullptr);
    return format_errors(r.errors);
}

int rule_of(WorkerRules& w, const Pkt& p) { return w.evaluate(p.view()).rule; }

TEST(Rules, MatchesEachField) {
    auto set = load(R"(
rules:
  - {name: by-src, match: {src: 198.51.100.0/24}, action: alert}
  - {name: by-dst, match: {dst: [203.0.113.0/24, "2001:db8::/32"]}, action: alert}
  - {name: by-port, match: {dst_port: [22, 8000-8080]}, action: alert}
  - {name: by-flags, match: {flags: FIN}, action: alert}
  - {name: by-state, match: {state: half_open}, action: alert}
  - {name: by-victim, match: {victim_of: [rst_flood, ack_flood]}, action: alert}
)");
    ASSERT_TRUE(set);
    WorkerRules w(set);
    Pkt base;
    EXPECT_EQ(rule_of(w, base), -1);
    Pkt p = base;
    p.src = ip("198.51.100.7");
    EXPECT_EQ(rule_of(w, p), 0);
    p = base;
    p.dst = ip("203.0.113.1");
    EXPECT_EQ(rule_of(w, p), 1);
    p.dst = ip("2001:db8::1");
    EXPECT_EQ(rule_of(w, p), 1);
    p.dst = ip("2001:db9::1");
    EXPECT_EQ(rule_of(w, p), -1);
    p = base;
    p.dport = 22;
    EXPECT_EQ(rule_of(w, p), 2);
    p.dport = 8000;
    EXPECT_EQ(rule_of(w, p), 2);
    p.dport = 8080;
    EXPECT_EQ(rule_of(w, p), 2);
    p.dport = 8081;
    EXPECT_EQ(rule_of(w, p), -1);
    p = base;
    p.flags = tf::fin;
    EXPECT_EQ(rule_of(w, p), 3);
    p = base;
    p.state = state_bit::half_open;
    EXPECT_EQ(rule_of(w, p), 4);
    p = base;
    p.victim_of = victim_bit(detect::AlertType::ack_flood);
    EXPECT_EQ(rule_of(w, p), 5);
    p.victim_of = victim_bit(detect::AlertType::syn_flood);
    EXPECT_EQ(rule_of(w, p), -1);
}

TEST(Rules, FirstMatchWinsAndAllFieldsMustHold) {
    auto set = load(R"(
rules:
  - name: allow-admin
    match: {src: 10.0.0.0/8, dst_port: 80, state: [new, established]}
    action: allow
  - {name: drop-web, match: {dst_port: 80}, action: drop}
)");
    WorkerRules w(set);
    Pkt p;
    auto d = w.evaluate(p.view());
    EXPECT_EQ(d.rule, 0);
    EXPECT_EQ(d.verdict, Verdict::pass);
    p.state = state_bit::closing;  // rule 0's state does not hold: falls to rule 1
    d = w.evaluate(p.view());
    EXPECT_EQ(d.rule, 1);
    EXPECT_EQ(d.verdict, Verdict::drop);
    p = Pkt{};
    p.src = ip("11.0.0.1");
    EXPECT_EQ(rule_of(w, p), 1);
    EXPECT_EQ(w.hits(0), 1u);
    EXPECT_EQ(w.drops(0), 0u);
    EXPECT_EQ(w.hits(1), 2u);
    EXPECT_EQ(w.drops(1), 2u);
}

TEST(Rules, FlagMasks) {
    uint8_t v = 0, m = 0;
    std::string why;
    ASSERT_TRUE(parse_flags("SYN", v, m, why));
    EXPECT_EQ(v, tf::syn);
    EXPECT_EQ(m, tf::fin | tf::syn | tf::rst | tf::ack);
    ASSERT_TRUE(parse_flags("syn/SYN,ACK", v, m, why));
    EXPECT_EQ(v, tf::syn);
    EXPECT_EQ(m, tf::syn | tf::ack);
    ASSERT_TRUE(parse_flags("none/SYN|ACK|RST|FIN", v, m, why));
    EXPECT_EQ(v, 0);
    EXPECT_FALSE(parse_flags("SYN/ACK", v, m, why));
    EXPECT_FALSE(parse_flags("SYNN", v, m, why));
    EXPECT_NE(why.find("SYNN"), std::string::npos);

    auto set = load(R"(
rules:
  - {name: pure-syn, match: {flags: SYN}, action: alert}
  - {name: syn-no-ack, match: {flags: "SYN/SYN,ACK"}, action: alert}
  - {name: synack, match: {flags: "SYN,ACK"}, action: alert}
  - {name: null-scan, match: {flags: "none/FIN,SYN,RST,PSH,ACK,URG"}, action: alert}
  - {name: any-ack, match: {flags: ACK/ACK}, action: alert}
)");
    WorkerRules w(set);
    Pkt p;
    p.flags = tf::syn;
    EXPECT_EQ(rule_of(w, p), 0);
    p.flags = tf::syn | tf::ece | tf::cwr;  // ECN setup SYN is still a SYN
    EXPECT_EQ(rule_of(w, p), 0);
    p.flags = tf::syn | tf::fin;  // not a pure SYN, but SYN without ACK
    EXPECT_EQ(rule_of(w, p), 1);
    p.flags = tf::syn | tf::ack;
    EXPECT_EQ(rule_of(w, p), 2);
    p.flags = 0;
    EXPECT_EQ(rule_of(w, p), 3);
    p.flags = tf::ack | tf::psh | tf::fin;
    EXPECT_EQ(rule_of(w, p), 4);
    p.flags = tf::rst;
    EXPECT_EQ(rule_of(w, p), -1);
}

TEST(Rules, StateClasses) {
    using S = tcp::State;
    EXPECT_EQ(state_class(true, S::syn_sent, S::closed), state_bit::new_conn);
    EXPECT_EQ(state_class(false, S::syn_sent, S::syn_received), state_bit::half_open);
    EXPECT_EQ(state_class(false, S::syn_sent, S::closed), state_bit::half_open);
    EXPECT_EQ(state_class(false, S::established, S::established), state_bit::established);
    EXPECT_EQ(state_class(false, S::fin_wait_1, S::established), state_bit::closing);
    EXPECT_EQ(state_class(false, S::time_wait, S::closed), state_bit::closing);
    EXPECT_EQ(state_class(false, S::closed, S::closed), state_bit::closing);
    // After the SYN-ACK the client is ESTABLISHED and the server still SYN-RCVD: half-open until
    // the final ACK, so flood mitigation may still act on it.
    EXPECT_EQ(state_class(false, S::established, S::syn_received), state_bit::half_open);
    EXPECT_EQ(state_class(false, S::syn_received, S::established), state_bit::half_open);
    EXPECT_EQ(state_class(false, S::established, S::closed), state_bit::closing);  // one end reset

    auto set = load(R"(
rules:
  - {name: n, match: {state: new}, action: alert}
  - {name: h, match: {state: half_open}, action: alert}
  - {name: e, match: {state: established}, action: alert}
  - {name: c, match: {state: closing}, action: alert}
)");
    WorkerRules w(set);
    Pkt p;
    const uint8_t classes[] = {state_bit::new_conn, state_bit::half_open, state_bit::established, state_bit::closing};
    for (int i = 0; i < 4; ++i) {
        p.state = classes[i];
        EXPECT_EQ(rule_of(w, p), i);
    }
}

TEST(Rules, VictimOfAndSynFloodMitigation) {
    // The issue's example: SYNs to a victim of an active syn_flood, not from known networks.
    auto set = load(R"(
rules:
  - {name: known, match: {src: 10.0.0.0/8, flags: SYN, victim_of: syn_flood}, action: allow}
  - {name: flood, match: {flags: SYN, state: new, victim_of: syn_flood}, action: drop}
)");
    WorkerRules w(set);
    Pkt p;
    p.flags = tf::syn;
    p.state = state_bit::new_conn;
    EXPECT_EQ(w.evaluate(p.view()).verdict, Verdict::pass);
    EXPECT_EQ(rule_of(w, p), -1);  // not a victim: nothing matched
    p.victim_of = victim_bit(detect::AlertType::syn_flood) | victim_bit(detect::AlertType::rst_flood);
    EXPECT_EQ(rule_of(w, p), 0);
    p.src = ip("203.0.113.9");
    auto d = w.evaluate(p.view());
    EXPECT_EQ(d.rule, 1);
    EXPECT_EQ(d.verdict, Verdict::drop);
    p.state = state_bit::established;  // established connections are never this rule's
    p.flags = tf::ack;
    EXPECT_EQ(rule_of(w, p), -1);
}

TEST(Rules, VictimSetLookups) {
    std::vector<VictimEntry> e(3);
    std::memcpy(e[0].addr, ip("192.0.2.10").b, 16);
    e[0].port = 0;
    e[0].bits = victim_bit(detect::AlertType::syn_flood);
    std::memcpy(e[1].addr, ip("192.0.2.10").b, 16);
    e[1].port = 443;
    e[1].bits = victim_bit(detect::AlertType::rst_flood);
    std::memcpy(e[2].addr, ip("2001:db8::5").b, 16);
    e[2].port = 80;
    e[2].bits = victim_bit(detect::AlertType::ack_flood);
    // Many more, so that probes collide and wrap.
    for (unsigned i = 0; i < 200; ++i) {
        VictimEntry x{};
        const std::string a = "198.51.100." + std::to_string(i);
        std::memcpy(x.addr, ip(a.c_str()).b, 16);
        x.port = static_cast<uint16_t>(i % 3);
        x.bits = victim_bit(detect::AlertType::fin_flood);
        e.push_back(x);
    }
    VictimSet v(e, 7);
    EXPECT_EQ(v.size(), 203u);
    EXPECT_EQ(v.epoch(), 7u);
    EXPECT_EQ(v.lookup(ip("192.0.2.10").b, 80), victim_bit(detect::AlertType::syn_flood));
    EXPECT_EQ(v.lookup(ip("192.0.2.10").b, 443),
              victim_bit(detect::AlertType::syn_flood) | victim_bit(detect::AlertType::rst_flood));
    EXPECT_EQ(v.lookup(ip("192.0.2.11").b, 443), 0u);
    EXPECT_EQ(v.lookup(ip("2001:db8::5").b, 80), victim_bit(detect::AlertType::ack_flood));
    EXPECT_EQ(v.lookup(ip("2001:db8::5").b, 81), 0u);
    for (unsigned i = 0; i < 200; ++i) {
        const std::string a = "198.51.100." + std::to_string(i);
        const uint16_t port = static_cast<uint16_t>(i % 3);
        // Port 0 entries cover every port; the others only theirs.
        EXPECT_EQ(v.lookup(ip(a.c_str()).b, port == 0 ? 9 : port), victim_bit(detect::AlertType::fin_flood)) << a;
        if (port != 0) { EXPECT_EQ(v.lookup(ip(a.c_str()).b, 9), 0u) << a; }
    }
    // A duplicate (address, port) ORs its alert types into one entry.
    VictimSet d({e[0], e[0], e[1]});
    EXPECT_EQ(d.size(), 2u);
    EXPECT_EQ(VictimSet().lookup(ip("192.0.2.10").b, 80), 0u);
}

bool verified_10_8(const void*, const uint8_t* a) noexcept { return a[12] == 10; }

TEST(Rules, SynFloodPolicyFromVictimSetAndVerifiedSources) {
    // The issue's policy: while the destination is under a SYN flood, SYNs from sources that did
    // not complete a handshake recently are dropped; verified sources pass.
    auto set = load(R"(
rules:
  - {name: flood, match: {flags: SYN, victim_of: syn_flood, src_verified: false}, action: drop}
)");
    ASSERT_TRUE(set);
    EXPECT_TRUE(set->has_victim_rules());
    EXPECT_TRUE(set->has_verified_rules());
    // victim_of on a dropping rule narrows it to new and half-open connections.
    EXPECT_EQ(set->spec(0).states, state_bit::new_conn | state_bit::half_open);
    std::vector<VictimEntry> e(1);
    std::memcpy(e[0].addr, ip("192.0.2.10").b, 16);
    e[0].bits = victim_bit(detect::AlertType::syn_flood);
    VictimSet victims(e);
    WorkerRules w(set);
    Pkt p;
    p.flags = tf::syn;
    p.state = state_bit::new_conn;
    p.victims = &victims;
    p.verified = verified_10_8;
    p.src = ip("203.0.113.9");
    EXPECT_EQ(w.evaluate(p.view()).verdict, Verdict::drop);
    p.src = ip("10.1.2.3");  // verified: passes
    EXPECT_EQ(rule_of(w, p), -1);
    p.src = ip("203.0.113.9");
    p.dst = ip("192.0.2.11");  // not a victim
    EXPECT_EQ(rule_of(w, p), -1);
    p.dst = ip("192.0.2.10");
    p.state = state_bit::half_open;  // a retransmitted SYN
    EXPECT_EQ(rule_of(w, p), 0);
    p.state = state_bit::established;  // a SYN on an established tuple is never flood-dropped
    EXPECT_EQ(rule_of(w, p), -1);
    p.state = state_bit::new_conn;
    p.verified = nullptr;  // no verified sources known (detection off): every source is unverified
    EXPECT_EQ(rule_of(w, p), 0);
    EXPECT_EQ(w.hits(0), 3u);
    EXPECT_EQ(w.drops(0), 3u);

    // Asking for established connections only is an error, not a rule that silently never acts.
    EXPECT_NE(errors_of(R"(
rules:
  - {name: bad, match: {victim_of: syn_flood, state: established}, action: drop}
)")
                  .find("flood mitigation never drops established"),
              std::string::npos);
    // An alert rule may look at established connections of a victim.
    auto a = load(R"(
rules:
  - {name: watch, match: {victim_of: syn_flood, state: established}, action: alert}
)");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->spec(0).states, state_bit::established);
    EXPECT_NE(errors_of("rules:\n  - {name: v, match: {src_verified: maybe}, action: alert}\n")
                  .find("'match.src_verified' of rule 'v' expects true or false"),
              std::string::npos);
}

TEST(Rules, PayloadOnlyInTheFirstBytesOfEachDirection) {
    Options opt;
    opt.scan_limit = 16;
    auto set = load(R"(
rules:
  - {name: p, match: {payload: "EVIL"}, action: drop}
)",
                    opt);
    WorkerRules w(set);
    Pkt p;
    p.payload = "xxEVILxx";
    p.stream_offset = 0;
    EXPECT_EQ(rule_of(w, p), 0);
    p.stream_offset = 8;  // bytes 8..15 of the stream: within the first 16
    EXPECT_EQ(rule_of(w, p), 0);
    p.stream_offset = 11;  // "EVIL" would end at byte 17: past the limit
    EXPECT_EQ(rule_of(w, p), -1);
    p.stream_offset = 16;  // wholly past the first 16 bytes: not scanned
    EXPECT_EQ(rule_of(w, p), -1);
    p.stream_offset = 4000000000u;  // far into the stream
    EXPECT_EQ(rule_of(w, p), -1);
}

TEST(Rules, PayloadThroughHyperscan) {
    Options opt;
    opt.scan_limit = 32;
    auto set = load(R"(
rules:
  - {name: admin, match: {dst_port: 80, payload: "GET /admin"}, action: drop}
  - {name: ua, match: {payload: "user-agent: *evilbot", nocase: true}, action: alert}
  - {name: exact-case, match: {payload: "^SSH-1\\."}, action: alert}
  - {name: late, match: {payload: "TAIL"}, action: alert}
)",
                    opt);
    ASSERT_TRUE(set);
    EXPECT_TRUE(set->has_payload_rules());
    WorkerRules w(set);
    Pkt p;
    p.payload = "GET /admin HTTP/1.1\r\n";
    auto d = w.evaluate(p.view());
    EXPECT_EQ(d.rule, 0);
    EXPECT_EQ(d.verdict, Verdict::drop);
    p.dport = 8080;  // same payload, port does not hold
    EXPECT_EQ(rule_of(w, p), -1);
    p.payload = "xx\nUser-Agent: EVILBOT/1\r\n";
    EXPECT_EQ(rule_of(w, p), 1);
    p.payload = "SSH-1.5-x";
    EXPECT_EQ(rule_of(w, p), 2);
    p.payload = "ssh-1.5-x";  // case matters without nocase
    EXPECT_EQ(rule_of(w, p), -1);
    p.payload = "SSH-2.0-x";
    EXPECT_EQ(rule_of(w, p), -1);
    // A pattern wholly inside the limit matches; one that ends past it does not.
    p.payload = std::string(28, 'x') + "TAIL";  // ends at byte 32
    EXPECT_EQ(rule_of(w, p), 3);
    p.payload = std::string(29, 'x') + "TAIL";  // ends at byte 33
    EXPECT_EQ(rule_of(w, p), -1);
    p.payload.clear();
    EXPECT_EQ(rule_of(w, p), -1);

    MatchSet m = w.scan(reinterpret_cast<const uint8_t*>("GET /admin TAIL"), 15);
    EXPECT_TRUE(m.test(0));
    EXPECT_FALSE(m.test(1));
    EXPECT_TRUE(m.test(3));

    // Two workers: one scratch each, the database shared.
    WorkerRules w2(set);
    p = Pkt{};
    p.payload = "GET /admin";
    EXPECT_EQ(rule_of(w2, p), 0);
    EXPECT_EQ(w2.hits(0), 1u);
    EXPECT_EQ(w.hits(0), 1u);
}

TEST(Rules, PayloadIsTestedLast) {
    // A packet that fails a cheap test never reaches the scan; the same packet passing them is scanned once.
    auto set = load(R"(
rules:
  - {name: a, match: {dst_port: 1, payload: "abc"}, action: alert}
  - {name: b, match: {payload: "zzz"}, action: alert}
  - {name: c, match: {payload: "abc"}, action: drop}
)");
    WorkerRules w(set);
    Pkt p;
    p.payload = "..abc..";
    auto d = w.evaluate(p.view());
    EXPECT_EQ(d.rule, 2);
    EXPECT_EQ(d.verdict, Verdict::drop);
}

TEST(TokenBucket, RateAndBurst) {
    TokenBucket b;
    const uint64_t rate = 10, burst = 5;
    uint64_t t = 100 * kSec;
    int passed = 0;
    for (int i = 0; i < 20; ++i) passed += b.take(t, rate, burst);
    EXPECT_EQ(passed, 5);  // starts full: the burst, then nothing at the same instant
    t += kSec / 10;        // 100 ms at 10/s: one token
    EXPECT_TRUE(b.take(t, rate, burst));
    EXPECT_FALSE(b.take(t, rate, burst));
    t += 3600 * kSec;  // a long idle gap refills to the burst only
    passed = 0;
    for (int i = 0; i < 20; ++i) passed += b.take(t, rate, burst);
    EXPECT_EQ(passed, 5);
    EXPECT_FALSE(b.take(t - kSec, rate, burst));  // the clock stepping back refills nothing
    // Steady state: 1000 packets over 10 s at 100/s offered pass at 10/s (+ the burst).
    passed = 0;
    for (int i = 0; i < 1000; ++i) passed += b.take(t + static_cast<uint64_t>(i) * kSec / 100, rate, burst);
    EXPECT_GE(passed, 99);
    EXPECT_LE(passed, 101);
}

TEST(Rules, RateLimitPerRule) {
    auto set = load(R"(
rules:
  - {name: limit, match: {flags: SYN}, action: rate_limit, rate: 100, burst: 10}
)");
    WorkerRules w(set);
    Pkt p;
    p.flags = tf::syn;
    int passed = 0;
    // 1000 SYNs/s from many sources over 2 s: the one bucket lets 10 + 200 through.
    for (int i = 0; i < 2000; ++i) {
        p.src.b[15] = static_cast<uint8_t>(i);
        p.ts = 10 * kSec + static_cast<uint64_t>(i) * kSec / 1000;
        auto d = w.evaluate(p.view());
        EXPECT_EQ(d.rule, 0);
        passed += d.verdict == Verdict::pass;
    }
    EXPECT_GE(passed, 209);
    EXPECT_LE(passed, 211);
    EXPECT_EQ(w.hits(0), 2000u);
    EXPECT_EQ(w.drops(0), 2000u - passed);

    // Two workers each get half the rate and burst.
    WorkerRules half(set, 2);
    passed = 0;
    for (int i = 0; i < 1000; ++i) {
        p.ts = 10 * kSec + static_cast<uint64_t>(i) * kSec / 1000;
        passed += half.evaluate(p.view()).verdict == Verdict::pass;
    }
    EXPECT_GE(passed, 54);
    EXPECT_LE(passed, 56);
}

TEST(Rules, RateLimitPerSourceFixedMemory) {
    Options opt;
    opt.source_buckets = 1024;
    auto set = load(R"(
rules:
  - {name: per-src, match: {flags: SYN}, action: rate_limit, rate: 5, burst: 5, per: source}
  - {name: per-rule, match: {flags: FIN}, action: rate_limit, rate: 5}
)",
                    opt);
    // Known before any worker is built (a reload checks it against the memory available).
    EXPECT_EQ(set->per_source_rules(), 1u);
    EXPECT_GE(set->worker_memory(), (1024 + 1) * sizeof(TokenBucket));
    EXPECT_LT(set->worker_memory(), (1024 + 1) * sizeof(TokenBucket) + 4096);
    WorkerRules w(set);
    // Memory is fixed when the worker is built: 1024 buckets + 1, whatever the traffic.
    EXPECT_EQ(w.bucket_memory(), (1024 + 1) * sizeof(TokenBucket));
    Pkt p;
    p.flags = tf::syn;
    p.ts = 5 * kSec;
    // One heavy source is limited to its burst; each light source still gets through.
    int heavy = 0;
    for (int i = 0; i < 100; ++i) heavy += w.evaluate(p.view()).verdict == Verdict::pass;
    EXPECT_EQ(heavy, 5);
    int light = 0;
    for (uint32_t i = 0; i < 100; ++i) {
        Pkt q = p;
        q.src = ip("198.51.100.0");
        q.src.b[14] = static_cast<uint8_t>(i >> 8);
        q.src.b[15] = static_cast<uint8_t>(i + 1);
        light += w.evaluate(q.view()).verdict == Verdict::pass;
    }
    EXPECT_GE(light, 95);  // a few may share a bucket with a neighbour (and with 10.0.0.1)
    EXPECT_EQ(w.bucket_memory(), (1024 + 1) * sizeof(TokenBucket));
    // After a second the heavy source has 5 tokens again.
    p.ts += kSec;
    heavy = 0;
    for (int i = 0; i < 100; ++i) heavy += w.evaluate(p.view()).verdict == Verdict::pass;
    EXPECT_EQ(heavy, 5);
    EXPECT_EQ(w.hits(0), 300u);
    EXPECT_EQ(w.drops(0), 300u - 10 - light);
}

TEST(Rules, BuildFromSpecs) {
    RuleSpec a;
    a.name = "bad";
    a.payload = "a(b";
    RuleSpec b;
    b.name = "lim";
    b.action = Action::rate_limit;
    RuleSpec c;
    c.name = "huge";
    c.action = Action::rate_limit;
    c.rate = 1;
    c.burst = 20'000'000'000;
    auto r = RuleSet::build({a, b, c});
    EXPECT_FALSE(r.ok());
    const std::string s = format_errors(r.errors);
    EXPECT_NE(s.find("rule 'bad': payload pattern 'a(b' does not compile"), std::string::npos) << s;
    EXPECT_NE(s.find("rule 'lim': rate_limit needs a rate"), std::string::npos) << s;
    EXPECT_NE(s.find("rule 'huge': rate and burst are at most"), std::string::npos) << s;
    auto empty = RuleSet::build({});
    ASSERT_TRUE(empty.ok());
    WorkerRules w(empty.set);
    Pkt p;
    EXPECT_EQ(rule_of(w, p), -1);
}

TEST(RulesYaml, EmptyAndAbsent) {
    auto r = load_rules_string("workers: 2\n");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.set->size(), 0u);
    r = load_rules_string("rules:\n");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.set->size(), 0u);
}

TEST(RulesYaml, EveryErrorAtOnceWithItsPlace) {
    const std::string s = errors_of(R"(rules:
  - name: a
    match: {src: 10.0.0.1/24, dst: nonsense, dst_port: [80, 90-70, 70000, x], flags: SYN|BOGUS, colour: red}
    action: drop
    bogus_key: 1
  - name: a
    action: explode
  - name: b
    action: rate_limit
  - name: c
    match: {state: sleepy, victim_of: [syn_flood, tsunami], payload: "a(b"}
    action: rate_limit
    rate: 0
    per: host
  - name: d
    match: {dst_port: 0-}
    action: drop
    rate: 10
  - name: e
    match: {nocase: true}
  - name: "bad name!"
    action: alert
  - action: alert
  - just-a-string
rules2: 1
)");
    const char* expected[] = {
        "rules.yaml:3:18: bad prefix '10.0.0.1/24' in 'match.src' of rule 'a': host bits set",
        "rules.yaml:3:36: bad prefix 'nonsense' in 'match.dst' of rule 'a'",
        "rules.yaml:3:61: port range '90-70' is empty",
        "rules.yaml:3:68: port range '70000' goes past 65535",
        "rules.yaml:3:75: bad port or port range 'x'",
        "rules.yaml:3:86: unknown TCP flag 'BOGUS'",
        "rules.yaml:3:97: unknown key 'colour' in 'match' of rule 'a'",
        "rules.yaml:5:5: unknown key 'bogus_key' in rule 'a'",
        "rules.yaml:6:11: rule name 'a' is already used at rules.yaml:2:11",
        "rules.yaml:7:13: unknown action 'explode' in rule 'a'",
        "rules.yaml:8:5: rule 'b': action rate_limit needs a 'rate'",
        "rules.yaml:11:20: unknown state 'sleepy' in rule 'c'",
        "rules.yaml:11:51: unknown alert type 'tsunami' in 'match.victim_of' of rule 'c'",
        "rules.yaml:11:70: payload pattern 'a(b' of rule 'c' does not compile: ",
        "rules.yaml:13:11: 'rate' of rule 'c' expects an integer in [1, 1000000000], got '0'",
        "rules.yaml:14:10: 'per' of rule 'c' expects rule or source, got 'host'",
        "rules.yaml:16:23: bad port or port range '0-'",
        "rules.yaml:18:11: 'rate' of rule 'd' applies to action rate_limit only",
        "rules.yaml:20:21: 'match.nocase' of rule 'e' without a payload pattern",
        "rules.yaml:19:5: rule 'e' has no 'action'",
        "rules.yaml:21:11: rule name 'bad name!' may hold only",
        "rules.yaml:23:5: rule #8 has no 'name'",
        "rules.yaml:24:5: rule #9 expects a mapping",
    };
    for (const char* e : expected) EXPECT_NE(s.find(e), std::string::npos) << "missing: " << e << "\nin:\n" << s;
    // Exactly these, nothing reported twice.
    EXPECT_EQ(static_cast<size_t>(std::count(s.begin(), s.end(), '\n')), std::size(expected)) << s;
}

TEST(RulesYaml, NotAList) {
    const std::string s = errors_of("rules:\n  name: x\n");
    EXPECT_NE(s.find("rules.yaml:2:3: 'rules' expects a list of rules"), std::string::npos) << s;
    const std::string t = errors_of("rules:\n  - {name: x, action: alert, match: [1]}\n");
    EXPECT_NE(t.find("rules.yaml:2:37: 'match' of rule 'x' expects a mapping"), std::string::npos) << t;
    const std::string u = errors_of("rules: [\n");
    EXPECT_NE(u.find("rules.yaml:"), std::string::npos) << u;
}

TEST(RulesYaml, TooManyRules) {
    std::string doc = "rules:\n";
    for (unsigned i = 0; i <= kMaxRules; ++i) doc += "  - {name: r" + std::to_string(i) + ", action: alert}\n";
    const std::string s = errors_of(doc);
    EXPECT_NE(s.find("257 rules: at most 256"), std::string::npos) << s;
}

TEST(RulesYaml, ParsesEverything) {
    auto set = load(R"(
rules:
  - name: full
    match:
      src: [198.51.100.0/24]
      dst: 192.0.2.0/24
      dst_port: [80, 443, 8000-8080]
      flags: SYN
      state: new
      victim_of: syn_flood
      payload: "GET"
      nocase: true
    action: rate_limit
    rate: 100
    per: source
)");
    ASSERT_TRUE(set);
    const RuleSpec& r = set->spec(0);
    EXPECT_EQ(r.name, "full");
    EXPECT_EQ(r.src.size(), 1u);
    EXPECT_EQ(r.dst.size(), 1u);
    ASSERT_EQ(r.dst_ports.size(), 3u);
    EXPECT_EQ(r.dst_ports[2].lo, 8000);
    EXPECT_EQ(r.dst_ports[2].hi, 8080);
    EXPECT_EQ(r.flags_value, tf::syn);
    EXPECT_EQ(r.states, state_bit::new_conn);
    EXPECT_EQ(r.victim_of, victim_bit(detect::AlertType::syn_flood));
    EXPECT_TRUE(r.nocase);
    EXPECT_EQ(r.action, Action::rate_limit);
    EXPECT_EQ(r.rate, 100u);
    EXPECT_EQ(r.burst, 100u);  // default: one second's worth
    EXPECT_EQ(r.per, Per::source);
}

}  // namespace
}  // namespace stateline::rules
