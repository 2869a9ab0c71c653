// SPDX-License-Identifier: BSD-3-Clause
// stateline-rules: offline work on mitigation rules (issue 7).
//   stateline-rules check FILE   validates a whole config (lib/config, rules: included, Hyperscan
//                                patterns compiled) and prints every error as file:line:col: what.
// `test FILE --pcap CAPTURE` (replaying a capture through the rules) is to come.
// Exit status: 0 valid, 1 usage error, 2 the config has errors.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "config.hpp"
#include "rules.hpp"

namespace {

const char* const kFooter = R"(
Exit status: 0 the config is valid, 1 usage error, 2 the config has errors.

Coming: 'stateline-rules test FILE --pcap CAPTURE [--labels LABELS]' will replay a capture
through the rules and report each rule's hits and drops, which labelled attacks would be
mitigated and how much legitimate traffic would be hit. Not available yet.)";

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

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 1;
    }
    if (*check_cmd) return check(file);
    return 1;
}
