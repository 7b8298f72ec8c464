/* test_split_invariants.c - properties every split must have, checked by
 * code written here (not by split_check): no patient in two partitions,
 * exact image counts in the protocol, stratification, determinism by seed
 * and independence from row order, only ok rows taking part, leftovers,
 * balanced grouped k-fold, and clear errors for impossible requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "data/split.h"

FA_TEST_MAIN_STATE

enum { C_PATH, C_STATUS, C_PID, C_LABEL, C_MAN, C_UNIT, C_NCOLS };
static const char *const cols[C_NCOLS] = {"path", "status", "patient_id", "label", "manufacturer", "unit"};

static uint64_t rng;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)((rng >> 16) % n);
}

/* A cohort of n_pat patients with 1..3 images each; about half positive;
 * about 60% Philips fixed; ~3% rows not ok; a few patients with one image
 * outside the pool; rows shuffled when shuffle_rows. */
static void make_cohort(csv_table *t, int n_pat, uint64_t seed, int shuffle_rows) {
    rng = seed;
    memset(t, 0, sizeof *t);
    t->n_cols = C_NCOLS;
    t->header = calloc(C_NCOLS, sizeof(char *));
    for (int c = 0; c < C_NCOLS; c++) t->header[c] = strdup(cols[c]);
    int cap = n_pat * 3;
    t->rows = calloc((size_t)cap, sizeof(char **));
    for (int p = 0; p < n_pat; p++) {
        int n_img = 1 + (int)rnd(3);
        int pos = rnd(2), pool = rnd(10) < 6, mixed = rnd(30) == 0;
        for (int i = 0; i < n_img; i++) {
            char **row = calloc(C_NCOLS, sizeof(char *));
            char b[64];
            snprintf(b, sizeof b, "img/p%04d_%d.dcm", p, i);
            row[C_PATH] = strdup(b);
            row[C_STATUS] = strdup(rnd(33) == 0 ? "excluded" : "ok");
            snprintf(b, sizeof b, "P%04d", p);
            row[C_PID] = strdup(b);
            /* Mostly one label per patient; sometimes a negative follow-up. */
            row[C_LABEL] = strdup(pos && !(i > 0 && rnd(4) == 0) ? "1" : "0");
            int in_pool = pool && !(mixed && i == n_img - 1);
            row[C_MAN] = strdup(in_pool ? (rnd(2) ? "Philips Medical Systems" : "PHILIPS") : "FUJIFILM");
            row[C_UNIT] = strdup(in_pool || rnd(2) ? "fixed" : "portable");
            t->rows[t->n_rows++] = row;
        }
    }
    if (shuffle_rows)
        for (int i = t->n_rows - 1; i > 0; i--) {
            int j = (int)rnd((unsigned)i + 1);
            char **tmp = t->rows[i];
            t->rows[i] = t->rows[j];
            t->rows[j] = tmp;
        }
}

/* Independent check: patient -> partition is a function; returns the number
 * of patients seen in two partitions. */
static int overlapping_patients(const csv_table *t, int part_col) {
    int bad = 0;
    for (int i = 0; i < t->n_rows; i++) {
        if (!t->rows[i][part_col][0]) continue;
        for (int j = i + 1; j < t->n_rows; j++)
            if (t->rows[j][part_col][0] && !strcmp(t->rows[i][C_PID], t->rows[j][C_PID]) &&
                strcmp(t->rows[i][part_col], t->rows[j][part_col])) {
                bad++;
                break;
            }
    }
    return bad;
}

static void count(const csv_table *t, int pc, const char *part, int *pos, int *neg) {
    *pos = *neg = 0;
    for (int r = 0; r < t->n_rows; r++)
        if (!strcmp(t->rows[r][pc], part)) {
            if (!strcmp(t->rows[r][C_LABEL], "1")) (*pos)++;
            else (*neg)++;
        }
}

/* Partition of each row keyed by path, for comparisons across row orders. */
static const char *part_of(const csv_table *t, int pc, const char *path) {
    for (int r = 0; r < t->n_rows; r++)
        if (!strcmp(t->rows[r][C_PATH], path)) return t->rows[r][pc];
    return NULL;
}

static split_pool philips_fixed;

static void test_protocol(void) {
    csv_table t;
    make_cohort(&t, 900, 7, 0);
    split_opts o = {.mode = SPLIT_PROTOCOL, .seed = 42, .label_col = "label", .group_col = "patient_id",
                    .pool = &philips_fixed, .train_pos = 150, .train_neg = 150, .val_pos = 20, .val_neg = 40};
    split_summary s;
    fa_error err = {0};
    CHECK_MSG(split_assign(&t, "cohort", &o, &s, &err) == FA_OK, "%s", err.msg);
    int pc = csv_column(&t, "split");
    CHECK(pc == C_NCOLS);
    int p, n;
    count(&t, pc, "train", &p, &n);
    CHECK_MSG(p == 150 && n == 150, "train %d+ %d-", p, n);
    count(&t, pc, "val", &p, &n);
    CHECK_MSG(p == 20 && n == 40, "val %d+ %d-", p, n);
    CHECK(overlapping_patients(&t, pc) == 0);
    CHECK(s.overlap_groups == 0);
    int n_ok = 0;
    for (int r = 0; r < t.n_rows; r++) {
        const char *st = t.rows[r][C_STATUS], *sp = t.rows[r][pc];
        n_ok += !strcmp(st, "ok");
        /* Not ok -> no split; ok -> train, val or test (leftovers default to test). */
        if (strcmp(st, "ok")) CHECK(sp[0] == '\0');
        else CHECK(!strcmp(sp, "train") || !strcmp(sp, "val") || !strcmp(sp, "test"));
        /* Train and val only from the pool. */
        if (!strcmp(sp, "train") || !strcmp(sp, "val"))
            CHECK(split_pool_match(&t, r, &philips_fixed) && !strcmp(t.rows[r][C_UNIT], "fixed"));
    }
    /* A patient with any ok image outside the pool never trains. */
    for (int r = 0; r < t.n_rows; r++)
        if (!strcmp(t.rows[r][C_STATUS], "ok") && !split_pool_match(&t, r, &philips_fixed))
            for (int q = 0; q < t.n_rows; q++)
                if (!strcmp(t.rows[q][C_PID], t.rows[r][C_PID])) CHECK(strcmp(t.rows[q][pc], "train"));
    CHECK(s.n_ok == n_ok && s.images[0] == 300 && s.images[1] == 60 && s.images[2] == n_ok - 360);
    CHECK(s.images[3] == 0);

    /* Same rows in another order, same seed: the same assignment per file. */
    csv_table u;
    make_cohort(&u, 900, 7, 1);
    CHECK(split_assign(&u, "shuffled", &o, &s, &err) == FA_OK);
    int same = 1;
    for (int r = 0; r < u.n_rows; r++) {
        const char *a = part_of(&t, pc, u.rows[r][C_PATH]);
        same &= a && !strcmp(a, u.rows[r][pc]);
    }
    CHECK_MSG(same, "row order changed the split");
    csv_free(&u);

    /* Another seed: a different draw, still exact. */
    make_cohort(&u, 900, 7, 0);
    o.seed = 43;
    CHECK(split_assign(&u, "seed43", &o, &s, &err) == FA_OK);
    int differ = 0;
    for (int r = 0; r < u.n_rows; r++) differ += strcmp(t.rows[r][pc], u.rows[r][pc]) != 0;
    CHECK_MSG(differ > 50, "seed 43 changed only %d rows", differ);
    count(&u, pc, "train", &p, &n);
    CHECK(p == 150 && n == 150);
    csv_free(&u);

    /* Leftovers marked unused: test then holds no pool-only patient. */
    make_cohort(&u, 900, 7, 0);
    o.leftover_unused = 1;
    CHECK(split_assign(&u, "unused", &o, &s, &err) == FA_OK);
    CHECK(s.images[3] > 0 && overlapping_patients(&u, pc) == 0);
    for (int r = 0; r < u.n_rows; r++)
        if (!strcmp(u.rows[r][pc], "unused")) CHECK(split_pool_match(&u, r, &philips_fixed));
    csv_free(&u);

    /* Impossible counts: a clear error. */
    make_cohort(&u, 100, 7, 0);
    o.train_pos = 5000;
    CHECK(split_assign(&u, "small.csv", &o, &s, &err) == FA_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "small.csv") && strstr(err.msg, "impossible"), "%s", err.msg);
    csv_free(&u);
    csv_free(&t);
}

static void test_fractions(void) {
    csv_table t;
    make_cohort(&t, 1000, 11, 0);
    split_opts o = {.mode = SPLIT_FRACTIONS, .seed = 5, .label_col = "label", .group_col = "patient_id",
                    .fractions = {0.7, 0.15, 0.15}};
    split_summary s;
    fa_error err = {0};
    CHECK_MSG(split_assign(&t, "cohort", &o, &s, &err) == FA_OK, "%s", err.msg);
    int pc = csv_column(&t, "split");
    CHECK(overlapping_patients(&t, pc) == 0);
    /* Stratified: within positive and negative patients, patient counts per
     * split are the rounded fractions (largest remainder: within 1). */
    for (int cls = 0; cls < 2; cls++) {
        int per[3] = {0}, total = 0;
        for (int r = 0; r < t.n_rows; r++) {
            if (strcmp(t.rows[r][C_STATUS], "ok")) continue;
            int first = 1, pos = 0;
            for (int q = 0; q < t.n_rows; q++)
                if (!strcmp(t.rows[q][C_PID], t.rows[r][C_PID]) && !strcmp(t.rows[q][C_STATUS], "ok")) {
                    if (q < r) first = 0;
                    pos |= !strcmp(t.rows[q][C_LABEL], "1");
                }
            if (!first || pos != (cls == 0)) continue;
            total++;
            const char *sp = t.rows[r][pc];
            per[!strcmp(sp, "train") ? 0 : !strcmp(sp, "val") ? 1 : 2]++;
        }
        double f[3] = {0.7, 0.15, 0.15};
        for (int k = 0; k < 3; k++)
            CHECK_MSG(per[k] >= (int)(f[k] * total) - 1 && per[k] <= (int)(f[k] * total) + 1,
                      "class %d part %d: %d of %d patients", cls, k, per[k], total);
    }
    /* Deterministic: the same call gives the same column. */
    csv_table u;
    make_cohort(&u, 1000, 11, 0);
    CHECK(split_assign(&u, "again", &o, &s, &err) == FA_OK);
    int same = 1;
    for (int r = 0; r < t.n_rows; r++) same &= !strcmp(t.rows[r][pc], u.rows[r][pc]);
    CHECK(same);
    csv_free(&u);
    csv_free(&t);
}

static void test_kfold(void) {
    csv_table t;
    make_cohort(&t, 500, 3, 0);
    split_opts o = {.mode = SPLIT_KFOLD, .seed = 9, .label_col = "label", .group_col = "patient_id", .kfold = 5};
    split_summary s;
    fa_error err = {0};
    CHECK_MSG(split_assign(&t, "cohort", &o, &s, &err) == FA_OK, "%s", err.msg);
    int fc = csv_column(&t, "fold");
    CHECK(fc >= 0 && csv_column(&t, "split") < 0);
    CHECK(overlapping_patients(&t, fc) == 0);
    int pos[5] = {0}, neg[5] = {0};
    for (int r = 0; r < t.n_rows; r++) {
        if (strcmp(t.rows[r][C_STATUS], "ok")) {
            CHECK(t.rows[r][fc][0] == '\0');
            continue;
        }
        int f = atoi(t.rows[r][fc]);
        CHECK(f >= 0 && f < 5 && t.rows[r][fc][0]);
        if (!strcmp(t.rows[r][C_LABEL], "1")) pos[f]++;
        else neg[f]++;
    }
    /* Balanced: images of each class per fold within a few of each other
     * (groups hold at most 3 images). */
    int pmin = pos[0], pmax = pos[0], nmin = neg[0], nmax = neg[0];
    for (int f = 1; f < 5; f++) {
        pmin = pos[f] < pmin ? pos[f] : pmin;
        pmax = pos[f] > pmax ? pos[f] : pmax;
        nmin = neg[f] < nmin ? neg[f] : nmin;
        nmax = neg[f] > nmax ? neg[f] : nmax;
    }
    CHECK_MSG(pmax - pmin <= 6 && nmax - nmin <= 6, "pos %d..%d neg %d..%d", pmin, pmax, nmin, nmax);
    CHECK(s.n_parts == 5);
    csv_free(&t);
}

static void test_errors(void) {
    split_pool p;
    fa_error err = {0};
    CHECK(split_parse_pool("manufacturer=Philips*|PHILIPS, unit = fixed ,hospital!=x*", &p, &err) == FA_OK);
    CHECK(p.n == 3 && !strcmp(p.cond[1].column, "unit") && !strcmp(p.cond[1].pattern, "fixed") && p.cond[2].negate);
    CHECK(split_parse_pool("manufacturer", &p, &err) == FA_ERR_ARG && strstr(err.msg, "manufacturer"));
    CHECK(split_parse_pool("=x", &p, &err) == FA_ERR_ARG);
    CHECK(split_parse_pool("", &p, &err) == FA_ERR_ARG);
    double f[3];
    CHECK(split_parse_fractions("0.7,0.15,0.15", f, &err) == FA_OK && f[0] == 0.7);
    CHECK(split_parse_fractions("0.7,0.2,0.2", f, &err) == FA_ERR_ARG && strstr(err.msg, "sum"));
    CHECK(split_parse_fractions("0.7,0.3", f, &err) == FA_ERR_ARG);
    CHECK(split_parse_fractions("a,b,c", f, &err) == FA_ERR_ARG);
    CHECK(split_parse_label("1") == 1 && split_parse_label("Positive") == 1 && split_parse_label(" no ") == 0);
    CHECK(split_parse_label("") == -1 && split_parse_label("maybe") == -2 && split_parse_label("2") == -2);

    csv_table t;
    make_cohort(&t, 50, 1, 0);
    free(t.rows[3][C_LABEL]);
    t.rows[3][C_LABEL] = strdup("maybe");
    strcpy(t.rows[3][C_STATUS], "ok");
    split_opts o = {.mode = SPLIT_FRACTIONS, .seed = 1, .label_col = "label", .fractions = {0.5, 0.25, 0.25}};
    split_summary s;
    CHECK(split_assign(&t, "bad_label.csv", &o, &s, &err) == FA_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "bad_label.csv") && strstr(err.msg, "maybe"), "%s", err.msg);
    o.label_col = "diagnosis";
    CHECK(split_assign(&t, "x.csv", &o, &s, &err) == FA_ERR_FORMAT && strstr(err.msg, "diagnosis"));
    o.label_col = "label";
    o.group_col = "subject";
    CHECK(split_assign(&t, "x.csv", &o, &s, &err) == FA_ERR_FORMAT && strstr(err.msg, "subject"));
    split_pool missing;
    split_parse_pool("hospital=academic", &missing, &err);
    split_opts q = {.mode = SPLIT_PROTOCOL, .label_col = "label", .pool = &missing, .train_pos = 1};
    CHECK(split_assign(&t, "x.csv", &q, &s, &err) == FA_ERR_FORMAT && strstr(err.msg, "hospital"));
    split_opts k = {.mode = SPLIT_KFOLD, .label_col = NULL, .kfold = 1};
    CHECK(split_assign(&t, "x.csv", &k, &s, &err) == FA_ERR_ARG);
    k.kfold = 60; /* more folds than the 50 patients */
    CHECK(split_assign(&t, "x.csv", &k, &s, &err) == FA_ERR_ARG && strstr(err.msg, "folds"));
    csv_free(&t);
}

int main(void) {
    fa_error err = {0};
    if (split_parse_pool("manufacturer=Philips*, unit=fixed", &philips_fixed, &err) != FA_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_protocol();
    test_fractions();
    test_kfold();
    test_errors();
    return fa_test_finish("test_split_invariants");
}
