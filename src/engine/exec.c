/* exec.c - plans and runs a graph: which nodes run, which memory lives when,
 * where gradients go. Kernels live in the backend (backend_dnnl.c); this file
 * includes no oneDNN header.
 *
 * Design (layouts and precision):
 *  - Each value has ONE layout, chosen by the node that produces it
 *    (bk_node_out_md). Convolution, pooling, concat and sum ask oneDNN for
 *    its preferred layout (format_tag_any, usually blocked nChw16c); batch
 *    norm, ReLU, dropout and channel affine work in the layout they are
 *    given. A convolution that prefers another input layout reorders its
 *    input itself, so reorders happen only where layouts really differ.
 *  - The gradient of a value uses the same layout as the value. A node's
 *    backward overwrites (first contributor in backward order) or adds to
 *    (later contributors) each input's gradient buffer, so a value consumed
 *    several times (residual add, DenseNet concat) gets the sum.
 *  - Precision bf16: every activation and activation gradient is bf16; the
 *    graph keeps fp32 master weights that the backend reorders into bf16
 *    blocked weights at each forward, and weight gradients come back as fp32
 *    and are added to the graph's fp32 grad buffers. BN scale/shift/statistics
 *    stay fp32. Inputs and outputs cross the API as fp32 NCHW.
 *  - Memory: one arena. Every buffer (value, value gradient, node scratch)
 *    gets a lifetime in steps (forward of node i = i, backward of node i =
 *    2n-1-i) and an offset chosen greedily (largest first, lowest free
 *    offset) so that buffers whose lifetimes overlap never share bytes. An
 *    inference executor thus reuses dead activations; a training executor
 *    keeps exactly what backward reads. oneDNN scratchpads share one buffer.
 *  - Weight cache (opt-in, exec_set_weight_cache): the converted weights of
 *    each convolution/linear get a whole-run lifetime and are converted again
 *    only after exec_params_changed (or a re-plan), instead of at every
 *    forward. Off by default because the executor cannot see who writes the
 *    graph's parameters (optimiser, weight loading, tests).
 *  - fp32 inference executors (no training, no backward) fuse chains into
 *    one primitive. A convolution absorbs the BN that follows (per-channel
 *    scale/shift post-ops from the running statistics, read at every
 *    forward; folded into the weights where no direct kernel takes those
 *    post-ops), then a residual add (sum post-op: the other operand is
 *    copied into the output first, so it must be computed before the
 *    convolution runs), then a ReLU (eltwise post-op); a BN that is not
 *    fused absorbs a following ReLU (dnnl_fuse_norm_relu), which is all that
 *    bf16 inference and training executors fuse. A ResNet bottleneck is thus
 *    three primitives in fp32 inference. Every intermediate value of a
 *    chain must feed only the next op and be neither an output nor kept;
 *    the later values become aliases of the chain's first node (same
 *    memory, no node run), and only the last one holds its own result.
 *    Asking to keep an intermediate value (exec_keep_value) undoes the
 *    chain's fusion.
 */
#include "engine/exec.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/graph_internal.h"

#define EXEC_ALIGN 64
#define EXEC_NONE SIZE_MAX

typedef struct exec_value {
    int active;   /* computed by this executor */
    int req_grad; /* its gradient is computed (keep_for_backward only) */
    int has_bwd;  /* its node's backward runs */
    int keep;     /* exec_keep_value */
    int readable; /* the last plan keeps it alive until the end */
    const bk_md *md;
    bk_node *node;
    int *in_grad, *in_acc; /* per input slot */
    size_t off, diff_off;
    size_t *buf_off;
    char label[GRAPH_NAME_MAX + 32];
    bk_md *plain;     /* fp32 NCHW layout for reading */
    bk_copy *reader;  /* md -> plain */
    float *grad_copy; /* exec_keep_value_grad */
    int grad_valid;
    int w_valid; /* weight cache: its converted weights are current */
    int fuse_relu; /* BN node that also applies the next ReLU */
    int alias;     /* fused into the chain that starts at node `alias` (shares its
                    * memory, runs no node), else -1 */
    /* chain start (convolution): the folded BN node, the other operand of
     * the fused residual add (-1 when none), whether ReLU is applied */
    int fold_bn, sum_in, post_relu;
} exec_value;

struct fa_exec {
    fa_graph *g;
    exec_options o;
    bk_ctx *ctx;
    int n;
    exec_value *v;
    bk_md *in_md, *user_in_md;
    bk_copy *in_copy;
    int n_out;
    bk_copy **out_copy; /* per graph output: user grad -> diff layout */
    int *out_first;     /* 1: this output's gradient overwrites */
    int *out_has_diff;
    unsigned char *arena;
    size_t arena_bytes;
    void *scratch;
    size_t scratch_bytes;
    int planned;
    int forward_done;   /* a forward ran since the last plan */
    int backward_ready; /* saved activations are intact */
    int max_in;
    void **in_ptr, **diff_ptr, **buf_ptr;
    uint64_t rng;
    int cache_weights; /* exec_set_weight_cache */
    exec_hooks hooks;   /* exec_set_hooks; all NULL by default */
    bk_bn_sync bn_sync; /* hooks.bn_* for the backend */
};

static size_t exec_round(size_t x) { return (x + EXEC_ALIGN - 1) / EXEC_ALIGN * EXEC_ALIGN; }

static const graph_node *exec_node(const fa_exec *e, int i) { return graph_node_at(e->g, i); }

static graph_param *exec_param(fa_exec *e, const graph_node *gn, int which) {
    return gn->param[which] >= 0 ? graph_param_at(e->g, gn->param[which]) : NULL;
}

static const char *exec_op_name(graph_op op) {
    switch (op) {
    case GRAPH_OP_INPUT: return "input";
    case GRAPH_OP_CONV2D: return "conv2d";
    case GRAPH_OP_BATCH_NORM: return "batch_norm";
    case GRAPH_OP_RELU: return "relu";
    case GRAPH_OP_MAX_POOL: return "max_pool2d";
    case GRAPH_OP_AVG_POOL: return "avg_pool2d";
    case GRAPH_OP_GLOBAL_AVG_POOL: return "global_avg_pool";
    case GRAPH_OP_CONCAT: return "concat";
    case GRAPH_OP_ADD: return "add";
    case GRAPH_OP_LINEAR: return "linear";
    case GRAPH_OP_DROPOUT: return "dropout";
    case GRAPH_OP_CHANNEL_AFFINE: return "channel_affine";
    }
    return "op";
}

/* ---- memory planning ---------------------------------------------------- */

typedef struct plan_item {
    size_t size;
    int start, end;
    size_t *off; /* where to store the chosen offset */
    size_t at;
} plan_item;

typedef struct plan_list {
    plan_item *it;
    int n, cap;
} plan_list;

static int plan_add(plan_list *l, size_t size, int start, int end, size_t *off) {
    if (l->n == l->cap) {
        int ncap = l->cap ? 2 * l->cap : 256;
        plan_item *p = realloc(l->it, (size_t)ncap * sizeof *p);
        if (!p) return 0;
        l->it = p;
        l->cap = ncap;
    }
    l->it[l->n++] = (plan_item){exec_round(size ? size : 1), start, end, off, 0};
    return 1;
}

static int plan_by_size(const void *a, const void *b) {
    const plan_item *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->start - y->start;
}

static int plan_by_offset(const void *a, const void *b) {
    const plan_item *const *x = a, *const *y = b;
    return (*x)->at < (*y)->at ? -1 : (*x)->at > (*y)->at;
}

/* Greedy offset assignment: largest buffers first, each at the lowest offset
 * that does not overlap a placed buffer alive at the same time. */
static int plan_place(plan_list *l, size_t *total) {
    qsort(l->it, (size_t)l->n, sizeof *l->it, plan_by_size);
    plan_item **live = fa_malloc_array((size_t)l->n + 1, sizeof *live);
    if (!live) return 0;
    size_t top = 0;
    for (int i = 0; i < l->n; i++) {
        plan_item *x = &l->it[i];
        int m = 0;
        for (int j = 0; j < i; j++)
            if (l->it[j].start <= x->end && x->start <= l->it[j].end) live[m++] = &l->it[j];
        qsort(live, (size_t)m, sizeof *live, plan_by_offset);
        size_t at = 0;
        for (int j = 0; j < m; j++) {
            if (live[j]->at >= at + x->size) break;
            size_t end = live[j]->at + live[j]->size;
            if (end > at) at = end;
        }
        x->at = at;
        if (at + x->size > top) top = at + x->size;
    }
    free(live);
    for (int i = 0; i < l->n; i++) *l->it[i].off = l->it[i].at;
    *total = top;
    return 1;
}

static int exec_is_output(const fa_exec *e, int v) {
    for (int j = 0; j < e->n_out; j++) {
        const graph_output *o = graph_output_at(e->g, j);
        if (o->v == v && (e->o.training || !o->training_only)) return 1;
    }
    return 0;
}

static fa_status exec_plan(fa_exec *e, fa_error *err) {
    int n = e->n, END = 2 * n;
    plan_list l = {0};
    int ok = 1;
    /* Backward step of node i; -1 when it has none. */
#define BSTEP(i) (e->v[i].has_bwd ? 2 * n - 1 - (i) : -1)
    for (int i = 0; i < n && ok; i++) {
        exec_value *x = &e->v[i];
        x->off = x->diff_off = EXEC_NONE;
        x->readable = 0;
        if (!x->active || x->alias >= 0) continue;
        const graph_node *gn = exec_node(e, i);
        int end = i;
        if (x->has_bwd && bk_node_bwd_needs_output(x->node) && BSTEP(i) > end) end = BSTEP(i);
        int first_contrib = -1; /* step of the first gradient contribution */
        int out = exec_is_output(e, i), keep = x->keep;
        for (int c = i + 1; c < n; c++) {
            if (!e->v[c].active) continue;
            if (e->v[c].alias == i) { /* the fused ReLU: its uses are ours */
                out |= exec_is_output(e, c);
                keep |= e->v[c].keep;
                continue;
            }
            const graph_node *cn = exec_node(e, c);
            for (int s = 0; s < cn->n_in; s++) {
                int u = cn->in[s];
                if (e->v[u].alias >= 0) u = e->v[u].alias;
                if (u != i) continue;
                if (c > end) end = c;
                if (e->v[c].has_bwd && bk_node_bwd_needs_input(e->v[c].node, s) && BSTEP(c) > end)
                    end = BSTEP(c);
                if (e->v[c].has_bwd && x->req_grad && (first_contrib < 0 || BSTEP(c) < first_contrib))
                    first_contrib = BSTEP(c);
            }
        }
        if (out || keep || (e->o.keep_for_backward && gn->name[0])) {
            end = END;
            x->readable = 1;
        }
        ok = plan_add(&l, bk_md_bytes(x->md), i, end, &x->off);
        if (ok && x->req_grad) {
            if (out) first_contrib = n; /* injected when backward starts */
            if (first_contrib >= 0) ok = plan_add(&l, bk_md_bytes(x->md), first_contrib, BSTEP(i), &x->diff_off);
        }
        if (x->node)
            for (int k = 0; k < bk_node_buf_count(x->node) && ok; k++) {
                bk_life life = bk_node_buf_life(x->node, k);
                int s = i, t = i;
                if (life == BK_LIFE_SAVED && x->has_bwd) t = BSTEP(i);
                if (life == BK_LIFE_BWD) s = t = x->has_bwd ? BSTEP(i) : i;
                if (e->cache_weights && k == bk_node_weight_buf(x->node)) {
                    s = 0;
                    t = END;
                }
                ok = plan_add(&l, bk_node_buf_bytes(x->node, k), s, t, &x->buf_off[k]);
            }
    }
#undef BSTEP
    size_t total = 0;
    if (ok) ok = plan_place(&l, &total);
    free(l.it);
    for (int i = 0; i < n && ok; i++)
        if (e->v[i].active && e->v[i].alias >= 0) {
            e->v[i].off = e->v[e->v[i].alias].off;
            e->v[i].diff_off = e->v[e->v[i].alias].diff_off;
            e->v[i].readable = e->v[e->v[i].alias].readable;
        }
    if (!ok) return fa_error_set(err, FA_ERR_NOMEM, "executor: out of memory while planning");
    free(e->arena);
    e->arena = NULL;
    e->arena_bytes = 0;
    size_t bytes = (total + 4095) / 4096 * 4096;
    if (bytes == 0) bytes = 4096;
    e->arena = aligned_alloc(4096, bytes);
    if (!e->arena)
        return fa_error_set(err, FA_ERR_NOMEM, "executor: cannot allocate %zu MiB of activations",
                            bytes >> 20);
    e->arena_bytes = bytes;
    for (int i = 0; i < n; i++) e->v[i].w_valid = 0; /* the arena moved */
    e->planned = 1;
    e->forward_done = 0;
    e->backward_ready = 0;
    return FA_OK;
}

static fa_status exec_need_scratch(fa_exec *e, size_t bytes, fa_error *err) {
    if (bytes <= e->scratch_bytes) return FA_OK;
    size_t b = (bytes + 4095) / 4096 * 4096;
    void *p = aligned_alloc(4096, b);
    if (!p) return fa_error_set(err, FA_ERR_NOMEM, "executor: cannot allocate %zu bytes of scratchpad", b);
    free(e->scratch);
    e->scratch = p;
    e->scratch_bytes = b;
    return FA_OK;
}

/* ---- creation ----------------------------------------------------------- */

void exec_free(fa_exec *e) {
    if (!e) return;
    if (e->v) {
        for (int i = 0; i < e->n; i++) {
            exec_value *x = &e->v[i];
            bk_node_free(x->node);
            free(x->in_grad);
            free(x->in_acc);
            free(x->buf_off);
            bk_copy_free(x->reader);
            bk_md_free(x->plain);
            free(x->grad_copy);
        }
        free(e->v);
    }
    if (e->out_copy)
        for (int j = 0; j < e->n_out; j++) bk_copy_free(e->out_copy[j]);
    free(e->out_copy);
    free(e->out_first);
    free(e->out_has_diff);
    bk_copy_free(e->in_copy);
    bk_md_free(e->in_md);
    bk_md_free(e->user_in_md);
    free(e->arena);
    free(e->scratch);
    free(e->in_ptr);
    free(e->diff_ptr);
    free(e->buf_ptr);
    bk_ctx_free(e->ctx);
    free(e);
}

/* Which values run, which need gradients, and who adds to whose gradient. */
static fa_status exec_analyse(fa_exec *e, fa_error *err) {
    int n = e->n;
    for (int j = 0; j < e->n_out; j++) {
        const graph_output *o = graph_output_at(e->g, j);
        if (!o->training_only || e->o.training) e->v[o->v].active = 1;
    }
    int any = 0;
    for (int i = n - 1; i >= 0; i--) {
        if (!e->v[i].active) continue;
        any = 1;
        const graph_node *gn = exec_node(e, i);
        for (int s = 0; s < gn->n_in; s++) e->v[gn->in[s]].active = 1;
        if (gn->n_in > e->max_in) e->max_in = gn->n_in;
    }
    if (!any) return fa_error_set(err, FA_ERR_ARG, "executor: the graph has no outputs to compute");
    e->v[0].active = 1;
    for (int i = 1; i < n; i++) {
        exec_value *x = &e->v[i];
        if (!x->active || !e->o.keep_for_backward) continue;
        const graph_node *gn = exec_node(e, i);
        for (int p = 0; p < GRAPH_P_COUNT; p++) {
            graph_param *gp = exec_param(e, gn, p);
            if (gp && gp->kind == GRAPH_PARAM_TRAINABLE) x->req_grad = 1;
        }
        for (int s = 0; s < gn->n_in; s++)
            if (e->v[gn->in[s]].req_grad) x->req_grad = 1;
        x->has_bwd = x->req_grad;
    }
    /* Contribution order = backward order: output gradients first, then
     * nodes from last to first, slots in order. The first one overwrites. */
    unsigned char *seen = calloc((size_t)n, 1);
    if (!seen) return fa_error_set(err, FA_ERR_NOMEM, "executor: out of memory");
    for (int j = 0; j < e->n_out; j++) {
        const graph_output *o = graph_output_at(e->g, j);
        if (!e->v[o->v].active || !e->v[o->v].req_grad || (o->training_only && !e->o.training))
            continue;
        e->out_has_diff[j] = 1;
        e->out_first[j] = !seen[o->v];
        seen[o->v] = 1;
    }
    for (int i = 0; i < n; i++) {
        const graph_node *gn = exec_node(e, i);
        if (gn->n_in == 0) continue;
        e->v[i].in_grad = calloc((size_t)gn->n_in, sizeof(int));
        e->v[i].in_acc = calloc((size_t)gn->n_in, sizeof(int));
        if (!e->v[i].in_grad || !e->v[i].in_acc) {
            free(seen);
            return fa_error_set(err, FA_ERR_NOMEM, "executor: out of memory");
        }
    }
    for (int i = n - 1; i >= 1; i--) {
        if (!e->v[i].has_bwd) continue;
        const graph_node *gn = exec_node(e, i);
        for (int s = 0; s < gn->n_in; s++) {
            int u = gn->in[s];
            if (!e->v[u].req_grad) continue;
            e->v[i].in_grad[s] = 1;
            e->v[i].in_acc[s] = seen[u];
            seen[u] = 1;
        }
    }
    free(seen);
    return FA_OK;
}

static fa_status exec_make_node(fa_exec *e, int i, fa_error *err) {
    exec_value *x = &e->v[i];
    const graph_node *gn = exec_node(e, i);
    if (gn->module[0])
        snprintf(x->label, sizeof x->label, "%s", gn->module);
    else if (gn->name[0])
        snprintf(x->label, sizeof x->label, "%s (%s)", gn->name, exec_op_name(gn->op));
    else
        snprintf(x->label, sizeof x->label, "%s #%d", exec_op_name(gn->op), i);
    if (gn->op == GRAPH_OP_BATCH_NORM && e->o.training &&
        (int64_t)e->o.batch * gn->h * gn->w < 2)
        return fa_error_set(err, FA_ERR_SHAPE,
                            "%s: batch norm training needs more than one value per channel "
                            "(batch %d, %dx%d)",
                            x->label, e->o.batch, gn->h, gn->w);
    const bk_md *in_md[gn->n_in];
    for (int s = 0; s < gn->n_in; s++) in_md[s] = e->v[gn->in[s]].md;
    bk_node_desc d = {0};
    d.label = x->label;
    d.op = gn->op;
    d.batch = e->o.batch;
    d.dt = e->o.precision == FA_PRECISION_BF16 ? BK_BF16 : BK_F32;
    d.training = e->o.training;
    d.backward = x->has_bwd;
    d.n_in = gn->n_in;
    d.in_md = in_md;
    d.in_grad = x->in_grad;
    d.in_accumulate = x->in_acc;
    d.out_c = gn->c;
    d.out_h = gn->h;
    d.out_w = gn->w;
    d.conv = gn->conv;
    d.pool = gn->pool;
    d.eps = gn->eps;
    d.momentum = gn->momentum;
    d.p = gn->p;
    d.affine_scale = gn->affine_scale;
    d.affine_shift = gn->affine_shift;
    d.fuse_relu = x->fuse_relu;
    d.bn_sync = gn->op == GRAPH_OP_BATCH_NORM && e->o.training && x->has_bwd && e->bn_sync.stats;
    d.fold_bn = x->fold_bn >= 0;
    d.fold_eps = x->fold_bn >= 0 ? exec_node(e, x->fold_bn)->eps : 0.0f;
    d.sum_md = x->sum_in >= 0 ? e->v[x->sum_in].md : NULL;
    d.post_relu = x->post_relu;
    fa_status st = bk_node_create(&x->node, e->ctx, &d, err);
    if (st != FA_OK) return st;
    x->md = bk_node_out_md(x->node);
    int nb = bk_node_buf_count(x->node);
    x->buf_off = fa_calloc_array((size_t)(nb ? nb : 1), sizeof *x->buf_off);
    if (!x->buf_off) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", x->label);
    return exec_need_scratch(e, bk_node_scratchpad(x->node), err);
}

/* Chain fusion (see the top comment): every chain in fp32 inference
 * executors, BN + ReLU in bf16 inference and in training executors. */
static void exec_fuse(fa_exec *e) {
    int infer = !e->o.training && !e->o.keep_for_backward;
    /* Grad-CAM reads BN and ReLU values; synchronised BN has no fused ReLU. */
    if (!infer && (!e->o.training || e->bn_sync.stats)) return;
    int *uses = fa_calloc_array((size_t)e->n, sizeof *uses);
    int *user = fa_calloc_array((size_t)e->n, sizeof *user);
    if (!uses || !user) { /* no fusion: still correct */
        free(uses);
        free(user);
        return;
    }
    for (int c = 1; c < e->n; c++) {
        if (!e->v[c].active) continue;
        const graph_node *cn = exec_node(e, c);
        for (int s = 0; s < cn->n_in; s++) {
            uses[cn->in[s]]++;
            user[cn->in[s]] = c;
        }
    }
    for (int i = 1; i < e->n; i++) {
        exec_value *x = &e->v[i];
        graph_op op = exec_node(e, i)->op;
        if (!x->active || x->alias >= 0 || (op != GRAPH_OP_CONV2D && op != GRAPH_OP_BATCH_NORM))
            continue;
        /* Convolution chains only in fp32: in bf16 they drop the rounding of
         * the convolution output before BN and add, which makes results
         * differ from PyTorch bf16's by its own error level (more accurate on
         * average, but not within the parity tolerance on every input; see
         * docs/performance.md). */
        if ((!infer || e->o.precision != FA_PRECISION_FP32) && op != GRAPH_OP_BATCH_NORM) continue;
        int t = i; /* the chain's last value */
        while (uses[t] == 1 && !exec_is_output(e, t) && !e->v[t].keep &&
               !(e->o.keep_for_backward && exec_node(e, t)->name[0])) {
            int c = user[t];
            const graph_node *cn = exec_node(e, c);
            if (op == GRAPH_OP_CONV2D && t == i && cn->op == GRAPH_OP_BATCH_NORM) {
                x->fold_bn = c;
            } else if (op == GRAPH_OP_CONV2D && !x->post_relu && x->sum_in < 0 &&
                       cn->op == GRAPH_OP_ADD && cn->in[0] != cn->in[1]) {
                int other = cn->in[0] == t ? cn->in[1] : cn->in[0];
                int ready = e->v[other].alias >= 0 ? e->v[other].alias : other;
                if (ready >= i) break; /* not computed yet when the convolution runs */
                x->sum_in = other;
            } else if (cn->op == GRAPH_OP_RELU && !x->post_relu && !x->fuse_relu) {
                if (op == GRAPH_OP_CONV2D)
                    x->post_relu = 1;
                else
                    x->fuse_relu = 1;
            } else {
                break;
            }
            e->v[c].alias = i;
            e->v[c].has_bwd = 0; /* the chain's first node runs the backward */
            t = c;
        }
    }
    free(uses);
    free(user);
}

/* Create the nodes of every active, non-fused value from index `from` on
 * (freeing any earlier ones); fused values take their chain's layout. */
static fa_status exec_build_nodes(fa_exec *e, int from, fa_error *err) {
    fa_status st = FA_OK;
    for (int i = from; i < e->n && st == FA_OK; i++) {
        exec_value *x = &e->v[i];
        if (!x->active) continue;
        bk_node_free(x->node);
        x->node = NULL;
        free(x->buf_off);
        x->buf_off = NULL;
        bk_copy_free(x->reader); /* the layout may change */
        x->reader = NULL;
        bk_md_free(x->plain);
        x->plain = NULL;
        if (x->alias >= 0) {
            const graph_node *gn = exec_node(e, i);
            x->md = e->v[x->alias].md;
            snprintf(x->label, sizeof x->label, "%s (%s #%d, fused)",
                     gn->module[0] ? gn->module : gn->name[0] ? gn->name : "value",
                     exec_op_name(gn->op), i);
            continue;
        }
        st = exec_make_node(e, i, err);
    }
    return st;
}

/* Undo the fusion of the chain that starts at node r (one of its
 * intermediate values must become readable). A convolution chain's output
 * layout may change without its post-ops, so every later node is recreated;
 * BN and ReLU keep their input's layout, so a BN chain recreates only
 * itself. */
static fa_status exec_unfuse(fa_exec *e, int r, fa_error *err) {
    for (int i = r + 1; i < e->n; i++)
        if (e->v[i].alias == r) {
            e->v[i].alias = -1;
            e->v[i].has_bwd = e->v[i].req_grad;
        }
    exec_value *x = &e->v[r];
    x->fuse_relu = 0;
    x->fold_bn = -1;
    x->sum_in = -1;
    x->post_relu = 0;
    e->planned = 0;
    if (exec_node(e, r)->op != GRAPH_OP_BATCH_NORM) return exec_build_nodes(e, r, err);
    fa_status st = FA_OK;
    for (int i = r; i < e->n && st == FA_OK; i++)
        if (i == r || (e->v[i].active && !e->v[i].node && e->v[i].alias < 0 &&
                       exec_node(e, i)->op == GRAPH_OP_RELU && exec_node(e, i)->in[0] == r)) {
            bk_node_free(e->v[i].node);
            e->v[i].node = NULL;
            free(e->v[i].buf_off);
            e->v[i].buf_off = NULL;
            st = exec_make_node(e, i, err);
        }
    return st;
}

fa_status exec_create(fa_exec **out, fa_graph *g, const exec_options *o, fa_error *err) {
    *out = NULL;
    if (!g || !o) return fa_error_set(err, FA_ERR_ARG, "executor: missing graph or options");
    fa_status st = graph_status(g, err);
    if (st != FA_OK) return fa_error_prefix(err, "executor: graph was not built");
    if (o->batch < 1 || o->batch > (1 << 20))
        return fa_error_set(err, FA_ERR_ARG, "executor: invalid batch size %d", o->batch);
    if (o->precision != FA_PRECISION_FP32 && o->precision != FA_PRECISION_BF16)
        return fa_error_set(err, FA_ERR_ARG, "executor: unknown precision %d", (int)o->precision);
    fa_exec *e = calloc(1, sizeof *e);
    if (!e) return fa_error_set(err, FA_ERR_NOMEM, "executor: out of memory");
    e->g = g;
    e->o = *o;
    e->n = graph_node_count(g);
    e->n_out = graph_output_count(g);
    e->max_in = 1;
    /* Seed through splitmix so nearby seeds give unrelated masks. */
    e->rng = o->seed ^ 0x6A09E667F3BCC908ull;
    e->v = fa_calloc_array((size_t)e->n, sizeof *e->v);
    e->out_copy = fa_calloc_array((size_t)(e->n_out ? e->n_out : 1), sizeof *e->out_copy);
    e->out_first = fa_calloc_array((size_t)(e->n_out ? e->n_out : 1), sizeof(int));
    e->out_has_diff = fa_calloc_array((size_t)(e->n_out ? e->n_out : 1), sizeof(int));
    if (!e->v || !e->out_copy || !e->out_first || !e->out_has_diff) {
        exec_free(e);
        return fa_error_set(err, FA_ERR_NOMEM, "executor: out of memory");
    }
    st = bk_ctx_create(&e->ctx, err);
    if (st == FA_OK) st = exec_analyse(e, err);
    if (st == FA_OK) {
        e->in_ptr = fa_calloc_array((size_t)e->max_in, sizeof(void *));
        e->diff_ptr = fa_calloc_array((size_t)e->max_in, sizeof(void *));
        e->buf_ptr = fa_calloc_array(16, sizeof(void *));
        if (!e->in_ptr || !e->diff_ptr || !e->buf_ptr)
            st = fa_error_set(err, FA_ERR_NOMEM, "executor: out of memory");
    }
    /* The input is copied into the arena in the compute precision, so that
     * backward can read it after the caller's buffer is gone. */
    const graph_node *in = exec_node(e, 0);
    bk_dtype dt = o->precision == FA_PRECISION_BF16 ? BK_BF16 : BK_F32;
    if (st == FA_OK) st = bk_md_plain(&e->in_md, o->batch, in->c, in->h, in->w, dt, err);
    if (st == FA_OK) st = bk_md_plain(&e->user_in_md, o->batch, in->c, in->h, in->w, BK_F32, err);
    if (st == FA_OK) st = bk_copy_create(&e->in_copy, e->ctx, e->user_in_md, e->in_md, 0, err);
    if (st == FA_OK) {
        e->v[0].md = e->in_md;
        snprintf(e->v[0].label, sizeof e->v[0].label, "input");
        st = exec_need_scratch(e, bk_copy_scratchpad(e->in_copy), err);
    }
    for (int i = 0; i < e->n; i++) {
        e->v[i].alias = -1;
        e->v[i].fold_bn = -1;
        e->v[i].sum_in = -1;
    }
    if (st == FA_OK) exec_fuse(e);
    if (st == FA_OK) st = exec_build_nodes(e, 1, err);
    for (int j = 0; j < e->n_out && st == FA_OK; j++) {
        if (!e->out_has_diff[j]) continue;
        const graph_output *go = graph_output_at(g, j);
        const graph_node *gn = exec_node(e, go->v);
        bk_md *plain = NULL;
        st = bk_md_plain(&plain, o->batch, gn->c, gn->h, gn->w, BK_F32, err);
        if (st == FA_OK)
            st = bk_copy_create(&e->out_copy[j], e->ctx, plain, e->v[go->v].md, !e->out_first[j], err);
        bk_md_free(plain);
        if (st == FA_OK) st = exec_need_scratch(e, bk_copy_scratchpad(e->out_copy[j]), err);
    }
    if (st == FA_OK) st = exec_plan(e, err);
    if (st != FA_OK) {
        exec_free(e);
        return st;
    }
    *out = e;
    return FA_OK;
}

/* ---- running ------------------------------------------------------------ */

static void *exec_at(fa_exec *e, size_t off) { return off == EXEC_NONE ? NULL : e->arena + off; }

static void exec_fill_io(fa_exec *e, int i, bk_io *io) {
    exec_value *x = &e->v[i];
    const graph_node *gn = exec_node(e, i);
    memset(io, 0, sizeof *io);
    for (int s = 0; s < gn->n_in; s++) {
        e->in_ptr[s] = exec_at(e, e->v[gn->in[s]].off);
        e->diff_ptr[s] = x->in_grad && x->in_grad[s] ? exec_at(e, e->v[gn->in[s]].diff_off) : NULL;
    }
    int nb = bk_node_buf_count(x->node);
    for (int k = 0; k < nb && k < 16; k++) e->buf_ptr[k] = exec_at(e, x->buf_off[k]);
    io->in = e->in_ptr;
    io->out = exec_at(e, x->off);
    io->buf = e->buf_ptr;
    io->scratchpad = e->scratch;
    io->diff_in = e->diff_ptr;
    io->diff_out = exec_at(e, x->diff_off);
    io->rng = &e->rng;
    graph_param *p;
    if ((p = exec_param(e, gn, GRAPH_P_WEIGHT))) {
        io->weight = p->data;
        io->weight_grad = p->grad;
    }
    if ((p = exec_param(e, gn, GRAPH_P_BIAS))) {
        io->bias = p->data;
        io->bias_grad = p->grad;
    }
    if ((p = exec_param(e, gn, GRAPH_P_RUNNING_MEAN))) io->running_mean = p->data;
    if ((p = exec_param(e, gn, GRAPH_P_RUNNING_VAR))) io->running_var = p->data;
    if ((p = exec_param(e, gn, GRAPH_P_NUM_BATCHES))) io->num_batches_tracked = &p->count;
    if (x->fold_bn >= 0) {
        const graph_node *bn = exec_node(e, x->fold_bn);
        if ((p = exec_param(e, bn, GRAPH_P_WEIGHT))) io->bn_weight = p->data;
        if ((p = exec_param(e, bn, GRAPH_P_BIAS))) io->bn_bias = p->data;
        if ((p = exec_param(e, bn, GRAPH_P_RUNNING_MEAN))) io->bn_mean = p->data;
        if ((p = exec_param(e, bn, GRAPH_P_RUNNING_VAR))) io->bn_var = p->data;
    }
    if (x->sum_in >= 0) io->sum_src = exec_at(e, e->v[x->sum_in].off);
}

fa_status exec_forward(fa_exec *e, const float *input, fa_error *err) {
    if (!e || !input) return fa_error_set(err, FA_ERR_ARG, "exec_forward: missing executor or input");
    fa_status st = FA_OK;
    if (!e->planned) st = exec_plan(e, err);
    if (st != FA_OK) return st;
    e->forward_done = 0;
    e->backward_ready = 0;
    for (int i = 0; i < e->n; i++) e->v[i].grad_valid = 0;
    st = bk_copy_run(e->in_copy, input, exec_at(e, e->v[0].off), e->scratch, err);
    if (st != FA_OK) return fa_error_prefix(err, "input");
    for (int i = 1; i < e->n; i++) {
        if (!e->v[i].active || e->v[i].alias >= 0) continue;
        bk_io io;
        exec_fill_io(e, i, &io);
        io.weights_cached = e->cache_weights && e->v[i].w_valid;
        if (e->bn_sync.stats) io.bn_sync = &e->bn_sync;
        st = bk_node_forward(e->v[i].node, &io, err);
        if (st != FA_OK) return st;
        e->v[i].w_valid = e->cache_weights;
    }
    e->forward_done = 1;
    e->backward_ready = e->o.keep_for_backward;
    return FA_OK;
}

static fa_status exec_reader(fa_exec *e, int v, fa_error *err) {
    exec_value *x = &e->v[v];
    if (x->reader) return FA_OK;
    const graph_node *gn = exec_node(e, v);
    fa_status st = bk_md_plain(&x->plain, e->o.batch, gn->c, gn->h, gn->w, BK_F32, err);
    if (st == FA_OK) st = bk_copy_create(&x->reader, e->ctx, x->md, x->plain, 0, err);
    if (st == FA_OK) st = exec_need_scratch(e, bk_copy_scratchpad(x->reader), err);
    return st;
}

fa_status exec_read_value(fa_exec *e, graph_value v, float *dst, fa_error *err) {
    if (!e || !dst) return fa_error_set(err, FA_ERR_ARG, "exec_read_value: missing argument");
    if (v < 0 || v >= e->n) return fa_error_set(err, FA_ERR_ARG, "exec_read_value: invalid value %d", (int)v);
    exec_value *x = &e->v[v];
    if (!x->active)
        return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: not computed by this executor", x->label[0] ? x->label : "value");
    if (!x->readable)
        return fa_error_set(err, FA_ERR_NOT_FOUND,
                            "%s: not kept (call exec_keep_value before exec_forward)", x->label);
    if (!e->forward_done)
        return fa_error_set(err, FA_ERR_ARG, "%s: no forward has run since the executor was planned", x->label);
    fa_status st = exec_reader(e, v, err);
    if (st == FA_OK) st = bk_copy_run(x->reader, exec_at(e, x->off), dst, e->scratch, err);
    return st == FA_OK ? FA_OK : fa_error_prefix(err, "%s", x->label);
}

fa_status exec_read_output(fa_exec *e, const char *name, float *dst, fa_error *err) {
    if (!e || !name) return fa_error_set(err, FA_ERR_ARG, "exec_read_output: missing argument");
    for (int j = 0; j < e->n_out; j++) {
        const graph_output *o = graph_output_at(e->g, j);
        if (strcmp(o->name, name)) continue;
        if (o->training_only && !e->o.training)
            return fa_error_set(err, FA_ERR_NOT_FOUND,
                                "output '%s' is computed only by a training executor", name);
        return exec_read_value(e, o->v, dst, err);
    }
    return fa_error_set(err, FA_ERR_NOT_FOUND, "output '%s' does not exist", name);
}

fa_status exec_keep_value(fa_exec *e, graph_value v, fa_error *err) {
    if (!e || v < 0 || v >= e->n) return fa_error_set(err, FA_ERR_ARG, "exec_keep_value: invalid value %d", (int)v);
    if (!e->v[v].active)
        return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: not computed by this executor", e->v[v].label);
    /* Only the last value of a fused chain holds its own result. */
    int r = e->v[v].alias >= 0 ? e->v[v].alias : v, last = -1;
    for (int i = r + 1; i < e->n; i++)
        if (e->v[i].alias == r) last = i;
    if (last >= 0 && last != v) {
        fa_status st = exec_unfuse(e, r, err);
        if (st != FA_OK) return st;
    }
    if (!e->v[v].keep && !e->v[v].readable) e->planned = 0; /* replanned by the next forward */
    e->v[v].keep = 1;
    return FA_OK;
}

/* exec_hooks.grads_done after node i's backward: its trainable parameters
 * with a gradient (each belongs to one node in the model builders). */
static fa_status exec_grads_done(fa_exec *e, int i, fa_error *err) {
    const graph_node *gn = exec_node(e, i);
    int idx[2], k = 0;
    const int which[2] = {GRAPH_P_WEIGHT, GRAPH_P_BIAS};
    for (int w = 0; w < 2; w++) {
        graph_param *p = exec_param(e, gn, which[w]);
        if (p && p->kind == GRAPH_PARAM_TRAINABLE && p->grad) idx[k++] = gn->param[which[w]];
    }
    return k ? e->hooks.grads_done(e->hooks.ctx, idx, k, err) : FA_OK;
}

fa_status exec_backward(fa_exec *e, int n, const char *const *output_names,
                        const float *const *output_grads, fa_error *err) {
    if (!e) return fa_error_set(err, FA_ERR_ARG, "exec_backward: missing executor");
    if (!e->o.keep_for_backward)
        return fa_error_set(err, FA_ERR_ARG, "exec_backward: executor created without keep_for_backward");
    if (!e->backward_ready)
        return fa_error_set(err, FA_ERR_ARG, "exec_backward: needs a fresh exec_forward before each backward");
    if (n < 0 || (n > 0 && (!output_names || !output_grads)))
        return fa_error_set(err, FA_ERR_ARG, "exec_backward: invalid output gradient list");
    for (int k = 0; k < n; k++) {
        int found = 0;
        for (int j = 0; j < e->n_out && !found; j++)
            found = output_names[k] && !strcmp(graph_output_at(e->g, j)->name, output_names[k]);
        if (!found)
            return fa_error_set(err, FA_ERR_NOT_FOUND, "exec_backward: output '%s' does not exist",
                                output_names[k] ? output_names[k] : "(null)");
    }
    e->backward_ready = 0;
    fa_status st = FA_OK;
    for (int j = 0; j < e->n_out && st == FA_OK; j++) {
        if (!e->out_has_diff[j]) continue;
        const graph_output *o = graph_output_at(e->g, j);
        const float *grad = NULL;
        for (int k = 0; k < n; k++)
            if (!strcmp(output_names[k], o->name)) grad = output_grads[k];
        void *diff = exec_at(e, e->v[o->v].diff_off);
        if (grad)
            st = bk_copy_run(e->out_copy[j], grad, diff, e->scratch, err);
        else if (e->out_first[j])
            memset(diff, 0, bk_md_bytes(e->v[o->v].md));
    }
    for (int i = e->n - 1; i >= 1 && st == FA_OK; i--) {
        exec_value *x = &e->v[i];
        if (!x->has_bwd) continue;
        if (x->grad_copy) {
            st = bk_copy_run(x->reader, exec_at(e, x->diff_off), x->grad_copy, e->scratch, err);
            if (st != FA_OK) break;
            x->grad_valid = 1;
        }
        bk_io io;
        exec_fill_io(e, i, &io);
        if (e->bn_sync.stats) io.bn_sync = &e->bn_sync;
        st = bk_node_backward(x->node, &io, err);
        if (st == FA_OK && e->hooks.grads_done) st = exec_grads_done(e, i, err);
    }
    return st;
}

fa_status exec_keep_value_grad(fa_exec *e, graph_value v, fa_error *err) {
    if (!e || v < 0 || v >= e->n)
        return fa_error_set(err, FA_ERR_ARG, "exec_keep_value_grad: invalid value %d", (int)v);
    exec_value *x = &e->v[v];
    if (!e->o.keep_for_backward)
        return fa_error_set(err, FA_ERR_ARG, "%s: gradients need an executor with keep_for_backward",
                            x->label[0] ? x->label : "value");
    if (!x->active || !x->req_grad || !x->has_bwd)
        return fa_error_set(err, FA_ERR_UNSUPPORTED,
                            "%s: no gradient flows into this value (input, constant or unused)",
                            x->label[0] ? x->label : "value");
    if (x->grad_copy) return FA_OK;
    fa_status st = exec_reader(e, v, err);
    if (st != FA_OK) return st;
    const graph_node *gn = exec_node(e, v);
    size_t numel;
    if (!fa_size_mul4((size_t)e->o.batch, (size_t)gn->c, (size_t)gn->h, (size_t)gn->w, &numel) ||
        !(x->grad_copy = fa_malloc_array(numel, sizeof(float))))
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for its gradient", x->label);
    x->grad_valid = 0;
    return FA_OK;
}

fa_status exec_read_value_grad(fa_exec *e, graph_value v, float *dst, fa_error *err) {
    if (!e || !dst || v < 0 || v >= e->n)
        return fa_error_set(err, FA_ERR_ARG, "exec_read_value_grad: invalid arguments");
    exec_value *x = &e->v[v];
    if (!x->grad_copy)
        return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: gradient not kept (call exec_keep_value_grad)",
                            x->label[0] ? x->label : "value");
    if (!x->grad_valid)
        return fa_error_set(err, FA_ERR_ARG, "%s: no backward has run since the last forward", x->label);
    const graph_node *gn = exec_node(e, v);
    memcpy(dst, x->grad_copy, (size_t)e->o.batch * gn->c * gn->h * gn->w * sizeof(float));
    return FA_OK;
}

size_t exec_memory_bytes(const fa_exec *e) {
    if (!e) return 0;
    size_t total = e->arena_bytes + e->scratch_bytes;
    for (int i = 0; i < e->n; i++)
        if (e->v[i].grad_copy) {
            const graph_node *gn = exec_node(e, i);
            total += (size_t)e->o.batch * gn->c * gn->h * gn->w * sizeof(float);
        }
    return total;
}

fa_status exec_set_weight_cache(fa_exec *e, int on, fa_error *err) {
    if (!e) return fa_error_set(err, FA_ERR_ARG, "exec_set_weight_cache: missing executor");
    on = on != 0;
    if (on != e->cache_weights) e->planned = 0; /* lifetimes change: re-plan */
    e->cache_weights = on;
    return FA_OK;
}

void exec_params_changed(fa_exec *e) {
    if (!e) return;
    for (int i = 0; i < e->n; i++) e->v[i].w_valid = 0;
}

int exec_bf16_supported(void) { return bk_bf16_native(); }

void exec_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

fa_status exec_set_hooks(fa_exec *e, const exec_hooks *h, fa_error *err) {
    if (!e) return fa_error_set(err, FA_ERR_ARG, "exec_set_hooks: missing executor");
    exec_hooks none = {0};
    if (!h) h = &none;
    if ((h->bn_stats || h->bn_grad_sums || h->grads_done) && !(e->o.training && e->o.keep_for_backward))
        return fa_error_set(err, FA_ERR_ARG, "exec_set_hooks: hooks need a training executor with backward");
    if (!h->bn_stats != !h->bn_grad_sums)
        return fa_error_set(err, FA_ERR_ARG, "exec_set_hooks: bn_stats and bn_grad_sums go together");
    int rebuild = !e->bn_sync.stats != !h->bn_stats;
    e->hooks = *h;
    e->bn_sync = (bk_bn_sync){h->ctx, h->bn_stats, h->bn_grad_sums};
    if (!rebuild) return FA_OK;
    /* BatchNorm nodes gain or lose their synchronised primitives; each node
     * is rebuilt on its own (a fused ReLU is split off: synchronised BN has
     * none). */
    fa_status st = FA_OK;
    for (int i = 1; i < e->n && st == FA_OK; i++) {
        exec_value *x = &e->v[i];
        if (!x->active || !x->has_bwd || exec_node(e, i)->op != GRAPH_OP_BATCH_NORM) continue;
        if (x->fuse_relu) {
            st = exec_unfuse(e, i, err);
            continue;
        }
        bk_node_free(x->node);
        x->node = NULL;
        free(x->buf_off);
        x->buf_off = NULL;
        st = exec_make_node(e, i, err);
    }
    e->planned = 0;
    e->forward_done = 0;
    e->backward_ready = 0;
    return st;
}
