/* loader.h - the input pipeline of `freeair train`: per-epoch sample order
 * (shuffle or class-balanced sampling, reproducible from the seed and the
 * epoch) and worker threads that decode, augment and convert the next units
 * (micro-batches) while the current one computes (double buffering: by
 * default one worker and two slots).
 *
 * Units are produced strictly in order. The augmentation of the sample at
 * position p of epoch e is drawn from the stream (seed, e, p), so the tensors
 * are identical whatever the number of workers and wherever a pass starts.
 */
#ifndef FA_LOADER_H
#define FA_LOADER_H

#include <stddef.h>

#include "core/fa_status.h"
#include "train/dataset.h"
#include "train/trainconf.h"

/* Order of the samples of `epoch` (n_out = d->n entries of dataset indices):
 * shuffle = a Fisher-Yates permutation; balanced = d->n draws with
 * replacement, each class with probability 1/2 (PyTorch's
 * WeightedRandomSampler with weights 1/(2 n_class)). */
fa_status loader_epoch_order(const train_config *c, const dataset *d, int epoch, int *order, fa_error *err);

typedef struct loader_opts {
    const train_config *cfg; /* augmentation settings and seed (borrowed) */
    int image_size;
    int max_unit;            /* largest unit that will be requested */
    int n_workers;           /* >= 1 */
    int n_slots;             /* >= 2 */
    size_t ram_cache_bytes;  /* decoded images kept between passes */
} loader_opts;

typedef struct loader_unit {
    int index;       /* unit number in the pass */
    int n;           /* images */
    int position;    /* position in the pass order of the first image */
    float *x;        /* n x 3 x S x S, fp32 NCHW */
    float *y;        /* n labels (0/1) */
    const int *item; /* n dataset indices */
} loader_unit;

typedef struct loader loader;

/* Workers start here and wait for a pass. ds and src are borrowed. */
fa_status loader_create(loader **out, const dataset *ds, dataset_source *src, const loader_opts *o, fa_error *err);
/* Stops and joins the workers; frees everything. */
void loader_free(loader *l);

/* Start a pass over order[0..n_order) cut into consecutive units of
 * unit_sizes[0..n_units) (summing to n_order), producing units first_unit..
 * n_units-1. augment != 0 applies training augmentation keyed by `epoch`.
 * Arrays are copied. Ends any pass still running. */
fa_status loader_begin(loader *l, const int *order, int n_order, const int *unit_sizes, int n_units, int first_unit,
                       int augment, int epoch, fa_error *err);

/* loader_begin for one rank's share of a data-parallel pass (dist.h):
 * order holds only this rank's samples, and aug_pos[i] (n_order entries,
 * copied; NULL = i) is the position of order[i] in the global pass, which
 * keys its augmentation stream - so every sample gets the same augmentation
 * whatever the number of ranks. */
fa_status loader_begin_mapped(loader *l, const int *order, int n_order, const int *unit_sizes, int n_units,
                              int first_unit, int augment, int epoch, const int *aug_pos, fa_error *err);

/* Wait for the next unit of the pass. *u stays valid until loader_release.
 * A worker's failure (unreadable image, ...) comes back here, naming the
 * file. FA_ERR_ARG when the pass has no more units. */
fa_status loader_next(loader *l, const loader_unit **u, fa_error *err);
void loader_release(loader *l);

/* Abandon the rest of the pass (waits for units being filled). */
void loader_end(loader *l);

#endif
