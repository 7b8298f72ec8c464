/* weights_graph.c - moving graph parameters in and out of safetensors files.
 *
 * Loading is all-or-nothing: every name, shape and dtype is checked first and
 * every mismatch is collected into one message, so a graph is never left
 * half-loaded and the user sees all the problems at once. Tensors named
 * "optim.*" (optimiser state stored beside the weights in checkpoints) are
 * not parameters and are ignored here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/weights.h"

/* 1 if the parameter's module path is `prefix` or ends with ".prefix":
 * "fc.weight" and Inception's "AuxLogits.fc.weight" both belong to head "fc",
 * because both carry num_classes outputs and are replaced together. */
static int is_head_name(const char *name, const char *prefix) {
    if (!prefix || !prefix[0]) return 0;
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    size_t mlen = (size_t)(dot - name), plen = strlen(prefix);
    if (mlen < plen || memcmp(dot - plen, prefix, plen)) return 0;
    return mlen == plen || name[mlen - plen - 1] == '.';
}

/* Appends to a one-line mismatch list; counts what did not fit. */
typedef struct mismatch_list {
    char text[700];
    size_t len;
    int count;
    int dropped;
} mismatch_list;

static void ml_add(mismatch_list *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ml_add(mismatch_list *m, const char *fmt, ...) {
    char item[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    m->count++;
    size_t n = strlen(item);
    if (m->len + n + 3 >= sizeof m->text - 32) {
        m->dropped++;
        return;
    }
    if (m->len) {
        memcpy(m->text + m->len, "; ", 2);
        m->len += 2;
    }
    memcpy(m->text + m->len, item, n + 1);
    m->len += n;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static int counter_shape_ok(const weights_tensor *t) { return weights_numel(t) == 1 && t->ndim <= 1; }

static int param_shape_ok(const graph_param *p, const weights_tensor *t) {
    if (p->kind == GRAPH_PARAM_COUNTER) return counter_shape_ok(t);
    if (t->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (t->shape[d] != p->shape[d]) return 0;
    return 1;
}

fa_status weights_load_graph(fa_graph *g, const weights_file *f, const weights_load_opts *o, int *head_dropped,
                             fa_error *err) {
    if (head_dropped) *head_dropped = 0;
    if (!g || !f) return fa_error_set(err, FA_ERR_ARG, "weights_load_graph: NULL argument");
    const char *head = o ? o->drop_head_prefix : NULL;
    int allow_missing = o ? o->allow_missing_buffers : 0;
    const char *path = weights_path(f);
    int np = graph_param_count(g);

    mismatch_list ml = {0};
    int shape_errors = 0, head_mismatch = 0;
    for (int i = 0; i < np; i++) {
        const graph_param *p = graph_param_at(g, i);
        const weights_tensor *t = weights_find(f, p->name);
        int in_head = is_head_name(p->name, head);
        if (in_head && (!t || !param_shape_ok(p, t))) {
            head_mismatch = 1;
            continue;
        }
        if (!t) {
            if (p->kind == GRAPH_PARAM_COUNTER && allow_missing) continue;
            ml_add(&ml, "missing '%s'", p->name);
            continue;
        }
        if (!param_shape_ok(p, t)) {
            char a[96], b[96];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, p->kind == GRAPH_PARAM_COUNTER ? 0 : p->ndim, p->shape);
            ml_add(&ml, "shape of '%s': file %s vs model %s", p->name, a, b);
            shape_errors++;
            continue;
        }
        if (p->kind != GRAPH_PARAM_COUNTER && t->dtype == WEIGHTS_I64) {
            ml_add(&ml, "'%s' is I64, expected a float dtype", p->name);
            shape_errors++;
        }
    }
    for (int i = 0; i < weights_count(f); i++) {
        const weights_tensor *t = weights_at(f, i);
        if (!strncmp(t->name, "optim.", 6)) continue;
        if (graph_param_find(g, t->name)) continue;
        if (is_head_name(t->name, head)) continue; /* part of a head being dropped */
        ml_add(&ml, "unexpected '%s'", t->name);
    }
    if (ml.count) {
        if (ml.dropped) {
            char more[40];
            snprintf(more, sizeof more, "; and %d more", ml.dropped);
            strncat(ml.text, more, sizeof ml.text - strlen(ml.text) - 1);
        }
        return fa_error_set(err, shape_errors ? FA_ERR_SHAPE : FA_ERR_NOT_FOUND,
                            "%s: %d tensor(s) do not match the model: %s", path, ml.count, ml.text);
    }

    for (int i = 0; i < np; i++) {
        graph_param *p = graph_param_at(g, i);
        if (head_mismatch && is_head_name(p->name, head)) continue;
        const weights_tensor *t = weights_find(f, p->name);
        if (!t) continue; /* tolerated missing counter */
        fa_status st;
        if (p->kind == GRAPH_PARAM_COUNTER) {
            int64_t v;
            st = weights_read_i64(f, t, &v, err);
            if (!st) p->count = v;
        } else {
            st = weights_read_f32(f, t, p->data, err);
        }
        if (st) return st;
    }
    if (head_dropped) *head_dropped = head_mismatch;
    return FA_OK;
}

fa_status weights_writer_add_graph(weights_writer *w, fa_graph *g, fa_error *err) {
    if (!w || !g) return fa_error_set(err, FA_ERR_ARG, "weights_writer_add_graph: NULL argument");
    int np = graph_param_count(g);
    for (int i = 0; i < np; i++) {
        const graph_param *p = graph_param_at(g, i);
        fa_status st = p->kind == GRAPH_PARAM_COUNTER
                           ? weights_writer_add_i64(w, p->name, 0, NULL, &p->count, err)
                           : weights_writer_add_f32(w, p->name, p->ndim, p->shape, p->data, err);
        if (st) return st;
    }
    return FA_OK;
}
