/* test_cam_model.c - the engine side of Grad-CAM (cam_model.c) on small
 * networks, checked against a property that needs no reference program: when
 * the explained layer feeds global average pooling and then the linear head
 * (ResNet's layer4, DenseNet's features), d(logit)/dA_kij = fc.weight[k] / (H W)
 * exactly, and logit = bias + sum_k weight[k] mean(A_k). Also the layer
 * errors: unknown names (listing the valid ones), 1x1 layers, networks with
 * no spatial layer. PyTorch parity at full size is in
 * tests/integration/test_cam_reference.sh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "eval/cam.h"
#include "models/model.h"

FA_TEST_MAIN_STATE

static fa_graph *build(const char *arch, int size, uint64_t seed) {
    fa_error err = {0};
    fa_graph *g = NULL;
    model_options o = model_default_options();
    o.image_size = size;
    if (model_build(&g, arch, &o, &err) != FA_OK) {
        fprintf(stderr, "model_build %s@%d: %s\n", arch, size, err.msg);
        return NULL;
    }
    if (model_init_weights(g, arch, seed, &err) != FA_OK) {
        fprintf(stderr, "init %s: %s\n", arch, err.msg);
        graph_free(g);
        return NULL;
    }
    return g;
}

/* The head-gradient property for a layer that feeds pooling + head. */
static void check_head_gradient(const char *arch, int size, const char *head) {
    fa_graph *g = build(arch, size, 7);
    CHECK(g != NULL);
    if (!g) return;
    cam_model *m = NULL;
    fa_error err = {0};
    fa_status st = cam_model_from_graph(&m, g, arch, size, NULL, &err); /* g now belongs to m */
    CHECK_MSG(st == FA_OK, "%s: %s", arch, err.msg);
    if (st != FA_OK) return;
    int c, h, w;
    cam_model_layer_shape(m, &c, &h, &w);
    CHECK(h * w > 1);
    char name[64];
    snprintf(name, sizeof name, "%s.weight", head);
    const graph_param *wt = graph_param_find(g, name);
    snprintf(name, sizeof name, "%s.bias", head);
    const graph_param *bs = graph_param_find(g, name);
    CHECK(wt && bs && wt->numel == c);
    float *x = malloc(3 * (size_t)size * size * sizeof *x);
    uint64_t s = 12345;
    for (int i = 0; i < 3 * size * size; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4 - 2);
    }
    for (int mi = 0; mi < 2 && wt && bs; mi++) {
        cam_result r;
        st = cam_model_explain_tensor(m, x, mi ? CAM_METHOD_GRADCAM_PP : CAM_METHOD_GRADCAM, &r, &err);
        CHECK_MSG(st == FA_OK, "%s explain: %s", arch, err.msg);
        if (st != FA_OK) break;
        const float *A = cam_model_last_activations(m), *G = cam_model_last_gradients(m);
        double logit = bs->data[0], worst = 0, wmax = 0;
        for (int k = 0; k < c; k++) {
            double mean = 0, want = wt->data[k] / (h * w);
            wmax = fmax(wmax, fabs(want));
            for (int i = 0; i < h * w; i++) {
                mean += A[(size_t)k * h * w + i];
                worst = fmax(worst, fabs(G[(size_t)k * h * w + i] - want));
            }
            logit += wt->data[k] * mean / (h * w);
        }
        CHECK_MSG(worst <= 1e-5 * wmax, "%s: gradient differs from weight/(HW) by %g (largest %g)", arch, worst, wmax);
        CHECK_CLOSE(r.logit, logit, 1e-4, 1e-4);
        CHECK_CLOSE(r.prob, 1 / (1 + exp(-r.logit)), 1e-12, 0);
        CHECK(r.c == c && r.h == h && r.w == w);
        double mx = 0;
        for (int i = 0; i < h * w; i++) mx = fmax(mx, r.map[i]);
        CHECK(mx == 1.0 || (mx == 0 && r.scale == 0));
        cam_result_free(&r);
    }
    free(x);
    cam_model_close(m);
}

static void test_layer_errors(void) {
    fa_error err = {0};
    cam_model *m = NULL;
    fa_graph *g = build("resnet18", 64, 1);
    CHECK(g != NULL);
    if (g) {
        CHECK(cam_model_from_graph(&m, g, "resnet18", 64, "layer9", &err) == FA_ERR_NOT_FOUND);
        CHECK_MSG(strstr(err.msg, "'layer9'") && strstr(err.msg, "layer1, layer2, layer3, layer4"), "%s", err.msg);
        CHECK(m == NULL);
    }
    /* at 32 px layer4 is 1x1: a pooled-size layer cannot be localised */
    g = build("resnet18", 32, 1);
    CHECK(g != NULL);
    if (g) {
        char list[256];
        CHECK(cam_layer_list(g, list, sizeof list) == 3);
        CHECK(!strcmp(list, "layer1, layer2, layer3"));
        CHECK(cam_model_from_graph(&m, g, "resnet18", 32, NULL, &err) == FA_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err.msg, "'layer4' is 1x1") && strstr(err.msg, "layer3"), "%s", err.msg);
    }
    /* the input size must match the graph */
    g = build("resnet18", 64, 1);
    if (g) CHECK(cam_model_from_graph(&m, g, "resnet18", 96, NULL, &err) == FA_ERR_SHAPE);
    /* a network with no spatial layer at all: 2x2 input, stride-2 1x1
     * convolution (named), pooling, linear head */
    g = graph_create(3, 2, 2);
    CHECK(g != NULL);
    if (g) {
        graph_conv_opts co = {4, 1, 1, 2, 2, 0, 0, 1, 1, 1, 1};
        graph_value v = graph_conv2d(g, "conv", graph_input(g), &co);
        graph_set_name(g, v, "conv");
        v = graph_linear(g, "fc", graph_global_avg_pool(g, v), 1);
        graph_set_name(g, v, "fc");
        graph_mark_output(g, v, "logits", 0);
        CHECK(graph_status(g, &err) == FA_OK);
        char list[64];
        CHECK(cam_layer_list(g, list, sizeof list) == 0);
        graph_value found;
        CHECK(cam_find_layer(g, "fc", "tiny", &found, &err) == FA_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err.msg, "tiny") && strstr(err.msg, "no layer with a spatial size"), "%s", err.msg);
        CHECK(cam_model_from_graph(&m, g, "tiny", 2, "conv", &err) == FA_ERR_UNSUPPORTED);
    }
    /* a layer name that exists but is not a block the user may pick */
    g = build("resnet18", 64, 1);
    if (g) {
        CHECK(cam_model_from_graph(&m, g, "resnet18", 64, "logits", &err) != FA_OK);
        CHECK(strstr(err.msg, "logits") != NULL);
    }
    /* an explicit non-default block works */
    g = build("resnet18", 64, 1);
    if (g) {
        CHECK(cam_model_from_graph(&m, g, "resnet18", 64, "layer2", &err) == FA_OK);
        if (m) {
            int c, h, w;
            cam_model_layer_shape(m, &c, &h, &w);
            CHECK(c == 128 && h == 8 && w == 8);
            CHECK(!strcmp(cam_model_layer(m), "layer2"));
            cam_model_close(m);
        }
    }
}

int main(void) {
    test_layer_errors();
    check_head_gradient("resnet18", 64, "fc");
    check_head_gradient("densenet121", 64, "classifier");
    return fa_test_finish("test_cam_model");
}
