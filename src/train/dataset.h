/* dataset.h - the training and validation images of a manifest, with their
 * labels, and the one function that turns an item into a 16-bit image (from
 * the preprocessing cache when one is configured, else by decoding the file).
 */
#ifndef FA_DATASET_H
#define FA_DATASET_H

#include <stdint.h>

#include "core/fa_status.h"
#include "data/image.h"
#include "train/trainconf.h"

typedef struct dataset_item {
    char *path;  /* resolved against the manifest's folder; owned */
    char *key;   /* the path exactly as the manifest writes it (cache key); owned */
    int label;   /* 0 or 1 */
    int row;     /* 1-based data row in the manifest (for messages) */
} dataset_item;

typedef struct dataset {
    int n;
    dataset_item *items;
    int n_pos, n_neg;
    char split[TRAINCONF_NAME_MAX];
} dataset;

/* Read c->manifest and fill the training and validation sets (rows whose
 * split column equals c->train_split / c->val_split; rows whose `status`
 * column exists and is not "ok" are skipped and counted in *n_skipped, which
 * may be NULL). Errors, each one line naming the manifest: missing file,
 * missing path/label/split column, a label that is empty or not 0/1
 * (true/false, yes/no, pos/neg, positive/negative) in a used row, an empty
 * training or validation split. */
fa_status dataset_load(const train_config *c, dataset *train, dataset *val, int *n_skipped, fa_error *err);
void dataset_free(dataset *d);

/* Parse a label cell: 1, 0, or -1 when it is not a label. */
int dataset_parse_label(const char *s);

/* Source of images: the preprocessing cache (when c->cache is set) or the
 * image loader. Thread-safe for concurrent dataset_source_read calls. */
typedef struct dataset_source dataset_source;

fa_status dataset_source_open(dataset_source **out, const train_config *c, fa_error *err);
void dataset_source_close(dataset_source *s);
/* Load item `it` as a 16-bit image. *owned = 1: the caller frees it with
 * image_free; *owned = 0: the pixels live in the memory-mapped cache and stay
 * valid until dataset_source_close (do not free). Errors name the file. */
fa_status dataset_source_read(dataset_source *s, const dataset_item *it, fa_image *out, int *owned, fa_error *err);

#endif
