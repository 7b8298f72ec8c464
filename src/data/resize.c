/* resize.c - Pillow-compatible antialiased resampling of 16-bit grey images
 * (see resize.h for the algorithm and the agreement with PIL). */
#include "data/resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

typedef struct resize_kernel {
    double (*fn)(double x);
    double support;
} resize_kernel;

static double box_fn(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

static double bilinear_fn(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_fn(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

static const resize_kernel kernels[] = {
    [RESIZE_BOX] = {box_fn, 0.5},
    [RESIZE_BILINEAR] = {bilinear_fn, 1.0},
    [RESIZE_LANCZOS] = {lanczos_fn, 3.0},
};

const char *resize_filter_name(resize_filter f) {
    switch (f) {
    case RESIZE_BOX: return "box";
    case RESIZE_BILINEAR: return "bilinear";
    case RESIZE_LANCZOS: return "lanczos";
    }
    return "?";
}

int resize_filter_parse(const char *s, resize_filter *f) {
    if (!strcmp(s, "box") || !strcmp(s, "area")) *f = RESIZE_BOX;
    else if (!strcmp(s, "bilinear")) *f = RESIZE_BILINEAR;
    else if (!strcmp(s, "lanczos") || !strcmp(s, "antialias")) *f = RESIZE_LANCZOS;
    else return 0;
    return 1;
}

void resize_short_side_dims(int width, int height, int short_side, int *out_width, int *out_height) {
    *out_width = width;
    *out_height = height;
    int shorter = width < height ? width : height;
    if (short_side <= 0 || shorter <= short_side) return;
    double scale = (double)short_side / shorter;
    if (width <= height) {
        *out_width = short_side;
        *out_height = (int)floor(height * scale + 0.5);
    } else {
        *out_height = short_side;
        *out_width = (int)floor(width * scale + 0.5);
    }
    if (*out_width < 1) *out_width = 1;
    if (*out_height < 1) *out_height = 1;
}

/* Pillow's precompute_coeffs for the box [0, in_size): for each output pixel
 * the first input index (bounds[2i]), the tap count (bounds[2i+1]) and ksize
 * normalised weights. Returns ksize, 0 on allocation failure. */
static int precompute_coeffs(int in_size, int out_size, const resize_kernel *k, int **bounds_out, double **kk_out) {
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = k->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *kk = fa_malloc_array((size_t)out_size * (size_t)ksize, sizeof *kk);
    int *bounds = fa_malloc_array((size_t)out_size * 2, sizeof *bounds);
    if (!kk || !bounds) {
        free(kk);
        free(bounds);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *w = &kk[(size_t)xx * (size_t)ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double v = k->fn((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) w[x] /= ww;
        for (; x < ksize; x++) w[x] = 0;
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

/* Pillow's rounding of a double to its 32-bit integer pixels. */
static inline int32_t round_up(double f) { return (int32_t)(f >= 0.0 ? f + 0.5F : f - 0.5F); }

static inline uint16_t clamp_u16(int32_t v) { return v < 0 ? 0 : v > 65535 ? 65535 : (uint16_t)v; }

fa_status resize_u16(const uint16_t *src, int w, int h, uint16_t *dst, int ow, int oh, resize_filter f,
                     fa_error *err) {
    if (w < 1 || h < 1 || ow < 1 || oh < 1 || w > 65535 || h > 65535 || ow > 65535 || oh > 65535)
        return fa_error_set(err, FA_ERR_ARG, "resize %dx%d -> %dx%d: sizes must be 1..65535", w, h, ow, oh);
    if ((unsigned)f > RESIZE_LANCZOS) return fa_error_set(err, FA_ERR_ARG, "resize: unknown filter %d", (int)f);
    const resize_kernel *k = &kernels[f];
    int need_h = ow != w, need_v = oh != h;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)w * (size_t)h * sizeof *dst);
        return FA_OK;
    }
    int *bh = NULL, *bv = NULL;
    double *kh = NULL, *kv = NULL, *acc = NULL;
    int32_t *tmp = NULL;
    fa_status st = FA_OK;
    int ksh = need_h ? precompute_coeffs(w, ow, k, &bh, &kh) : 1;
    int ksv = need_v ? precompute_coeffs(h, oh, k, &bv, &kv) : 1;
    if (!ksh || !ksv) goto oom;

    /* Source rows the vertical pass reads (all of them without one). */
    int y_first = 0, y_last = h;
    if (need_v) {
        y_first = bv[0];
        y_last = bv[oh * 2 - 2] + bv[oh * 2 - 1];
    }
    int th = y_last - y_first;
    /* Horizontal pass into 32-bit integers (Pillow mode "I" rounding). */
    tmp = fa_malloc_array((size_t)ow * (size_t)th, sizeof *tmp);
    if (!tmp) goto oom;
    for (int y = 0; y < th; y++) {
        const uint16_t *in = src + (size_t)(y + y_first) * (size_t)w;
        int32_t *out = tmp + (size_t)y * (size_t)ow;
        if (!need_h) {
            for (int x = 0; x < w; x++) out[x] = in[x];
            continue;
        }
        for (int xx = 0; xx < ow; xx++) {
            int xmin = bh[xx * 2], xn = bh[xx * 2 + 1];
            const double *wk = &kh[(size_t)xx * (size_t)ksh];
            double ss = 0.0;
            for (int x = 0; x < xn; x++) ss += in[x + xmin] * wk[x];
            out[xx] = round_up(ss);
        }
    }
    if (!need_v) {
        for (size_t i = 0; i < (size_t)ow * (size_t)oh; i++) dst[i] = clamp_u16(tmp[i]);
        goto done;
    }
    /* Vertical pass, row by row; per pixel the taps are summed in the same
     * order as Pillow's (increasing y), so results are bit-identical. */
    acc = fa_malloc_array((size_t)ow, sizeof *acc);
    if (!acc) goto oom;
    for (int yy = 0; yy < oh; yy++) {
        int ymin = bv[yy * 2] - y_first, yn = bv[yy * 2 + 1];
        const double *wk = &kv[(size_t)yy * (size_t)ksv];
        for (int x = 0; x < ow; x++) acc[x] = 0.0;
        for (int y = 0; y < yn; y++) {
            const int32_t *row = tmp + (size_t)(y + ymin) * (size_t)ow;
            double c = wk[y];
            for (int x = 0; x < ow; x++) acc[x] += row[x] * c;
        }
        uint16_t *out = dst + (size_t)yy * (size_t)ow;
        for (int x = 0; x < ow; x++) out[x] = clamp_u16(round_up(acc[x]));
    }
    goto done;
oom:
    st = fa_error_set(err, FA_ERR_NOMEM, "resize %dx%d -> %dx%d: out of memory", w, h, ow, oh);
done:
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(tmp);
    free(acc);
    return st;
}

fa_status resize_image(const fa_image *in, fa_image *out, int ow, int oh, resize_filter f, fa_error *err) {
    fa_status st = image_alloc(out, ow, oh, err);
    if (st != FA_OK) return st;
    st = resize_u16(in->pixels, in->width, in->height, out->pixels, ow, oh, f, err);
    if (st != FA_OK) {
        image_free(out);
        return st;
    }
    out->spacing_row_mm = in->spacing_row_mm * in->height / oh;
    out->spacing_col_mm = in->spacing_col_mm * in->width / ow;
    return FA_OK;
}
