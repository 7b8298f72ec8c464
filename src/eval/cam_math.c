/* cam_math.c - Grad-CAM / Grad-CAM++ weights and maps as pure functions of a
 * layer's activations and gradients (see cam.h for the formulas). Kept apart
 * from the engine so that the unit test can check them against a naive
 * computation without building a network. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/cam.h"

/* pytorch-grad-cam's GradCAMPlusPlus uses this epsilon in the denominator. */
#define CAM_PP_EPS 1e-6

int cam_method_parse(const char *s, cam_method *out) {
    if (!s) return 0;
    if (!strcmp(s, "gradcam") || !strcmp(s, "grad-cam")) {
        *out = CAM_METHOD_GRADCAM;
        return 1;
    }
    if (!strcmp(s, "gradcam++") || !strcmp(s, "gradcampp") || !strcmp(s, "grad-cam++")) {
        *out = CAM_METHOD_GRADCAM_PP;
        return 1;
    }
    return 0;
}

const char *cam_method_name(cam_method m) { return m == CAM_METHOD_GRADCAM_PP ? "gradcam++" : "gradcam"; }

static fa_status check_inputs(int c, int h, int w, const float *act, const float *grad, size_t *hw, fa_error *err) {
    if (c < 1 || h < 1 || w < 1 || !act || !grad)
        return fa_error_set(err, FA_ERR_ARG, "grad-cam: empty layer (%d x %d x %d)", c, h, w);
    size_t n;
    if (!fa_size_mul((size_t)h, (size_t)w, hw) || !fa_size_mul(*hw, (size_t)c, &n))
        return fa_error_set(err, FA_ERR_NOMEM, "grad-cam: layer %d x %d x %d is too large", c, h, w);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(act[i]) || !isfinite(grad[i]))
            return fa_error_set(err, FA_ERR_NUMERIC, "grad-cam: non-finite %s at channel %zu",
                                isfinite(act[i]) ? "gradient" : "activation", i / *hw);
    return FA_OK;
}

fa_status cam_channel_weights(cam_method method, int c, int h, int w, const float *act, const float *grad,
                              double *alpha, fa_error *err) {
    size_t hw;
    fa_status st = check_inputs(c, h, w, act, grad, &hw, err);
    if (st != FA_OK) return st;
    for (int k = 0; k < c; k++) {
        const float *a = act + (size_t)k * hw, *g = grad + (size_t)k * hw;
        double s = 0;
        if (method == CAM_METHOD_GRADCAM) {
            for (size_t i = 0; i < hw; i++) s += g[i];
            alpha[k] = s / (double)hw;
            continue;
        }
        /* Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential
         * folded away, as pytorch-grad-cam does). */
        double sum_a = 0;
        for (size_t i = 0; i < hw; i++) sum_a += a[i];
        for (size_t i = 0; i < hw; i++) {
            double gi = g[i];
            if (gi <= 0) continue; /* relu(g) = 0, and a_ij = 0 where g == 0 */
            double g2 = gi * gi, g3 = g2 * gi;
            s += gi * (g2 / (2 * g2 + sum_a * g3 + CAM_PP_EPS));
        }
        alpha[k] = s;
    }
    return FA_OK;
}

fa_status cam_compute(cam_method method, int c, int h, int w, const float *act, const float *grad, float *map,
                      double *scale, fa_error *err) {
    size_t hw;
    fa_status st = check_inputs(c, h, w, act, grad, &hw, err);
    if (st != FA_OK) return st;
    double *alpha = fa_malloc_array((size_t)c, sizeof *alpha);
    double *acc = fa_calloc_array(hw, sizeof *acc);
    if (!alpha || !acc) {
        free(alpha);
        free(acc);
        return fa_error_set(err, FA_ERR_NOMEM, "grad-cam: out of memory for a %d x %d x %d layer", c, h, w);
    }
    st = cam_channel_weights(method, c, h, w, act, grad, alpha, err);
    if (st == FA_OK) {
        for (int k = 0; k < c; k++) {
            const float *a = act + (size_t)k * hw;
            double wk = alpha[k];
            if (wk == 0) continue;
            for (size_t i = 0; i < hw; i++) acc[i] += wk * a[i];
        }
        double mx = 0;
        for (size_t i = 0; i < hw; i++) {
            if (!(acc[i] > 0)) acc[i] = 0; /* relu */
            if (acc[i] > mx) mx = acc[i];
        }
        if (!isfinite(mx)) {
            st = fa_error_set(err, FA_ERR_NUMERIC, "grad-cam: the weighted sum overflowed");
        } else {
            for (size_t i = 0; i < hw; i++) map[i] = mx > 0 ? (float)(acc[i] / mx) : 0.0f;
            *scale = mx;
        }
    }
    free(alpha);
    free(acc);
    return st;
}
