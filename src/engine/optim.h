/* optim.h - loss and optimiser that work on a graph's parameters.
 *
 * Both follow PyTorch exactly (torch.nn.BCEWithLogitsLoss with mean reduction
 * and pos_weight; torch.optim.SGD with momentum, dampening, weight decay and
 * Nesterov), so that training trajectories can be compared step by step.
 */
#ifndef FA_OPTIM_H
#define FA_OPTIM_H

#include "core/fa_status.h"
#include "engine/graph.h"

/* Mean BCE-with-logits over n logits; writes d(loss)/d(logit) to dlogits
 * (may be NULL). pos_weight multiplies the positive term (1 = none).
 * Returns FA_ERR_NUMERIC if a logit is not finite. */
fa_status optim_bce_with_logits(const float *logits, const float *targets, int n, float pos_weight,
                                double *loss, float *dlogits, fa_error *err);

typedef struct optim_sgd_opts {
    float momentum;
    float dampening;
    float weight_decay;
    int nesterov;
} optim_sgd_opts;

typedef struct optim_sgd optim_sgd;

/* Momentum buffers for every trainable parameter of g (graph borrowed). */
fa_status optim_sgd_create(optim_sgd **out, fa_graph *g, const optim_sgd_opts *o, fa_error *err);
void optim_sgd_free(optim_sgd *s);
/* One torch.optim.SGD step with learning rate lr using the graph's grads. */
void optim_sgd_step(optim_sgd *s, float lr);
/* Momentum buffer of parameter i (graph_param_at order), NULL before the
 * first step; for checkpoints and resume. */
float *optim_sgd_momentum(optim_sgd *s, int param_index);
int optim_sgd_has_momentum(const optim_sgd *s);
void optim_sgd_set_started(optim_sgd *s, int started);

#endif
