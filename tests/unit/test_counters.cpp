// SPDX-License-Identifier: BSD-3-Clause
// Counters described once, and their publication to readers on other threads (seqlock).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "counters.hpp"

using namespace stateline;
using counters::PublishedCounters;

namespace {

int index_of(const std::string& g, const std::string& n) {
    const auto& d = counters::descriptors();
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i].group == g && d[i].name == n) return static_cast<int>(i);
    return -1;
}

}  // namespace

TEST(Counters, DescriptorsAreUniqueAndCollectMatchesTheirOrder) {
    const auto& d = counters::descriptors();
    std::set<std::string> seen;
    for (const auto& x : d) EXPECT_TRUE(seen.insert(x.group + "." + x.name).second) << x.group << "." << x.name;
    counters::WorkerCounters c{};
    c.add(counters::Scalar::rx_packets, 7);
    flow::FlowTableStats t;
    t.active = 5;
    t.active_by_class[static_cast<unsigned>(flow::TimeoutClass::established)] = 3;
    t.active_by_class[static_cast<unsigned>(flow::TimeoutClass::half_open)] = 2;
    const auto v = counters::collect(c, t);
    ASSERT_EQ(v.size(), d.size());
    EXPECT_EQ(v[static_cast<size_t>(index_of("rx", "rx_packets"))], 7u);
    EXPECT_EQ(v[static_cast<size_t>(index_of("flows", "active"))], 5u);
    EXPECT_EQ(v[static_cast<size_t>(index_of("flows.by_state", "established"))], 3u);
    EXPECT_EQ(v[static_cast<size_t>(index_of("flows.by_state", "half_open"))], 2u);
    EXPECT_EQ(index_of("flows.by_state", "free"), -1) << "free slots are not a state";
}

TEST(PublishedCounters, NothingBeforeTheFirstPublication) {
    PublishedCounters p;
    std::vector<uint64_t> v;
    uint64_t now = 1;
    EXPECT_FALSE(p.read(v, now));
    counters::WorkerCounters c{};
    c.add(counters::Scalar::rx_bytes, 1500);
    p.publish(c, flow::FlowTableStats{}, 42);
    ASSERT_TRUE(p.read(v, now));
    EXPECT_EQ(now, 42u);
    EXPECT_EQ(v[static_cast<size_t>(index_of("rx", "rx_bytes"))], 1500u);
}

// A writer publishes sets in which every counter holds the same value; a reader on another
// thread must never see a mix of two publications (a torn set).
TEST(PublishedCounters, ReadersNeverSeeATornSet) {
    PublishedCounters p;
    std::atomic<bool> done{false};
    std::thread writer([&] {
        counters::WorkerCounters c{};
        flow::FlowTableStats t;
        for (uint64_t k = 1; k <= 200000; ++k) {
            for (auto& x : c.scalar) x = k;
            for (auto& x : c.outcome) x = k;
            for (auto& x : c.tcp) x = k;
            t.inserted = t.active = k;
            for (auto& x : t.active_by_class) x = k;
            for (auto& x : t.removed) x = k;
            for (auto& x : t.insert_failed) x = k;
            p.publish(c, t, k);
        }
        done = true;
    });
    std::vector<uint64_t> v;
    uint64_t now = 0, reads = 0, last = 0;
    while (!done.load()) {
        if (!p.read(v, now)) continue;
        ++reads;
        for (uint64_t x : v) ASSERT_EQ(x, now) << "torn read after " << reads << " reads";
        ASSERT_GE(now, last);
        last = now;
    }
    writer.join();
    EXPECT_GT(reads, 0u);
}
