// SPDX-License-Identifier: BSD-3-Clause
#include "memory_budget.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace stateline {

uint64_t mem_available_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
        unsigned long long kb = 0;
        if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1) return uint64_t(kb) * 1024;
    }
    return 0;
}

std::string format_bytes(uint64_t b) {
    char buf[64];
    const double gib = double(b) / double(1ull << 30), mib = double(b) / double(1ull << 20);
    if (gib >= 10) std::snprintf(buf, sizeof(buf), "%.0f GiB", gib);
    else if (gib >= 1) std::snprintf(buf, sizeof(buf), "%.1f GiB", gib);
    else if (mib >= 1) std::snprintf(buf, sizeof(buf), "%.0f MiB", mib);
    else std::snprintf(buf, sizeof(buf), "%.0f KiB", double(b) / 1024.0);
    return buf;
}

std::string check_memory(std::vector<MemoryItem> items, uint64_t available, const std::string& where) {
    uint64_t total = 0;
    for (const auto& i : items) total += i.bytes;
    if (available == 0 || total <= available) return {};
    std::stable_sort(items.begin(), items.end(), [](const MemoryItem& a, const MemoryItem& b) { return a.bytes > b.bytes; });
    std::ostringstream o;
    const MemoryItem& top = items.front();
    if (top.bytes > available || items.size() == 1) {
        // One consumer alone is too much: name it.
        o << top.what << " needs " << format_bytes(top.bytes) << ", " << format_bytes(available) << " available ("
          << where << "): lower " << top.lower;
        if (items.size() > 1) o << " (everything together needs " << format_bytes(total) << ")";
    } else {
        o << "this config needs " << format_bytes(total) << ", " << format_bytes(available) << " available (" << where
          << "): ";
        std::string lower;
        for (size_t k = 0; k < items.size() && k < 3; ++k) {
            o << (k ? ", " : "") << items[k].what << " " << format_bytes(items[k].bytes);
            if (lower.find(items[k].lower) == std::string::npos && items[k].bytes * 10 >= total)
                lower += (lower.empty() ? "" : " or ") + items[k].lower;
        }
        o << "; lower " << lower;
    }
    return o.str();
}

}  // namespace stateline
