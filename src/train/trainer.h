/* trainer.h - the training loop of `freeair train`: data, model, SGD with the
 * configured schedule, validation every epoch, checkpoints, early stopping,
 * progress and the JSON-lines log.
 *
 * Files in c->out: last.safetensors (after every epoch, and every
 * checkpoint_steps steps), best.safetensors (lowest validation loss),
 * best_auc.safetensors (keep_best_auc), train.jsonl (appended), config.conf
 * (the effective configuration).
 *
 * Resume: from a checkpoint written at step s of epoch e the run continues
 * with step s+1 of epoch e: same weights, momentum buffers, BatchNorm
 * statistics, sample order (recomputed from seed and epoch), augmentation
 * draws (keyed by seed, epoch, position), learning rate (a function of the
 * position) and best-so-far bookkeeping, so the final weights equal those of
 * an uninterrupted run bit for bit (fp32, same threads, no dropout).
 */
#ifndef FA_TRAINER_H
#define FA_TRAINER_H

#include <stdint.h>

#include "core/fa_status.h"
#include "train/trainconf.h"

typedef struct trainer_result {
    int epochs_done;
    int64_t global_step;
    double best_val_loss;
    int best_epoch;
    double best_val_auc;
    double last_val_loss, last_val_auc;
    int stopped_early;     /* patience ran out */
    int stopped_max_steps; /* max_steps reached */
} trainer_result;

typedef struct trainer_opts {
    const char *resume; /* checkpoint file to continue from, or NULL */
    int quiet;          /* no progress line */
} trainer_opts;

/* Run training as configured (c validated by the caller). On a non-finite
 * loss the run stops with FA_ERR_NUMERIC and a message naming the epoch,
 * step and the last good checkpoint, which is left untouched. */
fa_status trainer_run(const train_config *c, const trainer_opts *o, trainer_result *res, fa_error *err);

/* Reconcile a resumed run's config: start from the checkpoint's stored
 * config `stored`, apply the keys the user set (given[i] != 0 for key i of
 * trainconf's table, values in `user`), refusing changes to keys that would
 * break exact continuation. Result in *out. */
fa_status trainer_resume_config(const train_config *stored, const train_config *user, const int *given,
                                const char *ckpt_path, train_config *out, fa_error *err);

#endif
