/* eval_score.c - `freeair eval --model CKPT... --manifest M`: score the
 * validation and test images of a manifest with each training checkpoint
 * (through train/tpredict, the exact path `freeair predict --model` uses, so
 * both give the same scores) and fill the evaluation dataset with them. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fa_progress.h"
#include "data/csv.h"
#include "data/manifest.h"
#include "eval/evaluate.h"
#include "train/dataset.h"
#include "train/tpredict.h"

/* Images per forward pass: predict's default, so that `eval --model` and
 * `predict --model` run the very same batched computation. */
#define SCORE_BATCH 8
#define SCORE_MAX_COLS 256

/* Manifest columns that are not kept as extra output columns: those that
 * predictions.csv writes itself (and "score"/"probability", which would be
 * mistaken for this run's scores). status is kept: it is a manifest column. */
static int score_is_standard(const char *name, const eval_options *o) {
    static const char *std[] = {"id", "patient_id", "label", "score", "model", "split", "probability"};
    for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
        if (!strcmp(name, std[i])) return 1;
    for (int g = 0; g < o->n_group_by; g++)
        if (!strcmp(name, o->group_by[g])) return 1;
    return 0;
}

/* One manifest row to score. Strings are borrowed from the csv_table. */
typedef struct score_item {
    const char *id;   /* the path cell as written (predict's id) */
    char *file;       /* resolved path; owned */
    int split;
    unsigned char label;
    int row;          /* 0-based data row */
} score_item;

/* The name a checkpoint's rows carry: the run folder's name (a folder as
 * given, else the folder holding the file). */
static void run_dir_name(const char *ckpt, char *out, size_t cap) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", ckpt);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    struct stat sb;
    if (!(stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        char *slash = strrchr(buf, '/');
        if (!slash) {
            snprintf(out, cap, ".");
            return;
        }
        *slash = '\0';
        if (!buf[0]) {
            snprintf(out, cap, "/");
            return;
        }
    }
    const char *base = strrchr(buf, '/');
    snprintf(out, cap, "%s", base ? base + 1 : buf);
}

/* Score every item with one checkpoint; adds rows under model name `tmpname`.
 * Images that cannot be read are left out and counted (like predict's
 * status=error rows, which `eval --predictions` leaves out too). */
static fa_status score_one(eval_dataset *ds, const char *ckpt, const char *tmpname, const score_item *it, size_t n_it,
                           const csv_table *t, int c_pat, const int *gcol, const int *xcol, int src,
                           const eval_options *o, fa_progress *prog, char *arch, size_t arch_cap, fa_error *err) {
    tpredict_model *m = NULL;
    fa_status st = tpredict_open(&m, ckpt, SCORE_BATCH, FA_PRECISION_FP32, err);
    if (st != FA_OK) return st;
    snprintf(arch, arch_cap, "%s", tpredict_info(m)->arch);
    size_t slot_item[SCORE_BATCH];
    double prob[SCORE_BATCH];
    const char *gval[64], *xval[SCORE_MAX_COLS];
    size_t next = 0, n_bad = 0, n_added = 0;
    char first_bad[FA_ERROR_MSG_MAX] = "";
    while (st == FA_OK) {
        int filled = 0;
        while (filled < SCORE_BATCH && next < n_it) {
            const score_item *s = &it[next++];
            fa_error ierr = {0};
            if (tpredict_load(m, s->file, filled, &ierr) != FA_OK) {
                if (!n_bad++) snprintf(first_bad, sizeof first_bad, "%s", ierr.msg);
                if (o->progress) fa_progress_add(prog, 1);
                continue;
            }
            slot_item[filled++] = (size_t)(s - it);
        }
        if (!filled) break;
        st = tpredict_run(m, filled, prob, err);
        for (int i = 0; st == FA_OK && i < filled; i++) {
            const score_item *s = &it[slot_item[i]];
            if (isnan(prob[i])) {
                if (!n_bad++) snprintf(first_bad, sizeof first_bad, "%s: the model produced a non-finite logit", s->id);
                continue;
            }
            eval_row row;
            memset(&row, 0, sizeof row);
            row.id = (char *)s->id;
            row.patient_id = (char *)(c_pat >= 0 ? csv_cell(t, s->row, c_pat) : "");
            row.label = s->label;
            row.score = prob[i];
            row.split = s->split;
            row.source = src;
            row.source_row = (size_t)s->row + 1;
            for (int g = 0; g < ds->n_group; g++) gval[g] = csv_cell(t, s->row, gcol[g]);
            for (int x = 0; x < ds->n_extra; x++) xval[x] = csv_cell(t, s->row, xcol[x]);
            row.group = (char **)gval;
            row.extra = (char **)xval;
            st = eval_dataset_add(ds, tmpname, &row, err);
            n_added++;
        }
        if (o->progress) fa_progress_add(prog, filled);
    }
    if (st == FA_OK && n_bad)
        eval_dataset_warn(ds, "%s: %zu image(s) could not be scored and are left out (first: %s)", tpredict_path(m),
                          n_bad, first_bad);
    if (st == FA_OK && !n_added)
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no image of the manifest could be scored (first: %s)",
                          tpredict_path(m), first_bad);
    if (st != FA_OK && !strstr(err->msg, tpredict_path(m))) fa_error_prefix(err, "%s", tpredict_path(m));
    tpredict_close(m);
    return st;
}

fa_status eval_score_checkpoints(eval_dataset *ds, const char *const *checkpoint, int n_checkpoint,
                                 const char *manifest, const eval_options *o, fa_error *err) {
    memset(ds, 0, sizeof *ds);
    if (n_checkpoint < 1) return fa_error_set(err, FA_ERR_ARG, "eval: no checkpoint given");
    if (o->n_group_by > 64) return fa_error_set(err, FA_ERR_ARG, "eval: at most 64 --group-by columns");
    for (int i = 0; i < n_checkpoint; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(checkpoint[i], checkpoint[j]))
                return fa_error_set(err, FA_ERR_ARG, "%s: checkpoint given twice", checkpoint[i]);
    csv_table t;
    fa_status st = csv_read_file(manifest, &t, err);
    if (st != FA_OK) return st;
    score_item *it = NULL;
    size_t n_it = 0, n_val = 0, n_test = 0, n_not_ok = 0;
    char (*arch)[64] = NULL;
    const char *extra[SCORE_MAX_COLS];
    int n_extra = 0, gcol[64], xcol[SCORE_MAX_COLS];
    int c_path = csv_column(&t, "path"), c_split = csv_column(&t, "split"), c_label = csv_column(&t, "label");
    int c_status = csv_column(&t, "status"), c_pat = csv_column(&t, "patient_id");
    const char *missing = c_path < 0 ? "path" : c_split < 0 ? "split" : c_label < 0 ? "label" : NULL;
    if (missing) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no '%s' column (a manifest of `freeair scan` + `freeair split`)",
                          manifest, missing);
        goto out;
    }
    for (int c = 0; c < t.n_cols && n_extra < SCORE_MAX_COLS; c++)
        if (!score_is_standard(t.header[c], o)) extra[n_extra++] = t.header[c];
    for (int g = 0; g < o->n_group_by; g++)
        if ((gcol[g] = csv_column(&t, o->group_by[g])) < 0) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: no column '%s' to group by", manifest, o->group_by[g]);
            goto out;
        }
    if ((st = eval_dataset_init(ds, o->group_by, o->n_group_by, extra, n_extra, err)) != FA_OK) goto out;
    for (int x = 0; x < n_extra; x++) xcol[x] = csv_column(&t, extra[x]);
    if (c_pat < 0) {
        ds->has_patient = 0;
        eval_dataset_warn(ds, "%s: no patient_id column: each image is treated as its own patient "
                              "(the bootstrap cannot account for repeat images)", manifest);
    }
    int src;
    if ((st = eval_dataset_add_source(ds, manifest, "manifest", &src, err)) != FA_OK) goto out;
    ds->source[src].rows = (size_t)t.n_rows;

    it = fa_calloc_array(t.n_rows > 0 ? (size_t)t.n_rows : 1, sizeof *it);
    arch = fa_calloc_array((size_t)n_checkpoint, sizeof *arch);
    if (!it || !arch) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", manifest);
        goto out;
    }
    for (int r = 0; r < t.n_rows; r++) {
        const char *sp = csv_cell(&t, r, c_split);
        int split = !strcmp(sp, o->val_split) ? EVAL_SPLIT_VAL : !strcmp(sp, o->test_split) ? EVAL_SPLIT_TEST : 0;
        if (!split) continue; /* e.g. train rows */
        if (c_status >= 0 && strcmp(csv_cell(&t, r, c_status), MANIFEST_STATUS_OK)) {
            n_not_ok++;
            continue;
        }
        const char *p = csv_cell(&t, r, c_path);
        int label = dataset_parse_label(csv_cell(&t, r, c_label));
        if (!p[0] || label < 0) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: %s", manifest, r + 2,
                              !p[0] ? "empty path" : "label is not 0 or 1");
            goto out;
        }
        char file[4096];
        manifest_resolve_path(p, manifest, file, sizeof file);
        score_item *s = &it[n_it];
        if (!(s->file = strdup(file))) {
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", manifest);
            goto out;
        }
        n_it++;
        s->id = p;
        s->split = split;
        s->label = (unsigned char)label;
        s->row = r;
        split == EVAL_SPLIT_VAL ? n_val++ : n_test++;
    }
    if (n_test == 0) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: no usable rows with split '%s'", manifest, o->test_split);
        goto out;
    }
    if (n_not_ok)
        eval_dataset_warn(ds, "%s: %zu %s/%s row(s) with a status other than 'ok' are left out", manifest, n_not_ok,
                          o->val_split, o->test_split);

    fa_progress prog;
    fa_progress_begin(&prog, "eval", (int64_t)(n_it * (size_t)n_checkpoint));
    prog.quiet = !o->progress || !prog.is_tty;
    for (int k = 0; k < n_checkpoint && st == FA_OK; k++)
        st = score_one(ds, checkpoint[k], checkpoint[k], it, n_it, &t, c_pat, gcol, xcol, src, o, &prog, arch[k],
                       sizeof arch[k], err);
    if (o->progress) fa_progress_end(&prog);
    if (st != FA_OK) goto out;
    if (ds->n_model != (size_t)n_checkpoint) {
        st = fa_error_set(err, FA_ERR_INTERNAL, "eval: %zu models for %d checkpoints", ds->n_model, n_checkpoint);
        goto out;
    }
    /* Names: the architecture when it tells the checkpoints apart, else the
     * run folder, else the checkpoint as given. */
    for (int k = 0; k < n_checkpoint && st == FA_OK; k++) {
        char name[4096];
        int dup = 0;
        for (int j = 0; j < n_checkpoint; j++) dup |= j != k && !strcmp(arch[j], arch[k]);
        snprintf(name, sizeof name, "%s", arch[k]);
        if (dup) {
            run_dir_name(checkpoint[k], name, sizeof name);
            for (int j = 0; j < n_checkpoint; j++) {
                char other[4096];
                run_dir_name(checkpoint[j], other, sizeof other);
                if (j != k && !strcmp(other, name)) snprintf(name, sizeof name, "%s", checkpoint[k]);
            }
        }
        char *copy = strdup(name);
        if (!copy) {
            st = fa_error_set(err, FA_ERR_NOMEM, "eval: out of memory");
            break;
        }
        free(ds->model[k].name);
        ds->model[k].name = copy;
    }
    /* Checkpoints in the provenance while there is room (the manifest is the first source). */
    for (int k = 0; k < n_checkpoint && st == FA_OK; k++) {
        if (ds->n_source >= (int)(sizeof ds->source / sizeof ds->source[0])) {
            eval_dataset_warn(ds, "only the first %d checkpoints are listed with their SHA-256 in the provenance",
                              k);
            break;
        }
        char path[4200], role[4200];
        struct stat sb;
        snprintf(path, sizeof path, "%s", checkpoint[k]);
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            snprintf(path, sizeof path, "%s/best.safetensors", checkpoint[k]);
            if (stat(path, &sb) != 0) snprintf(path, sizeof path, "%s/last.safetensors", checkpoint[k]);
        }
        snprintf(role, sizeof role, "checkpoint of model '%s'", ds->model[k].name);
        int idx;
        st = eval_dataset_add_source(ds, path, role, &idx, err);
    }
    ds->has_val = n_val > 0;
    if (st == FA_OK && !ds->has_val)
        eval_dataset_warn(ds, "%s: no usable rows with split '%s': operating points are NOT locked (chosen on the "
                              "test rows, optimistic)", manifest, o->val_split);
out:
    if (it)
        for (size_t i = 0; i < n_it; i++) free(it[i].file);
    free(it);
    free(arch);
    /* The rows hold copies: the table can go. */
    csv_free(&t);
    return st;
}
