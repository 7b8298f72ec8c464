/* cam_batch.c - choosing the cases the report's Grad-CAM gallery shows: true
 * and false positives and negatives of an evaluated split, the most confident
 * first, so that the errors a reader should worry about most lead (see
 * cam_select in cam.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eval/cam.h"

const char *cam_category_name(cam_category c) {
    static const char *const names[CAM_N_CAT] = {"TP", "FP", "FN", "TN"};
    return (unsigned)c < CAM_N_CAT ? names[c] : "?";
}

static int parse_label(const char *s, int *out) {
    if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "pos")) *out = 1;
    else if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "neg")) *out = 0;
    else return 0;
    return 1;
}

static int parse_num(const char *s, double *out) {
    char *end;
    if (!s[0]) return 0;
    *out = strtod(s, &end);
    return !*end && isfinite(*out);
}

typedef struct cand {
    int row;
    double score;
} cand;

static int cmp_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_asc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

fa_status cam_select(const char *name, const csv_table *t, const cam_select_opts *o, cam_pick **picks, int *n,
                     fa_error *err) {
    *picks = NULL;
    *n = 0;
    int c_label = csv_column(t, "label"), c_score = csv_column(t, "score");
    int c_model = csv_column(t, "model"), c_split = csv_column(t, "split");
    int c_out = csv_column(t, "outcome_primary"), c_thr = csv_column(t, "threshold_primary");
    if (c_label < 0 || c_score < 0)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: needs 'label' and 'score' columns (freeair eval's predictions.csv)",
                            name);
    if (c_out < 0 && c_thr < 0 && isnan(o->threshold))
        return fa_error_set(err, FA_ERR_FORMAT,
                            "%s: no outcome_primary or threshold_primary column; give --threshold", name);
    const char *model = o->model;
    if (!model && c_model >= 0) {
        /* one model is implied only when the file holds one */
        for (int r = 0; r < t->n_rows; r++) {
            const char *m = csv_cell(t, r, c_model);
            if (!model) model = m;
            else if (strcmp(model, m))
                return fa_error_set(err, FA_ERR_ARG, "%s: models '%s' and '%s' are both present; choose one with --name",
                                    name, model, m);
        }
    }
    if (o->model && c_model < 0)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: --name %s given but there is no 'model' column", name, o->model);
    cand *cs = fa_malloc_array((size_t)t->n_rows + 1, sizeof *cs);
    int *cat = fa_malloc_array((size_t)t->n_rows + 1, sizeof *cat);
    double *thr = fa_malloc_array((size_t)t->n_rows + 1, sizeof *thr);
    cam_pick *out = fa_malloc_array((size_t)t->n_rows + 1, sizeof *out);
    int *taken = fa_calloc_array((size_t)t->n_rows + 1, sizeof *taken);
    fa_status st = FA_OK;
    if (!cs || !cat || !thr || !out || !taken) st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
    int n_used = 0;
    for (int r = 0; st == FA_OK && r < t->n_rows; r++) {
        cat[r] = -1;
        if (model && c_model >= 0 && strcmp(csv_cell(t, r, c_model), model)) continue;
        if (o->split && c_split >= 0 && strcmp(csv_cell(t, r, c_split), o->split)) continue;
        int label;
        double score, th = o->threshold;
        if (!parse_label(csv_cell(t, r, c_label), &label)) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: label '%s' is not 0/1", name, r + 2,
                              csv_cell(t, r, c_label));
            break;
        }
        if (!parse_num(csv_cell(t, r, c_score), &score)) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: score '%s' is not a finite number", name, r + 2,
                              csv_cell(t, r, c_score));
            break;
        }
        if (c_thr >= 0 && csv_cell(t, r, c_thr)[0] && !parse_num(csv_cell(t, r, c_thr), &th)) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: threshold_primary '%s' is not a number", name, r + 2,
                              csv_cell(t, r, c_thr));
            break;
        }
        const char *oc = c_out >= 0 ? csv_cell(t, r, c_out) : "";
        int k = -1;
        for (int i = 0; i < CAM_N_CAT && oc[0]; i++)
            if (!strcasecmp(oc, cam_category_name((cam_category)i))) k = i;
        if (oc[0] && k < 0) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: outcome_primary '%s' is not TP/FP/FN/TN", name, r + 2, oc);
            break;
        }
        if (k < 0) {
            if (isnan(th)) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: no outcome and no threshold; give --threshold",
                                  name, r + 2);
                break;
            }
            int pos = score >= th; /* freeair eval's rule */
            k = label ? (pos ? CAM_CAT_TP : CAM_CAT_FN) : (pos ? CAM_CAT_FP : CAM_CAT_TN);
        } else if ((k == CAM_CAT_TP || k == CAM_CAT_FN) != (label == 1)) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: outcome %s contradicts label %d", name, r + 2, oc, label);
            break;
        }
        cat[r] = k;
        thr[r] = th;
        n_used++;
    }
    if (st == FA_OK && !n_used)
        st = fa_error_set(err, FA_ERR_ARG, "%s: no rows%s%s%s%s", name, model ? " of model " : "", model ? model : "",
                          o->split && c_split >= 0 ? " in split " : "", o->split && c_split >= 0 ? o->split : "");
    int np = 0;
    for (int k = 0; st == FA_OK && k < CAM_N_CAT; k++) {
        int nc = 0;
        for (int r = 0; r < t->n_rows; r++)
            if (cat[r] == k) cs[nc].row = r, cs[nc].score = strtod(csv_cell(t, r, c_score), NULL), nc++;
        qsort(cs, (size_t)nc, sizeof *cs, k == CAM_CAT_TP || k == CAM_CAT_FP ? cmp_desc : cmp_asc);
        for (int i = 0; i < nc && i < o->per_category; i++) {
            cam_pick *p = &out[np++];
            p->row = cs[i].row;
            p->category = (cam_category)k;
            p->rank = i + 1;
            p->score = cs[i].score;
            p->threshold = thr[cs[i].row];
            p->label = k == CAM_CAT_TP || k == CAM_CAT_FN;
            taken[cs[i].row] = 1;
        }
    }
    for (int r = 0; st == FA_OK && o->all_positives && r < t->n_rows; r++) {
        if (taken[r] || (cat[r] != CAM_CAT_TP && cat[r] != CAM_CAT_FN)) continue;
        cam_pick *p = &out[np++];
        p->row = r;
        p->category = (cam_category)cat[r];
        p->rank = 0;
        p->score = strtod(csv_cell(t, r, c_score), NULL);
        p->threshold = thr[r];
        p->label = 1;
    }
    free(cs), free(cat), free(thr), free(taken);
    if (st != FA_OK) {
        free(out);
        return st;
    }
    *picks = out;
    *n = np;
    return FA_OK;
}
