/* cmd_synth.c - `freeair synth`: generate the synthetic multi-site chest
 * radiograph cohort (DICOM files, truth masks, manifest.csv, contact sheet). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "data/synth.h"

static void synth_usage(FILE *f) {
    fprintf(f,
            "usage: freeair synth --out DIR [--preset paper|small|tiny] [--seed N]\n"
            "                     [--difficulty easy|default|hard|NUMBER] [--threads N]\n"
            "                     [--contact-sheet FILE.png] [--manifest-only]\n"
            "                     [--syntax native|explicit|rle|jpeg-lossless|jpeg-ls]\n"
            "                     [--limit N] [--no-masks] [--log FILE.jsonl] [--quiet]\n"
            "\n"
            "Writes DIR/<hospital>/<patient>/<image>.dcm, DIR/masks/<image>.png (free-air\n"
            "truth masks of positive images) and DIR/manifest.csv (the columns of\n"
            "`freeair scan` followed by the truth columns).\n"
            "  --preset         paper: the study's Table 1 (1,287 images, 1,124 patients,\n"
            "                   1728..4280 px); small: 360 images, 256..512 px (default\n"
            "                   demo size); tiny: 40 images, 128..192 px (default)\n"
            "  --seed           any 64-bit number (default 1); same seed and options give\n"
            "                   byte-identical files\n"
            "  --difficulty     easy (0.5), default (1), hard (1.5) or a number 0.25..3:\n"
            "                   smaller free air, more mimics, larger vendor shift\n"
            "  --manifest-only  plan the cohort and write manifest.csv without pixels\n"
            "  --syntax         write every file with one transfer syntax (default: each\n"
            "                   unit's own)\n"
            "  --limit          generate only the first N images of the cohort\n");
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cmd_synth(int argc, char **argv) {
    synth_options o;
    synth_options_default(&o);
    fa_error err;
    fa_error_clear(&err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            synth_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--manifest-only")) {
            o.manifest_only = 1;
        } else if (!strcmp(a, "--no-masks")) {
            o.masks = 0;
        } else if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
        } else if (!v) {
            fprintf(stderr, "freeair synth: %s: missing value or unknown option\n", a);
            synth_usage(stderr);
            return 2;
        } else if (!strcmp(a, "--out")) {
            o.out_dir = v, i++;
        } else if (!strcmp(a, "--preset")) {
            if (synth_parse_preset(v, &o.preset, &err)) goto usage_err;
            i++;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || v[0] == '-') {
                fprintf(stderr, "freeair synth: --seed %s: expected a non-negative integer\n", v);
                return 2;
            }
            o.seed = s, i++;
        } else if (!strcmp(a, "--difficulty")) {
            if (synth_parse_difficulty(v, &o.difficulty, &err)) goto usage_err;
            i++;
        } else if (!strcmp(a, "--syntax")) {
            if (synth_parse_syntax(v, &o.force_syntax, &err)) goto usage_err;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (parse_int(v, 1, 1024, &x)) {
                fprintf(stderr, "freeair synth: --threads %s: expected 1..1024\n", v);
                return 2;
            }
            o.threads = (int)x, i++;
        } else if (!strcmp(a, "--limit")) {
            if (parse_int(v, 1, 1000000, &x)) {
                fprintf(stderr, "freeair synth: --limit %s: expected a positive integer\n", v);
                return 2;
            }
            o.limit = (int)x, i++;
        } else if (!strcmp(a, "--contact-sheet")) {
            o.contact_sheet = v, i++;
        } else if (!strcmp(a, "--log")) {
            o.log_path = v, i++;
        } else {
            fprintf(stderr, "freeair synth: unknown option %s\n", a);
            synth_usage(stderr);
            return 2;
        }
    }
    if (!o.out_dir) {
        fprintf(stderr, "freeair synth: --out DIR is required\n");
        synth_usage(stderr);
        return 2;
    }
    if (o.contact_sheet && o.manifest_only) {
        fprintf(stderr, "freeair synth: --contact-sheet needs rendered images (not --manifest-only)\n");
        return 2;
    }
    synth_stats st;
    memset(&st, 0, sizeof st);
    if (synth_generate(&o, &st, &err)) return cli_fail("synth", &err);
    if (!o.quiet)
        fprintf(stderr, "freeair synth: %d images (%d positive, %d patients) %s %s in %.1f s\n", st.n_images,
                st.n_positive, st.n_patients, o.manifest_only ? "planned into" : "written to", o.out_dir,
                st.seconds);
    return 0;
usage_err:
    fprintf(stderr, "freeair synth: %s\n", err.msg);
    return 2;
}
