/* test_synth_render.c - properties of rendered synthetic radiographs:
 *   - the free-air truth mask lies under the diaphragm: every mask pixel is
 *     below the recorded dome curve of its side, by no more than the
 *     diaphragm gap plus the crescent height, and inside the recorded box;
 *   - positives have a mask, negatives none;
 *   - free air is gas: the attenuation inside the crescent is lower than in
 *     the organ just below it (same columns);
 *   - stored values respect bits stored; rendering is deterministic and
 *     independent of how many threads render the cohort. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "data/synth.h"

FA_TEST_MAIN_STATE

/* y of a dome polyline at x (linear interpolation); NAN outside its span. */
static double dome_y_at(const double (*pts)[2], int n, double x) {
    for (int i = 0; i + 1 < n; i++) {
        double x0 = pts[i][0], x1 = pts[i + 1][0];
        double lo = x0 < x1 ? x0 : x1, hi = x0 < x1 ? x1 : x0;
        if (x >= lo && x <= hi) {
            double t = x1 != x0 ? (x - x0) / (x1 - x0) : 0;
            return pts[i][1] + t * (pts[i + 1][1] - pts[i][1]);
        }
    }
    return NAN;
}

static void check_mask(const synth_case *c, const synth_geom *g, const uint8_t *mask) {
    int n_mask = 0, bad_above = 0, bad_far = 0, bad_box = 0;
    double px_per_mm = 1.0 / c->spacing_mm; /* crescent sizes are in detector mm */
    for (int y = 0; y < c->rows; y++)
        for (int x = 0; x < c->cols; x++) {
            if (!mask[(size_t)y * c->cols + x]) continue;
            n_mask++;
            if (x < g->fa_bbox[0] || x > g->fa_bbox[2] || y < g->fa_bbox[1] || y > g->fa_bbox[3]) bad_box++;
            /* nearest dome: the side the pixel's column belongs to */
            double best = NAN;
            int side = -1;
            for (int s = 0; s < 2; s++) {
                if (!g->free_air[s].present) continue;
                double dy = dome_y_at((const double(*)[2])g->dome_px[s], SYNTH_DOME_POINTS, x + 0.5);
                if (isnan(dy)) continue;
                if (isnan(best) || fabs(y + 0.5 - dy) < fabs(y + 0.5 - best)) best = dy, side = s;
            }
            if (isnan(best)) {
                bad_above++;
                continue;
            }
            double below = y + 0.5 - best; /* pixels below the dome */
            /* one pixel of slack for the in-plane tilt and linear interpolation */
            if (below < -1.0) bad_above++;
            double lim = (g->free_air[side].gap_mm + g->free_air[side].height_mm) * px_per_mm + 2.0;
            if (below > lim) bad_far++;
        }
    if (c->label) CHECK_MSG(n_mask > 0, "%s: positive without mask pixels", c->image_id);
    else CHECK_MSG(n_mask == 0, "%s: negative with %d mask pixels", c->image_id, n_mask);
    CHECK_MSG(bad_above == 0, "%s: %d mask pixels above the diaphragm", c->image_id, bad_above);
    CHECK_MSG(bad_far == 0, "%s: %d mask pixels too far below the diaphragm", c->image_id, bad_far);
    CHECK_MSG(bad_box == 0, "%s: %d mask pixels outside free_air_bbox", c->image_id, bad_box);
}

/* Mean attenuation inside the crescent vs the band just below it. */
static void check_gas(const synth_case *c, const synth_geom *g, const float *L, const uint8_t *mask) {
    double in = 0, below = 0;
    int nin = 0, nbelow = 0;
    for (int x = 0; x < c->cols; x++) {
        int last = -1;
        for (int y = 0; y < c->rows; y++)
            if (mask[(size_t)y * c->cols + x]) {
                in += L[(size_t)y * c->cols + x], nin++;
                last = y;
            }
        if (last < 0) continue;
        int band = (int)ceil(4.0 / c->spacing_mm) + 1;
        for (int y = last + 2; y < last + 2 + band && y < c->rows; y++) below += L[(size_t)y * c->cols + x], nbelow++;
    }
    if (nin == 0 || nbelow == 0) return;
    CHECK_MSG(in / nin < below / nbelow, "%s: crescent L %.3f not below organ L %.3f", c->image_id, in / nin,
              below / nbelow);
    (void)g;
}

int main(void) {
    synth_plan p;
    fa_error err;
    CHECK(synth_plan_make(SYNTH_PRESET_TINY, 11, 1.0, &p, &err) == FA_OK);
    int n_pos = 0;
    for (int i = 0; i < p.n; i++) {
        const synth_case *c = &p.cases[i];
        synth_geom g;
        synth_geom_make(c, p.difficulty, &g);
        size_t n = (size_t)c->rows * c->cols;
        float *L = malloc(n * sizeof *L);
        uint8_t *mask = malloc(n), *shutter = malloc(n);
        CHECK(synth_render_attenuation(c, &g, p.difficulty, L, mask, shutter, &err) == FA_OK);
        check_mask(c, &g, mask);
        if (c->label) check_gas(c, &g, L, mask), n_pos++;
        for (size_t j = 0; j < n; j++) CHECK(isfinite(L[j]));
        free(L), free(mask), free(shutter);
    }
    CHECK(n_pos >= 15);

    /* stored values and determinism, rendered under different thread counts */
    enum { K = 6 };
    uint64_t h1[K], h2[K];
    for (int pass = 0; pass < 2; pass++) {
        uint64_t *h = pass ? h2 : h1;
#pragma omp parallel for num_threads(pass ? 3 : 1) schedule(dynamic, 1)
        for (int i = 0; i < K; i++) {
            const synth_case *c = &p.cases[i];
            synth_geom g;
            synth_geom_make(c, p.difficulty, &g);
            synth_image im;
            fa_error e;
            uint64_t acc = 0;
            if (synth_render(c, &g, p.difficulty, &im, &e) == FA_OK) {
                int maxv = (1 << im.bits_stored) - 1, over = 0;
                for (size_t j = 0; j < (size_t)im.rows * im.cols; j++) {
                    over += im.stored[j] > maxv;
                    acc = synth_hash64(acc, im.stored[j], j);
                }
#pragma omp critical
                {
                    CHECK(over == 0);
                    CHECK(im.window_width > 1);
                    CHECK(im.bits_stored == synth_machines[c->machine].bits_stored);
                }
                synth_image_free(&im);
            }
            h[i] = acc;
        }
    }
    for (int i = 0; i < K; i++) CHECK_MSG(h1[i] == h2[i] && h1[i] != 0, "image %d differs between runs", i);
    synth_plan_free(&p);
    return fa_test_finish("test_synth_render");
}
