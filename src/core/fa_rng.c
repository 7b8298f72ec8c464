/* fa_rng.c - xoshiro256** (Blackman and Vigna; small, fast, passes BigCrush)
 * and splitmix64, shared by every seeded module (see fa_rng.h). */
#include "core/fa_rng.h"

uint64_t fa_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fa_xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double fa_xoshiro_uniform(uint64_t s[4]) { return (double)(fa_xoshiro_next(s) >> 11) * 0x1.0p-53; }

uint64_t fa_xoshiro_below(uint64_t s[4], uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = fa_xoshiro_next(s);
    while (x >= limit);
    return x % n;
}
