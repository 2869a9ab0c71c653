// SPDX-License-Identifier: BSD-3-Clause
#include "counters.hpp"

namespace stateline::counters {

namespace {

std::vector<Desc> build() {
    std::vector<Desc> d;
    struct S {
        const char* name;
        Kind kind;
        const char* help;
    };
    static const S scalars[] = {
#define STATELINE_X(name, kind, help) {#name, Kind::kind, help},
        STATELINE_WORKER_SCALARS(STATELINE_X)
#undef STATELINE_X
    };
    for (const auto& s : scalars) d.push_back({"rx", s.name, s.help, s.kind});
    for (const auto& o : packet::kOutcomeInfo) d.push_back({"outcomes", o.name, o.help, Kind::counter});
    for (const auto& t : tcp::kCounterInfo) d.push_back({"tcp", t.name, t.help, Kind::counter});
    d.push_back({"flows", "created", "Connections inserted in the flow table", Kind::counter});
    d.push_back({"flows", "active", "Connections in the flow table now", Kind::gauge});
    for (unsigned c = 1; c < flow::kTimeoutClassCount; ++c)
        d.push_back({"flows.by_state", flow::timeout_class_name(static_cast<flow::TimeoutClass>(c)),
                     "Connections in the flow table now in this state (by timeout class)", Kind::gauge});
    for (const auto& r : flow::kRemoveReasonInfo) d.push_back({"flows.removed", r.name, r.help, Kind::counter});
    for (const auto& f : flow::kInsertFailureInfo)
        d.push_back({"flows.insert_failed", f.name, f.help, Kind::counter});
    return d;
}

}  // namespace

const std::vector<Desc>& descriptors() {
    static const std::vector<Desc> d = build();
    return d;
}

void collect_into(const WorkerCounters& c, const flow::FlowTableStats& t, uint64_t* v) noexcept {
    for (unsigned i = 0; i < kScalarCount; ++i) *v++ = WorkerCounters::load(c.scalar[i]);
    for (unsigned i = 0; i < packet::kOutcomeCount; ++i) *v++ = WorkerCounters::load(c.outcome[i]);
    for (unsigned i = 0; i < tcp::kCounterCount; ++i) *v++ = c.tcp[i];
    *v++ = t.inserted;
    *v++ = t.active;
    for (unsigned k = 1; k < flow::kTimeoutClassCount; ++k) *v++ = t.active_by_class[k];
    for (auto r : t.removed) *v++ = r;
    for (auto f : t.insert_failed) *v++ = f;
}

std::vector<uint64_t> collect(const WorkerCounters& c, const flow::FlowTableStats& t) {
    std::vector<uint64_t> v(descriptors().size());
    collect_into(c, t, v.data());
    return v;
}

PublishedCounters::PublishedCounters()
    : values_(descriptors().size(), 0), scratch_(descriptors().size(), 0) {}

void PublishedCounters::publish(const WorkerCounters& c, const flow::FlowTableStats& t,
                                uint64_t now_ns) noexcept {
    // Seqlock writer: odd while copying. Values are stored relaxed-atomically so a reader
    // racing the copy reads stale or new words, never torn ones, and then retries.
    const uint64_t s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    collect_into(c, t, scratch_.data());
    for (size_t i = 0; i < values_.size(); ++i)
        std::atomic_ref<uint64_t>(values_[i]).store(scratch_[i], std::memory_order_relaxed);
    std::atomic_ref<uint64_t>(now_ns_).store(now_ns, std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
}

bool PublishedCounters::read(std::vector<uint64_t>& out, uint64_t& now_ns) const {
    out.resize(values_.size());
    for (;;) {
        const uint64_t s1 = seq_.load(std::memory_order_acquire);
        if (s1 == 0) return false;
        if (s1 & 1) continue;
        for (size_t i = 0; i < values_.size(); ++i)
            out[i] = std::atomic_ref<const uint64_t>(values_[i]).load(std::memory_order_relaxed);
        now_ns = std::atomic_ref<const uint64_t>(now_ns_).load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (seq_.load(std::memory_order_relaxed) == s1) return true;
    }
}

}  // namespace stateline::counters
