// SPDX-License-Identifier: BSD-3-Clause
#include "sketch.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <new>

namespace stateline::sketch {

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

namespace {

constexpr uint64_t kIpv6Bit = 1ull << 63;

bool has_port(KeyKind kind) noexcept { return kind == KeyKind::victim_endpoint; }

const char* kind_name(KeyKind kind) noexcept {
    switch (kind) {
    case KeyKind::victim_ip: return "victim_ip";
    case KeyKind::victim_endpoint: return "victim_endpoint";
    case KeyKind::source_ip: return "source_ip";
    }
    return "unknown";
}

uint64_t load64(const uint8_t* p) noexcept {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
}

}  // namespace

Target make_target(KeyKind kind, const uint8_t addr[16], uint16_t port) noexcept {
    Target t;
    std::memcpy(t.addr, addr, 16);
    t.port = has_port(kind) ? port : 0;
    t.kind = kind;
    return t;
}

Target victim_ip_target(const flow::FlowKey& key, flow::Side sender) noexcept {
    const unsigned rx = sender == flow::Side::lo ? 1 : 0;
    return make_target(KeyKind::victim_ip, key.addr[rx]);
}

Target victim_endpoint_target(const flow::FlowKey& key, flow::Side sender) noexcept {
    const unsigned rx = sender == flow::Side::lo ? 1 : 0;
    return make_target(KeyKind::victim_endpoint, key.addr[rx], key.port[rx]);
}

Target source_ip_target(const flow::FlowKey& key, flow::Side sender) noexcept {
    const unsigned tx = sender == flow::Side::lo ? 0 : 1;
    return make_target(KeyKind::source_ip, key.addr[tx]);
}

uint64_t target_key(const Target& t) noexcept {
    const uint64_t kind_port = uint64_t{static_cast<uint8_t>(t.kind)} << 16 | t.port;
    if (flow::is_ipv4_mapped(t.addr)) {
        const uint64_t v4 = uint64_t{t.addr[12]} << 24 | uint64_t{t.addr[13]} << 16 |
                            uint64_t{t.addr[14]} << 8 | t.addr[15];
        return kind_port << 32 | v4;
    }
    // Chained bijective mixes of the two address words and (kind, port): distinct inputs collide
    // with probability 2^-63, but nothing here is secret (README.md, "Keys").
    uint64_t h = detail::mix64(load64(t.addr) ^ 0x243f6a8885a308d3ull);
    h = detail::mix64(h ^ load64(t.addr + 8));
    h = detail::mix64(h ^ kind_port ^ 0x13198a2e03707344ull);
    return h | kIpv6Bit;
}

bool decode_ipv4_key(uint64_t key, Target& out) noexcept {
    if (key & kIpv6Bit) return false;
    const uint8_t v4[4] = {static_cast<uint8_t>(key >> 24), static_cast<uint8_t>(key >> 16),
                           static_cast<uint8_t>(key >> 8), static_cast<uint8_t>(key)};
    flow::map_ipv4(out.addr, v4);
    out.port = static_cast<uint16_t>(key >> 32);
    out.kind = static_cast<KeyKind>(static_cast<uint8_t>(key >> 48));
    out.pad_ = 0;
    return true;
}

const char* format_target(const Target& t, char* buf, size_t len) noexcept {
    if (buf == nullptr || len == 0) return "";
    char addr[INET6_ADDRSTRLEN];
    const bool v4 = flow::is_ipv4_mapped(t.addr);
    if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? t.addr + 12 : t.addr, addr, sizeof(addr)) ==
        nullptr) {
        addr[0] = '?';
        addr[1] = '\0';
    }
    if (!has_port(t.kind))
        std::snprintf(buf, len, "%s %s", kind_name(t.kind), addr);
    else if (v4)
        std::snprintf(buf, len, "%s %s:%u", kind_name(t.kind), addr, unsigned{t.port});
    else
        std::snprintf(buf, len, "%s [%s]:%u", kind_name(t.kind), addr, unsigned{t.port});
    return buf;
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

namespace detail {

void* allocate_aligned(size_t bytes) { return ::operator new(bytes, std::align_val_t{64}); }

void free_aligned(void* p) noexcept {
    if (p) ::operator delete(p, std::align_val_t{64});
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Heavy hitters
// ---------------------------------------------------------------------------------------------

namespace {

constexpr size_t round_line(size_t n) noexcept { return (n + 63) & ~size_t{63}; }

// Four index slots per candidate: linear probing at load <= 1/4 averages ~1.2 probes per hit.
uint32_t index_size(uint32_t capacity) noexcept { return std::bit_ceil(std::max(capacity * 4, 16u)); }

}  // namespace

size_t HeavyHitters::memory_size(uint32_t capacity) noexcept {
    return round_line(size_t{capacity} * sizeof(Candidate)) +
           2 * round_line(size_t{capacity} * sizeof(uint16_t)) +
           round_line(size_t{index_size(capacity)} * sizeof(uint16_t));
}

HeavyHitters::HeavyHitters(uint32_t capacity)
    : HeavyHitters(capacity, detail::allocate_aligned(memory_size(capacity))) {
    owned_ = true;
}

HeavyHitters::HeavyHitters(uint32_t capacity, void* mem) noexcept
    : capacity_(capacity), owned_(false) {
    assert(capacity >= 1 && capacity <= kMaxCapacity);
    auto* p = static_cast<uint8_t*>(mem);
    cand_ = reinterpret_cast<Candidate*>(p);
    p += round_line(size_t{capacity} * sizeof(Candidate));
    heap_ = reinterpret_cast<uint16_t*>(p);
    p += round_line(size_t{capacity} * sizeof(uint16_t));
    heap_pos_ = reinterpret_cast<uint16_t*>(p);
    p += round_line(size_t{capacity} * sizeof(uint16_t));
    index_ = reinterpret_cast<uint16_t*>(p);
    const uint32_t isize = index_size(capacity);
    index_mask_ = isize - 1;
    index_shift_ = 64 - std::countr_zero(isize);
    clear();
}

HeavyHitters::~HeavyHitters() {
    if (owned_) detail::free_aligned(cand_);
}

void HeavyHitters::clear() noexcept {
    size_ = 0;
    std::memset(index_, 0, size_t{index_mask_ + 1} * sizeof(uint16_t));
}

// Fibonacci hashing: the top bits of key * 2^64/phi depend on every key bit, so the structured
// IPv4 keys (address in the low 32 bits) spread as well as the hashed IPv6 ones.
uint32_t HeavyHitters::index_home(uint64_t key) const noexcept {
    return static_cast<uint32_t>((key * 0x9e3779b97f4a7c15ull) >> index_shift_);
}

int32_t HeavyHitters::index_find(uint64_t key) const noexcept {
    for (uint32_t i = index_home(key);; i = (i + 1) & index_mask_) {
        const uint16_t e = index_[i];
        if (e == 0) return -1;
        if (cand_[e - 1].key == key) return e - 1;
    }
}

void HeavyHitters::index_insert(uint64_t key, uint16_t slot) noexcept {
    uint32_t i = index_home(key);
    while (index_[i] != 0) i = (i + 1) & index_mask_;
    index_[i] = static_cast<uint16_t>(slot + 1);
}

// Backward-shift deletion (Knuth 6.4, algorithm R): no tombstones, so probe lengths stay those of
// the live keys however many evictions a flood of new keys causes.
void HeavyHitters::index_erase(uint64_t key) noexcept {
    uint32_t i = index_home(key);
    while (cand_[index_[i] - 1].key != key) i = (i + 1) & index_mask_;
    for (uint32_t j = i;;) {
        j = (j + 1) & index_mask_;
        if (index_[j] == 0) break;
        const uint32_t k = index_home(cand_[index_[j] - 1].key);
        // The entry at j may move back to the hole at i unless its home lies cyclically in (i, j].
        const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            index_[i] = index_[j];
            i = j;
        }
    }
    index_[i] = 0;
}

void HeavyHitters::sift_up(uint32_t pos) noexcept {
    const uint16_t slot = heap_[pos];
    while (pos > 0) {
        const uint32_t parent = (pos - 1) / 2;
        if (!less(slot, heap_[parent])) break;
        heap_set(pos, heap_[parent]);
        pos = parent;
    }
    heap_set(pos, slot);
}

void HeavyHitters::sift_down(uint32_t pos) noexcept {
    const uint16_t slot = heap_[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= size_) break;
        if (child + 1 < size_ && less(heap_[child + 1], heap_[child])) ++child;
        if (!less(heap_[child], slot)) break;
        heap_set(pos, heap_[child]);
        pos = child;
    }
    heap_set(pos, slot);
}

void HeavyHitters::rebuild_heap() noexcept {
    for (uint32_t i = 0; i < size_; ++i) heap_set(i, static_cast<uint16_t>(i));
    for (uint32_t i = size_ / 2; i-- > 0;) sift_down(i);
}

void HeavyHitters::offer_slow(uint64_t key, uint32_t count, const Target& target) noexcept {
    const int32_t found = index_find(key);
    if (found >= 0) {
        // Estimates only grow within an interval; merge_from may offer a smaller count.
        if (count > cand_[found].count) {
            cand_[found].count = count;
            sift_down(heap_pos_[found]);
        }
        return;
    }
    if (size_ < capacity_) {
        const auto slot = static_cast<uint16_t>(size_++);
        cand_[slot] = Candidate{key, count, target};
        index_insert(key, slot);
        heap_set(slot, slot);
        sift_up(slot);
        return;
    }
    if (!beats_min(count, key)) return;
    const uint16_t slot = heap_[0];
    index_erase(cand_[slot].key);
    cand_[slot] = Candidate{key, count, target};
    index_insert(key, slot);
    sift_down(0);
}

void HeavyHitters::merge_from(const HeavyHitters& other) noexcept {
    if (&other == this) return;
    for (uint32_t i = 0; i < other.size_; ++i) {
        const Candidate& c = other.cand_[i];
        offer(c.key, c.count, c.target);
    }
}

uint32_t HeavyHitters::count_of(uint64_t key) const noexcept {
    const int32_t s = index_find(key);
    return s < 0 ? 0 : cand_[s].count;
}

uint32_t HeavyHitters::top(Candidate* out, uint32_t n) const noexcept {
    // "a ranks above b": the order of the heap, reversed.
    auto above = [](const Candidate& a, const Candidate& b) {
        return a.count > b.count || (a.count == b.count && a.key > b.key);
    };
    if (n >= size_) {
        std::copy(cand_, cand_ + size_, out);
        std::sort(out, out + size_, above);
        return size_;
    }
    if (n == 0) return 0;
    // Keep the n best in out as a heap whose front is the weakest, then sort them.
    std::copy(cand_, cand_ + n, out);
    std::make_heap(out, out + n, above);
    for (uint32_t i = n; i < size_; ++i) {
        if (above(cand_[i], out[0])) {
            std::pop_heap(out, out + n, above);
            out[n - 1] = cand_[i];
            std::push_heap(out, out + n, above);
        }
    }
    std::sort(out, out + n, above);
    return n;
}

// ---------------------------------------------------------------------------------------------
// Publication
// ---------------------------------------------------------------------------------------------

namespace detail {

PublicationState::PublicationState(uint64_t first_interval) noexcept : header_{} {
    w_.open_first = first_interval;
}

bool PublicationState::writer_publish(uint64_t interval) noexcept {
    const uint64_t seq = w_.seq.load(std::memory_order_relaxed);  // only this thread stores it
    // Acquire: the reader's clear() of the other buffer happens-before our writes into it.
    if (r_.released.load(std::memory_order_acquire) != seq) {
        ++w_.pending_late;
        w_.publish_late.store(w_.publish_late.load(std::memory_order_relaxed) + 1,
                              std::memory_order_relaxed);
        return false;
    }
    header_[w_.active] = Header{w_.open_first, interval, w_.pending_late};
    w_.open_first = interval + 1;
    w_.pending_late = 0;
    w_.active ^= 1u;
    // Release: the buffer's counts and its header happen-before the reader's acquire of seq.
    w_.seq.store(seq + 1, std::memory_order_release);
    return true;
}

int PublicationState::reader_acquire(Publication& out) noexcept {
    const uint64_t seq = w_.seq.load(std::memory_order_acquire);
    // The writer cannot publish seq + 1 before we release seq: seq is released or the next one.
    if (seq == r_.released.load(std::memory_order_relaxed)) return -1;
    const unsigned i = static_cast<unsigned>(seq - 1) & 1u;
    const Header& h = header_[i];
    out = Publication{seq, h.first_interval, h.last_interval, h.late};
    r_.held = seq;
    return static_cast<int>(i);
}

int PublicationState::reader_held() const noexcept {
    return r_.held == 0 ? -1 : static_cast<int>((r_.held - 1) & 1u);
}

void PublicationState::reader_release() noexcept {
    if (r_.held == 0) return;
    r_.released.store(r_.held, std::memory_order_release);
    r_.held = 0;
}

}  // namespace detail

}  // namespace stateline::sketch
