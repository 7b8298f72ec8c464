/* cmd_scan.c - `freeair scan`: read image headers into a manifest CSV, with
 * the chest gate and an optional merge of user columns. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "data/csv.h"
#include "data/manifest.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair scan DIR|FILE... [--merge user.csv [--key path|sop_uid]] [-o manifest.csv]\n"
            "                    [--threads N] [--log scan.jsonl] [--verify] [--quiet]\n"
            "\n"
            "Reads the header of every DICOM, PNG and JPEG file (directories recursively,\n"
            "hidden entries skipped) and writes one manifest row per file, sorted by path,\n"
            "to stdout or atomically to -o. Columns: path, status, reason, then the header\n"
            "fields (see src/data/manifest.h). status is ok, excluded (chest gate: modality\n"
            "not CR/DX/DR, body part not chest, lateral or unknown view, FOR PROCESSING) or\n"
            "error (unreadable, no pixel data); reason says why. A bad file never stops\n"
            "the scan. In directories, files that are not images by content are skipped\n"
            "unless named *.dcm/*.dicom/*.dic/*.ima/*.png/*.jpg/*.jpeg.\n"
            "\n"
            "A header scan cannot see a broken codestream: --verify also decodes the\n"
            "pixels (slow) and marks failures as error, decode_failed.\n"
            "\n"
            "--merge adds the columns of a user CSV (label, unit, hospital, ...) joined on\n"
            "--key (path: exact, same file, or unique path suffix; or sop_uid). A user\n"
            "column named like a header column overrides it where the user cell is not\n"
            "empty (path, status, reason excepted); the chest gate then runs again.\n"
            "User rows that match no file are reported.\n");
}

int cmd_scan(int argc, char **argv) {
    const char *out_path = NULL, *merge_path = NULL, *key = "path";
    manifest_scan_opts o = {0};
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    int n_inputs = 0;
    if (!inputs) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(inputs);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_val) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--merge") && has_val) {
            merge_path = argv[++i];
        } else if (!strcmp(a, "--key") && has_val) {
            key = argv[++i];
        } else if (!strcmp(a, "--threads") && has_val) {
            if (!cli_parse_int(argv[++i], 1, 1024, &o.threads)) {
                fprintf(stderr, "freeair scan: --threads must be 1..1024\n");
                free(inputs);
                return 2;
            }
        } else if (!strcmp(a, "--log") && has_val) {
            o.log_path = argv[++i];
        } else if (!strcmp(a, "--verify")) {
            o.verify = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o.quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "freeair scan: unknown option or missing value '%s'\n", a);
            usage(stderr);
            free(inputs);
            return 2;
        } else {
            inputs[n_inputs++] = a;
        }
    }
    if (n_inputs == 0) {
        usage(stderr);
        free(inputs);
        return 2;
    }
    if (strcmp(key, "path") && strcmp(key, "sop_uid")) {
        fprintf(stderr, "freeair scan: --key must be path or sop_uid\n");
        free(inputs);
        return 2;
    }
    fa_error err = {0};
    csv_table user = {0}, m = {0};
    int rc = 1;
    /* Read the user CSV first: a bad merge file should fail before a long scan. */
    if (merge_path && csv_read_file(merge_path, &user, &err) != FA_OK) goto done;
    if (merge_path && csv_column(&user, key) < 0) {
        fa_error_set(&err, FA_ERR_FORMAT, "%s: no '%s' column to merge on", merge_path, key);
        goto done;
    }
    manifest_scan_stats s;
    if (manifest_scan(inputs, n_inputs, &o, &m, &s, &err) != FA_OK) goto done;
    fprintf(stderr, "scan: %d files: %d ok, %d excluded, %d error", s.n_files, s.n_ok, s.n_excluded, s.n_error);
    if (s.n_skipped) fprintf(stderr, " (%d non-image files skipped)", s.n_skipped);
    fputc('\n', stderr);
    if (s.n_dup_sop)
        fprintf(stderr, "scan: warning: %d files share a SOP Instance UID with another file (first: %s)\n", s.n_dup_sop,
                s.first_dup_sop);
    if (merge_path) {
        char dir_buf[PATH_MAX];
        snprintf(dir_buf, sizeof dir_buf, "%s", merge_path);
        manifest_merge_stats ms;
        if (manifest_merge(&m, &user, merge_path, dirname(dir_buf), key, &ms, &err) != FA_OK) goto done;
        fprintf(stderr, "merge: %s: %d rows matched, %d files without a user row, %d header values overridden\n",
                merge_path, ms.n_matched, ms.n_unmatched, ms.n_overridden);
        if (ms.n_unknown)
            fprintf(stderr, "merge: %s: %d user rows match no scanned file (first: %s)\n", merge_path, ms.n_unknown,
                    ms.first_unknown);
    }
    if (out_path) {
        if (manifest_write_file(out_path, &m, &err) != FA_OK) goto done;
    } else if (manifest_write(stdout, &m, "stdout", &err) != FA_OK) {
        goto done;
    }
    rc = 0;
done:
    if (rc) cli_fail("scan", &err);
    csv_free(&user);
    csv_free(&m);
    free(inputs);
    return rc;
}
