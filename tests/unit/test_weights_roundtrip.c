/* test_weights_roundtrip.c - safetensors writer -> reader round trip, dtype
 * conversion and atomic replacement.
 *
 * References: values written are read back bit for bit; F16 is checked for
 * all 65536 bit patterns against ldexp() arithmetic (an independent
 * definition of IEEE half); BF16 and the file layout against bytes assembled
 * by hand from the safetensors spec.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "engine/weights.h"

FA_TEST_MAIN_STATE

static char g_dir[256];

static double half_reference(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

static void test_f16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = weights_f16_to_f32((uint16_t)h);
        double ref = half_reference((uint16_t)h);
        if (isnan(ref)) {
            if (!isnan(got)) bad++;
        } else if ((double)got != ref || !signbit(got) != !signbit(ref)) {
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d half values converted wrongly", bad);
}

static void test_bf16(void) {
    CHECK(weights_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(weights_bf16_to_f32(0xc049) == -3.140625f);
    CHECK(isinf(weights_bf16_to_f32(0x7f80)));
    CHECK(weights_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));
    CHECK(signbit(weights_bf16_to_f32(0x8000)));
}

/* Assemble a safetensors image: 8-byte length, header, data. */
static unsigned char *make_image(const char *header, const void *data, size_t dlen, size_t *out_len) {
    size_t hl = strlen(header);
    unsigned char *b = malloc(8 + hl + dlen + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    if (dlen) memcpy(b + 8 + hl, data, dlen);
    *out_len = 8 + hl + dlen;
    return b;
}

static void test_handmade_dtypes(void) {
    /* The header length is not a multiple of 4, so tensors start unaligned. */
    const char *hdr =
        "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
        "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
        "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}";
    unsigned char data[24] = {
        0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0xff, 0x7b, /* F16: 1, -2, 2^-24, 65504 */
        0x80, 0x3f, 0x49, 0xc0,                         /* BF16: 1, -3.140625 */
        0x00, 0x00, 0xc0, 0x3f,                         /* F32: 1.5 */
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* I64: -2 */
    };
    size_t n;
    unsigned char *img = make_image(hdr, data, sizeof data, &n);
    weights_file *f = NULL;
    fa_error err = {0};
    fa_status st = weights_parse_buffer(&f, "handmade", img, n, &err);
    CHECK_MSG(st == FA_OK, "%s", err.msg);
    free(img);
    if (st) return;
    CHECK(weights_count(f) == 4);
    const weights_tensor *h = weights_find(f, "h");
    CHECK(h && h->dtype == WEIGHTS_F16 && h->ndim == 2 && h->shape[0] == 2 && weights_numel(h) == 4);
    float v[4];
    CHECK(weights_read_f32(f, h, v, &err) == FA_OK);
    CHECK(v[0] == 1.0f && v[1] == -2.0f && v[2] == ldexpf(1.0f, -24) && v[3] == 65504.0f);
    CHECK(weights_read_f32(f, weights_find(f, "b"), v, &err) == FA_OK);
    CHECK(v[0] == 1.0f && v[1] == -3.140625f);
    CHECK(weights_read_f32(f, weights_find(f, "f"), v, &err) == FA_OK);
    CHECK(v[0] == 1.5f);
    const weights_tensor *it = weights_find(f, "i");
    CHECK(it && it->ndim == 0 && weights_numel(it) == 1);
    int64_t iv = 0;
    CHECK(weights_read_i64(f, it, &iv, &err) == FA_OK && iv == -2);
    CHECK(weights_read_f32(f, it, v, &err) == FA_OK && v[0] == -2.0f);
    /* A float tensor read as an integer must hold integers. */
    CHECK(weights_read_i64(f, weights_find(f, "f"), &iv, &err) == FA_ERR_FORMAT);
    CHECK(weights_find(f, "nope") == NULL);
    CHECK(weights_metadata(f, "x") == NULL);
    weights_close(f);
}

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void test_roundtrip(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", g_dir);
    fa_error err = {0};
    weights_writer *w = weights_writer_create();
    CHECK(w != NULL);
    float a[6] = {1.0f, -0.0f, 3.25e-39f /* subnormal */, INFINITY, -1e30f, NAN};
    int64_t sa[2] = {2, 3};
    int64_t cnt = 123456789012LL;
    int64_t sz[2] = {0, 5};
    CHECK(weights_writer_add_f32(w, "layer1.0.conv1.weight", 2, sa, a, &err) == FA_OK);
    CHECK(weights_writer_add_i64(w, "bn.num_batches_tracked", 0, NULL, &cnt, &err) == FA_OK);
    CHECK(weights_writer_add_f32(w, "weird \"name\"\\\n\xc3\xa9", 1, sa, a, &err) == FA_OK);
    CHECK(weights_writer_add_f32(w, "empty", 2, sz, NULL, &err) == FA_OK);
    /* Duplicates and reserved names are refused at add time. */
    CHECK(weights_writer_add_f32(w, "empty", 2, sz, NULL, &err) == FA_ERR_ARG);
    CHECK(weights_writer_add_f32(w, "__metadata__", 2, sz, NULL, &err) == FA_ERR_ARG);
    CHECK(weights_writer_set_metadata(w, "arch", "resnet50", &err) == FA_OK);
    CHECK(weights_writer_set_metadata(w, "note", "quote \" and \\ and\ttab", &err) == FA_OK);
    CHECK(weights_writer_set_metadata(w, "arch", "resnet18", &err) == FA_OK); /* replaces */
    /* The writer copies at add time: changing the source must not matter. */
    a[0] = 42.0f;
    CHECK_MSG(weights_writer_save(w, path, &err) == FA_OK, "%s", err.msg);
    weights_writer_free(w);
    CHECK(count_dir_entries(g_dir) == 1); /* no temp file left behind */

    /* The header is padded so the data section starts 8-aligned. */
    FILE *fp = fopen(path, "rb");
    unsigned char len8[8] = {0};
    CHECK(fp && fread(len8, 1, 8, fp) == 8);
    if (fp) fclose(fp);
    CHECK(len8[0] % 8 == 0);

    weights_file *f = NULL;
    fa_status st = weights_open(&f, path, &err);
    CHECK_MSG(st == FA_OK, "%s", err.msg);
    if (st) return;
    CHECK(weights_count(f) == 4);
    CHECK(!strcmp(weights_path(f), path));
    const weights_tensor *t = weights_find(f, "layer1.0.conv1.weight");
    CHECK(t && t->dtype == WEIGHTS_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    float back[6];
    if (t) {
        CHECK(weights_read_f32(f, t, back, &err) == FA_OK);
        CHECK(back[0] == 1.0f);
        CHECK(back[1] == 0.0f && signbit(back[1]));
        CHECK(back[2] == 3.25e-39f);
        CHECK(isinf(back[3]) && back[3] > 0);
        CHECK(back[4] == -1e30f);
        CHECK(isnan(back[5]));
    }
    t = weights_find(f, "weird \"name\"\\\n\xc3\xa9");
    CHECK(t != NULL);
    t = weights_find(f, "bn.num_batches_tracked");
    int64_t c = 0;
    CHECK(t && t->dtype == WEIGHTS_I64 && t->ndim == 0);
    if (t) CHECK(weights_read_i64(f, t, &c, &err) == FA_OK && c == 123456789012LL);
    t = weights_find(f, "empty");
    CHECK(t && t->nbytes == 0 && weights_numel(t) == 0);
    if (t) CHECK(weights_read_f32(f, t, back, &err) == FA_OK);
    CHECK(weights_metadata(f, "arch") && !strcmp(weights_metadata(f, "arch"), "resnet18"));
    CHECK(weights_metadata(f, "note") && !strcmp(weights_metadata(f, "note"), "quote \" and \\ and\ttab"));
    weights_close(f);

    /* Saving over an existing file replaces it whole. */
    w = weights_writer_create();
    int64_t one = 1;
    float x = 7.0f;
    CHECK(weights_writer_add_f32(w, "x", 1, &one, &x, &err) == FA_OK);
    CHECK(weights_writer_save(w, path, &err) == FA_OK);
    weights_writer_free(w);
    CHECK(count_dir_entries(g_dir) == 1);
    CHECK(weights_open(&f, path, &err) == FA_OK);
    if (f) {
        CHECK(weights_count(f) == 1 && weights_find(f, "x"));
        CHECK(weights_metadata(f, "arch") == NULL);
        weights_close(f);
    }

    /* An unwritable destination is an error naming the path, and the old
     * file is untouched. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", g_dir);
    w = weights_writer_create();
    CHECK(weights_writer_add_f32(w, "x", 1, &one, &x, &err) == FA_OK);
    CHECK(weights_writer_save(w, bad, &err) == FA_ERR_IO);
    CHECK(strstr(err.msg, bad) != NULL);
    weights_writer_free(w);
    unlink(path);

    /* Missing file: not found, naming the file. */
    CHECK(weights_open(&f, bad, &err) == FA_ERR_NOT_FOUND && f == NULL);
    CHECK(strstr(err.msg, bad) != NULL);
    /* A directory is not a weights file. */
    CHECK(weights_open(&f, g_dir, &err) != FA_OK && f == NULL);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/fa_weights_rt_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_f16_exhaustive();
    test_bf16();
    test_handmade_dtypes();
    test_roundtrip();
    rmdir(g_dir);
    return fa_test_finish("test_weights_roundtrip");
}
