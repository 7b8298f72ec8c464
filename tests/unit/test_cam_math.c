/* test_cam_math.c - Grad-CAM / Grad-CAM++ math (src/eval/cam_math.c) against
 * a naive per-pixel computation written straight from the formulas, plus the
 * properties the definitions imply (peak exactly 1, zero maps, invariance of
 * Grad-CAM to a positive scale of the gradient, rejected input). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "eval/cam.h"

FA_TEST_MAIN_STATE

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Naive: for every pixel, loop over channels; every weight recomputed from
 * scratch with its own loops (no shared code with the library). */
static void naive_map(cam_method m, int c, int h, int w, const float *a, const float *g, double *out) {
    int hw = h * w;
    double mx = 0;
    for (int p = 0; p < hw; p++) {
        double s = 0;
        for (int k = 0; k < c; k++) {
            double wk = 0;
            if (m == CAM_METHOD_GRADCAM) {
                for (int q = 0; q < hw; q++) wk += g[k * hw + q];
                wk /= hw;
            } else {
                double sa = 0;
                for (int q = 0; q < hw; q++) sa += a[k * hw + q];
                for (int q = 0; q < hw; q++) {
                    double gq = g[k * hw + q];
                    double aij = gq != 0 ? pow(gq, 2) / (2 * pow(gq, 2) + sa * pow(gq, 3) + 1e-6) : 0;
                    wk += (gq > 0 ? gq : 0) * aij;
                }
            }
            s += wk * a[k * hw + p];
        }
        out[p] = s > 0 ? s : 0;
        if (out[p] > mx) mx = out[p];
    }
    for (int p = 0; p < hw; p++) out[p] = mx > 0 ? out[p] / mx : 0;
}

static void fill(float *a, float *g, int n, double gscale) {
    for (int i = 0; i < n; i++) {
        a[i] = (float)(urand() * 3.0);           /* post-ReLU activations are >= 0 */
        if (urand() < 0.3) a[i] = 0;
        g[i] = (float)((urand() - 0.45) * gscale); /* gradients of both signs */
        if (urand() < 0.1) g[i] = 0;
    }
}

static void test_against_naive(void) {
    const int shapes[][3] = {{1, 1, 2}, {3, 2, 2}, {16, 7, 7}, {64, 8, 8}, {5, 3, 9}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2], n = c * h * w;
        float *a = malloc(n * sizeof *a), *g = malloc(n * sizeof *g), *map = malloc(h * w * sizeof *map);
        double *ref = malloc(h * w * sizeof *ref);
        for (int gs = 0; gs < 2; gs++) {
            fill(a, g, n, gs ? 1e-3 : 1.0); /* realistic (small) and large gradients */
            for (int mi = 0; mi < 2; mi++) {
                cam_method m = mi ? CAM_METHOD_GRADCAM_PP : CAM_METHOD_GRADCAM;
                fa_error err = {0};
                double scale = -1;
                CHECK(cam_compute(m, c, h, w, a, g, map, &scale, &err) == FA_OK);
                naive_map(m, c, h, w, a, g, ref);
                double mx = 0, worst = 0;
                for (int p = 0; p < h * w; p++) {
                    worst = fmax(worst, fabs(map[p] - ref[p]));
                    mx = fmax(mx, map[p]);
                    CHECK(map[p] >= 0 && map[p] <= 1);
                }
                CHECK_MSG(worst <= 1e-6, "shape %dx%dx%d method %d: max diff %g", c, h, w, mi, worst);
                CHECK(scale >= 0);
                if (scale > 0) CHECK(mx == 1.0);
                else CHECK(mx == 0.0);
            }
        }
        free(a), free(g), free(map), free(ref);
    }
}

static void test_weights(void) {
    /* Hand-made 2 x 1 x 2 layer. */
    const float a[4] = {1, 3, 2, 0};
    const float g[4] = {0.5f, 1.5f, -1, 0};
    double alpha[2];
    fa_error err = {0};
    CHECK(cam_channel_weights(CAM_METHOD_GRADCAM, 2, 1, 2, a, g, alpha, &err) == FA_OK);
    CHECK_CLOSE(alpha[0], 1.0, 1e-12, 0);
    CHECK_CLOSE(alpha[1], -0.5, 1e-12, 0);
    CHECK(cam_channel_weights(CAM_METHOD_GRADCAM_PP, 2, 1, 2, a, g, alpha, &err) == FA_OK);
    /* channel 0: sum A = 4; g = 0.5: 0.25/(0.5 + 4*0.125 + 1e-6); g = 1.5: 2.25/(4.5 + 4*3.375 + 1e-6) */
    double e0 = 0.5 * 0.25 / (0.5 + 0.5 + 1e-6) + 1.5 * 2.25 / (4.5 + 13.5 + 1e-6);
    CHECK_CLOSE(alpha[0], e0, 1e-12, 1e-12);
    CHECK_CLOSE(alpha[1], 0.0, 1e-15, 0); /* only negative or zero gradients */
    float map[2];
    double scale;
    CHECK(cam_compute(CAM_METHOD_GRADCAM, 2, 1, 2, a, g, map, &scale, &err) == FA_OK);
    /* relu(1*[1,3] - 0.5*[2,0]) = [0, 3] -> [0, 1], scale 3 */
    CHECK_CLOSE(map[0], 0.0, 1e-7, 0);
    CHECK_CLOSE(map[1], 1.0, 1e-7, 0);
    CHECK_CLOSE(scale, 3.0, 1e-12, 0);
}

static void test_properties(void) {
    enum { C = 8, H = 4, W = 5, N = C * H * W };
    float a[N], g[N], g2[N], m1[H * W], m2[H * W];
    fill(a, g, N, 1.0);
    for (int i = 0; i < N; i++) g2[i] = g[i] * 37.5f;
    double s1, s2;
    fa_error err = {0};
    CHECK(cam_compute(CAM_METHOD_GRADCAM, C, H, W, a, g, m1, &s1, &err) == FA_OK);
    CHECK(cam_compute(CAM_METHOD_GRADCAM, C, H, W, a, g2, m2, &s2, &err) == FA_OK);
    for (int p = 0; p < H * W; p++) CHECK_CLOSE(m1[p], m2[p], 1e-6, 0);
    CHECK_CLOSE(s2, 37.5 * s1, 0, 1e-5);
    /* every weight negative -> an all-zero map with scale 0, not a division by 0 */
    for (int i = 0; i < N; i++) g2[i] = -fabsf(g[i]) - 0.01f;
    CHECK(cam_compute(CAM_METHOD_GRADCAM, C, H, W, a, g2, m2, &s2, &err) == FA_OK);
    CHECK(s2 == 0);
    for (int p = 0; p < H * W; p++) CHECK(m2[p] == 0);
    CHECK(cam_compute(CAM_METHOD_GRADCAM_PP, C, H, W, a, g2, m2, &s2, &err) == FA_OK);
    CHECK(s2 == 0);
    /* non-finite input is refused with a reason */
    a[7] = NAN;
    CHECK(cam_compute(CAM_METHOD_GRADCAM, C, H, W, a, g, m1, &s1, &err) == FA_ERR_NUMERIC);
    CHECK(strstr(err.msg, "activation") != NULL);
    a[7] = 1;
    g[9] = INFINITY;
    CHECK(cam_compute(CAM_METHOD_GRADCAM, C, H, W, a, g, m1, &s1, &err) == FA_ERR_NUMERIC);
    CHECK(strstr(err.msg, "gradient") != NULL);
    CHECK(cam_compute(CAM_METHOD_GRADCAM, 0, H, W, a, g, m1, &s1, &err) == FA_ERR_ARG);
    CHECK(cam_compute(CAM_METHOD_GRADCAM, C, H, W, NULL, g, m1, &s1, &err) == FA_ERR_ARG);
}

static void test_names(void) {
    cam_method m;
    CHECK(cam_method_parse("gradcam", &m) && m == CAM_METHOD_GRADCAM);
    CHECK(cam_method_parse("gradcam++", &m) && m == CAM_METHOD_GRADCAM_PP);
    CHECK(cam_method_parse("gradcampp", &m) && m == CAM_METHOD_GRADCAM_PP);
    CHECK(!cam_method_parse("scorecam", &m));
    CHECK(!strcmp(cam_method_name(CAM_METHOD_GRADCAM_PP), "gradcam++"));
    CHECK(!strcmp(cam_category_name(CAM_CAT_FP), "FP"));
}

int main(void) {
    test_against_naive();
    test_weights();
    test_properties();
    test_names();
    return fa_test_finish("test_cam_math");
}
