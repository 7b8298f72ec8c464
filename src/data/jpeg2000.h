/* jpeg2000.h - decode one JPEG 2000 codestream (raw J2K or JP2) from memory
 * with OpenJPEG. Used by the DICOM shim for the JPEG 2000 transfer syntaxes,
 * which DCMTK 3.6.7 cannot decode.
 */
#ifndef FA_JPEG2000_H
#define FA_JPEG2000_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"

#define J2K_MAX_COMPONENTS 4

typedef struct j2k_image {
    int width, height;
    int ncomp;                       /* 1..J2K_MAX_COMPONENTS */
    int prec[J2K_MAX_COMPONENTS];    /* bits per sample as coded (1..16) */
    int sgnd[J2K_MAX_COMPONENTS];    /* 1 when the codestream says signed */
    int32_t *data;                   /* ncomp planes of width*height, owned */
} j2k_image;

/* Decode `len` bytes at `buf` (caller keeps ownership). `name` is the file
 * named in error messages. When expect_width/height are > 0 the codestream
 * must have that size (checked before the pixel data is decoded, so a lying
 * header never allocates). Errors: FA_ERR_FORMAT for a broken codestream,
 * FA_ERR_UNSUPPORTED for subsampled components, >16-bit or >4 components. */
fa_status j2k_decode(const unsigned char *buf, size_t len, const char *name, int expect_width, int expect_height,
                     j2k_image *out, fa_error *err);

void j2k_free(j2k_image *im); /* frees data, zeroes the struct */

#endif
