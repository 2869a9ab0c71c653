// SPDX-License-Identifier: BSD-3-Clause
#include "conn_sink.hpp"

namespace stateline {

namespace {
ConnSink* g_flush_sink = nullptr;
}

void ConnSink::account(const connlog::ConnRecord& r) {
    ++records;
    ++by_conn_state[r.conn_state];
    ++by_close[static_cast<unsigned>(r.close)];
    if (log.is_open() && !write_failed && !log.write(r)) write_failed = true;
}

unsigned ConnSink::drain(Worker& w) {
    if (!w.conn_ring) return 0;
    connlog::ConnRecord batch[64];
    unsigned total = 0, n;
    for (;;) {
        if (never_wait && log.is_open() && !write_failed && log.backlogged()) {
            ++backlogged_polls;
            break;
        }
        if ((n = rte_ring_sc_dequeue_burst_elem(w.conn_ring, batch, sizeof(connlog::ConnRecord), 64, nullptr)) == 0)
            break;
        for (unsigned i = 0; i < n; ++i) account(batch[i]);
        total += n;
    }
    return total;
}

void set_flush_sink(ConnSink* sink) { g_flush_sink = sink; }

void drain_into_flush_sink(Worker& w) {
    if (g_flush_sink) g_flush_sink->drain(w);
}

}  // namespace stateline
