/* test_engine_fuse.c - BN -> ReLU fusion of inference executors: outputs of
 * a fused executor equal those of a training-free executor whose fusion was
 * undone (exec_keep_value on the BN value), in fp32 and bf16; the kept BN
 * value really is pre-ReLU (has negative entries) while the ReLU value is
 * not; a BN with two consumers or a BN that is a graph output is not fused
 * (its value stays readable and correct); ReLU values of fused pairs are
 * readable when kept.
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

static void run_case(fa_precision prec) {
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
    for (int i = 0; i < B * 2; i++) CHECK_CLOSE(a[i], b[i], 1e-6, 1e-6);
    CHECK(exec_read_output(fused, "mid", ma, &err) == FA_OK);
    CHECK(exec_read_output(plain, "mid", mb, &err) == FA_OK);
    int neg = 0;
    for (int i = 0; i < B * 16 * H * H; i++) {
        CHECK_CLOSE(ma[i], mb[i], 1e-6, 1e-6);
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
        bad += ma[i] < 0 || fabsf(ma[i] - (mb[i] > 0 ? mb[i] : 0.0f)) > 1e-5f;
    }
    CHECK(bad == 0); /* fused ReLU value == relu(BN value) */
    /* Unfusing after a forward re-plans and keeps the results. */
    CHECK(exec_keep_value(fused, t.bn1, &err) == FA_OK);
    CHECK(exec_forward(fused, in, &err) == FA_OK && exec_read_output(fused, "logits", a, &err) == FA_OK);
    for (int i = 0; i < B * 2; i++) CHECK_CLOSE(a[i], b[i], 1e-6, 1e-6);
out:
    exec_free(fused);
    exec_free(plain);
    graph_free(t.g);
}

int main(void) {
    run_case(FA_PRECISION_FP32);
    run_case(FA_PRECISION_BF16);
    return fa_test_finish("engine_fuse");
}
