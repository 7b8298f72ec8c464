/* model_internal.h - helpers shared by the architecture builders in
 * src/models/model_*.c; not part of the public contract (model.h).
 *
 * Every helper takes the module path as a printf format so builders read like
 * torchvision's module tree; a name that does not fit GRAPH_NAME_MAX poisons
 * the graph (through an invalid input id) instead of being silently cut.
 */
#ifndef FA_MODEL_INTERNAL_H
#define FA_MODEL_INTERNAL_H

#include "engine/graph.h"
#include "models/model.h"

/* torchvision's BatchNorm2d defaults; Inception's BasicConv2d uses 0.001. */
#define MODEL_BN_EPS 1e-5f
#define MODEL_BN_EPS_INCEPTION 1e-3f
#define MODEL_BN_MOMENTUM 0.1f

/* Bias-free convolution (every conv in these architectures), named fmt. */
graph_value mb_conv(fa_graph *g, graph_value x, int out, int kh, int kw, int sh, int sw, int ph, int pw,
                    int groups, const char *fmt, ...) __attribute__((format(printf, 11, 12)));
graph_value mb_bn(fa_graph *g, graph_value x, float eps, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
graph_value mb_max_pool(fa_graph *g, graph_value x, int k, int s, int p);
/* Average pooling that counts padding (PyTorch's default). */
graph_value mb_avg_pool(fa_graph *g, graph_value x, int k, int s, int p);

/* torchvision's constructor arguments for the two configurable families. */
typedef struct model_resnet_cfg {
    int bottleneck;     /* 0: BasicBlock (resnet18), 1: Bottleneck */
    int layers[4];
    int groups;
    int width_per_group;
} model_resnet_cfg;

typedef struct model_densenet_cfg {
    int growth_rate;
    int block_config[4];
    int num_init_features;
    int bn_size;
} model_densenet_cfg;

/* Builders: add the body after the graph's input and mark the outputs; errors
 * are recorded in the graph (graph_status). */
void model_build_resnet(fa_graph *g, const model_resnet_cfg *cfg, const model_options *o);
void model_build_densenet(fa_graph *g, const model_densenet_cfg *cfg, const model_options *o);
void model_build_inception_v3(fa_graph *g, const model_options *o);

#endif
