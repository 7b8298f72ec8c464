/* test_engine_wcache.c - the executor's opt-in weight cache
 * (exec_set_weight_cache / exec_params_changed), fp32 and bf16, inference and
 * training: with the cache on, outputs are bit-identical to an executor
 * without it; after the weights change, the cached executor keeps using the
 * old converted weights (proves the cache is really used) until
 * exec_params_changed, and then matches the uncached executor again; with
 * the cache off (default) a change is seen at the next forward; switching the
 * cache after a forward (re-plan) keeps results identical.
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

static graph_conv_opts conv(int out, int k, int stride, int pad, int groups, int bias) {
    graph_conv_opts o = {.out_channels = out, .kernel_h = k, .kernel_w = k, .stride_h = stride,
                         .stride_w = stride, .pad_h = pad, .pad_w = pad, .dilation_h = 1,
                         .dilation_w = 1, .groups = groups, .bias = bias};
    return o;
}

/* conv(3->32) bn relu, grouped conv(32->32, g 4), 1x1 conv, pool, linear. */
static fa_graph *build(void) {
    fa_graph *g = graph_create(3, 20, 20);
    graph_conv_opts o1 = conv(32, 3, 2, 1, 1, 0), o2 = conv(32, 3, 1, 1, 4, 1), o3 = conv(48, 1, 1, 0, 1, 0);
    graph_value x = graph_conv2d(g, "c1", graph_input(g), &o1);
    x = graph_relu(g, graph_batch_norm(g, "bn1", x, 1e-5f, 0.1f));
    x = graph_relu(g, graph_conv2d(g, "c2", x, &o2));
    x = graph_conv2d(g, "c3", x, &o3);
    x = graph_global_avg_pool(g, x);
    x = graph_linear(g, "fc", x, 3);
    graph_mark_output(g, x, "logits", 0);
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
        double a = p->ndim == 1 ? 0.3 : sqrt(3.0 / (double)(p->numel / p->shape[0]));
        for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(a * srand1()) + (p->ndim == 1 && strstr(p->name, "bn") ? 1.0f : 0.0f);
    }
    return g;
}

static void scale_weights(fa_graph *g, float s) {
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_TRAINABLE && p->ndim > 1)
            for (int64_t k = 0; k < p->numel; k++) p->data[k] *= s;
    }
}

static int forward(fa_exec *e, const float *in, float *out) {
    fa_error err = {0};
    if (exec_forward(e, in, &err) != FA_OK || exec_read_output(e, "logits", out, &err) != FA_OK) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return 0;
    }
    return 1;
}

static int same(const float *a, const float *b, int n) { return !memcmp(a, b, (size_t)n * sizeof *a); }

static void run_case(fa_precision prec, int training) {
    enum { B = 4, N = B * 3 };
    fa_graph *g = build();
    fa_error err = {0};
    float in[B * 3 * 20 * 20];
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) in[i] = (float)srand1();
    /* Training-mode BN updates running stats, which only affect inference:
     * both executors see the same sequence, so outputs stay comparable. */
    exec_options o = {.batch = B, .precision = prec, .training = training,
                      .keep_for_backward = training, .seed = 3};
    fa_exec *plain = NULL, *cached = NULL;
    CHECK(exec_create(&plain, g, &o, &err) == FA_OK);
    CHECK(exec_create(&cached, g, &o, &err) == FA_OK);
    if (!plain || !cached) goto out;
    CHECK(exec_set_weight_cache(cached, 1, &err) == FA_OK);
    float a[N], b[N], c[N];
    CHECK(forward(plain, in, a) && forward(cached, in, b));
    CHECK(same(a, b, N));
    CHECK(forward(cached, in, b)); /* served from the cache */
    CHECK(same(a, b, N));
    scale_weights(g, 0.5f);
    CHECK(forward(plain, in, a)); /* the default sees the change */
    CHECK(forward(cached, in, c));
    CHECK(!same(a, c, N)); /* stale on purpose: the cache is in use */
    exec_params_changed(cached);
    CHECK(forward(cached, in, b));
    CHECK(same(a, b, N));
    /* Switching the cache off re-plans; results stay identical and the next
     * change is seen without exec_params_changed. */
    CHECK(exec_set_weight_cache(cached, 0, &err) == FA_OK);
    scale_weights(g, 2.0f);
    CHECK(forward(plain, in, a) && forward(cached, in, b));
    CHECK(same(a, b, N));
    CHECK(exec_memory_bytes(cached) > 0);
out:
    exec_free(plain);
    exec_free(cached);
    graph_free(g);
}

int main(void) {
    run_case(FA_PRECISION_FP32, 0);
    run_case(FA_PRECISION_FP32, 1);
    run_case(FA_PRECISION_BF16, 0);
    run_case(FA_PRECISION_BF16, 1);
    fa_error err = {0};
    CHECK(exec_set_weight_cache(NULL, 1, &err) != FA_OK);
    exec_params_changed(NULL);
    return fa_test_finish("engine_wcache");
}
