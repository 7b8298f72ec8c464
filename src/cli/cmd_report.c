/* cmd_report.c - `freeair report RUN_DIR -o report.html`: one self-contained
 * HTML study report plus report.json with the same numbers (see
 * src/eval/report.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "eval/report.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair report RUN_DIR [-o report.html] [--json report.json]\n"
            "\n"
            "Writes one self-contained HTML file (inline CSS and SVG, no scripts, no network) from\n"
            "RUN_DIR/metrics.json (from `freeair eval -o RUN_DIR`) and, when present, RUN_DIR/cohort.json,\n"
            "manifest.csv, misclassified.csv, cam/*.png and config* files; and a JSON file with the same\n"
            "numbers (default: the HTML path with .json instead of .html).\n"
            "\n"
            "options:\n"
            "  -o, --out FILE     HTML output (default RUN_DIR/report.html)\n"
            "  --json FILE        JSON output (default next to the HTML)\n"
            "  --manifest FILE    manifest.csv kept elsewhere (default RUN_DIR/manifest.csv)\n"
            "  --cohort FILE      cohort.json kept elsewhere (default RUN_DIR/cohort.json)\n"
            "  --cam DIR          Grad-CAM PNG folder (default RUN_DIR/cam)\n"
            "  --max-cam N        at most N Grad-CAM images in the gallery (default 48)\n");
}

int cmd_report(int argc, char **argv) {
    report_options o;
    report_options_default(&o);
    const char *run = NULL, *html = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "--json") || !strcmp(a, "--max-cam") ||
            !strcmp(a, "--manifest") || !strcmp(a, "--cohort") || !strcmp(a, "--cam")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "freeair report: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--json")) json = v;
            else if (!strcmp(a, "--manifest")) o.manifest = v;
            else if (!strcmp(a, "--cohort")) o.cohort = v;
            else if (!strcmp(a, "--cam")) o.cam_dir = v;
            else if (!strcmp(a, "--max-cam")) {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end || end == v || n < 0 || n > 10000) {
                    fprintf(stderr, "freeair report: --max-cam: '%s' is not in 0..10000\n", v);
                    return 2;
                }
                o.max_cam = (int)n;
            } else html = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "freeair report: unknown option '%s'; see --help\n", a);
            return 2;
        } else if (!run) {
            run = a;
        } else {
            fprintf(stderr, "freeair report: one RUN_DIR only (got '%s' and '%s')\n", run, a);
            return 2;
        }
    }
    if (!run) {
        usage(stderr);
        return 2;
    }
    char html_buf[4200], json_buf[4200];
    if (!html) {
        if (snprintf(html_buf, sizeof html_buf, "%s/report.html", run) >= (int)sizeof html_buf) {
            fprintf(stderr, "freeair report: %s: path too long\n", run);
            return 1;
        }
        html = html_buf;
    }
    if (!json) {
        size_t n = strlen(html);
        int len;
        if (n > 5 && !strcmp(html + n - 5, ".html"))
            len = snprintf(json_buf, sizeof json_buf, "%.*s.json", (int)(n - 5), html);
        else
            len = snprintf(json_buf, sizeof json_buf, "%s.json", html);
        if (len >= (int)sizeof json_buf) {
            fprintf(stderr, "freeair report: %s: path too long\n", html);
            return 1;
        }
        json = json_buf;
    }
    char command[8192];
    size_t used = (size_t)snprintf(command, sizeof command, "freeair report");
    for (int i = 1; i < argc && used < sizeof command; i++)
        used += (size_t)snprintf(command + used, sizeof command - used, " %s", argv[i]);
    char created[32];
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    o.run_dir = run;
    o.version = FREEAIR_VERSION;
    o.command = command;
    o.created = created;
    fa_error err;
    fa_error_clear(&err);
    if (report_build(&o, html, json, &err) != FA_OK) return cli_fail("report", &err);
    fprintf(stderr, "freeair report: wrote %s and %s\n", html, json);
    return 0;
}
