/* test_engine_ops.c - every engine op, forward and backward, against naive
 * reference kernels written here in plain C (double precision).
 *
 * Each case builds   input -> "pre" (1x1 conv, identity weights) -> X -> op -> y
 * so that the op's input X has a gradient (the executor computes none for the
 * graph input). With loss L = sum(y * R) for a random R:
 *  - forward: y must match the reference op applied to the input;
 *  - backward: dL/dX (exec_keep_value_grad) and dL/dparam (graph grads) must
 *    match central finite differences of the *reference* in double precision,
 *    so the check cannot be fooled by the engine agreeing with itself;
 *  - bf16: the same forward in bf16 within bf16 tolerance of the reference.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/exec.h"
#include "engine/graph.h"

FA_TEST_MAIN_STATE

/* ---- small deterministic RNG -------------------------------------------- */

static uint64_t rng_state = 0x1234567887654321ull;
static double urand(void) { /* [0,1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double srand1(void) { return 2.0 * urand() - 1.0; }

/* ---- naive reference kernels (llm.c style: obvious loops) ---------------- */

typedef struct shape4 {
    int n, c, h, w;
} shape4;

#define AT(s, t, ni, ci, hi, wi) (t)[(((size_t)(ni) * (s).c + (ci)) * (s).h + (hi)) * (s).w + (wi)]

/* y[N,O,OH,OW] = conv(x[N,C,H,W], w[O,C/g,KH,KW]) + b, PyTorch semantics. */
static void ref_conv2d(const double *x, shape4 xs, const double *wt, const double *b,
                       const graph_conv_opts *o, double *y, shape4 ys) {
    int cpg = xs.c / o->groups, opg = o->out_channels / o->groups;
    for (int n = 0; n < ys.n; n++)
        for (int oc = 0; oc < ys.c; oc++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    double acc = b ? b[oc] : 0.0;
                    int g = oc / opg;
                    for (int ic = 0; ic < cpg; ic++)
                        for (int kh = 0; kh < o->kernel_h; kh++)
                            for (int kw = 0; kw < o->kernel_w; kw++) {
                                int ih = oh * o->stride_h - o->pad_h + kh * o->dilation_h;
                                int iw = ow * o->stride_w - o->pad_w + kw * o->dilation_w;
                                if (ih < 0 || ih >= xs.h || iw < 0 || iw >= xs.w) continue;
                                double wv = wt[(((size_t)oc * cpg + ic) * o->kernel_h + kh) * o->kernel_w + kw];
                                acc += wv * AT(xs, x, n, g * cpg + ic, ih, iw);
                            }
                    AT(ys, y, n, oc, oh, ow) = acc;
                }
}

/* Batch norm; training: batch mean and biased variance (also returned). */
static void ref_bn(const double *x, shape4 s, const double *gamma, const double *beta,
                   const double *rmean, const double *rvar, double eps, int training, double *y,
                   double *mean_out, double *var_out) {
    for (int c = 0; c < s.c; c++) {
        double mean, var;
        if (training) {
            double sum = 0, sq = 0, cnt = (double)s.n * s.h * s.w;
            for (int n = 0; n < s.n; n++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++) sum += AT(s, x, n, c, h, w);
            mean = sum / cnt;
            for (int n = 0; n < s.n; n++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++) {
                        double d = AT(s, x, n, c, h, w) - mean;
                        sq += d * d;
                    }
            var = sq / cnt;
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        if (mean_out) mean_out[c] = mean;
        if (var_out) var_out[c] = var;
        double inv = 1.0 / sqrt(var + eps);
        for (int n = 0; n < s.n; n++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    AT(s, y, n, c, h, w) = (AT(s, x, n, c, h, w) - mean) * inv * gamma[c] + beta[c];
    }
}

/* Max / average pooling with ATen's window and divisor rules. */
static void ref_pool(const double *x, shape4 xs, const graph_pool_opts *o, int is_max, double *y,
                     shape4 ys) {
    for (int n = 0; n < ys.n; n++)
        for (int c = 0; c < ys.c; c++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    int hs = oh * o->stride_h - o->pad_h, ws = ow * o->stride_w - o->pad_w;
                    int he = hs + o->kernel_h, we = ws + o->kernel_w;
                    if (is_max) {
                        double m = -INFINITY;
                        for (int h = hs; h < he; h++)
                            for (int w = ws; w < we; w++)
                                if (h >= 0 && h < xs.h && w >= 0 && w < xs.w && AT(xs, x, n, c, h, w) > m)
                                    m = AT(xs, x, n, c, h, w);
                        AT(ys, y, n, c, oh, ow) = m;
                        continue;
                    }
                    int he2 = he < xs.h + o->pad_h ? he : xs.h + o->pad_h;
                    int we2 = we < xs.w + o->pad_w ? we : xs.w + o->pad_w;
                    int pool_size = (he2 - hs) * (we2 - ws);
                    int h0 = hs < 0 ? 0 : hs, w0 = ws < 0 ? 0 : ws;
                    int h1 = he < xs.h ? he : xs.h, w1 = we < xs.w ? we : xs.w;
                    double sum = 0;
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) sum += AT(xs, x, n, c, h, w);
                    int div = o->count_include_pad ? pool_size : (h1 - h0) * (w1 - w0);
                    AT(ys, y, n, c, oh, ow) = sum / div;
                }
}

/* ---- the harness --------------------------------------------------------- */

typedef struct op_case op_case;
struct op_case {
    const char *name;
    shape4 in;
    int training;
    const char *params[4]; /* trainable parameters of the op under test */
    graph_value (*build)(fa_graph *g, graph_value x, const op_case *oc);
    /* Reference: input x (shape in), parameters P (in params order, plus
     * read-only buffers via the graph), output y. */
    void (*ref)(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                shape4 ys);
    graph_conv_opts conv;
    graph_pool_opts pool;
    int out_features;
};

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) abort();
    return p;
}
static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}
static size_t numel4(shape4 s) { return (size_t)s.n * s.c * s.h * s.w; }

/* Fill every parameter of the op under test; BN gets positive scales and
 * variances so the problem is well conditioned. */
static void init_params(fa_graph *g) {
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (!strncmp(p->name, "pre.", 4) || !p->data) continue;
        int positive = strstr(p->name, "running_var") || (strstr(p->name, "bn") && strstr(p->name, ".weight"));
        for (int64_t k = 0; k < p->numel; k++)
            p->data[k] = positive ? (float)(0.5 + urand()) : (float)(0.5 * srand1());
    }
}

static graph_value build_pre(fa_graph *g, int c) {
    /* 3x3 with only the centre tap set: an exact identity, and oneDNN's
     * direct kernels then hand the op blocked layouts (nChw16c) as in real
     * networks. */
    graph_conv_opts o = {.out_channels = c, .kernel_h = 3, .kernel_w = 3, .stride_h = 1,
                         .stride_w = 1, .pad_h = 1, .pad_w = 1, .dilation_h = 1, .dilation_w = 1,
                         .groups = 1};
    graph_value x = graph_conv2d(g, "pre", graph_input(g), &o);
    graph_param *w = graph_param_find(g, "pre.weight");
    if (w)
        for (int i = 0; i < c; i++) w->data[((size_t)i * c + i) * 9 + 4] = 1.0f;
    return x;
}

static double loss_ref(const op_case *oc, fa_graph *g, const double *x, double *const *P,
                       const double *R, double *y, shape4 ys) {
    oc->ref(oc, g, x, P, y, ys);
    double L = 0;
    for (size_t i = 0; i < numel4(ys); i++) L += y[i] * R[i];
    return L;
}

/* Compare engine gradient `got` (fp32) with central differences of the
 * reference wrt the double array v (n elements). */
static int fd_check(const char *what, const op_case *oc, fa_graph *g, double *xd, double *const *P,
                    double *v, size_t n, const float *got, const double *R, double *y, shape4 ys) {
    const double h = 1e-6;
    int bad = 0;
    double maxg = 0;
    for (size_t i = 0; i < n; i++) maxg = fmax(maxg, fabs(got[i]));
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + h;
        double lp = loss_ref(oc, g, xd, P, R, y, ys);
        v[i] = keep - h;
        double lm = loss_ref(oc, g, xd, P, R, y, ys);
        v[i] = keep;
        double fd = (lp - lm) / (2 * h);
        if (!(fabs(fd - got[i]) <= 1e-4 + 1e-3 * fabs(fd) + 1e-4 * maxg)) {
            if (bad < 5)
                fprintf(stderr, "%s: %s[%zu]: engine %.7g, finite difference %.7g\n", oc->name, what,
                        i, got[i], fd);
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %zu %s gradients differ", oc->name, bad, n, what);
    return bad;
}

static void run_case(const op_case *oc) {
    fa_error err = {0};
    fa_graph *g = graph_create(oc->in.c, oc->in.h, oc->in.w);
    graph_value x = build_pre(g, oc->in.c);
    graph_value y = oc->build(g, x, oc);
    graph_mark_output(g, y, "y", 0);
    if (graph_status(g, &err) != FA_OK) {
        CHECK_MSG(0, "%s: build failed: %s", oc->name, err.msg);
        graph_free(g);
        return;
    }
    init_params(g);
    shape4 ys = {oc->in.n, 0, 0, 0};
    graph_value_shape(g, y, &ys.c, &ys.h, &ys.w);
    size_t nx = numel4(oc->in), ny = numel4(ys);

    float *xf = falloc(nx), *yf = falloc(ny), *Rf = falloc(ny), *dx = falloc(nx);
    double *xd = dalloc(nx), *yd = dalloc(ny), *Rd = dalloc(ny), *tmp = dalloc(ny);
    for (size_t i = 0; i < nx; i++) {
        xf[i] = (float)srand1();
        xd[i] = xf[i];
    }
    for (size_t i = 0; i < ny; i++) {
        Rf[i] = (float)srand1();
        Rd[i] = Rf[i];
    }
    /* Reference parameters in double (copied before the forward, which may
     * update BN running statistics). */
    double *P[4] = {0};
    graph_param *gp[4] = {0};
    int np = 0;
    for (; np < 4 && oc->params[np]; np++) {
        gp[np] = graph_param_find(g, oc->params[np]);
        if (!gp[np]) {
            CHECK_MSG(0, "%s: parameter %s missing", oc->name, oc->params[np]);
            goto done;
        }
        P[np] = dalloc((size_t)gp[np]->numel);
        for (int64_t k = 0; k < gp[np]->numel; k++) P[np][k] = gp[np]->data[k];
    }
    oc->ref(oc, g, xd, P, yd, ys);

    /* fp32 forward + backward */
    exec_options eo = {.batch = oc->in.n, .precision = FA_PRECISION_FP32, .training = oc->training,
                       .keep_for_backward = 1, .seed = 1};
    fa_exec *e = NULL;
    if (exec_create(&e, g, &eo, &err) != FA_OK) {
        CHECK_MSG(0, "%s: exec_create: %s", oc->name, err.msg);
        goto done;
    }
    CHECK(exec_keep_value_grad(e, x, &err) == FA_OK);
    graph_zero_grad(g);
    /* BN training updates running stats: the reference reads them from the
     * graph, so give it the values from before the forward. */
    float *rstats[2] = {0};
    if (oc->training) {
        graph_param *rm = NULL, *rv = NULL;
        for (int i = 0; i < graph_param_count(g); i++) {
            graph_param *p = graph_param_at(g, i);
            if (strstr(p->name, "running_mean")) rm = p;
            if (strstr(p->name, "running_var")) rv = p;
        }
        if (rm && rv) {
            rstats[0] = falloc((size_t)rm->numel);
            rstats[1] = falloc((size_t)rv->numel);
            memcpy(rstats[0], rm->data, (size_t)rm->numel * sizeof(float));
            memcpy(rstats[1], rv->data, (size_t)rv->numel * sizeof(float));
        }
    }
    if (exec_forward(e, xf, &err) != FA_OK || exec_read_output(e, "y", yf, &err) != FA_OK) {
        CHECK_MSG(0, "%s: forward: %s", oc->name, err.msg);
        exec_free(e);
        goto done;
    }
    double maxy = 0;
    for (size_t i = 0; i < ny; i++) maxy = fmax(maxy, fabs(yd[i]));
    int bad = 0;
    for (size_t i = 0; i < ny; i++)
        if (!(fabs(yf[i] - yd[i]) <= 1e-5 * (1 + maxy))) {
            if (bad < 5) fprintf(stderr, "%s: y[%zu] = %.7g, reference %.7g\n", oc->name, i, yf[i], yd[i]);
            bad++;
        }
    CHECK_MSG(bad == 0, "%s: %d of %zu forward values differ", oc->name, bad, ny);

    if (oc->training && rstats[0]) {
        /* running_mean/var: momentum 0.1 towards batch mean and UNBIASED
         * variance; num_batches_tracked += 1. */
        int C = ys.c;
        double *mean = dalloc((size_t)C), *var = dalloc((size_t)C);
        ref_bn(xd, oc->in, P[0], P[1], NULL, NULL, 1e-5, 1, tmp, mean, var);
        double cnt = (double)oc->in.n * oc->in.h * oc->in.w;
        for (int i = 0; i < graph_param_count(g); i++) {
            graph_param *p = graph_param_at(g, i);
            if (strstr(p->name, "running_mean"))
                for (int c = 0; c < C; c++)
                    CHECK_CLOSE(p->data[c], 0.9 * rstats[0][c] + 0.1 * mean[c], 1e-6, 1e-5);
            if (strstr(p->name, "running_var"))
                for (int c = 0; c < C; c++)
                    CHECK_CLOSE(p->data[c], 0.9 * rstats[1][c] + 0.1 * var[c] * cnt / (cnt - 1), 1e-6, 1e-5);
            if (strstr(p->name, "num_batches_tracked")) CHECK(p->count == 1);
        }
        free(mean);
        free(var);
        /* Restore so the finite differences see the same function. */
        for (int i = 0; i < graph_param_count(g); i++) {
            graph_param *p = graph_param_at(g, i);
            if (strstr(p->name, "running_mean")) memcpy(p->data, rstats[0], (size_t)C * sizeof(float));
            if (strstr(p->name, "running_var")) memcpy(p->data, rstats[1], (size_t)C * sizeof(float));
        }
    }

    const char *names[1] = {"y"};
    const float *grads[1] = {Rf};
    if (exec_backward(e, 1, names, grads, &err) != FA_OK || exec_read_value_grad(e, x, dx, &err) != FA_OK) {
        CHECK_MSG(0, "%s: backward: %s", oc->name, err.msg);
        exec_free(e);
        goto done;
    }
    fd_check("input", oc, g, xd, P, xd, nx, dx, Rd, tmp, ys);
    for (int k = 0; k < np; k++)
        fd_check(oc->params[k], oc, g, xd, P, P[k], (size_t)gp[k]->numel, gp[k]->grad, Rd, tmp, ys);

    /* Backward accumulates: a second forward+backward doubles the grads. */
    if (np > 0 && !oc->training) {
        float *g1 = falloc((size_t)gp[0]->numel);
        memcpy(g1, gp[0]->grad, (size_t)gp[0]->numel * sizeof(float));
        CHECK(exec_forward(e, xf, &err) == FA_OK);
        CHECK(exec_backward(e, 1, names, grads, &err) == FA_OK);
        for (int64_t k = 0; k < gp[0]->numel; k++) CHECK_CLOSE(gp[0]->grad[k], 2.0 * g1[k], 1e-6, 1e-5);
        free(g1);
    }
    exec_free(e);

    /* bf16 forward: within bf16 rounding of the fp32 reference. */
    eo.precision = FA_PRECISION_BF16;
    eo.keep_for_backward = 0;
    if (exec_create(&e, g, &eo, &err) != FA_OK) {
        CHECK_MSG(0, "%s: bf16 exec_create: %s", oc->name, err.msg);
    } else {
        if (oc->training && rstats[0]) { /* forward updates them again; irrelevant here */ }
        if (exec_forward(e, xf, &err) != FA_OK || exec_read_output(e, "y", yf, &err) != FA_OK) {
            CHECK_MSG(0, "%s: bf16 forward: %s", oc->name, err.msg);
        } else {
            bad = 0;
            for (size_t i = 0; i < ny; i++)
                if (!(fabs(yf[i] - yd[i]) <= 3e-2 * (1 + maxy))) {
                    if (bad < 5)
                        fprintf(stderr, "%s: bf16 y[%zu] = %.5g, reference %.5g\n", oc->name, i, yf[i], yd[i]);
                    bad++;
                }
            CHECK_MSG(bad == 0, "%s: %d of %zu bf16 values differ", oc->name, bad, ny);
        }
        exec_free(e);
    }
    free(rstats[0]);
    free(rstats[1]);
done:
    for (int k = 0; k < 4; k++) free(P[k]);
    free(xf);
    free(yf);
    free(Rf);
    free(dx);
    free(xd);
    free(yd);
    free(Rd);
    free(tmp);
    graph_free(g);
}

/* ---- cases --------------------------------------------------------------- */

static graph_value b_conv(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_conv2d(g, "op", x, &oc->conv);
}
static void r_conv(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                   shape4 ys) {
    ref_conv2d(x, oc->in, P[0], oc->conv.bias ? P[1] : NULL, &oc->conv, y, ys);
}

static graph_value b_bn(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_batch_norm(g, "bn", x, 1e-5f, 0.1f);
}
static void r_bn(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                 shape4 ys) {
    graph_param *rm = graph_param_find(g, "bn.running_mean"), *rv = graph_param_find(g, "bn.running_var");
    double m[64], v[64];
    for (int c = 0; c < oc->in.c; c++) {
        m[c] = rm->data[c];
        v[c] = rv->data[c];
    }
    ref_bn(x, oc->in, P[0], P[1], m, v, 1e-5, oc->training, y, NULL, NULL);
}

static graph_value b_relu(fa_graph *g, graph_value x, const op_case *oc) { return graph_relu(g, x); }
static void r_relu(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                   shape4 ys) {
    for (size_t i = 0; i < numel4(ys); i++) y[i] = x[i] > 0 ? x[i] : 0;
}

static graph_value b_maxpool(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_max_pool2d(g, x, &oc->pool);
}
static void r_maxpool(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                      shape4 ys) {
    ref_pool(x, oc->in, &oc->pool, 1, y, ys);
}
static graph_value b_avgpool(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_avg_pool2d(g, x, &oc->pool);
}
static void r_avgpool(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                      shape4 ys) {
    ref_pool(x, oc->in, &oc->pool, 0, y, ys);
}

static graph_value b_gap(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_global_avg_pool(g, x);
}
static void r_gap(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                  shape4 ys) {
    shape4 s = oc->in;
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++) {
            double sum = 0;
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) sum += AT(s, x, n, c, h, w);
            y[(size_t)n * s.c + c] = sum / (s.h * s.w);
        }
}

/* concat([X, relu(X), X]): X is consumed three times (twice by the concat
 * itself), so its gradient must be the sum of three contributions. */
static graph_value b_concat(fa_graph *g, graph_value x, const op_case *oc) {
    graph_value r = graph_relu(g, x);
    graph_value xs[3] = {x, r, x};
    return graph_concat(g, 3, xs);
}
static void r_concat(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                     shape4 ys) {
    shape4 s = oc->in;
    for (int n = 0; n < s.n; n++)
        for (int k = 0; k < 3; k++)
            for (int c = 0; c < s.c; c++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++) {
                        double v = AT(s, x, n, c, h, w);
                        if (k == 1 && v < 0) v = 0;
                        AT(ys, y, n, k * s.c + c, h, w) = v;
                    }
}

/* DenseNet-size concat: 30 inputs (X and relu(X) alternating), more than a
 * fixed argument list would hold. */
static graph_value b_concat_many(fa_graph *g, graph_value x, const op_case *oc) {
    graph_value r = graph_relu(g, x), xs[30];
    for (int k = 0; k < 30; k++) xs[k] = k % 2 ? r : x;
    return graph_concat(g, 30, xs);
}
static void r_concat_many(const op_case *oc, fa_graph *g, const double *x, double *const *P,
                          double *y, shape4 ys) {
    shape4 s = oc->in;
    for (int n = 0; n < s.n; n++)
        for (int k = 0; k < 30; k++)
            for (int c = 0; c < s.c; c++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++) {
                        double v = AT(s, x, n, c, h, w);
                        if (k % 2 && v < 0) v = 0;
                        AT(ys, y, n, k * s.c + c, h, w) = v;
                    }
}

/* add(X, relu(X)) then add(that, X): a residual pattern with X used three
 * times. */
static graph_value b_add(fa_graph *g, graph_value x, const op_case *oc) {
    graph_value r = graph_relu(g, x);
    return graph_add(g, graph_add(g, x, r), x);
}
static void r_add(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                  shape4 ys) {
    for (size_t i = 0; i < numel4(ys); i++) y[i] = 2 * x[i] + (x[i] > 0 ? x[i] : 0);
}

static graph_value b_linear(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_linear(g, "fc", graph_global_avg_pool(g, x), oc->out_features);
}
static void r_linear(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                     shape4 ys) {
    shape4 s = oc->in;
    double pooled[256];
    for (int n = 0; n < s.n; n++) {
        for (int c = 0; c < s.c; c++) {
            double sum = 0;
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) sum += AT(s, x, n, c, h, w);
            pooled[c] = sum / (s.h * s.w);
        }
        for (int o = 0; o < ys.c; o++) {
            double acc = P[1][o];
            for (int c = 0; c < s.c; c++) acc += P[0][(size_t)o * s.c + c] * pooled[c];
            y[(size_t)n * ys.c + o] = acc;
        }
    }
}

static const float aff_scale[8] = {0.458f, 0.448f, 0.450f, -1.5f, 2.0f, 0.25f, 1.0f, -0.5f};
static const float aff_shift[8] = {-0.030f, -0.088f, -0.188f, 0.5f, 0.0f, 1.0f, -2.0f, 0.125f};
static graph_value b_affine(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_channel_affine(g, x, aff_scale, aff_shift);
}
static void r_affine(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                     shape4 ys) {
    shape4 s = oc->in;
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    AT(s, y, n, c, h, w) = AT(s, x, n, c, h, w) * (double)aff_scale[c] + (double)aff_shift[c];
}

/* Dropout in an eval executor is the identity. */
static graph_value b_dropout(fa_graph *g, graph_value x, const op_case *oc) {
    return graph_dropout(g, x, 0.5f);
}
static void r_identity(const op_case *oc, fa_graph *g, const double *x, double *const *P, double *y,
                       shape4 ys) {
    memcpy(y, x, numel4(ys) * sizeof(double));
}

#define CONV(O, KH, KW, SH, SW, PH, PW, DH, DW, G, B)                                           \
    .conv = {.out_channels = O, .kernel_h = KH, .kernel_w = KW, .stride_h = SH, .stride_w = SW, \
             .pad_h = PH, .pad_w = PW, .dilation_h = DH, .dilation_w = DW, .groups = G, .bias = B}
#define POOL(K, S, P, CEIL, INC) \
    .pool = {.kernel_h = K, .kernel_w = K, .stride_h = S, .stride_w = S, .pad_h = P, .pad_w = P, .ceil_mode = CEIL, .count_include_pad = INC}

static const op_case cases[] = {
    {.name = "conv3x3_bias", .in = {2, 3, 6, 6}, .training = 0, .params = {"op.weight", "op.bias"}, .build = b_conv, .ref = r_conv, CONV(4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},
    {.name = "conv3x3_stride2", .in = {2, 4, 7, 7}, .training = 0, .params = {"op.weight"}, .build = b_conv, .ref = r_conv, CONV(6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0)},
    {.name = "conv_grouped_dilated", .in = {2, 4, 7, 6}, .training = 0, .params = {"op.weight", "op.bias"}, .build = b_conv, .ref = r_conv, CONV(6, 3, 3, 1, 1, 2, 2, 2, 2, 2, 1)},
    {.name = "conv_depthwise_stride2", .in = {1, 4, 6, 6}, .training = 0, .params = {"op.weight"}, .build = b_conv, .ref = r_conv, CONV(8, 3, 3, 2, 2, 1, 1, 1, 1, 4, 0)},
    {.name = "conv_1x3_rect", .in = {2, 4, 5, 6}, .training = 0, .params = {"op.weight"}, .build = b_conv, .ref = r_conv, CONV(4, 1, 3, 1, 1, 0, 1, 1, 1, 1, 0)},
    {.name = "conv_7x1_stride2_unused_rows", .in = {1, 2, 8, 5}, .training = 0, .params = {"op.weight"}, .build = b_conv, .ref = r_conv, CONV(3, 3, 1, 2, 1, 0, 0, 1, 1, 1, 0)},
    {.name = "conv_c20_blocked_padding", .in = {2, 20, 4, 4}, .training = 0, .params = {"op.weight", "op.bias"}, .build = b_conv, .ref = r_conv, CONV(24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},
    {.name = "conv_grouped_32x4", .in = {1, 32, 4, 4}, .training = 0, .params = {"op.weight"}, .build = b_conv, .ref = r_conv, CONV(32, 3, 3, 2, 2, 1, 1, 1, 1, 8, 0)},
    {.name = "bn_train", .in = {2, 20, 3, 3}, .training = 1, .params = {"bn.weight", "bn.bias"}, .build = b_bn, .ref = r_bn},
    {.name = "bn_train_c3", .in = {3, 3, 2, 2}, .training = 1, .params = {"bn.weight", "bn.bias"}, .build = b_bn, .ref = r_bn},
    {.name = "bn_eval", .in = {2, 20, 3, 3}, .training = 0, .params = {"bn.weight", "bn.bias"}, .build = b_bn, .ref = r_bn},
    {.name = "relu", .in = {2, 5, 4, 4}, .training = 0, .params = {0}, .build = b_relu, .ref = r_relu},
    {.name = "maxpool_3s2p1", .in = {2, 3, 7, 7}, .training = 0, .params = {0}, .build = b_maxpool, .ref = r_maxpool, .pool = {3, 3, 2, 2, 1, 1, 0, 1}},
    {.name = "maxpool_ceil_3s2", .in = {2, 3, 8, 8}, .training = 0, .params = {0}, .build = b_maxpool, .ref = r_maxpool, POOL(3, 2, 0, 1, 1)},
    {.name = "maxpool_ceil_2s2_odd", .in = {1, 18, 5, 5}, .training = 0, .params = {0}, .build = b_maxpool, .ref = r_maxpool, POOL(2, 2, 0, 1, 1)},
    {.name = "avgpool_3s1p1_include_pad", .in = {2, 3, 5, 5}, .training = 0, .params = {0}, .build = b_avgpool, .ref = r_avgpool, POOL(3, 1, 1, 0, 1)},
    {.name = "avgpool_3s2p1_exclude_pad", .in = {2, 3, 6, 6}, .training = 0, .params = {0}, .build = b_avgpool, .ref = r_avgpool, POOL(3, 2, 1, 0, 0)},
    {.name = "avgpool_2s2_floor", .in = {2, 20, 7, 7}, .training = 0, .params = {0}, .build = b_avgpool, .ref = r_avgpool, POOL(2, 2, 0, 0, 1)},
    {.name = "avgpool_ceil_exclude_pad", .in = {1, 3, 8, 8}, .training = 0, .params = {0}, .build = b_avgpool, .ref = r_avgpool, POOL(3, 2, 1, 1, 0)},
    {.name = "global_avg_pool", .in = {2, 20, 3, 4}, .training = 0, .params = {0}, .build = b_gap, .ref = r_gap},
    {.name = "concat_value_used_thrice", .in = {2, 20, 3, 3}, .training = 0, .params = {0}, .build = b_concat, .ref = r_concat},
    {.name = "concat_c4", .in = {2, 4, 3, 3}, .training = 0, .params = {0}, .build = b_concat, .ref = r_concat},
    {.name = "concat_c16_aligned", .in = {2, 16, 3, 3}, .training = 0, .params = {0}, .build = b_concat, .ref = r_concat},
    {.name = "concat_c24_misaligned", .in = {2, 24, 2, 3}, .training = 0, .params = {0}, .build = b_concat, .ref = r_concat},
    {.name = "concat_30_inputs", .in = {1, 16, 2, 2}, .training = 0, .params = {0}, .build = b_concat_many, .ref = r_concat_many},
    {.name = "add_residual", .in = {2, 20, 3, 3}, .training = 0, .params = {0}, .build = b_add, .ref = r_add},
    {.name = "linear", .in = {3, 20, 2, 2}, .training = 0, .params = {"fc.weight", "fc.bias"}, .build = b_linear, .ref = r_linear, .out_features = 3},
    {.name = "channel_affine", .in = {2, 8, 3, 3}, .training = 0, .params = {0}, .build = b_affine, .ref = r_affine},
    {.name = "dropout_eval_identity", .in = {2, 4, 3, 3}, .training = 0, .params = {0}, .build = b_dropout, .ref = r_identity},
};

/* Training dropout: mask statistics, scaling 1/(1-p), backward = mask*grad,
 * different masks on successive forwards, same masks for the same seed. */
static void test_dropout_training(void) {
    fa_error err = {0};
    const int C = 16, H = 8, W = 8, N = 4;
    const float p = 0.3f;
    fa_graph *g = graph_create(C, H, W);
    graph_value x = build_pre(g, C);
    graph_value y = graph_dropout(g, x, p);
    graph_mark_output(g, y, "y", 0);
    CHECK(graph_status(g, &err) == FA_OK);
    size_t n = (size_t)N * C * H * W;
    float *in = falloc(n), *out = falloc(n), *out2 = falloc(n), *dy = falloc(n), *dx = falloc(n);
    for (size_t i = 0; i < n; i++) {
        in[i] = (float)(0.5 + urand()); /* non-zero so the mask is visible */
        dy[i] = (float)srand1();
    }
    exec_options eo = {.batch = N, .precision = FA_PRECISION_FP32, .training = 1, .keep_for_backward = 1, .seed = 7};
    fa_exec *e = NULL;
    if (exec_create(&e, g, &eo, &err) != FA_OK) {
        CHECK_MSG(0, "dropout: %s", err.msg);
        graph_free(g);
        return;
    }
    CHECK(exec_keep_value_grad(e, x, &err) == FA_OK);
    CHECK(exec_forward(e, in, &err) == FA_OK);
    CHECK(exec_read_output(e, "y", out, &err) == FA_OK);
    const char *names[1] = {"y"};
    const float *grads[1] = {dy};
    CHECK(exec_backward(e, 1, names, grads, &err) == FA_OK);
    CHECK(exec_read_value_grad(e, x, dx, &err) == FA_OK);
    size_t zeros = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i] == 0.0f) {
            zeros++;
            if (dx[i] != 0.0f) bad++;
        } else {
            if (fabs(out[i] - in[i] / (1 - p)) > 1e-6 * fabs(out[i])) bad++;
            if (fabs(dx[i] - dy[i] / (1 - p)) > 1e-6 + 1e-6 * fabs(dx[i])) bad++;
        }
    }
    double frac = (double)zeros / n;
    /* 4096 Bernoulli(0.3) draws: sd = 0.0072, allow 5 sd. */
    CHECK_MSG(fabs(frac - p) < 0.036, "dropout zero fraction %.4f, expected %.2f", frac, p);
    CHECK_MSG(bad == 0, "dropout: %d values or gradients inconsistent with the mask", bad);
    CHECK(exec_forward(e, in, &err) == FA_OK);
    CHECK(exec_read_output(e, "y", out2, &err) == FA_OK);
    CHECK_MSG(memcmp(out, out2, n * sizeof(float)) != 0, "dropout: second forward reused the mask");
    exec_free(e);
    /* Same seed, same first mask. */
    CHECK(exec_create(&e, g, &eo, &err) == FA_OK);
    if (e) {
        CHECK(exec_forward(e, in, &err) == FA_OK);
        CHECK(exec_read_output(e, "y", out2, &err) == FA_OK);
        CHECK_MSG(memcmp(out, out2, n * sizeof(float)) == 0, "dropout: seed does not reproduce the mask");
        exec_free(e);
    }
    free(in);
    free(out);
    free(out2);
    free(dy);
    free(dx);
    graph_free(g);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int before = fa_test_failures;
        run_case(&cases[i]);
        fprintf(stderr, "%-32s %s\n", cases[i].name, fa_test_failures == before ? "ok" : "FAILED");
    }
    test_dropout_training();
    return fa_test_finish("test_engine_ops");
}
