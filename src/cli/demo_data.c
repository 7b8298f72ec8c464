/* demo_data.c - the glue between the demo's stages (see demo.h): truth
 * columns for the scan merge, the study's split counts scaled to the cohort,
 * scoring the validation and test images with the trained checkpoints, and
 * the summary read back from metrics.json. */
#include "cli/demo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/csv.h"
#include "data/manifest.h"
#include "data/split.h"
#include "eval/jsonv.h"
#include "train/tpredict.h"

/* ------------------------------------------------------------------------ */
/* Truth columns                                                             */

fa_status demo_write_truth(const char *synth_dir, const char *truth_csv, fa_error *err) {
    char manifest[DEMO_PATH_MAX];
    fa_status st = demo_join(manifest, sizeof manifest, synth_dir, "manifest.csv", err);
    if (st != FA_OK) return st;
    csv_table t;
    memset(&t, 0, sizeof t);
    if ((st = csv_read_file(manifest, &t, err)) != FA_OK) return st;
    int path_col = csv_column(&t, "path");
    int mask_col = csv_column(&t, "free_air_mask");
    int *keep = fa_calloc_array((size_t)t.n_cols + 1, sizeof *keep);
    const char **row = fa_calloc_array((size_t)t.n_cols + 1, sizeof *row);
    char **abs = fa_calloc_array(2, sizeof *abs);
    int nk = 0;
    if (!keep || !row || !abs) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", manifest);
        goto done;
    }
    if (path_col < 0 || csv_column(&t, "label") < 0) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no path or label column: not a freeair synth manifest", manifest);
        goto done;
    }
    /* the truth = every column that a header scan cannot produce */
    for (int c = 0; c < t.n_cols; c++)
        if (manifest_column_index(t.header[c]) < 0) keep[nk++] = c;
    abs[0] = malloc(DEMO_PATH_MAX);
    abs[1] = malloc(DEMO_PATH_MAX);
    if (!abs[0] || !abs[1]) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", manifest);
        goto done;
    }
    demo_out o;
    if ((st = demo_out_open(&o, truth_csv, err)) != FA_OK) goto done;
    row[0] = "path";
    for (int k = 0; k < nk; k++) row[k + 1] = t.header[keep[k]];
    csv_write_row(o.f, nk + 1, row);
    for (int r = 0; r < t.n_rows && st == FA_OK; r++) {
        const char *p = csv_cell(&t, r, path_col);
        if (!p[0]) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: empty path", manifest, r + 2);
            break;
        }
        /* absolute paths: the merge then matches exactly, and the mask
         * column stays usable from any working directory */
        if (p[0] == '/') snprintf(abs[0], DEMO_PATH_MAX, "%s", p);
        else if ((st = demo_join(abs[0], DEMO_PATH_MAX, synth_dir, p, err)) != FA_OK) break;
        row[0] = abs[0];
        for (int k = 0; k < nk; k++) {
            const char *v = csv_cell(&t, r, keep[k]);
            if (keep[k] == mask_col && v[0] && v[0] != '/') {
                if ((st = demo_join(abs[1], DEMO_PATH_MAX, synth_dir, v, err)) != FA_OK) break;
                v = abs[1];
            }
            row[k + 1] = v;
        }
        if (st == FA_OK) csv_write_row(o.f, nk + 1, row);
    }
    st = demo_out_close(&o, st, err);
done:
    if (abs) {
        free(abs[0]);
        free(abs[1]);
    }
    free(abs);
    free(row);
    free(keep);
    csv_free(&t);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Manifest and split checks                                                 */

fa_status demo_check_manifest(const char *manifest, int *n_ok, int *n_excluded, fa_error *err) {
    csv_table t;
    memset(&t, 0, sizeof t);
    fa_status st = csv_read_file(manifest, &t, err);
    if (st != FA_OK) return st;
    int sc = csv_column(&t, "status"), lc = csv_column(&t, "label"), pc = csv_column(&t, "path");
    *n_ok = *n_excluded = 0;
    if (sc < 0 || lc < 0) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no %s column", manifest, sc < 0 ? "status" : "label");
    } else {
        for (int r = 0; r < t.n_rows; r++) {
            if (strcmp(csv_cell(&t, r, sc), MANIFEST_STATUS_OK)) {
                (*n_excluded)++;
                continue;
            }
            (*n_ok)++;
            int l = split_parse_label(csv_cell(&t, r, lc));
            if (l != 0 && l != 1) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d (%s): no label: the truth merge did not match it",
                                  manifest, r + 2, csv_cell(&t, r, pc));
                break;
            }
        }
        if (st == FA_OK && *n_ok == 0)
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: no image passed the chest gate", manifest);
    }
    csv_free(&t);
    return st;
}

typedef struct keyed_row {
    const char *key;
    int row;
} keyed_row;

static int cmp_keyed(const void *a, const void *b) {
    const keyed_row *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* floor(n * num / den) */
static int scale_count(int n, int num, int den) { return (int)(((long long)n * num) / den); }

fa_status demo_split_counts_compute(const char *manifest, const char *pool_spec, demo_split_counts *c,
                                    fa_error *err) {
    memset(c, 0, sizeof *c);
    split_pool pool;
    fa_status st = split_parse_pool(pool_spec, &pool, err);
    if (st != FA_OK) return st;
    csv_table t;
    memset(&t, 0, sizeof t);
    if ((st = csv_read_file(manifest, &t, err)) != FA_OK) return st;
    int sc = csv_column(&t, "status"), lc = csv_column(&t, "label"), gc = csv_column(&t, "patient_id");
    for (int i = 0; i < pool.n && st == FA_OK; i++)
        if (csv_column(&t, pool.cond[i].column) < 0)
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: no column '%s' for the split pool", manifest,
                              pool.cond[i].column);
    if (st == FA_OK && (sc < 0 || lc < 0 || gc < 0))
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: needs status, label and patient_id columns", manifest);
    keyed_row *rows = st == FA_OK ? fa_malloc_array((size_t)t.n_rows + 1, sizeof *rows) : NULL;
    if (st == FA_OK && !rows) st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", manifest);
    if (st != FA_OK) {
        csv_free(&t);
        return st;
    }
    int n = 0;
    for (int r = 0; r < t.n_rows; r++)
        if (!strcmp(csv_cell(&t, r, sc), MANIFEST_STATUS_OK)) rows[n++] = (keyed_row){csv_cell(&t, r, gc), r};
    qsort(rows, (size_t)n, sizeof *rows, cmp_keyed);
    /* a patient is eligible only when all its ok images are in the pool and
     * labelled - the same rule `freeair split` applies */
    for (int i = 0; i < n;) {
        int j = i, eligible = 1, pos = 0, neg = 0;
        const char *pid = rows[i].key;
        /* an empty patient ID is a patient of its own, as in split */
        while (j < n && (j == i || (pid[0] && !strcmp(rows[j].key, pid)))) {
            int l = split_parse_label(csv_cell(&t, rows[j].row, lc));
            if (!split_pool_match(&t, rows[j].row, &pool) || (l != 0 && l != 1)) eligible = 0;
            pos += l == 1;
            neg += l == 0;
            j++;
        }
        if (eligible) {
            c->pool_pos += pos;
            c->pool_neg += neg;
        }
        i = j;
    }
    free(rows);
    csv_free(&t);
    /* the study: 375+/375- train and 45+/90- validation out of 420+/465- */
    c->train_pos = scale_count(c->pool_pos, 375, 420);
    c->val_pos = scale_count(c->pool_pos, 45, 420);
    c->train_neg = scale_count(c->pool_neg, 375, 465);
    c->val_neg = scale_count(c->pool_neg, 90, 465);
    if (c->val_pos < 2) c->val_pos = 2;
    if (c->val_neg < 2) c->val_neg = 2;
    if (c->train_pos > c->pool_pos - c->val_pos) c->train_pos = c->pool_pos - c->val_pos;
    if (c->train_neg > c->pool_neg - c->val_neg) c->train_neg = c->pool_neg - c->val_neg;
    if (c->train_pos < 2 || c->train_neg < 2)
        return fa_error_set(err, FA_ERR_ARG,
                            "%s: the pool (%s) holds %d positive and %d negative images of eligible patients; "
                            "at least 4 of each are needed for training and validation",
                            manifest, pool_spec, c->pool_pos, c->pool_neg);
    return FA_OK;
}

fa_status demo_check_split(const char *split_csv, fa_error *err) {
    csv_table t;
    memset(&t, 0, sizeof t);
    fa_status st = csv_read_file(split_csv, &t, err);
    if (st != FA_OK) return st;
    int pc = csv_column(&t, "split"), lc = csv_column(&t, "label");
    int cnt[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    static const char *const parts[3] = {"train", "val", "test"};
    if (pc < 0 || lc < 0) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no split or label column", split_csv);
    } else {
        for (int r = 0; r < t.n_rows; r++) {
            int l = split_parse_label(csv_cell(&t, r, lc));
            for (int p = 0; p < 3; p++)
                if (!strcmp(csv_cell(&t, r, pc), parts[p]) && (l == 0 || l == 1)) cnt[p][l]++;
        }
        if (!cnt[0][0] || !cnt[0][1])
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: the train split lacks a class (%d positive, %d negative)",
                              split_csv, cnt[0][1], cnt[0][0]);
        else if (cnt[1][0] < 2 || cnt[1][1] < 2)
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: validation needs two of each class (%d positive, %d negative)",
                              split_csv, cnt[1][1], cnt[1][0]);
        else if (cnt[2][0] + cnt[2][1] == 0)
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: the test split is empty", split_csv);
    }
    csv_free(&t);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Scoring                                                                   */

/* Output column -> where it comes from. Derived columns are computed. */
static const char *const group_cols[] = {"unit",          "manufacturer", "hospital", "hospital_type", "view",
                                         "free_air_size", "free_air_side", "case_type", "sex"};
#define N_GROUP_COLS ((int)(sizeof group_cols / sizeof group_cols[0]))

const char *demo_group_columns(void) {
    return "unit,manufacturer,hospital,hospital_type,view,free_air_size,free_air_side,case_type,sex";
}

/* Free-air height in buckets a reader can compare with the study's remark
 * that small crescents are missed: none (negative), <5, 5-15, >=15 mm. */
static const char *size_bucket(int label, const char *mm) {
    if (label != 1) return "none";
    char *end;
    double v = strtod(mm, &end);
    if (end == mm) return "unknown";
    return v < 5 ? "<5 mm" : v < 15 ? "5-15 mm" : ">=15 mm";
}

static void write_pred_row(FILE *f, const csv_table *t, int r, const char *model, const int *src, int ic,
                           int pidc, int sc, int lc, int pc, int sizec, double prob) {
    char score[40];
    snprintf(score, sizeof score, "%.9g", prob);
    int label = split_parse_label(csv_cell(t, r, lc));
    const char *id = ic >= 0 && csv_cell(t, r, ic)[0] ? csv_cell(t, r, ic) : csv_cell(t, r, pc);
    const char *cells[6 + N_GROUP_COLS + 1];
    int k = 0;
    cells[k++] = model;
    cells[k++] = id;
    cells[k++] = csv_cell(t, r, pidc);
    cells[k++] = csv_cell(t, r, sc);
    cells[k++] = label == 1 ? "1" : "0";
    cells[k++] = score;
    for (int g = 0; g < N_GROUP_COLS; g++) {
        if (!strcmp(group_cols[g], "free_air_size")) cells[k++] = size_bucket(label, csv_cell(t, r, sizec));
        else cells[k++] = csv_cell(t, r, src[g]);
    }
    cells[k++] = csv_cell(t, r, pc);
    csv_write_row(f, k, cells);
}

fa_status demo_score(const char *split_csv, int n_models, const char *const *model_names,
                     const char *const *run_dirs, int batch, int bf16, const char *predictions_csv,
                     double *val_auc, fa_error *err) {
    csv_table t;
    memset(&t, 0, sizeof t);
    fa_status st = csv_read_file(split_csv, &t, err);
    if (st != FA_OK) return st;
    int pc = csv_column(&t, "path"), sc = csv_column(&t, "split"), lc = csv_column(&t, "label");
    int pidc = csv_column(&t, "patient_id"), ic = csv_column(&t, "image_id");
    int sizec = csv_column(&t, "free_air_size_mm");
    int src[N_GROUP_COLS];
    for (int g = 0; g < N_GROUP_COLS; g++) {
        const char *name = group_cols[g];
        if (!strcmp(name, "case_type")) name = "difficulty"; /* the generator's case category */
        src[g] = csv_column(&t, name);
    }
    if (pc < 0 || sc < 0 || lc < 0 || pidc < 0) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: needs path, split, label and patient_id columns", split_csv);
    }
    int *rows = fa_malloc_array((size_t)t.n_rows + 1, sizeof *rows);
    double *prob = fa_malloc_array((size_t)batch, sizeof *prob);
    int *slot_row = fa_malloc_array((size_t)batch, sizeof *slot_row);
    int n = 0;
    demo_out o = {0};
    if (!rows || !prob || !slot_row) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", split_csv);
        goto done;
    }
    for (int r = 0; r < t.n_rows; r++) {
        const char *s = csv_cell(&t, r, sc);
        if (!strcmp(s, "val") || !strcmp(s, "test")) rows[n++] = r;
    }
    if ((st = demo_out_open(&o, predictions_csv, err)) != FA_OK) goto done;
    {
        const char *head[6 + N_GROUP_COLS + 1] = {"model", "id", "patient_id", "split", "label", "score"};
        for (int g = 0; g < N_GROUP_COLS; g++) head[6 + g] = group_cols[g];
        head[6 + N_GROUP_COLS] = "path";
        csv_write_row(o.f, 7 + N_GROUP_COLS, head);
    }
    for (int m = 0; m < n_models && st == FA_OK; m++) {
        tpredict_model *tm = NULL;
        if ((st = tpredict_open(&tm, run_dirs[m], batch, bf16 ? FA_PRECISION_BF16 : FA_PRECISION_FP32, err)) != FA_OK)
            break;
        if (val_auc) val_auc[m] = tpredict_info(tm)->val_auc;
        char label[96];
        snprintf(label, sizeof label, "score %s", model_names[m]);
        fa_progress pr;
        fa_progress_begin(&pr, label, n);
        for (int i = 0; i < n && st == FA_OK;) {
            int k = 0;
            while (k < batch && i < n && st == FA_OK) {
                slot_row[k] = rows[i++];
                st = tpredict_load(tm, csv_cell(&t, slot_row[k], pc), k, err);
                k++;
            }
            if (st == FA_OK) st = tpredict_run(tm, k, prob, err);
            for (int j = 0; j < k && st == FA_OK; j++) {
                if (!isfinite(prob[j])) {
                    st = fa_error_set(err, FA_ERR_NUMERIC, "%s: %s gave a non-finite score",
                                      csv_cell(&t, slot_row[j], pc), tpredict_path(tm));
                    break;
                }
                write_pred_row(o.f, &t, slot_row[j], model_names[m], src, ic, pidc, sc, lc, pc, sizec, prob[j]);
            }
            if (st == FA_OK) fa_progress_add(&pr, k);
        }
        fa_progress_end(&pr);
        tpredict_close(tm);
    }
    st = demo_out_close(&o, st, err);
done:
    free(rows);
    free(prob);
    free(slot_row);
    csv_free(&t);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */

static void ci_of(const jsonv *v, double *lo, double *hi) {
    *lo = jsonv_number(jsonv_at(v, 0));
    *hi = jsonv_number(jsonv_at(v, 1));
}

fa_status demo_read_summary(const char *metrics_json, const char *model, const char *rule, demo_summary *s,
                            fa_error *err) {
    memset(s, 0, sizeof *s);
    s->auc = s->auc_lo = s->auc_hi = s->sens = s->sens_lo = s->sens_hi = NAN;
    s->spec = s->spec_lo = s->spec_hi = s->threshold = NAN;
    snprintf(s->model, sizeof s->model, "%s", model);
    snprintf(s->rule, sizeof s->rule, "%s", rule);
    jsonv root;
    fa_status st = jsonv_read_file(metrics_json, &root, err);
    if (st != FA_OK) return st;
    const jsonv *models = jsonv_get(&root, "models"), *mv = NULL;
    for (size_t i = 0; i < jsonv_len(models); i++)
        if (!strcmp(jsonv_string(jsonv_get(jsonv_at(models, i), "name"), ""), model)) mv = jsonv_at(models, i);
    if (!mv) {
        jsonv_free(&root);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: no model '%s'", metrics_json, model);
    }
    const jsonv *overall = jsonv_get(mv, "overall");
    s->n = (int)jsonv_number(jsonv_get(overall, "n"));
    s->n_pos = (int)jsonv_number(jsonv_get(overall, "n_pos"));
    s->n_neg = (int)jsonv_number(jsonv_get(overall, "n_neg"));
    s->auc = jsonv_number(jsonv_path(overall, "auc.estimate"));
    ci_of(jsonv_path(overall, "auc.delong_ci"), &s->auc_lo, &s->auc_hi);
    const jsonv *ops = jsonv_get(overall, "operating_points");
    for (size_t i = 0; i < jsonv_len(ops); i++) {
        const jsonv *op = jsonv_at(ops, i);
        if (strcmp(jsonv_string(jsonv_get(op, "rule"), ""), rule)) continue;
        s->threshold = jsonv_number(jsonv_get(op, "threshold"));
        s->locked = jsonv_is_true(jsonv_get(op, "locked"));
        s->sens = jsonv_number(jsonv_path(op, "sensitivity.estimate"));
        ci_of(jsonv_path(op, "sensitivity.ci"), &s->sens_lo, &s->sens_hi);
        s->spec = jsonv_number(jsonv_path(op, "specificity.estimate"));
        ci_of(jsonv_path(op, "specificity.ci"), &s->spec_lo, &s->spec_hi);
    }
    jsonv_free(&root);
    return FA_OK;
}
