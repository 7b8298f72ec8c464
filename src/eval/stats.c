/* stats.c - diagnostic-accuracy statistics (see stats.h and docs/metrics.md). */
#include "eval/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fa_rng.h"

/* ---- distributions ---------------------------------------------------- */

double stats_normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

double stats_normal_quantile(double p) {
    if (isnan(p) || p < 0.0 || p > 1.0) return NAN;
    if (p == 0.0) return -INFINITY;
    if (p == 1.0) return INFINITY;
    /* Wichura (1988), Algorithm AS241 PPND16: the algorithm R's qnorm uses,
     * so CIs built from it match pROC to the last few bits. */
    double q = p - 0.5, r, val;
    if (fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        val = q *
              (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r +
                    67265.770927008700853) * r + 45921.953931549871457) * r +
                  13731.693765509461125) * r + 1971.5909503065514427) * r +
                133.14166789178437745) * r + 3.387132872796366608) /
              (((((((r * 5226.495278852545925 + 28729.085735721942674) * r +
                    39307.89580009271061) * r + 21213.794301586595867) * r +
                  5394.1960214247511077) * r + 687.1870074920579083) * r +
                42.313330701600911252) * r + 1.0);
        return val;
    }
    r = q < 0 ? p : 1.0 - p;
    r = sqrt(-log(r));
    if (r <= 5.0) {
        r -= 1.6;
        val = (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r +
                    0.24178072517745061177) * r + 1.27045825245236838258) * r +
                  3.64784832476320460504) * r + 5.7694972214606914055) * r +
                4.6303378461565452959) * r + 1.42343711074968357734) /
              (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r +
                    0.0151986665636164571966) * r + 0.14810397642748007459) * r +
                  0.68976733498510000455) * r + 1.6763848301838038494) * r +
                2.05319162663775882187) * r + 1.0);
    } else {
        r -= 5.0;
        val = (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r +
                    0.0012426609473880784386) * r + 0.026532189526576123093) * r +
                  0.29656057182850489123) * r + 1.7848265399172913358) * r +
                5.4637849111641143699) * r + 6.6579046435011037772) /
              (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r +
                    1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r +
                  0.0148753612908506148525) * r + 0.13692988092273580531) * r +
                0.59983220655588793769) * r + 1.0);
    }
    return q < 0.0 ? -val : val;
}

double stats_z_for_level(double level) { return stats_normal_quantile(1.0 - (1.0 - level) / 2.0); }

double stats_chi2_1_sf(double x) {
    if (isnan(x)) return NAN;
    if (x <= 0) return 1.0;
    /* chi2(1) is Z^2, so P(Z^2 > x) = P(|Z| > sqrt(x)). */
    return erfc(sqrt(x / 2.0));
}

double stats_binom_half_cdf(size_t k, size_t n) {
    if (k >= n) return 1.0;
    double sum = 0.0, ln2n = (double)n * log(2.0);
    for (size_t i = 0; i <= k; i++)
        sum += exp(lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) - ln2n);
    return sum > 1.0 ? 1.0 : sum;
}

double stats_quantile_sorted(const double *x, size_t n, double p) {
    if (n == 0 || isnan(p)) return NAN;
    if (n == 1 || p <= 0) return x[0];
    if (p >= 1) return x[n - 1];
    double h = (double)(n - 1) * p;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n) return x[n - 1];
    return x[lo] + (h - (double)lo) * (x[lo + 1] - x[lo]);
}

/* ---- counts, proportions -------------------------------------------- */

stats_confusion stats_confusion_at(const double *score, const unsigned char *label, size_t n,
                                   double threshold) {
    stats_confusion c = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int pred = score[i] >= threshold;
        if (label[i]) {
            if (pred) c.tp++; else c.fn++;
        } else {
            if (pred) c.fp++; else c.tn++;
        }
    }
    return c;
}

stats_ci stats_wilson(size_t x, size_t n, double level) {
    stats_ci ci = {NAN, NAN, NAN};
    if (n == 0 || x > n) return ci;
    double z = stats_z_for_level(level), nn = (double)n, p = (double)x / nn, z2 = z * z;
    double denom = 1.0 + z2 / nn;
    double centre = (p + z2 / (2.0 * nn)) / denom;
    double half = z / denom * sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
    ci.est = p;
    ci.lo = centre - half < 0 ? 0 : centre - half;
    ci.hi = centre + half > 1 ? 1 : centre + half;
    /* At x = 0 (x = n) the bound is exactly 0 (1) in closed form; do not
     * let rounding report 1e-17 (0.9999999999999999). */
    if (x == 0) ci.lo = 0;
    if (x == n) ci.hi = 1;
    return ci;
}

static double ratio(size_t a, size_t b) { return b ? (double)a / (double)b : NAN; }

stats_rates stats_rates_of(stats_confusion c) {
    stats_rates r;
    r.sensitivity = ratio(c.tp, c.tp + c.fn);
    r.specificity = ratio(c.tn, c.tn + c.fp);
    r.accuracy = ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn);
    r.ppv = ratio(c.tp, c.tp + c.fp);
    r.npv = ratio(c.tn, c.tn + c.fn);
    r.f1 = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn);
    return r;
}

/* ---- AUC and DeLong -------------------------------------------------- */

typedef struct scored {
    double s;
    size_t i;
} scored;

static int scored_cmp_asc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s < y->s) return -1;
    if (x->s > y->s) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static scored *sorted_scores(const double *score, size_t n) {
    scored *v = fa_malloc_array(n, sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) v[i] = (scored){score[i], i};
    qsort(v, n, sizeof *v, scored_cmp_asc);
    return v;
}

fa_status stats_order_by_score(const double *score, size_t n, size_t **order, fa_error *err) {
    scored *v = sorted_scores(score, n);
    *order = fa_malloc_array(n ? n : 1, sizeof **order);
    if (!v || !*order) {
        free(v);
        free(*order);
        *order = NULL;
        return fa_error_set(err, FA_ERR_NOMEM, "AUC: out of memory for %zu scores", n);
    }
    for (size_t i = 0; i < n; i++) (*order)[i] = v[i].i;
    free(v);
    return FA_OK;
}

double stats_auc_weighted(const double *score, const unsigned char *label, const size_t *order,
                          size_t n, const uint32_t *w) {
    /* Walk tie groups upwards: each positive beats the negatives below its
     * group and ties with those inside it. Integer and half-integer sums
     * are exact in double up to 2^52. */
    double num = 0.0, neg_below = 0.0, pos_total = 0.0;
    for (size_t g0 = 0; g0 < n;) {
        size_t g1 = g0;
        double wp = 0.0, wn = 0.0;
        while (g1 < n && score[order[g1]] == score[order[g0]]) {
            size_t i = order[g1++];
            if (label[i]) wp += w[i];
            else wn += w[i];
        }
        num += wp * (neg_below + 0.5 * wn);
        neg_below += wn;
        pos_total += wp;
        g0 = g1;
    }
    if (pos_total == 0.0 || neg_below == 0.0) return NAN;
    return num / (pos_total * neg_below);
}

fa_status stats_delong_placements(const double *score, const unsigned char *label, size_t n,
                                  double *v10, double *v01, double *theta, fa_error *err) {
    size_t n_pos = 0, n_neg = 0;
    for (size_t i = 0; i < n; i++) label[i] ? n_pos++ : n_neg++;
    *theta = NAN;
    if (n_pos == 0 || n_neg == 0) return FA_OK;
    scored *v = sorted_scores(score, n);
    size_t *ordinal = fa_malloc_array(n, sizeof *ordinal);
    if (!v || !ordinal) {
        free(v);
        free(ordinal);
        return fa_error_set(err, FA_ERR_NOMEM, "AUC: out of memory for %zu scores", n);
    }
    /* ordinal[i]: position of case i among its class, in input order. */
    for (size_t i = 0, p = 0, q = 0; i < n; i++) ordinal[i] = label[i] ? p++ : q++;
    size_t neg_below = 0, pos_below = 0;
    double sum10 = 0.0;
    for (size_t g0 = 0; g0 < n;) {
        size_t g1 = g0, peq = 0, neq = 0;
        while (g1 < n && v[g1].s == v[g0].s) {
            label[v[g1].i] ? peq++ : neq++;
            g1++;
        }
        size_t pos_above = n_pos - pos_below - peq;
        double p10 = ((double)neg_below + 0.5 * (double)neq) / (double)n_neg;
        double p01 = ((double)pos_above + 0.5 * (double)peq) / (double)n_pos;
        for (size_t k = g0; k < g1; k++) {
            size_t i = v[k].i;
            if (label[i]) {
                if (v10) v10[ordinal[i]] = p10;
                sum10 += p10;
            } else if (v01) {
                v01[ordinal[i]] = p01;
            }
        }
        neg_below += neq;
        pos_below += peq;
        g0 = g1;
    }
    *theta = sum10 / (double)n_pos;
    free(v);
    free(ordinal);
    return FA_OK;
}

fa_status stats_auc(const double *score, const unsigned char *label, size_t n, double *auc,
                    fa_error *err) {
    return stats_delong_placements(score, label, n, NULL, NULL, auc, err);
}

/* Split placements by class: returns buffers the caller frees. */
static fa_status placements_alloc(const double *score, const unsigned char *label, size_t n,
                                  size_t *n_pos, size_t *n_neg, double **v10, double **v01,
                                  double *theta, fa_error *err) {
    *n_pos = *n_neg = 0;
    for (size_t i = 0; i < n; i++) label[i] ? (*n_pos)++ : (*n_neg)++;
    *v10 = fa_malloc_array(*n_pos, sizeof **v10);
    *v01 = fa_malloc_array(*n_neg, sizeof **v01);
    if (!*v10 || !*v01) {
        free(*v10);
        free(*v01);
        *v10 = *v01 = NULL;
        return fa_error_set(err, FA_ERR_NOMEM, "DeLong: out of memory for %zu scores", n);
    }
    fa_status st = stats_delong_placements(score, label, n, *v10, *v01, theta, err);
    if (st != FA_OK) {
        free(*v10);
        free(*v01);
        *v10 = *v01 = NULL;
    }
    return st;
}

static double centred_cross(const double *a, double ta, const double *b, double tb, size_t m) {
    double s = 0.0;
    for (size_t i = 0; i < m; i++) s += (a[i] - ta) * (b[i] - tb);
    return s;
}

fa_status stats_auc_delong(const double *score, const unsigned char *label, size_t n, double level,
                           stats_delong *out, fa_error *err) {
    double *v10, *v01, theta;
    size_t m, k;
    fa_status st = placements_alloc(score, label, n, &m, &k, &v10, &v01, &theta, err);
    if (st != FA_OK) return st;
    out->n_pos = m;
    out->n_neg = k;
    out->auc = theta;
    out->var = out->ci_lo = out->ci_hi = NAN;
    if (m >= 2 && k >= 2) {
        double sx = centred_cross(v10, theta, v10, theta, m) / (double)(m - 1);
        double sy = centred_cross(v01, theta, v01, theta, k) / (double)(k - 1);
        out->var = sx / (double)m + sy / (double)k;
        double z = stats_z_for_level(level), sd = sqrt(out->var);
        out->ci_lo = theta - z * sd;
        out->ci_hi = theta + z * sd;
        if (out->ci_lo < 0) out->ci_lo = 0;
        if (out->ci_hi > 1) out->ci_hi = 1;
    }
    free(v10);
    free(v01);
    return FA_OK;
}

fa_status stats_delong_paired_test(const double *score1, const double *score2,
                                   const unsigned char *label, size_t n, double level,
                                   stats_delong_paired *out, fa_error *err) {
    double *r10 = NULL, *r01 = NULL, *s10 = NULL, *s01 = NULL, t1, t2;
    size_t m, k;
    fa_status st = placements_alloc(score1, label, n, &m, &k, &r10, &r01, &t1, err);
    if (st != FA_OK) return st;
    if (m < 2 || k < 2) {
        free(r10);
        free(r01);
        return fa_error_set(err, FA_ERR_ARG,
                            "DeLong paired test needs at least 2 positives and 2 negatives (got %zu and %zu)",
                            m, k);
    }
    st = placements_alloc(score2, label, n, &m, &k, &s10, &s01, &t2, err);
    if (st != FA_OK) {
        free(r10);
        free(r01);
        return st;
    }
    /* S = SX/m + SY/n (2x2), var(d) = L S L' with L = (1, -1). */
    double sx11 = centred_cross(r10, t1, r10, t1, m) / (double)(m - 1);
    double sx22 = centred_cross(s10, t2, s10, t2, m) / (double)(m - 1);
    double sx12 = centred_cross(r10, t1, s10, t2, m) / (double)(m - 1);
    double sy11 = centred_cross(r01, t1, r01, t1, k) / (double)(k - 1);
    double sy22 = centred_cross(s01, t2, s01, t2, k) / (double)(k - 1);
    double sy12 = centred_cross(r01, t1, s01, t2, k) / (double)(k - 1);
    double s11 = sx11 / (double)m + sy11 / (double)k;
    double s22 = sx22 / (double)m + sy22 / (double)k;
    double s12 = sx12 / (double)m + sy12 / (double)k;
    double var = s11 + s22 - 2.0 * s12;
    out->n_pos = m;
    out->n_neg = k;
    out->auc1 = t1;
    out->auc2 = t2;
    out->diff = t1 - t2;
    out->se = sqrt(var > 0 ? var : 0);
    if (out->diff == 0 && out->se == 0)
        out->z = 0;
    else
        out->z = out->diff / out->se;
    out->p = 2.0 * stats_normal_cdf(-fabs(out->z));
    double zc = stats_z_for_level(level);
    out->ci_lo = out->diff - zc * out->se;
    out->ci_hi = out->diff + zc * out->se;
    free(r10);
    free(r01);
    free(s10);
    free(s01);
    return FA_OK;
}

/* ---- ROC curve, operating points ----------------------------------- */

void stats_roc_free(stats_roc *roc) {
    if (!roc) return;
    free(roc->threshold);
    free(roc->tp);
    free(roc->fp);
    memset(roc, 0, sizeof *roc);
}

fa_status stats_roc_build(const double *score, const unsigned char *label, size_t n, stats_roc *out,
                          fa_error *err) {
    memset(out, 0, sizeof *out);
    scored *v = sorted_scores(score, n);
    size_t cap = n + 1;
    out->threshold = fa_malloc_array(cap, sizeof *out->threshold);
    out->tp = fa_malloc_array(cap, sizeof *out->tp);
    out->fp = fa_malloc_array(cap, sizeof *out->fp);
    if (!v || !out->threshold || !out->tp || !out->fp) {
        free(v);
        stats_roc_free(out);
        return fa_error_set(err, FA_ERR_NOMEM, "ROC: out of memory for %zu scores", n);
    }
    for (size_t i = 0; i < n; i++) label[i] ? out->n_pos++ : out->n_neg++;
    out->threshold[0] = INFINITY;
    out->tp[0] = out->fp[0] = 0;
    size_t k = 1, tp = 0, fp = 0;
    /* Walk from the highest score down; each distinct score is one cut. */
    for (size_t g1 = n; g1 > 0;) {
        size_t g0 = g1;
        while (g0 > 0 && v[g0 - 1].s == v[g1 - 1].s) {
            label[v[g0 - 1].i] ? tp++ : fp++;
            g0--;
        }
        out->threshold[k] = v[g1 - 1].s;
        out->tp[k] = tp;
        out->fp[k] = fp;
        k++;
        g1 = g0;
    }
    out->n = k;
    free(v);
    return FA_OK;
}

double stats_roc_cut_threshold(const stats_roc *roc, size_t k) {
    if (k >= roc->n) return NAN;
    if (k == 0) return roc->n > 1 ? nextafter(roc->threshold[1], INFINITY) : INFINITY;
    if (k == roc->n - 1) return roc->threshold[k];
    double a = roc->threshold[k], b = roc->threshold[k + 1];
    double mid = 0.5 * a + 0.5 * b;
    /* Adjacent doubles: the midpoint rounds onto b and would admit the
     * next group; fall back to the cut's own score. */
    if (!(mid > b) || mid > a) mid = a;
    return mid;
}

size_t stats_roc_youden(const stats_roc *roc) {
    if (!roc->n_pos || !roc->n_neg) return SIZE_MAX;
    /* Compare J * n_pos * n_neg = tp*n_neg - fp*n_pos in exact integers so
     * that ties are ties. */
    size_t best = 0;
    long long best_j = 0;
    for (size_t k = 0; k < roc->n; k++) {
        long long j = (long long)roc->tp[k] * (long long)roc->n_neg -
                      (long long)roc->fp[k] * (long long)roc->n_pos;
        if (k == 0 || j > best_j) {
            best_j = j;
            best = k;
        }
    }
    return best;
}

size_t stats_roc_min_sensitivity(const stats_roc *roc, double target) {
    if (!roc->n_pos) return SIZE_MAX;
    double need = target * (double)roc->n_pos - 1e-9;
    for (size_t k = 0; k < roc->n; k++)
        if ((double)roc->tp[k] >= need) return k;
    return SIZE_MAX;
}

size_t stats_roc_min_specificity(const stats_roc *roc, double target) {
    if (!roc->n_neg) return SIZE_MAX;
    double need = target * (double)roc->n_neg - 1e-9;
    size_t best = SIZE_MAX;
    for (size_t k = 0; k < roc->n; k++) {
        if ((double)(roc->n_neg - roc->fp[k]) >= need)
            best = k;
        else
            break;
    }
    return best;
}

/* ---- calibration and clinical utility ------------------------------ */

fa_status stats_calibration(const double *score, const unsigned char *label, size_t n, int n_bins,
                            double *brier, double *ece, stats_calib_bin *bins, fa_error *err) {
    if (n_bins < 1) return fa_error_set(err, FA_ERR_ARG, "calibration: %d bins", n_bins);
    for (size_t i = 0; i < n; i++)
        if (!(score[i] >= 0.0 && score[i] <= 1.0))
            return fa_error_set(err, FA_ERR_ARG,
                                "scores outside [0, 1] (e.g. %g) are not probabilities", score[i]);
    double *sum = fa_calloc_array((size_t)n_bins, sizeof *sum);
    if (!sum) return fa_error_set(err, FA_ERR_NOMEM, "calibration: out of memory");
    for (int b = 0; b < n_bins; b++) {
        bins[b].lo = (double)b / n_bins;
        bins[b].hi = (double)(b + 1) / n_bins;
        bins[b].n = bins[b].n_pos = 0;
    }
    double sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = score[i] - (double)label[i];
        sq += d * d;
        int b = (int)floor(score[i] * n_bins);
        if (b >= n_bins) b = n_bins - 1;
        bins[b].n++;
        bins[b].n_pos += label[i] != 0;
        sum[b] += score[i];
    }
    double e = 0.0;
    for (int b = 0; b < n_bins; b++) {
        if (bins[b].n) {
            bins[b].mean_score = sum[b] / (double)bins[b].n;
            bins[b].observed = (double)bins[b].n_pos / (double)bins[b].n;
            e += (double)bins[b].n / (double)n * fabs(bins[b].observed - bins[b].mean_score);
        } else {
            bins[b].mean_score = bins[b].observed = NAN;
        }
    }
    free(sum);
    *brier = n ? sq / (double)n : NAN;
    *ece = n ? e : NAN;
    return FA_OK;
}

double stats_net_benefit(const double *score, const unsigned char *label, size_t n, double pt) {
    if (n == 0 || !(pt > 0 && pt < 1)) return NAN;
    stats_confusion c = stats_confusion_at(score, label, n, pt);
    return (double)c.tp / (double)n - (double)c.fp / (double)n * pt / (1.0 - pt);
}

stats_mcnemar stats_mcnemar_test(size_t b, size_t c, size_t exact_below) {
    stats_mcnemar r = {b, c, 0, NAN, 1.0};
    size_t d = b + c;
    if (d == 0) {
        r.exact = 1;
        return r;
    }
    if (d < exact_below) {
        r.exact = 1;
        double p = 2.0 * stats_binom_half_cdf(b < c ? b : c, d);
        r.p = p > 1.0 ? 1.0 : p;
    } else {
        double diff = fabs((double)b - (double)c) - 1.0;
        if (diff < 0) diff = 0;
        r.statistic = diff * diff / (double)d;
        r.p = stats_chi2_1_sf(r.statistic);
    }
    return r;
}

/* ---- random numbers and cluster resampling ------------------------- */


void stats_rng_seed(stats_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = fa_splitmix64(&seed);
}

uint64_t stats_rng_next(stats_rng *r) { return fa_xoshiro_next(r->s); }

uint64_t stats_rng_below(stats_rng *r, uint64_t n) { return fa_xoshiro_below(r->s, n); }

uint64_t stats_hash_str(uint64_t h, const char *s) {
    if (!h) h = 0xcbf29ce484222325ULL;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= 0xff; /* separator so ("ab","c") and ("a","bc") differ */
    h *= 0x100000001b3ULL;
    return h;
}

void stats_clusters_free(stats_clusters *c) {
    if (!c) return;
    free(c->start);
    free(c->row);
    memset(c, 0, sizeof *c);
}

fa_status stats_clusters_build(const size_t *cluster_of, size_t n, size_t n_clusters,
                               stats_clusters *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    out->start = fa_calloc_array(n_clusters + 1, sizeof *out->start);
    out->row = fa_malloc_array(n, sizeof *out->row);
    if (!out->start || !out->row) {
        stats_clusters_free(out);
        return fa_error_set(err, FA_ERR_NOMEM, "bootstrap: out of memory for %zu rows", n);
    }
    for (size_t i = 0; i < n; i++) {
        if (cluster_of[i] >= n_clusters) {
            stats_clusters_free(out);
            return fa_error_set(err, FA_ERR_INTERNAL, "bootstrap: cluster %zu out of range",
                                cluster_of[i]);
        }
        out->start[cluster_of[i] + 1]++;
    }
    for (size_t k = 0; k < n_clusters; k++) out->start[k + 1] += out->start[k];
    size_t *fill = fa_malloc_array(n_clusters + 1, sizeof *fill);
    if (!fill) {
        stats_clusters_free(out);
        return fa_error_set(err, FA_ERR_NOMEM, "bootstrap: out of memory");
    }
    memcpy(fill, out->start, (n_clusters + 1) * sizeof *fill);
    for (size_t i = 0; i < n; i++) out->row[fill[cluster_of[i]]++] = i;
    free(fill);
    out->n_rows = n;
    out->n_clusters = n_clusters;
    return FA_OK;
}

size_t stats_clusters_draw(const stats_clusters *c, stats_rng *rng, size_t **rows, size_t *cap) {
    size_t len = 0;
    for (size_t d = 0; d < c->n_clusters; d++) {
        size_t k = (size_t)stats_rng_below(rng, c->n_clusters);
        size_t a = c->start[k], b = c->start[k + 1];
        if (len + (b - a) > *cap) {
            size_t ncap = *cap ? *cap : 64;
            while (ncap < len + (b - a)) {
                if (ncap > SIZE_MAX / 2 / sizeof **rows) return SIZE_MAX;
                ncap *= 2;
            }
            size_t *nr = realloc(*rows, ncap * sizeof **rows);
            if (!nr) return SIZE_MAX;
            *rows = nr;
            *cap = ncap;
        }
        memcpy(*rows + len, c->row + a, (b - a) * sizeof **rows);
        len += b - a;
    }
    return len;
}
