/* model.h - torchvision architectures written as graph builders.
 *
 * Names of values and parameters are torchvision's, so that state_dicts load
 * unchanged. Supported: resnet18, resnet50, resnet101, resnext50_32x4d,
 * resnext101_32x8d, densenet121, densenet161, inception_v3.
 */
#ifndef FA_MODEL_H
#define FA_MODEL_H

#include <stdint.h>

#include "core/fa_status.h"
#include "engine/graph.h"

typedef struct model_options {
    int num_classes;     /* 1 for this task */
    int image_size;      /* square input; 0 = the architecture's default */
    int transform_input; /* inception_v3 only: -1 = torchvision default (off) */
    int aux_logits;      /* inception_v3 only: 1 = build AuxLogits (training-only output) */
    float dropout;       /* inception_v3 dropout before fc (torchvision 0.5); others ignore */
} model_options;

/* Defaults: num_classes 1, default size, transform_input -1, aux 1, dropout 0.5. */
model_options model_default_options(void);

/* Build the graph. Outputs: "logits" (N x num_classes x 1 x 1) and, for
 * inception_v3 with aux_logits, "aux_logits" (training only). Named values
 * for Grad-CAM: ResNet/ResNeXt "layer1".."layer4"; DenseNet
 * "features.denseblockK", "features.transitionK", "features" (after the final
 * norm5 + ReLU); Inception "Mixed_5b".."Mixed_7c". Unknown arch ->
 * FA_ERR_ARG listing the valid names. */
fa_status model_build(fa_graph **out, const char *arch, const model_options *o, fa_error *err);

/* torchvision's from-scratch initialisation for arch, from a seed. */
fa_status model_init_weights(fa_graph *g, const char *arch, uint64_t seed, fa_error *err);

/* Re-initialise only the classification head (after loading ImageNet weights). */
fa_status model_init_head(fa_graph *g, const char *arch, uint64_t seed, fa_error *err);

int model_is_known(const char *arch);
int model_default_size(const char *arch);            /* 224 or 299 */
const char *model_head_prefix(const char *arch);     /* "fc" or "classifier" */
const char *model_default_cam_layer(const char *arch);
const char *model_arch_list(void);                   /* "resnet18, resnet50, ..." */

#endif
