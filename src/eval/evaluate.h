/* evaluate.h - the evaluation of scored images: `freeair eval`.
 *
 * Flow: a dataset of scored rows (one per model and image) is filled from a
 * predictions CSV (eval_dataset_load_csv) or, later, by an engine-backed
 * scorer through eval_dataset_add; eval_run locks operating points on the
 * validation rows, computes every metric on the test rows (overall and per
 * subgroup) and the paired model comparisons; the eval_write_* functions
 * write metrics.json, predictions.csv, misclassified.csv and the summary
 * tables. docs/metrics.md documents every output key and formula.
 */
#ifndef FA_EVALUATE_H
#define FA_EVALUATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/fa_status.h"
#include "eval/stats.h"

#define EVAL_MAX_TARGETS 8
#define EVAL_MAX_RULES 26 /* youden + 3 lists of targets */
#define EVAL_REASON_MAX 200

enum { EVAL_SPLIT_VAL = 1, EVAL_SPLIT_TEST = 2 };

typedef struct eval_options {
    const char *val_split;  /* split-column value of validation rows ("val") */
    const char *test_split; /* split-column value of test rows ("test") */
    const char *const *group_by; /* subgroup columns (borrowed) */
    int n_group_by;
    int n_boot;             /* cluster-bootstrap replicates (2000; 0 = none) */
    uint64_t seed;          /* bootstrap seed (1) */
    double level;           /* confidence level (0.95) */
    double target_sens[EVAL_MAX_TARGETS]; /* (0.90, 0.95) */
    int n_target_sens;
    double target_spec[EVAL_MAX_TARGETS]; /* (0.95, 0.99) */
    int n_target_spec;
    double fixed[EVAL_MAX_TARGETS];       /* prespecified thresholds (0.5) */
    int n_fixed;
    const char *primary;    /* rule used for decisions and errors ("youden") */
    int ece_bins;           /* calibration bins (10) */
    double dca_from, dca_to, dca_step; /* decision-curve grid (0.01..0.99 by 0.01) */
    size_t mcnemar_exact_below; /* exact McNemar when b + c < this (25) */
    int hist_bins;          /* score-distribution bins (20) */
    int progress;           /* scoring: progress line on stderr when it is a terminal (0) */
} eval_options;

void eval_options_default(eval_options *o);

/* One scored image for one model. Strings are owned by the dataset. */
typedef struct eval_row {
    char *id, *patient_id;
    unsigned char label;
    double score;
    int split;          /* EVAL_SPLIT_VAL or EVAL_SPLIT_TEST */
    int source;         /* index into eval_dataset.source */
    size_t source_row;  /* 1-based data row in that source, for messages */
    char **group;       /* n_group values */
    char **extra;       /* n_extra values (other input columns, kept for output) */
} eval_row;

typedef struct eval_model {
    char *name;
    eval_row *row;
    size_t n_row, cap;
} eval_model;

typedef struct eval_source {
    char *path;
    char sha256[65];
    size_t rows;
    char *role; /* "predictions", "validation predictions", "manifest", ... */
} eval_source;

typedef struct eval_dataset {
    eval_model *model;
    size_t n_model;
    char **group_col;
    int n_group;
    char **extra_col;
    int n_extra;
    eval_source source[4];
    int n_source;
    int has_val;       /* validation rows are available to lock thresholds */
    int has_patient;   /* patient ids were given (else each image is its own patient) */
    char **warning;
    size_t n_warning;
} eval_dataset;

/* Prepare an empty dataset with these subgroup and extra columns (copied).
 * Call eval_dataset_free on it in every case. */
fa_status eval_dataset_init(eval_dataset *ds, const char *const *group_col, int n_group,
                            const char *const *extra_col, int n_extra, fa_error *err);
void eval_dataset_free(eval_dataset *ds);

/* Register an input file (its SHA-256 is taken now); returns its index in
 * *index. role is a short description for provenance. */
fa_status eval_dataset_add_source(eval_dataset *ds, const char *path, const char *role, int *index,
                                  fa_error *err);

/* Append a copy of *row (strings and arrays deep-copied) for model `model`.
 * This is where a scorer (`--model CKPT --manifest M`) plugs in. Rejects a
 * non-finite score, a label other than 0/1, an empty id and a duplicate id
 * for the same model, naming the source row. */
fa_status eval_dataset_add(eval_dataset *ds, const char *model, const eval_row *row, fa_error *err);

/* Record a warning (copied) that ends up on stderr and in metrics.json. */
void eval_dataset_warn(eval_dataset *ds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load scored rows from a predictions CSV (columns id, patient_id, label,
 * score, optional model and split, the group-by columns, anything else) and
 * an optional separate validation CSV (val_path may be NULL). Without a
 * split column every row of pred_path is a test row; with one, rows whose
 * split is neither val nor test (e.g. train) are skipped. Bad input gives
 * one line naming the file, the row and the reason. */
fa_status eval_dataset_load_csv(eval_dataset *ds, const char *pred_path, const char *val_path,
                                const eval_options *o, fa_error *err);

/* Cross-checks after loading: every model has test rows; an id has the
 * same label and patient in every model; no id or patient is both in
 * validation and test (a patient in both is a warning: a leak). */
fa_status eval_dataset_check(eval_dataset *ds, fa_error *err);

/* ---- results ---------------------------------------------------------- */

enum { EVAL_RULE_YOUDEN, EVAL_RULE_MIN_SENS, EVAL_RULE_MIN_SPEC, EVAL_RULE_FIXED };

typedef struct eval_rule {
    char name[32]; /* "youden", "sens_0.90", "spec_0.95", "fixed_0.50" */
    int kind;
    double target;
} eval_rule;

typedef struct eval_threshold {
    double value;        /* NaN when undefined */
    int locked;          /* 1: fixed before the test rows were looked at */
    const char *source;  /* "validation", "prespecified" or "test" */
    char reason[EVAL_REASON_MAX]; /* why undefined / not locked ("" if neither) */
    stats_confusion val; /* 2x2 table on the validation rows (when any) */
} eval_threshold;

typedef struct eval_op {
    int defined;
    stats_confusion cm;
    stats_ci sens, spec, acc, ppv, npv; /* Wilson */
    stats_ci f1;                        /* cluster-bootstrap percentile */
    size_t f1_boot_valid;
} eval_op;

typedef struct eval_cell {
    const char *column, *value; /* subgroup (borrowed); NULL for the whole test split */
    size_t n, n_pos, n_neg, n_patients;
    stats_delong delong;
    char auc_reason[EVAL_REASON_MAX]; /* why AUC / DeLong CI is undefined */
    double boot_lo, boot_hi;
    size_t boot_valid, boot_skipped;
    eval_op op[EVAL_MAX_RULES];
    double sas_sens[EVAL_MAX_TARGETS], sas_thr[EVAL_MAX_TARGETS], sas_spec[EVAL_MAX_TARGETS];
    int calib_ok;
    char calib_reason[EVAL_REASON_MAX];
    double brier, ece;
    stats_calib_bin *bin;
    int n_bin;
    size_t n_dca;
    double *dca_pt, *dca_model, *dca_all;
    int roc_ok;
    stats_roc roc;
    double hist_lo, hist_hi;
    size_t *hist_pos, *hist_neg;
} eval_cell;

typedef struct eval_model_result {
    const char *name;          /* borrowed from the dataset */
    size_t n_val, n_val_pos, n_val_neg, n_val_patients;
    eval_threshold thr[EVAL_MAX_RULES];
    eval_cell *cell;           /* cell[0]: whole test split; then subgroups */
    size_t n_cell;
} eval_model_result;

typedef struct eval_compare {
    size_t a, b;                /* model indices */
    const char *column, *value; /* subgroup, NULL for the whole test split */
    size_t n, n_pos, n_neg, n_unmatched;
    int delong_ok;
    char reason[EVAL_REASON_MAX];
    stats_delong_paired dl;
    int mc_ok[EVAL_MAX_RULES];
    stats_mcnemar mc_sens[EVAL_MAX_RULES], mc_spec[EVAL_MAX_RULES];
} eval_compare;

typedef struct eval_result {
    eval_rule rule[EVAL_MAX_RULES];
    int n_rule;
    int primary;
    int locked; /* thresholds came from validation rows */
    eval_model_result *model;
    size_t n_model;
    eval_compare *cmp;
    size_t n_cmp;
} eval_result;

/* Compute everything. ds must have passed eval_dataset_check. The result
 * borrows strings from ds (keep ds alive); free with eval_result_free. */
fa_status eval_run(const eval_dataset *ds, const eval_options *o, eval_result *res, fa_error *err);
void eval_result_free(eval_result *res);

/* ---- outputs ---------------------------------------------------------- */

/* Provenance written into metrics.json. */
typedef struct eval_provenance {
    const char *version; /* freeair version */
    const char *command; /* the command line as typed */
    const char *created; /* UTC ISO 8601 time */
} eval_provenance;

fa_status eval_write_metrics_json(const char *path, const eval_dataset *ds, const eval_options *o,
                                  const eval_result *res, const eval_provenance *prov,
                                  fa_error *err);
/* Every validation and test row with its decision at each rule. */
fa_status eval_write_predictions_csv(const char *path, const eval_dataset *ds,
                                     const eval_result *res, fa_error *err);
/* Test-split errors at the primary rule, highest-confidence errors first. */
fa_status eval_write_misclassified_csv(const char *path, const eval_dataset *ds,
                                       const eval_result *res, fa_error *err);
/* Human-readable tables in the study's Table 2/3/4 forms, with CIs. */
void eval_print_summary(FILE *f, const eval_dataset *ds, const eval_options *o,
                        const eval_result *res);

/* Scoring images with checkpoints (`freeair eval --model CKPT... --manifest
 * M`, src/eval/eval_score.c): initialises ds (call eval_dataset_free in every
 * case) and fills it with one model per checkpoint (a file or a run folder,
 * as `freeair predict --model`; the same preprocessing, batch of 8 and fp32,
 * so the scores equal predict's), scoring the manifest rows whose split is
 * o->val_split or o->test_split and whose status (when the column exists) is
 * ok. id = the path cell as written, patient_id, label and the group-by
 * columns from the manifest; every other manifest column is kept for the
 * predictions output. A model is named by its architecture, or by its run
 * folder when several checkpoints share one. Images that cannot be decoded
 * are left out with a warning. Errors (one line naming the file): manifest
 * without path/split/label, a bad label, no test rows, a missing group-by
 * column, an unloadable checkpoint, a checkpoint given twice.
 */
fa_status eval_score_checkpoints(eval_dataset *ds, const char *const *checkpoint, int n_checkpoint,
                                 const char *manifest, const eval_options *o, fa_error *err);

#endif
