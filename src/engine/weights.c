/* weights.c - safetensors parsing, dtype conversion and atomic writing.
 *
 * The parser treats every file as hostile: the header length, the JSON text,
 * every shape and every offset are checked (overflow first, then bounds)
 * before anything is allocated or indexed, and any failure is one line that
 * names the file and the reason. The rules follow the safetensors spec as the
 * reference Rust implementation enforces it: the header is a JSON object of
 * tensors plus an optional "__metadata__" string map, and the tensors' byte
 * ranges tile the data section exactly (no overlaps, no holes).
 *
 * Graph glue (loading parameters by name, writing a graph) lives in
 * weights_graph.c so that this file depends on nothing but the C library.
 */
#include "engine/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Headers larger than this are refused before reading them: the reference
 * implementation uses the same 100 MB cap, and a real header for the largest
 * torchvision model is well under 100 kB. */
#define WEIGHTS_HEADER_MAX ((uint64_t)100 * 1000 * 1000)
#define WEIGHTS_NAME_MAX 4096
#define WEIGHTS_JSON_DEPTH_MAX 32

struct weights_file {
    char *path;               /* for messages */
    unsigned char *bytes;     /* whole file, owned */
    size_t size;
    const unsigned char *data; /* data section inside bytes */
    size_t data_size;
    weights_tensor *tensors;  /* owned, names owned */
    int n_tensors;
    char **meta_keys;         /* owned */
    char **meta_values;       /* owned */
    int n_meta;
};

/* ---------- dtype helpers ---------- */

size_t weights_dtype_size(weights_dtype d) {
    switch (d) {
    case WEIGHTS_F32: return 4;
    case WEIGHTS_F16: return 2;
    case WEIGHTS_BF16: return 2;
    case WEIGHTS_I64: return 8;
    }
    return 0;
}

const char *weights_dtype_name(weights_dtype d) {
    switch (d) {
    case WEIGHTS_F32: return "F32";
    case WEIGHTS_F16: return "F16";
    case WEIGHTS_BF16: return "BF16";
    case WEIGHTS_I64: return "I64";
    }
    return "?";
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static uint16_t load_le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t load_le64(const unsigned char *p) {
    return (uint64_t)load_le32(p) | ((uint64_t)load_le32(p + 4) << 32);
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float weights_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf / nan: keep the payload's top bits */
        return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return f32_from_bits(sign);
        /* Subnormal half: value = man * 2^-24, exact in fp32. */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

float weights_bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

/* ---------- a small JSON reader for the header ---------- */

typedef struct json_cursor {
    const char *p;
    const char *end;
    const char *reason; /* first error, static string */
} json_cursor;

static void json_ws(json_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int json_fail(json_cursor *c, const char *reason) {
    if (!c->reason) c->reason = reason;
    return 0;
}

static int json_expect(json_cursor *c, char ch) {
    json_ws(c);
    if (c->p >= c->end || *c->p != ch) return json_fail(c, "malformed JSON header");
    c->p++;
    return 1;
}

/* Peek the next non-space character, 0 at end. */
static char json_peek(json_cursor *c) {
    json_ws(c);
    return c->p < c->end ? *c->p : 0;
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int json_hex4(json_cursor *c, uint32_t *out) {
    if (c->end - c->p < 4) return json_fail(c, "truncated \\u escape in JSON header");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(c->p[i]);
        if (h < 0) return json_fail(c, "bad \\u escape in JSON header");
        v = (v << 4) | (uint32_t)h;
    }
    c->p += 4;
    *out = v;
    return 1;
}

/* Parse a JSON string. With out != NULL, a NUL-terminated copy (UTF-8, at
 * most max_len bytes, no embedded NUL) is malloc'd into *out. */
static int json_string(json_cursor *c, char **out, size_t max_len) {
    if (!json_expect(c, '"')) return 0;
    /* The decoded text is never longer than the escaped text. */
    const char *start = c->p;
    const char *q = start;
    while (q < c->end && *q != '"') q += (*q == '\\' && q + 1 < c->end) ? 2 : 1;
    if (q >= c->end) return json_fail(c, "unterminated string in JSON header");
    size_t cap = (size_t)(q - start);
    if (cap > max_len) return json_fail(c, "string too long in JSON header");
    char *buf = NULL;
    if (out) {
        buf = malloc(cap + 1);
        if (!buf) return json_fail(c, "out of memory");
    }
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20) {
            free(buf);
            return json_fail(c, "control character in JSON string");
        }
        if (ch != '\\') {
            if (buf) buf[n++] = (char)ch;
            continue;
        }
        if (c->p >= c->end) break;
        char e = *c->p++;
        uint32_t cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!json_hex4(c, &cp)) {
                free(buf);
                return 0;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) { /* surrogate pair */
                uint32_t lo;
                if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') {
                    free(buf);
                    return json_fail(c, "unpaired surrogate in JSON string");
                }
                c->p += 2;
                if (!json_hex4(c, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                    free(buf);
                    return json_fail(c, "unpaired surrogate in JSON string");
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                free(buf);
                return json_fail(c, "unpaired surrogate in JSON string");
            }
            if (cp == 0) {
                free(buf);
                return json_fail(c, "NUL character in JSON string");
            }
            break;
        default: free(buf); return json_fail(c, "bad escape in JSON string");
        }
        if (!buf) continue;
        /* UTF-8 of cp never exceeds the 6 (or 12) escaped bytes it came from. */
        if (cp < 0x80) {
            buf[n++] = (char)cp;
        } else if (cp < 0x800) {
            buf[n++] = (char)(0xc0 | (cp >> 6));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            buf[n++] = (char)(0xe0 | (cp >> 12));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            buf[n++] = (char)(0xf0 | (cp >> 18));
            buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    if (c->p >= c->end) {
        free(buf);
        return json_fail(c, "unterminated string in JSON header");
    }
    c->p++; /* closing quote */
    if (buf) {
        buf[n] = '\0';
        *out = buf;
    }
    return 1;
}

/* A non-negative integer without sign, fraction or exponent (safetensors
 * shapes and offsets), checked against UINT64_MAX. */
static int json_uint(json_cursor *c, uint64_t *out) {
    json_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return json_fail(c, "expected a non-negative integer in JSON header");
    uint64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (v > (UINT64_MAX - d) / 10) return json_fail(c, "integer overflow in JSON header");
        v = v * 10 + d;
        c->p++;
    }
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
        return json_fail(c, "expected an integer, got a fraction in JSON header");
    *out = v;
    return 1;
}

static int json_literal(json_cursor *c, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n)) return json_fail(c, "malformed JSON header");
    c->p += n;
    return 1;
}

/* Skip any JSON value (unknown keys), with a depth limit so that a header of
 * nested brackets cannot exhaust the stack. */
static int json_skip(json_cursor *c, int depth) {
    if (depth > WEIGHTS_JSON_DEPTH_MAX) return json_fail(c, "JSON header nested too deeply");
    char ch = json_peek(c);
    if (ch == '"') return json_string(c, NULL, SIZE_MAX);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        if (json_peek(c) == close) {
            c->p++;
            return 1;
        }
        for (;;) {
            if (ch == '{') {
                if (!json_string(c, NULL, SIZE_MAX) || !json_expect(c, ':')) return 0;
            }
            if (!json_skip(c, depth + 1)) return 0;
            char sep = json_peek(c);
            if (sep == ',') {
                c->p++;
                continue;
            }
            if (sep == close) {
                c->p++;
                return 1;
            }
            return json_fail(c, "malformed JSON header");
        }
    }
    if (ch == 't') return json_literal(c, "true");
    if (ch == 'f') return json_literal(c, "false");
    if (ch == 'n') return json_literal(c, "null");
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        if (*c->p == '-') c->p++;
        int digits = 0;
        while (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || *c->p == '.' || *c->p == 'e' ||
                                 *c->p == 'E' || *c->p == '+' || *c->p == '-')) {
            c->p++;
            digits++;
        }
        return digits ? 1 : json_fail(c, "malformed number in JSON header");
    }
    return json_fail(c, "malformed JSON header");
}

/* ---------- parsing ---------- */

static void file_free(weights_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->bytes);
    free(f->path);
    free(f);
}

void weights_close(weights_file *f) { file_free(f); }

/* Grow an array of `size`-byte elements to hold at least n+1 (doubling). */
static int grow(void **arr, int *cap, int n, size_t size) {
    if (n < *cap) return 1;
    if (*cap > INT_MAX / 2) return 0;
    int ncap = *cap ? *cap * 2 : 16;
    size_t bytes;
    if (!fa_size_mul((size_t)ncap, size, &bytes)) return 0;
    void *p = realloc(*arr, bytes);
    if (!p) return 0;
    *arr = p;
    *cap = ncap;
    return 1;
}

static int parse_dtype(const char *s, weights_dtype *d) {
    if (!strcmp(s, "F32")) *d = WEIGHTS_F32;
    else if (!strcmp(s, "F16")) *d = WEIGHTS_F16;
    else if (!strcmp(s, "BF16")) *d = WEIGHTS_BF16;
    else if (!strcmp(s, "I64")) *d = WEIGHTS_I64;
    else return 0;
    return 1;
}

/* Parse one tensor entry {"dtype":..,"shape":[..],"data_offsets":[a,b]}.
 * Range checks against the data section happen later, in one place. */
static fa_status parse_tensor_entry(weights_file *f, json_cursor *c, weights_tensor *t, uint64_t off[2],
                                    fa_error *err) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    if (!json_expect(c, '{')) goto json_error;
    if (json_peek(c) == '}') {
        c->p++;
        goto incomplete;
    }
    for (;;) {
        char *key = NULL;
        if (!json_string(c, &key, 64) || !json_expect(c, ':')) {
            free(key);
            goto json_error;
        }
        if (!strcmp(key, "dtype")) {
            char *val = NULL;
            free(key);
            if (!json_string(c, &val, 16)) goto json_error;
            int ok = parse_dtype(val, &t->dtype);
            if (!ok) {
                fa_error_set(err, FA_ERR_UNSUPPORTED,
                             "%s: tensor '%s' has unsupported dtype '%s' (supported: F32, F16, BF16, I64)",
                             f->path, t->name, val);
                free(val);
                return FA_ERR_UNSUPPORTED;
            }
            free(val);
            have_dtype = 1;
        } else if (!strcmp(key, "shape")) {
            free(key);
            if (!json_expect(c, '[')) goto json_error;
            t->ndim = 0;
            if (json_peek(c) == ']') {
                c->p++;
            } else {
                for (;;) {
                    uint64_t d;
                    if (!json_uint(c, &d)) goto json_error;
                    if (t->ndim >= 8)
                        return fa_error_set(err, FA_ERR_UNSUPPORTED,
                                            "%s: tensor '%s' has more than 8 dimensions", f->path, t->name);
                    if (d > (uint64_t)INT64_MAX)
                        return fa_error_set(err, FA_ERR_FORMAT, "%s: tensor '%s' has a dimension too large",
                                            f->path, t->name);
                    t->shape[t->ndim++] = (int64_t)d;
                    char sep = json_peek(c);
                    if (sep == ',') {
                        c->p++;
                        continue;
                    }
                    if (!json_expect(c, ']')) goto json_error;
                    break;
                }
            }
            have_shape = 1;
        } else if (!strcmp(key, "data_offsets")) {
            free(key);
            if (!json_expect(c, '[') || !json_uint(c, &off[0]) || !json_expect(c, ',') ||
                !json_uint(c, &off[1]) || !json_expect(c, ']'))
                goto json_error;
            have_offsets = 1;
        } else {
            free(key);
            if (!json_skip(c, 2)) goto json_error;
        }
        char sep = json_peek(c);
        if (sep == ',') {
            c->p++;
            continue;
        }
        if (!json_expect(c, '}')) goto json_error;
        break;
    }
    if (!have_dtype || !have_shape || !have_offsets) goto incomplete;
    return FA_OK;
incomplete:
    return fa_error_set(err, FA_ERR_FORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets", f->path,
                        t->name);
json_error:
    return fa_error_set(err, FA_ERR_FORMAT, "%s: %s (tensor '%s', header byte %zu)", f->path,
                        c->reason ? c->reason : "malformed JSON header", t->name,
                        (size_t)(c->p - (const char *)f->bytes));
}

static fa_status parse_metadata(weights_file *f, json_cursor *c, fa_error *err) {
    int cap = 0;
    if (!json_expect(c, '{')) goto json_error;
    if (json_peek(c) == '}') {
        c->p++;
        return FA_OK;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        if (!json_string(c, &k, WEIGHTS_NAME_MAX) || !json_expect(c, ':')) {
            free(k);
            goto json_error;
        }
        if (json_peek(c) != '"') {
            fa_error_set(err, FA_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", f->path, k);
            free(k);
            return FA_ERR_FORMAT;
        }
        if (!json_string(c, &v, WEIGHTS_HEADER_MAX)) {
            free(k);
            goto json_error;
        }
        void *keys = f->meta_keys, *vals = f->meta_values;
        int cap2 = cap;
        if (!grow(&keys, &cap, f->n_meta, sizeof(char *)) || !grow(&vals, &cap2, f->n_meta, sizeof(char *))) {
            f->meta_keys = keys;
            f->meta_values = vals;
            free(k);
            free(v);
            return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory reading metadata", f->path);
        }
        f->meta_keys = keys;
        f->meta_values = vals;
        f->meta_keys[f->n_meta] = k;
        f->meta_values[f->n_meta] = v;
        f->n_meta++;
        char sep = json_peek(c);
        if (sep == ',') {
            c->p++;
            continue;
        }
        if (!json_expect(c, '}')) goto json_error;
        return FA_OK;
    }
json_error:
    return fa_error_set(err, FA_ERR_FORMAT, "%s: %s in __metadata__", f->path,
                        c->reason ? c->reason : "malformed JSON header");
}

typedef struct tensor_range {
    uint64_t begin, end;
    int index;
} tensor_range;

static int range_cmp(const void *a, const void *b) {
    const tensor_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    const weights_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Parse the header and validate every tensor against the data section.
 * f->bytes/size are set; fills tensors and metadata. */
static fa_status parse_file(weights_file *f, fa_error *err) {
    if (f->size < 8)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes, need at least 8)",
                            f->path, f->size);
    uint64_t hlen = load_le64(f->bytes);
    if (hlen > WEIGHTS_HEADER_MAX)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", f->path,
                            (unsigned long long)hlen, (unsigned long long)WEIGHTS_HEADER_MAX);
    if (hlen > f->size - 8)
        return fa_error_set(err, FA_ERR_FORMAT,
                            "%s: truncated: header length %llu but only %zu bytes follow the length field",
                            f->path, (unsigned long long)hlen, f->size - 8);
    if (hlen < 2) return fa_error_set(err, FA_ERR_FORMAT, "%s: header too short to be a JSON object", f->path);
    f->data = f->bytes + 8 + hlen;
    f->data_size = f->size - 8 - (size_t)hlen;

    json_cursor c = {(const char *)f->bytes + 8, (const char *)f->bytes + 8 + hlen, NULL};
    if (json_peek(&c) != '{')
        return fa_error_set(err, FA_ERR_FORMAT, "%s: header is not a JSON object", f->path);
    c.p++;
    int cap = 0, have_meta = 0;
    uint64_t *offs = NULL; /* 2 per tensor */
    int offs_cap = 0;
    fa_status st = FA_OK;
    if (json_peek(&c) == '}') {
        c.p++;
    } else {
        for (;;) {
            char *name = NULL;
            if (!json_string(&c, &name, WEIGHTS_NAME_MAX) || !json_expect(&c, ':')) {
                free(name);
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: %s (header byte %zu)", f->path,
                                  c.reason ? c.reason : "malformed JSON header",
                                  (size_t)(c.p - (const char *)f->bytes));
                goto done;
            }
            if (!strcmp(name, "__metadata__")) {
                free(name);
                if (have_meta) {
                    st = fa_error_set(err, FA_ERR_FORMAT, "%s: duplicate __metadata__", f->path);
                    goto done;
                }
                have_meta = 1;
                st = parse_metadata(f, &c, err);
                if (st) goto done;
            } else {
                if (!name[0]) {
                    free(name);
                    st = fa_error_set(err, FA_ERR_FORMAT, "%s: empty tensor name", f->path);
                    goto done;
                }
                void *arr = f->tensors;
                int cap_before = cap;
                if (!grow(&arr, &cap, f->n_tensors, sizeof(weights_tensor))) {
                    free(name);
                    st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory reading the header", f->path);
                    goto done;
                }
                f->tensors = arr;
                (void)cap_before;
                void *oarr = offs;
                if (!grow(&oarr, &offs_cap, f->n_tensors, 2 * sizeof(uint64_t))) {
                    free(name);
                    st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory reading the header", f->path);
                    goto done;
                }
                offs = oarr;
                weights_tensor *t = &f->tensors[f->n_tensors];
                memset(t, 0, sizeof *t);
                t->name = name;
                f->n_tensors++; /* owned from here on, freed with f */
                st = parse_tensor_entry(f, &c, t, &offs[2 * (f->n_tensors - 1)], err);
                if (st) goto done;
            }
            char sep = json_peek(&c);
            if (sep == ',') {
                c.p++;
                continue;
            }
            if (!json_expect(&c, '}')) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: malformed JSON header (header byte %zu)", f->path,
                                  (size_t)(c.p - (const char *)f->bytes));
                goto done;
            }
            break;
        }
    }
    json_ws(&c);
    if (c.p != c.end) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: trailing bytes after the JSON header", f->path);
        goto done;
    }

    /* Sizes: numel and byte counts, overflow-checked, must equal the range. */
    for (int i = 0; i < f->n_tensors; i++) {
        weights_tensor *t = &f->tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if ((uint64_t)t->shape[d] > SIZE_MAX || !fa_size_mul(numel, (size_t)t->shape[d], &numel)) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: tensor '%s': shape product overflows", f->path, t->name);
                goto done;
            }
        }
        size_t nbytes;
        if (!fa_size_mul(numel, weights_dtype_size(t->dtype), &nbytes) || numel > (size_t)INT64_MAX) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: tensor '%s': byte size overflows", f->path, t->name);
            goto done;
        }
        uint64_t b = offs[2 * i], e = offs[2 * i + 1];
        if (b > e) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] are reversed",
                              f->path, t->name, (unsigned long long)b, (unsigned long long)e);
            goto done;
        }
        if (e > (uint64_t)f->data_size) {
            st = fa_error_set(err, FA_ERR_FORMAT,
                              "%s: tensor '%s': data_offsets end %llu is beyond the %zu-byte data section (truncated file?)",
                              f->path, t->name, (unsigned long long)e, f->data_size);
            goto done;
        }
        if (e - b != (uint64_t)nbytes) {
            st = fa_error_set(err, FA_ERR_FORMAT,
                              "%s: tensor '%s': data_offsets span %llu bytes but dtype %s and shape need %zu",
                              f->path, t->name, (unsigned long long)(e - b), weights_dtype_name(t->dtype), nbytes);
            goto done;
        }
        t->offset = (size_t)b;
        t->nbytes = nbytes;
    }

    /* Ranges must tile the data section: sorted by start, each begins where
     * the previous ended (zero-sized tensors may share an offset). */
    if (f->n_tensors > 0) {
        tensor_range *r = fa_malloc_array((size_t)f->n_tensors, sizeof *r);
        if (!r) {
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory checking offsets", f->path);
            goto done;
        }
        for (int i = 0; i < f->n_tensors; i++) {
            r[i].begin = f->tensors[i].offset;
            r[i].end = f->tensors[i].offset + f->tensors[i].nbytes;
            r[i].index = i;
        }
        qsort(r, (size_t)f->n_tensors, sizeof *r, range_cmp);
        uint64_t pos = 0;
        for (int i = 0; i < f->n_tensors && !st; i++) {
            if (r[i].begin < pos)
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: tensor '%s' overlaps another tensor's data", f->path,
                                  f->tensors[r[i].index].name);
            else if (r[i].begin > pos)
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: hole in the data section before tensor '%s'",
                                  f->path, f->tensors[r[i].index].name);
            pos = r[i].end;
        }
        if (!st && pos != (uint64_t)f->data_size)
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: %llu bytes after the last tensor are not described",
                              f->path, (unsigned long long)((uint64_t)f->data_size - pos));
        free(r);
        if (st) goto done;

        /* Duplicate names would make lookups ambiguous. */
        weights_tensor **by_name = fa_malloc_array((size_t)f->n_tensors, sizeof *by_name);
        if (!by_name) {
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory checking names", f->path);
            goto done;
        }
        for (int i = 0; i < f->n_tensors; i++) by_name[i] = &f->tensors[i];
        qsort(by_name, (size_t)f->n_tensors, sizeof *by_name, name_cmp);
        for (int i = 1; i < f->n_tensors && !st; i++)
            if (!strcmp(by_name[i - 1]->name, by_name[i]->name))
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: duplicate tensor name '%s'", f->path, by_name[i]->name);
        free(by_name);
    } else if (f->data_size != 0) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: %zu data bytes but no tensors", f->path, f->data_size);
    }
done:
    free(offs);
    return st;
}

/* Take ownership of bytes (malloc'd, size bytes) and parse them. */
static fa_status weights_from_bytes(weights_file **out, const char *name, unsigned char *bytes, size_t size,
                                    fa_error *err) {
    *out = NULL;
    weights_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name ? name : "(buffer)"))) {
        free(f);
        free(bytes);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name ? name : "(buffer)");
    }
    f->bytes = bytes;
    f->size = size;
    fa_status st = parse_file(f, err);
    if (st) {
        file_free(f);
        return st;
    }
    *out = f;
    return FA_OK;
}

fa_status weights_parse_buffer(weights_file **out, const char *name, const void *data, size_t len,
                               fa_error *err) {
    /* +1 so that a zero-length buffer still gets a distinct allocation. */
    unsigned char *copy = malloc(len + 1);
    if (!copy) {
        *out = NULL;
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory (%zu bytes)", name ? name : "(buffer)", len);
    }
    if (len) memcpy(copy, data, len);
    return weights_from_bytes(out, name, copy, len, err);
}

fa_status weights_open(weights_file **out, const char *path, fa_error *err) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return fa_error_set(err, errno == ENOENT ? FA_ERR_NOT_FOUND : FA_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        int e = errno;
        fclose(fp);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(fp);
        return fa_error_set(err, FA_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX - 1) {
        fclose(fp);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: file too large", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *bytes = malloc(size + 1);
    if (!bytes) {
        fclose(fp);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = size ? fread(bytes, 1, size, fp) : 0;
    int read_error = ferror(fp);
    fclose(fp);
    if (got != size || read_error) {
        free(bytes);
        return fa_error_set(err, FA_ERR_IO, "%s: read failed (%zu of %zu bytes)", path, got, size);
    }
    return weights_from_bytes(out, path, bytes, size, err);
}

int weights_count(const weights_file *f) { return f ? f->n_tensors : 0; }

const weights_tensor *weights_at(const weights_file *f, int i) {
    if (!f || i < 0 || i >= f->n_tensors) return NULL;
    return &f->tensors[i];
}

const weights_tensor *weights_find(const weights_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *weights_metadata(const weights_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

const char *weights_path(const weights_file *f) { return f ? f->path : ""; }

int64_t weights_numel(const weights_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d]; /* validated at parse time */
    return n;
}

fa_status weights_read_f32(const weights_file *f, const weights_tensor *t, float *dst, fa_error *err) {
    if (!f || !t || (!dst && t->nbytes))
        return fa_error_set(err, FA_ERR_ARG, "weights_read_f32: NULL argument");
    /* t must be one of f's own tensors: its range was validated at parse time. */
    if (t < f->tensors || t >= f->tensors + f->n_tensors)
        return fa_error_set(err, FA_ERR_ARG, "%s: tensor does not belong to this file", f->path);
    const unsigned char *src = f->data + t->offset;
    size_t n = t->nbytes / weights_dtype_size(t->dtype);
    switch (t->dtype) {
    case WEIGHTS_F32:
        if (host_is_little_endian()) {
            if (n) memcpy(dst, src, n * 4);
        } else {
            for (size_t i = 0; i < n; i++) dst[i] = f32_from_bits(load_le32(src + 4 * i));
        }
        break;
    case WEIGHTS_F16:
        for (size_t i = 0; i < n; i++) dst[i] = weights_f16_to_f32(load_le16(src + 2 * i));
        break;
    case WEIGHTS_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = weights_bf16_to_f32(load_le16(src + 2 * i));
        break;
    case WEIGHTS_I64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int64_t)load_le64(src + 8 * i);
        break;
    }
    return FA_OK;
}

fa_status weights_read_i64(const weights_file *f, const weights_tensor *t, int64_t *dst, fa_error *err) {
    if (!f || !t || (!dst && t->nbytes))
        return fa_error_set(err, FA_ERR_ARG, "weights_read_i64: NULL argument");
    if (t < f->tensors || t >= f->tensors + f->n_tensors)
        return fa_error_set(err, FA_ERR_ARG, "%s: tensor does not belong to this file", f->path);
    const unsigned char *src = f->data + t->offset;
    size_t n = t->nbytes / weights_dtype_size(t->dtype);
    if (t->dtype == WEIGHTS_I64) {
        for (size_t i = 0; i < n; i++) dst[i] = (int64_t)load_le64(src + 8 * i);
        return FA_OK;
    }
    /* Float counters (some converters write F32): accept exact integers only. */
    float *tmp = fa_malloc_array(n ? n : 1, sizeof *tmp);
    if (!tmp) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", f->path);
    fa_status st = weights_read_f32(f, t, tmp, err);
    for (size_t i = 0; !st && i < n; i++) {
        if (!(fabsf(tmp[i]) < 9.0e15f) || tmp[i] != floorf(tmp[i]))
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: tensor '%s' is not an integer counter", f->path, t->name);
        else
            dst[i] = (int64_t)tmp[i];
    }
    free(tmp);
    return st;
}

/* ---------- writing ---------- */

typedef struct writer_tensor {
    char *name;
    weights_dtype dtype;
    int ndim;
    int64_t shape[8];
    unsigned char *data; /* little-endian bytes, owned */
    size_t nbytes;
} writer_tensor;

struct weights_writer {
    writer_tensor *t;
    int n, cap;
    char **meta_k, **meta_v;
    int n_meta, cap_meta;
};

weights_writer *weights_writer_create(void) { return calloc(1, sizeof(weights_writer)); }

void weights_writer_free(weights_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_k[i]);
        free(w->meta_v[i]);
    }
    free(w->meta_k);
    free(w->meta_v);
    free(w);
}

static fa_status writer_add(weights_writer *w, const char *name, weights_dtype dtype, int ndim,
                            const int64_t *shape, const void *data, fa_error *err) {
    if (!w || !name || !name[0] || ndim < 0 || ndim > 8 || (ndim > 0 && !shape))
        return fa_error_set(err, FA_ERR_ARG, "weights writer: bad tensor '%s'", name ? name : "(null)");
    if (!strcmp(name, "__metadata__") || strlen(name) > WEIGHTS_NAME_MAX)
        return fa_error_set(err, FA_ERR_ARG, "weights writer: invalid tensor name '%.64s'", name);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return fa_error_set(err, FA_ERR_ARG, "weights writer: duplicate tensor '%s'", name);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || !fa_size_mul(numel, (size_t)shape[d], &numel))
            return fa_error_set(err, FA_ERR_ARG, "weights writer: tensor '%s' has a bad shape", name);
    size_t nbytes;
    if (!fa_size_mul(numel, weights_dtype_size(dtype), &nbytes))
        return fa_error_set(err, FA_ERR_NOMEM, "weights writer: tensor '%s' too large", name);
    if (nbytes && !data) return fa_error_set(err, FA_ERR_ARG, "weights writer: tensor '%s' has no data", name);
    void *arr = w->t;
    if (!grow(&arr, &w->cap, w->n, sizeof(writer_tensor)))
        return fa_error_set(err, FA_ERR_NOMEM, "weights writer: out of memory");
    w->t = arr;
    writer_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return fa_error_set(err, FA_ERR_NOMEM, "weights writer: out of memory for '%s'", name);
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->nbytes = nbytes;
    if (host_is_little_endian()) {
        if (nbytes) memcpy(t->data, data, nbytes);
    } else { /* store little-endian whatever the host */
        size_t es = weights_dtype_size(dtype);
        const unsigned char *s = data;
        for (size_t i = 0; i < numel; i++)
            for (size_t b = 0; b < es; b++) t->data[i * es + b] = s[i * es + es - 1 - b];
    }
    w->n++;
    return FA_OK;
}

fa_status weights_writer_add_f32(weights_writer *w, const char *name, int ndim, const int64_t *shape,
                                 const float *data, fa_error *err) {
    return writer_add(w, name, WEIGHTS_F32, ndim, shape, data, err);
}

fa_status weights_writer_add_i64(weights_writer *w, const char *name, int ndim, const int64_t *shape,
                                 const int64_t *data, fa_error *err) {
    return writer_add(w, name, WEIGHTS_I64, ndim, shape, data, err);
}

fa_status weights_writer_set_metadata(weights_writer *w, const char *key, const char *value, fa_error *err) {
    if (!w || !key || !value) return fa_error_set(err, FA_ERR_ARG, "weights writer: NULL metadata");
    for (int i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta_k[i], key)) continue;
        char *v = strdup(value);
        if (!v) return fa_error_set(err, FA_ERR_NOMEM, "weights writer: out of memory");
        free(w->meta_v[i]);
        w->meta_v[i] = v;
        return FA_OK;
    }
    void *k = w->meta_k, *v = w->meta_v;
    int cap2 = w->cap_meta;
    if (!grow(&k, &w->cap_meta, w->n_meta, sizeof(char *)) || !grow(&v, &cap2, w->n_meta, sizeof(char *))) {
        w->meta_k = k;
        w->meta_v = v;
        return fa_error_set(err, FA_ERR_NOMEM, "weights writer: out of memory");
    }
    w->meta_k = k;
    w->meta_v = v;
    char *kc = strdup(key), *vc = strdup(value);
    if (!kc || !vc) {
        free(kc);
        free(vc);
        return fa_error_set(err, FA_ERR_NOMEM, "weights writer: out of memory");
    }
    w->meta_k[w->n_meta] = kc;
    w->meta_v[w->n_meta] = vc;
    w->n_meta++;
    return FA_OK;
}

/* Growable text buffer for the JSON header. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
    int oom;
} text_buf;

static void tb_put(text_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    size_t need;
    if (!fa_size_add(b->len, n + 1, &need)) {
        b->oom = 1;
        return;
    }
    if (need > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < need) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *p = realloc(b->s, ncap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void tb_str(text_buf *b, const char *s) { tb_put(b, s, strlen(s)); }

static void tb_fmt_u64(text_buf *b, uint64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    tb_put(b, tmp, (size_t)n);
}

static void tb_json_string(text_buf *b, const char *s) {
    tb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            tb_put(b, e, 2);
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p);
            tb_put(b, e, 6);
        } else {
            tb_put(b, (const char *)p, 1);
        }
    }
    tb_put(b, "\"", 1);
}

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

fa_status weights_writer_save(weights_writer *w, const char *path, fa_error *err) {
    if (!w || !path || !path[0]) return fa_error_set(err, FA_ERR_ARG, "weights writer: no path");
    text_buf h = {0};
    tb_str(&h, "{");
    int first = 1;
    if (w->n_meta) {
        tb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) tb_str(&h, ",");
            tb_json_string(&h, w->meta_k[i]);
            tb_str(&h, ":");
            tb_json_string(&h, w->meta_v[i]);
        }
        tb_str(&h, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const writer_tensor *t = &w->t[i];
        if (!first) tb_str(&h, ",");
        first = 0;
        tb_json_string(&h, t->name);
        tb_str(&h, ":{\"dtype\":\"");
        tb_str(&h, weights_dtype_name(t->dtype));
        tb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) tb_str(&h, ",");
            tb_fmt_u64(&h, (uint64_t)t->shape[d]);
        }
        tb_str(&h, "],\"data_offsets\":[");
        tb_fmt_u64(&h, off);
        tb_str(&h, ",");
        off += t->nbytes;
        tb_fmt_u64(&h, off);
        tb_str(&h, "]}");
    }
    tb_str(&h, "}");
    /* Pad with spaces to a multiple of 8 so that the data section is aligned
     * (what the reference writer does; readers may then map it directly). */
    while (!h.oom && (h.len % 8)) tb_str(&h, " ");
    if (h.oom) {
        free(h.s);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory building the header", path);
    }

    /* Temp file in the same directory so that rename() is atomic. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    char *dir = strdup(path);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        free(h.s);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';

    fa_status st = FA_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = fa_error_set(err, FA_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
        goto out;
    }
    unsigned char len8[8];
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
    int ok = write_all(fd, len8, 8) && write_all(fd, h.s, h.len);
    for (int i = 0; ok && i < w->n; i++) ok = write_all(fd, w->t[i].data, w->t[i].nbytes);
    if (!ok) st = fa_error_set(err, FA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (!st && fchmod(fd, 0644) != 0)
        st = fa_error_set(err, FA_ERR_IO, "%s: chmod failed: %s", path, strerror(errno));
    if (!st && fsync(fd) != 0) st = fa_error_set(err, FA_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && !st) st = fa_error_set(err, FA_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = fa_error_set(err, FA_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
    if (st) {
        unlink(tmp);
        goto out;
    }
    /* The rename is durable only once the directory entry is on disk. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd) != 0)
        st = fa_error_set(err, FA_ERR_IO, "%s: fsync of directory %s failed: %s", path, dir, strerror(errno));
    if (dfd >= 0) close(dfd);
out:
    free(tmp);
    free(dir);
    free(h.s);
    return st;
}
