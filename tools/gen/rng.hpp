// SPDX-License-Identifier: BSD-3-Clause
// Random numbers for the generator: one xoshiro256** stream per traffic source (seeded through
// SplitMix64 from the run's seed and the source's index), so that adding an attack does not
// change the legitimate traffic and the same seed always gives the same bytes. Distributions
// are written out here rather than taken from <random>, whose distributions are not specified
// bit for bit and differ between standard libraries.
//
// Thread safety: an Rng is a plain value owned by one source; the hash functions are pure.
#pragma once

#include <cmath>
#include <cstdint>

namespace stateline::gen {

// SplitMix64 finaliser (Steele, Lea, Flood 2014): a good 64-bit mixer, used as a hash of
// connection identities (host, port) wherever a per-connection constant is derived instead of
// stored.
inline constexpr uint64_t mix64(uint64_t z) noexcept {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

inline constexpr uint64_t mix64(uint64_t a, uint64_t b) noexcept { return mix64(a ^ mix64(b)); }

// xoshiro256** 1.0 (Blackman, Vigna): 4 words of state, sub-nanosecond per draw.
class Rng {
public:
    explicit Rng(uint64_t seed = 0) noexcept { reseed(seed); }

    void reseed(uint64_t seed) noexcept {
        uint64_t x = seed;
        for (auto& w : s_) {
            x += 0x9e3779b97f4a7c15ull;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            w = z ^ (z >> 31);
        }
    }

    uint64_t next() noexcept {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    uint32_t u32() noexcept { return static_cast<uint32_t>(next() >> 32); }

    // Uniform in [0, n) by Lemire's multiply-shift; the bias (< n / 2^64) is far below anything
    // a traffic model can show.
    uint64_t below(uint64_t n) noexcept {
        return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
    }

    // [0, 1) with 53 random bits.
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    // (0, 1]: safe under log().
    double uniform_pos() noexcept { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }

    bool chance(double p) noexcept { return uniform() < p; }

    double exponential(double mean) noexcept { return -std::log(uniform_pos()) * mean; }

    // Standard normal by Box-Muller, one value per call (no cached second value: the state stays
    // four words and every call costs the same).
    double normal() noexcept {
        const double u = uniform_pos();
        const double v = uniform();
        return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
    }

    // Lognormal with the given median (= exp(mu)) and shape sigma.
    double lognormal(double median, double sigma) noexcept {
        return median * std::exp(sigma * normal());
    }

    // Pareto type I: minimum xm, tail index alpha (heavier for smaller alpha).
    double pareto(double xm, double alpha) noexcept {
        return xm / std::pow(uniform_pos(), 1.0 / alpha);
    }

private:
    static constexpr uint64_t rotl(uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    uint64_t s_[4];
};

// A bijection on [0, 2^bits) (bits 1..64): multiply by odd constants and xor-shift right, each
// step invertible modulo 2^bits. Maps pool indices to addresses inside a prefix so that
// distinct indices are distinct addresses, and orders scan probes.
inline uint64_t permute_bits(uint64_t x, unsigned bits, uint64_t key) noexcept {
    const uint64_t mask = bits >= 64 ? ~0ull : ((1ull << bits) - 1);
    const unsigned half = bits / 2 + 1;
    x = (x ^ key) & mask;
    x = (x * 0x9e3779b97f4a7c15ull) & mask;
    x ^= x >> half;
    x = (x * 0xbf58476d1ce4e5b9ull + (key | 1)) & mask;
    x ^= x >> half;
    x = (x * 0x94d049bb133111ebull) & mask;
    x ^= x >> (half > 1 ? half - 1 : 1);
    return x & mask;
}

// A bijection on [0, n) by cycle-walking permute_bits over the next power of two.
inline uint64_t permute_below(uint64_t x, uint64_t n, uint64_t key) noexcept {
    unsigned bits = 1;
    while (bits < 64 && (1ull << bits) < n) ++bits;
    do {
        x = permute_bits(x, bits, key);
    } while (x >= n);
    return x;
}

}  // namespace stateline::gen
