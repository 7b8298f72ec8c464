/* dataset.c - manifest rows -> labelled training/validation items, the image
 * source behind them, and the manifest fingerprint stored in checkpoints. */
#include "train/dataset.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/cache.h"
#include "data/csv.h"
#include "data/manifest.h"

int dataset_parse_label(const char *s) {
    static const char *pos[] = {"1", "true", "yes", "pos", "positive"};
    static const char *neg[] = {"0", "false", "no", "neg", "negative"};
    char buf[32];
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (int i = 0; i < 5; i++) {
        if (!strcasecmp(buf, pos[i])) return 1;
        if (!strcasecmp(buf, neg[i])) return 0;
    }
    if (!strcmp(buf, "1.0")) return 1;
    if (!strcmp(buf, "0.0")) return 0;
    return -1;
}

void dataset_free(dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        free(d->items[i].path);
        free(d->items[i].key);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

static fa_status dataset_push(dataset *d, int *cap, const char *path, int label, int row, const char *mpath,
                              fa_error *err) {
    if (d->n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        dataset_item *it = realloc(d->items, (size_t)nc * sizeof *it);
        if (!it) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", mpath);
        d->items = it;
        *cap = nc;
    }
    char resolved[PATH_MAX];
    manifest_resolve_path(path, mpath, resolved, sizeof resolved);
    char *p = strdup(resolved), *k = strdup(path);
    if (!p || !k) {
        free(p);
        free(k);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", mpath);
    }
    d->items[d->n].path = p;
    d->items[d->n].key = k;
    d->items[d->n].label = label;
    d->items[d->n].row = row;
    d->n++;
    if (label) d->n_pos++;
    else d->n_neg++;
    return FA_OK;
}

fa_status dataset_load(const train_config *c, dataset *train, dataset *val, int *n_skipped, fa_error *err) {
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (n_skipped) *n_skipped = 0;
    const char *mp = c->manifest;
    csv_table t;
    fa_status st = csv_read_file(mp, &t, err);
    if (st != FA_OK) return st;
    int cpath = csv_column(&t, c->path_column), clabel = csv_column(&t, c->label_column);
    int csplit = csv_column(&t, c->split_column), cstatus = csv_column(&t, "status");
    if (cpath < 0 || clabel < 0 || csplit < 0) {
        const char *missing = cpath < 0 ? c->path_column : clabel < 0 ? c->label_column : c->split_column;
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no '%s' column (training needs %s, %s and %s columns)", mp,
                          missing, c->path_column, c->label_column, c->split_column);
        csv_free(&t);
        return st;
    }
    snprintf(train->split, sizeof train->split, "%s", c->train_split);
    snprintf(val->split, sizeof val->split, "%s", c->val_split);
    int cap_t = 0, cap_v = 0;
    for (int r = 0; r < t.n_rows && st == FA_OK; r++) {
        const char *split = csv_cell(&t, r, csplit);
        dataset *d = !strcmp(split, c->train_split) ? train : !strcmp(split, c->val_split) ? val : NULL;
        if (!d) continue;
        if (cstatus >= 0 && strcmp(csv_cell(&t, r, cstatus), "ok")) {
            if (n_skipped) (*n_skipped)++;
            continue;
        }
        const char *path = csv_cell(&t, r, cpath);
        if (!*path) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: row %d: empty '%s'", mp, r + 1, c->path_column);
            break;
        }
        const char *lab = csv_cell(&t, r, clabel);
        int label = dataset_parse_label(lab);
        if (label < 0) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: row %d (%s): %s '%s' in split '%s' (need 1/0, true/false, yes/no, pos/neg)",
                              mp, r + 1, path, *lab ? "label" : "no label", lab, split);
            break;
        }
        st = dataset_push(d, d == train ? &cap_t : &cap_v, path, label, r + 1, mp, err);
    }
    csv_free(&t);
    if (st == FA_OK && train->n == 0)
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no usable rows with %s '%s'", mp, c->split_column, c->train_split);
    if (st == FA_OK && val->n == 0)
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no usable rows with %s '%s'", mp, c->split_column, c->val_split);
    if (st != FA_OK) {
        dataset_free(train);
        dataset_free(val);
    }
    return st;
}

/* ---- image source ---------------------------------------------------- */

struct dataset_source {
    cache *cache; /* NULL: decode files with image_load */
    char dir[TRAINCONF_PATH_MAX];
    char manifest[TRAINCONF_PATH_MAX]; /* for messages */
};

fa_status dataset_source_open(dataset_source **out, const train_config *c, fa_error *err) {
    *out = NULL;
    dataset_source *s = calloc(1, sizeof *s);
    if (!s) return fa_error_set(err, FA_ERR_NOMEM, "image source: out of memory");
    snprintf(s->manifest, sizeof s->manifest, "%s", c->manifest);
    if (c->cache[0]) {
        snprintf(s->dir, sizeof s->dir, "%s", c->cache);
        fa_status st = cache_open(c->cache, &s->cache, err);
        if (st != FA_OK) {
            free(s);
            return st;
        }
    }
    *out = s;
    return FA_OK;
}

void dataset_source_close(dataset_source *s) {
    if (!s) return;
    if (s->cache) cache_close(s->cache);
    free(s);
}

fa_status dataset_source_read(dataset_source *s, const dataset_item *it, fa_image *out, int *owned, fa_error *err) {
    memset(out, 0, sizeof *out);
    if (s->cache) {
        int w, h;
        const uint16_t *px;
        fa_status st = cache_lookup(s->cache, it->key, &w, &h, &px, err);
        if (st == FA_ERR_NOT_FOUND)
            return fa_error_set(err, st, "%s: row %d: %s is not in the cache %s (run `freeair cache` on this manifest again)",
                                s->manifest, it->row, it->key, s->dir);
        if (st != FA_OK) return st;
        out->width = w;
        out->height = h;
        out->pixels = (uint16_t *)px; /* read-only mapping; never written through */
        *owned = 0;
        return FA_OK;
    }
    char warning[256] = "";
    *owned = 1;
    fa_status st = image_load(it->path, out, warning, sizeof warning, err);
    if (st != FA_OK) fa_error_prefix(err, "%s: row %d", s->manifest, it->row);
    return st;
}

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------- */

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t used;
} sha256_ctx;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->len = 0;
    c->used = 0;
}

static void sha256_update(sha256_ctx *c, const unsigned char *p, size_t n) {
    c->len += n;
    while (n) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->buf + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used == 64) {
            sha256_block(c, c->buf);
            c->used = 0;
        }
    }
}

static void sha256_final(sha256_ctx *c, char hex[65]) {
    uint64_t bits = c->len * 8;
    unsigned char pad = 0x80, zero = 0;
    sha256_update(c, &pad, 1);
    while (c->used != 56) sha256_update(c, &zero, 1);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", c->h[i]);
    hex[64] = '\0';
}

fa_status dataset_sha256_file(const char *path, char hex[65], fa_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    sha256_ctx c;
    sha256_init(&c);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&c, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return fa_error_set(err, FA_ERR_IO, "%s: read error", path);
    sha256_final(&c, hex);
    return FA_OK;
}
