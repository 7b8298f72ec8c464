/* augment.c - seeded augmentation and the image -> tensor conversion (see
 * augment.h for the pipeline and the order of operations). */
#include "train/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fa_rng.h"
#include "data/resize.h"
#include "models/preprocess.h"

static uint64_t mix64(uint64_t z) { return fa_splitmix64(&z); }

uint64_t aug_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    uint64_t h = mix64(a);
    h = mix64(h ^ b);
    h = mix64(h ^ c);
    return mix64(h ^ d);
}

void aug_rng_seed(aug_rng *r, uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
    uint64_t x = aug_hash4(seed, stream, a, b);
    for (int i = 0; i < 4; i++) {
        x = mix64(x);
        r->s[i] = x;
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* xoshiro's only bad state */
}

uint64_t aug_rng_next(aug_rng *r) { return fa_xoshiro_next(r->s); }

double aug_rng_uniform(aug_rng *r) { return fa_xoshiro_uniform(r->s); }

uint64_t aug_rng_below(aug_rng *r, uint64_t n) { return fa_xoshiro_below(r->s, n); }

aug_params aug_identity(void) {
    aug_params p = {0, 0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0};
    return p;
}

void aug_sample(const train_config *c, aug_rng *r, aug_params *p) {
    /* Every draw is made whether or not its augmentation is enabled, so the
     * parameters of one kind never shift the stream of another. */
    double u[8];
    for (int i = 0; i < 8; i++) u[i] = aug_rng_uniform(r);
    p->hflip = u[0] < c->hflip;
    p->vflip = u[1] < c->vflip;
    p->angle_deg = (2.0 * u[2] - 1.0) * c->rotation;
    p->zoom = 1.0 + (2.0 * u[3] - 1.0) * c->scale;
    p->shift_x = (2.0 * u[4] - 1.0) * c->translate;
    p->shift_y = (2.0 * u[5] - 1.0) * c->translate;
    p->brightness = 1.0 + (2.0 * u[6] - 1.0) * c->brightness;
    p->contrast = 1.0 + (2.0 * u[7] - 1.0) * c->contrast;
}

static uint16_t clamp_u16(double v) {
    if (!(v > 0)) return 0;
    if (v >= 65535.0) return 65535;
    return (uint16_t)(v + 0.5);
}

fa_status aug_apply(const fa_image *src, const aug_params *p, fa_image *dst, fa_error *err) {
    const int w = src->width, h = src->height;
    fa_status st = image_alloc(dst, w, h, err);
    if (st != FA_OK) return st;
    dst->spacing_row_mm = src->spacing_row_mm;
    dst->spacing_col_mm = src->spacing_col_mm;
    const uint16_t *in = src->pixels;
    uint16_t *out = dst->pixels;
    int geometric = p->angle_deg != 0.0 || p->zoom != 1.0 || p->shift_x != 0.0 || p->shift_y != 0.0;
    if (!geometric) {
        /* Flips alone move whole pixels: no interpolation, no blur. */
        for (int y = 0; y < h; y++) {
            const uint16_t *row = in + (size_t)(p->vflip ? h - 1 - y : y) * (size_t)w;
            uint16_t *o = out + (size_t)y * (size_t)w;
            if (p->hflip)
                for (int x = 0; x < w; x++) o[x] = row[w - 1 - x];
            else
                memcpy(o, row, (size_t)w * sizeof *o);
        }
    } else {
        const double th = p->angle_deg * M_PI / 180.0, cs = cos(th), sn = sin(th);
        const double cx = 0.5 * w, cy = 0.5 * h, tx = p->shift_x * w, ty = p->shift_y * h;
        const double fx = p->hflip ? -1.0 : 1.0, fy = p->vflip ? -1.0 : 1.0;
        for (int y = 0; y < h; y++) {
            double v1 = ((double)y + 0.5 - cy - ty) / p->zoom;
            for (int x = 0; x < w; x++) {
                double u1 = ((double)x + 0.5 - cx - tx) / p->zoom;
                /* inverse rotation, then undo the flips */
                double us = fx * (cs * u1 - sn * v1), vs = fy * (sn * u1 + cs * v1);
                double xs = us + cx - 0.5, ys = vs + cy - 0.5;
                double x0f = floor(xs), y0f = floor(ys);
                double ax = xs - x0f, ay = ys - y0f;
                double acc = 0.0;
                if (x0f >= -1 && x0f < w && y0f >= -1 && y0f < h) {
                    int x0 = (int)x0f, y0 = (int)y0f;
                    /* Neighbours outside the source count as 0 (fill). */
                    if (y0 >= 0) {
                        const uint16_t *r0 = in + (size_t)y0 * (size_t)w;
                        if (x0 >= 0) acc += (1 - ax) * (1 - ay) * r0[x0];
                        if (x0 + 1 < w) acc += ax * (1 - ay) * r0[x0 + 1];
                    }
                    if (y0 + 1 < h) {
                        const uint16_t *r1 = in + (size_t)(y0 + 1) * (size_t)w;
                        if (x0 >= 0) acc += (1 - ax) * ay * r1[x0];
                        if (x0 + 1 < w) acc += ax * ay * r1[x0 + 1];
                    }
                }
                out[(size_t)y * (size_t)w + (size_t)x] = clamp_u16(acc);
            }
        }
    }
    if (p->brightness != 1.0 || p->contrast != 1.0) {
        size_t n = (size_t)w * (size_t)h;
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += out[i];
        double mean = p->brightness * sum / (double)n;
        for (size_t i = 0; i < n; i++)
            out[i] = clamp_u16((p->brightness * out[i] - mean) * p->contrast + mean);
    }
    return FA_OK;
}

const char *aug_preprocessing_desc(void) {
    return "resize=square,bilinear-antialias(pillow),u16-rounded;range=x/65535;channels=3;"
           "mean=0.485,0.456,0.406;std=0.229,0.224,0.225";
}

fa_status aug_to_tensor(const fa_image *src, int size, float *dst, fa_error *err) {
    if (size < 1 || !src->pixels || src->width < 1 || src->height < 1)
        return fa_error_set(err, FA_ERR_ARG, "image to tensor: empty image or size %d", size);
    if (src->width == size && src->height == size) return preprocess_image(src, size, size, dst, err);
    fa_image r;
    memset(&r, 0, sizeof r);
    fa_status st = resize_image(src, &r, size, size, RESIZE_BILINEAR, err);
    if (st == FA_OK) st = preprocess_image(&r, size, size, dst, err);
    image_free(&r);
    return st;
}
