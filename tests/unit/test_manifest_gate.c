/* test_manifest_gate.c - the chest gate, view derivation, age normalisation
 * and the merge of user columns, on stated inputs whose expected outcome is
 * written down here (the rules of data/manifest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "data/manifest.h"

FA_TEST_MAIN_STATE

static void test_columns(void) {
    CHECK(MANIFEST_N_COLS == 24);
    CHECK(!strcmp(manifest_columns[MANIFEST_COL_PATH], "path"));
    CHECK(!strcmp(manifest_columns[MANIFEST_COL_PRESENTATION_INTENT], "presentation_intent"));
    for (int c = 0; c < MANIFEST_N_COLS; c++) CHECK(manifest_column_index(manifest_columns[c]) == c);
    CHECK(manifest_column_index("label") == -1);
}

static void test_predicates(void) {
    const char *chest[] = {"CHEST", "chest", " Chest ", "THORAX", "Thorax", "CHEST_PA", "PORTABLE CHEST", "LUNG",
                           "CHESTPA", "TORAX", "CHEST ABDOMEN", "cxr", NULL};
    const char *not_chest[] = {"RIBCAGE", "RIBS", "HIP", "EXTREMITY", "ABDOMEN", "CSPINE", "THORACIC SPINE", "TSPINE",
                               "CHEST RIBS", "BREAST", "SHOULDER", "SKULL", NULL};
    for (int i = 0; chest[i]; i++) CHECK_MSG(manifest_is_chest_body_part(chest[i]), "%s", chest[i]);
    for (int i = 0; not_chest[i]; i++) CHECK_MSG(!manifest_is_chest_body_part(not_chest[i]), "%s", not_chest[i]);
    CHECK(manifest_is_radiograph_modality("CR") && manifest_is_radiograph_modality("dx") &&
          manifest_is_radiograph_modality(" DR"));
    CHECK(!manifest_is_radiograph_modality("CT") && !manifest_is_radiograph_modality("MR") &&
          !manifest_is_radiograph_modality("MG") && !manifest_is_radiograph_modality(""));
    CHECK(manifest_view_kind("AP") == 1 && manifest_view_kind("pa") == 1 && manifest_view_kind("AP SUPINE") == 1);
    CHECK(manifest_view_kind("LL") == 2 && manifest_view_kind("RL") == 2 && manifest_view_kind("LATERAL") == 2 &&
          manifest_view_kind("LAT") == 2 && manifest_view_kind("LLD") == 2);
    CHECK(manifest_view_kind("XX") == -1 && manifest_view_kind("LAO") == -1 && manifest_view_kind("APX") == -1);
    CHECK(manifest_view_kind("") == 0 && manifest_view_kind("  ") == 0);
}

/* Gate on a row given as modality, body part, view, intent. */
static int gate(const char *mod, const char *body, const char *view, const char *intent, char *reason) {
    const char *cells[MANIFEST_N_COLS] = {0};
    cells[MANIFEST_COL_MODALITY] = mod;
    cells[MANIFEST_COL_BODY_PART] = body;
    cells[MANIFEST_COL_VIEW] = view;
    cells[MANIFEST_COL_PRESENTATION_INTENT] = intent;
    return manifest_gate(cells, reason, 1024);
}

static void test_gate(void) {
    char r[1024];
    CHECK(gate("CR", "CHEST", "PA", "FOR PRESENTATION", r) == 0 && r[0] == '\0');
    CHECK(gate("", "", "", "", r) == 0); /* PNG/JPEG without metadata pass */
    CHECK(gate("CT", "CHEST", "PA", "", r) == 1 && !strncmp(r, "not_radiograph: ", 16) && strstr(r, "CT"));
    CHECK(gate("DX", "RIBCAGE", "PA", "", r) == 1 && !strncmp(r, "not_chest: ", 11) && strstr(r, "RIBCAGE"));
    CHECK(gate("DX", "CHEST", "LL", "", r) == 1 && !strncmp(r, "lateral_view: ", 14));
    CHECK(gate("DX", "CHEST", "XX", "", r) == 1 && !strncmp(r, "unknown_view: ", 14) && strstr(r, "XX"));
    CHECK(gate("DX", "CHEST", "AP", "FOR PROCESSING", r) == 1 && !strncmp(r, "for_processing: ", 16));
    /* Every reason is listed, in a fixed order. */
    CHECK(gate("MR", "KNEE", "LATERAL", "for processing", r) == 4);
    CHECK_MSG(strstr(r, "not_radiograph") < strstr(r, "not_chest") && strstr(r, "not_chest") < strstr(r, "lateral_view") &&
                  strstr(r, "lateral_view") < strstr(r, "for_processing") && strstr(r, "; "),
              "%s", r);
}

static void test_view(void) {
    dicom_header h;
    char v[DICOM_STR];
    memset(&h, 0, sizeof h);
    strcpy(h.view_position, "pa");
    strcpy(h.patient_position, "AP");
    manifest_view(&h, v, sizeof v);
    CHECK(!strcmp(v, "PA")); /* ViewPosition wins */
    memset(&h, 0, sizeof h);
    strcpy(h.patient_position, "AP");
    manifest_view(&h, v, sizeof v);
    CHECK(!strcmp(v, "AP")); /* NIH style: the view in PatientPosition */
    memset(&h, 0, sizeof h);
    strcpy(h.patient_position, "XX");
    manifest_view(&h, v, sizeof v);
    CHECK(!strcmp(v, "XX") && manifest_view_kind(v) == -1);
    memset(&h, 0, sizeof h);
    strcpy(h.patient_position, "HFS"); /* a patient position, not a view */
    strcpy(h.series_description, "Thorax p.a. stehend");
    manifest_view(&h, v, sizeof v);
    CHECK_MSG(!strcmp(v, "PA"), "'%s'", v);
    memset(&h, 0, sizeof h);
    strcpy(h.series_description, "CHEST LAT");
    manifest_view(&h, v, sizeof v);
    CHECK(!strcmp(v, "LATERAL"));
    memset(&h, 0, sizeof h);
    strcpy(h.series_description, "chest");
    strcpy(h.study_description, "CHEST PA AND LATERAL"); /* ambiguous: no view */
    manifest_view(&h, v, sizeof v);
    CHECK(!strcmp(v, ""));
    memset(&h, 0, sizeof h);
    strcpy(h.study_description, "XR CHEST AP PORTABLE");
    manifest_view(&h, v, sizeof v);
    CHECK(!strcmp(v, "AP"));
    memset(&h, 0, sizeof h);
    strcpy(h.view_position, "AP SUPINE");
    manifest_view(&h, v, sizeof v);
    CHECK(!strcmp(v, "AP"));
}

static void test_age(void) {
    char a[32];
    struct {
        const char *age, *birth, *date, *want;
    } cases[] = {
        {"061Y", "", "", "61"},  {"81", "", "", "81"},          {"006M", "", "", "0.5"},  {"018M", "", "", "1.5"},
        {"003W", "", "", "0.0575"}, {"010D", "", "", "0.0274"}, {" 045Y ", "", "", "45"}, {"45y", "", "", "45"},
        {"abc", "", "", ""},     {"061Q", "", "", ""},          {"999Y", "", "", ""},     {"", "19600315", "20200314", "59"},
        {"", "19600315", "20200315", "60"}, {"", "1960", "20200315", ""}, {"", "", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        manifest_age_years(cases[i].age, cases[i].birth, cases[i].date, a, sizeof a);
        CHECK_MSG(!strcmp(a, cases[i].want), "age '%s' birth '%s' date '%s' -> '%s', want '%s'", cases[i].age,
                  cases[i].birth, cases[i].date, a, cases[i].want);
    }
}

/* A manifest of three rows built in memory. */
static void make_manifest(csv_table *m) {
    fa_error err = {0};
    CHECK(manifest_init(m, &err) == FA_OK);
    m->rows = calloc(3, sizeof *m->rows);
    const char *paths[3] = {"/data/a/x.dcm", "/data/b/x.dcm", "/data/b/y.dcm"};
    const char *sops[3] = {"1.1", "1.2", "1.3"};
    const char *body[3] = {"CHEST", "RIBCAGE", "CHEST"};
    for (int r = 0; r < 3; r++) {
        m->rows[r] = calloc(MANIFEST_N_COLS, sizeof(char *));
        for (int c = 0; c < MANIFEST_N_COLS; c++) m->rows[r][c] = strdup("");
        m->n_rows = r + 1;
        manifest_set_cell(m, r, MANIFEST_COL_PATH, paths[r], &err);
        manifest_set_cell(m, r, MANIFEST_COL_SOP_UID, sops[r], &err);
        manifest_set_cell(m, r, MANIFEST_COL_MODALITY, "DX", &err);
        manifest_set_cell(m, r, MANIFEST_COL_BODY_PART, body[r], &err);
        manifest_set_cell(m, r, MANIFEST_COL_VIEW, "PA", &err);
        manifest_set_cell(m, r, MANIFEST_COL_STATUS, r == 1 ? "excluded" : "ok", &err);
        manifest_set_cell(m, r, MANIFEST_COL_REASON, r == 1 ? "not_chest: body part RIBCAGE" : "", &err);
    }
    manifest_set_cell(m, 2, MANIFEST_COL_STATUS, "error", &err);
    manifest_set_cell(m, 2, MANIFEST_COL_REASON, "no_pixel_data: x", &err);
}

static int parse(const char *text, csv_table *t) {
    fa_error err = {0};
    return csv_parse("user.csv", text, strlen(text), t, &err) == FA_OK;
}

static void test_merge(void) {
    csv_table m, u;
    fa_error err = {0};
    manifest_merge_stats s;

    /* By unique path suffix; an override un-excludes row 1; unknown key counted;
     * an empty user cell does not erase; status cannot be overridden. */
    make_manifest(&m);
    CHECK(parse("path,label,body_part,status,modality\n"
                "a/x.dcm,1,,excluded,\n"
                "b/x.dcm,0,Chest,,\n"
                "/data/b/y.dcm,1,,,CR\n"
                "c/z.dcm,1,,,\n",
                &u));
    CHECK_MSG(manifest_merge(&m, &u, "user.csv", NULL, "path", &s, &err) == FA_OK, "%s", err.msg);
    int lc = csv_column(&m, "label");
    CHECK(lc == MANIFEST_N_COLS && m.n_cols == MANIFEST_N_COLS + 1);
    CHECK(!strcmp(csv_cell(&m, 0, lc), "1") && !strcmp(csv_cell(&m, 1, lc), "0") && !strcmp(csv_cell(&m, 2, lc), "1"));
    CHECK(!strcmp(csv_cell(&m, 0, MANIFEST_COL_BODY_PART), "CHEST"));          /* empty cell kept header */
    CHECK(!strcmp(csv_cell(&m, 0, MANIFEST_COL_STATUS), "ok"));               /* status not overridable */
    CHECK(!strcmp(csv_cell(&m, 1, MANIFEST_COL_BODY_PART), "Chest"));
    CHECK(!strcmp(csv_cell(&m, 1, MANIFEST_COL_STATUS), "ok"));               /* re-gated */
    CHECK(!strcmp(csv_cell(&m, 1, MANIFEST_COL_REASON), ""));
    CHECK(!strcmp(csv_cell(&m, 2, MANIFEST_COL_STATUS), "error"));            /* errors stay */
    CHECK(!strcmp(csv_cell(&m, 2, MANIFEST_COL_MODALITY), "CR"));
    CHECK(s.n_matched == 3 && s.n_unmatched == 0 && s.n_unknown == 1 && !strcmp(s.first_unknown, "c/z.dcm"));
    CHECK(s.n_overridden == 2);
    csv_free(&u);

    /* A second merge by SOP UID can exclude through an override. */
    CHECK(parse("sop_uid,view,hospital\n1.1,LL,academic\n9.9,,x\n", &u));
    CHECK_MSG(manifest_merge(&m, &u, "user2.csv", NULL, "sop_uid", &s, &err) == FA_OK, "%s", err.msg);
    CHECK(!strcmp(csv_cell(&m, 0, MANIFEST_COL_STATUS), "excluded"));
    CHECK(strstr(csv_cell(&m, 0, MANIFEST_COL_REASON), "lateral_view") != NULL);
    CHECK(!strcmp(csv_cell(&m, 0, csv_column(&m, "hospital")), "academic"));
    CHECK(s.n_matched == 1 && s.n_unmatched == 2 && s.n_unknown == 1);
    csv_free(&u);

    /* Errors: ambiguous suffix, duplicate rows for one file, missing key,
     * empty key, duplicate column. The manifest is left unchanged. */
    int cols_before = m.n_cols;
    CHECK(parse("path,label\nx.dcm,1\n", &u));
    CHECK(manifest_merge(&m, &u, "amb.csv", NULL, "path", &s, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "amb.csv") && strstr(err.msg, "more than one"));
    csv_free(&u);
    CHECK(parse("path,label\n/data/a/x.dcm,1\na/x.dcm,0\n", &u));
    CHECK(manifest_merge(&m, &u, "dup.csv", NULL, "path", &s, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "both refer"));
    csv_free(&u);
    CHECK(parse("file,label\n/data/a/x.dcm,1\n", &u));
    CHECK(manifest_merge(&m, &u, "nokey.csv", NULL, "path", &s, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "no 'path' column"));
    csv_free(&u);
    CHECK(parse("path,label\n,1\n", &u));
    CHECK(manifest_merge(&m, &u, "empty.csv", NULL, "path", &s, &err) == FA_ERR_FORMAT);
    csv_free(&u);
    CHECK(parse("path,label,label\n/data/a/x.dcm,1,1\n", &u));
    CHECK(manifest_merge(&m, &u, "twice.csv", NULL, "path", &s, &err) == FA_ERR_FORMAT);
    csv_free(&u);
    CHECK(m.n_cols == cols_before);
    CHECK(manifest_merge(&m, &u, "k.csv", NULL, "study_uid", &s, &err) == FA_ERR_ARG);

    /* Round trip through the writer and the column check. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(manifest_write(f, &m, "mem", &err) == FA_OK);
    fclose(f);
    csv_table back;
    CHECK(csv_parse("mem", buf, len, &back, &err) == FA_OK);
    CHECK(manifest_check_columns(&back, "mem", &err) == FA_OK);
    CHECK(back.n_rows == 3 && back.n_cols == m.n_cols);
    csv_free(&back);
    free(buf);
    CHECK(parse("path,reason,status\n", &u));
    CHECK(manifest_check_columns(&u, "bad.csv", &err) == FA_ERR_FORMAT && strstr(err.msg, "bad.csv"));
    csv_free(&u);
    csv_free(&m);
}

int main(void) {
    test_columns();
    test_predicates();
    test_gate();
    test_view();
    test_age();
    test_merge();
    return fa_test_finish("test_manifest_gate");
}
