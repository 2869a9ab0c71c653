// SPDX-License-Identifier: BSD-3-Clause
#include "scenario.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

namespace stateline::gen {

// ---------------------------------------------------------------------------------- addresses

std::string IpAddr::str() const {
    char buf[INET6_ADDRSTRLEN];
    if (!inet_ntop(v6 ? AF_INET6 : AF_INET, b.data(), buf, sizeof(buf))) return "?";
    return buf;
}

bool parse_ip(const std::string& s, IpAddr& out) {
    IpAddr a;
    if (inet_pton(AF_INET, s.c_str(), a.b.data()) == 1) {
        a.v6 = false;
        out = a;
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.b.data()) == 1) {
        a.v6 = true;
        out = a;
        return true;
    }
    return false;
}

IpAddr Prefix::at(uint64_t offset) const {
    IpAddr a = base;
    const unsigned n = base.v6 ? 16 : 4;
    // Add the offset to the low 64 bits (big-endian), with carry; host bits are zero in base,
    // and offset < 2^host_bits, so nothing spills into the network part.
    unsigned carry = 0;
    for (unsigned i = 0; i < 8 && i < n; ++i) {
        const unsigned idx = n - 1 - i;
        const unsigned v = a.b[idx] + static_cast<unsigned>((offset >> (8 * i)) & 0xff) + carry;
        a.b[idx] = static_cast<uint8_t>(v);
        carry = v >> 8;
    }
    return a;
}

bool Prefix::contains(const IpAddr& a) const {
    if (a.v6 != base.v6) return false;
    const unsigned full = len / 8, rem = len % 8;
    if (std::memcmp(a.b.data(), base.b.data(), full) != 0) return false;
    if (rem == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rem));
    return (a.b[full] & mask) == (base.b[full] & mask);
}

std::string Prefix::str() const { return base.str() + "/" + std::to_string(len); }

bool parse_prefix(const std::string& s, Prefix& out, std::string& why) {
    Prefix p;
    const auto slash = s.find('/');
    const std::string addr = s.substr(0, slash);
    if (!parse_ip(addr, p.base)) {
        why = "'" + addr + "' is not an IPv4 or IPv6 address";
        return false;
    }
    const unsigned maxlen = p.base.v6 ? 128 : 32;
    if (slash == std::string::npos) {
        p.len = static_cast<uint8_t>(maxlen);
    } else {
        const std::string l = s.substr(slash + 1);
        char* end = nullptr;
        const unsigned long v = std::strtoul(l.c_str(), &end, 10);
        if (l.empty() || *end != '\0' || v > maxlen) {
            why = "prefix length '" + l + "' is not in 0.." + std::to_string(maxlen);
            return false;
        }
        p.len = static_cast<uint8_t>(v);
    }
    // Host bits must be zero: "192.0.2.1/24" is more likely a typo than a wish.
    for (unsigned bit = p.len; bit < maxlen; ++bit) {
        if (p.base.b[bit / 8] & (0x80 >> (bit % 8))) {
            why = "'" + s + "' has host bits set (did you mean " + [&] {
                Prefix q = p;
                for (unsigned k = p.len; k < maxlen; ++k) q.base.b[k / 8] &= static_cast<uint8_t>(~(0x80 >> (k % 8)));
                return q.str();
            }() + "?)";
            return false;
        }
    }
    out = p;
    return true;
}

// ---------------------------------------------------------------------------------- names

const char* attack_type_name(AttackType t) {
    switch (t) {
#define STATELINE_X(name, help) \
    case AttackType::name:      \
        return #name;
        STATELINE_GEN_ATTACK_TYPES(STATELINE_X)
#undef STATELINE_X
        case AttackType::count_:
            break;
    }
    return "?";
}

const char* attack_type_help(AttackType t) {
    switch (t) {
#define STATELINE_X(name, help) \
    case AttackType::name:      \
        return help;
        STATELINE_GEN_ATTACK_TYPES(STATELINE_X)
#undef STATELINE_X
        case AttackType::count_:
            break;
    }
    return "?";
}

const char* stealth_variant_name(StealthVariant v) {
    switch (v) {
        case StealthVariant::fin:
            return "fin";
        case StealthVariant::null:
            return "null";
        case StealthVariant::xmas:
            return "xmas";
    }
    return "?";
}

int Scenario::find_server(const IpAddr& a) const {
    for (size_t i = 0; i < servers.size(); ++i) {
        const auto& s = servers[i];
        if ((s.has_v4 && s.v4 == a) || (s.has_v6 && s.v6 == a)) return static_cast<int>(i);
    }
    return -1;
}

int Scenario::find_service(const IpAddr& a, uint16_t port) const {
    const int srv = find_server(a);
    if (srv < 0) return -1;
    for (size_t i = 0; i < services.size(); ++i)
        if (services[i].server == static_cast<uint32_t>(srv) && services[i].port == port) return static_cast<int>(i);
    return -1;
}

std::string format_errors(const std::vector<ScenarioError>& errors) {
    std::string s;
    for (const auto& e : errors) s += e.where + ": " + e.what + "\n";
    return s;
}

// ---------------------------------------------------------------------------------- reader

namespace {

// Reads typed values out of YAML mappings and records every problem with its place. A getter
// returns true only when the key is present and valid; the output is untouched otherwise, so
// defaults set beforehand stand.
class Reader {
public:
    Reader(std::string file, std::vector<ScenarioError>& errors) : file_(std::move(file)), errors_(errors) {}

    // Place of a node: file:line:col when it came from a file, else the current fallback (the
    // command-line argument it was built from).
    std::string at(const YAML::Node& n) const {
        const YAML::Mark m = n.Mark();
        if (m.line < 0) return fallback_.empty() ? file_ : fallback_;
        return file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    }
    void error(const YAML::Node& n, std::string what) { errors_.push_back({at(n), std::move(what)}); }
    void error_at(std::string where, std::string what) { errors_.push_back({std::move(where), std::move(what)}); }
    void set_fallback(std::string f) { fallback_ = std::move(f); }

    // The node must be a mapping whose keys are all in `known`; unknown and repeated keys are
    // errors (a typo must not silently keep a default).
    bool mapping(const YAML::Node& n, const std::string& ctx, std::initializer_list<std::string_view> known) {
        if (!n.IsMap()) {
            error(n, "'" + ctx + "' must be a mapping");
            return false;
        }
        std::set<std::string> seen;
        for (const auto& kv : n) {
            const std::string k = kv.first.Scalar();
            if (!seen.insert(k).second) error(kv.first, "'" + path(ctx, k) + "' is given twice");
            if (std::find(known.begin(), known.end(), k) == known.end()) {
                std::string hint;
                for (auto c : known)
                    if (close_to(k, c)) hint = " (did you mean '" + std::string(c) + "'?)";
                std::string list;
                for (auto c : known) list += (list.empty() ? "" : ", ") + std::string(c);
                error(kv.first, "unknown key '" + path(ctx, k) + "'" + hint + "; known: " + list);
            }
        }
        return true;
    }

    static std::string path(const std::string& ctx, const std::string& key) {
        return ctx.empty() ? key : ctx + "." + key;
    }

    // Numbers accept the suffixes k, M, G (x1e3, 1e6, 1e9): "rate: 50k".
    bool number(const YAML::Node& m, const char* key, const std::string& ctx, double& out, double lo, double hi) {
        const YAML::Node v = m[key];
        if (!v) return false;
        const std::string p = path(ctx, key);
        double x;
        if (!scalar_number(v, x)) {
            error(v, "'" + p + "' expects a number, got " + show(v));
            return false;
        }
        if (!(x >= lo && x <= hi)) {
            error(v, "'" + p + "' = " + v.Scalar() + " is out of range [" + num_str(lo) + ", " + num_str(hi) + "]");
            return false;
        }
        out = x;
        return true;
    }

    template <typename T>
    bool integer(const YAML::Node& m, const char* key, const std::string& ctx, T& out, double lo, double hi) {
        double x;
        if (!number(m, key, ctx, x, lo, hi)) return false;
        if (x != std::floor(x)) {
            error(m[key], "'" + path(ctx, key) + "' expects a whole number, got " + m[key].Scalar());
            return false;
        }
        out = static_cast<T>(x);
        return true;
    }

    bool boolean(const YAML::Node& m, const char* key, const std::string& ctx, bool& out) {
        const YAML::Node v = m[key];
        if (!v) return false;
        const std::string s = v.IsScalar() ? v.Scalar() : "";
        if (s == "true" || s == "yes" || s == "on" || s == "1") {
            out = true;
            return true;
        }
        if (s == "false" || s == "no" || s == "off" || s == "0") {
            out = false;
            return true;
        }
        error(v, "'" + path(ctx, key) + "' expects true or false, got " + show(v));
        return false;
    }

    bool string(const YAML::Node& m, const char* key, const std::string& ctx, std::string& out) {
        const YAML::Node v = m[key];
        if (!v) return false;
        if (!v.IsScalar()) {
            error(v, "'" + path(ctx, key) + "' expects a string");
            return false;
        }
        out = v.Scalar();
        return true;
    }

    bool ip(const YAML::Node& m, const char* key, const std::string& ctx, IpAddr& out) {
        std::string s;
        if (!string(m, key, ctx, s)) return false;
        if (!parse_ip(s, out)) {
            error(m[key], "'" + path(ctx, key) + "': '" + s + "' is not an IPv4 or IPv6 address");
            return false;
        }
        return true;
    }

    bool prefix(const YAML::Node& m, const char* key, const std::string& ctx, Prefix& out) {
        std::string s, why;
        if (!string(m, key, ctx, s)) return false;
        if (!parse_prefix(s, out, why)) {
            error(m[key], "'" + path(ctx, key) + "': " + why);
            return false;
        }
        return true;
    }

    // A port list: [80, 443], 80, or a string of ports and ranges separated by ',', ';', '+'
    // or spaces: "1-1024,3389".
    bool ports(const YAML::Node& m, const char* key, const std::string& ctx, std::vector<uint16_t>& out) {
        const YAML::Node v = m[key];
        if (!v) return false;
        const std::string p = path(ctx, key);
        std::vector<uint16_t> r;
        bool ok = true;
        auto add_text = [&](const std::string& text, const YAML::Node& where) {
            std::string tok;
            std::string cleaned = text;
            for (char& c : cleaned)
                if (c == ',' || c == ';' || c == '+') c = ' ';
            std::stringstream words(cleaned);
            while (words >> tok) {
                unsigned long lo = 0, hi = 0;
                char* end = nullptr;
                lo = std::strtoul(tok.c_str(), &end, 10);
                hi = lo;
                if (*end == '-') hi = std::strtoul(end + 1, &end, 10);
                if (*end != '\0' || lo < 1 || hi > 65535 || lo > hi || tok[0] == '-') {
                    error(where, "'" + p + "': '" + tok + "' is not a port (1-65535) or a range lo-hi");
                    ok = false;
                    continue;
                }
                for (unsigned long x = lo; x <= hi; ++x) r.push_back(static_cast<uint16_t>(x));
            }
        };
        if (v.IsSequence()) {
            for (const auto& e : v) {
                if (!e.IsScalar()) {
                    error(e, "'" + p + "' entries must be ports or ranges");
                    ok = false;
                } else {
                    add_text(e.Scalar(), e);
                }
            }
        } else if (v.IsScalar()) {
            add_text(v.Scalar(), v);
        } else {
            error(v, "'" + p + "' expects a port list, e.g. [80, 443] or \"1-1024\"");
            return false;
        }
        if (!ok) return false;
        if (r.empty()) {
            error(v, "'" + p + "' is empty");
            return false;
        }
        // Keep the order given (a scan's list), drop repeats.
        std::vector<uint16_t> uniq;
        std::vector<bool> seen(65536, false);
        for (auto x : r)
            if (!seen[x]) seen[x] = true, uniq.push_back(x);
        out = std::move(uniq);
        return true;
    }

    bool lognormal(const YAML::Node& m, const char* key, const std::string& ctx, Lognormal& out, double lo, double hi) {
        const YAML::Node v = m[key];
        if (!v) return false;
        const std::string p = path(ctx, key);
        if (v.IsScalar()) {  // a bare number is the median
            Lognormal l = out;
            if (number(m, key, ctx, l.median, lo, hi)) {
                out = l;
                return true;
            }
            return false;
        }
        if (!mapping(v, p, {"median", "sigma"})) return false;
        Lognormal l = out;
        number(v, "median", p, l.median, lo, hi);
        number(v, "sigma", p, l.sigma, 0, 4);
        out = l;
        return true;
    }

    static bool scalar_number(const YAML::Node& v, double& x) {
        if (!v.IsScalar()) return false;
        const std::string s = v.Scalar();
        if (s.empty()) return false;
        char* end = nullptr;
        x = std::strtod(s.c_str(), &end);
        if (end == s.c_str()) return false;
        if (*end == 'k' || *end == 'K') x *= 1e3, ++end;
        else if (*end == 'M') x *= 1e6, ++end;
        else if (*end == 'G') x *= 1e9, ++end;
        return *end == '\0' && std::isfinite(x);
    }

    static std::string show(const YAML::Node& v) {
        if (v.IsScalar()) return "'" + v.Scalar() + "'";
        if (v.IsSequence()) return "a list";
        if (v.IsMap()) return "a mapping";
        return "nothing";
    }

    static std::string num_str(double x) {
        std::ostringstream o;
        o << x;
        return o.str();
    }

private:
    // One edit (substitution, insertion, deletion) or a swap of neighbours apart.
    static bool close_to(std::string_view a, std::string_view b) {
        if (a == b) return false;
        const size_t la = a.size(), lb = b.size();
        if (la == lb) {
            size_t diff = 0, first = la;
            for (size_t i = 0; i < la; ++i)
                if (a[i] != b[i]) {
                    if (first == la) first = i;
                    ++diff;
                }
            if (diff == 1) return true;
            return diff == 2 && first + 1 < la && a[first] == b[first + 1] && a[first + 1] == b[first];
        }
        if (la + 1 != lb && lb + 1 != la) return false;
        const std::string_view s = la < lb ? a : b, l = la < lb ? b : a;
        size_t i = 0;
        while (i < s.size() && s[i] == l[i]) ++i;
        return s.substr(i) == l.substr(i + 1);
    }

    std::string file_;
    std::vector<ScenarioError>& errors_;
    std::string fallback_;
};

// ---------------------------------------------------------------------------------- sections

bool parse_time(const std::string& s, uint64_t& epoch_ns) {
    // Epoch seconds, or an ISO 8601 UTC time "YYYY-MM-DDTHH:MM:SS[.frac]Z".
    char* end = nullptr;
    const double x = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0' && x >= 0 && x < 4e9) {
        epoch_ns = static_cast<uint64_t>(std::llround(x * 1e9));
        return true;
    }
    std::tm tm{};
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return false;
    std::string rest = s.substr(static_cast<size_t>(consumed));
    double frac = 0;
    if (!rest.empty() && rest[0] == '.') {
        size_t i = 1;
        while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
        frac = std::strtod(("0" + rest.substr(0, i)).c_str(), nullptr);
        rest = rest.substr(i);
    }
    if (rest != "Z" && rest != "+00:00") return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const time_t t = timegm(&tm);
    if (t < 0) return false;
    epoch_ns = static_cast<uint64_t>(t) * 1000000000ull + static_cast<uint64_t>(std::llround(frac * 1e9));
    return true;
}

Prefix must_prefix(const char* s) {
    Prefix p;
    std::string why;
    parse_prefix(s, p, why);
    return p;
}

ClientSpec default_clients() {
    ClientSpec c;
    c.lan_prefix = must_prefix("10.20.0.0/16");
    c.wan_prefix = must_prefix("100.64.0.0/10");
    c.v6_prefix = must_prefix("2001:db8:1000::/36");
    return c;
}

void read_servers(Reader& rd, const YAML::Node& list, Scenario& sc) {
    if (!list.IsSequence()) {
        rd.error(list, "'servers' must be a list of servers");
        return;
    }
    std::set<std::string> names;
    size_t idx = 0;
    for (const auto& n : list) {
        const std::string ctx = "servers[" + std::to_string(idx++) + "]";
        ServerSpec s;
        if (!rd.mapping(n, ctx, {"name", "ipv4", "ipv6", "ports", "vlan", "backlog", "syncookies"})) continue;
        if (!rd.string(n, "name", ctx, s.name)) rd.error(n, "'" + ctx + ".name' is required");
        else if (!names.insert(s.name).second) rd.error(n["name"], "server name '" + s.name + "' is used twice");
        if (rd.ip(n, "ipv4", ctx, s.v4)) {
            if (s.v4.v6) rd.error(n["ipv4"], "'" + ctx + ".ipv4' is an IPv6 address");
            else s.has_v4 = true;
        }
        if (rd.ip(n, "ipv6", ctx, s.v6)) {
            if (!s.v6.v6) rd.error(n["ipv6"], "'" + ctx + ".ipv6' is an IPv4 address");
            else s.has_v6 = true;
        }
        if (!n["ipv4"] && !n["ipv6"]) rd.error(n, "'" + ctx + "' needs an 'ipv4' or an 'ipv6' address (or both)");
        if (!rd.ports(n, "ports", ctx, s.ports) && !n["ports"]) s.ports = {80};
        rd.integer(n, "vlan", ctx, s.vlan, 0, 4094);
        rd.integer(n, "backlog", ctx, s.backlog, 1, 1e8);
        rd.boolean(n, "syncookies", ctx, s.syncookies);
        for (const auto& other : sc.servers) {
            if ((s.has_v4 && other.has_v4 && s.v4 == other.v4) || (s.has_v6 && other.has_v6 && s.v6 == other.v6))
                rd.error(n, "'" + ctx + "' has the same address as server '" + other.name + "'");
        }
        for (auto port : s.ports) sc.services.push_back({static_cast<uint32_t>(sc.servers.size()), port});
        sc.servers.push_back(std::move(s));
    }
}

// "web:443", "web" (every port), "192.0.2.10:80", "[2001:db8::10]:80" -> services.
bool resolve_services(const Scenario& sc, const std::string& text, std::vector<uint32_t>& out) {
    std::string host = text, port;
    if (!text.empty() && text[0] == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos) return false;
        host = text.substr(1, close - 1);
        if (close + 1 < text.size()) {
            if (text[close + 1] != ':') return false;
            port = text.substr(close + 2);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        const auto c = text.find(':');
        host = text.substr(0, c);
        port = text.substr(c + 1);
    }
    int server = -1;
    for (size_t i = 0; i < sc.servers.size(); ++i)
        if (sc.servers[i].name == host) server = static_cast<int>(i);
    if (server < 0) {
        IpAddr a;
        if (!parse_ip(host, a)) return false;
        server = sc.find_server(a);
        if (server < 0) return false;
    }
    unsigned long p = 0;
    if (!port.empty()) {
        char* end = nullptr;
        p = std::strtoul(port.c_str(), &end, 10);
        if (*end != '\0' || p == 0 || p > 65535) return false;
    }
    bool any = false;
    for (size_t i = 0; i < sc.services.size(); ++i) {
        if (sc.services[i].server == static_cast<uint32_t>(server) && (p == 0 || sc.services[i].port == p)) {
            out.push_back(static_cast<uint32_t>(i));
            any = true;
        }
    }
    return any;
}

void read_clients(Reader& rd, const YAML::Node& n, const std::string& ctx, const Scenario& sc, ClientSpec& c,
                  bool crowd) {
    const std::initializer_list<std::string_view> kBaseKeys = {
        "rate", "hosts", "lan_share", "ipv6_share", "lan_prefix", "wan_prefix", "ipv6_prefix", "targets",
        "rtt_lan_ms", "rtt_wan_ms", "rtt_sigma", "requests", "request_bytes", "response_bytes", "upload_share",
        "think_ms", "idle_ms", "close", "retransmit_share", "reorder_share"};
    if (!crowd && !rd.mapping(n, ctx, kBaseKeys)) return;
    rd.number(n, "rate", ctx, c.rate, 0, 1e8);
    rd.integer(n, "hosts", ctx, c.hosts, 1, 1e8);
    rd.number(n, "lan_share", ctx, c.lan_share, 0, 1);
    rd.number(n, "ipv6_share", ctx, c.ipv6_share, 0, 1);
    Prefix p;
    if (rd.prefix(n, "lan_prefix", ctx, p)) {
        if (p.base.v6) rd.error(n["lan_prefix"], "'" + Reader::path(ctx, "lan_prefix") + "' must be IPv4");
        else c.lan_prefix = p;
    }
    if (rd.prefix(n, "wan_prefix", ctx, p)) {
        if (p.base.v6) rd.error(n["wan_prefix"], "'" + Reader::path(ctx, "wan_prefix") + "' must be IPv4");
        else c.wan_prefix = p;
    }
    if (rd.prefix(n, "ipv6_prefix", ctx, p)) {
        if (!p.base.v6 || p.len > 96) rd.error(n["ipv6_prefix"], "'" + Reader::path(ctx, "ipv6_prefix") + "' must be an IPv6 prefix of /96 or shorter");
        else c.v6_prefix = p;
    }
    rd.number(n, "rtt_lan_ms", ctx, c.rtt_lan_ms, 0.02, 50);
    rd.number(n, "rtt_wan_ms", ctx, c.rtt_wan_ms, 1, 1000);
    rd.number(n, "rtt_sigma", ctx, c.rtt_sigma, 0, 2);
    rd.number(n, "requests", ctx, c.requests_mean, 1, 100);
    rd.lognormal(n, "request_bytes", ctx, c.request_bytes, 1, 1e7);
    if (const YAML::Node r = n["response_bytes"]) {
        const std::string p2 = Reader::path(ctx, "response_bytes");
        if (r.IsScalar()) {
            rd.number(n, "response_bytes", ctx, c.response_bytes.median, 0, 1e9);
        } else if (rd.mapping(r, p2, {"median", "sigma", "tail_share", "tail_alpha", "tail_min", "max"})) {
            rd.number(r, "median", p2, c.response_bytes.median, 0, 1e9);
            rd.number(r, "sigma", p2, c.response_bytes.sigma, 0, 4);
            rd.number(r, "tail_share", p2, c.response_bytes.tail_share, 0, 1);
            rd.number(r, "tail_alpha", p2, c.response_bytes.tail_alpha, 0.5, 10);
            rd.number(r, "tail_min", p2, c.response_bytes.tail_min, 1, 1e9);
            rd.number(r, "max", p2, c.response_bytes.max, 1, 1e9);
        }
    }
    rd.number(n, "upload_share", ctx, c.upload_share, 0, 1);
    rd.lognormal(n, "think_ms", ctx, c.think_ms, 0, 60000);
    rd.lognormal(n, "idle_ms", ctx, c.idle_ms, 0, 600000);
    if (const YAML::Node cl = n["close"]) {
        const std::string p2 = Reader::path(ctx, "close");
        if (rd.mapping(cl, p2, {"server_first", "rst", "simultaneous"})) {
            rd.number(cl, "server_first", p2, c.server_close_share, 0, 1);
            rd.number(cl, "rst", p2, c.rst_share, 0, 1);
            rd.number(cl, "simultaneous", p2, c.simultaneous_close_share, 0, 1);
            if (c.rst_share + c.simultaneous_close_share > 1)
                rd.error(cl, "'" + p2 + "': rst + simultaneous exceed 1");
        }
    }
    rd.number(n, "retransmit_share", ctx, c.retransmit_share, 0, 1);
    rd.number(n, "reorder_share", ctx, c.reorder_share, 0, 1);
    if (crowd) return;  // a crowd's target is the attack's
    if (const YAML::Node t = n["targets"]) {
        c.targets.clear();
        c.weights.clear();
        const std::string p2 = Reader::path(ctx, "targets");
        if (!t.IsSequence()) {
            rd.error(t, "'" + p2 + "' must be a list of \"server:port\" or {service, weight}");
        } else {
            for (const auto& e : t) {
                std::string text;
                double w = 1;
                if (e.IsScalar()) {
                    text = e.Scalar();
                } else if (rd.mapping(e, p2 + "[]", {"service", "weight"})) {
                    if (!rd.string(e, "service", p2 + "[]", text)) rd.error(e, "'" + p2 + "[].service' is required");
                    rd.number(e, "weight", p2 + "[]", w, 0, 1e9);
                }
                if (text.empty()) continue;
                std::vector<uint32_t> svcs;
                if (!resolve_services(sc, text, svcs)) {
                    rd.error(e, "'" + p2 + "': '" + text + "' names no service (a server name or address, optionally :port, among 'servers')");
                    continue;
                }
                for (auto s : svcs) {
                    c.targets.push_back(s);
                    c.weights.push_back(w / static_cast<double>(svcs.size()));
                }
            }
        }
    }
}

// Target forms: "name:port", "name", "ip:port", "ip", "[v6]:port", "prefix/len:port",
// "[v6prefix/len]:port", "prefix/len".
bool parse_target(const Scenario& sc, const std::string& text, AttackSpec& a, std::string& why) {
    std::string host = text, port;
    if (!text.empty() && text[0] == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos) {
            why = "missing ']'";
            return false;
        }
        host = text.substr(1, close - 1);
        if (close + 1 < text.size()) {
            if (text[close + 1] != ':') {
                why = "expected ':port' after ']'";
                return false;
            }
            port = text.substr(close + 2);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        const auto c = text.find(':');
        host = text.substr(0, c);
        port = text.substr(c + 1);
    }
    a.port = 0;
    if (!port.empty()) {
        char* end = nullptr;
        const unsigned long p = std::strtoul(port.c_str(), &end, 10);
        if (*end != '\0' || p == 0 || p > 65535) {
            why = "'" + port + "' is not a port (1-65535)";
            return false;
        }
        a.port = static_cast<uint16_t>(p);
    }
    bool named = false;
    for (const auto& s : sc.servers) {
        if (s.name == host && (s.has_v4 || s.has_v6)) {
            a.target.base = s.has_v4 ? s.v4 : s.v6;
            a.target.len = s.has_v4 ? 32 : 128;
            named = true;
        }
    }
    if (!named && !parse_prefix(host, a.target, why)) {
        why = "'" + host + "' is neither a server name nor an address or prefix (" + why + ")";
        return false;
    }
    a.service = -1;
    if (a.port != 0 && a.target.host_bits() == 0) a.service = sc.find_service(a.target.base, a.port);
    return true;
}

void read_attacks(Reader& rd, const YAML::Node& list, Scenario& sc, const ClientSpec& base_clients,
                  const std::vector<std::string>* cli_args) {
    if (!list.IsSequence()) {
        rd.error(list, "'attacks' must be a list");
        return;
    }
    size_t idx = 0;
    for (const auto& n : list) {
        const std::string ctx = "attacks[" + std::to_string(idx) + "]";
        if (cli_args && idx < cli_args->size()) rd.set_fallback("--attack " + (*cli_args)[idx]);
        ++idx;
        AttackSpec a;
        a.where = rd.at(n);
        a.name = ctx;
        if (!n.IsMap()) {
            rd.error(n, "'" + ctx + "' must be a mapping with at least 'type'");
            continue;
        }
        std::string type;
        if (!rd.string(n, "type", ctx, type)) {
            rd.error(n, "'" + ctx + ".type' is required (one of: syn_flood, half_open_exhaustion, synack_reflection, "
                        "ack_flood, rst_flood, fin_flood, syn_scan, stealth_scan, connect_scan, rst_injection, flash_crowd)");
            continue;
        }
        bool found = false;
        for (unsigned t = 0; t < kAttackTypeCount; ++t)
            if (type == attack_type_name(static_cast<AttackType>(t))) a.type = static_cast<AttackType>(t), found = true;
        if (!found) {
            std::string list_s;
            for (unsigned t = 0; t < kAttackTypeCount; ++t)
                list_s += std::string(t ? ", " : "") + attack_type_name(static_cast<AttackType>(t));
            rd.error(n["type"], "'" + ctx + ".type': unknown attack type '" + type + "'; known: " + list_s);
            continue;
        }
        const AttackType T = a.type;
        const bool spoofed = T == AttackType::syn_flood || T == AttackType::half_open_exhaustion ||
                             T == AttackType::ack_flood || T == AttackType::rst_flood || T == AttackType::fin_flood ||
                             T == AttackType::synack_reflection;
        const bool scan = T == AttackType::syn_scan || T == AttackType::stealth_scan || T == AttackType::connect_scan;
        if (spoofed) {
            rd.mapping(n, ctx, {"type", "target", "rate", "start", "duration", "sources", "responses", "ports"});
            if (T != AttackType::synack_reflection && n["ports"])
                rd.error(n["ports"], "'" + ctx + ".ports' applies to synack_reflection (reflector ports) and scans only");
        } else if (scan) {
            rd.mapping(n, ctx, {"type", "target", "rate", "start", "duration", "source", "ports", "variant", "responses"});
            if (T != AttackType::stealth_scan && n["variant"])
                rd.error(n["variant"], "'" + ctx + ".variant' applies to stealth_scan only");
        } else if (T == AttackType::rst_injection) {
            rd.mapping(n, ctx, {"type", "target", "rate", "start", "duration", "responses"});
        } else {  // flash_crowd
            rd.mapping(n, ctx, {"type", "target", "rate", "start", "duration", "ramp", "hosts", "lan_share",
                                "ipv6_share", "lan_prefix", "wan_prefix", "ipv6_prefix", "rtt_lan_ms", "rtt_wan_ms",
                                "rtt_sigma", "requests", "request_bytes", "response_bytes", "upload_share", "think_ms",
                                "idle_ms", "close", "retransmit_share", "reorder_share"});
        }

        // The fields that do not depend on the target are checked even when it is wrong, so
        // that one run reports every error of the entry.
        bool entry_ok = true;
        if (!rd.number(n, "rate", ctx, a.rate, 0.001, 1e8)) {
            if (!n["rate"]) rd.error(n, "'" + ctx + ".rate' is required (per second)");
            entry_ok = false;
        }
        rd.number(n, "start", ctx, a.start, 0, 1e6);
        rd.number(n, "duration", ctx, a.duration, 0.000001, 1e6);
        rd.boolean(n, "responses", ctx, a.responses);
        std::string why;
        if (!rd.string(n, "target", ctx, a.target_text)) {
            if (!n["target"]) rd.error(n, "'" + ctx + ".target' is required");
            continue;
        }
        if (!parse_target(sc, a.target_text, a, why)) {
            rd.error(n["target"], "'" + ctx + ".target': " + why);
            continue;
        }
        if (!entry_ok) continue;
        const YAML::Node tn = n["target"];
        const bool v6 = a.target.base.v6;

        if (spoofed) {
            std::string dflt = v6 ? "2000::/3" : "0.0.0.0/0";
            parse_prefix(dflt, a.sources, why);
            a.source_count = T == AttackType::half_open_exhaustion ? 10000u
                             : T == AttackType::synack_reflection   ? 5000u
                                                                    : 1000000u;
            if (const YAML::Node s = n["sources"]) {
                const std::string p2 = ctx + ".sources";
                if (s.IsScalar()) {
                    rd.prefix(n, "sources", ctx, a.sources);
                } else if (rd.mapping(s, p2, {"prefix", "count"})) {
                    rd.prefix(s, "prefix", p2, a.sources);
                    rd.integer(s, "count", p2, a.source_count, 1, 1u << 26);
                }
            }
            if (a.sources.base.v6 != v6)
                rd.error(n["sources"] ? n["sources"] : n, "'" + ctx + ".sources' must be of the target's family (" +
                                                              std::string(v6 ? "IPv6" : "IPv4") + ")");
            if (a.sources.host_bits() < 63 && a.source_count > a.sources.size()) a.source_count = static_cast<uint32_t>(a.sources.size());
            if (T == AttackType::synack_reflection) {
                a.ports = {80, 443};
                rd.ports(n, "ports", ctx, a.ports);
                if (a.port != 0) rd.error(tn, "'" + ctx + ".target' of synack_reflection is the victim address (the reflected SYN-ACKs go to random ports): drop ':" + std::to_string(a.port) + "'");
            }
            if (T == AttackType::half_open_exhaustion && a.port == 0)
                rd.error(tn, "'" + ctx + ".target' of half_open_exhaustion must be ip:port (a listening service)");
            if (a.target.host_bits() > 24)
                rd.error(tn, "'" + ctx + ".target' prefix is too wide (at most 2^24 addresses)");
        } else if (scan) {
            if (a.port != 0) {
                rd.error(tn, "'" + ctx + ".target' of a scan is a host or prefix; give ports in '" + ctx + ".ports'");
            }
            std::string src = v6 ? "2001:db8:ffff::66" : "203.0.113.66";
            parse_ip(src, a.source);
            rd.ip(n, "source", ctx, a.source);
            if (a.source.v6 != v6) rd.error(n["source"] ? n["source"] : n, "'" + ctx + ".source' must be of the target's family");
            a.ports.clear();
            for (unsigned p = 1; p <= 1024; ++p) a.ports.push_back(static_cast<uint16_t>(p));
            rd.ports(n, "ports", ctx, a.ports);
            if (a.target.host_bits() > 16) rd.error(tn, "'" + ctx + ".target' prefix is too wide for a scan (at most 65536 hosts)");
            if (T == AttackType::stealth_scan) {
                std::string v;
                bool have = true;
                if (!n["variant"]) {
                    rd.error(n, "'" + ctx + ".variant' is required for stealth_scan: fin, null or xmas");
                    have = false;
                } else if (n["variant"].IsNull()) {
                    v = "null";  // YAML reads a bare `variant: null` as a null, not as the word
                } else {
                    have = rd.string(n, "variant", ctx, v);
                }
                if (!have) {
                    // reported
                } else if (v == "fin") {
                    a.variant = StealthVariant::fin;
                } else if (v == "null") {
                    a.variant = StealthVariant::null;
                } else if (v == "xmas") {
                    a.variant = StealthVariant::xmas;
                } else {
                    rd.error(n["variant"], "'" + ctx + ".variant': '" + v + "' is not one of fin, null, xmas");
                }
            }
        } else if (T == AttackType::rst_injection) {
            if (a.service < 0) {
                rd.error(tn, "'" + ctx + ".target' of rst_injection must name a service (server:port) whose connections are attacked");
            } else if (std::find(base_clients.targets.begin(), base_clients.targets.end(),
                                 static_cast<uint32_t>(a.service)) == base_clients.targets.end() ||
                       base_clients.rate <= 0) {
                rd.error(tn, "'" + ctx + ".target' " + a.target_text + " receives no legitimate connections (add it to clients.targets and give clients a rate)");
            }
        } else {  // flash crowd
            if (a.service < 0) {
                rd.error(tn, "'" + ctx + ".target' of flash_crowd must name a service (server:port)");
            }
            a.crowd = base_clients;
            // A crowd comes from the Internet at large: new hosts, mostly WAN.
            a.crowd.hosts = 200000;
            a.crowd.lan_share = 0.0;
            a.crowd.wan_prefix = must_prefix("100.96.0.0/11");
            a.crowd.v6_prefix = must_prefix("2001:db8:8000::/33");
            a.crowd.requests_mean = 1.3;
            read_clients(rd, n, ctx, sc, a.crowd, true);
            a.crowd.rate = a.rate;
            a.crowd.targets = {static_cast<uint32_t>(a.service < 0 ? 0 : a.service)};
            a.crowd.weights = {1.0};
            rd.number(n, "ramp", ctx, a.ramp, 0, 3600);
        }
        sc.attacks.push_back(std::move(a));
    }
}

LoadResult load_node(const YAML::Node& root, const std::string& file, const std::vector<std::string>* cli_args) {
    LoadResult r;
    Scenario& sc = r.scenario;
    sc.file = file;
    Reader rd(file, r.errors);
    if (!root || root.IsNull() || !root.IsMap()) {
        r.errors.push_back({file, "expected a mapping (name, duration, servers, clients, attacks, ...) at the top level"});
        return r;
    }
    rd.mapping(root, "", {"name", "description", "duration", "start_time", "seed", "timestamps", "snaplen",
                          "servers", "clients", "attacks"});
    if (!rd.string(root, "name", "", sc.name)) {
        // The file's stem.
        auto slash = file.find_last_of('/');
        std::string stem = slash == std::string::npos ? file : file.substr(slash + 1);
        auto dot = stem.find('.');
        sc.name = dot == std::string::npos ? stem : stem.substr(0, dot);
    }
    rd.string(root, "description", "", sc.description);
    rd.number(root, "duration", "", sc.duration, 0.001, 86400);
    std::string st;
    if (rd.string(root, "start_time", "", st) && !parse_time(st, sc.start_epoch_ns))
        rd.error(root["start_time"], "'start_time': '" + st + "' is neither epoch seconds nor YYYY-MM-DDTHH:MM:SSZ");
    rd.integer(root, "seed", "", sc.seed, 0, 9007199254740992.0);
    std::string ts;
    if (rd.string(root, "timestamps", "", ts)) {
        if (ts == "us" || ts == "micro") sc.resolution = TsResolution::micro;
        else if (ts == "ns" || ts == "nano") sc.resolution = TsResolution::nano;
        else rd.error(root["timestamps"], "'timestamps': '" + ts + "' is not us or ns");
    }
    rd.integer(root, "snaplen", "", sc.snaplen, 128, 262144);

    if (const YAML::Node s = root["servers"]) read_servers(rd, s, sc);
    sc.clients = default_clients();
    for (size_t i = 0; i < sc.services.size(); ++i) {
        sc.clients.targets.push_back(static_cast<uint32_t>(i));
        sc.clients.weights.push_back(1.0);
    }
    if (const YAML::Node c = root["clients"]) read_clients(rd, c, "clients", sc, sc.clients, false);
    if (sc.clients.rate > 0 && sc.clients.targets.empty() && !(root["clients"] && root["clients"]["targets"]))
        rd.error(root["clients"], "'clients' has a rate but there is no service to connect to (add 'servers')");
    if (sc.clients.rate > 0 && !sc.clients.targets.empty()) {
        double wsum = 0;
        for (double w : sc.clients.weights) wsum += w;
        if (wsum <= 0) rd.error(root["clients"], "'clients.targets' weights sum to zero");
    }
    if (const YAML::Node a = root["attacks"]) read_attacks(rd, a, sc, sc.clients, cli_args);

    // Attack windows must start inside the capture.
    for (size_t i = 0; i < sc.attacks.size(); ++i) {
        const auto& a = sc.attacks[i];
        if (a.start >= sc.duration)
            r.errors.push_back({a.where, "'" + a.name + "' starts at " + Reader::num_str(a.start) +
                                             " s, at or after the end of the capture (" + Reader::num_str(sc.duration) + " s)"});
    }
    return r;
}

}  // namespace

LoadResult load_scenario_string(const std::string& text, const std::string& name) {
    try {
        return load_node(YAML::Load(text), name, nullptr);
    } catch (const YAML::Exception& e) {
        LoadResult r;
        const std::string where =
            e.mark.line < 0 ? name : name + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
        r.errors.push_back({where, "YAML syntax: " + e.msg});
        return r;
    }
}

LoadResult load_scenario_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        LoadResult r;
        r.errors.push_back({path, std::string("cannot open the scenario: ") + std::strerror(errno)});
        return r;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return load_scenario_string(ss.str(), path);
}

LoadResult scenario_from_cli(double clients_rate, const std::vector<std::string>& attacks, double duration) {
    // The default servers as YAML, so the one-liners go through the same validation as files.
    YAML::Node root = YAML::Load(
        "servers:\n"
        "  - {name: web, ipv4: 192.0.2.10, ipv6: '2001:db8::10', ports: [80, 443], backlog: 1024}\n"
        "  - {name: mail, ipv4: 198.51.100.25, ipv6: '2001:db8:0:1::25', ports: [25]}\n");
    root["name"] = "command-line";
    root["duration"] = duration > 0 ? duration : 10.0;
    root["clients"]["rate"] = clients_rate;
    YAML::Node list(YAML::NodeType::Sequence);
    std::vector<ScenarioError> parse_errors;
    for (const auto& arg : attacks) {
        YAML::Node a(YAML::NodeType::Map);
        const auto colon = arg.find(':');
        a["type"] = arg.substr(0, colon);
        if (colon != std::string::npos) {
            // key=value pairs separated by ','; a value runs to the next ",key=" so that a port
            // list "ports=22,80" reads as one value.
            const std::string rest = arg.substr(colon + 1);
            size_t i = 0;
            while (i < rest.size()) {
                const auto eq = rest.find('=', i);
                if (eq == std::string::npos) {
                    parse_errors.push_back({"--attack " + arg, "'" + rest.substr(i) + "' is not key=value"});
                    break;
                }
                const std::string key = rest.substr(i, eq - i);
                size_t j = eq + 1, end = rest.size();
                for (size_t k = j; k < rest.size(); ++k) {
                    if (rest[k] != ',') continue;
                    const auto next_eq = rest.find('=', k + 1);
                    const auto next_comma = rest.find(',', k + 1);
                    if (next_eq != std::string::npos && (next_comma == std::string::npos || next_eq < next_comma)) {
                        end = k;
                        break;
                    }
                }
                std::string value = rest.substr(j, end - j);
                if (key == "sources" || key == "sources.prefix") a["sources"]["prefix"] = value;
                else if (key == "sources.count" || key == "source_count") a["sources"]["count"] = value;
                else a[key] = value;
                i = end + 1;
            }
        }
        list.push_back(a);
    }
    root["attacks"] = list;
    LoadResult r = load_node(root, "<command line>", &attacks);
    r.errors.insert(r.errors.begin(), parse_errors.begin(), parse_errors.end());
    return r;
}

void apply_overrides(Scenario& s, double duration, double scale, std::vector<std::string>& notes) {
    if (duration > 0) s.duration = duration;
    if (scale > 0) {
        s.clients.rate *= scale;
        for (auto& a : s.attacks) {
            a.rate *= scale;
            a.crowd.rate *= scale;
        }
    }
    std::vector<AttackSpec> kept;
    for (size_t i = 0; i < s.attacks.size(); ++i) {
        if (s.attacks[i].start >= s.duration) {
            notes.push_back(s.attacks[i].name + " (" + attack_type_name(s.attacks[i].type) + ") starts at " +
                            Reader::num_str(s.attacks[i].start) + " s, after the end of the shortened capture: left out");
            continue;
        }
        kept.push_back(s.attacks[i]);
    }
    s.attacks = std::move(kept);
}

}  // namespace stateline::gen
