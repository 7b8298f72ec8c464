/* trainstep.h - one optimiser step's worth of forward/backward passes with
 * gradient accumulation over micro-batches, and batched inference for
 * validation. Owns the executors (one per micro-batch size met, created on
 * first use and kept).
 *
 * Gradient accumulation: a batch of n images is cut into consecutive
 * micro-batches of micro_batch images (the last one may be smaller). Each
 * micro-batch c of n_c images runs forward in training mode and backward
 * with d(loss)/d(logit) of its own mean loss scaled by n_c / n, so the summed
 * gradient is the gradient of the mean loss over all n images - exactly what
 * one pass over the whole batch gives for a model without BatchNorm.
 *
 * BatchNorm under accumulation: each micro-batch is normalised with ITS OWN
 * batch statistics (mean and biased variance over the n_c images and all
 * pixels), as PyTorch does when it loops over micro-batches; the running
 * mean/variance are updated once per micro-batch (momentum 0.1 applied
 * n / micro_batch times per optimiser step, unbiased variance of the
 * micro-batch), and num_batches_tracked counts micro-batches. The result
 * equals PyTorch running the same micro-batches one after another with
 * loss * n_c / n and one optimizer.step(); it is not the full-batch result.
 */
#ifndef FA_TRAINSTEP_H
#define FA_TRAINSTEP_H

#include "core/fa_status.h"
#include "engine/exec.h"
#include "engine/graph.h"

typedef struct trainstep trainstep;

typedef struct trainstep_opts {
    int micro_batch;       /* images per training pass */
    int infer_batch;       /* images per inference pass */
    fa_precision precision;
    uint64_t seed;         /* dropout */
    float aux_weight;      /* weight of an "aux_logits" output's loss (Inception: 0.4); 0 = ignore */
} trainstep_opts;

/* g is borrowed and must outlive the trainstep. */
fa_status trainstep_create(trainstep **out, fa_graph *g, const trainstep_opts *o, fa_error *err);
void trainstep_free(trainstep *t);

/* Executor hooks for data-parallel training (dist_exec_hooks): copied and
 * installed on every training executor, now and later. NULL removes them.
 * When they contain collectives (synchronised BatchNorm), a micro-batch
 * whose loss is not finite still runs its backward pass (with zero
 * gradients) before returning FA_ERR_NUMERIC, so that every rank takes part
 * in the same collectives. */
fa_status trainstep_set_hooks(trainstep *t, const exec_hooks *h, fa_error *err);

/* Micro-batch sizes for a batch of n images: writes them to sizes (at least
 * ceil(n / micro_batch) entries) and returns their number. */
int trainstep_split(int n, int micro_batch, int *sizes);

/* One micro-batch of n_c images (x: n_c x C x H x W fp32, y: targets) of a
 * batch of batch_n images: forward in training mode, backward of
 * (n_c / batch_n) x its mean BCE loss, accumulated (+=) into the graph's
 * gradients. *loss gets the micro-batch's mean loss (plus aux_weight x the
 * aux loss when the graph has an "aux_logits" output). A non-finite logit
 * gives FA_ERR_NUMERIC. */
fa_status trainstep_micro(trainstep *t, const float *x, const float *y, int n_c, int batch_n, float pos_weight,
                          double *loss, fa_error *err);

/* A whole batch of n images cut by trainstep_split: accumulates the gradient
 * of the mean loss over n; *loss = that mean. The caller zeroes gradients
 * before a step (graph_zero_grad). */
fa_status trainstep_batch(trainstep *t, const float *x, const float *y, int n, float pos_weight, double *loss,
                          fa_error *err);

/* Inference-mode logits of n images (n <= infer_batch; the pass is padded
 * with zeros, which cannot affect other images in inference mode). */
fa_status trainstep_infer(trainstep *t, const float *x, int n, float *logits, fa_error *err);

#endif
