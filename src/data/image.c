/* image.c - the 16-bit grey image type and its loaders: PNG (libpng), JPEG
 * (libjpeg), format sniffing, and image_load(), which sends DICOM through the
 * full grey pipeline in dicom.c.
 *
 * Colour inputs are reduced to grey with ITU-R BT.601 luma weights in PIL's
 * exact fixed-point form (image_luma), so a PIL-based pipeline sees the same
 * grey values. Alpha is dropped (not composited), again like PIL. Every size taken from a file is checked
 * against FA_IMAGE_MAX_PIXELS before anything is allocated.
 */
#include "data/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE */
#include <png.h>
#include <zlib.h>

#include "data/dicom.h"

void image_free(fa_image *im) {
    if (!im) return;
    free(im->pixels);
    memset(im, 0, sizeof *im);
}

fa_status image_alloc(fa_image *im, int width, int height, fa_error *err) {
    memset(im, 0, sizeof *im);
    if (width < 1 || width > 65535 || height < 1 || height > 65535)
        return fa_error_set(err, FA_ERR_SHAPE, "image size %dx%d outside 1..65535", width, height);
    uint16_t *p = fa_calloc_array((size_t)width * (size_t)height, sizeof(uint16_t));
    if (!p) return fa_error_set(err, FA_ERR_NOMEM, "image %dx%d: out of memory", width, height);
    im->width = width;
    im->height = height;
    im->pixels = p;
    return FA_OK;
}

/* Checks a width/height pair read from a file before any allocation. */
static fa_status check_dims(const char *path, long long w, long long h, fa_error *err) {
    if (w < 1 || h < 1 || w > 65535 || h > 65535)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: image size %lldx%lld outside 1..65535", path, w, h);
    if ((unsigned long long)w * (unsigned long long)h > (unsigned long long)FA_IMAGE_MAX_PIXELS)
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: image %lldx%lld exceeds the %llu-pixel limit", path, w,
                            h, (unsigned long long)FA_IMAGE_MAX_PIXELS);
    return FA_OK;
}

void image_warn(char *warning, size_t cap, const char *fmt, ...) {
    if (!warning || cap == 0) return;
    size_t used = strnlen(warning, cap);
    if (used >= cap - 1) return;
    if (used > 0 && used + 2 < cap) {
        memcpy(warning + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(warning + used, cap - used, fmt, ap);
    va_end(ap);
}

image_format image_detect_format(const char *path) {
    unsigned char b[132];
    FILE *f = fopen(path, "rb");
    if (!f) return IMAGE_FORMAT_UNKNOWN;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return image_detect_format_mem(b, n);
}

image_format image_detect_format_mem(const unsigned char *b, size_t n) {
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(b, png_sig, 8)) return IMAGE_FORMAT_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return IMAGE_FORMAT_JPEG;
    if (n >= 132 && !memcmp(b + 128, "DICM", 4)) return IMAGE_FORMAT_DICOM;
    /* No preamble (ACR-NEMA style or a bare data set): the file starts with
     * a tag of group 0002, 0008 or 0000 in little or big endian, followed by
     * an explicit VR of two upper-case letters or a 4-byte implicit length. */
    if (n >= 8) {
        unsigned g_le = b[0] | (b[1] << 8), g_be = (b[0] << 8) | b[1];
        int group_ok = g_le == 0x0002 || g_le == 0x0008 || g_le == 0x0000 || g_be == 0x0002 || g_be == 0x0008;
        int vr_ok = b[4] >= 'A' && b[4] <= 'Z' && b[5] >= 'A' && b[5] <= 'Z';
        unsigned long len_le = (unsigned long)b[4] | ((unsigned long)b[5] << 8) | ((unsigned long)b[6] << 16) |
                               ((unsigned long)b[7] << 24);
        if (group_ok && (vr_ok || len_le < 0x10000)) return IMAGE_FORMAT_DICOM;
    }
    return IMAGE_FORMAT_UNKNOWN;
}

/* ---------------------------------------------------------------- PNG --- */

typedef struct png_err_ctx {
    jmp_buf jmp;
    char msg[200];
} png_err_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_err_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    longjmp(ctx->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* benign ancillary-chunk warnings; library code stays silent */
}

/* The PNG reader shared by image_read_png and image_load. `warning` may be
 * NULL. Everything that must survive a longjmp lives in a struct that setjmp
 * does not touch. */
typedef struct png_read_state {
    FILE *f;
    png_structp png;
    png_infop info;
    unsigned char *buf;
    png_bytep *rows;
} png_read_state;

static fa_status png_read(const char *path, fa_image *out, int *bit_depth, char *warning, size_t warning_cap,
                          fa_error *err) {
    memset(out, 0, sizeof *out);
    png_err_ctx ctx;
    ctx.msg[0] = '\0';
    png_read_state *st = calloc(1, sizeof *st);
    if (!st) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    fa_status rc = FA_OK;
    st->f = fopen(path, "rb");
    if (!st->f) {
        rc = fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, st->f) != 8 || png_sig_cmp(sig, 0, 8)) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: not a PNG file", path);
        goto done;
    }
    st->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!st->png || !(st->info = png_create_info_struct(st->png))) {
        rc = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (setjmp(ctx.jmp)) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: corrupt PNG: %s", path, ctx.msg);
        image_free(out);
        goto done;
    }
    png_init_io(st->png, st->f);
    png_set_sig_bytes(st->png, 8);
    png_set_user_limits(st->png, 65535, 65535);
    /* Refuse decompression bombs in ancillary chunks (iCCP, zTXt). */
    png_set_chunk_malloc_max(st->png, 64u << 20);
    png_read_info(st->png, st->info);
    png_uint_32 w = png_get_image_width(st->png, st->info), h = png_get_image_height(st->png, st->info);
    if ((rc = check_dims(path, w, h, err)) != FA_OK) goto done;
    int color = png_get_color_type(st->png, st->info);
    int depth = png_get_bit_depth(st->png, st->info);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(st->png);
        image_warn(warning, warning_cap, "%s: palette PNG converted to grey", path);
    } else if (color & PNG_COLOR_MASK_COLOR) {
        image_warn(warning, warning_cap, "%s: colour PNG converted to grey", path);
    }
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(st->png);
    if (color & PNG_COLOR_MASK_ALPHA) {
        png_set_strip_alpha(st->png);
        image_warn(warning, warning_cap, "%s: alpha channel ignored", path);
    }
    int passes = png_set_interlace_handling(st->png);
    (void)passes;
    png_read_update_info(st->png, st->info);
    int channels = png_get_channels(st->png, st->info);
    int odepth = png_get_bit_depth(st->png, st->info);
    if ((channels != 1 && channels != 3) || (odepth != 8 && odepth != 16)) {
        rc = fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: PNG layout %d channels x %d bits not supported", path,
                          channels, odepth);
        goto done;
    }
    size_t rowbytes = png_get_rowbytes(st->png, st->info);
    size_t need;
    if (!fa_size_mul4(w, (size_t)channels, (size_t)odepth / 8, 1, &need) || rowbytes < need) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: inconsistent PNG row size", path);
        goto done;
    }
    st->buf = fa_malloc_array(h, rowbytes);
    st->rows = fa_malloc_array(h, sizeof *st->rows);
    if (!st->buf || !st->rows) {
        rc = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for %ux%u PNG", path, (unsigned)w, (unsigned)h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) st->rows[y] = st->buf + (size_t)y * rowbytes;
    png_read_image(st->png, st->rows);
    png_read_end(st->png, NULL);
    if ((rc = image_alloc(out, (int)w, (int)h, err)) != FA_OK) {
        fa_error_prefix(err, "%s", path);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) {
        const unsigned char *r = st->rows[y];
        uint16_t *o = out->pixels + (size_t)y * w;
        for (png_uint_32 x = 0; x < w; x++) {
            unsigned v[3];
            for (int c = 0; c < channels; c++) {
                const unsigned char *p = r + ((size_t)x * channels + c) * (odepth / 8);
                v[c] = odepth == 16 ? (unsigned)((p[0] << 8) | p[1]) : p[0];
            }
            unsigned g = channels == 1 ? v[0] : image_luma(v[0], v[1], v[2]);
            o[x] = (uint16_t)(odepth == 16 ? g : g * 257u);
        }
    }
    if (bit_depth) *bit_depth = odepth;
done:
    if (st->png) png_destroy_read_struct(&st->png, st->info ? &st->info : NULL, NULL);
    if (st->f) fclose(st->f);
    free(st->buf);
    free(st->rows);
    free(st);
    return rc;
}

fa_status image_read_png(const char *path, fa_image *out, int *bit_depth, fa_error *err) {
    return png_read(path, out, bit_depth, NULL, 0, err);
}

typedef struct png_write_state {
    FILE *f;
    png_structp png;
    png_infop info;
    unsigned char *row;
} png_write_state;

fa_status image_write_png16(const char *path, const fa_image *im, fa_error *err) {
    if (!im || !im->pixels || im->width < 1 || im->height < 1)
        return fa_error_set(err, FA_ERR_ARG, "%s: empty image", path);
    png_err_ctx ctx;
    ctx.msg[0] = '\0';
    png_write_state *st = calloc(1, sizeof *st);
    if (!st) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    fa_status rc = FA_OK;
    st->f = fopen(path, "wb");
    if (!st->f) {
        rc = fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    st->row = fa_malloc_array((size_t)im->width, 2);
    st->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!st->row || !st->png || !(st->info = png_create_info_struct(st->png))) {
        rc = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (setjmp(ctx.jmp)) {
        rc = fa_error_set(err, FA_ERR_IO, "%s: writing PNG: %s", path, ctx.msg);
        goto done;
    }
    png_init_io(st->png, st->f);
    /* zlib dominates decode-to-PNG time. On a 2500x2048 15-bit radiograph,
     * level 1 + SUB filter + Z_RLE is 2.2x faster than level 1 with
     * libpng's adaptive filters and the file is no larger (7.84 vs 7.86 MB):
     * noisy 16-bit rows give LZ77 little to match beyond runs. */
    png_set_compression_level(st->png, 1);
    png_set_filter(st->png, 0, PNG_FILTER_SUB);
    png_set_compression_strategy(st->png, Z_RLE);
    png_set_IHDR(st->png, st->info, (png_uint_32)im->width, (png_uint_32)im->height, 16, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(st->png, st->info);
    for (int y = 0; y < im->height; y++) {
        const uint16_t *src = im->pixels + (size_t)y * im->width;
        for (int x = 0; x < im->width; x++) {
            st->row[2 * x] = (unsigned char)(src[x] >> 8);
            st->row[2 * x + 1] = (unsigned char)(src[x] & 0xff);
        }
        png_write_row(st->png, st->row);
    }
    png_write_end(st->png, NULL);
done:
    if (st->png) png_destroy_write_struct(&st->png, st->info ? &st->info : NULL);
    if (st->f && fclose(st->f) != 0 && rc == FA_OK) rc = fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    free(st->row);
    free(st);
    return rc;
}

/* --------------------------------------------------------------- JPEG --- */

typedef struct jpeg_err_ctx {
    struct jpeg_error_mgr mgr;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err_ctx *ctx = (jpeg_err_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, ctx->msg);
    longjmp(ctx->jmp, 1);
}

static void jpeg_on_message(j_common_ptr cinfo) {
    /* Keep the first warning as the reason; corrupt-data warnings become an
     * error after decoding (a silently grey-filled radiograph is worse than
     * a refused one). */
    jpeg_err_ctx *ctx = (jpeg_err_ctx *)cinfo->err;
    if (!ctx->msg[0]) (*cinfo->err->format_message)(cinfo, ctx->msg);
}

typedef struct jpeg_read_state {
    FILE *f;
    struct jpeg_decompress_struct cinfo;
    int created;
    unsigned char *row;
} jpeg_read_state;

static fa_status jpeg_read(const char *path, fa_image *out, char *warning, size_t warning_cap, fa_error *err) {
    memset(out, 0, sizeof *out);
    jpeg_err_ctx *ctx = calloc(1, sizeof *ctx);
    jpeg_read_state *st = calloc(1, sizeof *st);
    fa_status rc = FA_OK;
    if (!ctx || !st) {
        free(ctx);
        free(st);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    }
    st->f = fopen(path, "rb");
    if (!st->f) {
        rc = fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    st->cinfo.err = jpeg_std_error(&ctx->mgr);
    ctx->mgr.error_exit = jpeg_on_error;
    ctx->mgr.output_message = jpeg_on_message;
    if (setjmp(ctx->jmp)) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: corrupt JPEG: %s", path, ctx->msg);
        image_free(out);
        goto done;
    }
    jpeg_create_decompress(&st->cinfo);
    st->created = 1;
    jpeg_stdio_src(&st->cinfo, st->f);
    jpeg_read_header(&st->cinfo, TRUE);
    if ((rc = check_dims(path, st->cinfo.image_width, st->cinfo.image_height, err)) != FA_OK) goto done;
    J_COLOR_SPACE cs = st->cinfo.jpeg_color_space;
    if (cs == JCS_CMYK || cs == JCS_YCCK) {
        rc = fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: CMYK JPEG not supported", path);
        goto done;
    }
    int colour = cs != JCS_GRAYSCALE;
    /* Decode colour to RGB and apply the BT.601 weights ourselves rather
     * than taking libjpeg's Y channel, so PNG and JPEG colour inputs turn
     * grey the same way. */
    st->cinfo.out_color_space = colour ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_start_decompress(&st->cinfo);
    int w = (int)st->cinfo.output_width, h = (int)st->cinfo.output_height, nc = st->cinfo.output_components;
    if ((rc = image_alloc(out, w, h, err)) != FA_OK) {
        fa_error_prefix(err, "%s", path);
        goto done;
    }
    st->row = fa_malloc_array((size_t)w, (size_t)nc);
    if (!st->row) {
        rc = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
        image_free(out);
        goto done;
    }
    while (st->cinfo.output_scanline < st->cinfo.output_height) {
        size_t y = st->cinfo.output_scanline;
        JSAMPROW rp = st->row;
        if (jpeg_read_scanlines(&st->cinfo, &rp, 1) != 1) break;
        uint16_t *o = out->pixels + y * (size_t)w;
        for (int x = 0; x < w; x++) {
            const unsigned char *p = st->row + (size_t)x * nc;
            unsigned g = nc == 1 ? p[0] : image_luma(p[0], p[1], p[2]);
            o[x] = (uint16_t)(g * 257u);
        }
    }
    if (ctx->mgr.num_warnings > 0) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: corrupt JPEG: %s", path, ctx->msg);
        image_free(out);
        goto done;
    }
    jpeg_finish_decompress(&st->cinfo);
    if (colour) image_warn(warning, warning_cap, "%s: colour JPEG converted to grey", path);
done:
    if (st->created) jpeg_destroy_decompress(&st->cinfo);
    if (st->f) fclose(st->f);
    free(st->row);
    free(st);
    free(ctx);
    return rc;
}

fa_status image_read_jpeg(const char *path, fa_image *out, char *warning, size_t warning_cap, fa_error *err) {
    return jpeg_read(path, out, warning, warning_cap, err);
}

fa_status image_load(const char *path, fa_image *out, char *warning, size_t warning_cap, fa_error *err) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return fa_error_set(err, FA_ERR_IO, "%s: is a directory", path);
    if (st.st_size == 0) return fa_error_set(err, FA_ERR_FORMAT, "%s: empty file", path);
    switch (image_detect_format(path)) {
    case IMAGE_FORMAT_PNG: return png_read(path, out, NULL, warning, warning_cap, err);
    case IMAGE_FORMAT_JPEG: return jpeg_read(path, out, warning, warning_cap, err);
    case IMAGE_FORMAT_DICOM: return dicom_decode(path, DICOM_STAGE_DISPLAY, out, warning, warning_cap, err);
    case IMAGE_FORMAT_UNKNOWN: break;
    }
    return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: not a DICOM, PNG or JPEG file", path);
}
