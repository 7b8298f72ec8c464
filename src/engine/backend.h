/* backend.h - the oneDNN backend: the only module that includes dnnl.h.
 *
 * The executor (exec.c) plans: which nodes run, in which order, which memory
 * lives when, where gradients go. The backend computes: for one graph node it
 * creates the oneDNN primitives (once, for one batch size and precision),
 * tells the executor which memory layout its output has and which scratch
 * buffers it needs for how long, and runs forward and backward on buffers the
 * executor hands it. Layouts (bk_md) are opaque here so that a later oneDNN
 * major version only touches backend_dnnl.c.
 *
 * Gradient delivery: a node's backward writes the gradient of each input
 * straight into that input's gradient buffer (in the input value's layout),
 * either overwriting it (first contributor) or adding to it (later ones),
 * as the executor decided at creation (bk_node_desc.in_accumulate).
 */
#ifndef FA_BACKEND_H
#define FA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"
#include "engine/graph.h"

typedef struct bk_ctx bk_ctx;   /* oneDNN engine + stream */
typedef struct bk_md bk_md;     /* a memory layout: dims, data type, format */
typedef struct bk_node bk_node; /* primitives of one graph node */
typedef struct bk_copy bk_copy; /* reorder between two layouts, optionally += */

typedef enum bk_dtype { BK_F32 = 0, BK_BF16 = 1 } bk_dtype;

/* How long a node's scratch buffer must hold its contents:
 * FWD   only while the node's forward runs;
 * SAVED from the node's forward until its backward has run (FWD when the
 *       executor runs no backward for the node);
 * BWD   only while the node's backward runs. */
typedef enum bk_life { BK_LIFE_FWD = 0, BK_LIFE_SAVED, BK_LIFE_BWD } bk_life;

fa_status bk_ctx_create(bk_ctx **out, fa_error *err);
void bk_ctx_free(bk_ctx *c);
/* 1 when oneDNN's effective ISA has native bf16 (AVX512-BF16 or AMX). */
int bk_bf16_native(void);
/* oneDNN's effective ISA name, for logs ("avx512_core_bf16"). */
const char *bk_isa_name(void);

/* Plain NCHW layout (caller owns the result; free with bk_md_free). */
fa_status bk_md_plain(bk_md **out, int n, int c, int h, int w, bk_dtype dt, fa_error *err);
void bk_md_free(bk_md *m);
/* Bytes a buffer of this layout needs (blocked layouts include padding). */
size_t bk_md_bytes(const bk_md *m);
int bk_md_equal(const bk_md *a, const bk_md *b);
/* Short human-readable description ("bf16 nChw16c 2x64x56x56") into buf. */
void bk_md_describe(const bk_md *m, char *buf, size_t n);

/* Reorder src layout -> dst layout. accumulate=1 adds into dst (+=) instead
 * of overwriting. Layouts are copied; the object owns its primitive. */
fa_status bk_copy_create(bk_copy **out, bk_ctx *c, const bk_md *src, const bk_md *dst,
                         int accumulate, fa_error *err);
void bk_copy_free(bk_copy *k);
size_t bk_copy_scratchpad(const bk_copy *k);
fa_status bk_copy_run(bk_copy *k, const void *src, void *dst, void *scratchpad, fa_error *err);

/* What the executor tells the backend about one node. Arrays have n_in
 * entries and are only read during bk_node_create. */
typedef struct bk_node_desc {
    const char *label; /* for error messages: module or op name */
    graph_op op;
    int batch;
    bk_dtype dt;
    int training; /* batch statistics for BN, active dropout */
    int backward; /* create backward primitives and keep what they need */
    int n_in;
    const bk_md *const *in_md; /* layouts of the input values */
    const int *in_grad;        /* 1 where the input's gradient is wanted */
    const int *in_accumulate;  /* 1 where that gradient is added (+=) */
    int out_c, out_h, out_w;
    graph_conv_opts conv;
    graph_pool_opts pool;
    float eps, momentum;                     /* batch norm */
    float p;                                 /* dropout */
    const float *affine_scale, *affine_shift; /* channel affine: out_c each */
    /* Batch norm: apply ReLU to the output too (oneDNN's fused BN+ReLU), so
     * that the executor can skip the following ReLU node; with backward the
     * node keeps the ReLU's mask (a SAVED buffer) and its backward takes the
     * gradient of the ReLU output. */
    int fuse_relu;
    /* Convolution in an inference-only node (training = backward = 0):
     * fold_bn: the batch norm that follows (running statistics, epsilon
     * fold_eps; bk_io.bn_*) is applied to the accumulator as per-channel
     * scale/shift post-ops computed at each forward, or, where no direct
     * kernel takes those, folded into the weights and bias whenever the
     * weights are converted; sum_md: when non-NULL the output is added to a
     * value of this layout (bk_io.sum_src, a residual add) by a sum post-op;
     * post_relu: ReLU applied last. Ignored otherwise. */
    int fold_bn;
    float fold_eps;
    const bk_md *sum_md;
    int post_relu;
    /* Batch norm in a training node with backward: also create what a
     * synchronised batch norm needs (bk_io.bn_sync): a normalisation with
     * given statistics and the input-gradient correction. */
    int bn_sync;
} bk_node_desc;

/* Pointers for one forward or backward run. in/out are value buffers in the
 * value layouts; buf are the node's scratch buffers as declared; parameters
 * are the graph's fp32 arrays (PyTorch layouts). */
typedef struct bk_io {
    void *const *in;
    void *out;
    void *const *buf;
    void *scratchpad;
    const float *weight, *bias;
    float *weight_grad, *bias_grad; /* accumulated (+=) by backward */
    float *running_mean, *running_var;
    int64_t *num_batches_tracked;
    uint64_t *rng;          /* dropout mask state, advanced by forward */
    void *const *diff_in;   /* gradient buffers of the inputs (NULL where not wanted) */
    void *diff_out;         /* gradient of the output */
    /* 1: the weight buffer (bk_node_weight_buf) already holds this node's
     * converted weights from an earlier forward and the parameters have not
     * changed since; forward skips the fp32 -> compute layout reorder. */
    int weights_cached;
    /* Convolution with fold_bn: the folded batch norm's parameters. */
    const float *bn_weight, *bn_bias, *bn_mean, *bn_var;
    const void *sum_src; /* convolution with sum_md: the value added */
    /* Batch norm created with bn_sync: the statistics and gradient sums are
     * made global through these (exec.h, exec_hooks); NULL = local. */
    const struct bk_bn_sync *bn_sync;
} bk_io;

/* exec_hooks' synchronised-BatchNorm members, passed down to the node. */
typedef struct bk_bn_sync {
    void *ctx;
    fa_status (*stats)(void *ctx, int channels, double *count, float *mean, float *var, fa_error *err);
    fa_status (*grad_sums)(void *ctx, int channels, float *sums, fa_error *err);
} bk_bn_sync;

fa_status bk_node_create(bk_node **out, bk_ctx *c, const bk_node_desc *d, fa_error *err);
void bk_node_free(bk_node *n);
/* Layout of the node's output value (owned by the node). */
const bk_md *bk_node_out_md(const bk_node *n);
int bk_node_buf_count(const bk_node *n);
size_t bk_node_buf_bytes(const bk_node *n, int i);
bk_life bk_node_buf_life(const bk_node *n, int i);
/* Largest oneDNN scratchpad any of the node's primitives needs. */
size_t bk_node_scratchpad(const bk_node *n);
/* Whether backward reads input `slot` / the output value. */
int bk_node_bwd_needs_input(const bk_node *n, int slot);
int bk_node_bwd_needs_output(const bk_node *n);
/* Index of the scratch buffer holding the weights converted for forward
 * (compute precision and layout), or -1 when the primitive reads the fp32
 * master weights directly. An executor that gives this buffer a whole-run
 * lifetime may pass bk_io.weights_cached to skip the conversion. */
int bk_node_weight_buf(const bk_node *n);
/* oneDNN implementation of the main forward primitive ("brg:avx512_core"). */
const char *bk_node_impl(const bk_node *n);

fa_status bk_node_forward(bk_node *n, const bk_io *io, fa_error *err);
/* Requires desc.backward. Accumulates parameter gradients and delivers input
 * gradients as described above. */
fa_status bk_node_backward(bk_node *n, const bk_io *io, fa_error *err);

#endif
