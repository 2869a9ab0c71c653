// SPDX-License-Identifier: BSD-3-Clause
// The end-of-run report: a readable summary on stdout and the same figures as JSON, both
// generated from the counter descriptors (lib/counters), so they cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "capture_probe.hpp"
#include "counters.hpp"

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
};

nlohmann::ordered_json summary_json(const RunReport& r);
std::string summary_text(const RunReport& r);

}  // namespace stateline
