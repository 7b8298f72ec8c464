/* test_cam_image.c - map resizing (against values PyTorch's F.interpolate
 * bilinear/align_corners=False gives, and against a naive formula), aspect-
 * preserving output sizes, colormaps, the overlay blend, and the PNG / .npy
 * writers read back independently (libpng's simplified API, a hand parser for
 * the .npy header). */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "eval/cam.h"

FA_TEST_MAIN_STATE

static char dir[] = "/tmp/test_cam_image.XXXXXX";

static void test_resize(void) {
    fa_error err = {0};
    /* F.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear",
     * align_corners=False) == [0, 0.25, 0.75, 1] */
    const float a[2] = {0, 1};
    float d[4];
    CHECK(cam_resize_map(a, 2, 1, d, 4, 1, &err) == FA_OK);
    CHECK_CLOSE(d[0], 0.0, 1e-7, 0);
    CHECK_CLOSE(d[1], 0.25, 1e-7, 0);
    CHECK_CLOSE(d[2], 0.75, 1e-7, 0);
    CHECK_CLOSE(d[3], 1.0, 1e-7, 0);
    /* 2x2 -> 3x3: F.interpolate gives [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]]
     * for [[1, 2], [3, 4]] (source coordinates -1/6 -> 0, 1/2, 7/6 -> 1). */
    const float b[4] = {1, 2, 3, 4};
    float e[9];
    const float want[9] = {1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4};
    CHECK(cam_resize_map(b, 2, 2, e, 3, 3, &err) == FA_OK);
    for (int i = 0; i < 9; i++) CHECK_CLOSE(e[i], want[i], 1e-6, 0);
    /* Same size is the identity; a constant stays constant at any size. */
    float src[35], out[35], big[11 * 29];
    for (int i = 0; i < 35; i++) src[i] = (float)(i * 0.37 - 3);
    CHECK(cam_resize_map(src, 7, 5, out, 7, 5, &err) == FA_OK);
    for (int i = 0; i < 35; i++) CHECK_CLOSE(out[i], src[i], 1e-6, 0);
    for (int i = 0; i < 35; i++) src[i] = 0.6f;
    CHECK(cam_resize_map(src, 7, 5, big, 29, 11, &err) == FA_OK);
    for (int i = 0; i < 11 * 29; i++) CHECK_CLOSE(big[i], 0.6, 1e-6, 0);
    /* Naive formula on a separable ramp: the result is the ramp sampled at
     * clamped source coordinates. */
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++) src[y * 7 + x] = (float)(x + 10 * y);
    CHECK(cam_resize_map(src, 7, 5, big, 29, 11, &err) == FA_OK);
    for (int y = 0; y < 11; y++)
        for (int x = 0; x < 29; x++) {
            double sx = fmin(fmax((x + 0.5) * 7 / 29.0 - 0.5, 0), 6), sy = fmin(fmax((y + 0.5) * 5 / 11.0 - 0.5, 0), 4);
            CHECK_CLOSE(big[y * 29 + x], sx + 10 * sy, 1e-4, 0);
        }
    CHECK(cam_resize_map(src, 0, 5, big, 29, 11, &err) == FA_ERR_ARG);
}

static void test_dims(void) {
    int w, h;
    cam_fit_dims(3000, 2400, 1024, &w, &h);
    CHECK(w == 1024 && h == 819);
    cam_fit_dims(2400, 3000, 1024, &w, &h);
    CHECK(w == 819 && h == 1024);
    cam_fit_dims(800, 600, 1024, &w, &h);
    CHECK(w == 800 && h == 600);
    cam_fit_dims(3000, 2400, 0, &w, &h);
    CHECK(w == 3000 && h == 2400);
    cam_fit_dims(5000, 2, 100, &w, &h);
    CHECK(w == 100 && h == 1);
}

static void test_colormap(void) {
    uint8_t c[3];
    cam_colormap_rgb(CAM_COLORMAP_JET, 0, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 128); /* dark blue */
    cam_colormap_rgb(CAM_COLORMAP_JET, 1, c);
    CHECK(c[0] == 128 && c[1] == 0 && c[2] == 0); /* dark red */
    cam_colormap_rgb(CAM_COLORMAP_JET, 0.5f, c);
    CHECK(c[0] == 128 && c[1] == 255 && c[2] == 128); /* green middle */
    cam_colormap_rgb(CAM_COLORMAP_JET, 2.0f, c);
    CHECK(c[0] == 128 && c[1] == 0 && c[2] == 0); /* clamped */
    cam_colormap_rgb(CAM_COLORMAP_JET, NAN, c);
    CHECK(c[2] == 128 && c[0] == 0);
    /* Turbo: blue at the low end, red at the high end */
    uint8_t t0[3], t1[3];
    cam_colormap_rgb(CAM_COLORMAP_TURBO, 0.1f, t0);
    cam_colormap_rgb(CAM_COLORMAP_TURBO, 0.9f, t1);
    CHECK(t0[2] > t0[0] && t1[0] > t1[2]);
    cam_colormap c2;
    CHECK(cam_colormap_parse("turbo", &c2) && c2 == CAM_COLORMAP_TURBO);
    CHECK(!cam_colormap_parse("viridis", &c2));
}

static void test_overlay(void) {
    const uint16_t grey[4] = {0, 65535, 257 * 100 + 128, 257 * 100 + 129}; /* round(v / 257): 100, 101 */
    const float map[4] = {0, 1, 0.5f, 0.25f};
    uint8_t rgb[12], c[3];
    cam_overlay_rgb(grey, map, 2, 2, CAM_COLORMAP_JET, 0, rgb);
    CHECK(rgb[0] == 0 && rgb[3] == 255 && rgb[6] == 100 && rgb[9] == 101);
    CHECK(rgb[1] == rgb[0] && rgb[2] == rgb[0]);
    cam_overlay_rgb(grey, map, 2, 2, CAM_COLORMAP_JET, 1, rgb);
    /* the overlay quantises the map to 256 levels: 0.5 -> level 128, whose
     * jet colour is 382.5 - |4*128 - 255c| rounded half up: (130, 255, 126) */
    CHECK(rgb[6] == 130 && rgb[7] == 255 && rgb[8] == 126);
    cam_overlay_rgb(grey, map, 2, 2, CAM_COLORMAP_JET, 0.4f, rgb);
    cam_colormap_rgb(CAM_COLORMAP_JET, 1, c);
    for (int k = 0; k < 3; k++) CHECK(abs(rgb[3 + k] - (int)lround(0.6 * 255 + 0.4 * c[k])) <= 0);
}

static void test_files(void) {
    fa_error err = {0};
    char path[256];
    /* RGB PNG read back with libpng */
    uint8_t rgb[3 * 5 * 3];
    for (int i = 0; i < 45; i++) rgb[i] = (uint8_t)(i * 5);
    snprintf(path, sizeof path, "%s/o.png", dir);
    CHECK(cam_write_png_rgb(path, rgb, 5, 3, &err) == FA_OK);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    CHECK(png_image_begin_read_from_file(&im, path));
    CHECK(im.width == 5 && im.height == 3 && (im.format & PNG_FORMAT_FLAG_COLOR));
    im.format = PNG_FORMAT_RGB;
    uint8_t back[45];
    CHECK(png_image_finish_read(&im, NULL, back, 0, NULL));
    CHECK(!memcmp(back, rgb, 45));
    /* 16-bit map read back by the project's reader */
    const float map[6] = {0, 1, 0.5f, 1e-5f, -3, 2};
    snprintf(path, sizeof path, "%s/m.png", dir);
    CHECK(cam_write_map_png16(path, map, 3, 2, &err) == FA_OK);
    fa_image g;
    memset(&g, 0, sizeof g);
    int depth = 0;
    CHECK(image_read_png(path, &g, &depth, &err) == FA_OK);
    CHECK(depth == 16 && g.width == 3 && g.height == 2);
    const uint16_t want[6] = {0, 65535, 32768, 1, 0, 65535};
    for (int i = 0; i < 6 && g.pixels; i++) CHECK_MSG(g.pixels[i] == want[i], "pixel %d: %u", i, g.pixels[i]);
    image_free(&g);
    /* .npy: header parsed by hand, data compared bit for bit */
    float data[6] = {0.5f, -1.25f, 3e-8f, 1, 0, 7};
    snprintf(path, sizeof path, "%s/m.npy", dir);
    CHECK(cam_write_npy(path, data, 2, 3, &err) == FA_OK);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f) {
        unsigned char pre[10];
        CHECK(fread(pre, 1, 10, f) == 10);
        CHECK(!memcmp(pre, "\x93NUMPY\x01\x00", 8));
        size_t hl = pre[8] | (size_t)pre[9] << 8;
        CHECK((10 + hl) % 64 == 0);
        char hdr[256] = {0};
        CHECK(hl < sizeof hdr && fread(hdr, 1, hl, f) == hl);
        CHECK(strstr(hdr, "'descr': '<f4'") && strstr(hdr, "'fortran_order': False") && strstr(hdr, "'shape': (2, 3)"));
        CHECK(hdr[hl - 1] == '\n');
        float rd[6];
        CHECK(fread(rd, 4, 6, f) == 6);
        CHECK(!memcmp(rd, data, sizeof rd));
        CHECK(fgetc(f) == EOF);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/nodir/x.npy", dir);
    CHECK(cam_write_npy(path, data, 2, 3, &err) == FA_ERR_IO);
    CHECK(strstr(err.msg, "nodir/x.npy") != NULL);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_resize();
    test_dims();
    test_colormap();
    test_overlay();
    test_files();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return fa_test_finish("test_cam_image");
}
