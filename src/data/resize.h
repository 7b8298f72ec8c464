/* resize.h - antialiased resizing of 16-bit grey images for the cache.
 *
 * The algorithm is Pillow's (Resample.c, ImagingResample with box = the whole
 * image and reducing_gap = None): a separable convolution whose kernel is
 * stretched by the scale factor when reducing (so it averages every source
 * pixel: antialiasing), normalised weights per output pixel, a horizontal
 * pass over the source rows the vertical pass needs, then a vertical pass.
 * Arithmetic follows Pillow's 32-bit integer mode ("I"): double accumulation,
 * each pass rounded half away from zero to an integer; freeair then clamps to
 * 0..65535. Filters: box (area average), bilinear (triangle) and Lanczos-3
 * (Pillow's LANCZOS / ANTIALIAS, the default for the cache).
 *
 * Agreement with PIL, checked by tests/unit/test_resize_pil.c against
 * tests/ref/resize_reference.py (Image.resize on mode "I", clamped): at most
 * 1 grey level of 65535 (in practice identical).
 */
#ifndef FA_RESIZE_H
#define FA_RESIZE_H

#include <stdint.h>

#include "core/fa_status.h"
#include "data/image.h"

typedef enum resize_filter { RESIZE_BOX, RESIZE_BILINEAR, RESIZE_LANCZOS } resize_filter;

/* "box", "bilinear", "lanczos". */
const char *resize_filter_name(resize_filter f);
/* Parse a name (also "area" for box, "antialias" for lanczos); 0 on failure. */
int resize_filter_parse(const char *s, resize_filter *f);

/* Output size that makes the shorter side short_side, keeping the aspect
 * ratio (the longer side rounded to nearest, at least 1). Images whose short
 * side is already <= short_side keep their size (never upscaled). */
void resize_short_side_dims(int width, int height, int short_side, int *out_width, int *out_height);

/* Resize src (w x h, row-major) into dst (ow x oh), which the caller owns.
 * Sizes 1..65535. FA_ERR_ARG for bad sizes, FA_ERR_NOMEM when scratch memory
 * cannot be had. dst may not alias src. */
fa_status resize_u16(const uint16_t *src, int w, int h, uint16_t *dst, int ow, int oh, resize_filter f,
                     fa_error *err);

/* Allocate out (ow x oh) and resize in into it; out's spacing is scaled. */
fa_status resize_image(const fa_image *in, fa_image *out, int ow, int oh, resize_filter f, fa_error *err);

#endif
