/* cmd_serve.c - `freeair serve --config FILE`: run the triage node (DICOM
 * C-STORE/C-ECHO listener, scoring workers, results to PACS, HTTP worklist)
 * until SIGINT or SIGTERM. docs/serve.md describes the configuration. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "serve/serve.h"

static volatile int g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: freeair serve --config FILE\n"
               "\n"
               "Runs the triage node: a DICOM C-STORE/C-ECHO listener (allow-listed AE titles\n"
               "and hosts, durable acknowledgement), scoring with a checkpoint and Grad-CAM,\n"
               "a Structured Report and a heatmap secondary capture sent to the PACS, and an\n"
               "HTTP worklist (suspected first, with a maximum-wait escalation).\n"
               "Stops cleanly on SIGINT/SIGTERM. See docs/serve.md and configs/serve.conf.\n"
               "\n"
               "  --config FILE   configuration (key = value lines)\n"
               "  --port N        override the DICOM port\n"
               "  --http-port N   override the HTTP port (0 = no HTTP)\n"
               "  --quiet         no event lines on stderr (the JSON log is kept)\n");
}

int cmd_serve(int argc, char **argv) {
    const char *config = NULL;
    int port = -1, http_port = -1, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d", &port) != 1 || port < 1 || port > 65535) {
                fprintf(stderr, "freeair serve: bad --port '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--http-port") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d", &http_port) != 1 || http_port < 0 || http_port > 65535) {
                fprintf(stderr, "freeair serve: bad --http-port '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else {
            fprintf(stderr, "freeair serve: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    serve_config c;
    serve_config_defaults(&c);
    fa_error err = {0};
    if (serve_config_load(&c, config, &err) != FA_OK) return cli_fail("serve", &err);
    if (port > 0) c.port = port;
    if (http_port >= 0) c.http_port = http_port;
    if (quiet) c.quiet = 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A peer that drops its connection must not kill the node. */
    signal(SIGPIPE, SIG_IGN);

    if (serve_run(&c, &g_stop, &err) != FA_OK) return cli_fail("serve", &err);
    return 0;
}
