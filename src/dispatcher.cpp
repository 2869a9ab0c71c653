// SPDX-License-Identifier: BSD-3-Clause
#include "dispatcher.hpp"

#include <sched.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf_dyn.h>
#include <rte_prefetch.h>

#include "parser.hpp"

namespace stateline {

namespace {

// How long a source may stay silent before it is called finished although frames are missing
// (the PMD counted them as errors, or lost them for want of mbufs).
constexpr uint64_t kStallSeconds = 2;

// Enqueues all n frames to one worker's ring, waiting while it is full.
bool enqueue_all(Dispatcher& d, rte_ring* r, rte_mbuf** m, unsigned n) {
    unsigned done = 0;
    while (done < n) {
        done += rte_ring_sp_enqueue_burst(r, reinterpret_cast<void**>(m + done), n - done, nullptr);
        if (done < n) {
            if (d.run->stop.load(std::memory_order_relaxed)) {
                rte_pktmbuf_free_bulk(m + done, n - done);
                return false;
            }
            sched_yield();  // the worker shares our core in capture mode: let it drain
        }
    }
    return true;
}

// An interval marker to every worker, behind the frames already enqueued. Not an mbuf: never
// freed, and dropped only when stopping.
bool broadcast_marker(Dispatcher& d, void* marker) {
    for (rte_ring* r : d.rings)
        while (rte_ring_sp_enqueue(r, marker) != 0) {
            if (d.run->stop.load(std::memory_order_relaxed)) return false;
            sched_yield();
        }
    return true;
}

// Worker for a flow hash. The table indexes buckets by the hash's high bits and takes its
// signature from the low bits; a plain `hash % n` would pin low bits per worker and a shift would
// pin high bits, so spread a bijective remix of the hash instead.
inline unsigned pick_worker(uint32_t hash, unsigned n) {
    return static_cast<unsigned>((uint64_t(hash * 0x9E3779B1u) * n) >> 32);
}

// net_pcap stamps microseconds in DPDK 22.11 and nanoseconds in later releases. Tell which by
// comparing the first frame's stamp with the time the probe read from the file.
inline uint64_t timestamp_scale(uint64_t stamp, uint64_t probed_ns) {
    uint64_t as_us = stamp * 1000;
    uint64_t diff = as_us > probed_ns ? as_us - probed_ns : probed_ns - as_us;
    return diff < 1000 ? 1000 : 1;
}

}  // namespace

int dispatcher_main(void* arg) {
    Dispatcher& d = *static_cast<Dispatcher*>(arg);
    const unsigned nw = static_cast<unsigned>(d.rings.size());
    rte_mbuf* pkts[kMaxBurst];
    std::vector<std::vector<rte_mbuf*>> out(nw);
    for (auto& o : out) o.resize(kMaxBurst);
    std::vector<unsigned> nout(nw, 0);
    unsigned rr = 0;
    uint64_t ts_scale = 0;
    const uint64_t hz = rte_get_timer_hz();
    d.undelivered.assign(d.sources.size(), 0);
    uint64_t interval = UINT64_MAX;  // of the latest timestamp seen (capture time never steps back)
    auto flush = [&]() {
        for (unsigned w = 0; w < nw; ++w) {
            if (nout[w] && !enqueue_all(d, d.rings[w], out[w].data(), nout[w])) {
                for (unsigned x = w + 1; x < nw; ++x) rte_pktmbuf_free_bulk(out[x].data(), nout[x]);
                nout.assign(nw, 0);
                return false;
            }
            nout[w] = 0;
        }
        return true;
    };
    d.stalled.assign(d.sources.size(), false);

    for (size_t s = 0; s < d.sources.size() && !d.run->stop.load(std::memory_order_relaxed); ++s) {
        d.current_source.store(static_cast<uint32_t>(s), std::memory_order_relaxed);
        const CaptureSource& src = d.sources[s];
        uint64_t got = 0;
        uint64_t last_progress = rte_get_timer_cycles();
        while (got < src.info.frames) {
            if (d.run->stop.load(std::memory_order_relaxed)) break;
            uint16_t n = rte_eth_rx_burst(src.port, 0, pkts, static_cast<uint16_t>(d.burst));
            if (n == 0) {
                // No frame because every mbuf waits in a worker ring (workers behind, or at an
                // interval marker): the PMD is not at fault, the clock restarts.
                if (d.pool && rte_mempool_avail_count(d.pool) < d.burst) last_progress = rte_get_timer_cycles();
                if (rte_get_timer_cycles() - last_progress > kStallSeconds * hz) {
                    d.stalled[s] = true;
                    break;
                }
                sched_yield();
                continue;
            }
            last_progress = rte_get_timer_cycles();
            got += n;
            for (uint16_t i = 0; i < n; ++i) {
                if (i + 2 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 2], void*));
                rte_mbuf* m = pkts[i];
                packet::PacketMeta* meta = meta_of(m);
                packet::parse_frame(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, src.info.link, *meta);
                meta->ts_ns = d.ts_offset >= 0 ? *RTE_MBUF_DYNFIELD(m, d.ts_offset, uint64_t*) : 0;
                if (ts_scale == 0) [[unlikely]]
                    ts_scale = timestamp_scale(meta->ts_ns, src.info.first_ts_ns);
                meta->ts_ns *= ts_scale;
                if (d.interval_ns) {
                    const uint64_t k = meta->ts_ns / d.interval_ns;
                    if (interval == UINT64_MAX) {
                        broadcast_marker(d, make_interval_marker(k, true));
                        interval = k;
                    } else if (k > interval) {
                        // Frames so far belong to the interval that ends: send them first. A gap
                        // of silent intervals is closed as one span.
                        flush();
                        broadcast_marker(d, make_interval_marker(interval, false));
                        if (k - 1 > interval) broadcast_marker(d, make_interval_marker(k - 1, false));
                        interval = k;
                    }
                }
                unsigned w = meta->outcome == packet::Outcome::tcp ? pick_worker(meta->hash, nw) : (rr++ % nw);
                out[w][nout[w]++] = m;
            }
            flush();
            d.frames_read.fetch_add(n, std::memory_order_relaxed);
        }
        d.undelivered[s] = src.info.frames > got ? src.info.frames - got : 0;
    }
    // The last interval ends with the input.
    if (d.interval_ns && interval != UINT64_MAX) broadcast_marker(d, make_interval_marker(interval, false));
    d.run->input_done.store(true, std::memory_order_release);
    return 0;
}

}  // namespace stateline
