/* test_cam_select.c - choosing gallery cases from an evaluated predictions
 * table (cam_select): categories, most-confident-first order, ties, model and
 * split filters, thresholds instead of outcomes, and refused tables. The
 * expected picks are worked out by hand from the small tables below. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "eval/cam.h"

FA_TEST_MAIN_STATE

static int parse(const char *text, csv_table *t) {
    fa_error err = {0};
    return csv_parse("t.csv", text, strlen(text), t, &err) == FA_OK;
}

static const char *id_of(const csv_table *t, const cam_pick *p) { return csv_cell(t, p->row, csv_column(t, "id")); }

static void test_outcomes(void) {
    const char *text =
        "model,id,split,label,score,threshold_primary,outcome_primary\n"
        "m,a,test,1,0.9,0.5,TP\n"
        "m,b,test,1,0.95,0.5,TP\n"
        "m,c,test,0,0.7,0.5,FP\n"
        "m,d,test,0,0.99,0.5,FP\n"
        "m,e,test,1,0.1,0.5,FN\n"
        "m,f,test,1,0.4,0.5,FN\n"
        "m,g,test,0,0.2,0.5,TN\n"
        "m,h,test,0,0.01,0.5,TN\n"
        "m,i,val,0,0.999,0.5,FP\n"
        "m,j,test,0,0.7,0.5,FP\n";
    csv_table t;
    CHECK(parse(text, &t));
    cam_select_opts o = {NULL, "test", 1, NAN, 0};
    cam_pick *p = NULL;
    int n = 0;
    fa_error err = {0};
    CHECK(cam_select("t.csv", &t, &o, &p, &n, &err) == FA_OK);
    CHECK(n == 4);
    if (n == 4) {
        /* TP highest score, FP highest (the val row i is skipped), FN lowest, TN lowest */
        CHECK(!strcmp(id_of(&t, &p[0]), "b") && p[0].category == CAM_CAT_TP && p[0].rank == 1);
        CHECK(!strcmp(id_of(&t, &p[1]), "d") && p[1].category == CAM_CAT_FP && p[1].label == 0);
        CHECK(!strcmp(id_of(&t, &p[2]), "e") && p[2].category == CAM_CAT_FN && p[2].label == 1);
        CHECK(!strcmp(id_of(&t, &p[3]), "h") && p[3].category == CAM_CAT_TN);
        CHECK_CLOSE(p[1].score, 0.99, 0, 1e-15);
        CHECK_CLOSE(p[1].threshold, 0.5, 0, 1e-15);
    }
    free(p);
    /* more per category than there are: everything, ties in row order */
    o.per_category = 5;
    CHECK(cam_select("t.csv", &t, &o, &p, &n, &err) == FA_OK);
    CHECK(n == 9);
    if (n == 9) {
        CHECK(!strcmp(id_of(&t, &p[2]), "d") && !strcmp(id_of(&t, &p[3]), "c") && !strcmp(id_of(&t, &p[4]), "j"));
        CHECK(p[4].rank == 3);
    }
    free(p);
    /* all positives: per_category 0 still lists every positive (rank 0) */
    o.per_category = 0;
    o.all_positives = 1;
    CHECK(cam_select("t.csv", &t, &o, &p, &n, &err) == FA_OK);
    CHECK(n == 4);
    for (int i = 0; i < n; i++) CHECK(p[i].rank == 0 && p[i].label == 1);
    free(p);
    csv_free(&t);
}

static void test_threshold_and_models(void) {
    const char *text =
        "model,id,label,score\n"
        "a,x1,1,0.8\n"
        "a,x2,0,0.6\n"
        "a,x3,1,0.3\n"
        "b,x1,1,0.1\n";
    csv_table t;
    CHECK(parse(text, &t));
    cam_select_opts o = {NULL, NULL, 2, NAN, 0};
    cam_pick *p = NULL;
    int n = 0;
    fa_error err = {0};
    CHECK(cam_select("t.csv", &t, &o, &p, &n, &err) == FA_ERR_FORMAT); /* no outcome, no threshold */
    CHECK(strstr(err.msg, "--threshold") != NULL);
    o.threshold = 0.5;
    CHECK(cam_select("t.csv", &t, &o, &p, &n, &err) == FA_ERR_ARG); /* two models */
    CHECK(strstr(err.msg, "'a'") && strstr(err.msg, "'b'"));
    o.model = "a";
    CHECK(cam_select("t.csv", &t, &o, &p, &n, &err) == FA_OK);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(p[0].category == CAM_CAT_TP && !strcmp(id_of(&t, &p[0]), "x1"));
        CHECK(p[1].category == CAM_CAT_FP && !strcmp(id_of(&t, &p[1]), "x2"));
        CHECK(p[2].category == CAM_CAT_FN && !strcmp(id_of(&t, &p[2]), "x3"));
    }
    free(p);
    o.model = "zzz";
    CHECK(cam_select("t.csv", &t, &o, &p, &n, &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "no rows") != NULL);
    csv_free(&t);
}

static void test_refused(void) {
    struct {
        const char *text, *needle;
    } bad[] = {
        {"id,score\nx,0.5\n", "label"},
        {"id,label,score,outcome_primary\nx,2,0.5,TP\n", "line 2"},
        {"id,label,score,outcome_primary\nx,1,nan,TP\n", "score"},
        {"id,label,score,outcome_primary\nx,1,0.5,XX\n", "TP/FP/FN/TN"},
        {"id,label,score,outcome_primary\nx,0,0.5,TP\n", "contradicts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        csv_table t;
        CHECK(parse(bad[i].text, &t));
        cam_select_opts o = {NULL, NULL, 4, NAN, 0};
        cam_pick *p = NULL;
        int n = 0;
        fa_error err = {0};
        CHECK_MSG(cam_select("t.csv", &t, &o, &p, &n, &err) != FA_OK, "case %zu accepted", i);
        CHECK_MSG(strstr(err.msg, bad[i].needle) && strstr(err.msg, "t.csv"), "case %zu: %s", i, err.msg);
        CHECK(p == NULL);
        csv_free(&t);
    }
}

int main(void) {
    test_outcomes();
    test_threshold_and_models();
    test_refused();
    return fa_test_finish("test_cam_select");
}
