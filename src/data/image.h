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
/* Same, on the first n bytes of a file already in memory (132 are enough). */
image_format image_detect_format_mem(const unsigned char *bytes, size_t n);

/* Largest image any reader accepts (width*height); radiographs reach about
 * 20 Mpixel, so this only stops absurd headers before they allocate. A
 * build may lower it (the fuzzers do, to stay inside libFuzzer's RSS cap). */
#ifndef FA_IMAGE_MAX_PIXELS
#define FA_IMAGE_MAX_PIXELS (1ull << 27)
#endif

/* Load any supported file as display-ready 16-bit grey (DICOM through the
 * full grey pipeline; PNG/JPEG 8-bit scaled by 257, RGB converted to grey).
 * Warnings (e.g. colour converted) are appended to `warning` when non-NULL
 * (size warning_cap). */
fa_status image_load(const char *path, fa_image *out, char *warning, size_t warning_cap, fa_error *err);

/* 16-bit grey PNG writer / reader (8-bit PNGs are read scaled by 257). */
fa_status image_write_png16(const char *path, const fa_image *im, fa_error *err);
fa_status image_read_png(const char *path, fa_image *out, int *bit_depth, fa_error *err);
/* 8-bit JPEG (grey or colour, converted with BT.601 luma), scaled by 257.
 * Corrupt-data warnings from libjpeg are errors (FA_ERR_FORMAT). */
fa_status image_read_jpeg(const char *path, fa_image *out, char *warning, size_t warning_cap, fa_error *err);

/* Grey from RGB: BT.601 weights in PIL's fixed point, (R*19595 + G*38470 +
 * B*7471 + 2^15) >> 16, identical to PIL's convert("L") for 8-bit input. */
static inline unsigned image_luma(unsigned r, unsigned g, unsigned b) {
    return (unsigned)(((unsigned long long)r * 19595u + (unsigned long long)g * 38470u +
                       (unsigned long long)b * 7471u + 0x8000u) >> 16);
}

/* Append "; "-separated text to a caller's warning buffer (NULL is fine). */
void image_warn(char *warning, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
