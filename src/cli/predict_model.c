/* predict_model.c - `freeair predict --model CHECKPOINT INPUT...`: score
 * DICOM/PNG/JPEG files, directories (walked recursively) and manifests
 * (*.csv with a path column) with a training checkpoint, applying the
 * checkpoint's own preprocessing and, when it holds one, its locked operating
 * point. Files refused by the chest gate (or unreadable) are listed with
 * their reason instead of a probability. Output: CSV (default) or JSON.
 * cmd_predict.c hands every invocation with --model to cmd_predict_model.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/predict_model.h"
#include "core/fa_progress.h"
#include "data/csv.h"
#include "data/manifest.h"
#include "eval/jsonw.h"
#include "train/tpredict.h"

typedef struct pm_row {
    char *path;    /* as given / as in the manifest */
    char *file;    /* resolved file to read */
    char status[16]; /* ok, refused, error */
    char *reason;
    double prob;
    char *extra[3]; /* patient_id, label, split from a manifest ("" if none) */
} pm_row;

typedef struct pm_rows {
    pm_row *r;
    int n, cap;
    int has_extra;
} pm_rows;

static const char *const pm_extra_cols[3] = {"patient_id", "label", "split"};

static void pm_usage(FILE *f) {
    fprintf(f,
            "usage: freeair predict --model CHECKPOINT [options] INPUT...\n"
            "\n"
            "Scores DICOM, PNG and JPEG files, directories (recursively) and manifests\n"
            "(*.csv with a path column; paths relative to the manifest) with a checkpoint\n"
            "of `freeair train`, using its architecture, input size and preprocessing.\n"
            "A run folder as CHECKPOINT means its best.safetensors. When the checkpoint\n"
            "holds a locked operating point (train --operating_point), a decision column\n"
            "gives 1 for probability >= threshold. Files refused by the chest gate or\n"
            "unreadable are listed with status refused/error and the reason.\n"
            "\n"
            "  --model PATH       checkpoint file or run folder\n"
            "  --format csv|json  output format (default csv)\n"
            "  --output FILE      write there instead of stdout\n"
            "  --split NAME       manifests: only rows whose split column is NAME\n"
            "  --batch N          images per forward pass (default 8)\n"
            "  --threads N        oneDNN threads (default: OpenMP's)\n"
            "  --precision P      fp32 (default) or bf16\n"
            "  --quiet            no progress line\n");
}

static int pm_push(pm_rows *rows, const char *path, const char *file, const char *status, const char *reason) {
    if (rows->n == rows->cap) {
        int cap = rows->cap ? rows->cap * 2 : 64;
        pm_row *r = realloc(rows->r, (size_t)cap * sizeof *r);
        if (!r) return 0;
        rows->r = r;
        rows->cap = cap;
    }
    pm_row *r = &rows->r[rows->n];
    memset(r, 0, sizeof *r);
    r->path = strdup(path);
    r->file = strdup(file);
    r->reason = strdup(reason ? reason : "");
    for (int i = 0; i < 3; i++) r->extra[i] = strdup("");
    snprintf(r->status, sizeof r->status, "%s", status);
    r->prob = NAN;
    rows->n++;
    return r->path && r->file && r->reason && r->extra[0] && r->extra[1] && r->extra[2];
}

static void pm_free(pm_rows *rows) {
    for (int i = 0; i < rows->n; i++) {
        free(rows->r[i].path);
        free(rows->r[i].file);
        free(rows->r[i].reason);
        for (int k = 0; k < 3; k++) free(rows->r[i].extra[k]);
    }
    free(rows->r);
}

static int ends_with_csv(const char *p) {
    size_t n = strlen(p);
    return n > 4 && !strcasecmp(p + n - 4, ".csv");
}

/* Map the gate's status ("ok", "excluded", "error") to predict's. */
static const char *pm_status(const char *manifest_status) {
    if (!strcmp(manifest_status, MANIFEST_STATUS_OK)) return "ok";
    if (!strcmp(manifest_status, MANIFEST_STATUS_EXCLUDED)) return "refused";
    return "error";
}

/* A manifest CSV: every row (of `split`), with its status/reason when the
 * manifest carries them (the chest gate already ran in `freeair scan`). */
static fa_status pm_add_manifest(pm_rows *rows, const char *mpath, const char *split, fa_error *err) {
    csv_table t;
    fa_status st = csv_read_file(mpath, &t, err);
    if (st != FA_OK) return st;
    int cp = csv_column(&t, "path"), cs = csv_column(&t, "status"), cr = csv_column(&t, "reason");
    int csplit = csv_column(&t, "split");
    if (cp < 0) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: no 'path' column", mpath);
    }
    if (split && csplit < 0) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: --split given but the manifest has no 'split' column", mpath);
    }
    rows->has_extra = 1;
    for (int i = 0; i < t.n_rows; i++) {
        if (split && strcmp(csv_cell(&t, i, csplit), split)) continue;
        const char *p = csv_cell(&t, i, cp);
        char file[4096];
        manifest_resolve_path(p, mpath, file, sizeof file);
        const char *status = cs >= 0 ? pm_status(csv_cell(&t, i, cs)) : "ok";
        if (!pm_push(rows, p, file, status, cr >= 0 ? csv_cell(&t, i, cr) : "")) {
            csv_free(&t);
            return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", mpath);
        }
        pm_row *r = &rows->r[rows->n - 1];
        for (int k = 0; k < 3; k++) {
            int c = csv_column(&t, pm_extra_cols[k]);
            if (c < 0) continue;
            free(r->extra[k]);
            r->extra[k] = strdup(csv_cell(&t, i, c));
            if (!r->extra[k]) {
                csv_free(&t);
                return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", mpath);
            }
        }
    }
    csv_free(&t);
    return FA_OK;
}

/* A file or directory: `freeair scan`'s walk and chest gate. */
static fa_status pm_add_scan(pm_rows *rows, const char *input, fa_error *err) {
    struct stat sb;
    if (stat(input, &sb) != 0) {
        char reason[512];
        snprintf(reason, sizeof reason, "unreadable: %s", strerror(errno));
        return pm_push(rows, input, input, "error", reason) ? FA_OK
                                                            : fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    }
    csv_table t;
    manifest_scan_opts so = {1, 0, 1, NULL};
    manifest_scan_stats ss;
    const char *in[1] = {input};
    fa_status st = manifest_scan(in, 1, &so, &t, &ss, err);
    if (st != FA_OK) return st;
    for (int i = 0; i < t.n_rows && st == FA_OK; i++) {
        const char *p = csv_cell(&t, i, MANIFEST_COL_PATH);
        if (!pm_push(rows, p, p, pm_status(csv_cell(&t, i, MANIFEST_COL_STATUS)), csv_cell(&t, i, MANIFEST_COL_REASON)))
            st = fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    }
    csv_free(&t);
    return st;
}

static void pm_write_csv(FILE *f, const pm_rows *rows, const tpredict_model *m) {
    int decide = isfinite(tpredict_info(m)->threshold);
    const char *head[8];
    int n = 0;
    head[n++] = "path";
    head[n++] = "probability";
    if (decide) head[n++] = "decision";
    head[n++] = "status";
    head[n++] = "reason";
    if (rows->has_extra)
        for (int k = 0; k < 3; k++) head[n++] = pm_extra_cols[k];
    csv_write_row(f, n, head);
    for (int i = 0; i < rows->n; i++) {
        const pm_row *r = &rows->r[i];
        char prob[64] = "", dec[16] = "";
        if (!isnan(r->prob)) snprintf(prob, sizeof prob, "%.9g", r->prob);
        int d = tpredict_decide(m, r->prob);
        if (d >= 0) snprintf(dec, sizeof dec, "%d", d);
        const char *cells[8];
        int k = 0;
        cells[k++] = r->path;
        cells[k++] = prob;
        if (decide) cells[k++] = dec;
        cells[k++] = r->status;
        cells[k++] = r->reason;
        if (rows->has_extra)
            for (int e = 0; e < 3; e++) cells[k++] = r->extra[e];
        csv_write_row(f, k, cells);
    }
}

static void pm_write_json(FILE *f, const pm_rows *rows, const tpredict_model *m) {
    const ckpt_info *info = tpredict_info(m);
    jsonw w;
    jsonw_init(&w, f);
    jsonw_object(&w, NULL);
    jsonw_str(&w, "model", tpredict_path(m));
    jsonw_str(&w, "arch", info->arch);
    jsonw_int(&w, "image_size", info->image_size);
    jsonw_int(&w, "epoch", info->epoch);
    jsonw_num(&w, "threshold", info->threshold);
    jsonw_str(&w, "threshold_rule", info->threshold_rule[0] ? info->threshold_rule : NULL);
    jsonw_array(&w, "predictions");
    for (int i = 0; i < rows->n; i++) {
        const pm_row *r = &rows->r[i];
        jsonw_object(&w, NULL);
        jsonw_str(&w, "path", r->path);
        jsonw_num(&w, "probability", r->prob);
        int d = tpredict_decide(m, r->prob);
        if (d >= 0) jsonw_int(&w, "decision", d);
        else if (isfinite(info->threshold)) jsonw_null(&w, "decision");
        jsonw_str(&w, "status", r->status);
        if (r->reason[0]) jsonw_str(&w, "reason", r->reason);
        if (rows->has_extra)
            for (int k = 0; k < 3; k++)
                if (r->extra[k][0]) jsonw_str(&w, pm_extra_cols[k], r->extra[k]);
        jsonw_end(&w);
    }
    jsonw_end(&w);
    jsonw_end(&w);
    fputc('\n', f);
}

int cmd_predict_model(int argc, char **argv) {
    const char *model = NULL, *format = "csv", *output = NULL, *split = NULL;
    int batch = 8, threads = 0, quiet = 0, n_inputs = 0, only_inputs = 0;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) {
        fprintf(stderr, "freeair predict: out of memory\n");
        return 1;
    }
    fa_precision prec = FA_PRECISION_FP32;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        /* options and inputs may come in any order; "--" ends the options */
        if (only_inputs || strncmp(o, "--", 2)) {
            inputs[n_inputs++] = o;
            continue;
        }
        if (!strcmp(o, "--")) {
            only_inputs = 1;
            continue;
        }
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            pm_usage(stdout);
            free(inputs);
            return 0;
        }
        if (!strcmp(o, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "freeair predict: %s needs a value\n", o);
            free(inputs);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        if (!strcmp(o, "--model")) model = v;
        else if (!strcmp(o, "--format")) format = v;
        else if (!strcmp(o, "--output")) output = v;
        else if (!strcmp(o, "--split")) split = v;
        else if (!strcmp(o, "--batch")) {
            long b = strtol(v, &end, 10);
            if (*end || b < 1 || b > 1024) {
                fprintf(stderr, "freeair predict: --batch %s: expected 1..1024\n", v);
                free(inputs);
                return 2;
            }
            batch = (int)b;
        } else if (!strcmp(o, "--threads")) {
            long t = strtol(v, &end, 10);
            if (*end || t < 1 || t > 1024) {
                fprintf(stderr, "freeair predict: --threads %s: expected 1..1024\n", v);
                free(inputs);
                return 2;
            }
            threads = (int)t;
        } else if (!strcmp(o, "--precision")) {
            if (!strcmp(v, "fp32")) prec = FA_PRECISION_FP32;
            else if (!strcmp(v, "bf16")) prec = FA_PRECISION_BF16;
            else {
                fprintf(stderr, "freeair predict: --precision %s: expected fp32 or bf16\n", v);
                free(inputs);
                return 2;
            }
        } else {
            fprintf(stderr, "freeair predict: unknown option %s with --model (see --model x --help)\n", o);
            free(inputs);
            return 2;
        }
    }
    const char *usage_error = !model ? "--model is required here"
                              : strcmp(format, "csv") && strcmp(format, "json") ? "--format: expected csv or json"
                              : n_inputs == 0 ? "no inputs given (files, directories or manifests)"
                                              : NULL;
    if (usage_error) {
        fprintf(stderr, "freeair predict: %s\n", usage_error);
        free(inputs);
        return 2;
    }
    if (threads) exec_set_threads(threads);

    fa_error err = {0};
    tpredict_model *m = NULL;
    if (tpredict_open(&m, model, batch, prec, &err) != FA_OK) {
        free(inputs);
        return cli_fail("predict", &err);
    }
    pm_rows rows = {0};
    fa_status st = FA_OK;
    for (int i = 0; i < n_inputs && st == FA_OK; i++)
        st = ends_with_csv(inputs[i]) ? pm_add_manifest(&rows, inputs[i], split, &err) : pm_add_scan(&rows, inputs[i], &err);
    int rc = 0;
    if (st != FA_OK) {
        rc = cli_fail("predict", &err);
        goto done;
    }

    /* score the ok rows in batches */
    int *slot_row = fa_malloc_array((size_t)batch, sizeof *slot_row);
    double *prob = fa_malloc_array((size_t)batch, sizeof *prob);
    if (!slot_row || !prob) {
        free(slot_row);
        free(prob);
        fa_error_set(&err, FA_ERR_NOMEM, "out of memory");
        rc = cli_fail("predict", &err);
        goto done;
    }
    int n_ok = 0;
    for (int i = 0; i < rows.n; i++) n_ok += !strcmp(rows.r[i].status, "ok");
    fa_progress prog;
    fa_progress_begin(&prog, "predict", n_ok);
    prog.quiet = quiet || !prog.is_tty;
    int next = 0;
    while (st == FA_OK) {
        int filled = 0;
        while (filled < batch && next < rows.n) {
            pm_row *r = &rows.r[next++];
            if (strcmp(r->status, "ok")) continue;
            fa_error ierr = {0};
            if (tpredict_load(m, r->file, filled, &ierr) != FA_OK) {
                snprintf(r->status, sizeof r->status, "error");
                free(r->reason);
                r->reason = strdup(ierr.msg);
                fa_progress_add(&prog, 1);
                continue;
            }
            slot_row[filled++] = (int)(r - rows.r);
        }
        if (!filled) break;
        st = tpredict_run(m, filled, prob, &err);
        for (int i = 0; st == FA_OK && i < filled; i++) {
            pm_row *r = &rows.r[slot_row[i]];
            r->prob = prob[i];
            if (isnan(prob[i])) {
                snprintf(r->status, sizeof r->status, "error");
                free(r->reason);
                r->reason = strdup("the model produced a non-finite logit");
            }
        }
        fa_progress_add(&prog, filled);
    }
    fa_progress_end(&prog);
    free(slot_row);
    free(prob);
    if (st != FA_OK) {
        rc = cli_fail("predict", &err);
        goto done;
    }
    FILE *f = output ? fopen(output, "w") : stdout;
    if (!f) {
        fa_error_set(&err, FA_ERR_IO, "%s: %s", output, strerror(errno));
        rc = cli_fail("predict", &err);
        goto done;
    }
    if (!strcmp(format, "json")) pm_write_json(f, &rows, m);
    else pm_write_csv(f, &rows, m);
    int werr = ferror(f) || fflush(f) != 0;
    if (output && fclose(f) != 0) werr = 1;
    if (werr) {
        fa_error_set(&err, FA_ERR_IO, "%s: write failed", output ? output : "stdout");
        rc = cli_fail("predict", &err);
        goto done;
    }
    int n_err = 0, n_ref = 0;
    for (int i = 0; i < rows.n; i++) {
        n_err += !strcmp(rows.r[i].status, "error");
        n_ref += !strcmp(rows.r[i].status, "refused");
    }
    if (n_ref) fprintf(stderr, "freeair predict: %d file(s) refused by the chest gate (listed with their reason)\n", n_ref);
    if (n_err) {
        fprintf(stderr, "freeair predict: %d file(s) could not be scored (listed with their reason)\n", n_err);
        rc = 1;
    }
done:
    free(inputs);
    pm_free(&rows);
    tpredict_close(m);
    return rc;
}
