/* lrsched.c - learning-rate schedules (formulas in lrsched.h). */
#include "train/lrsched.h"

#include <math.h>

double lrsched_lr(const train_config *c, int epoch, int step, int steps_per_epoch) {
    double lr = c->lr;
    switch (c->schedule) {
    case TRAINCONF_SCHED_STEP:
        lr = c->lr * pow(c->gamma, (double)(epoch / c->step_size));
        break;
    case TRAINCONF_SCHED_MULTISTEP: {
        int k = 0;
        for (int i = 0; i < c->n_milestones; i++) k += c->milestones[i] <= epoch;
        lr = c->lr * pow(c->gamma, (double)k);
        break;
    }
    case TRAINCONF_SCHED_COSINE: {
        int t = c->epochs - c->warmup_epochs;
        int e = epoch - c->warmup_epochs;
        if (e < 0) e = 0;
        if (t < 1) t = 1;
        if (e > t) e = t;
        lr = c->min_lr + (c->lr - c->min_lr) * (1.0 + cos(M_PI * (double)e / (double)t)) / 2.0;
        break;
    }
    default: break;
    }
    if (c->warmup_epochs > 0 && steps_per_epoch > 0) {
        long long w = (long long)c->warmup_epochs * steps_per_epoch;
        long long g = (long long)epoch * steps_per_epoch + step;
        if (g < w) lr *= c->warmup_factor + (1.0 - c->warmup_factor) * (double)g / (double)w;
    }
    return lr;
}
