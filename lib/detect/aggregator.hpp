// SPDX-License-Identifier: BSD-3-Clause
// The control core's half of detection: every interval, merge the workers' published partial
// counts (exact: same sketch geometry), judge the heavy victims and sources against the
// thresholds of their group, and run each alert's lifecycle (start, update, end after a
// hold-down). Alerts are handed to a sink as JSON objects in the schema of docs/alerts.md.
//
// Thread safety: one thread (the control core) calls everything here. It reads the workers'
// detectors only through their double buffers and half-open gauges.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alert_types.hpp"
#include "detect_settings.hpp"
#include "detector.hpp"

namespace stateline::detect {

// AlertType, kAlertTypeCount, alert_type_name and STATELINE_ALERT_TYPES: alert_types.hpp.

// Formats "192.0.2.10", "192.0.2.10:80", "[2001:db8::10]:443".
std::string format_target(const sketch::Target& t);
// ISO 8601 UTC with microseconds, from ns since the epoch.
std::string format_time(uint64_t ns);

struct AlertCounts {
    uint64_t started[kAlertTypeCount]{};
    uint64_t ended[kAlertTypeCount]{};
    uint64_t updates = 0;
    uint64_t intervals = 0;       // intervals judged
    uint64_t late_intervals = 0;  // publications that carried more than one interval
    uint64_t suppressed = 0;      // conditions explained by a more specific alert or a scan
    uint64_t active_at_stop = 0;  // alerts still active when finish() ended them
};

class Aggregator {
public:
    using Sink = std::function<void(const nlohmann::json&)>;

    // `live`: time from the workers' clocks, publications may be late; otherwise (a capture
    // replay) every worker publishes every interval in order.
    // `verified`: the sources the workers consult, which the control core keeps up (may be null).
    Aggregator(const Settings& s, const sketch::SketchGeometry& g,
               std::vector<WorkerDetector*> workers, VerifiedSources* verified, Sink sink);

    // Takes what the workers published; when every worker has published, merges and judges the
    // interval. Returns the number of intervals judged.
    unsigned poll();
    // After the workers stopped: judges what they counted since their last publication (if
    // anything), then ends every active alert (reason: "end_of_input" or "shutdown").
    void finish(const char* reason);

    const AlertCounts& counts() const noexcept { return counts_; }
    size_t active() const noexcept { return active_.size(); }
    // Active alerts, for the summary and exporters.
    nlohmann::json active_alerts() const;
    // Each active alert's type and target (control core): what mitigation rules' victim_of reads.
    template <class F>
    void for_each_active(F&& f) const {
        for (const auto& [k, a] : active_) f(a.type, a.target);
    }
    // The last interval judged (interval numbers are ns / interval_ns), UINT64_MAX before the first.
    uint64_t last_interval() const noexcept { return last_interval_; }
    // The last interval's heaviest victims (by suspicious segments) and sources (by probes),
    // with their rates: what `stateline-ctl top` and the exporters show.
    const nlohmann::json& top_victims() const noexcept { return top_victims_; }
    const nlohmann::json& top_sources() const noexcept { return top_sources_; }
    // Active alerts, alerts started by type, top victims and sources, intervals judged.
    nlohmann::json status() const;
    const Settings& settings() const noexcept { return settings_; }
    // Called after each judged interval with its end (ns), its span (s) and each worker's counters
    // handed over with it (empty vectors if the workers handed none): a replay's aggregates per
    // interval of capture time.
    using IntervalHook = std::function<void(uint64_t end_ns, double span_s,
                                            const std::vector<const std::vector<uint64_t>*>&)>;
    void on_interval(IntervalHook h) { interval_hook_ = std::move(h); }
    // Replace the thresholds (a reload); takes effect at the next interval.
    void set_settings(const Settings& s) { settings_ = s; }

private:
    struct Metrics {
        uint32_t v[16];
    };
    struct Active {
        uint64_t id;
        AlertType type;
        uint64_t key;
        sketch::Target target;
        std::string group;
        uint64_t start_ns;
        uint64_t last_above_ns;  // end of the last interval above threshold
        double peak = 0;
        const char* severity = "low";
        nlohmann::json evidence;
    };
    struct Finding {
        AlertType type;
        uint64_t key;
        sketch::Target target;
        std::string group;
        double value, threshold;  // the deciding rate and its threshold (per second)
        nlohmann::json evidence;
    };

    void judge(uint64_t first_interval, uint64_t last_interval);
    void judge_sources(double span_s, std::vector<Finding>& out);
    void judge_victims(double span_s, uint64_t end_ns, std::vector<Finding>& out);
    void lifecycle(std::vector<Finding>& found, uint64_t end_ns);
    void merge_begin();
    void merge_one(const Partial& p, const uint32_t* half_open);
    void emit(const char* event, const Active& a, uint64_t now_ns, const nlohmann::json* evidence,
              const char* reason);
    const Thresholds& thresholds_for(const uint8_t addr[16], std::string& group) const;
    int64_t half_open_of(uint64_t key) const;
    const uint8_t* dominant_source(const uint8_t* addr, uint16_t port) const;
    nlohmann::json top_from_samples(const uint8_t* addr, bool by_dst, bool ports,
                                    uint16_t port) const;

    Settings settings_;
    std::vector<WorkerDetector*> workers_;
    VerifiedSources* verified_;
    Sink sink_;
    std::vector<sketch::Publication> held_;  // per worker: seq 0 = nothing held
    std::vector<const Partial*> held_ptr_;
    Partial merged_;
    sketch::HeavyHitters merged_victims_;
    sketch::HeavyHitters merged_sources_;
    std::vector<Sample> samples_;
    std::vector<uint32_t> half_open_;  // the workers' gauges summed cellwise
    uint64_t interval_ns_;
    uint64_t first_interval_ = UINT64_MAX;  // first judged: warm-up reference
    uint64_t last_interval_ = UINT64_MAX;   // last judged
    uint64_t next_age_ns_ = 0;
    uint64_t next_id_ = 1;
    std::map<std::pair<uint8_t, uint64_t>, Active> active_;
    std::map<uint64_t, AlertType> scanners_;  // sources judged scanning this interval
    AlertCounts counts_;
    IntervalHook interval_hook_;
    nlohmann::json top_victims_ = nlohmann::json::array();
    nlohmann::json top_sources_ = nlohmann::json::array();
    void update_tops(double span_s);
};

}  // namespace stateline::detect
