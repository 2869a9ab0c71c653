// SPDX-License-Identifier: BSD-3-Clause
// The labels file: the ground truth of a generated capture as JSON (schema in
// tools/gen/README.md). A pure function of the scenario, the seed and what was generated - no
// wall-clock time, no file names - so equal runs give byte-identical labels.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "scenario.hpp"
#include "traffic.hpp"

namespace stateline::gen {

nlohmann::ordered_json make_labels(const Scenario& sc, const RunStats& st, uint64_t seed);

// "192.0.2.10:80", "[2001:db8::10]:80", "192.0.2.0/28:80", "192.0.2.10".
std::string format_target(const Prefix& p, uint16_t port);

}  // namespace stateline::gen
