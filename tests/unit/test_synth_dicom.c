/* test_synth_dicom.c - synthetic DICOM files round-trip through freeair's own
 * reader: for every transfer syntax the writer produces (explicit LE, RLE,
 * JPEG lossless SV1, JPEG-LS lossless), the raw stored values decoded by
 * dicom_decode equal the values rendered in memory, the header fields read by
 * dicom_read_header equal the plan, and the display stage is bone-bright
 * (correlates positively with attenuation) for MONOCHROME1 and 2 alike.
 * Also: the writer refuses values above bits stored and unwritable paths. */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "data/dicom.h"
#include "data/image.h"
#include "data/synth.h"

FA_TEST_MAIN_STATE

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static const char *const ts_uid[SYNTH_N_TS] = {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5",
                                               "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80"};

static double correlation(const double *a, const double *b, size_t n) {
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= n, mb /= n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb + 1e-30);
}

int main(void) {
    char dir[] = "/tmp/freeair-test-synth-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    enum { LIMIT = 8 };
    synth_plan plan;
    fa_error err;
    CHECK(synth_plan_make(SYNTH_PRESET_TINY, 3, 1.0, &plan, &err) == FA_OK);
    int seen_mono1 = 0, seen_cr = 0;
    /* each syntax forced on the first images, then the whole tiny cohort with
     * every unit's own syntax (covers MONOCHROME1 and CR units) */
    for (int pass = 0; pass <= SYNTH_N_TS; pass++) {
        int forced = pass < SYNTH_N_TS ? pass : -1;
        int limit = forced >= 0 ? LIMIT : plan.n;
        char out[512];
        snprintf(out, sizeof out, "%s/%s", dir, forced >= 0 ? synth_syntax_name((synth_syntax)forced) : "native");
        synth_options o;
        synth_options_default(&o);
        o.preset = SYNTH_PRESET_TINY;
        o.seed = 3;
        o.out_dir = out;
        o.force_syntax = forced;
        o.limit = limit;
        o.quiet = 1;
        o.threads = 2;
        synth_stats st;
        fa_status s = synth_generate(&o, &st, &err);
        CHECK_MSG(s == FA_OK, "generate %s: %s", out, err.msg);
        if (s) continue;
        CHECK(st.n_images == limit);
        for (int i = 0; i < limit; i++) {
            const synth_case *c = &plan.cases[i];
            const synth_machine *m = &synth_machines[c->machine];
            int ts = forced >= 0 ? forced : (int)m->syntax;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s/%s/%s.dcm", out, synth_hospitals[m->hospital].code, c->patient_id,
                     c->image_id);
            synth_geom g;
            synth_geom_make(c, 1.0, &g);
            synth_image im;
            CHECK(synth_render(c, &g, 1.0, &im, &err) == FA_OK);

            dicom_header h;
            s = dicom_read_header(path, &h, &err);
            CHECK_MSG(s == FA_OK, "%s: %s", path, err.msg);
            if (!s) {
                char age[16];
                snprintf(age, sizeof age, "%03dY", c->age);
                CHECK(h.rows == c->rows && h.columns == c->cols);
                CHECK(h.bits_allocated == 16 && h.bits_stored == m->bits_stored && h.high_bit == m->bits_stored - 1);
                CHECK(h.pixel_representation == 0 && h.samples_per_pixel == 1);
                CHECK(!strcmp(h.photometric, m->mono1 ? "MONOCHROME1" : "MONOCHROME2"));
                CHECK(!strcmp(h.patient_id, c->patient_id));
                CHECK(!strcmp(h.view_position, c->view_ap ? "AP" : "PA"));
                CHECK(!strcmp(h.body_part, "CHEST"));
                CHECK(!strcmp(h.modality, m->is_cr ? "CR" : "DX"));
                CHECK(!strcmp(h.manufacturer, m->manufacturer) && !strcmp(h.model, m->model));
                CHECK(!strcmp(h.station, m->station));
                CHECK(!strcmp(h.institution, synth_hospitals[m->hospital].name));
                CHECK(h.sex[0] == c->sex && !strcmp(h.age, age));
                CHECK(!strcmp(h.transfer_syntax, ts_uid[ts]));
                CHECK(!strcmp(h.presentation_intent, m->is_cr ? "" : "FOR PRESENTATION"));
                CHECK(!strncmp(h.sop_uid, "2.25.", 5) && !strncmp(h.study_uid, "2.25.", 5));
                CHECK(strcmp(h.sop_uid, h.study_uid) && strcmp(h.series_uid, h.study_uid));
                CHECK_CLOSE(h.pixel_spacing_row, c->spacing_mm, 1e-9, 0);
                CHECK_CLOSE(h.pixel_spacing_col, c->spacing_mm, 1e-9, 0);
                seen_mono1 += m->mono1;
                seen_cr += m->is_cr;
            }
            fa_image raw, disp;
            memset(&raw, 0, sizeof raw), memset(&disp, 0, sizeof disp);
            s = dicom_decode(path, DICOM_STAGE_RAW, &raw, NULL, 0, &err);
            CHECK_MSG(s == FA_OK, "%s: %s", path, err.msg);
            if (!s && raw.width == im.cols && raw.height == im.rows) {
                size_t n = (size_t)im.rows * im.cols, diff = 0;
                for (size_t j = 0; j < n; j++) diff += raw.pixels[j] != im.stored[j];
                CHECK_MSG(diff == 0, "%s (%s): %zu of %zu stored values differ", path,
                          synth_syntax_name((synth_syntax)ts), diff, n);
            } else if (!s) {
                CHECK_MSG(0, "%s: decoded %dx%d, expected %dx%d", path, raw.width, raw.height, im.cols, im.rows);
            }
            /* display stage: bone bright whatever the photometric, so it rises
             * with attenuation */
            s = dicom_decode(path, DICOM_STAGE_DISPLAY, &disp, NULL, 0, &err);
            CHECK_MSG(s == FA_OK, "%s: %s", path, err.msg);
            if (!s && disp.width == im.cols && disp.height == im.rows) {
                size_t n = (size_t)im.rows * im.cols;
                float *L = malloc(n * sizeof *L);
                uint8_t *mk = malloc(n), *sh = malloc(n);
                double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
                size_t k = 0;
                CHECK(synth_render_attenuation(c, &g, 1.0, L, mk, sh, &err) == FA_OK);
                for (size_t j = 0; j < n; j++)
                    if (!sh[j]) a[k] = L[j], b[k] = disp.pixels[j], k++;
                double r = correlation(a, b, k);
                CHECK_MSG(r > 0.5, "%s: display vs attenuation correlation %.2f", path, r);
                free(L), free(mk), free(sh), free(a), free(b);
            }
            image_free(&raw);
            image_free(&disp);
            synth_image_free(&im);
        }
    }
    CHECK_MSG(seen_mono1 > 0 && seen_cr > 0, "MONOCHROME1 files %d, CR files %d", seen_mono1, seen_cr);

    /* the writer refuses bad input with a message naming the file */
    uint16_t px[16 * 16];
    for (int i = 0; i < 256; i++) px[i] = (uint16_t)(i * 16);
    dicom_write_elem el[] = {{"SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"}, {"SOPInstanceUID", "2.25.1"},
                             {"Modality", "OT"}};
    dicom_write_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.elems = el, spec.n_elems = 3, spec.rows = 16, spec.columns = 16, spec.bits_stored = 10;
    spec.photometric = "MONOCHROME2";
    char p2[600];
    snprintf(p2, sizeof p2, "%s/bad.dcm", dir);
    CHECK(dicom_write_image(p2, &spec, px, &err) == FA_ERR_ARG && strstr(err.msg, "bad.dcm") &&
          strstr(err.msg, "bits"));
    spec.bits_stored = 12;
    CHECK(dicom_write_image("/nonexistent-dir/x.dcm", &spec, px, &err) == FA_ERR_IO &&
          strstr(err.msg, "/nonexistent-dir/x.dcm"));
    dicom_write_elem bad_el[] = {{"SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"}, {"NoSuchKeyword", "1"}};
    spec.elems = bad_el, spec.n_elems = 2;
    CHECK(dicom_write_image(p2, &spec, px, &err) == FA_ERR_ARG && strstr(err.msg, "NoSuchKeyword"));
    spec.elems = el, spec.n_elems = 3;
    spec.syntax = DICOM_WRITE_RLE;
    CHECK(dicom_write_image(p2, &spec, px, &err) == FA_OK);
    fa_image back;
    memset(&back, 0, sizeof back);
    CHECK(dicom_decode(p2, DICOM_STAGE_RAW, &back, NULL, 0, &err) == FA_OK && back.width == 16 &&
          !memcmp(back.pixels, px, sizeof px));
    image_free(&back);

    synth_plan_free(&plan);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return fa_test_finish("test_synth_dicom");
}
