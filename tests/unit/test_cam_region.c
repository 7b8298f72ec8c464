/* test_cam_region.c - truth regions (box, polygon, mask PNG) and the
 * localisation scores, against counts and sums computed independently in the
 * test (pixel-centre geometry by hand, brute-force sums). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "eval/cam.h"

FA_TEST_MAIN_STATE

static char dir[] = "/tmp/test_cam_region.XXXXXX";

static void test_box(void) {
    cam_region r;
    fa_error err = {0};
    CHECK(cam_region_from_box("2 3 5 4", 10, 8, &r, &err) == FA_OK);
    CHECK(r.n_inside == 4 * 2);
    CHECK(r.inside[3 * 10 + 2] && r.inside[4 * 10 + 5] && !r.inside[3 * 10 + 6] && !r.inside[2 * 10 + 2]);
    CHECK(!strcmp(r.source, "box"));
    cam_region_free(&r);
    /* commas, clipping at the border */
    CHECK(cam_region_from_box("-5,6,3,100", 10, 8, &r, &err) == FA_OK);
    CHECK(r.n_inside == 4 * 2);
    cam_region_free(&r);
    CHECK(cam_region_from_box("1 2 3", 10, 8, &r, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "four numbers") != NULL);
    CHECK(cam_region_from_box("5 5 1 1", 10, 8, &r, &err) == FA_ERR_FORMAT);
    CHECK(cam_region_from_box("20 20 30 30", 10, 8, &r, &err) == FA_ERR_ARG); /* outside the image */
    CHECK(r.inside == NULL);
}

static void test_polygon(void) {
    cam_region r, b;
    fa_error err = {0};
    /* An axis-aligned square with corners on half pixels covers exactly the
     * pixel centres of the box 2..5 x 1..3. */
    CHECK(cam_region_from_polygons("1.5:0.5;5.5:0.5;5.5:3.5;1.5:3.5", 12, 9, &r, &err) == FA_OK);
    CHECK(cam_region_from_box("2 1 5 3", 12, 9, &b, &err) == FA_OK);
    CHECK(r.n_inside == b.n_inside && !memcmp(r.inside, b.inside, 12 * 9));
    cam_region_free(&r);
    /* Right triangle (0,0), (20,0), (0,20): pixel centres (x, y) with
     * y >= 0, x >= 0, x + y < 20 -> counted by brute force here. */
    CHECK(cam_region_from_polygons("-0.01:-0.01;20:-0.01;-0.01:20", 30, 30, &r, &err) == FA_OK);
    size_t want = 0;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 30; x++) {
            /* inside test of the same triangle in closed form */
            double px = x + 0.01, py = y + 0.01;
            int in = px > 0 && py > 0 && px + py < 20.01;
            want += in;
            CHECK_MSG(r.inside[y * 30 + x] == in, "pixel (%d, %d)", x, y);
        }
    CHECK(r.n_inside == want);
    cam_region_free(&r);
    /* Two rings separated by '|': a union */
    CHECK(cam_region_from_polygons("1.5:0.5;5.5:0.5;5.5:3.5;1.5:3.5|7.5:5.5;9.5:5.5;9.5:7.5;7.5:7.5", 12, 9, &r,
                                   &err) == FA_OK);
    CHECK(r.n_inside == b.n_inside + 4);
    cam_region_free(&r);
    cam_region_free(&b);
    CHECK(cam_region_from_polygons("1:2;3:4", 12, 9, &r, &err) == FA_ERR_FORMAT);
    CHECK(cam_region_from_polygons("1:2;3;4:5", 12, 9, &r, &err) == FA_ERR_FORMAT);
    CHECK(cam_region_from_polygons("", 12, 9, &r, &err) == FA_ERR_FORMAT);
    /* hostile magnitudes are clipped, never converted out of range */
    CHECK(cam_region_from_polygons("-1e300:-1e300;1e300:-1e300;1e300:1e300;-1e300:1e300", 12, 9, &r, &err) == FA_OK);
    CHECK(r.n_inside == 12 * 9);
    cam_region_free(&r);
    CHECK(cam_region_from_box("-1e308 -1e308 1e308 1e308", 12, 9, &r, &err) == FA_OK);
    CHECK(r.n_inside == 12 * 9);
    cam_region_free(&r);
    CHECK(cam_region_from_box("1e300 0 1e301 5", 12, 9, &r, &err) == FA_ERR_ARG);
}

static void test_mask(void) {
    fa_error err = {0};
    fa_image m;
    memset(&m, 0, sizeof m);
    CHECK(image_alloc(&m, 7, 5, &err) == FA_OK);
    memset(m.pixels, 0, 35 * sizeof *m.pixels);
    m.pixels[2 * 7 + 3] = 65535;
    m.pixels[4 * 7 + 6] = 1;
    char path[256];
    snprintf(path, sizeof path, "%s/mask.png", dir);
    CHECK(image_write_png16(path, &m, &err) == FA_OK);
    cam_region r;
    CHECK(cam_region_from_mask(path, 7, 5, &r, &err) == FA_OK);
    CHECK(r.n_inside == 2 && r.inside[2 * 7 + 3] && r.inside[4 * 7 + 6]);
    cam_region_free(&r);
    CHECK(cam_region_from_mask(path, 8, 5, &r, &err) == FA_ERR_SHAPE);
    CHECK(strstr(err.msg, "mask.png") && strstr(err.msg, "7x5"));
    memset(m.pixels, 0, 35 * sizeof *m.pixels);
    CHECK(image_write_png16(path, &m, &err) == FA_OK);
    CHECK(cam_region_from_mask(path, 7, 5, &r, &err) == FA_ERR_ARG);
    snprintf(path, sizeof path, "%s/none.png", dir);
    CHECK(cam_region_from_mask(path, 7, 5, &r, &err) != FA_OK);
    CHECK(strstr(err.msg, "none.png") != NULL);
    image_free(&m);
}

static void test_localise(void) {
    enum { W = 40, H = 30 };
    float map[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) map[y * W + x] = (float)exp(-((x - 30) * (x - 30) + (y - 8) * (y - 8)) / 50.0);
    cam_region r;
    fa_error err = {0};
    CHECK(cam_region_from_box("25 4 35 12", W, H, &r, &err) == FA_OK);
    cam_localisation l;
    CHECK(cam_localise(map, W, H, &r, 0, &l, &err) == FA_OK);
    CHECK(l.hit && l.peak_x == 30 && l.peak_y == 8 && l.peak_distance == 0);
    double in = 0, all = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            all += map[y * W + x];
            if (x >= 25 && x <= 35 && y >= 4 && y <= 12) in += map[y * W + x];
        }
    CHECK_CLOSE(l.mass_inside, in / all, 1e-12, 1e-9);
    cam_region_free(&r);
    /* peak 5 pixels left of the region: a hit only with tolerance >= 5 */
    CHECK(cam_region_from_box("35 0 39 29", W, H, &r, &err) == FA_OK);
    CHECK(cam_localise(map, W, H, &r, 4.9, &l, &err) == FA_OK);
    CHECK(!l.hit && fabs(l.peak_distance - 5) < 1e-12);
    CHECK(cam_localise(map, W, H, &r, 5.0, &l, &err) == FA_OK);
    CHECK(l.hit);
    /* a zero map points nowhere */
    float zero[W * H];
    memset(zero, 0, sizeof zero);
    CHECK(cam_localise(zero, W, H, &r, 100, &l, &err) == FA_OK);
    CHECK(!l.hit && isnan(l.mass_inside));
    CHECK(cam_localise(map, W - 1, H, &r, 0, &l, &err) == FA_ERR_SHAPE);
    cam_region_free(&r);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_box();
    test_polygon();
    test_mask();
    test_localise();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return fa_test_finish("test_cam_region");
}
