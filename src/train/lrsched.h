/* lrsched.h - learning-rate schedules of `freeair train`.
 *
 * The learning rate is a pure function of the position in the run (epoch and
 * step inside the epoch), never of accumulated state, so a resumed run gets
 * exactly the rate the uninterrupted run had: the "schedule state" stored in a
 * checkpoint is only the position.
 */
#ifndef FA_LRSCHED_H
#define FA_LRSCHED_H

#include "train/trainconf.h"

/* Learning rate of optimiser step `step` (0-based, inside the epoch) of epoch
 * `epoch` (0-based) when an epoch has steps_per_epoch steps.
 *
 * Schedule factor (constant within an epoch, as PyTorch's epoch schedulers
 * stepped once at the end of each epoch):
 *   constant  lr
 *   step      lr * gamma^floor(epoch / step_size)        (StepLR)
 *   multistep lr * gamma^(number of milestones <= epoch)  (MultiStepLR)
 *   cosine    min_lr + (lr - min_lr) (1 + cos(pi e / T)) / 2 with
 *             e = epoch - warmup_epochs, T = epochs - warmup_epochs
 *             (CosineAnnealingLR, T_max = T)
 * Warm-up (warmup_epochs > 0), per step: during the first
 * W = warmup_epochs * steps_per_epoch steps the factor above is multiplied by
 * warmup_factor + (1 - warmup_factor) * g / W, g the global step. */
double lrsched_lr(const train_config *c, int epoch, int step, int steps_per_epoch);

#endif
