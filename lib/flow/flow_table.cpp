// SPDX-License-Identifier: BSD-3-Clause
// Flow table: two-choice 8-slot buckets over a preallocated entry pool (see README.md).
//
// Nothing here allocates, throws or logs: every path runs per packet on a worker lcore.
#include "flow_table.hpp"

#include <bit>
#include <cassert>
#include <cstring>
#include <new>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace stateline::flow {

namespace {

constexpr size_t kLine = 64;
constexpr size_t align_line(size_t n) noexcept { return (n + kLine - 1) & ~(kLine - 1); }

constexpr unsigned kSlots = 8;
constexpr uint32_t kLoadDivisor = 6;  // entries per bucket at capacity: 6 of 8 slots, load 0.75

// Odd, so the multiply is a bijection of the rotated hash: the secondary bucket takes its high
// bits from every hash bit, including the low ones fastrange ignores for the primary.
constexpr uint32_t kSecondaryMul = 0x9e3779b1u;

// Bit i set when sigs[i] == want. Empty slots hold signature 0, which no key ever gets, so
// match8(sigs, 0) is the free-slot mask and a signature match always names a live entry.
inline unsigned match8(const uint16_t* sigs, uint16_t want) noexcept {
#if defined(__SSE2__)
    const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(sigs));
    const __m128i eq = _mm_cmpeq_epi16(v, _mm_set1_epi16(static_cast<short>(want)));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128())));
#else
    unsigned m = 0;
    for (unsigned i = 0; i < kSlots; ++i) m |= static_cast<unsigned>(sigs[i] == want) << i;
    return m;
#endif
}

// Five 8-byte compares ORed together: no call, no early exit on the (rare) mismatch.
inline bool same_key(const FlowKey& a, const FlowKey& b) noexcept {
    uint64_t x[5], y[5];
    std::memcpy(x, &a, sizeof x);
    std::memcpy(y, &b, sizeof y);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

// A free entry's key is dead, so its first word carries the free-list link: no side array.
inline uint32_t next_free(const FlowEntry& e) noexcept {
    uint32_t n;
    std::memcpy(&n, e.key.addr[0], sizeof n);
    return n;
}
inline void set_next_free(FlowEntry& e, uint32_t n) noexcept {
    std::memcpy(e.key.addr[0], &n, sizeof n);
}

inline void prefetch(const void* p) noexcept { __builtin_prefetch(p, 0, 3); }

}  // namespace

const NamedHelp kRemoveReasonInfo[kRemoveReasonCount] = {
#define STATELINE_X(name, help) {#name, help},
    STATELINE_FLOW_REMOVE_REASONS(STATELINE_X)
#undef STATELINE_X
};

const NamedHelp kInsertFailureInfo[kInsertFailureCount] = {
#define STATELINE_X(name, help) {#name, help},
    STATELINE_FLOW_INSERT_FAILURES(STATELINE_X)
#undef STATELINE_X
};

const char* timeout_class_name(TimeoutClass c) noexcept {
    switch (c) {
    case TimeoutClass::free: return "free";
    case TimeoutClass::half_open: return "half_open";
    case TimeoutClass::established: return "established";
    case TimeoutClass::closing: return "closing";
    case TimeoutClass::time_wait: return "time_wait";
    case TimeoutClass::closed: return "closed";
    case TimeoutClass::count_: break;
    }
    return "unknown";
}

uint32_t FlowTable::bucket_count(uint32_t capacity) noexcept {
    // 64-bit sum: capacity near UINT32_MAX must not wrap.
    const uint64_t n = (static_cast<uint64_t>(capacity) + kLoadDivisor - 1) / kLoadDivisor;
    return n ? static_cast<uint32_t>(n) : 1;
}

size_t FlowTable::memory_size(uint32_t capacity) noexcept {
    // Buckets and entries are whole lines; the cold array is padded to one so the total (and
    // any table carved after this one) stays line aligned.
    return size_t{bucket_count(capacity)} * sizeof(Bucket) + size_t{capacity} * sizeof(FlowEntry) +
           align_line(size_t{capacity} * sizeof(FlowCold));
}

FlowTable::FlowTable(const FlowTableConfig& cfg, void* mem, RemoveHook hook,
                     void* hook_ctx) noexcept
    : cfg_(cfg),
      buckets_(nullptr),
      entries_(nullptr),
      colds_(nullptr),
      nbuckets_(bucket_count(cfg.capacity)),
      free_head_(kNoEntry),
      hook_(hook),
      hook_ctx_(hook_ctx) {
    assert(mem != nullptr && reinterpret_cast<uintptr_t>(mem) % kLine == 0);
    assert(cfg.capacity < kNoEntry);  // kNoEntry must never be a valid index
    const uint32_t cap = cfg_.capacity;
    auto* base = static_cast<unsigned char*>(mem);
    const size_t bucket_bytes = size_t{nbuckets_} * sizeof(Bucket);
    const size_t entry_bytes = size_t{cap} * sizeof(FlowEntry);

    // Constructing every object writes every page now, at startup, rather than as page faults
    // on the first packets of a busy link. The colds need no zeroing (insert does it) but get it
    // for the same reason.
    buckets_ = reinterpret_cast<Bucket*>(base);
    for (uint32_t b = 0; b < nbuckets_; ++b) {
        Bucket* bk = ::new (static_cast<void*>(base + size_t{b} * sizeof(Bucket))) Bucket{};
        for (unsigned s = 0; s < kSlots; ++s) bk->idx[s] = kNoEntry;
    }
    entries_ = reinterpret_cast<FlowEntry*>(base + bucket_bytes);
    for (uint32_t i = 0; i < cap; ++i) {
        FlowEntry* e = ::new (static_cast<void*>(entries_ + i)) FlowEntry{};
        set_next_free(*e, i + 1 < cap ? i + 1 : kNoEntry);
    }
    colds_ = reinterpret_cast<FlowCold*>(base + bucket_bytes + entry_bytes);
    for (uint32_t i = 0; i < cap; ++i) ::new (static_cast<void*>(colds_ + i)) FlowCold{};
    free_head_ = cap ? 0 : kNoEntry;
}

uint32_t FlowTable::primary(uint32_t hash) const noexcept {
    // fastrange: any bucket count, no power-of-two rounding (which could waste half the memory).
    return static_cast<uint32_t>((static_cast<uint64_t>(hash) * nbuckets_) >> 32);
}

uint32_t FlowTable::secondary(uint32_t hash) const noexcept {
    const uint32_t mixed = std::rotl(hash, 16) * kSecondaryMul;
    uint32_t s = static_cast<uint32_t>((static_cast<uint64_t>(mixed) * nbuckets_) >> 32);
    const uint32_t p = primary(hash);
    // Two distinct buckets whenever there are two: a key with one choice gets no balancing.
    if (s == p) s = (s + 1 == nbuckets_) ? 0 : s + 1;
    return s;
}

uint16_t FlowTable::signature(uint32_t hash) noexcept {
    // Low bits: fastrange reads mostly the high ones, so keys sharing a bucket still differ
    // here. Never 0 (the empty-slot mark). Independent of the bucket, so lookup and unlink need
    // only the hash to know what to compare.
    const auto s = static_cast<uint16_t>(hash);
    return s ? s : 1;
}

uint32_t FlowTable::find_in(uint32_t b, const FlowKey& key, uint16_t sig) const noexcept {
    const Bucket& bk = buckets_[b];
    for (unsigned m = match8(bk.sig, sig); m; m &= m - 1) {
        const uint32_t idx = bk.idx[std::countr_zero(m)];
        if (same_key(entries_[idx].key, key)) return idx;
    }
    return kNoEntry;
}

uint32_t FlowTable::lookup(const FlowKey& key, uint32_t hash) noexcept {
    const uint32_t p = primary(hash);
    const uint32_t s = secondary(hash);
    // About half the keys live in their secondary bucket: start that miss while the primary's
    // is served instead of after.
    prefetch(&buckets_[s]);
    const uint16_t sig = signature(hash);
    uint32_t idx = find_in(p, key, sig);
    if (idx == kNoEntry && s != p) idx = find_in(s, key, sig);
    if (idx == kNoEntry) return kNoEntry;
    if (expired(entries_[idx])) {
        remove(idx, RemoveReason::expired);
        return kNoEntry;
    }
    return idx;
}

void FlowTable::lookup_bulk(const FlowKey* const* keys, const uint32_t* hashes, uint32_t n,
                            uint32_t* idx_out) noexcept {
    assert(n <= kMaxBurst);
    if (n > kMaxBurst) n = kMaxBurst;  // the stage arrays hold one burst
    uint32_t pb[kMaxBurst];
    uint32_t sb[kMaxBurst];
    uint16_t cand[kMaxBurst];  // bits 0-7: primary slots with a matching signature; 8-15: secondary

    // Stage 1: every bucket line of the burst is requested before any is read, so up to 2n
    // misses are in flight together. The burst is the prefetch distance: for 32-64 keys this
    // loop alone lasts about one DRAM latency, so stage 2 mostly finds its lines arrived.
    for (uint32_t i = 0; i < n; ++i) {
        pb[i] = primary(hashes[i]);
        sb[i] = secondary(hashes[i]);
        prefetch(&buckets_[pb[i]]);
        prefetch(&buckets_[sb[i]]);
    }

    // Stage 2: signatures, mostly from cache by now. A hit normally has exactly one candidate
    // (a false match is ~16/65536 per key); its entry line is requested for stage 3.
    for (uint32_t i = 0; i < n; ++i) {
        const uint16_t sig = signature(hashes[i]);
        const Bucket& bp = buckets_[pb[i]];
        const Bucket& bs = buckets_[sb[i]];
        const unsigned mp = match8(bp.sig, sig);
        const unsigned ms = sb[i] != pb[i] ? match8(bs.sig, sig) : 0;
        cand[i] = static_cast<uint16_t>(mp | ms << kSlots);
        for (unsigned m = mp; m; m &= m - 1) prefetch(&entries_[bp.idx[std::countr_zero(m)]]);
        for (unsigned m = ms; m; m &= m - 1) prefetch(&entries_[bs.idx[std::countr_zero(m)]]);
    }

    // Stage 3: full keys.
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t found = kNoEntry;
        for (unsigned m = cand[i]; m; m &= m - 1) {
            const unsigned slot = static_cast<unsigned>(std::countr_zero(m));
            const Bucket& bk = buckets_[slot < kSlots ? pb[i] : sb[i]];
            const uint32_t idx = bk.idx[slot % kSlots];
            // Emptied since stage 2 by the lazy expiry of an earlier key of this burst (the
            // same flow twice in one burst is common). Nothing inserts here, so a slot can only
            // have gone empty, never been reused.
            if (idx == kNoEntry) continue;
            if (same_key(entries_[idx].key, *keys[i])) {
                found = idx;
                break;
            }
        }
        if (found != kNoEntry && expired(entries_[found])) {
            remove(found, RemoveReason::expired);
            found = kNoEntry;
        }
        idx_out[i] = found;
    }
}

uint32_t FlowTable::find_or_insert(const FlowKey& key, uint32_t hash, TimeoutClass tclass,
                                   bool* created) noexcept {
    assert(tclass != TimeoutClass::free && tclass < TimeoutClass::count_);
    *created = false;
    // A packet earlier in the same burst may have created it.
    const uint32_t found = lookup(key, hash);
    if (found != kNoEntry) return found;

    const uint32_t p = primary(hash);
    const uint32_t s = secondary(hash);

    // An entry first: at capacity the recycling clock frees one (onto the free list; if the
    // buckets then refuse the key it serves the next insert, so nothing is evicted for naught).
    // When the clock's bounded walk meets only established entries (they cluster where they
    // were inserted before a flood), the key's own 16 slots are the next place to look: under a
    // flood they hold half-open entries too, and they are in cache already.
    if (free_head_ == kNoEntry && recycle_by_clock() == kNoEntry &&
        !recycle_from_buckets(p, s, RemoveReason::evicted_table_full)) {
        ++stats_.insert_failed[static_cast<unsigned>(InsertFailure::table_full)];
        return kNoEntry;
    }

    unsigned fp = match8(buckets_[p].sig, 0);
    unsigned fs = match8(buckets_[s].sig, 0);
    if ((fp | fs) == 0) {
        // Both buckets full. No cuckoo displacement (see README.md): recycle one of these 16
        // instead.
        if (!recycle_from_buckets(p, s, RemoveReason::evicted_bucket_full)) {
            ++stats_.insert_failed[static_cast<unsigned>(InsertFailure::bucket_full)];
            return kNoEntry;
        }
        fp = match8(buckets_[p].sig, 0);
        fs = match8(buckets_[s].sig, 0);
    }

    const uint32_t idx = alloc_entry();
    // The emptier bucket keeps both near the mean load; ties go to the primary, tried first.
    const bool use_s = std::popcount(fs) > std::popcount(fp);
    Bucket& bk = buckets_[use_s ? s : p];
    const unsigned slot = static_cast<unsigned>(std::countr_zero(use_s ? fs : fp));
    bk.sig[slot] = signature(hash);
    bk.idx[slot] = idx;

    entries_[idx] = FlowEntry{key, now_, tclass, 0, {}, {}};
    colds_[idx] = FlowCold{};
    ++stats_.inserted;
    ++stats_.active;
    ++stats_.active_by_class[static_cast<unsigned>(tclass)];
    *created = true;
    return idx;
}

bool FlowTable::recycle_from_buckets(uint32_t p, uint32_t s, RemoveReason reason) noexcept {
    // A dead entry if any, else the longest idle that is not established.
    const uint32_t bs[2] = {p, s};
    for (const uint32_t b : bs)
        for (unsigned k = 0; k < kSlots; ++k)
            if (buckets_[b].idx[k] != kNoEntry) prefetch(&entries_[buckets_[b].idx[k]]);
    uint32_t victim = kNoEntry;
    uint32_t victim_age = 0;
    bool victim_expired = false;
    for (const uint32_t b : bs) {
        for (unsigned k = 0; k < kSlots && !victim_expired; ++k) {
            const uint32_t idx = buckets_[b].idx[k];
            if (idx == kNoEntry) continue;
            const FlowEntry& e = entries_[idx];
            if (expired(e)) {
                victim = idx;
                victim_expired = true;
            } else if (e.tclass != TimeoutClass::established) {
                const uint32_t age = now_ - e.last_seen;
                if (victim == kNoEntry || age > victim_age) {
                    victim = idx;
                    victim_age = age;
                }
            }
        }
    }
    if (victim == kNoEntry) return false;
    remove(victim, victim_expired ? RemoveReason::expired : reason);
    return true;
}

uint32_t FlowTable::alloc_entry() noexcept {
    // LIFO: the entry freed last is reused first, its line likely still in cache.
    const uint32_t idx = free_head_;
    assert(idx != kNoEntry);
    free_head_ = next_free(entries_[idx]);
    return idx;
}

uint32_t FlowTable::recycle_by_clock() noexcept {
    // Bounded walk: an insert at capacity costs at most evict_search sequential lines (the
    // hardware prefetcher streams them), and the hand resumes where it stopped so consecutive
    // inserts do not rescan the established entries at its front.
    const uint32_t cap = cfg_.capacity;
    const uint32_t n = cfg_.evict_search < cap ? cfg_.evict_search : cap;
    for (uint32_t k = 0; k < n; ++k) {
        const uint32_t i = evict_hand_;
        if (++evict_hand_ == cap) evict_hand_ = 0;
        const FlowEntry& e = entries_[i];
        if (e.tclass == TimeoutClass::free) continue;
        // A dead established entry is fair game too: lookup would have removed it anyway.
        if (expired(e)) {
            remove(i, RemoveReason::expired);
            return i;
        }
        if (e.tclass != TimeoutClass::established) {
            remove(i, RemoveReason::evicted_table_full);
            prefetch_next_victim();
            return i;
        }
    }
    return kNoEntry;
}

void FlowTable::prefetch_next_victim() noexcept {
    // Under a flood every insert recycles, and the entry after this one is the likely next
    // victim. Its removal reads two random bucket lines (unlink) and its cold line (the hook's
    // connection record): start those misses now, one insert ahead, instead of stalling then.
    const FlowEntry& e = entries_[evict_hand_];
    if (e.tclass == TimeoutClass::free || e.tclass == TimeoutClass::established) return;
    const uint32_t h = flow_hash(e.key);
    lookahead_idx_ = evict_hand_;
    lookahead_hash_ = h;
    prefetch(&buckets_[primary(h)]);
    prefetch(&buckets_[secondary(h)]);
    prefetch(&colds_[evict_hand_]);
}

void FlowTable::remove(uint32_t idx, RemoveReason reason) noexcept {
    assert(idx < cfg_.capacity && entries_[idx].tclass != TimeoutClass::free);
    // A second remove of the same index would put it on the free list twice (a cycle): refuse.
    if (idx >= cfg_.capacity || entries_[idx].tclass == TimeoutClass::free) return;
    if (hook_) hook_(hook_ctx_, idx, reason);  // while key, state and cold are intact
    [[maybe_unused]] const bool linked = unlink(idx);
    assert(linked);
    free_entry(idx, reason);
}

bool FlowTable::unlink(uint32_t idx) noexcept {
    // Entries keep no back pointer (it would cost 4 of the 64 bytes): the key's hash names the
    // two buckets again, the signature narrows the slot.
    const uint32_t hash = idx == lookahead_idx_ ? lookahead_hash_ : flow_hash(entries_[idx].key);
    const uint16_t sig = signature(hash);
    const uint32_t bs[2] = {primary(hash), secondary(hash)};
    for (const uint32_t b : bs) {
        Bucket& bk = buckets_[b];
        for (unsigned m = match8(bk.sig, sig); m; m &= m - 1) {
            const unsigned slot = static_cast<unsigned>(std::countr_zero(m));
            if (bk.idx[slot] == idx) {
                bk.sig[slot] = 0;
                bk.idx[slot] = kNoEntry;
                return true;
            }
        }
    }
    return false;
}

void FlowTable::free_entry(uint32_t idx, RemoveReason reason) noexcept {
    if (idx == lookahead_idx_) lookahead_idx_ = kNoEntry;
    FlowEntry& e = entries_[idx];
    --stats_.active_by_class[static_cast<unsigned>(e.tclass)];
    e.tclass = TimeoutClass::free;
    set_next_free(e, free_head_);
    free_head_ = idx;
    ++stats_.removed[static_cast<unsigned>(reason)];
    --stats_.active;
}

uint32_t FlowTable::expire_step() noexcept {
    // Lookup already expires what traffic touches; this hand only reclaims the silent flows, a
    // bounded slice per call so the worker's packet loop never stalls on it.
    const uint32_t cap = cfg_.capacity;
    const uint32_t n = cfg_.expiry_batch < cap ? cfg_.expiry_batch : cap;
    uint32_t count = 0;
    for (uint32_t k = 0; k < n; ++k) {
        const uint32_t i = expiry_hand_;
        if (++expiry_hand_ == cap) expiry_hand_ = 0;
        const FlowEntry& e = entries_[i];
        if (e.tclass != TimeoutClass::free && expired(e)) {
            remove(i, RemoveReason::expired);
            ++count;
        }
    }
    return count;
}

void FlowTable::flush() noexcept {
    for (uint32_t i = 0; i < cfg_.capacity; ++i)
        if (entries_[i].tclass != TimeoutClass::free) remove(i, RemoveReason::flushed);
}

}  // namespace stateline::flow
