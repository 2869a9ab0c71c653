// SPDX-License-Identifier: BSD-3-Clause
#include "rules.hpp"

#include <hs/hs.h>

#include <algorithm>
#include <cstring>

namespace stateline::rules {

struct PatternDb {
    hs_database_t* db = nullptr;
    hs_scratch_t* proto = nullptr;  // cloned per worker
    ~PatternDb() {
        if (proto) hs_free_scratch(proto);
        if (db) hs_free_database(db);
    }
};

namespace {

constexpr uint64_t kNsPerToken = 1'000'000'000;

unsigned hs_flags(const RuleSpec& r) {
    return HS_FLAG_SINGLEMATCH | HS_FLAG_DOTALL | (r.nocase ? HS_FLAG_CASELESS : 0u);
}

// Source address -> bucket: a multiply-xorshift of both halves. Collisions share a bucket
// (a source can be limited by a neighbour's traffic, never let through more).
inline uint32_t source_hash(const uint8_t* a, uint64_t seed = 0) noexcept {
    uint64_t h0, h1;
    std::memcpy(&h0, a, 8);
    std::memcpy(&h1, a + 8, 8);
    uint64_t h = (h0 ^ seed ^ (h1 * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    return static_cast<uint32_t>(h);
}

int on_match(unsigned int id, unsigned long long, unsigned long long, unsigned int, void* ctx) {
    static_cast<MatchSet*>(ctx)->set(id);
    return 0;
}

bool is_closing(tcp::State s) {
    switch (s) {
    case tcp::State::fin_wait_1:
    case tcp::State::fin_wait_2:
    case tcp::State::close_wait:
    case tcp::State::closing:
    case tcp::State::last_ack:
    case tcp::State::time_wait:
        return true;
    default:
        return false;
    }
}

}  // namespace

const char* action_name(Action a) noexcept {
    switch (a) {
    case Action::alert: return "alert";
    case Action::drop: return "drop";
    case Action::rate_limit: return "rate_limit";
    case Action::allow: return "allow";
    }
    return "?";
}

uint8_t state_class(bool first_segment, tcp::State a, tcp::State b) noexcept {
    using S = tcp::State;
    if (first_segment) return state_bit::new_conn;
    if (is_closing(a) || is_closing(b)) return state_bit::closing;
    // Established means the handshake completed: both ends. After a SYN-ACK the client is
    // ESTABLISHED and the server still SYN-RCVD, and that connection is half-open.
    if (a == S::syn_sent || a == S::syn_received || b == S::syn_sent || b == S::syn_received)
        return state_bit::half_open;
    if (a == S::established && b == S::established) return state_bit::established;
    if (a == S::established || b == S::established) {
        // Picked up mid-stream, one end not yet seen answering: established. One end reset: closing.
        return (a == S::closed || b == S::closed) && !(a == S::closed && b == S::closed) ? state_bit::closing
                                                                                        : state_bit::established;
    }
    return state_bit::closing;  // both closed after the first segment: reset
}

VictimSet::VictimSet(const std::vector<VictimEntry>& entries, uint64_t epoch) : epoch_(epoch) {
    size_t cap = 16;
    while (cap < entries.size() * 2) cap *= 2;
    slots_.assign(cap, Slot{});
    for (const auto& e : entries) {
        uint32_t i = probe(e.addr, e.port);
        if (!slots_[i].used) {
            slots_[i].used = true;
            slots_[i].e = e;
            ++count_;
        } else {
            slots_[i].e.bits |= e.bits;
        }
    }
    for (const auto& s : slots_)
        if (s.used) list_.push_back(s.e);
}

uint32_t VictimSet::probe(const uint8_t* addr, uint16_t port) const noexcept {
    const uint32_t mask = static_cast<uint32_t>(slots_.size() - 1);
    uint32_t i = (source_hash(addr) ^ (uint32_t{port} * 0x9E3779B1u)) & mask;
    for (;;) {
        const Slot& s = slots_[i];
        if (!s.used || (s.e.port == port && std::memcmp(s.e.addr, addr, 16) == 0)) return i;
        i = (i + 1) & mask;
    }
}

uint32_t VictimSet::lookup(const uint8_t* addr, uint16_t port) const noexcept {
    if (count_ == 0) return 0;
    uint32_t bits = 0;
    if (const Slot& s = slots_[probe(addr, 0)]; s.used) bits |= s.e.bits;
    if (port != 0)
        if (const Slot& s = slots_[probe(addr, port)]; s.used) bits |= s.e.bits;
    return bits;
}

PacketView view_of(const packet::PacketMeta& m) noexcept {
    const unsigned s = static_cast<unsigned>(m.sender);
    PacketView v{};
    v.src = m.key.addr[s];
    v.dst = m.key.addr[s ^ 1];
    v.sport = m.key.port[s];
    v.dport = m.key.port[s ^ 1];
    v.tcp_flags = m.tcp_flags;
    v.state = state_bit::established;
    v.ts_ns = m.ts_ns;
    return v;
}

bool TokenBucket::take(uint64_t now_ns, uint64_t rate, uint64_t burst) noexcept {
    const uint64_t cap = burst * kNsPerToken;
    if (last_ns == kNever) {
        tokens = cap;
        last_ns = now_ns;
    } else if (now_ns > last_ns) {
        const uint64_t elapsed = now_ns - last_ns;
        // Past the time to fill from empty the bucket is full; below it, elapsed * rate <= cap + rate.
        const uint64_t fill_ns = cap / rate + 1;
        tokens = elapsed >= fill_ns ? cap : std::min(cap, tokens + elapsed * rate);
        last_ns = now_ns;
    }
    // A clock stepping back refills nothing and does not move last_ns back.
    if (tokens < kNsPerToken) return false;
    tokens -= kNsPerToken;
    return true;
}

std::string check_pattern(const std::string& pattern, bool nocase) {
    RuleSpec r;
    r.nocase = nocase;
    hs_database_t* one = nullptr;
    hs_compile_error_t* err = nullptr;
    if (hs_compile(pattern.c_str(), hs_flags(r), HS_MODE_BLOCK, nullptr, &one, &err) == HS_SUCCESS) {
        hs_free_database(one);
        return {};
    }
    std::string why = err && err->message ? err->message : "unknown Hyperscan error";
    hs_free_compile_error(err);
    return why;
}

RuleSet::~RuleSet() { delete db_; }

bool RuleSet::same(const RuleSet* a, const RuleSet* b) noexcept {
    const size_t na = a ? a->size() : 0, nb = b ? b->size() : 0;
    if (na != nb) return false;
    if (na == 0) return true;
    return a->opt_ == b->opt_ && a->specs_ == b->specs_;
}

RuleSet::BuildResult RuleSet::build(std::vector<RuleSpec> specs, const Options& opt,
                                    const std::vector<std::string>& where) {
    BuildResult out;
    auto place = [&](size_t i) { return i < where.size() && !where[i].empty() ? where[i] : "rule '" + specs[i].name + "'"; };
    if (specs.size() > kMaxRules)
        out.errors.push_back({"rules", std::to_string(specs.size()) + " rules, at most " + std::to_string(kMaxRules)});
    if (opt.scan_limit == 0) out.errors.push_back({"rules", "scan_limit must be at least 1"});
    if (opt.source_buckets == 0 || (opt.source_buckets & (opt.source_buckets - 1)))
        out.errors.push_back({"rules", "source_buckets must be a power of two"});

    std::unique_ptr<RuleSet> set(new RuleSet);
    std::vector<const char*> exprs;
    std::vector<unsigned> flags, ids;
    for (size_t i = 0; i < specs.size(); ++i) {
        RuleSpec& r = specs[i];
        if (r.action == Action::rate_limit) {
            if (r.rate == 0) out.errors.push_back({place(i), "rule '" + r.name + "': rate_limit needs a rate above 0"});
            if (r.burst == 0) r.burst = r.rate;
            // Buckets count token-ns in 64 bits: burst * 1e9 must fit.
            if (r.rate > 1'000'000'000 || r.burst > 1'000'000'000)
                out.errors.push_back({place(i), "rule '" + r.name + "': rate and burst are at most 1000000000"});
        }
        // Flood mitigation stops at connections that completed their handshake: a rule that
        // drops or limits because of an active alert applies to new and half-open connections.
        constexpr uint8_t kUnestablished = state_bit::new_conn | state_bit::half_open;
        if (r.victim_of && (r.action == Action::drop || r.action == Action::rate_limit)) {
            if ((r.states & kUnestablished) == 0)
                out.errors.push_back({place(i), "rule '" + r.name + "': a " + action_name(r.action) +
                                                    " rule with victim_of applies only to new and half_open "
                                                    "connections (flood mitigation never drops established ones)"});
            r.states &= kUnestablished;
        }
        if ((r.flags_value & ~r.flags_mask) != 0)
            out.errors.push_back({place(i), "rule '" + r.name + "': flags set outside their mask never match"});
        if (!r.payload.empty()) {
            // Each pattern alone first, so that every bad pattern is reported, not just the first.
            if (std::string why = check_pattern(r.payload, r.nocase); !why.empty())
                out.errors.push_back({place(i), "rule '" + r.name + "': payload pattern '" + r.payload +
                                                    "' does not compile: " + why});
            exprs.push_back(r.payload.c_str());
            flags.push_back(hs_flags(r));
            ids.push_back(static_cast<unsigned>(i));
        }
        Compiled c{};
        c.flags_mask = r.flags_mask;
        c.flags_value = r.flags_value;
        c.states = r.states;
        c.action = r.action;
        c.payload = !r.payload.empty();
        c.per = r.per;
        c.victim_of = r.victim_of;
        c.src_verified = r.src_verified;
        if (r.victim_of) set->victim_rules_ = true;
        if (r.src_verified >= 0) set->verified_rules_ = true;
        c.src_begin = static_cast<uint32_t>(set->prefixes_.size());
        set->prefixes_.insert(set->prefixes_.end(), r.src.begin(), r.src.end());
        c.src_end = c.dst_begin = static_cast<uint32_t>(set->prefixes_.size());
        set->prefixes_.insert(set->prefixes_.end(), r.dst.begin(), r.dst.end());
        c.dst_end = static_cast<uint32_t>(set->prefixes_.size());
        c.port_begin = static_cast<uint32_t>(set->ports_.size());
        set->ports_.insert(set->ports_.end(), r.dst_ports.begin(), r.dst_ports.end());
        c.port_end = static_cast<uint32_t>(set->ports_.size());
        c.rate = r.rate;
        c.burst = r.burst;
        set->compiled_.push_back(c);
    }
    if (!out.errors.empty()) return out;

    if (!exprs.empty()) {
        auto db = std::make_unique<PatternDb>();
        hs_compile_error_t* err = nullptr;
        if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()),
                             HS_MODE_BLOCK, nullptr, &db->db, &err) != HS_SUCCESS) {
            const int e = err ? err->expression : -1;
            const std::string where_e = e >= 0 ? place(ids[e]) : "rules";
            out.errors.push_back({where_e, std::string("payload patterns do not compile together: ") +
                                               (err && err->message ? err->message : "?")});
            hs_free_compile_error(err);
            return out;
        }
        if (hs_alloc_scratch(db->db, &db->proto) != HS_SUCCESS) {
            out.errors.push_back({"rules", "cannot allocate Hyperscan scratch"});
            return out;
        }
        set->db_ = db.release();
    }
    set->specs_ = std::move(specs);
    set->opt_ = opt;
    out.set = std::shared_ptr<const RuleSet>(set.release());
    return out;
}

WorkerRules::WorkerRules(std::shared_ptr<const RuleSet> set, unsigned workers, uint64_t seed)
    : set_(std::move(set)), counters_(set_->size()), source_mask_(set_->opt_.source_buckets - 1), seed_(seed) {
    if (workers == 0) workers = 1;
    if (set_->db_ && hs_clone_scratch(set_->db_->proto, reinterpret_cast<hs_scratch_t**>(&scratch_)) != HS_SUCCESS)
        throw std::bad_alloc();
    uint32_t n = 0;
    for (const auto& c : set_->compiled_) {
        bucket_begin_.push_back(n);
        // A worker's share, at least one token: a rule never blocks everything by rounding.
        rate_.push_back(c.rate ? std::max<uint64_t>(1, c.rate / workers) : 0);
        burst_.push_back(c.burst ? std::max<uint64_t>(1, c.burst / workers) : 0);
        if (c.action == Action::rate_limit) n += c.per == Per::source ? set_->opt_.source_buckets : 1;
    }
    buckets_.resize(n);
}

size_t RuleSet::per_source_rules() const noexcept {
    size_t n = 0;
    for (const auto& c : compiled_) n += c.action == Action::rate_limit && c.per == Per::source;
    return n;
}

size_t RuleSet::worker_memory() const noexcept {
    size_t buckets = 0;
    for (const auto& c : compiled_)
        if (c.action == Action::rate_limit) buckets += c.per == Per::source ? opt_.source_buckets : 1;
    size_t scratch = 0;
    if (db_ && db_->proto && hs_scratch_size(db_->proto, &scratch) != HS_SUCCESS) scratch = 0;
    return buckets * sizeof(TokenBucket) + scratch + compiled_.size() * (sizeof(RuleCounters) + 4 * sizeof(uint64_t));
}

WorkerRules::~WorkerRules() {
    if (scratch_) hs_free_scratch(static_cast<hs_scratch_t*>(scratch_));
}

size_t WorkerRules::bucket_memory() const noexcept { return buckets_.capacity() * sizeof(TokenBucket); }

MatchSet WorkerRules::scan(const uint8_t* payload, uint32_t len, uint32_t stream_offset) noexcept {
    MatchSet m;
    const uint32_t limit = set_->opt_.scan_limit;
    if (!set_->db_ || len == 0 || payload == nullptr || stream_offset >= limit) return m;
    // Block mode over the first `limit` bytes of the direction: a pattern spanning two segments
    // is not seen (that would need streaming mode and per-connection stream state).
    const uint32_t n = std::min(len, limit - stream_offset);
    hs_scan(set_->db_->db, reinterpret_cast<const char*>(payload), n, 0, static_cast<hs_scratch_t*>(scratch_),
            on_match, &m);
    return m;
}

static bool in_prefixes(const std::vector<detect::Prefix>& v, uint32_t b, uint32_t e, const uint8_t* a) noexcept {
    if (b == e) return true;
    for (uint32_t i = b; i < e; ++i)
        if (v[i].contains(a)) return true;
    return false;
}

Decision WorkerRules::evaluate(const PacketView& p) noexcept {
    const auto& rules = set_->compiled_;
    bool scanned = false, victims_known = p.victims == nullptr, verified_known = false, verified = false;
    uint32_t victim_of = p.victim_of;
    MatchSet m;
    for (uint32_t i = 0; i < rules.size(); ++i) {
        const auto& r = rules[i];
        // Cheapest first: register tests, then short lists, then the payload scan (once per packet).
        if ((p.tcp_flags & r.flags_mask) != r.flags_value) continue;
        if (!(p.state & r.states)) continue;
        if (r.victim_of) {
            if (!victims_known) {
                victim_of |= p.victims->lookup(p.dst, p.dport);
                victims_known = true;
            }
            if (!(victim_of & r.victim_of)) continue;
        }
        if (r.port_begin != r.port_end) {
            bool hit = false;
            for (uint32_t k = r.port_begin; k < r.port_end && !hit; ++k)
                hit = p.dport >= set_->ports_[k].lo && p.dport <= set_->ports_[k].hi;
            if (!hit) continue;
        }
        if (!in_prefixes(set_->prefixes_, r.src_begin, r.src_end, p.src)) continue;
        if (!in_prefixes(set_->prefixes_, r.dst_begin, r.dst_end, p.dst)) continue;
        if (r.src_verified >= 0) {
            if (!verified_known) {
                verified = p.verified && p.verified(p.verified_ctx, p.src);
                verified_known = true;
            }
            if (verified != (r.src_verified == 1)) continue;
        }
        if (r.payload) {
            if (!scanned) {
                m = scan(p.payload, p.payload_len, p.stream_offset);
                scanned = true;
            }
            if (!m.test(i)) continue;
        }

        Decision d{static_cast<int32_t>(i), Verdict::pass};
        RuleCounters& rc = counters_[i];
        rc.bump(rc.hits);
        switch (r.action) {
        case Action::alert: d.verdict = Verdict::alert; break;
        case Action::allow: d.verdict = Verdict::pass; break;
        case Action::drop: d.verdict = Verdict::drop; break;
        case Action::rate_limit: {
            uint32_t b = bucket_begin_[i];
            if (r.per == Per::source) b += source_hash(p.src, seed_) & source_mask_;
            if (!buckets_[b].take(p.ts_ns, rate_[i], burst_[i])) d.verdict = Verdict::drop;
            break;
        }
        }
        if (d.verdict == Verdict::drop) rc.bump(rc.drops);
        return d;
    }
    return {};
}

}  // namespace stateline::rules
