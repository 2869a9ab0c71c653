// SPDX-License-Identifier: BSD-3-Clause
// stateline-rules: offline work on mitigation rules (issue 7).
//   stateline-rules check FILE   validates a whole config (lib/config, rules: included, Hyperscan
//                                patterns compiled) and prints every error as file:line:col: what.
//   stateline-rules test FILE --pcap CAPTURE [--labels L.json --packet-labels L.bin] [--json]
//                                replays a capture (libpcap) through the parser, a flow table and
//                                the TCP tracker (plain C++, no EAL), detection (one worker's
//                                detector and the aggregator, intervals from packet time, as the
//                                appliance's capture replay) and the rules, packet timestamps as
//                                the clock; reports each rule's hits and drops, the alerts raised
//                                and, with labels, what each attack and the legitimate traffic
//                                would lose.
// Exit status: 0 valid (test: replayed), 1 usage error, 2 the config has errors, 3 an input
// (capture or labels) cannot be used.
#include <CLI/CLI.hpp>
#include <pcap/pcap.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "aggregator.hpp"
#include "config.hpp"
#include "detector.hpp"
#include "flow_table.hpp"
#include "parser.hpp"
#include "rules.hpp"
#include "tcp_tracker.hpp"

namespace {

const char* const kFooter = R"(
Exit status: 0 the config is valid (test: the capture was replayed), 1 usage error, 2 the config
has errors, 3 the capture or the labels cannot be used.

'stateline-rules test FILE --pcap CAPTURE [--labels LABELS.json --packet-labels LABELS.bin]'
replays a capture through the rules and reports each rule's hits and drops, which labelled
attacks would be mitigated and how much legitimate traffic would be hit (labels from
stateline-gen --labels/--packet-labels). Every packet is tracked, dropped or not, as the worker
evaluates the rules after the TCP step. Detection is replayed as the appliance replays a capture
with one worker (intervals of detect.interval_ms from packet time, the fixed replay seed): the
alerts active after interval k was judged are the victims victim_of sees from the first packet
of interval k+1 on, and src_verified reads the sources seen completing a handshake up to the last
judged interval. The alerts raised are reported. With detect.enabled: false nothing is
detected: victim_of conditions never match and no source counts as verified.)";

std::string plural(size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

int check(const std::string& path) {
    const auto r = stateline::config::load_file(path);
    if (!r.ok()) {
        for (const auto& e : r.errors) std::fprintf(stderr, "%s: %s\n", e.where.c_str(), e.what.c_str());
        std::fprintf(stderr, "%s: %s\n", path.c_str(), plural(r.errors.size(), "error", "errors").c_str());
        return 2;
    }
    size_t rules = 0, payload = 0;
    if (r.config.rules) {
        rules = r.config.rules->size();
        for (size_t i = 0; i < rules; ++i) payload += !r.config.rules->spec(i).payload.empty();
    }
    std::string summary = path + ": OK, " + plural(rules, "rule", "rules");
    if (payload > 0) summary += " (" + plural(payload, "payload pattern", "payload patterns") + ", compiled for Hyperscan)";
    summary += ", " + plural(r.config.detect.groups.size(), "group", "groups");
    std::printf("%s\n", summary.c_str());
    return 0;
}


// ---- test: replaying a capture -------------------------------------------------------------

namespace sp = stateline::packet;
namespace sf = stateline::flow;
namespace st = stateline::tcp;
namespace sr = stateline::rules;
namespace sd = stateline::detect;
namespace sk = stateline::sketch;
using nlohmann::json;

// What the flow table's removal hook needs: as src/worker.cpp worker_on_remove, a closed
// connection goes to the detector (not at the final flush: that is no teardown to judge).
struct RemoveCtx {
    sf::FlowTable* table = nullptr;
    const st::Tracker* tracker = nullptr;
    sd::WorkerDetector* detector = nullptr;
    uint64_t* tcp_counters = nullptr;
};

void on_remove(void* ctx, uint32_t idx, sf::RemoveReason why) {
    auto& c = *static_cast<RemoveCtx*>(ctx);
    stateline::connlog::ConnRecord r;
    c.tracker->finish(c.table->entry(idx), c.table->cold(idx), why, r, c.tcp_counters);
    if (c.detector && why != sf::RemoveReason::flushed) c.detector->on_close(r);
}

bool verified_source(const void* ctx, const uint8_t* addr) noexcept {
    return static_cast<const sd::VerifiedSources*>(ctx)->contains(addr);
}

// An alert raised during the replay, from the aggregator's start and end events.
struct AlertSeen {
    uint64_t id = 0;
    std::string type, target, target_kind, severity, start, end, end_reason;
    uint64_t start_ns = 0, end_ns = 0;
    bool ended = false;
};

struct Tally {
    uint64_t packets = 0, hit = 0, dropped = 0;
};

struct AttackInfo {
    unsigned id = 0;
    std::string type, target;
    int64_t packets_attacker = -1;  // the labels' packets_attacker: the attacker's own packets (not the victims' answers)
};

double share(uint64_t n, uint64_t d) { return d ? static_cast<double>(n) / static_cast<double>(d) : 0.0; }

std::string pct(uint64_t n, uint64_t d) {
    if (d == 0) return "-";
    char b[32];
    std::snprintf(b, sizeof b, "%.1f %%", 100.0 * share(n, d));
    return b;
}

std::string num(uint64_t v) {  // thousands separated by a space
    std::string s = std::to_string(v), out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (i > 0 && (s.size() - i) % 3 == 0) out += ' ';
        out += s[i];
    }
    return out;
}

// Prints rows with columns aligned; numeric columns (flag true) right-aligned.
void print_table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
    std::vector<size_t> w(rows.empty() ? 0 : rows[0].size(), 0);
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
    for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) {
            const size_t pad = w[i] - r[i].size();
            if (i) line += "  ";
            if (right[i]) line += std::string(pad, ' ') + r[i];
            else line += r[i] + (i + 1 < r.size() ? std::string(pad, ' ') : "");
        }
        std::printf("%s\n", line.c_str());
    }
}

int fail_input(const std::string& what) {
    std::fprintf(stderr, "stateline-rules test: %s\n", what.c_str());
    return 3;
}

// Offset of the TCP payload in a parsed frame: link header, then the IP datagram whose last
// payload_len bytes are the TCP payload.
uint32_t payload_offset(const sp::PacketMeta& m, sp::LinkType link) {
    const uint32_t l2 = link == sp::LinkType::linux_sll ? 16u : 14u + 4u * m.vlan_depth;
    return l2 + m.ip_len - m.payload_len;
}

struct TestArgs {
    std::string file, pcap, labels, packet_labels;
    uint32_t capacity = 0;
    bool json_out = false;
};

int test(const TestArgs& a) {
    const auto r = stateline::config::load_file(a.file);
    if (!r.ok()) {
        for (const auto& e : r.errors) std::fprintf(stderr, "%s: %s\n", e.where.c_str(), e.what.c_str());
        std::fprintf(stderr, "%s: %s\n", a.file.c_str(), plural(r.errors.size(), "error", "errors").c_str());
        return 2;
    }
    const auto& cfg = r.config;
    if (!cfg.rules || cfg.rules->size() == 0)
        std::fprintf(stderr, "stateline-rules test: %s has no rules: every packet passes\n", a.file.c_str());
    if (!a.packet_labels.empty() && a.labels.empty())
        return fail_input("--packet-labels needs --labels (the attacks' types and targets)");

    // Labels.
    std::vector<AttackInfo> attacks;
    if (!a.labels.empty()) {
        std::ifstream in(a.labels);
        if (!in) return fail_input(a.labels + ": cannot open: " + std::strerror(errno));
        json j;
        try {
            j = json::parse(in);
            for (const auto& at : j.at("attacks")) {
                AttackInfo ai;
                ai.id = at.at("id").get<unsigned>();
                ai.type = at.at("type").get<std::string>();
                ai.target = at.value("target", std::string{});
                if (at.contains("packets_attacker")) ai.packets_attacker = at["packets_attacker"].get<int64_t>();
                attacks.push_back(std::move(ai));
            }
        } catch (const std::exception& e) {
            return fail_input(a.labels + ": not a stateline-gen labels file: " + e.what());
        }
    }
    std::vector<uint8_t> plabels;
    if (!a.packet_labels.empty()) {
        std::ifstream in(a.packet_labels, std::ios::binary);
        if (!in) return fail_input(a.packet_labels + ": cannot open: " + std::strerror(errno));
        plabels.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        if (plabels.size() % 2)
            return fail_input(a.packet_labels + ": " + std::to_string(plabels.size()) +
                              " bytes, not 2 per packet");
        for (size_t i = 0; i < plabels.size(); i += 2) {
            const unsigned id = plabels[i];
            bool known = id == 0;
            for (const auto& at : attacks) known |= at.id == id;
            if (!known)
                return fail_input(a.packet_labels + ": packet " + std::to_string(i / 2 + 1) + " has label id " +
                                  std::to_string(id) + ", which " + a.labels + " does not list");
        }
    }
    const bool labelled = !a.packet_labels.empty();

    // Capture.
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_t* pc = pcap_open_offline_with_tstamp_precision(a.pcap.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!pc) {
        const std::string msg = errbuf;  // libpcap names the file in some messages, not in others
        return fail_input(msg.rfind(a.pcap, 0) == 0 ? msg : a.pcap + ": " + msg);
    }
    sp::LinkType link;
    switch (pcap_datalink(pc)) {
        case DLT_EN10MB: link = sp::LinkType::ethernet; break;
        case DLT_LINUX_SLL: link = sp::LinkType::linux_sll; break;
        default: {
            const std::string dlt = pcap_datalink_val_to_name(pcap_datalink(pc)) ? pcap_datalink_val_to_name(pcap_datalink(pc)) : "?";
            pcap_close(pc);
            return fail_input(a.pcap + ": link type " + dlt + ": only Ethernet and Linux cooked captures are read");
        }
    }

    // Flow table and tracker, as a worker has them.
    sf::FlowTableConfig tc = stateline::config::flow_table_config(cfg);
    if (a.capacity) tc.capacity = a.capacity;
    const size_t mem_size = (sf::FlowTable::memory_size(tc.capacity) + 63) & ~size_t{63};
    void* mem = std::aligned_alloc(64, mem_size);
    if (!mem) {
        pcap_close(pc);
        return fail_input("cannot allocate " + num(mem_size) + " bytes for a flow table of " +
                          num(tc.capacity) + " connections (try --capacity)");
    }
    const st::Tracker tracker;
    std::vector<uint64_t> tcp_counters(st::kCounterCount, 0);
    RemoveCtx rctx;
    rctx.tracker = &tracker;
    rctx.tcp_counters = tcp_counters.data();
    auto table = std::make_unique<sf::FlowTable>(tc, mem, &on_remove, &rctx);
    rctx.table = table.get();

    // Detection, as src/main.cpp builds it for a capture replay with one worker: the fixed replay
    // seed (SketchGeometry's default), the worker's detector starting at interval 0 until the
    // first packet names its interval, no counters handed over with the intervals.
    const bool detecting = cfg.detect.enabled;
    const uint64_t interval_ns = uint64_t{cfg.detect.interval_ms} * 1'000'000;
    std::unique_ptr<sd::VerifiedSources> verified;
    std::unique_ptr<sd::WorkerDetector> detector;
    std::unique_ptr<sd::Aggregator> aggregator;
    std::vector<AlertSeen> alerts_seen;
    if (detecting) {
        sk::SketchGeometry geo;
        geo.width = cfg.detect.sketch_width;
        verified = std::make_unique<sd::VerifiedSources>();
        detector = std::make_unique<sd::WorkerDetector>(geo, cfg.detect.top, verified.get(), 0, geo.seed ^ 1, 0);
        aggregator = std::make_unique<sd::Aggregator>(
            cfg.detect, geo, std::vector<sd::WorkerDetector*>{detector.get()}, verified.get(),
            [&alerts_seen](const json& ev) {
                const std::string event = ev.value("event", std::string{});
                const uint64_t id = ev.value("id", uint64_t{0});
                if (event == "start") {
                    AlertSeen a;
                    a.id = id;
                    a.type = ev.value("type", std::string{});
                    a.target = ev.value("target", std::string{});
                    a.target_kind = ev.value("target_kind", std::string{});
                    a.severity = ev.value("severity", std::string{});
                    a.start = ev.value("start", std::string{});
                    a.start_ns = ev.value("start_ns", uint64_t{0});
                    alerts_seen.push_back(std::move(a));
                    return;
                }
                for (auto& a : alerts_seen) {
                    if (a.id != id) continue;
                    a.severity = ev.value("severity", a.severity);  // the latest (peak) severity
                    if (event == "end") {
                        a.ended = true;
                        a.end = ev.value("ts", std::string{});
                        a.end_ns = ev.value("ts_ns", uint64_t{0});
                        a.end_reason = ev.value("reason", std::string{});
                    }
                }
            });
        rctx.detector = detector.get();
    }
    // The victims the rules see: rebuilt after each judged interval from the active alerts.
    sr::VictimSet victims;
    uint64_t interval = UINT64_MAX;  // of the latest frame (capture time never steps back)
    uint64_t victim_sets = 0, victim_entries_max = 0, intervals_unjudged = 0;
    // Closes intervals up to `k` as a worker does at a marker (src/worker.cpp on_marker), then
    // lets the control core judge them: one worker, so the aggregator judges at once.
    auto close_interval = [&](uint64_t k) {
        auto& buf = detector->buffer();
        if (!buf.ready()) aggregator->poll();  // cannot happen single-threaded: judged at each close
        detector->publish(k);
        if (aggregator->poll() == 0) ++intervals_unjudged;
    };
    auto rebuild_victims = [&]() {
        std::vector<sr::VictimEntry> ve;
        aggregator->for_each_active([&](sd::AlertType t, const sk::Target& tg) {
            if (tg.kind != sk::KeyKind::victim_ip && tg.kind != sk::KeyKind::victim_endpoint) return;
            const uint16_t port = tg.kind == sk::KeyKind::victim_endpoint ? tg.port : 0;
            for (auto& e : ve)
                if (e.port == port && std::memcmp(e.addr, tg.addr, 16) == 0) {
                    e.bits |= sr::victim_bit(t);
                    return;
                }
            sr::VictimEntry e{};
            std::memcpy(e.addr, tg.addr, 16);
            e.port = port;
            e.bits = sr::victim_bit(t);
            ve.push_back(e);
        });
        victim_entries_max = std::max<uint64_t>(victim_entries_max, ve.size());
        victim_sets += !ve.empty();
        victims = sr::VictimSet(ve, aggregator->last_interval());
    };
    const uint32_t burst = cfg.burst ? cfg.burst : 32;
    auto set = cfg.rules;
    if (!set) {
        auto b = sr::RuleSet::build({});
        set = b.set;
    }
    sr::WorkerRules wr(set, 1);

    Tally legit;
    std::vector<Tally> per_attack(256);
    uint64_t frames = 0, tcp_segments = 0, untracked = 0, alerts = 0, passed_unmatched = 0;
    uint64_t first_ns = 0, last_ns = 0, now_ns = 0;
    const bool progress = isatty(STDERR_FILENO) && !a.json_out;
    pcap_pkthdr* h;
    const u_char* data;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
        ++frames;
        if (labelled && frames * 2 > plabels.size()) continue;  // counted, reported below
        const uint64_t ts = static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(h->ts.tv_usec);
        if (frames == 1) first_ns = ts;
        last_ns = ts;
        if (progress && (frames & 0xfffff) == 0) std::fprintf(stderr, "\r%s packets...", num(frames).c_str());
        // The worker's housekeeping after each burst (src/worker.cpp): one expiry step.
        if (frames % burst == 0) table->expire_step();
        // Interval markers, as src/dispatcher.cpp sends them from every frame's timestamp: the
        // frames so far close their interval, a gap of silent intervals closes as one span.
        if (detector) {
            const uint64_t k = ts / interval_ns;
            if (interval == UINT64_MAX) {
                detector->buffer().start_at(k);
                interval = k;
            } else if (k > interval) {
                close_interval(interval);
                if (k - 1 > interval) close_interval(k - 1);
                interval = k;
                rebuild_victims();
            }
        }
        sp::PacketMeta m;
        if (sp::parse_frame(data, h->caplen, link, m) != sp::Outcome::tcp) continue;
        ++tcp_segments;
        m.ts_ns = ts;
        if (ts > now_ns) {
            now_ns = ts;
            table->set_now(static_cast<uint32_t>(now_ns / 1'000'000));
        }
        // Track, as src/worker.cpp stage_track does.
        uint32_t e = table->lookup(m.key, m.hash);
        bool created = false, tracked = false;
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (e == sf::kNoEntry) {
                e = table->find_or_insert(m.key, m.hash, sf::TimeoutClass::half_open, &created);
                if (e == sf::kNoEntry) break;
            }
            const st::Verdict v = created ? tracker.on_first(table->entry(e), table->cold(e), m, tcp_counters.data())
                                          : tracker.on_segment(table->entry(e), table->cold(e), m, tcp_counters.data());
            if (v.restart && !created) {
                if (detector && v.signals) {  // the old connection's abnormal end
                    const bool orig_hi = (table->entry(e).flags & sf::flow_flag::orig_is_hi) != 0;
                    detector->on_segment(m, v.signals, orig_hi ? sf::Side::lo : sf::Side::hi);
                }
                table->remove(e, sf::RemoveReason::closed);
                e = sf::kNoEntry;
                continue;
            }
            table->touch(e, v.tclass);
            if (detector) {
                const bool orig_hi = (table->entry(e).flags & sf::flow_flag::orig_is_hi) != 0;
                detector->on_segment(m, v.signals, orig_hi ? sf::Side::lo : sf::Side::hi);
            }
            tracked = true;
            break;
        }
        sr::PacketView pv = sr::view_of(m);
        if (tracked) {
            const auto& fe = table->entry(e);
            pv.state = sr::state_class(created, st::Tracker::state_of(fe, sf::Side::lo),
                                       st::Tracker::state_of(fe, sf::Side::hi));
            pv.stream_offset = st::Tracker::stream_offset(fe, m.sender, m.seq);
        } else {
            ++untracked;
            pv.state = sr::state_bit::new_conn;  // no entry: as a segment that would create one
        }
        pv.victim_of = 0;
        if (detector) {
            pv.victims = &victims;  // looked up only when a rule gets to a victim_of condition
            pv.verified = &verified_source;
            pv.verified_ctx = verified.get();
        }
        const uint32_t off = payload_offset(m, link);
        if (m.payload_len > 0 && off < h->caplen) {
            pv.payload = data + off;
            pv.payload_len = std::min<uint32_t>(m.payload_len, h->caplen - off);
        }
        const sr::Decision d = wr.evaluate(pv);
        if (d.rule < 0) ++passed_unmatched;
        if (d.verdict == sr::Verdict::alert) ++alerts;
        if (labelled) {
            const unsigned id = plabels[(frames - 1) * 2];
            Tally& t = id == 0 ? legit : per_attack[id];
            t.hit += d.rule >= 0;
            t.dropped += d.verdict == sr::Verdict::drop;
        }
    }
    if (progress && frames >= 0x100000) std::fprintf(stderr, "\r%*s\r", 30, "");
    std::string read_error = rc == -1 ? pcap_geterr(pc) : "";
    pcap_close(pc);
    // The last interval ends with the input; then what is still active ends (end_of_input).
    uint64_t intervals_judged = 0;
    if (detector) {
        if (interval != UINT64_MAX) close_interval(interval);
        aggregator->finish("end_of_input");
        intervals_judged = aggregator->counts().intervals;
    }
    table.reset();  // removes nothing through the hook: the table is not flushed
    std::free(mem);
    if (!read_error.empty()) return fail_input(a.pcap + ": after " + num(frames) + " frames: " + read_error);
    if (labelled && frames * 2 != plabels.size())
        return fail_input(a.packet_labels + ": labels for " + num(plabels.size() / 2) + " packets, but " + a.pcap +
                          " has " + num(frames) + " frames: not the labels of this capture");
    if (labelled) {  // packets per label, all frames (TCP or not)
        for (size_t i = 0; i < plabels.size(); i += 2) {
            const unsigned id = plabels[i];
            (id == 0 ? legit : per_attack[id]).packets++;
        }
    }

    if (a.json_out) {
        json out;
        out["config"] = a.file;
        out["pcap"] = a.pcap;
        out["frames"] = frames;
        out["tcp_segments"] = tcp_segments;
        out["untracked_no_room"] = untracked;
        out["capacity"] = tc.capacity;
        out["duration_s"] = frames ? static_cast<double>(last_ns - first_ns) / 1e9 : 0.0;
        out["victim_of_replayed"] = detecting;
        if (detecting) {
            out["detection"] = {{"interval_s", static_cast<double>(interval_ns) / 1e9},
                                {"intervals_judged", intervals_judged},
                                {"intervals_unjudged", intervals_unjudged},
                                {"intervals_with_victims", victim_sets},
                                {"victims_max", victim_entries_max}};
        } else {
            out["victim_of_note"] = "detect.enabled is false: detection is not replayed, victim_of conditions "
                                    "never match and no source counts as verified";
        }
        json al = json::array();
        for (const auto& a : alerts_seen) {
            json j = {{"id", a.id}, {"type", a.type}, {"target", a.target}, {"target_kind", a.target_kind},
                      {"severity", a.severity}, {"start", a.start}, {"start_ns", a.start_ns}};
            if (a.ended) {
                j["end"] = a.end;
                j["end_ns"] = a.end_ns;
                j["end_reason"] = a.end_reason;
            }
            al.push_back(std::move(j));
        }
        out["alerts"] = al;
        json rules = json::array();
        for (size_t i = 0; i < set->size(); ++i) {
            const auto& sp_ = set->spec(i);
            rules.push_back({{"name", sp_.name},
                             {"action", sr::action_name(sp_.action)},
                             {"hits", wr.hits(i)},
                             {"drops", wr.drops(i)},
                             {"rate_limited_drops", sp_.action == sr::Action::rate_limit ? wr.drops(i) : 0}});
        }
        out["rules"] = rules;
        out["unmatched"] = passed_unmatched;
        if (labelled) {
            json at = json::array();
            for (const auto& ai : attacks) {
                const Tally& t = per_attack[ai.id];
                at.push_back({{"id", ai.id}, {"type", ai.type}, {"target", ai.target},
                              {"packets", t.packets}, {"packets_attacker", ai.packets_attacker},
                              {"hit", t.hit}, {"dropped", t.dropped},
                              {"dropped_share", share(t.dropped, t.packets)},
                              {"dropped_share_attacker", ai.packets_attacker > 0
                                   ? share(t.dropped, static_cast<uint64_t>(ai.packets_attacker)) : 0.0}});
            }
            out["attacks"] = at;
            out["legit"] = {{"packets", legit.packets}, {"hit", legit.hit}, {"dropped", legit.dropped},
                            {"hit_share", share(legit.hit, legit.packets)},
                            {"dropped_share", share(legit.dropped, legit.packets)}};
        }
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }

    std::printf("%s: %s frames, %s TCP segments over %.3f s; flow table of %s connections%s\n", a.pcap.c_str(),
                num(frames).c_str(), num(tcp_segments).c_str(),
                frames ? static_cast<double>(last_ns - first_ns) / 1e9 : 0.0, num(tc.capacity).c_str(),
                untracked ? (", " + num(untracked) + " segments untracked (table full)").c_str() : "");
    if (detecting) {
        std::printf("detection replayed: %s intervals of %.3f s judged, %s raised%s\n",
                    num(intervals_judged).c_str(), static_cast<double>(interval_ns) / 1e9,
                    plural(alerts_seen.size(), "alert", "alerts").c_str(), alerts_seen.empty() ? "" : ":");
        if (!alerts_seen.empty()) {
            std::vector<std::vector<std::string>> ar{{"  id", "type", "target", "severity", "start", "end"}};
            for (const auto& a : alerts_seen)
                ar.push_back({"  " + std::to_string(a.id), a.type, a.target, a.severity, a.start,
                              a.ended ? a.end + " (" + a.end_reason + ")" : "-"});
            print_table(ar, {true, false, false, false, false, false});
        }
        std::printf("(victim_of: the alerts active after each judged interval, from the next interval's first packet)\n\n");
    } else {
        std::printf("(detect.enabled is false: detection is not replayed, so victim_of conditions never match and no "
                    "source counts as verified)\n\n");
    }
    std::vector<std::vector<std::string>> rows{{"rule", "action", "hits (pkts)", "drops (pkts)", "rate-limited (pkts)"}};
    for (size_t i = 0; i < set->size(); ++i) {
        const auto& sp_ = set->spec(i);
        rows.push_back({sp_.name, sr::action_name(sp_.action), num(wr.hits(i)), num(wr.drops(i)),
                        sp_.action == sr::Action::rate_limit ? num(wr.drops(i)) : "-"});
    }
    rows.push_back({"(no rule)", "pass", num(passed_unmatched), "0", "-"});
    print_table(rows, {false, false, true, true, true});
    if (labelled) {
        std::printf("\n");
        std::vector<std::vector<std::string>> lr{{"label", "type", "target", "packets", "attacker's (pkts)",
                                                  "hit (pkts)", "dropped (pkts)", "dropped/attacker's", "dropped/all"}};
        for (const auto& ai : attacks) {
            const Tally& t = per_attack[ai.id];
            const bool pa = ai.packets_attacker >= 0;
            lr.push_back({std::to_string(ai.id), ai.type, ai.target, num(t.packets),
                          pa ? num(static_cast<uint64_t>(ai.packets_attacker)) : "-", num(t.hit), num(t.dropped),
                          pa ? pct(t.dropped, static_cast<uint64_t>(ai.packets_attacker)) : "-", pct(t.dropped, t.packets)});
        }
        lr.push_back({"0", "legitimate", "-", num(legit.packets), "-", num(legit.hit) + " (" + pct(legit.hit, legit.packets) + ")",
                      num(legit.dropped), "-", pct(legit.dropped, legit.packets)});
        print_table(lr, {true, false, false, true, true, true, true, true, true});
        std::printf("\n(attacker's packets: from the labels, without the victims' answers, which inline dropping would also prevent)\n");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"stateline-rules: check Stateline's mitigation rules offline"};
    app.footer(kFooter);
    app.require_subcommand(1);

    std::string file;
    CLI::App* check_cmd = app.add_subcommand(
        "check",
        "Validate a whole config (every section, the rules: list included; payload patterns compiled "
        "with Hyperscan). Prints every error as file:line:col: what, or a one-line summary.");
    check_cmd->add_option("FILE", file, "Config file (YAML, as conf/stateline.yaml)")->required();

    TestArgs ta;
    CLI::App* test_cmd = app.add_subcommand(
        "test",
        "Replay a capture through the rules (parser, flow table, TCP tracker, rules; packet "
        "timestamps as the clock) and report each rule's hits and drops; with labels, the share of "
        "each attack and of legitimate traffic dropped. Detection is replayed too (intervals from "
        "packet time, as the appliance's capture replay): victim_of and src_verified conditions see "
        "the alerts and verified sources as they stood after the last judged interval; the alerts "
        "raised are reported.");
    test_cmd->add_option("FILE", ta.file, "Config file (YAML) with a rules: list")->required();
    test_cmd->add_option("--pcap", ta.pcap, "Capture to replay (pcap or pcapng; Ethernet or Linux cooked)")->required();
    test_cmd->add_option("--labels", ta.labels, "Labels JSON from stateline-gen --labels (attack ids, types, targets)");
    test_cmd->add_option("--packet-labels", ta.packet_labels,
                         "Per-packet labels from stateline-gen --packet-labels (2 bytes per frame; needs --labels)");
    test_cmd->add_option("--capacity", ta.capacity, "Flow table capacity (default: the config's flow_table.capacity)")
        ->check(CLI::Range(1u, 1u << 28));
    test_cmd->add_flag("--json", ta.json_out, "Print the report as JSON");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 1;
    }
    if (*check_cmd) return check(file);
    if (*test_cmd) return test(ta);
    return 1;
}
