/* report.c - self-contained HTML study report and its JSON twin (see
 * report.h). The HTML has no scripts and a Content-Security-Policy that
 * blocks every network load, so it renders the same offline, in a browser
 * and when archived with a study. */
#include "eval/report.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/csv.h"
#include "core/digest.h"
#include "eval/jsonv.h"
#include "eval/jsonw.h"
#include "eval/strmap.h"
#include "eval/svg.h"

#define CAM_MAX_BYTES ((size_t)8 << 20)
#define CONFIG_MAX_BYTES ((size_t)64 << 10)
#define MAX_SPLITS 16

void report_options_default(report_options *o) {
    memset(o, 0, sizeof *o);
    o->max_cam = 48;
    o->max_errors = 12;
}

typedef struct excl {
    char *reason;
    size_t n;
} excl;

typedef struct split_comp {
    char *split;
    size_t images, patients, pos, neg, unknown;
} split_comp;

typedef struct stratum {
    char *column;
    char **value;
    size_t n_value;
    size_t *count; /* [split][value] */
} stratum;

typedef struct cam_img {
    char *file, *caption;
    char *b64;
} cam_img;

typedef struct text_file {
    char *name, *text;
    int truncated;
} text_file;

typedef struct report_ctx {
    const report_options *o;
    char metrics_path[4096];
    char metrics_sha[65];
    jsonv m;
    jsonv cohort;
    int have_cohort;
    int have_manifest;
    size_t n_manifest, n_included;
    excl *ex;
    size_t n_ex;
    int split_from_manifest;
    split_comp sp[MAX_SPLITS];
    size_t n_sp;
    size_t patients_multi_split;
    stratum *st;
    size_t n_st;
    csv_table miss;
    int have_miss;
    cam_img *cam;
    size_t n_cam, cam_skipped;
    jsonv loc; /* cam/localisation.json (freeair.cam.localisation/1) */
    int have_loc;
    text_file *cfg;
    size_t n_cfg;
} report_ctx;

/* ---- small helpers ---------------------------------------------------- */

static int path_join(char *buf, size_t size, const char *dir, const char *name) {
    return snprintf(buf, size, "%s/%s", dir, name) < (int)size;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Read a whole (small) file; *len gets its size. Caller frees. */
static char *slurp(const char *path, size_t max, size_t *len, int *truncated) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    size_t n = fread(buf, 1, max, f);
    if (truncated) *truncated = n == max && fgetc(f) != EOF;
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *base64(const unsigned char *d, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out_len;
    if (!fa_size_mul((n + 2) / 3, 4, &out_len)) return NULL;
    char *o = malloc(out_len + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *p++ = tab[(v >> 18) & 63];
        *p++ = tab[(v >> 12) & 63];
        *p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *p++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *p = '\0';
    return o;
}

static const jsonv *J(const jsonv *v, const char *path) { return jsonv_path(v, path); }
static double N(const jsonv *v, const char *path) { return jsonv_number(jsonv_path(v, path)); }
static const char *S(const jsonv *v, const char *path, const char *dflt) {
    return jsonv_string(jsonv_path(v, path), dflt);
}

static void esc(FILE *f, const char *s) { svg_escape(f, s); }

static const char *display_value(const char *v) { return v && v[0] ? v : "(missing)"; }

/* Table cell "0.916" + "0.873–0.946" beneath, or an em dash with the
 * reason as tooltip. */
static void td_ci(FILE *f, double est, const jsonv *ci, const char *reason) {
    if (isnan(est)) {
        fputs("<td class=\"n na\"", f);
        if (reason) {
            fputs(" title=\"", f);
            esc(f, reason);
            fputc('"', f);
        }
        fputs(">&mdash;</td>", f);
        return;
    }
    fprintf(f, "<td class=\"n\">%.3f", est);
    double lo = jsonv_number(jsonv_at(ci, 0)), hi = jsonv_number(jsonv_at(ci, 1));
    /* An en dash between signed numbers reads as a minus: say "to". */
    if (!isnan(lo) && !isnan(hi))
        fprintf(f, lo < 0 ? "<br><span class=\"ci\">%.3f to %.3f</span>" : "<br><span class=\"ci\">%.3f&ndash;%.3f</span>",
                lo, hi);
    fputs("</td>", f);
}

static void td_metric(FILE *f, const jsonv *op, const char *name) {
    const jsonv *m = jsonv_get(op, name);
    td_ci(f, jsonv_number(jsonv_get(m, "estimate")), jsonv_get(m, "ci"), jsonv_string(jsonv_get(op, "reason"), NULL));
}

static void td_num(FILE *f, double v, const char *fmt) {
    if (isnan(v)) {
        fputs("<td class=\"n na\">&mdash;</td>", f);
        return;
    }
    fputs("<td class=\"n\">", f);
    fprintf(f, fmt, v);
    fputs("</td>", f);
}

static void td_int(FILE *f, const jsonv *v) {
    double x = jsonv_number(v);
    if (isnan(x))
        fputs("<td class=\"n na\">&mdash;</td>", f);
    else
        fprintf(f, "<td class=\"n\">%.0f</td>", x);
}

static void td_text(FILE *f, const char *s) {
    fputs("<td>", f);
    esc(f, s);
    fputs("</td>", f);
}

static void fmt_p(char *buf, size_t n, double p) {
    if (isnan(p))
        snprintf(buf, n, "&mdash;");
    else if (p < 0.001)
        snprintf(buf, n, "&lt;0.001");
    else
        snprintf(buf, n, "%.3f", p);
}

/* Operating point of `rule` in a cell. */
static const jsonv *cell_op(const jsonv *cell, const char *rule) {
    const jsonv *ops = jsonv_get(cell, "operating_points");
    for (size_t i = 0; i < jsonv_len(ops); i++)
        if (!strcmp(S(jsonv_at(ops, i), "rule", ""), rule)) return jsonv_at(ops, i);
    return NULL;
}

static const jsonv *model_subgroup(const jsonv *model, const char *column, const char *value) {
    const jsonv *subs = jsonv_get(model, "subgroups");
    for (size_t i = 0; i < jsonv_len(subs); i++) {
        const jsonv *s = jsonv_at(subs, i);
        if (!strcmp(S(s, "column", ""), column) && !strcmp(S(s, "value", ""), value)) return s;
    }
    return NULL;
}

/* ---- loading the run directory --------------------------------------- */

static void ctx_free(report_ctx *c) {
    jsonv_free(&c->m);
    jsonv_free(&c->cohort);
    for (size_t i = 0; i < c->n_ex; i++) free(c->ex[i].reason);
    free(c->ex);
    for (size_t i = 0; i < c->n_sp; i++) free(c->sp[i].split);
    for (size_t i = 0; i < c->n_st; i++) {
        free(c->st[i].column);
        for (size_t v = 0; v < c->st[i].n_value; v++) free(c->st[i].value[v]);
        free(c->st[i].value);
        free(c->st[i].count);
    }
    free(c->st);
    if (c->have_miss) csv_free(&c->miss);
    for (size_t i = 0; i < c->n_cam; i++) {
        free(c->cam[i].file);
        free(c->cam[i].caption);
        free(c->cam[i].b64);
    }
    free(c->cam);
    if (c->have_loc) jsonv_free(&c->loc);
    for (size_t i = 0; i < c->n_cfg; i++) {
        free(c->cfg[i].name);
        free(c->cfg[i].text);
    }
    free(c->cfg);
}

static int cmp_cstr(const void *a, const void *b);

/* train, validation, test, then anything else alphabetically. */
static int split_rank(const char *s) {
    if (!strcasecmp(s, "train")) return 0;
    if (!strcasecmp(s, "val") || !strcasecmp(s, "valid") || !strcasecmp(s, "validation")) return 1;
    if (!strcasecmp(s, "test")) return 2;
    return 3;
}

static int split_cmp(const void *a, const void *b) {
    const split_comp *x = a, *y = b;
    int rx = split_rank(x->split ? x->split : ""), ry = split_rank(y->split ? y->split : "");
    if (rx != ry) return rx < ry ? -1 : 1;
    return strcmp(x->split ? x->split : "", y->split ? y->split : "");
}

/* Most frequent exclusion first. */
static int excl_cmp(const void *a, const void *b) {
    const excl *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return strcmp(x->reason ? x->reason : "", y->reason ? y->reason : "");
}

static int is_included(const char *status) {
    return !status[0] || !strcasecmp(status, "ok") || !strcasecmp(status, "included");
}

static fa_status load_manifest(report_ctx *c, fa_error *err) {
    char path[4200];
    if (c->o->manifest) {
        snprintf(path, sizeof path, "%s", c->o->manifest);
        /* Named explicitly: it must exist. */
        if (!file_exists(path)) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: no such file", path);
    } else {
        path_join(path, sizeof path, c->o->run_dir, "manifest.csv");
        if (!file_exists(path)) return FA_OK;
    }
    csv_table t;
    fa_status st = csv_read_file(path, &t, err);
    if (st != FA_OK) return st;
    c->have_manifest = 1;
    c->n_manifest = (size_t)t.n_rows;
    int c_status = csv_column(&t, "status"), c_reason = csv_column(&t, "reason");
    if (c_reason < 0) c_reason = csv_column(&t, "exclusion_reason");
    int c_split = csv_column(&t, "split"), c_pat = csv_column(&t, "patient_id");
    int c_label = csv_column(&t, "label");
    strmap reasons;
    if (!strmap_init(&reasons, 16)) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_NOMEM, "report: out of memory");
    }
    c->ex = fa_calloc_array((size_t)t.n_rows + 1, sizeof *c->ex);
    if (!c->ex) {
        strmap_free(&reasons);
        csv_free(&t);
        return fa_error_set(err, FA_ERR_NOMEM, "report: out of memory");
    }
    /* Patients per split, to count those that span two splits. */
    strmap pat_split, multi;
    strmap_init(&pat_split, (size_t)t.n_rows);
    strmap_init(&multi, 16);
    strmap split_pats[MAX_SPLITS];
    for (int i = 0; i < MAX_SPLITS; i++) strmap_init(&split_pats[i], 16);
    int overflow = 0;
    for (int r = 0; r < t.n_rows; r++) {
        const char *status = csv_cell(&t, r, c_status);
        if (!is_included(status)) {
            /* freeair scan writes reason = "code: detail; code: detail"
             * (errors first): group by status and the first code, so the
             * flow counts add up and per-file details do not split groups. */
            char why[160];
            const char *reason = csv_cell(&t, r, c_reason);
            size_t code_len = strcspn(reason, ":;");
            while (code_len && reason[code_len - 1] == ' ') code_len--;
            if (code_len)
                snprintf(why, sizeof why, "%.40s: %.*s", status, (int)(code_len > 100 ? 100 : code_len), reason);
            else
                snprintf(why, sizeof why, "%.150s", status);
            size_t k;
            if (!strmap_get(&reasons, why, &k)) {
                k = c->n_ex++;
                c->ex[k].reason = strdup(why);
                /* key must outlive the map: use the copy */
                if (c->ex[k].reason) strmap_put(&reasons, c->ex[k].reason, k, NULL);
            }
            c->ex[k].n++;
            continue;
        }
        c->n_included++;
        if (c_split < 0) continue;
        const char *split = csv_cell(&t, r, c_split);
        size_t s = 0;
        while (s < c->n_sp && strcmp(c->sp[s].split, split)) s++;
        if (s == c->n_sp) {
            if (c->n_sp == MAX_SPLITS) {
                overflow = 1;
                continue;
            }
            c->sp[c->n_sp++].split = strdup(split);
        }
        split_comp *sc = &c->sp[s];
        sc->images++;
        const char *lab = csv_cell(&t, r, c_label);
        if (!strcmp(lab, "1") || !strcasecmp(lab, "true") || !strcasecmp(lab, "yes") || !strcasecmp(lab, "pos"))
            sc->pos++;
        else if (!strcmp(lab, "0") || !strcasecmp(lab, "false") || !strcasecmp(lab, "no") || !strcasecmp(lab, "neg"))
            sc->neg++;
        else
            sc->unknown++;
        const char *pid = c_pat >= 0 ? csv_cell(&t, r, c_pat) : "";
        if (pid[0]) {
            /* Keys are borrowed from t, which lives until the end. */
            if (strmap_put(&split_pats[s], pid, 0, NULL) == 1) sc->patients++;
            size_t prev;
            if (strmap_put(&pat_split, pid, s, &prev) == 0 && prev != s &&
                strmap_put(&multi, pid, 0, NULL) == 1)
                c->patients_multi_split++;
        }
    }
    c->split_from_manifest = c->n_sp > 0;
    qsort(c->sp, c->n_sp, sizeof c->sp[0], split_cmp);
    qsort(c->ex, c->n_ex, sizeof c->ex[0], excl_cmp);
    /* Strata: the evaluation's group-by columns, per split. */
    const jsonv *gb = J(&c->m, "options.group_by");
    if (c->n_sp && jsonv_len(gb)) {
        c->st = fa_calloc_array(jsonv_len(gb), sizeof *c->st);
        for (size_t g = 0; c->st && g < jsonv_len(gb); g++) {
            const char *col = jsonv_string(jsonv_at(gb, g), "");
            int cc = csv_column(&t, col);
            if (cc < 0) continue;
            stratum *sg = &c->st[c->n_st];
            strmap vals;
            strmap_init(&vals, 16);
            sg->value = fa_calloc_array((size_t)t.n_rows + 1, sizeof *sg->value);
            sg->count = fa_calloc_array(((size_t)t.n_rows + 1) * MAX_SPLITS, sizeof *sg->count);
            sg->column = strdup(col);
            if (!sg->value || !sg->count || !sg->column) {
                strmap_free(&vals);
                free(sg->value);
                free(sg->count);
                free(sg->column);
                memset(sg, 0, sizeof *sg);
                continue;
            }
            c->n_st++;
            for (int r = 0; r < t.n_rows; r++) {
                if (!is_included(csv_cell(&t, r, c_status))) continue;
                const char *split = csv_cell(&t, r, c_split);
                size_t s = 0;
                while (s < c->n_sp && strcmp(c->sp[s].split, split)) s++;
                if (s == c->n_sp) continue;
                const char *v = csv_cell(&t, r, cc);
                size_t k;
                if (!strmap_get(&vals, v, &k)) {
                    k = sg->n_value++;
                    sg->value[k] = strdup(v);
                    if (sg->value[k]) strmap_put(&vals, sg->value[k], k, NULL);
                }
                sg->count[s * ((size_t)t.n_rows + 1) + k]++;
            }
            /* Values in sorted order; compact the counts to [split][n_value]. */
            size_t stride = (size_t)t.n_rows + 1, *order = fa_malloc_array(sg->n_value + 1, sizeof *order);
            char **sorted = fa_malloc_array(sg->n_value + 1, sizeof *sorted);
            size_t *packed = fa_calloc_array(sg->n_value * c->n_sp + 1, sizeof *packed);
            if (order && sorted && packed) {
                for (size_t k = 0; k < sg->n_value; k++) sorted[k] = sg->value[k];
                qsort(sorted, sg->n_value, sizeof *sorted, cmp_cstr);
                for (size_t k = 0; k < sg->n_value; k++) {
                    strmap_get(&vals, sorted[k], &order[k]);
                    for (size_t s = 0; s < c->n_sp; s++)
                        packed[s * sg->n_value + k] = sg->count[s * stride + order[k]];
                }
                memcpy(sg->value, sorted, sg->n_value * sizeof *sorted);
                free(sg->count);
                sg->count = packed;
                packed = NULL;
            } else {
                sg->n_value = 0; /* out of memory: show no strata rather than wrong ones */
            }
            free(order);
            free(sorted);
            free(packed);
            strmap_free(&vals);
        }
    }
    for (int i = 0; i < MAX_SPLITS; i++) strmap_free(&split_pats[i]);
    strmap_free(&pat_split);
    strmap_free(&multi);
    strmap_free(&reasons);
    csv_free(&t);
    if (overflow)
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: more than %d distinct split values", path,
                            MAX_SPLITS);
    return FA_OK;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcasecmp(s + n - k, suf);
}

static fa_status load_cam(report_ctx *c, fa_error *err) {
    char dir[4200];
    if (c->o->cam_dir)
        snprintf(dir, sizeof dir, "%s", c->o->cam_dir);
    else
        path_join(dir, sizeof dir, c->o->run_dir, "cam");
    DIR *d = opendir(dir);
    if (!d) {
        if (c->o->cam_dir) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: %s", dir, strerror(errno));
        return FA_OK;
    }
    /* Localisation scores of `freeair cam` (docs/gradcam.md): a file that is
     * there but unreadable is an error, not a silently missing table. */
    char lpath[4300];
    path_join(lpath, sizeof lpath, dir, "localisation.json");
    if (file_exists(lpath)) {
        fa_status st = jsonv_read_file(lpath, &c->loc, err);
        if (st != FA_OK) {
            closedir(d);
            return st;
        }
        c->have_loc = 1;
        if (strcmp(S(&c->loc, "schema", ""), "freeair.cam.localisation/1") || !J(&c->loc, "models")) {
            closedir(d);
            return fa_error_set(err, FA_ERR_FORMAT,
                                "%s: not a freeair localisation file (schema 'freeair.cam.localisation/1' with models)",
                                lpath);
        }
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".png")) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) break;
            names = nn;
            cap = nc;
        }
        if ((names[n] = strdup(e->d_name))) n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_cstr);
    /* Optional captions. */
    csv_table idx;
    int have_idx = 0, c_file = -1, c_cap = -1;
    char ipath[4300];
    path_join(ipath, sizeof ipath, dir, "index.csv");
    if (file_exists(ipath)) {
        fa_status st = csv_read_file(ipath, &idx, err);
        if (st != FA_OK) {
            for (size_t i = 0; i < n; i++) free(names[i]);
            free(names);
            return st;
        }
        have_idx = 1;
        c_file = csv_column(&idx, "file");
        c_cap = csv_column(&idx, "caption");
    }
    c->cam = fa_calloc_array(n ? n : 1, sizeof *c->cam);
    for (size_t i = 0; c->cam && i < n; i++) {
        if ((int)c->n_cam >= c->o->max_cam) {
            c->cam_skipped++;
            continue;
        }
        char p[4600];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        size_t len = 0;
        int trunc = 0;
        char *data = slurp(p, CAM_MAX_BYTES, &len, &trunc);
        if (!data || trunc || len < 8 || memcmp(data, "\x89PNG\r\n\x1a\n", 8)) {
            /* Not a PNG or too large: leave it out rather than break the page. */
            free(data);
            c->cam_skipped++;
            continue;
        }
        cam_img *ci = &c->cam[c->n_cam];
        ci->b64 = base64((const unsigned char *)data, len);
        free(data);
        ci->file = strdup(names[i]);
        const char *caption = names[i];
        for (int r = 0; have_idx && c_file >= 0 && r < idx.n_rows; r++)
            if (!strcmp(csv_cell(&idx, r, c_file), names[i]) && csv_cell(&idx, r, c_cap)[0])
                caption = csv_cell(&idx, r, c_cap);
        ci->caption = strdup(caption);
        if (!ci->b64 || !ci->file || !ci->caption) {
            free(ci->b64);
            free(ci->file);
            free(ci->caption);
            memset(ci, 0, sizeof *ci);
            c->cam_skipped++;
            continue;
        }
        c->n_cam++;
    }
    if (have_idx) csv_free(&idx);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return FA_OK;
}

static void load_configs(report_ctx *c) {
    DIR *d = opendir(c->o->run_dir);
    if (!d) return;
    static const char *ext[] = {".json", ".txt", ".ini", ".toml", ".cfg", ".yaml", ".yml"};
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    while ((e = readdir(d)) && n < 8) {
        if (strncmp(e->d_name, "config", 6)) continue;
        int ok = 0;
        for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++) ok |= has_suffix(e->d_name, ext[k]);
        if (!ok) continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn) break;
        names = nn;
        if ((names[n] = strdup(e->d_name))) n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_cstr);
    c->cfg = fa_calloc_array(n ? n : 1, sizeof *c->cfg);
    for (size_t i = 0; i < n; i++) {
        char p[4400];
        path_join(p, sizeof p, c->o->run_dir, names[i]);
        size_t len;
        int trunc = 0;
        char *text = c->cfg ? slurp(p, CONFIG_MAX_BYTES, &len, &trunc) : NULL;
        if (text) {
            c->cfg[c->n_cfg].name = names[i];
            c->cfg[c->n_cfg].text = text;
            c->cfg[c->n_cfg].truncated = trunc;
            c->n_cfg++;
            names[i] = NULL;
        }
        free(names[i]);
    }
    free(names);
}

static fa_status load_run(report_ctx *c, fa_error *err) {
    const char *dir = c->o->run_dir;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return fa_error_set(err, errno == ENOENT ? FA_ERR_NOT_FOUND : FA_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return fa_error_set(err, FA_ERR_ARG, "%s: not a directory", dir);
    if (!path_join(c->metrics_path, sizeof c->metrics_path, dir, "metrics.json"))
        return fa_error_set(err, FA_ERR_ARG, "%s: path too long", dir);
    if (!file_exists(c->metrics_path))
        return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: no metrics.json (run `freeair eval ... -o %s` first)",
                            dir, dir);
    fa_status st = jsonv_read_file(c->metrics_path, &c->m, err);
    if (st != FA_OK) return st;
    if (strcmp(S(&c->m, "schema", ""), "freeair.metrics/1") || !jsonv_len(J(&c->m, "models")))
        return fa_error_set(err, FA_ERR_FORMAT,
                            "%s: not a freeair metrics file (schema 'freeair.metrics/1' with models)",
                            c->metrics_path);
    for (size_t i = 0; i < jsonv_len(J(&c->m, "models")); i++) {
        const jsonv *mod = jsonv_at(J(&c->m, "models"), i);
        if (!jsonv_get(mod, "overall") || !jsonv_get(mod, "name"))
            return fa_error_set(err, FA_ERR_FORMAT, "%s: model %zu lacks 'name' or 'overall'", c->metrics_path, i);
    }
    if ((st = digest_sha256_file(c->metrics_path, c->metrics_sha, err)) != FA_OK) return st;
    char path[4200];
    if (c->o->cohort)
        snprintf(path, sizeof path, "%s", c->o->cohort);
    else
        path_join(path, sizeof path, dir, "cohort.json");
    if (c->o->cohort && !file_exists(path))
        return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: no such file", path);
    if (file_exists(path)) {
        if ((st = jsonv_read_file(path, &c->cohort, err)) != FA_OK) return st;
        if (c->cohort.type != JSONV_OBJ)
            return fa_error_set(err, FA_ERR_FORMAT, "%s: expected a JSON object", path);
        c->have_cohort = 1;
    }
    if ((st = load_manifest(c, err)) != FA_OK) return st;
    path_join(path, sizeof path, dir, "misclassified.csv");
    if (file_exists(path)) {
        if ((st = csv_read_file(path, &c->miss, err)) != FA_OK) return st;
        c->have_miss = 1;
    }
    if ((st = load_cam(c, err)) != FA_OK) return st;
    load_configs(c);
    /* Without a manifest, split composition comes from metrics.json. */
    if (!c->split_from_manifest) {
        const jsonv *m0 = jsonv_at(J(&c->m, "models"), 0);
        if (N(m0, "validation.n") > 0) {
            split_comp *s = &c->sp[c->n_sp++];
            s->split = strdup(S(&c->m, "options.val_split", "val"));
            s->images = (size_t)N(m0, "validation.n");
            s->patients = (size_t)N(m0, "validation.n_patients");
            s->pos = (size_t)N(m0, "validation.n_pos");
            s->neg = (size_t)N(m0, "validation.n_neg");
        }
        split_comp *s = &c->sp[c->n_sp++];
        s->split = strdup(S(&c->m, "options.test_split", "test"));
        s->images = (size_t)N(m0, "overall.n");
        s->patients = (size_t)N(m0, "overall.n_patients");
        s->pos = (size_t)N(m0, "overall.n_pos");
        s->neg = (size_t)N(m0, "overall.n_neg");
    }
    return FA_OK;
}

/* ---- HTML ------------------------------------------------------------- */

static const char *CSS =
    ":root{--fg:#1b1f24;--muted:#5b6470;--line:#d9dee4;--accent:#0b5cad}"
    "*{box-sizing:border-box}"
    "body{margin:0;font:14px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;"
    "color:var(--fg);background:#f3f5f7}"
    "header.top{background:#0f2a43;color:#fff;padding:22px 40px 18px}"
    "header.top h1{margin:0;font-size:22px;font-weight:600;letter-spacing:.2px}"
    "header.top .sub{color:#c4d3e2;font-size:13px;margin-top:4px}"
    "nav{background:#163a5c;padding:6px 40px;font-size:12.5px}"
    "nav a{color:#dce8f4;text-decoration:none;margin-right:14px;white-space:nowrap}"
    "main{max-width:1200px;margin:0 auto;padding:8px 28px 60px}"
    "section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 22px 18px;margin:16px 0}"
    "h2{font-size:17px;margin:0 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line);color:#0f2a43}"
    "h3{font-size:14px;margin:16px 0 6px;color:#233}"
    "p{margin:6px 0}"
    ".muted,figcaption,.note{color:var(--muted);font-size:12.5px}"
    "table{border-collapse:collapse;width:auto;min-width:55%;font-size:13px;margin:6px 0 12px}"
    "table.w{width:100%}.grid table{min-width:0}"
    "th,td{padding:5px 8px;border-bottom:1px solid #e7eaee;text-align:left;vertical-align:top}"
    "th{background:#f5f7f9;font-weight:600;color:#2b3440;white-space:nowrap}th.n{text-align:right}"
    ".sw{display:inline-block;width:14px;height:10px;border-radius:2px;margin:0 4px 0 10px;vertical-align:middle}"
    "tbody tr:hover{background:#fafbfc}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.na{color:#9aa3ad;text-align:center}"
    ".ci{color:var(--muted);font-size:11.5px}"
    ".banner{border-radius:8px;padding:14px 18px;margin:16px 0}"
    ".banner strong{font-size:15px}"
    ".synthetic{background:#fdecea;border:2px solid #a4161a;color:#6d0f12}"
    ".warn{background:#fff5e6;border:1px solid #e9a23b;color:#6b3d00}"
    ".ok{color:#1d6b2f}"
    ".cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:4px}"
    ".card{flex:1 1 150px;border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fafbfc}"
    ".card .v{font-size:21px;font-weight:600;color:#0f2a43}"
    ".card .k{color:var(--muted);font-size:12px}"
    ".grid{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}"
    "figure{margin:4px 0}"
    "svg.chart{background:#fff;max-width:100%;height:auto}"
    "svg.chart text{font-size:11px;fill:#333}"
    "svg.chart .ct{font-size:12.5px;font-weight:600;text-anchor:middle}"
    "svg.chart .tx{text-anchor:middle;fill:#555}"
    "svg.chart .ty{text-anchor:end;fill:#555}"
    "svg.chart .al{text-anchor:middle;font-size:11.5px;fill:#222}"
    "svg.chart .pa{fill:#fcfcfd;stroke:#9aa3ad}"
    "svg.chart .gr{stroke:#e6e9ed}"
    "svg.chart .lg rect{fill:#fff;fill-opacity:.92;stroke:#ccd2d8}"
    ".flow{display:flex;flex-direction:column;align-items:flex-start;gap:0}"
    ".gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px}"
    ".gallery img{width:100%;height:auto;border-radius:4px;border:1px solid var(--line);background:#000}"
    "pre{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;font-size:12px;max-height:360px}"
    "dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:6px 0;font-size:13px}"
    "dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-all}"
    "code{font-size:12px;background:#f2f4f6;padding:1px 4px;border-radius:3px}"
    "footer{color:var(--muted);font-size:12px;text-align:center;margin:20px 0}"
    "@media print{body{background:#fff}section{break-inside:avoid;border:none}nav{display:none}}";

static const char *primary_rule(const report_ctx *c) { return S(&c->m, "options.primary_rule", "youden"); }

static void html_banners(FILE *f, const report_ctx *c) {
    if (c->have_cohort && jsonv_is_true(jsonv_get(&c->cohort, "synthetic"))) {
        fputs("<div class=\"banner synthetic\" id=\"synthetic-banner\"><strong>Synthetic cohort.</strong> "
              "Every image in this study was generated by a program",
              f);
        const char *gen = S(&c->cohort, "generator", NULL);
        if (gen) {
            fputs(" (<code>", f);
            esc(f, gen);
            fputs("</code>)", f);
        }
        fputs("; no patient data was used. The numbers below show that the pipeline works end to end; "
              "they say nothing about clinical performance.",
              f);
        const char *desc = S(&c->cohort, "description", NULL);
        if (desc) {
            fputs("<br>", f);
            esc(f, desc);
        }
        fputs("</div>\n", f);
    }
    if (!jsonv_is_true(J(&c->m, "thresholds_locked")))
        fputs("<div class=\"banner warn\"><strong>Operating points are not locked.</strong> There were no "
              "validation rows, so data-driven thresholds were chosen on the test split itself; their "
              "sensitivity and specificity are optimistic.</div>\n",
              f);
    const jsonv *w = J(&c->m, "warnings");
    if (jsonv_len(w)) {
        fputs("<div class=\"banner warn\"><strong>Warnings from the evaluation</strong><ul>", f);
        for (size_t i = 0; i < jsonv_len(w); i++) {
            fputs("<li>", f);
            esc(f, jsonv_string(jsonv_at(w, i), ""));
            fputs("</li>", f);
        }
        fputs("</ul></div>\n", f);
    }
}

static void html_summary(FILE *f, const report_ctx *c) {
    const jsonv *models = J(&c->m, "models");
    const jsonv *m0 = jsonv_at(models, 0);
    const char *best = NULL;
    double best_auc = -1;
    for (size_t i = 0; i < jsonv_len(models); i++) {
        double a = N(jsonv_at(models, i), "overall.auc.estimate");
        if (!isnan(a) && a > best_auc) {
            best_auc = a;
            best = S(jsonv_at(models, i), "name", "?");
        }
    }
    fputs("<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">", f);
    fprintf(f, "<div class=\"card\"><div class=\"v\">%.0f</div><div class=\"k\">test images</div></div>",
            N(m0, "overall.n"));
    fprintf(f, "<div class=\"card\"><div class=\"v\">%.0f</div><div class=\"k\">test patients</div></div>",
            N(m0, "overall.n_patients"));
    fprintf(f, "<div class=\"card\"><div class=\"v\">%.0f / %.0f</div><div class=\"k\">positive / negative</div></div>",
            N(m0, "overall.n_pos"), N(m0, "overall.n_neg"));
    fprintf(f, "<div class=\"card\"><div class=\"v\">%zu</div><div class=\"k\">model%s</div></div>",
            jsonv_len(models), jsonv_len(models) == 1 ? "" : "s");
    if (best) {
        fprintf(f, "<div class=\"card\"><div class=\"v\">%.3f</div><div class=\"k\">best AUC (", best_auc);
        esc(f, best);
        fputs(")</div></div>", f);
    }
    fputs("</div>\n<p class=\"note\">Decisions use the operating point <code>", f);
    esc(f, primary_rule(c));
    fprintf(f, "</code>%s. Intervals are %.0f%% confidence intervals.</p></section>\n",
            jsonv_is_true(J(&c->m, "thresholds_locked")) ? ", locked on the validation split before the test split was scored"
                                                       : " (not locked)",
            100 * N(&c->m, "options.confidence_level"));
}

static void flow_box(FILE *f, int x, int y, int w, int h, const char *fill, const char *line1, const char *line2) {
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"6\" fill=\"%s\" stroke=\"#8a96a3\"/>", x, y, w,
            h, fill);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12.5\" font-weight=\"600\">", x + w / 2,
            y + (line2 ? 20 : h / 2 + 4));
    esc(f, line1);
    fputs("</text>", f);
    if (line2) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11.5\" fill=\"#444\">", x + w / 2, y + 37);
        esc(f, line2);
        fputs("</text>", f);
    }
    fputc('\n', f);
}

static void html_cohort(FILE *f, const report_ctx *c) {
    fputs("<section id=\"cohort\"><h2>Cohort and flow</h2>\n", f);
    if (c->have_cohort) {
        fputs("<dl class=\"kv\">", f);
        for (size_t i = 0; i < c->cohort.n; i++) {
            const jsonv *v = &c->cohort.item[i];
            fputs("<dt>", f);
            esc(f, c->cohort.key[i]);
            fputs("</dt><dd>", f);
            if (v->type == JSONV_STR) esc(f, v->str);
            else if (v->type == JSONV_BOOL) fputs(v->b ? "yes" : "no", f);
            else if (v->type == JSONV_NUM) fprintf(f, "%g", v->num);
            else {
                char *buf = NULL;
                size_t len = 0;
                FILE *mf = open_memstream(&buf, &len);
                if (mf) {
                    jsonv_write(mf, v, 0);
                    fclose(mf);
                    fputs("<code>", f);
                    esc(f, buf);
                    fputs("</code>", f);
                }
                free(buf);
            }
            fputs("</dd>", f);
        }
        fputs("</dl>\n", f);
    }
    if (!c->have_manifest) {
        fputs("<p class=\"muted\">No <code>manifest.csv</code> in the run directory: the flow of images from "
              "archive to analysis (exclusions and their reasons) is not available. Counts below come from "
              "<code>metrics.json</code>.</p></section>\n",
              f);
        return;
    }
    /* Flow diagram: manifest -> excluded (with reasons) -> included -> splits. */
    size_t n_reason_lines = c->n_ex < 6 ? c->n_ex : 6;
    int ex_h = 34 + (int)n_reason_lines * 16 + (c->n_ex > n_reason_lines ? 16 : 0);
    int y_inc = 130, y_sp = y_inc + 100;
    if (y_sp < 62 + ex_h + 24) y_sp = 62 + ex_h + 24;
    int h = c->split_from_manifest ? y_sp + 58 : y_inc + 50;
    fprintf(f, "<svg class=\"chart\" id=\"flow\" viewBox=\"0 0 760 %d\" width=\"760\" height=\"%d\" role=\"img\" "
               "aria-label=\"Cohort flow\">\n", h, h);
    fputs("<defs><marker id=\"arr\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
          "orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6b7785\"/></marker></defs>\n", f);
    char l1[128], l2[128];
    snprintf(l1, sizeof l1, "%zu images in the manifest", c->n_manifest);
    flow_box(f, 40, 10, 260, 46, "#eef3f8", l1, "manifest.csv");
    snprintf(l1, sizeof l1, "%zu excluded", c->n_manifest - c->n_included);
    fprintf(f, "<rect x=\"380\" y=\"62\" width=\"350\" height=\"%d\" rx=\"6\" fill=\"#fff5f0\" stroke=\"#c98d74\"/>", ex_h);
    fputs("<text x=\"395\" y=\"84\" font-size=\"12.5\" font-weight=\"600\">", f);
    esc(f, l1);
    fputs("</text>\n", f);
    for (size_t i = 0; i < n_reason_lines; i++) {
        char line[300];
        snprintf(line, sizeof line, "%zu \xc3\x97 %.60s", c->ex[i].n, c->ex[i].reason);
        fprintf(f, "<text x=\"395\" y=\"%zu\" font-size=\"11.5\" fill=\"#553\">", 104 + 16 * i);
        esc(f, line);
        fputs("</text>\n", f);
    }
    if (c->n_ex > n_reason_lines)
        fprintf(f, "<text x=\"395\" y=\"%zu\" font-size=\"11.5\" fill=\"#553\">and %zu more reasons (table below)</text>",
                104 + 16 * n_reason_lines, c->n_ex - n_reason_lines);
    fprintf(f, "<line x1=\"170\" y1=\"56\" x2=\"170\" y2=\"%d\" stroke=\"#6b7785\" stroke-width=\"1.5\" "
               "marker-end=\"url(#arr)\"/><line x1=\"170\" y1=\"90\" x2=\"376\" y2=\"90\" stroke=\"#6b7785\" "
               "stroke-width=\"1.5\" marker-end=\"url(#arr)\"/>\n", y_inc - 2);
    snprintf(l1, sizeof l1, "%zu images included", c->n_included);
    flow_box(f, 40, y_inc, 260, 40, "#eef8f0", l1, NULL);
    if (c->split_from_manifest) {
        int bw = (int)(700 / c->n_sp) - 10;
        if (bw > 220) bw = 220;
        for (size_t s = 0; s < c->n_sp; s++) {
            int x = 40 + (int)s * (bw + 10);
            snprintf(l1, sizeof l1, "%.20s: %zu", c->sp[s].split[0] ? c->sp[s].split : "(none)", c->sp[s].images);
            snprintf(l2, sizeof l2, "%zu patients, %zu+ / %zu-", c->sp[s].patients, c->sp[s].pos, c->sp[s].neg);
            fprintf(f, "<line x1=\"170\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#6b7785\" stroke-width=\"1.2\" "
                       "marker-end=\"url(#arr)\"/>\n", y_inc + 40, x + bw / 2, y_sp - 2);
            flow_box(f, x, y_sp, bw, 48, "#f4f1fa", l1, l2);
        }
    }
    fputs("</svg>\n", f);
    if (c->n_ex) {
        fputs("<h3>Exclusions</h3><table id=\"exclusions\"><thead><tr><th>Reason</th><th class=\"n\">Images</th></tr></thead><tbody>", f);
        for (size_t i = 0; i < c->n_ex; i++) {
            fputs("<tr>", f);
            td_text(f, c->ex[i].reason);
            fprintf(f, "<td class=\"n\">%zu</td></tr>", c->ex[i].n);
        }
        fputs("</tbody></table>\n", f);
    }
    fputs("</section>\n", f);
}

static void html_splits(FILE *f, const report_ctx *c) {
    fputs("<section id=\"splits\"><h2>Split composition by patient</h2>\n", f);
    fprintf(f, "<p class=\"note\">Source: %s.</p>",
            c->split_from_manifest ? "<code>manifest.csv</code> (included images)" : "<code>metrics.json</code> (validation and test rows of the first model)");
    fputs("<table id=\"split-table\"><thead><tr><th>Split</th><th class=\"n\">Images</th><th class=\"n\">Patients</th>"
          "<th class=\"n\">Positive</th><th class=\"n\">Negative</th><th class=\"n\">Prevalence</th></tr></thead><tbody>", f);
    for (size_t s = 0; s < c->n_sp; s++) {
        const split_comp *sp = &c->sp[s];
        fputs("<tr>", f);
        td_text(f, display_value(sp->split));
        fprintf(f, "<td class=\"n\">%zu</td><td class=\"n\">%zu</td><td class=\"n\">%zu</td><td class=\"n\">%zu</td>",
                sp->images, sp->patients, sp->pos, sp->neg);
        td_num(f, sp->pos + sp->neg ? (double)sp->pos / (double)(sp->pos + sp->neg) : NAN, "%.3f");
        fputs("</tr>", f);
    }
    fputs("</tbody></table>\n", f);
    if (c->split_from_manifest) {
        if (c->patients_multi_split)
            fprintf(f, "<p class=\"warn banner\">%zu patient(s) have images in more than one split: the split is not "
                       "by patient.</p>", c->patients_multi_split);
        else
            fputs("<p class=\"ok\">&#10003; No patient has images in more than one split.</p>", f);
    }
    for (size_t g = 0; g < c->n_st; g++) {
        const stratum *st = &c->st[g];
        fputs("<h3>By ", f);
        esc(f, st->column);
        fputs("</h3><table class=\"strata\"><thead><tr><th>Split</th>", f);
        for (size_t v = 0; v < st->n_value; v++) {
            fputs("<th class=\"n\">", f);
            esc(f, display_value(st->value[v]));
            fputs("</th>", f);
        }
        fputs("</tr></thead><tbody>", f);
        for (size_t s = 0; s < c->n_sp; s++) {
            fputs("<tr>", f);
            td_text(f, display_value(c->sp[s].split));
            for (size_t v = 0; v < st->n_value; v++) fprintf(f, "<td class=\"n\">%zu</td>", st->count[s * st->n_value + v]);
            fputs("</tr>", f);
        }
        fputs("</tbody></table>\n", f);
    }
    fputs("</section>\n", f);
}

static void metrics_header(FILE *f, const char *first) {
    fprintf(f, "<thead><tr>%s<th class=\"n\">Threshold</th><th class=\"n\">Sensitivity</th><th class=\"n\">Specificity</th>"
               "<th class=\"n\">Accuracy</th><th class=\"n\">Precision</th><th class=\"n\">F1</th>"
               "<th class=\"n\">AUC (DeLong)</th><th class=\"n\">AUC (bootstrap)</th></tr></thead>", first);
}

static void metrics_cells(FILE *f, const jsonv *cell, const char *rule) {
    const jsonv *op = cell_op(cell, rule);
    td_num(f, jsonv_number(jsonv_get(op, "threshold")), "%.4g");
    td_metric(f, op, "sensitivity");
    td_metric(f, op, "specificity");
    td_metric(f, op, "accuracy");
    td_metric(f, op, "ppv");
    td_metric(f, op, "f1");
    const char *why = S(cell, "auc.reason", NULL);
    td_ci(f, N(cell, "auc.estimate"), J(cell, "auc.delong_ci"), why);
    td_ci(f, N(cell, "auc.estimate"), J(cell, "auc.bootstrap_ci"), why);
}

static void html_models(FILE *f, const report_ctx *c) {
    const jsonv *models = J(&c->m, "models");
    const char *rule = primary_rule(c);
    fputs("<section id=\"models\"><h2>Results per model (the study's Table 2, with confidence intervals)</h2>\n", f);
    fputs("<table id=\"table2\" class=\"w\">", f);
    metrics_header(f, "<th>Model</th>");
    fputs("<tbody>", f);
    for (size_t i = 0; i < jsonv_len(models); i++) {
        const jsonv *mod = jsonv_at(models, i);
        fputs("<tr>", f);
        td_text(f, S(mod, "name", "?"));
        metrics_cells(f, J(mod, "overall"), rule);
        fputs("</tr>", f);
    }
    fputs("</tbody></table>\n<p class=\"note\">Test split at operating point <code>", f);
    esc(f, rule);
    fprintf(f, "</code>. Proportions: Wilson score intervals; F1 and the bootstrap AUC interval: %s-level bootstrap "
               "(%.0f replicates, percentile); AUC: DeLong.</p>\n",
            S(&c->m, "options.bootstrap_unit", "patient"), N(&c->m, "options.bootstrap_replicates"));

    /* Sensitivity at fixed specificity (read off the test ROC). */
    const jsonv *sas0 = J(jsonv_at(models, 0), "overall.sens_at_spec");
    if (jsonv_len(sas0)) {
        fputs("<h3>Sensitivity at fixed specificity</h3><table id=\"sens-at-spec\"><thead><tr><th>Model</th>", f);
        for (size_t k = 0; k < jsonv_len(sas0); k++)
            fprintf(f, "<th class=\"n\">Specificity &ge; %.2f</th>", N(jsonv_at(sas0, k), "target_specificity"));
        fputs("</tr></thead><tbody>", f);
        for (size_t i = 0; i < jsonv_len(models); i++) {
            const jsonv *mod = jsonv_at(models, i), *sas = J(mod, "overall.sens_at_spec");
            fputs("<tr>", f);
            td_text(f, S(mod, "name", "?"));
            for (size_t k = 0; k < jsonv_len(sas0); k++) td_num(f, N(jsonv_at(sas, k), "sensitivity"), "%.3f");
            fputs("</tr>", f);
        }
        fputs("</tbody></table><p class=\"note\">Read off each model's test ROC curve (descriptive, not locked); the "
              "locked counterparts are the <code>spec_*</code> operating points below.</p>\n", f);
    }

    /* Every operating point. */
    fputs("<h3>Operating points</h3><table id=\"operating-points\" class=\"w\"><thead><tr><th>Model</th><th>Rule</th>"
          "<th class=\"n\">Threshold</th><th>Chosen on</th><th class=\"n\">Val sens / spec</th>"
          "<th class=\"n\">Test sensitivity</th><th class=\"n\">Test specificity</th><th class=\"n\">PPV</th>"
          "<th class=\"n\">NPV</th><th class=\"n\">TP / FP / TN / FN</th></tr></thead><tbody>", f);
    for (size_t i = 0; i < jsonv_len(models); i++) {
        const jsonv *mod = jsonv_at(models, i), *thr = J(mod, "thresholds");
        for (size_t k = 0; k < jsonv_len(thr); k++) {
            const jsonv *t = jsonv_at(thr, k);
            const char *rname = S(t, "rule", "?");
            const jsonv *op = cell_op(J(mod, "overall"), rname);
            fputs("<tr>", f);
            td_text(f, k == 0 ? S(mod, "name", "?") : "");
            fputs("<td><code>", f);
            esc(f, rname);
            fputs("</code></td>", f);
            td_num(f, N(t, "value"), "%.4g");
            fputs("<td>", f);
            esc(f, S(t, "source", "?"));
            fputs(jsonv_is_true(jsonv_get(t, "locked")) ? " (locked)" : " <strong>(not locked)</strong>", f);
            fputs("</td>", f);
            double vs = N(t, "val_sensitivity"), vp = N(t, "val_specificity");
            if (isnan(vs) && isnan(vp))
                fputs("<td class=\"n na\">&mdash;</td>", f);
            else
                fprintf(f, "<td class=\"n\">%.3f / %.3f</td>", vs, vp);
            td_metric(f, op, "sensitivity");
            td_metric(f, op, "specificity");
            td_metric(f, op, "ppv");
            td_metric(f, op, "npv");
            const jsonv *cm = jsonv_get(op, "confusion");
            if (cm)
                fprintf(f, "<td class=\"n\">%.0f / %.0f / %.0f / %.0f</td>", N(cm, "tp"), N(cm, "fp"), N(cm, "tn"),
                        N(cm, "fn"));
            else
                fputs("<td class=\"n na\">&mdash;</td>", f);
            fputs("</tr>", f);
        }
    }
    fputs("</tbody></table>\n</section>\n", f);
}

/* One ROC chart for a set of cells (one per model); cells may be NULL. */
static void roc_chart(FILE *f, const report_ctx *c, const jsonv *const *cell, size_t n, int size, const char *title) {
    svg_plot p;
    svg_begin(&p, f, size, size, 0, 1, 0, 1, title);
    svg_axes(&p, 5, 5, 1, 1, "1 - specificity", "Sensitivity");
    svg_segment(&p, 0, 0, 1, 1, "#9aa3ad", 1, "4 4");
    const jsonv *models = J(&c->m, "models");
    const char *rule = primary_rule(c);
    const char *labels[16], *colors[16];
    char lab[16][96];
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cell[i]) continue;
        const jsonv *fpr = J(cell[i], "roc.fpr"), *tpr = J(cell[i], "roc.tpr");
        size_t k = jsonv_len(fpr);
        if (!k || jsonv_len(tpr) != k) continue;
        double *x = malloc(k * sizeof *x), *y = malloc(k * sizeof *y);
        if (!x || !y) {
            free(x);
            free(y);
            continue;
        }
        for (size_t j = 0; j < k; j++) {
            x[j] = jsonv_number(jsonv_at(fpr, j));
            y[j] = jsonv_number(jsonv_at(tpr, j));
        }
        svg_line(&p, x, y, k, svg_color(i), 2, NULL);
        free(x);
        free(y);
        const jsonv *op = cell_op(cell[i], rule);
        double se = N(op, "sensitivity.estimate"), sp = N(op, "specificity.estimate");
        char tip[160];
        snprintf(tip, sizeof tip, "%s at %s: sensitivity %.3f, specificity %.3f", S(jsonv_at(models, i), "name", "?"),
                 rule, se, sp);
        svg_marker(&p, 1 - sp, se, svg_color(i), 0, tip);
        if (nl < 16) {
            snprintf(lab[nl], sizeof lab[nl], "%.60s (AUC %.3f)", S(jsonv_at(models, i), "name", "?"),
                     N(cell[i], "auc.estimate"));
            labels[nl] = lab[nl];
            colors[nl] = svg_color(i);
            nl++;
        }
    }
    if (!nl) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#888\">ROC undefined (one class only)</text>",
                size / 2, size / 2);
    }
    svg_legend(&p, labels, colors, NULL, nl, 0);
    svg_end(&p);
}

static void html_roc(FILE *f, const report_ctx *c) {
    const jsonv *models = J(&c->m, "models");
    size_t n = jsonv_len(models);
    const jsonv *cells[64];
    if (n > 64) n = 64;
    for (size_t i = 0; i < n; i++) cells[i] = J(jsonv_at(models, i), "overall");
    fputs("<section id=\"roc\"><h2>ROC curves</h2><div class=\"grid\"><figure>", f);
    roc_chart(f, c, cells, n, 460, "Test split");
    fputs("<figcaption>Empirical ROC curves on the test split; dots mark the locked operating point <code>", f);
    esc(f, primary_rule(c));
    fputs("</code>. The dashed diagonal is chance.</figcaption></figure></div></section>\n", f);
}

static void html_subgroups(FILE *f, const report_ctx *c) {
    const jsonv *gb = J(&c->m, "options.group_by");
    const jsonv *models = J(&c->m, "models");
    size_t nm = jsonv_len(models) > 64 ? 64 : jsonv_len(models);
    const jsonv *m0 = jsonv_at(models, 0);
    const char *rule = primary_rule(c);
    fputs("<section id=\"subgroups\"><h2>Subgroups (the study's Tables 3 and 4)</h2>\n", f);
    if (!jsonv_len(gb)) {
        fputs("<p class=\"muted\">No subgroup columns were given (<code>freeair eval --group-by COLUMN</code>).</p>", f);
    }
    for (size_t g = 0; g < jsonv_len(gb); g++) {
        const char *col = jsonv_string(jsonv_at(gb, g), "");
        const jsonv *subs = J(m0, "subgroups");
        fputs("<h3>By ", f);
        esc(f, col);
        fputs("</h3><table class=\"table3\"><thead><tr><th>", f);
        esc(f, col);
        fputs("</th><th class=\"n\">Images</th><th class=\"n\">Patients</th><th class=\"n\">Positive</th>"
              "<th class=\"n\">Negative</th></tr></thead><tbody>", f);
        for (size_t s = 0; s < jsonv_len(subs); s++) {
            const jsonv *sg = jsonv_at(subs, s);
            if (strcmp(S(sg, "column", ""), col)) continue;
            fputs("<tr>", f);
            td_text(f, display_value(S(sg, "value", "")));
            td_int(f, J(sg, "n"));
            td_int(f, J(sg, "n_patients"));
            td_int(f, J(sg, "n_pos"));
            td_int(f, J(sg, "n_neg"));
            fputs("</tr>", f);
        }
        fputs("</tbody></table>\n<table class=\"table4 w\">", f);
        metrics_header(f, "<th>Subgroup</th><th>Model</th>");
        fputs("<tbody>", f);
        for (size_t s = 0; s < jsonv_len(subs); s++) {
            const jsonv *sg = jsonv_at(subs, s);
            if (strcmp(S(sg, "column", ""), col)) continue;
            const char *value = S(sg, "value", "");
            for (size_t i = 0; i < nm; i++) {
                const jsonv *cell = model_subgroup(jsonv_at(models, i), col, value);
                if (!cell) continue;
                fputs("<tr><td>", f);
                if (i == 0) {
                    fputs("<strong>", f);
                    esc(f, display_value(value));
                    fputs("</strong>", f);
                }
                fputs("</td>", f);
                td_text(f, S(jsonv_at(models, i), "name", "?"));
                metrics_cells(f, cell, rule);
                fputs("</tr>", f);
            }
        }
        fputs("</tbody></table>\n<div class=\"grid\">", f);
        for (size_t s = 0; s < jsonv_len(subs); s++) {
            const jsonv *sg = jsonv_at(subs, s);
            if (strcmp(S(sg, "column", ""), col)) continue;
            const char *value = S(sg, "value", "");
            const jsonv *cells[64];
            for (size_t i = 0; i < nm; i++) cells[i] = model_subgroup(jsonv_at(models, i), col, value);
            char title[160];
            snprintf(title, sizeof title, "%.60s = %.60s (n = %.0f)", col, display_value(value), N(sg, "n"));
            fputs("<figure class=\"roc-sub\">", f);
            roc_chart(f, c, cells, nm, 300, title);
            fputs("</figure>", f);
        }
        fputs("</div>\n", f);
    }
    fputs("</section>\n", f);
}

static void html_comparisons(FILE *f, const report_ctx *c) {
    const jsonv *cmp = J(&c->m, "comparisons");
    if (!jsonv_len(cmp)) return;
    const char *rule = primary_rule(c);
    fputs("<section id=\"comparisons\"><h2>Paired model comparisons</h2>\n"
          "<table id=\"comparison-table\" class=\"w\"><thead><tr><th>Models</th><th>Subgroup</th><th class=\"n\">n</th>"
          "<th class=\"n\">AUC difference</th><th class=\"n\">p (DeLong)</th><th class=\"n\">McNemar sensitivity</th>"
          "<th class=\"n\">McNemar specificity</th></tr></thead><tbody>", f);
    for (size_t i = 0; i < jsonv_len(cmp); i++) {
        const jsonv *x = jsonv_at(cmp, i);
        char models[300], sub[300], pbuf[32];
        snprintf(models, sizeof models, "%s vs %s", S(x, "model_a", "?"), S(x, "model_b", "?"));
        const jsonv *sg = jsonv_get(x, "subgroup");
        if (sg && sg->type == JSONV_OBJ)
            snprintf(sub, sizeof sub, "%s = %s", S(sg, "column", ""), display_value(S(sg, "value", "")));
        else
            snprintf(sub, sizeof sub, "all test images");
        fputs("<tr>", f);
        td_text(f, models);
        td_text(f, sub);
        td_int(f, jsonv_get(x, "n"));
        td_ci(f, N(x, "delong.difference"), J(x, "delong.difference_ci"), S(x, "delong.reason", NULL));
        fmt_p(pbuf, sizeof pbuf, N(x, "delong.p_value"));
        fprintf(f, "<td class=\"n\">%s</td>", pbuf);
        const jsonv *mc = J(x, "mcnemar"), *mr = NULL;
        for (size_t k = 0; k < jsonv_len(mc); k++)
            if (!strcmp(S(jsonv_at(mc, k), "rule", ""), rule)) mr = jsonv_at(mc, k);
        for (int w = 0; w < 2; w++) {
            const jsonv *t = jsonv_get(mr, w ? "specificity" : "sensitivity");
            if (!t) {
                fputs("<td class=\"n na\">&mdash;</td>", f);
                continue;
            }
            fmt_p(pbuf, sizeof pbuf, N(t, "p_value"));
            fprintf(f, "<td class=\"n\">%s<br><span class=\"ci\">b=%.0f, c=%.0f, %s</span></td>", pbuf, N(t, "b"), N(t, "c"),
                    !strcmp(S(t, "method", ""), "exact_binomial") ? "exact" : "&chi;&sup2;");
        }
        fputs("</tr>", f);
    }
    fputs("</tbody></table><p class=\"note\">DeLong's test for two correlated ROC curves on the images both models "
          "scored; McNemar's test on the discordant decisions at the locked operating point <code>", f);
    esc(f, rule);
    fputs("</code> (b: first model right, second wrong; c: the reverse).</p></section>\n", f);
}

static void html_calibration(FILE *f, const report_ctx *c) {
    const jsonv *models = J(&c->m, "models");
    size_t nm = jsonv_len(models);
    fputs("<section id=\"calibration\"><h2>Calibration</h2><div class=\"grid\"><figure>", f);
    svg_plot p;
    svg_begin(&p, f, 420, 420, 0, 1, 0, 1, "Reliability (test split)");
    svg_axes(&p, 5, 5, 1, 1, "Mean predicted probability", "Observed fraction positive");
    svg_segment(&p, 0, 0, 1, 1, "#9aa3ad", 1, "4 4");
    const char *labels[16], *colors[16];
    size_t nl = 0;
    for (size_t i = 0; i < nm; i++) {
        const jsonv *bins = J(jsonv_at(models, i), "overall.calibration.bins");
        size_t nb = jsonv_len(bins);
        if (!nb) continue;
        double x[1000], y[1000];
        size_t k = 0;
        for (size_t b = 0; b < nb && k < 1000; b++) {
            const jsonv *bin = jsonv_at(bins, b);
            if (N(bin, "n") <= 0) continue;
            x[k] = N(bin, "mean_score");
            y[k] = N(bin, "observed");
            char tip[160];
            snprintf(tip, sizeof tip, "%s: %.0f images, mean score %.3f, observed %.3f", S(jsonv_at(models, i), "name", "?"),
                     N(bin, "n"), x[k], y[k]);
            svg_marker(&p, x[k], y[k], svg_color(i), (int)(i % 2), tip);
            k++;
        }
        svg_line(&p, x, y, k, svg_color(i), 1.8, NULL);
        if (nl < 16) {
            labels[nl] = S(jsonv_at(models, i), "name", "?");
            colors[nl++] = svg_color(i);
        }
    }
    svg_legend(&p, labels, colors, NULL, nl, 1);
    svg_end(&p);
    fprintf(f, "<figcaption>%.0f equal-width bins on [0, 1]; empty bins are not drawn.</figcaption></figure><div style=\"flex:1 1 320px\">",
            N(&c->m, "options.ece_bins"));
    fputs("<table id=\"calibration-table\"><thead><tr><th>Model</th><th class=\"n\">Brier score</th>"
          "<th class=\"n\">ECE</th></tr></thead><tbody>", f);
    for (size_t i = 0; i < nm; i++) {
        const jsonv *cal = J(jsonv_at(models, i), "overall.calibration");
        fputs("<tr>", f);
        td_text(f, S(jsonv_at(models, i), "name", "?"));
        td_num(f, N(cal, "brier"), "%.4f");
        td_num(f, N(cal, "ece"), "%.4f");
        fputs("</tr>", f);
        const char *why = S(cal, "reason", NULL);
        if (why) {
            fputs("<tr><td colspan=\"3\" class=\"muted\">", f);
            esc(f, why);
            fputs("</td></tr>", f);
        }
    }
    fputs("</tbody></table><p class=\"note\">Brier: mean squared difference between score and label (lower is "
          "better). ECE: the bin-size-weighted mean of |observed &minus; predicted|.</p></div></div></section>\n", f);
}

static void html_distributions(FILE *f, const report_ctx *c) {
    const jsonv *models = J(&c->m, "models");
    const char *rule = primary_rule(c);
    fputs("<section id=\"distributions\"><h2>Score distributions</h2><div class=\"grid\">", f);
    for (size_t i = 0; i < jsonv_len(models); i++) {
        const jsonv *mod = jsonv_at(models, i), *h = J(mod, "overall.score_histogram");
        const jsonv *pos = jsonv_get(h, "pos"), *neg = jsonv_get(h, "neg");
        size_t nb = jsonv_len(pos);
        if (!nb || jsonv_len(neg) != nb) continue;
        double lo = N(h, "lo"), hi = N(h, "hi"), top = 1;
        for (size_t b = 0; b < nb; b++) {
            double a = jsonv_number(jsonv_at(pos, b)), d = jsonv_number(jsonv_at(neg, b));
            if (a > top) top = a;
            if (d > top) top = d;
        }
        double ytop = ceil(top * 1.1);
        char title[160];
        snprintf(title, sizeof title, "%.80s", S(mod, "name", "?"));
        fputs("<figure>", f);
        svg_plot p;
        svg_begin(&p, f, 380, 250, lo, hi, 0, ytop, title);
        svg_axes(&p, 5, 4, hi - lo >= 5 ? 0 : 1, 0, "Score", "Images");
        double wbin = (hi - lo) / (double)nb;
        for (size_t b = 0; b < nb; b++) {
            char tip[96];
            double xa = lo + wbin * (double)b, xb = xa + wbin;
            snprintf(tip, sizeof tip, "negative, %.3g-%.3g: %.0f", xa, xb, jsonv_number(jsonv_at(neg, b)));
            svg_bar(&p, xa, xb, jsonv_number(jsonv_at(neg, b)), "#0072B2", 0.55, tip);
            snprintf(tip, sizeof tip, "positive, %.3g-%.3g: %.0f", xa, xb, jsonv_number(jsonv_at(pos, b)));
            svg_bar(&p, xa, xb, jsonv_number(jsonv_at(pos, b)), "#D55E00", 0.55, tip);
        }
        double t = N(cell_op(J(mod, "overall"), rule), "threshold");
        if (!isnan(t) && t >= lo && t <= hi) svg_segment(&p, t, 0, t, ytop, "#222", 1.5, "5 3");
        svg_end(&p);
        fputs("</figure>", f);
    }
    fputs("</div><p class=\"note\"><span class=\"sw\" style=\"background:#0072B2;opacity:.6\"></span>negative"
          "<span class=\"sw\" style=\"background:#D55E00;opacity:.6\"></span>positive (overlap is brown). "
          "Test-split scores by true label; the dashed line is the locked threshold <code>", f);
    esc(f, rule);
    fputs("</code>.</p></section>\n", f);
}

static void html_decision_curve(FILE *f, const report_ctx *c) {
    const jsonv *models = J(&c->m, "models");
    size_t nm = jsonv_len(models);
    const jsonv *d0 = J(jsonv_at(models, 0), "overall.decision_curve");
    fputs("<section id=\"decision-curve\"><h2>Decision curve</h2>", f);
    size_t n = jsonv_len(jsonv_get(d0, "thresholds"));
    if (!n) {
        fputs("<p class=\"muted\">Not available: ", f);
        esc(f, S(d0, "reason", "no data"));
        fputs("</p></section>\n", f);
        return;
    }
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        fputs("</section>", f);
        return;
    }
    double ymax = 0.05;
    for (size_t i = 0; i < nm; i++) {
        const jsonv *d = J(jsonv_at(models, i), "overall.decision_curve");
        for (size_t k = 0; k < jsonv_len(jsonv_get(d, "net_benefit")); k++) {
            double v = jsonv_number(jsonv_at(jsonv_get(d, "net_benefit"), k));
            if (v > ymax) ymax = v;
        }
    }
    double prev = jsonv_number(jsonv_at(jsonv_get(d0, "treat_all"), 0));
    if (prev > ymax) ymax = prev;
    /* Ticks every 0.05 for small benefits, every 0.1 otherwise. */
    double step = ymax > 0.3 ? 0.1 : 0.05, ymin = -step;
    ymax = ceil(ymax * 1.05 / step) * step;
    int n_y = (int)lround((ymax - ymin) / step);
    fputs("<figure>", f);
    svg_plot p;
    svg_begin(&p, f, 620, 360, 0, 1, ymin, ymax, "Net benefit (test split)");
    svg_axes(&p, 10, n_y, 1, 2, "Threshold probability", "Net benefit");
    for (size_t k = 0; k < n; k++) {
        x[k] = jsonv_number(jsonv_at(jsonv_get(d0, "thresholds"), k));
        y[k] = jsonv_number(jsonv_at(jsonv_get(d0, "treat_all"), k));
        if (y[k] < ymin) y[k] = NAN; /* clip: treat-all falls steeply */
    }
    svg_line(&p, x, y, n, "#888", 1.5, "6 3");
    svg_segment(&p, 0, 0, 1, 0, "#222", 1.2, NULL);
    const char *labels[18], *colors[18], *dash[18];
    size_t nl = 0;
    for (size_t i = 0; i < nm; i++) {
        const jsonv *d = J(jsonv_at(models, i), "overall.decision_curve");
        const jsonv *th = jsonv_get(d, "thresholds"), *nb = jsonv_get(d, "net_benefit");
        size_t k = jsonv_len(th) < n ? jsonv_len(th) : n;
        for (size_t j = 0; j < k; j++) {
            x[j] = jsonv_number(jsonv_at(th, j));
            y[j] = jsonv_number(jsonv_at(nb, j));
            if (y[j] < ymin) y[j] = NAN;
        }
        svg_line(&p, x, y, k, svg_color(i), 2, NULL);
        if (nl < 16) {
            labels[nl] = S(jsonv_at(models, i), "name", "?");
            colors[nl] = svg_color(i);
            dash[nl++] = NULL;
        }
    }
    labels[nl] = "treat all";
    colors[nl] = "#888";
    dash[nl++] = "6 3";
    labels[nl] = "treat none";
    colors[nl] = "#222";
    dash[nl++] = NULL;
    svg_legend(&p, labels, colors, dash, nl, 2);
    svg_end(&p);
    free(x);
    free(y);
    fputs("<figcaption>Net benefit = TP/N &minus; FP/N &middot; p<sub>t</sub>/(1 &minus; p<sub>t</sub>) when images with "
          "score &ge; p<sub>t</sub> are flagged; a model is useful where its curve lies above both reference lines."
          "</figcaption></figure></section>\n", f);
}

static void html_errors(FILE *f, const report_ctx *c) {
    fputs("<section id=\"errors\"><h2>Misclassified cases</h2>", f);
    if (!c->have_miss) {
        fputs("<p class=\"muted\">No <code>misclassified.csv</code> in the run directory.</p></section>\n", f);
        return;
    }
    const csv_table *t = &c->miss;
    int c_model = csv_column(t, "model");
    fprintf(f, "<p class=\"note\">The %d test-split errors at the operating point <code>", t->n_rows);
    esc(f, primary_rule(c));
    fprintf(f, "</code>, most confident first (at most %d per model; all are in <code>misclassified.csv</code>).</p>",
            c->o->max_errors);
    fputs("<table id=\"error-table\" class=\"w\"><thead><tr>", f);
    for (int k = 0; k < t->n_cols; k++) {
        static const char *numeric[] = {"rank", "label", "score", "threshold", "margin"};
        int num = 0;
        for (size_t q = 0; q < sizeof numeric / sizeof numeric[0]; q++) num |= !strcmp(t->header[k], numeric[q]);
        fputs(num ? "<th class=\"n\">" : "<th>", f);
        esc(f, t->header[k]);
        fputs("</th>", f);
    }
    fputs("</tr></thead><tbody>", f);
    const char *prev = NULL;
    int shown = 0;
    for (int r = 0; r < t->n_rows; r++) {
        const char *model = csv_cell(t, r, c_model);
        if (!prev || strcmp(prev, model)) shown = 0;
        prev = model;
        if (shown++ >= c->o->max_errors) continue;
        fputs("<tr>", f);
        for (int k = 0; k < t->n_cols; k++) {
            const char *v = csv_cell(t, r, k);
            char *end;
            double d = strtod(v, &end);
            if (v[0] && !*end && strchr(v, '.')) {
                fprintf(f, "<td class=\"n\">%.4g</td>", d);
            } else {
                fputs(v[0] && !*end ? "<td class=\"n\">" : "<td>", f);
                esc(f, v);
                fputs("</td>", f);
            }
        }
        fputs("</tr>", f);
    }
    fputs("</tbody></table></section>\n", f);
}

/* One row of the localisation table: a cell of localisation.json. */
static void loc_row(FILE *f, const char *model, const char *group, const jsonv *cell) {
    fputs("<tr>", f);
    td_text(f, model);
    td_text(f, group);
    td_int(f, jsonv_get(cell, "n"));
    td_int(f, jsonv_get(cell, "hits"));
    double n = N(cell, "n");
    td_ci(f, N(cell, "pointing_game"), J(cell, "pointing_game_ci"),
          !(n > 0) ? "no image with a truth region" : NULL);
    td_num(f, N(cell, "mass_inside_mean"), "%.3f");
    td_num(f, N(cell, "mass_inside_median"), "%.3f");
    td_int(f, jsonv_get(cell, "zero_maps"));
    fputs("</tr>", f);
}

/* Pointing game and CAM mass inside the truth region, by model and
 * subgroup (cam/localisation.json), under the gallery. */
static void html_localisation(FILE *f, const report_ctx *c) {
    if (!c->have_loc) return;
    const jsonv *models = J(&c->loc, "models");
    fputs("<h3 id=\"localisation\">Grad-CAM localisation</h3><p class=\"muted\">", f);
    fputs("Only images with a known free-air region count. Pointing game: the map's peak lies in the region ", f);
    double tol = N(&c->loc, "tolerance_fraction");
    if (!isnan(tol)) fprintf(f, "(or within %.3g &times; the image's longer side of it) ", tol);
    fputs("&mdash; share of hits with its Wilson 95% CI. Mass inside: the share of the map's sum inside the region. "
          "Layer <code>", f);
    esc(f, S(&c->loc, "layer", "?"));
    fputs("</code>, method <code>", f);
    esc(f, S(&c->loc, "method", "?"));
    fputs("</code>.</p>", f);
    if (!jsonv_len(models)) {
        fputs("<p class=\"note\">localisation.json lists no model.</p>", f);
        return;
    }
    fputs("<table class=\"loc\"><thead><tr><th>Model</th><th>Subgroup</th><th>Images</th><th>Hits</th>"
          "<th>Pointing game</th><th>Mass inside (mean)</th><th>Mass inside (median)</th><th>Zero maps</th>"
          "</tr></thead><tbody>", f);
    for (size_t i = 0; i < jsonv_len(models); i++) {
        const jsonv *m = jsonv_at(models, i);
        const char *name = S(m, "name", "model");
        loc_row(f, name, "all", jsonv_get(m, "overall"));
        const jsonv *subs = jsonv_get(m, "subgroups");
        for (size_t k = 0; k < jsonv_len(subs); k++) {
            const jsonv *sg = jsonv_at(subs, k);
            char group[512];
            snprintf(group, sizeof group, "%s = %s", S(sg, "column", "?"), display_value(S(sg, "value", "")));
            loc_row(f, name, group, sg);
        }
    }
    fputs("</tbody></table>", f);
}

static void html_gallery(FILE *f, const report_ctx *c) {
    fputs("<section id=\"gallery\"><h2>Grad-CAM gallery</h2>", f);
    if (!c->n_cam) {
        fputs("<p class=\"muted\">No Grad-CAM images (<code>cam/*.png</code>) in the run directory.</p>", f);
    } else {
        fputs("<div class=\"gallery\">", f);
        for (size_t i = 0; i < c->n_cam; i++) {
            fputs("<figure><img alt=\"", f);
            esc(f, c->cam[i].caption);
            fputs("\" src=\"data:image/png;base64,", f);
            fputs(c->cam[i].b64, f);
            fputs("\"><figcaption>", f);
            esc(f, c->cam[i].caption);
            fputs("</figcaption></figure>", f);
        }
        fputs("</div>", f);
    }
    if (c->cam_skipped)
        fprintf(f, "<p class=\"note\">%zu image(s) left out (not PNG, larger than 8 MiB, or beyond the first %d).</p>",
                c->cam_skipped, c->o->max_cam);
    html_localisation(f, c);
    fputs("</section>\n", f);
}

static void kv(FILE *f, const char *k, const char *v) {
    fputs("<dt>", f);
    esc(f, k);
    fputs("</dt><dd>", f);
    esc(f, v ? v : "(unknown)");
    fputs("</dd>", f);
}

static void html_provenance(FILE *f, const report_ctx *c) {
    fputs("<section id=\"provenance\"><h2>Configuration and provenance</h2><h3>Evaluation</h3><dl class=\"kv\">", f);
    kv(f, "freeair version", S(&c->m, "freeair_version", NULL));
    kv(f, "command", S(&c->m, "command", NULL));
    kv(f, "date (UTC)", S(&c->m, "created", NULL));
    kv(f, "metrics.json SHA-256", c->metrics_sha);
    fputs("</dl><h3>Inputs</h3><table id=\"inputs\"><thead><tr><th>File</th><th>Role</th><th class=\"n\">Rows</th><th>SHA-256</th>"
          "</tr></thead><tbody>", f);
    const jsonv *in = J(&c->m, "inputs");
    for (size_t i = 0; i < jsonv_len(in); i++) {
        const jsonv *x = jsonv_at(in, i);
        fputs("<tr>", f);
        td_text(f, S(x, "path", "?"));
        td_text(f, S(x, "role", ""));
        td_int(f, jsonv_get(x, "rows"));
        fputs("<td><code>", f);
        esc(f, S(x, "sha256", ""));
        fputs("</code></td></tr>", f);
    }
    fputs("</tbody></table><h3>Evaluation options</h3><pre>", f);
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    if (mf) {
        jsonv_write(mf, J(&c->m, "options"), 2);
        fclose(mf);
        esc(f, buf);
    }
    free(buf);
    fputs("</pre><h3>Report</h3><dl class=\"kv\">", f);
    kv(f, "freeair version", c->o->version);
    kv(f, "command", c->o->command);
    kv(f, "date (UTC)", c->o->created);
    kv(f, "run directory", c->o->run_dir);
    fputs("</dl>", f);
    for (size_t i = 0; i < c->n_cfg; i++) {
        fputs("<h3>", f);
        esc(f, c->cfg[i].name);
        fputs(c->cfg[i].truncated ? " (first 64 KiB)" : "", f);
        fputs("</h3><pre>", f);
        esc(f, c->cfg[i].text);
        fputs("</pre>", f);
    }
    fputs("</section>\n", f);
}

static void html_methods(FILE *f, const report_ctx *c) {
    fprintf(f,
            "<section id=\"methods\"><h2>Statistical methods</h2><ul>"
            "<li>A case is called positive when its score is at or above the threshold.</li>"
            "<li>Operating points are chosen on the validation split only and applied unchanged to the test split: "
            "Youden's J (ties to the higher threshold), the highest threshold reaching a target sensitivity, the "
            "lowest threshold reaching a target specificity, and prespecified fixed thresholds. A data-driven "
            "threshold lies midway between the two adjacent distinct validation scores.</li>"
            "<li>AUC is the Mann&ndash;Whitney statistic (ties count one half); its %.0f%% CI and the paired test "
            "follow DeLong et al. (1988) as implemented in R's pROC (checked against it to 1e-9).</li>"
            "<li>Proportions have Wilson score intervals; F1 and the second AUC interval come from a %s-level "
            "bootstrap (%.0f replicates, seed %.0f, percentile method), so repeat images of a patient move "
            "together.</li>"
            "<li>McNemar's test compares two models' decisions on the same images: exact binomial when fewer than "
            "%.0f discordant pairs, otherwise chi-square with continuity correction.</li>"
            "<li>Calibration: Brier score and expected calibration error over %.0f equal-width bins. Decision "
            "curve: net benefit against the threshold probability (Vickers and Elkin, 2006).</li>"
            "</ul><p class=\"note\">Every key of <code>metrics.json</code> and every formula is documented in "
            "<code>docs/metrics.md</code>.</p></section>\n",
            100 * N(&c->m, "options.confidence_level"), S(&c->m, "options.bootstrap_unit", "patient"),
            N(&c->m, "options.bootstrap_replicates"), N(&c->m, "options.bootstrap_seed"),
            N(&c->m, "options.mcnemar_exact_below"), N(&c->m, "options.ece_bins"));
}

static fa_status write_html(const report_ctx *c, FILE *f) {
    const char *title = c->have_cohort && S(&c->cohort, "name", NULL) ? S(&c->cohort, "name", NULL)
                                                                       : "Pneumoperitoneum on chest radiographs";
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
          "style-src 'unsafe-inline'\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"freeair report\">\n<title>freeair report &middot; ", f);
    esc(f, title);
    fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n<header class=\"top\"><h1>", CSS);
    esc(f, title);
    fputs(": evaluation report</h1><div class=\"sub\">freeair ", f);
    esc(f, S(&c->m, "freeair_version", "?"));
    fputs(" &middot; evaluated ", f);
    esc(f, S(&c->m, "created", "?"));
    fputs(" &middot; report ", f);
    esc(f, c->o->created ? c->o->created : "?");
    fputs(" &middot; run <code style=\"background:none;color:#fff\">", f);
    esc(f, c->o->run_dir);
    fputs("</code></div></header>\n<nav><a href=\"#summary\">Summary</a><a href=\"#cohort\">Cohort</a>"
          "<a href=\"#splits\">Splits</a><a href=\"#models\">Models</a><a href=\"#roc\">ROC</a>"
          "<a href=\"#subgroups\">Subgroups</a><a href=\"#comparisons\">Comparisons</a>"
          "<a href=\"#calibration\">Calibration</a><a href=\"#distributions\">Scores</a>"
          "<a href=\"#decision-curve\">Decision curve</a><a href=\"#errors\">Errors</a>"
          "<a href=\"#gallery\">Grad-CAM</a><a href=\"#provenance\">Provenance</a><a href=\"#methods\">Methods</a></nav>\n<main>\n",
          f);
    html_banners(f, c);
    html_summary(f, c);
    html_cohort(f, c);
    html_splits(f, c);
    html_models(f, c);
    html_roc(f, c);
    html_subgroups(f, c);
    html_comparisons(f, c);
    html_calibration(f, c);
    html_distributions(f, c);
    html_decision_curve(f, c);
    html_errors(f, c);
    html_gallery(f, c);
    html_provenance(f, c);
    html_methods(f, c);
    fputs("</main><footer>Generated by freeair &middot; one self-contained file: no scripts, no network.</footer>\n"
          "</body></html>\n", f);
    return FA_OK;
}

/* ---- report.json ------------------------------------------------------ */

static void write_json(const report_ctx *c, FILE *f) {
    jsonw w;
    jsonw_init(&w, f);
    jsonw_object(&w, NULL);
    jsonw_str(&w, "schema", "freeair.report/1");
    jsonw_str(&w, "freeair_version", c->o->version);
    jsonw_str(&w, "created", c->o->created);
    jsonw_str(&w, "command", c->o->command);
    jsonw_str(&w, "run_dir", c->o->run_dir);
    jsonw_str(&w, "metrics_sha256", c->metrics_sha);
    jsonw_bool(&w, "synthetic", c->have_cohort && jsonv_is_true(jsonv_get(&c->cohort, "synthetic")));
    if (c->have_cohort) {
        jsonw_raw(&w, "cohort");
        jsonv_write(f, &c->cohort, 0);
    } else {
        jsonw_null(&w, "cohort");
    }
    jsonw_object(&w, "flow");
    jsonw_bool(&w, "manifest", c->have_manifest);
    if (c->have_manifest) {
        jsonw_int(&w, "n_images", (long long)c->n_manifest);
        jsonw_int(&w, "n_included", (long long)c->n_included);
        jsonw_int(&w, "n_excluded", (long long)(c->n_manifest - c->n_included));
        jsonw_array(&w, "excluded");
        for (size_t i = 0; i < c->n_ex; i++) {
            jsonw_object(&w, NULL);
            jsonw_str(&w, "reason", c->ex[i].reason);
            jsonw_int(&w, "n", (long long)c->ex[i].n);
            jsonw_end(&w);
        }
        jsonw_end(&w);
        jsonw_int(&w, "patients_in_several_splits", (long long)c->patients_multi_split);
    }
    jsonw_end(&w);
    jsonw_object(&w, "splits");
    jsonw_str(&w, "source", c->split_from_manifest ? "manifest.csv" : "metrics.json");
    jsonw_array(&w, "rows");
    for (size_t s = 0; s < c->n_sp; s++) {
        jsonw_object(&w, NULL);
        jsonw_str(&w, "split", c->sp[s].split);
        jsonw_int(&w, "images", (long long)c->sp[s].images);
        jsonw_int(&w, "patients", (long long)c->sp[s].patients);
        jsonw_int(&w, "n_pos", (long long)c->sp[s].pos);
        jsonw_int(&w, "n_neg", (long long)c->sp[s].neg);
        jsonw_int(&w, "n_unlabelled", (long long)c->sp[s].unknown);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_array(&w, "strata");
    for (size_t g = 0; g < c->n_st; g++) {
        const stratum *st = &c->st[g];
        jsonw_object(&w, NULL);
        jsonw_str(&w, "column", st->column);
        jsonw_array_inline(&w, "values");
        for (size_t v = 0; v < st->n_value; v++) jsonw_str(&w, NULL, st->value[v]);
        jsonw_end(&w);
        jsonw_object(&w, "counts");
        for (size_t s = 0; s < c->n_sp; s++) {
            jsonw_array_inline(&w, c->sp[s].split);
            for (size_t v = 0; v < st->n_value; v++) jsonw_int(&w, NULL, (long long)st->count[s * st->n_value + v]);
            jsonw_end(&w);
        }
        jsonw_end(&w);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_end(&w);
    jsonw_array(&w, "gradcam");
    for (size_t i = 0; i < c->n_cam; i++) {
        jsonw_object(&w, NULL);
        jsonw_str(&w, "file", c->cam[i].file);
        jsonw_str(&w, "caption", c->cam[i].caption);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    if (c->have_loc) {
        jsonw_raw(&w, "localisation");
        jsonv_write(f, &c->loc, 0);
    } else {
        jsonw_null(&w, "localisation");
    }
    jsonw_array(&w, "config_files");
    for (size_t i = 0; i < c->n_cfg; i++) jsonw_str(&w, NULL, c->cfg[i].name);
    jsonw_end(&w);
    jsonw_raw(&w, "metrics");
    jsonv_write(f, &c->m, 0);
    jsonw_end(&w);
    fputc('\n', f);
}

/* ---- driver ------------------------------------------------------------ */

static fa_status write_atomic(const char *path, const report_ctx *c, int json, fa_error *err) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return fa_error_set(err, FA_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (json)
        write_json(c, f);
    else
        write_html(c, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: write failed", path);
    }
    if (rename(tmp, path) != 0) {
        fa_status st = fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
        remove(tmp);
        return st;
    }
    return FA_OK;
}

fa_status report_build(const report_options *o, const char *html_path, const char *json_path,
                       fa_error *err) {
    report_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    fa_status st = load_run(&c, err);
    if (st == FA_OK && html_path) st = write_atomic(html_path, &c, 0, err);
    if (st == FA_OK && json_path) st = write_atomic(json_path, &c, 1, err);
    ctx_free(&c);
    return st;
}
