/* stats.h - diagnostic-accuracy statistics on arrays of scores and labels.
 *
 * Pure C, no I/O: AUC (Mann-Whitney), DeLong variance, confidence interval
 * and paired test (as R's pROC), Wilson score intervals, ROC points (as
 * scikit-learn's roc_curve with drop_intermediate=False), 2x2 tables,
 * operating-point selection, calibration, decision-curve net benefit,
 * McNemar's test, a seeded RNG and patient-level (cluster) resampling.
 *
 * Conventions shared by every function here:
 * - label[i] is 1 (positive, free air) or 0 (negative); score[i] is finite
 *   and higher means "more likely positive".
 * - A case is called positive when score >= threshold (scikit-learn's rule).
 * - A statistic that is undefined (no positives, empty bin, ...) is NaN;
 *   callers write NaN as JSON null and give the reason.
 * docs/metrics.md states every formula.
 */
#ifndef FA_STATS_H
#define FA_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"

/* ---- distributions ---------------------------------------------------- */

/* Standard normal CDF, Phi(x). */
double stats_normal_cdf(double x);
/* Standard normal quantile Phi^-1(p) for 0 < p < 1 (Wichura's AS241,
 * about 1e-16 relative error); -inf/+inf at 0/1, NaN outside. */
double stats_normal_quantile(double p);
/* Two-sided z critical value for a confidence level, e.g. 0.95 -> 1.95996. */
double stats_z_for_level(double level);
/* Upper tail P(X > x) of a chi-square variable with one degree of freedom. */
double stats_chi2_1_sf(double x);
/* P(X <= k) for X ~ Binomial(n, 1/2). */
double stats_binom_half_cdf(size_t k, size_t n);

/* Quantile of sorted data by linear interpolation between order statistics
 * (R's type 7, numpy's default): h = (n-1)p. NaN when n == 0. */
double stats_quantile_sorted(const double *sorted, size_t n, double p);

/* ---- counts, proportions -------------------------------------------- */

typedef struct stats_confusion {
    size_t tp, fp, tn, fn;
} stats_confusion;

/* 2x2 table of n cases at a threshold (positive when score >= threshold). */
stats_confusion stats_confusion_at(const double *score, const unsigned char *label, size_t n,
                                   double threshold);

/* Estimate and two-sided interval. All NaN when undefined. */
typedef struct stats_ci {
    double est, lo, hi;
} stats_ci;

/* Wilson score interval for x successes out of n at `level` (no continuity
 * correction; equals R's prop.test(x, n, correct = FALSE)$conf.int).
 * n == 0 gives NaN everywhere. */
stats_ci stats_wilson(size_t x, size_t n, double level);

/* Point estimates from a 2x2 table; NaN where the denominator is 0.
 * f1 = 2TP / (2TP + FP + FN). */
typedef struct stats_rates {
    double sensitivity, specificity, accuracy, ppv, npv, f1;
} stats_rates;
stats_rates stats_rates_of(stats_confusion c);

/* ---- AUC and DeLong -------------------------------------------------- */

/* AUC = P(score_pos > score_neg) + 1/2 P(equal), the Mann-Whitney U
 * statistic over n_pos*n_neg. NaN when either class is empty. O(n log n).
 * Returns FA_ERR_NOMEM on allocation failure only. */
fa_status stats_auc(const double *score, const unsigned char *label, size_t n, double *auc,
                    fa_error *err);

/* Indices 0..n-1 ordered by increasing score (ties by index). The caller
 * frees *order. */
fa_status stats_order_by_score(const double *score, size_t n, size_t **order, fa_error *err);

/* AUC of a weighted sample in O(n): case i counts w[i] times (a bootstrap
 * replicate as multiplicities), order from stats_order_by_score. Equals
 * stats_auc on the expanded sample. NaN when a class has zero weight. */
double stats_auc_weighted(const double *score, const unsigned char *label, const size_t *order,
                          size_t n, const uint32_t *w);

/* DeLong's structural components ("placements"). v10[i] for the i-th
 * positive (in input order) = fraction of negatives it beats (ties 1/2);
 * v01[j] for the j-th negative = fraction of positives that beat it.
 * theta (the AUC) = mean(v10) = mean(v01). Caller provides v10 (n_pos) and
 * v01 (n_neg) buffers. */
fa_status stats_delong_placements(const double *score, const unsigned char *label, size_t n,
                                  double *v10, double *v01, double *theta, fa_error *err);

typedef struct stats_delong {
    size_t n_pos, n_neg;
    double auc;      /* NaN when a class is empty */
    double var;      /* DeLong variance; NaN when n_pos < 2 or n_neg < 2 */
    double ci_lo, ci_hi; /* auc -/+ z*sqrt(var), clipped to [0, 1] (pROC) */
} stats_delong;

/* AUC with DeLong variance and CI at `level`, as pROC's
 * ci.auc(method = "delong"). */
fa_status stats_auc_delong(const double *score, const unsigned char *label, size_t n, double level,
                           stats_delong *out, fa_error *err);

typedef struct stats_delong_paired {
    size_t n_pos, n_neg;
    double auc1, auc2, diff; /* diff = auc1 - auc2 */
    double se;               /* sqrt(L S L'), L = (1, -1) */
    double z, p;             /* two-sided p = 2 Phi(-|z|); z = 0 when diff = se = 0 */
    double ci_lo, ci_hi;     /* diff -/+ z_crit * se (not clipped, as pROC) */
} stats_delong_paired;

/* DeLong's test for two correlated ROC curves (two scores on the same
 * cases), as pROC's roc.test(method = "delong", paired = TRUE). Needs at
 * least 2 positives and 2 negatives, else FA_ERR_ARG. */
fa_status stats_delong_paired_test(const double *score1, const double *score2,
                                   const unsigned char *label, size_t n, double level,
                                   stats_delong_paired *out, fa_error *err);

/* ---- ROC curve, operating points ----------------------------------- */

typedef struct stats_roc {
    size_t n;          /* number of points */
    double *threshold; /* threshold[0] = +inf (nothing positive), then the
                          distinct scores in decreasing order */
    size_t *tp, *fp;   /* counts with score >= threshold */
    size_t n_pos, n_neg;
} stats_roc;

/* ROC points as scikit-learn's roc_curve(drop_intermediate=False): one per
 * distinct score plus the (0, 0) point first. The caller owns *out and frees
 * it with stats_roc_free. */
fa_status stats_roc_build(const double *score, const unsigned char *label, size_t n, stats_roc *out,
                          fa_error *err);
void stats_roc_free(stats_roc *roc);

/* Threshold that reproduces ROC cut k on new data: the midpoint between
 * distinct score k and the next lower one (the data that chose it cannot
 * tell the two apart), the lowest score for the last cut, and the smallest
 * double above the highest score for cut 0. */
double stats_roc_cut_threshold(const stats_roc *roc, size_t k);

/* Cut selection on a ROC curve (return the cut index k; SIZE_MAX when
 * undefined, e.g. a class is empty):
 * - youden: maximise TPR - FPR; ties go to the higher threshold.
 * - min_sensitivity: the highest threshold with TPR >= target.
 * - min_specificity: the lowest threshold with 1 - FPR >= target. */
size_t stats_roc_youden(const stats_roc *roc);
size_t stats_roc_min_sensitivity(const stats_roc *roc, double target);
size_t stats_roc_min_specificity(const stats_roc *roc, double target);

/* ---- calibration and clinical utility ------------------------------ */

typedef struct stats_calib_bin {
    double lo, hi;         /* [lo, hi); the last bin includes 1 */
    size_t n, n_pos;
    double mean_score;     /* NaN when n == 0 */
    double observed;       /* n_pos / n, NaN when n == 0 */
} stats_calib_bin;

/* Brier score, expected calibration error over `n_bins` equal-width bins
 * on [0, 1] (ECE = sum_k n_k/N |observed_k - mean_score_k|) and the bins.
 * Scores must lie in [0, 1] (FA_ERR_ARG otherwise). bins has n_bins slots. */
fa_status stats_calibration(const double *score, const unsigned char *label, size_t n, int n_bins,
                            double *brier, double *ece, stats_calib_bin *bins, fa_error *err);

/* Net benefit of treating cases with score >= pt:
 * TP/N - FP/N * pt / (1 - pt); for treat-all use prevalence in place of
 * TP/N and (1 - prevalence) for FP/N. pt in (0, 1). */
double stats_net_benefit(const double *score, const unsigned char *label, size_t n, double pt);

/* McNemar's test on discordant pair counts b and c. Exact two-sided
 * binomial test (p = min(1, 2 P(X <= min(b, c))), X ~ Bin(b+c, 1/2)) when
 * b + c < exact_below (25 by convention), else the chi-square statistic with
 * continuity correction (|b-c| - 1)^2 / (b + c), one degree of freedom.
 * b + c == 0 gives p = 1. */
typedef struct stats_mcnemar {
    size_t b, c;
    int exact;
    double statistic; /* chi-square value, or NaN when exact */
    double p;
} stats_mcnemar;
stats_mcnemar stats_mcnemar_test(size_t b, size_t c, size_t exact_below);

/* ---- random numbers and cluster resampling ------------------------- */

/* xoshiro256** seeded through splitmix64: identical streams on every
 * platform for the same seed. */
typedef struct stats_rng {
    uint64_t s[4];
} stats_rng;
void stats_rng_seed(stats_rng *r, uint64_t seed);
uint64_t stats_rng_next(stats_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t stats_rng_below(stats_rng *r, uint64_t n);
/* 64-bit FNV-1a of a string, to derive per-analysis seeds. */
uint64_t stats_hash_str(uint64_t h, const char *s);

/* Rows grouped by cluster (patient): rows of cluster k are
 * row[start[k] .. start[k+1]). */
typedef struct stats_clusters {
    size_t n_rows, n_clusters;
    size_t *start; /* n_clusters + 1 */
    size_t *row;   /* n_rows */
} stats_clusters;

/* Group rows 0..n-1 by cluster_of[i] (values 0..n_clusters-1, each used).
 * The caller frees with stats_clusters_free. */
fa_status stats_clusters_build(const size_t *cluster_of, size_t n, size_t n_clusters,
                               stats_clusters *out, fa_error *err);
void stats_clusters_free(stats_clusters *c);

/* One cluster bootstrap replicate: draw n_clusters clusters with
 * replacement and append all their rows to *rows (grown as needed; the
 * caller owns it and its capacity *cap). Returns the replicate's row count,
 * or SIZE_MAX on allocation failure. */
size_t stats_clusters_draw(const stats_clusters *c, stats_rng *rng, size_t **rows, size_t *cap);

#endif
