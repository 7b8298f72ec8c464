/* test_dicom_header.c - dicom_read_header on the shared real-world corpus
 * (expected values from its MANIFEST.csv and dcmdump), error codes for
 * missing and non-DICOM files, and thread safety: headers read and frames
 * decoded from many OpenMP threads at once equal the serial results. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "data/dicom.h"

FA_TEST_MAIN_STATE

static char corpus[1024];

static const char *path_of(const char *rel) {
    static char buf[8][1200];
    static int k = 0;
    char *p = buf[k++ % 8];
    snprintf(p, 1200, "%s/%s", corpus, rel);
    return p;
}

static void test_known_headers(void) {
    dicom_header h;
    fa_error err;
    CHECK(dicom_read_header(path_of("fo-dicom/CR-MONO1-10-chest"), &h, &err) == FA_OK);
    CHECK(h.rows == 440 && h.columns == 440);
    CHECK(h.bits_allocated == 16 && h.bits_stored == 10 && h.high_bit == 9);
    CHECK(!strcmp(h.view_position, "PA"));
    CHECK(!strcmp(h.photometric, "MONOCHROME1"));
    CHECK(!strcmp(h.modality, "CR"));
    CHECK(!strcmp(h.transfer_syntax, "1.2.840.10008.1.2")); /* no meta header: detected */
    CHECK(h.has_pixel_data == 1);
    CHECK(h.number_of_frames == 1);

    CHECK(dicom_read_header(path_of("udacity-AIHCND_C2_Starter/test2.dcm"), &h, &err) == FA_OK);
    CHECK(!strcmp(h.patient_position, "AP"));
    CHECK(h.view_position[0] == '\0');
    CHECK(!strcmp(h.body_part, "CHEST"));
    CHECK(!strcmp(h.modality, "DX"));
    CHECK(!strcmp(h.sex, "M"));
    CHECK(!strcmp(h.study_description, "Cardiomegaly"));
    CHECK(h.bits_allocated == 8 && h.rows == 1024);

    CHECK(dicom_read_header(path_of("orthanc-tests/Issue56-NoPixelData.dcm"), &h, &err) == FA_OK);
    CHECK(h.has_pixel_data == 0);
    CHECK(h.rows == 4218 && h.columns == 3420 && h.bits_stored == 15);
    CHECK(!strcmp(h.presentation_intent, "FOR PRESENTATION"));
    CHECK(!strcmp(h.view_position, "RL"));
    CHECK(!strcmp(h.manufacturer, "Agfa"));

    CHECK(dicom_read_header(path_of("dicom-test-files_WG04/RG2_J2KR.dcm"), &h, &err) == FA_OK);
    CHECK(!strcmp(h.transfer_syntax, "1.2.840.10008.1.2.4.90"));
    CHECK(!strcmp(h.body_part, "HIP"));

    CHECK(dicom_read_header(path_of("orthanc-tests/HierarchicalAnonymization_CR000000.dcm"), &h, &err) == FA_OK);
    CHECK(!strcmp(h.age, "086Y"));
    CHECK(h.pixel_spacing_row > 0.159 && h.pixel_spacing_row < 0.161);

    /* Header reading of the corrupt codestream works: only pixels are bad. */
    CHECK(dicom_read_header(path_of("pylibjpeg-data/966.dcm"), &h, &err) == FA_OK);
    CHECK(!strcmp(h.view_position, "PA") && h.bits_stored == 12);
}

static void test_errors(void) {
    dicom_header h;
    fa_error err;
    CHECK(dicom_read_header("/nonexistent/file.dcm", &h, &err) == FA_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/file.dcm") != NULL);
    CHECK(dicom_read_header(path_of("README.md"), &h, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "README.md") != NULL);
    CHECK(dicom_read_header(corpus, &h, &err) == FA_ERR_IO);
    fa_image im;
    CHECK(dicom_decode(path_of("orthanc-tests/Issue56-NoPixelData.dcm"), DICOM_STAGE_DISPLAY, &im, NULL, 0, &err) ==
          FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "Pixel Data") != NULL);
    CHECK(im.pixels == NULL);
    CHECK(dicom_decode(path_of("pylibjpeg-data/966.dcm"), DICOM_STAGE_RAW, &im, NULL, 0, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "966.dcm") != NULL && strstr(err.msg, "JPEG 2000") != NULL);
}

static const char *const files[] = {
    "fo-dicom/CR-MONO1-10-chest",
    "udacity-AIHCND_C2_Starter/test1.dcm",
    "orthanc-tests/Issue56-NoPixelData.dcm",
    "pydicom/dicomdirtests_77654033_CR1_6154.dcm",
    "pydicom/chrJapMulti.dcm",
    "dicom-test-files_WG04/RG3_JPLY.dcm",
    "dicom-test-files_WG04/RG3_JLSN.dcm",
    "dicom-test-files_WG04/RG3_RLE.dcm",
};
enum { NF = sizeof files / sizeof files[0] };

static uint64_t checksum(const fa_image *im) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < (size_t)im->width * im->height; i++) h = (h ^ im->pixels[i]) * 1099511628211ull;
    return h;
}

static void test_threads(void) {
    dicom_header serial[NF];
    uint64_t sums[NF];
    fa_error err;
    for (int i = 0; i < NF; i++) {
        CHECK(dicom_read_header(path_of(files[i]), &serial[i], &err) == FA_OK);
        fa_image im;
        sums[i] = 0;
        if (serial[i].has_pixel_data && dicom_decode(path_of(files[i]), DICOM_STAGE_DISPLAY, &im, NULL, 0, &err) == FA_OK) {
            sums[i] = checksum(&im);
            image_free(&im);
        }
    }
    int mismatches = 0;
    omp_set_num_threads(4); /* more threads than cores: interleavings, not speed */
#pragma omp parallel for schedule(dynamic) reduction(+ : mismatches)
    for (int k = 0; k < 3 * NF; k++) {
        int i = k % NF;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", corpus, files[i]);
        dicom_header h;
        fa_error e;
        if (dicom_read_header(p, &h, &e) != FA_OK || memcmp(&h, &serial[i], sizeof h)) mismatches++;
        if (sums[i]) {
            fa_image im;
            if (dicom_decode(p, DICOM_STAGE_DISPLAY, &im, NULL, 0, &e) != FA_OK) {
                mismatches++;
            } else {
                if (checksum(&im) != sums[i]) mismatches++;
                image_free(&im);
            }
        }
    }
    CHECK(mismatches == 0);
}

int main(void) {
    const char *shared = getenv("FREEAIR_SHARED");
    snprintf(corpus, sizeof corpus, "%s/testdata/dicom", shared && *shared ? shared : "../shared");
    if (access(corpus, R_OK) != 0) {
        fprintf(stderr, "test_dicom_header: corpus %s not found (set FREEAIR_SHARED)\n", corpus);
        return 1;
    }
    test_known_headers();
    test_errors();
    test_threads();
    return fa_test_finish("test_dicom_header");
}
