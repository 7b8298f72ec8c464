/* cli.h - the freeair command-line program: one entry point per subcommand.
 *
 * Each subcommand lives in src/cli/cmd_<name>.c and returns the process exit
 * status: 0 success, 1 failure (a one-line "freeair <cmd>: file: reason" was
 * printed on stderr), 2 usage error. Only the CLI prints and exits; library
 * code returns fa_status with a message.
 */
#ifndef FA_CLI_H
#define FA_CLI_H

#include "core/fa_status.h"

int cmd_predict(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_split(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_cam(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Print "freeair <cmd>: <message>" on stderr and return 1. */
int cli_fail(const char *cmd, const fa_error *err);

/* Parse a whole decimal integer in [lo, hi] into *out; 0 (and *out left
 * alone) when s is empty, has trailing characters, overflows or is out of
 * range. */
int cli_parse_int(const char *s, int lo, int hi, int *out);

#define FREEAIR_VERSION "0.1.0"

#endif
