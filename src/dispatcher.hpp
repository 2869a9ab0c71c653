// SPDX-License-Identifier: BSD-3-Clause
// Capture replay front end. A capture has one RX queue, so one lcore reads it and plays the part
// of the NIC's symmetric RSS: it parses each frame once (the PacketMeta goes with the mbuf),
// and hands it to worker (flow hash % workers), so both directions of a connection meet on one
// worker exactly as they would behind a NIC. Untracked frames are spread round-robin.
// Captures are read one after another, in the order given. Replay is lossless: when a worker
// ring is full the dispatcher waits, since a file, unlike a wire, can.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "capture_probe.hpp"
#include "worker.hpp"

namespace stateline {

struct CaptureSource {
    uint16_t port;
    CaptureInfo info;
};

struct alignas(64) Dispatcher {
    std::vector<CaptureSource> sources;
    std::vector<rte_ring*> rings;  // one per worker
    uint32_t burst = 32;
    int ts_offset = -1;            // mbuf dynfield with the capture timestamp, -1 if none
    rte_mempool* pool = nullptr;   // the PMD's mbufs: when all sit in worker rings, it is not stalled
    // Detection interval (0: no detection). The dispatcher tells every worker, in band, where
    // each interval of capture time ends, so each frame's interval is decided once, here, in
    // capture order: the same for any number of workers, even when timestamps step back.
    uint64_t interval_ns = 0;
    RunState* run = nullptr;

    // Progress, read by the control core (relaxed).
    std::atomic<uint64_t> frames_read{0};
    std::atomic<uint32_t> current_source{0};
    // Frames the PMD never delivered per source (read errors, no mbuf), set when a source ends.
    std::vector<uint64_t> undelivered;
    std::vector<bool> stalled;
};

int dispatcher_main(void* arg);

}  // namespace stateline
