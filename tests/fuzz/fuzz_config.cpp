// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: config::load_string on arbitrary text (YAML, with the rules: section and
// its Hyperscan payload patterns).
//
// Inputs are capped at 4 KiB and to 4 "payload" keys: every pattern is a Hyperscan compile,
// slow enough to bring a fuzzer to a few executions a second, and what is fuzzed is the loader
// and validator, not Hyperscan.
// Invariants (abort on failure): ok() == errors.empty(); every error has a non-empty where
// and what; format_errors() of the errors does not crash; a second load of the same text gives
// the same errors (the loader is deterministic; checked when no payload pattern is compiled).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config.hpp"

using namespace stateline;

#define FUZZ_CHECK(cond)                                                                             \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            std::fprintf(stderr, "fuzz_config: invariant failed: %s (line %d)\n", #cond, __LINE__);  \
            std::abort();                                                                            \
        }                                                                                            \
    } while (0)

namespace {
constexpr size_t kMaxInput = 4096;
constexpr size_t kMaxPayloadKeys = 4;

size_t count(std::string_view text, std::string_view what) {
    size_t n = 0;
    for (size_t p = text.find(what); p != std::string_view::npos; p = text.find(what, p + what.size())) ++n;
    return n;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > kMaxInput) return -1;  // -1: not added to the corpus
    const std::string text(reinterpret_cast<const char*>(data), size);
    const size_t payloads = count(text, "payload");
    if (payloads > kMaxPayloadKeys) return -1;

    const config::LoadResult r = config::load_string(text, "fuzz.yaml");
    FUZZ_CHECK(r.ok() == r.errors.empty());
    for (const auto& e : r.errors) {
        FUZZ_CHECK(!e.where.empty());
        FUZZ_CHECK(!e.what.empty());
    }
    if (!r.ok()) FUZZ_CHECK(!config::format_errors(r.errors).empty());

    if (payloads != 0) return 0;  // a second Hyperscan compile would halve the rate
    const config::LoadResult again = config::load_string(text, "fuzz.yaml");
    FUZZ_CHECK(again.errors.size() == r.errors.size());
    for (size_t i = 0; i < r.errors.size(); ++i)
        FUZZ_CHECK(again.errors[i].where == r.errors[i].where && again.errors[i].what == r.errors[i].what);
    return 0;
}
