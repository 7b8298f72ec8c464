/* test_dicom_pipeline.c - the grey pipeline (dicom.c) on synthetic stored
 * values, against values worked out by hand from PS3.3 C.11.2.1.2 and the
 * documented rules (stage offsets, auto-window ranks, precedence, inversion).
 * The same pipeline is checked against an independent Python implementation
 * and real files in tests/integration/test_dicom_decode.sh. */
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "data/dicom_shim.h"

FA_TEST_MAIN_STATE

static dicom_raw make_raw(int rows, int cols, int bits, int pr, const int32_t *vals) {
    dicom_raw r;
    memset(&r, 0, sizeof r);
    r.rows = rows, r.cols = cols, r.bits_stored = bits, r.pixel_rep = pr;
    r.slope = 1.0;
    r.values = malloc((size_t)rows * cols * sizeof(int32_t));
    memcpy(r.values, vals, (size_t)rows * cols * sizeof(int32_t));
    return r;
}

static int px(const dicom_raw *r, dicom_stage st, int i) {
    fa_image im;
    fa_error err;
    if (dicom_pipeline(r, st, "synthetic", &im, &err) != FA_OK) {
        fprintf(stderr, "pipeline failed: %s\n", err.msg);
        return -1;
    }
    int v = im.pixels[i];
    image_free(&im);
    return v;
}

static void test_stages_signed_rescale(void) {
    /* 12-bit signed: stored range -2048..2047. */
    int32_t v[4] = {-2048, -1, 0, 2047};
    dicom_raw r = make_raw(2, 2, 12, 1, v);
    CHECK(px(&r, DICOM_STAGE_RAW, 0) == 0);
    CHECK(px(&r, DICOM_STAGE_RAW, 1) == 2047);
    CHECK(px(&r, DICOM_STAGE_RAW, 3) == 4095);
    /* Rescale slope 2, intercept -1000: modality min = 2*-2048-1000 = -5096. */
    r.has_rescale = 1, r.slope = 2.0, r.intercept = -1000.0;
    CHECK(px(&r, DICOM_STAGE_MODALITY, 0) == 0);
    CHECK(px(&r, DICOM_STAGE_MODALITY, 2) == 4096);      /* -1000 + 5096 */
    CHECK(px(&r, DICOM_STAGE_MODALITY, 3) == 4094 + 4096); /* 3094 + 5096 */
    /* Negative slope: the minimum comes from the top of the stored range. */
    r.slope = -1.0, r.intercept = 0.0;
    CHECK(px(&r, DICOM_STAGE_MODALITY, 3) == 0);
    CHECK(px(&r, DICOM_STAGE_MODALITY, 0) == 4095);
    dicom_raw_free(&r);
}

static void test_windows(void) {
    int32_t v[6] = {0, 1023, 1024, 1536, 2047, 4095};
    dicom_raw r = make_raw(1, 6, 12, 0, v);
    r.has_window = 1;
    /* LINEAR c=1024 w=1025: x <= 1024-0.5-512 = 511.5 -> 0; x > 1535.5 -> max;
     * else ((x-1023.5)/1024 + 0.5) * 65535. */
    r.window_center = 1024, r.window_width = 1025, r.voi_function = DICOM_VOI_LINEAR;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 0) == 0);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 1) == (int)floor((-0.5 / 1024 + 0.5) * 65535 + 0.5));
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 2) == (int)floor((0.5 / 1024 + 0.5) * 65535 + 0.5));
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 3) == 65535);
    /* LINEAR_EXACT c=2048 w=4096: y = (x/4096) * 65535 inside. */
    r.window_center = 2048, r.window_width = 4096, r.voi_function = DICOM_VOI_LINEAR_EXACT;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 0) == 0);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 3) == (int)floor(1536.0 / 4096 * 65535 + 0.5));
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 5) == (int)floor(4095.0 / 4096 * 65535 + 0.5));
    /* SIGMOID: centre maps to half range. */
    r.window_center = 1536, r.window_width = 800, r.voi_function = DICOM_VOI_SIGMOID;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 3) == 32768); /* 65535/2 = 32767.5 rounds up */
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 0) < 50);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 5) > 65480);
    /* MONOCHROME1 inverts the same values. */
    r.monochrome1 = 1;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 3) == 65535 - 32768);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 0) > 65485);
    /* ... and so does Presentation LUT Shape INVERSE, once (not twice). */
    r.presentation_inverse = 1;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 3) == 65535 - 32768);
    r.monochrome1 = 0;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 3) == 65535 - 32768);
    /* Inversion never touches the raw and modality stages. */
    CHECK(px(&r, DICOM_STAGE_RAW, 5) == 4095);
    CHECK(px(&r, DICOM_STAGE_MODALITY, 5) == 4095);
    dicom_raw_free(&r);
}

static void test_luts_and_precedence(void) {
    int32_t v[4] = {0, 10, 20, 255};
    dicom_raw r = make_raw(1, 4, 8, 0, v);
    /* Modality LUT: 16 entries from first=5, 12-bit output = 100*i. */
    r.modality_lut.n = 16, r.modality_lut.first = 5, r.modality_lut.bits = 12;
    r.modality_lut.data = malloc(16 * sizeof(uint16_t));
    for (int i = 0; i < 16; i++) r.modality_lut.data[i] = (uint16_t)(100 * i);
    r.has_rescale = 1, r.slope = 7; /* ignored: the LUT wins */
    CHECK(px(&r, DICOM_STAGE_MODALITY, 0) == 0);    /* below first: entry 0 */
    CHECK(px(&r, DICOM_STAGE_MODALITY, 1) == 500);  /* 10-5 = 5 */
    CHECK(px(&r, DICOM_STAGE_MODALITY, 3) == 1500); /* clamped to the last entry */
    /* VOI LUT on the modality output: 2000 entries, 8-bit, y = i/8. */
    r.voi_lut.n = 2000, r.voi_lut.first = 0, r.voi_lut.bits = 8;
    r.voi_lut.data = malloc(2000 * sizeof(uint16_t));
    for (int i = 0; i < 2000; i++) r.voi_lut.data[i] = (uint16_t)(i / 8);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 1) == (500 / 8) * 257); /* 8-bit LUT scaled by 65535/255 */
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 3) == (1500 / 8) * 257);
    /* A window beats the VOI LUT Sequence. */
    r.has_window = 1, r.window_center = 750, r.window_width = 1500, r.voi_function = DICOM_VOI_LINEAR_EXACT;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 1) == (int)floor((500.0 - 750) / 1500 * 65535 + 0.5 * 65535 + 0.5));
    dicom_raw_free(&r);
}

static void test_auto_window(void) {
    /* 1000 pixels 0..999 plus one extreme outlier: the 0.5/99.5 percentile
     * ranks are floor(0.005*1000)=5 and ceil(0.995*1000)=995. */
    enum { N = 1001 };
    int32_t v[N];
    for (int i = 0; i < 1000; i++) v[i] = i;
    v[1000] = 65000;
    dicom_raw r = make_raw(1, N, 16, 0, v);
    double lo, hi;
    fa_error err;
    CHECK(dicom_auto_window(&r, &lo, &hi, &err) == FA_OK);
    CHECK(lo == 5.0);
    CHECK(hi == 995.0);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 5) == 0);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 995) == 65535);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 500) == (int)floor(495.0 / 990 * 65535 + 0.5));
    /* Padding pixels are left out of the percentiles. */
    for (int i = 0; i < 300; i++) r.values[i] = 0;
    r.has_padding = 1, r.padding_value = 0;
    CHECK(dicom_auto_window(&r, &lo, &hi, &err) == FA_OK);
    /* 700 values 300..999 + 65000 = 701: ranks 3 and 697 -> 303 and 997. */
    CHECK(lo == 303.0);
    CHECK(hi == 997.0);
    /* Rescale with negative slope: percentiles are on modality values. */
    r.has_padding = 0, r.has_rescale = 1, r.slope = -1, r.intercept = 0;
    for (int i = 0; i < 1000; i++) r.values[i] = i;
    CHECK(dicom_auto_window(&r, &lo, &hi, &err) == FA_OK);
    CHECK(lo == -995.0);
    CHECK(hi == -5.0);
    dicom_raw_free(&r);
    /* A flat image does not divide by zero. */
    int32_t flat[4] = {7, 7, 7, 7};
    dicom_raw f = make_raw(2, 2, 8, 0, flat);
    CHECK(px(&f, DICOM_STAGE_DISPLAY, 0) == 0);
    dicom_raw_free(&f);
}

static void test_colour_identity(void) {
    int32_t v[3] = {0, 128, 255};
    dicom_raw r = make_raw(1, 3, 8, 0, v);
    r.from_colour = 1;
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 1) == 128 * 257);
    CHECK(px(&r, DICOM_STAGE_DISPLAY, 2) == 65535);
    dicom_raw_free(&r);
}

int main(void) {
    test_stages_signed_rescale();
    test_windows();
    test_luts_and_precedence();
    test_auto_window();
    test_colour_identity();
    return fa_test_finish("test_dicom_pipeline");
}
