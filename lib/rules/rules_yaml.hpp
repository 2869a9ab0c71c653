// SPDX-License-Identifier: BSD-3-Clause
// The `rules:` section of the configuration: a list of rules, validated with every error reported
// at once as "file:line:col" (as lib/config does), then compiled into a RuleSet.
//
//   rules:
//     - name: syn-flood-unverified
//       match:
//         src: [198.51.100.0/24]        # prefix or list of prefixes
//         dst: 192.0.2.0/24
//         dst_port: [80, 443, 8000-8080]
//         flags: SYN                    # set bits; mask FIN|SYN|RST|ACK plus those named, or "SYN/SYN,ACK"
//         state: new                    # new, half_open, established, closing, any (or a list)
//         victim_of: syn_flood          # alert type(s) active on the destination
//         src_verified: false           # the source completed no handshake recently (needs detection)
//         payload: "GET /admin"         # Hyperscan pattern over the first scan_limit bytes
//         nocase: true
//       action: rate_limit              # alert, drop, rate_limit, allow
//       rate: 100                       # packets per second (rate_limit only)
//       burst: 200                      # default: rate
//       per: source                     # rule (default) or source
//
// Thread safety: control core only.
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "rules.hpp"

namespace stateline::rules {

struct LoadResult {
    std::shared_ptr<const RuleSet> set;  // null on error (and for an absent/empty section: empty set)
    std::vector<Error> errors;
    bool ok() const { return errors.empty(); }
};

// `rules` is the value of the rules: key (null: no rules). `file` names the file in errors.
LoadResult load_rules(const YAML::Node& rules, const std::string& file, const Options& opt = {});
// Same from the text of a whole document holding a rules: key (tests, stateline-rules check).
LoadResult load_rules_string(const std::string& text, const std::string& file = "<string>",
                             const Options& opt = {});

// Parses "SYN", "SYN,ACK", "SYN/SYN,ACK", "none/SYN" (names case-insensitive, ',' '|' '+' between).
bool parse_flags(const std::string& text, uint8_t& value, uint8_t& mask, std::string& why);
// Parses "80" or "8000-8080".
bool parse_port_range(const std::string& text, PortRange& out, std::string& why);

// Renders errors one per line: "where: what".
std::string format_errors(const std::vector<Error>& errors);

}  // namespace stateline::rules
