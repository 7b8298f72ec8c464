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
