/* cam_image.c - everything that turns a Grad-CAM map into pictures and files:
 * resizing the map back to the radiograph's geometry, colormaps, the blended
 * overlay, and the PNG / .npy writers (see cam.h). */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/cam.h"

fa_status cam_resize_map(const float *src, int w, int h, float *dst, int ow, int oh, fa_error *err) {
    if (w < 1 || h < 1 || ow < 1 || oh < 1 || !src || !dst)
        return fa_error_set(err, FA_ERR_ARG, "grad-cam: cannot resize a %dx%d map to %dx%d", w, h, ow, oh);
    int *x0 = fa_malloc_array((size_t)ow, sizeof *x0), *x1 = fa_malloc_array((size_t)ow, sizeof *x1);
    float *lx = fa_malloc_array((size_t)ow, sizeof *lx);
    if (!x0 || !x1 || !lx) {
        free(x0), free(x1), free(lx);
        return fa_error_set(err, FA_ERR_NOMEM, "grad-cam: out of memory resizing a map to %dx%d", ow, oh);
    }
    /* PyTorch's area_pixel_compute_source_index with align_corners=False,
     * computed in double (PyTorch uses float; the difference is far below the
     * tests' tolerance). */
    double sx = (double)w / ow, sy = (double)h / oh;
    for (int x = 0; x < ow; x++) {
        double s = sx * (x + 0.5) - 0.5;
        if (s < 0) s = 0;
        int i = (int)s;
        if (i > w - 1) i = w - 1;
        x0[x] = i;
        x1[x] = i < w - 1 ? i + 1 : i;
        lx[x] = (float)(s - i);
    }
    for (int y = 0; y < oh; y++) {
        double s = sy * (y + 0.5) - 0.5;
        if (s < 0) s = 0;
        int j = (int)s;
        if (j > h - 1) j = h - 1;
        int j1 = j < h - 1 ? j + 1 : j;
        float ly = (float)(s - j);
        const float *r0 = src + (size_t)j * w, *r1 = src + (size_t)j1 * w;
        float *d = dst + (size_t)y * ow;
        for (int x = 0; x < ow; x++) {
            float a = r0[x0[x]] + lx[x] * (r0[x1[x]] - r0[x0[x]]);
            float b = r1[x0[x]] + lx[x] * (r1[x1[x]] - r1[x0[x]]);
            d[x] = a + ly * (b - a);
        }
    }
    free(x0), free(x1), free(lx);
    return FA_OK;
}

void cam_fit_dims(int w, int h, int max_side, int *ow, int *oh) {
    *ow = w, *oh = h;
    int longer = w > h ? w : h;
    if (max_side <= 0 || longer <= max_side) return;
    double f = (double)max_side / longer;
    *ow = w >= h ? max_side : (int)lround(w * f);
    *oh = h >= w ? max_side : (int)lround(h * f);
    if (*ow < 1) *ow = 1;
    if (*oh < 1) *oh = 1;
}

int cam_colormap_parse(const char *s, cam_colormap *out) {
    if (!s) return 0;
    if (!strcmp(s, "jet")) *out = CAM_COLORMAP_JET;
    else if (!strcmp(s, "turbo")) *out = CAM_COLORMAP_TURBO;
    else return 0;
    return 1;
}

const char *cam_colormap_name(cam_colormap cm) { return cm == CAM_COLORMAP_TURBO ? "turbo" : "jet"; }

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static uint8_t to_u8(double v) { return (uint8_t)lround(clamp01(v) * 255.0); }

/* Colour at t in level space (0..255). Jet is written in levels so that the
 * overlay's 256-entry table is exact: at integer t every channel is an
 * integer + 0.5 before rounding, and rounding half up is then unambiguous
 * (the same table numpy gets with floor(v + 0.5)). */
static void colormap_level(cam_colormap cm, double t, uint8_t rgb[3]) {
    t = t < 0 ? 0 : t > 255 ? 255 : t;
    if (cm == CAM_COLORMAP_TURBO) {
        /* Anton Mikhailov's polynomial fit of Turbo (Google AI blog, 2019). */
        double x = t / 255.0;
        double r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))));
        double g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))));
        double b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))));
        rgb[0] = to_u8(r), rgb[1] = to_u8(g), rgb[2] = to_u8(b);
        return;
    }
    /* channel c (r = 3, g = 2, b = 1): 255 * clamp(1.5 - |4x - c|) */
    for (int k = 0; k < 3; k++) {
        double v = 382.5 - fabs(4 * t - 255.0 * (3 - k));
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        rgb[k] = (uint8_t)floor(v + 0.5);
    }
}

void cam_colormap_rgb(cam_colormap cm, float v, uint8_t rgb[3]) {
    colormap_level(cm, isnan(v) ? 0 : (double)v * 255.0, rgb);
}

void cam_overlay_rgb(const uint16_t *grey, const float *map, int w, int h, cam_colormap cm, float alpha,
                     uint8_t *rgb) {
    double a = clamp01(alpha);
    /* 256 colours are plenty for 8-bit output and save a polynomial per pixel. */
    uint8_t lut[256][3];
    for (int i = 0; i < 256; i++) colormap_level(cm, i, lut[i]);
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++) {
        double g8 = (grey[i] + 128) / 257; /* round(v / 257) for v in 0..65535 */
        double m = isnan(map[i]) ? 0 : clamp01(map[i]);
        const uint8_t *c = lut[(int)lround(m * 255.0)];
        for (int k = 0; k < 3; k++) rgb[3 * i + k] = (uint8_t)lround((1 - a) * g8 + a * c[k]);
    }
}

/* Write to a temporary name in the same directory and rename, so that a
 * reader (the report) never sees half a file. */
static fa_status tmp_name(const char *path, char *tmp, size_t cap, fa_error *err) {
    int k = snprintf(tmp, cap, "%s.tmp%ld", path, (long)getpid());
    if (k < 0 || (size_t)k >= cap) return fa_error_set(err, FA_ERR_ARG, "%s: path too long", path);
    return FA_OK;
}

static fa_status finish_tmp(const char *tmp, const char *path, fa_error *err) {
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(e));
    }
    return FA_OK;
}

static fa_status write_png(const char *path, const void *pixels, int w, int h, png_uint_32 format, fa_error *err) {
    if (w < 1 || h < 1) return fa_error_set(err, FA_ERR_ARG, "%s: empty image", path);
    char tmp[4200];
    fa_status st = tmp_name(path, tmp, sizeof tmp, err);
    if (st != FA_OK) return st;
    FILE *f = fopen(tmp, "wb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = format;
    int ok = png_image_write_to_stdio(&im, f, 0, pixels, 0, NULL);
    char msg[sizeof im.message];
    memcpy(msg, im.message, sizeof msg);
    png_image_free(&im);
    int cerr = fclose(f);
    if (!ok || cerr != 0) {
        unlink(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: cannot write PNG (%s)", path, !ok ? msg : strerror(errno));
    }
    return finish_tmp(tmp, path, err);
}

fa_status cam_write_png_rgb(const char *path, const uint8_t *rgb, int w, int h, fa_error *err) {
    return write_png(path, rgb, w, h, PNG_FORMAT_RGB, err);
}

fa_status cam_write_map_png16(const char *path, const float *map, int w, int h, fa_error *err) {
    size_t n;
    if (w < 1 || h < 1 || !fa_size_mul((size_t)w, (size_t)h, &n))
        return fa_error_set(err, FA_ERR_ARG, "%s: bad map size %dx%d", path, w, h);
    uint16_t *px = fa_malloc_array(n, sizeof *px);
    if (!px) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        double v = isnan(map[i]) ? 0 : clamp01(map[i]);
        px[i] = (uint16_t)lround(v * 65535.0);
    }
    fa_image im;
    memset(&im, 0, sizeof im);
    im.width = w, im.height = h, im.pixels = px;
    fa_status st = image_write_png16(path, &im, err);
    free(px);
    return st;
}

fa_status cam_write_npy(const char *path, const float *data, int h, int w, fa_error *err) {
    size_t n;
    if (w < 1 || h < 1 || !fa_size_mul((size_t)w, (size_t)h, &n))
        return fa_error_set(err, FA_ERR_ARG, "%s: bad array shape (%d, %d)", path, h, w);
    /* NPY 1.0: magic, version, little-endian u16 header length, then a
     * Python dict literal padded with spaces to a multiple of 64 bytes and
     * ending in a newline. */
    char dict[128];
    int k = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", h, w);
    size_t total = 10 + (size_t)k + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)k + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    char tmp[4200];
    fa_status st = tmp_name(path, tmp, sizeof tmp, err);
    if (st != FA_OK) return st;
    FILE *f = fopen(tmp, "wb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)k, f) == (size_t)k;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    /* '<f4': the build targets little-endian x86-64; convert on others. */
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                              (unsigned char)(u >> 24)};
        ok = fwrite(b, 1, 4, f) == 4;
    }
    int cerr = fclose(f);
    if (!ok || cerr != 0) {
        unlink(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return finish_tmp(tmp, path, err);
}
