/* fa_status.c - error message formatting and overflow-checked sizes. */
#include "fa_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fa_status fa_error_set(fa_error *err, fa_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* Keep the message one line: a multi-line reason breaks CSV status
     * columns and log parsers. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return code;
}

fa_status fa_error_prefix(fa_error *err, const char *fmt, ...) {
    if (!err) return FA_OK;
    char old[FA_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used + 3 < sizeof err->msg) {
        memcpy(err->msg + used, ": ", 3);
        strncat(err->msg, old, sizeof err->msg - used - 3);
    }
    return err->code;
}

void fa_error_clear(fa_error *err) {
    if (!err) return;
    err->code = FA_OK;
    err->msg[0] = '\0';
}

const char *fa_status_name(fa_status code) {
    switch (code) {
    case FA_OK: return "ok";
    case FA_ERR_ARG: return "argument";
    case FA_ERR_IO: return "io";
    case FA_ERR_FORMAT: return "format";
    case FA_ERR_UNSUPPORTED: return "unsupported";
    case FA_ERR_SHAPE: return "shape";
    case FA_ERR_NOMEM: return "memory";
    case FA_ERR_BACKEND: return "backend";
    case FA_ERR_NUMERIC: return "numeric";
    case FA_ERR_REFUSED: return "refused";
    case FA_ERR_NOT_FOUND: return "not-found";
    case FA_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}

int fa_size_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int fa_size_add(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

int fa_size_mul4(size_t a, size_t b, size_t c, size_t d, size_t *out) {
    size_t ab, abc;
    if (!fa_size_mul(a, b, &ab) || !fa_size_mul(ab, c, &abc)) return 0;
    return fa_size_mul(abc, d, out);
}

void *fa_malloc_array(size_t n, size_t size) {
    size_t bytes;
    if (!fa_size_mul(n, size, &bytes)) return NULL;
    return malloc(bytes ? bytes : 1);
}

void *fa_calloc_array(size_t n, size_t size) {
    size_t bytes;
    if (!fa_size_mul(n, size, &bytes)) return NULL;
    return calloc(bytes ? bytes : 1, 1);
}
