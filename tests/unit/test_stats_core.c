/* test_stats_core.c - unit tests of src/eval/stats.c against values from R
 * (qnorm, pnorm, prop.test, binom.test, mcnemar.test, quantile, pROC) that
 * are written out below, and against properties that must hold (ROC cut
 * rules, calibration by hand, determinism of the RNG, cluster draws). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "eval/stats.h"

FA_TEST_MAIN_STATE

static void test_distributions(void) {
    /* R: qnorm(c(0.975, 0.995, 1e-10, 0.3, 0.9999999)), pnorm(1.96) */
    CHECK_CLOSE(stats_normal_quantile(0.975), 1.95996398454005361, 1e-15, 0);
    CHECK_CLOSE(stats_normal_quantile(0.995), 2.57582930354889994, 1e-15, 0);
    CHECK_CLOSE(stats_normal_quantile(1e-10), -6.36134090240405570, 1e-14, 0);
    CHECK_CLOSE(stats_normal_quantile(0.3), -0.52440051270804067, 1e-15, 0);
    CHECK_CLOSE(stats_normal_quantile(0.9999999), 5.19933758229066179, 1e-13, 0);
    CHECK(stats_normal_quantile(0.5) == 0.0);
    CHECK(isinf(stats_normal_quantile(1.0)) && isnan(stats_normal_quantile(1.5)));
    CHECK_CLOSE(stats_normal_cdf(1.96), 0.97500210485177963, 1e-15, 0);
    CHECK_CLOSE(stats_z_for_level(0.95), 1.95996398454005361, 1e-15, 0);
    /* chi2(1) upper tail: pchisq(3.841459, 1, lower = FALSE) ~ 0.05 */
    CHECK_CLOSE(stats_chi2_1_sf(3.841458820694124), 0.05, 1e-12, 0);
    /* Binomial(4, 1/2): P(X <= 1) = 5/16 */
    CHECK_CLOSE(stats_binom_half_cdf(1, 4), 5.0 / 16.0, 1e-15, 0);
    CHECK(stats_binom_half_cdf(4, 4) == 1.0);
    /* R: quantile(c(1, 2, 3, 4, 10), c(0.025, 0.25, 0.975)) (type 7) */
    double x[] = {1, 2, 3, 4, 10};
    CHECK_CLOSE(stats_quantile_sorted(x, 5, 0.025), 1.1, 1e-15, 0);
    CHECK_CLOSE(stats_quantile_sorted(x, 5, 0.25), 2.0, 1e-15, 0);
    CHECK_CLOSE(stats_quantile_sorted(x, 5, 0.975), 9.4, 1e-14, 0);
    CHECK(isnan(stats_quantile_sorted(x, 0, 0.5)));
}

static void test_wilson(void) {
    /* R: prop.test(7, 20, correct = FALSE)$conf.int and the 0/15, 15/15 edges */
    stats_ci ci = stats_wilson(7, 20, 0.95);
    CHECK_CLOSE(ci.est, 0.35, 1e-15, 0);
    CHECK_CLOSE(ci.lo, 0.18119182410108206, 1e-14, 0);
    CHECK_CLOSE(ci.hi, 0.56714572331476365, 1e-14, 0);
    ci = stats_wilson(0, 15, 0.95);
    CHECK(ci.lo == 0.0);
    CHECK_CLOSE(ci.hi, 0.20388330103584854, 1e-14, 0);
    ci = stats_wilson(15, 15, 0.95);
    CHECK_CLOSE(ci.lo, 0.79611669896415138, 1e-14, 0);
    CHECK(ci.hi == 1.0);
    ci = stats_wilson(0, 0, 0.95);
    CHECK(isnan(ci.est) && isnan(ci.lo) && isnan(ci.hi));
}

static void test_rates(void) {
    stats_confusion c = {8, 2, 6, 4}; /* tp fp tn fn */
    stats_rates r = stats_rates_of(c);
    CHECK_CLOSE(r.sensitivity, 8.0 / 12.0, 1e-15, 0);
    CHECK_CLOSE(r.specificity, 6.0 / 8.0, 1e-15, 0);
    CHECK_CLOSE(r.accuracy, 14.0 / 20.0, 1e-15, 0);
    CHECK_CLOSE(r.ppv, 0.8, 1e-15, 0);
    CHECK_CLOSE(r.npv, 0.6, 1e-15, 0);
    CHECK_CLOSE(r.f1, 16.0 / 22.0, 1e-15, 0);
    stats_confusion none = {0, 0, 5, 0};
    r = stats_rates_of(none);
    CHECK(isnan(r.sensitivity) && isnan(r.ppv) && isnan(r.f1) && r.specificity == 1.0);
    double s[] = {0.2, 0.5, 0.5, 0.9};
    unsigned char l[] = {0, 0, 1, 1};
    stats_confusion at = stats_confusion_at(s, l, 4, 0.5); /* score >= threshold */
    CHECK(at.tp == 2 && at.fp == 1 && at.tn == 1 && at.fn == 0);
}

static void test_auc_delong(void) {
    /* R/pROC on l = c(0,0,1,1,1,0,1), s = c(.1,.4,.35,.8,.4,.4,.9):
     * auc 0.75, var(r) 0.041087962962962965, ci.auc delong hi clipped to 1. */
    double s[] = {0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9};
    double s2[] = {0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0.7};
    unsigned char l[] = {0, 0, 1, 1, 1, 0, 1};
    fa_error err;
    double auc;
    CHECK(stats_auc(s, l, 7, &auc, &err) == FA_OK);
    CHECK_CLOSE(auc, 0.75, 1e-15, 0);
    stats_delong d;
    CHECK(stats_auc_delong(s, l, 7, 0.95, &d, &err) == FA_OK);
    CHECK(d.n_pos == 4 && d.n_neg == 3);
    CHECK_CLOSE(d.var, 0.041087962962962965, 1e-15, 0);
    CHECK_CLOSE(d.ci_lo, 0.35271204681185264, 1e-14, 0);
    CHECK(d.ci_hi == 1.0);
    /* R: roc.test(r, r2, method = "delong", paired = TRUE) */
    stats_delong_paired p;
    CHECK(stats_delong_paired_test(s, s2, l, 7, 0.95, &p, &err) == FA_OK);
    CHECK_CLOSE(p.z, -1.08253175473054841, 1e-13, 0);
    CHECK_CLOSE(p.p, 0.27901631321136372, 1e-13, 0);
    CHECK_CLOSE(p.ci_lo, -0.58552857802539049, 1e-13, 0);
    CHECK_CLOSE(p.ci_hi, 0.16886191135872380, 1e-13, 0);
    /* Same scores: difference and its SE are 0; pROC reports z = 0, p = 1. */
    CHECK(stats_delong_paired_test(s, s, l, 7, 0.95, &p, &err) == FA_OK);
    CHECK(p.z == 0.0 && p.p == 1.0);
    /* Placements average to the AUC; ties count 1/2. */
    double v10[4], v01[3], theta;
    CHECK(stats_delong_placements(s, l, 7, v10, v01, &theta, &err) == FA_OK);
    CHECK_CLOSE(v10[0], (1.0 + 0.0 + 0.0) / 3.0, 1e-15, 0); /* 0.35 beats 0.1 only */
    CHECK_CLOSE(v10[2], (1.0 + 0.5 + 0.5) / 3.0, 1e-15, 0); /* 0.4 ties two 0.4s */
    CHECK_CLOSE((v01[0] + v01[1] + v01[2]) / 3.0, theta, 1e-15, 0);
    /* One class: AUC undefined (NaN), not an error. */
    unsigned char ones[] = {1, 1, 1};
    CHECK(stats_auc(s, ones, 3, &auc, &err) == FA_OK && isnan(auc));
    CHECK(stats_auc_delong(s, ones, 3, 0.95, &d, &err) == FA_OK && isnan(d.auc) && isnan(d.var));
    CHECK(stats_delong_paired_test(s, s2, ones, 3, 0.95, &p, &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "at least 2 positives") != NULL);
    /* Fewer than 2 per class: AUC defined, DeLong variance not (as pROC). */
    unsigned char two[] = {0, 1};
    CHECK(stats_auc_delong(s + 2, two, 2, 0.95, &d, &err) == FA_OK);
    CHECK(d.auc == 1.0 && isnan(d.var) && isnan(d.ci_lo));
}

static void test_auc_weighted(void) {
    /* Weighted AUC = AUC of the sample with case i repeated w[i] times. */
    double s[] = {0.3, 0.1, 0.3, 0.7, 0.5, 0.3, 0.9, 0.1};
    unsigned char l[] = {1, 0, 0, 1, 0, 1, 1, 0};
    uint32_t w[] = {2, 1, 3, 0, 1, 1, 4, 2};
    double xs[64];
    unsigned char xl[64];
    size_t n = 0;
    for (size_t i = 0; i < 8; i++)
        for (uint32_t k = 0; k < w[i]; k++) {
            xs[n] = s[i];
            xl[n++] = l[i];
        }
    fa_error err;
    size_t *order;
    double want;
    CHECK(stats_order_by_score(s, 8, &order, &err) == FA_OK);
    for (size_t i = 1; i < 8; i++) CHECK(s[order[i - 1]] <= s[order[i]]);
    CHECK(stats_auc(xs, xl, n, &want, &err) == FA_OK);
    CHECK_CLOSE(stats_auc_weighted(s, l, order, 8, w), want, 1e-15, 0);
    uint32_t only_neg[] = {0, 1, 1, 0, 1, 0, 0, 1};
    CHECK(isnan(stats_auc_weighted(s, l, order, 8, only_neg)));
    free(order);
}

static void test_roc(void) {
    /* scikit-learn's roc_curve example: y = [0,0,1,1], s = [.1,.4,.35,.8]:
     * thresholds [inf, .8, .4, .35, .1], tpr [0,.5,.5,1,1], fpr [0,0,.5,.5,1] */
    double s[] = {0.1, 0.4, 0.35, 0.8};
    unsigned char l[] = {0, 0, 1, 1};
    fa_error err;
    stats_roc roc;
    CHECK(stats_roc_build(s, l, 4, &roc, &err) == FA_OK);
    CHECK(roc.n == 5);
    double want_t[] = {INFINITY, 0.8, 0.4, 0.35, 0.1};
    size_t want_tp[] = {0, 1, 1, 2, 2}, want_fp[] = {0, 0, 1, 1, 2};
    for (size_t k = 0; k < 5 && roc.n == 5; k++) {
        CHECK(roc.threshold[k] == want_t[k]);
        CHECK(roc.tp[k] == want_tp[k] && roc.fp[k] == want_fp[k]);
    }
    /* Cut thresholds reproduce the cut on the same data. */
    for (size_t k = 0; k < roc.n; k++) {
        double t = stats_roc_cut_threshold(&roc, k);
        stats_confusion c = stats_confusion_at(s, l, 4, t);
        CHECK_MSG(c.tp == roc.tp[k] && c.fp == roc.fp[k], "cut %zu threshold %g", k, t);
    }
    CHECK(stats_roc_cut_threshold(&roc, 0) > 0.8 && stats_roc_cut_threshold(&roc, 0) < 0.8000001);
    CHECK_CLOSE(stats_roc_cut_threshold(&roc, 2), 0.375, 1e-15, 0);
    CHECK(stats_roc_cut_threshold(&roc, 4) == 0.1);
    /* Youden J = .5 at cuts 1 and 3: ties go to the higher threshold. */
    CHECK(stats_roc_youden(&roc) == 1);
    CHECK(stats_roc_min_sensitivity(&roc, 0.9) == 3);
    CHECK(stats_roc_min_sensitivity(&roc, 0.5) == 1);
    CHECK(stats_roc_min_specificity(&roc, 0.9) == 1);
    CHECK(stats_roc_min_specificity(&roc, 0.5) == 3);
    stats_roc_free(&roc);
    /* Adjacent doubles: the midpoint must not admit the lower group. */
    double a = 0.5, b = nextafter(0.5, 0.0);
    double s2[] = {a, b};
    unsigned char l2[] = {1, 0};
    CHECK(stats_roc_build(s2, l2, 2, &roc, &err) == FA_OK);
    stats_confusion c = stats_confusion_at(s2, l2, 2, stats_roc_cut_threshold(&roc, 1));
    CHECK(c.tp == 1 && c.fp == 0);
    stats_roc_free(&roc);
    /* One class: rules undefined. */
    unsigned char ones[] = {1, 1};
    CHECK(stats_roc_build(s2, ones, 2, &roc, &err) == FA_OK);
    CHECK(stats_roc_youden(&roc) == SIZE_MAX && stats_roc_min_specificity(&roc, 0.9) == SIZE_MAX);
    stats_roc_free(&roc);
}

static void test_calibration(void) {
    double s[] = {0.05, 0.15, 0.15, 0.95, 1.0, 0.0};
    unsigned char l[] = {0, 1, 0, 1, 1, 0};
    stats_calib_bin bins[10];
    double brier, ece;
    fa_error err;
    CHECK(stats_calibration(s, l, 6, 10, &brier, &ece, bins, &err) == FA_OK);
    double want_brier = (0.05 * 0.05 + 0.85 * 0.85 + 0.15 * 0.15 + 0.05 * 0.05 + 0 + 0) / 6.0;
    CHECK_CLOSE(brier, want_brier, 1e-15, 0);
    CHECK(bins[0].n == 2 && bins[1].n == 2 && bins[9].n == 2 && bins[5].n == 0);
    CHECK(isnan(bins[5].observed));
    /* ECE: bin0 |0 - .025|*2/6 + bin1 |.5 - .15|*2/6 + bin9 |1 - .975|*2/6 */
    CHECK_CLOSE(ece, (0.025 + 0.35 + 0.025) * 2.0 / 6.0, 1e-15, 0);
    double bad[] = {0.5, 1.5};
    CHECK(stats_calibration(bad, l, 2, 10, &brier, &ece, bins, &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "not probabilities") != NULL);
    /* Net benefit at pt = 0.1: TP = 3 (0.15, 0.95, 1.0), FP = 1 (0.15). */
    CHECK_CLOSE(stats_net_benefit(s, l, 6, 0.1), 3.0 / 6.0 - 1.0 / 6.0 * 0.1 / 0.9, 1e-15, 0);
    CHECK(isnan(stats_net_benefit(s, l, 6, 1.0)));
}

static void test_mcnemar(void) {
    /* R: binom.test(3, 13)$p.value; mcnemar.test(matrix(c(5,15,30,5),2))$p.value */
    stats_mcnemar m = stats_mcnemar_test(3, 10, 25);
    CHECK(m.exact && isnan(m.statistic));
    CHECK_CLOSE(m.p, 0.092285156250000028, 1e-15, 0);
    m = stats_mcnemar_test(30, 15, 25);
    CHECK(!m.exact);
    CHECK_CLOSE(m.statistic, 14.0 * 14.0 / 45.0, 1e-15, 0);
    CHECK_CLOSE(m.p, 0.0368884257070499, 1e-14, 0);
    m = stats_mcnemar_test(0, 0, 25);
    CHECK(m.p == 1.0);
    m = stats_mcnemar_test(5, 5, 25);
    CHECK(m.p == 1.0);
}

static void test_rng_clusters(void) {
    stats_rng a, b;
    stats_rng_seed(&a, 42);
    stats_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) CHECK(stats_rng_next(&a) == stats_rng_next(&b));
    stats_rng_seed(&b, 43);
    CHECK(stats_rng_next(&a) != stats_rng_next(&b));
    /* Uniform over 0..6: each value within 5% of 1/7 in 70000 draws. */
    size_t count[7] = {0};
    for (int i = 0; i < 70000; i++) count[stats_rng_below(&a, 7)]++;
    for (int k = 0; k < 7; k++) CHECK_MSG(count[k] > 9500 && count[k] < 10500, "value %d: %zu", k, count[k]);
    CHECK(stats_hash_str(0, "ab") != stats_hash_str(0, "ba"));
    CHECK(stats_hash_str(stats_hash_str(0, "a"), "bc") != stats_hash_str(stats_hash_str(0, "ab"), "c"));

    /* 5 rows in 3 clusters: {0, 3}, {1}, {2, 4}. */
    size_t cl[] = {0, 1, 2, 0, 2};
    stats_clusters c;
    fa_error err;
    CHECK(stats_clusters_build(cl, 5, 3, &c, &err) == FA_OK);
    CHECK(c.start[0] == 0 && c.start[1] == 2 && c.start[2] == 3 && c.start[3] == 5);
    size_t *rows = NULL, cap = 0;
    for (int rep = 0; rep < 200; rep++) {
        size_t len = stats_clusters_draw(&c, &a, &rows, &cap);
        CHECK(len >= 3 && len <= 6);
        /* Whole clusters only: every row 0 comes with a row 3. */
        size_t n0 = 0, n3 = 0;
        for (size_t i = 0; i < len; i++) {
            n0 += rows[i] == 0;
            n3 += rows[i] == 3;
        }
        CHECK(n0 == n3);
    }
    free(rows);
    stats_clusters_free(&c);
    size_t bad[] = {0, 5};
    CHECK(stats_clusters_build(bad, 2, 3, &c, &err) == FA_ERR_INTERNAL);
}

int main(void) {
    test_distributions();
    test_wilson();
    test_rates();
    test_auc_delong();
    test_auc_weighted();
    test_roc();
    test_calibration();
    test_mcnemar();
    test_rng_clusters();
    return fa_test_finish("test_stats_core");
}
