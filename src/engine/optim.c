/* optim.c - BCE-with-logits loss and torch.optim.SGD on a graph's parameters.
 *
 * Plain C on fp32 arrays: both are memory-bound and tiny next to the network,
 * and plain loops make it easy to follow PyTorch's formulas line by line.
 */
#include "engine/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fa_status optim_bce_with_logits(const float *logits, const float *targets, int n, float pos_weight,
                                double *loss, float *dlogits, fa_error *err) {
    if (!logits || !targets || n < 1 || !loss)
        return fa_error_set(err, FA_ERR_ARG, "bce_with_logits: invalid arguments (n=%d)", n);
    if (!isfinite(pos_weight) || pos_weight < 0)
        return fa_error_set(err, FA_ERR_ARG, "bce_with_logits: invalid pos_weight %g", pos_weight);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double x = logits[i], y = targets[i];
        if (!isfinite(x))
            return fa_error_set(err, FA_ERR_NUMERIC, "bce_with_logits: logit %d is not finite", i);
        /* ATen: loss = (1-y)*x + (1+(pw-1)*y) * (log1p(exp(-|x|)) + max(-x, 0)),
         * the stable form of -[pw*y*log(s(x)) + (1-y)*log(1-s(x))]. */
        double lw = 1.0 + ((double)pos_weight - 1.0) * y;
        double softplus_neg = log1p(exp(-fabs(x))) + (x < 0 ? -x : 0.0); /* log(1+e^-x) */
        sum += (1.0 - y) * x + lw * softplus_neg;
        if (dlogits) {
            /* d/dx = (1-y) - lw * sigmoid(-x) */
            double sig_neg = x >= 0 ? exp(-x) / (1.0 + exp(-x)) : 1.0 / (1.0 + exp(x));
            dlogits[i] = (float)(((1.0 - y) - lw * sig_neg) / n);
        }
    }
    *loss = sum / n;
    return FA_OK;
}

struct optim_sgd {
    fa_graph *g;
    optim_sgd_opts o;
    int n;
    float **buf; /* momentum buffer per parameter (NULL when not trainable) */
    int started; /* buffers hold a momentum (PyTorch: momentum_buffer is not None) */
};

fa_status optim_sgd_create(optim_sgd **out, fa_graph *g, const optim_sgd_opts *o, fa_error *err) {
    *out = NULL;
    if (!g || !o) return fa_error_set(err, FA_ERR_ARG, "sgd: missing graph or options");
    if (!(o->momentum >= 0) || !(o->weight_decay >= 0) || !isfinite(o->dampening))
        return fa_error_set(err, FA_ERR_ARG, "sgd: invalid momentum %g / weight decay %g / dampening %g",
                            o->momentum, o->weight_decay, o->dampening);
    /* torch.optim.SGD refuses the same combination. */
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return fa_error_set(err, FA_ERR_ARG, "sgd: nesterov needs momentum > 0 and zero dampening");
    optim_sgd *s = calloc(1, sizeof *s);
    if (!s) return fa_error_set(err, FA_ERR_NOMEM, "sgd: out of memory");
    s->g = g;
    s->o = *o;
    s->n = graph_param_count(g);
    s->buf = fa_calloc_array((size_t)(s->n ? s->n : 1), sizeof *s->buf);
    if (!s->buf) {
        free(s);
        return fa_error_set(err, FA_ERR_NOMEM, "sgd: out of memory");
    }
    if (o->momentum != 0) {
        for (int i = 0; i < s->n; i++) {
            graph_param *p = graph_param_at(g, i);
            if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
            s->buf[i] = fa_calloc_array((size_t)p->numel, sizeof(float));
            if (!s->buf[i]) {
                optim_sgd_free(s);
                return fa_error_set(err, FA_ERR_NOMEM, "sgd: out of memory for momentum of %s", p->name);
            }
        }
    }
    *out = s;
    return FA_OK;
}

void optim_sgd_free(optim_sgd *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->buf[i]);
    free(s->buf);
    free(s);
}

void optim_sgd_step(optim_sgd *s, float lr) {
    const float mom = s->o.momentum, damp = s->o.dampening, wd = s->o.weight_decay;
    for (int i = 0; i < s->n; i++) {
        graph_param *p = graph_param_at(s->g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
        float *w = p->data, *gr = p->grad, *b = s->buf[i];
        int64_t m = p->numel;
        int first = !s->started;
#pragma omp parallel for schedule(static) if (m > 65536)
        for (int64_t k = 0; k < m; k++) {
            /* Same operation order as torch/optim/sgd.py (_single_tensor_sgd). */
            float d = gr[k];
            if (wd != 0) d = d + wd * w[k];
            if (mom != 0) {
                float bk = first ? d : b[k] * mom + (1 - damp) * d;
                b[k] = bk;
                d = s->o.nesterov ? d + mom * bk : bk;
            }
            w[k] = w[k] + (-lr) * d;
        }
    }
    if (mom != 0) s->started = 1;
}

float *optim_sgd_momentum(optim_sgd *s, int param_index) {
    if (!s || param_index < 0 || param_index >= s->n || !s->started) return NULL;
    return s->buf[param_index];
}

int optim_sgd_has_momentum(const optim_sgd *s) { return s && s->started && s->o.momentum != 0; }

void optim_sgd_set_started(optim_sgd *s, int started) {
    if (s && s->o.momentum != 0) s->started = started ? 1 : 0;
}
