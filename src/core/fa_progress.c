/* fa_progress.c - terminal progress line and JSON-lines logging. */
#include "fa_progress.h"

#include <math.h>
#include <time.h>
#include <unistd.h>

double fa_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_draw(fa_progress *p, int final) {
    double now = fa_now_seconds();
    double elapsed = now - p->t_start;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    char eta[32] = "";
    if (p->total > 0 && rate > 0 && p->done < p->total) {
        double left = (double)(p->total - p->done) / rate;
        snprintf(eta, sizeof eta, " ETA %dm%02ds", (int)(left / 60), (int)fmod(left, 60));
    }
    if (p->total > 0)
        fprintf(stderr, "%s%s: %lld/%lld (%.0f%%) %.1f/s%s%s", p->is_tty ? "\r" : "", p->label,
                (long long)p->done, (long long)p->total, 100.0 * (double)p->done / (double)p->total,
                rate, eta, p->is_tty ? "\033[K" : "");
    else
        fprintf(stderr, "%s%s: %lld %.1f/s%s", p->is_tty ? "\r" : "", p->label, (long long)p->done,
                rate, p->is_tty ? "\033[K" : "");
    if (final || !p->is_tty) fputc('\n', stderr);
    fflush(stderr);
    p->t_last_draw = now;
}

void fa_progress_begin(fa_progress *p, const char *label, int64_t total) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t_start = fa_now_seconds();
    p->t_last_draw = 0;
    p->is_tty = isatty(2);
    p->quiet = 0;
}

void fa_progress_add(fa_progress *p, int64_t n) {
    p->done += n;
    if (p->quiet) return;
    double now = fa_now_seconds();
    /* Redraw at most 5 times a second on a terminal; every 10 s in logs. */
    double interval = p->is_tty ? 0.2 : 10.0;
    if (now - p->t_last_draw >= interval) progress_draw(p, 0);
}

void fa_progress_end(fa_progress *p) {
    if (!p->quiet) progress_draw(p, 1);
}

int fa_jsonl_open(fa_jsonl *j, const char *path) {
    j->f = NULL;
    j->first = 1;
    if (!path || !*path) return 0;
    j->f = fopen(path, "a");
    return j->f ? 0 : -1;
}

void fa_jsonl_close(fa_jsonl *j) {
    if (j->f) fclose(j->f);
    j->f = NULL;
}

void fa_json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        switch (*c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*c < 0x20) fprintf(f, "\\u%04x", *c);
            else fputc(*c, f);
        }
    }
    fputc('"', f);
}

static void jsonl_key(fa_jsonl *j, const char *key) {
    if (!j->first) fputc(',', j->f);
    j->first = 0;
    fa_json_write_string(j->f, key);
    fputc(':', j->f);
}

void fa_jsonl_begin(fa_jsonl *j, const char *event) {
    if (!j->f) return;
    j->first = 1;
    fputc('{', j->f);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    jsonl_key(j, "time");
    fprintf(j->f, "%.3f", (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    fa_jsonl_str(j, "event", event);
}

void fa_jsonl_str(fa_jsonl *j, const char *key, const char *value) {
    if (!j->f) return;
    jsonl_key(j, key);
    fa_json_write_string(j->f, value);
}

void fa_jsonl_num(fa_jsonl *j, const char *key, double value) {
    if (!j->f) return;
    jsonl_key(j, key);
    if (isfinite(value)) fprintf(j->f, "%.9g", value);
    else fputs("null", j->f);
}

void fa_jsonl_int(fa_jsonl *j, const char *key, int64_t value) {
    if (!j->f) return;
    jsonl_key(j, key);
    fprintf(j->f, "%lld", (long long)value);
}

void fa_jsonl_end(fa_jsonl *j) {
    if (!j->f) return;
    fputs("}\n", j->f);
    fflush(j->f);
}
