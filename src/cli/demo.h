/* demo.h - helpers behind `freeair demo` (cmd_demo.c): the bookkeeping that
 * lets a re-run resume (stage stamps), small file utilities, and the glue
 * between the stages (truth columns, split counts, scoring, cohort.json,
 * the closing summary). One prefix: demo_.
 *
 * The demo drives the other subcommands in-process through their cmd_*
 * entry points; everything here is what those commands do not do themselves.
 * Functions return fa_status and fill fa_error with one line naming the file;
 * only cmd_demo.c prints.
 */
#ifndef FA_DEMO_H
#define FA_DEMO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/fa_progress.h"
#include "core/fa_status.h"

#define DEMO_PATH_MAX 4096

/* ------------------------------------------------------------------------ */
/* Stages and their stamps (demo_stage.c)                                    */

/* A stage is up to date when OUT/.demo/<name>.stamp exists, holds exactly the
 * stage's parameter text, every listed output exists, and no stamp of a stage
 * it depends on is newer than its own. A stage that runs removes its stamp
 * first and writes it only after its outputs have been checked, so an
 * interrupted stage never looks finished. */
typedef struct demo_ctx {
    char out[DEMO_PATH_MAX];  /* absolute output root */
    int force;                /* run every stage */
    fa_jsonl log;             /* OUT/demo.jsonl */
    double t_start;
} demo_ctx;

/* 1 when stage `name` may be skipped (see above). outputs and deps are
 * NULL-terminated lists (either may be NULL): outputs are paths relative to
 * ctx->out, deps stage names. */
int demo_stage_fresh(const demo_ctx *ctx, const char *name, const char *params, const char *const *outputs,
                     const char *const *deps);
/* Forget that stage `name` ever finished (remove its stamp). */
void demo_stage_forget(const demo_ctx *ctx, const char *name);
/* 1 when the stamp of stage `name` is newer than file `path` (or either is
 * missing): what `path` was made from may have changed since. */
int demo_stage_newer_than(const demo_ctx *ctx, const char *name, const char *path);
/* Record that stage `name` finished with `params`. Errors: FA_ERR_IO. */
fa_status demo_stage_done(const demo_ctx *ctx, const char *name, const char *params, fa_error *err);

/* ------------------------------------------------------------------------ */
/* Files (demo_stage.c)                                                      */

/* dst = a/b (truncation is an FA_ERR_ARG naming the path). */
fa_status demo_join(char *dst, size_t cap, const char *a, const char *b, fa_error *err);
/* mkdir -p. Errors: FA_ERR_IO naming the directory. */
fa_status demo_mkdirs(const char *dir, fa_error *err);
int demo_exists(const char *path);
int demo_is_dir(const char *path);
/* Copy a file atomically (temp file + rename). Errors name the file. */
fa_status demo_copy_file(const char *src, const char *dst, fa_error *err);
/* A file written under a temporary name and renamed into place on success,
 * so that a reader (or a re-run after a kill) never sees half a file. */
typedef struct demo_out {
    FILE *f;
    char tmp[DEMO_PATH_MAX];
    const char *path; /* borrowed */
} demo_out;
fa_status demo_out_open(demo_out *o, const char *path, fa_error *err);
/* Flush, fsync, close and rename when st is FA_OK (returning the first
 * error); otherwise remove the temporary file and return st. */
fa_status demo_out_close(demo_out *o, fa_status st, fa_error *err);

/* Write a whole text file atomically. */
fa_status demo_write_text(const char *path, const char *text, fa_error *err);
/* Read a whole (small, < 1 MiB) text file; *out is malloc'ed, caller frees. */
fa_status demo_read_text(const char *path, char **out, fa_error *err);

/* ------------------------------------------------------------------------ */
/* Data glue (demo_data.c)                                                   */

/* From the generator's manifest (synth_dir/manifest.csv) write a CSV with the
 * path and the truth columns only (the columns `freeair scan` does not
 * produce), for `scan --merge`: the header values then come from the real
 * scan, the truth from the generator. Mask paths become absolute. */
fa_status demo_write_truth(const char *synth_dir, const char *truth_csv, fa_error *err);

/* Check a scanned-and-merged manifest: at least one ok row, every ok row
 * labelled. *n_ok and *n_excluded get the counts. */
fa_status demo_check_manifest(const char *manifest, int *n_ok, int *n_excluded, fa_error *err);

/* The study's split protocol scaled to the cohort: the study drew train
 * 375+/375- and validation 45+/90- from a pool of 420+/465- images (fixed
 * Philips units at the academic hospital). Counts are scaled from the images
 * of the eligible pool patients (all of a patient's ok images in the pool),
 * rounded down so that multi-image patients can still fit, with at least two
 * of each class in validation (a DeLong CI needs two) and in training. */
typedef struct demo_split_counts {
    int pool_pos, pool_neg;   /* images of eligible pool patients */
    int train_pos, train_neg, val_pos, val_neg;
} demo_split_counts;
fa_status demo_split_counts_compute(const char *manifest, const char *pool_spec, demo_split_counts *c,
                                    fa_error *err);

/* Check split.csv: train has both classes, validation at least two of each,
 * test not empty. */
fa_status demo_check_split(const char *split_csv, fa_error *err);

/* Score the val and test rows of split_csv with each trained model (run
 * folders; best.safetensors is used) and write predictions_csv in the input
 * format of `freeair eval --predictions`: model, id, patient_id, split,
 * label, score, then the subgroup columns (see demo_group_columns) and path.
 * val_auc[i] gets the checkpoint's validation AUC (NaN when unknown).
 * threads > 0 caps oneDNN's threads. progress is drawn on stderr. */
fa_status demo_score(const char *split_csv, int n_models, const char *const *model_names,
                     const char *const *run_dirs, int batch, int bf16, const char *predictions_csv,
                     double *val_auc, fa_error *err);

/* The --group-by list for `freeair eval` matching demo_score's columns. */
const char *demo_group_columns(void);

/* Summary read back from metrics.json. */
typedef struct demo_summary {
    char model[64];
    double auc, auc_lo, auc_hi;          /* test AUC with its DeLong CI */
    double sens, sens_lo, sens_hi;       /* at the locked primary threshold */
    double spec, spec_lo, spec_hi;
    double threshold;
    char rule[32];
    int locked;
    int n, n_pos, n_neg;
} demo_summary;

/* Fill *s for `model` from RUN_DIR/metrics.json (primary rule `rule`). */
fa_status demo_read_summary(const char *metrics_json, const char *model, const char *rule, demo_summary *s,
                            fa_error *err);

#endif
