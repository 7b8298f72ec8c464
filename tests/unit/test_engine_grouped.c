/* test_engine_grouped.c - training gradients of grouped convolutions with 8
 * channels per group (ResNeXt-101 32x8d's layer1 shape class), whose bf16
 * backward-weights primitive oneDNN 2.6 only has as a reference kernel: the
 * backend then computes it from fp32 copies of src and diff_dst. The bf16
 * executor's parameter gradients must match the fp32 executor's within bf16
 * rounding, for groups of 8 and (as a control) 16 channels.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/exec.h"
#include "engine/graph.h"

FA_TEST_MAIN_STATE

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static double srand1(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return 2.0 * (double)(rng_state >> 11) * 0x1.0p-53 - 1.0;
}

enum { B = 2, C = 32, H = 10, NGRAD = 16384 };

static fa_graph *build(int per_group) {
    fa_graph *g = graph_create(C, H, H);
    graph_conv_opts o = {.out_channels = C, .kernel_h = 3, .kernel_w = 3, .stride_h = 1,
                         .stride_w = 1, .pad_h = 1, .pad_w = 1, .dilation_h = 1,
                         .dilation_w = 1, .groups = C / per_group, .bias = 0};
    graph_value x = graph_conv2d(g, "conv", graph_input(g), &o);
    x = graph_batch_norm(g, "bn", x, 1e-5f, 0.1f);
    x = graph_relu(g, x);
    x = graph_global_avg_pool(g, x);
    x = graph_linear(g, "fc", x, 2);
    graph_mark_output(g, x, "logits", 0);
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (!p->data || p->kind != GRAPH_PARAM_TRAINABLE) continue;
        double a = p->ndim == 1 ? 0.5 : sqrt(3.0 / (double)(p->numel / p->shape[0]));
        for (int64_t k = 0; k < p->numel; k++)
            p->data[k] = (float)(p->ndim == 1 && strstr(p->name, "bn.weight") ? 1.0 + a * srand1()
                                                                            : a * srand1());
    }
    return g;
}

/* One forward + backward; the gradient of the convolution weight into out. */
static int64_t conv_grad(fa_graph *g, fa_precision prec, const float *in, float *out) {
    fa_error err = {0};
    exec_options o = {.batch = B, .precision = prec, .training = 1, .keep_for_backward = 1};
    fa_exec *e = NULL;
    if (exec_create(&e, g, &o, &err) != FA_OK) {
        fprintf(stderr, "exec_create: %s\n", err.msg);
        return 0;
    }
    graph_zero_grad(g);
    float dlog[B * 2] = {0.5f, -1.0f, 0.25f, 0.75f};
    const char *names[1] = {"logits"};
    const float *gr[1] = {dlog};
    int64_t n = 0;
    if (exec_forward(e, in, &err) == FA_OK && exec_backward(e, 1, names, gr, &err) == FA_OK) {
        graph_param *w = graph_param_find(g, "conv.weight");
        if (w && w->numel <= NGRAD) {
            memcpy(out, w->grad, (size_t)w->numel * sizeof(float));
            n = w->numel;
        }
    } else {
        fprintf(stderr, "train step: %s\n", err.msg);
    }
    exec_free(e);
    return n;
}

static void run_case(int per_group) {
    fa_graph *g = build(per_group);
    static float in[B * C * H * H], g32[NGRAD], g16[NGRAD];
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) in[i] = (float)srand1();
    int64_t n32 = conv_grad(g, FA_PRECISION_FP32, in, g32);
    int64_t n16 = conv_grad(g, FA_PRECISION_BF16, in, g16);
    CHECK(n32 > 0 && n32 == n16);
    double scale = 0, err2 = 0, ref2 = 0;
    for (int64_t i = 0; i < n32 && i < n16; i++) {
        scale = fmax(scale, fabs(g32[i]));
        err2 += ((double)g16[i] - g32[i]) * ((double)g16[i] - g32[i]);
        ref2 += (double)g32[i] * g32[i];
    }
    CHECK(scale > 1e-4);
    /* bf16 activations and weights: a few 2^-8 relative in L2. */
    double rel = ref2 > 0 ? sqrt(err2 / ref2) : 1.0;
    if (!(rel < 0.05)) fprintf(stderr, "groups of %d: relative L2 error %g\n", per_group, rel);
    CHECK(rel < 0.05);
    graph_free(g);
}

int main(void) {
    run_case(8);
    run_case(16);
    return fa_test_finish("engine_grouped");
}
