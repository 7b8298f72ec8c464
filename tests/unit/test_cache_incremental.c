/* test_cache_incremental.c - the preprocessing cache: stored pixels equal a
 * direct decode + resize; a rebuild decodes only what changed (touched file,
 * new file) and reuses the rest byte for byte; a changed option rebuilds
 * everything; nothing changed writes nothing; removed rows are dropped; bad
 * and missing images become error entries with reasons; a damaged index or
 * data file is refused by cache_open and rebuilt by cache_build; a second
 * concurrent build is refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "data/cache.h"
#include "data/image.h"
#include "data/resize.h"

FA_TEST_MAIN_STATE

#define N_IMG 5
static char dir[] = "/tmp/freeair_cache_XXXXXX";
static char cdir[600], manifest[600], img[N_IMG + 2][600];

static void make_png(const char *path, int w, int h, int seed) {
    fa_image im;
    fa_error err = {0};
    CHECK(image_alloc(&im, w, h, &err) == FA_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            im.pixels[(size_t)y * w + x] = (uint16_t)((x * 523 + y * 97 + seed * 7919) * (seed + 3) % 65536);
    CHECK_MSG(image_write_png16(path, &im, &err) == FA_OK, "%s", err.msg);
    image_free(&im);
}

static void write_manifest(int n, int with_broken) {
    FILE *f = fopen(manifest, "w");
    fprintf(f, "path,status,reason,label\n");
    for (int i = 0; i < n; i++) fprintf(f, "%s,ok,,%d\n", img[i], i & 1);
    fprintf(f, "excluded.png,excluded,not_chest: body part HIP,0\n");
    if (with_broken) fprintf(f, "%s,ok,,1\n%s/missing.png,ok,,0\n", img[N_IMG], dir);
    fclose(f);
}

static cache_build_stats build(int short_side) {
    cache_opts o = {.short_side = short_side, .filter = RESIZE_LANCZOS, .threads = 2, .quiet = 1};
    cache_build_stats s;
    fa_error err = {0};
    fa_status st = cache_build(manifest, cdir, &o, &s, &err);
    CHECK_MSG(st == FA_OK, "%s", err.msg);
    return s;
}

/* The cached pixels of img[i] equal decode + resize done here. */
static int matches_direct(const cache *c, int i, int short_side) {
    fa_image im, small;
    fa_error err = {0};
    if (image_load(img[i], &im, NULL, 0, &err) != FA_OK) return 0;
    int ow, oh, w, h;
    resize_short_side_dims(im.width, im.height, short_side, &ow, &oh);
    int ok = resize_image(&im, &small, ow, oh, RESIZE_LANCZOS, &err) == FA_OK;
    const uint16_t *px = NULL;
    ok = ok && cache_lookup(c, img[i], &w, &h, &px, &err) == FA_OK && w == ow && h == oh &&
         !memcmp(px, small.pixels, (size_t)w * h * 2);
    image_free(&im);
    image_free(&small);
    return ok;
}

static void snapshot(const cache *c, uint16_t **copy, int *w, int *h) {
    for (int i = 0; i < N_IMG; i++) {
        const uint16_t *px;
        copy[i] = NULL;
        if (cache_lookup(c, img[i], &w[i], &h[i], &px, NULL) == FA_OK) {
            copy[i] = malloc((size_t)w[i] * h[i] * 2);
            memcpy(copy[i], px, (size_t)w[i] * h[i] * 2);
        }
    }
}

static int count_data_files(void) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '^pixels\\..*\\.bin$'", cdir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    snprintf(cdir, sizeof cdir, "%s/cache", dir);
    snprintf(manifest, sizeof manifest, "%s/manifest.csv", dir);
    const int sizes[N_IMG][2] = {{400, 300}, {300, 500}, {200, 100}, {97, 203}, {640, 640}};
    for (int i = 0; i < N_IMG; i++) {
        snprintf(img[i], sizeof img[i], "%s/img%d.png", dir, i);
        make_png(img[i], sizes[i][0], sizes[i][1], i);
    }
    snprintf(img[N_IMG], sizeof img[N_IMG], "%s/broken.png", dir);
    FILE *bf = fopen(img[N_IMG], "wb");
    fwrite("\x89PNG\r\n\x1a\n garbage", 1, 17, bf);
    fclose(bf);

    /* First build: everything decoded; two bad rows become error entries. */
    write_manifest(N_IMG, 1);
    cache_build_stats s = build(160);
    CHECK(s.n_images == N_IMG + 2 && s.n_decoded == N_IMG + 1 && s.n_reused == 0 && s.rewritten);
    CHECK_MSG(s.n_failed == 2 && strstr(s.first_failure, "broken.png"), "%d %s", s.n_failed, s.first_failure);
    cache *c = NULL;
    fa_error err = {0};
    CHECK_MSG(cache_open(cdir, &c, &err) == FA_OK, "%s", err.msg);
    if (!c) return fa_test_finish("test_cache_incremental");
    CHECK(cache_count(c) == N_IMG + 2 && cache_short_side(c) == 160);
    for (int i = 0; i < N_IMG; i++) CHECK_MSG(matches_direct(c, i, 160), "image %d", i);
    int w, h;
    const uint16_t *px;
    CHECK(cache_lookup(c, img[2], &w, &h, &px, &err) == FA_OK && w == 200 && h == 100); /* never enlarged */
    CHECK(cache_lookup(c, img[0], &w, &h, &px, &err) == FA_OK && w == 213 && h == 160);
    CHECK(((uintptr_t)px & 63) == 0); /* 64-byte aligned in the mapping */
    CHECK(cache_lookup(c, img[N_IMG], &w, &h, &px, &err) == FA_ERR_FORMAT && strstr(err.msg, "broken.png"));
    CHECK(cache_lookup(c, "excluded.png", &w, &h, &px, &err) == FA_ERR_NOT_FOUND);
    CHECK(cache_lookup(c, "nowhere.png", &w, &h, &px, &err) == FA_ERR_NOT_FOUND);
    uint16_t *before[N_IMG];
    int bw[N_IMG], bh[N_IMG];
    snapshot(c, before, bw, bh);
    cache_close(c);

    /* Nothing changed: nothing decoded or written. */
    s = build(160);
    CHECK(s.n_decoded == 0 && s.n_reused == N_IMG + 2 && !s.rewritten && s.n_failed == 2);

    /* Touch one file (new mtime, same bytes): only it is decoded. */
    struct timespec ts[2] = {{.tv_sec = 1700000000, .tv_nsec = 123}, {.tv_sec = 1700000000, .tv_nsec = 123}};
    CHECK(utimensat(AT_FDCWD, img[3], ts, 0) == 0);
    s = build(160);
    CHECK_MSG(s.n_decoded == 1 && s.n_reused == N_IMG + 1 && s.rewritten, "decoded %d reused %d", s.n_decoded,
              s.n_reused);
    CHECK(count_data_files() == 1); /* the old generation was removed */
    CHECK(cache_open(cdir, &c, &err) == FA_OK);
    if (c) {
        uint16_t *after[N_IMG];
        int aw[N_IMG], ah[N_IMG];
        snapshot(c, after, aw, ah);
        for (int i = 0; i < N_IMG; i++) {
            CHECK(after[i] && before[i] && aw[i] == bw[i] && ah[i] == bh[i] &&
                  !memcmp(after[i], before[i], (size_t)aw[i] * ah[i] * 2));
            free(after[i]);
        }
        cache_close(c);
    }

    /* Rewrite one image with new content: decoded, and the new pixels show. */
    make_png(img[1], 300, 500, 42);
    s = build(160);
    CHECK(s.n_decoded == 1 && s.rewritten);
    CHECK(cache_open(cdir, &c, &err) == FA_OK);
    if (c) {
        CHECK(matches_direct(c, 1, 160));
        cache_close(c);
    }

    /* Drop rows from the manifest: dropped, nothing decoded. */
    write_manifest(N_IMG - 1, 0);
    s = build(160);
    CHECK(s.n_dropped == 3 && s.n_decoded == 0 && s.n_reused == N_IMG - 1 && s.rewritten && s.n_failed == 0);
    CHECK(cache_open(cdir, &c, &err) == FA_OK);
    if (c) {
        CHECK(cache_count(c) == N_IMG - 1 && cache_lookup(c, img[N_IMG - 1], &w, &h, &px, &err) == FA_ERR_NOT_FOUND);
        cache_close(c);
    }

    /* Another short side: every image decoded again. */
    write_manifest(N_IMG, 0);
    s = build(96);
    CHECK(s.n_decoded == N_IMG && s.n_reused == 0);
    CHECK(cache_open(cdir, &c, &err) == FA_OK);
    if (c) {
        for (int i = 0; i < N_IMG; i++) CHECK_MSG(matches_direct(c, i, 96), "image %d at 96", i);
        cache_close(c);
    }

    /* A damaged index is refused by cache_open and rebuilt by a build. */
    char ipath[700];
    snprintf(ipath, sizeof ipath, "%s/index.csv", cdir);
    FILE *f = fopen(ipath, "a");
    fprintf(f, "%s/img0.png,12,34,zz,96,lanczos,ok,,pixels.1.bin,64,10,10\n", dir);
    fclose(f);
    CHECK(cache_open(cdir, &c, &err) == FA_ERR_FORMAT && strstr(err.msg, "index.csv"));
    s = build(96);
    CHECK(s.n_decoded == N_IMG);
    CHECK(cache_open(cdir, &c, &err) == FA_OK);
    cache_close(c);
    /* An index pointing past the end of its data file is refused. */
    f = fopen(ipath, "r");
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *big = strstr(text, ",96,lanczos,ok,,pixels.");
    CHECK(big != NULL);
    if (big) {
        char *off = strchr(big + 24, ',');
        if (off) {
            char damaged[8300];
            snprintf(damaged, sizeof damaged, "%.*s,999999998%s", (int)(off - text), text, strchr(off + 1, ','));
            f = fopen(ipath, "w");
            fputs(damaged, f);
            fclose(f);
            CHECK(cache_open(cdir, &c, &err) == FA_ERR_FORMAT && strstr(err.msg, "outside"));
        }
    }
    CHECK(cache_open("/nonexistent/cache", &c, &err) == FA_ERR_NOT_FOUND);

    /* A build while another holds the lock is refused. */
    char lpath[700];
    snprintf(lpath, sizeof lpath, "%s/lock", cdir);
    int lfd = open(lpath, O_RDWR);
    CHECK(lfd >= 0 && flock(lfd, LOCK_EX) == 0);
    cache_opts o = {.short_side = 96, .quiet = 1};
    CHECK(cache_build(manifest, cdir, &o, &s, &err) == FA_ERR_IO && strstr(err.msg, "another"));
    close(lfd);
    o.short_side = 3;
    CHECK(cache_build(manifest, cdir, &o, &s, &err) == FA_ERR_ARG);
    CHECK(cache_build("/nonexistent/m.csv", cdir, &(cache_opts){.quiet = 1}, &s, &err) == FA_ERR_IO);

    for (int i = 0; i < N_IMG; i++) free(before[i]);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return fa_test_finish("test_cache_incremental");
}
