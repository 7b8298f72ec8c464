/* augment.h - training-time augmentation of 16-bit radiographs, the seeded
 * per-image random streams that drive it, and the image -> network tensor
 * conversion used by training and validation.
 *
 * Pipeline of one training image (validation skips step 1):
 *   1. geometric: flips, rotation, zoom, shift in one inverse mapping at the
 *      source resolution, bilinear sampling, 0 outside the source; then
 *      brightness/contrast on the 16-bit values (clamped);
 *   2. resize to image_size x image_size with resize_image (Pillow's
 *      antialiased bilinear: a triangle filter whose support grows with the
 *      shrink factor, rounded to 16 bits), then preprocess_image (the models'
 *      function shared with predict): [0,1], 3 channels, ImageNet mean/std.
 * Random draws come from a stream keyed by (seed, epoch, position in the
 * epoch), so the image a given step sees does not depend on how many worker
 * threads there are or where a run was resumed.
 */
#ifndef FA_AUGMENT_H
#define FA_AUGMENT_H

#include <stdint.h>

#include "core/fa_status.h"
#include "data/image.h"
#include "train/trainconf.h"

/* Random stream (xoshiro256**) keyed by up to four integers. */
typedef struct aug_rng {
    uint64_t s[4];
} aug_rng;

/* Streams used by freeair train (part of the key, so they never overlap). */
enum { AUG_STREAM_SHUFFLE = 1, AUG_STREAM_SAMPLE = 2, AUG_STREAM_AUGMENT = 3, AUG_STREAM_INIT = 4 };

void aug_rng_seed(aug_rng *r, uint64_t seed, uint64_t stream, uint64_t a, uint64_t b);
uint64_t aug_rng_next(aug_rng *r);
double aug_rng_uniform(aug_rng *r);               /* [0, 1), 53 bits */
uint64_t aug_rng_below(aug_rng *r, uint64_t n);   /* [0, n), unbiased; n > 0 */
/* splitmix64-style mixing of a key into one 64-bit value. */
uint64_t aug_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

typedef struct aug_params {
    int hflip, vflip;
    double angle_deg; /* counter-clockwise as displayed */
    double zoom;      /* > 1 enlarges */
    double shift_x, shift_y; /* fractions of width/height */
    double brightness, contrast; /* factors, 1 = unchanged */
} aug_params;

/* The identity (no augmentation). */
aug_params aug_identity(void);

/* Draw parameters from r according to c (hflip, vflip, rotation, scale,
 * translate, brightness, contrast); always consumes the same number of
 * draws. */
void aug_sample(const train_config *c, aug_rng *r, aug_params *p);

/* Apply step 1 to src into dst (allocated here with src's size; caller frees
 * with image_free). */
fa_status aug_apply(const fa_image *src, const aug_params *p, fa_image *dst, fa_error *err);

/* Step 2: src (any size) -> dst[3 * size * size] fp32 CHW, normalised. */
fa_status aug_to_tensor(const fa_image *src, int size, float *dst, fa_error *err);

/* Description of step 2 for checkpoint metadata. */
const char *aug_preprocessing_desc(void);

#endif
