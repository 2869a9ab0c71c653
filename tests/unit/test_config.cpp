// SPDX-License-Identifier: BSD-3-Clause
// Config as validated data: defaults, the canonical file, and errors reported all at once.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "config.hpp"

using namespace stateline::config;

#ifndef STATELINE_SOURCE_ROOT
#error "STATELINE_SOURCE_ROOT must name the source tree"
#endif

TEST(Config, CanonicalFileEqualsBuiltInDefaults) {
    auto r = load_file(STATELINE_SOURCE_ROOT "/conf/stateline.yaml");
    ASSERT_TRUE(r.ok()) << format_errors(r.errors);
    Config d;
    EXPECT_EQ(0, std::memcmp(&r.config, &d, sizeof(Config)));
}

TEST(Config, CanonicalFileDocumentsEveryParameter) {
    // Every declared parameter appears in conf/stateline.yaml with a comment above it.
    std::FILE* f = std::fopen(STATELINE_SOURCE_ROOT "/conf/stateline.yaml", "r");
    ASSERT_NE(f, nullptr);
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    for (const auto& p : parameters()) {
        std::string leaf = p.path.substr(p.path.rfind('.') == std::string::npos ? 0 : p.path.rfind('.') + 1);
        EXPECT_NE(text.find(leaf + ":"), std::string::npos) << p.path << " is not in conf/stateline.yaml";
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

TEST(Config, TopLevelMustBeAMapping) {
    auto r = load_string("- a\n- b\n", "list.yaml");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_NE(r.errors[0].what.find("mapping"), std::string::npos);
}
