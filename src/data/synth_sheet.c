/* synth_sheet.c - pictures of the synthetic cohort: 8-bit display renderings,
 * PNG writers, a built-in 5x7 bitmap font and the contact sheet (a grid of
 * thumbnails with the free-air outline and the truth printed beneath).
 *
 * The font is also used by the renderer for lead side markers ("R"/"L").
 */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

/* ASCII 32..95, seven rows of five bits each (bit 4 = leftmost column). */
static const uint8_t font5x7[64][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* '!' */
    {0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0a, 0x1f, 0x0a, 0x0a, 0x0a, 0x1f, 0x0a}, /* '#' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* '%' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* '&' */
    {0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}, /* "'" */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ')' */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x06, 0x04, 0x08}, /* ',' */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* '.' */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* '/' */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* '0' */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* '1' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* '2' */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* '3' */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* '4' */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* '5' */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* '6' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* '7' */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* '8' */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* '9' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* ':' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* '<' */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* '>' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* '?' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* '@' */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* 'A' */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* 'B' */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* 'C' */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}, /* 'D' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* 'E' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* 'F' */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* 'H' */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* 'L' */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* 'N' */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* 'O' */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* 'P' */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* 'Q' */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* 'R' */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* 'S' */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* 'W' */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* 'X' */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}, /* 'Y' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* 'Z' */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e}, /* '[' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* backslash */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e}, /* ']' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* '_' */
};

const uint8_t *synth_font_glyph(char ch) {
    int c = (unsigned char)ch;
    if (c >= 'a' && c <= 'z') c -= 32;
    if (c < 32 || c > 95) c = '?';
    return font5x7[c - 32];
}

void synth_draw_text(uint8_t *rgb, int w, int h, int x, int y, int scale, const char *s, const uint8_t color[3]) {
    if (scale < 1) scale = 1;
    for (; *s; s++, x += 6 * scale) {
        const uint8_t *gl = synth_font_glyph(*s);
        for (int gy = 0; gy < 7; gy++)
            for (int gx = 0; gx < 5; gx++) {
                if (!(gl[gy] & (0x10 >> gx))) continue;
                for (int j = 0; j < scale; j++)
                    for (int i = 0; i < scale; i++) {
                        int px = x + gx * scale + i, py = y + gy * scale + j;
                        if (px < 0 || py < 0 || px >= w || py >= h) continue;
                        memcpy(rgb + ((size_t)py * w + px) * 3, color, 3);
                    }
            }
    }
}

/* Source range [*a, *b) of output index i when n source samples are shrunk to m. */
static void src_range(int i, int n, int m, int *a, int *b) {
    *a = (int)((long long)i * n / m);
    *b = (int)((long long)(i + 1) * n / m);
    if (*b <= *a) *b = *a + 1;
}

static void thumb_size(int cols, int rows, int max_side, int *w, int *h) {
    int mx = cols > rows ? cols : rows;
    if (mx <= max_side) {
        *w = cols, *h = rows;
        return;
    }
    *w = (int)((long long)cols * max_side / mx);
    *h = (int)((long long)rows * max_side / mx);
    if (*w < 1) *w = 1;
    if (*h < 1) *h = 1;
}

fa_status synth_display8(const synth_image *im, int max_side, uint8_t **out, int *ow, int *oh, fa_error *err) {
    int w, h;
    thumb_size(im->cols, im->rows, max_side, &w, &h);
    uint8_t *px = fa_malloc_array((size_t)w * h, 1);
    if (!px) return fa_error_set(err, FA_ERR_NOMEM, "display: out of memory");
    double lo = im->window_center - 0.5 * im->window_width, ww = im->window_width;
    for (int y = 0; y < h; y++) {
        int y0, y1;
        src_range(y, im->rows, h, &y0, &y1);
        for (int x = 0; x < w; x++) {
            int x0, x1;
            src_range(x, im->cols, w, &x0, &x1);
            double s = 0;
            for (int j = y0; j < y1; j++)
                for (int i = x0; i < x1; i++) s += im->stored[(size_t)j * im->cols + i];
            s /= (double)(y1 - y0) * (x1 - x0);
            double v = (s - lo) / ww;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            if (im->mono1) v = 1 - v;
            px[(size_t)y * w + x] = (uint8_t)lround(v * 255);
        }
    }
    *out = px, *ow = w, *oh = h;
    return FA_OK;
}

fa_status synth_thumb_mask(const uint8_t *mask, int cols, int rows, int tw, int th, uint8_t **out, fa_error *err) {
    uint8_t *m = fa_calloc_array((size_t)tw * th, 1);
    if (!m) return fa_error_set(err, FA_ERR_NOMEM, "mask thumbnail: out of memory");
    for (int y = 0; y < th; y++) {
        int y0, y1;
        src_range(y, rows, th, &y0, &y1);
        for (int x = 0; x < tw; x++) {
            int x0, x1;
            src_range(x, cols, tw, &x0, &x1);
            for (int j = y0; j < y1 && !m[(size_t)y * tw + x]; j++)
                for (int i = x0; i < x1; i++)
                    if (mask[(size_t)j * cols + i]) {
                        m[(size_t)y * tw + x] = 1;
                        break;
                    }
        }
    }
    *out = m;
    return FA_OK;
}

static fa_status write_png(const char *path, const uint8_t *px, int w, int h, int color, fa_error *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return fa_error_set(err, FA_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(tmp);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: libpng could not start", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: libpng write failed", path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, color ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 9);
    png_write_info(png, info);
    size_t stride = (size_t)w * (color ? 3 : 1);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + (size_t)y * stride));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        remove(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(e));
    }
    return FA_OK;
}

fa_status synth_write_png_gray(const char *path, const uint8_t *px, int w, int h, fa_error *err) {
    return write_png(path, px, w, h, 0, err);
}

fa_status synth_write_png_rgb(const char *path, const uint8_t *rgb, int w, int h, fa_error *err) {
    return write_png(path, rgb, w, h, 1, err);
}

fa_status synth_contact_sheet(const char *path, const synth_tile *tiles, int n, int cols, fa_error *err) {
    if (n <= 0 || cols <= 0) return fa_error_set(err, FA_ERR_ARG, "%s: no tiles for the contact sheet", path);
    int tw = 0, th = 0;
    for (int i = 0; i < n; i++) {
        if (tiles[i].tw > tw) tw = tiles[i].tw;
        if (tiles[i].th > th) th = tiles[i].th;
    }
    int pad = 6, text_h = 4 * 10 + 4;
    int cw = tw + 2 * pad, ch = th + text_h + 2 * pad;
    int rows = (n + cols - 1) / cols;
    int W = cols * cw, H = rows * ch;
    uint8_t *rgb = fa_calloc_array((size_t)W * H, 3);
    if (!rgb) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for the contact sheet", path);
    memset(rgb, 24, (size_t)W * H * 3);
    static const uint8_t white[3] = {235, 235, 235}, red[3] = {255, 40, 40}, yellow[3] = {255, 220, 60};
    for (int t = 0; t < n; t++) {
        const synth_tile *T = &tiles[t];
        int ox = (t % cols) * cw + pad + (tw - T->tw) / 2, oy = (t / cols) * ch + pad + (th - T->th) / 2;
        for (int y = 0; y < T->th; y++)
            for (int x = 0; x < T->tw; x++) {
                uint8_t v = T->gray[(size_t)y * T->tw + x];
                uint8_t *p = rgb + ((size_t)(oy + y) * W + ox + x) * 3;
                p[0] = p[1] = p[2] = v;
                /* outline of the free-air mask in red */
                if (T->mask && T->mask[(size_t)y * T->tw + x]) {
                    int edge = x == 0 || y == 0 || x == T->tw - 1 || y == T->th - 1 ||
                               !T->mask[(size_t)y * T->tw + x - 1] || !T->mask[(size_t)y * T->tw + x + 1] ||
                               !T->mask[(size_t)(y - 1) * T->tw + x] || !T->mask[(size_t)(y + 1) * T->tw + x];
                    if (edge) memcpy(p, red, 3);
                }
            }
        int tx = (t % cols) * cw + pad, ty = (t / cols) * ch + pad + th + 4;
        int maxc = (cw - pad) / 6; /* clip each line to its cell */
        for (int l = 0; l < 4; l++) {
            char line[48];
            snprintf(line, sizeof line, "%.*s", maxc < 47 ? maxc : 47, T->text[l]);
            if (line[0]) synth_draw_text(rgb, W, H, tx, ty + l * 10, 1, line, l == 0 ? yellow : white);
        }
    }
    fa_status st = synth_write_png_rgb(path, rgb, W, H, err);
    free(rgb);
    return st;
}
