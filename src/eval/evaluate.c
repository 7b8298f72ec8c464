/* evaluate.c - locking operating points on validation rows and computing
 * every test-split metric, per model and subgroup, plus paired model
 * comparisons (see evaluate.h and docs/metrics.md). */
#include "eval/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/strmap.h"

/* ---- rules ------------------------------------------------------------ */

static void rule_name(char *buf, size_t size, const char *prefix, double target) {
    snprintf(buf, size, "%s_%.2f", prefix, target);
    if (strtod(buf + strlen(prefix) + 1, NULL) != target) snprintf(buf, size, "%s_%g", prefix, target);
}

static fa_status build_rules(const eval_options *o, eval_result *res, fa_error *err) {
    res->n_rule = 0;
    eval_rule *r = &res->rule[res->n_rule++];
    snprintf(r->name, sizeof r->name, "youden");
    r->kind = EVAL_RULE_YOUDEN;
    r->target = NAN;
    struct {
        const double *t;
        int n, kind;
        const char *prefix;
    } lists[3] = {{o->target_sens, o->n_target_sens, EVAL_RULE_MIN_SENS, "sens"},
                  {o->target_spec, o->n_target_spec, EVAL_RULE_MIN_SPEC, "spec"},
                  {o->fixed, o->n_fixed, EVAL_RULE_FIXED, "fixed"}};
    for (int l = 0; l < 3; l++) {
        if (lists[l].n < 0 || lists[l].n > EVAL_MAX_TARGETS)
            return fa_error_set(err, FA_ERR_ARG, "eval: at most %d %s targets", EVAL_MAX_TARGETS,
                                lists[l].prefix);
        for (int i = 0; i < lists[l].n; i++) {
            double t = lists[l].t[i];
            if (lists[l].kind != EVAL_RULE_FIXED && !(t > 0 && t <= 1))
                return fa_error_set(err, FA_ERR_ARG, "eval: %s target %g is not in (0, 1]",
                                    lists[l].prefix, t);
            if (!isfinite(t))
                return fa_error_set(err, FA_ERR_ARG, "eval: threshold %g is not finite", t);
            r = &res->rule[res->n_rule++];
            rule_name(r->name, sizeof r->name, lists[l].prefix, t);
            r->kind = lists[l].kind;
            r->target = t;
        }
    }
    /* The primary rule by name; "sens_0.9" finds "sens_0.90" too. */
    res->primary = -1;
    const char *p = o->primary ? o->primary : "youden";
    for (int i = 0; i < res->n_rule && res->primary < 0; i++) {
        if (!strcmp(res->rule[i].name, p)) res->primary = i;
        const char *us = strchr(p, '_');
        if (us && res->rule[i].kind != EVAL_RULE_YOUDEN &&
            !strncmp(res->rule[i].name, p, (size_t)(us - p) + 1) &&
            strtod(us + 1, NULL) == res->rule[i].target)
            res->primary = i;
    }
    if (res->primary < 0) {
        char names[512] = "";
        for (int i = 0; i < res->n_rule; i++) {
            size_t u = strlen(names);
            snprintf(names + u, sizeof names - u, "%s%s", i ? ", " : "", res->rule[i].name);
        }
        return fa_error_set(err, FA_ERR_ARG, "eval: unknown primary operating point '%s' (have: %s)", p,
                            names);
    }
    return FA_OK;
}

/* ---- gathering rows ---------------------------------------------------- */

typedef struct rowset {
    size_t n;
    double *score;
    unsigned char *label;
    const eval_row **row;
} rowset;

static void rowset_free(rowset *s) {
    free(s->score);
    free(s->label);
    free(s->row);
    memset(s, 0, sizeof *s);
}

/* Rows of model m in `split`, restricted to group column g == value when
 * g >= 0. */
static fa_status rowset_gather(rowset *s, const eval_model *m, int split, int g, const char *value,
                               fa_error *err) {
    memset(s, 0, sizeof *s);
    size_t cap = m->n_row;
    s->score = fa_malloc_array(cap, sizeof *s->score);
    s->label = fa_malloc_array(cap, sizeof *s->label);
    s->row = fa_malloc_array(cap, sizeof *s->row);
    if (!s->score || !s->label || !s->row) {
        rowset_free(s);
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    for (size_t i = 0; i < m->n_row; i++) {
        const eval_row *r = &m->row[i];
        if (r->split != split) continue;
        if (g >= 0 && strcmp(r->group[g], value)) continue;
        s->score[s->n] = r->score;
        s->label[s->n] = r->label;
        s->row[s->n] = r;
        s->n++;
    }
    return FA_OK;
}

/* ---- thresholds -------------------------------------------------------- */

static fa_status lock_thresholds(const eval_dataset *ds, const eval_model *m, eval_result *res,
                                 eval_model_result *mr, fa_error *err) {
    rowset s;
    int split = ds->has_val ? EVAL_SPLIT_VAL : EVAL_SPLIT_TEST;
    fa_status st = rowset_gather(&s, m, split, -1, NULL, err);
    if (st != FA_OK) return st;
    stats_roc roc;
    if ((st = stats_roc_build(s.score, s.label, s.n, &roc, err)) != FA_OK) {
        rowset_free(&s);
        return st;
    }
    if (ds->has_val) {
        mr->n_val = s.n;
        mr->n_val_pos = roc.n_pos;
        mr->n_val_neg = roc.n_neg;
        strmap pats;
        if (strmap_init(&pats, s.n))
            for (size_t i = 0; i < s.n; i++) strmap_put(&pats, s.row[i]->patient_id, i, NULL);
        mr->n_val_patients = pats.n;
        strmap_free(&pats);
    }
    const char *where = ds->has_val ? "validation" : "test";
    for (int k = 0; k < res->n_rule; k++) {
        const eval_rule *r = &res->rule[k];
        eval_threshold *t = &mr->thr[k];
        memset(t, 0, sizeof *t);
        t->value = NAN;
        if (r->kind == EVAL_RULE_FIXED) {
            t->value = r->target;
            t->locked = 1;
            t->source = "prespecified";
        } else {
            size_t cut = SIZE_MAX;
            if (r->kind == EVAL_RULE_YOUDEN) cut = stats_roc_youden(&roc);
            else if (r->kind == EVAL_RULE_MIN_SENS) cut = stats_roc_min_sensitivity(&roc, r->target);
            else cut = stats_roc_min_specificity(&roc, r->target);
            t->source = where;
            t->locked = ds->has_val;
            if (cut == SIZE_MAX) {
                snprintf(t->reason, sizeof t->reason, "the %s rows have no %s", where,
                         roc.n_pos == 0 ? "positive cases" : "negative cases");
            } else {
                t->value = stats_roc_cut_threshold(&roc, cut);
                if (!ds->has_val)
                    snprintf(t->reason, sizeof t->reason,
                             "no validation rows: chosen on the test rows (optimistic)");
            }
        }
        if (ds->has_val && !isnan(t->value)) t->val = stats_confusion_at(s.score, s.label, s.n, t->value);
    }
    stats_roc_free(&roc);
    rowset_free(&s);
    return FA_OK;
}

/* ---- one cell: a model on the test split or one of its subgroups ------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void percentile_ci(double *v, size_t n, double level, double *lo, double *hi) {
    if (n == 0) {
        *lo = *hi = NAN;
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    *lo = stats_quantile_sorted(v, n, (1.0 - level) / 2.0);
    *hi = stats_quantile_sorted(v, n, 1.0 - (1.0 - level) / 2.0);
}

static void cell_free(eval_cell *c) {
    free(c->bin);
    free(c->dca_pt);
    free(c->dca_model);
    free(c->dca_all);
    stats_roc_free(&c->roc);
    free(c->hist_pos);
    free(c->hist_neg);
}

/* Cluster-bootstrap percentile CIs for AUC and for F1 at each threshold.
 * A replicate is kept as multiplicities w[i] of the cell's rows, so AUC and
 * the 2x2 tables are one O(n) walk over the rows in score order. */
static fa_status cell_bootstrap(eval_cell *c, const rowset *s, const size_t *cluster, size_t n_clusters,
                                const eval_result *res, const eval_model_result *mr,
                                const eval_options *o, uint64_t seed, fa_error *err) {
    stats_clusters cl;
    fa_status st = stats_clusters_build(cluster, s->n, n_clusters, &cl, err);
    if (st != FA_OK) return st;
    size_t B = (size_t)o->n_boot, n = s->n, *order = NULL;
    double *auc = fa_malloc_array(B, sizeof *auc);
    double *f1 = fa_malloc_array(B * (size_t)res->n_rule, sizeof *f1);
    uint32_t *w = fa_malloc_array(n, sizeof *w);
    size_t nf1[EVAL_MAX_RULES] = {0}, first_pos[EVAL_MAX_RULES];
    if (!auc || !f1 || !w) {
        st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory for the bootstrap");
        goto done;
    }
    if ((st = stats_order_by_score(s->score, n, &order, err)) != FA_OK) goto done;
    /* Rows order[first_pos[k]..] are called positive at threshold k. */
    for (int k = 0; k < res->n_rule; k++) {
        size_t lo = 0, hi = n;
        double t = mr->thr[k].value;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->score[order[mid]] >= t) hi = mid;
            else lo = mid + 1;
        }
        first_pos[k] = lo;
    }
    stats_rng rng;
    stats_rng_seed(&rng, seed);
    c->boot_valid = c->boot_skipped = 0;
    for (size_t b = 0; b < B; b++) {
        memset(w, 0, n * sizeof *w);
        for (size_t d = 0; d < cl.n_clusters; d++) {
            size_t k = (size_t)stats_rng_below(&rng, cl.n_clusters);
            for (size_t j = cl.start[k]; j < cl.start[k + 1]; j++) w[cl.row[j]]++;
        }
        double a = stats_auc_weighted(s->score, s->label, order, n, w);
        if (isnan(a))
            c->boot_skipped++;
        else
            auc[c->boot_valid++] = a;
        /* Weighted 2x2 tables: positives/negatives below each cut. */
        double pos = 0, neg = 0, pos_below[EVAL_MAX_RULES] = {0}, neg_below[EVAL_MAX_RULES] = {0};
        for (size_t i = 0; i < n; i++) {
            size_t r = order[i];
            if (s->label[r]) pos += w[r];
            else neg += w[r];
            for (int q = 0; q < res->n_rule; q++)
                if (first_pos[q] == i + 1) {
                    pos_below[q] = pos;
                    neg_below[q] = neg;
                }
        }
        for (int q = 0; q < res->n_rule; q++) {
            if (isnan(mr->thr[q].value)) continue;
            double tp = pos - pos_below[q], fn = pos_below[q], fp = neg - neg_below[q];
            double denom = 2 * tp + fp + fn;
            if (denom > 0) f1[(size_t)q * B + nf1[q]++] = 2 * tp / denom;
        }
    }
    percentile_ci(auc, c->boot_valid, o->level, &c->boot_lo, &c->boot_hi);
    for (int k = 0; k < res->n_rule; k++) {
        if (!c->op[k].defined) continue;
        percentile_ci(f1 + (size_t)k * B, nf1[k], o->level, &c->op[k].f1.lo, &c->op[k].f1.hi);
        c->op[k].f1_boot_valid = nf1[k];
    }
done:
    free(auc);
    free(f1);
    free(w);
    free(order);
    stats_clusters_free(&cl);
    return st;
}

static fa_status cell_compute(eval_cell *c, const rowset *s, const eval_result *res,
                              const eval_model_result *mr, const eval_options *o, fa_error *err) {
    fa_status st;
    c->boot_lo = c->boot_hi = NAN;
    c->n = s->n;
    for (size_t i = 0; i < s->n; i++) s->label[i] ? c->n_pos++ : c->n_neg++;

    /* Patients as clusters for the bootstrap. */
    size_t *cluster = fa_malloc_array(s->n ? s->n : 1, sizeof *cluster);
    strmap pats;
    if (!cluster || !strmap_init(&pats, s->n)) {
        free(cluster);
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    for (size_t i = 0; i < s->n; i++) {
        size_t prev;
        if (strmap_put(&pats, s->row[i]->patient_id, pats.n, &prev) == 1)
            cluster[i] = pats.n - 1;
        else
            cluster[i] = prev;
    }
    c->n_patients = pats.n;
    strmap_free(&pats);

    /* AUC with DeLong CI. */
    if ((st = stats_auc_delong(s->score, s->label, s->n, o->level, &c->delong, err)) != FA_OK) goto out;
    if (c->n == 0)
        snprintf(c->auc_reason, sizeof c->auc_reason, "no cases");
    else if (c->n_pos == 0 || c->n_neg == 0)
        snprintf(c->auc_reason, sizeof c->auc_reason, "only %s cases: AUC is undefined",
                 c->n_pos ? "positive" : "negative");
    else if (isnan(c->delong.var))
        snprintf(c->auc_reason, sizeof c->auc_reason,
                 "the DeLong CI needs at least 2 positive and 2 negative cases");

    if (c->n_pos && c->n_neg) {
        if ((st = stats_roc_build(s->score, s->label, s->n, &c->roc, err)) != FA_OK) goto out;
        c->roc_ok = 1;
        for (int k = 0; k < o->n_target_spec; k++) {
            size_t cut = stats_roc_min_specificity(&c->roc, o->target_spec[k]);
            c->sas_sens[k] = (double)c->roc.tp[cut] / (double)c->n_pos;
            c->sas_spec[k] = 1.0 - (double)c->roc.fp[cut] / (double)c->n_neg;
            c->sas_thr[k] = stats_roc_cut_threshold(&c->roc, cut);
        }
    } else {
        for (int k = 0; k < o->n_target_spec; k++) c->sas_sens[k] = c->sas_spec[k] = c->sas_thr[k] = NAN;
    }

    /* Operating points: Wilson CIs here, F1 CI from the bootstrap below. */
    for (int k = 0; k < res->n_rule; k++) {
        eval_op *op = &c->op[k];
        op->f1.lo = op->f1.hi = op->f1.est = NAN;
        op->sens = op->spec = op->acc = op->ppv = op->npv = op->f1;
        if (isnan(mr->thr[k].value)) continue;
        op->defined = 1;
        op->cm = stats_confusion_at(s->score, s->label, s->n, mr->thr[k].value);
        const stats_confusion *m = &op->cm;
        op->sens = stats_wilson(m->tp, m->tp + m->fn, o->level);
        op->spec = stats_wilson(m->tn, m->tn + m->fp, o->level);
        op->acc = stats_wilson(m->tp + m->tn, s->n, o->level);
        op->ppv = stats_wilson(m->tp, m->tp + m->fp, o->level);
        op->npv = stats_wilson(m->tn, m->tn + m->fn, o->level);
        op->f1.est = stats_rates_of(*m).f1;
    }

    if (o->n_boot > 0 && s->n > 0) {
        uint64_t h = stats_hash_str(0, mr->name);
        h = stats_hash_str(h, c->column ? c->column : "");
        h = stats_hash_str(h, c->value ? c->value : "");
        if ((st = cell_bootstrap(c, s, cluster, c->n_patients, res, mr, o, o->seed ^ h, err)) != FA_OK)
            goto out;
    }

    /* Calibration, decision curve and score histogram need probabilities. */
    c->n_bin = o->ece_bins;
    c->bin = fa_calloc_array((size_t)o->ece_bins, sizeof *c->bin);
    if (!c->bin) {
        st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
        goto out;
    }
    fa_error cerr;
    fa_error_clear(&cerr);
    if (s->n == 0) {
        snprintf(c->calib_reason, sizeof c->calib_reason, "no cases");
        c->brier = c->ece = NAN;
    } else if (stats_calibration(s->score, s->label, s->n, o->ece_bins, &c->brier, &c->ece, c->bin,
                                 &cerr) == FA_OK) {
        c->calib_ok = 1;
    } else {
        snprintf(c->calib_reason, sizeof c->calib_reason, "%.190s", cerr.msg);
        c->brier = c->ece = NAN;
    }
    if (c->calib_ok) {
        size_t n_pt = (size_t)floor((o->dca_to - o->dca_from) / o->dca_step + 1e-9) + 1;
        c->dca_pt = fa_malloc_array(n_pt, sizeof *c->dca_pt);
        c->dca_model = fa_malloc_array(n_pt, sizeof *c->dca_model);
        c->dca_all = fa_malloc_array(n_pt, sizeof *c->dca_all);
        if (!c->dca_pt || !c->dca_model || !c->dca_all) {
            st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
            goto out;
        }
        double prev = (double)c->n_pos / (double)c->n;
        for (size_t i = 0; i < n_pt; i++) {
            /* Round to the grid so 0.07 prints as 0.07, not 0.07000000000000001. */
            double pt = round((o->dca_from + (double)i * o->dca_step) * 1e9) / 1e9;
            c->dca_pt[i] = pt;
            c->dca_model[i] = stats_net_benefit(s->score, s->label, s->n, pt);
            c->dca_all[i] = prev - (1.0 - prev) * pt / (1.0 - pt);
        }
        c->n_dca = n_pt;
    }
    c->hist_pos = fa_calloc_array((size_t)o->hist_bins, sizeof *c->hist_pos);
    c->hist_neg = fa_calloc_array((size_t)o->hist_bins, sizeof *c->hist_neg);
    if (!c->hist_pos || !c->hist_neg) {
        st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
        goto out;
    }
    c->hist_lo = 0;
    c->hist_hi = 1;
    if (!c->calib_ok && s->n) {
        c->hist_lo = c->hist_hi = s->score[0];
        for (size_t i = 0; i < s->n; i++) {
            if (s->score[i] < c->hist_lo) c->hist_lo = s->score[i];
            if (s->score[i] > c->hist_hi) c->hist_hi = s->score[i];
        }
        if (c->hist_hi == c->hist_lo) c->hist_hi = c->hist_lo + 1;
    }
    for (size_t i = 0; i < s->n; i++) {
        int b = (int)floor((s->score[i] - c->hist_lo) / (c->hist_hi - c->hist_lo) * o->hist_bins);
        if (b < 0) b = 0;
        if (b >= o->hist_bins) b = o->hist_bins - 1;
        (s->label[i] ? c->hist_pos : c->hist_neg)[b]++;
    }
out:
    free(cluster);
    return st;
}

/* Distinct values of group column g among model m's test rows, sorted. */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static fa_status group_values(const eval_model *m, int g, const char ***out, size_t *n, fa_error *err) {
    strmap seen;
    *out = fa_malloc_array(m->n_row ? m->n_row : 1, sizeof **out);
    if (!*out || !strmap_init(&seen, m->n_row)) {
        free(*out);
        *out = NULL;
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    *n = 0;
    for (size_t i = 0; i < m->n_row; i++) {
        const eval_row *r = &m->row[i];
        if (r->split == EVAL_SPLIT_TEST && strmap_put(&seen, r->group[g], i, NULL) == 1)
            (*out)[(*n)++] = r->group[g];
    }
    strmap_free(&seen);
    qsort(*out, *n, sizeof **out, cmp_str);
    return FA_OK;
}

/* ---- paired comparisons ----------------------------------------------- */

static fa_status compare_pair(eval_compare *cp, const eval_dataset *ds, const eval_result *res,
                              const eval_options *o, int g, fa_error *err) {
    const eval_model *ma = &ds->model[cp->a], *mb = &ds->model[cp->b];
    const eval_model_result *ra = &res->model[cp->a], *rb = &res->model[cp->b];
    rowset sa;
    fa_status st = rowset_gather(&sa, ma, EVAL_SPLIT_TEST, g, cp->value, err);
    if (st != FA_OK) return st;
    strmap idb;
    double *s1 = fa_malloc_array(sa.n ? sa.n : 1, sizeof *s1);
    double *s2 = fa_malloc_array(sa.n ? sa.n : 1, sizeof *s2);
    unsigned char *lab = fa_malloc_array(sa.n ? sa.n : 1, sizeof *lab);
    if (!s1 || !s2 || !lab || !strmap_init(&idb, mb->n_row)) {
        free(s1);
        free(s2);
        free(lab);
        rowset_free(&sa);
        return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    }
    for (size_t i = 0; i < mb->n_row; i++)
        if (mb->row[i].split == EVAL_SPLIT_TEST) strmap_put(&idb, mb->row[i].id, i, NULL);
    size_t n = 0;
    for (size_t i = 0; i < sa.n; i++) {
        size_t j;
        if (!strmap_get(&idb, sa.row[i]->id, &j)) {
            cp->n_unmatched++;
            continue;
        }
        s1[n] = sa.score[i];
        s2[n] = mb->row[j].score;
        lab[n] = sa.label[i];
        n++;
    }
    cp->n = n;
    for (size_t i = 0; i < n; i++) lab[i] ? cp->n_pos++ : cp->n_neg++;
    if (cp->n_pos >= 2 && cp->n_neg >= 2) {
        if ((st = stats_delong_paired_test(s1, s2, lab, n, o->level, &cp->dl, err)) == FA_OK)
            cp->delong_ok = 1;
    } else {
        snprintf(cp->reason, sizeof cp->reason,
                 "the DeLong test needs at least 2 positive and 2 negative cases (have %zu and %zu)",
                 cp->n_pos, cp->n_neg);
    }
    for (int k = 0; st == FA_OK && k < res->n_rule; k++) {
        double ta = ra->thr[k].value, tb = rb->thr[k].value;
        if (isnan(ta) || isnan(tb)) continue;
        size_t bs = 0, cs = 0, bp = 0, cpn = 0;
        for (size_t i = 0; i < n; i++) {
            int pa = s1[i] >= ta, pb = s2[i] >= tb;
            int ca = pa == lab[i], cb = pb == lab[i];
            if (ca == cb) continue;
            if (lab[i]) ca ? bs++ : cs++;
            else ca ? bp++ : cpn++;
        }
        cp->mc_ok[k] = 1;
        cp->mc_sens[k] = stats_mcnemar_test(bs, cs, o->mcnemar_exact_below);
        cp->mc_spec[k] = stats_mcnemar_test(bp, cpn, o->mcnemar_exact_below);
    }
    strmap_free(&idb);
    free(s1);
    free(s2);
    free(lab);
    rowset_free(&sa);
    return st;
}

/* ---- driver ------------------------------------------------------------ */

void eval_result_free(eval_result *res) {
    if (!res) return;
    for (size_t m = 0; m < res->n_model; m++) {
        for (size_t c = 0; c < res->model[m].n_cell; c++) cell_free(&res->model[m].cell[c]);
        free(res->model[m].cell);
    }
    free(res->model);
    free(res->cmp);
    memset(res, 0, sizeof *res);
}

fa_status eval_run(const eval_dataset *ds, const eval_options *o, eval_result *res, fa_error *err) {
    memset(res, 0, sizeof *res);
    if (!(o->level > 0 && o->level < 1))
        return fa_error_set(err, FA_ERR_ARG, "eval: confidence level %g is not in (0, 1)", o->level);
    if (o->ece_bins < 1 || o->ece_bins > 1000 || o->hist_bins < 1 || o->hist_bins > 1000)
        return fa_error_set(err, FA_ERR_ARG, "eval: bin counts must be in 1..1000");
    if (o->n_boot < 0 || o->n_boot > 1000000)
        return fa_error_set(err, FA_ERR_ARG, "eval: bootstrap replicates must be in 0..1000000");
    if (!(o->dca_step > 0) || !(o->dca_from > 0) || !(o->dca_to < 1) || o->dca_from > o->dca_to)
        return fa_error_set(err, FA_ERR_ARG, "eval: decision-curve grid must lie in (0, 1)");
    if (ds->n_group > 64) return fa_error_set(err, FA_ERR_ARG, "eval: at most 64 subgroup columns");
    fa_status st = build_rules(o, res, err);
    if (st != FA_OK) return st;
    res->locked = ds->has_val;
    res->model = fa_calloc_array(ds->n_model, sizeof *res->model);
    if (!res->model) return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
    res->n_model = ds->n_model;

    for (size_t m = 0; m < ds->n_model && st == FA_OK; m++) {
        const eval_model *em = &ds->model[m];
        eval_model_result *mr = &res->model[m];
        mr->name = em->name;
        if ((st = lock_thresholds(ds, em, res, mr, err)) != FA_OK) break;
        /* Cells: whole test split, then every value of every group column. */
        const char **vals[64] = {0};
        size_t nv[64] = {0}, n_cell = 1;
        for (int g = 0; g < ds->n_group && st == FA_OK; g++) {
            st = group_values(em, g, &vals[g], &nv[g], err);
            n_cell += nv[g];
        }
        if (st == FA_OK && !(mr->cell = fa_calloc_array(n_cell, sizeof *mr->cell)))
            st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
        for (size_t c = 0, g = 0, v = 0; st == FA_OK && c < n_cell; c++) {
            eval_cell *cell = &mr->cell[c];
            int gi = -1;
            if (c > 0) {
                while (v >= nv[g]) {
                    g++;
                    v = 0;
                }
                gi = (int)g;
                cell->column = ds->group_col[g];
                cell->value = vals[g][v++];
            }
            rowset s;
            if ((st = rowset_gather(&s, em, EVAL_SPLIT_TEST, gi, cell->value, err)) != FA_OK) break;
            mr->n_cell = c + 1;
            st = cell_compute(cell, &s, res, mr, o, err);
            rowset_free(&s);
        }
        for (int g = 0; g < ds->n_group; g++) free(vals[g]);
    }
    if (st != FA_OK) {
        eval_result_free(res);
        return st;
    }

    /* Every pair of models, on the whole test split and on each subgroup
     * (the subgroups of the first model of the pair). */
    size_t n_pairs = ds->n_model * (ds->n_model - 1) / 2, per = res->model[0].n_cell;
    for (size_t m = 0; m < ds->n_model; m++)
        if (res->model[m].n_cell > per) per = res->model[m].n_cell;
    if (n_pairs) {
        res->cmp = fa_calloc_array(n_pairs * per, sizeof *res->cmp);
        if (!res->cmp) {
            eval_result_free(res);
            return fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
        }
    }
    for (size_t a = 0; a < ds->n_model && st == FA_OK; a++)
        for (size_t b = a + 1; b < ds->n_model && st == FA_OK; b++)
            for (size_t c = 0; c < res->model[a].n_cell && st == FA_OK; c++) {
                eval_compare *cp = &res->cmp[res->n_cmp++];
                cp->a = a;
                cp->b = b;
                cp->column = res->model[a].cell[c].column;
                cp->value = res->model[a].cell[c].value;
                int g = -1;
                for (int k = 0; cp->column && k < ds->n_group; k++)
                    if (ds->group_col[k] == cp->column) g = k;
                st = compare_pair(cp, ds, res, o, g, err);
            }
    if (st != FA_OK) eval_result_free(res);
    return st;
}
