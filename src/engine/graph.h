/* graph.h - the computation graph that model builders write and the executor runs.
 *
 * ggml-style separation: building a graph only records ops, shapes and named
 * parameters; no kernel runs here and no oneDNN type appears in this header.
 * The executor (exec.h) turns a graph into oneDNN primitives for a batch size
 * and precision.
 *
 * Shapes: every value is a 4-D NCHW tensor whose N is left to the executor;
 * the graph records C, H, W. A linear layer consumes N x C x 1 x 1 (the output
 * of global average pooling) and produces N x out x 1 x 1.
 *
 * Parameters are owned by the graph, stored fp32 in PyTorch's layout
 * (conv OIHW with I = in/groups, linear [out, in]) under torchvision's
 * state_dict names, so safetensors files load without renaming. Trainable
 * parameters have a gradient buffer of the same shape (also graph-owned).
 *
 * Errors: builder functions return a value id >= 0, or -1 after recording the
 * first error in the graph; later calls with an id of -1 return -1, so a model
 * builder checks graph_status() once at the end.
 */
#ifndef FA_GRAPH_H
#define FA_GRAPH_H

#include <stdint.h>

#include "core/fa_status.h"

typedef struct fa_graph fa_graph;
typedef int32_t graph_value; /* id of one op's output; -1 means error */

typedef enum graph_op {
    GRAPH_OP_INPUT,
    GRAPH_OP_CONV2D,
    GRAPH_OP_BATCH_NORM,
    GRAPH_OP_RELU,
    GRAPH_OP_MAX_POOL,
    GRAPH_OP_AVG_POOL,
    GRAPH_OP_GLOBAL_AVG_POOL,
    GRAPH_OP_CONCAT,
    GRAPH_OP_ADD,
    GRAPH_OP_LINEAR,
    GRAPH_OP_DROPOUT,
    GRAPH_OP_CHANNEL_AFFINE
} graph_op;

typedef enum graph_param_kind {
    GRAPH_PARAM_TRAINABLE, /* weight/bias: has grad, updated by the optimiser */
    GRAPH_PARAM_BUFFER,    /* BN running_mean/running_var: updated in training forward */
    GRAPH_PARAM_COUNTER    /* BN num_batches_tracked: int64 in safetensors */
} graph_param_kind;

#define GRAPH_NAME_MAX 160

typedef struct graph_param {
    char name[GRAPH_NAME_MAX]; /* torchvision state_dict key */
    graph_param_kind kind;
    int ndim;
    int64_t shape[4];
    int64_t numel;
    float *data;   /* fp32 values (NULL for COUNTER) */
    float *grad;   /* same shape as data, TRAINABLE only, else NULL */
    int64_t count; /* COUNTER only */
} graph_param;

typedef struct graph_conv_opts {
    int out_channels;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_h, pad_w;
    int dilation_h, dilation_w; /* 1 = no dilation, as in PyTorch */
    int groups;
    int bias; /* 1: creates "<name>.bias" */
} graph_conv_opts;

typedef struct graph_pool_opts {
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_h, pad_w;
    int ceil_mode;         /* PyTorch ceil_mode */
    int count_include_pad; /* avg pool only; PyTorch's default is 1 */
} graph_pool_opts;

/* Create an empty graph whose single input is N x c x h x w. NULL on OOM. */
fa_graph *graph_create(int c, int h, int w);
void graph_free(fa_graph *g);

/* The input value (id 0). */
graph_value graph_input(const fa_graph *g);

/* Ops. `name` is the torchvision module path ("layer1.0.conv1"); parameters
 * are created as "<name>.weight" etc. Unnamed ops take no parameters. */
graph_value graph_conv2d(fa_graph *g, const char *name, graph_value x, const graph_conv_opts *o);
/* Creates weight, bias, running_mean, running_var, num_batches_tracked.
 * momentum as in PyTorch (new = (1-m)*old + m*batch, unbiased variance). */
graph_value graph_batch_norm(fa_graph *g, const char *name, graph_value x, float eps, float momentum);
graph_value graph_relu(fa_graph *g, graph_value x);
graph_value graph_max_pool2d(fa_graph *g, graph_value x, const graph_pool_opts *o);
graph_value graph_avg_pool2d(fa_graph *g, graph_value x, const graph_pool_opts *o);
graph_value graph_global_avg_pool(fa_graph *g, graph_value x); /* -> N x C x 1 x 1 */
/* Concatenate along channels; all inputs share H and W. */
graph_value graph_concat(fa_graph *g, int n, const graph_value *xs);
graph_value graph_add(fa_graph *g, graph_value a, graph_value b);
/* x must be N x C x 1 x 1; creates weight [out, C] and bias [out]. */
graph_value graph_linear(fa_graph *g, const char *name, graph_value x, int out_features);
/* Identity in inference; in training zeroes with probability p and scales by
 * 1/(1-p), with the executor's seeded RNG. */
graph_value graph_dropout(fa_graph *g, graph_value x, float p);
/* Fixed per-channel y = x*scale[c] + shift[c] (not trainable): Inception's
 * transform_input. scale/shift are copied. */
graph_value graph_channel_affine(fa_graph *g, graph_value x, const float *scale, const float *shift);

/* Give a value a name so that it can be found later ("layer4", "features",
 * "Mixed_7c" for Grad-CAM; "logits", "aux_logits" for outputs). */
void graph_set_name(fa_graph *g, graph_value v, const char *name);
/* Value by name, or -1. */
graph_value graph_find(const fa_graph *g, const char *name);
/* Mark a value as a graph output under `name`. Outputs with `training_only`
 * set (Inception's aux head) are computed only by a training executor. */
void graph_mark_output(fa_graph *g, graph_value v, const char *name, int training_only);

/* First error recorded while building, or FA_OK. */
fa_status graph_status(const fa_graph *g, fa_error *err);

/* Introspection (used by the executor, weights I/O and tests). */
int graph_value_count(const fa_graph *g);
/* Shape of a value without batch: c, h, w. */
void graph_value_shape(const fa_graph *g, graph_value v, int *c, int *h, int *w);
const char *graph_value_name(const fa_graph *g, graph_value v); /* "" if unnamed */
graph_op graph_value_op(const fa_graph *g, graph_value v);

int graph_param_count(const fa_graph *g);
graph_param *graph_param_at(fa_graph *g, int i);
graph_param *graph_param_find(fa_graph *g, const char *name);
/* Set every gradient buffer to zero (before accumulating a new batch). */
void graph_zero_grad(fa_graph *g);
/* Total number of trainable scalars. */
int64_t graph_trainable_numel(const fa_graph *g);

#endif
