/* synth_rng.c - counter-seeded random numbers and UUID-derived DICOM UIDs for
 * the synthetic cohort.
 *
 * Every image gets its own generator seeded from (cohort seed, image index,
 * stream), so the output is the same whatever the number of threads or the
 * order in which images are rendered. xoshiro256** is small, fast and passes
 * BigCrush; splitmix64 spreads any seed over its 256-bit state.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/fa_rng.h"
#include "data/synth.h"


uint64_t synth_hash64(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = a;
    uint64_t h = fa_splitmix64(&x);
    x = h ^ b;
    h = fa_splitmix64(&x);
    x = h ^ c;
    return fa_splitmix64(&x);
}

void synth_rng_seed(synth_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = fa_splitmix64(&x);
}

uint64_t synth_rng_u64(synth_rng *r) { return fa_xoshiro_next(r->s); }

double synth_rng_uniform(synth_rng *r) { return fa_xoshiro_uniform(r->s); }

double synth_rng_range(synth_rng *r, double lo, double hi) { return lo + (hi - lo) * synth_rng_uniform(r); }

double synth_rng_normal(synth_rng *r) {
    /* Box-Muller without caching the second value: keeps the stream position a
     * pure function of the number of calls, which makes plans easier to reason
     * about when a draw is added. */
    double u1 = synth_rng_uniform(r);
    double u2 = synth_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int synth_rng_int(synth_rng *r, int n) {
    if (n <= 1) return 0;
    return (int)((synth_rng_u64(r) >> 11) % (uint64_t)n);
}

void synth_rng_shuffle(synth_rng *r, int *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = synth_rng_int(r, i + 1);
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

void synth_uid(char out[64], uint64_t seed, uint64_t kind, uint64_t a, uint64_t b) {
    uint64_t hi = synth_hash64(seed, kind * 0x100000001B3ull + 17, synth_hash64(a, b, 1));
    uint64_t lo = synth_hash64(hi, seed ^ 0xA5A5A5A5A5A5A5A5ull, synth_hash64(b, a, kind));
    /* RFC 9562: version 8 (custom) in bits 48..51, variant 10 in bits 64..65. */
    hi = (hi & ~0xF000ull) | 0x8000ull;
    lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
    __extension__ typedef unsigned __int128 u128;
    u128 x = ((u128)hi << 64) | lo;
    char digits[48];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(x % 10));
        x /= 10;
    } while (x);
    memcpy(out, "2.25.", 5);
    for (int i = 0; i < n; i++) out[5 + i] = digits[n - 1 - i];
    out[5 + n] = 0;
}
