/* test_synth_plan.c - the synthetic cohort's composition against the study's
 * Table 1 (paper preset, exact), the scaled presets (small, tiny), patient
 * consistency of repeat images, determinism of the plan, and UID validity.
 *
 * Table 1 numbers are written out here independently of synth_plan.c: a
 * change of the planner that breaks them fails this test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "data/synth.h"

FA_TEST_MAIN_STATE

typedef struct counts {
    int n, pos, fixed, portable, philips, academic, ap, male, pos_male, neg_male, postop, neg_postop;
    int pool_pos, pool_neg, test_pos, test_neg, patients;
    double age_mean[2][2], age_sd[2][2];
    int age_n[2][2];
} counts;

static void count_plan(const synth_plan *p, counts *k) {
    memset(k, 0, sizeof *k);
    double s1[2][2] = {{0}}, s2[2][2] = {{0}};
    int maxpat = -1;
    for (int i = 0; i < p->n; i++) {
        const synth_case *c = &p->cases[i];
        const synth_machine *m = &synth_machines[c->machine];
        int academic = synth_hospitals[m->hospital].academic;
        int philips = m->vendor == SYNTH_VENDOR_PHILIPS;
        int pool = academic && philips && !m->portable;
        k->n++;
        k->pos += c->label;
        k->fixed += !m->portable;
        k->portable += m->portable;
        k->philips += philips;
        k->academic += academic;
        k->ap += c->view_ap;
        k->male += c->sex == 'M';
        k->pos_male += c->label && c->sex == 'M';
        k->neg_male += !c->label && c->sex == 'M';
        k->postop += c->label && c->postop;
        k->neg_postop += !c->label && c->postop;
        if (pool) k->pool_pos += c->label, k->pool_neg += !c->label;
        else k->test_pos += c->label, k->test_neg += !c->label;
        int f = c->sex == 'F';
        s1[c->label][f] += c->age;
        s2[c->label][f] += (double)c->age * c->age;
        k->age_n[c->label][f]++;
        if (c->patient > maxpat) maxpat = c->patient;
    }
    k->patients = maxpat + 1;
    for (int l = 0; l < 2; l++)
        for (int f = 0; f < 2; f++) {
            int n = k->age_n[l][f];
            if (n < 2) continue;
            k->age_mean[l][f] = s1[l][f] / n;
            k->age_sd[l][f] = sqrt((s2[l][f] - s1[l][f] * s1[l][f] / n) / (n - 1));
        }
}

/* Repeat images of a patient agree on everything that belongs to a patient
 * and stay on one side of the study's pool/test boundary. */
static void check_patients(const synth_plan *p) {
    int np = p->n_patients;
    int *first = malloc((size_t)np * sizeof *first);
    for (int i = 0; i < np; i++) first[i] = -1;
    int distinct_ids = 0;
    for (int i = 0; i < p->n; i++) {
        const synth_case *c = &p->cases[i];
        CHECK(c->patient >= 0 && c->patient < np);
        if (c->patient < 0 || c->patient >= np) continue;
        int j = first[c->patient];
        if (j < 0) {
            first[c->patient] = i;
            distinct_ids++;
            continue;
        }
        const synth_case *d = &p->cases[j];
        const synth_machine *mc = &synth_machines[c->machine], *md = &synth_machines[d->machine];
        int pool_c = synth_hospitals[mc->hospital].academic && mc->vendor == SYNTH_VENDOR_PHILIPS && !mc->portable;
        int pool_d = synth_hospitals[md->hospital].academic && md->vendor == SYNTH_VENDOR_PHILIPS && !md->portable;
        CHECK_MSG(!strcmp(c->patient_id, d->patient_id), "%s vs %s", c->patient_id, d->patient_id);
        CHECK_MSG(c->sex == d->sex && c->age == d->age && c->birth_date == d->birth_date,
                  "patient %s: sex/age/birth differ", c->patient_id);
        CHECK_MSG(c->label == d->label && mc->hospital == md->hospital && pool_c == pool_d,
                  "patient %s: label/hospital/pool differ", c->patient_id);
        CHECK_MSG(c->study_date != d->study_date || c->visit != d->visit, "patient %s: two identical visits",
                  c->patient_id);
    }
    CHECK(distinct_ids == np);
    free(first);
}

/* Age at the study from the birth date, in whole years. */
static int age_from_dates(int birth, int study) {
    int a = study / 10000 - birth / 10000;
    if (study % 10000 < birth % 10000) a--;
    return a;
}

static void check_cases(const synth_plan *p, synth_preset preset) {
    for (int i = 0; i < p->n; i++) {
        const synth_case *c = &p->cases[i];
        CHECK(c->index == i);
        CHECK(age_from_dates(c->birth_date, c->study_date) == c->age);
        CHECK(c->study_date >= 20110301 && c->study_date <= 20190930);
        CHECK(c->age >= 18 && c->age <= 99);
        int mx = c->rows > c->cols ? c->rows : c->cols;
        if (preset == SYNTH_PRESET_PAPER) CHECK_MSG(mx >= 1645 && mx <= 4300, "paper matrix %dx%d", c->cols, c->rows);
        else if (preset == SYNTH_PRESET_SMALL) CHECK_MSG(mx >= 256 && mx <= 512, "small matrix %dx%d", c->cols, c->rows);
        else CHECK_MSG(mx >= 128 && mx <= 192, "tiny matrix %dx%d", c->cols, c->rows);
        if (c->label) {
            CHECK(c->side != SYNTH_SIDE_NONE);
            CHECK(c->free_air_mm >= 1.0 && c->free_air_mm <= 90.0);
        } else {
            CHECK(c->side == SYNTH_SIDE_NONE && c->free_air_mm == 0 && !c->postop);
        }
        /* portable units take AP films */
        if (synth_machines[c->machine].portable) CHECK(c->view_ap);
    }
}

static void test_paper(void) {
    synth_plan p;
    fa_error err;
    CHECK(synth_plan_make(SYNTH_PRESET_PAPER, 1, 1.0, &p, &err) == FA_OK);
    counts k;
    count_plan(&p, &k);
    /* Table 1 of the study */
    CHECK(k.n == 1287);
    CHECK_MSG(k.patients == 1124 && p.n_patients == 1124, "patients %d", k.patients);
    CHECK(k.pos == 634 && k.n - k.pos == 653);
    CHECK(k.fixed == 969 && k.portable == 318);
    CHECK(k.philips == 1145 && k.n - k.philips == 142);
    CHECK(k.academic == 1061 && k.n - k.academic == 226);
    CHECK_MSG(k.ap == 554 && k.n - k.ap == 733, "AP %d", k.ap);
    CHECK(k.male == 697 && k.n - k.male == 590);
    CHECK(k.pos_male == 344 && k.neg_male == 353);
    CHECK(k.postop == 182 && k.neg_postop == 0);
    /* the split protocol: train/val only from fixed Philips academic units */
    CHECK_MSG(k.pool_pos == 420 && k.pool_neg == 465, "pool %d+/%d-", k.pool_pos, k.pool_neg);
    CHECK_MSG(k.test_pos == 214 && k.test_neg == 188, "test %d+/%d-", k.test_pos, k.test_neg);
    /* ages per class and sex: Table 1 means and SDs */
    static const double mean[2][2] = {{61.82, 58.98}, {61.06, 65.09}}, sd[2][2] = {{17.79, 19.89}, {17.44, 16.09}};
    for (int l = 0; l < 2; l++)
        for (int f = 0; f < 2; f++) {
            CHECK_CLOSE(k.age_mean[l][f], mean[l][f], 0.3, 0);
            CHECK_CLOSE(k.age_sd[l][f], sd[l][f], 0.5, 0);
        }
    check_patients(&p);
    check_cases(&p, SYNTH_PRESET_PAPER);
    /* thirteen hospitals, every one used */
    int used[64] = {0};
    for (int i = 0; i < p.n; i++) used[synth_machines[p.cases[i].machine].hospital] = 1;
    int nh = 0;
    for (int h = 0; h < synth_n_hospitals; h++) nh += used[h];
    CHECK(synth_n_hospitals == 13 && nh == 13);
    synth_plan_free(&p);
}

/* Scaled presets: the same proportions within rounding. */
static void test_scaled(synth_preset preset, int n_expect) {
    synth_plan p;
    fa_error err;
    CHECK(synth_plan_make(preset, 7, 1.0, &p, &err) == FA_OK);
    counts k;
    count_plan(&p, &k);
    double s = (double)n_expect / 1287.0;
    CHECK(k.n == n_expect);
#define NEAR(x, paper) CHECK_MSG(fabs((x) - (paper)*s) <= 1.5 + 0.02 * (paper)*s, #x " %d vs %.1f", x, (paper)*s)
    NEAR(k.pos, 634);
    NEAR(k.fixed, 969);
    NEAR(k.philips, 1145);
    NEAR(k.academic, 1061);
    NEAR(k.ap, 554);
    NEAR(k.male, 697);
    NEAR(k.postop, 182);
    NEAR(k.pool_pos, 420);
    NEAR(k.pool_neg, 465);
    NEAR(k.patients, 1124);
#undef NEAR
    check_patients(&p);
    check_cases(&p, preset);
    synth_plan_free(&p);
}

static void test_determinism(void) {
    synth_plan a, b, c;
    fa_error err;
    CHECK(synth_plan_make(SYNTH_PRESET_SMALL, 42, 1.0, &a, &err) == FA_OK);
    CHECK(synth_plan_make(SYNTH_PRESET_SMALL, 42, 1.0, &b, &err) == FA_OK);
    CHECK(synth_plan_make(SYNTH_PRESET_SMALL, 43, 1.0, &c, &err) == FA_OK);
    CHECK(a.n == b.n && !memcmp(a.cases, b.cases, (size_t)a.n * sizeof *a.cases));
    CHECK(memcmp(a.cases, c.cases, (size_t)a.n * sizeof *a.cases) != 0);
    /* geometry is a pure function of the case */
    synth_geom g1, g2;
    synth_geom_make(&a.cases[3], 1.0, &g1);
    synth_geom_make(&b.cases[3], 1.0, &g2);
    CHECK(!memcmp(&g1, &g2, sizeof g1));
    synth_plan_free(&a), synth_plan_free(&b), synth_plan_free(&c);
}

/* Harder cohorts: smaller free air and more mimics. */
static void test_difficulty(void) {
    synth_plan e, h;
    fa_error err;
    CHECK(synth_plan_make(SYNTH_PRESET_PAPER, 5, 0.5, &e, &err) == FA_OK);
    CHECK(synth_plan_make(SYNTH_PRESET_PAPER, 5, 1.5, &h, &err) == FA_OK);
    double se = 0, sh = 0;
    int ne = 0, nh = 0, me = 0, mh = 0;
    unsigned mimic = SYNTH_CF_GASTRIC_BUBBLE_LARGE | SYNTH_CF_BASAL_LUCENCY | SYNTH_CF_CHILAIDITI;
    for (int i = 0; i < e.n; i++) {
        if (e.cases[i].label) se += log(e.cases[i].free_air_mm), ne++;
        else me += (e.cases[i].confounders & mimic) != 0;
    }
    for (int i = 0; i < h.n; i++) {
        if (h.cases[i].label) sh += log(h.cases[i].free_air_mm), nh++;
        else mh += (h.cases[i].confounders & mimic) != 0;
    }
    CHECK_MSG(exp(sh / nh) < 0.6 * exp(se / ne), "geometric mean size hard %.1f easy %.1f", exp(sh / nh), exp(se / ne));
    CHECK_MSG(mh > me * 2, "mimics hard %d easy %d", mh, me);
    synth_plan_free(&e), synth_plan_free(&h);
}

static void test_uids(void) {
    char u[64], v[64];
    synth_uid(u, 1, 3, 0, 0);
    synth_uid(v, 1, 3, 1, 0);
    CHECK(strcmp(u, v) != 0);
    for (int i = 0; i < 2000; i++) {
        synth_uid(u, (uint64_t)i * 7919, (uint64_t)(i % 4), (uint64_t)i, 9);
        size_t n = strlen(u);
        CHECK(n <= 64 && n > 5);
        CHECK(!strncmp(u, "2.25.", 5));
        CHECK(u[5] != '0');
        for (size_t j = 5; j < n; j++) CHECK(u[j] >= '0' && u[j] <= '9');
    }
    /* parsing of options */
    fa_error err;
    double d;
    int s;
    synth_preset p;
    CHECK(synth_parse_difficulty("hard", &d, &err) == FA_OK && d == 1.5);
    CHECK(synth_parse_difficulty("0.75", &d, &err) == FA_OK && d == 0.75);
    CHECK(synth_parse_difficulty("7", &d, &err) == FA_ERR_ARG);
    CHECK(synth_parse_difficulty("x", &d, &err) == FA_ERR_ARG);
    CHECK(synth_parse_preset("paper", &p, &err) == FA_OK && p == SYNTH_PRESET_PAPER);
    CHECK(synth_parse_preset("huge", &p, &err) == FA_ERR_ARG && strstr(err.msg, "huge"));
    CHECK(synth_parse_syntax("jpeg-ls", &s, &err) == FA_OK && s == SYNTH_TS_JPEG_LS);
    CHECK(synth_parse_syntax("native", &s, &err) == FA_OK && s == -1);
    CHECK(synth_parse_syntax("j2k", &s, &err) == FA_ERR_ARG);
}

int main(void) {
    test_paper();
    test_scaled(SYNTH_PRESET_SMALL, 360);
    test_scaled(SYNTH_PRESET_TINY, 40);
    test_determinism();
    test_difficulty();
    test_uids();
    return fa_test_finish("test_synth_plan");
}
