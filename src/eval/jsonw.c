/* jsonw.c - streaming JSON writer (see jsonw.h). */
#include "eval/jsonw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fa_progress.h"

void jsonw_init(jsonw *w, FILE *f) {
    memset(w, 0, sizeof *w);
    w->f = f;
}

static int in_inline(const jsonw *w) { return w->depth > 0 && w->inline_[w->depth - 1]; }

/* Comma, newline and indentation before a member, then its key. */
static void member(jsonw *w, const char *key) {
    if (w->depth > 0) {
        int lvl = w->depth - 1;
        if (w->count[lvl]++) fputc(',', w->f);
        if (in_inline(w)) {
            if (w->count[lvl] > 1) fputc(' ', w->f);
        } else {
            fputc('\n', w->f);
            for (int i = 0; i < w->depth; i++) fputs("  ", w->f);
        }
    }
    if (key) {
        fa_json_write_string(w->f, key);
        fputs(": ", w->f);
    }
}

static void open_container(jsonw *w, const char *key, char c, int inl) {
    member(w, key);
    fputc(c, w->f);
    if (w->depth >= JSONW_MAX_DEPTH) {
        w->error = 1;
        return;
    }
    /* Children of an inline container stay inline too. */
    w->inline_[w->depth] = inl || in_inline(w);
    w->count[w->depth] = 0;
    w->close[w->depth] = c == '{' ? '}' : ']';
    w->depth++;
}

void jsonw_object(jsonw *w, const char *key) { open_container(w, key, '{', 0); }
void jsonw_array(jsonw *w, const char *key) { open_container(w, key, '[', 0); }
void jsonw_array_inline(jsonw *w, const char *key) { open_container(w, key, '[', 1); }

void jsonw_end(jsonw *w) {
    if (w->depth <= 0) {
        w->error = 1;
        return;
    }
    w->depth--;
    if (w->count[w->depth] && !w->inline_[w->depth]) {
        fputc('\n', w->f);
        for (int i = 0; i < w->depth; i++) fputs("  ", w->f);
    }
    fputc(w->close[w->depth], w->f);
}

void jsonw_format_double(char *buf, size_t size, double v) {
    snprintf(buf, size, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, size, "%.17g", v);
}

void jsonw_num(jsonw *w, const char *key, double v) {
    member(w, key);
    if (!isfinite(v)) {
        fputs("null", w->f);
        return;
    }
    char buf[40];
    jsonw_format_double(buf, sizeof buf, v);
    fputs(buf, w->f);
}

void jsonw_int(jsonw *w, const char *key, long long v) {
    member(w, key);
    fprintf(w->f, "%lld", v);
}

void jsonw_str(jsonw *w, const char *key, const char *s) {
    member(w, key);
    if (s)
        fa_json_write_string(w->f, s);
    else
        fputs("null", w->f);
}

void jsonw_bool(jsonw *w, const char *key, int v) {
    member(w, key);
    fputs(v ? "true" : "false", w->f);
}

void jsonw_null(jsonw *w, const char *key) {
    member(w, key);
    fputs("null", w->f);
}

void jsonw_raw(jsonw *w, const char *key) { member(w, key); }

void jsonw_pair(jsonw *w, const char *key, double lo, double hi) {
    if (isnan(lo) || isnan(hi)) {
        jsonw_null(w, key);
        return;
    }
    jsonw_array_inline(w, key);
    jsonw_num(w, NULL, lo);
    jsonw_num(w, NULL, hi);
    jsonw_end(w);
}
