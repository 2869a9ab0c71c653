// SPDX-License-Identifier: BSD-3-Clause
#include "stats.hpp"

namespace stateline {

using counters::descriptors;
using counters::Kind;

int Snapshot::index(const std::string& group, const std::string& name) {
    const auto& d = descriptors();
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i].group == group && d[i].name == name) return static_cast<int>(i);
    return -1;
}

uint64_t Snapshot::value(const std::string& group, const std::string& name) const {
    const int i = index(group, name);
    return i < 0 || static_cast<size_t>(i) >= total.size() ? 0 : total[static_cast<size_t>(i)];
}

double Snapshot::rate_of(const std::string& group, const std::string& name) const {
    const int i = index(group, name);
    return i < 0 || static_cast<size_t>(i) >= rate.size() ? 0 : rate[static_cast<size_t>(i)];
}

nlohmann::json Snapshot::to_json(bool per_worker_detail) const {
    const auto& d = descriptors();
    nlohmann::json j;
    j["seq"] = seq;
    j["time"] = wall_s;
    j["uptime_s"] = uptime_s;
    j["interval_s"] = interval_s;
    j["clock_ns"] = clock_ns;
    j["mode"] = mode;
    j["running"] = running;
    nlohmann::json& c = j["counters"] = nlohmann::json::object();
    nlohmann::json& r = j["rates"] = nlohmann::json::object();
    for (size_t i = 0; i < d.size() && i < total.size(); ++i) {
        c[d[i].group][d[i].name] = total[i];
        if (d[i].kind == Kind::counter) r[d[i].group][d[i].name] = rate[i];
    }
    nlohmann::json& ws = j["workers"] = nlohmann::json::array();
    for (size_t w = 0; w < per_worker.size(); ++w) {
        nlohmann::json o;
        o["id"] = w;
        const int rx = index("rx", "rx_packets"), busy = index("rx", "polls_busy"),
                  idle = index("rx", "polls_idle"), act = index("flows", "active");
        o["rx_packets"] = per_worker[w][static_cast<size_t>(rx)];
        o["rx_pps"] = per_worker_rate[w][static_cast<size_t>(rx)];
        o["polls_busy"] = per_worker[w][static_cast<size_t>(busy)];
        o["polls_idle"] = per_worker[w][static_cast<size_t>(idle)];
        o["flows_active"] = per_worker[w][static_cast<size_t>(act)];
        if (per_worker_detail) {
            nlohmann::json& wc = o["counters"] = nlohmann::json::object();
            for (size_t i = 0; i < d.size(); ++i) wc[d[i].group][d[i].name] = per_worker[w][i];
        }
        ws.push_back(std::move(o));
    }
    nlohmann::json& ps = j["ports"] = nlohmann::json::array();
    for (const auto& p : ports)
        ps.push_back({{"name", p.name}, {"ipackets", p.ipackets}, {"ibytes", p.ibytes},
                      {"imissed", p.imissed}, {"ierrors", p.ierrors}, {"rx_nombuf", p.rx_nombuf},
                      {"opackets", p.opackets}, {"oerrors", p.oerrors}, {"link_up", p.link_up},
                      {"link_changes", p.link_changes}});
    j["detection"] = detection;
    // Mitigation: the rules in running order, counts summed over workers and reloads.
    nlohmann::json rs = nlohmann::json::array();
    for (const auto& x : rules)
        rs.push_back({{"name", x.name}, {"action", x.action}, {"hits", x.hits}, {"drops", x.drops}});
    j["mitigation"] = {{"mode", mitigation_mode}, {"generation", rules_generation}, {"rules", std::move(rs)}};
    return j;
}

StatsCollector::StatsCollector(std::vector<const counters::PublishedCounters*> workers,
                               std::string mode)
    : workers_(std::move(workers)), mode_(std::move(mode)) {}

std::shared_ptr<Snapshot> StatsCollector::take(double wall_s, double uptime_s) {
    const auto& d = descriptors();
    auto s = std::make_shared<Snapshot>();
    s->wall_s = wall_s;
    s->uptime_s = uptime_s;
    s->interval_s = prev_ ? wall_s - prev_->wall_s : uptime_s;
    s->per_worker.assign(workers_.size(), std::vector<uint64_t>(d.size(), 0));
    for (size_t w = 0; w < workers_.size(); ++w) {
        uint64_t now = 0;
        if (!workers_[w]->read(s->per_worker[w], now)) s->per_worker[w].assign(d.size(), 0);
        s->clock_ns = std::max(s->clock_ns, now);
    }
    return finish(std::move(s));
}

std::shared_ptr<Snapshot> StatsCollector::take_interval(
    const std::vector<const std::vector<uint64_t>*>& per_worker, uint64_t clock_ns, double interval_s,
    double wall_s, double uptime_s) {
    const auto& d = descriptors();
    auto s = std::make_shared<Snapshot>();
    s->wall_s = wall_s;
    s->uptime_s = uptime_s;
    s->interval_s = interval_s;
    s->clock_ns = clock_ns;
    for (const auto* v : per_worker)
        s->per_worker.push_back(v && v->size() == d.size() ? *v : std::vector<uint64_t>(d.size(), 0));
    return finish(std::move(s));
}

std::shared_ptr<Snapshot> StatsCollector::finish(std::shared_ptr<Snapshot> s) {
    const auto& d = descriptors();
    s->seq = ++seq_;
    s->mode = mode_;
    s->total.assign(d.size(), 0);
    for (const auto& v : s->per_worker)
        for (size_t i = 0; i < d.size(); ++i) s->total[i] += v[i];
    const double dt = s->interval_s;  // 0: no time passed, no rate
    auto rates = [&](const std::vector<uint64_t>& now, const std::vector<uint64_t>* before) {
        std::vector<double> r(d.size(), 0.0);
        for (size_t i = 0; i < d.size(); ++i) {
            if (d[i].kind != Kind::counter || dt <= 0) continue;
            const uint64_t b = before && i < before->size() ? (*before)[i] : 0;
            r[i] = now[i] >= b ? static_cast<double>(now[i] - b) / dt : 0.0;
        }
        return r;
    };
    s->rate = rates(s->total, prev_ ? &prev_->total : nullptr);
    for (size_t w = 0; w < workers_.size(); ++w)
        s->per_worker_rate.push_back(
            rates(s->per_worker[w], prev_ && w < prev_->per_worker.size() ? &prev_->per_worker[w] : nullptr));
    prev_ = s;
    return s;
}

}  // namespace stateline
