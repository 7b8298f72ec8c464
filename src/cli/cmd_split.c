/* cmd_split.c - `freeair split`: patient-grouped, label-stratified, seeded
 * train/val/test assignment (fractions or the study's protocol) or grouped
 * k-fold, written as a new column of the manifest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "data/csv.h"
#include "data/manifest.h"
#include "data/split.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair split --manifest M.csv -o OUT.csv [--seed S] [--label-col label]\n"
            "                     [--group-col patient_id] [--json summary.json] MODE\n"
            "MODE (one of):\n"
            "  --fractions TR,VA,TE   fractions of patients per label stratum (default\n"
            "                         0.7,0.15,0.15)\n"
            "  --pool SPEC --train-pos N --train-neg N --val-pos N --val-neg N\n"
            "              [--leftover test|unused]\n"
            "                         the study's protocol: train/val drawn from the pool\n"
            "                         with exact image counts; all else is test (pool\n"
            "                         leftovers too, unless --leftover unused)\n"
            "  --kfold K [--pool SPEC] grouped stratified k-fold: writes a 'fold' column\n"
            "\n"
            "Only rows with status ok take part (others get an empty cell). A patient\n"
            "never spans two partitions (checked on the output). Same manifest rows and\n"
            "seed give the same split. --label-col none disables stratification.\n"
            "SPEC: comma-separated column=glob or column!=glob conditions, all required,\n"
            "case-insensitive, '|' between alternatives, e.g.\n"
            "  --pool \"manufacturer=Philips*,unit=fixed,hospital=academic\"\n"
            "Prints images/patients/pos/neg per partition; --json writes them as JSON.\n");
}

int cmd_split(int argc, char **argv) {
    const char *manifest = NULL, *out = NULL, *json = NULL, *fractions = NULL, *pool_spec = NULL;
    const char *leftover = "test";
    split_opts o = {.label_col = "label", .group_col = "patient_id"};
    int counts[4] = {-1, -1, -1, -1}, kfold = 0;
    static const char *const count_opts[4] = {"--train-pos", "--train-neg", "--val-pos", "--val-neg"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc, matched = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!has_val) {
            fprintf(stderr, "freeair split: unknown option or missing value '%s'\n", a);
            return 2;
        }
        const char *v = argv[i + 1];
        for (int k = 0; k < 4; k++)
            if (!strcmp(a, count_opts[k])) {
                if (!cli_parse_int(v, 0, 100000000, &counts[k])) {
                    fprintf(stderr, "freeair split: %s needs a count >= 0, not '%s'\n", a, v);
                    return 2;
                }
                matched = 1;
            }
        if (matched) {
        } else if (!strcmp(a, "--manifest")) {
            manifest = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = v;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') {
                fprintf(stderr, "freeair split: --seed needs a non-negative integer, not '%s'\n", v);
                return 2;
            }
            o.seed = s;
        } else if (!strcmp(a, "--label-col")) {
            o.label_col = strcmp(v, "none") ? v : NULL;
        } else if (!strcmp(a, "--group-col")) {
            o.group_col = v;
        } else if (!strcmp(a, "--json")) {
            json = v;
        } else if (!strcmp(a, "--fractions")) {
            fractions = v;
        } else if (!strcmp(a, "--pool")) {
            pool_spec = v;
        } else if (!strcmp(a, "--leftover")) {
            leftover = v;
        } else if (!strcmp(a, "--kfold")) {
            if (!cli_parse_int(v, 2, SPLIT_MAX_PARTS, &kfold)) {
                fprintf(stderr, "freeair split: --kfold needs 2..%d\n", SPLIT_MAX_PARTS);
                return 2;
            }
        } else {
            fprintf(stderr, "freeair split: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!manifest || !out) {
        fprintf(stderr, "freeair split: --manifest and -o are required\n");
        usage(stderr);
        return 2;
    }
    int n_counts = 0;
    for (int k = 0; k < 4; k++) n_counts += counts[k] >= 0;
    if (kfold && (fractions || n_counts)) {
        fprintf(stderr, "freeair split: --kfold cannot be combined with --fractions or exact counts\n");
        return 2;
    }
    if (n_counts && n_counts != 4) {
        fprintf(stderr, "freeair split: the protocol needs all of --train-pos --train-neg --val-pos --val-neg\n");
        return 2;
    }
    if (n_counts && fractions) {
        fprintf(stderr, "freeair split: choose --fractions or exact counts, not both\n");
        return 2;
    }
    if (n_counts && !pool_spec) {
        fprintf(stderr, "freeair split: exact counts need --pool (use --pool 'path=*' for every image)\n");
        return 2;
    }
    if (pool_spec && !n_counts && !kfold) {
        fprintf(stderr, "freeair split: --pool needs exact counts (--train-pos ...) or --kfold\n");
        return 2;
    }
    if (strcmp(leftover, "test") && strcmp(leftover, "unused")) {
        fprintf(stderr, "freeair split: --leftover must be test or unused\n");
        return 2;
    }
    fa_error err = {0};
    split_pool pool;
    if (pool_spec && split_parse_pool(pool_spec, &pool, &err) != FA_OK) {
        fprintf(stderr, "freeair split: %s\n", err.msg);
        return 2;
    }
    if (kfold) {
        o.mode = SPLIT_KFOLD;
        o.kfold = kfold;
    } else if (n_counts) {
        o.mode = SPLIT_PROTOCOL;
        o.train_pos = counts[0];
        o.train_neg = counts[1];
        o.val_pos = counts[2];
        o.val_neg = counts[3];
        o.leftover_unused = !strcmp(leftover, "unused");
    } else {
        o.mode = SPLIT_FRACTIONS;
        if (split_parse_fractions(fractions ? fractions : "0.7,0.15,0.15", o.fractions, &err) != FA_OK) {
            fprintf(stderr, "freeair split: %s\n", err.msg);
            return 2;
        }
    }
    o.pool = pool_spec ? &pool : NULL;

    csv_table t = {0};
    split_summary s;
    int rc = 1;
    if (csv_read_file(manifest, &t, &err) != FA_OK) goto done;
    if (split_assign(&t, manifest, &o, &s, &err) != FA_OK) goto done;
    if (manifest_write_file(out, &t, &err) != FA_OK) goto done;
    split_summary_print(stdout, &s);
    if (json) {
        FILE *jf = fopen(json, "w");
        if (!jf) {
            fa_error_set(&err, FA_ERR_IO, "%s: %s", json, strerror(errno));
            goto done;
        }
        split_summary_write_json(jf, &s, &o);
        if (fclose(jf) != 0) {
            fa_error_set(&err, FA_ERR_IO, "%s: %s", json, strerror(errno));
            goto done;
        }
    }
    rc = 0;
done:
    if (rc) cli_fail("split", &err);
    csv_free(&t);
    return rc;
}
