// SPDX-License-Identifier: BSD-3-Clause
#include "alert_types.hpp"

namespace stateline::detect {

const char* alert_type_name(AlertType t) noexcept {
    static const char* const names[] = {
#define STATELINE_X(name) #name,
        STATELINE_ALERT_TYPES(STATELINE_X)
#undef STATELINE_X
    };
    const unsigned i = static_cast<unsigned>(t);
    return i < kAlertTypeCount ? names[i] : "?";
}

}  // namespace stateline::detect
