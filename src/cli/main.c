/* main.c - dispatch `freeair <command> ...` to the subcommand entry points.
 *
 * Subcommands are declared weak so that the program links while a layer is
 * still being built; a missing one is reported, never silently ignored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#pragma weak cmd_predict
#pragma weak cmd_bench
#pragma weak cmd_decode
#pragma weak cmd_scan
#pragma weak cmd_split
#pragma weak cmd_cache
#pragma weak cmd_synth
#pragma weak cmd_train
#pragma weak cmd_eval
#pragma weak cmd_report
#pragma weak cmd_cam
#pragma weak cmd_demo
#pragma weak cmd_serve

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"demo", cmd_demo, "run the whole study on a synthetic cohort"},
    {"synth", cmd_synth, "generate a synthetic multi-site CXR cohort as DICOM"},
    {"scan", cmd_scan, "read image headers into a manifest CSV"},
    {"split", cmd_split, "patient-grouped train/val/test split"},
    {"cache", cmd_cache, "build the preprocessing cache"},
    {"decode", cmd_decode, "decode one DICOM/PNG/JPEG to a 16-bit PNG"},
    {"train", cmd_train, "fine-tune a CNN"},
    {"predict", cmd_predict, "score images with a model"},
    {"eval", cmd_eval, "metrics with confidence intervals, DeLong tests, calibration"},
    {"report", cmd_report, "self-contained HTML study report"},
    {"cam", cmd_cam, "Grad-CAM maps and overlays"},
    {"bench", cmd_bench, "engine throughput and memory"},
    {"serve", cmd_serve, "DICOM triage node with worklist"},
};

int cli_parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int cli_fail(const char *cmd, const fa_error *err) {
    fprintf(stderr, "freeair %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    return 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: freeair <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].run) fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`freeair <command> --help` describes each command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("freeair %s\n", FREEAIR_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        if (!commands[i].run) {
            fprintf(stderr, "freeair: command '%s' is not available in this build\n", argv[1]);
            return 2;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "freeair: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
