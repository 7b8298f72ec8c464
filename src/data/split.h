/* split.h - patient-grouped, label-stratified, seeded train/val/test splits
 * and grouped k-fold assignment over a manifest (data/manifest.h).
 *
 * Rules shared by every mode:
 *   - Only rows with status "ok" take part; every other row gets an empty
 *     split (or fold) cell.
 *   - Rows are grouped by the group column (patient_id by default). A group
 *     never spans two partitions; split_check verifies it on the result. A row
 *     with an empty group value is a group of its own (counted in
 *     n_empty_group: anonymised data without patient IDs cannot be grouped).
 *   - Labels (label column, "label" by default) are binary: 1/true/yes/pos/
 *     positive and 0/false/no/neg/negative (case-insensitive); empty means
 *     unlabelled; anything else is an error naming the row. A group is
 *     positive when any of its images is positive, else negative when any is
 *     negative, else unlabelled. label_col NULL or "" disables stratification.
 *   - Determinism: groups are ordered by their key (bytewise), then shuffled
 *     with a splitmix64 generator seeded by `seed`, so the result depends only
 *     on the set of rows and the seed, not on the row order of the file.
 *
 * Modes:
 *   SPLIT_FRACTIONS  within each label stratum, patients are dealt to
 *                    train/val/test in the given fractions of PATIENTS
 *                    (largest-remainder rounding).
 *   SPLIT_PROTOCOL   the study's protocol: train and val are drawn from the
 *                    pool (see split_parse_pool) with exact IMAGE counts
 *                    train_pos/train_neg/val_pos/val_neg. A patient is
 *                    eligible only when all its ok images are in the pool and
 *                    labelled. Patients are taken in shuffled order whenever
 *                    their images fit the remaining counts; if a pass cannot
 *                    hit the counts exactly (multi-image patients), up to 1000
 *                    reshuffles are tried before an FA_ERR_ARG error. Counts
 *                    the pool cannot supply are an error up front. Everything
 *                    else - patients outside the pool and pool leftovers - is
 *                    test (the study's test set: 1287 - 750 - 135 = 402
 *                    images from portable units and other vendors), unless
 *                    leftover_unused is set, which marks pool leftovers
 *                    "unused" so that test holds only non-pool patients.
 *   SPLIT_KFOLD      grouped stratified k-fold: the shuffled patients,
 *                    largest first, each go to the fold holding the fewest
 *                    images of the label classes the patient brings (then
 *                    fewest images, then lowest index), which balances
 *                    positive and negative images per fold. Writes the fold
 *                    column ("0".."K-1").
 *                    With a pool, only pool-eligible patients take part.
 *
 * Pool syntax: comma-separated conditions, all of which must hold:
 *   column=pattern   cell matches the glob pattern (fnmatch * ? [..]),
 *                    case-insensitive, leading/trailing blanks ignored;
 *                    pattern may list alternatives with '|'
 *   column!=pattern  cell matches none of them
 * e.g. "manufacturer=Philips*,unit=fixed,hospital=academic".
 */
#ifndef FA_SPLIT_H
#define FA_SPLIT_H

#include <stdint.h>
#include <stdio.h>

#include "core/fa_status.h"
#include "data/csv.h"

typedef enum split_mode { SPLIT_FRACTIONS, SPLIT_PROTOCOL, SPLIT_KFOLD } split_mode;

#define SPLIT_MAX_PARTS 64 /* also the largest K */
#define SPLIT_POOL_MAX 16  /* conditions in a pool */

typedef struct split_cond {
    char column[64];
    char pattern[256]; /* alternatives separated by '|' */
    int negate;        /* != */
} split_cond;

typedef struct split_pool {
    int n;
    split_cond cond[SPLIT_POOL_MAX];
} split_pool;

typedef struct split_opts {
    split_mode mode;
    uint64_t seed;
    const char *label_col; /* "label"; NULL or "" = no stratification */
    const char *group_col; /* "patient_id" */
    const char *out_col;   /* "split" (or "fold" for k-fold) when NULL */
    double fractions[3];   /* SPLIT_FRACTIONS: train, val, test; sum 1 */
    const split_pool *pool; /* SPLIT_PROTOCOL (required), SPLIT_KFOLD (optional) */
    int train_pos, train_neg, val_pos, val_neg;
    int leftover_unused;
    int kfold;
} split_opts;

/* Per-partition counts: parts are train, val, test, unused (splits) or
 * folds 0..K-1 (k-fold). */
typedef struct split_summary {
    int n_parts;
    char part_name[SPLIT_MAX_PARTS][16];
    int images[SPLIT_MAX_PARTS], patients[SPLIT_MAX_PARTS];
    int pos[SPLIT_MAX_PARTS], neg[SPLIT_MAX_PARTS], unlabelled[SPLIT_MAX_PARTS];
    int n_rows;            /* rows of the manifest */
    int n_ok;              /* rows that took part */
    int n_not_ok;          /* rows left out (status not ok) */
    int n_groups;          /* groups among ok rows */
    int n_empty_group;     /* ok rows without a group value */
    int n_pool_images;     /* ok rows matching the pool */
    int n_pool_patients;   /* eligible pool patients */
    int n_pool_split;      /* patients with images both in and out of the pool */
    int n_pool_unlabelled; /* pool patients left out because of unlabelled images */
    int attempts;          /* shuffles needed (protocol) */
    int overlap_groups;    /* groups spanning partitions found by split_check (0) */
} split_summary;

/* Parse a pool specification (syntax above). Errors name the condition. */
fa_status split_parse_pool(const char *spec, split_pool *pool, fa_error *err);

/* Does row r of t satisfy every condition of the pool? Missing columns were
 * rejected by split_assign; here they read as "". */
int split_pool_match(const csv_table *t, int row, const split_pool *pool);

/* 1 positive, 0 negative, -1 empty, -2 not a binary label. */
int split_parse_label(const char *s);

/* Parse "0.7,0.15,0.15" into three non-negative fractions summing to 1
 * (within 1e-6). */
fa_status split_parse_fractions(const char *s, double out[3], fa_error *err);

/* Assign partitions: adds (or overwrites) the split/fold column of t in place
 * and fills *sum. t must have "status" and the group column (and the label
 * column unless disabled). On error t may hold a partial column; the caller
 * discards it. name is used in messages. */
fa_status split_assign(csv_table *t, const char *name, const split_opts *o, split_summary *sum, fa_error *err);

/* Verify that no group value (non-empty) has rows in two different non-empty
 * partitions of column part_col. Returns the number of offending groups and
 * describes the first in err (FA_ERR_INTERNAL) when any. */
int split_check(const csv_table *t, const char *group_col, const char *part_col, fa_error *err);

/* Human-readable table (one line per partition) and a JSON object. */
void split_summary_print(FILE *f, const split_summary *s);
void split_summary_write_json(FILE *f, const split_summary *s, const split_opts *o);

#endif
