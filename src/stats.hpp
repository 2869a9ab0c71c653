// SPDX-License-Identifier: BSD-3-Clause
// The control core's view of the running appliance, once per interval: every worker's published
// counters summed (and kept per worker), rates over the interval, the ports' driver counters,
// the detector's active alerts and heaviest victims and sources. Everything that exports or
// answers questions (Prometheus, DPDK telemetry, the control socket, --stats) reads the latest
// Snapshot from the SnapshotBoard and never touches a worker.
//
// Thread safety: the control core builds snapshots; any thread may get() the latest one (a
// shared_ptr copy under a mutex held for a pointer swap: no reader can delay the control core
// by more than that, and a snapshot is immutable once put()).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "counters.hpp"

namespace stateline {

struct PortSnapshot {
    std::string name;
    uint64_t ipackets = 0, ibytes = 0, imissed = 0, ierrors = 0, rx_nombuf = 0;
    uint64_t opackets = 0, oerrors = 0;  // sent (inline mode forwards into the paired port)
    // The link as last polled (rte_eth_link_get_nowait, each stats interval on the control core)
    // and how many times it went down or up since the start.
    bool link_up = false;
    uint64_t link_changes = 0;
};

// One mitigation rule's counts, summed over the workers and over the rule sets it was part of
// (a reload keeps a rule's counts when its name stays).
struct RuleStat {
    std::string name;
    std::string action;  // alert, drop, rate_limit, allow
    uint64_t hits = 0;   // segments it matched first
    uint64_t drops = 0;  // of which dropped (inline) or to be dropped (monitor)
};

struct Snapshot {
    uint64_t seq = 0;              // 1, 2, ...: snapshots taken since the start
    double wall_s = 0;             // Unix time when taken
    double uptime_s = 0;           // since the workers started
    double interval_s = 0;         // since the previous snapshot (rates are over this)
    uint64_t clock_ns = 0;         // the newest worker clock: capture time in a replay
    std::string mode;              // "live" or "capture"
    bool running = true;           // false in the last snapshot, taken at the stop

    // counters::descriptors() order.
    std::vector<uint64_t> total;
    std::vector<std::vector<uint64_t>> per_worker;
    std::vector<double> rate;                     // per second over interval_s; 0 for gauges
    std::vector<std::vector<double>> per_worker_rate;

    std::vector<PortSnapshot> ports;

    // Mitigation: "monitor" or "inline", the rules in the running order, and the rule set's
    // generation (1 at start, +1 per reload that changed the rules and reached every worker).
    std::string mitigation_mode = "monitor";
    std::vector<RuleStat> rules;
    uint64_t rules_generation = 0;

    // Detection (null when off): {"active": [...], "started": {type: n}, "top_victims": [...],
    // "top_sources": [...]}.
    nlohmann::json detection;

    // Index of a descriptor, or -1.
    static int index(const std::string& group, const std::string& name);
    uint64_t value(const std::string& group, const std::string& name) const;
    double rate_of(const std::string& group, const std::string& name) const;
    // The whole snapshot as JSON (the control socket's "stats", --stats lines, telemetry).
    nlohmann::json to_json(bool per_worker_detail = true) const;
};

class SnapshotBoard {
public:
    void put(std::shared_ptr<const Snapshot> s) {
        std::lock_guard<std::mutex> g(m_);
        cur_ = std::move(s);
    }
    std::shared_ptr<const Snapshot> get() const {
        std::lock_guard<std::mutex> g(m_);
        return cur_;
    }

private:
    mutable std::mutex m_;
    std::shared_ptr<const Snapshot> cur_;
};

// Builds snapshots from the workers' publications: the control core calls take() each interval.
class StatsCollector {
public:
    StatsCollector(std::vector<const counters::PublishedCounters*> workers, std::string mode);
    // From the workers' latest publications; rates over the wall time since the last snapshot.
    // `ports`, `detection` are the caller's to fill.
    std::shared_ptr<Snapshot> take(double wall_s, double uptime_s);
    // From counters handed over with an interval of capture time (a replay): rates over
    // interval_s of capture time, clock_ns the interval's end.
    std::shared_ptr<Snapshot> take_interval(const std::vector<const std::vector<uint64_t>*>& per_worker,
                                            uint64_t clock_ns, double interval_s, double wall_s,
                                            double uptime_s);

private:
    std::vector<const counters::PublishedCounters*> workers_;
    std::string mode_;
    std::shared_ptr<const Snapshot> prev_;
    uint64_t seq_ = 0;
    std::shared_ptr<Snapshot> finish(std::shared_ptr<Snapshot> s);
};

}  // namespace stateline
