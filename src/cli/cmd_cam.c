/* cmd_cam.c - `freeair cam`: Grad-CAM / Grad-CAM++ overlays and raw maps for
 * radiographs, a gallery of true/false positives and negatives from an
 * evaluated split, and localisation against known free-air regions (issue 7;
 * library in src/eval/cam*.c, documentation in docs/gradcam.md).
 *
 * Two ways in:
 *   freeair cam --model CKPT INPUT... -o DIR           files, folders, manifests
 *   freeair cam --model CKPT --predictions P.csv -o D  gallery of an evaluated split
 * Output: DIR/<stem>.png overlays, DIR/maps/<stem>.{npy,png,json},
 * DIR/index.csv (the report reads its file and caption columns) and
 * DIR/localisation.json. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/fa_progress.h"
#include "data/csv.h"
#include "data/manifest.h"
#include "engine/exec.h"
#include "eval/cam.h"
#include "models/model.h"
#include "train/ckpt.h"

#define CAM_MAX_GROUPS 8

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair cam --model CKPT [options] INPUT... -o DIR\n"
            "       freeair cam --model CKPT --predictions RUN_DIR/predictions.csv [options] -o RUN_DIR/cam\n"
            "\n"
            "Grad-CAM explanations of the checkpoint's free-air logit. INPUT: DICOM, PNG or\n"
            "JPEG files, directories (walked; the chest gate refuses non-chest images) or\n"
            "manifests (*.csv with a path column). With --predictions (freeair eval's output)\n"
            "the most confident true/false positives and negatives of the test split are\n"
            "explained for the report's gallery. Per image: DIR/<name>.png (colour overlay at\n"
            "the radiograph's aspect ratio) and DIR/maps/<name>.npy (float32 map at the\n"
            "layer's resolution), .png (16-bit map), .json (shape, scale, provenance);\n"
            "DIR/index.csv lists them and DIR/localisation.json scores the maps against\n"
            "known free-air regions (manifest columns free_air_mask, free_air_polygon,\n"
            "free_air_bbox, or x0,y0,x1,y1).\n"
            "\n"
            "  --model PATH          checkpoint file or run folder (required)\n"
            "  -o, --output DIR      output folder (created)\n"
            "  --layer NAME          layer to explain (default: layer4, features, Mixed_7c)\n"
            "  --list-layers         print the layers Grad-CAM can use and exit\n"
            "  --method M            gradcam (default) or gradcam++\n"
            "  --colormap C          jet (default) or turbo\n"
            "  --alpha A             weight of the colour in the overlay (default 0.4)\n"
            "  --max-side N          longer side of overlays (default 1024; 0 = full size)\n"
            "  --tolerance F         pointing-game tolerance, fraction of the longer side (default 0.02)\n"
            "  --group-by COL[,COL]  localisation subgroups (default: unit,vendor when present)\n"
            "  --name NAME           model name in the summary; with --predictions, the rows\n"
            "                        of that model (default: the only one)\n"
            "  --threads N           oneDNN threads\n"
            "  --quiet               no progress line\n"
            "gallery (--predictions):\n"
            "  --predictions FILE    evaluated rows: label, score, outcome_primary or threshold_primary\n"
            "  --manifest FILE       image paths and truth regions, joined on path, image_id or sop_uid\n"
            "  --split NAME          rows of this split (default test, when there is a split column)\n"
            "  --per-category N      cases per TP/FP/FN/TN (default 4)\n"
            "  --threshold T         decision threshold when the file has no outcome\n"
            "  --all-positives       also score every other positive for localisation (maps only)\n");
}

/* ---- tables the jobs refer to ---- */

typedef struct table_ref {
    csv_table t;
    char *path;
} table_ref;

typedef struct tables {
    table_ref *v;
    int n, cap;
} tables;

static int tables_add(tables *ts, const csv_table *t, const char *path) {
    if (ts->n == ts->cap) {
        int cap = ts->cap ? ts->cap * 2 : 8;
        table_ref *v = realloc(ts->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        ts->v = v, ts->cap = cap;
    }
    ts->v[ts->n].t = *t;
    ts->v[ts->n].path = strdup(path);
    if (!ts->v[ts->n].path) return -1;
    return ts->n++;
}

static void tables_free(tables *ts) {
    for (int i = 0; i < ts->n; i++) {
        csv_free(&ts->v[i].t);
        free(ts->v[i].path);
    }
    free(ts->v);
}

/* ---- jobs: one image to explain ---- */

typedef struct job {
    char *id;     /* as given (path, manifest path, predictions id) */
    char *file;   /* file to read */
    char *refused; /* reason the image is not explained, or NULL */
    int t1, r1;   /* primary row (manifest) or t1 = -1 */
    int t2, r2;   /* secondary row (predictions) or t2 = -1 */
    int pick;     /* index into picks or -1 */
    int overlay;  /* write an overlay (gallery) */
    char stem[320];
} job;

typedef struct jobs {
    job *v;
    int n, cap;
} jobs;

static job *jobs_push(jobs *js, const char *id, const char *file, const char *refused) {
    if (js->n == js->cap) {
        int cap = js->cap ? js->cap * 2 : 32;
        job *v = realloc(js->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        js->v = v, js->cap = cap;
    }
    job *j = &js->v[js->n];
    memset(j, 0, sizeof *j);
    j->t1 = j->t2 = j->pick = -1;
    j->overlay = 1;
    j->id = strdup(id);
    j->file = strdup(file);
    j->refused = refused ? strdup(refused) : NULL;
    if (!j->id || !j->file || (refused && !j->refused)) {
        free(j->id), free(j->file), free(j->refused);
        return NULL;
    }
    js->n++;
    return j;
}

static void jobs_free(jobs *js) {
    for (int i = 0; i < js->n; i++) free(js->v[i].id), free(js->v[i].file), free(js->v[i].refused);
    free(js->v);
}

/* A job's cell by column name: the manifest row first, then the predictions
 * row; *base gets the table's path (relative paths in cells are relative to
 * it). "" when neither has a non-empty value. */
static const char *job_cell(const tables *ts, const job *j, const char *col, const char **base) {
    int tt[2] = {j->t1, j->t2}, rr[2] = {j->r1, j->r2};
    for (int k = 0; k < 2; k++) {
        if (tt[k] < 0) continue;
        const csv_table *t = &ts->v[tt[k]].t;
        const char *v = csv_cell(t, rr[k], csv_column(t, col));
        if (v[0]) {
            if (base) *base = ts->v[tt[k]].path;
            return v;
        }
    }
    return "";
}

static int any_table_has(const tables *ts, const char *col) {
    for (int i = 0; i < ts->n; i++)
        if (csv_column(&ts->v[i].t, col) >= 0) return 1;
    return 0;
}

/* Truth region of a job, if its rows give one. Returns FA_OK with
 * r->inside == NULL when there is none. */
static fa_status job_region(const tables *ts, const job *j, int w, int h, cam_region *r, fa_error *err) {
    memset(r, 0, sizeof *r);
    const char *base = NULL, *v;
    if ((v = job_cell(ts, j, "free_air_mask", &base))[0] || (v = job_cell(ts, j, "mask", &base))[0]) {
        char file[4096];
        manifest_resolve_path(v, base, file, sizeof file);
        return cam_region_from_mask(file, w, h, r, err);
    }
    fa_status st;
    if ((v = job_cell(ts, j, "free_air_polygon", NULL))[0]) {
        st = cam_region_from_polygons(v, w, h, r, err);
        if (st != FA_OK) fa_error_prefix(err, "%s", j->id);
        return st;
    }
    if ((v = job_cell(ts, j, "free_air_bbox", NULL))[0] || (v = job_cell(ts, j, "box", NULL))[0]) {
        st = cam_region_from_box(v, w, h, r, err);
        if (st != FA_OK) fa_error_prefix(err, "%s", j->id);
        return st;
    }
    const char *c[4] = {job_cell(ts, j, "x0", NULL), job_cell(ts, j, "y0", NULL), job_cell(ts, j, "x1", NULL),
                        job_cell(ts, j, "y1", NULL)};
    if (c[0][0] || c[1][0] || c[2][0] || c[3][0]) {
        char box[512];
        snprintf(box, sizeof box, "%s %s %s %s", c[0], c[1], c[2], c[3]);
        st = cam_region_from_box(box, w, h, r, err);
        if (st != FA_OK) fa_error_prefix(err, "%s", j->id);
        return st;
    }
    return FA_OK;
}

static int ends_with_csv(const char *p) {
    size_t n = strlen(p);
    return n > 4 && !strcasecmp(p + n - 4, ".csv");
}

/* Manifest input: every row; rows the gate excluded or could not read are
 * refused with their reason. */
static fa_status add_manifest(tables *ts, jobs *js, const char *mpath, fa_error *err) {
    csv_table t;
    fa_status st = csv_read_file(mpath, &t, err);
    if (st != FA_OK) return st;
    int cp = csv_column(&t, "path");
    if (cp < 0) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: no 'path' column", mpath);
    }
    int ti = tables_add(ts, &t, mpath);
    if (ti < 0) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", mpath);
    }
    const csv_table *tt = &ts->v[ti].t;
    int cs = csv_column(tt, "status"), cr = csv_column(tt, "reason");
    for (int i = 0; i < tt->n_rows; i++) {
        const char *p = csv_cell(tt, i, cp), *s = csv_cell(tt, i, cs);
        char file[4096], why[1200] = "";
        manifest_resolve_path(p, mpath, file, sizeof file);
        if (s[0] && strcmp(s, MANIFEST_STATUS_OK))
            snprintf(why, sizeof why, "%s: %s", !strcmp(s, MANIFEST_STATUS_EXCLUDED) ? "refused" : s,
                     csv_cell(tt, i, cr)[0] ? csv_cell(tt, i, cr) : "no reason given");
        job *j = jobs_push(js, p, file, why[0] ? why : NULL);
        if (!j) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", mpath);
        j->t1 = ti, j->r1 = i;
    }
    return FA_OK;
}

/* Files and folders: freeair scan's walk and chest gate. */
static fa_status add_scan(jobs *js, const char *input, fa_error *err) {
    struct stat sb;
    if (stat(input, &sb) != 0) {
        char why[512];
        snprintf(why, sizeof why, "unreadable: %s", strerror(errno));
        return jobs_push(js, input, input, why) ? FA_OK : fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    }
    csv_table t;
    manifest_scan_opts so = {1, 0, 1, NULL};
    manifest_scan_stats ss;
    const char *in[1] = {input};
    fa_status st = manifest_scan(in, 1, &so, &t, &ss, err);
    if (st != FA_OK) return st;
    for (int i = 0; i < t.n_rows && st == FA_OK; i++) {
        const char *p = csv_cell(&t, i, MANIFEST_COL_PATH), *s = csv_cell(&t, i, MANIFEST_COL_STATUS);
        char why[1200] = "";
        if (strcmp(s, MANIFEST_STATUS_OK))
            snprintf(why, sizeof why, "%s: %s", !strcmp(s, MANIFEST_STATUS_EXCLUDED) ? "refused" : "error",
                     csv_cell(&t, i, MANIFEST_COL_REASON));
        if (!jobs_push(js, p, p, why[0] ? why : NULL)) st = fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    }
    if (st == FA_OK && t.n_rows == 0) {
        char why[512];
        snprintf(why, sizeof why, "no DICOM, PNG or JPEG file found");
        if (!jobs_push(js, input, input, why)) st = fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    }
    csv_free(&t);
    return st;
}

/* Gallery: the picks of an evaluated predictions file, joined to the
 * manifest when one is given. */
static fa_status add_predictions(tables *ts, jobs *js, const char *ppath, const char *mpath,
                                 const cam_select_opts *so, cam_pick **picks, int *n_picks, fa_error *err) {
    csv_table t;
    fa_status st = csv_read_file(ppath, &t, err);
    if (st != FA_OK) return st;
    int pi = tables_add(ts, &t, ppath);
    if (pi < 0) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", ppath);
    }
    int mi = -1;
    if (mpath) {
        csv_table m;
        if ((st = csv_read_file(mpath, &m, err)) != FA_OK) return st;
        if (csv_column(&m, "path") < 0) {
            csv_free(&m);
            return fa_error_set(err, FA_ERR_FORMAT, "%s: no 'path' column", mpath);
        }
        if ((mi = tables_add(ts, &m, mpath)) < 0) {
            csv_free(&m);
            return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", mpath);
        }
    }
    const csv_table *pt = &ts->v[pi].t;
    if ((st = cam_select(ppath, pt, so, picks, n_picks, err)) != FA_OK) return st;
    int c_key = csv_column(pt, "path") >= 0 ? csv_column(pt, "path") : csv_column(pt, "id");
    if (c_key < 0) return fa_error_set(err, FA_ERR_FORMAT, "%s: needs an 'id' or 'path' column", ppath);
    for (int k = 0; k < *n_picks; k++) {
        const char *key = csv_cell(pt, (*picks)[k].row, c_key);
        char file[4096];
        int mrow = -1;
        if (mi >= 0) {
            const csv_table *mt = &ts->v[mi].t;
            static const char *const keys[] = {"path", "image_id", "sop_uid"};
            for (int c = 0; c < 3 && mrow < 0; c++) {
                int col = csv_column(mt, keys[c]);
                for (int r = 0; col >= 0 && r < mt->n_rows && mrow < 0; r++)
                    if (!strcmp(csv_cell(mt, r, col), key)) mrow = r;
            }
        }
        char why[512] = "";
        if (mrow >= 0) {
            manifest_resolve_path(csv_cell(&ts->v[mi].t, mrow, csv_column(&ts->v[mi].t, "path")), mpath, file,
                                  sizeof file);
        } else {
            manifest_resolve_path(key, ppath, file, sizeof file);
            if (mi >= 0) snprintf(why, sizeof why, "not found in %s (by path, image_id or sop_uid)", mpath);
        }
        job *j = jobs_push(js, key, file, why[0] ? why : NULL);
        if (!j) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", ppath);
        j->t1 = mrow >= 0 ? mi : -1, j->r1 = mrow;
        j->t2 = pi, j->r2 = (*picks)[k].row;
        j->pick = k;
        j->overlay = (*picks)[k].rank > 0;
    }
    return FA_OK;
}

/* File-name-safe stem of a path: its base name without extension. */
static void make_stem(const char *id, char *out, size_t cap) {
    const char *b = strrchr(id, '/');
    b = b ? b + 1 : id;
    size_t n = strlen(b);
    const char *dot = strrchr(b, '.');
    if (dot && dot != b) n = (size_t)(dot - b);
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap && k < 120; i++) {
        char c = b[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 c == '.';
        out[k++] = ok ? c : '_';
    }
    if (!k) out[k++] = 'x';
    out[k] = 0;
}

static void assign_stems(jobs *js, const cam_pick *picks) {
    for (int i = 0; i < js->n; i++) {
        job *j = &js->v[i];
        char base[160], cand[200];
        make_stem(j->id, base, sizeof base);
        if (j->pick >= 0 && picks[j->pick].rank > 0) {
            const cam_pick *p = &picks[j->pick];
            /* the report lists the overlays by file name: TP, FP, FN, TN in that order */
            snprintf(cand, sizeof cand, "%d-%s-%02d-%s", (int)p->category + 1, cam_category_name(p->category), p->rank,
                     base);
        } else if (j->pick >= 0) {
            snprintf(cand, sizeof cand, "pos-%s", base);
        } else {
            snprintf(cand, sizeof cand, "%s", base);
        }
        snprintf(j->stem, sizeof j->stem, "%s", cand);
        for (int dup = 2;; dup++) {
            int clash = 0;
            for (int k = 0; k < i && !clash; k++) clash = !strcmp(js->v[k].stem, j->stem);
            if (!clash) break;
            snprintf(j->stem, sizeof j->stem, "%s-%d", cand, dup);
        }
    }
}

static fa_status ensure_dir(const char *path, fa_error *err) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return FA_OK;
        return fa_error_set(err, FA_ERR_IO, "%s: exists and is not a directory", path);
    }
    return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
}

static void fmt_num(char *b, size_t cap, double v, const char *fmt) {
    if (isnan(v)) b[0] = 0;
    else snprintf(b, cap, fmt, v);
}

/* Per-job results kept for index.csv and the summary. */
typedef struct outcome {
    int ok;
    cam_files files;
    double logit, prob;
    int has_region;
    char region[16];
    cam_localisation loc;
    const char *groups[CAM_MAX_GROUPS];
} outcome;

static int list_layers(const char *model) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s", model);
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(path, sizeof path, "%s/best.safetensors", model);
        if (stat(path, &sb) != 0) snprintf(path, sizeof path, "%s/last.safetensors", model);
    }
    fa_error err = {0};
    fa_graph *g = NULL;
    ckpt_info info;
    if (train_load_checkpoint(path, &g, &info, &err) != FA_OK) return cli_fail("cam", &err);
    const char *dflt = model_default_cam_layer(info.arch);
    int n = 0, nv = graph_value_count(g);
    for (graph_value v = 0; v < nv; v++) {
        const char *name = graph_value_name(g, v);
        int c, h, w;
        graph_value_shape(g, v, &c, &h, &w);
        if (!name || !name[0] || (long)h * w <= 1) continue;
        printf("%s\t%dx%dx%d%s\n", name, c, h, w, dflt && !strcmp(dflt, name) ? "\tdefault" : "");
        n++;
    }
    graph_free(g);
    if (!n) {
        fprintf(stderr, "freeair cam: %s (%s at %d px): no layer with a spatial size above 1x1\n", path, info.arch,
                info.image_size);
        return 1;
    }
    return 0;
}

int cmd_cam(int argc, char **argv) {
    const char *model = NULL, *out_dir = NULL, *layer = NULL, *predictions = NULL, *manifest = NULL;
    const char *name = NULL, *split = NULL, *group_by = NULL;
    cam_method method = CAM_METHOD_GRADCAM;
    cam_colormap cmap = CAM_COLORMAP_JET;
    double alpha = 0.4, tolerance = 0.02, threshold = NAN;
    int max_side = 1024, per_cat = 4, threads = 0, quiet = 0, all_pos = 0, list = 0, n_inputs = 0, only_inputs = 0;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) {
        fprintf(stderr, "freeair cam: out of memory\n");
        return 1;
    }
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (only_inputs || o[0] != '-' || !o[1]) {
            inputs[n_inputs++] = o;
            continue;
        }
        if (!strcmp(o, "--")) {
            only_inputs = 1;
            continue;
        }
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            free(inputs);
            return 0;
        }
        if (!strcmp(o, "--quiet")) quiet = 1;
        else if (!strcmp(o, "--all-positives")) all_pos = 1;
        else if (!strcmp(o, "--list-layers")) list = 1;
        else {
            if (i + 1 >= argc) {
                fprintf(stderr, "freeair cam: %s needs a value\n", o);
                goto out;
            }
            const char *v = argv[++i];
            char *end;
            if (!strcmp(o, "--model")) model = v;
            else if (!strcmp(o, "-o") || !strcmp(o, "--output")) out_dir = v;
            else if (!strcmp(o, "--layer")) layer = v;
            else if (!strcmp(o, "--predictions")) predictions = v;
            else if (!strcmp(o, "--manifest")) manifest = v;
            else if (!strcmp(o, "--name")) name = v;
            else if (!strcmp(o, "--split")) split = v;
            else if (!strcmp(o, "--group-by")) group_by = v;
            else if (!strcmp(o, "--method")) {
                if (!cam_method_parse(v, &method)) {
                    fprintf(stderr, "freeair cam: --method %s: expected gradcam or gradcam++\n", v);
                    goto out;
                }
            } else if (!strcmp(o, "--colormap")) {
                if (!cam_colormap_parse(v, &cmap)) {
                    fprintf(stderr, "freeair cam: --colormap %s: expected jet or turbo\n", v);
                    goto out;
                }
            } else if (!strcmp(o, "--alpha")) {
                alpha = strtod(v, &end);
                if (*end || !(alpha >= 0 && alpha <= 1)) {
                    fprintf(stderr, "freeair cam: --alpha %s: expected a number in [0, 1]\n", v);
                    goto out;
                }
            } else if (!strcmp(o, "--tolerance")) {
                tolerance = strtod(v, &end);
                if (*end || !(tolerance >= 0 && tolerance <= 1)) {
                    fprintf(stderr, "freeair cam: --tolerance %s: expected a fraction in [0, 1]\n", v);
                    goto out;
                }
            } else if (!strcmp(o, "--threshold")) {
                threshold = strtod(v, &end);
                if (*end || !isfinite(threshold)) {
                    fprintf(stderr, "freeair cam: --threshold %s: expected a number\n", v);
                    goto out;
                }
            } else if (!strcmp(o, "--max-side") || !strcmp(o, "--per-category") || !strcmp(o, "--threads")) {
                long x = strtol(v, &end, 10);
                long lo = !strcmp(o, "--threads") ? 1 : 0, hi = !strcmp(o, "--max-side") ? 65535 : 1024;
                if (*end || !v[0] || x < lo || x > hi) {
                    fprintf(stderr, "freeair cam: %s %s: expected an integer in %ld..%ld\n", o, v, lo, hi);
                    goto out;
                }
                if (!strcmp(o, "--max-side")) max_side = (int)x;
                else if (!strcmp(o, "--per-category")) per_cat = (int)x;
                else threads = (int)x;
            } else {
                fprintf(stderr, "freeair cam: unknown option %s (see --help)\n", o);
                goto out;
            }
        }
    }
    if (!model) {
        fprintf(stderr, "freeair cam: --model is required\n");
        goto out;
    }
    if (threads) exec_set_threads(threads);
    if (list) {
        rc = list_layers(model);
        goto out;
    }
    const char *usage_error = !out_dir ? "-o DIR is required"
                              : predictions && n_inputs ? "give either INPUT... or --predictions, not both"
                              : !predictions && !n_inputs ? "no inputs (files, directories, manifests or --predictions)"
                              : !predictions && (manifest || split || all_pos)
                                  ? "--manifest, --split and --all-positives go with --predictions"
                                  : NULL;
    if (usage_error) {
        fprintf(stderr, "freeair cam: %s\n", usage_error);
        goto out;
    }

    /* From here on failures are exit status 1. */
    rc = 1;
    fa_error err = {0};
    tables ts = {0};
    jobs js = {0};
    cam_pick *picks = NULL;
    int n_picks = 0;
    cam_model *m = NULL;
    outcome *res = NULL;
    cam_record *recs = NULL;
    char *groups_buf = NULL;
    const char *gcols[CAM_MAX_GROUPS];
    int n_groups = 0, failures = 0;
    fa_status st = FA_OK;

    if (predictions) {
        cam_select_opts so = {name, split ? split : "test", per_cat, threshold, all_pos};
        st = add_predictions(&ts, &js, predictions, manifest, &so, &picks, &n_picks, &err);
    } else {
        for (int i = 0; i < n_inputs && st == FA_OK; i++)
            st = ends_with_csv(inputs[i]) ? add_manifest(&ts, &js, inputs[i], &err) : add_scan(&js, inputs[i], &err);
    }
    if (st != FA_OK) {
        cli_fail("cam", &err);
        goto done;
    }
    if (!js.n) {
        fprintf(stderr, "freeair cam: %s: nothing to explain\n", predictions ? predictions : inputs[0]);
        goto done;
    }
    /* Subgroup columns for the localisation summary. */
    if (group_by) {
        if (!(groups_buf = strdup(group_by))) goto oom;
        for (char *s = strtok(groups_buf, ","); s; s = strtok(NULL, ",")) {
            if (n_groups == CAM_MAX_GROUPS) {
                fprintf(stderr, "freeair cam: --group-by: at most %d columns\n", CAM_MAX_GROUPS);
                rc = 2;
                goto done;
            }
            if (!any_table_has(&ts, s)) {
                fprintf(stderr, "freeair cam: --group-by %s: no input table has that column\n", s);
                rc = 2;
                goto done;
            }
            gcols[n_groups++] = s;
        }
    } else {
        static const char *const dflt[] = {"unit", "vendor"};
        for (int i = 0; i < 2; i++)
            if (any_table_has(&ts, dflt[i])) gcols[n_groups++] = dflt[i];
    }
    if ((st = ensure_dir(out_dir, &err)) != FA_OK) {
        cli_fail("cam", &err);
        goto done;
    }
    if ((st = cam_model_open(&m, model, layer, &err)) != FA_OK) {
        cli_fail("cam", &err);
        goto done;
    }
    assign_stems(&js, picks);
    res = fa_calloc_array((size_t)js.n, sizeof *res);
    recs = fa_calloc_array((size_t)js.n, sizeof *recs);
    if (!res || !recs) goto oom;

    cam_output_opts oo = {out_dir, cmap, (float)alpha, max_side, 1};
    fa_progress prog;
    fa_progress_begin(&prog, "cam", js.n);
    prog.quiet = quiet;
    for (int i = 0; i < js.n; i++) {
        job *j = &js.v[i];
        outcome *r = &res[i];
        r->loc.mass_inside = NAN;
        for (int g = 0; g < n_groups; g++) r->groups[g] = job_cell(&ts, j, gcols[g], NULL);
        if (j->refused) {
            fprintf(stderr, "freeair cam: %s: %s\n", j->id, j->refused);
            failures++;
            fa_progress_add(&prog, 1);
            continue;
        }
        fa_image im;
        memset(&im, 0, sizeof im);
        cam_result cr;
        memset(&cr, 0, sizeof cr);
        fa_error e = {0};
        fa_status s = image_load(j->file, &im, NULL, 0, &e);
        if (s == FA_OK) {
            s = cam_model_explain(m, &im, method, &cr, &e);
            if (s != FA_OK) fa_error_prefix(&e, "%s", j->file);
        }
        if (s == FA_OK) {
            oo.write_overlay = j->overlay;
            s = cam_write_outputs(&oo, j->stem, j->id, &im, m, method, &cr, &r->files, &e);
        }
        if (s == FA_OK) {
            r->ok = 1;
            r->logit = cr.logit, r->prob = cr.prob;
            cam_region reg;
            s = job_region(&ts, j, im.width, im.height, &reg, &e);
            if (s == FA_OK && reg.inside) {
                size_t npx = (size_t)im.width * (size_t)im.height;
                float *full = fa_malloc_array(npx, sizeof *full);
                if (!full) s = fa_error_set(&e, FA_ERR_NOMEM, "%s: out of memory for the full-size map", j->file);
                if (s == FA_OK) s = cam_resize_map(cr.map, cr.w, cr.h, full, im.width, im.height, &e);
                double tol = tolerance * (im.width > im.height ? im.width : im.height);
                if (s == FA_OK) s = cam_localise(full, im.width, im.height, &reg, tol, &r->loc, &e);
                if (s == FA_OK) {
                    r->has_region = 1;
                    snprintf(r->region, sizeof r->region, "%s", reg.source);
                }
                free(full);
            }
            cam_region_free(&reg);
        }
        if (s != FA_OK) {
            cli_fail("cam", &e);
            failures++;
        }
        cam_result_free(&cr);
        image_free(&im);
        fa_progress_add(&prog, 1);
    }
    fa_progress_end(&prog);

    /* index.csv: the report reads `file` and `caption`. */
    char path[4300];
    snprintf(path, sizeof path, "%s/index.csv", out_dir);
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "freeair cam: %s: %s\n", path, strerror(errno));
        goto done;
    }
    {
        const char *head[32] = {"file",  "caption",   "id",     "path",     "category",    "rank",
                                "score", "label",     "threshold", "logit", "probability", "layer",
                                "method", "map_npy",  "map_png", "map_json", "width",      "height",
                                "region", "pointing_hit", "peak_distance_px", "mass_inside"};
        int nh = 22;
        for (int g = 0; g < n_groups; g++) head[nh++] = gcols[g];
        csv_write_row(f, nh, head);
        for (int i = 0; i < js.n; i++) {
            const job *j = &js.v[i];
            const outcome *r = &res[i];
            if (!r->ok) continue;
            const cam_pick *p = j->pick >= 0 ? &picks[j->pick] : NULL;
            char rank[16] = "", score[32], label[8] = "", thr[32] = "", logit[32], prob[32], w[16], h[16];
            char hit[4] = "", dist[32] = "", mass[32] = "", caption[600];
            const char *lab = job_cell(&ts, j, "label", NULL);
            if (p) {
                snprintf(rank, sizeof rank, "%d", p->rank);
                snprintf(label, sizeof label, "%d", p->label);
                fmt_num(thr, sizeof thr, p->threshold, "%.9g");
            } else {
                snprintf(label, sizeof label, "%s", lab);
            }
            fmt_num(score, sizeof score, p ? p->score : r->prob, "%.9g");
            fmt_num(logit, sizeof logit, r->logit, "%.9g");
            fmt_num(prob, sizeof prob, r->prob, "%.9g");
            snprintf(w, sizeof w, "%d", r->files.width);
            snprintf(h, sizeof h, "%d", r->files.height);
            if (r->has_region) {
                snprintf(hit, sizeof hit, "%d", r->loc.hit);
                fmt_num(dist, sizeof dist, r->loc.peak_distance, "%.6g");
                fmt_num(mass, sizeof mass, r->loc.mass_inside, "%.6g");
            }
            char base[160];
            make_stem(j->id, base, sizeof base);
            char locs[96] = "";
            if (r->has_region)
                snprintf(locs, sizeof locs, ", peak %s the free air, %.1f%% of the map inside",
                         r->loc.hit ? "on" : "off", isnan(r->loc.mass_inside) ? 0.0 : 100 * r->loc.mass_inside);
            if (p)
                snprintf(caption, sizeof caption, "%s %d: %s, score %.3f, label %d%s", cam_category_name(p->category),
                         p->rank, base, p->score, p->label, locs);
            else
                snprintf(caption, sizeof caption, "%s: p = %.3f%s%s%s", base, r->prob, lab[0] ? ", label " : "", lab,
                         locs);
            const char *cells[32] = {r->files.overlay, caption, j->id, j->file, p ? cam_category_name(p->category) : "",
                                     rank, score, label, thr, logit, prob, cam_model_layer(m),
                                     cam_method_name(method), r->files.map_npy, r->files.map_png, r->files.map_json, w,
                                     h, r->has_region ? r->region : "", hit, dist, mass};
            int nc = 22;
            for (int g = 0; g < n_groups; g++) cells[nc++] = r->groups[g];
            csv_write_row(f, nc, cells);
        }
    }
    if (ferror(f) | fclose(f) || rename(tmp, path) != 0) {
        fprintf(stderr, "freeair cam: %s: write failed\n", path);
        remove(tmp);
        goto done;
    }

    /* localisation.json */
    int n_rec = 0;
    for (int i = 0; i < js.n; i++) {
        if (!res[i].ok) continue;
        const job *j = &js.v[i];
        const cam_pick *p = j->pick >= 0 ? &picks[j->pick] : NULL;
        cam_record *c = &recs[n_rec++];
        c->id = j->id;
        c->overlay = res[i].files.overlay;
        c->category = p ? cam_category_name(p->category) : "";
        c->score = p ? p->score : res[i].prob;
        c->has_region = res[i].has_region;
        c->region = res[i].region;
        c->loc = res[i].loc;
        c->groups = res[i].groups;
    }
    const char *mname = name;
    if (!mname && predictions && ts.n) {
        const csv_table *pt = &ts.v[0].t;
        int cm = csv_column(pt, "model");
        if (cm >= 0 && n_picks) mname = csv_cell(pt, picks[0].row, cm);
    }
    if (!mname || !mname[0]) mname = cam_model_arch(m);
    snprintf(path, sizeof path, "%s/localisation.json", out_dir);
    if ((st = cam_write_localisation_json(path, mname, m, method, tolerance, n_groups, gcols, recs, n_rec, &err)) !=
        FA_OK) {
        cli_fail("cam", &err);
        goto done;
    }
    if (!quiet) {
        int nl = 0, hits = 0;
        for (int i = 0; i < n_rec; i++)
            if (recs[i].has_region) nl++, hits += recs[i].loc.hit;
        fprintf(stderr, "freeair cam: %d of %d image(s) explained with %s on %s into %s", n_rec, js.n,
                cam_method_name(method), cam_model_layer(m), out_dir);
        if (nl) fprintf(stderr, "; pointing game %d/%d", hits, nl);
        fputc('\n', stderr);
    }
    rc = failures ? 1 : 0;
    goto done;
oom:
    fprintf(stderr, "freeair cam: out of memory\n");
done:
    cam_model_close(m);
    free(res);
    free(recs);
    free(picks);
    free(groups_buf);
    jobs_free(&js);
    tables_free(&ts);
out:
    free(inputs);
    return rc;
}
