/* jsonv.c - recursive-descent JSON parser and writer (see jsonv.h). */
#include "eval/jsonv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fa_progress.h"
#include "eval/jsonw.h"

typedef struct parser {
    const char *name;
    const char *p, *end, *start;
    fa_error *err;
} parser;

static int line_of(const parser *ps) {
    int line = 1;
    for (const char *q = ps->start; q < ps->p && q < ps->end; q++) line += *q == '\n';
    return line;
}

static fa_status fail(parser *ps, const char *why) {
    return fa_error_set(ps->err, FA_ERR_FORMAT, "%s: line %d: %s", ps->name, line_of(ps), why);
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

void jsonv_free(jsonv *v) {
    if (!v) return;
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        jsonv_free(&v->item[i]);
        if (v->key) free(v->key[i]);
    }
    free(v->item);
    free(v->key);
    memset(v, 0, sizeof *v);
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string literal at ps->p (the opening quote); *out is malloc'd. */
static fa_status parse_string(parser *ps, char **out) {
    const char *q = ++ps->p;
    /* The decoded text is never longer than the literal. */
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) return fail(ps, "unterminated string");
    char *s = malloc((size_t)(q - ps->p) + 1);
    if (!s) return fa_error_set(ps->err, FA_ERR_NOMEM, "%s: out of memory", ps->name);
    size_t n = 0;
    while (ps->p < q) {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) {
            free(s);
            return fail(ps, "control character in string");
        }
        if (c != '\\') {
            s[n++] = (char)c;
            ps->p++;
            continue;
        }
        char e = ps->p[1];
        ps->p += 2;
        switch (e) {
        case '"': s[n++] = '"'; break;
        case '\\': s[n++] = '\\'; break;
        case '/': s[n++] = '/'; break;
        case 'b': s[n++] = '\b'; break;
        case 'f': s[n++] = '\f'; break;
        case 'n': s[n++] = '\n'; break;
        case 'r': s[n++] = '\r'; break;
        case 't': s[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (q - ps->p < 4 || !hex4(ps->p, &cp)) {
                free(s);
                return fail(ps, "bad \\u escape");
            }
            ps->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && q - ps->p >= 6 && ps->p[0] == '\\' &&
                ps->p[1] == 'u' && hex4(ps->p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                ps->p += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD; /* lone surrogate */
            }
            /* "\uXXXX" is 6 bytes and encodes to at most 3 (4 for a pair of
             * 12), so the buffer bound holds. */
            n += utf8_put(s + n, cp);
            break;
        }
        default:
            free(s);
            return fail(ps, "bad escape in string");
        }
    }
    s[n] = '\0';
    ps->p = q + 1;
    *out = s;
    return FA_OK;
}

static fa_status parse_value(parser *ps, jsonv *v, int depth);

static fa_status push_member(parser *ps, jsonv *v, size_t *cap, int with_key) {
    if (v->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        jsonv *it = fa_malloc_array(ncap, sizeof *it);
        char **k = with_key ? fa_malloc_array(ncap, sizeof *k) : NULL;
        if (!it || (with_key && !k)) {
            free(it);
            free(k);
            return fa_error_set(ps->err, FA_ERR_NOMEM, "%s: out of memory", ps->name);
        }
        if (v->n) {
            memcpy(it, v->item, v->n * sizeof *it);
            if (with_key) memcpy(k, v->key, v->n * sizeof *k);
        }
        free(v->item);
        free(v->key);
        v->item = it;
        v->key = k;
        *cap = ncap;
    }
    memset(&v->item[v->n], 0, sizeof v->item[v->n]);
    if (with_key) v->key[v->n] = NULL;
    v->n++;
    return FA_OK;
}

static fa_status parse_number(parser *ps, jsonv *v) {
    const char *s = ps->p;
    if (s < ps->end && *s == '-') s++;
    if (s >= ps->end || !(*s >= '0' && *s <= '9')) return fail(ps, "bad number");
    if (*s == '0') s++;
    else while (s < ps->end && *s >= '0' && *s <= '9') s++;
    if (s < ps->end && *s == '.') {
        s++;
        if (s >= ps->end || !(*s >= '0' && *s <= '9')) return fail(ps, "bad number");
        while (s < ps->end && *s >= '0' && *s <= '9') s++;
    }
    if (s < ps->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < ps->end && (*s == '+' || *s == '-')) s++;
        if (s >= ps->end || !(*s >= '0' && *s <= '9')) return fail(ps, "bad number");
        while (s < ps->end && *s >= '0' && *s <= '9') s++;
    }
    char buf[64];
    size_t len = (size_t)(s - ps->p);
    if (len >= sizeof buf) return fail(ps, "number too long");
    memcpy(buf, ps->p, len);
    buf[len] = '\0';
    v->type = JSONV_NUM;
    v->num = strtod(buf, NULL);
    ps->p = s;
    return FA_OK;
}

static int literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n)) return 0;
    ps->p += n;
    return 1;
}

static fa_status parse_value(parser *ps, jsonv *v, int depth) {
    fa_status st;
    if (depth > JSONV_MAX_DEPTH) return fail(ps, "nesting too deep");
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    char c = *ps->p;
    if (c == '{' || c == '[') {
        int obj = c == '{';
        size_t cap = 0;
        v->type = obj ? JSONV_OBJ : JSONV_ARR;
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
            ps->p++;
            return FA_OK;
        }
        for (;;) {
            if ((st = push_member(ps, v, &cap, obj)) != FA_OK) return st;
            if (obj) {
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a member name");
                if ((st = parse_string(ps, &v->key[v->n - 1])) != FA_OK) return st;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
                ps->p++;
            }
            if ((st = parse_value(ps, &v->item[v->n - 1], depth + 1)) != FA_OK) return st;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
                ps->p++;
                return FA_OK;
            }
            return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == '"') {
        v->type = JSONV_STR;
        return parse_string(ps, &v->str);
    }
    if (literal(ps, "true")) { v->type = JSONV_BOOL; v->b = 1; return FA_OK; }
    if (literal(ps, "false")) { v->type = JSONV_BOOL; v->b = 0; return FA_OK; }
    if (literal(ps, "null")) { v->type = JSONV_NULL; return FA_OK; }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, v);
    return fail(ps, "unexpected character");
}

fa_status jsonv_parse(const char *name, const char *text, size_t len, jsonv *out, fa_error *err) {
    parser ps = {name, text, text + len, text, err};
    memset(out, 0, sizeof *out);
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) ps.p += 3;
    fa_status st = parse_value(&ps, out, 0);
    if (st == FA_OK) {
        skip_ws(&ps);
        if (ps.p != ps.end) st = fail(&ps, "trailing characters after the JSON value");
    }
    if (st != FA_OK) jsonv_free(out);
    return st;
}

fa_status jsonv_read_file(const char *path, jsonv *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fa_error_set(err, errno == ENOENT ? FA_ERR_NOT_FOUND : FA_ERR_IO, "%s: %s", path,
                                strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len == cap) {
            if (cap >= ((size_t)512 << 20)) {
                free(buf);
                fclose(f);
                return fa_error_set(err, FA_ERR_FORMAT, "%s: larger than 512 MiB", path);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fa_error_set(err, FA_ERR_IO, "%s: read error", path);
    }
    fa_status st = jsonv_parse(path, buf, len, out, err);
    free(buf);
    return st;
}

const jsonv *jsonv_get(const jsonv *v, const char *key) {
    if (!v || v->type != JSONV_OBJ || !key) return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->key[i], key)) return &v->item[i];
    return NULL;
}

const jsonv *jsonv_at(const jsonv *v, size_t i) {
    if (!v || (v->type != JSONV_ARR && v->type != JSONV_OBJ) || i >= v->n) return NULL;
    return &v->item[i];
}

const jsonv *jsonv_path(const jsonv *v, const char *path) {
    char part[128];
    while (v && path && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof part) return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        v = jsonv_get(v, part);
        path = dot ? dot + 1 : NULL;
    }
    return v;
}

size_t jsonv_len(const jsonv *v) {
    return v && (v->type == JSONV_ARR || v->type == JSONV_OBJ) ? v->n : 0;
}

double jsonv_number(const jsonv *v) { return v && v->type == JSONV_NUM ? v->num : NAN; }

const char *jsonv_string(const jsonv *v, const char *dflt) {
    return v && v->type == JSONV_STR ? v->str : dflt;
}

int jsonv_is_true(const jsonv *v) { return v && v->type == JSONV_BOOL && v->b; }

static void indent_to(FILE *f, int indent, int level) {
    if (indent <= 0) return;
    fputc('\n', f);
    for (int i = 0; i < indent * level; i++) fputc(' ', f);
}

static void write_value(FILE *f, const jsonv *v, int indent, int level) {
    switch (v->type) {
    case JSONV_NULL: fputs("null", f); break;
    case JSONV_BOOL: fputs(v->b ? "true" : "false", f); break;
    case JSONV_NUM: {
        char buf[40];
        if (isfinite(v->num)) {
            jsonw_format_double(buf, sizeof buf, v->num);
            fputs(buf, f);
        } else {
            fputs("null", f);
        }
        break;
    }
    case JSONV_STR: fa_json_write_string(f, v->str); break;
    case JSONV_ARR:
    case JSONV_OBJ: {
        int obj = v->type == JSONV_OBJ;
        /* Arrays of scalars stay on one line: ROC and curve data would
         * otherwise take thousands of lines. */
        int flat = !obj;
        for (size_t i = 0; flat && i < v->n; i++)
            flat = v->item[i].type != JSONV_ARR && v->item[i].type != JSONV_OBJ;
        fputc(obj ? '{' : '[', f);
        for (size_t i = 0; i < v->n; i++) {
            if (i) fputs(flat ? ", " : ",", f);
            if (!flat) indent_to(f, indent, level + 1);
            if (obj) {
                fa_json_write_string(f, v->key[i]);
                fputs(": ", f);
            }
            write_value(f, &v->item[i], indent, level + 1);
        }
        if (v->n && !flat) indent_to(f, indent, level);
        fputc(obj ? '}' : ']', f);
        break;
    }
    }
}

void jsonv_write(FILE *f, const jsonv *v, int indent) { write_value(f, v, indent, 0); }
