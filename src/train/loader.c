/* loader.c - sample order and the threaded, double-buffered batch producer
 * (see loader.h). Workers claim units in order, each into slot
 * unit % n_slots, and only once the consumer has released that slot; the
 * consumer takes units in order, so at most n_slots units exist at once. */
#include "train/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "train/augment.h"

fa_status loader_epoch_order(const train_config *c, const dataset *d, int epoch, int *order, fa_error *err) {
    aug_rng r;
    if (c->sampler == TRAINCONF_SAMPLER_BALANCED) {
        if (d->n_pos == 0 || d->n_neg == 0)
            return fa_error_set(err, FA_ERR_ARG, "sampler=balanced: split '%s' has only one class (%d positive, %d negative)",
                                d->split, d->n_pos, d->n_neg);
        int *pos = fa_malloc_array((size_t)d->n_pos, sizeof *pos), *neg = fa_malloc_array((size_t)d->n_neg, sizeof *neg);
        if (!pos || !neg) {
            free(pos);
            free(neg);
            return fa_error_set(err, FA_ERR_NOMEM, "sampler: out of memory");
        }
        int np = 0, nn = 0;
        for (int i = 0; i < d->n; i++) {
            if (d->items[i].label) pos[np++] = i;
            else neg[nn++] = i;
        }
        aug_rng_seed(&r, c->seed, AUG_STREAM_SAMPLE, (uint64_t)epoch, 0);
        for (int i = 0; i < d->n; i++) {
            int cls = (int)aug_rng_below(&r, 2);
            order[i] = cls ? pos[aug_rng_below(&r, (uint64_t)np)] : neg[aug_rng_below(&r, (uint64_t)nn)];
        }
        free(pos);
        free(neg);
        return FA_OK;
    }
    aug_rng_seed(&r, c->seed, AUG_STREAM_SHUFFLE, (uint64_t)epoch, 0);
    for (int i = 0; i < d->n; i++) order[i] = i;
    for (int i = d->n - 1; i > 0; i--) {
        int j = (int)aug_rng_below(&r, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return FA_OK;
}

enum { SLOT_EMPTY, SLOT_FILLING, SLOT_READY, SLOT_FAILED };

typedef struct loader_slot {
    int state;
    loader_unit unit;
    fa_error err;
} loader_slot;

typedef struct ram_entry {
    fa_image im; /* pixels NULL when not cached */
} ram_entry;

struct loader {
    const dataset *ds;
    dataset_source *src;
    loader_opts o;
    size_t sample_floats; /* 3*S*S */

    pthread_mutex_t mu;
    pthread_cond_t work; /* workers wait for a claimable unit */
    pthread_cond_t done; /* consumer waits for a finished unit or idle workers */
    pthread_t *threads;
    int n_threads;
    int quit;

    /* current pass */
    int active;
    int *order, n_order;
    int *aug_pos; /* global position of each order entry (augmentation key), or NULL */
    int *unit_start, *unit_size, n_units; /* unit_start: position of first sample */
    int augment, epoch;
    int next_claim, next_consume;
    int n_filling;
    loader_slot *slots;

    /* decoded images kept between passes */
    pthread_mutex_t ram_mu;
    ram_entry *ram;
    size_t ram_used;
};

/* Fetch the decoded source image of dataset item idx: from the RAM store, or
 * read and (budget permitting) store it. *owned says whether the caller must
 * free the image. */
static fa_status fetch_image(loader *l, int idx, fa_image *out, int *owned, fa_error *err) {
    pthread_mutex_lock(&l->ram_mu);
    if (l->ram[idx].im.pixels) {
        *out = l->ram[idx].im;
        *owned = 0;
        pthread_mutex_unlock(&l->ram_mu);
        return FA_OK;
    }
    pthread_mutex_unlock(&l->ram_mu);
    fa_image im;
    int src_owned = 0;
    fa_status st = dataset_source_read(l->src, &l->ds->items[idx], &im, &src_owned, err);
    if (st != FA_OK) return st;
    if (!src_owned) { /* memory-mapped cache: already in memory */
        *out = im;
        *owned = 0;
        return FA_OK;
    }
    size_t bytes = (size_t)im.width * (size_t)im.height * sizeof(uint16_t);
    pthread_mutex_lock(&l->ram_mu);
    if (l->ram[idx].im.pixels) { /* another worker stored it meanwhile */
        *out = l->ram[idx].im;
        *owned = 0;
        pthread_mutex_unlock(&l->ram_mu);
        image_free(&im);
        return FA_OK;
    }
    if (l->ram_used + bytes <= l->o.ram_cache_bytes) {
        l->ram[idx].im = im;
        l->ram_used += bytes;
        *out = im;
        *owned = 0;
    } else {
        *out = im;
        *owned = 1;
    }
    pthread_mutex_unlock(&l->ram_mu);
    return FA_OK;
}

static fa_status fill_unit(loader *l, loader_unit *u, int augment, int epoch, const int *order, const int *aug_pos,
                           fa_error *err) {
    for (int i = 0; i < u->n; i++) {
        int pos = u->position + i;
        int idx = order[pos];
        ((int *)u->item)[i] = idx;
        u->y[i] = (float)l->ds->items[idx].label;
        fa_image src;
        int owned = 0;
        fa_status st = fetch_image(l, idx, &src, &owned, err);
        if (st != FA_OK) return st;
        float *dst = u->x + (size_t)i * l->sample_floats;
        if (augment) {
            aug_rng r;
            aug_rng_seed(&r, l->o.cfg->seed, AUG_STREAM_AUGMENT, (uint64_t)epoch, (uint64_t)(aug_pos ? aug_pos[pos] : pos));
            aug_params p;
            aug_sample(l->o.cfg, &r, &p);
            fa_image a;
            memset(&a, 0, sizeof a);
            st = aug_apply(&src, &p, &a, err);
            if (st == FA_OK) st = aug_to_tensor(&a, l->o.image_size, dst, err);
            image_free(&a);
        } else {
            st = aug_to_tensor(&src, l->o.image_size, dst, err);
        }
        if (owned) image_free(&src);
        if (st != FA_OK) return fa_error_prefix(err, "%s", l->ds->items[idx].path);
    }
    return FA_OK;
}

static void *worker_main(void *arg) {
    loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (l->quit) break;
        int k = l->next_claim;
        if (!l->active || k >= l->n_units || l->slots[k % l->o.n_slots].state != SLOT_EMPTY) {
            pthread_cond_wait(&l->work, &l->mu);
            continue;
        }
        l->next_claim++;
        loader_slot *s = &l->slots[k % l->o.n_slots];
        s->state = SLOT_FILLING;
        s->unit.index = k;
        s->unit.n = l->unit_size[k];
        s->unit.position = l->unit_start[k];
        l->n_filling++;
        int augment = l->augment, epoch = l->epoch;
        const int *order = l->order, *aug_pos = l->aug_pos;
        pthread_mutex_unlock(&l->mu);
        fa_error_clear(&s->err);
        fa_status st = fill_unit(l, &s->unit, augment, epoch, order, aug_pos, &s->err);
        pthread_mutex_lock(&l->mu);
        s->state = st == FA_OK ? SLOT_READY : SLOT_FAILED;
        l->n_filling--;
        pthread_cond_broadcast(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void pass_clear(loader *l) {
    free(l->order);
    free(l->aug_pos);
    l->aug_pos = NULL;
    free(l->unit_start);
    free(l->unit_size);
    l->order = l->unit_start = l->unit_size = NULL;
    l->n_order = l->n_units = 0;
}

fa_status loader_create(loader **out, const dataset *ds, dataset_source *src, const loader_opts *o, fa_error *err) {
    *out = NULL;
    if (o->n_workers < 1 || o->n_slots < 2 || o->max_unit < 1 || o->image_size < 1)
        return fa_error_set(err, FA_ERR_ARG, "loader: bad options (workers %d, slots %d, unit %d, size %d)",
                            o->n_workers, o->n_slots, o->max_unit, o->image_size);
    loader *l = calloc(1, sizeof *l);
    if (!l) return fa_error_set(err, FA_ERR_NOMEM, "loader: out of memory");
    l->ds = ds;
    l->src = src;
    l->o = *o;
    l->sample_floats = (size_t)3 * (size_t)o->image_size * (size_t)o->image_size;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->ram_mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    l->ram = fa_calloc_array((size_t)(ds->n > 0 ? ds->n : 1), sizeof *l->ram);
    l->slots = fa_calloc_array((size_t)o->n_slots, sizeof *l->slots);
    l->threads = fa_calloc_array((size_t)o->n_workers, sizeof *l->threads);
    int ok = l->ram && l->slots && l->threads;
    size_t nx;
    for (int i = 0; ok && i < o->n_slots; i++) {
        loader_unit *u = &l->slots[i].unit;
        ok = fa_size_mul((size_t)o->max_unit, l->sample_floats, &nx);
        if (ok) u->x = fa_malloc_array(nx, sizeof *u->x);
        u->y = fa_malloc_array((size_t)o->max_unit, sizeof *u->y);
        u->item = fa_malloc_array((size_t)o->max_unit, sizeof *u->item);
        ok = ok && u->x && u->y && u->item;
    }
    if (!ok) {
        loader_free(l);
        return fa_error_set(err, FA_ERR_NOMEM, "loader: out of memory for %d slots of %d images at %d px", o->n_slots,
                            o->max_unit, o->image_size);
    }
    for (int i = 0; i < o->n_workers; i++) {
        if (pthread_create(&l->threads[i], NULL, worker_main, l)) {
            loader_free(l);
            return fa_error_set(err, FA_ERR_INTERNAL, "loader: cannot start worker thread");
        }
        l->n_threads++;
    }
    *out = l;
    return FA_OK;
}

void loader_end(loader *l) {
    pthread_mutex_lock(&l->mu);
    l->active = 0;
    while (l->n_filling > 0) pthread_cond_wait(&l->done, &l->mu);
    for (int i = 0; i < l->o.n_slots; i++) l->slots[i].state = SLOT_EMPTY;
    pass_clear(l);
    pthread_mutex_unlock(&l->mu);
}

void loader_free(loader *l) {
    if (!l) return;
    if (l->n_threads) {
        loader_end(l);
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
    }
    pass_clear(l);
    if (l->slots)
        for (int i = 0; i < l->o.n_slots; i++) {
            free(l->slots[i].unit.x);
            free(l->slots[i].unit.y);
            free((int *)l->slots[i].unit.item);
        }
    if (l->ram)
        for (int i = 0; i < l->ds->n; i++) image_free(&l->ram[i].im);
    free(l->ram);
    free(l->slots);
    free(l->threads);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->ram_mu);
    free(l);
}

fa_status loader_begin(loader *l, const int *order, int n_order, const int *unit_sizes, int n_units, int first_unit,
                       int augment, int epoch, fa_error *err) {
    return loader_begin_mapped(l, order, n_order, unit_sizes, n_units, first_unit, augment, epoch, NULL, err);
}

fa_status loader_begin_mapped(loader *l, const int *order, int n_order, const int *unit_sizes, int n_units,
                              int first_unit, int augment, int epoch, const int *aug_pos, fa_error *err) {
    loader_end(l);
    long long total = 0;
    for (int i = 0; i < n_units; i++) {
        if (unit_sizes[i] < 1 || unit_sizes[i] > l->o.max_unit)
            return fa_error_set(err, FA_ERR_ARG, "loader: unit %d has %d images (1..%d allowed)", i, unit_sizes[i],
                                l->o.max_unit);
        total += unit_sizes[i];
    }
    if (total != n_order || first_unit < 0 || first_unit > n_units)
        return fa_error_set(err, FA_ERR_ARG, "loader: units cover %lld of %d samples", total, n_order);
    for (int i = 0; i < n_order; i++)
        if (order[i] < 0 || order[i] >= l->ds->n)
            return fa_error_set(err, FA_ERR_ARG, "loader: sample index %d outside the dataset", order[i]);
    pthread_mutex_lock(&l->mu);
    l->order = fa_malloc_array((size_t)(n_order ? n_order : 1), sizeof *l->order);
    l->unit_start = fa_malloc_array((size_t)(n_units ? n_units : 1), sizeof *l->unit_start);
    l->unit_size = fa_malloc_array((size_t)(n_units ? n_units : 1), sizeof *l->unit_size);
    if (!l->order || !l->unit_start || !l->unit_size) {
        pass_clear(l);
        pthread_mutex_unlock(&l->mu);
        return fa_error_set(err, FA_ERR_NOMEM, "loader: out of memory");
    }
    memcpy(l->order, order, (size_t)n_order * sizeof *order);
    if (aug_pos) {
        l->aug_pos = fa_malloc_array((size_t)(n_order ? n_order : 1), sizeof *l->aug_pos);
        if (!l->aug_pos) {
            pass_clear(l);
            pthread_mutex_unlock(&l->mu);
            return fa_error_set(err, FA_ERR_NOMEM, "loader: out of memory");
        }
        memcpy(l->aug_pos, aug_pos, (size_t)n_order * sizeof *aug_pos);
    }
    int pos = 0;
    for (int i = 0; i < n_units; i++) {
        l->unit_start[i] = pos;
        l->unit_size[i] = unit_sizes[i];
        pos += unit_sizes[i];
    }
    l->n_order = n_order;
    l->n_units = n_units;
    l->augment = augment;
    l->epoch = epoch;
    l->next_claim = l->next_consume = first_unit;
    l->active = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return FA_OK;
}

fa_status loader_next(loader *l, const loader_unit **u, fa_error *err) {
    pthread_mutex_lock(&l->mu);
    int k = l->next_consume;
    if (!l->active || k >= l->n_units) {
        pthread_mutex_unlock(&l->mu);
        return fa_error_set(err, FA_ERR_ARG, "loader: no more units in this pass");
    }
    loader_slot *s = &l->slots[k % l->o.n_slots];
    while (!(s->unit.index == k && (s->state == SLOT_READY || s->state == SLOT_FAILED)))
        pthread_cond_wait(&l->done, &l->mu);
    fa_status st = FA_OK;
    if (s->state == SLOT_FAILED) {
        if (err) *err = s->err;
        st = s->err.code != FA_OK ? s->err.code : FA_ERR_INTERNAL;
    }
    *u = &s->unit;
    pthread_mutex_unlock(&l->mu);
    return st;
}

void loader_release(loader *l) {
    pthread_mutex_lock(&l->mu);
    int k = l->next_consume;
    if (l->active && k < l->n_units) {
        l->slots[k % l->o.n_slots].state = SLOT_EMPTY;
        l->next_consume++;
        pthread_cond_broadcast(&l->work);
    }
    pthread_mutex_unlock(&l->mu);
}
