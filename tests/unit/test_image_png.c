/* test_image_png.c - PNG/JPEG reading and writing, format sniffing, and the
 * refusal of corrupt or absurd files.
 *
 * Fixtures are written here with libpng/libjpeg directly (not through the
 * code under test) into a temporary directory; expected grey values follow
 * the stated rule (8-bit x257, BT.601 luma rounded) computed independently.
 * PIL agreement on colour files is checked in test_dicom_decode.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE */
#include <png.h>
#include <zlib.h>

#include "common/fa_test.h"
#include "data/image.h"

FA_TEST_MAIN_STATE

static char tmpdir[256];

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmpdir, name); }

/* Writes a PNG of the given colour type/depth from raw interleaved samples
 * (big-endian already for 16-bit). */
static int write_png(const char *path, int w, int h, int color, int depth, const unsigned char *data,
                     size_t rowbytes, const png_color *palette, int npal) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npal);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(data + (size_t)y * rowbytes));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return 1;
}

/* PIL's convert("L"): L = R*299/1000 + G*587/1000 + B*114/1000 in 16.16 fixed point. */
static unsigned luma(unsigned r, unsigned g, unsigned b) { return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; }

static void test_png16_roundtrip(void) {
    char p[512];
    path_in(p, sizeof p, "rt16.png");
    fa_image im, back;
    fa_error err;
    CHECK(image_alloc(&im, 37, 11, &err) == FA_OK);
    for (int i = 0; i < 37 * 11; i++) im.pixels[i] = (uint16_t)(i * 177 + (i % 7) * 9000);
    im.pixels[0] = 0;
    im.pixels[1] = 65535;
    CHECK(image_write_png16(p, &im, &err) == FA_OK);
    int depth = 0;
    CHECK(image_read_png(p, &back, &depth, &err) == FA_OK);
    CHECK(depth == 16);
    CHECK(back.width == 37 && back.height == 11);
    if (back.pixels) CHECK(!memcmp(back.pixels, im.pixels, 37 * 11 * 2));
    CHECK(image_detect_format(p) == IMAGE_FORMAT_PNG);
    image_free(&back);
    /* image_load on a PNG returns the same values. */
    char warn[256] = "";
    CHECK(image_load(p, &back, warn, sizeof warn, &err) == FA_OK);
    if (back.pixels) CHECK(!memcmp(back.pixels, im.pixels, 37 * 11 * 2));
    CHECK(warn[0] == '\0');
    image_free(&back);
    image_free(&im);
    CHECK(im.pixels == NULL && im.width == 0);
}

static void test_png8_variants(void) {
    enum { W = 13, H = 5 };
    unsigned char grey[W * H], rgb[W * H * 3], rgba[W * H * 4], pal[W * H];
    png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {10, 200, 30}, {255, 255, 255}};
    for (int i = 0; i < W * H; i++) {
        grey[i] = (unsigned char)(i * 3);
        rgb[3 * i] = (unsigned char)(i * 4), rgb[3 * i + 1] = (unsigned char)(255 - i), rgb[3 * i + 2] = (unsigned char)(i * 2);
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = (unsigned char)(i & 1 ? 0 : 255);
        pal[i] = (unsigned char)(i % 4);
    }
    char p[512], warn[256];
    fa_image im;
    fa_error err;
    int depth;

    path_in(p, sizeof p, "g8.png");
    CHECK(write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, grey, W, NULL, 0));
    CHECK(image_read_png(p, &im, &depth, &err) == FA_OK);
    CHECK(depth == 8);
    for (int i = 0; i < W * H && im.pixels; i++) CHECK(im.pixels[i] == grey[i] * 257);
    image_free(&im);

    path_in(p, sizeof p, "rgb8.png");
    CHECK(write_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, rgb, W * 3, NULL, 0));
    warn[0] = '\0';
    CHECK(image_load(p, &im, warn, sizeof warn, &err) == FA_OK);
    CHECK(strstr(warn, "colour") != NULL);
    for (int i = 0; i < W * H && im.pixels; i++)
        CHECK(im.pixels[i] == luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) * 257);
    image_free(&im);

    path_in(p, sizeof p, "rgba8.png");
    CHECK(write_png(p, W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, W * 4, NULL, 0));
    warn[0] = '\0';
    CHECK(image_load(p, &im, warn, sizeof warn, &err) == FA_OK);
    CHECK(strstr(warn, "alpha") != NULL);
    for (int i = 0; i < W * H && im.pixels; i++)
        CHECK(im.pixels[i] == luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) * 257);
    image_free(&im);

    path_in(p, sizeof p, "pal.png");
    CHECK(write_png(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, pal, W, palette, 4));
    warn[0] = '\0';
    CHECK(image_load(p, &im, warn, sizeof warn, &err) == FA_OK);
    CHECK(strstr(warn, "palette") != NULL);
    for (int i = 0; i < W * H && im.pixels; i++) {
        png_color c = palette[pal[i]];
        CHECK(im.pixels[i] == luma(c.red, c.green, c.blue) * 257);
    }
    image_free(&im);

    /* 4-bit grey expands to 8 bits (v * 17), then x257. */
    unsigned char g4[(W + 1) / 2 * H];
    for (size_t i = 0; i < sizeof g4; i++) g4[i] = (unsigned char)((i % 16) << 4 | ((i + 3) % 16));
    path_in(p, sizeof p, "g4.png");
    CHECK(write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 4, g4, (W + 1) / 2, NULL, 0));
    CHECK(image_read_png(p, &im, &depth, &err) == FA_OK);
    for (int y = 0; y < H && im.pixels; y++)
        for (int x = 0; x < W; x++) {
            unsigned byte = g4[y * ((W + 1) / 2) + x / 2];
            unsigned v = x % 2 ? byte & 15 : byte >> 4;
            CHECK(im.pixels[y * W + x] == v * 17 * 257);
        }
    image_free(&im);
}

static void test_jpeg(void) {
    enum { W = 24, H = 16 };
    char p[512], warn[256];
    path_in(p, sizeof p, "g.jpg");
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (!f) return;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = W, c.image_height = H, c.input_components = 1, c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    unsigned char row[W];
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) row[x] = (unsigned char)(x * 8 + y);
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    fa_image im;
    fa_error err;
    CHECK(image_detect_format(p) == IMAGE_FORMAT_JPEG);
    warn[0] = '\0';
    CHECK(image_load(p, &im, warn, sizeof warn, &err) == FA_OK);
    CHECK(im.width == W && im.height == H);
    /* Quality 100 grey JPEG: within a couple of grey levels. */
    for (int y = 0; y < H && im.pixels; y++)
        for (int x = 0; x < W; x++) CHECK(abs((int)im.pixels[y * W + x] - (x * 8 + y) * 257) <= 2 * 257);
    CHECK(im.pixels && im.pixels[5] % 257 == 0);
    image_free(&im);

    /* Truncated JPEG: refused, not grey-filled. */
    char q[512];
    path_in(q, sizeof q, "trunc.jpg");
    FILE *in = fopen(p, "rb"), *out = fopen(q, "wb");
    unsigned char buf[4096];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (out) fwrite(buf, 1, n / 2, out);
    if (in) fclose(in);
    if (out) fclose(out);
    fa_status st = image_load(q, &im, NULL, 0, &err);
    CHECK(st == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "trunc.jpg") != NULL);
    CHECK(im.pixels == NULL);
}

static void test_bad_files(void) {
    char p[512];
    fa_image im;
    fa_error err;
    CHECK(image_read_png("/nonexistent/x.png", &im, NULL, &err) == FA_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/x.png") != NULL);

    /* Truncated PNG: the first 60 bytes of a valid one. */
    path_in(p, sizeof p, "rt16.png");
    FILE *f = fopen(p, "rb");
    unsigned char buf[64];
    size_t n = f ? fread(buf, 1, 60, f) : 0;
    if (f) fclose(f);
    path_in(p, sizeof p, "trunc.png");
    f = fopen(p, "wb");
    if (f) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    CHECK(image_read_png(p, &im, NULL, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "trunc.png") != NULL);
    CHECK(strchr(err.msg, '\n') == NULL);

    /* A header declaring 65535 x 65535 with no data: refused before allocating. */
    unsigned char ihdr[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                            0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 16, 0, 0, 0, 0, 0, 0, 0, 0};
    png_uint_32 crc = (png_uint_32)crc32(0, ihdr + 12, 17);
    ihdr[29] = crc >> 24, ihdr[30] = crc >> 16, ihdr[31] = crc >> 8, ihdr[32] = crc & 0xff;
    path_in(p, sizeof p, "huge.png");
    f = fopen(p, "wb");
    if (f) {
        fwrite(ihdr, 1, sizeof ihdr, f);
        fclose(f);
    }
    fa_status st = image_read_png(p, &im, NULL, &err);
    CHECK(st == FA_ERR_UNSUPPORTED || st == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "huge.png") != NULL);

    /* Unknown format. */
    path_in(p, sizeof p, "text.txt");
    f = fopen(p, "wb");
    if (f) {
        fputs("hello, this is not an image at all", f);
        fclose(f);
    }
    CHECK(image_detect_format(p) == IMAGE_FORMAT_UNKNOWN);
    CHECK(image_load(p, &im, NULL, 0, &err) == FA_ERR_UNSUPPORTED);

    fa_image big;
    CHECK(image_alloc(&big, 0, 5, &err) == FA_ERR_SHAPE);
    CHECK(image_alloc(&big, 70000, 5, &err) == FA_ERR_SHAPE);
}

static void test_sniff(void) {
    unsigned char b[132];
    memset(b, 0, sizeof b);
    memcpy(b + 128, "DICM", 4);
    CHECK(image_detect_format_mem(b, sizeof b) == IMAGE_FORMAT_DICOM);
    /* No preamble: (0008,0005) implicit VR, length 10. */
    unsigned char nopre[16] = {0x08, 0x00, 0x05, 0x00, 10, 0, 0, 0};
    CHECK(image_detect_format_mem(nopre, sizeof nopre) == IMAGE_FORMAT_DICOM);
    unsigned char expl[16] = {0x08, 0x00, 0x05, 0x00, 'C', 'S', 10, 0};
    CHECK(image_detect_format_mem(expl, sizeof expl) == IMAGE_FORMAT_DICOM);
    unsigned char junk[16] = "GIF89a.........";
    CHECK(image_detect_format_mem(junk, sizeof junk) == IMAGE_FORMAT_UNKNOWN);
    CHECK(image_detect_format_mem(junk, 2) == IMAGE_FORMAT_UNKNOWN);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fa_test_image_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_png16_roundtrip();
    test_png8_variants();
    test_jpeg();
    test_bad_files();
    test_sniff();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return fa_test_finish("test_image_png");
}
