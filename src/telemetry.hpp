// SPDX-License-Identifier: BSD-3-Clause
// DPDK telemetry: the control core's aggregates as rte_telemetry commands, readable with DPDK's
// own client (dpdk-telemetry.py -f <file-prefix>) or anything speaking its socket protocol.
//
//   /stateline/stats[,GROUP]   every counter's total, "group/name": value (a group's dots become
//                              slashes: telemetry dict names allow only [A-Za-z0-9_/]), with
//                              time_ms, uptime_ms, clock_ns, interval_ms, mode, running
//   /stateline/rates[,GROUP]   per second over the last interval, rounded to integers
//   /stateline/workers[,ID]    per worker: rx_packets, rx_pps, polls busy/idle, flows active
//   /stateline/flows[,ID]      connections by state, active, created, removed by reason and
//                              insert failures; of one worker when ID is given
//   /stateline/alerts          active alerts, one dict each (type, target, severity, group,
//                              start), keyed by alert id, and alerts started by type
//   /stateline/top             heaviest victims and sources, "victim_1".., "source_1"..
//
// A bad parameter gets {"error": "..."} saying what is accepted. Telemetry has no floating point
// (22.11): rates are rounded. Limits (256 entries per dict, one level of nesting, 16 KiB per
// reply) are kept by truncating with a "note" rather than failing.
//
// Thread safety: the callbacks run on DPDK's telemetry thread and read only the latest Snapshot
// from the board (a shared_ptr copy); they never touch a worker or the control core.
#pragma once

#include <string>

#include "stats.hpp"

namespace stateline {

// Registers the commands (the first call; DPDK cannot unregister them) and points them at
// `board`. `stats_interval_ms` is only for the reply given before the first snapshot. Returns
// false with `err` set if DPDK refused a command.
bool register_telemetry(const SnapshotBoard* board, unsigned stats_interval_ms, std::string& err);

// Detaches the board (call before it is destroyed); waits for a callback reading it. Later
// requests are answered {"error": "stopped"}.
void unregister_telemetry();

// Detaches the board when it goes out of scope: declare it right after the board.
struct TelemetryRegistration {
    TelemetryRegistration() = default;
    TelemetryRegistration(const TelemetryRegistration&) = delete;
    TelemetryRegistration& operator=(const TelemetryRegistration&) = delete;
    ~TelemetryRegistration() { unregister_telemetry(); }
};

// The telemetry socket EAL opened in `runtime_dir` (rte_eal_get_runtime_dir()), or "" when there
// is none (--no-telemetry).
std::string telemetry_socket_path(const std::string& runtime_dir);

}  // namespace stateline
