/* strmap.c - open-addressing string hash map (FNV-1a, linear probing). */
#include "eval/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/fa_status.h"

static uint64_t hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

int strmap_init(strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < expected * 2 + 1) {
        if (cap > SIZE_MAX / 4) return 0;
        cap *= 2;
    }
    m->key = fa_calloc_array(cap, sizeof *m->key);
    m->val = fa_calloc_array(cap, sizeof *m->val);
    if (!m->key || !m->val) {
        strmap_free(m);
        return 0;
    }
    m->cap = cap;
    return 1;
}

void strmap_free(strmap *m) {
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static size_t slot(const strmap *m, const char *key) {
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->key[i] && strcmp(m->key[i], key)) i = (i + 1) & (m->cap - 1);
    return i;
}

int strmap_get(const strmap *m, const char *key, size_t *val) {
    if (!m->cap) return 0;
    size_t i = slot(m, key);
    if (!m->key[i]) return 0;
    if (val) *val = m->val[i];
    return 1;
}

static int grow(strmap *m) {
    strmap bigger;
    if (!strmap_init(&bigger, m->cap)) return 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->key[i]) {
            size_t j = slot(&bigger, m->key[i]);
            bigger.key[j] = m->key[i];
            bigger.val[j] = m->val[i];
            bigger.n++;
        }
    strmap_free(m);
    *m = bigger;
    return 1;
}

int strmap_put(strmap *m, const char *key, size_t val, size_t *existing) {
    if (!m->cap && !strmap_init(m, 8)) return -1;
    size_t i = slot(m, key);
    if (m->key[i]) {
        if (existing) *existing = m->val[i];
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap) {
        if (!grow(m)) return -1;
        i = slot(m, key);
    }
    m->key[i] = key;
    m->val[i] = val;
    m->n++;
    return 1;
}
