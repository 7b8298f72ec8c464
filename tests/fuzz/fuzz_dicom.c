/* fuzz_dicom.c - libFuzzer target for the DICOM reader: header reading and
 * the full decode (DCMTK codecs, OpenJPEG, grey pipeline) of arbitrary bytes.
 * Any outcome but a crash, leak, hang or sanitizer report is fine; the
 * status must be OK or a failure with a message naming the file. */
#include <stdint.h>
#include <string.h>

#include "data/dicom.h"
#include "data/image.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(data, size, ".dcm");
    if (!path) return 0;
    dicom_header h;
    fa_error err;
    fa_status st = dicom_read_header(path, &h, &err);
    if (st != FA_OK && !strstr(err.msg, path)) __builtin_trap();
    fa_image im;
    char warn[512] = "";
    static const dicom_stage stages[] = {DICOM_STAGE_DISPLAY, DICOM_STAGE_RAW, DICOM_STAGE_MODALITY};
    st = dicom_decode(path, stages[size % 3], &im, warn, sizeof warn, &err);
    if (st == FA_OK) {
        if (!im.pixels || im.width < 1 || im.height < 1) __builtin_trap();
        image_free(&im);
    } else if (im.pixels || !strstr(err.msg, path)) {
        __builtin_trap();
    }
    return 0;
}
