// SPDX-License-Identifier: BSD-3-Clause
// The worker's half of detection: per-packet counter updates in worker-local sketches, published
// once per interval without locks (lib/sketch). The control core's half, which merges the
// workers' partial counts, judges them against the thresholds and runs the alert lifecycle, is
// aggregator.hpp. See README.md for the design.
//
// What a worker counts comes from the TCP tracker as tcp::signal bits (a SYN that opened a
// connection, an ACK for no connection, ...): the detector never looks at a connection itself.
// Only segments with signals cost anything; the packets of established connections cost one test.
//
// Thread safety: a WorkerDetector belongs to one worker (the writer of its sketches). The control
// core reads it only through the IntervalDoubleBuffer protocol, the half-open gauge (relaxed
// atomic loads of counters only the worker writes) and after the worker has stopped.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "conn_record.hpp"
#include "flow_key.hpp"
#include "packet_meta.hpp"
#include "sketch.hpp"
#include "tcp_tracker.hpp"

namespace stateline::detect {

// Per victim key (an address, or an address and port), one count-min cell of these.
enum VictimMetric : unsigned {
    v_syn,             // SYNs received
    v_syn_open,        // ... that opened a connection
    v_synack,          // SYN-ACKs sent in answer (the victim as a server)
    v_handshake,       // handshakes completed with it as the server
    v_syn_unverified,  // SYNs from sources never seen completing a handshake (recently)
    v_stray_synack,    // SYN-ACKs received answering no SYN seen (reflection)
    v_stray_ack,       // ACKs received for no connection
    v_stray_rst,       // RSTs received for no connection, or out of window
    v_stray_fin,       // FIN-ACKs received for no connection, or out of window
    v_rst_injection,   // connections whose RST sender kept sending (forged RST)
    v_closed,          // connections with a completed handshake torn down (per host: the server)
    v_abnormal,        // ... abnormally (see kAbnormalTeardown), counted when it happens
    v_suspicious,      // any of the above but v_synack, v_handshake, v_closed: the ranking
    kVictimMetrics
};
// Per source address.
enum SourceMetric : unsigned {
    s_probes,     // SYNs and stealth probes that opened a connection
    s_targets,    // ... to an address:port new for this source in the interval
    s_sports,     // ... from a source port new for this source in the interval
    s_stealth,    // FIN, NULL, XMAS probes (no ACK) for no connection
    s_handshake,  // handshakes it completed as the client
    s_refused,    // its SYNs answered by RST
    s_answered,   // its SYNs answered by SYN-ACK
    kSourceMetrics
};

// Anomaly bits that make the teardown of an established connection abnormal (per host).
inline constexpr uint32_t kAbnormalTeardown = tcp::anomaly::kAbnormalTeardown;

using VictimSketch = sketch::CountMinSketch<16>;
using SourceSketch = sketch::CountMinSketch<8>;
static_assert(kVictimMetrics <= 16 && kSourceMetrics <= 8);

// One suspicious segment, kept by reservoir sampling: the evidence of who sent what to whom.
struct Sample {
    uint8_t src[16];
    uint8_t dst[16];
    uint16_t sport, dport;
    uint16_t signals;
    uint8_t tcp_flags;
    uint8_t pad_ = 0;
};
static_assert(sizeof(Sample) == 40);

inline constexpr unsigned kSamples = 256;
inline constexpr unsigned kDistinctBits = 1u << 18;  // per-interval "seen" filter, 32 KiB
inline constexpr unsigned kVerifiedBits = 1u << 22;  // completed-handshake sources, 512 KiB

// Folds a 16-byte address to 64 bits (IPv4-mapped addresses differ in the low word only).
inline uint64_t addr_word(const uint8_t a[16]) noexcept {
    uint64_t lo, hi;
    std::memcpy(&hi, a, 8);
    std::memcpy(&lo, a + 8, 8);
    return lo ^ (hi * 0x9E3779B97F4A7C15ull);
}

// A bitmap with one hash: test-and-set for "new in this interval", test for "seen".
struct BitFilter {
    uint64_t* words = nullptr;
    uint32_t mask = 0;  // bits - 1
    static uint32_t bit_of(uint64_t h, uint32_t mask) noexcept {
        return static_cast<uint32_t>(sketch::detail::mix64(h) >> 20) & mask;
    }
    bool test_and_set(uint64_t h) noexcept {
        const uint32_t b = bit_of(h, mask);
        uint64_t& w = words[b >> 6];
        const uint64_t m = 1ull << (b & 63);
        const bool was = (w & m) != 0;
        w |= m;
        return !was;
    }
};

// A worker's counts for one interval (or several, when a publication was late).
struct Partial {
    Partial(const sketch::SketchGeometry& g, uint32_t top, size_t counter_count = 0);
    ~Partial();
    Partial(const Partial&) = delete;
    Partial& operator=(const Partial&) = delete;
    void clear() noexcept;  // by the reader, on release

    VictimSketch victim;
    sketch::HeavyHitters victim_top;  // ranked by v_suspicious
    SourceSketch source;
    sketch::HeavyHitters source_top;  // ranked by s_probes
    BitFilter distinct;               // (source, address, port) and (source, port) seen
    uint64_t* verified;               // sources that completed a handshake, kVerifiedBits
    Sample samples[kSamples];
    uint64_t sampled = 0;             // suspicious segments offered to the reservoir
    // The worker's half-open gauges as they stood at the interval's end (HalfOpenGauge::cells,
    // copied at publish): the control core judges the interval, not whatever came after it.
    uint32_t* half_open;
    size_t half_open_words;
    // The worker's counters (counters::descriptors() order) at the interval's end, when its owner
    // hands them in: a replay's aggregates per interval of capture time come from these.
    std::vector<uint64_t> counters;
};

// Sources seen completing a handshake in recent history, for everyone: workers read it per SYN,
// the control core ORs the workers' new sources in every interval and ages it in two
// generations (a source is remembered for one to two ages). Reads and writes are relaxed
// atomics on whole words; a read racing the ageing may miss a source for one interval.
class VerifiedSources {
public:
    VerifiedSources();
    ~VerifiedSources();
    VerifiedSources(const VerifiedSources&) = delete;
    VerifiedSources& operator=(const VerifiedSources&) = delete;

    bool contains(const uint8_t addr[16]) const noexcept {
        const uint32_t b = BitFilter::bit_of(addr_word(addr), kVerifiedBits - 1);
        const uint64_t m = 1ull << (b & 63);
        const uint64_t* w = words_ + 2 * (b >> 6);
        return ((load(w[0]) | load(w[1])) & m) != 0;
    }
    void prefetch(const uint8_t addr[16]) const noexcept {
        const uint32_t b = BitFilter::bit_of(addr_word(addr), kVerifiedBits - 1);
        __builtin_prefetch(words_ + 2 * (b >> 6));
    }
    // Control core.
    void merge(const uint64_t* bits) noexcept;  // OR into the current generation
    void age() noexcept;                        // forget the older generation
    uint64_t count_bits() const noexcept;       // set bits (diagnostics)

private:
    static uint64_t load(const uint64_t& w) noexcept {
        return std::atomic_ref<const uint64_t>(w).load(std::memory_order_relaxed);
    }
    // The two generations' words side by side ([2i] and [2i + 1]): a lookup reads one line.
    uint64_t* words_;
    unsigned current_ = 0;
};

// Half-open connections per victim key, up and down: a count-min of gauges that the worker never
// clears (a connection opened in one interval resolves in another). Every key's true value is >= 0
// in each worker (it opens and resolves its own connections), so cellwise sums over workers and
// the minimum over rows still bound it from above. Wrapping arithmetic, read as signed. Same
// width and row hashing as the victim sketch: one Slots serves both. Worker-owned; the control
// core sees copies (Partial::half_open).
class HalfOpenGauge {
public:
    explicit HalfOpenGauge(uint32_t width);
    ~HalfOpenGauge();
    HalfOpenGauge(const HalfOpenGauge&) = delete;
    HalfOpenGauge& operator=(const HalfOpenGauge&) = delete;

    void add(const VictimSketch::Slots& s, int32_t d) noexcept {
        for (unsigned r = 0; r < VictimSketch::kDepth; ++r) cells_[s.cell[r]] += static_cast<uint32_t>(d);
    }
    static int64_t read(const uint32_t* cells, const VictimSketch::Slots& s) noexcept {
        int64_t best = INT64_MAX;
        for (unsigned r = 0; r < VictimSketch::kDepth; ++r) {
            const int32_t v = static_cast<int32_t>(cells[s.cell[r]]);
            if (v < best) best = v;
        }
        return best < 0 ? 0 : best;
    }
    static size_t words(uint32_t width) noexcept { return size_t{VictimSketch::kDepth} * width; }
    void prefetch(const VictimSketch::Slots& s) const noexcept {
        for (unsigned r = 0; r < VictimSketch::kDepth; ++r) __builtin_prefetch(cells_ + s.cell[r]);
    }
    const uint32_t* cells() const noexcept { return cells_; }

private:
    uint32_t* cells_;  // one per cell of the victim sketch (Slots are cell numbers)
};

class WorkerDetector {
public:
    // counter_count: how many counters publish() may hand over with each interval (0: none).
    WorkerDetector(const sketch::SketchGeometry& g, uint32_t top, const VerifiedSources* verified,
                   uint64_t first_interval, uint64_t rng_seed, size_t counter_count = 0);

    // A tracked segment and what the tracker made of it. `responder`: the side of the key that
    // answered the connection's first SYN (for half-open accounting).
    void on_segment(const packet::PacketMeta& m, uint16_t signals, flow::Side responder) noexcept {
        if (signals == 0) return;
        segment(m, signals, responder);
    }
    // Before the burst is tracked: start the cache misses a SYN will take (its verified-source
    // word, its source's and victim's sketch cells), so they overlap across the burst. A flood
    // of spoofed SYNs otherwise stalls on each one in turn.
    void prefetch(const packet::PacketMeta& m) noexcept;
    // A connection left the table (not at the final flush).
    void on_close(const connlog::ConnRecord& r) noexcept;

    // Interval boundary: false when the control core still holds the last publication (the
    // counts carry on into the next one).
    // `counters`, if given: counter_count values to hand over with the interval.
    bool publish(uint64_t interval, const uint64_t* counters = nullptr) noexcept {
        Partial& p = buf_.active();
        std::memcpy(p.half_open, half_open_.cells(), p.half_open_words * sizeof(uint32_t));
        if (counters && !p.counters.empty())
            std::memcpy(p.counters.data(), counters, p.counters.size() * sizeof(uint64_t));
        return buf_.publish(interval);
    }


    sketch::IntervalDoubleBuffer<Partial>& buffer() noexcept { return buf_; }
    // The live gauges: only once the worker has stopped (its own thread otherwise).
    const HalfOpenGauge& half_open() const noexcept { return half_open_; }

private:
    void segment(const packet::PacketMeta& m, uint16_t signals, flow::Side responder) noexcept;
    void sample(Partial& p, const uint8_t* src, const uint8_t* dst, uint16_t sport, uint16_t dport,
                uint16_t signals, uint8_t flags) noexcept;

    sketch::IntervalDoubleBuffer<Partial> buf_;
    HalfOpenGauge half_open_;
    const VerifiedSources* verified_;
    uint64_t rng_;
};

}  // namespace stateline::detect
