/* model.c - the architecture registry, shared builder helpers and
 * torchvision's from-scratch initialisation.
 *
 * Initialisation is deterministic and independent of parameter order: each
 * parameter draws from its own splitmix64 stream seeded with
 * splitmix64(seed ^ FNV-1a-64(name)), so re-initialising only the head
 * (model_init_head) gives the same values as a full model_init_weights.
 * Uniforms are the top 53 bits of a draw; normals come from Box-Muller.
 * torch's RNG stream itself is not reproduced (and need not be: parity tests
 * load PyTorch's weights instead).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "models/model.h"
#include "models/model_internal.h"

typedef enum model_family { FAMILY_RESNET, FAMILY_DENSENET, FAMILY_INCEPTION } model_family;

typedef struct model_arch {
    const char *name;
    model_family family;
    int default_size;
    int min_size; /* smallest input whose every feature map is at least 1x1 */
    const char *head;
    const char *cam_layer;
    model_resnet_cfg resnet;
    model_densenet_cfg densenet;
} model_arch;

static const model_arch arches[] = {
    {"resnet18", FAMILY_RESNET, 224, 32, "fc", "layer4", {0, {2, 2, 2, 2}, 1, 64}, {0, {0}, 0, 0}},
    {"resnet50", FAMILY_RESNET, 224, 32, "fc", "layer4", {1, {3, 4, 6, 3}, 1, 64}, {0, {0}, 0, 0}},
    {"resnet101", FAMILY_RESNET, 224, 32, "fc", "layer4", {1, {3, 4, 23, 3}, 1, 64}, {0, {0}, 0, 0}},
    {"resnext50_32x4d", FAMILY_RESNET, 224, 32, "fc", "layer4", {1, {3, 4, 6, 3}, 32, 4}, {0, {0}, 0, 0}},
    {"resnext101_32x8d", FAMILY_RESNET, 224, 32, "fc", "layer4", {1, {3, 4, 23, 3}, 32, 8}, {0, {0}, 0, 0}},
    {"densenet121", FAMILY_DENSENET, 224, 32, "classifier", "features", {0, {0}, 0, 0}, {32, {6, 12, 24, 16}, 64, 4}},
    {"densenet161", FAMILY_DENSENET, 224, 32, "classifier", "features", {0, {0}, 0, 0}, {48, {6, 12, 36, 24}, 96, 4}},
    {"inception_v3", FAMILY_INCEPTION, 299, 75, "fc", "Mixed_7c", {0, {0}, 0, 0}, {0, {0}, 0, 0}},
};
#define N_ARCHES ((int)(sizeof arches / sizeof arches[0]))
/* Inputs beyond this would only exhaust memory; they are refused early. */
#define MODEL_MAX_SIZE 4096
/* Inception's aux head pools Mixed_6e (17x17 at 299) with a 5x5/3 window and
 * then runs a 5x5 convolution: it needs the full 299 pixels. */
#define INCEPTION_AUX_MIN_SIZE 299

static const model_arch *find_arch(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < N_ARCHES; i++)
        if (!strcmp(arches[i].name, name)) return &arches[i];
    return NULL;
}

int model_is_known(const char *arch) { return find_arch(arch) != NULL; }

int model_default_size(const char *arch) {
    const model_arch *a = find_arch(arch);
    return a ? a->default_size : 0;
}

const char *model_head_prefix(const char *arch) {
    const model_arch *a = find_arch(arch);
    return a ? a->head : NULL;
}

const char *model_default_cam_layer(const char *arch) {
    const model_arch *a = find_arch(arch);
    return a ? a->cam_layer : NULL;
}

const char *model_arch_list(void) {
    return "resnet18, resnet50, resnet101, resnext50_32x4d, resnext101_32x8d, densenet121, densenet161, "
           "inception_v3";
}

model_options model_default_options(void) {
    model_options o;
    memset(&o, 0, sizeof o);
    o.num_classes = 1;
    o.image_size = 0;
    o.transform_input = -1;
    o.aux_logits = 1;
    o.dropout = 0.5f;
    return o;
}

/* ---------- builder helpers ---------- */

/* Format a module path; on overflow return 0 so the caller poisons the graph. */
static int vname(char *buf, size_t cap, const char *fmt, va_list ap) {
    int n = vsnprintf(buf, cap, fmt, ap);
    return n > 0 && (size_t)n < cap;
}

graph_value mb_conv(fa_graph *g, graph_value x, int out, int kh, int kw, int sh, int sw, int ph, int pw,
                    int groups, const char *fmt, ...) {
    char name[GRAPH_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    int ok = vname(name, sizeof name, fmt, ap);
    va_end(ap);
    graph_conv_opts o = {out, kh, kw, sh, sw, ph, pw, 1, 1, groups, 0};
    return graph_conv2d(g, ok ? name : "", ok ? x : -1, &o);
}

graph_value mb_bn(fa_graph *g, graph_value x, float eps, const char *fmt, ...) {
    char name[GRAPH_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    int ok = vname(name, sizeof name, fmt, ap);
    va_end(ap);
    return graph_batch_norm(g, ok ? name : "", ok ? x : -1, eps, MODEL_BN_MOMENTUM);
}

graph_value mb_max_pool(fa_graph *g, graph_value x, int k, int s, int p) {
    graph_pool_opts o = {k, k, s, s, p, p, 0, 1};
    return graph_max_pool2d(g, x, &o);
}

graph_value mb_avg_pool(fa_graph *g, graph_value x, int k, int s, int p) {
    graph_pool_opts o = {k, k, s, s, p, p, 0, 1};
    return graph_avg_pool2d(g, x, &o);
}

/* ---------- building ---------- */

fa_status model_build(fa_graph **out, const char *arch, const model_options *opts, fa_error *err) {
    if (!out) return fa_error_set(err, FA_ERR_ARG, "model_build: NULL output");
    *out = NULL;
    const model_arch *a = find_arch(arch);
    if (!a)
        return fa_error_set(err, FA_ERR_ARG, "unknown architecture '%s' (valid: %s)", arch ? arch : "(null)",
                            model_arch_list());
    model_options o = opts ? *opts : model_default_options();
    int size = o.image_size ? o.image_size : a->default_size;
    if (o.num_classes < 1 || o.num_classes > 100000)
        return fa_error_set(err, FA_ERR_ARG, "%s: num_classes %d out of range 1..100000", a->name, o.num_classes);
    int min_size = a->min_size;
    if (a->family == FAMILY_INCEPTION && o.aux_logits) min_size = INCEPTION_AUX_MIN_SIZE;
    if (size < min_size || size > MODEL_MAX_SIZE)
        return fa_error_set(err, FA_ERR_ARG, "%s: image size %d out of range %d..%d%s", a->name, size, min_size,
                            MODEL_MAX_SIZE,
                            a->family == FAMILY_INCEPTION && o.aux_logits ? " (with the aux head)" : "");
    if (!(o.dropout >= 0.0f && o.dropout < 1.0f))
        return fa_error_set(err, FA_ERR_ARG, "%s: dropout %g out of range [0, 1)", a->name, o.dropout);
    o.image_size = size;
    fa_graph *g = graph_create(3, size, size);
    if (!g) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory creating the graph", a->name);
    switch (a->family) {
    case FAMILY_RESNET: model_build_resnet(g, &a->resnet, &o); break;
    case FAMILY_DENSENET: model_build_densenet(g, &a->densenet, &o); break;
    case FAMILY_INCEPTION: model_build_inception_v3(g, &o); break;
    }
    fa_status st = graph_status(g, err);
    if (st) {
        fa_error_prefix(err, "%s", a->name);
        graph_free(g);
        return st;
    }
    *out = g;
    return FA_OK;
}

/* ---------- initialisation ---------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

typedef struct init_rng {
    uint64_t state;
    int has_spare;
    double spare;
} init_rng;

static void rng_seed(init_rng *r, uint64_t seed, const char *name) {
    uint64_t s = seed ^ fnv1a64(name);
    r->state = splitmix64(&s);
    r->has_spare = 0;
}

/* Uniform in [0, 1). */
static double rng_uniform(init_rng *r) { return (double)(splitmix64(&r->state) >> 11) * 0x1.0p-53; }

static double rng_normal(init_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(2.0 * M_PI * u2);
    r->has_spare = 1;
    return rad * cos(2.0 * M_PI * u2);
}

static void fill_normal(float *x, int64_t n, double std, init_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(std * rng_normal(r));
}

/* torch.nn.init.trunc_normal_(mean 0, std, a, b): redraw outside [a, b].
 * torchvision's Inception passes a=-2, b=2 as absolute bounds. */
static void fill_trunc_normal(float *x, int64_t n, double std, double a, double b, init_rng *r) {
    for (int64_t i = 0; i < n; i++) {
        double v;
        do v = std * rng_normal(r);
        while (v < a || v > b);
        x[i] = (float)v;
    }
}

static void fill_uniform(float *x, int64_t n, double bound, init_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

static void fill_const(float *x, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) x[i] = v;
}

/* Module path of a parameter name: everything before the last '.'. */
static size_t module_len(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !memcmp(s + a - b, suffix, b);
}

/* Same rule as weights_load_graph's drop_head_prefix. */
static int in_head(const char *name, const char *head) {
    size_t mlen = module_len(name), plen = strlen(head);
    if (mlen < plen || memcmp(name + mlen - plen, head, plen)) return 0;
    return mlen == plen || name[mlen - plen - 1] == '.';
}

/* The sibling "<module>.weight" of a parameter (to tell BN from linear). */
static const graph_param *sibling_weight(fa_graph *g, const char *name) {
    char w[GRAPH_NAME_MAX + 8];
    size_t m = module_len(name);
    if (m + 8 >= sizeof w) return NULL;
    memcpy(w, name, m);
    memcpy(w + m, ".weight", 8);
    return graph_param_find(g, w);
}

/* Fan-in/fan-out as torch computes them: dim 1 / dim 0 times receptive field. */
static void fans(const graph_param *p, double *fan_in, double *fan_out) {
    double rf = 1.0;
    for (int d = 2; d < p->ndim; d++) rf *= (double)p->shape[d];
    *fan_in = (p->ndim > 1 ? (double)p->shape[1] : 1.0) * rf;
    *fan_out = (double)p->shape[0] * rf;
}

static fa_status init_params(fa_graph *g, const char *arch, uint64_t seed, int head_only, fa_error *err) {
    const model_arch *a = find_arch(arch);
    if (!a)
        return fa_error_set(err, FA_ERR_ARG, "unknown architecture '%s' (valid: %s)", arch ? arch : "(null)",
                            model_arch_list());
    if (!g) return fa_error_set(err, FA_ERR_ARG, "%s: no graph to initialise", a->name);
    int n = graph_param_count(g), touched = 0;
    for (int i = 0; i < n; i++) {
        graph_param *p = graph_param_at(g, i);
        if (head_only && !in_head(p->name, a->head)) continue;
        touched++;
        init_rng r;
        rng_seed(&r, seed, p->name);
        if (p->kind == GRAPH_PARAM_COUNTER) {
            p->count = 0;
            continue;
        }
        if (p->kind == GRAPH_PARAM_BUFFER) {
            fill_const(p->data, p->numel, ends_with(p->name, ".running_var") ? 1.0f : 0.0f);
            continue;
        }
        double fan_in, fan_out;
        if (p->ndim >= 2) { /* conv or linear weight */
            fans(p, &fan_in, &fan_out);
            if (a->family == FAMILY_INCEPTION) {
                double std = 0.1;
                if (!strcmp(p->name, "AuxLogits.conv1.conv.weight")) std = 0.01;
                if (!strcmp(p->name, "AuxLogits.fc.weight")) std = 0.001;
                fill_trunc_normal(p->data, p->numel, std, -2.0, 2.0, &r);
            } else if (p->ndim == 4) {
                /* kaiming_normal_: gain sqrt(2) for relu; ResNet uses fan_out,
                 * DenseNet the default fan_in. */
                double fan = a->family == FAMILY_RESNET ? fan_out : fan_in;
                fill_normal(p->data, p->numel, sqrt(2.0 / fan), &r);
            } else {
                /* nn.Linear default: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)). */
                fill_uniform(p->data, p->numel, 1.0 / sqrt(fan_in), &r);
            }
            continue;
        }
        const graph_param *w = sibling_weight(g, p->name);
        int is_weight = ends_with(p->name, ".weight");
        if (!w || w->ndim == 1) { /* batch norm affine */
            fill_const(p->data, p->numel, is_weight ? 1.0f : 0.0f);
            continue;
        }
        /* A bias of a conv/linear layer. */
        fans(w, &fan_in, &fan_out);
        if (a->family == FAMILY_DENSENET && w->ndim == 2)
            fill_const(p->data, p->numel, 0.0f);
        else
            fill_uniform(p->data, p->numel, 1.0 / sqrt(fan_in), &r);
    }
    if (head_only && !touched)
        return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: graph has no '%s' head", a->name, a->head);
    return FA_OK;
}

fa_status model_init_weights(fa_graph *g, const char *arch, uint64_t seed, fa_error *err) {
    return init_params(g, arch, seed, 0, err);
}

fa_status model_init_head(fa_graph *g, const char *arch, uint64_t seed, fa_error *err) {
    return init_params(g, arch, seed, 1, err);
}
