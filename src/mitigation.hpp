// SPDX-License-Identifier: BSD-3-Clause
// Mitigation on the control core: hands each worker its rules and the targets of the active
// alerts through the worker's MitigationBox (worker.hpp), collects what the workers hand back,
// and keeps every rule's counts across reloads.
//
//   rules:   RuleSet (immutable, shared) -> one WorkerRules per worker (its Hyperscan scratch,
//            token buckets and counters), built here, swapped in by the worker at a burst
//            boundary. Its flow table is untouched, and each frame is evaluated by exactly one
//            set: the old one before the boundary, the new one after. The retired set's counts
//            are added to the totals of the rules of the same name, so nothing is lost or
//            counted twice.
//   victims: after each judged detection interval, a VictimSet per worker built from the
//            aggregator's active alerts (address-wide and address:port targets).
//
// Thread safety: control core only (the mailboxes are the only state shared with workers).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rules.hpp"
#include "stats.hpp"

namespace stateline {

struct Worker;
namespace detect {
class Aggregator;
class VerifiedSources;
}  // namespace detect

class Mitigation {
public:
    // `verified`: detection's verified sources (null when detection is off). `seed`: keys the
    // per-source token buckets (live: random per run; replay: 0, for the same results each time).
    Mitigation(std::vector<Worker*> workers, const detect::VerifiedSources* verified, bool inline_mode,
               uint64_t seed = 0);
    ~Mitigation();  // after the workers stopped: frees what they held
    Mitigation(const Mitigation&) = delete;
    Mitigation& operator=(const Mitigation&) = delete;

    // Before the workers start: their first rules (null or empty: none) and mode.
    void install(std::shared_ptr<const rules::RuleSet> set);

    // Control loop: collects what workers handed back; after each newly judged interval, offers
    // them the active alerts' targets. Bounded work, never waits.
    void poll(const detect::Aggregator* aggregator);

    // A reload: offers `set` to every worker. False with the reason when the previous swap has
    // not reached every worker yet (then nothing is offered).
    bool offer(std::shared_ptr<const rules::RuleSet> set, std::string& why);
    bool swap_pending() const noexcept;

    // The rules as running (the newest set's order), each with its counts; then the rules of
    // older sets (still in use by a worker mid-swap, or reloaded away: action "removed"), so
    // that the hits of every rule ever run add up to the segments evaluated.
    std::vector<RuleStat> stats() const;
    const std::shared_ptr<const rules::RuleSet>& current() const noexcept { return current_; }
    uint64_t generation() const noexcept { return generation_; }
    bool inline_mode() const noexcept { return inline_; }

private:
    struct PerWorker {
        rules::WorkerRules* active = nullptr;   // what the worker evaluates
        rules::WorkerRules* pending = nullptr;  // offered, not yet taken
    };
    void collect();
    void fold(const rules::WorkerRules& r);  // adds a retired set's counts to totals_

    std::vector<Worker*> workers_;
    std::vector<PerWorker> per_;
    const detect::VerifiedSources* verified_;
    bool inline_;
    uint64_t seed_;
    std::shared_ptr<const rules::RuleSet> current_;  // newest set offered (or installed)
    uint64_t generation_ = 0;                        // of current_
    struct Total {
        std::string action;
        uint64_t hits = 0, drops = 0;
    };
    std::map<std::string, Total> totals_;  // retired sets' counts by rule name
    uint64_t last_interval_ = UINT64_MAX;            // last interval offered victims for
};

}  // namespace stateline
