// SPDX-License-Identifier: BSD-3-Clause
// Sketch library: count-min bounds (never under, over within epsilon * N w.h.p.), heavy hitters
// (top-k of a Zipf stream, a SYN-flood victim among millions of one-packet keys, exact top by
// (count, key) under churn), merging workers' partials (exact for the sketch, order-independent
// for the heavy hitters), key helpers, and the publication protocol with real threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "flow_key.hpp"
#include "sketch.hpp"

namespace stateline::sketch {
namespace {

using Sketch4 = CountMinSketch<4>;

// Synthetic keys: random 64-bit values, as hashed IPv6 keys look.
std::vector<uint64_t> random_keys(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> keys(n);
    for (auto& k : keys) k = rng();
    return keys;
}

Target ipv4_target(KeyKind kind, uint32_t v4, uint16_t port = 0) {
    const uint8_t b[4] = {static_cast<uint8_t>(v4 >> 24), static_cast<uint8_t>(v4 >> 16),
                          static_cast<uint8_t>(v4 >> 8), static_cast<uint8_t>(v4)};
    uint8_t a[16];
    flow::map_ipv4(a, b);
    return make_target(kind, a, port);
}

const Target kNoTarget = ipv4_target(KeyKind::victim_ip, 0);

// Zipf(s) over ranks 1..n by inverse CDF.
class Zipf {
public:
    Zipf(size_t n, double s) : cdf_(n) {
        double sum = 0;
        for (size_t i = 0; i < n; ++i) cdf_[i] = sum += 1.0 / std::pow(double(i + 1), s);
        for (auto& c : cdf_) c /= sum;
    }
    template <class Rng>
    size_t operator()(Rng& rng) {
        const double u = std::uniform_real_distribution<double>(0, 1)(rng);
        return std::min<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin(),
                                cdf_.size() - 1);
    }

private:
    std::vector<double> cdf_;
};

// ------------------------------------------------------------------------------ count-min

TEST(CountMin, Geometry) {
    EXPECT_TRUE(SketchGeometry{}.valid());
    EXPECT_FALSE((SketchGeometry{1000, 1}.valid()));
    EXPECT_FALSE((SketchGeometry{32, 1}.valid()));
    static_assert(CountMinSketch<3>::kCellWords == 4);
    static_assert(Sketch4::memory_size(1u << 14) == 1u << 20, "4 rows x 2^14 cells x 16 B");
    Sketch4 s(SketchGeometry{});
    EXPECT_EQ(s.memory_size(), 1u << 20);
    EXPECT_NEAR(s.epsilon(), 1.659e-4, 1e-7);
    EXPECT_EQ(HeavyHitters::memory_size(128), 5632u);  // README.md's table
}

TEST(CountMin, CallerMemoryNeedNotBeZeroed) {
    const SketchGeometry g{1024, 7};
    auto* mem = static_cast<uint8_t*>(::operator new(Sketch4::memory_size(g.width),
                                                     std::align_val_t{64}));
    std::memset(mem, 0xa5, Sketch4::memory_size(g.width));
    {
        Sketch4 s(g, mem);
        EXPECT_EQ(s.estimate(42, 0), 0u);
        EXPECT_EQ(s.add(42, 1, 5), 5u);
        EXPECT_EQ(s.estimate(42, 1), 5u);
        EXPECT_EQ(s.estimate(42, 0), 0u);
        EXPECT_EQ(s.total(1), 5u);
    }
    ::operator delete(mem, std::align_val_t{64});
}

TEST(CountMin, NeverUnderCounts) {
    Sketch4 s(SketchGeometry{1024, 11});
    const auto keys = random_keys(20000, 1);
    std::unordered_map<uint64_t, std::array<uint32_t, 4>> truth;
    std::mt19937_64 rng(2);
    for (int i = 0; i < 200000; ++i) {
        const uint64_t k = keys[rng() % keys.size()];
        const unsigned m = rng() % 4;
        const uint32_t n = 1 + rng() % 3;
        const uint32_t est = s.add(k, m, n);
        truth[k][m] += n;
        ASSERT_GE(est, truth[k][m]);
    }
    for (const auto& [k, counts] : truth) {
        uint32_t all[4];
        s.estimate_all(k, all);
        for (unsigned m = 0; m < 4; ++m) {
            ASSERT_GE(s.estimate(k, m), counts[m]);
            ASSERT_EQ(all[m], s.estimate(k, m));
        }
    }
}

TEST(CountMin, SaturatesInsteadOfWrapping) {
    CountMinSketch<1> s(SketchGeometry{64, 3});
    s.add(9, 0, UINT32_MAX - 1);
    EXPECT_EQ(s.add(9, 0, 5), UINT32_MAX);
    CountMinSketch<1> t(SketchGeometry{64, 3});
    t.add(9, 0, 10);
    ASSERT_TRUE(t.merge_from(s));
    EXPECT_EQ(t.estimate(9, 0), UINT32_MAX);
}

// The bound: P(estimate > true + epsilon * N) <= e^-depth = 1.8% per key. Over many keys and
// several seeds the fraction of keys past it must stay below that (it is far below in practice).
TEST(CountMin, OverCountWithinEpsilonNWithHighProbability) {
    const double delta = std::exp(-4.0);
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        CountMinSketch<2> s(SketchGeometry{1024, seed * 7919});
        const auto keys = random_keys(50000, seed);
        std::unordered_map<uint64_t, uint32_t> truth;
        std::mt19937_64 rng(seed + 100);
        Zipf zipf(keys.size(), 0.8);  // skewed, as traffic is, but with a long tail
        for (int i = 0; i < 500000; ++i) {
            const uint64_t k = keys[zipf(rng)];
            s.add(k, 0);
            ++truth[k];
        }
        const double bound = s.epsilon() * double(s.total(0));
        size_t over = 0;
        double err_sum = 0;
        for (const auto& [k, c] : truth) {
            const uint32_t e = s.estimate(k, 0);
            ASSERT_GE(e, c);
            err_sum += e - c;
            if (e - c > bound) ++over;
        }
        EXPECT_LE(double(over) / truth.size(), delta) << "seed " << seed;
        // Each row's expected error is N / width; the min over 4 rows is well below it.
        EXPECT_LT(err_sum / truth.size(), double(s.total(0)) / s.width()) << "seed " << seed;
        EXPECT_EQ(s.estimate(keys[0], 1), 0u);  // other metric untouched
    }
}

TEST(CountMin, MergeOfWorkersEqualsOneSketchFedEverything) {
    const SketchGeometry g{2048, 0xabcdef};
    const auto keys = random_keys(30000, 5);
    for (unsigned workers : {2u, 4u}) {
        Sketch4 single(g);
        std::vector<std::unique_ptr<Sketch4>> part;
        for (unsigned w = 0; w < workers; ++w) part.push_back(std::make_unique<Sketch4>(g));
        std::mt19937_64 rng(workers);
        for (int i = 0; i < 300000; ++i) {
            const uint64_t k = keys[rng() % keys.size()];
            const unsigned m = rng() % 4;
            const uint32_t n = 1 + rng() % 4;
            single.add(k, m, n);
            // RSS: spread by something other than the key (the 5-tuple), so every worker sees
            // every key.
            part[rng() % workers]->add(k, m, n);
        }
        Sketch4 merged(g);
        for (auto& p : part) ASSERT_TRUE(merged.merge_from(*p));
        EXPECT_TRUE(merged == single) << workers << " workers";
        for (unsigned m = 0; m < 4; ++m) EXPECT_EQ(merged.total(m), single.total(m));
        merged.clear();
        EXPECT_FALSE(merged == single);
        EXPECT_EQ(merged.total(0), 0u);
    }
    Sketch4 a(g);
    Sketch4 other_width(SketchGeometry{4096, g.seed});
    Sketch4 other_seed(SketchGeometry{2048, g.seed + 1});
    other_width.add(1, 0);
    EXPECT_FALSE(a.merge_from(other_width));
    EXPECT_FALSE(a.merge_from(other_seed));
    EXPECT_EQ(a.estimate(1, 0), 0u);
}

// ------------------------------------------------------------------------------ heavy hitters

// Exact model: with per-key counts that only grow, the table holds exactly the `capacity` keys
// with the largest (last count, key). Keys all share one home slot of the index, so every
// eviction deletes from a long probe cluster (backward-shift deletion under stress).
TEST(HeavyHitters, ExactTopUnderChurnWithCollidingIndexSlots) {
    for (bool colliding : {false, true}) {
        const uint32_t cap = 16;  // index of 64 slots: home = top 6 bits of key * phi
        HeavyHitters hh(cap);
        // Inverse of phi mod 2^64 (Newton iteration), to choose keys by their index home.
        const uint64_t phi = 0x9e3779b97f4a7c15ull;
        uint64_t inv = phi;
        for (int i = 0; i < 6; ++i) inv *= 2 - phi * inv;
        ASSERT_EQ(inv * phi, 1u);
        std::mt19937_64 rng(colliding ? 77 : 78);
        std::vector<uint64_t> keys(300);
        for (auto& k : keys) {
            const uint64_t low = rng() & ((1ull << 58) - 1);
            k = colliding ? inv * ((uint64_t{5} << 58) | low) : rng();
        }
        std::unordered_map<uint64_t, uint32_t> count;
        for (int i = 0; i < 100000; ++i) {
            // Skewed choice so that a changing set of keys fights for the table.
            const uint64_t k = keys[std::min<size_t>(rng() % 300, rng() % 300)];
            const uint32_t c = count[k] += 1 + rng() % 5;
            hh.offer(k, c, kNoTarget);
            if (i % 997 == 0 || i == 99999) {
                std::vector<std::pair<uint32_t, uint64_t>> all;
                for (const auto& [key, cnt] : count) all.emplace_back(cnt, key);
                std::sort(all.rbegin(), all.rend());
                const size_t n = std::min<size_t>(cap, all.size());
                ASSERT_EQ(hh.size(), n);
                Candidate top[cap];
                ASSERT_EQ(hh.top(top, cap), n);
                for (size_t j = 0; j < n; ++j) {
                    ASSERT_EQ(top[j].key, all[j].second) << "rank " << j << " at " << i;
                    ASSERT_EQ(top[j].count, all[j].first);
                    ASSERT_EQ(hh.count_of(all[j].second), all[j].first);
                }
                for (size_t j = n; j < all.size(); ++j) ASSERT_EQ(hh.count_of(all[j].second), 0u);
                EXPECT_EQ(hh.admission_floor(), n == cap ? all[cap - 1].first : 0u);
                // A partial top is the prefix of the full one.
                Candidate top3[3];
                const uint32_t n3 = std::min<uint32_t>(3, static_cast<uint32_t>(n));
                ASSERT_EQ(hh.top(top3, 3), n3);
                for (uint32_t j = 0; j < n3; ++j) EXPECT_EQ(top3[j].key, top[j].key);
            }
        }
        hh.clear();
        EXPECT_EQ(hh.size(), 0u);
        EXPECT_EQ(hh.count_of(keys[0]), 0u);
    }
}

struct ZipfRun {
    std::vector<uint64_t> keys;  // by rank
    std::vector<uint32_t> truth;
    std::vector<uint32_t> stream;  // ranks, in arrival order
};

ZipfRun zipf_run(size_t distinct, size_t n, double s, uint64_t seed) {
    ZipfRun r;
    r.keys = random_keys(distinct, seed);
    r.truth.assign(distinct, 0);
    Zipf zipf(distinct, s);
    std::mt19937_64 rng(seed + 1);
    r.stream.resize(n);
    for (auto& x : r.stream) {
        x = static_cast<uint32_t>(zipf(rng));
        ++r.truth[x];
    }
    return r;
}

TEST(HeavyHitters, FindsTrueTopKOfZipfStream) {
    const ZipfRun z = zipf_run(100000, 1000000, 1.1, 21);
    CountMinSketch<2> s(SketchGeometry{4096, 99});
    HeavyHitters hh(64);
    for (uint32_t rank : z.stream) {
        const uint64_t k = z.keys[rank];
        hh.offer(k, s.add(k, 0), kNoTarget);
    }
    // True top 10 by count (ranks in Zipf order almost, but count ties and noise decide).
    std::vector<uint32_t> order(z.keys.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + 64, order.end(),
                      [&](uint32_t a, uint32_t b) { return z.truth[a] > z.truth[b]; });
    Candidate top[10];
    ASSERT_EQ(hh.top(top, 10), 10u);
    std::set<uint64_t> want, got;
    for (int i = 0; i < 10; ++i) {
        want.insert(z.keys[order[i]]);
        got.insert(top[i].key);
    }
    EXPECT_EQ(got, want);
    const double bound = s.epsilon() * double(s.total(0));
    for (int i = 0; i < 10; ++i) {
        const auto rank = std::find(z.keys.begin(), z.keys.end(), top[i].key) - z.keys.begin();
        EXPECT_GE(top[i].count, z.truth[rank]);
        EXPECT_LE(top[i].count, z.truth[rank] + bound);
    }
    // The guarantee: every key above N / capacity + epsilon * N is a candidate.
    const double threshold = double(s.total(0)) / hh.capacity() + bound;
    for (size_t i = 0; i < z.keys.size(); ++i)
        if (z.truth[i] > threshold) {
            EXPECT_GT(hh.count_of(z.keys[i]), 0u) << "rank " << i;
        }
}

// A SYN flood: one victim takes 300k SYNs from random sources while 3M SYNs go to 3M distinct
// addresses. The victim is the top candidate with its count within the bound; no source stands
// out.
TEST(HeavyHitters, SingleDominantVictimAmongMillionsOfDistinctKeys) {
    const SketchGeometry g{};  // the default geometry
    Sketch4 victims(g), sources(g);
    HeavyHitters top_victims(64), top_sources(64);
    constexpr unsigned kSyn = 0;
    const uint32_t victim_v4 = 0xc0a80001;  // 192.168.0.1
    constexpr uint32_t kVictimSyns = 300000, kBackground = 3000000;
    std::mt19937_64 rng(31);
    uint32_t sent_to_victim = 0;
    for (uint32_t i = 0; i < kVictimSyns + kBackground; ++i) {
        const bool to_victim =
            sent_to_victim < kVictimSyns && rng() % (kVictimSyns + kBackground) < kVictimSyns + 1;
        const uint32_t src = static_cast<uint32_t>(rng());
        const uint32_t dst = to_victim ? victim_v4 : 0x0a000000u + i;  // 10.x: distinct
        sent_to_victim += to_victim;
        uint8_t s4[4] = {uint8_t(src >> 24), uint8_t(src >> 16), uint8_t(src >> 8), uint8_t(src)};
        uint8_t d4[4] = {uint8_t(dst >> 24), uint8_t(dst >> 16), uint8_t(dst >> 8), uint8_t(dst)};
        uint8_t sa[16], da[16];
        flow::map_ipv4(sa, s4);
        flow::map_ipv4(da, d4);
        flow::FlowKey fk;
        const flow::Side sender = flow::make_key(fk, sa, 40000, da, 80, 0, 0);
        const Target vt = victim_ip_target(fk, sender);
        const Target st = source_ip_target(fk, sender);
        const uint64_t vk = target_key(vt), sk = target_key(st);
        top_victims.offer(vk, victims.add(vk, kSyn), vt);
        top_sources.offer(sk, sources.add(sk, kSyn), st);
    }
    const uint64_t n = victims.total(kSyn);
    const double bound = victims.epsilon() * double(n);
    Candidate top[2];
    ASSERT_EQ(top_victims.top(top, 2), 2u);
    char buf[80];
    EXPECT_STREQ(format_target(top[0].target, buf, sizeof(buf)), "victim_ip 192.168.0.1");
    EXPECT_GE(top[0].count, sent_to_victim);
    EXPECT_LE(top[0].count, sent_to_victim + bound);
    EXPECT_LT(top[1].count, 1 + bound);  // the runner-up is one SYN plus collisions
    ASSERT_EQ(top_sources.top(top, 1), 1u);
    EXPECT_LT(top[0].count, 1 + sources.epsilon() * double(sources.total(kSyn)));
}

// Workers' candidates united, then re-estimated from the merged sketch: the same top list for 1,
// 2 and 4 workers, whatever the merge order.
TEST(HeavyHitters, MergeAcrossWorkersGivesTheSameTopForOneTwoFourWorkers) {
    const ZipfRun z = zipf_run(200000, 600000, 1.05, 41);
    const SketchGeometry g{8192, 1234};
    constexpr uint32_t kCap = 64, kTop = 16;
    std::vector<std::vector<Candidate>> results;
    for (unsigned workers : {1u, 2u, 4u}) {
        std::vector<std::unique_ptr<CountMinSketch<1>>> sk;
        std::vector<std::unique_ptr<HeavyHitters>> hh;
        for (unsigned w = 0; w < workers; ++w) {
            sk.push_back(std::make_unique<CountMinSketch<1>>(g));
            hh.push_back(std::make_unique<HeavyHitters>(kCap));
        }
        std::mt19937_64 rng(5);
        for (uint32_t rank : z.stream) {
            const unsigned w = rng() % workers;
            const uint64_t k = z.keys[rank];
            hh[w]->offer(k, sk[w]->add(k, 0), kNoTarget);
        }
        for (bool reverse : {false, true}) {
            CountMinSketch<1> merged(g);
            HeavyHitters merged_top(kCap * workers);
            for (unsigned i = 0; i < workers; ++i) {
                const unsigned w = reverse ? workers - 1 - i : i;
                ASSERT_TRUE(merged.merge_from(*sk[w]));
                merged_top.merge_from(*hh[w]);
            }
            merged_top.reestimate(merged, 0);
            std::vector<Candidate> top(kTop);
            ASSERT_EQ(merged_top.top(top.data(), kTop), kTop);
            results.push_back(top);
        }
    }
    for (size_t r = 1; r < results.size(); ++r) {
        for (uint32_t i = 0; i < kTop; ++i) {
            EXPECT_EQ(results[r][i].key, results[0][i].key) << "result " << r << " rank " << i;
            EXPECT_EQ(results[r][i].count, results[0][i].count) << "result " << r << " rank " << i;
        }
    }
}

TEST(HeavyHitters, MergeKeepsLargerCountAndTarget) {
    HeavyHitters a(4), b(4);
    const Target t1 = ipv4_target(KeyKind::victim_ip, 0x01020304);
    const Target t2 = ipv4_target(KeyKind::victim_ip, 0x05060708);
    a.offer(target_key(t1), 10, t1);
    b.offer(target_key(t1), 30, t1);
    b.offer(target_key(t2), 20, t2);
    a.merge_from(b);
    a.merge_from(a);  // no-op
    EXPECT_EQ(a.size(), 2u);
    EXPECT_EQ(a.count_of(target_key(t1)), 30u);
    Candidate top[2];
    ASSERT_EQ(a.top(top, 2), 2u);
    EXPECT_EQ(std::memcmp(top[1].target.addr, t2.addr, 16), 0);
}

// ------------------------------------------------------------------------------ keys

TEST(Keys, Ipv4KeysAreExactAndDecode) {
    const Target v = ipv4_target(KeyKind::victim_endpoint, 0x0a000001, 443);
    const uint64_t k = target_key(v);
    EXPECT_EQ(k, (uint64_t{2} << 48) | (uint64_t{443} << 32) | 0x0a000001u);
    Target d;
    ASSERT_TRUE(decode_ipv4_key(k, d));
    EXPECT_EQ(std::memcmp(&d, &v, sizeof(Target)), 0);
    // Kinds and ports separate keys; the address-only kinds drop the port.
    EXPECT_NE(target_key(ipv4_target(KeyKind::victim_ip, 1)),
              target_key(ipv4_target(KeyKind::source_ip, 1)));
    EXPECT_EQ(target_key(ipv4_target(KeyKind::victim_ip, 1, 80)),
              target_key(ipv4_target(KeyKind::victim_ip, 1, 443)));
    EXPECT_NE(target_key(ipv4_target(KeyKind::victim_endpoint, 1, 80)),
              target_key(ipv4_target(KeyKind::victim_endpoint, 1, 443)));
    char buf[80];
    EXPECT_STREQ(format_target(v, buf, sizeof(buf)), "victim_endpoint 10.0.0.1:443");
}

TEST(Keys, Ipv6KeysAreHashedAndNeverMeetIpv4Keys) {
    uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint64_t k = victim_endpoint_key(a, 80);
    EXPECT_NE(k >> 63, 0u);
    Target d;
    EXPECT_FALSE(decode_ipv4_key(k, d));
    EXPECT_NE(k, victim_endpoint_key(a, 81));
    EXPECT_NE(victim_ip_key(a), source_ip_key(a));
    a[15] = 2;
    EXPECT_NE(k, victim_endpoint_key(a, 80));
    char buf[80];
    EXPECT_STREQ(format_target(make_target(KeyKind::victim_endpoint, a, 80), buf, sizeof(buf)),
                 "victim_endpoint [2001:db8::2]:80");
}

TEST(Keys, FromFlowKeyTheReceiverIsTheVictim) {
    const uint8_t c4[4] = {10, 0, 0, 9}, s4[4] = {10, 0, 0, 1};
    uint8_t client[16], server[16];
    flow::map_ipv4(client, c4);
    flow::map_ipv4(server, s4);
    for (bool reply : {false, true}) {
        flow::FlowKey fk;
        const flow::Side sender = reply ? flow::make_key(fk, server, 80, client, 5555, 0, 0)
                                        : flow::make_key(fk, client, 5555, server, 80, 0, 0);
        const uint8_t* victim = reply ? client : server;
        const uint8_t* source = reply ? server : client;
        EXPECT_EQ(target_key(victim_ip_target(fk, sender)), victim_ip_key(victim));
        EXPECT_EQ(target_key(source_ip_target(fk, sender)), source_ip_key(source));
        EXPECT_EQ(target_key(victim_endpoint_target(fk, sender)),
                  victim_endpoint_key(victim, reply ? 5555 : 80));
    }
}

// ------------------------------------------------------------------------------ publication

// One worker's partial: a sketch and exact per-key counts to check it against.
struct Partial {
    static constexpr unsigned kKeys = 64;
    explicit Partial(const SketchGeometry& g) : sketch(g) {}
    Sketch4 sketch;
    uint64_t exact[kKeys] = {};
    void clear() noexcept {
        sketch.clear();
        std::fill(std::begin(exact), std::end(exact), 0);
    }
};

TEST(Publication, LateWhileReaderHoldsThenCarriesTheSkippedIntervals) {
    const SketchGeometry g{256, 1};
    IntervalDoubleBuffer<Partial> db(100, g);
    Publication info{};
    EXPECT_EQ(db.try_acquire(info), nullptr);
    db.active().sketch.add(1, 0, 5);
    EXPECT_TRUE(db.publish(100));
    const Partial* p = db.try_acquire(info);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(info.seq, 1u);
    EXPECT_EQ(info.first_interval, 100u);
    EXPECT_EQ(info.last_interval, 100u);
    EXPECT_EQ(info.late, 0u);
    EXPECT_EQ(p->sketch.estimate(1, 0), 5u);
    EXPECT_EQ(db.try_acquire(info), p);  // same one until released
    // The reader holds publication 1: intervals 101 and 102 cannot be published.
    EXPECT_EQ(db.active().sketch.estimate(1, 0), 0u);
    db.active().sketch.add(1, 0, 7);
    EXPECT_FALSE(db.publish(101));
    db.active().sketch.add(1, 0, 1);
    EXPECT_FALSE(db.publish(102));
    EXPECT_EQ(db.publish_late(), 2u);
    db.release();
    EXPECT_EQ(p->sketch.estimate(1, 0), 0u);  // cleared by the reader
    EXPECT_EQ(db.try_acquire(info), nullptr);
    db.release();  // nothing held: no-op
    db.active().sketch.add(1, 0, 2);
    EXPECT_TRUE(db.publish(103));
    p = db.try_acquire(info);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(info.seq, 2u);
    EXPECT_EQ(info.first_interval, 101u);
    EXPECT_EQ(info.last_interval, 103u);
    EXPECT_EQ(info.late, 2u);
    EXPECT_EQ(p->sketch.estimate(1, 0), 10u);
    EXPECT_EQ(db.published(), 2u);
    db.release();
    EXPECT_TRUE(db.publish(104));  // the buffer released above is free again
}

// A writer thread runs `intervals` intervals of random updates, publishing at each boundary; a
// reader thread merges whatever is published, sleeping now and then to make the writer late.
// Checks: publications are consecutive, their interval spans tile [0, intervals) with no gap or
// overlap, `late` adds up to publish_late, and merged counts equal the writer's reference
// exactly: nothing lost, nothing counted twice.
struct ThreadRun {
    uint64_t publish_late = 0;
    uint64_t published = 0;
    uint64_t max_span = 0;
};

ThreadRun run_threads(unsigned intervals, unsigned max_reader_sleep_us, uint64_t seed) {
    const SketchGeometry g{1024, seed};
    IntervalDoubleBuffer<Partial> db(0, g);
    Partial reference(g);    // writer's own copy of everything it added
    Partial merged(g);       // reader's merge of everything it got
    std::atomic<bool> done{false};
    uint64_t trailing_late = 0;  // writer: refused publishes after its last success
    ThreadRun out;

    std::thread writer([&] {
        std::mt19937_64 rng(seed);
        for (unsigned iv = 0; iv < intervals; ++iv) {
            const unsigned updates = rng() % 200;
            for (unsigned u = 0; u < updates; ++u) {
                const unsigned k = rng() % Partial::kKeys;
                const unsigned m = rng() % 4;
                const uint32_t n = 1 + rng() % 9;
                db.active().sketch.add(k, m, n);
                db.active().exact[k] += n;
                reference.sketch.add(k, m, n);
                reference.exact[k] += n;
                if (rng() % 64 == 0) std::this_thread::yield();
            }
            if (db.publish(iv))
                trailing_late = 0;
            else
                ++trailing_late;
        }
        done.store(true, std::memory_order_release);
    });

    std::thread reader([&] {
        std::mt19937_64 rng(seed ^ 0xfeed);
        uint64_t expect_seq = 1, next_interval = 0, late_sum = 0;
        for (;;) {
            const bool finished = done.load(std::memory_order_acquire);
            Publication info{};
            if (const Partial* p = db.try_acquire(info)) {
                EXPECT_EQ(info.seq, expect_seq++);
                EXPECT_EQ(info.first_interval, next_interval);
                EXPECT_GE(info.last_interval, info.first_interval);
                EXPECT_EQ(info.last_interval - info.first_interval, info.late);
                out.max_span = std::max(out.max_span, info.last_interval - info.first_interval + 1);
                next_interval = info.last_interval + 1;
                late_sum += info.late;
                EXPECT_TRUE(merged.sketch.merge_from(p->sketch));
                for (unsigned k = 0; k < Partial::kKeys; ++k) merged.exact[k] += p->exact[k];
                if (max_reader_sleep_us && rng() % 3 == 0)
                    std::this_thread::sleep_for(
                        std::chrono::microseconds(rng() % max_reader_sleep_us));
                db.release();
                continue;
            }
            if (finished) break;
            std::this_thread::yield();
        }
        out.published = expect_seq - 1;
        EXPECT_EQ(late_sum, db.publish_late() - trailing_late);
        // Whatever the last refused publishes left is in active(), read after the writer ends.
        EXPECT_EQ(next_interval + trailing_late, intervals);
    });
    writer.join();
    reader.join();
    // The writer has stopped (join orders its writes): its unpublished remainder is ours.
    EXPECT_TRUE(merged.sketch.merge_from(db.active().sketch));
    for (unsigned k = 0; k < Partial::kKeys; ++k) merged.exact[k] += db.active().exact[k];
    EXPECT_TRUE(merged.sketch == reference.sketch);
    for (unsigned k = 0; k < Partial::kKeys; ++k) EXPECT_EQ(merged.exact[k], reference.exact[k]);
    EXPECT_EQ(out.published, db.published());
    out.publish_late = db.publish_late();
    out.max_span = std::max(out.max_span, trailing_late);  // the remainder's intervals
    return out;
}

TEST(Publication, ThreadsFastReaderLosesNothing) {
    const ThreadRun r = run_threads(1000, 0, 1);
    EXPECT_GT(r.published, 0u);
    EXPECT_EQ(r.published + r.publish_late, 1000u);
}

TEST(Publication, ThreadsSlowReaderMakesWriterLateLosesNothing) {
    const ThreadRun r = run_threads(1000, 300, 2);
    EXPECT_GT(r.publish_late, 0u);
    EXPECT_GT(r.max_span, 1u);
    EXPECT_EQ(r.published + r.publish_late, 1000u);
}

}  // namespace
}  // namespace stateline::sketch
