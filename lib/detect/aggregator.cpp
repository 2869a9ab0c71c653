// SPDX-License-Identifier: BSD-3-Clause
#include "aggregator.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <unordered_map>

namespace stateline::detect {

namespace {

using sketch::KeyKind;
using sketch::Target;
using T = Threshold;

// Sources verified by a completed handshake are remembered for one to two of these.
constexpr uint64_t kVerifiedAgeNs = 300ull * 1'000'000'000;
// Alerts active at once; beyond, new conditions are counted as suppressed (bounded memory even
// when an attack aims at making alerts).
constexpr size_t kMaxActive = 4096;

bool is_v4(const uint8_t a[16]) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(a, prefix, 12) == 0;
}

std::string format_addr(const uint8_t a[16]) {
    char buf[INET6_ADDRSTRLEN];
    if (is_v4(a)) inet_ntop(AF_INET, a + 12, buf, sizeof buf);
    else inet_ntop(AF_INET6, a, buf, sizeof buf);
    return buf;
}

const char* kind_name(KeyKind k) {
    switch (k) {
        case KeyKind::victim_ip: return "victim_ip";
        case KeyKind::victim_endpoint: return "victim_endpoint";
        case KeyKind::source_ip: return "source_ip";
    }
    return "?";
}

// low: up to 2x the threshold, medium: 10x, high: 100x, critical beyond.
const char* severity(double value, double threshold) {
    const double r = threshold > 0 ? value / threshold : 1e9;
    return r < 2 ? "low" : r < 10 ? "medium" : r < 100 ? "high" : "critical";
}

double ratio(uint64_t a, uint64_t b) {
    return b == 0 ? 0.0 : std::round(1e4 * static_cast<double>(a) / static_cast<double>(b)) / 1e4;
}

double rate(uint64_t n, double span_s) { return std::round(10.0 * n / span_s) / 10.0; }

}  // namespace

std::string format_target(const Target& t) {
    const std::string a = format_addr(t.addr);
    if (t.kind != KeyKind::victim_endpoint) return a;
    return (is_v4(t.addr) ? a : "[" + a + "]") + ":" + std::to_string(t.port);
}

std::string format_time(uint64_t ns) {
    const time_t s = static_cast<time_t>(ns / 1'000'000'000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[64];
    const size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%06uZ", static_cast<unsigned>(ns % 1'000'000'000 / 1000));
    return buf;
}

Aggregator::Aggregator(const Settings& s, const sketch::SketchGeometry& g,
                       std::vector<WorkerDetector*> workers, VerifiedSources* verified, Sink sink)
    : settings_(s), workers_(std::move(workers)), verified_(verified), sink_(std::move(sink)),
      held_(workers_.size()), held_ptr_(workers_.size(), nullptr), merged_(g, s.top),
      merged_victims_(std::min<uint32_t>(s.top * static_cast<uint32_t>(workers_.size()),
                                         sketch::HeavyHitters::kMaxCapacity)),
      merged_sources_(std::min<uint32_t>(s.top * static_cast<uint32_t>(workers_.size()),
                                         sketch::HeavyHitters::kMaxCapacity)),
      interval_ns_(uint64_t{s.interval_ms} * 1'000'000) {
    for (auto& h : held_) h.seq = 0;
}

void Aggregator::merge_begin() {
    merged_.victim.clear();
    merged_.source.clear();
    merged_victims_.clear();
    merged_sources_.clear();
    samples_.clear();
    half_open_.assign(merged_.half_open_words, 0);
}

void Aggregator::merge_one(const Partial& p, const uint32_t* half_open) {
    for (size_t i = 0; i < half_open_.size(); ++i) half_open_[i] += half_open[i];
    merged_.victim.merge_from(p.victim);
    merged_.source.merge_from(p.source);
    merged_victims_.merge_from(p.victim_top);
    merged_sources_.merge_from(p.source_top);
    if (verified_) verified_->merge(p.verified);
    const uint64_t n = std::min<uint64_t>(p.sampled, kSamples);
    samples_.insert(samples_.end(), p.samples, p.samples + n);
}

unsigned Aggregator::poll() {
    unsigned judged = 0;
    for (;;) {
        bool all = true;
        for (size_t w = 0; w < workers_.size(); ++w) {
            if (held_[w].seq != 0) continue;
            sketch::Publication info{};
            if (const Partial* p = workers_[w]->buffer().try_acquire(info)) {
                held_[w] = info;
                held_ptr_[w] = p;
            } else {
                all = false;
            }
        }
        if (!all || workers_.empty()) return judged;
        uint64_t first = UINT64_MAX, last = 0;
        merge_begin();
        for (size_t w = 0; w < workers_.size(); ++w) {
            first = std::min(first, held_[w].first_interval);
            last = std::max(last, held_[w].last_interval);
            if (held_[w].last_interval > held_[w].first_interval) ++counts_.late_intervals;
            merge_one(*held_ptr_[w], held_ptr_[w]->half_open);
        }
        judge(first, last);
        if (interval_hook_) {
            std::vector<const std::vector<uint64_t>*> c;
            for (size_t w = 0; w < workers_.size(); ++w) c.push_back(&held_ptr_[w]->counters);
            interval_hook_((last + 1) * interval_ns_, static_cast<double>((last - first + 1) * interval_ns_) / 1e9, c);
        }
        for (size_t w = 0; w < workers_.size(); ++w) {
            workers_[w]->buffer().release();
            held_[w].seq = 0;
            held_ptr_[w] = nullptr;
        }
        ++judged;
    }
}

void Aggregator::finish(const char* reason) {
    poll();
    // What the workers counted after their last publication (a live stop mid-interval), plus
    // any publication held while another worker had not published yet.
    merge_begin();
    bool any = false;
    const std::vector<uint32_t> zero(merged_.half_open_words, 0);
    for (size_t w = 0; w < workers_.size(); ++w) {
        // A held publication's gauges are older than the worker's final ones: count only these.
        if (held_ptr_[w]) merge_one(*held_ptr_[w], zero.data());
        const Partial& a = workers_[w]->buffer().active();
        merge_one(a, workers_[w]->half_open().cells());
        if (a.victim.total(v_suspicious) || a.source.total(s_probes) || a.victim.total(v_closed))
            any = true;
    }
    if (any && last_interval_ != UINT64_MAX) judge(last_interval_ + 1, last_interval_ + 1);
    for (size_t w = 0; w < workers_.size(); ++w) {
        if (held_ptr_[w]) workers_[w]->buffer().release();
        held_[w].seq = 0;
        held_ptr_[w] = nullptr;
    }
    const uint64_t end_ns = last_interval_ == UINT64_MAX ? 0 : (last_interval_ + 1) * interval_ns_;
    for (auto& [k, a] : active_) {
        emit("end", a, end_ns, &a.evidence, reason);
        ++counts_.ended[static_cast<unsigned>(a.type)];
        ++counts_.active_at_stop;
    }
    active_.clear();
}

const Thresholds& Aggregator::thresholds_for(const uint8_t addr[16], std::string& group) const {
    const Group* best = nullptr;
    int best_len = -1;
    for (const Group& g : settings_.groups)
        for (const Prefix& p : g.prefixes)
            if (static_cast<int>(p.len) > best_len && p.contains(addr)) {
                best = &g;
                best_len = p.len;
            }
    group = best ? best->name : "default";
    return best ? best->thresholds : settings_.thresholds;
}

int64_t Aggregator::half_open_of(uint64_t key) const {
    return HalfOpenGauge::read(half_open_.data(), merged_.victim.slots(key));
}

// Top addresses or ports among the samples that involve `addr` (as destination or source).
nlohmann::json Aggregator::top_from_samples(const uint8_t* addr, bool by_dst, bool ports,
                                            uint16_t port) const {
    std::unordered_map<std::string, uint64_t> n;
    uint64_t total = 0;
    for (const Sample& s : samples_) {
        const uint8_t* who = by_dst ? s.dst : s.src;
        if (std::memcmp(who, addr, 16) != 0) continue;
        if (port && (by_dst ? s.dport : s.sport) != port) continue;
        ++total;
        if (ports)  // the ports attacked or probed: the victim's, from either side
            ++n[std::to_string(s.dport)];
        else
            ++n[format_addr(by_dst ? s.src : s.dst)];
    }
    std::vector<std::pair<std::string, uint64_t>> v(n.begin(), n.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < v.size() && i < 5; ++i)
        out.push_back({{ports ? "port" : "addr", ports ? nlohmann::json(std::stoi(v[i].first))
                                                      : nlohmann::json(v[i].first)},
                       {"samples", v[i].second},
                       {"share", ratio(v[i].second, total)}});
    return out;
}

// The source of at least half (and at least 2) of the samples sent to `addr` (and `port` if
// not 0), or null. Ties go to the smaller address as written, as in top_from_samples.
const uint8_t* Aggregator::dominant_source(const uint8_t* addr, uint16_t port) const {
    std::map<std::array<uint8_t, 16>, std::pair<uint64_t, const uint8_t*>> n;
    uint64_t total = 0;
    for (const Sample& s : samples_) {
        if (std::memcmp(s.dst, addr, 16) != 0 || (port && s.dport != port)) continue;
        ++total;
        std::array<uint8_t, 16> k;
        std::memcpy(k.data(), s.src, 16);
        auto& e = n[k];
        ++e.first;
        e.second = s.src;
    }
    const uint8_t* best = nullptr;
    uint64_t best_n = 0;
    std::string best_name;
    for (const auto& [k, e] : n) {
        if (e.first < best_n) continue;
        const std::string name = format_addr(e.second);
        if (e.first > best_n || name < best_name) best = e.second, best_n = e.first, best_name = name;
    }
    return best && best_n >= 2 && best_n * 2 >= total ? best : nullptr;
}

void Aggregator::judge_sources(double span_s, std::vector<Finding>& out) {
    scanners_.clear();
    std::map<uint64_t, Target> cands;
    for (uint32_t i = 0; i < merged_sources_.size(); ++i) {
        const sketch::Candidate& c = merged_sources_.candidate(i);
        cands.emplace(c.key, c.target);
    }
    for (const auto& [k, a] : active_)
        if (a.target.kind == KeyKind::source_ip) cands.emplace(a.key, a.target);

    for (const auto& [key, tgt] : cands) {
        uint32_t m[SourceSketch::kMetrics];
        merged_.source.estimate_all(key, m);
        std::string group;
        const Thresholds& th = thresholds_for(tgt.addr, group);
        const uint64_t probes = m[s_probes];
        if (probes == 0 || m[s_targets] < th[T::scan_rate] * span_s) continue;
        if (uint64_t{m[s_handshake]} * 100 > uint64_t{th[T::scan_completion_max]} * probes) continue;
        Finding f;
        f.type = uint64_t{m[s_stealth]} * 2 >= probes ? AlertType::stealth_scan
                 : uint64_t{m[s_sports]} * 2 >= probes ? AlertType::connect_scan
                                                        : AlertType::syn_scan;
        f.key = key;
        f.target = tgt;
        f.group = group;
        f.value = m[s_targets] / span_s;
        f.threshold = th[T::scan_rate];
        f.evidence = {
            {"probes_per_s", rate(probes, span_s)},
            {"targets_per_s", rate(m[s_targets], span_s)},
            {"threshold_targets_per_s", th[T::scan_rate]},
            {"completion_ratio", ratio(m[s_handshake], probes)},
            {"answered_ratio", ratio(m[s_answered], probes)},
            {"refused_ratio", ratio(m[s_refused], probes)},
            {"source_ports_ratio", ratio(m[s_sports], probes)},
            {"top_victims", top_from_samples(tgt.addr, false, false, 0)},
            {"top_ports", top_from_samples(tgt.addr, false, true, 0)},
        };
        if (f.type == AlertType::stealth_scan) {
            uint64_t fin = 0, null = 0, xmas = 0;
            for (const Sample& s : samples_) {
                if (std::memcmp(s.src, tgt.addr, 16) != 0 || !(s.signals & tcp::signal::stealth_probe))
                    continue;
                const uint8_t fl = s.tcp_flags & 0x3f;
                if (fl == 0) ++null;
                else if (fl == (packet::tcp_flag::fin | packet::tcp_flag::psh | packet::tcp_flag::urg)) ++xmas;
                else if (fl == packet::tcp_flag::fin) ++fin;
            }
            f.evidence["variant"] = fin >= null && fin >= xmas ? (fin ? "fin" : "unknown")
                                    : null >= xmas             ? "null"
                                                               : "xmas";
        }
        scanners_[key] = f.type;
        out.push_back(std::move(f));
    }
}

void Aggregator::judge_victims(double span_s, uint64_t end_ns, std::vector<Finding>& out) {
    struct Cand {
        uint64_t key;
        Target target;
        uint32_t m[VictimSketch::kMetrics];
        int64_t half_open;
        std::string group;
        std::vector<Finding> found;
    };
    std::map<uint64_t, Target> keys;
    for (uint32_t i = 0; i < merged_victims_.size(); ++i) {
        const sketch::Candidate& c = merged_victims_.candidate(i);
        keys.emplace(c.key, c.target);
    }
    for (const auto& [k, a] : active_)
        if (a.target.kind != KeyKind::source_ip) keys.emplace(a.key, a.target);

    const bool warm =
        end_ns >= first_interval_ * interval_ns_ + uint64_t{settings_.warmup_s} * 1'000'000'000;
    std::vector<Cand> cands;
    cands.reserve(keys.size());
    for (const auto& [key, tgt] : keys) {
        Cand c;
        c.key = key;
        c.target = tgt;
        merged_.victim.estimate_all(key, c.m);
        c.half_open = half_open_of(key);
        const Thresholds& th = thresholds_for(tgt.addr, c.group);
        const uint32_t* m = c.m;
        const uint64_t syn = m[v_syn];
        auto add = [&](AlertType t, double value, double threshold, nlohmann::json ev) {
            Finding f;
            f.type = t;
            f.key = key;
            f.target = tgt;
            f.group = c.group;
            f.value = value;
            f.threshold = threshold;
            f.evidence = std::move(ev);
            c.found.push_back(std::move(f));
        };
        auto syn_evidence = [&] {
            return nlohmann::json{
                {"syn_per_s", rate(syn, span_s)},
                {"synack_answer_ratio", ratio(m[v_synack], syn)},
                {"completion_ratio", ratio(m[v_handshake], syn)},
                {"unverified_source_share", ratio(m[v_syn_unverified], syn)},
                {"half_open", c.half_open},
            };
        };
        const bool low_completion_flood =
            uint64_t{m[v_handshake]} * 100 <= uint64_t{th[T::syn_flood_completion_max]} * syn;
        if (syn > 0 && syn >= th[T::syn_flood_rate] * span_s && low_completion_flood) {
            auto ev = syn_evidence();
            ev["threshold_syn_per_s"] = th[T::syn_flood_rate];
            add(AlertType::syn_flood, syn / span_s, th[T::syn_flood_rate], std::move(ev));
        } else if (syn > 0 && c.half_open >= th[T::half_open_count] &&
                   // A server whose backlog fills answers (SYN-ACKs) at least at first; SYNs to
                   // an address nobody answers from are a scan's or a flood's. Once alerted, its
                   // full backlog may stay silent for longer than the hold-down.
                   (m[v_synack] > 0 ||
                    active_.count({static_cast<uint8_t>(AlertType::half_open_exhaustion), key})) &&
                   // The tail of a SYN flood is that flood's.
                   !active_.count({static_cast<uint8_t>(AlertType::syn_flood), key}) &&
                   syn >= th[T::half_open_syn_rate] * span_s &&
                   uint64_t{m[v_handshake]} * 100 <= uint64_t{th[T::half_open_completion_max]} * syn) {
            auto ev = syn_evidence();
            ev["threshold_half_open"] = th[T::half_open_count];
            add(AlertType::half_open_exhaustion, static_cast<double>(c.half_open),
                th[T::half_open_count], std::move(ev));
        }
        struct Stray {
            AlertType type;
            unsigned metric;
            Threshold th;
            const char* unit;
        };
        static const Stray strays[] = {
            {AlertType::synack_reflection, v_stray_synack, T::synack_reflection_rate, "synack_per_s"},
            {AlertType::ack_flood, v_stray_ack, T::ack_flood_rate, "ack_per_s"},
            {AlertType::rst_flood, v_stray_rst, T::rst_flood_rate, "rst_per_s"},
            {AlertType::fin_flood, v_stray_fin, T::fin_flood_rate, "fin_per_s"},
            {AlertType::rst_injection, v_rst_injection, T::rst_injection_rate, "injections_per_s"},
        };
        for (const Stray& s : strays) {
            if (s.type == AlertType::ack_flood && !warm) continue;
            const uint64_t n = m[s.metric];
            if (n == 0 || n < th[s.th] * span_s) continue;
            add(s.type, n / span_s, th[s.th],
                {{s.unit, rate(n, span_s)}, {std::string("threshold_") + s.unit, th[s.th]}});
        }
        if (tgt.kind == KeyKind::victim_ip && m[v_abnormal] > 0 &&
            m[v_abnormal] >= th[T::abnormal_teardown_rate] * span_s &&
            uint64_t{m[v_abnormal]} * 100 >= uint64_t{th[T::abnormal_teardown_share]} * m[v_closed]) {
            add(AlertType::abnormal_teardown, m[v_abnormal] / span_s, th[T::abnormal_teardown_rate],
                {{"abnormal_per_s", rate(m[v_abnormal], span_s)},
                 {"closed_per_s", rate(m[v_closed], span_s)},
                 {"abnormal_share", ratio(m[v_abnormal], m[v_closed])},
                 {"threshold_abnormal_per_s", th[T::abnormal_teardown_rate]}});
        }
        if (!c.found.empty()) cands.push_back(std::move(c));
    }

    for (Cand& c : cands) {
        for (Finding& f : c.found) {
            // An address-wide finding that one port explains is reported on that port only.
            if (c.target.kind == KeyKind::victim_ip) {
                bool explained = false;
                for (const Cand& e : cands)
                    if (e.target.kind == KeyKind::victim_endpoint &&
                        std::memcmp(e.target.addr, c.target.addr, 16) == 0)
                        for (const Finding& g : e.found)
                            if (g.type == f.type && g.value * 2 >= f.value) explained = true;
                if (explained) {
                    ++counts_.suppressed;
                    continue;
                }
            }
            // What a scanner does to its targets is the scan, not a flood on each of them.
            const uint16_t port = c.target.kind == KeyKind::victim_endpoint ? c.target.port : 0;
            const uint8_t* dominant = dominant_source(c.target.addr, port);
            if (dominant) {
                const uint64_t sk = sketch::source_ip_key(dominant);
                bool scanner = scanners_.count(sk) != 0;
                for (AlertType t : {AlertType::syn_scan, AlertType::stealth_scan, AlertType::connect_scan})
                    scanner = scanner || active_.count({static_cast<uint8_t>(t), sk}) != 0;
                if (scanner) {
                    ++counts_.suppressed;
                    continue;
                }
            }
            // Half-open exhaustion is many sources' doing (spoofed); one source holding a host's
            // connections half-open is scanning it (or will be judged a SYN flood by its rate).
            if (f.type == AlertType::half_open_exhaustion && dominant) {
                ++counts_.suppressed;
                continue;
            }
            // A host's abnormal teardowns during another attack on it are that attack's.
            if (f.type == AlertType::abnormal_teardown) {
                bool other = false;
                for (const Cand& e : cands)
                    if (std::memcmp(e.target.addr, c.target.addr, 16) == 0)
                        for (const Finding& g : e.found)
                            if (g.type != AlertType::abnormal_teardown) other = true;
                for (const auto& [k, a] : active_)
                    if (a.type != AlertType::abnormal_teardown && a.target.kind != KeyKind::source_ip &&
                        std::memcmp(a.target.addr, c.target.addr, 16) == 0)
                        other = true;
                if (other) {
                    ++counts_.suppressed;
                    continue;
                }
            }
            f.evidence["top_sources"] = top_from_samples(c.target.addr, true, false, port);
            if (c.target.kind == KeyKind::victim_ip)
                f.evidence["top_ports"] = top_from_samples(c.target.addr, true, true, 0);
            out.push_back(std::move(f));
        }
    }
}

void Aggregator::judge(uint64_t first_interval, uint64_t last_interval) {
    if (first_interval_ == UINT64_MAX) first_interval_ = first_interval;
    last_interval_ = last_interval;
    const uint64_t span_ns = (last_interval - first_interval + 1) * interval_ns_;
    const uint64_t end_ns = (last_interval + 1) * interval_ns_;
    const double span_s = static_cast<double>(span_ns) / 1e9;
    ++counts_.intervals;
    if (verified_) {
        if (next_age_ns_ == 0) next_age_ns_ = end_ns + kVerifiedAgeNs;
        if (end_ns >= next_age_ns_) {
            verified_->age();
            next_age_ns_ = end_ns + kVerifiedAgeNs;
        }
    }
    merged_victims_.reestimate(merged_.victim, v_suspicious);
    merged_sources_.reestimate(merged_.source, s_probes);
    update_tops(span_s);
    std::vector<Finding> found;
    judge_sources(span_s, found);
    judge_victims(span_s, end_ns, found);
    lifecycle(found, end_ns);
}

void Aggregator::lifecycle(std::vector<Finding>& found, uint64_t end_ns) {
    for (Finding& f : found) {
        const auto id = std::make_pair(static_cast<uint8_t>(f.type), f.key);
        f.evidence["severity_ratio"] = std::round(100.0 * f.value / f.threshold) / 100.0;
        auto it = active_.find(id);
        if (it == active_.end()) {
            if (active_.size() >= kMaxActive) {
                ++counts_.suppressed;
                continue;
            }
            Active a;
            a.id = next_id_++;
            a.type = f.type;
            a.key = f.key;
            a.target = f.target;
            a.group = f.group;
            // Raised at the end of the first interval in which the condition held.
            a.start_ns = end_ns;
            a.last_above_ns = end_ns;
            a.peak = f.value;
            a.severity = severity(f.value, f.threshold);
            a.evidence = std::move(f.evidence);
            ++counts_.started[static_cast<unsigned>(a.type)];
            auto& ref = active_.emplace(id, std::move(a)).first->second;
            emit("start", ref, end_ns, &ref.evidence, nullptr);
        } else {
            Active& a = it->second;
            a.last_above_ns = end_ns;
            if (f.value > a.peak) {
                a.peak = f.value;
                a.severity = severity(f.value, f.threshold);
            }
            a.evidence = std::move(f.evidence);
            ++counts_.updates;
            emit("update", a, end_ns, &a.evidence, nullptr);
        }
    }
    const uint64_t hold = uint64_t{settings_.hold_down_s} * 1'000'000'000;
    for (auto it = active_.begin(); it != active_.end();) {
        Active& a = it->second;
        if (a.last_above_ns != end_ns && end_ns - a.last_above_ns >= hold) {
            emit("end", a, end_ns, &a.evidence, "below_threshold");
            ++counts_.ended[static_cast<unsigned>(a.type)];
            it = active_.erase(it);
        } else {
            ++it;
        }
    }
}

void Aggregator::emit(const char* event, const Active& a, uint64_t now_ns,
                      const nlohmann::json* evidence, const char* reason) {
    if (!sink_) return;
    nlohmann::json j = {
        {"ts", format_time(now_ns)},
        {"ts_ns", now_ns},
        {"event", event},
        {"id", a.id},
        {"type", alert_type_name(a.type)},
        {"target", format_target(a.target)},
        {"target_kind", kind_name(a.target.kind)},
        {"group", a.group},
        {"severity", a.severity},
        {"start", format_time(a.start_ns)},
        {"start_ns", a.start_ns},
        {"duration_s", static_cast<double>(now_ns - a.start_ns) / 1e9},
        {"interval_s", static_cast<double>(interval_ns_) / 1e9},
    };
    if (reason) j["reason"] = reason;
    if (evidence) j["evidence"] = *evidence;
    sink_(j);
}

void Aggregator::update_tops(double span_s) {
    constexpr uint32_t kTop = 10;
    sketch::Candidate c[kTop];
    top_victims_ = nlohmann::json::array();
    for (uint32_t i = 0, n = merged_victims_.top(c, kTop); i < n; ++i) {
        uint32_t m[VictimSketch::kMetrics];
        merged_.victim.estimate_all(c[i].key, m);
        top_victims_.push_back({{"target", format_target(c[i].target)},
                                {"target_kind", kind_name(c[i].target.kind)},
                                {"suspicious_per_s", rate(m[v_suspicious], span_s)},
                                {"syn_per_s", rate(m[v_syn], span_s)},
                                {"handshakes_per_s", rate(m[v_handshake], span_s)},
                                {"stray_ack_per_s", rate(m[v_stray_ack], span_s)},
                                {"stray_rst_per_s", rate(m[v_stray_rst], span_s)},
                                {"stray_fin_per_s", rate(m[v_stray_fin], span_s)},
                                {"stray_synack_per_s", rate(m[v_stray_synack], span_s)},
                                {"half_open", half_open_of(c[i].key)}});
    }
    top_sources_ = nlohmann::json::array();
    for (uint32_t i = 0, n = merged_sources_.top(c, kTop); i < n; ++i) {
        uint32_t m[SourceSketch::kMetrics];
        merged_.source.estimate_all(c[i].key, m);
        top_sources_.push_back({{"source", format_target(c[i].target)},
                                {"probes_per_s", rate(m[s_probes], span_s)},
                                {"targets_per_s", rate(m[s_targets], span_s)},
                                {"handshakes_per_s", rate(m[s_handshake], span_s)}});
    }
}

nlohmann::json Aggregator::status() const {
    nlohmann::json started = nlohmann::json::object();
    for (unsigned t = 0; t < kAlertTypeCount; ++t) started[alert_type_name(static_cast<AlertType>(t))] = counts_.started[t];
    return {{"active", active_alerts()},
            {"started", started},
            {"top_victims", top_victims_},
            {"top_sources", top_sources_},
            {"intervals", counts_.intervals}};
}

nlohmann::json Aggregator::active_alerts() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [k, a] : active_)
        out.push_back({{"id", a.id},
                       {"type", alert_type_name(a.type)},
                       {"target", format_target(a.target)},
                       {"target_kind", kind_name(a.target.kind)},
                       {"peak", a.peak},
                       {"group", a.group},
                       {"severity", a.severity},
                       {"start", format_time(a.start_ns)}});
    return out;
}

}  // namespace stateline::detect
