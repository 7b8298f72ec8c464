/* test_train_data.c - the training input pipeline: augmentation geometry
 * against exact pixel permutations, the per-epoch sample order, manifest
 * errors, and the threaded loader's determinism (same tensors with 1 or 3
 * workers, and when a pass starts mid-epoch as a resumed run does). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "core/digest.h"
#include "data/image.h"
#include "models/preprocess.h"
#include "train/augment.h"
#include "train/dataset.h"
#include "train/loader.h"
#include "train/trainconf.h"

FA_TEST_MAIN_STATE

static char tmpdir[256];

static void make_image(fa_image *im, int w, int h, unsigned seed) {
    fa_error err;
    if (image_alloc(im, w, h, &err) != FA_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    for (int i = 0; i < w * h; i++) im->pixels[i] = (uint16_t)((i * 2654435761u + seed * 40503u) >> 16);
}

static uint16_t px(const fa_image *im, int x, int y) { return im->pixels[(size_t)y * im->width + x]; }

static void test_geometry(void) {
    fa_image src, out;
    fa_error err;
    make_image(&src, 8, 8, 1);
    aug_params p = aug_identity();
    CHECK(aug_apply(&src, &p, &out, &err) == FA_OK);
    CHECK(!memcmp(src.pixels, out.pixels, 64 * 2));
    image_free(&out);

    p.hflip = 1;
    aug_apply(&src, &p, &out, &err);
    int ok = 1;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) ok &= px(&out, x, y) == px(&src, 7 - x, y);
    CHECK(ok);
    image_free(&out);

    /* 90 degrees counter-clockwise on a square: out(x, y) = in(w-1-y, x) */
    p = aug_identity();
    p.angle_deg = 90;
    aug_apply(&src, &p, &out, &err);
    ok = 1;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) ok &= px(&out, x, y) == px(&src, 7 - y, x);
    CHECK_MSG(ok, "90 degree rotation is not the exact pixel permutation");
    image_free(&out);

    /* 180 degrees = both flips (exact) */
    p.angle_deg = 180;
    fa_image flipped;
    aug_apply(&src, &p, &out, &err);
    aug_params f = aug_identity();
    f.hflip = f.vflip = 1;
    aug_apply(&src, &f, &flipped, &err);
    CHECK(!memcmp(out.pixels, flipped.pixels, 64 * 2));
    image_free(&out);
    image_free(&flipped);

    /* 45 degrees: the corners come from outside the source -> fill 0 */
    fa_image white;
    image_alloc(&white, 16, 16, &err);
    for (int i = 0; i < 256; i++) white.pixels[i] = 60000;
    p = aug_identity();
    p.angle_deg = 45;
    aug_apply(&white, &p, &out, &err);
    CHECK(px(&out, 0, 0) == 0 && px(&out, 15, 15) == 0 && px(&out, 15, 0) == 0);
    CHECK(px(&out, 8, 8) == 60000);
    image_free(&out);

    /* brightness clamps at 65535; contrast 1 and brightness 1 change nothing */
    p = aug_identity();
    p.brightness = 1.5;
    aug_apply(&white, &p, &out, &err);
    CHECK(px(&out, 3, 3) == 65535);
    image_free(&out);

    /* zoom 2 around the centre: centre pixel stays, values come from the middle */
    p = aug_identity();
    p.zoom = 2.0;
    aug_apply(&white, &p, &out, &err);
    CHECK(px(&out, 0, 0) == 60000); /* nothing outside the source is sampled */
    image_free(&out);

    /* tensor: a constant image becomes (v/65535 - mean) / std everywhere */
    float *t = malloc(3 * 5 * 5 * sizeof *t);
    CHECK(aug_to_tensor(&white, 5, t, &err) == FA_OK);
    for (int c = 0; c < 3; c++) {
        float want = (preprocess_unit(60000) - preprocess_imagenet_mean[c]) / preprocess_imagenet_std[c];
        CHECK_CLOSE(t[c * 25 + 12], want, 1e-6, 0);
        CHECK_CLOSE(t[c * 25 + 0], want, 1e-6, 0);
    }
    free(t);
    image_free(&white);
    image_free(&src);
}

static void test_rng_and_sampling(void) {
    train_config c;
    trainconf_defaults(&c);
    aug_rng a, b;
    aug_rng_seed(&a, 7, AUG_STREAM_AUGMENT, 3, 4);
    aug_rng_seed(&b, 7, AUG_STREAM_AUGMENT, 3, 4);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= aug_rng_next(&a) == aug_rng_next(&b);
    CHECK(same);
    aug_rng_seed(&b, 7, AUG_STREAM_AUGMENT, 3, 5);
    CHECK(aug_rng_next(&a) != aug_rng_next(&b));
    /* parameters stay inside their configured ranges; flips ~ half the time */
    int hf = 0;
    for (int i = 0; i < 2000; i++) {
        aug_params p;
        aug_sample(&c, &a, &p);
        CHECK(fabs(p.angle_deg) <= 15.0);
        CHECK(p.zoom == 1.0 && p.shift_x == 0.0 && p.brightness == 1.0);
        hf += p.hflip;
    }
    CHECK(hf > 850 && hf < 1150);

    dataset d = {0};
    d.n = 100;
    d.items = calloc(100, sizeof *d.items);
    for (int i = 0; i < 100; i++) {
        d.items[i].label = i < 10;
        d.n_pos += i < 10;
    }
    d.n_neg = 90;
    int o1[100], o2[100], o3[100];
    fa_error err;
    CHECK(loader_epoch_order(&c, &d, 0, o1, &err) == FA_OK);
    loader_epoch_order(&c, &d, 0, o2, &err);
    loader_epoch_order(&c, &d, 1, o3, &err);
    CHECK(!memcmp(o1, o2, sizeof o1));
    CHECK(memcmp(o1, o3, sizeof o1) != 0);
    int seen[100] = {0};
    for (int i = 0; i < 100; i++) seen[o1[i]]++;
    int perm = 1;
    for (int i = 0; i < 100; i++) perm &= seen[i] == 1;
    CHECK_MSG(perm, "shuffle order is not a permutation");
    c.sampler = TRAINCONF_SAMPLER_BALANCED;
    int npos = 0;
    for (int e = 0; e < 20; e++) {
        loader_epoch_order(&c, &d, e, o1, &err);
        for (int i = 0; i < 100; i++) npos += d.items[o1[i]].label;
    }
    CHECK_MSG(npos > 900 && npos < 1100, "balanced sampler drew %d positives of 2000", npos);
    free(d.items);
}

static void write_png(const char *name, unsigned seed) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    fa_image im;
    make_image(&im, 40, 30, seed);
    fa_error err;
    if (image_write_png16(path, &im, &err) != FA_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    image_free(&im);
}

static const char *write_manifest(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void expect_manifest_error(const char *text, const char *needle) {
    train_config c;
    trainconf_defaults(&c);
    snprintf(c.manifest, sizeof c.manifest, "%s", write_manifest("bad.csv", text));
    dataset tr, va;
    fa_error err = {0};
    fa_status st = dataset_load(&c, &tr, &va, NULL, &err);
    CHECK_MSG(st != FA_OK, "accepted manifest: %s", text);
    CHECK_MSG(strstr(err.msg, needle) && strstr(err.msg, "bad.csv"), "message '%s' lacks '%s'", err.msg, needle);
}

/* Run a whole pass and return the concatenated tensors. */
static float *run_pass(loader *l, const int *order, int n, const int *sizes, int n_units, int first_unit,
                       size_t sample) {
    fa_error err = {0};
    float *all = calloc((size_t)n * sample, sizeof *all);
    CHECK(loader_begin(l, order, n, sizes, n_units, first_unit, 1, 3, &err) == FA_OK);
    for (int u = first_unit; u < n_units; u++) {
        const loader_unit *lu;
        fa_status st = loader_next(l, &lu, &err);
        CHECK_MSG(st == FA_OK, "%s", err.msg);
        if (st != FA_OK) break;
        CHECK(lu->index == u);
        memcpy(all + (size_t)lu->position * sample, lu->x, (size_t)lu->n * sample * sizeof *all);
        loader_release(l);
    }
    loader_end(l);
    return all;
}

static void test_dataset_and_loader(void) {
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "img%d.png", i);
        write_png(name, (unsigned)i + 1);
    }
    /* relative paths resolve against the manifest's folder; a status other
     * than ok is skipped */
    const char *mpath = write_manifest("m.csv",
                                       "path,status,label,split\n"
                                       "img0.png,ok,1,train\nimg1.png,ok,0,train\nimg2.png,ok,yes,train\n"
                                       "img3.png,ok,no,train\nimg4.png,ok,1,train\nimg5.png,ok,0,train\n"
                                       "img6.png,ok,1,val\nimg7.png,ok,0,val\nimg8.png,ok,,test\n"
                                       "img9.png,excluded,,train\n");
    train_config c;
    trainconf_defaults(&c);
    snprintf(c.manifest, sizeof c.manifest, "%s", mpath);
    c.scale = 0.1;
    c.translate = 0.05;
    c.brightness = 0.2;
    c.contrast = 0.2;
    dataset tr, va;
    fa_error err = {0};
    int skipped = 0;
    fa_status st = dataset_load(&c, &tr, &va, &skipped, &err);
    CHECK_MSG(st == FA_OK, "%s", err.msg);
    if (st != FA_OK) return;
    CHECK(tr.n == 6 && tr.n_pos == 3 && va.n == 2 && skipped == 1);
    CHECK(strstr(tr.items[0].path, tmpdir) != NULL);

    dataset_source *src;
    CHECK(dataset_source_open(&src, &c, &err) == FA_OK);
    const int S = 16;
    size_t sample = 3 * S * S;
    int order[6];
    loader_epoch_order(&c, &tr, 3, order, &err);
    int sizes[3] = {2, 2, 2};
    loader_opts o1 = {&c, S, 2, 1, 2, 1 << 20};
    loader_opts o3 = {&c, S, 2, 3, 4, 0};
    loader *l1, *l3;
    CHECK(loader_create(&l1, &tr, src, &o1, &err) == FA_OK);
    CHECK(loader_create(&l3, &tr, src, &o3, &err) == FA_OK);
    float *a = run_pass(l1, order, 6, sizes, 3, 0, sample);
    float *a2 = run_pass(l1, order, 6, sizes, 3, 0, sample); /* second pass from the RAM store */
    float *b = run_pass(l3, order, 6, sizes, 3, 0, sample);
    float *r = run_pass(l3, order, 6, sizes, 3, 1, sample); /* starts mid-epoch */
    CHECK_MSG(!memcmp(a, b, 6 * sample * sizeof *a), "tensors depend on the number of workers");
    CHECK_MSG(!memcmp(a, a2, 6 * sample * sizeof *a), "tensors differ between passes of the same epoch");
    CHECK_MSG(!memcmp(a + 2 * sample, r + 2 * sample, 4 * sample * sizeof *a), "a mid-epoch start changes tensors");
    /* the augmentation really is applied (some tensor differs from the plain one) */
    float *plain = malloc(sample * sizeof *plain);
    fa_image im;
    int owned;
    dataset_source_read(src, &tr.items[order[0]], &im, &owned, &err);
    aug_to_tensor(&im, S, plain, &err);
    if (owned) image_free(&im);
    CHECK(memcmp(plain, a, sample * sizeof *a) != 0);
    free(plain);
    free(a);
    free(a2);
    free(b);
    free(r);

    /* a file that disappeared: the error names it */
    char gone[600];
    snprintf(gone, sizeof gone, "%s", tr.items[order[4]].path);
    unlink(gone);
    loader_begin(l3, order, 6, sizes, 3, 0, 0, 0, &err);
    int failed = 0;
    for (int u = 0; u < 3; u++) {
        const loader_unit *lu;
        st = loader_next(l3, &lu, &err);
        loader_release(l3);
        if (st != FA_OK) {
            failed = 1;
            CHECK_MSG(strstr(err.msg, gone) != NULL, "error '%s' does not name %s", err.msg, gone);
            break;
        }
    }
    CHECK(failed);
    loader_free(l1);
    loader_free(l3);
    dataset_source_close(src);
    dataset_free(&tr);
    dataset_free(&va);

    expect_manifest_error("path,split\na.png,train\n", "no 'label' column");
    expect_manifest_error("path,label,split\na.png,maybe,train\nb.png,1,val\n", "label 'maybe'");
    expect_manifest_error("path,label,split\na.png,,train\nb.png,1,val\n", "no label");
    expect_manifest_error("path,label,split\na.png,1,train\n", "no usable rows with split 'val'");
    train_config c2;
    trainconf_defaults(&c2);
    snprintf(c2.manifest, sizeof c2.manifest, "%s/none.csv", tmpdir);
    CHECK(dataset_load(&c2, &tr, &va, NULL, &err) != FA_OK && strstr(err.msg, "none.csv"));

    char hex[65];
    CHECK(digest_sha256_file(write_manifest("abc.txt", "abc"), hex, &err) == FA_OK);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fa_test_train_data.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_geometry();
    test_rng_and_sampling();
    test_dataset_and_loader();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return fa_test_finish("test_train_data");
}
