/* model_densenet.c - torchvision's DenseNet (torchvision/models/densenet.py).
 *
 * Each dense layer reads the concatenation of every earlier feature map of
 * its block: norm1 -> ReLU -> conv1 (1x1, bn_size*growth) -> norm2 -> ReLU ->
 * conv2 (3x3, growth). Transitions halve the channels with a 1x1 conv and
 * halve the resolution with 2x2 average pooling. The forward ends with
 * features.norm5, then F.relu, global average pooling and `classifier`.
 * Concatenations are expressed as single concat ops over the list of feature
 * maps, so the executor is free to lay them out without copies.
 */
#include <stdio.h>

#include "models/model_internal.h"

/* Large enough for the widest torchvision block (densenet161 block 3: 1 + 36). */
#define DENSE_MAX_INPUTS 64

void model_build_densenet(fa_graph *g, const model_densenet_cfg *cfg, const model_options *o) {
    graph_value x = graph_input(g);
    x = mb_conv(g, x, cfg->num_init_features, 7, 7, 2, 2, 3, 3, 1, "features.conv0");
    x = mb_bn(g, x, MODEL_BN_EPS, "features.norm0");
    x = graph_relu(g, x);
    x = mb_max_pool(g, x, 3, 2, 1);
    int channels = cfg->num_init_features;
    char name[GRAPH_NAME_MAX];
    for (int b = 0; b < 4; b++) {
        graph_value feats[DENSE_MAX_INPUTS];
        int n = 0;
        feats[n++] = x;
        int layers = cfg->block_config[b];
        if (layers + 1 > DENSE_MAX_INPUTS) { /* poison: only reachable by a bad table */
            graph_concat(g, 0, feats);
            return;
        }
        for (int l = 1; l <= layers; l++) {
            graph_value in = n == 1 ? feats[0] : graph_concat(g, n, feats);
            graph_value y = mb_bn(g, in, MODEL_BN_EPS, "features.denseblock%d.denselayer%d.norm1", b + 1, l);
            y = graph_relu(g, y);
            y = mb_conv(g, y, cfg->bn_size * cfg->growth_rate, 1, 1, 1, 1, 0, 0, 1,
                        "features.denseblock%d.denselayer%d.conv1", b + 1, l);
            y = mb_bn(g, y, MODEL_BN_EPS, "features.denseblock%d.denselayer%d.norm2", b + 1, l);
            y = graph_relu(g, y);
            y = mb_conv(g, y, cfg->growth_rate, 3, 3, 1, 1, 1, 1, 1, "features.denseblock%d.denselayer%d.conv2",
                        b + 1, l);
            feats[n++] = y;
        }
        x = graph_concat(g, n, feats);
        channels += layers * cfg->growth_rate;
        snprintf(name, sizeof name, "features.denseblock%d", b + 1);
        graph_set_name(g, x, name);
        if (b == 3) break;
        x = mb_bn(g, x, MODEL_BN_EPS, "features.transition%d.norm", b + 1);
        x = graph_relu(g, x);
        channels /= 2;
        x = mb_conv(g, x, channels, 1, 1, 1, 1, 0, 0, 1, "features.transition%d.conv", b + 1);
        graph_pool_opts pool = {2, 2, 2, 2, 0, 0, 0, 1};
        x = graph_avg_pool2d(g, x, &pool);
        snprintf(name, sizeof name, "features.transition%d", b + 1);
        graph_set_name(g, x, name);
    }
    x = mb_bn(g, x, MODEL_BN_EPS, "features.norm5");
    x = graph_relu(g, x);
    graph_set_name(g, x, "features");
    x = graph_global_avg_pool(g, x);
    x = graph_linear(g, "classifier", x, o->num_classes);
    graph_mark_output(g, x, "logits", 0);
}
