/* image.h - grey-scale radiograph images and the loader for every input format.
 *
 * The single image type the rest of freeair sees: 16-bit grey, row-major,
 * display orientation (bone bright, after the full DICOM grey pipeline), so
 * that 12-16 bit depth survives until the final normalisation.
 * image_load() dispatches on content (DICOM by preamble/tags, PNG, JPEG), not
 * on the file name.
 */
#ifndef FA_IMAGE_H
#define FA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"

typedef struct fa_image {
    int width;
    int height;
    uint16_t *pixels; /* width*height values, owned by the image */
    /* Pixel spacing in mm (row, column); 0 when unknown. */
    double spacing_row_mm, spacing_col_mm;
} fa_image;

void image_free(fa_image *im); /* frees pixels, zeroes the struct */
/* Allocate width*height pixels (overflow-checked; both sides 1..65535). */
fa_status image_alloc(fa_image *im, int width, int height, fa_error *err);

typedef enum image_format { IMAGE_FORMAT_UNKNOWN, IMAGE_FORMAT_DICOM, IMAGE_FORMAT_PNG, IMAGE_FORMAT_JPEG } image_format;

/* Sniff the format from the first bytes of the file. */
image_format image_detect_format(const char *path);

/* Load any supported file as display-ready 16-bit grey (DICOM through the
 * full grey pipeline; PNG/JPEG 8-bit scaled by 257, RGB converted to grey).
 * Warnings (e.g. colour converted) are appended to `warning` when non-NULL
 * (size warning_cap). */
fa_status image_load(const char *path, fa_image *out, char *warning, size_t warning_cap, fa_error *err);

/* 16-bit grey PNG writer / reader (8-bit PNGs are read scaled by 257). */
fa_status image_write_png16(const char *path, const fa_image *im, fa_error *err);
fa_status image_read_png(const char *path, fa_image *out, int *bit_depth, fa_error *err);

#endif
