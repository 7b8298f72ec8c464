/* fa_progress.h - progress display and JSON-lines logs for long-running commands.
 *
 * Every long command (scan, cache, synth, train, eval, bench) reports progress
 * the same way: a one-line display on stderr when it is a terminal (items/s and
 * ETA), and machine-readable JSON lines in a log file when one is given.
 */
#ifndef FA_PROGRESS_H
#define FA_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct fa_progress {
    const char *label;
    int64_t total;
    int64_t done;
    double t_start;
    double t_last_draw;
    int is_tty;
    int quiet;
} fa_progress;

/* Monotonic wall-clock seconds. */
double fa_now_seconds(void);

/* Start a progress display for `total` items (0 if unknown). label is
 * borrowed and must outlive the progress object. Thread-safe updates are the
 * caller's job (call fa_progress_add from one thread or under a lock). */
void fa_progress_begin(fa_progress *p, const char *label, int64_t total);
void fa_progress_add(fa_progress *p, int64_t n);
/* Draw a final line (always, also when stderr is not a terminal). */
void fa_progress_end(fa_progress *p);

/* JSON lines: fa_jsonl_open appends to path (NULL or "" gives a disabled
 * logger). Each record is started with fa_jsonl_begin (which writes "time"
 * and "event"), filled with the typed field writers, and ended with
 * fa_jsonl_end, which writes the newline and flushes. */
typedef struct fa_jsonl {
    FILE *f;
    int first;
} fa_jsonl;

int fa_jsonl_open(fa_jsonl *j, const char *path);
void fa_jsonl_close(fa_jsonl *j);
void fa_jsonl_begin(fa_jsonl *j, const char *event);
void fa_jsonl_str(fa_jsonl *j, const char *key, const char *value);
void fa_jsonl_num(fa_jsonl *j, const char *key, double value);
void fa_jsonl_int(fa_jsonl *j, const char *key, int64_t value);
void fa_jsonl_end(fa_jsonl *j);

/* Write s as a JSON string literal (with quotes and escapes) to f. */
void fa_json_write_string(FILE *f, const char *s);

#endif
