/* test_models_build.c - model builders: parameter counts, outputs, named
 * values, size limits, and torchvision's initialisation schemes.
 *
 * References: parameter counts are torchvision 0.14's (sum of p.numel() over
 * model.parameters() for num_classes 1 and 1000, the latter being the
 * published ImageNet model sizes); initialisation is checked against the
 * distributions torchvision's constructors specify (kaiming normal fan_out /
 * fan_in, nn.Linear's U(+-1/sqrt(fan_in)), Inception's truncated normal with
 * per-module standard deviations). Exact names and shapes are compared with
 * torchvision itself in tests/integration/test_parity_names.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/graph.h"
#include "models/model.h"

FA_TEST_MAIN_STATE

typedef struct arch_ref {
    const char *name;
    int state_dict_entries;
    int64_t params_1, params_1000;
} arch_ref;

static const arch_ref refs[] = {
    {"resnet18", 122, 11177025, 11689512},
    {"resnet50", 320, 23510081, 25557032},
    {"resnet101", 626, 42502209, 44549160},
    {"resnext50_32x4d", 320, 22981953, 25028904},
    {"resnext101_32x8d", 626, 86744385, 88791336},
    {"densenet121", 727, 6954881, 7978856},
    {"densenet161", 967, 26474209, 28681000},
    {"inception_v3", 580, 24346082, 27161264},
};

static fa_graph *build(const char *arch, int classes, int size, int aux) {
    model_options o = model_default_options();
    o.num_classes = classes;
    o.image_size = size;
    o.aux_logits = aux;
    fa_graph *g = NULL;
    fa_error err = {0};
    fa_status st = model_build(&g, arch, &o, &err);
    CHECK_MSG(st == FA_OK, "%s: %s", arch, err.msg);
    return g;
}

static void test_counts_and_outputs(void) {
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        const arch_ref *r = &refs[i];
        CHECK(model_is_known(r->name));
        fa_graph *g = build(r->name, 1, 0, 1);
        if (!g) continue;
        CHECK_MSG(graph_param_count(g) == r->state_dict_entries, "%s: %d entries", r->name, graph_param_count(g));
        CHECK_MSG(graph_trainable_numel(g) == r->params_1, "%s: %lld params", r->name,
                  (long long)graph_trainable_numel(g));
        int c, h, w;
        graph_value logits = graph_find(g, "logits");
        CHECK(logits >= 0);
        graph_value_shape(g, logits, &c, &h, &w);
        CHECK(c == 1 && h == 1 && w == 1);
        graph_value cam = graph_find(g, model_default_cam_layer(r->name));
        CHECK_MSG(cam >= 0, "%s: no CAM layer %s", r->name, model_default_cam_layer(r->name));
        graph_value_shape(g, cam, &c, &h, &w);
        int expect_hw = strcmp(r->name, "inception_v3") ? 7 : 8;
        CHECK_MSG(h == expect_hw && w == expect_hw, "%s: CAM layer %dx%d", r->name, h, w);
        /* The head prefix names real parameters. */
        char head[64];
        snprintf(head, sizeof head, "%s.weight", model_head_prefix(r->name));
        CHECK(graph_param_find(g, head) != NULL);
        int is_inception = !strcmp(r->name, "inception_v3");
        CHECK((graph_find(g, "aux_logits") >= 0) == is_inception);
        CHECK(model_default_size(r->name) == (is_inception ? 299 : 224));
        graph_free(g);

        g = build(r->name, 1000, 0, 1);
        if (g) {
            CHECK_MSG(graph_trainable_numel(g) == r->params_1000, "%s: %lld params with 1000 classes", r->name,
                      (long long)graph_trainable_numel(g));
            graph_free(g);
        }
    }
    /* Every named value the model.h contract promises. */
    fa_graph *g = build("densenet121", 1, 0, 1);
    const char *dn[] = {"features.denseblock1", "features.denseblock4", "features.transition1",
                        "features.transition3", "features"};
    for (int i = 0; g && i < 5; i++) CHECK_MSG(graph_find(g, dn[i]) >= 0, "densenet121: no %s", dn[i]);
    graph_free(g);
    g = build("resnet50", 1, 0, 1);
    const char *rn[] = {"layer1", "layer2", "layer3", "layer4"};
    for (int i = 0; g && i < 4; i++) CHECK(graph_find(g, rn[i]) >= 0);
    graph_free(g);
    g = build("inception_v3", 1, 0, 1);
    const char *in[] = {"Mixed_5b", "Mixed_6a", "Mixed_6e", "Mixed_7a", "Mixed_7c"};
    for (int i = 0; g && i < 5; i++) CHECK(graph_find(g, in[i]) >= 0);
    graph_free(g);
}

static void test_errors(void) {
    fa_graph *g = (fa_graph *)1;
    fa_error err = {0};
    model_options o = model_default_options();
    CHECK(model_build(&g, "resnet34", &o, &err) == FA_ERR_ARG && g == NULL);
    CHECK(strstr(err.msg, "resnet34") && strstr(err.msg, "densenet161") && strstr(err.msg, "inception_v3"));
    CHECK(!model_is_known("resnet34") && !model_is_known(NULL) && model_default_size("x") == 0);
    CHECK(strstr(model_arch_list(), "resnext101_32x8d") != NULL);
    /* Size limits: the aux head needs 299; without it Inception takes 75. */
    o.image_size = 298;
    CHECK(model_build(&g, "inception_v3", &o, &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "299") != NULL);
    o.aux_logits = 0;
    o.image_size = 75;
    CHECK(model_build(&g, "inception_v3", &o, &err) == FA_OK);
    graph_free(g);
    o.image_size = 74;
    CHECK(model_build(&g, "inception_v3", &o, &err) == FA_ERR_ARG);
    o.image_size = 31;
    CHECK(model_build(&g, "resnet18", &o, &err) == FA_ERR_ARG);
    o.image_size = 32;
    CHECK(model_build(&g, "densenet121", &o, &err) == FA_OK);
    graph_free(g);
    o.image_size = 0;
    o.num_classes = 0;
    CHECK(model_build(&g, "resnet18", &o, &err) == FA_ERR_ARG);
    o.num_classes = 1;
    o.dropout = 1.0f;
    CHECK(model_build(&g, "inception_v3", &o, &err) == FA_ERR_ARG);
    CHECK(model_init_weights(NULL, "resnet18", 1, &err) != FA_OK);
}

/* Mean and sample standard deviation of a parameter. */
static void stats(const graph_param *p, double *mean, double *std, double *amax) {
    double s = 0, s2 = 0, m = 0;
    for (int64_t i = 0; i < p->numel; i++) {
        s += p->data[i];
        s2 += (double)p->data[i] * p->data[i];
        if (fabs(p->data[i]) > m) m = fabs(p->data[i]);
    }
    *mean = s / (double)p->numel;
    *std = sqrt((s2 - s * *mean) / (double)(p->numel - 1));
    *amax = m;
}

/* Check a parameter's sample std against the expected one within 4 standard
 * errors (a normal sample's std has relative error about 1/sqrt(2n)). */
static void check_normal(fa_graph *g, const char *name, double want_std) {
    graph_param *p = graph_param_find(g, name);
    CHECK_MSG(p != NULL, "no %s", name);
    if (!p) return;
    double mean, std, amax;
    stats(p, &mean, &std, &amax);
    double se = 4.0 / sqrt(2.0 * (double)p->numel);
    CHECK_MSG(fabs(std / want_std - 1.0) < se, "%s: std %g want %g", name, std, want_std);
    CHECK_MSG(fabs(mean) < 4.0 * want_std / sqrt((double)p->numel), "%s: mean %g", name, mean);
}

static void check_uniform(fa_graph *g, const char *name, double bound) {
    graph_param *p = graph_param_find(g, name);
    CHECK_MSG(p != NULL, "no %s", name);
    if (!p) return;
    double mean, std, amax;
    stats(p, &mean, &std, &amax);
    CHECK_MSG(amax <= bound, "%s: |x| %g beyond %g", name, amax, bound);
    if (p->numel >= 1000) CHECK_MSG(fabs(std / (bound / sqrt(3.0)) - 1.0) < 0.1, "%s: std %g", name, std);
}

static void check_const(fa_graph *g, const char *name, float v) {
    graph_param *p = graph_param_find(g, name);
    CHECK_MSG(p != NULL, "no %s", name);
    int bad = 0;
    for (int64_t i = 0; p && i < p->numel; i++) bad += p->data[i] != v;
    CHECK_MSG(!bad, "%s: %d values differ from %g", name, bad, v);
}

static void test_init(void) {
    fa_error err = {0};
    fa_graph *g = build("resnet50", 1, 0, 1);
    if (g) {
        CHECK(model_init_weights(g, "resnet50", 7, &err) == FA_OK);
        check_normal(g, "conv1.weight", sqrt(2.0 / (64 * 49)));          /* fan_out = 64*7*7 */
        check_normal(g, "layer3.2.conv2.weight", sqrt(2.0 / (256 * 9))); /* fan_out = 256*3*3 */
        check_normal(g, "layer4.0.downsample.0.weight", sqrt(2.0 / 2048));
        check_const(g, "layer2.1.bn3.weight", 1.0f);
        check_const(g, "layer2.1.bn3.bias", 0.0f);
        check_const(g, "layer2.1.bn3.running_mean", 0.0f);
        check_const(g, "layer2.1.bn3.running_var", 1.0f);
        check_uniform(g, "fc.weight", 1.0 / sqrt(2048.0));
        check_uniform(g, "fc.bias", 1.0 / sqrt(2048.0));
        graph_free(g);
    }
    g = build("resnext50_32x4d", 1, 0, 1);
    if (g) {
        CHECK(model_init_weights(g, "resnext50_32x4d", 7, &err) == FA_OK);
        /* Grouped conv: weight [256, 8, 3, 3]; torch's fan_out = 256*9. */
        check_normal(g, "layer2.0.conv2.weight", sqrt(2.0 / (256 * 9)));
        graph_free(g);
    }
    g = build("densenet121", 1, 0, 1);
    if (g) {
        CHECK(model_init_weights(g, "densenet121", 7, &err) == FA_OK);
        check_normal(g, "features.conv0.weight", sqrt(2.0 / (3 * 49))); /* fan_in */
        check_normal(g, "features.denseblock3.denselayer5.conv2.weight", sqrt(2.0 / (128 * 9)));
        check_const(g, "classifier.bias", 0.0f);
        check_uniform(g, "classifier.weight", 1.0 / sqrt(1024.0));
        check_const(g, "features.norm5.weight", 1.0f);
        graph_free(g);
    }
    g = build("inception_v3", 1, 0, 1);
    if (g) {
        CHECK(model_init_weights(g, "inception_v3", 7, &err) == FA_OK);
        check_normal(g, "Mixed_6b.branch7x7dbl_2.conv.weight", 0.1);
        check_normal(g, "AuxLogits.conv1.conv.weight", 0.01);
        check_normal(g, "AuxLogits.conv0.conv.weight", 0.1);
        graph_param *p = graph_param_find(g, "AuxLogits.fc.weight");
        double mean, std, amax;
        if (p) {
            stats(p, &mean, &std, &amax);
            CHECK_MSG(std > 0.0005 && std < 0.002, "AuxLogits.fc.weight std %g", std);
        }
        check_uniform(g, "fc.bias", 1.0 / sqrt(2048.0));
        check_const(g, "Mixed_7c.branch_pool.bn.weight", 1.0f);
        graph_free(g);
    }
}

static void test_determinism_and_head(void) {
    fa_error err = {0};
    fa_graph *a = build("inception_v3", 1, 0, 1), *b = build("inception_v3", 1, 0, 1);
    if (!a || !b) return;
    CHECK(model_init_weights(a, "inception_v3", 42, &err) == FA_OK);
    CHECK(model_init_weights(b, "inception_v3", 42, &err) == FA_OK);
    int n = graph_param_count(a), differ = 0;
    for (int i = 0; i < n; i++) {
        graph_param *pa = graph_param_at(a, i), *pb = graph_param_at(b, i);
        if (pa->data && memcmp(pa->data, pb->data, (size_t)pa->numel * sizeof(float))) differ++;
    }
    CHECK_MSG(differ == 0, "%d parameters differ between two inits with one seed", differ);
    CHECK(model_init_weights(b, "inception_v3", 43, &err) == FA_OK);
    CHECK(memcmp(graph_param_find(a, "Conv2d_1a_3x3.conv.weight")->data,
                 graph_param_find(b, "Conv2d_1a_3x3.conv.weight")->data, 4 * sizeof(float)) != 0);
    /* model_init_head: only fc and AuxLogits.fc change, to the values a full
     * init with the same seed gives. */
    for (int i = 0; i < n; i++) {
        graph_param *p = graph_param_at(b, i);
        if (p->data)
            for (int64_t j = 0; j < p->numel; j++) p->data[j] = 0.25f;
    }
    CHECK(model_init_head(b, "inception_v3", 42, &err) == FA_OK);
    int head_ok = 0, body_ok = 0, body = 0;
    for (int i = 0; i < n; i++) {
        graph_param *pa = graph_param_at(a, i), *pb = graph_param_at(b, i);
        if (!pa->data) continue;
        int is_head = !strncmp(pa->name, "fc.", 3) || !strncmp(pa->name, "AuxLogits.fc.", 13);
        if (is_head) head_ok += !memcmp(pa->data, pb->data, (size_t)pa->numel * sizeof(float));
        else {
            body++;
            body_ok += pb->data[0] == 0.25f;
        }
    }
    CHECK_MSG(head_ok == 4, "%d of 4 head tensors re-initialised as in a full init", head_ok);
    CHECK_MSG(body_ok == body, "%d of %d body tensors touched by model_init_head", body - body_ok, body);
    graph_free(a);
    graph_free(b);
}

int main(void) {
    test_counts_and_outputs();
    test_errors();
    test_init();
    test_determinism_and_head();
    return fa_test_finish("test_models_build");
}
