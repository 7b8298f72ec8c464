/* tpredict.h - scoring images with a training checkpoint (`freeair predict
 * --model CHECKPOINT`): the checkpoint's own architecture, input size and
 * preprocessing (the validation path of training, so a file scores exactly as
 * it did during validation), batched inference, and the locked operating
 * point when the checkpoint holds one.
 */
#ifndef FA_TPREDICT_H
#define FA_TPREDICT_H

#include "core/fa_status.h"
#include "engine/exec.h"
#include "train/ckpt.h"

typedef struct tpredict_model tpredict_model;

/* Load the checkpoint (a file or a run folder: its best.safetensors when
 * present, else last.safetensors) and create an inference executor for
 * `batch` images. */
fa_status tpredict_open(tpredict_model **out, const char *checkpoint, int batch, fa_precision precision,
                        fa_error *err);
void tpredict_close(tpredict_model *m);

const ckpt_info *tpredict_info(const tpredict_model *m);
/* The checkpoint file actually loaded. */
const char *tpredict_path(const tpredict_model *m);
int tpredict_batch_size(const tpredict_model *m);

/* Decode `path` (DICOM, PNG or JPEG, by content) and place its tensor in
 * batch slot `slot`. Errors name the file. */
fa_status tpredict_load(tpredict_model *m, const char *path, int slot, fa_error *err);

/* Run slots 0..n-1 (the rest are zero-padded) and write the probabilities
 * (sigmoid of the logit; NaN for a non-finite logit). */
fa_status tpredict_run(tpredict_model *m, int n, double *prob, fa_error *err);

/* Decision at the locked threshold: 1 positive, 0 negative, -1 when the
 * checkpoint has no locked operating point or prob is NaN. */
int tpredict_decide(const tpredict_model *m, double prob);

#endif
