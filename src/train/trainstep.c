/* trainstep.c - micro-batched forward/backward and batched inference on top
 * of the executor (semantics in trainstep.h). */
#include "train/trainstep.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/optim.h"

#define TRAINSTEP_MAX_EXECS 4

typedef struct exec_slot {
    int batch;
    fa_exec *e;
    unsigned long last_use;
} exec_slot;

struct trainstep {
    fa_graph *g;
    trainstep_opts o;
    exec_slot train[TRAINSTEP_MAX_EXECS];
    unsigned long clock;
    fa_exec *infer;
    size_t sample_floats;
    int has_aux;
    float *logits, *aux, *dlogits, *daux, *pad; /* scratch, sized for the largest batch */
    int scratch_n;
    float *infer_in; /* infer_batch samples, for padding */
    exec_hooks hooks;
    int has_hooks;
};

int trainstep_split(int n, int micro_batch, int *sizes) {
    int k = 0;
    for (int done = 0; done < n; done += micro_batch) sizes[k++] = n - done < micro_batch ? n - done : micro_batch;
    return k;
}

fa_status trainstep_create(trainstep **out, fa_graph *g, const trainstep_opts *o, fa_error *err) {
    *out = NULL;
    if (o->micro_batch < 1 || o->infer_batch < 1)
        return fa_error_set(err, FA_ERR_ARG, "trainstep: micro_batch %d and infer_batch %d must be >= 1",
                            o->micro_batch, o->infer_batch);
    trainstep *t = calloc(1, sizeof *t);
    if (!t) return fa_error_set(err, FA_ERR_NOMEM, "trainstep: out of memory");
    t->g = g;
    t->o = *o;
    int c, h, w;
    graph_value_shape(g, graph_input(g), &c, &h, &w);
    t->sample_floats = (size_t)c * (size_t)h * (size_t)w;
    t->has_aux = o->aux_weight > 0 && graph_find(g, "aux_logits") >= 0;
    int n = o->micro_batch > o->infer_batch ? o->micro_batch : o->infer_batch;
    t->scratch_n = n;
    t->logits = fa_malloc_array((size_t)n, sizeof(float));
    t->aux = fa_malloc_array((size_t)n, sizeof(float));
    t->dlogits = fa_malloc_array((size_t)n, sizeof(float));
    t->daux = fa_malloc_array((size_t)n, sizeof(float));
    size_t nin;
    if (!fa_size_mul((size_t)o->infer_batch, t->sample_floats, &nin)) nin = 0;
    t->infer_in = nin ? fa_calloc_array(nin, sizeof(float)) : NULL;
    if (!t->logits || !t->aux || !t->dlogits || !t->daux || !t->infer_in) {
        trainstep_free(t);
        return fa_error_set(err, FA_ERR_NOMEM, "trainstep: out of memory");
    }
    *out = t;
    return FA_OK;
}

void trainstep_free(trainstep *t) {
    if (!t) return;
    for (int i = 0; i < TRAINSTEP_MAX_EXECS; i++) exec_free(t->train[i].e);
    exec_free(t->infer);
    free(t->logits);
    free(t->aux);
    free(t->dlogits);
    free(t->daux);
    free(t->infer_in);
    free(t);
}

/* Training executor for a batch size: reuse, else create (evicting the
 * least recently used when all slots are taken). */
static fa_status train_exec(trainstep *t, int batch, fa_exec **e, fa_error *err) {
    int victim = 0;
    for (int i = 0; i < TRAINSTEP_MAX_EXECS; i++) {
        if (t->train[i].e && t->train[i].batch == batch) {
            t->train[i].last_use = ++t->clock;
            *e = t->train[i].e;
            return FA_OK;
        }
        if (!t->train[i].e || (t->train[victim].e && t->train[i].last_use < t->train[victim].last_use)) victim = i;
    }
    exec_free(t->train[victim].e);
    t->train[victim].e = NULL;
    exec_options eo = {batch, t->o.precision, 1, 1, t->o.seed};
    fa_status st = exec_create(&t->train[victim].e, t->g, &eo, err);
    if (st == FA_OK && t->has_hooks) st = exec_set_hooks(t->train[victim].e, &t->hooks, err);
    if (st != FA_OK) {
        exec_free(t->train[victim].e);
        t->train[victim].e = NULL;
        return st;
    }
    t->train[victim].batch = batch;
    t->train[victim].last_use = ++t->clock;
    *e = t->train[victim].e;
    return FA_OK;
}

fa_status trainstep_set_hooks(trainstep *t, const exec_hooks *h, fa_error *err) {
    exec_hooks none = {0};
    t->hooks = h ? *h : none;
    t->has_hooks = h != NULL;
    for (int i = 0; i < TRAINSTEP_MAX_EXECS; i++) {
        if (!t->train[i].e) continue;
        fa_status st = exec_set_hooks(t->train[i].e, h, err);
        if (st != FA_OK) return st;
    }
    return FA_OK;
}

/* Backward with zero output gradients: keeps a rank in step with the
 * others' collectives inside backward after its loss failed. */
static void zero_backward(trainstep *t, fa_exec *e, int n_c) {
    fa_error ignored;
    memset(t->dlogits, 0, (size_t)n_c * sizeof(float));
    const char *names[1] = {"logits"};
    const float *grads[1] = {t->dlogits};
    exec_backward(e, 1, names, grads, &ignored);
}

fa_status trainstep_micro(trainstep *t, const float *x, const float *y, int n_c, int batch_n, float pos_weight,
                          double *loss, fa_error *err) {
    if (n_c < 1 || n_c > t->scratch_n || batch_n < n_c)
        return fa_error_set(err, FA_ERR_ARG, "trainstep: micro-batch of %d images (limit %d) in a batch of %d", n_c,
                            t->scratch_n, batch_n);
    fa_exec *e;
    fa_status st = train_exec(t, n_c, &e, err);
    if (st != FA_OK) return st;
    if ((st = exec_forward(e, x, err)) != FA_OK) return st;
    if ((st = exec_read_output(e, "logits", t->logits, err)) != FA_OK) return st;
    double l = 0, la = 0;
    if ((st = optim_bce_with_logits(t->logits, y, n_c, pos_weight, &l, t->dlogits, err)) != FA_OK) {
        if (t->hooks.bn_stats) zero_backward(t, e, n_c);
        return st;
    }
    float scale = (float)n_c / (float)batch_n;
    for (int i = 0; i < n_c; i++) t->dlogits[i] *= scale;
    const char *names[2] = {"logits", "aux_logits"};
    const float *grads[2] = {t->dlogits, t->daux};
    int n_out = 1;
    if (t->has_aux) {
        if ((st = exec_read_output(e, "aux_logits", t->aux, err)) != FA_OK) return st;
        if ((st = optim_bce_with_logits(t->aux, y, n_c, pos_weight, &la, t->daux, err)) != FA_OK) {
            if (t->hooks.bn_stats) zero_backward(t, e, n_c);
            return st;
        }
        for (int i = 0; i < n_c; i++) t->daux[i] *= scale * t->o.aux_weight;
        n_out = 2;
    }
    if ((st = exec_backward(e, n_out, names, grads, err)) != FA_OK) return st;
    *loss = l + (t->has_aux ? t->o.aux_weight * la : 0.0);
    return FA_OK;
}

fa_status trainstep_batch(trainstep *t, const float *x, const float *y, int n, float pos_weight, double *loss,
                          fa_error *err) {
    double sum = 0;
    for (int done = 0; done < n; done += t->o.micro_batch) {
        int n_c = n - done < t->o.micro_batch ? n - done : t->o.micro_batch;
        double l;
        fa_status st = trainstep_micro(t, x + (size_t)done * t->sample_floats, y + done, n_c, n, pos_weight, &l, err);
        if (st != FA_OK) return st;
        sum += l * n_c;
    }
    *loss = sum / n;
    return FA_OK;
}

fa_status trainstep_infer(trainstep *t, const float *x, int n, float *logits, fa_error *err) {
    int b = t->o.infer_batch;
    if (n < 1 || n > b) return fa_error_set(err, FA_ERR_ARG, "trainstep: %d images for an inference batch of %d", n, b);
    fa_status st;
    if (!t->infer) {
        exec_options eo = {b, t->o.precision, 0, 0, t->o.seed};
        if ((st = exec_create(&t->infer, t->g, &eo, err)) != FA_OK) return st;
    }
    const float *in = x;
    if (n < b) {
        memcpy(t->infer_in, x, (size_t)n * t->sample_floats * sizeof(float));
        memset(t->infer_in + (size_t)n * t->sample_floats, 0, (size_t)(b - n) * t->sample_floats * sizeof(float));
        in = t->infer_in;
    }
    if ((st = exec_forward(t->infer, in, err)) != FA_OK) return st;
    if ((st = exec_read_output(t->infer, "logits", t->logits, err)) != FA_OK) return st;
    memcpy(logits, t->logits, (size_t)n * sizeof(float));
    return FA_OK;
}
