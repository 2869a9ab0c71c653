// SPDX-License-Identifier: BSD-3-Clause
// The end-of-run report: a readable summary on stdout and the same figures as JSON, both
// generated from the counter descriptors (lib/counters), so they cannot disagree.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "capture_probe.hpp"
#include "conn_record.hpp"
#include "counters.hpp"
#include "stats.hpp"
#include "tcp_tracker.hpp"

namespace stateline {

struct WorkerReport {
    unsigned id;
    unsigned lcore;
    std::vector<uint64_t> values;  // in counters::descriptors() order
};

// What a port's driver counted: frames it delivered, and those it could not (imissed: the RX
// ring was full; rx_nombuf: no mbuf to put them in; ierrors: bad frames).
struct PortReport {
    std::string name;
    uint64_t ipackets = 0, ibytes = 0, imissed = 0, ierrors = 0, rx_nombuf = 0;
    uint64_t opackets = 0, oerrors = 0;  // sent (inline mode)
    bool link_up = false;                // at the stop
    uint64_t link_changes = 0;           // downs and ups seen while running
};

struct RunReport {
    std::string mode;  // "capture" or "live"
    std::vector<CaptureInfo> captures;
    std::vector<uint64_t> undelivered;  // per capture: frames the PMD never delivered
    std::vector<PortReport> ports;
    std::vector<WorkerReport> workers;
    uint32_t capacity_per_worker = 0;
    uint64_t table_bytes_per_worker = 0;
    double elapsed_s = 0;
    bool interrupted = false;
    // Connections: TCP state of each endpoint at the stop (before the flush), and every record
    // by its final Zeek conn_state and by how it closed.
    uint64_t orig_states[tcp::kStateCount] = {};
    uint64_t resp_states[tcp::kStateCount] = {};
    std::map<std::string, uint64_t> conn_states;
    uint64_t closes[connlog::kCloseKindCount] = {};
    uint64_t conn_records = 0;
    // Detection: null when disabled; else {"enabled", "started", "by_type", ...} (main.cpp).
    nlohmann::ordered_json alerts;
    // Mitigation: "monitor" or "inline" (a replay always runs monitor), and each rule's counts at
    // the stop in running order, summed over the workers and the rule sets it was part of.
    std::string mitigation_mode = "monitor";
    std::vector<RuleStat> rules;
};

nlohmann::ordered_json summary_json(const RunReport& r);
std::string summary_text(const RunReport& r);

}  // namespace stateline
