// SPDX-License-Identifier: BSD-3-Clause
// Mitigation rules: match (prefixes, destination ports, TCP flags under a mask, connection state
// class, "the destination is the victim of an active <alert>", a payload pattern) -> action
// (alert, drop, rate_limit, allow). First match wins. A RuleSet is compiled once on the control
// core (Hyperscan database included) and is immutable; each worker owns a WorkerRules holding
// what changes per packet: its Hyperscan scratch, its token buckets and its per-rule counters.
// Hyperscan types stay in rules.cpp: this header is what the hot path includes.
//
// Thread safety: RuleSet is immutable after build() and may be shared by any number of workers.
// WorkerRules: its worker only (and the control core once the worker has stopped).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "alert_types.hpp"  // detect::AlertType (no json, no sketches)
#include "detect_settings.hpp"
#include "packet_meta.hpp"
#include "tcp_tracker.hpp"

namespace stateline::rules {

inline constexpr unsigned kMaxRules = 256;  // rule ids index the payload match bitset

enum class Action : uint8_t { alert, drop, rate_limit, allow };
const char* action_name(Action a) noexcept;

enum class Per : uint8_t { rule, source };

// Connection state classes as bits, so that a rule's set of classes is tested with one AND.
namespace state_bit {
inline constexpr uint8_t new_conn = 0x01;     // the segment that created the flow entry
inline constexpr uint8_t half_open = 0x02;    // handshake not complete
inline constexpr uint8_t established = 0x04;  // handshake complete, no FIN/RST yet
inline constexpr uint8_t closing = 0x08;      // FIN or RST seen
inline constexpr uint8_t any = 0x0f;
}  // namespace state_bit

// The class of a segment's connection from the tracker's view of both sides.
uint8_t state_class(bool first_segment, tcp::State a, tcp::State b) noexcept;

// Bit of an alert type in PacketView::victim_of and RuleSpec::victim_of.
constexpr uint32_t victim_bit(detect::AlertType t) noexcept { return 1u << static_cast<unsigned>(t); }
static_assert(detect::kAlertTypeCount <= 32, "victim_of is a 32-bit set of alert types");

struct PortRange {
    uint16_t lo, hi;  // inclusive
    bool operator==(const PortRange&) const = default;
};

// One rule as the operator wrote it (control side). Empty lists match anything.
struct RuleSpec {
    std::string name;
    std::vector<detect::Prefix> src, dst;
    std::vector<PortRange> dst_ports;
    uint8_t flags_value = 0, flags_mask = 0;  // (tcp_flags & mask) == value
    uint8_t states = state_bit::any;
    uint32_t victim_of = 0;                   // any of these alert types active on the destination; 0: no condition
    int8_t src_verified = -1;                 // 1: the source completed a handshake recently, 0: it has not, -1: either
    std::string payload;                      // Hyperscan (PCRE-like) pattern; empty: none
    bool nocase = false;
    Action action = Action::alert;
    uint64_t rate = 0;   // rate_limit: tokens per second (packets)
    uint64_t burst = 0;  // rate_limit: bucket depth; 0 means rate (one second's worth)
    Per per = Per::rule;
    bool operator==(const RuleSpec&) const = default;
};

struct Options {
    uint32_t scan_limit = 256;       // payload bytes scanned per direction of a connection
    uint32_t source_buckets = 4096;  // per-source buckets per rate_limit rule, power of two
    bool operator==(const Options&) const = default;
};

struct Error {
    std::string where;  // "file:line:col" when known, otherwise the rule's name
    std::string what;
};

// Compiles one rule's payload pattern alone with the flags the database will use: the
// Hyperscan error message, or empty when it compiles. Control core only.
std::string check_pattern(const std::string& pattern, bool nocase);

// The targets of the active alerts, as the workers see them: (address, port) -> victim_bit()s,
// port 0 for an address-wide alert. Built on the control core from the aggregator's active
// alerts, immutable, one copy per worker (swapped at a burst boundary, like the rules). A small
// open-addressed table: a lookup is two probes of a few cache lines at most.
struct VictimEntry {
    uint8_t addr[16];  // IPv4-mapped, as flow keys
    uint16_t port;     // host order; 0: every port of addr
    uint32_t bits;     // victim_bit()s
};
class VictimSet {
public:
    VictimSet() = default;
    explicit VictimSet(const std::vector<VictimEntry>& entries, uint64_t epoch = 0);
    // The alert types active on dst:dport or on dst as a whole.
    uint32_t lookup(const uint8_t* addr, uint16_t port) const noexcept;
    size_t size() const noexcept { return count_; }
    // Detection interval the set was built after (a replay's workers wait for it; see worker.cpp).
    uint64_t epoch() const noexcept { return epoch_; }
    const std::vector<VictimEntry>& entries() const noexcept { return list_; }

private:
    struct Slot {
        VictimEntry e;
        bool used;
    };
    uint32_t probe(const uint8_t* addr, uint16_t port) const noexcept;
    std::vector<Slot> slots_;  // power of two, at most half full
    std::vector<VictimEntry> list_;
    size_t count_ = 0;
    uint64_t epoch_ = 0;
};

// Whether a source completed a TCP handshake recently (detection's VerifiedSources), asked only
// when a rule with src_verified gets that far.
using VerifiedFn = bool (*)(const void* ctx, const uint8_t* addr) noexcept;

// One packet as the rules see it: the sender's view (src sends to dst).
struct PacketView {
    const uint8_t* src;      // 16 bytes, IPv4-mapped
    const uint8_t* dst;
    uint16_t sport, dport;   // host order
    uint8_t tcp_flags;
    uint8_t state;           // one state_bit
    uint32_t victim_of;      // victim_bit()s of the alerts active on dst, known to the caller
    const VictimSet* victims;  // or looked up here when a rule needs it (null: none)
    VerifiedFn verified;     // null: no source counts as verified
    const void* verified_ctx;
    const uint8_t* payload;  // captured TCP payload, may be null when payload_len is 0
    uint32_t payload_len;    // captured bytes available at payload
    uint32_t stream_offset;  // offset of payload[0] in its direction's byte stream (0: first byte)
    uint64_t ts_ns;          // packet clock, refills the token buckets
};

// Fills src/dst/ports/flags/ts from a parsed segment; the caller adds the rest.
PacketView view_of(const packet::PacketMeta& m) noexcept;

enum class Verdict : uint8_t { pass, alert, drop };

struct Decision {
    int32_t rule = -1;  // the matching rule, -1 when none did
    Verdict verdict = Verdict::pass;
};

// Written by the owning worker only (a relaxed load and store, no locked instruction), read by
// the control core at any time for the exporters.
struct RuleCounters {
    std::atomic<uint64_t> hits{0};   // packets this rule matched (first match)
    std::atomic<uint64_t> drops{0};  // of which dropped (drop, or rate_limit over its rate)
    void bump(std::atomic<uint64_t>& c) noexcept { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
};

class WorkerRules;
struct PatternDb;  // Hyperscan database, rules.cpp

class RuleSet {
public:
    struct BuildResult {
        std::shared_ptr<const RuleSet> set;  // null on error
        std::vector<Error> errors;           // where = the rule's name unless `where` is given
        bool ok() const { return errors.empty(); }
    };
    // Compiles the rules (in order) and their payload patterns into one Hyperscan block-mode
    // database. `where[i]`, if given, locates rule i in error messages. Control core only.
    static BuildResult build(std::vector<RuleSpec> specs, const Options& opt = {},
                             const std::vector<std::string>& where = {});
    ~RuleSet();

    size_t size() const noexcept { return specs_.size(); }
    // Same rules in the same order with the same options (null and empty are the same: none).
    static bool same(const RuleSet* a, const RuleSet* b) noexcept;
    const RuleSpec& spec(size_t i) const { return specs_[i]; }
    const Options& options() const noexcept { return opt_; }
    bool has_payload_rules() const noexcept { return db_ != nullptr; }
    bool has_victim_rules() const noexcept { return victim_rules_; }
    bool has_verified_rules() const noexcept { return verified_rules_; }
    // What each worker's WorkerRules for this set will allocate (token buckets, Hyperscan scratch,
    // counters), known before any is built: a reload checks it against the memory available.
    size_t worker_memory() const noexcept;
    size_t per_source_rules() const noexcept;  // rate_limit rules with per: source

private:
    friend class WorkerRules;
    RuleSet() = default;

    // What a worker tests, cheapest first; lists live in the shared arrays below.
    struct Compiled {
        uint8_t flags_mask, flags_value, states;
        Action action;
        bool payload;
        Per per;
        int8_t src_verified;
        uint32_t victim_of;
        uint32_t src_begin, src_end, dst_begin, dst_end, port_begin, port_end;
        uint64_t rate, burst;
    };
    std::vector<RuleSpec> specs_;
    std::vector<Compiled> compiled_;
    std::vector<detect::Prefix> prefixes_;
    std::vector<PortRange> ports_;
    Options opt_;
    PatternDb* db_ = nullptr;
    bool victim_rules_ = false, verified_rules_ = false;
};

// Token bucket in token-nanoseconds (one token = 1e9), refilled from the packet clock.
struct TokenBucket {
    static constexpr uint64_t kNever = ~uint64_t{0};
    uint64_t tokens = 0;        // token-ns
    uint64_t last_ns = kNever;  // never used: starts full
    // Takes one token if there is one.
    bool take(uint64_t now_ns, uint64_t rate, uint64_t burst) noexcept;
};

// Payload matches of one segment: bit i = rule i's pattern matched.
struct MatchSet {
    uint64_t w[kMaxRules / 64]{};
    bool test(unsigned i) const noexcept { return (w[i / 64] >> (i % 64)) & 1; }
    void set(unsigned i) noexcept { w[i / 64] |= uint64_t{1} << (i % 64); }
};

class WorkerRules {
public:
    // Allocates everything the worker will need (scratch, buckets, counters); nothing after.
    // `workers` > 1 gives each worker a share of every rate_limit rule's rate and burst, as RSS
    // splits the traffic. `seed` keys the source -> bucket hash (live: secret per run, so that
    // nobody outside can pick sources that share a victim's bucket; a replay keeps 0).
    explicit WorkerRules(std::shared_ptr<const RuleSet> set, unsigned workers = 1, uint64_t seed = 0);
    ~WorkerRules();
    WorkerRules(const WorkerRules&) = delete;
    WorkerRules& operator=(const WorkerRules&) = delete;

    // First match wins. Counts the hit (and the drop) on the matching rule.
    Decision evaluate(const PacketView& p) noexcept;

    // The payload patterns matching the part of a segment within the first scan_limit bytes of
    // its direction (exposed for tests and tools).
    MatchSet scan(const uint8_t* payload, uint32_t len, uint32_t stream_offset = 0) noexcept;

    uint64_t hits(size_t i) const noexcept { return counters_[i].hits.load(std::memory_order_relaxed); }
    uint64_t drops(size_t i) const noexcept { return counters_[i].drops.load(std::memory_order_relaxed); }
    const RuleSet& set() const noexcept { return *set_; }
    size_t bucket_memory() const noexcept;  // bytes of token buckets held, fixed at construction

private:
    std::shared_ptr<const RuleSet> set_;
    void* scratch_ = nullptr;  // hs_scratch_t
    std::vector<RuleCounters> counters_;
    std::vector<TokenBucket> buckets_;        // per rule: one, or source_buckets for per: source
    std::vector<uint32_t> bucket_begin_;      // per rule, into buckets_
    std::vector<uint64_t> rate_, burst_;      // per rule, this worker's share
    uint32_t source_mask_;
    uint64_t seed_;
};

}  // namespace stateline::rules
