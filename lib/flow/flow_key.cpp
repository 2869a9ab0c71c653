// SPDX-License-Identifier: BSD-3-Clause
#include "flow_key.hpp"

#include <arpa/inet.h>

#include <cstdio>

#if defined(__x86_64__) && defined(__SSE4_2__)
#include <nmmintrin.h>
#define STATELINE_HW_CRC32C 1
#endif

namespace stateline::flow {

namespace {

#if !defined(STATELINE_HW_CRC32C)
// Reflected Castagnoli polynomial (RFC 3720 appendix B.4), the one the SSE4.2 crc32
// instruction implements, so both paths give the same hash for the same key bytes.
constexpr uint32_t kCrc32cPoly = 0x82f63b78u;

// Bit-at-a-time CRC32-C: no table, so nothing to keep warm in cache on CPUs that lack the
// instruction; about 8 dependent shift/xor steps per byte, 320 per key. Fed the key in memory
// order, which is what _mm_crc32_u64 does with a little-endian 64-bit load.
uint32_t crc32c_soft(uint32_t crc, const uint8_t* p, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (kCrc32cPoly & (0u - (crc & 1u)));
    }
    return crc;
}
#endif

}  // namespace

// Standard CRC32-C (initial value 0xffffffff, final inversion): the value any CRC32-C
// implementation gives for the 40 key bytes, so tests and tools can recompute it.
uint32_t flow_hash(const FlowKey& key) noexcept {
#if defined(STATELINE_HW_CRC32C)
    const auto* p = reinterpret_cast<const uint8_t*>(&key);
    uint64_t crc = 0xffffffffu;
    for (size_t i = 0; i < sizeof(FlowKey); i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        crc = _mm_crc32_u64(crc, w);
    }
    return ~static_cast<uint32_t>(crc);
#else
    return ~crc32c_soft(0xffffffffu, reinterpret_cast<const uint8_t*>(&key), sizeof(FlowKey));
#endif
}

const char* format_endpoint(const FlowKey& key, Side side, char* buf, size_t len) noexcept {
    if (buf == nullptr || len == 0) return "";
    const unsigned s = side == Side::lo ? 0 : 1;
    const uint8_t* a = key.addr[s];
    char addr[INET6_ADDRSTRLEN];
    const bool v4 = is_ipv4_mapped(a);
    if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, addr, sizeof(addr)) == nullptr) {
        addr[0] = '?';
        addr[1] = '\0';
    }
    std::snprintf(buf, len, v4 ? "%s:%u" : "[%s]:%u", addr, static_cast<unsigned>(key.port[s]));
    return buf;
}

}  // namespace stateline::flow
