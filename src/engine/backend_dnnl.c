/* backend_dnnl.c - every oneDNN (2.6 C API) call in freeair lives here.
 *
 * One bk_node per graph node holds the primitives created once at executor
 * creation: the forward primitive, the backward-data/-weights primitives and
 * the reorders between layouts (input into the layout a convolution prefers,
 * fp32 OIHW master weights into the primitive's weight layout, weight
 * gradients back to OIHW with +=, input gradients into the input value's
 * layout with = or +=). Output layouts are left to oneDNN (format_tag_any)
 * for convolution, pooling, concat and sum; batch norm, ReLU, dropout and
 * channel affine keep the layout they are given, so chains of them run on
 * blocked memory without reorders.
 *
 * Memory objects are wrapped around executor-owned buffers for each run; all
 * primitives use a user scratchpad that the executor shares between nodes.
 */
#include "engine/backend.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bk_ctx {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
};

struct bk_md {
    dnnl_memory_desc_t md;
};

typedef struct bk_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    size_t scratch;
} bk_prim;

struct bk_copy {
    bk_ctx *c;
    bk_prim r;
    dnnl_memory_desc_t src, dst;
};

/* Delivery of one input gradient into the input value's buffer: either the
 * backward primitive writes there directly, or it writes `from` into a BWD
 * buffer (or reads a part of diff_out) and a reorder (= or +=) moves it. */
typedef struct bk_deliver {
    int active;  /* the input wants its gradient */
    int direct;  /* primitive writes straight into diff_in[slot] */
    int buf;     /* BWD buffer for the primitive's output, -1 if none */
    dnnl_memory_desc_t from;
    bk_prim r;
} bk_deliver;

#define BK_MAX_BUF 12

struct bk_node {
    bk_ctx *c;
    char label[128];
    graph_op op;
    int batch, training, backward, has_bias;
    bk_dtype dt;
    int n_in;
    dnnl_memory_desc_t *in_md; /* n_in */
    int *in_acc;               /* n_in */
    bk_md out;
    int nbuf;
    size_t buf_bytes[BK_MAX_BUF];
    bk_life buf_life[BK_MAX_BUF];
    int buf_overflow;
    size_t scratch;
    int bwd_in0, bwd_out;
    int in_c, in_h, in_w, out_c, out_h, out_w;
    float eps, momentum, p;
    float *aff_scale, *aff_shift;

    bk_prim fwd, bwd_data, bwd_w;
    dnnl_memory_desc_t dst2d; /* linear: the primitive's 2-D view of out */
    /* conv/linear: input reorder, weights */
    dnnl_memory_desc_t src_md;
    int src_reorder, b_src;
    bk_prim src_r;
    dnnl_memory_desc_t w_plain, w_fwd, w_bwd, dw_md, bias_md;
    int w_direct, wb_same, b_w, b_wb, b_dw, b_db;
    int dw_tiles; /* dW added into the OIHW grad by dw_tiles_add, not dw_r */
    bk_prim w_r, wb_r, dw_r;
    /* unary ops: gradient of input 0 */
    bk_deliver d0;
    /* batch norm (b_bnws: the fused ReLU's workspace, -1 if none) */
    int b_stats, b_dss, b_bnws;
    dnnl_memory_desc_t bnws_md;
    /* synchronised batch norm (bk_node_desc.bn_sync, see bn_sync_create) */
    int sync, b_corr;
    bk_prim fwd_g, bwd_g, corr_r;
    double sync_count; /* global values per channel of the last forward */
    float *sync_buf;   /* 4C: gradient sums, correction scale and shift */
    /* pooling */
    int b_ws;
    dnnl_memory_desc_t ws_md;
    /* concat/add: one delivery per input (sources are views of diff_out) */
    bk_deliver *dv;
    dnnl_memory_desc_t *dv_src; /* md of the part of diff_out for each input */
    int dv_plain, b_plain;
    dnnl_memory_desc_t plain_md;
    bk_prim plain_r;
    /* dropout */
    int identity, b_mask;
    dnnl_memory_desc_t mask_md;
    /* channel affine */
    dnnl_memory_desc_t aff_md;
    /* inference convolution fusions (bk_node_desc.fold_bn/sum_md/post_relu):
     * with fold_bn, buffer b_w holds the folded weights in the forward
     * layout followed (at w_bytes) by the folded fp32 bias, and b_fold the
     * folded fp32 OIHW weights before their reorder */
    int fold_bn, post_relu, post_sum, b_fold;
    /* bn_post: the BN is applied as per-channel multiply and add post-ops
     * (scale/shift in bn_ss, 2C floats, recomputed at each forward) instead
     * of being folded into the weights; w_fold: folded into the weights */
    int bn_post, w_fold;
    /* convolution backward weights in layouts of its own (see conv_create):
     * reorders of src and diff_dst into them, BWD buffers b_bw_src/b_bw_ddst */
    dnnl_memory_desc_t bw_src, bw_ddst;
    bk_prim bw_src_r, bw_ddst_r;
    int b_bw_src, b_bw_ddst;
    float *bn_ss;
    dnnl_memory_desc_t bn_md;
    float fold_eps;
    size_t w_bytes;
    dnnl_memory_desc_t sum_md;
    bk_prim sum_r;
};

/* ---- errors and small helpers ------------------------------------------ */

static fa_status bk_fail(fa_error *err, const char *label, const char *what, dnnl_status_t st) {
    fa_status code = st == dnnl_unimplemented    ? FA_ERR_UNSUPPORTED
                     : st == dnnl_out_of_memory ? FA_ERR_NOMEM
                                                : FA_ERR_BACKEND;
    return fa_error_set(err, code, "%s: oneDNN %s failed: %s", label, what, dnnl_status2str(st));
}

static dnnl_data_type_t bk_dnnl_dt(bk_dtype dt) { return dt == BK_BF16 ? dnnl_bf16 : dnnl_f32; }

static void md_tag(dnnl_memory_desc_t *md, int nd, const dnnl_dims_t dims, dnnl_data_type_t dt,
                   dnnl_format_tag_t tag, dnnl_status_t *st) {
    if (*st == dnnl_success) *st = dnnl_memory_desc_init_by_tag(md, nd, dims, dt, tag);
}

static size_t md_size(const dnnl_memory_desc_t *md) { return dnnl_memory_desc_get_size(md); }

static int md_eq(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) {
    return dnnl_memory_desc_equal(a, b);
}

/* Attributes shared by every primitive: user scratchpad (one buffer for the
 * whole executor), and optionally a sum post-op for reorders that add. */
static dnnl_status_t attr_make(dnnl_primitive_attr_t *attr, int sum) {
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && sum) {
        dnnl_post_ops_t po;
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success) {
            st = dnnl_post_ops_append_sum(po, 1.0f);
            if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
            dnnl_post_ops_destroy(po);
        }
    }
    if (st != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return st;
}

static const dnnl_memory_desc_t *prim_md(const bk_prim *pr, dnnl_query_t q, int i) {
    return dnnl_primitive_desc_query_md(pr->pd, q, i);
}

static void prim_free(bk_prim *pr) {
    if (pr->p) dnnl_primitive_destroy(pr->p);
    if (pr->pd) dnnl_primitive_desc_destroy(pr->pd);
    memset(pr, 0, sizeof *pr);
}

/* pr->pd is set: create the primitive and record its scratchpad size. */
static dnnl_status_t prim_finish(bk_prim *pr) {
    dnnl_status_t st = dnnl_primitive_create(&pr->p, pr->pd);
    if (st != dnnl_success) {
        pr->p = NULL;
        return st;
    }
    const dnnl_memory_desc_t *s = prim_md(pr, dnnl_query_scratchpad_md, 0);
    pr->scratch = s ? md_size(s) : 0;
    return dnnl_success;
}

/* Creates pr's primitive descriptor from desc with attr (which it takes
 * over and destroys), then the primitive. */
static dnnl_status_t prim_create(bk_prim *pr, bk_ctx *c, const void *desc, dnnl_primitive_attr_t attr,
                                 const_dnnl_primitive_desc_t hint) {
    dnnl_status_t st = dnnl_primitive_desc_create(&pr->pd, desc, attr, c->eng, hint);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        pr->pd = NULL;
        return st;
    }
    return prim_finish(pr);
}

static dnnl_status_t prim_op(bk_prim *pr, bk_ctx *c, const void *desc, int sum,
                             const_dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = attr_make(&attr, sum);
    if (st != dnnl_success) return st;
    return prim_create(pr, c, desc, attr, hint);
}

/* Inference convolution post-ops, in the order applied to the accumulator:
 * BN as x * scale[c] + shift[c] (when bn_md), residual sum, ReLU. */
static dnnl_status_t attr_conv(dnnl_primitive_attr_t *attr, const dnnl_memory_desc_t *bn_md,
                               int sum, int relu) {
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    dnnl_post_ops_t po = NULL;
    if (st == dnnl_success) st = dnnl_post_ops_create(&po);
    if (st == dnnl_success && bn_md) st = dnnl_post_ops_append_binary(po, dnnl_binary_mul, bn_md);
    if (st == dnnl_success && bn_md) st = dnnl_post_ops_append_binary(po, dnnl_binary_add, bn_md);
    if (st == dnnl_success && sum) st = dnnl_post_ops_append_sum(po, 1.0f);
    if (st == dnnl_success && relu)
        st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
    if (po) dnnl_post_ops_destroy(po);
    if (st != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return st;
}

static dnnl_status_t prim_conv(bk_prim *pr, bk_ctx *c, const void *desc,
                               const dnnl_memory_desc_t *bn_md, int sum, int relu) {
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = attr_conv(&attr, bn_md, sum, relu);
    if (st != dnnl_success) return st;
    return prim_create(pr, c, desc, attr, NULL);
}

static dnnl_status_t prim_reorder(bk_prim *pr, bk_ctx *c, const dnnl_memory_desc_t *src,
                                  const dnnl_memory_desc_t *dst, int sum) {
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = attr_make(&attr, sum);
    if (st != dnnl_success) return st;
    st = dnnl_reorder_primitive_desc_create(&pr->pd, src, c->eng, dst, c->eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        pr->pd = NULL;
        return st;
    }
    return prim_finish(pr);
}

static const char *prim_impl(const bk_prim *pr);

/* Weight gradients come out of oneDNN in blocks of 16 output x 16 input
 * channels (fp32 ABcd16b16a, with the 16 input channels outermost in a
 * block) and are added into the graph's OIHW gradient. oneDNN 2.6's reorder
 * with a sum post-op takes a generic path for that (6% of a ResNeXt-101
 * training step, 3.5 ms per 8 MB gradient); this loop adds the same floats
 * in the same order (bit-identical) at memory speed. Any other layout keeps
 * the reorder. */
static int dw_tiles_ok(const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *plain) {
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    dnnl_memory_desc_t oihw;
    if (md->ndims != 4 || md->data_type != dnnl_f32 || md->format_kind != dnnl_blocked ||
        md->offset0 != 0 || md->dims[0] % 16 || md->dims[1] % 16)
        return 0;
    for (int d = 0; d < 4; d++)
        if (md->padded_dims[d] != md->dims[d]) return 0;
    if (b->inner_nblks != 2 || b->inner_blks[0] != 16 || b->inner_blks[1] != 16 || b->inner_idxs[0] != 1 ||
        b->inner_idxs[1] != 0)
        return 0;
    /* the destination must be the dense OIHW the graph keeps */
    return dnnl_memory_desc_init_by_tag(&oihw, 4, md->dims, dnnl_f32, dnnl_oihw) == dnnl_success &&
           md_eq(&oihw, plain);
}

static void dw_tiles_add(const dnnl_memory_desc_t *md, const float *src, float *dst) {
    const dnnl_dims_t *st = &md->format_desc.blocking.strides;
    const int64_t n_ob = md->dims[0] / 16, n_ib = md->dims[1] / 16, kh = md->dims[2], kw = md->dims[3];
    const int64_t khw = kh * kw, o_stride = md->dims[1] * khw;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t ob = 0; ob < n_ob; ob++)
        for (int64_t ib = 0; ib < n_ib; ib++)
            for (int64_t h = 0; h < kh; h++)
                for (int64_t w = 0; w < kw; w++) {
                    const float *t = src + ob * (*st)[0] + ib * (*st)[1] + h * (*st)[2] + w * (*st)[3];
                    float *d0 = dst + ob * 16 * o_stride + ib * 16 * khw + h * kw + w;
                    for (int o = 0; o < 16; o++) {
                        float *d = d0 + o * o_stride;
                        for (int i = 0; i < 16; i++) d[i * khw] += t[i * 16 + o];
                    }
                }
}

/* How good a convolution implementation is, from its name: reference and
 * im2col+gemm kernels lowest, then direct kernels by instruction set. */
static int impl_rank(const char *impl) {
    if (!strncmp(impl, "ref", 3) || strstr(impl, "gemm")) return 0;
    if (strstr(impl, "amx")) return 5;
    if (strstr(impl, "avx512_core_bf16")) return 4;
    if (strstr(impl, "avx512")) return 3;
    if (strstr(impl, "avx2")) return 2;
    return 1;
}

static const char *prim_impl(const bk_prim *pr) {
    const char *s = NULL;
    if (!pr->pd || dnnl_primitive_desc_query(pr->pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success)
        return "none";
    return s ? s : "none";
}

/* One primitive execution: memory objects are wrapped around the given
 * pointers (oneDNN zero-fills any padding of blocked layouts on wrap), the
 * primitive runs, the stream is drained, the wrappers are released. */
typedef struct bk_run {
    bk_ctx *c;
    dnnl_exec_arg_t *a; /* local, or heap for concat with many inputs */
    int n, cap;
    dnnl_status_t st;
    dnnl_exec_arg_t local[16];
} bk_run;

/* extra: arguments beyond the usual handful (concat/sum inputs). */
static void run_init_n(bk_run *r, bk_ctx *c, int extra) {
    r->c = c;
    r->n = 0;
    r->st = dnnl_success;
    r->cap = 16;
    r->a = r->local;
    if (extra > 0) {
        r->cap = 16 + extra;
        r->a = calloc((size_t)r->cap, sizeof *r->a);
        if (!r->a) {
            r->a = r->local;
            r->cap = 16;
            r->st = dnnl_out_of_memory;
        }
    }
}

static void run_init(bk_run *r, bk_ctx *c) { run_init_n(r, c, 0); }

static void run_arg(bk_run *r, int arg, const dnnl_memory_desc_t *md, const void *ptr) {
    if (r->st != dnnl_success) return;
    if (r->n == r->cap || !ptr) {
        r->st = dnnl_invalid_arguments;
        return;
    }
    dnnl_memory_t m;
    r->st = dnnl_memory_create(&m, md, r->c->eng, (void *)ptr);
    if (r->st != dnnl_success) return;
    r->a[r->n].arg = arg;
    r->a[r->n].memory = m;
    r->n++;
}

static dnnl_status_t run_exec(bk_run *r, const bk_prim *pr, void *scratchpad) {
    if (r->st == dnnl_success && pr->scratch)
        run_arg(r, DNNL_ARG_SCRATCHPAD, prim_md(pr, dnnl_query_scratchpad_md, 0), scratchpad);
    if (r->st == dnnl_success) r->st = dnnl_primitive_execute(pr->p, r->c->stream, r->n, r->a);
    if (r->st == dnnl_success) r->st = dnnl_stream_wait(r->c->stream);
    for (int i = 0; i < r->n; i++) dnnl_memory_destroy(r->a[i].memory);
    r->n = 0;
    if (r->a != r->local) free(r->a);
    r->a = r->local;
    r->cap = 16;
    dnnl_status_t st = r->st;
    r->st = dnnl_success;
    return st;
}

/* Run a reorder from (src_md, src) to (dst_md, dst). */
static dnnl_status_t run_reorder(bk_ctx *c, const bk_prim *pr, const dnnl_memory_desc_t *src_md,
                                 const void *src, const dnnl_memory_desc_t *dst_md, void *dst,
                                 void *scratchpad) {
    bk_run r;
    run_init(&r, c);
    run_arg(&r, DNNL_ARG_FROM, src_md, src);
    run_arg(&r, DNNL_ARG_TO, dst_md, dst);
    return run_exec(&r, pr, scratchpad);
}

/* ---- context, layouts, copies ------------------------------------------ */

fa_status bk_ctx_create(bk_ctx **out, fa_error *err) {
    *out = NULL;
    bk_ctx *c = calloc(1, sizeof *c);
    if (!c) return fa_error_set(err, FA_ERR_NOMEM, "oneDNN context: out of memory");
    dnnl_status_t st = dnnl_engine_create(&c->eng, dnnl_cpu, 0);
    if (st != dnnl_success) {
        free(c);
        return bk_fail(err, "oneDNN context", "engine creation", st);
    }
    st = dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        dnnl_engine_destroy(c->eng);
        free(c);
        return bk_fail(err, "oneDNN context", "stream creation", st);
    }
    *out = c;
    return FA_OK;
}

void bk_ctx_free(bk_ctx *c) {
    if (!c) return;
    dnnl_stream_destroy(c->stream);
    dnnl_engine_destroy(c->eng);
    free(c);
}

int bk_bf16_native(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
           (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

const char *bk_isa_name(void) { return dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()); }

fa_status bk_md_plain(bk_md **out, int n, int c, int h, int w, bk_dtype dt, fa_error *err) {
    *out = NULL;
    bk_md *m = calloc(1, sizeof *m);
    if (!m) return fa_error_set(err, FA_ERR_NOMEM, "layout: out of memory");
    dnnl_dims_t dims = {n, c, h, w};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&m->md, 4, dims, bk_dnnl_dt(dt), dnnl_nchw);
    if (st != dnnl_success) {
        free(m);
        return bk_fail(err, "layout", "memory descriptor", st);
    }
    *out = m;
    return FA_OK;
}

void bk_md_free(bk_md *m) { free(m); }

size_t bk_md_bytes(const bk_md *m) { return md_size(&m->md); }

int bk_md_equal(const bk_md *a, const bk_md *b) { return md_eq(&a->md, &b->md); }

void bk_md_describe(const bk_md *m, char *buf, size_t n) {
    const dnnl_memory_desc_t *md = &m->md;
    int len = snprintf(buf, n, "%s", dnnl_dt2str(md->data_type));
    if (md->format_kind != dnnl_blocked) {
        if (len >= 0 && (size_t)len < n)
            snprintf(buf + len, n - (size_t)len, " %s", dnnl_fmt_kind2str(md->format_kind));
        return;
    }
    /* Dimension order by decreasing stride, then the inner blocks: enough to
     * tell nchw, nhwc and nChw16c apart in logs. */
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int order[DNNL_MAX_NDIMS];
    for (int i = 0; i < md->ndims; i++) order[i] = i;
    for (int i = 0; i < md->ndims; i++)
        for (int j = i + 1; j < md->ndims; j++)
            if (b->strides[order[j]] > b->strides[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    const char *names = "abcdef";
    for (int i = 0; i < md->ndims && len >= 0 && (size_t)len + 1 < n; i++) {
        int blocked = 0;
        for (int k = 0; k < b->inner_nblks; k++)
            if (b->inner_idxs[k] == order[i]) blocked = 1;
        buf[len++] = (char)(blocked ? names[order[i]] - 32 : names[order[i]]);
        buf[len] = 0;
    }
    for (int k = 0; k < b->inner_nblks && len >= 0 && (size_t)len < n; k++)
        len += snprintf(buf + len, n - (size_t)len, "%d%c", (int)b->inner_blks[k],
                        names[b->inner_idxs[k]]);
    for (int i = 0; i < md->ndims && len >= 0 && (size_t)len < n; i++)
        len += snprintf(buf + len, n - (size_t)len, "%s%lld", i ? "x" : " ",
                        (long long)md->dims[i]);
}

fa_status bk_copy_create(bk_copy **out, bk_ctx *c, const bk_md *src, const bk_md *dst,
                         int accumulate, fa_error *err) {
    *out = NULL;
    bk_copy *k = calloc(1, sizeof *k);
    if (!k) return fa_error_set(err, FA_ERR_NOMEM, "reorder: out of memory");
    k->c = c;
    k->src = src->md;
    k->dst = dst->md;
    dnnl_status_t st = prim_reorder(&k->r, c, &k->src, &k->dst, accumulate);
    if (st != dnnl_success) {
        prim_free(&k->r);
        free(k);
        return bk_fail(err, "reorder", "primitive creation", st);
    }
    *out = k;
    return FA_OK;
}

void bk_copy_free(bk_copy *k) {
    if (!k) return;
    prim_free(&k->r);
    free(k);
}

size_t bk_copy_scratchpad(const bk_copy *k) { return k->r.scratch; }

fa_status bk_copy_run(bk_copy *k, const void *src, void *dst, void *scratchpad, fa_error *err) {
    dnnl_status_t st = run_reorder(k->c, &k->r, &k->src, src, &k->dst, dst, scratchpad);
    return st == dnnl_success ? FA_OK : bk_fail(err, "reorder", "execution", st);
}

/* ---- node helpers ------------------------------------------------------- */

static int node_buf(bk_node *n, size_t bytes, bk_life life) {
    if (n->nbuf == BK_MAX_BUF) {
        n->buf_overflow = 1; /* reported by bk_node_create */
        return 0;
    }
    n->buf_bytes[n->nbuf] = bytes;
    n->buf_life[n->nbuf] = life;
    return n->nbuf++;
}

/* SAVED when a backward will read it, else only during the forward. */
static bk_life node_keep(const bk_node *n) { return n->backward ? BK_LIFE_SAVED : BK_LIFE_FWD; }

static void node_scratch(bk_node *n, const bk_prim *pr) {
    if (pr->scratch > n->scratch) n->scratch = pr->scratch;
}

/* Prepare delivery of input `slot`'s gradient that a primitive produces in
 * layout `from`. with_buf: the producer needs a buffer unless it can write
 * straight into the destination. */
static dnnl_status_t deliver_setup(bk_node *n, bk_deliver *d, const dnnl_memory_desc_t *from,
                                   int slot, int active, int with_buf) {
    memset(d, 0, sizeof *d);
    d->buf = -1;
    d->from = *from;
    d->active = active;
    if (!active) {
        /* A primitive that always computes diff_src (BN backward) still
         * needs somewhere to write it. */
        if (with_buf) d->buf = node_buf(n, md_size(from), BK_LIFE_BWD);
        return dnnl_success;
    }
    if (with_buf && md_eq(from, &n->in_md[slot]) && !n->in_acc[slot]) {
        d->direct = 1;
        return dnnl_success;
    }
    if (with_buf) d->buf = node_buf(n, md_size(from), BK_LIFE_BWD);
    dnnl_status_t st = prim_reorder(&d->r, n->c, from, &n->in_md[slot], n->in_acc[slot]);
    if (st == dnnl_success) node_scratch(n, &d->r);
    return st;
}

static void *deliver_target(bk_deliver *d, const bk_io *io, int slot) {
    if (d->direct) return io->diff_in[slot];
    return d->buf >= 0 ? io->buf[d->buf] : NULL;
}

/* Move the gradient from `src` (layout d->from) into diff_in[slot]. */
static dnnl_status_t deliver_finish(bk_node *n, bk_deliver *d, const bk_io *io, int slot,
                                    const void *src) {
    if (!d->active || d->direct) return dnnl_success;
    return run_reorder(n->c, &d->r, &d->from, src, &n->in_md[slot], io->diff_in[slot],
                       io->scratchpad);
}

static void deliver_free(bk_deliver *d) { prim_free(&d->r); }

/* Right padding that makes oneDNN's output size formula give `out`:
 * out = (in - ek + pl + pr) / s + 1. PyTorch's floor mode may leave input
 * rows unused (negative exact value, clamped: still the same quotient);
 * ceil mode adds padding on the right. */
static int64_t pad_right(int64_t in, int64_t out, int64_t ek, int64_t s, int64_t pl) {
    int64_t pr = (out - 1) * s + ek - in - pl;
    return pr < 0 ? 0 : pr;
}

/* ---- convolution -------------------------------------------------------- */

static dnnl_status_t conv_create(bk_node *n, const bk_node_desc *d) {
    const graph_conv_opts *o = &d->conv;
    dnnl_status_t st = dnnl_success;
    dnnl_data_type_t dt = bk_dnnl_dt(d->dt);
    int g = o->groups;
    dnnl_dims_t src_dims = {n->batch, n->in_c, n->in_h, n->in_w};
    dnnl_dims_t dst_dims = {n->batch, n->out_c, n->out_h, n->out_w};
    dnnl_dims_t w_dims, b_dims = {n->out_c};
    int wnd;
    if (g == 1) {
        wnd = 4;
        w_dims[0] = n->out_c;
        w_dims[1] = n->in_c;
        w_dims[2] = o->kernel_h;
        w_dims[3] = o->kernel_w;
    } else {
        wnd = 5;
        w_dims[0] = g;
        w_dims[1] = n->out_c / g;
        w_dims[2] = n->in_c / g;
        w_dims[3] = o->kernel_h;
        w_dims[4] = o->kernel_w;
    }
    dnnl_dims_t strides = {o->stride_h, o->stride_w};
    dnnl_dims_t dil = {o->dilation_h - 1, o->dilation_w - 1};
    dnnl_dims_t pl = {o->pad_h, o->pad_w};
    int64_t ekh = (int64_t)o->dilation_h * (o->kernel_h - 1) + 1;
    int64_t ekw = (int64_t)o->dilation_w * (o->kernel_w - 1) + 1;
    dnnl_dims_t pr = {pad_right(n->in_h, n->out_h, ekh, o->stride_h, o->pad_h),
                      pad_right(n->in_w, n->out_w, ekw, o->stride_w, o->pad_w)};
    dnnl_memory_desc_t src_any, w_any, dst_any, dw_any;
    md_tag(&src_any, 4, src_dims, dt, dnnl_format_tag_any, &st);
    md_tag(&dst_any, 4, dst_dims, dt, dnnl_format_tag_any, &st);
    md_tag(&w_any, wnd, w_dims, dt, dnnl_format_tag_any, &st);
    md_tag(&dw_any, wnd, w_dims, dnnl_f32, dnnl_format_tag_any, &st);
    md_tag(&n->w_plain, wnd, w_dims, dnnl_f32, g == 1 ? dnnl_oihw : dnnl_goihw, &st);
    md_tag(&n->bias_md, 1, b_dims, dnnl_f32, dnnl_a, &st);
    if (st != dnnl_success) return st;
    int infer = !n->backward && !n->training;
    n->fold_bn = infer && d->fold_bn;
    n->fold_eps = d->fold_eps;
    n->post_sum = infer && d->sum_md;
    n->post_relu = infer && d->post_relu;
    int conv_bias = n->has_bias;
    dnnl_dims_t bn_dims = {1, n->out_c, 1, 1};
    md_tag(&n->bn_md, 4, bn_dims, dnnl_f32, dnnl_abcd, &st);
    if (st != dnnl_success) return st;
    dnnl_prop_kind_t prop = n->backward || n->training ? dnnl_forward_training : dnnl_forward_inference;

    /* Prefer the producer's layout as is (no reorder) unless oneDNN's own
     * choice of input layout gets a better kernel: e.g. after a grouped
     * convolution with 8 channels per group (AVX2, nChw8c) the following
     * 1x1 convolutions should go back to AVX-512 nChw16c, and a plain
     * layout should not lock a gemm kernel in for the rest of the network.
     * A folded BN is applied first as scale/shift post-ops, which keep the
     * weights exactly as the unfused convolution has them (in bf16 the
     * folded weights w * scale would be rounded once more); only where no
     * direct kernel takes those post-ops is it folded into the weights. */
    int best_rank = -1;
    for (int pass = 0; pass < (n->fold_bn ? 2 : 1); pass++) {
        int bn_post = n->fold_bn && pass == 0;
        int has_bias = bn_post ? 0 : conv_bias || n->fold_bn; /* bn_post: bias in the shift */
        const dnnl_memory_desc_t *bias = has_bias ? &n->bias_md : NULL;
        const dnnl_memory_desc_t *bnp = bn_post ? &n->bn_md : NULL;
        dnnl_convolution_desc_t cd;
        bk_prim given = {0}, chosen = {0};
        int rank_given = -1, rank_any = -1;
        if (n->in_md[0].data_type == dt &&
            dnnl_dilated_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct,
                                                       &n->in_md[0], &w_any, bias, &dst_any,
                                                       strides, dil, pl, pr) == dnnl_success &&
            prim_conv(&given, n->c, &cd, bnp, n->post_sum, n->post_relu) == dnnl_success)
            rank_given = impl_rank(prim_impl(&given));
        st = dnnl_dilated_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct,
                                                        &src_any, &w_any, bias, &dst_any, strides,
                                                        dil, pl, pr);
        if (st == dnnl_success) st = prim_conv(&chosen, n->c, &cd, bnp, n->post_sum, n->post_relu);
        if (st == dnnl_success) rank_any = impl_rank(prim_impl(&chosen));
        int rank = rank_given > rank_any ? rank_given : rank_any;
        if (rank > best_rank) {
            prim_free(&n->fwd);
            if (rank_given >= rank_any) {
                n->fwd = given;
                prim_free(&chosen);
            } else {
                n->fwd = chosen;
                prim_free(&given);
            }
            best_rank = rank;
            n->bn_post = bn_post;
            n->has_bias = has_bias;
        } else {
            prim_free(&given);
            prim_free(&chosen);
        }
        if (best_rank > 0) break; /* a direct kernel: good enough */
    }
    if (best_rank < 0) return st != dnnl_success ? st : dnnl_unimplemented;
    const dnnl_memory_desc_t *bias = n->has_bias ? &n->bias_md : NULL;
    n->w_fold = n->fold_bn && !n->bn_post;
    if (n->bn_post) {
        n->bn_ss = fa_malloc_array(2 * (size_t)n->out_c, sizeof(float));
        if (!n->bn_ss) return dnnl_out_of_memory;
    }
    node_scratch(n, &n->fwd);
    n->src_md = *prim_md(&n->fwd, dnnl_query_src_md, 0);
    n->w_fwd = *prim_md(&n->fwd, dnnl_query_weights_md, 0);
    n->out.md = *prim_md(&n->fwd, dnnl_query_dst_md, 0);
    n->src_reorder = !md_eq(&n->src_md, &n->in_md[0]);
    if (n->src_reorder) {
        st = prim_reorder(&n->src_r, n->c, &n->in_md[0], &n->src_md, 0);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->src_r);
        n->b_src = node_buf(n, md_size(&n->src_md), node_keep(n));
    }
    n->w_direct = md_eq(&n->w_fwd, &n->w_plain);
    if (!n->w_direct) {
        st = prim_reorder(&n->w_r, n->c, &n->w_plain, &n->w_fwd, 0);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->w_r);
    }
    n->w_bytes = (md_size(&n->w_fwd) + 63) / 64 * 64;
    if (n->w_fold) {
        /* Folded weights and bias in one buffer, so that the executor's
         * weight cache keeps both. */
        n->b_w = node_buf(n, n->w_bytes + (size_t)n->out_c * sizeof(float), node_keep(n));
        if (!n->w_direct) n->b_fold = node_buf(n, md_size(&n->w_plain), BK_LIFE_FWD);
    } else if (!n->w_direct) {
        n->b_w = node_buf(n, md_size(&n->w_fwd), node_keep(n));
    }
    if (n->post_sum) {
        n->sum_md = d->sum_md->md;
        st = prim_reorder(&n->sum_r, n->c, &n->sum_md, &n->out.md, 0);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->sum_r);
    }
    n->bwd_in0 = !n->src_reorder;
    if (!n->backward) return dnnl_success;

    int want = n->d0.active; /* set by the caller from in_grad */
    memset(&n->d0, 0, sizeof n->d0);
    n->d0.buf = -1;
    if (want) {
        dnnl_convolution_desc_t bd;
        st = dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct,
                                                              &n->src_md, &w_any, &n->out.md,
                                                              strides, dil, pl, pr);
        if (st == dnnl_success) st = prim_op(&n->bwd_data, n->c, &bd, 0, n->fwd.pd);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->bwd_data);
        n->w_bwd = *prim_md(&n->bwd_data, dnnl_query_weights_md, 0);
        n->wb_same = md_eq(&n->w_bwd, &n->w_fwd);
        if (!n->wb_same) {
            /* From the forward copy (already converted, half the bytes in
             * bf16) when there is one. */
            st = prim_reorder(&n->wb_r, n->c, n->w_direct ? &n->w_plain : &n->w_fwd, &n->w_bwd, 0);
            if (st != dnnl_success) return st;
            node_scratch(n, &n->wb_r);
            n->b_wb = node_buf(n, md_size(&n->w_bwd), BK_LIFE_BWD);
        }
        st = deliver_setup(n, &n->d0, prim_md(&n->bwd_data, dnnl_query_diff_src_md, 0), 0, 1, 1);
        if (st != dnnl_success) return st;
    }
    dnnl_convolution_desc_t wd;
    st = dnnl_dilated_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct,
                                                             &n->src_md, &dw_any, bias, &n->out.md,
                                                             strides, dil, pl, pr);
    if (st == dnnl_success) st = prim_op(&n->bwd_w, n->c, &wd, 0, n->fwd.pd);
    if (st != dnnl_success) return st;
    /* oneDNN 2.6 has no direct bf16 backward-weights kernel for some
     * grouped convolutions (ResNeXt-101 32x8d's with 8 channels per group:
     * the reference kernel, ~100x slower, in any bf16 layout). Let oneDNN
     * choose src and diff_dst layouts for this primitive, in bf16 or else in
     * fp32, and reorder (convert) both. */
    for (int k = 0; k < 2 && impl_rank(prim_impl(&n->bwd_w)) == 0; k++) {
        dnnl_memory_desc_t s_any, d_any;
        bk_prim alt = {0};
        dnnl_data_type_t adt = k == 0 ? dt : dnnl_f32;
        md_tag(&s_any, 4, src_dims, adt, dnnl_format_tag_any, &st);
        md_tag(&d_any, 4, dst_dims, adt, dnnl_format_tag_any, &st);
        if (st == dnnl_success &&
            dnnl_dilated_convolution_backward_weights_desc_init(
                &wd, dnnl_convolution_direct, &s_any, &dw_any, bias, &d_any, strides, dil, pl,
                pr) == dnnl_success &&
            prim_op(&alt, n->c, &wd, 0, n->fwd.pd) == dnnl_success &&
            impl_rank(prim_impl(&alt)) > 0) {
            prim_free(&n->bwd_w);
            n->bwd_w = alt;
            n->bw_src = *prim_md(&alt, dnnl_query_src_md, 0);
            n->bw_ddst = *prim_md(&alt, dnnl_query_diff_dst_md, 0);
            if (!md_eq(&n->bw_src, &n->src_md)) {
                st = prim_reorder(&n->bw_src_r, n->c, &n->src_md, &n->bw_src, 0);
                if (st != dnnl_success) return st;
                node_scratch(n, &n->bw_src_r);
                n->b_bw_src = node_buf(n, md_size(&n->bw_src), BK_LIFE_BWD);
            }
            if (!md_eq(&n->bw_ddst, &n->out.md)) {
                st = prim_reorder(&n->bw_ddst_r, n->c, &n->out.md, &n->bw_ddst, 0);
                if (st != dnnl_success) return st;
                node_scratch(n, &n->bw_ddst_r);
                n->b_bw_ddst = node_buf(n, md_size(&n->bw_ddst), BK_LIFE_BWD);
            }
        } else {
            prim_free(&alt);
            st = dnnl_success;
        }
    }
    node_scratch(n, &n->bwd_w);
    n->dw_md = *prim_md(&n->bwd_w, dnnl_query_diff_weights_md, 0);
    n->dw_tiles = dw_tiles_ok(&n->dw_md, &n->w_plain);
    if (!n->dw_tiles) {
        st = prim_reorder(&n->dw_r, n->c, &n->dw_md, &n->w_plain, 1);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->dw_r);
    }
    n->b_dw = node_buf(n, md_size(&n->dw_md), BK_LIFE_BWD);
    if (n->has_bias) n->b_db = node_buf(n, (size_t)n->out_c * sizeof(float), BK_LIFE_BWD);
    return dnnl_success;
}

/* Reorder the fp32 master weights into the forward layout; returns the
 * pointer the primitive should read. */
static const void *weights_fwd(bk_node *n, const bk_io *io, dnnl_status_t *st) {
    if (n->w_direct) return io->weight;
    if (io->weights_cached) return io->buf[n->b_w];
    *st = run_reorder(n->c, &n->w_r, &n->w_plain, io->weight, &n->w_fwd, io->buf[n->b_w],
                      io->scratchpad);
    return io->buf[n->b_w];
}

/* Fold the batch norm into the convolution: w' = w * s, b' = (b - mean) * s
 * + beta with s = gamma / sqrt(var + eps), computed in double so that the
 * only new rounding is that of w' and b' to fp32. Returns the weights for the
 * primitive; *bias receives the folded bias. */
static const void *weights_fold(bk_node *n, const bk_io *io, const float **bias,
                                dnnl_status_t *st) {
    char *wbuf = io->buf[n->b_w];
    float *fb = (float *)(void *)(wbuf + n->w_bytes);
    *bias = fb;
    if (io->weights_cached) return wbuf;
    if (!io->bn_weight || !io->bn_bias || !io->bn_mean || !io->bn_var) {
        *st = dnnl_invalid_arguments;
        return wbuf;
    }
    float *fw = n->w_direct ? (float *)(void *)wbuf : (float *)io->buf[n->b_fold];
    size_t per = md_size(&n->w_plain) / sizeof(float) / (size_t)n->out_c;
    const float *cw = io->weight, *cb = io->bias;
    const float *g = io->bn_weight, *be = io->bn_bias, *mu = io->bn_mean, *var = io->bn_var;
    double eps = n->fold_eps;
    /* Paid at every forward without the weight cache: spread it over the
     * threads oneDNN uses. */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < n->out_c; o++) {
        double s = (double)g[o] / sqrt((double)var[o] + eps);
        const float *w = cw + (size_t)o * per;
        float *y = fw + (size_t)o * per;
        for (size_t k = 0; k < per; k++) y[k] = (float)((double)w[k] * s);
        double b = cb ? (double)cb[o] : 0.0;
        fb[o] = (float)((b - (double)mu[o]) * s + (double)be[o]);
    }
    if (!n->w_direct)
        *st = run_reorder(n->c, &n->w_r, &n->w_plain, fw, &n->w_fwd, wbuf, io->scratchpad);
    return wbuf;
}

static dnnl_status_t conv_forward(bk_node *n, const bk_io *io) {
    dnnl_status_t st = dnnl_success;
    const void *src = io->in[0];
    if (n->src_reorder) {
        st = run_reorder(n->c, &n->src_r, &n->in_md[0], io->in[0], &n->src_md, io->buf[n->b_src],
                         io->scratchpad);
        src = io->buf[n->b_src];
    }
    if (st != dnnl_success) return st;
    const float *bias = io->bias;
    const void *w = n->w_fold ? weights_fold(n, io, &bias, &st) : weights_fwd(n, io, &st);
    if (st != dnnl_success) return st;
    if (n->bn_post) {
        /* y = acc * s + ((b - mean) * s + beta), s = gamma / sqrt(var + eps):
         * the BN of the unfused path, in double for the C coefficients. */
        if (!io->bn_weight || !io->bn_bias || !io->bn_mean || !io->bn_var)
            return dnnl_invalid_arguments;
        for (int c = 0; c < n->out_c; c++) {
            double sc = (double)io->bn_weight[c] / sqrt((double)io->bn_var[c] + (double)n->fold_eps);
            double b = io->bias ? (double)io->bias[c] : 0.0;
            n->bn_ss[c] = (float)sc;
            n->bn_ss[n->out_c + c] = (float)((b - (double)io->bn_mean[c]) * sc + (double)io->bn_bias[c]);
        }
    }
    /* The sum post-op adds the convolution's result to what dst holds. */
    if (n->post_sum) {
        if (!io->sum_src) return dnnl_invalid_arguments;
        st = run_reorder(n->c, &n->sum_r, &n->sum_md, io->sum_src, &n->out.md, io->out,
                         io->scratchpad);
        if (st != dnnl_success) return st;
    }
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC, &n->src_md, src);
    run_arg(&r, DNNL_ARG_WEIGHTS, &n->w_fwd, w);
    if (n->has_bias) run_arg(&r, DNNL_ARG_BIAS, &n->bias_md, bias);
    if (n->bn_post) {
        run_arg(&r, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, &n->bn_md, n->bn_ss);
        run_arg(&r, DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, &n->bn_md,
                n->bn_ss + n->out_c);
    }
    run_arg(&r, DNNL_ARG_DST, &n->out.md, io->out);
    return run_exec(&r, &n->fwd, io->scratchpad);
}

/* Shared by convolution and linear: dW (+ db) into the fp32 grads. */
static dnnl_status_t weights_grad(bk_node *n, const bk_io *io, const void *src,
                                  const dnnl_memory_desc_t *src_md, const void *ddst,
                                  const dnnl_memory_desc_t *ddst_md) {
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC, src_md, src);
    run_arg(&r, DNNL_ARG_DIFF_DST, ddst_md, ddst);
    run_arg(&r, DNNL_ARG_DIFF_WEIGHTS, &n->dw_md, io->buf[n->b_dw]);
    if (n->has_bias) run_arg(&r, DNNL_ARG_DIFF_BIAS, &n->bias_md, io->buf[n->b_db]);
    dnnl_status_t st = run_exec(&r, &n->bwd_w, io->scratchpad);
    if (st != dnnl_success) return st;
    if (n->dw_tiles)
        dw_tiles_add(&n->dw_md, io->buf[n->b_dw], io->weight_grad);
    else
        st = run_reorder(n->c, &n->dw_r, &n->dw_md, io->buf[n->b_dw], &n->w_plain, io->weight_grad,
                         io->scratchpad);
    if (st != dnnl_success) return st;
    if (n->has_bias) {
        const float *db = io->buf[n->b_db];
        for (int i = 0; i < n->out_c; i++) io->bias_grad[i] += db[i];
    }
    return dnnl_success;
}

/* Weights for backward data: the forward copy when the layouts agree. */
static const void *weights_bwd(bk_node *n, const bk_io *io, dnnl_status_t *st) {
    if (n->wb_same) return n->w_direct ? (const void *)io->weight : io->buf[n->b_w];
    if (n->w_direct)
        *st = run_reorder(n->c, &n->wb_r, &n->w_plain, io->weight, &n->w_bwd, io->buf[n->b_wb],
                          io->scratchpad);
    else
        *st = run_reorder(n->c, &n->wb_r, &n->w_fwd, io->buf[n->b_w], &n->w_bwd, io->buf[n->b_wb],
                          io->scratchpad);
    return io->buf[n->b_wb];
}

static dnnl_status_t conv_backward(bk_node *n, const bk_io *io) {
    dnnl_status_t st = dnnl_success;
    const void *src = n->src_reorder ? io->buf[n->b_src] : io->in[0];
    if (n->d0.active) {
        const void *w = weights_bwd(n, io, &st);
        if (st != dnnl_success) return st;
        void *dsrc = deliver_target(&n->d0, io, 0);
        bk_run r;
        run_init(&r, n->c);
        run_arg(&r, DNNL_ARG_DIFF_DST, &n->out.md, io->diff_out);
        run_arg(&r, DNNL_ARG_WEIGHTS, &n->w_bwd, w);
        run_arg(&r, DNNL_ARG_DIFF_SRC, &n->d0.from, dsrc);
        st = run_exec(&r, &n->bwd_data, io->scratchpad);
        if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
        if (st != dnnl_success) return st;
    }
    const void *ddst = io->diff_out;
    const dnnl_memory_desc_t *smd = &n->src_md, *dmd = &n->out.md;
    if (n->bw_src_r.p) {
        st = run_reorder(n->c, &n->bw_src_r, &n->src_md, src, &n->bw_src, io->buf[n->b_bw_src],
                         io->scratchpad);
        if (st != dnnl_success) return st;
        src = io->buf[n->b_bw_src];
        smd = &n->bw_src;
    }
    if (n->bw_ddst_r.p) {
        st = run_reorder(n->c, &n->bw_ddst_r, &n->out.md, io->diff_out, &n->bw_ddst,
                         io->buf[n->b_bw_ddst], io->scratchpad);
        if (st != dnnl_success) return st;
        ddst = io->buf[n->b_bw_ddst];
        dmd = &n->bw_ddst;
    }
    return weights_grad(n, io, src, smd, ddst, dmd);
}

/* ---- batch norm --------------------------------------------------------- */

static dnnl_status_t bn_sync_create(bk_node *n);

static dnnl_status_t bn_create(bk_node *n, const bk_node_desc *d) {
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    if (!n->training) flags |= dnnl_use_global_stats;
    if (d->fuse_relu) flags |= dnnl_fuse_norm_relu;
    dnnl_prop_kind_t prop = n->backward || n->training ? dnnl_forward_training : dnnl_forward_inference;
    dnnl_batch_normalization_desc_t bd;
    dnnl_status_t st = dnnl_batch_normalization_forward_desc_init(&bd, prop, &n->in_md[0], d->eps, flags);
    if (st == dnnl_success) st = prim_op(&n->fwd, n->c, &bd, 0, NULL);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd);
    n->out.md = *prim_md(&n->fwd, dnnl_query_dst_md, 0);
    if (n->training) n->b_stats = node_buf(n, 2 * (size_t)n->out_c * sizeof(float), node_keep(n));
    /* Training with a fused ReLU: forward records where the ReLU cut (a
     * bit mask), backward reads it instead of the pre-ReLU values. */
    n->b_bnws = -1;
    const dnnl_memory_desc_t *ws = prim_md(&n->fwd, dnnl_query_workspace_md, 0);
    if (ws && md_size(ws) > 0) {
        n->bnws_md = *ws;
        n->b_bnws = node_buf(n, md_size(ws), node_keep(n));
    }
    n->bwd_in0 = 1;
    if (!n->backward) return dnnl_success;
    int want = n->d0.active;
    dnnl_batch_normalization_desc_t bbd;
    st = dnnl_batch_normalization_backward_desc_init(&bbd, dnnl_backward, &n->out.md, &n->in_md[0],
                                                     d->eps, flags);
    if (st == dnnl_success) st = prim_op(&n->bwd_data, n->c, &bbd, 0, n->fwd.pd);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->bwd_data);
    n->b_dss = node_buf(n, 2 * (size_t)n->out_c * sizeof(float), BK_LIFE_BWD);
    st = deliver_setup(n, &n->d0, prim_md(&n->bwd_data, dnnl_query_diff_src_md, 0), 0, want, 1);
    if (st == dnnl_success && d->bn_sync && n->training) st = bn_sync_create(n);
    return st;
}

/* Run a batch-norm primitive (pr: n->fwd, or n->fwd_g for synchronised BN)
 * on x (io->in[0]) with the given statistics, scale and shift; with the
 * fused ReLU's workspace where the node has one. */
static dnnl_status_t bn_run(bk_node *n, const bk_io *io, const bk_prim *pr, const float *mean, const float *var,
                            const float *scale, const float *shift, void *dst) {
    dnnl_memory_desc_t cmd;
    dnnl_dims_t cd = {n->out_c};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&cmd, 1, cd, dnnl_f32, dnnl_a);
    if (st != dnnl_success) return st;
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC, &n->in_md[0], io->in[0]);
    run_arg(&r, DNNL_ARG_DST, &n->out.md, dst);
    run_arg(&r, DNNL_ARG_SCALE, &cmd, scale);
    run_arg(&r, DNNL_ARG_SHIFT, &cmd, shift);
    run_arg(&r, DNNL_ARG_MEAN, &cmd, mean);
    run_arg(&r, DNNL_ARG_VARIANCE, &cmd, var);
    if (n->b_bnws >= 0) run_arg(&r, DNNL_ARG_WORKSPACE, &n->bnws_md, io->buf[n->b_bnws]);
    return run_exec(&r, pr, io->scratchpad);
}

static dnnl_status_t bn_forward(bk_node *n, const bk_io *io) {
    size_t C = (size_t)n->out_c;
    float *mean = n->training ? (float *)io->buf[n->b_stats] : io->running_mean;
    float *var = n->training ? (float *)io->buf[n->b_stats] + C : io->running_var;
    dnnl_status_t st = bn_run(n, io, &n->fwd, mean, var, io->weight, io->bias, io->out);
    if (st != dnnl_success || !n->training) return st;
    /* PyTorch: normalise with the biased batch variance (done by oneDNN),
     * track the unbiased one; the update is computed in double as ATen's
     * CPU kernel does. */
    double cnt = (double)n->batch * n->out_h * n->out_w;
    double unbias = cnt > 1 ? cnt / (cnt - 1) : 1.0;
    double m = n->momentum;
    for (size_t c = 0; c < C; c++) {
        io->running_mean[c] = (float)(m * mean[c] + (1.0 - m) * io->running_mean[c]);
        io->running_var[c] = (float)(m * (double)var[c] * unbias + (1.0 - m) * io->running_var[c]);
    }
    if (io->num_batches_tracked) (*io->num_batches_tracked)++;
    return dnnl_success;
}

static dnnl_status_t bn_backward(bk_node *n, const bk_io *io) {
    size_t C = (size_t)n->out_c;
    const float *mean = n->training ? (const float *)io->buf[n->b_stats] : io->running_mean;
    const float *var = n->training ? (const float *)io->buf[n->b_stats] + C : io->running_var;
    float *dss = io->buf[n->b_dss];
    dnnl_memory_desc_t cmd;
    dnnl_dims_t cd = {n->out_c};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&cmd, 1, cd, dnnl_f32, dnnl_a);
    if (st != dnnl_success) return st;
    void *dsrc = deliver_target(&n->d0, io, 0);
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC, &n->in_md[0], io->in[0]);
    run_arg(&r, DNNL_ARG_MEAN, &cmd, mean);
    run_arg(&r, DNNL_ARG_VARIANCE, &cmd, var);
    run_arg(&r, DNNL_ARG_DIFF_DST, &n->out.md, io->diff_out);
    run_arg(&r, DNNL_ARG_SCALE, &cmd, io->weight);
    run_arg(&r, DNNL_ARG_SHIFT, &cmd, io->bias); /* oneDNN 2.6 requires it, unused */
    run_arg(&r, DNNL_ARG_DIFF_SRC, &n->d0.from, dsrc);
    run_arg(&r, DNNL_ARG_DIFF_SCALE, &cmd, dss);
    run_arg(&r, DNNL_ARG_DIFF_SHIFT, &cmd, dss + C);
    if (n->b_bnws >= 0) run_arg(&r, DNNL_ARG_WORKSPACE, &n->bnws_md, io->buf[n->b_bnws]);
    st = run_exec(&r, &n->bwd_data, io->scratchpad);
    if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
    if (st != dnnl_success) return st;
    for (size_t c = 0; c < C; c++) {
        io->weight_grad[c] += dss[c];
        io->bias_grad[c] += dss[C + c];
    }
    return dnnl_success;
}

/* ---- synchronised batch norm ------------------------------------------- */

/* The statistics of the union of all processes' batches exist only after
 * the local ones are reduced (bk_bn_sync), so the forward runs the
 * batch-statistics primitive for the local mean/variance, then a second,
 * global-statistics primitive with the reduced ones (the first output is
 * overwritten; one extra BN pass, cheap next to the convolutions).
 * Backward: oneDNN's global-statistics backward gives gamma*inv*dy and the
 * local sums Q = sum(dy*xhat), S = sum(dy); the rest of the exact gradient
 *   dx = gamma*inv*(dy - S_g/N - xhat*Q_g/N)      (S_g, Q_g, N global)
 * is the per-channel affine map -gamma*inv*(S_g/N + xhat*Q_g/N) of x, which
 * is the global-statistics forward with scale -gamma*inv*Q_g/N and shift
 * -gamma*inv*S_g/N; a summing reorder adds it to dx. Layouts never leave
 * oneDNN's (blocked, bf16) formats. */
static dnnl_status_t bn_sync_create(bk_node *n) {
    unsigned flags = dnnl_use_scale | dnnl_use_shift | dnnl_use_global_stats;
    dnnl_batch_normalization_desc_t bd, bbd;
    dnnl_status_t st =
        dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, &n->in_md[0], n->eps, flags);
    if (st == dnnl_success) st = prim_op(&n->fwd_g, n->c, &bd, 0, NULL);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd_g);
    if (!md_eq(prim_md(&n->fwd_g, dnnl_query_dst_md, 0), &n->out.md)) return dnnl_unimplemented;
    st = dnnl_batch_normalization_backward_desc_init(&bbd, dnnl_backward, &n->out.md, &n->in_md[0], n->eps,
                                                     flags);
    if (st == dnnl_success) st = prim_op(&n->bwd_g, n->c, &bbd, 0, n->fwd_g.pd);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->bwd_g);
    if (!md_eq(prim_md(&n->bwd_g, dnnl_query_diff_src_md, 0), &n->d0.from)) return dnnl_unimplemented;
    n->sync_buf = calloc(4 * (size_t)n->out_c, sizeof(float));
    if (!n->sync_buf) return dnnl_out_of_memory;
    if (n->d0.active) {
        n->b_corr = node_buf(n, md_size(&n->out.md), BK_LIFE_BWD);
        st = prim_reorder(&n->corr_r, n->c, &n->out.md, &n->d0.from, 1);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->corr_r);
    }
    n->sync = 1;
    return dnnl_success;
}

static fa_status bn_sync_forward(bk_node *n, const bk_io *io, fa_error *err) {
    size_t C = (size_t)n->out_c;
    float *mean = io->buf[n->b_stats], *var = mean + C;
    dnnl_status_t st = bn_run(n, io, &n->fwd, mean, var, io->weight, io->bias, io->out);
    if (st != dnnl_success) return bk_fail(err, n->label, "forward (local statistics)", st);
    double count = (double)n->batch * n->out_h * n->out_w;
    fa_status fs = io->bn_sync->stats(io->bn_sync->ctx, n->out_c, &count, mean, var, err);
    if (fs != FA_OK) return fa_error_prefix(err, "%s: synchronised batch norm", n->label);
    if (!(count > 1))
        return fa_error_set(err, FA_ERR_INTERNAL, "%s: synchronised batch norm over %.0f values", n->label, count);
    st = bn_run(n, io, &n->fwd_g, mean, var, io->weight, io->bias, io->out);
    if (st != dnnl_success) return bk_fail(err, n->label, "forward (global statistics)", st);
    n->sync_count = count;
    /* as bn_forward, with the global count (torch.nn.SyncBatchNorm) */
    double unbias = count / (count - 1), m = n->momentum;
    for (size_t c = 0; c < C; c++) {
        io->running_mean[c] = (float)(m * mean[c] + (1.0 - m) * io->running_mean[c]);
        io->running_var[c] = (float)(m * (double)var[c] * unbias + (1.0 - m) * io->running_var[c]);
    }
    if (io->num_batches_tracked) (*io->num_batches_tracked)++;
    return FA_OK;
}

static fa_status bn_sync_backward(bk_node *n, const bk_io *io, fa_error *err) {
    size_t C = (size_t)n->out_c;
    const float *mean = io->buf[n->b_stats], *var = mean + C;
    float *dss = io->buf[n->b_dss];
    dnnl_memory_desc_t cmd;
    dnnl_dims_t cd = {n->out_c};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&cmd, 1, cd, dnnl_f32, dnnl_a);
    void *dsrc = deliver_target(&n->d0, io, 0);
    if (st == dnnl_success) {
        bk_run r;
        run_init(&r, n->c);
        run_arg(&r, DNNL_ARG_SRC, &n->in_md[0], io->in[0]);
        run_arg(&r, DNNL_ARG_MEAN, &cmd, mean);
        run_arg(&r, DNNL_ARG_VARIANCE, &cmd, var);
        run_arg(&r, DNNL_ARG_DIFF_DST, &n->out.md, io->diff_out);
        run_arg(&r, DNNL_ARG_SCALE, &cmd, io->weight);
        run_arg(&r, DNNL_ARG_SHIFT, &cmd, io->bias);
        run_arg(&r, DNNL_ARG_DIFF_SRC, &n->d0.from, dsrc);
        run_arg(&r, DNNL_ARG_DIFF_SCALE, &cmd, dss);
        run_arg(&r, DNNL_ARG_DIFF_SHIFT, &cmd, dss + C);
        st = run_exec(&r, &n->bwd_g, io->scratchpad);
    }
    if (st != dnnl_success) return bk_fail(err, n->label, "backward (global statistics)", st);
    /* Local sums: the gradient all-reduce adds the other processes' ones. */
    for (size_t c = 0; c < C; c++) {
        io->weight_grad[c] += dss[c];
        io->bias_grad[c] += dss[C + c];
    }
    float *sums = n->sync_buf, *scale = sums + 2 * C, *shift = scale + C;
    memcpy(sums, dss, 2 * C * sizeof(float));
    fa_status fs = io->bn_sync->grad_sums(io->bn_sync->ctx, n->out_c, sums, err);
    if (fs != FA_OK) return fa_error_prefix(err, "%s: synchronised batch norm", n->label);
    if (!n->d0.active) return FA_OK;
    for (size_t c = 0; c < C; c++) {
        double g = (double)io->weight[c] / sqrt((double)var[c] + n->eps);
        scale[c] = (float)(-g * sums[c] / n->sync_count);
        shift[c] = (float)(-g * sums[C + c] / n->sync_count);
    }
    void *corr = io->buf[n->b_corr];
    st = bn_run(n, io, &n->fwd_g, mean, var, scale, shift, corr);
    if (st == dnnl_success) st = run_reorder(n->c, &n->corr_r, &n->out.md, corr, &n->d0.from, dsrc, io->scratchpad);
    if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
    return st == dnnl_success ? FA_OK : bk_fail(err, n->label, "backward (gradient correction)", st);
}

/* ---- ReLU --------------------------------------------------------------- */

static dnnl_status_t relu_create(bk_node *n) {
    int train = n->backward || n->training;
    /* Backward from the output lets the input die after the forward. */
    dnnl_alg_kind_t alg = train ? dnnl_eltwise_relu_use_dst_for_bwd : dnnl_eltwise_relu;
    dnnl_eltwise_desc_t ed;
    dnnl_status_t st = dnnl_eltwise_forward_desc_init(
        &ed, train ? dnnl_forward_training : dnnl_forward_inference, alg, &n->in_md[0], 0.f, 0.f);
    if (st == dnnl_success) st = prim_op(&n->fwd, n->c, &ed, 0, NULL);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd);
    n->out.md = *prim_md(&n->fwd, dnnl_query_dst_md, 0);
    if (!n->backward) return dnnl_success;
    n->bwd_out = 1;
    int want = n->d0.active;
    if (!want) return dnnl_success;
    dnnl_eltwise_desc_t bd;
    st = dnnl_eltwise_backward_desc_init(&bd, alg, &n->out.md, &n->out.md, 0.f, 0.f);
    if (st == dnnl_success) st = prim_op(&n->bwd_data, n->c, &bd, 0, n->fwd.pd);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->bwd_data);
    return deliver_setup(n, &n->d0, prim_md(&n->bwd_data, dnnl_query_diff_src_md, 0), 0, 1, 1);
}

static dnnl_status_t relu_forward(bk_node *n, const bk_io *io) {
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC, &n->in_md[0], io->in[0]);
    run_arg(&r, DNNL_ARG_DST, &n->out.md, io->out);
    return run_exec(&r, &n->fwd, io->scratchpad);
}

static dnnl_status_t relu_backward(bk_node *n, const bk_io *io) {
    if (!n->d0.active) return dnnl_success;
    void *dsrc = deliver_target(&n->d0, io, 0);
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_DST, &n->out.md, io->out);
    run_arg(&r, DNNL_ARG_DIFF_DST, &n->out.md, io->diff_out);
    run_arg(&r, DNNL_ARG_DIFF_SRC, &n->d0.from, dsrc);
    dnnl_status_t st = run_exec(&r, &n->bwd_data, io->scratchpad);
    if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
    return st;
}

/* ---- pooling ------------------------------------------------------------ */

static dnnl_status_t pool_create(bk_node *n, const bk_node_desc *d) {
    dnnl_alg_kind_t alg;
    dnnl_dims_t kernel, strides, pl, pr, dil = {0, 0};
    if (d->op == GRAPH_OP_GLOBAL_AVG_POOL) {
        alg = dnnl_pooling_avg_exclude_padding;
        kernel[0] = n->in_h;
        kernel[1] = n->in_w;
        strides[0] = strides[1] = 1;
        pl[0] = pl[1] = pr[0] = pr[1] = 0;
    } else {
        const graph_pool_opts *o = &d->pool;
        if (d->op == GRAPH_OP_MAX_POOL)
            alg = dnnl_pooling_max;
        else
            alg = o->count_include_pad ? dnnl_pooling_avg_include_padding
                                       : dnnl_pooling_avg_exclude_padding;
        kernel[0] = o->kernel_h;
        kernel[1] = o->kernel_w;
        strides[0] = o->stride_h;
        strides[1] = o->stride_w;
        pl[0] = o->pad_h;
        pl[1] = o->pad_w;
        pr[0] = pad_right(n->in_h, n->out_h, o->kernel_h, o->stride_h, o->pad_h);
        pr[1] = pad_right(n->in_w, n->out_w, o->kernel_w, o->stride_w, o->pad_w);
    }
    dnnl_status_t st = dnnl_success;
    dnnl_dims_t dst_dims = {n->batch, n->out_c, n->out_h, n->out_w};
    dnnl_memory_desc_t dst_any;
    md_tag(&dst_any, 4, dst_dims, n->in_md[0].data_type, dnnl_format_tag_any, &st);
    if (st != dnnl_success) return st;
    dnnl_prop_kind_t prop = n->backward || n->training ? dnnl_forward_training : dnnl_forward_inference;
    dnnl_pooling_v2_desc_t pd;
    st = dnnl_pooling_v2_forward_desc_init(&pd, prop, alg, &n->in_md[0], &dst_any, strides, kernel,
                                           dil, pl, pr);
    if (st == dnnl_success) st = prim_op(&n->fwd, n->c, &pd, 0, NULL);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd);
    n->out.md = *prim_md(&n->fwd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *ws = prim_md(&n->fwd, dnnl_query_workspace_md, 0);
    n->b_ws = -1;
    if (ws && md_size(ws) > 0) {
        n->ws_md = *ws;
        n->b_ws = node_buf(n, md_size(ws), node_keep(n));
    }
    if (!n->backward || !n->d0.active) {
        n->d0.active = 0;
        return dnnl_success;
    }
    dnnl_pooling_v2_desc_t bd;
    st = dnnl_pooling_v2_backward_desc_init(&bd, alg, &n->in_md[0], &n->out.md, strides, kernel,
                                            dil, pl, pr);
    if (st == dnnl_success) st = prim_op(&n->bwd_data, n->c, &bd, 0, n->fwd.pd);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->bwd_data);
    return deliver_setup(n, &n->d0, prim_md(&n->bwd_data, dnnl_query_diff_src_md, 0), 0, 1, 1);
}

static dnnl_status_t pool_forward(bk_node *n, const bk_io *io) {
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC, &n->in_md[0], io->in[0]);
    run_arg(&r, DNNL_ARG_DST, &n->out.md, io->out);
    if (n->b_ws >= 0) run_arg(&r, DNNL_ARG_WORKSPACE, &n->ws_md, io->buf[n->b_ws]);
    return run_exec(&r, &n->fwd, io->scratchpad);
}

static dnnl_status_t pool_backward(bk_node *n, const bk_io *io) {
    if (!n->d0.active) return dnnl_success;
    void *dsrc = deliver_target(&n->d0, io, 0);
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_DIFF_DST, &n->out.md, io->diff_out);
    if (n->b_ws >= 0) run_arg(&r, DNNL_ARG_WORKSPACE, &n->ws_md, io->buf[n->b_ws]);
    run_arg(&r, DNNL_ARG_DIFF_SRC, &n->d0.from, dsrc);
    dnnl_status_t st = run_exec(&r, &n->bwd_data, io->scratchpad);
    if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
    return st;
}

/* ---- concat and add ----------------------------------------------------- */

/* Per-input gradient deliveries that read a part (concat) or all (add) of
 * diff_out. Concat reads a channel slice; oneDNN can only describe a slice of
 * a blocked layout when it is aligned to the block, otherwise diff_out is
 * first reordered to plain NCHW (once per backward). */
static dnnl_status_t multi_deliver_setup(bk_node *n, const int *in_grad) {
    n->dv = calloc((size_t)n->n_in, sizeof *n->dv);
    n->dv_src = calloc((size_t)n->n_in, sizeof *n->dv_src);
    if (!n->dv || !n->dv_src) return dnnl_out_of_memory;
    dnnl_status_t st = dnnl_success;
    int64_t off = 0;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: slices of the blocked diff_out; pass 1 (only if pass 0
         * failed for concat): slices of a plain copy. */
        if (pass == 1) {
            dnnl_dims_t dims = {n->batch, n->out_c, n->out_h, n->out_w};
            st = dnnl_memory_desc_init_by_tag(&n->plain_md, 4, dims, n->out.md.data_type, dnnl_nchw);
            if (st == dnnl_success) st = prim_reorder(&n->plain_r, n->c, &n->out.md, &n->plain_md, 0);
            if (st != dnnl_success) return st;
            node_scratch(n, &n->plain_r);
            n->dv_plain = 1;
            n->b_plain = node_buf(n, md_size(&n->plain_md), BK_LIFE_BWD);
        }
        const dnnl_memory_desc_t *parent = pass ? &n->plain_md : &n->out.md;
        off = 0;
        st = dnnl_success;
        for (int i = 0; i < n->n_in && st == dnnl_success; i++) {
            int64_t ci = n->in_md[i].dims[1];
            if (n->op == GRAPH_OP_CONCAT) {
                dnnl_dims_t dims = {n->batch, ci, n->out_h, n->out_w};
                dnnl_dims_t offs = {0, off, 0, 0};
                st = dnnl_memory_desc_init_submemory(&n->dv_src[i], parent, dims, offs);
            } else {
                n->dv_src[i] = *parent;
            }
            off += ci;
            if (st == dnnl_success)
                st = deliver_setup(n, &n->dv[i], &n->dv_src[i], i, in_grad[i], 0);
        }
        if (st == dnnl_success) break;
        for (int i = 0; i < n->n_in; i++) deliver_free(&n->dv[i]);
        if (n->op != GRAPH_OP_CONCAT || pass == 1) return st;
    }
    for (int i = 0; i < n->n_in; i++) node_scratch(n, &n->dv[i].r);
    return dnnl_success;
}

/* The plain or channel-blocked format tag of a 4-D layout, or
 * dnnl_format_tag_any when it is none of the usual ones. */
static dnnl_format_tag_t md_tag_of(const dnnl_memory_desc_t *md) {
    static const dnnl_format_tag_t tags[] = {dnnl_aBcd16b, dnnl_acdb, dnnl_abcd, dnnl_aBcd8b,
                                             dnnl_aBcd4b, dnnl_aBcd32b};
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || md->offset0 != 0) return dnnl_format_tag_any;
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        dnnl_memory_desc_t t;
        if (dnnl_memory_desc_init_by_tag(&t, 4, md->dims, md->data_type, tags[i]) == dnnl_success &&
            md_eq(&t, md))
            return tags[i];
    }
    return dnnl_format_tag_any;
}

static dnnl_status_t multi_create(bk_node *n, const bk_node_desc *d) {
    dnnl_status_t st = dnnl_success;
    dnnl_dims_t dims = {n->batch, n->out_c, n->out_h, n->out_w};
    /* Left to itself (format_tag_any) oneDNN 2.6 concat picks plain NCHW
     * and a reference kernel; when all inputs share a format, keep it. */
    dnnl_format_tag_t tag = md_tag_of(&n->in_md[0]);
    for (int i = 1; i < n->n_in; i++)
        if (md_tag_of(&n->in_md[i]) != tag || n->in_md[i].data_type != n->in_md[0].data_type)
            tag = dnnl_format_tag_any;
    dnnl_memory_desc_t dst_any;
    md_tag(&dst_any, 4, dims, n->in_md[0].data_type, tag, &st);
    if (st != dnnl_success) return st;
    dnnl_primitive_attr_t attr;
    st = attr_make(&attr, 0);
    if (st != dnnl_success) return st;
    if (d->op == GRAPH_OP_CONCAT) {
        st = dnnl_concat_primitive_desc_create(&n->fwd.pd, &dst_any, n->n_in, 1, n->in_md, attr,
                                               n->c->eng);
    } else {
        const float scales[2] = {1.0f, 1.0f};
        st = dnnl_sum_primitive_desc_create(&n->fwd.pd, &dst_any, 2, scales, n->in_md, attr,
                                            n->c->eng);
    }
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        n->fwd.pd = NULL;
        return st;
    }
    st = prim_finish(&n->fwd);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd);
    n->out.md = *prim_md(&n->fwd, dnnl_query_dst_md, 0);
    if (!n->backward) return dnnl_success;
    return multi_deliver_setup(n, d->in_grad);
}

static dnnl_status_t multi_forward(bk_node *n, const bk_io *io) {
    bk_run r;
    run_init_n(&r, n->c, n->n_in);
    for (int i = 0; i < n->n_in; i++) run_arg(&r, DNNL_ARG_MULTIPLE_SRC + i, &n->in_md[i], io->in[i]);
    run_arg(&r, DNNL_ARG_DST, &n->out.md, io->out);
    return run_exec(&r, &n->fwd, io->scratchpad);
}

static dnnl_status_t multi_backward(bk_node *n, const bk_io *io) {
    const void *src = io->diff_out;
    dnnl_status_t st = dnnl_success;
    if (n->dv_plain) {
        st = run_reorder(n->c, &n->plain_r, &n->out.md, io->diff_out, &n->plain_md,
                         io->buf[n->b_plain], io->scratchpad);
        src = io->buf[n->b_plain];
    }
    for (int i = 0; i < n->n_in && st == dnnl_success; i++)
        st = deliver_finish(n, &n->dv[i], io, i, src);
    return st;
}

/* ---- linear ------------------------------------------------------------- */

static dnnl_status_t linear_create(bk_node *n) {
    dnnl_status_t st = dnnl_success;
    dnnl_data_type_t dt = bk_dnnl_dt(n->dt);
    dnnl_dims_t w_dims = {n->out_c, n->in_c, 1, 1};
    dnnl_dims_t b_dims = {n->out_c};
    dnnl_dims_t d_dims = {n->batch, n->out_c};
    dnnl_dims_t d4 = {n->batch, n->out_c, 1, 1};
    dnnl_memory_desc_t w_any, dw_any;
    md_tag(&w_any, 4, w_dims, dt, dnnl_format_tag_any, &st);
    md_tag(&dw_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any, &st);
    md_tag(&n->w_plain, 4, w_dims, dnnl_f32, dnnl_oihw, &st);
    md_tag(&n->bias_md, 1, b_dims, dnnl_f32, dnnl_a, &st);
    md_tag(&n->dst2d, 2, d_dims, dt, dnnl_nc, &st);
    if (st == dnnl_success) st = dnnl_memory_desc_reshape(&n->out.md, &n->dst2d, 4, d4);
    if (st != dnnl_success) return st;
    n->src_md = n->in_md[0];
    if (n->src_md.data_type != dt) return dnnl_invalid_arguments;
    dnnl_prop_kind_t prop = n->backward || n->training ? dnnl_forward_training : dnnl_forward_inference;
    dnnl_inner_product_desc_t id;
    st = dnnl_inner_product_forward_desc_init(&id, prop, &n->src_md, &w_any, &n->bias_md, &n->dst2d);
    if (st == dnnl_success) st = prim_op(&n->fwd, n->c, &id, 0, NULL);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd);
    n->w_fwd = *prim_md(&n->fwd, dnnl_query_weights_md, 0);
    n->w_direct = md_eq(&n->w_fwd, &n->w_plain);
    if (!n->w_direct) {
        st = prim_reorder(&n->w_r, n->c, &n->w_plain, &n->w_fwd, 0);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->w_r);
        n->b_w = node_buf(n, md_size(&n->w_fwd), node_keep(n));
    }
    n->bwd_in0 = 1;
    if (!n->backward) return dnnl_success;
    int want = n->d0.active;
    memset(&n->d0, 0, sizeof n->d0);
    n->d0.buf = -1;
    if (want) {
        dnnl_inner_product_desc_t bd;
        st = dnnl_inner_product_backward_data_desc_init(&bd, &n->src_md, &w_any, &n->dst2d);
        if (st == dnnl_success) st = prim_op(&n->bwd_data, n->c, &bd, 0, n->fwd.pd);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->bwd_data);
        n->w_bwd = *prim_md(&n->bwd_data, dnnl_query_weights_md, 0);
        n->wb_same = md_eq(&n->w_bwd, &n->w_fwd);
        if (!n->wb_same) {
            /* From the forward copy (already converted, half the bytes in
             * bf16) when there is one. */
            st = prim_reorder(&n->wb_r, n->c, n->w_direct ? &n->w_plain : &n->w_fwd, &n->w_bwd, 0);
            if (st != dnnl_success) return st;
            node_scratch(n, &n->wb_r);
            n->b_wb = node_buf(n, md_size(&n->w_bwd), BK_LIFE_BWD);
        }
        st = deliver_setup(n, &n->d0, prim_md(&n->bwd_data, dnnl_query_diff_src_md, 0), 0, 1, 1);
        if (st != dnnl_success) return st;
    }
    dnnl_inner_product_desc_t wd;
    st = dnnl_inner_product_backward_weights_desc_init(&wd, &n->src_md, &dw_any, &n->bias_md,
                                                       &n->dst2d);
    if (st == dnnl_success) st = prim_op(&n->bwd_w, n->c, &wd, 0, n->fwd.pd);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->bwd_w);
    n->dw_md = *prim_md(&n->bwd_w, dnnl_query_diff_weights_md, 0);
    st = prim_reorder(&n->dw_r, n->c, &n->dw_md, &n->w_plain, 1);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->dw_r);
    n->b_dw = node_buf(n, md_size(&n->dw_md), BK_LIFE_BWD);
    n->b_db = node_buf(n, (size_t)n->out_c * sizeof(float), BK_LIFE_BWD);
    return dnnl_success;
}

static dnnl_status_t linear_forward(bk_node *n, const bk_io *io) {
    dnnl_status_t st = dnnl_success;
    const void *w = weights_fwd(n, io, &st);
    if (st != dnnl_success) return st;
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC, &n->src_md, io->in[0]);
    run_arg(&r, DNNL_ARG_WEIGHTS, &n->w_fwd, w);
    run_arg(&r, DNNL_ARG_BIAS, &n->bias_md, io->bias);
    run_arg(&r, DNNL_ARG_DST, &n->dst2d, io->out);
    return run_exec(&r, &n->fwd, io->scratchpad);
}

static dnnl_status_t linear_backward(bk_node *n, const bk_io *io) {
    dnnl_status_t st = dnnl_success;
    if (n->d0.active) {
        const void *w = weights_bwd(n, io, &st);
        if (st != dnnl_success) return st;
        void *dsrc = deliver_target(&n->d0, io, 0);
        bk_run r;
        run_init(&r, n->c);
        run_arg(&r, DNNL_ARG_DIFF_DST, &n->dst2d, io->diff_out);
        run_arg(&r, DNNL_ARG_WEIGHTS, &n->w_bwd, w);
        run_arg(&r, DNNL_ARG_DIFF_SRC, &n->d0.from, dsrc);
        st = run_exec(&r, &n->bwd_data, io->scratchpad);
        if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
        if (st != dnnl_success) return st;
    }
    return weights_grad(n, io, io->in[0], &n->src_md, io->diff_out, &n->dst2d);
}

/* ---- dropout and channel affine (binary multiply) ----------------------- */

/* splitmix64: small, fast and good enough for Bernoulli masks; the state is
 * the executor's, so masks are reproducible from the seed. */
static uint64_t bk_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static dnnl_status_t dropout_create(bk_node *n) {
    dnnl_status_t st = dnnl_success;
    n->out.md = n->in_md[0];
    n->identity = !n->training || n->p == 0.0f;
    if (n->identity) {
        /* Identity: a copy forward; backward hands the gradient through. */
        st = prim_reorder(&n->fwd, n->c, &n->in_md[0], &n->out.md, 0);
        if (st != dnnl_success) return st;
        node_scratch(n, &n->fwd);
        if (n->backward) {
            int want = n->d0.active;
            st = deliver_setup(n, &n->d0, &n->out.md, 0, want, 0);
        }
        return st;
    }
    dnnl_dims_t dims = {n->batch, n->out_c, n->out_h, n->out_w};
    md_tag(&n->mask_md, 4, dims, dnnl_f32, dnnl_nchw, &st);
    if (st != dnnl_success) return st;
    n->b_mask = node_buf(n, md_size(&n->mask_md), node_keep(n));
    dnnl_binary_desc_t bd;
    st = dnnl_binary_desc_init(&bd, dnnl_binary_mul, &n->in_md[0], &n->mask_md, &n->out.md);
    if (st == dnnl_success) st = prim_op(&n->fwd, n->c, &bd, 0, NULL);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd);
    if (n->backward && n->d0.active)
        st = deliver_setup(n, &n->d0, &n->in_md[0], 0, 1, 1);
    return st;
}

static dnnl_status_t dropout_forward(bk_node *n, const bk_io *io) {
    if (n->identity)
        return run_reorder(n->c, &n->fwd, &n->in_md[0], io->in[0], &n->out.md, io->out,
                           io->scratchpad);
    float *mask = io->buf[n->b_mask];
    size_t numel = (size_t)n->batch * n->out_c * n->out_h * n->out_w;
    float keep = n->p >= 1.0f ? 0.0f : 1.0f / (1.0f - n->p);
    for (size_t i = 0; i < numel; i++) {
        double u = (double)(bk_rng_next(io->rng) >> 11) * 0x1.0p-53;
        mask[i] = u >= (double)n->p ? keep : 0.0f;
    }
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC_0, &n->in_md[0], io->in[0]);
    run_arg(&r, DNNL_ARG_SRC_1, &n->mask_md, mask);
    run_arg(&r, DNNL_ARG_DST, &n->out.md, io->out);
    return run_exec(&r, &n->fwd, io->scratchpad);
}

static dnnl_status_t dropout_backward(bk_node *n, const bk_io *io) {
    if (!n->d0.active) return dnnl_success;
    if (n->identity) return deliver_finish(n, &n->d0, io, 0, io->diff_out);
    void *dsrc = deliver_target(&n->d0, io, 0);
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC_0, &n->out.md, io->diff_out);
    run_arg(&r, DNNL_ARG_SRC_1, &n->mask_md, io->buf[n->b_mask]);
    run_arg(&r, DNNL_ARG_DST, &n->d0.from, dsrc);
    dnnl_status_t st = run_exec(&r, &n->fwd, io->scratchpad);
    if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
    return st;
}

static dnnl_status_t affine_create(bk_node *n, const bk_node_desc *d) {
    dnnl_status_t st = dnnl_success;
    size_t C = (size_t)n->out_c;
    n->aff_scale = fa_malloc_array(C, sizeof(float));
    n->aff_shift = fa_malloc_array(C, sizeof(float));
    if (!n->aff_scale || !n->aff_shift) return dnnl_out_of_memory;
    memcpy(n->aff_scale, d->affine_scale, C * sizeof(float));
    memcpy(n->aff_shift, d->affine_shift, C * sizeof(float));
    dnnl_dims_t dims = {1, n->out_c, 1, 1};
    md_tag(&n->aff_md, 4, dims, dnnl_f32, dnnl_nchw, &st);
    if (st != dnnl_success) return st;
    n->out.md = n->in_md[0];
    /* y = x * scale + shift as a multiply with a fused add post-op. */
    dnnl_primitive_attr_t attr;
    st = attr_make(&attr, 0);
    if (st != dnnl_success) return st;
    dnnl_post_ops_t po;
    st = dnnl_post_ops_create(&po);
    if (st == dnnl_success) {
        st = dnnl_post_ops_append_binary(po, dnnl_binary_add, &n->aff_md);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_binary_desc_t bd;
    if (st == dnnl_success)
        st = dnnl_binary_desc_init(&bd, dnnl_binary_mul, &n->in_md[0], &n->aff_md, &n->out.md);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&n->fwd.pd, &bd, attr, n->c->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        n->fwd.pd = NULL;
        return st;
    }
    st = prim_finish(&n->fwd);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->fwd);
    if (!n->backward || !n->d0.active) return dnnl_success;
    dnnl_binary_desc_t bbd;
    st = dnnl_binary_desc_init(&bbd, dnnl_binary_mul, &n->out.md, &n->aff_md, &n->in_md[0]);
    if (st == dnnl_success) st = prim_op(&n->bwd_data, n->c, &bbd, 0, NULL);
    if (st != dnnl_success) return st;
    node_scratch(n, &n->bwd_data);
    return deliver_setup(n, &n->d0, &n->in_md[0], 0, 1, 1);
}

static dnnl_status_t affine_forward(bk_node *n, const bk_io *io) {
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC_0, &n->in_md[0], io->in[0]);
    run_arg(&r, DNNL_ARG_SRC_1, &n->aff_md, n->aff_scale);
    run_arg(&r, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, &n->aff_md, n->aff_shift);
    run_arg(&r, DNNL_ARG_DST, &n->out.md, io->out);
    return run_exec(&r, &n->fwd, io->scratchpad);
}

static dnnl_status_t affine_backward(bk_node *n, const bk_io *io) {
    if (!n->d0.active) return dnnl_success;
    void *dsrc = deliver_target(&n->d0, io, 0);
    bk_run r;
    run_init(&r, n->c);
    run_arg(&r, DNNL_ARG_SRC_0, &n->out.md, io->diff_out);
    run_arg(&r, DNNL_ARG_SRC_1, &n->aff_md, n->aff_scale);
    run_arg(&r, DNNL_ARG_DST, &n->d0.from, dsrc);
    dnnl_status_t st = run_exec(&r, &n->bwd_data, io->scratchpad);
    if (st == dnnl_success) st = deliver_finish(n, &n->d0, io, 0, dsrc);
    return st;
}

/* ---- node API ----------------------------------------------------------- */

static const char *op_name(graph_op op) {
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

fa_status bk_node_create(bk_node **out, bk_ctx *c, const bk_node_desc *d, fa_error *err) {
    *out = NULL;
    const char *label = d->label && d->label[0] ? d->label : op_name(d->op);
    if (d->n_in < 1 || d->op == GRAPH_OP_INPUT)
        return fa_error_set(err, FA_ERR_INTERNAL, "%s: node without inputs", label);
    bk_node *n = calloc(1, sizeof *n);
    if (!n) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", label);
    n->c = c;
    snprintf(n->label, sizeof n->label, "%s", label);
    n->op = d->op;
    n->batch = d->batch;
    n->training = d->training;
    n->backward = d->backward;
    n->dt = d->dt;
    n->n_in = d->n_in;
    n->eps = d->eps;
    n->momentum = d->momentum;
    n->p = d->p;
    n->out_c = d->out_c;
    n->out_h = d->out_h;
    n->out_w = d->out_w;
    n->b_ws = -1;
    n->d0.buf = -1;
    n->in_md = fa_calloc_array((size_t)d->n_in, sizeof *n->in_md);
    n->in_acc = fa_calloc_array((size_t)d->n_in, sizeof *n->in_acc);
    if (!n->in_md || !n->in_acc) {
        bk_node_free(n);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", label);
    }
    for (int i = 0; i < d->n_in; i++) {
        n->in_md[i] = d->in_md[i]->md;
        n->in_acc[i] = d->in_accumulate ? d->in_accumulate[i] : 0;
    }
    n->in_c = (int)n->in_md[0].dims[1];
    n->in_h = (int)n->in_md[0].dims[2];
    n->in_w = (int)n->in_md[0].dims[3];
    n->d0.active = d->backward && d->in_grad && d->in_grad[0];
    n->has_bias = d->op == GRAPH_OP_LINEAR || (d->op == GRAPH_OP_CONV2D && d->conv.bias);

    dnnl_status_t st;
    switch (d->op) {
    case GRAPH_OP_CONV2D: st = conv_create(n, d); break;
    case GRAPH_OP_BATCH_NORM: st = bn_create(n, d); break;
    case GRAPH_OP_RELU: st = relu_create(n); break;
    case GRAPH_OP_MAX_POOL:
    case GRAPH_OP_AVG_POOL:
    case GRAPH_OP_GLOBAL_AVG_POOL: st = pool_create(n, d); break;
    case GRAPH_OP_CONCAT:
    case GRAPH_OP_ADD: st = multi_create(n, d); break;
    case GRAPH_OP_LINEAR: st = linear_create(n); break;
    case GRAPH_OP_DROPOUT: st = dropout_create(n); break;
    case GRAPH_OP_CHANNEL_AFFINE: st = affine_create(n, d); break;
    default: st = dnnl_unimplemented; break;
    }
    if (st == dnnl_success && n->buf_overflow) st = dnnl_runtime_error;
    if (st != dnnl_success) {
        char what[160];
        snprintf(what, sizeof what, "%s primitive creation (%s, batch %d, %dx%dx%d)",
                 op_name(d->op), d->dt == BK_BF16 ? "bf16" : "fp32", d->batch, d->out_c,
                 d->out_h, d->out_w);
        fa_status code = bk_fail(err, label, what, st);
        if (st == dnnl_unimplemented && d->dt == BK_BF16 && !bk_bf16_native())
            fa_error_prefix(err, "bf16 is not supported on this CPU (oneDNN ISA %s)", bk_isa_name());
        bk_node_free(n);
        return code;
    }
    *out = n;
    return FA_OK;
}

void bk_node_free(bk_node *n) {
    if (!n) return;
    prim_free(&n->fwd);
    prim_free(&n->bwd_data);
    prim_free(&n->bwd_w);
    prim_free(&n->src_r);
    prim_free(&n->w_r);
    prim_free(&n->wb_r);
    prim_free(&n->dw_r);
    prim_free(&n->plain_r);
    prim_free(&n->sum_r);
    prim_free(&n->bw_src_r);
    prim_free(&n->bw_ddst_r);
    prim_free(&n->fwd_g);
    prim_free(&n->bwd_g);
    prim_free(&n->corr_r);
    free(n->sync_buf);
    deliver_free(&n->d0);
    if (n->dv)
        for (int i = 0; i < n->n_in; i++) deliver_free(&n->dv[i]);
    free(n->dv);
    free(n->dv_src);
    free(n->in_md);
    free(n->in_acc);
    free(n->aff_scale);
    free(n->aff_shift);
    free(n->bn_ss);
    free(n);
}

const bk_md *bk_node_out_md(const bk_node *n) { return &n->out; }
int bk_node_buf_count(const bk_node *n) { return n->nbuf; }
size_t bk_node_buf_bytes(const bk_node *n, int i) { return n->buf_bytes[i]; }
bk_life bk_node_buf_life(const bk_node *n, int i) { return n->buf_life[i]; }
size_t bk_node_scratchpad(const bk_node *n) { return n->scratch; }
int bk_node_bwd_needs_input(const bk_node *n, int slot) { return slot == 0 && n->bwd_in0; }
int bk_node_bwd_needs_output(const bk_node *n) { return n->bwd_out; }
const char *bk_node_impl(const bk_node *n) { return prim_impl(&n->fwd); }
int bk_node_weight_buf(const bk_node *n) {
    if (n->op != GRAPH_OP_CONV2D && n->op != GRAPH_OP_LINEAR) return -1;
    return n->w_direct && !n->w_fold ? -1 : n->b_w;
}

fa_status bk_node_forward(bk_node *n, const bk_io *io, fa_error *err) {
    if (n->sync && io->bn_sync) return bn_sync_forward(n, io, err);
    dnnl_status_t st;
    switch (n->op) {
    case GRAPH_OP_CONV2D: st = conv_forward(n, io); break;
    case GRAPH_OP_BATCH_NORM: st = bn_forward(n, io); break;
    case GRAPH_OP_RELU: st = relu_forward(n, io); break;
    case GRAPH_OP_MAX_POOL:
    case GRAPH_OP_AVG_POOL:
    case GRAPH_OP_GLOBAL_AVG_POOL: st = pool_forward(n, io); break;
    case GRAPH_OP_CONCAT:
    case GRAPH_OP_ADD: st = multi_forward(n, io); break;
    case GRAPH_OP_LINEAR: st = linear_forward(n, io); break;
    case GRAPH_OP_DROPOUT: st = dropout_forward(n, io); break;
    case GRAPH_OP_CHANNEL_AFFINE: st = affine_forward(n, io); break;
    default: st = dnnl_unimplemented; break;
    }
    return st == dnnl_success ? FA_OK : bk_fail(err, n->label, "forward", st);
}

fa_status bk_node_backward(bk_node *n, const bk_io *io, fa_error *err) {
    if (!n->backward)
        return fa_error_set(err, FA_ERR_INTERNAL, "%s: created without backward", n->label);
    if (n->sync && io->bn_sync) return bn_sync_backward(n, io, err);
    dnnl_status_t st;
    switch (n->op) {
    case GRAPH_OP_CONV2D: st = conv_backward(n, io); break;
    case GRAPH_OP_BATCH_NORM: st = bn_backward(n, io); break;
    case GRAPH_OP_RELU: st = relu_backward(n, io); break;
    case GRAPH_OP_MAX_POOL:
    case GRAPH_OP_AVG_POOL:
    case GRAPH_OP_GLOBAL_AVG_POOL: st = pool_backward(n, io); break;
    case GRAPH_OP_CONCAT:
    case GRAPH_OP_ADD: st = multi_backward(n, io); break;
    case GRAPH_OP_LINEAR: st = linear_backward(n, io); break;
    case GRAPH_OP_DROPOUT: st = dropout_backward(n, io); break;
    case GRAPH_OP_CHANNEL_AFFINE: st = affine_backward(n, io); break;
    default: st = dnnl_unimplemented; break;
    }
    return st == dnnl_success ? FA_OK : bk_fail(err, n->label, "backward", st);
}
