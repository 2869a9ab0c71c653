// SPDX-License-Identifier: BSD-3-Clause
// Config as validated data: defaults, the canonical file, and errors reported all at once.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>

#include "config.hpp"
#include "rules.hpp"

using namespace stateline::config;
namespace detect = stateline::detect;

#ifndef STATELINE_SOURCE_ROOT
#error "STATELINE_SOURCE_ROOT must name the source tree"
#endif

namespace {

const char* const kCanonical = STATELINE_SOURCE_ROOT "/conf/stateline.yaml";

std::string read_text(const char* path) {
    std::FILE* f = std::fopen(path, "r");
    if (!f) return {};
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    return text;
}

// "section.key" (or "key") -> whether the line above it is a comment, for the keys of the file
// (two levels, as the schema has).
std::map<std::string, bool> keys_of(const std::string& text) {
    std::map<std::string, bool> out;
    std::istringstream in(text);
    std::string line, section, previous;
    while (std::getline(in, line)) {
        const size_t indent = line.find_first_not_of(' ');
        const size_t colon = line.find(':');
        if (indent != std::string::npos && line[indent] != '#' && colon != std::string::npos) {
            const std::string key = line.substr(indent, colon - indent);
            const bool commented = previous.find_first_not_of(' ') != std::string::npos &&
                                   previous[previous.find_first_not_of(' ')] == '#';
            if (indent == 0) {
                section = colon + 1 == line.size() ? key : "";
                out[key] = commented;
            } else {
                out[section + "." + key] = commented;
            }
        }
        previous = line;
    }
    return out;
}

// 16-byte address as flow keys hold it (IPv4-mapped for IPv4).
struct Addr {
    uint8_t b[16]{};
};
Addr v4(const char* s) {
    Addr a;
    a.b[10] = a.b[11] = 0xff;
    EXPECT_EQ(inet_pton(AF_INET, s, a.b + 12), 1) << s;
    return a;
}
Addr v6(const char* s) {
    Addr a;
    EXPECT_EQ(inet_pton(AF_INET6, s, a.b), 1) << s;
    return a;
}
detect::Prefix prefix(const std::string& s) {
    detect::Prefix p;
    std::string why;
    EXPECT_TRUE(detect::parse_prefix(s, p, why)) << s << ": " << why;
    return p;
}
std::string prefix_error(const std::string& s) {
    detect::Prefix p;
    std::string why;
    EXPECT_FALSE(detect::parse_prefix(s, p, why)) << s << " parsed as " << detect::format_prefix(p);
    return why;
}

uint32_t threshold(const detect::Thresholds& t, detect::Threshold which) { return t[which]; }

}  // namespace

TEST(Config, CanonicalFileEqualsBuiltInDefaults) {
    auto r = load_file(kCanonical);
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    // Every parameter (detect.* and thresholds.* included) at its built-in default.
    for (const auto& p : parameters()) {
        EXPECT_EQ(p.value(r.config), p.default_value) << p.path;
        EXPECT_EQ(p.text(r.config), p.default_text) << p.path;
    }
    EXPECT_TRUE(r.config.detect.groups.empty());
    EXPECT_TRUE(!r.config.rules || r.config.rules->size() == 0) << "rules: is commented out";
}

TEST(Config, CanonicalFileDocumentsEveryParameter) {
    // Every declared parameter appears in its section of conf/stateline.yaml, a comment above it.
    const auto keys = keys_of(read_text(kCanonical));
    ASSERT_FALSE(keys.empty());
    for (const auto& p : parameters()) {
        auto it = keys.find(p.path);
        if (it == keys.end()) {
            ADD_FAILURE() << p.path << " is not in conf/stateline.yaml";
            continue;
        }
        EXPECT_TRUE(it->second) << p.path << " has no comment above it in conf/stateline.yaml";
    }
}

TEST(Config, CanonicalGroupsExampleIsValid) {
    // The commented-out groups: example, uncommented, loads (so it cannot rot).
    const std::string text = read_text(kCanonical);
    const size_t at = text.find("\n# groups:\n");
    ASSERT_NE(at, std::string::npos);
    std::istringstream in(text.substr(at + 1));
    std::string line, example;
    while (std::getline(in, line) && line.rfind("#", 0) == 0) example += line.substr(line.size() > 1 ? 2 : 1) + "\n";
    auto r = load_string(text.substr(0, at + 1) + example, "example");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors) << example;
    ASSERT_EQ(r.config.detect.groups.size(), 2u);
    const auto& web = r.config.detect.groups[0];
    EXPECT_EQ(web.name, "web");
    ASSERT_EQ(web.prefixes.size(), 2u);
    EXPECT_EQ(detect::format_prefix(web.prefixes[0]), "192.0.2.0/24");
    EXPECT_EQ(detect::format_prefix(web.prefixes[1]), "2001:db8:80::/48");
    EXPECT_GT(threshold(web.thresholds, detect::Threshold::syn_flood_rate), detect::Thresholds{}[detect::Threshold::syn_flood_rate]);
    EXPECT_EQ(r.config.detect.groups[1].name, "mail");
}

TEST(Config, ParametersListDetectionWithTheirTypes) {
    std::map<std::string, ParamInfo> by_path;
    for (const auto& p : parameters()) by_path[p.path] = p;
    EXPECT_EQ(by_path.size(), parameters().size()) << "a path is declared twice";
    ASSERT_TRUE(by_path.count("detect.enabled"));
    const auto& en = by_path["detect.enabled"];
    EXPECT_EQ(en.type, "bool");
    EXPECT_EQ(en.min, 0u);
    EXPECT_EQ(en.max, 1u);
    EXPECT_EQ(en.default_value, 1u);
    const auto& iv = by_path["detect.interval_ms"];
    EXPECT_EQ(iv.type, "uint");
    EXPECT_EQ(iv.min, 100u);
    EXPECT_EQ(iv.max, 60000u);
    EXPECT_EQ(iv.default_value, 1000u);
    EXPECT_EQ(by_path["detect.hold_down"].default_value, 5u);
    EXPECT_EQ(by_path["detect.warmup"].default_value, 2u);
    EXPECT_EQ(by_path["detect.sketch_width"].default_value, 8192u);
    EXPECT_EQ(by_path["detect.top"].default_value, 128u);
    for (unsigned i = 0; i < detect::kThresholdCount; ++i) {
        const auto& t = detect::kThresholdInfo[i];
        auto it = by_path.find(std::string("thresholds.") + t.name);
        ASSERT_NE(it, by_path.end()) << t.name;
        EXPECT_EQ(it->second.type, "uint");
        EXPECT_EQ(it->second.min, t.min);
        EXPECT_EQ(it->second.max, t.max);
        EXPECT_EQ(it->second.default_value, t.default_value);
        const std::string unit = std::string(" (") + t.unit + ")";
        EXPECT_EQ(it->second.help.substr(it->second.help.size() - unit.size()), unit) << it->second.help;
        if (std::string(t.unit) == "%") {
            EXPECT_EQ(t.max, 100u) << t.name;
        }
    }
    EXPECT_NE(by_path["thresholds.syn_flood_rate"].help.find("(SYN/s)"), std::string::npos);
}

TEST(Config, EveryParameterHasATextForm) {
    const Config d;
    for (const auto& p : parameters()) {
        ASSERT_TRUE(p.text) << p.path;
        EXPECT_EQ(p.text(d), p.default_text) << p.path;
        if (p.type == "uint") {
            EXPECT_EQ(p.default_text, std::to_string(p.default_value)) << p.path;
        } else if (p.type == "bool") {
            EXPECT_EQ(p.default_text, p.default_value ? "true" : "false") << p.path;
        } else {
            ASSERT_EQ(p.type, "string") << p.path;
            EXPECT_EQ(p.default_value, 0u) << p.path;
            EXPECT_EQ(p.value(d), 0u) << p.path;
            EXPECT_NE(p.allowed.empty(), p.expected.empty()) << p.path << ": allowed values or a validator";
        }
    }
}

TEST(Config, EmptyDocumentMeansDefaults) {
    auto r = load_string("");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.config.flow_capacity, Config{}.flow_capacity);
}

TEST(Config, ValuesAreApplied) {
    auto r = load_string("workers: 4\nflow_table:\n  capacity: 4096\ntimeouts:\n  msl: 60\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    EXPECT_EQ(r.config.workers, 4u);
    EXPECT_EQ(r.config.flow_capacity, 4096u);
    EXPECT_EQ(r.config.msl, 60u);
}

TEST(Config, EveryErrorReportedWithItsPlace) {
    const char* text =
        "workers: 0\n"               // line 1: out of range
        "flow_table:\n"
        "  capacity: lots\n"         // line 3: not a number
        "  expiry_bach: 10\n"        // line 4: typo
        "timeouts:\n"
        "  half_open: -5\n"          // line 6: negative
        "rx:\n"
        "  worker_ring: 1000\n";     // line 8: not a power of two
    auto r = load_string(text, "bad.yaml");
    ASSERT_EQ(r.errors.size(), 5u) << format_errors(r.errors);
    std::string all = format_errors(r.errors);
    EXPECT_NE(all.find("bad.yaml:1:10: 'workers' = 0 is out of range [1, 64]"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:3:13: 'flow_table.capacity' expects an unsigned integer, got 'lots'"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:4:3: unknown parameter 'flow_table.expiry_bach'"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:6:14: 'timeouts.half_open' expects an unsigned integer, got '-5'"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:8:16: 'rx.worker_ring' = 1000 must be a power of two"), std::string::npos) << all;
}

TEST(Config, SyntaxErrorHasAPlace) {
    auto r = load_string("workers: [1,\n", "broken.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].where.rfind("broken.yaml:", 0), 0u) << r.errors[0].where;
    EXPECT_NE(r.errors[0].what.find("YAML syntax"), std::string::npos);
}

TEST(Config, MissingFileIsAClearError) {
    auto r = load_file("/nonexistent/stateline.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].where, "/nonexistent/stateline.yaml");
    EXPECT_NE(r.errors[0].what.find("cannot open"), std::string::npos);
}

// A FIFO nobody writes (or a device) in place of the config is refused at once: a reload on
// the control core must never wait on it. (An ifstream would block in open() here for ever.)
TEST(Config, FifoDeviceOrFolderIsRefusedWithoutBlocking) {
    char dir[] = "/tmp/stateline-config-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string fifo = std::string(dir) + "/stateline.yaml";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    for (const std::string& path : {fifo, std::string("/dev/zero"), std::string(dir)}) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = load_file(path);
        const auto took = std::chrono::steady_clock::now() - t0;
        ASSERT_EQ(r.errors.size(), 1u) << path;
        EXPECT_EQ(r.errors[0].where, path);
        EXPECT_NE(r.errors[0].what.find("is not a regular file"), std::string::npos) << r.errors[0].what;
        EXPECT_LT(took, std::chrono::seconds(2)) << path;
    }
    ::unlink(fifo.c_str());
    ::rmdir(dir);
}

TEST(Config, OversizedFileIsRefusedBeforeParsing) {
    char path[] = "/tmp/stateline-config-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    std::string big(kMaxFileBytes + 1, '#');  // a YAML comment: valid, only too large
    ASSERT_EQ(::write(fd, big.data(), big.size()), ssize_t(big.size()));
    ::close(fd);
    auto r = load_file(path);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_NE(r.errors[0].what.find("is over 1 MiB"), std::string::npos) << r.errors[0].what;
    ::truncate(path, off_t(kMaxFileBytes));  // at the limit: read and parsed
    EXPECT_TRUE(load_file(path).ok());
    ::unlink(path);
}

TEST(Config, TopLevelMustBeAMapping) {
    auto r = load_string("- a\n- b\n", "list.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_NE(r.errors[0].what.find("mapping"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Rules (the rules: list, lib/rules)
// ---------------------------------------------------------------------------------------------

namespace rules = stateline::rules;

TEST(ConfigRules, AbsentOrEmptyMeansNone) {
    for (const char* text : {"workers: 2\n", "rules:\n", "rules: []\n"}) {
        auto r = load_string(text);
        ASSERT_TRUE(r.ok()) << text << format_errors(r.errors);
        EXPECT_TRUE(!r.config.rules || r.config.rules->size() == 0) << text;
    }
}

TEST(ConfigRules, ConfigWithRulesLoads) {
    const char* text =
        "workers: 2\n"
        "rules:\n"
        "  - name: syn-to-victim\n"
        "    match:\n"
        "      flags: SYN\n"
        "      victim_of: syn_flood\n"
        "    action: alert\n"
        "  - name: no-admin\n"
        "    match:\n"
        "      dst: 192.0.2.0/24\n"
        "      dst_port: [80, 8000-8080]\n"
        "      payload: \"GET /admin\"\n"
        "    action: drop\n"
        "  - name: per-source\n"
        "    match:\n"
        "      src: 198.51.100.0/24\n"
        "    action: rate_limit\n"
        "    rate: 100\n"
        "    per: source\n"
        "groups:\n"
        "  - name: web\n"
        "    prefixes: [192.0.2.0/24]\n";
    auto r = load_string(text, "ok.yaml");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    EXPECT_EQ(r.config.workers, 2u);
    EXPECT_EQ(r.config.detect.groups.size(), 1u);
    ASSERT_TRUE(r.config.rules);
    const rules::RuleSet& set = *r.config.rules;
    ASSERT_EQ(set.size(), 3u);
    EXPECT_EQ(set.spec(0).name, "syn-to-victim");
    EXPECT_EQ(set.spec(0).action, rules::Action::alert);
    EXPECT_EQ(set.spec(0).victim_of, rules::victim_bit(stateline::detect::AlertType::syn_flood));
    EXPECT_EQ(set.spec(1).action, rules::Action::drop);
    EXPECT_EQ(set.spec(1).payload, "GET /admin");
    EXPECT_EQ(set.spec(1).dst_ports.size(), 2u);
    EXPECT_EQ(set.spec(2).action, rules::Action::rate_limit);
    EXPECT_EQ(set.spec(2).per, rules::Per::source);
    EXPECT_EQ(set.spec(2).rate, 100u);
    EXPECT_TRUE(set.has_payload_rules());
    // A copy of the Config shares the compiled set.
    const Config copy = r.config;
    EXPECT_EQ(copy.rules.get(), r.config.rules.get());
}

TEST(ConfigRules, BadRulesReportedWithTheirPlacesAlongsideOtherErrors) {
    const char* text =
        "workers: 0\n"                    // line 1: out of range
        "rules:\n"
        "  - name: a\n"
        "    match:\n"
        "      dst_port: 99999\n"         // line 5: not a port
        "    action: explode\n"           // line 6: unknown action
        "  - name: b\n"
        "    match:\n"
        "      payload: \"(unclosed\"\n"  // line 9: Hyperscan rejects it
        "    action: drop\n"
        "rx:\n"
        "  worker_ring: 1000\n";          // line 12: not a power of two
    auto r = load_string(text, "bad.yaml");
    ASSERT_FALSE(r.ok());
    const std::string all = format_errors(r.errors);
    EXPECT_NE(all.find("bad.yaml:1:10: 'workers' = 0 is out of range"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:12:16: 'rx.worker_ring' = 1000 must be a power of two"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:5:17: "), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:6:13: "), std::string::npos) << all;
    EXPECT_NE(all.find("explode"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.yaml:9:16: payload pattern '(unclosed' of rule 'b' does not compile"), std::string::npos) << all;
    EXPECT_EQ(r.errors.size(), 5u) << all;
    EXPECT_FALSE(r.config.rules) << "no rule set from a list with errors";
}

TEST(ConfigRules, RulesMustBeAList) {
    auto r = load_string("workers: 0\nrules:\n  name: a\n", "map.yaml");
    const std::string all = format_errors(r.errors);
    ASSERT_EQ(r.errors.size(), 2u) << all;
    EXPECT_NE(all.find("map.yaml:3:"), std::string::npos) << all;
    EXPECT_NE(all.find("expects a list of rules"), std::string::npos) << all;
}

TEST(ConfigRules, CanonicalRulesExampleIsValid) {
    // The commented-out rules: example of conf/stateline.yaml, uncommented, loads and compiles.
    const std::string text = read_text(kCanonical);
    const size_t at = text.find("\n# rules:\n");
    ASSERT_NE(at, std::string::npos);
    std::istringstream in(text.substr(at + 1));
    std::string line, example;
    while (std::getline(in, line) && line.rfind("#", 0) == 0) example += line.substr(line.size() > 1 ? 2 : 1) + "\n";
    auto r = load_string(text.substr(0, at + 1) + example, "example");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors) << example;
    ASSERT_TRUE(r.config.rules);
    ASSERT_EQ(r.config.rules->size(), 3u);
    EXPECT_EQ(r.config.rules->spec(0).action, rules::Action::alert);
    EXPECT_EQ(r.config.rules->spec(0).victim_of, rules::victim_bit(stateline::detect::AlertType::syn_flood));
    EXPECT_TRUE(r.config.rules->spec(0).src.empty());
    EXPECT_EQ(r.config.rules->spec(1).action, rules::Action::drop);
    EXPECT_FALSE(r.config.rules->spec(1).payload.empty());
    EXPECT_EQ(r.config.rules->spec(2).action, rules::Action::rate_limit);
    EXPECT_EQ(r.config.rules->spec(2).per, rules::Per::source);
    EXPECT_TRUE(r.config.rules->has_payload_rules());
}

// ---------------------------------------------------------------------------------------------
// mitigation: and exports: (string parameters)
// ---------------------------------------------------------------------------------------------

namespace {

const ParamInfo& param(const std::string& path) {
    for (const auto& p : parameters())
        if (p.path == path) return p;
    static const ParamInfo none{};
    ADD_FAILURE() << "no parameter " << path;
    return none;
}

// The errors of `text` as one string, and their count.
std::string errors_of(const std::string& text, size_t& count, const std::string& name = "e.yaml") {
    auto r = load_string(text, name);
    count = r.errors.size();
    return format_errors(r.errors);
}

}  // namespace

TEST(ConfigMitigation, Defaults) {
    auto r = load_string("");
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r.config.inline_mode);
    EXPECT_EQ(r.config.payload_bytes, 256u);
    EXPECT_EQ(r.config.source_buckets, 4096u);
    // The defaults are lib/rules' own.
    EXPECT_EQ(Config{}.payload_bytes, rules::Options{}.scan_limit);
    EXPECT_EQ(Config{}.source_buckets, rules::Options{}.source_buckets);

    const auto& mode = param("mitigation.mode");
    EXPECT_EQ(mode.type, "string");
    EXPECT_EQ(mode.default_text, "monitor");
    EXPECT_EQ(mode.allowed, (std::vector<std::string>{"monitor", "inline"}));
    const auto& pb = param("mitigation.payload_bytes");
    EXPECT_EQ(pb.type, "uint");
    EXPECT_EQ(pb.min, 1u);
    EXPECT_EQ(pb.max, 65535u);
    EXPECT_EQ(pb.default_value, 256u);
    EXPECT_EQ(pb.default_text, "256");
    const auto& sb = param("mitigation.source_buckets");
    EXPECT_EQ(sb.min, 16u);
    EXPECT_EQ(sb.max, 1048576u);
    EXPECT_EQ(sb.default_value, 4096u);
}

TEST(ConfigMitigation, GoodValues) {
    auto r = load_string("mitigation:\n  mode: inline\n  payload_bytes: 65535\n  source_buckets: 16\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    EXPECT_TRUE(r.config.inline_mode);
    EXPECT_EQ(r.config.payload_bytes, 65535u);
    EXPECT_EQ(r.config.source_buckets, 16u);
    EXPECT_EQ(param("mitigation.mode").text(r.config), "inline");
    EXPECT_EQ(param("mitigation.payload_bytes").text(r.config), "65535");
    r = load_string("mitigation:\n  mode: monitor\n  payload_bytes: 1\n  source_buckets: 1048576\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    EXPECT_FALSE(r.config.inline_mode);
    EXPECT_EQ(r.config.payload_bytes, 1u);
    EXPECT_EQ(r.config.source_buckets, 1048576u);
}

TEST(ConfigMitigation, ModeErrorListsTheAllowedValues) {
    size_t n = 0;
    std::string all = errors_of("mitigation:\n  mode: bridge\n", n);
    EXPECT_EQ(n, 1u) << all;
    EXPECT_EQ(all, "e.yaml:2:9: 'mitigation.mode' expects one of monitor, inline, got 'bridge'\n");
    // Case matters, and a list is not a string.
    all = errors_of("mitigation:\n  mode: Inline\n", n);
    EXPECT_EQ(all, "e.yaml:2:9: 'mitigation.mode' expects one of monitor, inline, got 'Inline'\n");
    all = errors_of("mitigation:\n  mode: [inline]\n", n);
    EXPECT_EQ(all, "e.yaml:2:9: 'mitigation.mode' expects a string: one of monitor, inline\n");
    all = errors_of("mitigation:\n  mode:\n", n);
    EXPECT_EQ(n, 1u) << all;
    EXPECT_NE(all.find("e.yaml:2:3: "), std::string::npos) << all;
    EXPECT_NE(all.find("'mitigation.mode' expects a string: one of monitor, inline (\"\" for the default)"),
              std::string::npos) << all;
}

TEST(ConfigMitigation, NumberErrors) {
    size_t n = 0;
    std::string all = errors_of(
        "mitigation:\n"
        "  payload_bytes: 0\n"         // line 2: below 1
        "  source_buckets: 8\n",       // line 3: below 16
        n);
    EXPECT_EQ(n, 2u) << all;
    EXPECT_NE(all.find("e.yaml:2:18: 'mitigation.payload_bytes' = 0 is out of range [1, 65535]"), std::string::npos) << all;
    EXPECT_NE(all.find("e.yaml:3:19: 'mitigation.source_buckets' = 8 is out of range [16, 1048576]"), std::string::npos) << all;
    all = errors_of("mitigation:\n  payload_bytes: 65536\n  source_buckets: 2097152\n", n);
    EXPECT_EQ(n, 2u) << all;
    EXPECT_NE(all.find("e.yaml:2:18: 'mitigation.payload_bytes' = 65536 is out of range [1, 65535]"), std::string::npos) << all;
    EXPECT_NE(all.find("e.yaml:3:19: 'mitigation.source_buckets' = 2097152 is out of range"), std::string::npos) << all;
    // In range but not a power of two: a cross-field error at its place, once (not again from lib/rules).
    all = errors_of("mitigation:\n  source_buckets: 1000\nrules:\n  - name: a\n    action: rate_limit\n    rate: 5\n    per: source\n", n);
    EXPECT_EQ(n, 1u) << all;
    EXPECT_EQ(all, "e.yaml:2:19: 'mitigation.source_buckets' = 1000 must be a power of two (buckets are found by masking the hash)\n");
}

TEST(ConfigMitigation, OptionsReachTheCompiledRules) {
    // mitigation: after rules: still applies to them.
    auto r = load_string(
        "rules:\n"
        "  - name: p\n"
        "    match:\n"
        "      payload: \"GET /admin\"\n"
        "    action: drop\n"
        "mitigation:\n"
        "  payload_bytes: 1500\n"
        "  source_buckets: 65536\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    ASSERT_TRUE(r.config.rules);
    EXPECT_EQ(r.config.rules->options().scan_limit, 1500u);
    EXPECT_EQ(r.config.rules->options().source_buckets, 65536u);
    // And before it.
    r = load_string("mitigation:\n  payload_bytes: 64\n  source_buckets: 32\nrules:\n  - name: a\n    action: alert\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    ASSERT_TRUE(r.config.rules);
    EXPECT_EQ(r.config.rules->options().scan_limit, 64u);
    EXPECT_EQ(r.config.rules->options().source_buckets, 32u);
    // Defaults without a mitigation: section.
    r = load_string("rules:\n  - name: a\n    action: alert\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    ASSERT_TRUE(r.config.rules);
    EXPECT_EQ(r.config.rules->options().scan_limit, 256u);
    EXPECT_EQ(r.config.rules->options().source_buckets, 4096u);
}

TEST(ConfigExports, Defaults) {
    auto r = load_string("");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.config.metrics_listen, "");
    EXPECT_EQ(r.config.ctl_socket, "");
    EXPECT_EQ(r.config.alerts_path, "");
    EXPECT_EQ(r.config.stats_path, "");
    for (const char* path : {"exports.metrics_listen", "exports.ctl_socket", "exports.alerts", "exports.stats"}) {
        const auto& p = param(path);
        EXPECT_EQ(p.type, "string") << path;
        EXPECT_EQ(p.default_text, "") << path;
        EXPECT_TRUE(p.allowed.empty()) << path;
        EXPECT_FALSE(p.expected.empty()) << path;
    }
    EXPECT_EQ(param("exports.metrics_listen").expected, "ADDR:PORT, [IPv6]:PORT or off");
}

TEST(ConfigExports, GoodValues) {
    for (const char* v : {"127.0.0.1:9750", "0.0.0.0:1", "localhost:65535", "[::1]:9750", "[2001:db8::5]:80", "off", ""}) {
        // Quoted: unquoted, [::1]:9750 would be a YAML list.
        auto r = load_string(std::string("exports:\n  metrics_listen: \"") + v + "\"\n");
        ASSERT_TRUE(r.ok()) << v << ": " << format_errors(r.errors);
        EXPECT_EQ(r.config.metrics_listen, v);
        EXPECT_EQ(param("exports.metrics_listen").text(r.config), r.config.metrics_listen);
    }
    auto r = load_string(
        "exports:\n"
        "  ctl_socket: /run/stateline/other.sock\n"
        "  alerts: /var/log/stateline/alerts.json\n"
        "  stats: stats.jsonl\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    EXPECT_EQ(r.config.ctl_socket, "/run/stateline/other.sock");
    EXPECT_EQ(r.config.alerts_path, "/var/log/stateline/alerts.json");
    EXPECT_EQ(r.config.stats_path, "stats.jsonl");  // relative to the working directory, as --stats
    EXPECT_EQ(param("exports.alerts").text(r.config), "/var/log/stateline/alerts.json");
    EXPECT_TRUE(load_string("exports:\n  ctl_socket: off\n").config.ctl_socket == "off");
}

TEST(ConfigExports, BadValuesWithTheirPlacesAndWhatWasExpected) {
    const char* text =
        "exports:\n"
        "  metrics_listen: 127.0.0.1\n"        // line 2: no port
        "  ctl_socket: run/stateline.sock\n"   // line 3: relative
        "  alerts: [a, b]\n"                   // line 4: not a string
        "  stats: \"a\\nb\"\n"                 // line 5: a line break
        "  statz: x\n";                        // line 6: typo
    auto r = load_string(text, "x.yaml");
    const std::string all = format_errors(r.errors);
    EXPECT_EQ(r.errors.size(), 5u) << all;
    for (const char* want : {
             "x.yaml:2:19: 'exports.metrics_listen' = '127.0.0.1': no ':PORT'; expected ADDR:PORT, [IPv6]:PORT or off",
             "x.yaml:3:15: 'exports.ctl_socket' = 'run/stateline.sock': a relative path",
             "; expected an absolute path or off",
             "x.yaml:4:11: 'exports.alerts' expects a string: a file path",
             "x.yaml:5:10: 'exports.stats' = 'a\nb': holds a line break; expected a file path",
             "x.yaml:6:3: unknown parameter 'exports.statz'",
         })
        EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\n" << all;
}

TEST(ConfigExports, UnquotedIPv6ListenIsAListAndSaysSo) {
    size_t n = 0;
    const std::string all = errors_of("exports:\n  metrics_listen: [::1]:9750\n", n);
    // YAML itself may refuse it; if it parses, it is a list and the error says to quote it.
    ASSERT_EQ(n, 1u) << all;
    EXPECT_EQ(all.rfind("e.yaml:2:", 0), 0u) << all;
    if (all.find("YAML syntax") == std::string::npos) {
        EXPECT_NE(all.find("quote the value"), std::string::npos) << all;
    }
}

TEST(ConfigExports, MetricsListenSyntax) {
    auto why = [](const std::string& v) {
        auto r = load_string("exports:\n  metrics_listen: \"" + v + "\"\n", "m.yaml");
        EXPECT_EQ(r.errors.size(), 1u) << v << ": " << format_errors(r.errors);
        if (r.errors.empty()) return std::string();
        EXPECT_EQ(r.errors[0].where, "m.yaml:2:19") << v;
        EXPECT_NE(r.errors[0].what.find("expected ADDR:PORT, [IPv6]:PORT or off"), std::string::npos) << r.errors[0].what;
        return r.errors[0].what;
    };
    EXPECT_NE(why(":9750").find("no address before the port"), std::string::npos);
    EXPECT_NE(why("[]:9750").find("no address before the port"), std::string::npos);
    EXPECT_NE(why("127.0.0.1:0").find("the port '0' is not a number from 1 to 65535"), std::string::npos);
    EXPECT_NE(why("127.0.0.1:65536").find("the port '65536'"), std::string::npos);
    EXPECT_NE(why("127.0.0.1:http").find("the port 'http'"), std::string::npos);
    EXPECT_NE(why("127.0.0.1:").find("the port ''"), std::string::npos);
    EXPECT_NE(why("::1:9750").find("an IPv6 address goes in brackets"), std::string::npos);
    EXPECT_NE(why("[::1:9750").find("no ']'"), std::string::npos);
    EXPECT_NE(why("[::1]9750").find("no ':PORT' after the ']'"), std::string::npos);
    EXPECT_NE(why("Off").find("no ':PORT'"), std::string::npos);
}

TEST(ConfigExports, CtlSocketMustFitAUnixSocketAddress) {
    auto r = load_string("exports:\n  ctl_socket: /" + std::string(106, 'a') + "\n");
    EXPECT_TRUE(r.ok()) << format_errors(r.errors);
    r = load_string("exports:\n  ctl_socket: /" + std::string(107, 'a') + "\n", "s.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << format_errors(r.errors);
    EXPECT_EQ(r.errors[0].where, "s.yaml:2:15");
    EXPECT_NE(r.errors[0].what.find("longer than a Unix socket path may be (107 bytes)"), std::string::npos);
}

TEST(ConfigExports, EveryErrorAtOnceAcrossSections) {
    const char* text =
        "mitigation:\n"
        "  mode: tap\n"                    // line 2
        "exports:\n"
        "  ctl_socket: ctl.sock\n"         // line 4
        "rx:\n"
        "  burst: 65\n";                   // line 6
    size_t n = 0;
    const std::string all = errors_of(text, n, "three.yaml");
    EXPECT_EQ(n, 3u) << all;
    EXPECT_NE(all.find("three.yaml:2:9: 'mitigation.mode' expects one of monitor, inline, got 'tap'"), std::string::npos) << all;
    EXPECT_NE(all.find("three.yaml:4:15: 'exports.ctl_socket' = 'ctl.sock': a relative path"), std::string::npos) << all;
    EXPECT_NE(all.find("three.yaml:6:10: 'rx.burst' = 65 is out of range [1, 64]"), std::string::npos) << all;
}

// ---------------------------------------------------------------------------------------------
// docs/config.md, rendered from the schema
// ---------------------------------------------------------------------------------------------

TEST(ConfigDocs, ReferenceNamesEveryParameterAndList) {
    const std::string md = reference_markdown();
    for (const auto& p : parameters()) EXPECT_NE(md.find("| `" + p.path + "` |"), std::string::npos) << p.path;
    for (const char* want : {"stateline-rules check FILE", "file:line:col", "## The `groups:` list",
                             "## The `rules:` list", "first rule that matches decides", "`match.src_verified`",
                             "`match.nocase`", "`rate_limit`", "`per`", "`monitor`, `inline`",
                             "ADDR:PORT, [IPv6]:PORT or off", "`syn_flood`"})
        EXPECT_NE(md.find(want), std::string::npos) << want;
}

TEST(ConfigDocs, DocsConfigMdIsUpToDate) {
    const char* const path = STATELINE_SOURCE_ROOT "/docs/config.md";
    const std::string md = reference_markdown();
    const char* update = std::getenv("STATELINE_UPDATE_DOCS");
    if (update && std::string(update) == "1") {
        std::FILE* f = std::fopen(path, "w");
        ASSERT_TRUE(f) << "cannot write " << path;
        const size_t written = std::fwrite(md.data(), 1, md.size(), f);
        ASSERT_EQ(std::fclose(f), 0) << path;
        ASSERT_EQ(written, md.size()) << path;
        std::printf("rewrote %s\n", path);
        return;
    }
    EXPECT_TRUE(read_text(path) == md)
        << "docs/config.md is out of date: run STATELINE_UPDATE_DOCS=1 build/tests/unit/test_config (or meson test "
           "config) to regenerate it";
}

// ---------------------------------------------------------------------------------------------
// Detection settings
// ---------------------------------------------------------------------------------------------

TEST(ConfigDetect, Defaults) {
    auto r = load_string("");
    ASSERT_TRUE(r.ok());
    const auto& d = r.config.detect;
    EXPECT_TRUE(d.enabled);
    EXPECT_EQ(d.interval_ms, 1000u);
    EXPECT_EQ(d.hold_down_s, 5u);
    EXPECT_EQ(d.warmup_s, 2u);
    EXPECT_EQ(d.sketch_width, 8192u);
    EXPECT_EQ(d.top, 128u);
    for (unsigned i = 0; i < detect::kThresholdCount; ++i)
        EXPECT_EQ(d.thresholds.v[i], detect::kThresholdInfo[i].default_value) << detect::kThresholdInfo[i].name;
    EXPECT_TRUE(d.groups.empty());
}

TEST(ConfigDetect, SectionsAreApplied) {
    auto r = load_string(
        "detect:\n"
        "  enabled: false\n"
        "  interval_ms: 250\n"
        "  hold_down: 0\n"
        "  warmup: 3600\n"
        "  sketch_width: 1048576\n"
        "  top: 16\n"
        "thresholds:\n"
        "  syn_flood_rate: 5000\n"
        "  syn_flood_completion_max: 0\n"
        "  scan_completion_max: 100\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    const auto& d = r.config.detect;
    EXPECT_FALSE(d.enabled);
    EXPECT_EQ(d.interval_ms, 250u);
    EXPECT_EQ(d.hold_down_s, 0u);
    EXPECT_EQ(d.warmup_s, 3600u);
    EXPECT_EQ(d.sketch_width, 1048576u);
    EXPECT_EQ(d.top, 16u);
    EXPECT_EQ(d.thresholds[detect::Threshold::syn_flood_rate], 5000u);
    EXPECT_EQ(d.thresholds[detect::Threshold::syn_flood_completion_max], 0u);
    EXPECT_EQ(d.thresholds[detect::Threshold::scan_completion_max], 100u);
    EXPECT_EQ(d.thresholds[detect::Threshold::ack_flood_rate], 1000u);  // untouched
    EXPECT_TRUE(load_string("detect:\n  enabled: true\n").config.detect.enabled);
}

TEST(ConfigDetect, SectionWithEveryKeyCommentedOutIsEmpty) {
    auto r = load_string("detect:\n  # enabled: false\nthresholds:\ngroups:\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    EXPECT_TRUE(r.config.detect.enabled);
}

TEST(ConfigDetect, ScalarErrorsWithTheirPlaces) {
    const char* text =
        "detect:\n"
        "  enabled: yes\n"           // line 2: YAML 1.1 boolean, refused
        "  interval_ms: 99\n"        // line 3: below 100
        "  hold_down: 86401\n"       // line 4: above a day
        "  sketch_width: 3000\n"     // line 5: not a power of two
        "  top: 8\n"                 // line 6: below 16
        "  intervall_ms: 100\n"      // line 7: typo
        "thresholds:\n"
        "  syn_flood_rate: 0\n"      // line 9: below 1
        "  scan_completion_max: 101\n"  // line 10: a share above 100%
        "  syn_rate: 5\n"            // line 11: no such threshold
        "rx: 5\n";                   // line 12: a section given a value
    auto r = load_string(text, "bad.yaml");
    const std::string all = format_errors(r.errors);
    EXPECT_EQ(r.errors.size(), 10u) << all;
    for (const char* want : {
             "bad.yaml:2:12: 'detect.enabled' expects true or false, got 'yes'",
             "bad.yaml:3:16: 'detect.interval_ms' = 99 is out of range [100, 60000]",
             "bad.yaml:4:14: 'detect.hold_down' = 86401 is out of range [0, 86400]",
             "bad.yaml:5:17: 'detect.sketch_width' = 3000 must be a power of two",
             "bad.yaml:6:8: 'detect.top' = 8 is out of range [16, 4096]",
             "bad.yaml:7:3: unknown parameter 'detect.intervall_ms'",
             "bad.yaml:9:19: 'thresholds.syn_flood_rate' = 0 is out of range [1, 1000000000]",
             "bad.yaml:10:24: 'thresholds.scan_completion_max' = 101 is out of range [0, 100]",
             "bad.yaml:11:3: unknown parameter 'thresholds.syn_rate'",
             "bad.yaml:12:5: 'rx' is a section: expected a mapping of its parameters",
         })
        EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\n" << all;
}

TEST(ConfigDetect, SketchWidthOutOfRange) {
    auto r = load_string("detect:\n  sketch_width: 512\n", "w.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << format_errors(r.errors);
    EXPECT_EQ(format_errors(r.errors), "w.yaml:2:17: 'detect.sketch_width' = 512 is out of range [1024, 1048576]\n");
}

TEST(ConfigDetect, GroupsParsed) {
    // The groups come before the thresholds: section, and still start from it.
    auto r = load_string(
        "groups:\n"
        "  - name: web\n"
        "    prefixes:\n"
        "      - 192.0.2.0/24\n"
        "      - 2001:db8:80::/48\n"
        "      - \"::ffff:198.51.100.0/120\"\n"
        "    thresholds:\n"
        "      syn_flood_rate: 20000\n"
        "  - name: mail.v6-1_a\n"
        "    prefixes: [203.0.113.25, \"2001:db8::25\"]\n"
        "thresholds:\n"
        "  syn_flood_rate: 2000\n"
        "  scan_rate: 50\n");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    const auto& g = r.config.detect.groups;
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[0].name, "web");
    ASSERT_EQ(g[0].prefixes.size(), 3u);
    EXPECT_EQ(detect::format_prefix(g[0].prefixes[0]), "192.0.2.0/24");
    EXPECT_EQ(g[0].prefixes[0].len, 96 + 24);
    EXPECT_EQ(detect::format_prefix(g[0].prefixes[1]), "2001:db8:80::/48");
    EXPECT_EQ(g[0].prefixes[1].len, 48);
    EXPECT_EQ(detect::format_prefix(g[0].prefixes[2]), "198.51.100.0/24");  // the same as IPv4
    EXPECT_EQ(g[0].thresholds[detect::Threshold::syn_flood_rate], 20000u);  // its own
    EXPECT_EQ(g[0].thresholds[detect::Threshold::scan_rate], 50u);          // the file's default
    EXPECT_EQ(g[0].thresholds[detect::Threshold::rst_flood_rate], 1000u);   // the built-in default
    EXPECT_EQ(g[1].name, "mail.v6-1_a");
    ASSERT_EQ(g[1].prefixes.size(), 2u);
    EXPECT_EQ(detect::format_prefix(g[1].prefixes[0]), "203.0.113.25/32");
    EXPECT_EQ(detect::format_prefix(g[1].prefixes[1]), "2001:db8::25/128");
    EXPECT_EQ(g[1].thresholds[detect::Threshold::syn_flood_rate], 2000u);
    EXPECT_EQ(g[1].thresholds[detect::Threshold::scan_rate], 50u);
    EXPECT_EQ(r.config.detect.thresholds[detect::Threshold::syn_flood_rate], 2000u);
}

TEST(ConfigDetect, EveryGroupErrorReportedWithItsPlace) {
    const char* text =
        "groups:\n"
        "  - name: web\n"
        "    prefixes:\n"
        "      - 192.0.2.1/24\n"            // line 4: host bits set
        "      - 10.0.0.0/33\n"             // line 5: length out of range
        "      - not-an-address\n"          // line 6
        "      - 198.51.100.0/24\n"
        "    thresholds:\n"
        "      syn_flod_rate: 5\n"          // line 9: unknown threshold
        "      scan_rate: 0\n"              // line 10: out of range
        "      scan_completion_max: x\n"    // line 11: not a number
        "  - name: web\n"                   // line 12: duplicate name
        "    prefixes: [\"2001:db8::/32\"]\n"
        "  - prefixes: [203.0.113.0/24]\n"  // line 14: no name
        "  - name: empty\n"
        "    prefixes: []\n"                // line 16: empty
        "  - name: mail\n"
        "    prefixes:\n"
        "      - 198.51.100.0/24\n"         // line 19: already in web (line 7)
        "    colour: blue\n"                // line 20: unknown key
        "  - name: default\n"               // line 21: reserved
        "    prefixes: [192.0.2.128/25]\n"
        "  - name: bad name\n"              // line 23: bad characters
        "    prefixes: [\"2001:db8:1::/48\"]\n"
        "  - name: lonely\n"                // line 25: no prefixes
        "  - just a string\n"               // line 26: not a mapping
        "detect:\n"
        "  enabled: 1\n";                   // line 28: a bool is true or false
    auto r = load_string(text, "g.yaml");
    const std::string all = format_errors(r.errors);
    EXPECT_EQ(r.errors.size(), 16u) << all;
    for (const char* want : {
             "g.yaml:28:12: 'detect.enabled' expects true or false, got '1'",
             "g.yaml:4:9: bad prefix '192.0.2.1/24' in group 'web': host bits set: did you mean 192.0.2.0/24?",
             "g.yaml:5:9: bad prefix '10.0.0.0/33' in group 'web': prefix length 33 is out of range for IPv4 (0..32)",
             "g.yaml:6:9: bad prefix 'not-an-address' in group 'web': 'not-an-address' is not an IPv4 or IPv6 address",
             "g.yaml:9:7: unknown threshold 'syn_flod_rate' in group 'web'",
             "g.yaml:10:18: 'thresholds.scan_rate' of group 'web' = 0 is out of range [1, 1000000000]",
             "g.yaml:11:28: 'thresholds.scan_completion_max' of group 'web' expects an unsigned integer, got 'x'",
             "g.yaml:12:11: group name 'web' is already used at g.yaml:2:11",
             "g.yaml:14:5: group #3 has no 'name'",
             "g.yaml:16:15: 'prefixes' of group 'empty' expects a non-empty list of prefixes",
             "g.yaml:19:9: prefix 198.51.100.0/24 of group 'mail' is already in group 'web' at g.yaml:7:9",
             "g.yaml:20:5: unknown key 'colour' in group 'mail' (expected name, prefixes, thresholds)",
             "g.yaml:21:11: group name 'default' is reserved for the thresholds: section",
             "g.yaml:23:11: group name 'bad name' may hold only letters, digits, '_', '.' and '-'",
             "g.yaml:25:5: group 'lonely' has no 'prefixes'",
             "g.yaml:26:5: group #9 expects a mapping with name, prefixes and optionally thresholds",
         })
        EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\n" << all;
}

TEST(ConfigDetect, SamePrefixTwiceEvenWrittenDifferently) {
    auto r = load_string(
        "groups:\n"
        "  - name: a\n"
        "    prefixes: [192.0.2.0/24, \"::ffff:192.0.2.0/120\"]\n"
        "  - name: b\n"
        "    prefixes: [\"2001:db8::/32\", 192.0.2.0/25]\n"
        "  - name: c\n"
        "    prefixes: [\"2001:0db8:0::/32\"]\n",
        "d.yaml");
    const std::string all = format_errors(r.errors);
    ASSERT_EQ(r.errors.size(), 2u) << all;
    // Overlapping prefixes (/24 and /25) are fine: the most specific decides.
    EXPECT_NE(all.find("d.yaml:3:30: prefix 192.0.2.0/24 is listed twice in group 'a' (first at d.yaml:3:16)"),
              std::string::npos) << all;
    EXPECT_NE(all.find("d.yaml:7:16: prefix 2001:db8::/32 of group 'c' is already in group 'b' at d.yaml:5:16"),
              std::string::npos) << all;
}

TEST(ConfigDetect, GroupsMustBeAList) {
    auto r = load_string("groups:\n  web: [192.0.2.0/24]\n", "l.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << format_errors(r.errors);
    EXPECT_EQ(r.errors[0].where, "l.yaml:2:3");
    EXPECT_NE(r.errors[0].what.find("'groups' expects a list"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Prefixes
// ---------------------------------------------------------------------------------------------

TEST(Prefix, RoundTrips) {
    for (const char* s : {"192.0.2.0/24", "10.0.0.0/8", "0.0.0.0/0", "203.0.113.25/32", "192.0.2.16/28",
                          "255.255.255.255/32", "128.0.0.0/1", "2001:db8::/32", "2001:db8::1/128", "fe80::/10",
                          "::1/128", "2000::/3", "2001:db8:0:1::/64", "::ffff:0:0/96" /* = 0.0.0.0/0 */})
        EXPECT_EQ(detect::format_prefix(prefix(s)), std::string(s) == "::ffff:0:0/96" ? "0.0.0.0/0" : s) << s;
    // Bare addresses are host prefixes; IPv6 comes back in canonical form.
    EXPECT_EQ(detect::format_prefix(prefix("198.51.100.7")), "198.51.100.7/32");
    EXPECT_EQ(detect::format_prefix(prefix("2001:DB8:0:0::7")), "2001:db8::7/128");
    EXPECT_EQ(detect::format_prefix(prefix("::ffff:192.0.2.0/120")), "192.0.2.0/24");
    EXPECT_EQ(prefix("0.0.0.0/0").len, 96);
    EXPECT_EQ(prefix("198.51.100.7").len, 128);
    EXPECT_EQ(prefix("::/128").len, 128);
}

TEST(Prefix, Errors) {
    EXPECT_EQ(prefix_error("192.0.2.1/24"), "host bits set: did you mean 192.0.2.0/24?");
    EXPECT_EQ(prefix_error("192.0.2.17/28"), "host bits set: did you mean 192.0.2.16/28?");
    EXPECT_EQ(prefix_error("2001:db8::1/32"), "host bits set: did you mean 2001:db8::/32?");
    EXPECT_EQ(prefix_error("1.0.0.0/0"), "host bits set: did you mean 0.0.0.0/0?");
    EXPECT_EQ(prefix_error("10.0.0.0/33"), "prefix length 33 is out of range for IPv4 (0..32)");
    EXPECT_EQ(prefix_error("2001:db8::/129"), "prefix length 129 is out of range for IPv6 (0..128)");
    EXPECT_EQ(prefix_error("10.0.0.0/"), "prefix length '' is not a number");
    EXPECT_EQ(prefix_error("10.0.0.0/-8"), "prefix length '-8' is not a number");
    EXPECT_EQ(prefix_error("10.0.0.0/ 8"), "prefix length ' 8' is not a number");
    EXPECT_EQ(prefix_error("10.0.0.0/8/8"), "prefix length '8/8' is not a number");
    EXPECT_EQ(prefix_error("10.0.0.0/0008"), "prefix length '0008' is not a number");
    EXPECT_EQ(prefix_error("web"), "'web' is not an IPv4 or IPv6 address");
    EXPECT_EQ(prefix_error(""), "'' is not an IPv4 or IPv6 address");
    EXPECT_EQ(prefix_error("256.0.0.0/8"), "'256.0.0.0' is not an IPv4 or IPv6 address");
    EXPECT_EQ(prefix_error("10.0.0/8"), "'10.0.0' is not an IPv4 or IPv6 address");
    EXPECT_EQ(prefix_error("2001:db8:::/48"), "'2001:db8:::' is not an IPv6 address");
    // An IPv6 prefix over ::ffff:0:0/96 would cover IPv4 too.
    EXPECT_NE(prefix_error("::/0").find("::/0 would cover every IPv4 address too"), std::string::npos);
    EXPECT_NE(prefix_error("::/80").find("would cover every IPv4 address too"), std::string::npos);
    EXPECT_NE(prefix_error("::fffe:0:0/95").find("would cover every IPv4 address too"), std::string::npos);
}

TEST(Prefix, ContainsOnBoundaries) {
    const auto all4 = prefix("0.0.0.0/0");
    EXPECT_TRUE(all4.contains(v4("0.0.0.0").b));
    EXPECT_TRUE(all4.contains(v4("255.255.255.255").b));
    EXPECT_FALSE(all4.contains(v6("::").b));
    EXPECT_FALSE(all4.contains(v6("::1").b));
    EXPECT_FALSE(all4.contains(v6("2001:db8::1").b));
    EXPECT_FALSE(all4.contains(v6("::fffe:1.2.3.4").b));

    const auto p28 = prefix("192.0.2.16/28");
    EXPECT_FALSE(p28.contains(v4("192.0.2.15").b));
    EXPECT_TRUE(p28.contains(v4("192.0.2.16").b));
    EXPECT_TRUE(p28.contains(v4("192.0.2.31").b));
    EXPECT_FALSE(p28.contains(v4("192.0.2.32").b));
    EXPECT_FALSE(p28.contains(v4("192.0.3.16").b));

    const auto p32 = prefix("203.0.113.25/32");
    EXPECT_TRUE(p32.contains(v4("203.0.113.25").b));
    EXPECT_FALSE(p32.contains(v4("203.0.113.24").b));
    EXPECT_FALSE(p32.contains(v4("203.0.113.26").b));

    const auto p128 = prefix("2001:db8::1/128");
    EXPECT_TRUE(p128.contains(v6("2001:db8::1").b));
    EXPECT_FALSE(p128.contains(v6("2001:db8::").b));
    EXPECT_FALSE(p128.contains(v6("2001:db8::2").b));

    const auto p3 = prefix("2000::/3");  // not byte-aligned
    EXPECT_TRUE(p3.contains(v6("2000::").b));
    EXPECT_TRUE(p3.contains(v6("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").b));
    EXPECT_FALSE(p3.contains(v6("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").b));
    EXPECT_FALSE(p3.contains(v6("4000::").b));
    EXPECT_FALSE(p3.contains(v4("32.0.0.1").b));  // 0x20... in IPv4 is not 2000::/3

    // The families never mix, whatever the address bits.
    const auto v6net = prefix("2001:db8::/32");
    EXPECT_FALSE(v6net.contains(v4("32.1.13.184").b));  // 0x20010db8
    EXPECT_FALSE(prefix("32.1.13.184/32").contains(v6("2001:db8::").b));
    EXPECT_TRUE(prefix("::ffff:0:0/96").contains(v4("198.51.100.1").b));
    EXPECT_FALSE(prefix("::ffff:0:0/96").contains(v6("2001:db8::1").b));
}

TEST(ConfigDpdk, EalArgs) {
    EXPECT_EQ(load_string("").config.eal_args, "");
    auto r = load_string("dpdk:\n  eal_args: \"-l 0-4 -a 0000:03:00.0 -a 0000:03:00.1\"\n", "e.yaml");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    EXPECT_EQ(r.config.eal_args, "-l 0-4 -a 0000:03:00.0 -a 0000:03:00.1");
    // Every bad value at once, each at its place and saying why.
    r = load_string("dpdk:\n  eal_args: \"-l 0-1 -- --pcap x\"\n", "e.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].where, "e.yaml:2:13");
    EXPECT_NE(r.errors[0].what.find("holds '--'"), std::string::npos) << r.errors[0].what;
    r = load_string("dpdk:\n  eal_args: \"-l 0-1 --vdev 'net_null0'\"\n", "e.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_NE(r.errors[0].what.find("quote"), std::string::npos) << r.errors[0].what;
    r = load_string("dpdk:\n  eal_args: \"-l 0-1; rm -rf /\"\n", "e.yaml");
    EXPECT_EQ(r.errors.size(), 1u);
}
