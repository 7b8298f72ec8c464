/* graph.c - recording ops, shapes and named parameters for the executor.
 *
 * Building never runs a kernel: each builder checks its arguments, computes
 * the output shape with PyTorch's formulas and appends a node. The first error
 * is kept in the graph and every later builder call returns -1, so model
 * builders check graph_status() once at the end.
 */
#include "engine/graph_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fa_graph {
    graph_node *nodes;
    int n_nodes, cap_nodes;
    graph_param **params; /* each param allocated once: pointers stay valid */
    int n_params, cap_params;
    graph_output *outputs;
    int n_outputs, cap_outputs;
    fa_status status;
    fa_error err;
};

/* Record the first error; later ones are dropped because they are usually
 * consequences of the first. Returns -1 so builders can `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static graph_value graph_fail(fa_graph *g, fa_status code,
                                                                    const char *fmt, ...) {
    if (g->status != FA_OK) return -1;
    g->status = code;
    g->err.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err.msg, sizeof g->err.msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Grow *arr (of *cap elements of size sz) to hold at least need elements. */
static int graph_grow(void **arr, int *cap, int need, size_t sz) {
    if (need <= *cap) return 1;
    int ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > (1 << 28)) return 0;
        ncap *= 2;
    }
    size_t bytes;
    if (!fa_size_mul((size_t)ncap, sz, &bytes)) return 0;
    void *p = realloc(*arr, bytes);
    if (!p) return 0;
    *arr = p;
    *cap = ncap;
    return 1;
}

fa_graph *graph_create(int c, int h, int w) {
    fa_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    if (!graph_grow((void **)&g->nodes, &g->cap_nodes, 1, sizeof *g->nodes)) {
        free(g);
        return NULL;
    }
    graph_node *n = &g->nodes[0];
    memset(n, 0, sizeof *n);
    n->op = GRAPH_OP_INPUT;
    n->c = c;
    n->h = h;
    n->w = w;
    for (int i = 0; i < GRAPH_P_COUNT; i++) n->param[i] = -1;
    g->n_nodes = 1;
    if (c < 1 || h < 1 || w < 1)
        graph_fail(g, FA_ERR_SHAPE, "graph input: invalid shape %dx%dx%d", c, h, w);
    return g;
}

void graph_free(fa_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].affine_scale);
        free(g->nodes[i].affine_shift);
    }
    free(g->nodes);
    for (int i = 0; i < g->n_params; i++) {
        free(g->params[i]->data);
        free(g->params[i]->grad);
        free(g->params[i]);
    }
    free(g->params);
    free(g->outputs);
    free(g);
}

graph_value graph_input(const fa_graph *g) {
    (void)g;
    return 0;
}

static int graph_value_ok(const fa_graph *g, graph_value v) { return v >= 0 && v < g->n_nodes; }

/* Append a node with the given inputs; returns its index or -1. */
static graph_value graph_add_node(fa_graph *g, graph_op op, int n_in, const graph_value *in,
                                  const char *what) {
    if (g->status != FA_OK) return -1;
    for (int i = 0; i < n_in; i++)
        if (!graph_value_ok(g, in[i]))
            return graph_fail(g, FA_ERR_ARG, "%s: input %d is not a valid value (%d)", what, i,
                              (int)in[i]);
    if (!graph_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes))
        return graph_fail(g, FA_ERR_NOMEM, "%s: out of memory", what);
    graph_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    for (int i = 0; i < GRAPH_P_COUNT; i++) n->param[i] = -1;
    if (n_in > 0) {
        n->in = fa_malloc_array((size_t)n_in, sizeof *n->in);
        if (!n->in) return graph_fail(g, FA_ERR_NOMEM, "%s: out of memory", what);
        memcpy(n->in, in, (size_t)n_in * sizeof *in);
    }
    n->n_in = n_in;
    return g->n_nodes++;
}

/* Create parameter "<module>.<suffix>" and return its index, or -1. */
static int graph_add_param(fa_graph *g, const char *module, const char *suffix,
                           graph_param_kind kind, int ndim, const int64_t *shape, float fill) {
    if (g->status != FA_OK) return -1;
    char name[GRAPH_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s", module, suffix);
    if (len < 0 || (size_t)len >= sizeof name) {
        graph_fail(g, FA_ERR_ARG, "parameter name too long: %s.%s", module, suffix);
        return -1;
    }
    if (graph_param_find(g, name)) {
        graph_fail(g, FA_ERR_ARG, "%s: duplicate parameter name", name);
        return -1;
    }
    if (!graph_grow((void **)&g->params, &g->cap_params, g->n_params + 1, sizeof *g->params)) {
        graph_fail(g, FA_ERR_NOMEM, "%s: out of memory", name);
        return -1;
    }
    graph_param *p = calloc(1, sizeof *p);
    if (!p) {
        graph_fail(g, FA_ERR_NOMEM, "%s: out of memory", name);
        return -1;
    }
    memcpy(p->name, name, (size_t)len + 1);
    p->kind = kind;
    p->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        if (shape[i] < 1 || !fa_size_mul(numel, (size_t)shape[i], &numel)) {
            free(p);
            graph_fail(g, FA_ERR_SHAPE, "%s: invalid shape", name);
            return -1;
        }
    }
    p->numel = (int64_t)numel;
    if (kind != GRAPH_PARAM_COUNTER) {
        p->data = fa_malloc_array(numel, sizeof(float));
        if (kind == GRAPH_PARAM_TRAINABLE) p->grad = fa_calloc_array(numel, sizeof(float));
        if (!p->data || (kind == GRAPH_PARAM_TRAINABLE && !p->grad)) {
            free(p->data);
            free(p->grad);
            free(p);
            graph_fail(g, FA_ERR_NOMEM, "%s: out of memory (%zu values)", name, numel);
            return -1;
        }
        for (size_t i = 0; i < numel; i++) p->data[i] = fill;
    }
    g->params[g->n_params] = p;
    return g->n_params++;
}

static int graph_module_name(fa_graph *g, graph_node *n, const char *name, const char *what) {
    if (!name || !name[0]) {
        graph_fail(g, FA_ERR_ARG, "%s: a module name is required", what);
        return 0;
    }
    size_t len = strlen(name);
    if (len >= sizeof n->module) {
        graph_fail(g, FA_ERR_ARG, "%s: module name too long: %.40s...", what, name);
        return 0;
    }
    memcpy(n->module, name, len + 1);
    return 1;
}

graph_value graph_conv2d(fa_graph *g, const char *name, graph_value x, const graph_conv_opts *o) {
    if (!g || g->status != FA_OK) return -1;
    const char *what = name && name[0] ? name : "conv2d";
    if (!o) return graph_fail(g, FA_ERR_ARG, "%s: missing options", what);
    if (!graph_value_ok(g, x)) return graph_fail(g, FA_ERR_ARG, "%s: invalid input value", what);
    const graph_node *xn = &g->nodes[x];
    int cin = xn->c, h = xn->h, w = xn->w;
    if (o->groups < 1 || o->out_channels < 1 || o->kernel_h < 1 || o->kernel_w < 1 ||
        o->stride_h < 1 || o->stride_w < 1 || o->dilation_h < 1 || o->dilation_w < 1 ||
        o->pad_h < 0 || o->pad_w < 0)
        return graph_fail(g, FA_ERR_ARG, "%s: invalid convolution options", what);
    if (cin % o->groups || o->out_channels % o->groups)
        return graph_fail(g, FA_ERR_SHAPE,
                          "%s: channels in %d / out %d are not divisible by groups %d", what, cin,
                          o->out_channels, o->groups);
    int64_t eh = (int64_t)o->dilation_h * (o->kernel_h - 1) + 1;
    int64_t ew = (int64_t)o->dilation_w * (o->kernel_w - 1) + 1;
    int64_t oh = ((int64_t)h + 2 * o->pad_h - eh) / o->stride_h + 1;
    int64_t ow = ((int64_t)w + 2 * o->pad_w - ew) / o->stride_w + 1;
    if ((int64_t)h + 2 * o->pad_h < eh || (int64_t)w + 2 * o->pad_w < ew || oh < 1 || ow < 1)
        return graph_fail(g, FA_ERR_SHAPE, "%s: kernel larger than padded input %dx%d", what, h,
                          w);
    graph_value v = graph_add_node(g, GRAPH_OP_CONV2D, 1, &x, what);
    if (v < 0) return -1;
    graph_node *n = &g->nodes[v];
    n->c = o->out_channels;
    n->h = (int)oh;
    n->w = (int)ow;
    n->conv = *o;
    if (!graph_module_name(g, n, name, what)) return -1;
    int64_t wshape[4] = {o->out_channels, cin / o->groups, o->kernel_h, o->kernel_w};
    n->param[GRAPH_P_WEIGHT] =
        graph_add_param(g, name, "weight", GRAPH_PARAM_TRAINABLE, 4, wshape, 0.0f);
    if (o->bias) {
        int64_t bshape[1] = {o->out_channels};
        n->param[GRAPH_P_BIAS] =
            graph_add_param(g, name, "bias", GRAPH_PARAM_TRAINABLE, 1, bshape, 0.0f);
    }
    return g->status == FA_OK ? v : -1;
}

graph_value graph_batch_norm(fa_graph *g, const char *name, graph_value x, float eps,
                             float momentum) {
    if (!g || g->status != FA_OK) return -1;
    const char *what = name && name[0] ? name : "batch_norm";
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return graph_fail(g, FA_ERR_ARG, "%s: invalid eps %g or momentum %g", what, eps,
                          momentum);
    graph_value v = graph_add_node(g, GRAPH_OP_BATCH_NORM, 1, &x, what);
    if (v < 0) return -1;
    graph_node *n = &g->nodes[v];
    const graph_node *xn = &g->nodes[x];
    n->c = xn->c;
    n->h = xn->h;
    n->w = xn->w;
    n->eps = eps;
    n->momentum = momentum;
    if (!graph_module_name(g, n, name, what)) return -1;
    int64_t shape[1] = {xn->c};
    /* PyTorch's defaults, so an uninitialised BN is the identity. */
    n->param[GRAPH_P_WEIGHT] = graph_add_param(g, name, "weight", GRAPH_PARAM_TRAINABLE, 1, shape, 1.0f);
    n->param[GRAPH_P_BIAS] = graph_add_param(g, name, "bias", GRAPH_PARAM_TRAINABLE, 1, shape, 0.0f);
    n->param[GRAPH_P_RUNNING_MEAN] =
        graph_add_param(g, name, "running_mean", GRAPH_PARAM_BUFFER, 1, shape, 0.0f);
    n->param[GRAPH_P_RUNNING_VAR] =
        graph_add_param(g, name, "running_var", GRAPH_PARAM_BUFFER, 1, shape, 1.0f);
    n->param[GRAPH_P_NUM_BATCHES] =
        graph_add_param(g, name, "num_batches_tracked", GRAPH_PARAM_COUNTER, 0, NULL, 0.0f);
    return g->status == FA_OK ? v : -1;
}

/* Unary op that keeps the shape. */
static graph_value graph_same_shape(fa_graph *g, graph_op op, graph_value x, const char *what) {
    if (!g || g->status != FA_OK) return -1;
    graph_value v = graph_add_node(g, op, 1, &x, what);
    if (v < 0) return -1;
    graph_node *n = &g->nodes[v];
    n->c = g->nodes[x].c;
    n->h = g->nodes[x].h;
    n->w = g->nodes[x].w;
    return v;
}

graph_value graph_relu(fa_graph *g, graph_value x) {
    return graph_same_shape(g, GRAPH_OP_RELU, x, "relu");
}

/* PyTorch's pooling output size (pooling_output_shape in ATen). */
static int64_t graph_pool_out(int64_t in, int k, int pad, int stride, int ceil_mode) {
    int64_t num = in + 2 * pad - (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    int64_t out = num / stride + 1; /* num >= 0 is checked by the caller */
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

static graph_value graph_pool(fa_graph *g, graph_op op, graph_value x, const graph_pool_opts *o,
                              const char *what) {
    if (!g || g->status != FA_OK) return -1;
    if (!o) return graph_fail(g, FA_ERR_ARG, "%s: missing options", what);
    if (!graph_value_ok(g, x)) return graph_fail(g, FA_ERR_ARG, "%s: invalid input value", what);
    if (o->kernel_h < 1 || o->kernel_w < 1 || o->stride_h < 1 || o->stride_w < 1 ||
        o->pad_h < 0 || o->pad_w < 0)
        return graph_fail(g, FA_ERR_ARG, "%s: invalid pooling options", what);
    /* PyTorch refuses larger padding: a window could then lie entirely in
     * the padding, where max pooling has no defined value. */
    if (o->pad_h > o->kernel_h / 2 || o->pad_w > o->kernel_w / 2)
        return graph_fail(g, FA_ERR_ARG, "%s: padding %dx%d exceeds half the kernel %dx%d", what,
                          o->pad_h, o->pad_w, o->kernel_h, o->kernel_w);
    const graph_node *xn = &g->nodes[x];
    if ((int64_t)xn->h + 2 * o->pad_h < o->kernel_h || (int64_t)xn->w + 2 * o->pad_w < o->kernel_w)
        return graph_fail(g, FA_ERR_SHAPE, "%s: kernel %dx%d larger than padded input %dx%d",
                          what, o->kernel_h, o->kernel_w, xn->h, xn->w);
    int64_t oh = graph_pool_out(xn->h, o->kernel_h, o->pad_h, o->stride_h, o->ceil_mode);
    int64_t ow = graph_pool_out(xn->w, o->kernel_w, o->pad_w, o->stride_w, o->ceil_mode);
    if (oh < 1 || ow < 1)
        return graph_fail(g, FA_ERR_SHAPE, "%s: empty output for input %dx%d", what, xn->h, xn->w);
    /* With ceil_mode the last window may reach past the right padding;
     * PyTorch then divides by the clipped window size, which oneDNN's
     * padding-counting average cannot express. */
    if (op == GRAPH_OP_AVG_POOL && o->count_include_pad &&
        ((oh - 1) * o->stride_h + o->kernel_h > (int64_t)xn->h + 2 * o->pad_h ||
         (ow - 1) * o->stride_w + o->kernel_w > (int64_t)xn->w + 2 * o->pad_w))
        return graph_fail(g, FA_ERR_UNSUPPORTED,
                          "%s: ceil_mode windows beyond the padding with count_include_pad are "
                          "not supported",
                          what);
    int c = xn->c; /* xn dangles once graph_add_node grows the array */
    graph_value v = graph_add_node(g, op, 1, &x, what);
    if (v < 0) return -1;
    graph_node *n = &g->nodes[v];
    n->c = c;
    n->h = (int)oh;
    n->w = (int)ow;
    n->pool = *o;
    return v;
}

graph_value graph_max_pool2d(fa_graph *g, graph_value x, const graph_pool_opts *o) {
    return graph_pool(g, GRAPH_OP_MAX_POOL, x, o, "max_pool2d");
}

graph_value graph_avg_pool2d(fa_graph *g, graph_value x, const graph_pool_opts *o) {
    return graph_pool(g, GRAPH_OP_AVG_POOL, x, o, "avg_pool2d");
}

graph_value graph_global_avg_pool(fa_graph *g, graph_value x) {
    if (!g || g->status != FA_OK) return -1;
    graph_value v = graph_add_node(g, GRAPH_OP_GLOBAL_AVG_POOL, 1, &x, "global_avg_pool");
    if (v < 0) return -1;
    g->nodes[v].c = g->nodes[x].c;
    g->nodes[v].h = 1;
    g->nodes[v].w = 1;
    return v;
}

graph_value graph_concat(fa_graph *g, int n, const graph_value *xs) {
    if (!g || g->status != FA_OK) return -1;
    if (n < 1 || !xs) return graph_fail(g, FA_ERR_ARG, "concat: no inputs");
    int64_t c = 0;
    for (int i = 0; i < n; i++) {
        if (!graph_value_ok(g, xs[i]))
            return graph_fail(g, FA_ERR_ARG, "concat: input %d is not a valid value", i);
        const graph_node *xn = &g->nodes[xs[i]];
        if (xn->h != g->nodes[xs[0]].h || xn->w != g->nodes[xs[0]].w)
            return graph_fail(g, FA_ERR_SHAPE, "concat: input %d is %dx%d, input 0 is %dx%d", i,
                              xn->h, xn->w, g->nodes[xs[0]].h, g->nodes[xs[0]].w);
        c += xn->c;
    }
    if (c > (1 << 30)) return graph_fail(g, FA_ERR_SHAPE, "concat: too many channels");
    graph_value v = graph_add_node(g, GRAPH_OP_CONCAT, n, xs, "concat");
    if (v < 0) return -1;
    g->nodes[v].c = (int)c;
    g->nodes[v].h = g->nodes[xs[0]].h;
    g->nodes[v].w = g->nodes[xs[0]].w;
    return v;
}

graph_value graph_add(fa_graph *g, graph_value a, graph_value b) {
    if (!g || g->status != FA_OK) return -1;
    if (!graph_value_ok(g, a) || !graph_value_ok(g, b))
        return graph_fail(g, FA_ERR_ARG, "add: invalid input value");
    const graph_node *an = &g->nodes[a], *bn = &g->nodes[b];
    if (an->c != bn->c || an->h != bn->h || an->w != bn->w)
        return graph_fail(g, FA_ERR_SHAPE, "add: shapes %dx%dx%d and %dx%dx%d differ", an->c,
                          an->h, an->w, bn->c, bn->h, bn->w);
    graph_value in[2] = {a, b};
    graph_value v = graph_add_node(g, GRAPH_OP_ADD, 2, in, "add");
    if (v < 0) return -1;
    g->nodes[v].c = g->nodes[a].c;
    g->nodes[v].h = g->nodes[a].h;
    g->nodes[v].w = g->nodes[a].w;
    return v;
}

graph_value graph_linear(fa_graph *g, const char *name, graph_value x, int out_features) {
    if (!g || g->status != FA_OK) return -1;
    const char *what = name && name[0] ? name : "linear";
    if (!graph_value_ok(g, x)) return graph_fail(g, FA_ERR_ARG, "%s: invalid input value", what);
    if (out_features < 1) return graph_fail(g, FA_ERR_ARG, "%s: out_features %d", what, out_features);
    const graph_node *xn = &g->nodes[x];
    if (xn->h != 1 || xn->w != 1)
        return graph_fail(g, FA_ERR_SHAPE, "%s: input must be Cx1x1, got %dx%dx%d", what, xn->c,
                          xn->h, xn->w);
    int cin = xn->c;
    graph_value v = graph_add_node(g, GRAPH_OP_LINEAR, 1, &x, what);
    if (v < 0) return -1;
    graph_node *n = &g->nodes[v];
    n->c = out_features;
    n->h = 1;
    n->w = 1;
    if (!graph_module_name(g, n, name, what)) return -1;
    int64_t wshape[2] = {out_features, cin};
    int64_t bshape[1] = {out_features};
    n->param[GRAPH_P_WEIGHT] =
        graph_add_param(g, name, "weight", GRAPH_PARAM_TRAINABLE, 2, wshape, 0.0f);
    n->param[GRAPH_P_BIAS] = graph_add_param(g, name, "bias", GRAPH_PARAM_TRAINABLE, 1, bshape, 0.0f);
    return g->status == FA_OK ? v : -1;
}

graph_value graph_dropout(fa_graph *g, graph_value x, float p) {
    if (!g || g->status != FA_OK) return -1;
    if (!(p >= 0.0f && p <= 1.0f)) return graph_fail(g, FA_ERR_ARG, "dropout: p=%g not in [0,1]", p);
    graph_value v = graph_same_shape(g, GRAPH_OP_DROPOUT, x, "dropout");
    if (v >= 0) g->nodes[v].p = p;
    return v;
}

graph_value graph_channel_affine(fa_graph *g, graph_value x, const float *scale,
                                 const float *shift) {
    if (!g || g->status != FA_OK) return -1;
    if (!scale || !shift) return graph_fail(g, FA_ERR_ARG, "channel_affine: missing scale/shift");
    graph_value v = graph_same_shape(g, GRAPH_OP_CHANNEL_AFFINE, x, "channel_affine");
    if (v < 0) return -1;
    graph_node *n = &g->nodes[v];
    n->affine_scale = fa_malloc_array((size_t)n->c, sizeof(float));
    n->affine_shift = fa_malloc_array((size_t)n->c, sizeof(float));
    if (!n->affine_scale || !n->affine_shift)
        return graph_fail(g, FA_ERR_NOMEM, "channel_affine: out of memory");
    memcpy(n->affine_scale, scale, (size_t)n->c * sizeof(float));
    memcpy(n->affine_shift, shift, (size_t)n->c * sizeof(float));
    return v;
}

void graph_set_name(fa_graph *g, graph_value v, const char *name) {
    if (!g || g->status != FA_OK) return;
    if (!graph_value_ok(g, v) || !name || !name[0]) {
        graph_fail(g, FA_ERR_ARG, "set_name: invalid value %d or empty name", (int)v);
        return;
    }
    size_t len = strlen(name);
    if (len >= GRAPH_NAME_MAX) {
        graph_fail(g, FA_ERR_ARG, "set_name: name too long: %.40s...", name);
        return;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (i != v && !strcmp(g->nodes[i].name, name)) {
            graph_fail(g, FA_ERR_ARG, "set_name: '%s' already names value %d", name, i);
            return;
        }
    memcpy(g->nodes[v].name, name, len + 1);
}

graph_value graph_find(const fa_graph *g, const char *name) {
    if (!g || !name || !name[0]) return -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i].name, name)) return i;
    for (int i = 0; i < g->n_outputs; i++)
        if (!strcmp(g->outputs[i].name, name)) return g->outputs[i].v;
    return -1;
}

void graph_mark_output(fa_graph *g, graph_value v, const char *name, int training_only) {
    if (!g || g->status != FA_OK) return;
    if (!graph_value_ok(g, v) || !name || !name[0]) {
        graph_fail(g, FA_ERR_ARG, "mark_output: invalid value %d or empty name", (int)v);
        return;
    }
    size_t len = strlen(name);
    if (len >= GRAPH_NAME_MAX) {
        graph_fail(g, FA_ERR_ARG, "mark_output: name too long: %.40s...", name);
        return;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (!strcmp(g->outputs[i].name, name)) {
            graph_fail(g, FA_ERR_ARG, "mark_output: duplicate output name '%s'", name);
            return;
        }
    if (!graph_grow((void **)&g->outputs, &g->cap_outputs, g->n_outputs + 1, sizeof *g->outputs)) {
        graph_fail(g, FA_ERR_NOMEM, "mark_output: out of memory");
        return;
    }
    graph_output *o = &g->outputs[g->n_outputs++];
    memcpy(o->name, name, len + 1);
    o->v = v;
    o->training_only = training_only ? 1 : 0;
}

fa_status graph_status(const fa_graph *g, fa_error *err) {
    if (!g) return fa_error_set(err, FA_ERR_NOMEM, "graph: not created (out of memory)");
    if (g->status == FA_OK) return FA_OK;
    return fa_error_set(err, g->status, "%s", g->err.msg);
}

int graph_value_count(const fa_graph *g) { return g ? g->n_nodes : 0; }

void graph_value_shape(const fa_graph *g, graph_value v, int *c, int *h, int *w) {
    int cc = 0, hh = 0, ww = 0;
    if (g && graph_value_ok(g, v)) {
        cc = g->nodes[v].c;
        hh = g->nodes[v].h;
        ww = g->nodes[v].w;
    }
    if (c) *c = cc;
    if (h) *h = hh;
    if (w) *w = ww;
}

const char *graph_value_name(const fa_graph *g, graph_value v) {
    if (!g || !graph_value_ok(g, v)) return "";
    return g->nodes[v].name;
}

graph_op graph_value_op(const fa_graph *g, graph_value v) {
    if (!g || !graph_value_ok(g, v)) return GRAPH_OP_INPUT;
    return g->nodes[v].op;
}

int graph_param_count(const fa_graph *g) { return g ? g->n_params : 0; }

graph_param *graph_param_at(fa_graph *g, int i) {
    if (!g || i < 0 || i >= g->n_params) return NULL;
    return g->params[i];
}

graph_param *graph_param_find(fa_graph *g, const char *name) {
    if (!g || !name) return NULL;
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->params[i]->name, name)) return g->params[i];
    return NULL;
}

void graph_zero_grad(fa_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i]->grad) memset(g->params[i]->grad, 0, (size_t)g->params[i]->numel * sizeof(float));
}

int64_t graph_trainable_numel(const fa_graph *g) {
    int64_t n = 0;
    if (!g) return 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i]->kind == GRAPH_PARAM_TRAINABLE) n += g->params[i]->numel;
    return n;
}

int graph_node_count(const fa_graph *g) { return g ? g->n_nodes : 0; }

const graph_node *graph_node_at(const fa_graph *g, int i) {
    if (!g || i < 0 || i >= g->n_nodes) return NULL;
    return &g->nodes[i];
}

int graph_output_count(const fa_graph *g) { return g ? g->n_outputs : 0; }

const graph_output *graph_output_at(const fa_graph *g, int i) {
    if (!g || i < 0 || i >= g->n_outputs) return NULL;
    return &g->outputs[i];
}
