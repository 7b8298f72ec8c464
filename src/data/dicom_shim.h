/* dicom_shim.h - the plain-C boundary between the DCMTK shim
 * (dicom_dcmtk.cpp, the only file that calls DCMTK) and the grey pipeline in
 * dicom.c. Private to the data layer; other modules use dicom.h.
 *
 * Why the pipeline is ours and not DCMTK's DicomImage: the LUT math is a
 * dozen lines per PS3.3 C.11, is easier to test in C on synthetic values
 * (test_dicom_pipeline.c), keeps 16-bit output at every stage, and lets the
 * automatic window, the window/VOI-LUT precedence and the MONOCHROME1 /
 * Presentation LUT Shape rule be stated in one place.
 */
#ifndef FA_DICOM_SHIM_H
#define FA_DICOM_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"
#include "data/dicom.h"

/* One LUT from a Modality or VOI LUT Sequence item. n == 0: absent. */
typedef struct dicom_lut {
    int n;          /* number of entries (descriptor 0 means 65536) */
    int first;      /* first input value mapped */
    int bits;       /* bits per entry (descriptor value 3), 1..16 */
    uint16_t *data; /* n entries, owned */
} dicom_lut;

typedef enum dicom_voi_function {
    DICOM_VOI_LINEAR = 0,
    DICOM_VOI_LINEAR_EXACT,
    DICOM_VOI_SIGMOID
} dicom_voi_function;

/* Stored values of the first frame plus every attribute the grey pipeline
 * needs. Filled by dicom_shim_load; release with dicom_raw_free. */
typedef struct dicom_raw {
    int rows, cols;
    int bits_stored;   /* 1..16 */
    int pixel_rep;     /* 0 unsigned, 1 two's complement */
    int32_t *values;   /* rows*cols stored values, already masked to
                          bits_stored and sign-extended; owned */
    int monochrome1;   /* PhotometricInterpretation MONOCHROME1 */
    int from_colour;   /* colour converted to grey: VOI is the identity */
    int has_rescale;
    double slope, intercept;
    dicom_lut modality_lut;
    int has_window;
    double window_center, window_width;
    dicom_voi_function voi_function;
    dicom_lut voi_lut;
    int presentation_inverse; /* Presentation LUT Shape INVERSE */
    int has_padding;          /* Pixel Padding Value present */
    int32_t padding_value;
    double spacing_row_mm, spacing_col_mm;
} dicom_raw;

void dicom_raw_free(dicom_raw *raw);

/* Load the file and decode its first frame (native, RLE, JPEG, JPEG-LS via
 * DCMTK; JPEG 2000 via jpeg2000.c). Warnings (colour converted, odd
 * attributes ignored) are appended to `warning` (may be NULL). On failure
 * `out` holds nothing and err names the file and the reason. */
fa_status dicom_shim_load(const char *path, dicom_raw *out, char *warning, size_t warning_cap, fa_error *err);

/* Run the grey pipeline on `raw` (not modified) and produce the stage's
 * 16-bit image in `out` (caller frees with image_free). `name` labels errors. */
fa_status dicom_pipeline(const dicom_raw *raw, dicom_stage stage, const char *name, fa_image *out, fa_error *err);

/* The automatic window used when a file has neither a window nor a VOI LUT:
 * the 0.5th and 99.5th percentiles of the modality values (pixels equal to
 * Pixel Padding Value excluded), lower rank floor(q*(N-1)), upper rank
 * ceil(q*(N-1)). Exposed for tests and the reference script's formula. */
fa_status dicom_auto_window(const dicom_raw *raw, double *lo, double *hi, fa_error *err);

#endif
