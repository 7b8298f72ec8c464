/* fa_rng.h - the one pseudo-random generator of freeair: xoshiro256** with
 * splitmix64 seeding. Modules wrap it in their own seeded types (synth_rng,
 * aug_rng, stats_rng) because each derives its state differently (per image,
 * per sample and epoch, per bootstrap); the stream itself must be the same
 * code everywhere so that cohorts, augmentations and bootstraps stay
 * reproducible across versions. */
#ifndef FA_RNG_H
#define FA_RNG_H

#include <stdint.h>

/* splitmix64: advances *state and returns the next output; spreads any seed
 * (even 0) over 64 well-mixed bits. */
uint64_t fa_splitmix64(uint64_t *state);

/* xoshiro256** on a 256-bit state that must not be all zero. */
uint64_t fa_xoshiro_next(uint64_t s[4]);
/* Uniform in [0, 1) with 53 random bits. */
double fa_xoshiro_uniform(uint64_t s[4]);
/* Uniform in [0, n), n > 0, without modulo bias (rejection of the top
 * partial block). */
uint64_t fa_xoshiro_below(uint64_t s[4], uint64_t n);

#endif
