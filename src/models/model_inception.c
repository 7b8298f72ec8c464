/* model_inception.c - torchvision's Inception v3 (torchvision/models/inception.py).
 *
 * Every convolution is a BasicConv2d: bias-free conv "<m>.conv", BN "<m>.bn"
 * with eps 0.001, ReLU. Average pools inside the blocks are
 * F.avg_pool2d(x, 3, stride=1, padding=1), which counts the padding; max pools
 * are 3x3/2 without padding. A block's nested torch.cat calls are flattened
 * into one concat in the same channel order. AuxLogits hangs off Mixed_6e and
 * is a training-only output; it is built right after Mixed_6e so parameters
 * come out in torchvision's state_dict order.
 * Shapes at 299: stem 192x35x35, Mixed_5* 35x35, Mixed_6* 17x17, Mixed_7* 8x8.
 */
#include <stdio.h>

#include "models/model_internal.h"

static graph_value basic_conv(fa_graph *g, graph_value x, const char *module, int out, int kh, int kw, int s,
                              int ph, int pw) {
    graph_value y = mb_conv(g, x, out, kh, kw, s, s, ph, pw, 1, "%s.conv", module);
    y = mb_bn(g, y, MODEL_BN_EPS_INCEPTION, "%s.bn", module);
    return graph_relu(g, y);
}

/* basic_conv with the module path "<block>.<branch>". */
static graph_value bc(fa_graph *g, graph_value x, const char *block, const char *branch, int out, int kh, int kw,
                      int s, int ph, int pw) {
    char m[GRAPH_NAME_MAX];
    int n = snprintf(m, sizeof m, "%s.%s", block, branch);
    if (n < 0 || (size_t)n >= sizeof m) x = -1;
    return basic_conv(g, x, m, out, kh, kw, s, ph, pw);
}

static graph_value inception_a(fa_graph *g, graph_value x, const char *m, int pool_features) {
    graph_value b1 = bc(g, x, m, "branch1x1", 64, 1, 1, 1, 0, 0);
    graph_value b5 = bc(g, x, m, "branch5x5_1", 48, 1, 1, 1, 0, 0);
    b5 = bc(g, b5, m, "branch5x5_2", 64, 5, 5, 1, 2, 2);
    graph_value b3 = bc(g, x, m, "branch3x3dbl_1", 64, 1, 1, 1, 0, 0);
    b3 = bc(g, b3, m, "branch3x3dbl_2", 96, 3, 3, 1, 1, 1);
    b3 = bc(g, b3, m, "branch3x3dbl_3", 96, 3, 3, 1, 1, 1);
    graph_value bp = mb_avg_pool(g, x, 3, 1, 1);
    bp = bc(g, bp, m, "branch_pool", pool_features, 1, 1, 1, 0, 0);
    graph_value cat[4] = {b1, b5, b3, bp};
    return graph_concat(g, 4, cat);
}

static graph_value inception_b(fa_graph *g, graph_value x, const char *m) {
    graph_value b3 = bc(g, x, m, "branch3x3", 384, 3, 3, 2, 0, 0);
    graph_value bd = bc(g, x, m, "branch3x3dbl_1", 64, 1, 1, 1, 0, 0);
    bd = bc(g, bd, m, "branch3x3dbl_2", 96, 3, 3, 1, 1, 1);
    bd = bc(g, bd, m, "branch3x3dbl_3", 96, 3, 3, 2, 0, 0);
    graph_value bp = mb_max_pool(g, x, 3, 2, 0);
    graph_value cat[3] = {b3, bd, bp};
    return graph_concat(g, 3, cat);
}

static graph_value inception_c(fa_graph *g, graph_value x, const char *m, int c7) {
    graph_value b1 = bc(g, x, m, "branch1x1", 192, 1, 1, 1, 0, 0);
    graph_value b7 = bc(g, x, m, "branch7x7_1", c7, 1, 1, 1, 0, 0);
    b7 = bc(g, b7, m, "branch7x7_2", c7, 1, 7, 1, 0, 3);
    b7 = bc(g, b7, m, "branch7x7_3", 192, 7, 1, 1, 3, 0);
    graph_value bd = bc(g, x, m, "branch7x7dbl_1", c7, 1, 1, 1, 0, 0);
    bd = bc(g, bd, m, "branch7x7dbl_2", c7, 7, 1, 1, 3, 0);
    bd = bc(g, bd, m, "branch7x7dbl_3", c7, 1, 7, 1, 0, 3);
    bd = bc(g, bd, m, "branch7x7dbl_4", c7, 7, 1, 1, 3, 0);
    bd = bc(g, bd, m, "branch7x7dbl_5", 192, 1, 7, 1, 0, 3);
    graph_value bp = mb_avg_pool(g, x, 3, 1, 1);
    bp = bc(g, bp, m, "branch_pool", 192, 1, 1, 1, 0, 0);
    graph_value cat[4] = {b1, b7, bd, bp};
    return graph_concat(g, 4, cat);
}

static graph_value inception_d(fa_graph *g, graph_value x, const char *m) {
    graph_value b3 = bc(g, x, m, "branch3x3_1", 192, 1, 1, 1, 0, 0);
    b3 = bc(g, b3, m, "branch3x3_2", 320, 3, 3, 2, 0, 0);
    graph_value b7 = bc(g, x, m, "branch7x7x3_1", 192, 1, 1, 1, 0, 0);
    b7 = bc(g, b7, m, "branch7x7x3_2", 192, 1, 7, 1, 0, 3);
    b7 = bc(g, b7, m, "branch7x7x3_3", 192, 7, 1, 1, 3, 0);
    b7 = bc(g, b7, m, "branch7x7x3_4", 192, 3, 3, 2, 0, 0);
    graph_value bp = mb_max_pool(g, x, 3, 2, 0);
    graph_value cat[3] = {b3, b7, bp};
    return graph_concat(g, 3, cat);
}

static graph_value inception_e(fa_graph *g, graph_value x, const char *m) {
    graph_value b1 = bc(g, x, m, "branch1x1", 320, 1, 1, 1, 0, 0);
    graph_value b3 = bc(g, x, m, "branch3x3_1", 384, 1, 1, 1, 0, 0);
    graph_value b3a = bc(g, b3, m, "branch3x3_2a", 384, 1, 3, 1, 0, 1);
    graph_value b3b = bc(g, b3, m, "branch3x3_2b", 384, 3, 1, 1, 1, 0);
    graph_value bd = bc(g, x, m, "branch3x3dbl_1", 448, 1, 1, 1, 0, 0);
    bd = bc(g, bd, m, "branch3x3dbl_2", 384, 3, 3, 1, 1, 1);
    graph_value bda = bc(g, bd, m, "branch3x3dbl_3a", 384, 1, 3, 1, 0, 1);
    graph_value bdb = bc(g, bd, m, "branch3x3dbl_3b", 384, 3, 1, 1, 1, 0);
    graph_value bp = mb_avg_pool(g, x, 3, 1, 1);
    bp = bc(g, bp, m, "branch_pool", 192, 1, 1, 1, 0, 0);
    graph_value cat[6] = {b1, b3a, b3b, bda, bdb, bp};
    return graph_concat(g, 6, cat);
}

static graph_value named(fa_graph *g, graph_value x, const char *name) {
    graph_set_name(g, x, name);
    return x;
}

void model_build_inception_v3(fa_graph *g, const model_options *o) {
    graph_value x = graph_input(g);
    if (o->transform_input == 1) {
        /* torchvision's _transform_input: undo ImageNet normalisation and map
         * to [-1, 1]: x * std/0.5 + (mean-0.5)/0.5 per channel. */
        const float scale[3] = {0.229f / 0.5f, 0.224f / 0.5f, 0.225f / 0.5f};
        const float shift[3] = {(0.485f - 0.5f) / 0.5f, (0.456f - 0.5f) / 0.5f, (0.406f - 0.5f) / 0.5f};
        x = graph_channel_affine(g, x, scale, shift);
    }
    x = basic_conv(g, x, "Conv2d_1a_3x3", 32, 3, 3, 2, 0, 0);
    x = basic_conv(g, x, "Conv2d_2a_3x3", 32, 3, 3, 1, 0, 0);
    x = basic_conv(g, x, "Conv2d_2b_3x3", 64, 3, 3, 1, 1, 1);
    x = mb_max_pool(g, x, 3, 2, 0);
    x = basic_conv(g, x, "Conv2d_3b_1x1", 80, 1, 1, 1, 0, 0);
    x = basic_conv(g, x, "Conv2d_4a_3x3", 192, 3, 3, 1, 0, 0);
    x = mb_max_pool(g, x, 3, 2, 0);
    x = named(g, inception_a(g, x, "Mixed_5b", 32), "Mixed_5b");
    x = named(g, inception_a(g, x, "Mixed_5c", 64), "Mixed_5c");
    x = named(g, inception_a(g, x, "Mixed_5d", 64), "Mixed_5d");
    x = named(g, inception_b(g, x, "Mixed_6a"), "Mixed_6a");
    x = named(g, inception_c(g, x, "Mixed_6b", 128), "Mixed_6b");
    x = named(g, inception_c(g, x, "Mixed_6c", 160), "Mixed_6c");
    x = named(g, inception_c(g, x, "Mixed_6d", 160), "Mixed_6d");
    x = named(g, inception_c(g, x, "Mixed_6e", 192), "Mixed_6e");
    if (o->aux_logits) {
        /* InceptionAux: avg_pool2d(5, stride 3) -> conv0 (1x1, 128) -> conv1
         * (5x5, 768) -> adaptive avg pool -> fc. */
        graph_pool_opts pool = {5, 5, 3, 3, 0, 0, 0, 1};
        graph_value a = graph_avg_pool2d(g, x, &pool);
        a = basic_conv(g, a, "AuxLogits.conv0", 128, 1, 1, 1, 0, 0);
        a = basic_conv(g, a, "AuxLogits.conv1", 768, 5, 5, 1, 0, 0);
        a = graph_global_avg_pool(g, a);
        a = graph_linear(g, "AuxLogits.fc", a, o->num_classes);
        graph_mark_output(g, a, "aux_logits", 1);
    }
    x = named(g, inception_d(g, x, "Mixed_7a"), "Mixed_7a");
    x = named(g, inception_e(g, x, "Mixed_7b"), "Mixed_7b");
    x = named(g, inception_e(g, x, "Mixed_7c"), "Mixed_7c");
    x = graph_global_avg_pool(g, x);
    if (o->dropout > 0.0f) x = graph_dropout(g, x, o->dropout);
    x = graph_linear(g, "fc", x, o->num_classes);
    graph_mark_output(g, x, "logits", 0);
}
