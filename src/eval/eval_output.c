/* eval_output.c - what `freeair eval` writes: metrics.json (keys documented
 * in docs/metrics.md), predictions.csv, misclassified.csv and the summary
 * tables on stdout in the study's Table 2/3/4 forms. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fa_progress.h"
#include "data/csv.h"
#include "eval/evaluate.h"
#include "eval/jsonw.h"

#define METRICS_SCHEMA "freeair.metrics/1"

static const char *display_value(const char *v) { return v && v[0] ? v : "(missing)"; }

/* ---- metrics.json ------------------------------------------------------ */

static void write_ci(jsonw *w, const char *key, stats_ci ci, const char *method) {
    jsonw_object(w, key);
    jsonw_num(w, "estimate", ci.est);
    jsonw_pair(w, "ci", ci.lo, ci.hi);
    jsonw_str(w, "method", method);
    jsonw_end(w);
}

static void write_confusion(jsonw *w, const char *key, stats_confusion c) {
    jsonw_object(w, key);
    jsonw_int(w, "tp", (long long)c.tp);
    jsonw_int(w, "fp", (long long)c.fp);
    jsonw_int(w, "tn", (long long)c.tn);
    jsonw_int(w, "fn", (long long)c.fn);
    jsonw_end(w);
}

static void write_cell(jsonw *w, const char *key, const eval_cell *c, const eval_result *res,
                       const eval_model_result *mr, const eval_options *o) {
    jsonw_object(w, key);
    if (c->column) {
        jsonw_str(w, "column", c->column);
        jsonw_str(w, "value", c->value);
    }
    jsonw_int(w, "n", (long long)c->n);
    jsonw_int(w, "n_pos", (long long)c->n_pos);
    jsonw_int(w, "n_neg", (long long)c->n_neg);
    jsonw_int(w, "n_patients", (long long)c->n_patients);

    jsonw_object(w, "auc");
    jsonw_num(w, "estimate", c->delong.auc);
    jsonw_num(w, "delong_se", sqrt(c->delong.var));
    jsonw_pair(w, "delong_ci", c->delong.ci_lo, c->delong.ci_hi);
    jsonw_pair(w, "bootstrap_ci", c->boot_lo, c->boot_hi);
    jsonw_int(w, "bootstrap_replicates", (long long)c->boot_valid);
    jsonw_int(w, "bootstrap_skipped", (long long)c->boot_skipped);
    jsonw_str(w, "reason", c->auc_reason[0] ? c->auc_reason : NULL);
    jsonw_end(w);

    jsonw_array(w, "operating_points");
    for (int k = 0; k < res->n_rule; k++) {
        const eval_op *op = &c->op[k];
        jsonw_object(w, NULL);
        jsonw_str(w, "rule", res->rule[k].name);
        jsonw_num(w, "threshold", mr->thr[k].value);
        jsonw_bool(w, "locked", mr->thr[k].locked);
        if (!op->defined) {
            jsonw_str(w, "reason", mr->thr[k].reason[0] ? mr->thr[k].reason : "threshold undefined");
            jsonw_end(w);
            continue;
        }
        write_confusion(w, "confusion", op->cm);
        write_ci(w, "sensitivity", op->sens, "wilson");
        write_ci(w, "specificity", op->spec, "wilson");
        write_ci(w, "accuracy", op->acc, "wilson");
        write_ci(w, "ppv", op->ppv, "wilson");
        write_ci(w, "npv", op->npv, "wilson");
        write_ci(w, "f1", op->f1, "cluster_bootstrap_percentile");
        jsonw_end(w);
    }
    jsonw_end(w);

    jsonw_array(w, "sens_at_spec");
    for (int k = 0; k < o->n_target_spec; k++) {
        jsonw_object(w, NULL);
        jsonw_num(w, "target_specificity", o->target_spec[k]);
        jsonw_num(w, "sensitivity", c->sas_sens[k]);
        jsonw_num(w, "specificity", c->sas_spec[k]);
        jsonw_num(w, "threshold", c->sas_thr[k]);
        jsonw_bool(w, "locked", 0);
        jsonw_end(w);
    }
    jsonw_end(w);

    jsonw_object(w, "calibration");
    jsonw_num(w, "brier", c->brier);
    jsonw_num(w, "ece", c->ece);
    jsonw_int(w, "n_bins", c->n_bin);
    jsonw_str(w, "reason", c->calib_ok ? NULL : c->calib_reason);
    jsonw_array(w, "bins");
    for (int b = 0; c->calib_ok && b < c->n_bin; b++) {
        const stats_calib_bin *bin = &c->bin[b];
        stats_ci obs = stats_wilson(bin->n_pos, bin->n, o->level);
        jsonw_object(w, NULL);
        jsonw_num(w, "lo", bin->lo);
        jsonw_num(w, "hi", bin->hi);
        jsonw_int(w, "n", (long long)bin->n);
        jsonw_int(w, "n_pos", (long long)bin->n_pos);
        jsonw_num(w, "mean_score", bin->mean_score);
        jsonw_num(w, "observed", bin->observed);
        jsonw_pair(w, "observed_ci", obs.lo, obs.hi);
        jsonw_end(w);
    }
    jsonw_end(w);
    jsonw_end(w);

    jsonw_object(w, "decision_curve");
    jsonw_str(w, "reason", c->n_dca ? NULL : c->calib_ok ? "no cases" : c->calib_reason);
    jsonw_array_inline(w, "thresholds");
    for (size_t i = 0; i < c->n_dca; i++) jsonw_num(w, NULL, c->dca_pt[i]);
    jsonw_end(w);
    jsonw_array_inline(w, "net_benefit");
    for (size_t i = 0; i < c->n_dca; i++) jsonw_num(w, NULL, c->dca_model[i]);
    jsonw_end(w);
    jsonw_array_inline(w, "treat_all");
    for (size_t i = 0; i < c->n_dca; i++) jsonw_num(w, NULL, c->dca_all[i]);
    jsonw_end(w);
    jsonw_end(w);

    jsonw_object(w, "roc");
    jsonw_str(w, "reason", c->roc_ok ? NULL : c->auc_reason);
    jsonw_array_inline(w, "thresholds");
    for (size_t i = 0; c->roc_ok && i < c->roc.n; i++) jsonw_num(w, NULL, c->roc.threshold[i]);
    jsonw_end(w);
    jsonw_array_inline(w, "fpr");
    for (size_t i = 0; c->roc_ok && i < c->roc.n; i++)
        jsonw_num(w, NULL, (double)c->roc.fp[i] / (double)c->roc.n_neg);
    jsonw_end(w);
    jsonw_array_inline(w, "tpr");
    for (size_t i = 0; c->roc_ok && i < c->roc.n; i++)
        jsonw_num(w, NULL, (double)c->roc.tp[i] / (double)c->roc.n_pos);
    jsonw_end(w);
    jsonw_end(w);

    jsonw_object(w, "score_histogram");
    jsonw_num(w, "lo", c->hist_lo);
    jsonw_num(w, "hi", c->hist_hi);
    jsonw_array_inline(w, "pos");
    for (int b = 0; b < o->hist_bins; b++) jsonw_int(w, NULL, (long long)c->hist_pos[b]);
    jsonw_end(w);
    jsonw_array_inline(w, "neg");
    for (int b = 0; b < o->hist_bins; b++) jsonw_int(w, NULL, (long long)c->hist_neg[b]);
    jsonw_end(w);
    jsonw_end(w);

    jsonw_end(w);
}

static void write_mcnemar(jsonw *w, const char *key, stats_mcnemar m) {
    jsonw_object(w, key);
    jsonw_int(w, "b", (long long)m.b);
    jsonw_int(w, "c", (long long)m.c);
    jsonw_str(w, "method", m.exact ? "exact_binomial" : "chi2_continuity");
    jsonw_num(w, "statistic", m.statistic);
    jsonw_num(w, "p_value", m.p);
    jsonw_end(w);
}

fa_status eval_write_metrics_json(const char *path, const eval_dataset *ds, const eval_options *o,
                                  const eval_result *res, const eval_provenance *prov,
                                  fa_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    jsonw w;
    jsonw_init(&w, f);
    jsonw_object(&w, NULL);
    jsonw_str(&w, "schema", METRICS_SCHEMA);
    jsonw_str(&w, "freeair_version", prov ? prov->version : NULL);
    jsonw_str(&w, "created", prov ? prov->created : NULL);
    jsonw_str(&w, "command", prov ? prov->command : NULL);
    jsonw_array(&w, "inputs");
    for (int s = 0; s < ds->n_source; s++) {
        jsonw_object(&w, NULL);
        jsonw_str(&w, "path", ds->source[s].path);
        jsonw_str(&w, "role", ds->source[s].role);
        jsonw_str(&w, "sha256", ds->source[s].sha256);
        jsonw_int(&w, "rows", (long long)ds->source[s].rows);
        jsonw_end(&w);
    }
    jsonw_end(&w);

    jsonw_object(&w, "options");
    jsonw_str(&w, "val_split", o->val_split);
    jsonw_str(&w, "test_split", o->test_split);
    jsonw_array_inline(&w, "group_by");
    for (int g = 0; g < ds->n_group; g++) jsonw_str(&w, NULL, ds->group_col[g]);
    jsonw_end(&w);
    jsonw_num(&w, "confidence_level", o->level);
    jsonw_int(&w, "bootstrap_replicates", o->n_boot);
    jsonw_int(&w, "bootstrap_seed", (long long)o->seed);
    jsonw_str(&w, "bootstrap_unit", ds->has_patient ? "patient" : "image");
    jsonw_str(&w, "primary_rule", res->rule[res->primary].name);
    jsonw_int(&w, "ece_bins", o->ece_bins);
    jsonw_int(&w, "histogram_bins", o->hist_bins);
    jsonw_int(&w, "mcnemar_exact_below", (long long)o->mcnemar_exact_below);
    jsonw_object(&w, "decision_curve_grid");
    jsonw_num(&w, "from", o->dca_from);
    jsonw_num(&w, "to", o->dca_to);
    jsonw_num(&w, "step", o->dca_step);
    jsonw_end(&w);
    jsonw_end(&w);

    jsonw_bool(&w, "thresholds_locked", res->locked);
    jsonw_array(&w, "warnings");
    for (size_t i = 0; i < ds->n_warning; i++) jsonw_str(&w, NULL, ds->warning[i]);
    jsonw_end(&w);

    jsonw_array(&w, "rules");
    for (int k = 0; k < res->n_rule; k++) {
        static const char *kinds[] = {"youden", "min_sensitivity", "min_specificity", "fixed"};
        jsonw_object(&w, NULL);
        jsonw_str(&w, "name", res->rule[k].name);
        jsonw_str(&w, "kind", kinds[res->rule[k].kind]);
        jsonw_num(&w, "target", res->rule[k].target);
        jsonw_end(&w);
    }
    jsonw_end(&w);

    jsonw_array(&w, "models");
    for (size_t m = 0; m < res->n_model; m++) {
        const eval_model_result *mr = &res->model[m];
        jsonw_object(&w, NULL);
        jsonw_str(&w, "name", mr->name);
        jsonw_object(&w, "validation");
        jsonw_int(&w, "n", (long long)mr->n_val);
        jsonw_int(&w, "n_pos", (long long)mr->n_val_pos);
        jsonw_int(&w, "n_neg", (long long)mr->n_val_neg);
        jsonw_int(&w, "n_patients", (long long)mr->n_val_patients);
        jsonw_end(&w);
        jsonw_array(&w, "thresholds");
        for (int k = 0; k < res->n_rule; k++) {
            const eval_threshold *t = &mr->thr[k];
            jsonw_object(&w, NULL);
            jsonw_str(&w, "rule", res->rule[k].name);
            jsonw_num(&w, "value", t->value);
            jsonw_bool(&w, "locked", t->locked);
            jsonw_str(&w, "source", t->source);
            jsonw_str(&w, "reason", t->reason[0] ? t->reason : NULL);
            if (ds->has_val && !isnan(t->value)) {
                stats_rates r = stats_rates_of(t->val);
                jsonw_num(&w, "val_sensitivity", r.sensitivity);
                jsonw_num(&w, "val_specificity", r.specificity);
                write_confusion(&w, "val_confusion", t->val);
            }
            jsonw_end(&w);
        }
        jsonw_end(&w);
        write_cell(&w, "overall", &mr->cell[0], res, mr, o);
        jsonw_array(&w, "subgroups");
        for (size_t c = 1; c < mr->n_cell; c++) write_cell(&w, NULL, &mr->cell[c], res, mr, o);
        jsonw_end(&w);
        jsonw_end(&w);
    }
    jsonw_end(&w);

    jsonw_array(&w, "comparisons");
    for (size_t i = 0; i < res->n_cmp; i++) {
        const eval_compare *cp = &res->cmp[i];
        jsonw_object(&w, NULL);
        jsonw_str(&w, "model_a", res->model[cp->a].name);
        jsonw_str(&w, "model_b", res->model[cp->b].name);
        if (cp->column) {
            jsonw_object(&w, "subgroup");
            jsonw_str(&w, "column", cp->column);
            jsonw_str(&w, "value", cp->value);
            jsonw_end(&w);
        } else {
            jsonw_null(&w, "subgroup");
        }
        jsonw_int(&w, "n", (long long)cp->n);
        jsonw_int(&w, "n_pos", (long long)cp->n_pos);
        jsonw_int(&w, "n_neg", (long long)cp->n_neg);
        jsonw_int(&w, "n_unmatched", (long long)cp->n_unmatched);
        jsonw_object(&w, "delong");
        if (cp->delong_ok) {
            jsonw_num(&w, "auc_a", cp->dl.auc1);
            jsonw_num(&w, "auc_b", cp->dl.auc2);
            jsonw_num(&w, "difference", cp->dl.diff);
            jsonw_pair(&w, "difference_ci", cp->dl.ci_lo, cp->dl.ci_hi);
            jsonw_num(&w, "se", cp->dl.se);
            jsonw_num(&w, "z", cp->dl.z);
            jsonw_num(&w, "p_value", cp->dl.p);
            jsonw_null(&w, "reason");
        } else {
            jsonw_str(&w, "reason", cp->reason);
        }
        jsonw_end(&w);
        jsonw_array(&w, "mcnemar");
        for (int k = 0; k < res->n_rule; k++) {
            if (!cp->mc_ok[k]) continue;
            jsonw_object(&w, NULL);
            jsonw_str(&w, "rule", res->rule[k].name);
            write_mcnemar(&w, "sensitivity", cp->mc_sens[k]);
            write_mcnemar(&w, "specificity", cp->mc_spec[k]);
            jsonw_end(&w);
        }
        jsonw_end(&w);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_end(&w);
    fputc('\n', f);
    int bad = w.error || ferror(f);
    if (fclose(f) != 0 || bad) return fa_error_set(err, FA_ERR_IO, "%s: write failed", path);
    return FA_OK;
}

/* ---- predictions.csv and misclassified.csv ---------------------------- */

static void fmt_num(char *buf, size_t size, double v) {
    if (isfinite(v))
        jsonw_format_double(buf, size, v);
    else
        snprintf(buf, size, "%s", isnan(v) ? "" : v > 0 ? "inf" : "-inf");
}

fa_status eval_write_predictions_csv(const char *path, const eval_dataset *ds,
                                     const eval_result *res, fa_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    size_t n_cols = 6 + (size_t)ds->n_group + (size_t)ds->n_extra + (size_t)res->n_rule + 2;
    const char **cell = fa_malloc_array(n_cols, sizeof *cell);
    char (*num)[48] = fa_malloc_array((size_t)res->n_rule + 2, sizeof *num);
    char (*hdr)[48] = fa_malloc_array((size_t)res->n_rule, sizeof *hdr);
    if (!cell || !num || !hdr) {
        free(cell);
        free(num);
        free(hdr);
        fclose(f);
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    size_t k = 0;
    const char *fixed[] = {"model", "id", "patient_id", "split", "label", "score"};
    for (int i = 0; i < 6; i++) cell[k++] = fixed[i];
    for (int g = 0; g < ds->n_group; g++) cell[k++] = ds->group_col[g];
    for (int x = 0; x < ds->n_extra; x++) cell[k++] = ds->extra_col[x];
    for (int r = 0; r < res->n_rule; r++) {
        snprintf(hdr[r], sizeof hdr[r], "pred_%s", res->rule[r].name);
        cell[k++] = hdr[r];
    }
    cell[k++] = "threshold_primary";
    cell[k++] = "outcome_primary";
    csv_write_row(f, (int)k, cell);
    for (size_t m = 0; m < ds->n_model; m++) {
        const eval_model *em = &ds->model[m];
        const eval_model_result *mr = &res->model[m];
        for (size_t i = 0; i < em->n_row; i++) {
            const eval_row *row = &em->row[i];
            char score[48];
            fmt_num(score, sizeof score, row->score);
            k = 0;
            cell[k++] = em->name;
            cell[k++] = row->id;
            cell[k++] = row->patient_id;
            cell[k++] = row->split == EVAL_SPLIT_VAL ? "val" : "test";
            cell[k++] = row->label ? "1" : "0";
            cell[k++] = score;
            for (int g = 0; g < ds->n_group; g++) cell[k++] = row->group[g];
            for (int x = 0; x < ds->n_extra; x++) cell[k++] = row->extra[x];
            for (int r = 0; r < res->n_rule; r++) {
                double t = mr->thr[r].value;
                cell[k++] = isnan(t) ? "" : row->score >= t ? "1" : "0";
            }
            double tp = mr->thr[res->primary].value;
            fmt_num(num[0], sizeof num[0], tp);
            cell[k++] = num[0];
            if (isnan(tp))
                cell[k++] = "";
            else {
                int pred = row->score >= tp;
                cell[k++] = pred ? (row->label ? "TP" : "FP") : (row->label ? "FN" : "TN");
            }
            csv_write_row(f, (int)k, cell);
        }
    }
    free(cell);
    free(num);
    free(hdr);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return fa_error_set(err, FA_ERR_IO, "%s: write failed", path);
    return FA_OK;
}

typedef struct miss {
    size_t model;
    const eval_row *row;
    double threshold, margin;
} miss;

static int miss_cmp(const void *a, const void *b) {
    const miss *x = a, *y = b;
    if (x->model != y->model) return x->model < y->model ? -1 : 1;
    if (x->margin != y->margin) return x->margin > y->margin ? -1 : 1;
    return strcmp(x->row->id, y->row->id);
}

fa_status eval_write_misclassified_csv(const char *path, const eval_dataset *ds,
                                       const eval_result *res, fa_error *err) {
    size_t total = 0;
    for (size_t m = 0; m < ds->n_model; m++) total += ds->model[m].n_row;
    miss *v = fa_malloc_array(total ? total : 1, sizeof *v);
    if (!v) return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    size_t n = 0;
    for (size_t m = 0; m < ds->n_model; m++) {
        double t = res->model[m].thr[res->primary].value;
        if (isnan(t)) continue;
        for (size_t i = 0; i < ds->model[m].n_row; i++) {
            const eval_row *r = &ds->model[m].row[i];
            if (r->split != EVAL_SPLIT_TEST) continue;
            int pred = r->score >= t;
            if (pred == r->label) continue;
            /* Distance from the threshold on the wrong side: the most
             * confident mistakes are the most instructive to review. */
            v[n++] = (miss){m, r, t, pred ? r->score - t : t - r->score};
        }
    }
    qsort(v, n, sizeof *v, miss_cmp);
    FILE *f = fopen(path, "w");
    if (!f) {
        free(v);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    }
    size_t n_cols = 9 + (size_t)ds->n_group;
    const char **cell = fa_malloc_array(n_cols, sizeof *cell);
    if (!cell) {
        free(v);
        fclose(f);
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    size_t k = 0;
    const char *head[] = {"rank", "model", "id", "patient_id", "label", "score", "threshold", "error",
                          "margin"};
    for (int i = 0; i < 9; i++) cell[k++] = head[i];
    for (int g = 0; g < ds->n_group; g++) cell[k++] = ds->group_col[g];
    csv_write_row(f, (int)k, cell);
    size_t rank = 0, prev_model = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        char r[24], sc[48], th[48], mg[48];
        if (v[i].model != prev_model) rank = 0;
        prev_model = v[i].model;
        snprintf(r, sizeof r, "%zu", ++rank);
        fmt_num(sc, sizeof sc, v[i].row->score);
        fmt_num(th, sizeof th, v[i].threshold);
        fmt_num(mg, sizeof mg, v[i].margin);
        k = 0;
        cell[k++] = r;
        cell[k++] = ds->model[v[i].model].name;
        cell[k++] = v[i].row->id;
        cell[k++] = v[i].row->patient_id;
        cell[k++] = v[i].row->label ? "1" : "0";
        cell[k++] = sc;
        cell[k++] = th;
        cell[k++] = v[i].row->label ? "FN" : "FP";
        cell[k++] = mg;
        for (int g = 0; g < ds->n_group; g++) cell[k++] = v[i].row->group[g];
        csv_write_row(f, (int)k, cell);
    }
    free(cell);
    free(v);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return fa_error_set(err, FA_ERR_IO, "%s: write failed", path);
    return FA_OK;
}

/* ---- summary tables --------------------------------------------------- */

/* "0.916 (0.873-0.946)" or "-" when undefined. */
static const char *fmt_ci(char *buf, size_t size, double est, double lo, double hi) {
    if (isnan(est))
        snprintf(buf, size, "-");
    else if (isnan(lo) || isnan(hi))
        snprintf(buf, size, "%.3f", est);
    else
        snprintf(buf, size, "%.3f (%.3f-%.3f)", est, lo, hi);
    return buf;
}

static void print_metrics_row(FILE *f, const char *label, int width, const eval_cell *c,
                              const eval_op *op) {
    char b[6][40];
    fprintf(f, "%-*s %-19s %-19s %-19s %-19s %-19s %-19s %s\n", width, label,
            fmt_ci(b[0], 40, op->sens.est, op->sens.lo, op->sens.hi),
            fmt_ci(b[1], 40, op->spec.est, op->spec.lo, op->spec.hi),
            fmt_ci(b[2], 40, op->acc.est, op->acc.lo, op->acc.hi),
            fmt_ci(b[3], 40, op->ppv.est, op->ppv.lo, op->ppv.hi),
            fmt_ci(b[4], 40, op->f1.est, op->f1.lo, op->f1.hi),
            fmt_ci(b[5], 40, c->delong.auc, c->delong.ci_lo, c->delong.ci_hi),
            c->auc_reason[0] && isnan(c->delong.auc) ? c->auc_reason : "");
}

static void print_header(FILE *f, const char *first, int width) {
    fprintf(f, "%-*s %-19s %-19s %-19s %-19s %-19s %-19s\n", width, first, "Sensitivity",
            "Specificity", "Accuracy", "Precision", "F1", "AUC (DeLong)");
}

void eval_print_summary(FILE *f, const eval_dataset *ds, const eval_options *o,
                        const eval_result *res) {
    int p = res->primary;
    int width = 12;
    for (size_t m = 0; m < res->n_model; m++)
        if ((int)strlen(res->model[m].name) > width) width = (int)strlen(res->model[m].name);
    const eval_cell *c0 = &res->model[0].cell[0];
    fprintf(f, "Test split: %zu images (%zu positive, %zu negative) from %zu patients.\n", c0->n,
            c0->n_pos, c0->n_neg, c0->n_patients);
    if (res->locked)
        fprintf(f, "Operating point '%s' locked on the validation split (%zu images) before the test "
                   "split was scored.\n",
                res->rule[p].name, res->model[0].n_val);
    else
        fprintf(f, "WARNING: operating points are NOT locked: no validation rows, '%s' was chosen on "
                   "the test split itself (optimistic).\n",
                res->rule[p].name);
    fprintf(f, "95%% CIs: Wilson (proportions), cluster bootstrap by %s, B=%d (F1), DeLong (AUC).\n",
            ds->has_patient ? "patient" : "image", o->n_boot);
    if (o->level != 0.95) fprintf(f, "(confidence level %g)\n", o->level);

    fprintf(f, "\nTable 2 form: test split, operating point '%s'\n", res->rule[p].name);
    print_header(f, "Method", width);
    for (size_t m = 0; m < res->n_model; m++)
        print_metrics_row(f, res->model[m].name, width, &res->model[m].cell[0],
                          &res->model[m].cell[0].op[p]);

    fprintf(f, "\nAUC: DeLong and patient-level bootstrap CIs; sensitivity at fixed specificity "
               "(read off the test ROC, not locked)\n");
    fprintf(f, "%-*s %-8s %-19s %-19s", width, "Method", "n", "AUC (DeLong)", "AUC (bootstrap)");
    for (int k = 0; k < o->n_target_spec; k++) fprintf(f, " Sens@Spec%-7.2f", o->target_spec[k]);
    fputc('\n', f);
    for (size_t m = 0; m < res->n_model; m++) {
        const eval_cell *c = &res->model[m].cell[0];
        char b1[40], b2[40];
        fprintf(f, "%-*s %-8zu %-19s %-19s", width, res->model[m].name, c->n,
                fmt_ci(b1, 40, c->delong.auc, c->delong.ci_lo, c->delong.ci_hi),
                fmt_ci(b2, 40, c->delong.auc, c->boot_lo, c->boot_hi));
        for (int k = 0; k < o->n_target_spec; k++) {
            if (isnan(c->sas_sens[k]))
                fprintf(f, " %-16s", "-");
            else
                fprintf(f, " %-16.3f", c->sas_sens[k]);
        }
        fputc('\n', f);
    }

    fprintf(f, "\nOperating points (threshold%s; test sensitivity / specificity)\n",
            res->locked ? " locked on validation" : " NOT locked");
    fprintf(f, "%-*s %-12s %-12s %-22s %-22s\n", width, "Method", "Rule", "Threshold",
            "Val sens / spec", "Test sens / spec");
    for (size_t m = 0; m < res->n_model; m++) {
        const eval_model_result *mr = &res->model[m];
        for (int k = 0; k < res->n_rule; k++) {
            const eval_threshold *t = &mr->thr[k];
            const eval_op *op = &mr->cell[0].op[k];
            char th[32] = "-", val[40] = "-", test[40] = "-";
            if (!isnan(t->value)) snprintf(th, sizeof th, "%.4g", t->value);
            if (ds->has_val && !isnan(t->value)) {
                stats_rates r = stats_rates_of(t->val);
                snprintf(val, sizeof val, "%.3f / %.3f", r.sensitivity, r.specificity);
            }
            if (op->defined) snprintf(test, sizeof test, "%.3f / %.3f", op->sens.est, op->spec.est);
            fprintf(f, "%-*s %-12s %-12s %-22s %-22s%s\n", width, k == 0 ? mr->name : "",
                    res->rule[k].name, th, val, test,
                    t->reason[0] && isnan(t->value) ? t->reason : "");
        }
    }

    for (int g = 0; g < ds->n_group; g++) {
        const char *col = ds->group_col[g];
        fprintf(f, "\nTable 3 form: test split by '%s'\n", col);
        fprintf(f, "%-24s %-10s %-10s %-10s %-10s\n", col, "Images", "Patients", "Positive", "Negative");
        const eval_model_result *mr = &res->model[0];
        for (size_t c = 1; c < mr->n_cell; c++) {
            const eval_cell *cell = &mr->cell[c];
            if (strcmp(cell->column, col)) continue;
            fprintf(f, "%-24s %-10zu %-10zu %-10zu %-10zu\n", display_value(cell->value), cell->n,
                    cell->n_patients, cell->n_pos, cell->n_neg);
        }
        fprintf(f, "\nTable 4 form: by '%s', operating point '%s'\n", col, res->rule[p].name);
        int w2 = width + 26;
        print_header(f, "Subgroup / Method", w2);
        for (size_t c = 1; c < mr->n_cell; c++) {
            if (strcmp(mr->cell[c].column, col)) continue;
            const char *value = mr->cell[c].value;
            for (size_t m = 0; m < res->n_model; m++) {
                const eval_model_result *r2 = &res->model[m];
                for (size_t c2 = 1; c2 < r2->n_cell; c2++) {
                    const eval_cell *cell = &r2->cell[c2];
                    if (strcmp(cell->column, col) || strcmp(cell->value, value)) continue;
                    char label[256];
                    snprintf(label, sizeof label, "%-24.24s %s", m == 0 ? display_value(value) : "",
                             r2->name);
                    print_metrics_row(f, label, w2, cell, &cell->op[p]);
                }
            }
        }
    }

    if (res->n_cmp) {
        fprintf(f, "\nPaired comparisons on the same test images (DeLong for AUC; McNemar at '%s')\n",
                res->rule[p].name);
        fprintf(f, "%-*s %-24s %-6s %-30s %-10s %-12s %-12s\n", 2 * width + 4, "Models", "Subgroup",
                "n", "AUC difference (95% CI)", "p (DeLong)", "p (sens)", "p (spec)");
        for (size_t i = 0; i < res->n_cmp; i++) {
            const eval_compare *cp = &res->cmp[i];
            char models[256], sub[128], diff[64] = "-", pd[24] = "-", ps[24] = "-", pspec[24] = "-";
            snprintf(models, sizeof models, "%s vs %s", res->model[cp->a].name, res->model[cp->b].name);
            if (cp->column)
                snprintf(sub, sizeof sub, "%s=%s", cp->column, display_value(cp->value));
            else
                snprintf(sub, sizeof sub, "all");
            if (cp->delong_ok) {
                snprintf(diff, sizeof diff, "%+.3f (%+.3f to %+.3f)", cp->dl.diff, cp->dl.ci_lo,
                         cp->dl.ci_hi);
                snprintf(pd, sizeof pd, "%.4g", cp->dl.p);
            }
            if (cp->mc_ok[p]) {
                snprintf(ps, sizeof ps, "%.4g%s", cp->mc_sens[p].p, cp->mc_sens[p].exact ? "*" : "");
                snprintf(pspec, sizeof pspec, "%.4g%s", cp->mc_spec[p].p, cp->mc_spec[p].exact ? "*" : "");
            }
            fprintf(f, "%-*s %-24.24s %-6zu %-30s %-10s %-12s %-12s\n", 2 * width + 4, models, sub, cp->n,
                    diff, pd, ps, pspec);
        }
        fprintf(f, "(* exact binomial McNemar; otherwise chi-square with continuity correction)\n");
    }
    for (size_t i = 0; i < ds->n_warning; i++) fprintf(f, "\nWarning: %s\n", ds->warning[i]);
}
