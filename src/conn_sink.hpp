// SPDX-License-Identifier: BSD-3-Clause
// The control core's end of the connection-record rings: drains every worker's ring, counts
// connections by final conn_state and by how they closed, and writes the conn.log when asked.
// Control core only.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "conn_log.hpp"
#include "worker.hpp"

namespace stateline {

struct ConnSink {
    connlog::ConnLogWriter log;   // open only with --conn-log
    std::map<std::string, uint64_t> by_conn_state;
    uint64_t by_close[connlog::kCloseKindCount] = {};
    uint64_t records = 0;
    bool write_failed = false;
    // Live: when the log's I/O thread is behind (a stalled disk), leave the records in the
    // workers' rings rather than wait, so the control core keeps taking snapshots and judging
    // intervals; a full ring is counted by its worker (conn_records_dropped). A replay and the
    // final flush wait instead: they lose nothing.
    bool never_wait = false;
    uint64_t backlogged_polls = 0;  // drains cut short because the log was behind

    // Drains one worker's ring; returns the records taken.
    unsigned drain(Worker& w);
    void account(const connlog::ConnRecord& r);
};

// The sink the shutdown flush drains into (Worker::drain_when_full). Set before flushing.
void set_flush_sink(ConnSink* sink);
void drain_into_flush_sink(Worker& w);

}  // namespace stateline
