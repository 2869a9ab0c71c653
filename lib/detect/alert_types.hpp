// SPDX-License-Identifier: BSD-3-Clause
// The alert types of detection (docs/alerts.md has a section for each) and their names. Kept
// apart from aggregator.hpp so that hot-path code (lib/rules) can name an alert type without
// pulling in nlohmann/json or the sketches.
//
// Thread safety: constants and a pure function.
#pragma once

#include <cstdint>

namespace stateline::detect {

#define STATELINE_ALERT_TYPES(X)                                                                  \
    X(syn_flood)                                                                                  \
    X(half_open_exhaustion)                                                                       \
    X(synack_reflection)                                                                          \
    X(ack_flood)                                                                                  \
    X(rst_flood)                                                                                  \
    X(fin_flood)                                                                                  \
    X(syn_scan)                                                                                   \
    X(stealth_scan)                                                                               \
    X(connect_scan)                                                                               \
    X(rst_injection)                                                                              \
    X(abnormal_teardown)

enum class AlertType : uint8_t {
#define STATELINE_X(name) name,
    STATELINE_ALERT_TYPES(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kAlertTypeCount = static_cast<unsigned>(AlertType::count_);
// "syn_flood", ...; "?" for a value out of range. Defined in alert_types.cpp.
const char* alert_type_name(AlertType t) noexcept;

}  // namespace stateline::detect
