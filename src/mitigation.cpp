// SPDX-License-Identifier: BSD-3-Clause
#include "mitigation.hpp"

#include <cstring>

#include "aggregator.hpp"
#include "memory_budget.hpp"
#include "worker.hpp"

namespace stateline {

Mitigation::Mitigation(std::vector<Worker*> workers, const detect::VerifiedSources* verified, bool inline_mode,
                       uint64_t seed)
    : workers_(std::move(workers)), per_(workers_.size()), verified_(verified), inline_(inline_mode), seed_(seed) {}

Mitigation::~Mitigation() {
    // The workers have stopped: whatever is in their hands or their mailboxes is ours to free.
    for (size_t i = 0; i < workers_.size(); ++i) {
        Worker& w = *workers_[i];
        MitigationBox& b = w.mit;
        delete b.rules_offered.exchange(nullptr);
        if (b.rules_retired_full.exchange(false)) delete b.rules_retired.exchange(nullptr);
        delete w.rules;
        w.rules = nullptr;
        delete b.victims_offered.exchange(nullptr);
        delete b.victims_retired.exchange(nullptr);
        delete w.victims;
        w.victims = nullptr;
    }
}

void Mitigation::install(std::shared_ptr<const rules::RuleSet> set) {
    if (!set) set = rules::RuleSet::build({}).set;
    const unsigned n = static_cast<unsigned>(workers_.size());
    for (size_t i = 0; i < workers_.size(); ++i) {
        Worker& w = *workers_[i];
        w.rules = new rules::WorkerRules(set, n, seed_);
        per_[i].active = w.rules;
        w.verified = verified_;
        w.inline_mode = inline_;
        w.tx_queue = static_cast<uint16_t>(w.id);
    }
    current_ = std::move(set);
    generation_ = 1;
}

void Mitigation::fold(const rules::WorkerRules& r) {
    const rules::RuleSet& s = r.set();
    for (size_t i = 0; i < s.size(); ++i) {
        Total& t = totals_[s.spec(i).name];
        t.action = rules::action_name(s.spec(i).action);
        t.hits += r.hits(i);
        t.drops += r.drops(i);
    }
}

void Mitigation::collect() {
    for (size_t i = 0; i < workers_.size(); ++i) {
        MitigationBox& b = workers_[i]->mit;
        if (b.rules_retired_full.load(std::memory_order_acquire)) {
            // The worker swapped: what it handed back is the set it used until then.
            rules::WorkerRules* old = b.rules_retired.exchange(nullptr, std::memory_order_acq_rel);
            if (old) {
                fold(*old);
                delete old;
            }
            per_[i].active = per_[i].pending;
            per_[i].pending = nullptr;
            b.rules_retired_full.store(false, std::memory_order_release);
        }
        if (rules::VictimSet* v = b.victims_retired.exchange(nullptr, std::memory_order_acq_rel)) delete v;
    }
}

void Mitigation::poll(const detect::Aggregator* agg) {
    collect();
    if (!agg) return;
    const uint64_t last = agg->last_interval();
    if (last == UINT64_MAX || last == last_interval_) return;
    last_interval_ = last;
    std::vector<rules::VictimEntry> entries;
    agg->for_each_active([&](detect::AlertType t, const sketch::Target& tg) {
        if (tg.kind != sketch::KeyKind::victim_ip && tg.kind != sketch::KeyKind::victim_endpoint) return;
        rules::VictimEntry e{};
        std::memcpy(e.addr, tg.addr, 16);
        e.port = tg.kind == sketch::KeyKind::victim_endpoint ? tg.port : 0;
        e.bits = rules::victim_bit(t);
        entries.push_back(e);
    });
    for (Worker* w : workers_) {
        // A set the worker has not taken yet is replaced: it never saw it, so it is ours to free.
        delete w->mit.victims_offered.exchange(new rules::VictimSet(entries, last), std::memory_order_acq_rel);
    }
}

bool Mitigation::swap_pending() const noexcept {
    for (const auto& p : per_)
        if (p.pending) return true;
    return false;
}

bool Mitigation::offer(std::shared_ptr<const rules::RuleSet> set, std::string& why) {
    collect();
    if (swap_pending()) {
        why = "the previous rule swap has not reached every worker yet; try again in a moment";
        return false;
    }
    if (!set) set = rules::RuleSet::build({}).set;
    const unsigned n = static_cast<unsigned>(workers_.size());
    // The memory first, from the set's own figures: building WorkerRules that cannot fit would
    // touch gigabytes of token buckets (and may wake the OOM killer) before bad_alloc says so.
    {
        MemoryItem item;
        const size_t per_source = set->per_source_rules();
        item.bytes = uint64_t(set->worker_memory()) * n;
        item.what = "the new rules (" + std::to_string(per_source) + " per-source rate_limit rule(s) x " +
                    "mitigation.source_buckets " + std::to_string(set->options().source_buckets) + " x " +
                    std::to_string(sizeof(rules::TokenBucket)) + " B, Hyperscan scratch, x " + std::to_string(n) +
                    " worker(s))";
        item.lower = per_source ? "mitigation.source_buckets or use fewer per: source rules" : "the number of rules";
        std::string err = check_memory({item}, mem_available_bytes(), "MemAvailable");
        if (!err.empty()) {
            why = err + "; the running rules stay";
            return false;
        }
    }
    // Everything is built before anything is offered: an allocation failure changes nothing.
    std::vector<std::unique_ptr<rules::WorkerRules>> built;
    try {
        for (size_t i = 0; i < workers_.size(); ++i) built.push_back(std::make_unique<rules::WorkerRules>(set, n, seed_));
    } catch (const std::bad_alloc&) {
        why = "not enough memory for the new rules' scratch and token buckets; the running rules stay";
        return false;
    }
    for (size_t i = 0; i < workers_.size(); ++i) {
        per_[i].pending = built[i].release();
        workers_[i]->mit.rules_offered.store(per_[i].pending, std::memory_order_release);
    }
    current_ = std::move(set);
    ++generation_;
    return true;
}

std::vector<RuleStat> Mitigation::stats() const {
    std::map<std::string, Total> sum = totals_;
    for (const auto& p : per_) {
        if (!p.active) continue;
        const rules::RuleSet& s = p.active->set();
        for (size_t i = 0; i < s.size(); ++i) {
            Total& t = sum[s.spec(i).name];
            t.action = rules::action_name(s.spec(i).action);
            t.hits += p.active->hits(i);
            t.drops += p.active->drops(i);
        }
    }
    std::vector<RuleStat> out;
    if (current_)
        for (size_t i = 0; i < current_->size(); ++i) {
            const auto& sp = current_->spec(i);
            auto it = sum.find(sp.name);
            out.push_back({sp.name, rules::action_name(sp.action), it == sum.end() ? 0 : it->second.hits,
                           it == sum.end() ? 0 : it->second.drops});
            if (it != sum.end()) sum.erase(it);
        }
    // Older sets' rules: a worker mid-swap still runs them, or a reload removed them.
    for (const auto& [name, t] : sum) {
        bool running = false;
        for (const auto& p : per_)
            if (p.active)
                for (size_t i = 0; i < p.active->set().size() && !running; ++i) running = p.active->set().spec(i).name == name;
        out.push_back({name, running ? t.action : "removed", t.hits, t.drops});
    }
    return out;
}

}  // namespace stateline
