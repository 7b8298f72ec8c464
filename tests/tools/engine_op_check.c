/* engine_op_check.c - run single engine ops on the cases tests/ref/ops_torch.py
 * wrote and compare with PyTorch: forward output, input gradient, parameter
 * gradients, BN running statistics, BCE-with-logits and torch.optim.SGD.
 *
 * usage: engine_op_check CASE.safetensors...
 * Prints one line per case; exits 1 if any case differs or cannot be read.
 *
 * The op's input gets a gradient by feeding it through an identity
 * convolution first (the executor computes none for the graph input):
 *   input -> "pre" (3x3 conv, centre tap 1) -> X -> op -> y.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec.h"
#include "engine/graph.h"
#include "engine/optim.h"
#include "engine/weights.h"

static int failures;

typedef struct op_file {
    const char *path;
    weights_file *f;
    int bad; /* a tensor or key was missing */
} op_file;

static double meta_num(op_file *o, const char *key, double def) {
    const char *v = weights_metadata(o->f, key);
    return v ? atof(v) : def;
}

/* Tensor as fp32 (caller frees); shape into dims (up to 4, missing = 1). */
static float *tensor(op_file *o, const char *name, int64_t *numel, int dims[4]) {
    const weights_tensor *t = weights_find(o->f, name);
    if (!t) {
        printf("FAIL %s: tensor '%s' missing\n", o->path, name);
        o->bad = 1;
        return NULL;
    }
    int64_t n = weights_numel(t);
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    fa_error err = {0};
    if (!buf || weights_read_f32(o->f, t, buf, &err) != FA_OK) {
        printf("FAIL %s: %s: %s\n", o->path, name, err.msg);
        free(buf);
        o->bad = 1;
        return NULL;
    }
    if (numel) *numel = n;
    if (dims)
        for (int i = 0; i < 4; i++) dims[i] = i < t->ndim ? (int)t->shape[i] : 1;
    return buf;
}

/* max|got-want| relative to max|want|; prints and counts a failure. */
static int compare(op_file *o, const char *what, const float *got, const float *want, int64_t n,
                   double tol) {
    double scale = 1e-6, diff = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(want[i]));
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= diff)) {
            diff = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    if (diff / scale <= tol) return 0;
    printf("FAIL %s: %s: max diff %.3g (scale %.3g, tol %.1g), element %lld: got %.8g want %.8g\n",
           o->path, what, diff, scale, tol, (long long)worst, got[worst], want[worst]);
    failures++;
    return 1;
}

static int check_bce(op_file *o) {
    int64_t n;
    float *lg = tensor(o, "logits", &n, NULL), *t = tensor(o, "target", NULL, NULL);
    float *loss = tensor(o, "loss", NULL, NULL), *dl = tensor(o, "dlogits", NULL, NULL);
    int bad = o->bad;
    if (!bad) {
        float *d = malloc((size_t)n * sizeof(float));
        double l = 0;
        fa_error err = {0};
        if (optim_bce_with_logits(lg, t, (int)n, (float)meta_num(o, "pos_weight", 1), &l, d, &err) != FA_OK) {
            printf("FAIL %s: %s\n", o->path, err.msg);
            failures++;
            bad = 1;
        } else {
            float lf = (float)l;
            bad |= compare(o, "loss", &lf, loss, 1, 1e-6);
            bad |= compare(o, "dlogits", d, dl, n, 1e-6);
        }
        free(d);
    }
    free(lg);
    free(t);
    free(loss);
    free(dl);
    return bad;
}

static int check_sgd(op_file *o) {
    int64_t np, nsteps;
    int gd[4];
    float *p0 = tensor(o, "p0", &np, NULL), *grads = tensor(o, "grads", NULL, gd);
    float *lrs = tensor(o, "lrs", &nsteps, NULL), *want = tensor(o, "p", NULL, NULL);
    optim_sgd_opts so = {(float)meta_num(o, "momentum", 0), (float)meta_num(o, "dampening", 0),
                         (float)meta_num(o, "weight_decay", 0), (int)meta_num(o, "nesterov", 0)};
    int bad = o->bad;
    fa_graph *g = graph_create(5, 1, 1);
    graph_mark_output(g, graph_linear(g, "fc", graph_input(g), 4), "y", 0);
    graph_param *w = graph_param_find(g, "fc.weight");
    optim_sgd *s = NULL;
    fa_error err = {0};
    if (!bad && (!w || w->numel != np || optim_sgd_create(&s, g, &so, &err) != FA_OK)) {
        printf("FAIL %s: cannot set up SGD: %s\n", o->path, err.msg);
        failures++;
        bad = 1;
    }
    if (!bad) {
        memcpy(w->data, p0, (size_t)np * sizeof(float));
        for (int64_t k = 0; k < nsteps; k++) {
            memcpy(w->grad, grads + k * np, (size_t)np * sizeof(float));
            optim_sgd_step(s, lrs[k]);
        }
        bad |= compare(o, "parameters after SGD", w->data, want, np, 1e-6);
        if (so.momentum != 0) {
            float *m = tensor(o, "momentum", NULL, NULL);
            float *got = optim_sgd_momentum(s, 0);
            if (m && got) bad |= compare(o, "momentum buffer", got, m, np, 1e-6);
            free(m);
        }
    }
    optim_sgd_free(s);
    graph_free(g);
    free(p0);
    free(grads);
    free(lrs);
    free(want);
    return bad;
}

/* Copy p.<name> from the file into parameter "op.<name>". */
static void load_param(op_file *o, fa_graph *g, const char *name) {
    char key[64], pname[64];
    snprintf(key, sizeof key, "p.%s", name);
    snprintf(pname, sizeof pname, "op.%s", name);
    graph_param *p = graph_param_find(g, pname);
    int64_t n = 0;
    float *v = tensor(o, key, &n, NULL);
    if (!v) return;
    if (!p || p->numel != n) {
        printf("FAIL %s: parameter %s: shape differs from the engine's\n", o->path, pname);
        o->bad = 1;
    } else {
        memcpy(p->data, v, (size_t)n * sizeof(float));
    }
    free(v);
}

static int check_op(op_file *o, const char *op) {
    int xd[4], yd[4];
    int64_t nx, ny;
    float *x = tensor(o, "x", &nx, xd), *R = tensor(o, "R", NULL, NULL);
    float *y = tensor(o, "y", &ny, yd), *dx = tensor(o, "dx", NULL, NULL);
    if (o->bad) {
        failures++;
        free(x), free(R), free(y), free(dx);
        return 1;
    }
    int N = xd[0], C = xd[1], H = xd[2], W = xd[3];
    fa_graph *g = graph_create(C, H, W);
    graph_conv_opts pre = {.out_channels = C, .kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1,
                           .pad_h = 1, .pad_w = 1, .dilation_h = 1, .dilation_w = 1, .groups = 1};
    graph_value X = graph_conv2d(g, "pre", graph_input(g), &pre);
    graph_param *pw = graph_param_find(g, "pre.weight");
    if (pw)
        for (int c = 0; c < C; c++) pw->data[((size_t)c * C + c) * 9 + 4] = 1.0f;
    int training = (int)meta_num(o, "training", 0);
    const char *pnames[4] = {0};
    graph_value Y = -1;
    if (!strcmp(op, "conv")) {
        graph_conv_opts c = {(int)meta_num(o, "out", 0), (int)meta_num(o, "k_h", 0), (int)meta_num(o, "k_w", 0),
                             (int)meta_num(o, "s_h", 1), (int)meta_num(o, "s_w", 1), (int)meta_num(o, "p_h", 0),
                             (int)meta_num(o, "p_w", 0), (int)meta_num(o, "d_h", 1), (int)meta_num(o, "d_w", 1),
                             (int)meta_num(o, "groups", 1), (int)meta_num(o, "bias", 0)};
        Y = graph_conv2d(g, "op", X, &c);
        pnames[0] = "weight";
        if (c.bias) pnames[1] = "bias";
    } else if (!strcmp(op, "bn")) {
        Y = graph_batch_norm(g, "op", X, (float)meta_num(o, "eps", 1e-5), (float)meta_num(o, "momentum", 0.1));
        pnames[0] = "weight";
        pnames[1] = "bias";
    } else if (!strcmp(op, "maxpool") || !strcmp(op, "avgpool")) {
        graph_pool_opts p = {(int)meta_num(o, "k_h", 0), (int)meta_num(o, "k_w", 0), (int)meta_num(o, "s_h", 1),
                             (int)meta_num(o, "s_w", 1), (int)meta_num(o, "p_h", 0), (int)meta_num(o, "p_w", 0),
                             (int)meta_num(o, "ceil", 0), (int)meta_num(o, "include_pad", 1)};
        Y = op[0] == 'm' ? graph_max_pool2d(g, X, &p) : graph_avg_pool2d(g, X, &p);
    } else if (!strcmp(op, "gap_linear")) {
        Y = graph_linear(g, "op", graph_global_avg_pool(g, X), (int)meta_num(o, "out", 1));
        pnames[0] = "weight";
        pnames[1] = "bias";
    } else if (!strcmp(op, "relu")) {
        Y = graph_relu(g, X);
    } else if (!strcmp(op, "affine")) {
        /* torchvision Inception transform_input constants */
        const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
        float sc[3], sh[3];
        for (int i = 0; i < 3; i++) {
            sc[i] = (float)(std[i] / 0.5);
            sh[i] = (float)((mean[i] - 0.5) / 0.5);
        }
        Y = graph_channel_affine(g, X, sc, sh);
    } else {
        printf("FAIL %s: unknown op '%s'\n", o->path, op);
        failures++;
        graph_free(g);
        free(x), free(R), free(y), free(dx);
        return 1;
    }
    graph_mark_output(g, Y, "y", 0);
    fa_error err = {0};
    int bad = 0;
    fa_exec *e = NULL;
    float *gy = NULL, *gdx = NULL;
    if (graph_status(g, &err) != FA_OK) {
        printf("FAIL %s: graph: %s\n", o->path, err.msg);
        bad = 1;
        goto out;
    }
    for (int i = 0; pnames[i]; i++) load_param(o, g, pnames[i]);
    if (!strcmp(op, "bn")) {
        load_param(o, g, "running_mean");
        load_param(o, g, "running_var");
    }
    if (o->bad) {
        bad = 1;
        goto out;
    }
    int yc, yh, yw;
    graph_value_shape(g, Y, &yc, &yh, &yw);
    if ((int64_t)N * yc * yh * yw != ny) {
        printf("FAIL %s: output shape %dx%dx%dx%d, PyTorch has %lld values\n", o->path, N, yc, yh, yw,
               (long long)ny);
        bad = 1;
        goto out;
    }
    exec_options eo = {.batch = N, .precision = FA_PRECISION_FP32, .training = training, .keep_for_backward = 1};
    gy = malloc((size_t)ny * sizeof(float));
    gdx = malloc((size_t)nx * sizeof(float));
    const char *names[1] = {"y"};
    const float *grads[1] = {R};
    if (exec_create(&e, g, &eo, &err) != FA_OK || exec_keep_value_grad(e, X, &err) != FA_OK ||
        exec_forward(e, x, &err) != FA_OK || exec_read_output(e, "y", gy, &err) != FA_OK ||
        exec_backward(e, 1, names, grads, &err) != FA_OK || exec_read_value_grad(e, X, gdx, &err) != FA_OK) {
        printf("FAIL %s: engine: %s\n", o->path, err.msg);
        bad = 1;
        goto out;
    }
    bad |= compare(o, "y", gy, y, ny, 1e-5);
    bad |= compare(o, "dx", gdx, dx, nx, 1e-5);
    for (int i = 0; pnames[i]; i++) {
        char key[64], pname[64];
        snprintf(key, sizeof key, "g.%s", pnames[i]);
        snprintf(pname, sizeof pname, "op.%s", pnames[i]);
        float *want = tensor(o, key, NULL, NULL);
        graph_param *p = graph_param_find(g, pname);
        if (want && p) bad |= compare(o, key, p->grad, want, p->numel, 1e-5);
        free(want);
    }
    if (!strcmp(op, "bn")) {
        const char *st[2] = {"running_mean", "running_var"};
        for (int i = 0; i < 2; i++) {
            char key[64], pname[64];
            snprintf(key, sizeof key, "s.%s", st[i]);
            snprintf(pname, sizeof pname, "op.%s", st[i]);
            float *want = tensor(o, key, NULL, NULL);
            graph_param *p = graph_param_find(g, pname);
            if (want && p) bad |= compare(o, key, p->data, want, p->numel, 1e-6);
            free(want);
        }
        graph_param *nbt = graph_param_find(g, "op.num_batches_tracked");
        if (!nbt || nbt->count != training) {
            printf("FAIL %s: num_batches_tracked %lld, expected %d\n", o->path, nbt ? (long long)nbt->count : -1LL,
                   training);
            bad = 1;
        }
    }
out:
    if (bad && !failures) failures++;
    exec_free(e);
    graph_free(g);
    free(gy);
    free(gdx);
    free(x), free(R), free(y), free(dx);
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: engine_op_check CASE.safetensors...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        op_file o = {argv[i], NULL, 0};
        fa_error err = {0};
        if (weights_open(&o.f, argv[i], &err) != FA_OK) {
            printf("FAIL %s: %s\n", argv[i], err.msg);
            failures++;
            continue;
        }
        const char *op = weights_metadata(o.f, "op");
        int before = failures, bad;
        if (!op) {
            printf("FAIL %s: no 'op' in the metadata\n", argv[i]);
            bad = 1;
        } else if (!strcmp(op, "bce")) {
            bad = check_bce(&o);
        } else if (!strcmp(op, "sgd")) {
            bad = check_sgd(&o);
        } else {
            bad = check_op(&o, op);
        }
        if (bad && failures == before) failures++;
        if (!bad) printf("ok   %s (%s)\n", argv[i], op);
        weights_close(o.f);
    }
    if (failures) printf("engine_op_check: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
