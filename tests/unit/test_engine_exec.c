/* test_engine_exec.c - the executor as a whole: bad graphs and bad calls give
 * errors (never crashes), memory is reused by liveness, Grad-CAM gradients in
 * an eval-mode executor match their closed form, a small CNN's gradients
 * match finite differences, it trains (loss goes down) in fp32 and bf16, and
 * bf16 stays within bf16 tolerance of fp32.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/exec.h"
#include "engine/graph.h"
#include "engine/optim.h"

FA_TEST_MAIN_STATE

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double srand1(void) { return 2.0 * urand() - 1.0; }

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}

static graph_conv_opts conv_opts(int out, int k, int stride, int pad, int groups) {
    graph_conv_opts o = {.out_channels = out, .kernel_h = k, .kernel_w = k, .stride_h = stride,
                         .stride_w = stride, .pad_h = pad, .pad_w = pad, .dilation_h = 1,
                         .dilation_w = 1, .groups = groups, .bias = 0};
    return o;
}

/* Kaiming-like random init so activations keep a sane scale. */
static void init_random(fa_graph *g, double scale) {
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
        if (strstr(p->name, "bn") && strstr(p->name, ".weight")) {
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(0.8 + 0.4 * urand());
            continue;
        }
        if (p->ndim == 1) {
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(0.1 * srand1());
            continue;
        }
        int64_t fan_in = p->numel / p->shape[0];
        double a = scale * sqrt(3.0 / (double)fan_in);
        for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(a * srand1());
    }
}

/* ---- graph building errors ----------------------------------------------- */

static void test_graph_errors(void) {
    fa_error err = {0};
    fa_graph *g = graph_create(3, 8, 8);
    graph_conv_opts o = conv_opts(4, 3, 1, 1, 2); /* 3 channels, 2 groups */
    CHECK(graph_conv2d(g, "c", graph_input(g), &o) == -1);
    CHECK(graph_status(g, &err) == FA_ERR_SHAPE);
    CHECK(strstr(err.msg, "groups") != NULL);
    /* The first error sticks; later calls return -1. */
    CHECK(graph_relu(g, graph_input(g)) == -1);
    graph_free(g);

    g = graph_create(3, 8, 8);
    CHECK(graph_relu(g, 5) == -1);
    CHECK(graph_status(g, &err) == FA_ERR_ARG);
    graph_free(g);

    g = graph_create(3, 8, 8);
    CHECK(graph_linear(g, "fc", graph_input(g), 2) == -1); /* not Cx1x1 */
    CHECK(graph_status(g, &err) == FA_ERR_SHAPE);
    graph_free(g);

    g = graph_create(3, 8, 8);
    graph_pool_opts po = {.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2, .pad_h = 2, .pad_w = 2};
    CHECK(graph_max_pool2d(g, graph_input(g), &po) == -1); /* padding > kernel/2 */
    CHECK(graph_status(g, &err) == FA_ERR_ARG);
    graph_free(g);

    /* ceil_mode window past the padding with count_include_pad: PyTorch's
     * divisor cannot be expressed; refused rather than computed wrongly. */
    g = graph_create(3, 8, 8);
    graph_pool_opts pc = {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 0,
                          .pad_w = 0, .ceil_mode = 1, .count_include_pad = 1};
    CHECK(graph_avg_pool2d(g, graph_input(g), &pc) == -1);
    CHECK(graph_status(g, &err) == FA_ERR_UNSUPPORTED);
    graph_free(g);

    g = graph_create(3, 8, 8);
    graph_value a = graph_conv2d(g, "same", graph_input(g), &(graph_conv_opts){.out_channels = 3, .kernel_h = 1, .kernel_w = 1, .stride_h = 1, .stride_w = 1, .dilation_h = 1, .dilation_w = 1, .groups = 1});
    CHECK(a > 0);
    CHECK(graph_conv2d(g, "same", a, &(graph_conv_opts){.out_channels = 3, .kernel_h = 1, .kernel_w = 1, .stride_h = 1, .stride_w = 1, .dilation_h = 1, .dilation_w = 1, .groups = 1}) == -1);
    CHECK(graph_status(g, &err) == FA_ERR_ARG && strstr(err.msg, "duplicate"));
    graph_free(g);

    g = graph_create(3, 8, 8);
    graph_value b = graph_relu(g, graph_input(g));
    graph_value c = graph_relu(g, graph_input(g));
    graph_set_name(g, b, "feat");
    graph_set_name(g, c, "feat");
    CHECK(graph_status(g, &err) == FA_ERR_ARG);
    graph_free(g);

    g = graph_create(3, 8, 8);
    graph_value x = graph_input(g);
    graph_value xs[2] = {x, graph_max_pool2d(g, x, &(graph_pool_opts){.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2})};
    CHECK(graph_concat(g, 2, xs) == -1); /* 8x8 vs 4x4 */
    CHECK(graph_status(g, &err) == FA_ERR_SHAPE);
    graph_free(g);

    /* Shapes and parameters of a valid graph, as PyTorch computes them. */
    g = graph_create(3, 224, 224);
    graph_conv_opts stem = conv_opts(64, 7, 2, 3, 1);
    graph_value s = graph_conv2d(g, "conv1", graph_input(g), &stem);
    graph_value bn = graph_batch_norm(g, "bn1", s, 1e-5f, 0.1f);
    graph_pool_opts mp = {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
    graph_value m = graph_max_pool2d(g, graph_relu(g, bn), &mp);
    graph_pool_opts ceil = {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .ceil_mode = 1, .count_include_pad = 1};
    graph_value m2 = graph_max_pool2d(g, m, &ceil); /* 56 -> ceil(53/2)+1 = 28 */
    int cc, hh, ww;
    graph_value_shape(g, s, &cc, &hh, &ww);
    CHECK(cc == 64 && hh == 112 && ww == 112);
    graph_value_shape(g, m, &cc, &hh, &ww);
    CHECK(cc == 64 && hh == 56 && ww == 56);
    graph_value_shape(g, m2, &cc, &hh, &ww);
    CHECK(hh == 28 && ww == 28);
    CHECK(graph_param_count(g) == 6);
    graph_param *nbt = graph_param_find(g, "bn1.num_batches_tracked");
    CHECK(nbt && nbt->kind == GRAPH_PARAM_COUNTER && nbt->count == 0);
    graph_param *rv = graph_param_find(g, "bn1.running_var");
    CHECK(rv && rv->kind == GRAPH_PARAM_BUFFER && rv->data[0] == 1.0f && !rv->grad);
    graph_param *w = graph_param_find(g, "conv1.weight");
    CHECK(w && w->ndim == 4 && w->shape[0] == 64 && w->shape[1] == 3 && w->shape[2] == 7 && w->grad);
    CHECK(graph_trainable_numel(g) == 64 * 3 * 49 + 64 + 64);
    CHECK(graph_status(g, &err) == FA_OK);
    graph_free(g);
}

/* ---- executor errors ----------------------------------------------------- */

static void test_exec_errors(void) {
    fa_error err = {0};
    fa_exec *e = NULL;
    fa_graph *g = graph_create(2, 1, 1);
    graph_value bn = graph_batch_norm(g, "bn", graph_input(g), 1e-5f, 0.1f);
    graph_mark_output(g, bn, "y", 0);
    graph_value aux = graph_relu(g, bn);
    graph_mark_output(g, aux, "aux", 1);
    exec_options eo = {.batch = 0, .precision = FA_PRECISION_FP32};
    CHECK(exec_create(&e, g, &eo, &err) == FA_ERR_ARG && !e);
    eo.batch = 1;
    eo.training = 1;
    /* PyTorch: "Expected more than 1 value per channel when training". */
    CHECK(exec_create(&e, g, &eo, &err) == FA_ERR_SHAPE && !e);
    CHECK(strstr(err.msg, "bn") != NULL);
    eo.training = 0;
    CHECK(exec_create(&e, g, &eo, &err) == FA_OK && e);
    float in[2] = {1, 2}, out[2];
    CHECK(exec_read_output(e, "y", out, &err) != FA_OK); /* no forward yet */
    CHECK(exec_forward(e, NULL, &err) == FA_ERR_ARG);
    CHECK(exec_forward(e, in, &err) == FA_OK);
    CHECK(exec_read_output(e, "y", out, &err) == FA_OK);
    CHECK(exec_read_output(e, "nope", out, &err) == FA_ERR_NOT_FOUND);
    /* training-only output in an eval executor */
    CHECK(exec_read_output(e, "aux", out, &err) == FA_ERR_NOT_FOUND);
    const char *names[1] = {"y"};
    const float *grads[1] = {out};
    CHECK(exec_backward(e, 1, names, grads, &err) == FA_ERR_ARG); /* no keep_for_backward */
    CHECK(exec_keep_value_grad(e, bn, &err) == FA_ERR_ARG);
    exec_free(e);

    eo.keep_for_backward = 1;
    CHECK(exec_create(&e, g, &eo, &err) == FA_OK);
    CHECK(exec_backward(e, 1, names, grads, &err) == FA_ERR_ARG); /* no forward yet */
    CHECK(exec_keep_value_grad(e, graph_input(g), &err) == FA_ERR_UNSUPPORTED);
    CHECK(exec_forward(e, in, &err) == FA_OK);
    const char *bad[1] = {"logits"};
    CHECK(exec_backward(e, 1, bad, grads, &err) == FA_ERR_NOT_FOUND);
    CHECK(exec_backward(e, 1, names, grads, &err) == FA_OK);
    CHECK(exec_backward(e, 1, names, grads, &err) == FA_ERR_ARG); /* needs a new forward */
    exec_free(e);
    graph_free(g);

    /* A graph with no outputs. */
    g = graph_create(2, 4, 4);
    graph_relu(g, graph_input(g));
    eo.keep_for_backward = 0;
    CHECK(exec_create(&e, g, &eo, &err) == FA_ERR_ARG && !e);
    graph_free(g);

    /* A failed build is reported by exec_create, not run. */
    g = graph_create(2, 4, 4);
    CHECK(graph_relu(g, 99) == -1);
    CHECK(exec_create(&e, g, &eo, &err) == FA_ERR_ARG && !e);
    graph_free(g);
    CHECK(exec_create(&e, NULL, &eo, &err) == FA_ERR_ARG);
}

/* ---- a small CNN with every op ------------------------------------------ */

/* input 3xSxS -> conv-bn-relu -> maxpool -> [residual block with add]
 * -> [dense block with concat of a value used twice] -> avgpool(include pad)
 * -> conv -> bn -> relu ("features") -> gap -> dropout -> fc ("logits"),
 * plus a training-only aux head on the block output. */
static fa_graph *build_small_cnn(int size, float dropout) {
    fa_graph *g = graph_create(3, size, size);
    graph_conv_opts c1 = conv_opts(16, 3, 2, 1, 1);
    graph_value x = graph_conv2d(g, "conv1", graph_input(g), &c1);
    x = graph_relu(g, graph_batch_norm(g, "bn1", x, 1e-5f, 0.1f));
    graph_pool_opts mp = {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
    x = graph_max_pool2d(g, x, &mp);
    /* residual block (grouped conv in it, like ResNeXt) */
    graph_conv_opts ca = conv_opts(16, 3, 1, 1, 4);
    graph_value r = graph_relu(g, graph_batch_norm(g, "block.bn_a", graph_conv2d(g, "block.conv_a", x, &ca), 1e-5f, 0.1f));
    graph_conv_opts cb = conv_opts(16, 3, 1, 1, 1);
    r = graph_batch_norm(g, "block.bn_b", graph_conv2d(g, "block.conv_b", r, &cb), 1e-5f, 0.1f);
    x = graph_relu(g, graph_add(g, r, x));
    graph_set_name(g, x, "block");
    /* dense block: concat([x, f(x), x]) */
    graph_conv_opts cd = conv_opts(8, 3, 1, 1, 1);
    graph_value d = graph_conv2d(g, "dense.conv", graph_relu(g, graph_batch_norm(g, "dense.bn", x, 1e-5f, 0.1f)), &cd);
    graph_value parts[3] = {x, d, x};
    x = graph_concat(g, 3, parts);
    graph_pool_opts ap = {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .count_include_pad = 1};
    x = graph_avg_pool2d(g, x, &ap);
    graph_conv_opts cf = conv_opts(24, 1, 1, 0, 1);
    cf.bias = 1;
    x = graph_relu(g, graph_batch_norm(g, "bn_f", graph_conv2d(g, "conv_f", x, &cf), 1e-5f, 0.1f));
    graph_set_name(g, x, "features");
    graph_value p = graph_dropout(g, graph_global_avg_pool(g, x), dropout);
    graph_value logits = graph_linear(g, "fc", p, 1);
    graph_mark_output(g, logits, "logits", 0);
    graph_value aux = graph_linear(g, "aux.fc", graph_global_avg_pool(g, graph_find(g, "block")), 1);
    graph_mark_output(g, aux, "aux_logits", 1);
    return g;
}

/* Loss of the small CNN on (x, t): BCE of logits (+0.4 * BCE of aux in
 * training, as torchvision's Inception recipe). Optionally backward. */
static double cnn_loss(fa_exec *e, const float *x, const float *t, int batch, int training,
                       int backward, fa_error *err) {
    float logits[16], aux[16], dl[16], da[16];
    double loss = 0, la = 0;
    if (exec_forward(e, x, err) != FA_OK) return NAN;
    if (exec_read_output(e, "logits", logits, err) != FA_OK) return NAN;
    if (optim_bce_with_logits(logits, t, batch, 1.5f, &loss, dl, err) != FA_OK) return NAN;
    if (training) {
        if (exec_read_output(e, "aux_logits", aux, err) != FA_OK) return NAN;
        if (optim_bce_with_logits(aux, t, batch, 1.5f, &la, da, err) != FA_OK) return NAN;
        for (int i = 0; i < batch; i++) da[i] *= 0.4f;
        loss += 0.4 * la;
    }
    if (backward) {
        const char *names[2] = {"logits", "aux_logits"};
        const float *grads[2] = {dl, da};
        if (exec_backward(e, training ? 2 : 1, names, grads, err) != FA_OK) return NAN;
    }
    return loss;
}

/* Gradients of the whole CNN against finite differences of its own fp32
 * forward (loose: fp32 noise), for a sample of parameters from every layer.
 * Catches gradients delivered to the wrong place or not summed. */
static void test_cnn_gradients(void) {
    fa_error err = {0};
    const int N = 4, S = 20;
    fa_graph *g = build_small_cnn(S, 0.0f);
    init_random(g, 1.0);
    size_t nx = (size_t)N * 3 * S * S;
    float *x = falloc(nx), t[4] = {1, 0, 1, 0};
    for (size_t i = 0; i < nx; i++) x[i] = (float)srand1();
    exec_options eo = {.batch = N, .precision = FA_PRECISION_FP32, .training = 1, .keep_for_backward = 1, .seed = 3};
    fa_exec *e = NULL;
    if (exec_create(&e, g, &eo, &err) != FA_OK) {
        CHECK_MSG(0, "cnn: %s", err.msg);
        graph_free(g);
        free(x);
        return;
    }
    graph_zero_grad(g);
    double l0 = cnn_loss(e, x, t, N, 1, 1, &err);
    CHECK_MSG(isfinite(l0), "cnn loss: %s", err.msg);
    int checked = 0, bad = 0;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
        double gmax = 0;
        for (int64_t k = 0; k < p->numel; k++) gmax = fmax(gmax, fabs(p->grad[k]));
        for (int s = 0; s < 3; s++) {
            int64_t k = (int64_t)(urand() * (double)p->numel);
            const double h = 2e-3;
            float keep = p->data[k];
            p->data[k] = keep + (float)h;
            double lp = cnn_loss(e, x, t, N, 1, 0, &err);
            p->data[k] = keep - (float)h;
            double lm = cnn_loss(e, x, t, N, 1, 0, &err);
            p->data[k] = keep;
            double fd = (lp - lm) / (2 * h);
            checked++;
            if (!(fabs(fd - p->grad[k]) <= 2e-3 + 3e-2 * fabs(fd) + 1e-2 * gmax)) {
                fprintf(stderr, "cnn grad %s[%lld]: engine %.6g, finite difference %.6g\n", p->name,
                        (long long)k, p->grad[k], fd);
                bad++;
            }
        }
    }
    CHECK_MSG(bad == 0, "cnn: %d of %d parameter gradients differ from finite differences", bad, checked);
    exec_free(e);
    graph_free(g);
    free(x);
}

/* Training decreases the loss: 15 SGD steps on a fixed batch. */
static void train_cnn(fa_precision prec, const char *label) {
    fa_error err = {0};
    const int N = 8, S = 24;
    fa_graph *g = build_small_cnn(S, 0.2f);
    rng_state = 0x5EED5EED12345ull;
    init_random(g, 1.0);
    size_t nx = (size_t)N * 3 * S * S;
    float *x = falloc(nx), t[8];
    /* Learnable: the label is the sign of the mean of channel 0. */
    for (int n = 0; n < N; n++) {
        t[n] = (float)(n % 2);
        for (size_t i = 0; i < (size_t)3 * S * S; i++)
            x[(size_t)n * 3 * S * S + i] = (float)(srand1() + (i < (size_t)S * S ? (t[n] ? 0.5 : -0.5) : 0));
    }
    exec_options eo = {.batch = N, .precision = prec, .training = 1, .keep_for_backward = 1, .seed = 11};
    fa_exec *e = NULL;
    optim_sgd *sgd = NULL;
    optim_sgd_opts so = {.momentum = 0.9f, .weight_decay = 1e-4f};
    if (exec_create(&e, g, &eo, &err) != FA_OK || optim_sgd_create(&sgd, g, &so, &err) != FA_OK) {
        CHECK_MSG(0, "%s: %s", label, err.msg);
        exec_free(e);
        graph_free(g);
        free(x);
        return;
    }
    double first = 0, last = 0;
    for (int step = 0; step < 15; step++) {
        graph_zero_grad(g);
        double l = cnn_loss(e, x, t, N, 1, 1, &err);
        if (!isfinite(l)) {
            CHECK_MSG(0, "%s: step %d: loss %g (%s)", label, step, l, err.msg);
            break;
        }
        if (step == 0) first = l;
        last = l;
        optim_sgd_step(sgd, 0.05f);
    }
    fprintf(stderr, "%s: loss %.4f -> %.4f\n", label, first, last);
    CHECK_MSG(last < 0.5 * first, "%s: loss did not decrease enough: %.4f -> %.4f", label, first, last);
    graph_param *nbt = graph_param_find(g, "bn1.num_batches_tracked");
    CHECK(nbt && nbt->count == 15);
    optim_sgd_free(sgd);
    exec_free(e);
    graph_free(g);
    free(x);
}

/* bf16 vs fp32 on the same weights and input: logits and one training
 * step's gradients. */
static void test_bf16_vs_fp32(void) {
    fa_error err = {0};
    const int N = 4, S = 32;
    fa_graph *g = build_small_cnn(S, 0.0f);
    rng_state = 0xABCDEF123ull;
    init_random(g, 1.0);
    size_t nx = (size_t)N * 3 * S * S;
    float *x = falloc(nx), t[4] = {0, 1, 1, 0};
    for (size_t i = 0; i < nx; i++) x[i] = (float)srand1();
    float l32[4], l16[4];
    int fc_, fh_, fw_;
    graph_value feat = graph_find(g, "features");
    graph_value_shape(g, feat, &fc_, &fh_, &fw_);
    size_t nf = (size_t)N * fc_ * fh_ * fw_;
    float *f32 = falloc(nf), *f16 = falloc(nf);
    int np = graph_param_count(g);
    float **g32 = calloc((size_t)np, sizeof *g32);
    fa_precision precs[2] = {FA_PRECISION_FP32, FA_PRECISION_BF16};
    for (int pi = 0; pi < 2; pi++) {
        exec_options eo = {.batch = N, .precision = precs[pi], .training = 0, .keep_for_backward = 0};
        fa_exec *e = NULL;
        if (exec_create(&e, g, &eo, &err) != FA_OK || exec_keep_value(e, feat, &err) != FA_OK ||
            exec_forward(e, x, &err) != FA_OK ||
            exec_read_output(e, "logits", pi ? l16 : l32, &err) != FA_OK ||
            exec_read_value(e, feat, pi ? f16 : f32, &err) != FA_OK) {
            CHECK_MSG(0, "bf16 vs fp32 eval: %s", err.msg);
            exec_free(e);
            goto out;
        }
        exec_free(e);
    }
    /* One training step each (BN uses batch statistics, so the running
     * statistics the first step updates do not change the second). */
    for (int pi = 0; pi < 2; pi++) {
        exec_options eo = {.batch = N, .precision = precs[pi]};
        fa_exec *e = NULL;
        eo.training = 1;
        eo.keep_for_backward = 1;
        graph_zero_grad(g);
        if (exec_create(&e, g, &eo, &err) != FA_OK || !isfinite(cnn_loss(e, x, t, N, 1, 1, &err))) {
            CHECK_MSG(0, "bf16 vs fp32 train: %s", err.msg);
            exec_free(e);
            goto out;
        }
        exec_free(e);
        for (int i = 0; i < np; i++) {
            graph_param *p = graph_param_at(g, i);
            if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
            if (pi == 0) {
                g32[i] = falloc((size_t)p->numel);
                memcpy(g32[i], p->grad, (size_t)p->numel * sizeof(float));
                continue;
            }
            /* Relative to the layer's gradient scale: bf16 has 8 bits. */
            double num = 0, den = 0;
            for (int64_t k = 0; k < p->numel; k++) {
                num += (p->grad[k] - g32[i][k]) * (double)(p->grad[k] - g32[i][k]);
                den += (double)g32[i][k] * g32[i][k];
            }
            double rel = sqrt(num / (den + 1e-30));
            CHECK_MSG(rel < 0.1 || den < 1e-12, "bf16 gradient of %s differs from fp32 by %.3f (relative L2)", p->name, rel);
        }
    }
    /* Features: relative L2 error of a few bf16 roundings per layer. */
    double num = 0, den = 0;
    for (size_t i = 0; i < nf; i++) {
        num += (f16[i] - f32[i]) * (double)(f16[i] - f32[i]);
        den += (double)f32[i] * f32[i];
    }
    fprintf(stderr, "bf16 vs fp32: features relative L2 error %.4f\n", sqrt(num / den));
    CHECK_MSG(sqrt(num / den) < 2e-2, "bf16 features differ from fp32 by %.4f", sqrt(num / den));
    /* Logits are sums of many terms that cancel: compare on the scale of the
     * terms, sum_c |w_c| * mean |feature_c|. */
    graph_param *fw = graph_param_find(g, "fc.weight");
    for (int n = 0; n < N; n++) {
        double terms = 0;
        for (int c = 0; c < fc_; c++) {
            double m = 0;
            for (int k = 0; k < fh_ * fw_; k++) m += fabs(f32[((size_t)n * fc_ + c) * fh_ * fw_ + k]);
            terms += fabs(fw->data[c]) * m / (fh_ * fw_);
        }
        CHECK_CLOSE(l16[n], l32[n], 2e-2 * terms, 0);
    }
out:
    free(f32);
    free(f16);
    for (int i = 0; i < np; i++) free(g32[i]);
    free(g32);
    graph_free(g);
    free(x);
}

/* ---- Grad-CAM in an eval-mode executor ----------------------------------- */

/* feat -> bn(eval) -> relu -> gap -> fc: d(logit)/d(feat) has a closed form:
 * [bn(feat) > 0] * gamma[c] / sqrt(var[c] + eps) * w[c] / (H*W). */
static void test_gradcam_eval(void) {
    fa_error err = {0};
    const int N = 2, C = 16, S = 6;
    fa_graph *g = graph_create(3, S, S);
    graph_conv_opts c = conv_opts(C, 3, 1, 1, 1);
    graph_value feat = graph_conv2d(g, "conv", graph_input(g), &c);
    graph_set_name(g, feat, "layer4");
    graph_value y = graph_relu(g, graph_batch_norm(g, "bn", feat, 1e-5f, 0.1f));
    graph_value logit = graph_linear(g, "fc", graph_global_avg_pool(g, y), 1);
    graph_mark_output(g, logit, "logits", 0);
    init_random(g, 1.0);
    graph_param *rm = graph_param_find(g, "bn.running_mean"), *rv = graph_param_find(g, "bn.running_var");
    graph_param *gamma = graph_param_find(g, "bn.weight"), *beta = graph_param_find(g, "bn.bias");
    graph_param *w = graph_param_find(g, "fc.weight");
    for (int i = 0; i < C; i++) {
        rm->data[i] = (float)(0.2 * srand1());
        rv->data[i] = (float)(0.5 + urand());
    }
    float rm0 = rm->data[0];
    size_t nx = (size_t)N * 3 * S * S, nf = (size_t)N * C * S * S;
    float *x = falloc(nx), *fv = falloc(nf), *fg = falloc(nf);
    for (size_t i = 0; i < nx; i++) x[i] = (float)srand1();
    exec_options eo = {.batch = N, .precision = FA_PRECISION_FP32, .training = 0, .keep_for_backward = 1};
    fa_exec *e = NULL;
    if (exec_create(&e, g, &eo, &err) != FA_OK) {
        CHECK_MSG(0, "gradcam: %s", err.msg);
        goto out;
    }
    CHECK(exec_keep_value_grad(e, feat, &err) == FA_OK);
    float one[2] = {1, 1};
    const char *names[1] = {"logits"};
    const float *grads[1] = {one};
    CHECK(exec_forward(e, x, &err) == FA_OK);
    CHECK(exec_read_value_grad(e, feat, fg, &err) == FA_ERR_ARG); /* no backward yet */
    CHECK(exec_backward(e, 1, names, grads, &err) == FA_OK);
    /* named value readable in a keep_for_backward executor */
    CHECK(exec_read_value(e, graph_find(g, "layer4"), fv, &err) == FA_OK);
    CHECK(exec_read_value_grad(e, feat, fg, &err) == FA_OK);
    int bad = 0;
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++) {
            double inv = 1.0 / sqrt((double)rv->data[ch] + 1e-5);
            for (int k = 0; k < S * S; k++) {
                size_t idx = ((size_t)n * C + ch) * S * S + k;
                double bn = (fv[idx] - rm->data[ch]) * inv * gamma->data[ch] + beta->data[ch];
                double want = bn > 0 ? gamma->data[ch] * inv * w->data[ch] / (S * S) : 0.0;
                if (fabs(fg[idx] - want) > 1e-6 + 1e-4 * fabs(want)) bad++;
            }
        }
    CHECK_MSG(bad == 0, "gradcam: %d gradients differ from the closed form", bad);
    CHECK(rm->data[0] == rm0); /* eval mode: running stats untouched */
    CHECK(graph_param_find(g, "bn.num_batches_tracked")->count == 0);
    exec_free(e);
out:
    graph_free(g);
    free(x);
    free(fv);
    free(fg);
}

/* ---- memory planning ----------------------------------------------------- */

static void test_memory_reuse(void) {
    fa_error err = {0};
    const int N = 2, C = 32, S = 32, L = 12;
    fa_graph *g = graph_create(C, S, S);
    graph_value x = graph_input(g);
    for (int i = 0; i < L; i++) {
        char name[32];
        snprintf(name, sizeof name, "c%d", i);
        graph_conv_opts c = conv_opts(C, 3, 1, 1, 1);
        x = graph_relu(g, graph_conv2d(g, name, x, &c));
    }
    graph_mark_output(g, graph_linear(g, "fc", graph_global_avg_pool(g, x), 1), "logits", 0);
    init_random(g, 1.0);
    size_t act = (size_t)N * C * S * S * sizeof(float);
    exec_options eo = {.batch = N, .precision = FA_PRECISION_FP32};
    fa_exec *inf = NULL, *tr = NULL;
    CHECK(exec_create(&inf, g, &eo, &err) == FA_OK);
    eo.training = 1;
    eo.keep_for_backward = 1;
    CHECK(exec_create(&tr, g, &eo, &err) == FA_OK);
    if (inf && tr) {
        size_t mi = exec_memory_bytes(inf), mt = exec_memory_bytes(tr);
        fprintf(stderr, "memory: %d layers of %zu KiB: inference %zu KiB, training %zu KiB\n", 2 * L,
                act >> 10, mi >> 10, mt >> 10);
        /* 24 activations of `act` bytes: inference reuses (a few live at
         * once), training keeps what backward needs (about all of them). */
        CHECK_MSG(mi < 6 * act, "inference executor holds %zu bytes for %zu-byte activations", mi, act);
        CHECK(mt > (size_t)L * act);
        /* exec_keep_value on an unnamed value after a forward: replanned. */
        size_t nx = (size_t)N * C * S * S;
        float *in = falloc(nx), *out = falloc(nx), *out2 = falloc(nx);
        for (size_t i = 0; i < nx; i++) in[i] = (float)srand1();
        CHECK(exec_forward(inf, in, &err) == FA_OK);
        graph_value mid = 6; /* the third ReLU output */
        CHECK(exec_read_value(inf, mid, out, &err) == FA_ERR_NOT_FOUND);
        CHECK(exec_keep_value(inf, mid, &err) == FA_OK);
        CHECK(exec_forward(inf, in, &err) == FA_OK);
        CHECK(exec_read_value(inf, mid, out, &err) == FA_OK);
        /* Same value from the training executor (kept the same way). */
        CHECK(exec_keep_value(tr, mid, &err) == FA_OK);
        CHECK(exec_forward(tr, in, &err) == FA_OK);
        CHECK(exec_read_value(tr, mid, out2, &err) == FA_OK);
        double md = 0;
        for (size_t i = 0; i < nx; i++) md = fmax(md, fabs(out[i] - out2[i]));
        CHECK_MSG(md < 1e-4, "kept value differs between executors by %g", md);
        free(in);
        free(out);
        free(out2);
    }
    exec_free(inf);
    exec_free(tr);
    graph_free(g);
}

int main(void) {
    test_graph_errors();
    test_exec_errors();
    test_gradcam_eval();
    test_memory_reuse();
    test_cnn_gradients();
    test_bf16_vs_fp32();
    train_cnn(FA_PRECISION_FP32, "train fp32");
    train_cnn(FA_PRECISION_BF16, "train bf16");
    return fa_test_finish("test_engine_exec");
}
