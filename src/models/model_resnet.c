/* model_resnet.c - torchvision's ResNet and ResNeXt (torchvision/models/resnet.py).
 *
 * ResNet "v1.5": in a Bottleneck the stride sits on the 3x3 convolution. The
 * shortcut is "layerX.Y.downsample.0" (1x1 conv with the block's stride) and
 * "layerX.Y.downsample.1" (BN) whenever the stride or the width changes.
 * Shapes (224 input): stem 64x56x56; layer1..4 at 56, 28, 14, 7.
 */
#include "models/model_internal.h"

/* BasicBlock: 3x3(stride) -> BN -> ReLU -> 3x3 -> BN, + shortcut, ReLU. */
static graph_value basic_block(fa_graph *g, graph_value x, int in_c, int planes, int stride, int layer, int idx) {
    graph_value y = mb_conv(g, x, planes, 3, 3, stride, stride, 1, 1, 1, "layer%d.%d.conv1", layer, idx);
    y = mb_bn(g, y, MODEL_BN_EPS, "layer%d.%d.bn1", layer, idx);
    y = graph_relu(g, y);
    y = mb_conv(g, y, planes, 3, 3, 1, 1, 1, 1, 1, "layer%d.%d.conv2", layer, idx);
    y = mb_bn(g, y, MODEL_BN_EPS, "layer%d.%d.bn2", layer, idx);
    graph_value sc = x;
    if (stride != 1 || in_c != planes) {
        sc = mb_conv(g, x, planes, 1, 1, stride, stride, 0, 0, 1, "layer%d.%d.downsample.0", layer, idx);
        sc = mb_bn(g, sc, MODEL_BN_EPS, "layer%d.%d.downsample.1", layer, idx);
    }
    return graph_relu(g, graph_add(g, y, sc));
}

/* Bottleneck: 1x1 -> 3x3(stride, groups) -> 1x1 (x4), + shortcut, ReLU. */
static graph_value bottleneck(fa_graph *g, graph_value x, int in_c, int planes, int stride, int groups,
                              int base_width, int layer, int idx) {
    int width = planes * base_width / 64 * groups;
    int out_c = planes * 4;
    graph_value y = mb_conv(g, x, width, 1, 1, 1, 1, 0, 0, 1, "layer%d.%d.conv1", layer, idx);
    y = mb_bn(g, y, MODEL_BN_EPS, "layer%d.%d.bn1", layer, idx);
    y = graph_relu(g, y);
    y = mb_conv(g, y, width, 3, 3, stride, stride, 1, 1, groups, "layer%d.%d.conv2", layer, idx);
    y = mb_bn(g, y, MODEL_BN_EPS, "layer%d.%d.bn2", layer, idx);
    y = graph_relu(g, y);
    y = mb_conv(g, y, out_c, 1, 1, 1, 1, 0, 0, 1, "layer%d.%d.conv3", layer, idx);
    y = mb_bn(g, y, MODEL_BN_EPS, "layer%d.%d.bn3", layer, idx);
    graph_value sc = x;
    if (stride != 1 || in_c != out_c) {
        sc = mb_conv(g, x, out_c, 1, 1, stride, stride, 0, 0, 1, "layer%d.%d.downsample.0", layer, idx);
        sc = mb_bn(g, sc, MODEL_BN_EPS, "layer%d.%d.downsample.1", layer, idx);
    }
    return graph_relu(g, graph_add(g, y, sc));
}

void model_build_resnet(fa_graph *g, const model_resnet_cfg *cfg, const model_options *o) {
    graph_value x = graph_input(g);
    x = mb_conv(g, x, 64, 7, 7, 2, 2, 3, 3, 1, "conv1");
    x = mb_bn(g, x, MODEL_BN_EPS, "bn1");
    x = graph_relu(g, x);
    x = mb_max_pool(g, x, 3, 2, 1);
    int in_c = 64;
    static const char *const layer_names[4] = {"layer1", "layer2", "layer3", "layer4"};
    for (int l = 0; l < 4; l++) {
        int planes = 64 << l;
        for (int b = 0; b < cfg->layers[l]; b++) {
            int stride = (l > 0 && b == 0) ? 2 : 1;
            if (cfg->bottleneck) {
                x = bottleneck(g, x, in_c, planes, stride, cfg->groups, cfg->width_per_group, l + 1, b);
                in_c = planes * 4;
            } else {
                x = basic_block(g, x, in_c, planes, stride, l + 1, b);
                in_c = planes;
            }
        }
        graph_set_name(g, x, layer_names[l]);
    }
    x = graph_global_avg_pool(g, x);
    x = graph_linear(g, "fc", x, o->num_classes);
    graph_mark_output(g, x, "logits", 0);
}
