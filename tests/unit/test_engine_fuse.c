/* test_engine_fuse.c - chain fusion of inference executors (convolution +
 * folded BN + residual add + ReLU, BN + ReLU): outputs of a fused executor
 * match those of an executor whose fusions were undone (exec_keep_value on
 * intermediate values), in fp32 and bf16; a kept BN value really is pre-ReLU
 * (has negative entries) while the ReLU value is not; a value with two
 * consumers or a graph output ends a chain (its value stays readable and
 * correct); the last value of a chain is readable when kept; a residual add
 * whose other operand is computed later fuses into the later convolution;
 * the folded BN follows parameter changes (every forward without the
 * weight cache, after exec_params_changed with it); training executors fuse
 * BN + ReLU only (the BN keeps the ReLU mask for backward), with the same
 * loss gradients as when the fusion is undone.
 *
 * Tolerances: the fused convolution applies the BN to its fp32 accumulator
 * (or, where no direct kernel takes that post-op, to its weights) and rounds
 * to bf16 once instead of twice, so fused and unfused results differ by
 * rounding: ~1e-6 relative in fp32, up to a few bf16 ulps (2^-8 relative) in
 * bf16. Any fusion error (a missing BN, ReLU or addend) is O(1) here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/exec.h"
#include "engine/graph.h"

FA_TEST_MAIN_STATE

static uint64_t rng_state = 0x853C49E6748FEA9Bull;
static double srand1(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return 2.0 * (double)(rng_state >> 11) * 0x1.0p-53 - 1.0;
}

enum { B = 2, H = 12 };

typedef struct net {
    fa_graph *g;
    graph_value bn1, relu1, bn2, bn3;
} net;

/* conv bn1 relu1 | conv bn2 (also an output "mid") relu | conv bn3 -> relu
 * and add (two consumers) | pool linear. */
static net build(void) {
    net t;
    fa_graph *g = graph_create(3, H, H);
    graph_conv_opts o = {.out_channels = 16, .kernel_h = 3, .kernel_w = 3, .stride_h = 1,
                         .stride_w = 1, .pad_h = 1, .pad_w = 1, .dilation_h = 1,
                         .dilation_w = 1, .groups = 1, .bias = 0};
    graph_value x = graph_conv2d(g, "c1", graph_input(g), &o);
    t.bn1 = graph_batch_norm(g, "bn1", x, 1e-5f, 0.1f);
    t.relu1 = graph_relu(g, t.bn1);
    x = graph_conv2d(g, "c2", t.relu1, &o);
    t.bn2 = graph_batch_norm(g, "bn2", x, 1e-5f, 0.1f);
    graph_mark_output(g, t.bn2, "mid", 0);
    x = graph_relu(g, t.bn2);
    x = graph_conv2d(g, "c3", x, &o);
    t.bn3 = graph_batch_norm(g, "bn3", x, 1e-5f, 0.1f);
    x = graph_add(g, graph_relu(g, t.bn3), t.bn3);
    x = graph_global_avg_pool(g, x);
    x = graph_linear(g, "fc", x, 2);
    graph_mark_output(g, x, "logits", 0);
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (!p->data) continue;
        int is_var = strstr(p->name, "running_var") != NULL;
        double a = p->ndim == 1 ? 0.5 : sqrt(3.0 / (double)(p->numel / p->shape[0]));
        for (int64_t k = 0; k < p->numel; k++)
            p->data[k] = is_var ? (float)(0.5 + 0.5 * fabs(srand1())) : (float)(a * srand1());
    }
    t.g = g;
    return t;
}

static double tol_of(fa_precision prec) { return prec == FA_PRECISION_BF16 ? 3e-2 : 2e-5; }

static void run_case(fa_precision prec) {
    const double tol = tol_of(prec);
    net t = build();
    fa_error err = {0};
    static float in[B * 3 * H * H];
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) in[i] = (float)srand1();
    exec_options o = {.batch = B, .precision = prec, .training = 0, .keep_for_backward = 0};
    fa_exec *fused = NULL, *plain = NULL;
    CHECK(exec_create(&fused, t.g, &o, &err) == FA_OK);
    CHECK(exec_create(&plain, t.g, &o, &err) == FA_OK);
    if (!fused || !plain) goto out;
    /* Keeping every BN value undoes every fusion of `plain`. */
    CHECK(exec_keep_value(plain, t.bn1, &err) == FA_OK);
    CHECK(exec_keep_value(plain, t.bn3, &err) == FA_OK);
    CHECK(exec_keep_value(fused, t.relu1, &err) == FA_OK); /* an alias: stays fused */
    float a[B * 2], b[B * 2], ma[B * 16 * H * H], mb[B * 16 * H * H];
    CHECK(exec_forward(fused, in, &err) == FA_OK && exec_read_output(fused, "logits", a, &err) == FA_OK);
    CHECK(exec_forward(plain, in, &err) == FA_OK && exec_read_output(plain, "logits", b, &err) == FA_OK);
    for (int i = 0; i < B * 2; i++) CHECK_CLOSE(a[i], b[i], tol, tol);
    CHECK(exec_read_output(fused, "mid", ma, &err) == FA_OK);
    CHECK(exec_read_output(plain, "mid", mb, &err) == FA_OK);
    int neg = 0;
    for (int i = 0; i < B * 16 * H * H; i++) {
        CHECK_CLOSE(ma[i], mb[i], tol, tol);
        neg += ma[i] < 0;
    }
    CHECK(neg > 0); /* bn2 is an output: not fused, so pre-ReLU */
    CHECK(exec_read_value(plain, t.bn1, mb, &err) == FA_OK);
    neg = 0;
    for (int i = 0; i < B * 16 * H * H; i++) neg += mb[i] < 0;
    CHECK(neg > 0); /* unfused on request: pre-ReLU */
    CHECK(exec_read_value(fused, t.relu1, ma, &err) == FA_OK);
    int bad = 0;
    for (int i = 0; i < B * 16 * H * H; i++) {
        float r = mb[i] > 0 ? mb[i] : 0.0f;
        bad += ma[i] < 0 || fabs(ma[i] - r) > tol * (1.0 + fabs(r));
    }
    CHECK(bad == 0); /* fused ReLU value == relu(BN value) */
    /* Unfusing after a forward re-plans and keeps the results. */
    CHECK(exec_keep_value(fused, t.bn1, &err) == FA_OK);
    CHECK(exec_forward(fused, in, &err) == FA_OK && exec_read_output(fused, "logits", a, &err) == FA_OK);
    for (int i = 0; i < B * 2; i++) CHECK_CLOSE(a[i], b[i], tol, tol);
out:
    exec_free(fused);
    exec_free(plain);
    graph_free(t.g);
}

/* Two bottleneck-like residual blocks: in the first the shortcut is the
 * block input (computed before the block's last convolution), in the second
 * a downsampling convolution + BN built after the main branch, so the add
 * fuses into the downsampling convolution instead. */
typedef struct rnet {
    fa_graph *g;
    graph_value bn_a, bn_b, add1, bn_ds, add2, out2;
} rnet;

static rnet build_res(void) {
    rnet t;
    fa_graph *g = graph_create(8, H, H);
    graph_conv_opts o1 = {.out_channels = 8, .kernel_h = 1, .kernel_w = 1, .stride_h = 1,
                          .stride_w = 1, .pad_h = 0, .pad_w = 0, .dilation_h = 1,
                          .dilation_w = 1, .groups = 1, .bias = 0};
    graph_conv_opts o3 = o1;
    o3.kernel_h = o3.kernel_w = 3;
    o3.pad_h = o3.pad_w = 1;
    graph_value x0 = graph_input(g);
    graph_value y = graph_conv2d(g, "b1.conv1", x0, &o1);
    t.bn_a = graph_batch_norm(g, "b1.bn1", y, 1e-5f, 0.1f);
    y = graph_relu(g, t.bn_a);
    o3.bias = 1; /* a convolution bias is folded too */
    y = graph_conv2d(g, "b1.conv2", y, &o3);
    o3.bias = 0;
    t.bn_b = graph_batch_norm(g, "b1.bn2", y, 1e-5f, 0.1f);
    t.add1 = graph_add(g, t.bn_b, x0);
    graph_value x1 = graph_relu(g, t.add1);
    graph_conv_opts o16 = o3;
    o16.out_channels = 16;
    y = graph_conv2d(g, "b2.conv1", x1, &o16);
    y = graph_batch_norm(g, "b2.bn1", y, 1e-5f, 0.1f);
    graph_conv_opts od = o1;
    od.out_channels = 16;
    graph_value sc = graph_conv2d(g, "b2.downsample.0", x1, &od);
    t.bn_ds = graph_batch_norm(g, "b2.downsample.1", sc, 1e-5f, 0.1f);
    t.add2 = graph_add(g, y, t.bn_ds);
    t.out2 = graph_relu(g, t.add2);
    graph_value z = graph_global_avg_pool(g, t.out2);
    z = graph_linear(g, "fc", z, 3);
    graph_mark_output(g, z, "logits", 0);
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (!p->data) continue;
        int is_var = strstr(p->name, "running_var") != NULL;
        double a = p->ndim == 1 ? 0.5 : sqrt(3.0 / (double)(p->numel / p->shape[0]));
        for (int64_t k = 0; k < p->numel; k++)
            p->data[k] = is_var ? (float)(0.5 + 0.5 * fabs(srand1())) : (float)(a * srand1());
    }
    t.g = g;
    return t;
}

enum { RN = B * 16 * H * H };

static int fwd_read(fa_exec *e, const float *in, graph_value v, float *dst, const char *what) {
    fa_error err = {0};
    if (exec_forward(e, in, &err) != FA_OK || exec_read_value(e, v, dst, &err) != FA_OK) {
        fprintf(stderr, "%s: %s\n", what, err.msg);
        return 0;
    }
    return 1;
}

static void run_residual(fa_precision prec) {
    const double tol = tol_of(prec);
    rnet t = build_res();
    fa_error err = {0};
    static float in[B * 8 * H * H], a[RN], b[RN];
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) in[i] = (float)srand1();
    exec_options o = {.batch = B, .precision = prec, .training = 0, .keep_for_backward = 0};
    fa_exec *fused = NULL, *plain = NULL;
    CHECK(exec_create(&fused, t.g, &o, &err) == FA_OK);
    CHECK(exec_create(&plain, t.g, &o, &err) == FA_OK);
    if (!fused || !plain) goto out;
    /* Keeping the BN and add values undoes every chain of `plain`. */
    const graph_value inner[] = {t.bn_a, t.bn_b, t.add1, t.bn_ds, t.add2};
    for (size_t k = 0; k < sizeof inner / sizeof *inner; k++)
        CHECK(exec_keep_value(plain, inner[k], &err) == FA_OK);
    CHECK(exec_keep_value(plain, t.out2, &err) == FA_OK);
    CHECK(exec_keep_value(fused, t.out2, &err) == FA_OK); /* a chain's last value */
    CHECK(fwd_read(fused, in, t.out2, a, "fused") && fwd_read(plain, in, t.out2, b, "plain"));
    int neg = 0, pos = 0;
    for (int i = 0; i < RN; i++) {
        CHECK_CLOSE(a[i], b[i], tol, tol);
        neg += a[i] < 0;
        pos += a[i] > 0;
    }
    CHECK(neg == 0 && pos > RN / 8); /* the ReLU after the add ran */
    float la[B * 3], lb[B * 3];
    CHECK(exec_read_output(fused, "logits", la, &err) == FA_OK);
    CHECK(exec_read_output(plain, "logits", lb, &err) == FA_OK);
    for (int i = 0; i < B * 3; i++) CHECK_CLOSE(la[i], lb[i], tol, tol);
    /* The pre-ReLU sum is readable where unfused, and relu(it) is the output. */
    CHECK(exec_read_value(plain, t.add2, b, &err) == FA_OK);
    neg = 0;
    for (int i = 0; i < RN; i++) {
        neg += b[i] < 0;
        CHECK_CLOSE(a[i], b[i] > 0 ? b[i] : 0.0, tol, tol);
    }
    CHECK(neg > 0);
    /* The folded BN follows parameter changes: a new running_var changes
     * the output at the next forward without the weight cache... */
    graph_param *var = graph_param_find(t.g, "b2.downsample.1.running_var");
    CHECK(var != NULL);
    if (!var) goto out;
    for (int64_t k = 0; k < var->numel; k++) var->data[k] *= 4.0f;
    CHECK(fwd_read(fused, in, t.out2, a, "fused") && fwd_read(plain, in, t.out2, b, "plain"));
    double moved = 0;
    for (int i = 0; i < RN; i++) CHECK_CLOSE(a[i], b[i], tol, tol);
    /* ...and with it after exec_params_changed (the documented contract;
     * where the BN is applied as post-ops rather than folded into the
     * cached weights it is seen even earlier). */
    static float c[RN];
    CHECK(exec_set_weight_cache(fused, 1, &err) == FA_OK);
    CHECK(fwd_read(fused, in, t.out2, c, "cached"));
    for (int k = 0; k < var->numel; k++) var->data[k] *= 0.25f;
    exec_params_changed(fused);
    CHECK(fwd_read(fused, in, t.out2, c, "refreshed") && fwd_read(plain, in, t.out2, b, "plain"));
    moved = 0;
    for (int i = 0; i < RN; i++) {
        CHECK_CLOSE(c[i], b[i], tol, tol);
        moved += fabs((double)c[i] - a[i]);
    }
    CHECK(moved > 1e-3);
    /* Unfusing a chain after a forward re-plans and gives the same result. */
    CHECK(exec_keep_value(fused, t.bn_ds, &err) == FA_OK);
    CHECK(fwd_read(fused, in, t.out2, a, "unfused"));
    for (int i = 0; i < RN; i++) CHECK_CLOSE(a[i], b[i], tol, tol);
out:
    exec_free(fused);
    exec_free(plain);
    graph_free(t.g);
}

/* One forward + backward of a training executor; the gradients of every
 * trainable parameter are appended to g (zeroed first). */
static size_t train_grads(fa_exec *e, fa_graph *g, const float *in, float *grads, size_t cap) {
    fa_error err = {0};
    graph_zero_grad(g);
    float dlog[B * 3];
    for (int i = 0; i < B * 3; i++) dlog[i] = (float)(0.25 * (i + 1) - 0.6);
    const char *names[1] = {"logits"};
    const float *gr[1] = {dlog};
    if (exec_forward(e, in, &err) != FA_OK || exec_backward(e, 1, names, gr, &err) != FA_OK) {
        fprintf(stderr, "train: %s\n", err.msg);
        return 0;
    }
    size_t n = 0;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (!p->grad) continue;
        for (int64_t k = 0; k < p->numel && n < cap; k++) grads[n++] = p->grad[k];
    }
    return n;
}

static void run_training(fa_precision prec) {
    const double tol = tol_of(prec);
    rnet t = build_res();
    fa_error err = {0};
    static float in[B * 8 * H * H], ga[8192], gb[8192];
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) in[i] = (float)srand1();
    exec_options o = {.batch = B, .precision = prec, .training = 1, .keep_for_backward = 1};
    fa_exec *fused = NULL, *plain = NULL;
    CHECK(exec_create(&fused, t.g, &o, &err) == FA_OK);
    CHECK(exec_create(&plain, t.g, &o, &err) == FA_OK);
    if (!fused || !plain) goto out;
    CHECK(exec_keep_value(plain, t.bn_a, &err) == FA_OK); /* undoes bn1 + ReLU */
    size_t na = train_grads(fused, t.g, in, ga, 8192);
    size_t nb = train_grads(plain, t.g, in, gb, 8192);
    CHECK(na > 1000 && na == nb);
    double scale = 0;
    for (size_t i = 0; i < na; i++) scale = fmax(scale, fabs(gb[i]));
    CHECK(scale > 1e-3);
    for (size_t i = 0; i < na && i < nb; i++) CHECK_CLOSE(ga[i], gb[i], tol * scale, tol);
out:
    exec_free(fused);
    exec_free(plain);
    graph_free(t.g);
}

int main(void) {
    run_case(FA_PRECISION_FP32);
    run_case(FA_PRECISION_BF16);
    run_residual(FA_PRECISION_FP32);
    run_residual(FA_PRECISION_BF16);
    run_training(FA_PRECISION_FP32);
    run_training(FA_PRECISION_BF16);
    return fa_test_finish("engine_fuse");
}
