// SPDX-License-Identifier: BSD-3-Clause
// Detection library end to end, without DPDK: tcp::signal bits and connection records go into
// WorkerDetectors as the worker feeds them, every worker publishes at each interval boundary as
// the replay markers make it, Aggregator::poll judges as the control core does, and the tests
// read the JSON events from the sink. Covered: every alert type, the address-wide finding that a
// port explains, scans explaining their victims, the lifecycle (hold-down, no flapping, warm-up),
// groups, identical results for any number of workers, late publications, finish(), targets.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregator.hpp"
#include "conn_record.hpp"
#include "detector.hpp"
#include "flow_key.hpp"
#include "packet_meta.hpp"
#include "tcp_tracker.hpp"

namespace stateline::detect {
namespace {

namespace sig = tcp::signal;
namespace tf = packet::tcp_flag;
using nlohmann::json;

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kT0 = 1'700'000'000;  // first interval (s since the epoch)
constexpr uint16_t kSynOpen = sig::syn | sig::syn_open;

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

Addr ipv4(uint32_t v) {
    const uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    Addr a;
    flow::map_ipv4(a.b, b);
    return a;
}

// Spoofed source i, in 10.0.0.0/8: an odd multiplier is a bijection mod 2^24, so no repeats.
Addr spoofed(uint32_t i) { return ipv4(0x0A000000u | ((i * 0x9E3779u) & 0xFFFFFFu)); }

Addr spoofed6(uint32_t i) {
    Addr a = ip("2001:db8:ffff::");
    const uint32_t v = i * 0x9E3779B1u;
    std::memcpy(a.b + 12, &v, 4);
    return a;
}

Settings base_settings() {
    Settings s;  // the documented default thresholds
    s.interval_ms = 1000;
    s.sketch_width = 1024;
    return s;
}

connlog::ConnRecord conn(const Addr& client, uint16_t cport, const Addr& server, uint16_t sport,
                         uint8_t detect, connlog::CloseKind close, uint32_t anomalies) {
    connlog::ConnRecord r{};
    r.orig_is_hi = flow::make_key(r.key, client.b, cport, server.b, sport, 0, 0) == flow::Side::hi;
    r.detect = detect;
    r.close = close;
    r.anomalies = anomalies;
    return r;
}

// Workers and a control core, driven as a capture replay drives them (one thread here).
class Rig {
public:
    // flow: the dispatcher's choice (the symmetric flow hash); source: a hash of the source.
    enum class Spread { flow, source };

    explicit Rig(const Settings& s = base_settings(), unsigned workers = 1, Spread spread = Spread::flow)
        : spread_(spread) {
        geo_.width = s.sketch_width;
        std::vector<WorkerDetector*> ptrs;
        for (unsigned i = 0; i < workers; ++i) {
            // As in main.cpp for a replay: built at interval 0, the first marker moves the start.
            det_.push_back(std::make_unique<WorkerDetector>(geo_, s.top, &verified_, 0, geo_.seed ^ (i + 1)));
            det_.back()->buffer().start_at(kT0);
            ptrs.push_back(det_.back().get());
        }
        agg_ = std::make_unique<Aggregator>(s, geo_, std::move(ptrs), &verified_,
                                            [this](const json& e) { events_.push_back(e); });
    }

    // One segment src:sport -> dst:dport in the current interval. `answer`: the sender answered
    // the connection's first SYN (a SYN-ACK or a RST from the server), so it is the responder.
    void seg(const Addr& src, uint16_t sport, const Addr& dst, uint16_t dport, uint16_t signals,
             uint8_t flags = 0, bool answer = false) {
        packet::PacketMeta m{};
        m.sender = flow::make_key(m.key, src.b, sport, dst.b, dport, 0, 0);
        m.hash = flow::flow_hash(m.key);
        m.outcome = packet::Outcome::tcp;
        m.tcp_flags = flags;
        m.ts_ns = interval_ * kSec + (seq_++ % 1'000'000) * 100;
        const flow::Side other = m.sender == flow::Side::lo ? flow::Side::hi : flow::Side::lo;
        worker(m.hash, src).on_segment(m, signals, answer ? m.sender : other);
    }
    void close(const connlog::ConnRecord& r) {
        worker(flow::flow_hash(r.key), Addr{}).on_close(r);
    }
    // Interval boundary: every worker publishes the interval that ends, the control core judges.
    void next() {
        for (auto& d : det_) EXPECT_TRUE(d->publish(interval_)) << "interval " << interval_;
        EXPECT_EQ(agg_->poll(), 1u) << "interval " << interval_;
        ++interval_;
    }
    void idle(unsigned n) {
        for (unsigned i = 0; i < n; ++i) next();
    }

    uint64_t interval() const { return interval_; }
    Aggregator& agg() { return *agg_; }
    WorkerDetector& detector(unsigned i) { return *det_[i]; }
    const std::vector<json>& all() const { return events_; }
    // Events of one kind ("start", "update", "end"), of one alert type if given.
    std::vector<json> events(const std::string& event, const std::string& type = "") const {
        std::vector<json> out;
        for (const json& e : events_)
            if (e["event"] == event && (type.empty() || e["type"] == type)) out.push_back(e);
        return out;
    }

private:
    WorkerDetector& worker(uint32_t flow_hash, const Addr& src) {
        if (spread_ == Spread::flow || det_.size() == 1) return *det_[flow_hash % det_.size()];
        return *det_[sketch::detail::mix64(addr_word(src.b)) % det_.size()];
    }

    Spread spread_;
    sketch::SketchGeometry geo_;
    VerifiedSources verified_;
    std::vector<std::unique_ptr<WorkerDetector>> det_;
    std::unique_ptr<Aggregator> agg_;
    std::vector<json> events_;
    uint64_t interval_ = kT0;
    uint64_t seq_ = 0;
};

// n SYNs that open connections, each from its own spoofed source; `from` numbers the sources.
void syn_flood(Rig& rig, const Addr& dst, uint16_t dport, unsigned n, uint32_t from) {
    for (unsigned i = 0; i < n; ++i)
        rig.seg(spoofed(from + i), static_cast<uint16_t>(1024 + i % 60000), dst, dport, kSynOpen, tf::syn);
}

// n clients each completing a handshake with the server: SYN, SYN-ACK, ACK as the tracker sees them.
void flash_crowd(Rig& rig, const Addr& server, uint16_t port, unsigned n, uint32_t from) {
    for (unsigned i = 0; i < n; ++i) {
        const Addr c = spoofed(from + i);
        const uint16_t cp = static_cast<uint16_t>(20000 + i % 40000);
        rig.seg(c, cp, server, port, kSynOpen, tf::syn);
        rig.seg(server, port, c, cp, sig::synack, tf::syn | tf::ack, true);
        rig.seg(c, cp, server, port, sig::handshake | sig::half_open_resolved, tf::ack);
    }
}

// ------------------------------------------------------------------------------ floods

TEST(Detect, SynFloodOneStartOnTheServiceEndAfterHoldDownNoFlapping) {
    Rig rig;
    const Addr victim = ip("192.0.2.10");
    constexpr unsigned kN = 2500;
    uint32_t src = 0;
    auto flood = [&](unsigned n) {
        syn_flood(rig, victim, 80, n, src);
        src += n;
    };

    flood(kN);
    rig.next();
    const auto starts = rig.events("start");
    ASSERT_EQ(starts.size(), 1u);
    const json& s = starts[0];
    EXPECT_EQ(s["type"], "syn_flood");
    EXPECT_EQ(s["target"], "192.0.2.10:80");
    EXPECT_EQ(s["target_kind"], "victim_endpoint");
    EXPECT_EQ(s["group"], "default");
    EXPECT_EQ(s["ts_ns"], (kT0 + 1) * kSec);  // raised at the end of the interval
    EXPECT_EQ(s["start_ns"], (kT0 + 1) * kSec);
    EXPECT_EQ(s["severity"], "medium");  // 2.5x the threshold
    const json& ev = s["evidence"];
    EXPECT_EQ(ev["syn_per_s"].get<double>(), kN);
    EXPECT_EQ(ev["completion_ratio"].get<double>(), 0.0);
    EXPECT_EQ(ev["synack_answer_ratio"].get<double>(), 0.0);
    EXPECT_EQ(ev["unverified_source_share"].get<double>(), 1.0);
    EXPECT_EQ(ev["half_open"].get<int64_t>(), int64_t{kN});  // nothing resolved
    EXPECT_EQ(ev["threshold_syn_per_s"], 1000);
    ASSERT_TRUE(ev["top_sources"].is_array());
    EXPECT_FALSE(ev["top_sources"].empty());
    // 192.0.2.10 alone is as much a flood, but port 80 explains it.
    EXPECT_GE(rig.agg().counts().suppressed, 1u);
    EXPECT_EQ(rig.agg().active(), 1u);

    flood(100);  // below
    rig.next();
    flood(kN);  // above again within the hold-down: the same alert
    rig.next();
    const uint64_t last_above = (kT0 + 3) * kSec;
    auto updates = rig.events("update");
    ASSERT_EQ(updates.size(), 1u);
    EXPECT_EQ(updates[0]["id"], s["id"]);
    EXPECT_EQ(updates[0]["ts_ns"], last_above);
    EXPECT_EQ(updates[0]["evidence"]["half_open"].get<int64_t>(), int64_t{2 * kN + 100});

    // Below threshold from here on: still active 4 s after, ended at exactly 5 s.
    for (int i = 0; i < 4; ++i) {
        flood(100);
        rig.next();
    }
    EXPECT_TRUE(rig.events("end").empty());
    EXPECT_EQ(rig.agg().active(), 1u);
    flood(100);
    rig.next();
    const auto ends = rig.events("end");
    ASSERT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0]["id"], s["id"]);
    EXPECT_EQ(ends[0]["reason"], "below_threshold");
    EXPECT_EQ(ends[0]["ts_ns"], last_above + 5 * kSec);
    EXPECT_EQ(ends[0]["duration_s"].get<double>(), 7.0);
    // The evidence of the last interval above, not of the quiet ones after it.
    EXPECT_EQ(ends[0]["evidence"], updates[0]["evidence"]);
    EXPECT_EQ(rig.agg().active(), 0u);

    EXPECT_EQ(rig.events("start").size(), 1u);  // never restarted
    EXPECT_EQ(rig.all().size(), 3u);
    const auto& c = rig.agg().counts();
    EXPECT_EQ(c.started[static_cast<unsigned>(AlertType::syn_flood)], 1u);
    EXPECT_EQ(c.ended[static_cast<unsigned>(AlertType::syn_flood)], 1u);
    EXPECT_EQ(c.updates, 1u);
    EXPECT_EQ(c.intervals, 8u);
}

TEST(Detect, SeverityIsTheLargestSeenSinceTheStart) {
    Rig rig;
    const Addr victim = ip("192.0.2.10");
    syn_flood(rig, victim, 80, 1500, 0);  // 1.5x
    rig.next();
    syn_flood(rig, victim, 80, 12000, 10000);  // 12x
    rig.next();
    syn_flood(rig, victim, 80, 3000, 30000);  // 3x
    rig.next();
    std::vector<std::string> sev;
    for (const json& e : rig.all()) sev.push_back(e["severity"].get<std::string>());
    EXPECT_EQ(sev, (std::vector<std::string>{"low", "high", "high"}));
    EXPECT_EQ(rig.all().back()["evidence"]["severity_ratio"].get<double>(), 3.0);
}

// What may differ between splits: the reservoir samples (top_*). Everything else must not.
std::vector<json> comparable(const std::vector<json>& events) {
    std::vector<json> out;
    for (const json& e : events) {
        json c = e;
        c.erase("id");
        json ev = json::object();
        for (const auto& [k, v] : e["evidence"].items())
            if (!v.is_array()) ev[k] = v;
        c["evidence"] = ev;
        out.push_back(c);
    }
    return out;
}

void split_scenario(Rig& rig) {
    const Addr a = ip("192.0.2.10"), b = ip("192.0.2.11"), c = ip("192.0.2.12"), d = ip("198.51.100.20");
    syn_flood(rig, a, 80, 3000, 0);
    flash_crowd(rig, c, 443, 1200, 100000);
    for (unsigned i = 0; i < 1200; ++i)
        rig.seg(spoofed(200000 + i), 1000, b, 443, sig::rst_stray, tf::rst);
    rig.next();
    syn_flood(rig, a, 80, 1500, 10000);
    // A slow half-open build-up with answers, on another service.
    for (unsigned k = 0; k < 3; ++k) {
        for (unsigned i = 0; i < 40; ++i) {
            const Addr s = spoofed(300000 + k * 100 + i);
            rig.seg(s, 4000, d, 25, kSynOpen, tf::syn);
            if (i % 4 == 0) rig.seg(d, 25, s, 4000, sig::synack, tf::syn | tf::ack, true);
        }
        rig.next();
    }
    rig.idle(7);
}

TEST(Detect, SameEventsForOneTwoAndFourWorkers) {
    std::vector<json> ref;
    for (unsigned w : {1u, 2u, 4u}) {
        SCOPED_TRACE(w);
        Rig rig(base_settings(), w, Rig::Spread::source);
        split_scenario(rig);
        const auto got = comparable(rig.all());
        if (w == 1) {
            ref = got;
            // The scenario must make something to compare: each alert starts and ends.
            EXPECT_EQ(rig.events("start", "syn_flood").size(), 1u);
            EXPECT_EQ(rig.events("start", "rst_flood").size(), 1u);
            EXPECT_EQ(rig.events("start", "half_open_exhaustion").size(), 1u);
            EXPECT_EQ(rig.events("end").size(), 3u);
            continue;
        }
        ASSERT_EQ(got.size(), ref.size());
        for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], ref[i]) << "event " << i;
    }
}

TEST(Detect, FlashCrowdCompletingHandshakesIsNoFlood) {
    Rig rig;
    // 3x the SYN threshold, but every SYN completes a handshake.
    flash_crowd(rig, ip("192.0.2.10"), 443, 3000, 0);
    rig.next();
    flash_crowd(rig, ip("192.0.2.10"), 443, 3000, 5000);
    rig.idle(3);
    EXPECT_TRUE(rig.all().empty()) << rig.all().front().dump();
    EXPECT_EQ(rig.agg().counts().intervals, 4u);
}

TEST(Detect, SourcesThatCompletedHandshakesCountAsVerifiedAfterwards) {
    Rig rig;
    const Addr server = ip("192.0.2.10");
    flash_crowd(rig, server, 443, 1500, 0);
    rig.next();
    EXPECT_TRUE(rig.all().empty());
    // The same clients' SYNs (never completing now) plus as many spoofed ones.
    for (unsigned i = 0; i < 1500; ++i) rig.seg(spoofed(i), 50000, server, 443, kSynOpen, tf::syn);
    syn_flood(rig, server, 443, 1500, 100000);
    rig.next();
    const auto s = rig.events("start", "syn_flood");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["evidence"]["syn_per_s"].get<double>(), 3000.0);
    EXPECT_NEAR(s[0]["evidence"]["unverified_source_share"].get<double>(), 0.5, 0.01);
}

TEST(Detect, HalfOpenExhaustionAtLowRateAndTheGaugeComesBackDown) {
    Rig rig;
    const Addr server = ip("192.0.2.10");
    std::vector<connlog::ConnRecord> open;  // connections left half-open, for their timeouts
    std::vector<std::pair<Addr, uint16_t>> refusable;
    uint32_t n = 0;
    // 30 SYN/s from many sources, a third answered, none completing.
    auto second = [&] {
        for (unsigned i = 0; i < 30; ++i, ++n) {
            const Addr c = spoofed(n);
            const uint16_t cp = static_cast<uint16_t>(30000 + n);
            rig.seg(c, cp, server, 443, kSynOpen, tf::syn);
            if (i % 3 == 0) rig.seg(server, 443, c, cp, sig::synack, tf::syn | tf::ack, true);
            open.push_back(conn(c, cp, server, 443, connlog::detect_flag::half_open,
                                connlog::CloseKind::timeout, 0));
            refusable.emplace_back(c, cp);
        }
    };
    second();
    rig.next();
    second();
    rig.next();
    EXPECT_TRUE(rig.all().empty());  // 60 half-open: under 64
    second();
    rig.next();
    const auto s = rig.events("start");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["type"], "half_open_exhaustion");
    EXPECT_EQ(s[0]["target"], "192.0.2.10:443");
    EXPECT_EQ(s[0]["target_kind"], "victim_endpoint");
    EXPECT_EQ(s[0]["evidence"]["half_open"].get<int64_t>(), 90);
    EXPECT_EQ(s[0]["evidence"]["syn_per_s"].get<double>(), 30.0);
    EXPECT_EQ(s[0]["evidence"]["synack_answer_ratio"].get<double>(), 0.3333);
    EXPECT_EQ(s[0]["evidence"]["threshold_half_open"], 64);

    // 30 more, 20 time out (records), 10 refused by RST (a resolving segment): still 90.
    second();
    for (unsigned i = 0; i < 20; ++i) rig.close(open[i]);
    for (unsigned i = 20; i < 30; ++i)
        rig.seg(server, 443, refusable[i].first, refusable[i].second, sig::refused | sig::half_open_resolved,
                tf::rst | tf::ack, true);
    rig.next();
    const auto u = rig.events("update");
    ASSERT_EQ(u.size(), 1u);
    EXPECT_EQ(u[0]["evidence"]["half_open"].get<int64_t>(), 90);

    // 30 more and 60 time out: 60, under the threshold.
    second();
    for (unsigned i = 30; i < 90; ++i) rig.close(open[i]);
    rig.next();
    EXPECT_EQ(rig.events("update").size(), 1u);
    for (int i = 0; i < 4; ++i) {
        second();
        for (size_t j = open.size() - 60; j < open.size() - 30; ++j) rig.close(open[j]);
        rig.next();
    }
    const auto e = rig.events("end");
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0]["reason"], "below_threshold");
    EXPECT_EQ(e[0]["ts_ns"], (kT0 + 4 + 5) * kSec);
    EXPECT_TRUE(rig.events("start", "syn_flood").empty());
    EXPECT_EQ(rig.events("start").size(), 1u);
}

TEST(Detect, HalfOpenGaugeFollowsOpenAndResolveInTheWorker) {
    // The live gauge of one worker, read as the control core reads the merged one.
    Rig rig;
    const Addr server = ip("192.0.2.10");
    for (unsigned i = 0; i < 50; ++i) rig.seg(spoofed(i), 1000, server, 80, kSynOpen, tf::syn);
    for (unsigned i = 0; i < 20; ++i)
        rig.seg(spoofed(i), 1000, server, 80, sig::handshake | sig::half_open_resolved, tf::ack);
    for (unsigned i = 20; i < 30; ++i)
        rig.close(conn(spoofed(i), 1000, server, 80, connlog::detect_flag::half_open,
                       connlog::CloseKind::timeout, 0));
    VictimSketch geometry(sketch::SketchGeometry{1024});
    const uint32_t* cells = rig.detector(0).half_open().cells();
    EXPECT_EQ(HalfOpenGauge::read(cells, geometry.slots(sketch::victim_endpoint_key(server.b, 80))), 20);
    EXPECT_EQ(HalfOpenGauge::read(cells, geometry.slots(sketch::victim_ip_key(server.b))), 20);
    EXPECT_EQ(HalfOpenGauge::read(cells, geometry.slots(sketch::victim_endpoint_key(server.b, 81))), 0);
}

TEST(Detect, AckFloodToRandomPortsIsOnTheAddressAfterWarmUp) {
    Rig rig;
    const Addr victim = ip("192.0.2.10");
    std::mt19937 rng(7);
    auto acks = [&](unsigned n, uint32_t from) {
        for (unsigned i = 0; i < n; ++i)
            rig.seg(spoofed(from + i), static_cast<uint16_t>(1024 + rng() % 60000), victim,
                    static_cast<uint16_t>(1 + rng() % 65535), sig::ack_stray, tf::ack);
    };
    acks(3000, 0);  // first interval: could be pickups of connections older than the capture
    rig.next();
    EXPECT_TRUE(rig.all().empty());
    acks(1500, 10000);
    rig.next();
    const auto s = rig.events("start");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["type"], "ack_flood");
    EXPECT_EQ(s[0]["target"], "192.0.2.10");
    EXPECT_EQ(s[0]["target_kind"], "victim_ip");
    EXPECT_EQ(s[0]["ts_ns"], kT0 * kSec + 2 * kSec);  // warmup_s after the first interval began
    EXPECT_EQ(s[0]["evidence"]["ack_per_s"].get<double>(), 1500.0);
    EXPECT_EQ(s[0]["evidence"]["threshold_ack_per_s"], 1000);
    ASSERT_TRUE(s[0]["evidence"]["top_ports"].is_array());
    EXPECT_FALSE(s[0]["evidence"]["top_ports"].empty());
}

TEST(Detect, WarmUpIsCountedFromTheFirstIntervalJudged) {
    Settings st = base_settings();
    st.warmup_s = 4;
    Rig rig(st);
    const Addr victim = ip("192.0.2.10");
    for (int k = 0; k < 5; ++k) {
        for (unsigned i = 0; i < 1200; ++i)
            rig.seg(spoofed(i), 2000, victim, static_cast<uint16_t>(1 + i), sig::ack_stray, tf::ack);
        rig.next();
        EXPECT_EQ(rig.events("start").size(), k < 3 ? 0u : 1u) << "interval " << k;
    }
}

struct StrayCase {
    const char* type;
    uint16_t signal;
    uint8_t flags;
    unsigned n;  // per second, above the default threshold
    bool random_ports;
    const char* target;
    const char* unit;
};

TEST(Detect, StraySegmentFloodsRaiseTheirType) {
    const StrayCase cases[] = {
        // SYN-ACKs reflected by many servers land on random ports of the victim.
        {"synack_reflection", sig::synack_stray, tf::syn | tf::ack, 800, true, "198.51.100.7", "synack_per_s"},
        {"rst_flood", sig::rst_stray, tf::rst, 1500, false, "192.0.2.11:443", "rst_per_s"},
        {"fin_flood", sig::fin_stray, tf::fin | tf::ack, 800, false, "192.0.2.12:80", "fin_per_s"},
    };
    for (const StrayCase& c : cases) {
        SCOPED_TRACE(c.type);
        Rig rig;
        const std::string t = c.target;
        const Addr victim = ip(t.substr(0, t.find(':')).c_str());
        const uint16_t port = c.random_ports ? 0 : static_cast<uint16_t>(std::stoi(t.substr(t.find(':') + 1)));
        for (unsigned i = 0; i < c.n; ++i)
            rig.seg(spoofed(i), c.random_ports ? 443 : static_cast<uint16_t>(1024 + i),
                    victim, c.random_ports ? static_cast<uint16_t>(1024 + i * 37) : port, c.signal, c.flags);
        rig.next();
        const auto s = rig.events("start");
        ASSERT_EQ(s.size(), 1u);
        EXPECT_EQ(s[0]["type"], c.type);
        EXPECT_EQ(s[0]["target"], c.target);
        EXPECT_EQ(s[0]["evidence"][c.unit].get<double>(), c.n);
    }
}

TEST(Detect, RstInjectionOnTheServiceAtTheDefaultThresholdOfOne) {
    Rig rig;
    // The client keeps sending data after "its" RST: someone else sent that RST to the server.
    rig.seg(ip("203.0.113.77"), 51000, ip("192.0.2.10"), 443, sig::rst_injection, tf::ack | tf::psh);
    rig.next();
    const auto s = rig.events("start");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["type"], "rst_injection");
    EXPECT_EQ(s[0]["target"], "192.0.2.10:443");
    EXPECT_EQ(s[0]["evidence"]["injections_per_s"].get<double>(), 1.0);
    EXPECT_EQ(s[0]["evidence"]["threshold_injections_per_s"], 1);
}

// ------------------------------------------------------------------------------ scans

enum class Probe { syn_fixed_port, syn_new_port, fin, null, xmas };

// 300 distinct address:port pairs (10 hosts x 30 ports) per interval from one source.
void scan(Rig& rig, const Addr& scanner, Probe p, uint16_t first_port = 1, bool answer_open = false) {
    for (unsigned i = 0; i < 300; ++i) {
        const Addr dst = ipv4(0xC0000214u + i / 30);  // 192.0.2.20..29
        const uint16_t dport = static_cast<uint16_t>(first_port + i % 30);
        const uint16_t sport = p == Probe::syn_new_port ? static_cast<uint16_t>(40000 + i) : 40000;
        switch (p) {
            case Probe::syn_fixed_port:
            case Probe::syn_new_port:
                rig.seg(scanner, sport, dst, dport, kSynOpen, tf::syn);
                if (answer_open && i % 10 == 0) rig.seg(dst, dport, scanner, sport, sig::synack, tf::syn | tf::ack, true);
                break;
            case Probe::fin: rig.seg(scanner, sport, dst, dport, sig::stealth_probe, tf::fin); break;
            case Probe::null: rig.seg(scanner, sport, dst, dport, sig::stealth_probe, 0); break;
            case Probe::xmas:
                rig.seg(scanner, sport, dst, dport, sig::stealth_probe, tf::fin | tf::psh | tf::urg);
                break;
        }
    }
}

TEST(Detect, ScanKindsFromProbesAndSourcePorts) {
    struct Case {
        Probe p;
        const char* type;
        const char* variant;
    };
    const Case cases[] = {
        {Probe::syn_fixed_port, "syn_scan", nullptr},
        {Probe::syn_new_port, "connect_scan", nullptr},
        {Probe::fin, "stealth_scan", "fin"},
        {Probe::null, "stealth_scan", "null"},
        {Probe::xmas, "stealth_scan", "xmas"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.type + std::string(" ") + (c.variant ? c.variant : ""));
        Rig rig;
        scan(rig, ip("203.0.113.5"), c.p);
        rig.next();
        const auto s = rig.events("start");
        ASSERT_EQ(s.size(), 1u) << json(rig.all()).dump();
        EXPECT_EQ(s[0]["type"], c.type);
        EXPECT_EQ(s[0]["target"], "203.0.113.5");
        EXPECT_EQ(s[0]["target_kind"], "source_ip");
        const json& ev = s[0]["evidence"];
        EXPECT_EQ(ev["probes_per_s"].get<double>(), 300.0);
        EXPECT_GE(ev["targets_per_s"].get<double>(), 290.0);  // a bit filter: rare collisions
        EXPECT_EQ(ev["completion_ratio"].get<double>(), 0.0);
        EXPECT_FALSE(ev["top_victims"].empty());
        EXPECT_FALSE(ev["top_ports"].empty());
        if (c.variant) EXPECT_EQ(ev["variant"], c.variant);
        else EXPECT_FALSE(ev.contains("variant"));
    }
}

TEST(Detect, ScannedVictimsGetNoSynFloodWhileAFloodedOneDoes) {
    Settings st = base_settings();
    st.thresholds[Threshold::syn_flood_rate] = 20;  // each scanned host gets 30 SYN/s
    Rig rig(st);
    const Addr scanner = ip("203.0.113.5");
    for (int k = 0; k < 3; ++k) {  // the scan alert active (not only judged) explains too
        scan(rig, scanner, Probe::syn_fixed_port, static_cast<uint16_t>(1 + 30 * k));
        // Control: 30 SYN/s from many sources to a host outside the scan.
        syn_flood(rig, ip("198.51.100.99"), 80, 30, 1000 * k);
        rig.next();
    }
    EXPECT_EQ(rig.events("start", "syn_scan").size(), 1u);
    const auto floods = rig.events("start", "syn_flood");
    ASSERT_EQ(floods.size(), 1u);
    EXPECT_EQ(floods[0]["target"], "198.51.100.99:80");
    EXPECT_EQ(rig.events("start").size(), 2u);
    EXPECT_GE(rig.agg().counts().suppressed, 10u);  // the ten scanned hosts, at least once
}

TEST(Detect, ScannedVictimsGetNoHalfOpenAlert) {
    Settings st = base_settings();
    st.thresholds[Threshold::half_open_count] = 40;
    Rig rig(st);
    for (int k = 0; k < 3; ++k) {
        // Some ports answer: a half-open build-up with SYN-ACKs, on every scanned host.
        scan(rig, ip("203.0.113.5"), Probe::syn_fixed_port, static_cast<uint16_t>(1 + 30 * k), true);
        rig.next();
    }
    EXPECT_EQ(rig.events("start", "syn_scan").size(), 1u);
    EXPECT_TRUE(rig.events("start", "half_open_exhaustion").empty());
    EXPECT_EQ(rig.events("start").size(), 1u);
    EXPECT_GT(rig.agg().counts().suppressed, 0u);
}

// Two scanners of adjacent addresses probing ports 1-1024 of one host, one after the other in an
// interval: both scan. The distinct-target filter hashes source ^ (dport << 48), and addr_word
// puts an IPv4 address's last two bytes in those same 16 bits, so 203.0.113.1 probing port p and
// 203.0.113.2 probing p ^ 0x300 set the same bit: the second scanner finds almost nothing new.
// Disabled: fails on lib/detect/detector.cpp:179 (reported, not fixed here).
TEST(Detect, AdjacentScannersOfTheSamePortsBothCount) {
    Rig rig;
    const Addr host = ip("192.0.2.20");
    for (const char* s : {"203.0.113.1", "203.0.113.2"})
        for (uint16_t port = 1; port <= 1024; ++port) rig.seg(ip(s), 40000, host, port, kSynOpen, tf::syn);
    rig.next();
    std::vector<std::string> targets;
    for (const json& e : rig.events("start", "syn_scan")) targets.push_back(e["target"].get<std::string>());
    EXPECT_EQ(targets, (std::vector<std::string>{"203.0.113.1", "203.0.113.2"}));
}

// ------------------------------------------------------------------------------ teardowns

// Teardowns of real connections, as the tracker signals them with the segment that ends each one
// (sender: the client here, so the receiver is the responder, the host that gets the count).
void teardowns(Rig& rig, const Addr& server, unsigned n, bool abnormal, uint32_t from) {
    for (unsigned i = 0; i < n; ++i)
        rig.seg(spoofed(from + i), static_cast<uint16_t>(30000 + i), server, 443,
                abnormal ? sig::closed | sig::abnormal_teardown : sig::closed,
                abnormal ? tf::rst | tf::ack : tf::ack);
}

TEST(Detect, AbnormalTeardownOnTheHost) {
    const Addr server = ip("192.0.2.30");
    struct Case {
        const char* name;
        unsigned n_abnormal, n_normal;
        bool alert;
    };
    const Case cases[] = {
        {"abnormal", 100, 0, true},
        {"normal", 0, 100, false},
        {"60% abnormal", 60, 40, true},     // share >= 50%, rate >= 50/s
        {"37% abnormal", 60, 100, false},   // share below 50%
        {"40/s abnormal", 40, 0, false},    // rate below 50/s
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Rig rig;
        teardowns(rig, server, c.n_abnormal, true, 0);
        teardowns(rig, server, c.n_normal, false, 1000);
        rig.next();
        const auto s = rig.events("start");
        if (!c.alert) {
            EXPECT_TRUE(s.empty()) << s.front().dump();
            continue;
        }
        ASSERT_EQ(s.size(), 1u);
        EXPECT_EQ(s[0]["type"], "abnormal_teardown");
        EXPECT_EQ(s[0]["target"], "192.0.2.30");
        EXPECT_EQ(s[0]["target_kind"], "victim_ip");
        EXPECT_EQ(s[0]["evidence"]["abnormal_per_s"].get<double>(), c.n_abnormal);
        EXPECT_EQ(s[0]["evidence"]["closed_per_s"].get<double>(), c.n_abnormal + c.n_normal);
        EXPECT_FALSE(s[0]["evidence"]["top_sources"].empty());
    }
}

TEST(Detect, TeardownRecordsCountOnlyAHalfCloseStuckUntilItsTimeout) {
    const Addr server = ip("192.0.2.30");
    using connlog::CloseKind;
    namespace df = connlog::detect_flag;
    namespace an = tcp::anomaly;
    struct Case {
        const char* name;
        uint8_t detect;
        CloseKind close;
        uint32_t anomalies;
        bool alert;
    };
    const Case cases[] = {
        {"stuck half-close", df::handshake_done, CloseKind::timeout, an::half_close_stuck, true},
        {"no handshake", 0, CloseKind::timeout, an::half_close_stuck, false},
        {"evicted", df::handshake_done, CloseKind::evicted, an::half_close_stuck, false},
        // Counted by its segment already (signal::abnormal_teardown): not again at removal.
        {"reset after data", df::handshake_done, CloseKind::rst_orig, an::rst_after_data_no_fin, false},
        {"stuck after data after FIN", df::handshake_done, CloseKind::timeout,
         an::half_close_stuck | an::data_after_fin, false},
        {"normal", df::handshake_done, CloseKind::fin, 0, false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Rig rig;
        for (unsigned i = 0; i < 100; ++i)
            rig.close(conn(spoofed(i), static_cast<uint16_t>(30000 + i), server, 443, c.detect, c.close,
                           c.anomalies));
        rig.next();
        const auto s = rig.events("start");
        if (!c.alert) {
            EXPECT_TRUE(s.empty()) << s.front().dump();
            continue;
        }
        ASSERT_EQ(s.size(), 1u);
        EXPECT_EQ(s[0]["type"], "abnormal_teardown");
        EXPECT_EQ(s[0]["target"], "192.0.2.30");
        EXPECT_EQ(s[0]["evidence"]["abnormal_per_s"].get<double>(), 100.0);
        EXPECT_EQ(s[0]["evidence"]["closed_per_s"].get<double>(), 100.0);
    }
}

TEST(Detect, AbnormalTeardownsCountOnceWithTheirRecords) {
    Rig rig;
    const Addr server = ip("192.0.2.30");
    teardowns(rig, server, 100, true, 0);
    for (unsigned i = 0; i < 100; ++i)
        rig.close(conn(spoofed(i), static_cast<uint16_t>(30000 + i), server, 443,
                       connlog::detect_flag::handshake_done, connlog::CloseKind::rst_orig,
                       tcp::anomaly::rst_after_data_no_fin));
    rig.next();
    const auto s = rig.events("start", "abnormal_teardown");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["evidence"]["abnormal_per_s"].get<double>(), 100.0);
    EXPECT_EQ(s[0]["evidence"]["closed_per_s"].get<double>(), 100.0);
}

TEST(Detect, TeardownsCountForTheResponderWhicheverSideSentOrSortsLower) {
    // The server's address sorts lower than the clients' here and higher there; the ending
    // segment comes from the client for half of them, from the server (answer) for the rest.
    for (const char* server_text : {"1.2.3.4", "223.1.1.1"}) {
        SCOPED_TRACE(server_text);
        Rig rig;
        const Addr server = ip(server_text);
        for (unsigned i = 0; i < 80; ++i) {
            const Addr client = ipv4(0x64400000u + i);
            const uint16_t cp = static_cast<uint16_t>(30000 + i);
            if (i % 2)
                rig.seg(client, cp, server, 443, sig::closed | sig::abnormal_teardown, tf::rst);
            else
                rig.seg(server, 443, client, cp, sig::closed | sig::abnormal_teardown, tf::rst, true);
        }
        for (unsigned i = 0; i < 60; ++i)  // and stuck half-closes, from their records
            rig.close(conn(ipv4(0x64410000u + i), 30000, server, 443, connlog::detect_flag::handshake_done,
                           connlog::CloseKind::timeout, tcp::anomaly::half_close_stuck));
        rig.next();
        const auto s = rig.events("start", "abnormal_teardown");
        ASSERT_EQ(s.size(), 1u);
        EXPECT_EQ(s[0]["target"], server_text);
        EXPECT_EQ(s[0]["evidence"]["abnormal_per_s"].get<double>(), 140.0);
        EXPECT_EQ(rig.events("start").size(), 1u);
    }
}

TEST(Detect, AbnormalTeardownsDuringAnotherAttackAreThatAttacks) {
    Rig rig;
    const Addr server = ip("192.0.2.30");
    teardowns(rig, server, 100, true, 0);
    syn_flood(rig, server, 443, 2000, 10000);
    rig.next();
    EXPECT_EQ(rig.events("start", "syn_flood").size(), 1u);
    EXPECT_TRUE(rig.events("start", "abnormal_teardown").empty());
    // The flood over (its alert still active): teardowns alone are still the flood's aftermath.
    teardowns(rig, server, 100, true, 200);
    rig.next();
    EXPECT_TRUE(rig.events("start", "abnormal_teardown").empty());
}

// ------------------------------------------------------------------------------ groups

Group group(const char* name, std::initializer_list<const char*> prefixes) {
    Group g;
    g.name = name;
    for (const char* text : prefixes) {
        Prefix p;
        std::string why;
        EXPECT_TRUE(parse_prefix(text, p, why)) << why;
        g.prefixes.push_back(p);
    }
    return g;
}

TEST(Detect, GroupThresholdsApplyToTheirPrefixes) {
    Settings st = base_settings();
    Group customers = group("customers", {"192.0.2.0/24"});
    customers.thresholds[Threshold::syn_flood_rate] = 100000;  // above the flood
    customers.thresholds[Threshold::rst_flood_rate] = 10;
    st.groups.push_back(customers);
    Rig rig(st);
    syn_flood(rig, ip("192.0.2.10"), 80, 3000, 0);
    syn_flood(rig, ip("198.51.100.20"), 80, 3000, 10000);  // outside: default thresholds
    for (unsigned i = 0; i < 50; ++i) rig.seg(spoofed(20000 + i), 1000, ip("192.0.2.11"), 22, sig::rst_stray, tf::rst);
    rig.next();
    const auto floods = rig.events("start", "syn_flood");
    ASSERT_EQ(floods.size(), 1u);
    EXPECT_EQ(floods[0]["target"], "198.51.100.20:80");
    EXPECT_EQ(floods[0]["group"], "default");
    const auto rst = rig.events("start", "rst_flood");
    ASSERT_EQ(rst.size(), 1u);
    EXPECT_EQ(rst[0]["target"], "192.0.2.11:22");
    EXPECT_EQ(rst[0]["group"], "customers");
    EXPECT_EQ(rst[0]["evidence"]["threshold_rst_per_s"], 10);
    EXPECT_EQ(rig.events("start").size(), 2u);
}

TEST(Detect, TheMostSpecificPrefixOverAllGroupsDecides) {
    Settings st = base_settings();
    Group wide = group("wide", {"192.0.2.0/24"});
    wide.thresholds[Threshold::syn_flood_rate] = 100000;
    Group host = group("web", {"198.51.100.0/24", "192.0.2.10/32"});
    host.thresholds[Threshold::syn_flood_rate] = 500;
    st.groups = {host, wide};  // order must not matter
    Rig rig(st);
    syn_flood(rig, ip("192.0.2.10"), 80, 800, 0);
    syn_flood(rig, ip("192.0.2.11"), 80, 800, 10000);
    rig.next();
    const auto s = rig.events("start");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["target"], "192.0.2.10:80");
    EXPECT_EQ(s[0]["group"], "web");
    EXPECT_EQ(s[0]["evidence"]["threshold_syn_per_s"], 500);
}

TEST(Detect, ScanningSourcesAreJudgedByTheirGroup) {
    Settings st = base_settings();
    Group lab = group("lab", {"203.0.113.0/24"});
    lab.thresholds[Threshold::scan_rate] = 1000;  // the lab scans its own hosts
    st.groups.push_back(lab);
    Rig rig(st);
    scan(rig, ip("203.0.113.5"), Probe::syn_fixed_port);
    scan(rig, ip("198.51.100.66"), Probe::syn_fixed_port, 100);
    rig.next();
    const auto s = rig.events("start", "syn_scan");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["target"], "198.51.100.66");
    EXPECT_EQ(s[0]["group"], "default");
}

// ------------------------------------------------------------------------------ lifecycle

TEST(Detect, FinishEndsEveryActiveAlertAndTheCountsMatch) {
    Rig rig;
    syn_flood(rig, ip("192.0.2.10"), 80, 2000, 0);
    for (unsigned i = 0; i < 1500; ++i) rig.seg(spoofed(50000 + i), 1000, ip("192.0.2.11"), 443, sig::rst_stray, tf::rst);
    rig.next();
    syn_flood(rig, ip("192.0.2.10"), 80, 2000, 10000);
    rig.next();
    // After the last publication: counted, judged by finish as one more interval.
    for (unsigned i = 0; i < 800; ++i) rig.seg(spoofed(60000 + i), 1000, ip("192.0.2.12"), 80, sig::fin_stray, tf::fin | tf::ack);
    EXPECT_EQ(rig.agg().active(), 2u);
    rig.agg().finish("end_of_input");
    EXPECT_EQ(rig.agg().active(), 0u);

    const auto starts = rig.events("start"), ends = rig.events("end");
    ASSERT_EQ(starts.size(), 3u);
    ASSERT_EQ(ends.size(), 3u);
    for (const json& e : ends) {
        EXPECT_EQ(e["reason"], "end_of_input");
        EXPECT_EQ(e["ts_ns"], (kT0 + 3) * kSec);  // end of the interval finish judged
    }
    const auto fin = rig.events("start", "fin_flood");
    ASSERT_EQ(fin.size(), 1u);
    EXPECT_EQ(fin[0]["target"], "192.0.2.12:80");
    EXPECT_EQ(fin[0]["ts_ns"], (kT0 + 3) * kSec);

    const auto& c = rig.agg().counts();
    uint64_t started = 0;
    for (unsigned t = 0; t < kAlertTypeCount; ++t) {
        const char* name = alert_type_name(static_cast<AlertType>(t));
        EXPECT_EQ(c.started[t], rig.events("start", name).size()) << name;
        EXPECT_EQ(c.ended[t], rig.events("end", name).size()) << name;
        started += c.started[t];
    }
    EXPECT_EQ(started, 3u);
    EXPECT_EQ(c.intervals, 3u);
    // Every start has its end, ids unique.
    std::vector<uint64_t> a, b;
    for (const json& e : starts) a.push_back(e["id"].get<uint64_t>());
    for (const json& e : ends) b.push_back(e["id"].get<uint64_t>());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b);
    EXPECT_EQ(std::unique(a.begin(), a.end()), a.end());
}

TEST(Detect, ActiveAlertsListsWhatIsActive) {
    Rig rig;
    syn_flood(rig, ip("192.0.2.10"), 80, 2000, 0);
    rig.next();
    const json a = rig.agg().active_alerts();
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0]["type"], "syn_flood");
    EXPECT_EQ(a[0]["target"], "192.0.2.10:80");
    EXPECT_EQ(a[0]["start"], "2023-11-14T22:13:21.000000Z");
    rig.agg().finish("shutdown");
    EXPECT_TRUE(rig.agg().active_alerts().empty());
    EXPECT_EQ(rig.events("end").at(0)["reason"], "shutdown");
}

TEST(Detect, LatePublicationSpansIntervalsAndRatesDivideBySpan) {
    Rig rig;
    const Addr victim = ip("192.0.2.10");
    rig.next();  // kT0, empty
    WorkerDetector& w = rig.detector(0);
    syn_flood(rig, victim, 80, 1500, 0);
    ASSERT_TRUE(w.publish(kT0 + 1));
    syn_flood(rig, victim, 80, 1500, 10000);
    EXPECT_FALSE(w.publish(kT0 + 2));  // the control core has not taken kT0 + 1 yet
    EXPECT_EQ(rig.agg().poll(), 1u);
    ASSERT_EQ(rig.events("start").size(), 1u);  // 1500 SYN/s in kT0 + 1
    syn_flood(rig, victim, 80, 700, 20000);
    ASSERT_TRUE(w.publish(kT0 + 3));  // carries kT0 + 2 and kT0 + 3
    EXPECT_EQ(rig.agg().poll(), 1u);
    const auto u = rig.events("update");
    ASSERT_EQ(u.size(), 1u);
    EXPECT_EQ(u[0]["ts_ns"], (kT0 + 4) * kSec);
    EXPECT_EQ(u[0]["evidence"]["syn_per_s"].get<double>(), 1100.0);  // 2200 SYNs over 2 s
    EXPECT_EQ(rig.agg().counts().late_intervals, 1u);
}

// ------------------------------------------------------------------------------ targets

TEST(Detect, Ipv6TargetsAreBracketedWithTheirPort) {
    Rig rig;
    const Addr victim = ip("2001:db8::10");
    for (unsigned i = 0; i < 2000; ++i)
        rig.seg(spoofed6(i), static_cast<uint16_t>(1024 + i), victim, 443, kSynOpen, tf::syn);
    rig.next();
    const auto s = rig.events("start");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["type"], "syn_flood");
    EXPECT_EQ(s[0]["target"], "[2001:db8::10]:443");
    EXPECT_EQ(s[0]["target_kind"], "victim_endpoint");
    EXPECT_EQ(s[0]["evidence"]["syn_per_s"].get<double>(), 2000.0);
    const std::string top = s[0]["evidence"]["top_sources"].at(0)["addr"].get<std::string>();
    EXPECT_EQ(top.rfind("2001:db8:ffff:", 0), 0u) << top;
}

TEST(Detect, Ipv6ScannerIsNamedByItsAddressAndExplainsItsVictims) {
    Settings st = base_settings();
    st.thresholds[Threshold::syn_flood_rate] = 20;  // each scanned host gets 30 SYN/s
    Rig rig(st);
    const Addr scanner = ip("2001:db8:bad::5");
    for (unsigned i = 0; i < 300; ++i) {
        Addr dst = ip("2001:db8::");
        dst.b[15] = static_cast<uint8_t>(1 + i / 30);
        rig.seg(scanner, 40000, dst, static_cast<uint16_t>(1 + i % 30), kSynOpen, tf::syn);
    }
    rig.next();
    const auto s = rig.events("start");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["type"], "syn_scan");
    EXPECT_EQ(s[0]["target"], "2001:db8:bad::5");
    EXPECT_GE(rig.agg().counts().suppressed, 10u);  // the sample's source read back as IPv6
}

TEST(Detect, FormatTargetAndTime) {
    const Addr v4 = ip("192.0.2.10"), v6 = ip("2001:db8::10");
    EXPECT_EQ(format_target(sketch::make_target(sketch::KeyKind::victim_ip, v4.b, 80)), "192.0.2.10");
    EXPECT_EQ(format_target(sketch::make_target(sketch::KeyKind::victim_endpoint, v4.b, 80)), "192.0.2.10:80");
    EXPECT_EQ(format_target(sketch::make_target(sketch::KeyKind::source_ip, v6.b, 80)), "2001:db8::10");
    EXPECT_EQ(format_target(sketch::make_target(sketch::KeyKind::victim_endpoint, v6.b, 443)),
              "[2001:db8::10]:443");
    EXPECT_EQ(format_time(kT0 * kSec + 123456789), "2023-11-14T22:13:20.123456Z");
    EXPECT_STREQ(alert_type_name(AlertType::abnormal_teardown), "abnormal_teardown");
}

}  // namespace
}  // namespace stateline::detect
