/* cam_output.c - the files `freeair cam` leaves behind for one explained image
 * (overlay, raw maps, sidecar) and the localisation summary the report reads
 * (see cam.h and docs/gradcam.md for the layout). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/resize.h"
#include "eval/cam.h"
#include "eval/jsonw.h"
#include "eval/stats.h"

#define CAM_VERSION_TEXT "freeair cam (issue 7)"

static fa_status ensure_dir(const char *path, fa_error *err) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return FA_OK;
        return fa_error_set(err, FA_ERR_IO, "%s: exists and is not a directory", path);
    }
    return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
}

static fa_status join(char *out, size_t cap, const char *a, const char *b, fa_error *err) {
    int k = snprintf(out, cap, "%s/%s", a, b);
    if (k < 0 || (size_t)k >= cap) return fa_error_set(err, FA_ERR_ARG, "%s/%s: path too long", a, b);
    return FA_OK;
}

/* Open path.tmp<pid> for a JSON file that is renamed into place when done. */
static FILE *open_tmp(const char *path, char *tmp, size_t cap) {
    int k = snprintf(tmp, cap, "%s.tmp%ld", path, (long)getpid());
    if (k < 0 || (size_t)k >= cap) return NULL;
    return fopen(tmp, "w");
}

static fa_status close_tmp(FILE *f, const char *tmp, const char *path, int werr, fa_error *err) {
    int bad = ferror(f) || werr;
    errno = 0;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: write failed%s%s", path, e ? ": " : "", e ? strerror(e) : "");
    }
    return FA_OK;
}

static fa_status write_sidecar(const char *path, const char *source, const fa_image *im, const cam_model *m,
                               cam_method method, const cam_result *res, const cam_files *files, fa_error *err) {
    char tmp[4300];
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    jsonw w;
    jsonw_init(&w, f);
    jsonw_object(&w, NULL);
    jsonw_str(&w, "schema", "freeair.cam.map/1");
    jsonw_str(&w, "source", source);
    jsonw_str(&w, "checkpoint", cam_model_path(m));
    jsonw_str(&w, "arch", cam_model_arch(m));
    jsonw_str(&w, "layer", cam_model_layer(m));
    jsonw_array_inline(&w, "layer_shape");
    jsonw_int(&w, NULL, res->c);
    jsonw_int(&w, NULL, res->h);
    jsonw_int(&w, NULL, res->w);
    jsonw_end(&w);
    jsonw_str(&w, "method", cam_method_name(method));
    jsonw_str(&w, "target", "logit of the positive class");
    jsonw_num(&w, "logit", res->logit);
    jsonw_num(&w, "probability", res->prob);
    jsonw_int(&w, "input_size", cam_model_image_size(m));
    jsonw_object(&w, "image");
    jsonw_int(&w, "width", im->width);
    jsonw_int(&w, "height", im->height);
    jsonw_end(&w);
    jsonw_str(&w, "normalisation", "map = relu(sum_k alpha_k A_k) / scale, scale = its maximum (0: map all zero)");
    jsonw_num(&w, "scale", res->scale);
    jsonw_object(&w, "npy");
    jsonw_str(&w, "file", files->map_npy);
    jsonw_str(&w, "dtype", "float32");
    jsonw_array_inline(&w, "shape");
    jsonw_int(&w, NULL, res->h);
    jsonw_int(&w, NULL, res->w);
    jsonw_end(&w);
    jsonw_end(&w);
    jsonw_object(&w, "png16");
    jsonw_str(&w, "file", files->map_png);
    jsonw_int(&w, "width", files->width);
    jsonw_int(&w, "height", files->height);
    jsonw_str(&w, "value", "round(map * 65535)");
    jsonw_end(&w);
    jsonw_str(&w, "overlay", files->overlay[0] ? files->overlay : NULL);
    jsonw_str(&w, "resize",
              "layer map -> image geometry by bilinear interpolation on pixel centres (align_corners=False); "
              "preprocessing stretched the whole image to the square input, so the map covers the whole image");
    jsonw_end(&w);
    fputc('\n', f);
    return close_tmp(f, tmp, path, w.error, err);
}

fa_status cam_write_outputs(const cam_output_opts *o, const char *stem, const char *source, const fa_image *im,
                            const cam_model *m, cam_method method, const cam_result *res, cam_files *files,
                            fa_error *err) {
    memset(files, 0, sizeof *files);
    if (!stem[0] || strchr(stem, '/') || strlen(stem) > 400)
        return fa_error_set(err, FA_ERR_ARG, "grad-cam: bad output name '%s'", stem);
    char maps[4200], path[4700];
    fa_status st = join(maps, sizeof maps, o->dir, "maps", err);
    if (st == FA_OK) st = ensure_dir(maps, err);
    if (st != FA_OK) return st;
    snprintf(files->map_npy, sizeof files->map_npy, "maps/%s.npy", stem);
    snprintf(files->map_png, sizeof files->map_png, "maps/%s.png", stem);
    snprintf(files->map_json, sizeof files->map_json, "maps/%s.json", stem);
    if (o->write_overlay) snprintf(files->overlay, sizeof files->overlay, "%s.png", stem);
    int ow, oh;
    cam_fit_dims(im->width, im->height, o->max_side, &ow, &oh);
    files->width = ow, files->height = oh;

    if ((st = join(path, sizeof path, o->dir, files->map_npy, err)) != FA_OK) return st;
    if ((st = cam_write_npy(path, res->map, res->h, res->w, err)) != FA_OK) return st;

    size_t n = (size_t)ow * (size_t)oh;
    float *big = fa_malloc_array(n, sizeof *big);
    uint8_t *rgb = o->write_overlay ? fa_malloc_array(n, 3) : NULL;
    fa_image small;
    memset(&small, 0, sizeof small);
    if (!big || (o->write_overlay && !rgb)) st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for a %dx%d overlay", source, ow, oh);
    if (st == FA_OK) st = cam_resize_map(res->map, res->w, res->h, big, ow, oh, err);
    if (st == FA_OK) st = join(path, sizeof path, o->dir, files->map_png, err);
    if (st == FA_OK) st = cam_write_map_png16(path, big, ow, oh, err);
    if (st == FA_OK && o->write_overlay) {
        const fa_image *grey = im;
        if (ow != im->width || oh != im->height) {
            /* antialiased (Pillow-style) so that a large radiograph shrinks cleanly */
            st = resize_image(im, &small, ow, oh, RESIZE_BILINEAR, err);
            grey = &small;
        }
        if (st == FA_OK) {
            cam_overlay_rgb(grey->pixels, big, ow, oh, o->colormap, o->alpha, rgb);
            st = join(path, sizeof path, o->dir, files->overlay, err);
        }
        if (st == FA_OK) st = cam_write_png_rgb(path, rgb, ow, oh, err);
    }
    free(big);
    free(rgb);
    image_free(&small);
    if (st == FA_OK) st = join(path, sizeof path, o->dir, files->map_json, err);
    if (st == FA_OK) st = write_sidecar(path, source, im, m, method, res, files, err);
    return st;
}

/* ---- localisation summary ---- */

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One cell: the records with a region for which keep(rec) holds. */
static void write_cell(jsonw *w, const cam_record *recs, int n, int gi, const char *value, int by_category,
                       double *scratch) {
    size_t k = 0, hits = 0, zero = 0, nm = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const cam_record *r = &recs[i];
        if (!r->has_region) continue;
        if (gi >= 0 && strcmp(r->groups[gi] ? r->groups[gi] : "", value)) continue;
        if (by_category && strcmp(r->category ? r->category : "", value)) continue;
        k++;
        hits += r->loc.hit != 0;
        if (isnan(r->loc.mass_inside)) {
            zero++;
            continue;
        }
        scratch[nm++] = r->loc.mass_inside;
        sum += r->loc.mass_inside;
    }
    stats_ci ci = stats_wilson(hits, k, 0.95);
    jsonw_int(w, "n", (long long)k);
    jsonw_int(w, "hits", (long long)hits);
    jsonw_num(w, "pointing_game", k ? (double)hits / (double)k : NAN);
    jsonw_pair(w, "pointing_game_ci", ci.lo, ci.hi);
    qsort(scratch, nm, sizeof *scratch, cmp_dbl);
    double med = !nm ? NAN : nm % 2 ? scratch[nm / 2] : 0.5 * (scratch[nm / 2 - 1] + scratch[nm / 2]);
    jsonw_num(w, "mass_inside_mean", nm ? sum / (double)nm : NAN);
    jsonw_num(w, "mass_inside_median", med);
    jsonw_int(w, "zero_maps", (long long)zero);
}

static int str_in(const char *const *v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return 1;
    return 0;
}

/* Distinct non-empty values of group gi (or of the category when gi < 0)
 * among records with a region, sorted. */
static int distinct(const cam_record *recs, int n, int gi, const char **vals) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!recs[i].has_region) continue;
        const char *v = gi >= 0 ? recs[i].groups[gi] : recs[i].category;
        if (!v || !v[0] || str_in(vals, k, v)) continue;
        vals[k++] = v;
    }
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && strcmp(vals[j - 1], vals[j]) > 0; j--) {
            const char *t = vals[j];
            vals[j] = vals[j - 1], vals[j - 1] = t;
        }
    return k;
}

fa_status cam_write_localisation_json(const char *path, const char *model_name, const cam_model *m,
                                      cam_method method, double tolerance_fraction, int n_groups,
                                      const char *const *group_cols, const cam_record *recs, int n, fa_error *err) {
    double *scratch = fa_malloc_array((size_t)n + 1, sizeof *scratch);
    const char **vals = fa_malloc_array((size_t)n + 1, sizeof *vals);
    if (!scratch || !vals) {
        free(scratch);
        free(vals);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    }
    char tmp[4300];
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) {
        free(scratch);
        free(vals);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    }
    int by_cat = 0;
    for (int i = 0; i < n; i++)
        if (recs[i].has_region && recs[i].category && recs[i].category[0]) by_cat = 1;
    jsonw w;
    jsonw_init(&w, f);
    jsonw_object(&w, NULL);
    jsonw_str(&w, "schema", "freeair.cam.localisation/1");
    jsonw_str(&w, "generator", CAM_VERSION_TEXT);
    jsonw_str(&w, "checkpoint", cam_model_path(m));
    jsonw_str(&w, "arch", cam_model_arch(m));
    jsonw_str(&w, "layer", cam_model_layer(m));
    jsonw_str(&w, "method", cam_method_name(method));
    jsonw_num(&w, "tolerance_fraction", tolerance_fraction);
    jsonw_str(&w, "pointing_game",
              "hit when the map's peak (at the image's own geometry) lies within tolerance_fraction x the longer "
              "image side of the truth region; CI: Wilson 95%");
    jsonw_str(&w, "mass_inside", "sum of the map inside the region / sum of the map over the image");
    jsonw_array(&w, "models");
    jsonw_object(&w, NULL);
    jsonw_str(&w, "name", model_name);
    jsonw_object(&w, "overall");
    write_cell(&w, recs, n, -1, NULL, 0, scratch);
    jsonw_end(&w);
    jsonw_array(&w, "subgroups");
    for (int g = -1; g < n_groups; g++) {
        if (g < 0 && !by_cat) continue;
        int k = distinct(recs, n, g, vals);
        for (int i = 0; i < k; i++) {
            jsonw_object(&w, NULL);
            jsonw_str(&w, "column", g < 0 ? "category" : group_cols[g]);
            jsonw_str(&w, "value", vals[i]);
            write_cell(&w, recs, n, g, vals[i], g < 0, scratch);
            jsonw_end(&w);
        }
    }
    jsonw_end(&w);
    jsonw_end(&w);
    jsonw_end(&w);
    jsonw_array(&w, "images");
    for (int i = 0; i < n; i++) {
        const cam_record *r = &recs[i];
        jsonw_object(&w, NULL);
        jsonw_str(&w, "id", r->id);
        jsonw_str(&w, "overlay", r->overlay && r->overlay[0] ? r->overlay : NULL);
        jsonw_str(&w, "category", r->category && r->category[0] ? r->category : NULL);
        jsonw_num(&w, "score", r->score);
        for (int g = 0; g < n_groups; g++) jsonw_str(&w, group_cols[g], r->groups[g]);
        if (r->has_region) {
            jsonw_str(&w, "region", r->region);
            jsonw_bool(&w, "hit", r->loc.hit);
            jsonw_num(&w, "peak_distance_px", r->loc.peak_distance);
            jsonw_array_inline(&w, "peak");
            jsonw_int(&w, NULL, r->loc.peak_x);
            jsonw_int(&w, NULL, r->loc.peak_y);
            jsonw_end(&w);
            jsonw_num(&w, "mass_inside", r->loc.mass_inside);
        } else {
            jsonw_null(&w, "region");
        }
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_end(&w);
    fputc('\n', f);
    free(scratch);
    free(vals);
    return close_tmp(f, tmp, path, w.error, err);
}
