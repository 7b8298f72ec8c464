/* test_optim_sgd.c - torch.optim.SGD and BCEWithLogitsLoss against their
 * definitions, computed independently here in double precision:
 *   SGD (torch/optim/sgd.py): g = grad + wd*p; buf = g on the first step,
 *   else momentum*buf + (1-dampening)*g; g = g + momentum*buf (nesterov) or
 *   buf; p -= lr*g.
 *   BCE: mean of -[pw*y*log(sigmoid(x)) + (1-y)*log(1-sigmoid(x))].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/graph.h"
#include "engine/optim.h"

FA_TEST_MAIN_STATE

static uint64_t rng_state = 0xC0FFEE1234567ull;
static double srand1(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return 2.0 * ((double)(rng_state >> 11) * 0x1.0p-53) - 1.0;
}

static void test_bce(void) {
    fa_error err = {0};
    enum { N = 7 };
    float x[N] = {-3.0f, -0.5f, 0.0f, 0.25f, 2.0f, 8.0f, -1.25f};
    float y[N] = {1, 0, 1, 0, 1, 0, 0.3f}; /* soft label too */
    float pws[3] = {1.0f, 2.5f, 0.4f};
    for (int k = 0; k < 3; k++) {
        double loss = 0, want = 0;
        float d[N];
        CHECK(optim_bce_with_logits(x, y, N, pws[k], &loss, d, &err) == FA_OK);
        for (int i = 0; i < N; i++) {
            double s = 1.0 / (1.0 + exp(-(double)x[i]));
            want += -(pws[k] * (double)y[i] * log(s) + (1.0 - y[i]) * log(1 - s));
        }
        want /= N;
        CHECK_CLOSE(loss, want, 1e-9, 1e-9);
        /* gradient: central differences of the definition */
        for (int i = 0; i < N; i++) {
            const double h = 1e-5;
            double lp = 0, lm = 0;
            for (int j = 0; j < N; j++) {
                double xj = x[j];
                for (int sgn = -1; sgn <= 1; sgn += 2) {
                    double xv = xj + (j == i ? sgn * h : 0);
                    double s = 1.0 / (1.0 + exp(-xv));
                    double l = -(pws[k] * (double)y[j] * log(s) + (1.0 - y[j]) * log(1 - s));
                    if (sgn > 0) lp += l; else lm += l;
                }
            }
            CHECK_CLOSE(d[i], (lp - lm) / (2 * h) / N, 1e-7, 1e-5);
        }
    }
    /* Extreme logits stay finite (log-sum-exp form), and are exact. */
    float big[2] = {100.0f, -100.0f}, t[2] = {0, 1};
    double loss = 0;
    float d[2];
    CHECK(optim_bce_with_logits(big, t, 2, 1.0f, &loss, d, &err) == FA_OK);
    CHECK_CLOSE(loss, 100.0, 1e-9, 1e-9);
    CHECK_CLOSE(d[0], 0.5, 1e-7, 0);
    CHECK_CLOSE(d[1], -0.5, 1e-7, 0);
    float nan_logit[1] = {NAN}, one[1] = {1};
    CHECK(optim_bce_with_logits(nan_logit, one, 1, 1.0f, &loss, NULL, &err) == FA_ERR_NUMERIC);
    CHECK(optim_bce_with_logits(x, y, 0, 1.0f, &loss, NULL, &err) == FA_ERR_ARG);
    CHECK(optim_bce_with_logits(x, y, N, -1.0f, &loss, NULL, &err) == FA_ERR_ARG);
}

/* Run `steps` SGD steps on a linear layer's parameters with gradients
 * drawn afresh each step, against the recurrence in double. */
static void run_sgd(optim_sgd_opts o, const char *label) {
    fa_error err = {0};
    fa_graph *g = graph_create(5, 1, 1);
    graph_value v = graph_linear(g, "fc", graph_input(g), 3);
    graph_value b = graph_batch_norm(g, "bn", v, 1e-5f, 0.1f);
    graph_mark_output(g, b, "y", 0);
    CHECK(graph_status(g, &err) == FA_OK);
    int np = graph_param_count(g);
    double *p[8] = {0}, *buf[8] = {0};
    for (int i = 0; i < np; i++) {
        graph_param *gp = graph_param_at(g, i);
        if (!gp->data) continue;
        p[i] = calloc((size_t)gp->numel, sizeof(double));
        buf[i] = calloc((size_t)gp->numel, sizeof(double));
        for (int64_t k = 0; k < gp->numel; k++) p[i][k] = gp->data[k] = (float)srand1();
    }
    float rv0 = graph_param_find(g, "bn.running_var")->data[0];
    optim_sgd *s = NULL;
    if (optim_sgd_create(&s, g, &o, &err) != FA_OK) {
        CHECK_MSG(0, "%s: %s", label, err.msg);
        goto out;
    }
    CHECK(optim_sgd_momentum(s, 0) == NULL); /* before the first step */
    const float lr[5] = {0.1f, 0.1f, 0.05f, 0.05f, 0.01f};
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < np; i++) {
            graph_param *gp = graph_param_at(g, i);
            if (gp->kind != GRAPH_PARAM_TRAINABLE) continue;
            for (int64_t k = 0; k < gp->numel; k++) {
                gp->grad[k] = (float)srand1();
                double d = gp->grad[k];
                if (o.weight_decay != 0) d += o.weight_decay * p[i][k];
                if (o.momentum != 0) {
                    buf[i][k] = step == 0 ? d : o.momentum * buf[i][k] + (1 - o.dampening) * d;
                    d = o.nesterov ? d + o.momentum * buf[i][k] : buf[i][k];
                }
                p[i][k] -= lr[step] * d;
            }
        }
        optim_sgd_step(s, lr[step]);
    }
    int bad = 0;
    for (int i = 0; i < np; i++) {
        graph_param *gp = graph_param_at(g, i);
        if (gp->kind != GRAPH_PARAM_TRAINABLE) continue;
        for (int64_t k = 0; k < gp->numel; k++)
            if (fabs(gp->data[k] - p[i][k]) > 1e-6 + 1e-5 * fabs(p[i][k])) bad++;
        if (o.momentum != 0) {
            float *m = optim_sgd_momentum(s, i);
            CHECK(m != NULL);
            for (int64_t k = 0; m && k < gp->numel; k++)
                if (fabs(m[k] - buf[i][k]) > 1e-6 + 1e-5 * fabs(buf[i][k])) bad++;
        } else {
            CHECK(optim_sgd_momentum(s, i) == NULL);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d values differ from the torch.optim.SGD recurrence", label, bad);
    CHECK(optim_sgd_has_momentum(s) == (o.momentum != 0));
    /* Buffers are not trainable: untouched. */
    CHECK(graph_param_find(g, "bn.running_var")->data[0] == rv0);
    CHECK(optim_sgd_momentum(s, graph_param_count(g) - 1) == NULL);
out:
    optim_sgd_free(s);
    for (int i = 0; i < 8; i++) {
        free(p[i]);
        free(buf[i]);
    }
    graph_free(g);
}

/* Resume: a new optimiser given the momentum buffers and set_started
 * continues exactly like the original one. */
static void test_resume(void) {
    fa_error err = {0};
    fa_graph *g = graph_create(4, 1, 1);
    graph_mark_output(g, graph_linear(g, "fc", graph_input(g), 2), "y", 0);
    graph_param *w = graph_param_find(g, "fc.weight");
    for (int k = 0; k < 8; k++) w->data[k] = (float)srand1();
    optim_sgd_opts o = {.momentum = 0.9f, .weight_decay = 1e-3f};
    optim_sgd *a = NULL, *b = NULL;
    CHECK(optim_sgd_create(&a, g, &o, &err) == FA_OK);
    for (int k = 0; k < 8; k++) w->grad[k] = (float)srand1();
    optim_sgd_step(a, 0.1f);
    float saved_w[8], saved_m[8];
    memcpy(saved_w, w->data, sizeof saved_w);
    memcpy(saved_m, optim_sgd_momentum(a, 0), sizeof saved_m);
    for (int k = 0; k < 8; k++) w->grad[k] = (float)srand1();
    optim_sgd_step(a, 0.1f);
    float after_a[8];
    memcpy(after_a, w->data, sizeof after_a);
    /* rewind and resume with a fresh optimiser */
    memcpy(w->data, saved_w, sizeof saved_w);
    CHECK(optim_sgd_create(&b, g, &o, &err) == FA_OK);
    optim_sgd_set_started(b, 1);
    memcpy(optim_sgd_momentum(b, 0), saved_m, sizeof saved_m);
    optim_sgd_step(b, 0.1f);
    for (int k = 0; k < 8; k++) CHECK(w->data[k] == after_a[k]);
    optim_sgd_free(a);
    optim_sgd_free(b);
    /* torch refuses nesterov with dampening or without momentum */
    optim_sgd_opts bad = {.momentum = 0.0f, .nesterov = 1};
    CHECK(optim_sgd_create(&a, g, &bad, &err) == FA_ERR_ARG && !a);
    graph_free(g);
}

int main(void) {
    test_bce();
    run_sgd((optim_sgd_opts){0}, "plain");
    run_sgd((optim_sgd_opts){.momentum = 0.9f}, "momentum");
    run_sgd((optim_sgd_opts){.momentum = 0.9f, .dampening = 0.3f, .weight_decay = 1e-2f}, "dampening+wd");
    run_sgd((optim_sgd_opts){.momentum = 0.8f, .weight_decay = 5e-4f, .nesterov = 1}, "nesterov");
    run_sgd((optim_sgd_opts){.weight_decay = 0.1f}, "weight decay only");
    test_resume();
    return fa_test_finish("test_optim_sgd");
}
