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

std::vector<uint64_t> collect(const WorkerCounters& c, const flow::FlowTableStats& t) {
    std::vector<uint64_t> v;
    v.reserve(descriptors().size());
    for (unsigned i = 0; i < kScalarCount; ++i) v.push_back(WorkerCounters::load(c.scalar[i]));
    for (unsigned i = 0; i < packet::kOutcomeCount; ++i) v.push_back(WorkerCounters::load(c.outcome[i]));
    for (unsigned i = 0; i < tcp::kCounterCount; ++i) v.push_back(WorkerCounters::load(c.tcp[i]));
    v.push_back(t.inserted);
    v.push_back(t.active);
    for (auto r : t.removed) v.push_back(r);
    for (auto f : t.insert_failed) v.push_back(f);
    return v;
}

}  // namespace stateline::counters
