/* cmd_eval.c - `freeair eval`: metrics with confidence intervals, locked
 * operating points, subgroups and paired model comparisons from scored
 * images (see src/eval/evaluate.h and docs/metrics.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "eval/evaluate.h"

#define MAX_LIST 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair eval --predictions FILE.csv [options]\n"
            "       freeair eval --model CKPT... --manifest M [options]\n"
            "\n"
            "Input columns: id, patient_id, label (0/1), score (higher = more likely free air),\n"
            "optional model (several models -> paired comparisons), optional split, any others.\n"
            "`freeair predict` output works too: path is the id, probability the score, and rows\n"
            "whose status is not ok are left out.\n"
            "\n"
            "options:\n"
            "  --predictions FILE     scored rows (with a split column: val and test rows)\n"
            "  --model CKPT           checkpoint file or run folder of `freeair train` (repeatable:\n"
            "                         several models -> paired comparisons); needs --manifest\n"
            "  --manifest M           manifest (path, label, split, patient_id, ...): its val and\n"
            "                         test rows with status ok are scored; all its columns are kept\n"
            "  --val-predictions FILE validation rows, when the predictions file has no split column\n"
            "  --group-by COL[,COL]   subgroup columns (repeatable), e.g. unit,manufacturer\n"
            "  --val-split NAME       split value of validation rows (default val)\n"
            "  --test-split NAME      split value of test rows (default test; also --split)\n"
            "  -o, --out RUN_DIR      output directory (default freeair-eval)\n"
            "  --bootstrap B          patient-level bootstrap replicates (default 2000; 0 = off)\n"
            "  --seed N               bootstrap seed (default 1)\n"
            "  --conf LEVEL           confidence level (default 0.95)\n"
            "  --primary RULE         decision rule for tables and errors (default youden)\n"
            "  --target-sens LIST     sensitivity targets locked on validation (default 0.90,0.95)\n"
            "  --target-spec LIST     specificity targets locked on validation (default 0.95,0.99)\n"
            "  --fixed LIST           prespecified thresholds (default 0.5)\n"
            "  --quiet                no summary tables on stdout\n"
            "\n"
            "Writes RUN_DIR/metrics.json, predictions.csv and misclassified.csv and prints the\n"
            "study's Table 2/3/4 forms with 95%% CIs. Without validation rows the operating points\n"
            "are chosen on the test rows and reported as NOT locked.\n");
}

/* Parse "0.9,0.95" into v (at most max values). */
static int parse_list(const char *s, double *v, int max, int *n) {
    *n = 0;
    if (!*s) return 1;
    char *end;
    for (;;) {
        if (*n >= max) return 0;
        errno = 0;
        v[*n] = strtod(s, &end);
        if (end == s || errno) return 0;
        (*n)++;
        if (*end == '\0') return 1;
        if (*end != ',') return 0;
        s = end + 1;
    }
}

static int ensure_dir(const char *path, fa_error *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        fa_error_set(err, FA_ERR_ARG, "%s: path too long", path);
        return 0;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                fa_error_set(err, FA_ERR_IO, "%s: %s", buf, strerror(errno));
                return 0;
            }
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fa_error_set(err, FA_ERR_IO, "%s: not a directory", path);
        return 0;
    }
    return 1;
}

/* The command line as typed, quoted where a shell would need it. */
static void join_command(char *buf, size_t size, int argc, char **argv) {
    size_t used = (size_t)snprintf(buf, size, "freeair eval");
    for (int i = 1; i < argc && used < size; i++) {
        int plain = argv[i][0] != '\0';
        for (const char *c = argv[i]; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%", *c))
                plain = 0;
        used += (size_t)snprintf(buf + used, size - used, plain ? " %s" : " '%s'", argv[i]);
    }
}

static void utc_now(char *buf, size_t size) {
    /* SOURCE_DATE_EPOCH makes outputs reproducible byte for byte. */
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


int cmd_eval(int argc, char **argv) {
    eval_options o;
    eval_options_default(&o);
    const char *pred = NULL, *valp = NULL, *out = "freeair-eval", *manifest = NULL;
    const char *groups[MAX_LIST], *ckpt[MAX_LIST];
    char *group_buf[MAX_LIST];
    int n_groups = 0, n_ckpt = 0, n_group_buf = 0, quiet = 0, rc = 2;
    fa_error err;
    fa_error_clear(&err);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "freeair eval: %s needs a value (or is unknown); see --help\n", a);
            goto done;
        }
        i++;
        if (!strcmp(a, "--predictions")) pred = v;
        else if (!strcmp(a, "--val-predictions")) valp = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--val-split")) o.val_split = v;
        else if (!strcmp(a, "--test-split") || !strcmp(a, "--split")) o.test_split = v;
        else if (!strcmp(a, "--manifest")) manifest = v;
        else if (!strcmp(a, "--model")) {
            if (n_ckpt >= MAX_LIST) goto too_many;
            ckpt[n_ckpt++] = v;
        } else if (!strcmp(a, "--group-by")) {
            if (n_group_buf >= MAX_LIST) goto too_many;
            char *copy = strdup(v);
            if (!copy) {
                fprintf(stderr, "freeair eval: out of memory\n");
                rc = 1;
                goto done;
            }
            group_buf[n_group_buf++] = copy;
            for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
                if (n_groups >= MAX_LIST) goto too_many;
                groups[n_groups++] = tok;
            }
        } else if (!strcmp(a, "--bootstrap") || !strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            long long n = strtoll(v, &end, 10);
            if (*end || end == v || errno || n < 0) {
                fprintf(stderr, "freeair eval: %s: '%s' is not a non-negative integer\n", a, v);
                goto done;
            }
            if (a[2] == 'b') {
                if (n > 1000000) {
                    fprintf(stderr, "freeair eval: --bootstrap: at most 1000000 replicates\n");
                    goto done;
                }
                o.n_boot = (int)n;
            } else {
                o.seed = (uint64_t)n;
            }
        } else if (!strcmp(a, "--conf")) {
            char *end;
            o.level = strtod(v, &end);
            if (*end || !(o.level > 0 && o.level < 1)) {
                fprintf(stderr, "freeair eval: --conf: '%s' is not in (0, 1)\n", v);
                goto done;
            }
        } else if (!strcmp(a, "--primary")) o.primary = v;
        else if (!strcmp(a, "--target-sens") || !strcmp(a, "--target-spec") || !strcmp(a, "--fixed")) {
            double *dst = a[2] == 'f' ? o.fixed : a[10] == 'e' ? o.target_sens : o.target_spec;
            int *n = a[2] == 'f' ? &o.n_fixed : a[10] == 'e' ? &o.n_target_sens : &o.n_target_spec;
            if (!parse_list(v, dst, EVAL_MAX_TARGETS, n)) {
                fprintf(stderr, "freeair eval: %s: '%s' is not a list of at most %d numbers\n", a, v,
                        EVAL_MAX_TARGETS);
                goto done;
            }
        } else {
            fprintf(stderr, "freeair eval: unknown option '%s'; see --help\n", a);
            goto done;
        }
    }
    o.group_by = groups;
    o.n_group_by = n_groups;
    o.progress = !quiet;

    eval_dataset ds;
    memset(&ds, 0, sizeof ds);
    eval_result res;
    memset(&res, 0, sizeof res);
    fa_status st;
    if (n_ckpt > 0 || manifest) {
        if (pred) {
            fprintf(stderr, "freeair eval: give either --predictions or --model/--manifest, not both\n");
            goto done;
        }
        if (!n_ckpt || !manifest) {
            fprintf(stderr, "freeair eval: --model and --manifest go together\n");
            goto done;
        }
        st = eval_score_checkpoints(&ds, ckpt, n_ckpt, manifest, &o, &err);
    } else if (!pred) {
        usage(stderr);
        goto done;
    } else {
        st = eval_dataset_load_csv(&ds, pred, valp, &o, &err);
    }
    rc = 1;
    if (st == FA_OK) st = eval_dataset_check(&ds, &err);
    if (st == FA_OK) st = eval_run(&ds, &o, &res, &err);
    if (st == FA_OK && !ensure_dir(out, &err)) st = err.code;
    char command[8192], created[32], path[4096], tmp[4200];
    join_command(command, sizeof command, argc, argv);
    utc_now(created, sizeof created);
    eval_provenance prov = {FREEAIR_VERSION, command, created};
    for (int k = 0; k < 3 && st == FA_OK; k++) {
        static const char *names[] = {"metrics.json", "predictions.csv", "misclassified.csv"};
        snprintf(path, sizeof path, "%s/%s", out, names[k]);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        if (k == 0) st = eval_write_metrics_json(tmp, &ds, &o, &res, &prov, &err);
        else if (k == 1) st = eval_write_predictions_csv(tmp, &ds, &res, &err);
        else st = eval_write_misclassified_csv(tmp, &ds, &res, &err);
        if (st == FA_OK && rename(tmp, path) != 0)
            st = fa_error_set(&err, FA_ERR_IO, "%s: %s", path, strerror(errno));
        if (st != FA_OK) remove(tmp);
    }
    if (st == FA_OK) {
        for (size_t i = 0; i < ds.n_warning; i++) fprintf(stderr, "freeair eval: warning: %s\n", ds.warning[i]);
        if (!quiet) eval_print_summary(stdout, &ds, &o, &res);
        fprintf(stderr, "freeair eval: wrote %s/metrics.json, predictions.csv, misclassified.csv\n", out);
        rc = 0;
    } else {
        cli_fail("eval", &err);
    }
    eval_result_free(&res);
    eval_dataset_free(&ds);
    goto done;
too_many:
    fprintf(stderr, "freeair eval: too many values (at most %d)\n", MAX_LIST);
done:
    for (int i = 0; i < n_group_buf; i++) free(group_buf[i]);
    return rc;
}
