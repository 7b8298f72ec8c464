/* cam_region.c - truth regions for localisation (mask PNGs, polygons and
 * boxes in the radiograph's pixel coordinates) and the two scores of a map
 * against one: the pointing game (Zhang et al. 2016: is the map's peak inside
 * the region, up to a tolerance?) and the fraction of the map's mass inside
 * (the "energy-based pointing game" of Score-CAM). See cam.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/cam.h"

void cam_region_free(cam_region *r) {
    if (!r) return;
    free(r->inside);
    memset(r, 0, sizeof *r);
}

static fa_status region_alloc(cam_region *r, int w, int h, const char *source, const char *what, fa_error *err) {
    memset(r, 0, sizeof *r);
    size_t n;
    if (w < 1 || h < 1 || !fa_size_mul((size_t)w, (size_t)h, &n))
        return fa_error_set(err, FA_ERR_ARG, "%s: bad image size %dx%d", what, w, h);
    if (!(r->inside = calloc(n, 1))) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", what);
    r->width = w, r->height = h;
    snprintf(r->source, sizeof r->source, "%s", source);
    return FA_OK;
}

static fa_status region_finish(cam_region *r, const char *what, fa_error *err) {
    size_t n = (size_t)r->width * (size_t)r->height, k = 0;
    for (size_t i = 0; i < n; i++) k += r->inside[i] != 0;
    r->n_inside = k;
    if (!k) {
        cam_region_free(r);
        return fa_error_set(err, FA_ERR_ARG, "%s: the region covers no pixel of the image", what);
    }
    return FA_OK;
}

fa_status cam_region_from_mask(const char *path, int width, int height, cam_region *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    fa_image im;
    memset(&im, 0, sizeof im);
    int depth = 0;
    fa_status st = image_read_png(path, &im, &depth, err);
    if (st != FA_OK) return st;
    if (im.width != width || im.height != height) {
        st = fa_error_set(err, FA_ERR_SHAPE, "%s: mask is %dx%d but the image is %dx%d", path, im.width, im.height,
                          width, height);
        image_free(&im);
        return st;
    }
    st = region_alloc(out, width, height, "mask", path, err);
    if (st == FA_OK) {
        size_t n = (size_t)width * (size_t)height;
        for (size_t i = 0; i < n; i++) out->inside[i] = im.pixels[i] != 0;
        st = region_finish(out, path, err);
    }
    image_free(&im);
    return st;
}

/* Parse "x:y;x:y;..." up to '|' or the end; returns the number of points
 * (into *xy, grown as needed) or -1 on a syntax error. */
static int parse_ring(const char **s, double **xy, size_t *cap) {
    int n = 0;
    const char *p = *s;
    while (*p && *p != '|') {
        char *end;
        double x = strtod(p, &end);
        if (end == p || *end != ':') return -1;
        p = end + 1;
        double y = strtod(p, &end);
        if (end == p || !isfinite(x) || !isfinite(y)) return -1;
        p = end;
        if ((size_t)(2 * n + 2) > *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            double *nx = realloc(*xy, nc * sizeof *nx);
            if (!nx) return -2;
            *xy = nx, *cap = nc;
        }
        (*xy)[2 * n] = x, (*xy)[2 * n + 1] = y;
        n++;
        while (*p == ' ') p++;
        if (*p == ';') p++;
        else if (*p && *p != '|') return -1;
    }
    if (*p == '|') p++;
    *s = p;
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Even-odd fill of one ring by scanlines through pixel centres. Coordinates
 * are clamped before any conversion to int (the text may hold any
 * magnitude). */
static void fill_ring(cam_region *r, const double *xy, int n, double *xs) {
    double ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (xy[2 * i + 1] < ymin) ymin = xy[2 * i + 1];
        if (xy[2 * i + 1] > ymax) ymax = xy[2 * i + 1];
    }
    int y0 = (int)ceil(clampd(ymin, -1, r->height)), y1 = (int)floor(clampd(ymax, -1, r->height));
    if (y0 < 0) y0 = 0;
    if (y1 > r->height - 1) y1 = r->height - 1;
    for (int y = y0; y <= y1; y++) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            double ax = xy[2 * i], ay = xy[2 * i + 1];
            double bx = xy[2 * ((i + 1) % n)], by = xy[2 * ((i + 1) % n) + 1];
            /* half-open in y, so a vertex shared by two edges counts once */
            if ((ay <= y && y < by) || (by <= y && y < ay)) xs[k++] = ax + (y - ay) * (bx - ax) / (by - ay);
        }
        qsort(xs, (size_t)k, sizeof *xs, cmp_double);
        for (int i = 0; i + 1 < k; i += 2) {
            int xa = (int)ceil(clampd(xs[i], -1, r->width)), xb = (int)ceil(clampd(xs[i + 1], -1, r->width)) - 1;
            if (xa < 0) xa = 0;
            if (xb > r->width - 1) xb = r->width - 1;
            for (int x = xa; x <= xb; x++) r->inside[(size_t)y * r->width + x] ^= 1;
        }
    }
}

fa_status cam_region_from_polygons(const char *text, int width, int height, cam_region *out, fa_error *err) {
    fa_status st = region_alloc(out, width, height, "polygon", "free-air polygon", err);
    if (st != FA_OK) return st;
    uint8_t *acc = calloc((size_t)width * (size_t)height, 1);
    double *xy = NULL, *xs = NULL;
    size_t cap = 0;
    const char *p = text;
    int rings = 0;
    if (!acc) st = fa_error_set(err, FA_ERR_NOMEM, "free-air polygon: out of memory");
    while (st == FA_OK && *p) {
        int n = parse_ring(&p, &xy, &cap);
        if (n == -2) st = fa_error_set(err, FA_ERR_NOMEM, "free-air polygon: out of memory");
        else if (n < 0) st = fa_error_set(err, FA_ERR_FORMAT, "free-air polygon: expected x:y;x:y;... near '%.20s'", p);
        else if (n < 3) st = fa_error_set(err, FA_ERR_FORMAT, "free-air polygon: a ring has %d points (need 3)", n);
        if (st != FA_OK) break;
        free(xs);
        if (!(xs = fa_malloc_array((size_t)n, sizeof *xs))) {
            st = fa_error_set(err, FA_ERR_NOMEM, "free-air polygon: out of memory");
            break;
        }
        memset(out->inside, 0, (size_t)width * (size_t)height);
        fill_ring(out, xy, n, xs);
        /* union of rings: each ring is even-odd on its own */
        for (size_t i = 0; i < (size_t)width * (size_t)height; i++) acc[i] |= out->inside[i];
        rings++;
    }
    if (st == FA_OK && !rings) st = fa_error_set(err, FA_ERR_FORMAT, "free-air polygon: empty");
    if (st == FA_OK) {
        memcpy(out->inside, acc, (size_t)width * (size_t)height);
        st = region_finish(out, "free-air polygon", err);
    } else {
        cam_region_free(out);
    }
    free(acc), free(xy), free(xs);
    return st;
}

fa_status cam_region_from_box(const char *text, int width, int height, cam_region *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    double v[4];
    const char *p = text;
    for (int i = 0; i < 4; i++) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        char *end;
        v[i] = strtod(p, &end);
        if (end == p || !isfinite(v[i]))
            return fa_error_set(err, FA_ERR_FORMAT, "box '%s': expected four numbers x0 y0 x1 y1", text);
        p = end;
    }
    while (*p == ' ' || *p == '\t') p++;
    if (*p) return fa_error_set(err, FA_ERR_FORMAT, "box '%s': expected four numbers x0 y0 x1 y1", text);
    if (v[2] < v[0] || v[3] < v[1]) return fa_error_set(err, FA_ERR_FORMAT, "box '%s': x1 < x0 or y1 < y0", text);
    fa_status st = region_alloc(out, width, height, "box", "box", err);
    if (st != FA_OK) return st;
    /* clip in double first: the text may hold any magnitude */
    double lim[4] = {width, height, width, height};
    for (int i = 0; i < 4; i++) v[i] = v[i] < -1 ? -1 : v[i] > lim[i] ? lim[i] : v[i];
    long x0 = lround(ceil(v[0])), y0 = lround(ceil(v[1])), x1 = lround(floor(v[2])), y1 = lround(floor(v[3]));
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > width - 1) x1 = width - 1;
    if (y1 > height - 1) y1 = height - 1;
    for (long y = y0; y <= y1; y++)
        for (long x = x0; x <= x1; x++) out->inside[(size_t)y * (size_t)width + (size_t)x] = 1;
    char what[160];
    snprintf(what, sizeof what, "box '%s'", text);
    return region_finish(out, what, err);
}

fa_status cam_localise(const float *map, int w, int h, const cam_region *r, double tolerance_px,
                       cam_localisation *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    out->mass_inside = NAN;
    out->peak_distance = NAN;
    if (!r || !r->inside || r->width != w || r->height != h)
        return fa_error_set(err, FA_ERR_SHAPE, "localisation: map is %dx%d, region %dx%d", w, h, r ? r->width : 0,
                            r ? r->height : 0);
    if (!r->n_inside) return fa_error_set(err, FA_ERR_ARG, "localisation: empty region");
    size_t n = (size_t)w * (size_t)h, peak = 0;
    double total = 0, inside = 0, best = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = isnan(map[i]) ? 0 : map[i];
        if (v > best) best = v, peak = i;
        if (v > 0) {
            total += v;
            if (r->inside[i]) inside += v;
        }
    }
    out->peak_x = (int)(peak % (size_t)w);
    out->peak_y = (int)(peak / (size_t)w);
    out->mass_inside = total > 0 ? inside / total : NAN;
    double d2 = INFINITY;
    if (r->inside[peak]) {
        d2 = 0;
    } else {
        for (int y = 0; y < h && d2 > 0; y++) {
            double dy = y - out->peak_y;
            if (dy * dy >= d2) continue;
            const uint8_t *row = r->inside + (size_t)y * w;
            for (int x = 0; x < w; x++)
                if (row[x]) {
                    double dx = x - out->peak_x, dd = dx * dx + dy * dy;
                    if (dd < d2) d2 = dd;
                }
        }
    }
    out->peak_distance = sqrt(d2);
    out->hit = total > 0 && out->peak_distance <= tolerance_px;
    return FA_OK;
}
