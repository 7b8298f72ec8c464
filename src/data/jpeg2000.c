/* jpeg2000.c - JPEG 2000 decoding through OpenJPEG (libopenjp2), from a
 * memory buffer, with OpenJPEG's messages captured instead of printed.
 */
#include "data/jpeg2000.h"

#include <omp.h>
#include <openjpeg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"

typedef struct j2k_mem {
    const unsigned char *buf;
    size_t len, pos;
} j2k_mem;

static OPJ_SIZE_T mem_read(void *dst, OPJ_SIZE_T n, void *user) {
    j2k_mem *m = user;
    if (m->pos >= m->len) return (OPJ_SIZE_T)-1; /* OpenJPEG's end-of-stream */
    size_t left = m->len - m->pos;
    if (n > left) n = left;
    memcpy(dst, m->buf + m->pos, n);
    m->pos += n;
    return n;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user) {
    j2k_mem *m = user;
    if (n < 0) {
        if ((size_t)(-n) > m->pos) n = -(OPJ_OFF_T)m->pos;
    } else if ((size_t)n > m->len - m->pos) {
        n = (OPJ_OFF_T)(m->len - m->pos);
    }
    m->pos += n;
    return n;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T n, void *user) {
    j2k_mem *m = user;
    if (n < 0 || (size_t)n > m->len) return OPJ_FALSE;
    m->pos = (size_t)n;
    return OPJ_TRUE;
}

static void on_error(const char *msg, void *user) {
    char *dst = user;
    if (dst[0]) return; /* the first error is the cause; later ones are echoes */
    snprintf(dst, 200, "%s", msg);
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' ')) dst[--n] = '\0';
}

static void on_quiet(const char *msg, void *user) {
    (void)msg;
    (void)user;
}

void j2k_free(j2k_image *im) {
    if (!im) return;
    free(im->data);
    memset(im, 0, sizeof *im);
}

fa_status j2k_decode(const unsigned char *buf, size_t len, const char *name, int expect_width, int expect_height,
                     j2k_image *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    static const unsigned char jp2_sig[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0d, 0x0a, 0x87, 0x0a};
    OPJ_CODEC_FORMAT fmt;
    if (len >= 12 && !memcmp(buf, jp2_sig, 12))
        fmt = OPJ_CODEC_JP2;
    else if (len >= 4 && buf[0] == 0xff && buf[1] == 0x4f && buf[2] == 0xff && buf[3] == 0x51)
        fmt = OPJ_CODEC_J2K;
    else
        return fa_error_set(err, FA_ERR_FORMAT, "%s: JPEG 2000 frame has neither a J2K nor a JP2 signature", name);

    char msg[200] = "";
    j2k_mem mem = {buf, len, 0};
    opj_codec_t *codec = opj_create_decompress(fmt);
    opj_stream_t *stream = opj_stream_create(1 << 16, OPJ_TRUE);
    opj_image_t *img = NULL;
    fa_status rc = FA_OK;
    if (!codec || !stream) {
        rc = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for the JPEG 2000 decoder", name);
        goto done;
    }
    opj_set_error_handler(codec, on_error, msg);
    opj_set_warning_handler(codec, on_quiet, NULL);
    opj_set_info_handler(codec, on_quiet, NULL);
    opj_stream_set_user_data(stream, &mem, NULL);
    opj_stream_set_user_data_length(stream, len);
    opj_stream_set_read_function(stream, mem_read);
    opj_stream_set_skip_function(stream, mem_skip);
    opj_stream_set_seek_function(stream, mem_seek);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    int ok = opj_setup_decoder(codec, &params);
    /* OpenJPEG's own thread pool only when the caller is not already
     * decoding files in parallel (a cache build runs one file per thread). */
    if (ok && !omp_in_parallel() && omp_get_max_threads() > 1) opj_codec_set_threads(codec, omp_get_max_threads());
    if (!ok || !opj_read_header(stream, codec, &img) || !img) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: broken JPEG 2000 header: %s", name, msg[0] ? msg : "unreadable");
        goto done;
    }
    long long w = (long long)img->x1 - img->x0, h = (long long)img->y1 - img->y0;
    if (w < 1 || h < 1 || w > 65535 || h > 65535 || (unsigned long long)(w * h) > FA_IMAGE_MAX_PIXELS) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: JPEG 2000 image size %lldx%lld is not plausible", name, w, h);
        goto done;
    }
    if ((expect_width > 0 && w != expect_width) || (expect_height > 0 && h != expect_height)) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: JPEG 2000 codestream is %lldx%lld but the header says %dx%d", name,
                          w, h, expect_width, expect_height);
        goto done;
    }
    if (img->numcomps < 1 || img->numcomps > J2K_MAX_COMPONENTS) {
        rc = fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: JPEG 2000 image with %u components", name, img->numcomps);
        goto done;
    }
    for (OPJ_UINT32 c = 0; c < img->numcomps; c++) {
        if (img->comps[c].dx != 1 || img->comps[c].dy != 1) {
            rc = fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: subsampled JPEG 2000 components", name);
            goto done;
        }
        if (img->comps[c].prec < 1 || img->comps[c].prec > 16) {
            rc = fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: JPEG 2000 component precision %u bits (1..16 supported)",
                              name, img->comps[c].prec);
            goto done;
        }
    }
    if (!opj_decode(codec, stream, img) || !opj_end_decompress(codec, stream)) {
        rc = fa_error_set(err, FA_ERR_FORMAT, "%s: broken JPEG 2000 codestream: %s", name, msg[0] ? msg : "decode failed");
        goto done;
    }
    size_t npix = (size_t)w * (size_t)h;
    for (OPJ_UINT32 c = 0; c < img->numcomps; c++) {
        if (!img->comps[c].data || img->comps[c].w != (OPJ_UINT32)w || img->comps[c].h != (OPJ_UINT32)h) {
            rc = fa_error_set(err, FA_ERR_FORMAT, "%s: JPEG 2000 component %u has no data of the image size", name, c);
            goto done;
        }
    }
    out->data = fa_malloc_array(npix * img->numcomps, sizeof(int32_t));
    if (!out->data) {
        rc = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for a %lldx%lld JPEG 2000 image", name, w, h);
        goto done;
    }
    out->width = (int)w;
    out->height = (int)h;
    out->ncomp = (int)img->numcomps;
    for (int c = 0; c < out->ncomp; c++) {
        out->prec[c] = (int)img->comps[c].prec;
        out->sgnd[c] = (int)img->comps[c].sgnd;
        memcpy(out->data + (size_t)c * npix, img->comps[c].data, npix * sizeof(int32_t));
    }
done:
    if (img) opj_image_destroy(img);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
    return rc;
}
