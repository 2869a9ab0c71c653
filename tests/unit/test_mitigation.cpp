// SPDX-License-Identifier: BSD-3-Clause
// Mitigation in the worker, with real frames: rules installed, a reload offered and swapped in at
// a burst boundary (take_mitigation_offers, what housekeeping does between bursts), the retired
// set collected and its counts folded by rule name, a failed config load that changes nothing,
// and victim sets offered through the mailbox. Frames are built with PacketBuilder, copied into
// mbufs (PacketMeta in the private area), parsed, and pushed through worker_process_burst on a
// Worker with a real FlowTable and TCP tracker, as tools/bench does (no ports: monitor mode frees
// every frame; inline forwarding needs a TX port and is covered by the functional suite).
//
// Needs EAL for the mbuf pool: initialised once with --no-huge --no-pci --no-shconf.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "alert_types.hpp"
#include "config.hpp"
#include "flow_key.hpp"
#include "mitigation.hpp"
#include "packet_builder.hpp"
#include "parser.hpp"
#include "ports.hpp"
#include "rules.hpp"
#include "worker.hpp"

using namespace stateline;
using stateline::test::ACK;
using stateline::test::PacketBuilder;
using stateline::test::PSH;
using stateline::test::SYN;

namespace {

rte_mempool* g_pool = nullptr;

class EalEnv : public ::testing::Environment {
public:
    void SetUp() override {
        std::vector<std::string> args = {"test_mitigation", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                                         "-m", "128", "-l", "0", "--log-level=warning",
                                         "--file-prefix=stateline-unit-mit-" + std::to_string(getpid())};
        std::vector<char*> argv;
        for (auto& s : args) argv.push_back(s.data());
        ASSERT_GE(rte_eal_init(int(argv.size()), argv.data()), 0) << "EAL init: " << rte_strerror(rte_errno);
        std::string err;
        g_pool = create_pktmbuf_pool(2047, int(rte_socket_id()), err);
        ASSERT_NE(g_pool, nullptr) << err;
    }
    void TearDown() override {
        rte_mempool_free(g_pool);
        g_pool = nullptr;
        rte_eal_cleanup();
    }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new EalEnv);

std::shared_ptr<const rules::RuleSet> load_rules(const std::string& yaml) {
    auto r = config::load_string(yaml, "test.yaml");
    EXPECT_TRUE(r.ok()) << config::format_errors(r.errors);
    EXPECT_NE(r.config.rules, nullptr);
    EXPECT_FALSE(r.config.inline_mode);
    return r.config.rules;
}

const char* const kSetA = R"(mitigation:
  mode: monitor
rules:
  - name: web
    match: {dst_port: 80}
    action: drop
)";

// B: the same name with another port, and a new rule.
const char* const kSetB = R"(mitigation:
  mode: monitor
rules:
  - name: web
    match: {dst_port: 8080}
    action: drop
  - name: ssh
    match: {dst_port: 22}
    action: alert
)";

// A worker without ports, as the benchmark builds it, with its Mitigation (declared after the
// worker: destroyed first, it frees what the worker holds).
struct Rig {
    static constexpr uint32_t kCapacity = 1024;
    tcp::Tracker tracker;
    std::unique_ptr<Worker> w = std::make_unique<Worker>();
    void* mem = nullptr;
    std::unique_ptr<flow::FlowTable> table;
    RunState run;
    std::unique_ptr<Mitigation> mit;
    uint64_t now_ns = 1'000'000'000;

    Rig() {
        flow::FlowTableConfig cfg;
        cfg.capacity = kCapacity;
        const size_t bytes = (flow::FlowTable::memory_size(cfg.capacity) + 63) / 64 * 64;
        mem = std::aligned_alloc(64, bytes);
        table = std::make_unique<flow::FlowTable>(cfg, mem, worker_on_remove, w.get());
        w->table = table.get();
        w->tracker = &tracker;
        w->run = &run;
        w->input = InputKind::ring;
        w->now_ns = now_ns;
        table->set_now(uint32_t(now_ns / 1'000'000));
        mit = std::make_unique<Mitigation>(std::vector<Worker*>{w.get()}, nullptr, false);
    }
    ~Rig() {
        mit.reset();
        table.reset();
        std::free(mem);
    }

    // Frames through the worker's pipeline in bursts of up to 32, each parsed into its mbuf's
    // PacketMeta first, 1 us apart.
    void send(const std::vector<std::vector<uint8_t>>& frames) {
        for (size_t i = 0; i < frames.size();) {
            const uint16_t n = uint16_t(std::min<size_t>(32, frames.size() - i));
            rte_mbuf* m[32];
            ASSERT_EQ(rte_pktmbuf_alloc_bulk(g_pool, m, n), 0);
            for (uint16_t k = 0; k < n; ++k, ++i) {
                const auto& f = frames[i];
                std::memcpy(rte_pktmbuf_mtod(m[k], void*), f.data(), f.size());
                m[k]->data_len = uint16_t(f.size());
                m[k]->pkt_len = uint32_t(f.size());
                packet::PacketMeta* meta = meta_of(m[k]);
                packet::parse_frame(rte_pktmbuf_mtod(m[k], const uint8_t*), uint32_t(f.size()),
                                    packet::LinkType::ethernet, *meta);
                meta->ts_ns = now_ns += 1000;
            }
            worker_process_burst(*w, m, n);
        }
    }
    uint64_t counter(counters::Scalar s) const { return w->counters.get(s); }
    uint64_t active() const { return table->stats().active; }
};

// n SYNs from distinct sources (10.0.<base>.i) to dst:port.
std::vector<std::vector<uint8_t>> syns(unsigned n, uint16_t port, unsigned base = 0, const char* dst = "192.0.2.1") {
    std::vector<std::vector<uint8_t>> out;
    for (unsigned i = 0; i < n; ++i) {
        const std::string src = "10.0." + std::to_string(base) + "." + std::to_string(i + 1);
        out.push_back(PacketBuilder().eth().ipv4(src, dst).tcp(uint16_t(40000 + i), port, SYN, 1000 + i).mss(1460).build());
    }
    return out;
}

uint64_t hits_of(const std::vector<RuleStat>& st, const std::string& name) {
    for (const auto& r : st)
        if (r.name == name) return r.hits;
    ADD_FAILURE() << "no rule named " << name;
    return 0;
}
uint64_t drops_of(const std::vector<RuleStat>& st, const std::string& name) {
    for (const auto& r : st)
        if (r.name == name) return r.drops;
    return 0;
}

// (a) Monitor mode: every SYN to port 80 counts as a would-drop and a hit of its rule.
TEST(Mitigation, MonitorCountsWouldDrop) {
    Rig r;
    r.mit->install(load_rules(kSetA));
    EXPECT_EQ(r.mit->generation(), 1u);
    r.send(syns(10, 80));
    r.send(syns(3, 443, 1));  // no rule
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 10u);
    EXPECT_EQ(r.counter(counters::Scalar::rules_dropped), 0u);
    EXPECT_EQ(r.counter(counters::Scalar::rx_packets), 13u);
    const auto st = r.mit->stats();
    ASSERT_EQ(st.size(), 1u);
    EXPECT_EQ(st[0].name, "web");
    EXPECT_EQ(st[0].action, "drop");
    EXPECT_EQ(st[0].hits, 10u);
    EXPECT_EQ(st[0].drops, 10u);  // monitor: would-drops count as the rule's drops
    EXPECT_EQ(r.active(), 13u);   // tracked, dropped or not
}

// (b) A reload: nothing changes until the worker's burst boundary; then the next burst is B's,
// the table keeps its connections, and the counts of a rule of the same name add up.
TEST(Mitigation, ReloadSwapsAtBurstBoundaryAndKeepsCounts) {
    Rig r;
    r.mit->install(load_rules(kSetA));
    // An established connection, to see that a swap keeps it.
    const auto c = [](uint8_t f, uint32_t s, uint32_t a, bool up, size_t pl = 0) {
        auto b = PacketBuilder().eth();
        if (up) b.ipv4("10.9.0.1", "192.0.2.5").tcp(5555, 8080, f, s, a);
        else b.ipv4("192.0.2.5", "10.9.0.1").tcp(8080, 5555, f, s, a);
        if (pl) b.payload(pl);
        return b.build();
    };
    r.send({c(SYN, 100, 0, true), c(SYN | ACK, 900, 101, false), c(ACK, 101, 901, true)});
    r.send(syns(10, 80));
    // web (80) hits: the 10 SYNs; the handshake to 8080 matches nothing under A.
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 10u);

    std::string why;
    ASSERT_TRUE(r.mit->offer(load_rules(kSetB), why)) << why;
    EXPECT_TRUE(r.mit->swap_pending());
    EXPECT_EQ(r.mit->generation(), 2u);
    ASSERT_EQ(r.mit->current()->size(), 2u);

    // A second reload while this one is pending is refused and changes nothing.
    std::string why2;
    rules::RuleSpec other;
    other.name = "other";
    other.action = rules::Action::alert;
    auto setC = rules::RuleSet::build({other}).set;
    ASSERT_NE(setC, nullptr);
    EXPECT_FALSE(r.mit->offer(setC, why2));
    EXPECT_FALSE(why2.empty());
    EXPECT_EQ(r.mit->generation(), 2u);
    EXPECT_EQ(r.mit->current()->spec(1).name, "ssh");

    // Before the burst boundary: A still evaluates (80 matches, 8080 does not).
    r.send(syns(5, 80, 1));
    r.send(syns(2, 8080, 2));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 15u);
    EXPECT_EQ(r.counter(counters::Scalar::rules_swaps), 0u);

    // The boundary: the worker swaps. The table is untouched.
    const uint64_t active = r.active(), inserted = r.table->stats().inserted;
    take_mitigation_offers(*r.w);
    EXPECT_EQ(r.counter(counters::Scalar::rules_swaps), 1u);
    EXPECT_EQ(r.active(), active);
    EXPECT_EQ(&r.w->rules->set(), r.mit->current().get());

    // B now: 8080 drops, 22 alerts, 80 passes.
    r.send(syns(4, 8080, 3));
    r.send(syns(3, 22, 4));
    r.send(syns(6, 80, 5));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 19u);
    EXPECT_EQ(r.counter(counters::Scalar::rules_alerted), 3u);
    // The established connection carries on as itself (no new entry for it) and B sees it.
    const uint64_t before_data = r.table->stats().inserted;
    r.send({c(ACK | PSH, 101, 901, true, 10)});
    EXPECT_EQ(r.table->stats().inserted, before_data);
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 20u);
    EXPECT_EQ(r.active(), active + 4 + 3 + 6);
    EXPECT_EQ(r.table->stats().inserted, inserted + 4 + 3 + 6);

    // The control core collects the retired set and folds its counts by name.
    r.mit->poll(nullptr);
    EXPECT_FALSE(r.mit->swap_pending());
    EXPECT_FALSE(r.w->mit.rules_retired_full.load());
    const auto st = r.mit->stats();
    ASSERT_EQ(st.size(), 2u);
    EXPECT_EQ(st[0].name, "web");
    EXPECT_EQ(st[1].name, "ssh");
    EXPECT_EQ(hits_of(st, "web"), 15u + 5u);  // 15 under A (port 80), 5 under B (8080, data included)
    EXPECT_EQ(drops_of(st, "web"), 20u);
    EXPECT_EQ(hits_of(st, "ssh"), 3u);
    EXPECT_EQ(drops_of(st, "ssh"), 0u);
    // Nothing lost, nothing counted twice: every hit is a frame that matched.
    uint64_t total = 0;
    for (const auto& s : st) total += s.hits;
    EXPECT_EQ(total, r.counter(counters::Scalar::rules_would_drop) + r.counter(counters::Scalar::rules_alerted));

    // Once collected, another reload is accepted.
    std::string why3;
    EXPECT_TRUE(r.mit->offer(setC, why3)) << why3;
    EXPECT_EQ(r.mit->generation(), 3u);
}

// stats() between the worker's swap and the control core's collect: the retired set's counts are
// still reported (it is the one per_.active points at) and none counted twice.
TEST(Mitigation, StatsBetweenSwapAndCollectNeverDoubleCount) {
    Rig r;
    r.mit->install(load_rules(kSetA));
    r.send(syns(7, 80));
    std::string why;
    ASSERT_TRUE(r.mit->offer(load_rules(kSetB), why)) << why;
    take_mitigation_offers(*r.w);
    r.send(syns(2, 8080, 1));
    const auto mid = r.mit->stats();
    // What is reported may lag (the new set's hits appear once collected) but never exceeds what
    // matched.
    uint64_t total = 0;
    for (const auto& s : mid) total += s.hits;
    EXPECT_LE(total, 9u);
    EXPECT_GE(hits_of(mid, "web"), 7u);
    r.mit->poll(nullptr);
    EXPECT_EQ(hits_of(r.mit->stats(), "web"), 9u);
}

// (c) A config with an error in rules: gives errors and no set; the running rules stay.
TEST(Mitigation, FailedLoadLeavesRunningRules) {
    Rig r;
    r.mit->install(load_rules(kSetA));
    r.send(syns(4, 80));
    const auto* running = &r.w->rules->set();

    const auto bad = config::load_string(R"(rules:
  - name: web
    match: {dst_port: 80}
    action: drop
  - name: broken
    match: {dst_port: 70000}
    action: explode
)",
                                         "bad.yaml");
    EXPECT_FALSE(bad.ok());
    EXPECT_GE(bad.errors.size(), 2u) << config::format_errors(bad.errors);  // every error at once
    for (const auto& e : bad.errors) EXPECT_NE(e.where.find("bad.yaml:"), std::string::npos) << e.where << ": " << e.what;
    EXPECT_EQ(bad.config.rules, nullptr);
    const auto bad_pattern = config::load_string("rules:\n  - name: p\n    match: {payload: \"(unclosed\"}\n    action: drop\n",
                                                 "bad2.yaml");
    EXPECT_FALSE(bad_pattern.ok());
    EXPECT_EQ(bad_pattern.config.rules, nullptr);

    // What a reload does with such a result: no offer. Everything keeps running as it was.
    EXPECT_EQ(r.mit->generation(), 1u);
    EXPECT_FALSE(r.mit->swap_pending());
    EXPECT_EQ(r.w->mit.rules_offered.load(), nullptr);
    take_mitigation_offers(*r.w);
    EXPECT_EQ(&r.w->rules->set(), running);
    r.send(syns(3, 80, 1));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 7u);
    EXPECT_EQ(r.counter(counters::Scalar::rules_swaps), 0u);
    EXPECT_EQ(hits_of(r.mit->stats(), "web"), 7u);
}

// (d) Victim sets through the mailbox, as Mitigation::poll offers them after a judged interval.
TEST(Mitigation, VictimSetOfferedTakesEffectAtBoundary) {
    Rig r;
    r.mit->install(load_rules(R"(rules:
  - name: syn-flood-unverified
    match: {flags: SYN, victim_of: syn_flood, src_verified: false}
    action: drop
)"));
    ASSERT_TRUE(r.mit->current()->has_victim_rules());
    // No alert active: the rule never matches.
    r.send(syns(5, 80, 0, "192.0.2.10"));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 0u);
    EXPECT_EQ(r.w->mit.victims_epoch.load(), 0u);

    rules::VictimEntry e{};
    const uint8_t v4[4] = {192, 0, 2, 10};
    flow::map_ipv4(e.addr, v4);
    e.port = 80;
    e.bits = rules::victim_bit(detect::AlertType::syn_flood);
    const uint64_t epoch = 41;
    r.w->mit.victims_offered.store(new rules::VictimSet({e}, epoch));

    // Not before the boundary.
    r.send(syns(5, 80, 1, "192.0.2.10"));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 0u);
    take_mitigation_offers(*r.w);
    EXPECT_EQ(r.w->mit.victims_epoch.load(), epoch + 1);
    EXPECT_EQ(r.w->mit.victims_offered.load(), nullptr);
    EXPECT_EQ(r.w->mit.victims_retired.load(), nullptr);  // the first set replaced none

    r.send(syns(6, 80, 2, "192.0.2.10"));   // the victim: dropped (would be)
    r.send(syns(4, 443, 3, "192.0.2.10"));  // another port of it: not a target
    r.send(syns(3, 80, 4, "192.0.2.11"));   // another address: not a target
    const auto ack = PacketBuilder().eth().ipv4("10.0.9.1", "192.0.2.10").tcp(1, 80, ACK, 1, 1).build();
    r.send({ack});  // not a SYN
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 6u);
    EXPECT_EQ(hits_of(r.mit->stats(), "syn-flood-unverified"), 6u);

    // The alert ends: an empty set, next epoch. The old one is handed back, the control core frees it.
    r.w->mit.victims_offered.store(new rules::VictimSet({}, epoch + 1));
    take_mitigation_offers(*r.w);
    EXPECT_EQ(r.w->mit.victims_epoch.load(), epoch + 2);
    EXPECT_NE(r.w->mit.victims_retired.load(), nullptr);
    // Until collected, a further set waits (each retired slot holds at most one).
    r.w->mit.victims_offered.store(new rules::VictimSet({e}, epoch + 2));
    take_mitigation_offers(*r.w);
    EXPECT_EQ(r.w->mit.victims_epoch.load(), epoch + 2);
    r.send(syns(4, 80, 5, "192.0.2.10"));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 6u);
    r.mit->poll(nullptr);  // collects the retired set (no aggregator: offers nothing)
    EXPECT_EQ(r.w->mit.victims_retired.load(), nullptr);
    take_mitigation_offers(*r.w);
    EXPECT_EQ(r.w->mit.victims_epoch.load(), epoch + 3);
    r.send(syns(2, 80, 6, "192.0.2.10"));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 8u);
}

// A reload keeps the victim set: the new rules see the same targets at once.
TEST(Mitigation, ReloadKeepsVictimSet) {
    Rig r;
    r.mit->install(load_rules(kSetA));
    rules::VictimEntry e{};
    const uint8_t v4[4] = {192, 0, 2, 10};
    flow::map_ipv4(e.addr, v4);
    e.port = 0;  // address-wide
    e.bits = rules::victim_bit(detect::AlertType::syn_flood);
    r.w->mit.victims_offered.store(new rules::VictimSet({e}, 3));
    take_mitigation_offers(*r.w);
    std::string why;
    ASSERT_TRUE(r.mit->offer(load_rules(R"(rules:
  - name: flood
    match: {flags: SYN, victim_of: syn_flood}
    action: drop
)"),
                             why))
        << why;
    take_mitigation_offers(*r.w);
    EXPECT_EQ(r.w->mit.victims_epoch.load(), 4u);
    r.send(syns(3, 8443, 0, "192.0.2.10"));
    r.send(syns(2, 8443, 1, "192.0.2.12"));
    EXPECT_EQ(r.counter(counters::Scalar::rules_would_drop), 3u);
    r.mit->poll(nullptr);
    EXPECT_EQ(hits_of(r.mit->stats(), "flood"), 3u);
}

}  // namespace
