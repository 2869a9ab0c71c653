// SPDX-License-Identifier: BSD-3-Clause
// What a config (or a reload) would allocate, checked against what the machine has, before
// anything is allocated: a config that cannot fit is refused with its biggest consumers named
// and the parameter to lower, instead of failing half-way (or being killed by the OOM killer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stateline {

struct MemoryItem {
    std::string what;   // "flow_table.capacity 268435456 x 4 workers"
    std::string lower;  // the parameter to lower: "flow_table.capacity"
    uint64_t bytes = 0;
};

// MemAvailable from /proc/meminfo (what can be allocated without swapping), in bytes; 0 when
// unknown.
uint64_t mem_available_bytes();

// "1.5 GiB", "300 MiB", "12 KiB".
std::string format_bytes(uint64_t b);

// Empty when the items fit in `available` (0: unknown, always fits); else the refusal: the
// total, what is available (`where`: "MemAvailable", "free hugepages on socket 0"), the biggest
// consumers and what to lower, e.g.
//   "flow_table.capacity 268435456 x 4 workers needs 139 GiB, 20 GiB available (MemAvailable):
//    lower flow_table.capacity"
std::string check_memory(std::vector<MemoryItem> items, uint64_t available, const std::string& where);

}  // namespace stateline
