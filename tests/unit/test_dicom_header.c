/* test_dicom_header.c - dicom_read_header on the shared real-world corpus
 * (expected values from its MANIFEST.csv and dcmdump), error codes for
 * missing and non-DICOM files, hostile lengths (found by fuzz_dicom), and
 * thread safety: headers read and frames decoded from many OpenMP threads at
 * once equal the serial results. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

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


/* Little-endian explicit-VR element writers for hand-made hostile files. */
static void put16(FILE *f, unsigned v) { fputc(v & 0xff, f), fputc(v >> 8, f); }
static void put32(FILE *f, unsigned long v) { put16(f, v & 0xffff), put16(f, v >> 16); }
static void el_short(FILE *f, unsigned g, unsigned e, const char *vr, const void *val, unsigned len) {
    put16(f, g), put16(f, e), fwrite(vr, 1, 2, f), put16(f, len), fwrite(val, 1, len, f);
}
static void el_us(FILE *f, unsigned g, unsigned e, unsigned v) {
    unsigned char b[2] = {v & 0xff, v >> 8};
    el_short(f, g, e, "US", b, 2);
}

/* An 8x8 JPEG baseline file whose codestream's frame header claims
 * 40000x40000: IJG would size its buffers from that, so the reader must
 * refuse it from the headers (the fuzzer found the progressive variant asking
 * for 3.6 GB). */
static void test_hostile_jpeg_frame_header(void) {
    char path[] = "/tmp/freeair_hostile_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    static const char ts[24] = "1.2.840.10008.1.2.4.50"; /* 22 chars, NUL-padded to even */
    for (int i = 0; i < 128; i++) fputc(0, f);
    fwrite("DICM", 1, 4, f);
    el_short(f, 0x0002, 0x0000, "UL", (unsigned char[]){32, 0, 0, 0}, 4);
    el_short(f, 0x0002, 0x0010, "UI", ts, 24);
    el_us(f, 0x0028, 0x0002, 1);
    el_short(f, 0x0028, 0x0004, "CS", "MONOCHROME2 ", 12);
    el_us(f, 0x0028, 0x0010, 8);
    el_us(f, 0x0028, 0x0011, 8);
    el_us(f, 0x0028, 0x0100, 8);
    el_us(f, 0x0028, 0x0101, 8);
    el_us(f, 0x0028, 0x0102, 7);
    el_us(f, 0x0028, 0x0103, 0);
    static const unsigned char jpeg[] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x9c, 0x40,
                                         0x9c, 0x40, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9, 0x00};
    put16(f, 0x7fe0), put16(f, 0x0010), fwrite("OB\0\0", 1, 4, f), put32(f, 0xffffffffUL);
    put16(f, 0xfffe), put16(f, 0xe000), put32(f, 0);
    put16(f, 0xfffe), put16(f, 0xe000), put32(f, sizeof jpeg), fwrite(jpeg, 1, sizeof jpeg, f);
    put16(f, 0xfffe), put16(f, 0xe0dd), put32(f, 0);
    fclose(f);
    fa_image im;
    fa_error err;
    CHECK(dicom_decode(path, DICOM_STAGE_RAW, &im, NULL, 0, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "JPEG frame header says 40000x40000") != NULL);
    CHECK(im.pixels == NULL);
    unlink(path);
}

/* A deflated data set whose one element declares 4 GiB: DCMTK, reading the
 * deflate stream, would allocate that before finding the stream short (the
 * fuzzer's out-of-memory); the reader inflates first and then sees a
 * truncated file. */
static void test_hostile_deflated_length(void) {
    unsigned char ds[8 + 4 + 64] = {0x09, 0x00, 0x10, 0x00, 'O', 'B', 0, 0, 0xfe, 0xff, 0xff, 0xf0};
    unsigned char z[256];
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    CHECK(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = ds, zs.avail_in = sizeof ds, zs.next_out = z, zs.avail_out = sizeof z;
    CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    size_t zn = sizeof z - zs.avail_out;
    deflateEnd(&zs);
    char path[] = "/tmp/freeair_deflated_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    static const char ts[24] = "1.2.840.10008.1.2.1.99"; /* 22 chars, NUL-padded to even */
    for (int i = 0; i < 128; i++) fputc(0, f);
    fwrite("DICM", 1, 4, f);
    el_short(f, 0x0002, 0x0000, "UL", (unsigned char[]){32, 0, 0, 0}, 4);
    el_short(f, 0x0002, 0x0010, "UI", ts, 24);
    fwrite(z, 1, zn, f);
    fclose(f);
    dicom_header h;
    fa_error err;
    CHECK(dicom_read_header(path, &h, &err) == FA_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
    unlink(path);
}

/* An RLE frame whose third segment offset points 14 MB past its 1.3 KB
 * fragment: DCMTK's decoder would read there (fuzz_dicom's SEGV); the reader
 * refuses it from the header. The file is kept as a fuzz seed. */
static void test_hostile_rle_offset(void) {
    const char *root = getenv("FREEAIR_ROOT");
    char path[1200];
    snprintf(path, sizeof path, "%s/tests/fuzz/seeds/fuzz_dicom/rle_segment_offset.dcm", root && *root ? root : ".");
    fa_image im;
    fa_error err;
    CHECK(dicom_decode(path, DICOM_STAGE_RAW, &im, NULL, 0, &err) == FA_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "RLE segment 3 starts at 14943100") != NULL, "%s", err.msg);
    CHECK(im.pixels == NULL);
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
    test_hostile_jpeg_frame_header();
    test_hostile_deflated_length();
    test_hostile_rle_offset();
    test_threads();
    return fa_test_finish("test_dicom_header");
}
