/* ckpt.h - training checkpoints: safetensors files holding the graph's
 * parameters, SGD momentum buffers ("optim.momentum.<param>") and, in
 * __metadata__, everything needed to continue a run exactly or to use the
 * model for prediction (architecture, input size, preprocessing, full config,
 * position, metrics, best-so-far bookkeeping, manifest hash, locked operating
 * point, freeair version). Files are written atomically by weights_writer.
 *
 * Metadata keys (all strings): format ("freeair-checkpoint"), format_version,
 * freeair_version, kind (last | best | best_auc), arch, image_size,
 * preprocessing, config (trainconf_format text), epoch (completed epochs),
 * epoch_step (optimiser steps done inside the next epoch; 0 at an epoch
 * boundary), global_step, epoch_loss_sum, epoch_loss_count, best_val_loss,
 * best_epoch, best_val_auc, best_auc_epoch, bad_epochs, train_loss, val_loss,
 * val_auc, lr, metrics (JSON of the last finished epoch), rng, sampler,
 * schedule (human-readable positions; the streams are counter-based, so
 * seed + epoch + position is the whole RNG state), manifest_sha256,
 * momentum_started, threshold and threshold_rule (absent when none),
 * transform_input ("1" when inception_v3 was built with it; else absent).
 */
#ifndef FA_CKPT_H
#define FA_CKPT_H

#include <stdint.h>

#include "core/fa_status.h"
#include "engine/graph.h"
#include "engine/optim.h"
#include "engine/weights.h"
#include "models/model.h"
#include "train/trainconf.h"

typedef struct ckpt_state {
    int epoch;              /* completed epochs */
    int epoch_step;         /* optimiser steps already done in epoch `epoch` (0-based) */
    int64_t global_step;    /* optimiser steps in total */
    double epoch_loss_sum;  /* sum over done steps of this epoch of batch loss x batch images */
    int64_t epoch_loss_count;
    double best_val_loss;   /* +inf before the first validation */
    int best_epoch;         /* 1-based; 0 = none */
    double best_val_auc;    /* NaN before the first validation */
    int best_auc_epoch;
    int bad_epochs;         /* epochs since the best val loss (early stopping) */
    double train_loss, val_loss, val_auc, lr; /* last finished epoch (NaN if none) */
    double threshold;       /* locked operating point on the probability; NaN = none */
    char threshold_rule[TRAINCONF_NAME_MAX];
    int transform_input;    /* inception_v3 built with transform_input (from the pretrained weights) */
} ckpt_state;

/* A fresh state (nothing done, best values unset). */
void ckpt_state_init(ckpt_state *s);

/* Write a checkpoint atomically. opt may be NULL (no momentum). kind is
 * "last", "best" or "best_auc"; preprocessing describes the input pipeline. */
fa_status ckpt_save(const char *path, fa_graph *g, optim_sgd *opt, const train_config *c, const ckpt_state *s,
                    const char *kind, const char *preprocessing, const char *manifest_sha256, fa_error *err);

/* Open a checkpoint (a file, or a folder holding last.safetensors) and check
 * that it is a freeair checkpoint. *resolved gets the file path (cap bytes). */
fa_status ckpt_open(weights_file **out, const char *path, char *resolved, size_t cap, fa_error *err);

/* Read the stored config (over defaults) and state from an open checkpoint. */
fa_status ckpt_read_state(const weights_file *f, train_config *c, ckpt_state *s, fa_error *err);

/* Load parameters (all must match) and, when opt is non-NULL, the momentum
 * buffers into a graph of the checkpoint's architecture. */
fa_status ckpt_restore(const weights_file *f, fa_graph *g, optim_sgd *opt, fa_error *err);

/* Model options for training or loading arch at `size`: one output; for
 * inception_v3 the aux head when the size allows it (>= 299, as predict
 * builds it) and transform_input on when `transform_input` is "1" (the
 * metadata of torchvision-converted pretrained weights and of checkpoints). */
model_options ckpt_model_options(const char *arch, int size, const char *transform_input);

/* What predict needs from a checkpoint. */
typedef struct ckpt_info {
    char arch[TRAINCONF_NAME_MAX];
    int image_size;
    char preprocessing[512];
    char kind[16];
    int epoch;
    double val_loss, val_auc;
    double threshold; /* NaN when the checkpoint holds no locked operating point */
    char threshold_rule[TRAINCONF_NAME_MAX];
} ckpt_info;

/* Build the model of a checkpoint and load its weights for inference:
 * *g gets a new graph (caller frees with graph_free), *info its metadata.
 * Errors (one line naming the file): not a safetensors file, not a freeair
 * checkpoint, unknown architecture, tensors that do not match it, a
 * preprocessing this build does not implement. */
fa_status train_load_checkpoint(const char *path, fa_graph **g, ckpt_info *info, fa_error *err);

#endif
