/* strmap.h - string-keyed hash map (open addressing) used by the evaluation
 * to find ids, patients and subgroup values in O(1). Keys are borrowed: they
 * must outlive the map. */
#ifndef FA_STRMAP_H
#define FA_STRMAP_H

#include <stddef.h>

typedef struct strmap {
    const char **key;
    size_t *val;
    size_t cap, n;
} strmap;

/* Returns 0 on allocation failure (the map is then empty but freeable). */
int strmap_init(strmap *m, size_t expected);
void strmap_free(strmap *m);
/* 1 and *val when found, else 0. */
int strmap_get(const strmap *m, const char *key, size_t *val);
/* Insert key -> val. 1: inserted; 0: already present (*existing gets its
 * value, the map is unchanged); -1: out of memory. existing may be NULL. */
int strmap_put(strmap *m, const char *key, size_t val, size_t *existing);

#endif
