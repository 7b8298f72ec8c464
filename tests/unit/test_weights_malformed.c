/* test_weights_malformed.c - hostile safetensors files must be refused with
 * one line naming the file and the reason, never a crash (run under ASan and
 * UBSan by `make check`).
 *
 * Property checked for each case: weights_open fails, returns no file, and
 * the message is a single line that contains the path and the expected
 * reason. Then every truncation of a valid file and a set of deterministic
 * byte corruptions must never crash (and every truncation must fail).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "engine/weights.h"

FA_TEST_MAIN_STATE

static char g_dir[256];

typedef struct bad_case {
    const char *label;
    const char *header;  /* NULL: raw bytes in `raw` */
    size_t data_len;     /* zero bytes of data after the header */
    const char *raw;     /* used when header == NULL */
    size_t raw_len;
    int64_t length_field; /* >= 0: overrides the 8-byte header length */
    const char *expect;  /* substring of the message */
} bad_case;

static void write_file(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (n) fwrite(b, 1, n, f);
    fclose(f);
}

static unsigned char *build(const bad_case *c, size_t *n) {
    if (!c->header) {
        unsigned char *b = malloc(c->raw_len + 1);
        memcpy(b, c->raw, c->raw_len);
        *n = c->raw_len;
        return b;
    }
    size_t hl = strlen(c->header);
    unsigned char *b = calloc(1, 8 + hl + c->data_len + 1);
    uint64_t lf = c->length_field >= 0 ? (uint64_t)c->length_field : hl;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(lf >> (8 * i));
    memcpy(b + 8, c->header, hl);
    *n = 8 + hl + c->data_len;
    return b;
}

static char deep_header[4096];

static void check_refused(const char *label, const char *path, const char *expect) {
    weights_file *f = (weights_file *)1;
    fa_error err = {0};
    fa_status st = weights_open(&f, path, &err);
    CHECK_MSG(st != FA_OK, "%s: accepted", label);
    CHECK_MSG(f == NULL, "%s: returned a file", label);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", label, err.msg);
    CHECK_MSG(strchr(err.msg, '\n') == NULL, "%s: message has several lines", label);
    if (expect) CHECK_MSG(strstr(err.msg, expect) != NULL, "%s: message '%s' lacks '%s'", label, err.msg, expect);
    if (st == FA_OK && f) weights_close(f);
}

#define T1 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/fa_weights_bad_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    /* 1000 nested arrays in an ignored field: the depth limit must stop it. */
    {
        size_t n = 0;
        n += (size_t)snprintf(deep_header + n, sizeof deep_header - n,
                              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":");
        for (int i = 0; i < 1000; i++) deep_header[n++] = '[';
        for (int i = 0; i < 1000; i++) deep_header[n++] = ']';
        snprintf(deep_header + n, sizeof deep_header - n, "}}");
    }

    const bad_case cases[] = {
        {"empty file", NULL, 0, "", 0, -1, "truncated"},
        {"7 bytes", NULL, 0, "\x10\0\0\0\0\0\0", 7, -1, "truncated"},
        {"huge header length", T1 "}", 4, NULL, 0, (int64_t)0x7fffffffffffffffLL, "exceeds"},
        {"header longer than file", T1 "}", 4, NULL, 0, 5000, "truncated"},
        {"header length zero", T1 "}", 4, NULL, 0, 0, "too short"},
        {"not JSON", "hello world, this is not json", 0, NULL, 0, -1, "not a JSON object"},
        {"JSON array", "[1,2,3]", 0, NULL, 0, -1, "not a JSON object"},
        {"unterminated string", "{\"a", 0, NULL, 0, -1, "unterminated"},
        {"unterminated object", T1, 4, NULL, 0, -1, "malformed"},
        {"unknown dtype F64", "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, NULL, 0, -1,
         "unsupported dtype"},
        {"unknown dtype I32", "{\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL, 0, -1,
         "unsupported dtype"},
        {"dtype not a string", "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL, 0, -1,
         "tensor 'a'"},
        {"negative dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, NULL, 0, -1,
         "integer"},
        {"fractional dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, NULL, 0,
         -1, "fraction"},
        {"shape product overflow",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4, NULL, 0, -1,
         "overflow"},
        {"byte size overflow", "{\"a\":{\"dtype\":\"I64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}",
         8, NULL, 0, -1, "overflow"},
        {"dimension beyond int64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,4]}}",
         4, NULL, 0, -1, "too large"},
        {"integer overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999999]}}",
         4, NULL, 0, -1, "overflow"},
        {"nine dimensions", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         NULL, 0, -1, "8 dimensions"},
        {"offset beyond data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 4, NULL, 0,
         -1, "beyond"},
        {"offsets reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, NULL, 0, -1,
         "reversed"},
        {"offsets do not match shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, NULL,
         0, -1, "need 4"},
        {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, NULL, 0, -1,
         "malformed"},
        {"overlapping tensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[2,6]}}",
         6, NULL, 0, -1, "overlaps"},
        {"hole between tensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, NULL, 0, -1, "hole"},
        {"undescribed trailing data", T1 "}", 8, NULL, 0, -1, "not described"},
        {"data but no tensors", "{}", 8, NULL, 0, -1, "no tensors"},
        {"duplicate names",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, NULL, 0, -1, "duplicate"},
        {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, NULL, 0, -1, "lacks"},
        {"empty entry", "{\"a\":{}}", 0, NULL, 0, -1, "lacks"},
        {"entry not an object", "{\"a\":[1,2]}", 0, NULL, 0, -1, "malformed"},
        {"metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0, NULL, 0, -1, "not a string"},
        {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, NULL, 0, -1, "duplicate"},
        {"deep nesting", deep_header, 4, NULL, 0, -1, "nested"},
        {"bad escape", "{\"a\\q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL, 0, -1,
         "escape"},
        {"unpaired surrogate", "{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL,
         0, -1, "surrogate"},
        {"NUL in name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL, 0, -1,
         "NUL"},
        {"raw control character", "{\"a\tb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL,
         0, -1, "control"},
        {"empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL, 0, -1,
         "empty tensor name"},
        {"trailing garbage", T1 "}xyz", 4, NULL, 0, -1, "trailing"},
        {"missing colon", "{\"a\" {\"dtype\":\"F32\"}}", 0, NULL, 0, -1, "malformed"},
    };
    const int n_cases = (int)(sizeof cases / sizeof cases[0]);
    char path[512];
    for (int i = 0; i < n_cases; i++) {
        size_t n;
        unsigned char *b = build(&cases[i], &n);
        snprintf(path, sizeof path, "%s/case%02d.safetensors", g_dir, i);
        write_file(path, b, n);
        free(b);
        check_refused(cases[i].label, path, cases[i].expect);
        unlink(path);
    }

    /* A valid file (sanity) and every truncation of it. */
    const char *good_hdr =
        "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
        "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}";
    bad_case good = {"good", good_hdr, 24, NULL, 0, -1, NULL};
    size_t gn;
    unsigned char *gb = build(&good, &gn);
    snprintf(path, sizeof path, "%s/good.safetensors", g_dir);
    write_file(path, gb, gn);
    weights_file *f = NULL;
    fa_error err = {0};
    CHECK_MSG(weights_open(&f, path, &err) == FA_OK, "%s", err.msg);
    weights_close(f);
    for (size_t cut = 0; cut < gn; cut++) {
        write_file(path, gb, cut);
        char label[64];
        snprintf(label, sizeof label, "truncated to %zu bytes", cut);
        check_refused(label, path, NULL);
    }
    /* Deterministic corruption: every byte set to a few hostile values must
     * never crash; whatever is accepted must still be self-consistent. */
    const unsigned char evil[] = {0x00, 0xff, '"', '9', '[', '{', '\\', '-'};
    int accepted = 0;
    for (size_t pos = 0; pos < gn; pos++) {
        for (size_t e = 0; e < sizeof evil; e++) {
            unsigned char *m = malloc(gn);
            memcpy(m, gb, gn);
            m[pos] = evil[e];
            weights_file *cf = NULL;
            fa_status st = weights_parse_buffer(&cf, "corrupt", m, gn, &err);
            if (st == FA_OK) {
                accepted++;
                for (int t = 0; t < weights_count(cf); t++) {
                    const weights_tensor *wt = weights_at(cf, t);
                    int64_t numel = weights_numel(wt);
                    CHECK(numel >= 0 && (size_t)numel * weights_dtype_size(wt->dtype) == wt->nbytes);
                    float *dst = malloc((size_t)numel * sizeof(float) + 1);
                    CHECK(weights_read_f32(cf, wt, dst, &err) == FA_OK);
                    free(dst);
                }
                weights_close(cf);
            } else {
                CHECK(cf == NULL);
                CHECK(strstr(err.msg, "corrupt") != NULL);
            }
            free(m);
        }
    }
    fprintf(stderr, "corruptions accepted as valid files: %d of %zu\n", accepted, gn * sizeof evil);
    free(gb);
    unlink(path);
    rmdir(g_dir);
    return fa_test_finish("test_weights_malformed");
}
