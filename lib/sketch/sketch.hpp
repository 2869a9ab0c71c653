// SPDX-License-Identifier: BSD-3-Clause
// Bounded per-key counting for the flood and scan detectors: a keyed count-min sketch holding M
// counters per key, a heavy-hitter table of candidate keys next to it, and a per-interval double
// buffer through which a worker publishes its partial counts to the control core without locks.
// Memory is fixed at construction (given by the caller or allocated once): an attack that sends
// from millions of sources never grows anything. See README.md for the error bounds and the merge.
//
// Thread safety, in short: CountMinSketch and HeavyHitters are plain single-owner objects (one
// writer, no concurrent reader). IntervalDoubleBuffer is the only cross-thread structure: exactly
// one writer thread and one reader thread, each method saying which one may call it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "flow_key.hpp"

namespace stateline::sketch {

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

// What a key counts for. Part of the key, so the victim key and the source key of one address
// differ and one sketch may hold several kinds.
enum class KeyKind : uint8_t {
    victim_ip = 1,        // destination address
    victim_endpoint = 2,  // destination address and port (a service)
    source_ip = 3,        // source address
};

// The thing a key names: what an alert reports. Heavy-hitter candidates carry it, so the
// control core can name a victim from its key (IPv6 keys are hashes and cannot be decoded).
struct Target {
    uint8_t addr[16];  // network byte order, IPv4 stored IPv4-mapped as in flow::FlowKey
    uint16_t port;     // host byte order; 0 unless kind == victim_endpoint
    KeyKind kind;
    uint8_t pad_ = 0;
};
static_assert(sizeof(Target) == 20);

// Builds the target of a kind from a 16-byte address (IPv4-mapped for IPv4) and a port. The port
// is dropped for the address-only kinds, so callers may always pass the packet's port.
Target make_target(KeyKind kind, const uint8_t addr[16], uint16_t port = 0) noexcept;

// From a packet's canonical flow key and the side that sent it: the receiver is the victim, the
// sender the source.
Target victim_ip_target(const flow::FlowKey& key, flow::Side sender) noexcept;
Target victim_endpoint_target(const flow::FlowKey& key, flow::Side sender) noexcept;
Target source_ip_target(const flow::FlowKey& key, flow::Side sender) noexcept;

// 64-bit key of a target. IPv4 keys are an exact encoding (bit 63 clear: kind << 48 | port << 32
// | address), so two IPv4 targets never share a key and the key decodes back to its target.
// IPv6 keys are a 64-bit hash of (kind, port, address) with bit 63 set, so they never meet an
// IPv4 key. Unseeded and stable: the same target has the same key in every worker and every run;
// the per-run randomness is in the sketch's row hashing (SketchGeometry::seed).
uint64_t target_key(const Target& t) noexcept;

// Shorthands for the three kinds.
inline uint64_t victim_ip_key(const uint8_t addr[16]) noexcept {
    return target_key(make_target(KeyKind::victim_ip, addr));
}
inline uint64_t victim_endpoint_key(const uint8_t addr[16], uint16_t port) noexcept {
    return target_key(make_target(KeyKind::victim_endpoint, addr, port));
}
inline uint64_t source_ip_key(const uint8_t addr[16]) noexcept {
    return target_key(make_target(KeyKind::source_ip, addr));
}

// Recovers the target of an IPv4 key; false for an IPv6 (hashed) key.
bool decode_ipv4_key(uint64_t key, Target& out) noexcept;

// "kind addr[:port]" for logs and tests, e.g. "victim_endpoint 10.0.0.1:80". buf of 80 bytes.
const char* format_target(const Target& t, char* buf, size_t len) noexcept;

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

namespace detail {
// 64-byte aligned block from operator new, or nullptr-safe free. Only ever called from
// constructors and destructors, never per packet.
void* allocate_aligned(size_t bytes);
void free_aligned(void* p) noexcept;

// splitmix64's finalizer: a bijection on 64 bits whose every output bit depends on every input bit.
constexpr uint64_t mix64(uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Adds without wrapping: a saturated counter reads 2^32-1, the most it can show, where a wrapped
// one would read a small number and under-count. Not reached in a 1 s interval (2^32 packets is
// 29 s of a 100G port at 148.8 Mpps), but late publications and merges add intervals up.
constexpr uint32_t add_saturating(uint32_t a, uint32_t b) noexcept {
    const uint32_t room = ~a;
    return a + (b < room ? b : room);
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Count-min sketch, M counters per key
// ---------------------------------------------------------------------------------------------

// Geometry of a sketch. Sketches merge only when width and seed are equal, so the control core
// picks one geometry (and one seed per run) for every worker.
struct SketchGeometry {
    // Cells per row, a power of two in [kMinWidth, kMaxWidth]. 2^14 cells: epsilon = e / 2^14 =
    // 1.66e-4 of the interval's total, and 1 MiB per sketch at M = 4 (see README.md).
    uint32_t width = 1u << 14;
    // Row hashing seed. Random per run in the appliance (an attacker who cannot see it cannot
    // aim collisions at a victim), fixed in tests for reproducible runs.
    uint64_t seed = 0x5eed5eed5eed5eedull;

    static constexpr uint32_t kMinWidth = 64;
    static constexpr uint32_t kMaxWidth = 1u << 28;
    bool valid() const noexcept {
        return width >= kMinWidth && width <= kMaxWidth && std::has_single_bit(width);
    }
};

// Count-min sketch over 64-bit keys, d = 4 rows, each cell holding M uint32 counters (metrics,
// e.g. SYN, stray ACK, stray RST, FIN for one victim). A cell is padded to a power of two of
// counters and cells are 64-byte aligned in their row, so one update touches exactly one cache
// line per row: four lines, all worker-local.
//
// Estimates never under-count (until a counter saturates at 2^32-1); each over-counts by at most
// epsilon * total(metric), epsilon = e / width, with probability at least 1 - e^-4 (98.2%).
// merge_from is a cellwise add, so merging the sketches of several workers gives exactly the
// sketch that one worker would have built from all their packets (same geometry required).
//
// Thread safety: none. One owner writes and reads it; a worker hands it to the control core only
// through IntervalDoubleBuffer. Not copyable or movable (an owned block or a caller's block).
template <unsigned M>
class CountMinSketch {
    static_assert(M >= 1 && M <= 16, "1 to 16 metrics per key (one cell within a cache line)");

public:
    static constexpr unsigned kDepth = 4;
    static constexpr unsigned kMetrics = M;
    // Counters per cell, padded so that cells tile cache lines: one line per row per update.
    static constexpr unsigned kCellWords = std::bit_ceil(M);

    // Bytes of cell memory for a width (the object itself adds ~100 bytes).
    static constexpr size_t memory_size(uint32_t width) noexcept {
        return size_t{kDepth} * width * kCellWords * sizeof(uint32_t);
    }

    // Allocates memory_size(g.width) bytes, 64-byte aligned, once. g must be valid().
    explicit CountMinSketch(const SketchGeometry& g)
        : CountMinSketch(g, detail::allocate_aligned(memory_size(g.width)), true) {}

    // mem: memory_size(g.width) bytes, 64-byte aligned (hugepages on the worker's socket in the
    // appliance), owned by the caller and alive as long as the sketch. Need not be zeroed.
    CountMinSketch(const SketchGeometry& g, void* mem) noexcept : CountMinSketch(g, mem, false) {}

    ~CountMinSketch() {
        if (owned_) detail::free_aligned(cells_);
    }
    CountMinSketch(const CountMinSketch&) = delete;
    CountMinSketch& operator=(const CountMinSketch&) = delete;

    // The four cells (row-major index, row r in [r * width, (r + 1) * width)) of a key. Computed
    // once per key: a burst loop can locate and prefetch all keys first, then add.
    struct Slots {
        uint32_t cell[kDepth];
    };
    Slots slots(uint64_t key) const noexcept {
        // Two seeded mixes of the key give 128 well-mixed bits, 32 per row.
        const uint64_t a = detail::mix64(key ^ seed_);
        const uint64_t b = detail::mix64(key ^ seed2_);
        Slots s;
        s.cell[0] = static_cast<uint32_t>(a) & mask_;
        s.cell[1] = width_ + (static_cast<uint32_t>(a >> 32) & mask_);
        s.cell[2] = 2 * width_ + (static_cast<uint32_t>(b) & mask_);
        s.cell[3] = 3 * width_ + (static_cast<uint32_t>(b >> 32) & mask_);
        return s;
    }

    void prefetch(const Slots& s) const noexcept {
        for (unsigned r = 0; r < kDepth; ++r) __builtin_prefetch(cell(s.cell[r]), 1, 3);
    }

    // Adds n to a metric of the key; returns the key's new estimate of that metric (the min over
    // rows, free here since the cells are loaded anyway), to offer to a HeavyHitters table.
    uint32_t add(const Slots& s, unsigned metric, uint32_t n = 1) noexcept {
        uint32_t est = UINT32_MAX;
        for (unsigned r = 0; r < kDepth; ++r) {
            uint32_t& c = cell(s.cell[r])[metric];
            c = detail::add_saturating(c, n);
            est = c < est ? c : est;
        }
        totals_[metric] += n;
        return est;
    }
    uint32_t add(uint64_t key, unsigned metric, uint32_t n = 1) noexcept {
        return add(slots(key), metric, n);
    }

    // Count of a metric for a key: >= the true count; <= true + epsilon * total(metric) w.h.p.
    uint32_t estimate(const Slots& s, unsigned metric) const noexcept {
        uint32_t est = UINT32_MAX;
        for (unsigned r = 0; r < kDepth; ++r) est = std::min(est, cell(s.cell[r])[metric]);
        return est;
    }
    uint32_t estimate(uint64_t key, unsigned metric) const noexcept {
        return estimate(slots(key), metric);
    }

    // All M metrics of a key at once (each its own min over rows): one pass over four lines,
    // for detectors comparing metrics of one key (SYNs against SYN-ACKs).
    void estimate_all(uint64_t key, uint32_t out[M]) const noexcept {
        const Slots s = slots(key);
        for (unsigned m = 0; m < M; ++m) out[m] = UINT32_MAX;
        for (unsigned r = 0; r < kDepth; ++r) {
            const uint32_t* c = cell(s.cell[r]);
            for (unsigned m = 0; m < M; ++m) out[m] = std::min(out[m], c[m]);
        }
    }

    // Sum of every n added to a metric (N in the error bound epsilon * N); not saturated.
    uint64_t total(unsigned metric) const noexcept { return totals_[metric]; }

    // Cellwise add of another sketch (a worker's partial, on the control core). Returns false
    // and changes nothing when the geometries differ.
    bool merge_from(const CountMinSketch& other) noexcept {
        if (!same_geometry(other)) return false;
        // A fixed 16-word (one line) inner loop: GCC's -O2 cost model vectorizes only loops that
        // need no scalar epilogue; words() is always a multiple of 16 (width >= 64).
        const size_t n = words();
        uint32_t* __restrict dst = cells_;
        const uint32_t* __restrict src = other.cells_;
        for (size_t i = 0; i < n; i += 16)
            for (size_t j = i; j < i + 16; ++j) dst[j] = std::min(src[j], ~dst[j]) + dst[j];
        for (unsigned m = 0; m < M; ++m) totals_[m] += other.totals_[m];
        return true;
    }

    void clear() noexcept {
        std::memset(cells_, 0, memory_size(width_));
        for (auto& t : totals_) t = 0;
    }

    bool same_geometry(const CountMinSketch& o) const noexcept {
        return width_ == o.width_ && seed_ == o.seed_;
    }
    // Same geometry, same cells, same totals: what merging must reproduce exactly.
    bool operator==(const CountMinSketch& o) const noexcept {
        return same_geometry(o) && std::memcmp(cells_, o.cells_, memory_size(width_)) == 0 &&
               std::equal(totals_, totals_ + M, o.totals_);
    }

    uint32_t width() const noexcept { return width_; }
    uint64_t seed() const noexcept { return seed_; }
    size_t memory_size() const noexcept { return memory_size(width_); }
    // e / width: the over-count bound as a fraction of total(metric).
    double epsilon() const noexcept { return 2.718281828459045 / width_; }

private:
    CountMinSketch(const SketchGeometry& g, void* mem, bool owned) noexcept
        : cells_(static_cast<uint32_t*>(mem)),
          width_(g.width),
          mask_(g.width - 1),
          owned_(owned),
          seed_(g.seed),
          seed2_(detail::mix64(g.seed + 0x9e3779b97f4a7c15ull)) {
        assert(g.valid());
        clear();
    }

    uint32_t* cell(uint32_t i) noexcept { return cells_ + size_t{i} * kCellWords; }
    const uint32_t* cell(uint32_t i) const noexcept { return cells_ + size_t{i} * kCellWords; }
    size_t words() const noexcept { return size_t{kDepth} * width_ * kCellWords; }

    uint32_t* cells_;
    uint32_t width_;
    uint32_t mask_;
    bool owned_;
    uint64_t seed_;
    uint64_t seed2_;
    uint64_t totals_[M];
};

// ---------------------------------------------------------------------------------------------
// Heavy hitters
// ---------------------------------------------------------------------------------------------

// One candidate: a key, its count for the ranking metric (a sketch estimate) and its target.
struct Candidate {
    uint64_t key;
    uint32_t count;
    Target target;
};
static_assert(sizeof(Candidate) == 32, "two candidates per cache line");

// Heavy-hitter table next to a sketch ("count-min with a heap", Cormode and Muthukrishnan 2005):
// the `capacity` keys with the largest estimates of one ranking metric. The worker offers each
// update's new estimate, as returned by CountMinSketch::add. Ranking is by (count, key), so ties
// break the same way on every run and for any number of workers.
//
// Per offer: one compare with the smallest candidate when the table is full and the key does not
// beat it (the common case: a key already in the table always beats it, because its estimate
// only grows); otherwise one probe of an open-addressed index (4 slots per candidate) and a sift
// in a binary min-heap, O(log capacity). Never a scan of the candidates.
//
// Guarantee (README.md): with the sketch's bound holding, every key whose true count exceeds
// total / capacity + epsilon * total is a candidate.
//
// Merge on the control core (the sketch must be merged first, or at least by the end):
//   merged_top.clear();  // capacity >= the sum of the workers' capacities: an exact union
//   for each worker w: merged_sketch.merge_from(sketch[w]); merged_top.merge_from(top[w]);
//   merged_top.reestimate(merged_sketch, metric);
//   merged_top.top(out, k);
// merge_from takes the union of the candidates (their worker-local counts only provisional);
// reestimate then replaces every count with the merged sketch's estimate. Every key above the
// guarantee's threshold overall is above it in at least one worker, so it is in the union; and
// the final counts and order depend only on the merged sketch, not on how RSS split the packets.
//
// Thread safety: none, one owner (as CountMinSketch). Not copyable or movable.
class HeavyHitters {
public:
    static constexpr uint32_t kMaxCapacity = 16384;

    static size_t memory_size(uint32_t capacity) noexcept;

    // capacity in [1, kMaxCapacity]; allocates memory_size(capacity) bytes once.
    explicit HeavyHitters(uint32_t capacity);
    // mem: memory_size(capacity) bytes, 64-byte aligned, owned by the caller. Need not be zeroed.
    HeavyHitters(uint32_t capacity, void* mem) noexcept;
    ~HeavyHitters();
    HeavyHitters(const HeavyHitters&) = delete;
    HeavyHitters& operator=(const HeavyHitters&) = delete;

    // Per update of the ranking metric: `count` is the key's new estimate.
    void offer(uint64_t key, uint32_t count, const Target& target) noexcept {
        if (size_ == capacity_ && !beats_min(count, key)) return;
        offer_slow(key, count, target);
    }

    // Union with another table's candidates (see the merge above). A key present in both keeps
    // the larger count; when full, the smaller candidates by (count, key) give way.
    void merge_from(const HeavyHitters& other) noexcept;

    // Replaces every count with the sketch's estimate of `metric`, then restores the heap.
    template <unsigned M>
    void reestimate(const CountMinSketch<M>& sketch, unsigned metric) noexcept {
        for (uint32_t i = 0; i < size_; ++i)
            cand_[i].count = sketch.estimate(cand_[i].key, metric);
        rebuild_heap();
    }

    // Copies the n largest candidates, by count descending then key descending, into out.
    // Returns how many were written (min(n, size())). Control core; sorts a copy of the table in
    // out (n >= size() is cheapest: no partial selection).
    uint32_t top(Candidate* out, uint32_t n) const noexcept;

    // Candidate i in table order (no ranking), i < size(); the count for key or 0 if absent.
    const Candidate& candidate(uint32_t i) const noexcept { return cand_[i]; }
    uint32_t count_of(uint64_t key) const noexcept;
    // The smallest tracked count (0 while the table is not full): a new key must beat it.
    uint32_t admission_floor() const noexcept {
        return size_ == capacity_ ? cand_[heap_[0]].count : 0;
    }

    uint32_t size() const noexcept { return size_; }
    uint32_t capacity() const noexcept { return capacity_; }
    void clear() noexcept;

private:
    bool beats_min(uint32_t count, uint64_t key) const noexcept {
        const Candidate& m = cand_[heap_[0]];
        return count > m.count || (count == m.count && key > m.key);
    }
    bool less(uint16_t a, uint16_t b) const noexcept {
        const Candidate& x = cand_[a];
        const Candidate& y = cand_[b];
        return x.count < y.count || (x.count == y.count && x.key < y.key);
    }
    void offer_slow(uint64_t key, uint32_t count, const Target& target) noexcept;
    uint32_t index_home(uint64_t key) const noexcept;
    int32_t index_find(uint64_t key) const noexcept;  // candidate slot, -1 when absent
    void index_insert(uint64_t key, uint16_t slot) noexcept;
    void index_erase(uint64_t key) noexcept;
    void sift_up(uint32_t pos) noexcept;
    void sift_down(uint32_t pos) noexcept;
    void heap_set(uint32_t pos, uint16_t slot) noexcept {
        heap_[pos] = slot;
        heap_pos_[slot] = static_cast<uint16_t>(pos);
    }
    void rebuild_heap() noexcept;

    Candidate* cand_;     // capacity entries
    uint16_t* heap_;      // capacity candidate slots, a min-heap by (count, key)
    uint16_t* heap_pos_;  // per candidate slot: its position in heap_
    uint16_t* index_;     // index_size entries: candidate slot + 1, 0 = empty (linear probing)
    uint32_t capacity_;
    uint32_t size_ = 0;
    uint32_t index_mask_;
    int index_shift_;
    bool owned_;
};

// ---------------------------------------------------------------------------------------------
// Per-interval publication
// ---------------------------------------------------------------------------------------------

// What the reader learns with a publication.
struct Publication {
    uint64_t seq;             // 1, 2, 3, ...: one per successful publish
    uint64_t first_interval;  // the buffer holds the counts of intervals [first, last]
    uint64_t last_interval;   // last - first + 1 > 1 when earlier boundaries were late
    uint64_t late;            // publish calls refused while these counts accumulated
};

namespace detail {
// The protocol of IntervalDoubleBuffer without the buffers (sketch.cpp). Buffer of publication s
// is (s - 1) & 1; the writer writes into the other one.
class PublicationState {
public:
    explicit PublicationState(uint64_t first_interval) noexcept;

    // Writer.
    unsigned writer_index() const noexcept { return w_.active; }
    bool writer_publish(uint64_t interval) noexcept;
    // Writer: would writer_publish succeed now? (acquire: as writer_publish)
    bool writer_ready() const noexcept {
        return r_.released.load(std::memory_order_acquire) == w_.seq.load(std::memory_order_relaxed);
    }
    // Writer, before its first publish: the active buffer's counts start at `first`.
    void writer_start_at(uint64_t first) noexcept { w_.open_first = first; }
    uint64_t publish_late() const noexcept {
        return w_.publish_late.load(std::memory_order_relaxed);
    }
    uint64_t published() const noexcept { return w_.seq.load(std::memory_order_relaxed); }

    // Reader. reader_acquire returns the buffer index or -1.
    int reader_acquire(Publication& out) noexcept;
    int reader_held() const noexcept;  // buffer index acquired and not released, or -1
    void reader_release() noexcept;

private:
    struct Header {
        uint64_t first_interval;
        uint64_t last_interval;
        uint64_t late;
    };
    // Written by the writer, read by the reader after the acquire load of seq. Each header is
    // written only while its buffer belongs to the writer.
    Header header_[2];

    // Writer-owned line: `seq` is the release store of each publication.
    struct alignas(64) WriterSide {
        std::atomic<uint64_t> seq{0};  // last publication, release-stored
        unsigned active = 0;           // buffer being written
        uint64_t open_first;           // first interval in the active buffer
        uint64_t pending_late = 0;     // refused publishes folded into the active buffer
        std::atomic<uint64_t> publish_late{0};  // total refused publishes (relaxed: telemetry)
    } w_;

    // Reader-owned line: `released` hands the reader's buffer back.
    struct alignas(64) ReaderSide {
        std::atomic<uint64_t> released{0};  // last publication released (release-stored)
        uint64_t held = 0;                  // publication acquired, not released (0: none)
    } r_;
};
}  // namespace detail

// Lock-free hand-over of one worker's per-interval partial counts (T: a sketch, its heavy
// hitters, ... with a clear() method) from that worker (the writer) to the control core (the
// reader). Two T's: the writer adds into the active one; the reader holds at most the other.
//
// Protocol:
//   writer, per packet:        active().add(...)
//   writer, interval boundary: publish(interval) -- interval = number of the interval that ended
//     * If the reader has released the previous publication (acquire load of `released`), the
//       writer stamps the active buffer with [first, last] intervals, release-stores seq + 1 and
//       switches to the other buffer, which the reader cleared before releasing it.
//     * Otherwise it counts publish_late, keeps adding into the same buffer and returns false:
//       nothing blocks, nothing is lost; the next successful publication carries these intervals
//       too, and its [first_interval, last_interval] span says so.
//   reader, every interval:    if (const T* p = try_acquire(info)) { merge(*p); release(); }
//     * try_acquire: acquire load of seq; returns the newest unreleased publication, or nullptr.
//       The writer publishes nothing new until it is released, so none is ever skipped.
//     * release: runs T::clear() on the buffer (on the reader's thread: the worker never pays for
//       clearing a sketch), then release-stores `released` = seq.
// Every count the writer adds lands in exactly one publication (or, after the writer stops, in
// active(), which the reader may then read: a thread join or lcore wait orders it).
//
// Thread safety: exactly one writer thread and one reader thread; methods say which. Not movable.
template <class T>
class IntervalDoubleBuffer {
public:
    // Both buffers are constructed from the same arguments; first_interval numbers the first.
    template <class... Args>
    explicit IntervalDoubleBuffer(uint64_t first_interval, const Args&... args)
        : state_(first_interval), buf_{Slot{T(args...)}, Slot{T(args...)}} {}
    IntervalDoubleBuffer(const IntervalDoubleBuffer&) = delete;
    IntervalDoubleBuffer& operator=(const IntervalDoubleBuffer&) = delete;

    // Writer: the buffer to add into (changes only in publish).
    T& active() noexcept { return buf_[state_.writer_index()].t; }
    // Writer: closes every interval up to and including `interval`. true when published; false
    // when the reader still holds the previous publication (publish_late counted).
    bool publish(uint64_t interval) noexcept { return state_.writer_publish(interval); }
    // Writer: true when publish would succeed now. A replay, which must not fold intervals
    // together, waits for it; a live worker never does.
    bool ready() const noexcept { return state_.writer_ready(); }
    // Writer, before the first publish: the first interval is known only from the first packet.
    void start_at(uint64_t first_interval) noexcept { state_.writer_start_at(first_interval); }

    // Reader: the newest publication not yet released, or nullptr. Calling it again before
    // release returns the same one.
    const T* try_acquire(Publication& info) noexcept {
        const int i = state_.reader_acquire(info);
        return i < 0 ? nullptr : &buf_[i].t;
    }
    // Reader: clears the acquired buffer and hands it back to the writer. No-op if none held.
    void release() noexcept {
        const int i = state_.reader_held();
        if (i < 0) return;
        buf_[i].t.clear();
        state_.reader_release();
    }

    // Any thread (relaxed reads of writer-owned counters): refused and successful publishes.
    uint64_t publish_late() const noexcept { return state_.publish_late(); }
    uint64_t published() const noexcept { return state_.published(); }

private:
    // Each buffer on its own cache lines, away from the protocol's lines.
    struct alignas(64) Slot {
        T t;
    };
    detail::PublicationState state_;
    Slot buf_[2];
};

}  // namespace stateline::sketch
