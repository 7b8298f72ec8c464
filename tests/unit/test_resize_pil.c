/* test_resize_pil.c - resize_u16 against PIL's Image.resize (independent
 * reference: tests/ref/resize_reference.py run with $REF_PYTHON), for the box,
 * bilinear and Lanczos filters on noise, edges, gradients and odd shapes,
 * reducing and enlarging; plus properties that need no reference (constant
 * images stay constant, short-side sizes, bad sizes refused). The stated
 * tolerance is 1 grey level of 65535; the implementation follows Pillow's
 * arithmetic, so the expected difference is 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "data/resize.h"

FA_TEST_MAIN_STATE

typedef struct tcase {
    const char *name;
    int w, h, ow, oh;
    int pattern; /* 0 noise, 1 edges, 2 gradient, 3 checkerboard */
} tcase;

static uint64_t rng = 0x1234567;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void fill(uint16_t *p, int w, int h, int pattern) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint16_t v;
            switch (pattern) {
            case 0: v = (uint16_t)next_u32(); break;
            case 1: v = ((x / 7) + (y / 5)) % 3 == 0 ? 65535 : (x > w / 2 ? 1000 : 0); break;
            case 2: v = (uint16_t)((65535.0 * x) / (w > 1 ? w - 1 : 1) * 0.5 + (30000.0 * y) / (h > 1 ? h - 1 : 1)); break;
            default: v = ((x + y) & 1) ? 65535 : 0; break;
            }
            p[(size_t)y * w + x] = v;
        }
}

static int write_raw(const char *path, const uint16_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(p, sizeof *p, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int read_raw(const char *path, uint16_t *p, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int ok = fread(p, sizeof *p, n, f) == n;
    fclose(f);
    return ok;
}

static void test_properties(void) {
    int ow, oh;
    resize_short_side_dims(2000, 2500, 320, &ow, &oh);
    CHECK(ow == 320 && oh == 400);
    resize_short_side_dims(2500, 2000, 320, &ow, &oh);
    CHECK(ow == 400 && oh == 320);
    resize_short_side_dims(1760, 2140, 320, &ow, &oh); /* 2140*320/1760 = 389.09 */
    CHECK(ow == 320 && oh == 389);
    resize_short_side_dims(300, 900, 320, &ow, &oh); /* never upscaled */
    CHECK(ow == 300 && oh == 900);

    /* A constant image stays constant under every normalised filter. */
    uint16_t src[37 * 23], dst[11 * 50];
    for (int i = 0; i < 37 * 23; i++) src[i] = 40000;
    for (int f = RESIZE_BOX; f <= RESIZE_LANCZOS; f++) {
        CHECK(resize_u16(src, 37, 23, dst, 11, 50, (resize_filter)f, NULL) == FA_OK);
        int same = 1;
        for (int i = 0; i < 11 * 50; i++) same &= dst[i] == 40000;
        CHECK_MSG(same, "filter %s", resize_filter_name((resize_filter)f));
    }
    fa_error err = {0};
    CHECK(resize_u16(src, 0, 23, dst, 11, 50, RESIZE_BOX, &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "1..65535") != NULL);
    CHECK(resize_u16(src, 37, 23, dst, 11, 70000, RESIZE_BOX, &err) == FA_ERR_ARG);
    resize_filter rf;
    CHECK(resize_filter_parse("area", &rf) && rf == RESIZE_BOX);
    CHECK(resize_filter_parse("antialias", &rf) && rf == RESIZE_LANCZOS);
    CHECK(!resize_filter_parse("nearest", &rf));
}

int main(void) {
    test_properties();

    static const tcase cases[] = {
        {"noise_down", 257, 193, 64, 48, 0},   {"noise_down_odd", 301, 211, 97, 71, 0},
        {"noise_up", 31, 17, 80, 45, 0},       {"edges_short320", 640, 480, 427, 320, 1},
        {"edges_down", 999, 777, 123, 321, 1}, {"gradient", 500, 700, 320, 448, 2},
        {"checker", 128, 96, 50, 37, 3},       {"one_axis_h", 200, 60, 90, 60, 0},
        {"one_axis_v", 60, 200, 60, 77, 0},    {"thin_row", 500, 1, 33, 1, 0},
        {"thin_col", 1, 400, 1, 39, 2},        {"same_size", 40, 30, 40, 30, 0},
    };
    static const resize_filter filters[] = {RESIZE_BOX, RESIZE_BILINEAR, RESIZE_LANCZOS};
    const int nc = (int)(sizeof cases / sizeof cases[0]), nf = 3;

    char dir[] = "/tmp/freeair_resize_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char jobs[512];
    snprintf(jobs, sizeof jobs, "%s/jobs.txt", dir);
    FILE *jf = fopen(jobs, "w");
    CHECK(jf != NULL);
    if (!jf) return fa_test_finish("test_resize_pil");
    uint16_t **ours = calloc((size_t)nc * nf, sizeof *ours);
    for (int c = 0; c < nc; c++) {
        const tcase *t = &cases[c];
        uint16_t *src = malloc((size_t)t->w * t->h * sizeof *src);
        fill(src, t->w, t->h, t->pattern);
        char in[600];
        snprintf(in, sizeof in, "%s/%s.in", dir, t->name);
        CHECK(write_raw(in, src, (size_t)t->w * t->h));
        for (int f = 0; f < nf; f++) {
            uint16_t *dst = malloc((size_t)t->ow * t->oh * sizeof *dst);
            fa_error err = {0};
            CHECK_MSG(resize_u16(src, t->w, t->h, dst, t->ow, t->oh, filters[f], &err) == FA_OK, "%s", err.msg);
            ours[c * nf + f] = dst;
            fprintf(jf, "%s %d %d %d %d %s %s/%s.%s.out\n", in, t->w, t->h, t->ow, t->oh,
                    resize_filter_name(filters[f]), dir, t->name, resize_filter_name(filters[f]));
        }
        free(src);
    }
    fclose(jf);

    const char *py = getenv("REF_PYTHON");
    const char *root = getenv("FREEAIR_ROOT");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/ref/resize_reference.py' '%s'", py && *py ? py : "/usr/bin/python3",
             root && *root ? root : ".", jobs);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "reference failed: %s", cmd);

    int worst = 0;
    for (int c = 0; rc == 0 && c < nc; c++) {
        const tcase *t = &cases[c];
        size_t n = (size_t)t->ow * t->oh;
        uint16_t *ref = malloc(n * sizeof *ref);
        for (int f = 0; f < nf; f++) {
            char out[600];
            snprintf(out, sizeof out, "%s/%s.%s.out", dir, t->name, resize_filter_name(filters[f]));
            CHECK_MSG(read_raw(out, ref, n), "%s", out);
            int maxd = 0;
            size_t at = 0;
            for (size_t i = 0; i < n; i++) {
                int d = abs((int)ref[i] - (int)ours[c * nf + f][i]);
                if (d > maxd) maxd = d, at = i;
            }
            printf("%-16s %-9s %4dx%-4d -> %4dx%-4d max |ours - PIL| = %d\n", t->name, resize_filter_name(filters[f]),
                   t->w, t->h, t->ow, t->oh, maxd);
            CHECK_MSG(maxd <= 1, "%s/%s: differs from PIL by %d at pixel %zu (ours %u, PIL %u)", t->name,
                      resize_filter_name(filters[f]), maxd, at, ours[c * nf + f][at], ref[at]);
            if (maxd > worst) worst = maxd;
            unlink(out);
        }
        free(ref);
        char in[600];
        snprintf(in, sizeof in, "%s/%s.in", dir, t->name);
        unlink(in);
    }
    printf("largest difference from PIL over all cases: %d (tolerance 1)\n", worst);
    for (int i = 0; i < nc * nf; i++) free(ours[i]);
    free(ours);
    unlink(jobs);
    rmdir(dir);
    fflush(stdout);
    return fa_test_finish("test_resize_pil");
}
