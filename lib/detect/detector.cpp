// SPDX-License-Identifier: BSD-3-Clause
#include "detector.hpp"

namespace stateline::detect {

namespace sig = tcp::signal;
using sketch::detail::allocate_aligned;
using sketch::detail::free_aligned;

namespace {

uint64_t* alloc_bits(size_t bits) {
    auto* p = static_cast<uint64_t*>(allocate_aligned(bits / 8));
    std::memset(p, 0, bits / 8);
    return p;
}

inline uint64_t pair_hash(uint64_t a, uint64_t b) noexcept {
    return sketch::detail::mix64(a ^ (b * 0xC2B2AE3D27D4EB4Full));
}

inline sketch::Target target(sketch::KeyKind kind, const uint8_t* addr, uint16_t port) noexcept {
    return sketch::make_target(kind, addr, port);
}

}  // namespace

// ---- Partial -------------------------------------------------------------------------------

Partial::Partial(const sketch::SketchGeometry& g, uint32_t top, size_t counter_count)
    : victim(g), victim_top(top), source(g), source_top(top), counters(counter_count, 0) {
    distinct.words = alloc_bits(kDistinctBits);
    distinct.mask = kDistinctBits - 1;
    verified = alloc_bits(kVerifiedBits);
    half_open_words = HalfOpenGauge::words(g.width);
    half_open = static_cast<uint32_t*>(allocate_aligned(half_open_words * sizeof(uint32_t)));
    std::memset(half_open, 0, half_open_words * sizeof(uint32_t));
    clear();
}

Partial::~Partial() {
    free_aligned(distinct.words);
    free_aligned(verified);
    free_aligned(half_open);
}

void Partial::clear() noexcept {
    victim.clear();
    victim_top.clear();
    source.clear();
    source_top.clear();
    std::memset(distinct.words, 0, kDistinctBits / 8);
    std::memset(verified, 0, kVerifiedBits / 8);
    sampled = 0;
}

// ---- VerifiedSources -----------------------------------------------------------------------

VerifiedSources::VerifiedSources() : words_(alloc_bits(2 * size_t{kVerifiedBits})) {}

VerifiedSources::~VerifiedSources() { free_aligned(words_); }

void VerifiedSources::merge(const uint64_t* bits) noexcept {
    for (size_t i = 0; i < kVerifiedBits / 64; ++i) {
        if (bits[i] == 0) continue;
        std::atomic_ref<uint64_t> w(words_[2 * i + current_]);
        w.store(w.load(std::memory_order_relaxed) | bits[i], std::memory_order_relaxed);
    }
}

void VerifiedSources::age() noexcept {
    current_ ^= 1u;
    for (size_t i = 0; i < kVerifiedBits / 64; ++i)
        std::atomic_ref<uint64_t>(words_[2 * i + current_]).store(0, std::memory_order_relaxed);
}

uint64_t VerifiedSources::count_bits() const noexcept {
    uint64_t n = 0;
    for (size_t i = 0; i < kVerifiedBits / 64; ++i)
        n += static_cast<uint64_t>(__builtin_popcountll(load(words_[2 * i]) | load(words_[2 * i + 1])));
    return n;
}

// ---- HalfOpenGauge -------------------------------------------------------------------------

HalfOpenGauge::HalfOpenGauge(uint32_t width) {
    cells_ = static_cast<uint32_t*>(allocate_aligned(words(width) * sizeof(uint32_t)));
    std::memset(cells_, 0, words(width) * sizeof(uint32_t));
}

HalfOpenGauge::~HalfOpenGauge() { free_aligned(cells_); }

// ---- WorkerDetector ------------------------------------------------------------------------

WorkerDetector::WorkerDetector(const sketch::SketchGeometry& g, uint32_t top,
                               const VerifiedSources* verified, uint64_t first_interval,
                               uint64_t rng_seed, size_t counter_count)
    : buf_(first_interval, g, top, counter_count), half_open_(g.width), verified_(verified),
      rng_(rng_seed | 1) {}

void WorkerDetector::prefetch(const packet::PacketMeta& m) noexcept {
    namespace tf = packet::tcp_flag;
    if ((m.tcp_flags & (tf::syn | tf::ack | tf::rst)) != tf::syn) return;
    const unsigned snd = static_cast<unsigned>(m.sender), rcv = 1u - snd;
    const Partial& p = buf_.active();
    if (verified_) verified_->prefetch(m.key.addr[snd]);
    p.source.prefetch(p.source.slots(sketch::source_ip_key(m.key.addr[snd])));
    const auto se = p.victim.slots(sketch::victim_endpoint_key(m.key.addr[rcv], m.key.port[rcv]));
    const auto si = p.victim.slots(sketch::victim_ip_key(m.key.addr[rcv]));
    p.victim.prefetch(se);
    p.victim.prefetch(si);
    half_open_.prefetch(se);
    half_open_.prefetch(si);
}

void WorkerDetector::sample(Partial& p, const uint8_t* src, const uint8_t* dst, uint16_t sport,
                            uint16_t dport, uint16_t signals, uint8_t flags) noexcept {
    // Reservoir sampling (Vitter's algorithm R): every suspicious segment of the interval has
    // the same chance to be among the kSamples kept.
    uint64_t slot = p.sampled++;
    if (slot >= kSamples) {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        slot = static_cast<uint64_t>((static_cast<unsigned __int128>(rng_ >> 32) * p.sampled) >> 32);
        if (slot >= kSamples) return;
    }
    Sample& s = p.samples[slot];
    std::memcpy(s.src, src, 16);
    std::memcpy(s.dst, dst, 16);
    s.sport = sport;
    s.dport = dport;
    s.signals = signals;
    s.tcp_flags = flags;
}

void WorkerDetector::segment(const packet::PacketMeta& m, uint16_t signals,
                             flow::Side responder) noexcept {
    Partial& p = buf_.active();
    const unsigned snd = static_cast<unsigned>(m.sender), rcv = 1u - snd;
    const uint8_t* src = m.key.addr[snd];
    const uint8_t* dst = m.key.addr[rcv];
    const uint16_t sport = m.key.port[snd], dport = m.key.port[rcv];

    // What the receiver suffers: floods, stray segments, forged RSTs.
    constexpr uint16_t kToReceiver = sig::syn | sig::synack_stray | sig::ack_stray | sig::rst_stray |
                                     sig::fin_stray | sig::rst_injection | sig::handshake;
    if (signals & kToReceiver) {
        const sketch::Target te = target(sketch::KeyKind::victim_endpoint, dst, dport);
        const sketch::Target ti = target(sketch::KeyKind::victim_ip, dst, 0);
        const uint64_t ke = sketch::target_key(te), ki = sketch::target_key(ti);
        const auto se = p.victim.slots(ke), si = p.victim.slots(ki);
        uint32_t n_susp = 0;
        auto both = [&](unsigned metric) {
            p.victim.add(se, metric);
            p.victim.add(si, metric);
        };
        if (signals & sig::syn) {
            both(v_syn);
            ++n_susp;
            if (verified_ && !verified_->contains(src)) both(v_syn_unverified);
            if (signals & sig::syn_open) {
                both(v_syn_open);
                half_open_.add(se, 1);
                half_open_.add(si, 1);
            }
        }
        if (signals & sig::handshake) both(v_handshake);
        if (signals & sig::synack_stray) both(v_stray_synack), ++n_susp;
        if (signals & sig::ack_stray) both(v_stray_ack), ++n_susp;
        if (signals & sig::rst_stray) both(v_stray_rst), ++n_susp;
        if (signals & sig::fin_stray) both(v_stray_fin), ++n_susp;
        if (signals & sig::rst_injection) both(v_rst_injection), ++n_susp;
        if (n_susp) {
            p.victim_top.offer(ke, p.victim.add(se, v_suspicious, n_susp), te);
            p.victim_top.offer(ki, p.victim.add(si, v_suspicious, n_susp), ti);
            if (signals != (sig::syn | sig::syn_open) || !verified_ || !verified_->contains(src))
                sample(p, src, dst, sport, dport, signals, m.tcp_flags);
        }
    }

    // What the sender does: probes (scans), completed handshakes.
    const uint64_t a_src = addr_word(src);
    if (signals & (sig::syn_open | sig::stealth_probe)) {
        const sketch::Target ts = target(sketch::KeyKind::source_ip, src, 0);
        const uint64_t ks = sketch::target_key(ts);
        const auto ss = p.source.slots(ks);
        const uint64_t a_dst = addr_word(dst);
        // The port is mixed into the source before the pair: XORed into the address word, it
        // would cancel against nearby sources probing nearby ports.
        if (p.distinct.test_and_set(pair_hash(pair_hash(a_src, dport), a_dst)))
            p.source.add(ss, s_targets);
        if (p.distinct.test_and_set(pair_hash(a_src, 0x5EED0000ull + sport)))
            p.source.add(ss, s_sports);
        if (signals & sig::stealth_probe) {
            p.source.add(ss, s_stealth);
            sample(p, src, dst, sport, dport, signals, m.tcp_flags);
        }
        p.source_top.offer(ks, p.source.add(ss, s_probes), ts);
    }
    if (signals & sig::handshake) {
        p.source.add(sketch::source_ip_key(src), s_handshake);
        const uint32_t b = BitFilter::bit_of(a_src, kVerifiedBits - 1);
        p.verified[b >> 6] |= 1ull << (b & 63);
    }
    // Answers: the sender is the server, the receiver the client that sent the SYN.
    if (signals & sig::synack) {
        p.victim.add(sketch::victim_endpoint_key(src, sport), v_synack);
        p.victim.add(sketch::victim_ip_key(src), v_synack);
        p.source.add(sketch::source_ip_key(dst), s_answered);
    }
    if (signals & sig::refused) p.source.add(sketch::source_ip_key(dst), s_refused);

    const unsigned r = static_cast<unsigned>(responder);
    if (signals & sig::half_open_resolved) {
        half_open_.add(p.victim.slots(sketch::victim_endpoint_key(m.key.addr[r], m.key.port[r])), -1);
        half_open_.add(p.victim.slots(sketch::victim_ip_key(m.key.addr[r])), -1);
    }
    // Teardowns per host, the server's: counted as they happen, not when the entry leaves.
    if (signals & (sig::closed | sig::abnormal_teardown)) {
        const sketch::Target t = target(sketch::KeyKind::victim_ip, m.key.addr[r], 0);
        const uint64_t k = sketch::target_key(t);
        const auto s = p.victim.slots(k);
        if (signals & sig::closed) p.victim.add(s, v_closed);
        if (signals & sig::abnormal_teardown) {
            p.victim.add(s, v_abnormal);
            p.victim_top.offer(k, p.victim.add(s, v_suspicious), t);
            const unsigned o = 1u - r;
            sample(p, m.key.addr[o], m.key.addr[r], m.key.port[o], m.key.port[r], signals, m.tcp_flags);
        }
    }
}

void WorkerDetector::on_close(const connlog::ConnRecord& r) noexcept {
    const unsigned resp = r.orig_is_hi ? 0u : 1u;
    const uint8_t* addr = r.key.addr[resp];
    Partial& p = buf_.active();
    if (r.detect & connlog::detect_flag::half_open) {
        half_open_.add(p.victim.slots(sketch::victim_endpoint_key(addr, r.key.port[resp])), -1);
        half_open_.add(p.victim.slots(sketch::victim_ip_key(addr)), -1);
    }
    // A half-close that lingered until its timeout is known only now; every other abnormal
    // teardown was counted by its segment (signal::abnormal_teardown). Connections that never
    // had a handshake (stray RSTs, probes) are the floods' and scans' to count.
    if (!(r.detect & connlog::detect_flag::handshake_done)) return;
    if ((r.anomalies & kAbnormalTeardown) != tcp::anomaly::half_close_stuck) return;
    if (r.close != connlog::CloseKind::timeout) return;
    const sketch::Target t = target(sketch::KeyKind::victim_ip, addr, 0);
    const uint64_t k = sketch::target_key(t);
    const auto s = p.victim.slots(k);
    p.victim.add(s, v_closed);
    p.victim.add(s, v_abnormal);
    p.victim_top.offer(k, p.victim.add(s, v_suspicious), t);
}

}  // namespace stateline::detect
