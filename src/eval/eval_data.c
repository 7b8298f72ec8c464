/* eval_data.c - the scored-rows dataset behind `freeair eval`: building it,
 * loading it from predictions CSVs and checking it before any statistic is
 * computed (duplicates, label conflicts, validation/test leaks). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/csv.h"
#include "core/digest.h"
#include "eval/evaluate.h"
#include "eval/strmap.h"

void eval_options_default(eval_options *o) {
    memset(o, 0, sizeof *o);
    o->val_split = "val";
    o->test_split = "test";
    o->n_boot = 2000;
    o->seed = 1;
    o->level = 0.95;
    o->target_sens[0] = 0.90;
    o->target_sens[1] = 0.95;
    o->n_target_sens = 2;
    o->target_spec[0] = 0.95;
    o->target_spec[1] = 0.99;
    o->n_target_spec = 2;
    o->fixed[0] = 0.5;
    o->n_fixed = 1;
    o->primary = "youden";
    o->ece_bins = 10;
    o->dca_from = 0.01;
    o->dca_to = 0.99;
    o->dca_step = 0.01;
    o->mcnemar_exact_below = 25;
    o->hist_bins = 20;
}

static char **copy_strings(const char *const *s, int n) {
    char **out = fa_calloc_array(n > 0 ? (size_t)n : 1, sizeof *out);
    if (!out) return NULL;
    for (int i = 0; i < n; i++)
        if (!(out[i] = strdup(s[i] ? s[i] : ""))) {
            for (int j = 0; j < i; j++) free(out[j]);
            free(out);
            return NULL;
        }
    return out;
}

static void free_strings(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

fa_status eval_dataset_init(eval_dataset *ds, const char *const *group_col, int n_group,
                            const char *const *extra_col, int n_extra, fa_error *err) {
    memset(ds, 0, sizeof *ds);
    ds->group_col = copy_strings(group_col, n_group);
    ds->extra_col = copy_strings(extra_col, n_extra);
    if (!ds->group_col || !ds->extra_col) return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    ds->n_group = n_group;
    ds->n_extra = n_extra;
    ds->has_patient = 1;
    return FA_OK;
}

static void row_free(const eval_dataset *ds, eval_row *r) {
    free(r->id);
    free(r->patient_id);
    free_strings(r->group, ds->n_group);
    free_strings(r->extra, ds->n_extra);
}

void eval_dataset_free(eval_dataset *ds) {
    if (!ds) return;
    for (size_t m = 0; m < ds->n_model; m++) {
        for (size_t i = 0; i < ds->model[m].n_row; i++) row_free(ds, &ds->model[m].row[i]);
        free(ds->model[m].row);
        free(ds->model[m].name);
    }
    free(ds->model);
    free_strings(ds->group_col, ds->n_group);
    free_strings(ds->extra_col, ds->n_extra);
    for (int s = 0; s < ds->n_source; s++) {
        free(ds->source[s].path);
        free(ds->source[s].role);
    }
    for (size_t w = 0; w < ds->n_warning; w++) free(ds->warning[w]);
    free(ds->warning);
    memset(ds, 0, sizeof *ds);
}

void eval_dataset_warn(eval_dataset *ds, const char *fmt, ...) {
    char buf[FA_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **w = realloc(ds->warning, (ds->n_warning + 1) * sizeof *w);
    if (!w) return; /* a lost warning is better than a failed evaluation */
    ds->warning = w;
    if ((w[ds->n_warning] = strdup(buf))) ds->n_warning++;
}

fa_status eval_dataset_add_source(eval_dataset *ds, const char *path, const char *role, int *index,
                                  fa_error *err) {
    if (ds->n_source >= (int)(sizeof ds->source / sizeof ds->source[0]))
        return fa_error_set(err, FA_ERR_ARG, "eval: too many input files");
    eval_source *s = &ds->source[ds->n_source];
    memset(s, 0, sizeof *s);
    fa_status st = digest_sha256_file(path, s->sha256, err);
    if (st != FA_OK) return st;
    s->path = strdup(path);
    s->role = strdup(role);
    if (!s->path || !s->role) {
        free(s->path);
        free(s->role);
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    *index = ds->n_source++;
    return FA_OK;
}

static const char *source_name(const eval_dataset *ds, int source) {
    return source >= 0 && source < ds->n_source ? ds->source[source].path : "input";
}

fa_status eval_dataset_add(eval_dataset *ds, const char *model, const eval_row *in, fa_error *err) {
    const char *src = source_name(ds, in->source);
    if (!in->id || !in->id[0])
        return fa_error_set(err, FA_ERR_FORMAT, "%s: line %zu: empty id", src, in->source_row + 1);
    if (!isfinite(in->score))
        return fa_error_set(err, FA_ERR_NUMERIC, "%s: line %zu (id '%s'): score is %s", src,
                            in->source_row + 1, in->id, isnan(in->score) ? "NaN" : "infinite");
    if (in->label > 1)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: line %zu (id '%s'): label must be 0 or 1", src,
                            in->source_row + 1, in->id);
    if (in->split != EVAL_SPLIT_VAL && in->split != EVAL_SPLIT_TEST)
        return fa_error_set(err, FA_ERR_INTERNAL, "%s: line %zu: bad split code", src,
                            in->source_row + 1);
    size_t m = 0;
    while (m < ds->n_model && strcmp(ds->model[m].name, model)) m++;
    if (m == ds->n_model) {
        eval_model *nm = realloc(ds->model, (ds->n_model + 1) * sizeof *nm);
        if (!nm) return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
        ds->model = nm;
        memset(&nm[m], 0, sizeof nm[m]);
        if (!(nm[m].name = strdup(model))) return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
        ds->n_model++;
    }
    eval_model *em = &ds->model[m];
    if (em->n_row == em->cap) {
        size_t cap = em->cap ? em->cap * 2 : 256;
        eval_row *nr = fa_malloc_array(cap, sizeof *nr);
        if (!nr) return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
        if (em->n_row) memcpy(nr, em->row, em->n_row * sizeof *nr);
        free(em->row);
        em->row = nr;
        em->cap = cap;
    }
    eval_row r = *in;
    r.id = strdup(in->id);
    r.patient_id = strdup(in->patient_id && in->patient_id[0] ? in->patient_id : in->id);
    r.group = copy_strings((const char *const *)in->group, ds->n_group);
    r.extra = copy_strings((const char *const *)in->extra, ds->n_extra);
    if (!r.id || !r.patient_id || !r.group || !r.extra) {
        row_free(ds, &r);
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    em->row[em->n_row++] = r;
    return FA_OK;
}

/* ---- CSV loading ------------------------------------------------------ */

static int parse_label(const char *s, unsigned char *out) {
    while (isspace((unsigned char)*s)) s++;
    char buf[16];
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!strcmp(buf, "1") || !strcmp(buf, "1.0") || !strcasecmp(buf, "true")) {
        *out = 1;
        return 1;
    }
    if (!strcmp(buf, "0") || !strcmp(buf, "0.0") || !strcasecmp(buf, "false")) {
        *out = 0;
        return 1;
    }
    return 0;
}

static fa_status parse_score(const char *src, size_t line, const char *id, const char *s,
                             double *out, fa_error *err) {
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    if (!*p) return fa_error_set(err, FA_ERR_FORMAT, "%s: line %zu (id '%s'): score is empty", src, line, id);
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == p || *end)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: line %zu (id '%s'): score '%s' is not a number",
                            src, line, id, s);
    if (isnan(v))
        return fa_error_set(err, FA_ERR_NUMERIC, "%s: line %zu (id '%s'): score is NaN", src, line, id);
    if (!isfinite(v))
        return fa_error_set(err, FA_ERR_NUMERIC, "%s: line %zu (id '%s'): score is infinite", src, line, id);
    *out = v;
    return FA_OK;
}

/* Short list of a table's columns for "no such column" messages. */
static void list_columns(const csv_table *t, char *buf, size_t size) {
    buf[0] = '\0';
    for (int c = 0; c < t->n_cols; c++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", c ? ", " : "", t->header[c]);
    }
}

static int is_standard_column(const char *name, const eval_options *o) {
    static const char *std[] = {"id", "patient_id", "label", "score", "model", "split", "probability", "status"};
    for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
        if (!strcmp(name, std[i])) return 1;
    for (int g = 0; g < o->n_group_by; g++)
        if (!strcmp(name, o->group_by[g])) return 1;
    return 0;
}

/* Adds the rows of one file. role_val: every row is validation (split
 * column, if any, filters to the validation value). */
static fa_status load_file(eval_dataset *ds, const char *path, int role_val, const eval_options *o,
                           size_t *n_val, size_t *n_test, fa_error *err) {
    csv_table t;
    fa_status st = csv_read_file(path, &t, err);
    if (st != FA_OK) return st;
    char cols[512];
    list_columns(&t, cols, sizeof cols);
    /* `freeair predict` writes path/probability/status: accept them as the
     * id and score, and skip the rows it could not score. */
    int c_id = csv_column(&t, "id"), c_pat = csv_column(&t, "patient_id");
    int c_label = csv_column(&t, "label"), c_score = csv_column(&t, "score");
    int c_model = csv_column(&t, "model"), c_split = csv_column(&t, "split");
    int c_status = csv_column(&t, "status");
    if (c_id < 0) c_id = csv_column(&t, "path");
    if (c_score < 0) c_score = csv_column(&t, "probability");
    size_t n_unscored = 0;
    const char *missing = c_id < 0 ? "id (or path)" : c_label < 0 ? "label" : c_score < 0 ? "score (or probability)" : NULL;
    if (missing) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no '%s' column (columns: %s)", path, missing, cols);
        csv_free(&t);
        return st;
    }
    if (c_pat < 0 && ds->has_patient) {
        ds->has_patient = 0;
        eval_dataset_warn(ds, "%s: no patient_id column: each image is treated as its own patient "
                              "(the bootstrap cannot account for repeat images)", path);
    }
    int gcol[64], xcol[256];
    for (int g = 0; g < ds->n_group; g++) {
        gcol[g] = csv_column(&t, ds->group_col[g]);
        if (gcol[g] < 0 && !role_val) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: no column '%s' to group by (columns: %s)", path,
                              ds->group_col[g], cols);
            csv_free(&t);
            return st;
        }
    }
    for (int x = 0; x < ds->n_extra; x++) xcol[x] = csv_column(&t, ds->extra_col[x]);
    int src;
    if ((st = eval_dataset_add_source(ds, path, role_val ? "validation predictions" : "predictions",
                                      &src, err)) != FA_OK) {
        csv_free(&t);
        return st;
    }
    ds->source[src].rows = (size_t)t.n_rows;
    const char *gval[64], *xval[256];
    for (int r = 0; r < t.n_rows && st == FA_OK; r++) {
        size_t line = (size_t)r + 1; /* data row; messages add the header line */
        const char *id = csv_cell(&t, r, c_id);
        int split;
        if (c_split >= 0) {
            const char *sp = csv_cell(&t, r, c_split);
            if (!strcmp(sp, o->val_split)) split = EVAL_SPLIT_VAL;
            else if (!role_val && !strcmp(sp, o->test_split)) split = EVAL_SPLIT_TEST;
            else continue; /* e.g. train rows */
        } else {
            split = role_val ? EVAL_SPLIT_VAL : EVAL_SPLIT_TEST;
        }
        const char *status = csv_cell(&t, r, c_status);
        if (status[0] && strcmp(status, "ok")) {
            n_unscored++;
            continue;
        }
        eval_row row;
        memset(&row, 0, sizeof row);
        row.id = (char *)id;
        row.patient_id = (char *)csv_cell(&t, r, c_pat);
        row.split = split;
        row.source = src;
        row.source_row = line;
        if (!parse_label(csv_cell(&t, r, c_label), &row.label)) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %zu (id '%s'): label '%s' is not 0 or 1",
                              path, line + 1, id, csv_cell(&t, r, c_label));
            break;
        }
        if ((st = parse_score(path, line + 1, id, csv_cell(&t, r, c_score), &row.score, err)) != FA_OK)
            break;
        for (int g = 0; g < ds->n_group; g++) gval[g] = csv_cell(&t, r, gcol[g]);
        for (int x = 0; x < ds->n_extra; x++) xval[x] = csv_cell(&t, r, xcol[x]);
        row.group = (char **)gval;
        row.extra = (char **)xval;
        const char *model = c_model >= 0 ? csv_cell(&t, r, c_model) : "model";
        if (!model[0]) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %zu (id '%s'): empty model name", path,
                              line + 1, id);
            break;
        }
        st = eval_dataset_add(ds, model, &row, err);
        if (st == FA_OK) split == EVAL_SPLIT_VAL ? (*n_val)++ : (*n_test)++;
    }
    csv_free(&t);
    if (st == FA_OK && n_unscored)
        eval_dataset_warn(ds, "%s: %zu row(s) with a status other than 'ok' were not scored and are left out",
                          path, n_unscored);
    return st;
}

fa_status eval_dataset_load_csv(eval_dataset *ds, const char *pred_path, const char *val_path,
                                const eval_options *o, fa_error *err) {
    csv_table t;
    fa_status st = csv_read_file(pred_path, &t, err);
    if (st != FA_OK) return st;
    if (o->n_group_by > 64) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_ARG, "eval: at most 64 --group-by columns");
    }
    const char *extra[256];
    int n_extra = 0;
    for (int c = 0; c < t.n_cols && n_extra < 256; c++)
        if (!is_standard_column(t.header[c], o)) extra[n_extra++] = t.header[c];
    int has_split = csv_column(&t, "split") >= 0;
    st = eval_dataset_init(ds, o->group_by, o->n_group_by, extra, n_extra, err);
    csv_free(&t);
    if (st != FA_OK) return st;

    size_t n_val = 0, n_test = 0;
    if ((st = load_file(ds, pred_path, 0, o, &n_val, &n_test, err)) != FA_OK) return st;
    if (n_test == 0)
        return fa_error_set(err, FA_ERR_FORMAT,
                            has_split ? "%s: no rows with split '%s'" : "%s: no data rows%s", pred_path,
                            has_split ? o->test_split : "");
    if (val_path) {
        size_t v0 = n_val, dummy = 0;
        if ((st = load_file(ds, val_path, 1, o, &n_val, &dummy, err)) != FA_OK) return st;
        if (n_val == v0)
            return fa_error_set(err, FA_ERR_FORMAT, "%s: no validation rows (split '%s')", val_path,
                                o->val_split);
    }
    ds->has_val = n_val > 0;
    if (!ds->has_val)
        eval_dataset_warn(ds,
                          has_split ? "%s: no rows with split '%s' and no --val-predictions: operating "
                                      "points are NOT locked (chosen on the test rows, optimistic)"
                                    : "%s: no split column and no --val-predictions: operating points "
                                      "are NOT locked (chosen on the test rows, optimistic)%s",
                          pred_path, has_split ? o->val_split : "");
    return FA_OK;
}

/* ---- cross-checks ----------------------------------------------------- */

fa_status eval_dataset_check(eval_dataset *ds, fa_error *err) {
    if (ds->n_model == 0) return fa_error_set(err, FA_ERR_FORMAT, "eval: no scored rows");
    fa_status st = FA_OK;
    strmap first; /* id -> model*2^32 + row, across models: label/patient agreement */
    size_t total = 0;
    for (size_t m = 0; m < ds->n_model; m++) total += ds->model[m].n_row;
    if (!strmap_init(&first, total)) return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    for (size_t m = 0; m < ds->n_model && st == FA_OK; m++) {
        eval_model *em = &ds->model[m];
        strmap ids, val_patients;
        if (!strmap_init(&ids, em->n_row) || !strmap_init(&val_patients, em->n_row)) {
            strmap_free(&ids);
            st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
            break;
        }
        size_t n_val = 0, n_test = 0, leaks = 0;
        const char *leak_example = NULL;
        for (size_t i = 0; i < em->n_row && st == FA_OK; i++) {
            eval_row *r = &em->row[i];
            r->split == EVAL_SPLIT_VAL ? n_val++ : n_test++;
            if (r->split == EVAL_SPLIT_VAL) strmap_put(&val_patients, r->patient_id, i, NULL);
            size_t prev;
            int put = strmap_put(&ids, r->id, i, &prev);
            if (put < 0) {
                st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
            } else if (put == 0) {
                const eval_row *p = &em->row[prev];
                if (p->split != r->split)
                    st = fa_error_set(err, FA_ERR_FORMAT,
                                      "%s: line %zu: id '%s' is in both the validation and the test rows "
                                      "(%s line %zu) for model '%s'",
                                      source_name(ds, r->source), r->source_row + 1, r->id,
                                      source_name(ds, p->source), p->source_row + 1, em->name);
                else
                    st = fa_error_set(err, FA_ERR_FORMAT,
                                      "%s: line %zu: duplicate id '%s' for model '%s' (first at %s line %zu)",
                                      source_name(ds, r->source), r->source_row + 1, r->id, em->name,
                                      source_name(ds, p->source), p->source_row + 1);
            }
        }
        for (size_t i = 0; i < em->n_row && st == FA_OK; i++) {
            const eval_row *r = &em->row[i];
            if (r->split == EVAL_SPLIT_TEST && strmap_get(&val_patients, r->patient_id, NULL)) {
                if (!leaks++) leak_example = r->patient_id;
            }
        }
        if (st == FA_OK && leaks)
            eval_dataset_warn(ds,
                              "model '%s': %zu test image(s) belong to patients that are also in the "
                              "validation rows (e.g. patient '%s'): the split is not by patient",
                              em->name, leaks, leak_example);
        strmap_free(&ids);
        strmap_free(&val_patients);
        if (st != FA_OK) break;
        const char *src = em->n_row ? source_name(ds, em->row[0].source) : "eval";
        if (n_test == 0)
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: model '%s' has validation rows but no test rows", src,
                              em->name);
        else if (ds->has_val && n_val == 0)
            st = fa_error_set(err, FA_ERR_FORMAT,
                              "%s: no validation rows for model '%s' (other models have them)", src, em->name);
        /* The same image must carry the same truth in every model's rows. */
        for (size_t i = 0; i < em->n_row && st == FA_OK; i++) {
            const eval_row *r = &em->row[i];
            size_t code = (m << 32) | i, prev;
            if (m >= ((size_t)1 << 31) || i >= ((size_t)1 << 32)) {
                st = fa_error_set(err, FA_ERR_ARG, "eval: too many rows");
                break;
            }
            int put = strmap_put(&first, r->id, code, &prev);
            if (put < 0) {
                st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
            } else if (put == 0) {
                const eval_model *pm = &ds->model[prev >> 32];
                const eval_row *p = &pm->row[prev & 0xffffffffu];
                if (p->label != r->label)
                    st = fa_error_set(err, FA_ERR_FORMAT,
                                      "%s: line %zu: id '%s' has label %d for model '%s' but %d for model "
                                      "'%s' (%s line %zu)",
                                      source_name(ds, r->source), r->source_row + 1, r->id, r->label,
                                      em->name, p->label, pm->name, source_name(ds, p->source),
                                      p->source_row + 1);
                else if (strcmp(p->patient_id, r->patient_id))
                    st = fa_error_set(err, FA_ERR_FORMAT,
                                      "%s: line %zu: id '%s' has patient '%s' for model '%s' but '%s' for "
                                      "model '%s'",
                                      source_name(ds, r->source), r->source_row + 1, r->id, r->patient_id,
                                      em->name, p->patient_id, pm->name);
                else if (p->split != r->split)
                    st = fa_error_set(err, FA_ERR_FORMAT,
                                      "%s: line %zu: id '%s' is a %s row for model '%s' but a %s row for "
                                      "model '%s'",
                                      source_name(ds, r->source), r->source_row + 1, r->id,
                                      r->split == EVAL_SPLIT_VAL ? "validation" : "test", em->name,
                                      p->split == EVAL_SPLIT_VAL ? "validation" : "test", pm->name);
            }
        }
    }
    /* Paired comparisons need the same images: say so when they differ. */
    for (size_t m = 1; m < ds->n_model && st == FA_OK; m++) {
        strmap ids;
        if (!strmap_init(&ids, ds->model[m].n_row)) {
            st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
            break;
        }
        for (size_t i = 0; i < ds->model[m].n_row; i++)
            if (ds->model[m].row[i].split == EVAL_SPLIT_TEST) strmap_put(&ids, ds->model[m].row[i].id, i, NULL);
        size_t missing = 0, n0 = 0;
        const char *example = NULL;
        for (size_t i = 0; i < ds->model[0].n_row; i++) {
            const eval_row *r = &ds->model[0].row[i];
            if (r->split != EVAL_SPLIT_TEST) continue;
            n0++;
            if (!strmap_get(&ids, r->id, NULL) && !missing++) example = r->id;
        }
        if (missing || ids.n != n0)
            eval_dataset_warn(ds,
                              "models '%s' and '%s' scored different test images (%zu vs %zu; e.g. '%s' "
                              "lacks id '%s'): paired comparisons use the common ids",
                              ds->model[0].name, ds->model[m].name, n0, ids.n, ds->model[m].name,
                              example ? example : "?");
        strmap_free(&ids);
    }
    strmap_free(&first);
    return st;
}
