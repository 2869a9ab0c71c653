// SPDX-License-Identifier: BSD-3-Clause
#include "rules_yaml.hpp"

#include <algorithm>
#include <cctype>
#include <map>

namespace stateline::rules {

namespace {

namespace tf = packet::tcp_flag;

std::string at(const std::string& file, const YAML::Mark& m) {
    if (m.line < 0) return file;
    return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

bool valid_name(const std::string& s) {
    return !s.empty() &&
           s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == std::string::npos;
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// A scalar or a list of scalars, as (text, node) pairs; false when neither.
bool scalars(const YAML::Node& n, std::vector<YAML::Node>& out) {
    if (n.IsScalar()) {
        out.push_back(n);
        return true;
    }
    if (!n.IsSequence() || n.size() == 0) return false;
    for (const auto& e : n) {
        if (!e.IsScalar()) return false;
        out.push_back(e);
    }
    return true;
}

bool parse_u64(const std::string& s, uint64_t& x) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 12) return false;
    x = std::stoull(s);
    return true;
}

constexpr uint64_t kMaxRate = 1'000'000'000;

}  // namespace

bool parse_flags(const std::string& text, uint8_t& value, uint8_t& mask, std::string& why) {
    static const std::pair<const char*, uint8_t> names[] = {
        {"fin", tf::fin}, {"syn", tf::syn}, {"rst", tf::rst}, {"psh", tf::psh},
        {"ack", tf::ack}, {"urg", tf::urg}, {"ece", tf::ece}, {"cwr", tf::cwr}};
    auto parse_set = [&](const std::string& part, uint8_t& bits) {
        bits = 0;
        if (lower(part) == "none") return true;
        size_t pos = 0;
        while (pos <= part.size()) {
            size_t end = part.find_first_of(",|+", pos);
            if (end == std::string::npos) end = part.size();
            std::string tok = part.substr(pos, end - pos);
            tok.erase(0, tok.find_first_not_of(' '));
            tok.erase(tok.find_last_not_of(' ') + 1);
            const std::string l = lower(tok);
            auto it = std::find_if(std::begin(names), std::end(names), [&](const auto& n) { return l == n.first; });
            if (it == std::end(names)) {
                why = "unknown TCP flag '" + tok + "' (expected FIN, SYN, RST, PSH, ACK, URG, ECE, CWR or none)";
                return false;
            }
            bits |= it->second;
            pos = end + 1;
        }
        return true;
    };
    const size_t slash = text.find('/');
    uint8_t v = 0, m = 0;
    if (!parse_set(text.substr(0, slash), v)) return false;
    if (slash == std::string::npos) {
        // The kind of a segment is its control bits: "SYN" is a SYN, not a SYN-ACK or a SYN-FIN.
        m = static_cast<uint8_t>(v | tf::fin | tf::syn | tf::rst | tf::ack);
    } else {
        if (!parse_set(text.substr(slash + 1), m)) return false;
        if (v & ~m) {
            why = "flags '" + text + "' set bits outside their mask: they never match";
            return false;
        }
    }
    value = v;
    mask = m;
    return true;
}

bool parse_port_range(const std::string& text, PortRange& out, std::string& why) {
    const size_t dash = text.find('-');
    uint64_t lo = 0, hi = 0;
    const std::string a = text.substr(0, dash), b = dash == std::string::npos ? a : text.substr(dash + 1);
    if (!parse_u64(a, lo) || !parse_u64(b, hi)) {
        why = "bad port or port range '" + text + "' (expected 80 or 8000-8080)";
        return false;
    }
    if (lo > 65535 || hi > 65535) {
        why = "port range '" + text + "' goes past 65535";
        return false;
    }
    if (lo > hi) {
        why = "port range '" + text + "' is empty (low end above high end)";
        return false;
    }
    out = {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
    return true;
}

std::string format_errors(const std::vector<Error>& errors) {
    std::string s;
    for (const auto& e : errors) s += e.where + ": " + e.what + "\n";
    return s;
}

LoadResult load_rules(const YAML::Node& list, const std::string& file, const Options& opt) {
    LoadResult r;
    std::vector<RuleSpec> specs;
    std::vector<std::string> places;
    if (list && !list.IsNull() && !list.IsSequence()) {
        r.errors.push_back({at(file, list.Mark()), "'rules' expects a list of rules (- name: ..., match: ..., action: ...)"});
        return r;
    }
    std::map<std::string, std::string> names;  // name -> where
    size_t index = 0;
    if (list && list.IsSequence()) {
        for (const auto& node : list) {
            ++index;
            std::string label = "rule #" + std::to_string(index);
            const std::string here = at(file, node.Mark());
            if (!node.IsMap()) {
                r.errors.push_back({here, label + " expects a mapping with name, match and action"});
                continue;
            }
            RuleSpec spec;
            YAML::Node name_n, match_n, action_n, rate_n, burst_n, per_n;
            bool has_name = false, has_action = false, has_rate = false, has_burst = false, has_per = false;
            std::vector<YAML::Node> unknown;
            for (const auto& kv : node) {
                const std::string key = kv.first.as<std::string>();
                if (key == "name") name_n = kv.second, has_name = true;
                else if (key == "match") match_n = kv.second;
                else if (key == "action") action_n = kv.second, has_action = true;
                else if (key == "rate") rate_n = kv.second, has_rate = true;
                else if (key == "burst") burst_n = kv.second, has_burst = true;
                else if (key == "per") per_n = kv.second, has_per = true;
                else unknown.push_back(kv.first);
            }
            auto err = [&](const YAML::Node& n, const std::string& what) { r.errors.push_back({at(file, n.Mark()), what}); };

            if (!has_name) {
                r.errors.push_back({here, label + " has no 'name'"});
            } else if (!name_n.IsScalar()) {
                err(name_n, "'name' of " + label + " expects a string");
            } else {
                spec.name = name_n.Scalar();
                const std::string where = at(file, name_n.Mark());
                if (!valid_name(spec.name)) {
                    err(name_n, "rule name '" + spec.name + "' may hold only letters, digits, '_', '.' and '-'");
                } else if (auto it = names.find(spec.name); it != names.end()) {
                    err(name_n, "rule name '" + spec.name + "' is already used at " + it->second);
                } else {
                    names[spec.name] = where;
                }
                if (!spec.name.empty()) label = "rule '" + spec.name + "'";
            }
            for (const auto& k : unknown)
                err(k, "unknown key '" + k.as<std::string>() + "' in " + label +
                           " (expected name, match, action, rate, burst, per)");

            // match:
            YAML::Node payload_n;
            bool has_nocase = false;
            YAML::Node nocase_n;
            if (!match_n.IsNull()) {
                if (!match_n.IsMap()) {
                    err(match_n, "'match' of " + label + " expects a mapping (src, dst, dst_port, flags, state, victim_of, src_verified, payload, nocase)");
                } else {
                    for (const auto& kv : match_n) {
                        const std::string key = kv.first.as<std::string>();
                        const YAML::Node& v = kv.second;
                        std::vector<YAML::Node> items;
                        if (key == "src" || key == "dst") {
                            if (!scalars(v, items)) {
                                err(v, "'match." + key + "' of " + label + " expects a prefix or a list of prefixes");
                                continue;
                            }
                            for (const auto& pn : items) {
                                detect::Prefix p;
                                std::string why;
                                if (!detect::parse_prefix(pn.Scalar(), p, why))
                                    err(pn, "bad prefix '" + pn.Scalar() + "' in 'match." + key + "' of " + label + ": " + why);
                                else
                                    (key == "src" ? spec.src : spec.dst).push_back(p);
                            }
                        } else if (key == "dst_port") {
                            if (!scalars(v, items)) {
                                err(v, "'match.dst_port' of " + label + " expects a port, a range or a list of them");
                                continue;
                            }
                            for (const auto& pn : items) {
                                PortRange pr;
                                std::string why;
                                if (!parse_port_range(pn.Scalar(), pr, why))
                                    err(pn, why + " in " + label);
                                else
                                    spec.dst_ports.push_back(pr);
                            }
                        } else if (key == "flags") {
                            std::string why;
                            if (!v.IsScalar())
                                err(v, "'match.flags' of " + label + " expects a string such as SYN or SYN/SYN,ACK");
                            else if (!parse_flags(v.Scalar(), spec.flags_value, spec.flags_mask, why))
                                err(v, why + " in " + label);
                        } else if (key == "state") {
                            if (!scalars(v, items)) {
                                err(v, "'match.state' of " + label + " expects a state class or a list of them");
                                continue;
                            }
                            spec.states = 0;
                            for (const auto& sn : items) {
                                const std::string s = sn.Scalar();
                                if (s == "new") spec.states |= state_bit::new_conn;
                                else if (s == "half_open") spec.states |= state_bit::half_open;
                                else if (s == "established") spec.states |= state_bit::established;
                                else if (s == "closing") spec.states |= state_bit::closing;
                                else if (s == "any") spec.states |= state_bit::any;
                                else err(sn, "unknown state '" + s + "' in " + label + " (expected new, half_open, established, closing, any)");
                            }
                            if (spec.states == 0) spec.states = state_bit::any;
                        } else if (key == "victim_of") {
                            if (!scalars(v, items)) {
                                err(v, "'match.victim_of' of " + label + " expects an alert type or a list of them");
                                continue;
                            }
                            for (const auto& an : items) {
                                unsigned t = 0;
                                while (t < detect::kAlertTypeCount &&
                                       an.Scalar() != detect::alert_type_name(static_cast<detect::AlertType>(t)))
                                    ++t;
                                if (t == detect::kAlertTypeCount)
                                    err(an, "unknown alert type '" + an.Scalar() + "' in 'match.victim_of' of " + label);
                                else
                                    spec.victim_of |= victim_bit(static_cast<detect::AlertType>(t));
                            }
                        } else if (key == "src_verified") {
                            if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false"))
                                err(v, "'match.src_verified' of " + label + " expects true or false");
                            else
                                spec.src_verified = v.Scalar() == "true" ? 1 : 0;
                        } else if (key == "payload") {
                            if (!v.IsScalar() || v.Scalar().empty())
                                err(v, "'match.payload' of " + label + " expects a non-empty pattern");
                            else
                                payload_n = v, spec.payload = v.Scalar();
                        } else if (key == "nocase") {
                            has_nocase = true;
                            nocase_n = v;
                            if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false"))
                                err(v, "'match.nocase' of " + label + " expects true or false");
                            else
                                spec.nocase = v.Scalar() == "true";
                        } else {
                            err(kv.first, "unknown key '" + key + "' in 'match' of " + label +
                                              " (expected src, dst, dst_port, flags, state, victim_of, src_verified, payload, nocase)");
                        }
                    }
                }
            }
            if (has_nocase && spec.payload.empty() && payload_n.IsNull())
                err(nocase_n, "'match.nocase' of " + label + " without a payload pattern");
            if (!spec.payload.empty()) {
                if (std::string why = check_pattern(spec.payload, spec.nocase); !why.empty())
                    err(payload_n, "payload pattern '" + spec.payload + "' of " + label + " does not compile: " + why);
            }

            // action and its parameters.
            bool action_known = false;
            if (!has_action) {
                r.errors.push_back({here, label + " has no 'action' (alert, drop, rate_limit, allow)"});
            } else {
                const std::string a = action_n.IsScalar() ? action_n.Scalar() : "";
                if (a == "alert") spec.action = Action::alert;
                else if (a == "drop") spec.action = Action::drop;
                else if (a == "rate_limit") spec.action = Action::rate_limit;
                else if (a == "allow") spec.action = Action::allow;
                if (a == "alert" || a == "drop" || a == "rate_limit" || a == "allow") action_known = true;
                else err(action_n, "unknown action '" + a + "' in " + label + " (expected alert, drop, rate_limit, allow)");
            }
            auto number = [&](const YAML::Node& n, const char* what, uint64_t& out) {
                uint64_t x = 0;
                if (!n.IsScalar() || !parse_u64(n.Scalar(), x) || x < 1 || x > kMaxRate)
                    err(n, std::string("'") + what + "' of " + label + " expects an integer in [1, " +
                               std::to_string(kMaxRate) + "]" + (n.IsScalar() ? ", got '" + n.Scalar() + "'" : ""));
                else
                    out = x;
            };
            const bool limiting = has_action && spec.action == Action::rate_limit;
            if (has_rate) number(rate_n, "rate", spec.rate);
            if (has_burst) number(burst_n, "burst", spec.burst);
            if (has_per) {
                const std::string p = per_n.IsScalar() ? per_n.Scalar() : "";
                if (p == "rule") spec.per = Per::rule;
                else if (p == "source") spec.per = Per::source;
                else err(per_n, "'per' of " + label + " expects rule or source, got '" + p + "'");
            }
            if (limiting && !has_rate) r.errors.push_back({here, label + ": action rate_limit needs a 'rate' (packets per second)"});
            if (action_known && !limiting) {
                if (has_rate) err(rate_n, "'rate' of " + label + " applies to action rate_limit only");
                if (has_burst) err(burst_n, "'burst' of " + label + " applies to action rate_limit only");
                if (has_per) err(per_n, "'per' of " + label + " applies to action rate_limit only");
            }
            if (limiting && spec.burst == 0) spec.burst = spec.rate;
            places.push_back(here);
            specs.push_back(std::move(spec));
        }
    }
    if (specs.size() > kMaxRules)
        r.errors.push_back({at(file, list.Mark()), std::to_string(specs.size()) + " rules: at most " +
                                                       std::to_string(kMaxRules) + " are supported"});
    if (!r.errors.empty()) return r;
    auto built = RuleSet::build(std::move(specs), opt, places);
    r.errors = std::move(built.errors);
    r.set = std::move(built.set);
    return r;
}

LoadResult load_rules_string(const std::string& text, const std::string& file, const Options& opt) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
        LoadResult r;
        r.errors.push_back({at(file, e.mark), e.msg});
        return r;
    }
    if (root.IsMap()) return load_rules(root["rules"], file, opt);
    return load_rules(YAML::Node(), file, opt);
}

}  // namespace stateline::rules
