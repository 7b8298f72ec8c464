/* cmd_cache.c - `freeair cache`: decode every ok image of a manifest once
 * into the memory-mapped preprocessing cache (incremental). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "data/cache.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair cache --manifest M.csv --out DIR [--short-side 320] [--filter lanczos|box|bilinear]\n"
            "                     [--threads N] [--log cache.jsonl] [--quiet]\n"
            "\n"
            "Decodes each ok image of the manifest (display stage: bone bright, 16 bit),\n"
            "resizes it so that its short side is --short-side (never enlarging) with\n"
            "Pillow's antialiased filter (Lanczos by default; equal to PIL's Image.resize\n"
            "within 1 grey level of 65535), and stores all images in DIR/pixels.<gen>.bin\n"
            "(memory-mappable) with DIR/index.csv. Only files whose size or mtime changed,\n"
            "new files, or all files after an option change are decoded again; the new\n"
            "cache is committed atomically. Images that fail to decode are listed in the\n"
            "index with their reason and reported; they do not fail the command.\n");
}

int cmd_cache(int argc, char **argv) {
    const char *manifest = NULL, *dir = NULL;
    cache_opts o = {.short_side = 320, .filter = RESIZE_LANCZOS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o.quiet = 1;
        } else if (!strcmp(a, "--manifest") && has_val) {
            manifest = argv[++i];
        } else if ((!strcmp(a, "--out") || !strcmp(a, "-o")) && has_val) {
            dir = argv[++i];
        } else if (!strcmp(a, "--short-side") && has_val) {
            if (!cli_parse_int(argv[++i], 8, 8192, &o.short_side)) {
                fprintf(stderr, "freeair cache: --short-side must be 8..8192\n");
                return 2;
            }
        } else if (!strcmp(a, "--filter") && has_val) {
            if (!resize_filter_parse(argv[++i], &o.filter)) {
                fprintf(stderr, "freeair cache: --filter must be lanczos, box or bilinear\n");
                return 2;
            }
        } else if (!strcmp(a, "--threads") && has_val) {
            if (!cli_parse_int(argv[++i], 1, 1024, &o.threads)) {
                fprintf(stderr, "freeair cache: --threads must be 1..1024\n");
                return 2;
            }
        } else if (!strcmp(a, "--log") && has_val) {
            o.log_path = argv[++i];
        } else {
            fprintf(stderr, "freeair cache: unknown option or missing value '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!manifest || !dir) {
        fprintf(stderr, "freeair cache: --manifest and --out are required\n");
        usage(stderr);
        return 2;
    }
    fa_error err = {0};
    cache_build_stats s;
    if (cache_build(manifest, dir, &o, &s, &err) != FA_OK) return cli_fail("cache", &err);
    printf("cache: %d images: %d decoded, %d reused, %d failed, %d dropped; %s\n", s.n_images, s.n_decoded,
           s.n_reused, s.n_failed, s.n_dropped, s.rewritten ? "committed" : "unchanged");
    if (s.n_failed)
        fprintf(stderr, "freeair cache: warning: %d image(s) could not be decoded; first: %s\n", s.n_failed,
                s.first_failure);
    return 0;
}
