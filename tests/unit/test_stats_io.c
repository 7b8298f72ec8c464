/* test_stats_io.c - unit tests of the evaluation's support modules: SHA-256
 * (FIPS 180-4 test vectors), the JSON writer and reader (round trip,
 * escapes, malformed and hostile input) and the string hash map. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "core/digest.h"
#include "eval/jsonv.h"
#include "eval/jsonw.h"
#include "eval/strmap.h"

FA_TEST_MAIN_STATE

static void test_sha256(void) {
    char hex[65];
    digest_sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    digest_sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_sha256_hex(two, strlen(two), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* One million 'a', fed in uneven pieces through a file. */
    char path[] = "/tmp/test_stats_io_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "wb");
    char block[1000];
    memset(block, 'a', sizeof block);
    for (int i = 0; i < 1000; i++) fwrite(block, 1, sizeof block, f);
    fclose(f);
    fa_error err;
    CHECK(digest_sha256_file(path, hex, &err) == FA_OK);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    unlink(path);
    CHECK(digest_sha256_file("/nonexistent/x", hex, &err) == FA_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "/nonexistent/x") != NULL);
}

static void test_json_roundtrip(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    jsonw w;
    jsonw_init(&w, f);
    jsonw_object(&w, NULL);
    jsonw_str(&w, "name", "a \"quoted\"\n\tname \xc3\xa9");
    jsonw_num(&w, "third", 1.0 / 3.0);
    jsonw_num(&w, "tenth", 0.1);
    jsonw_num(&w, "nan", NAN);
    jsonw_num(&w, "inf", INFINITY);
    jsonw_int(&w, "big", 9007199254740993LL);
    jsonw_bool(&w, "yes", 1);
    jsonw_null(&w, "nothing");
    jsonw_pair(&w, "ci", 0.25, 0.75);
    jsonw_pair(&w, "no_ci", NAN, 0.75);
    jsonw_array(&w, "list");
    jsonw_object(&w, NULL);
    jsonw_end(&w);
    jsonw_array_inline(&w, NULL);
    jsonw_end(&w);
    jsonw_int(&w, NULL, -3);
    jsonw_end(&w);
    jsonw_end(&w);
    fclose(f);
    CHECK(!w.error && w.depth == 0);
    jsonv v;
    fa_error err;
    CHECK(jsonv_parse("mem", buf, len, &v, &err) == FA_OK);
    CHECK(!strcmp(jsonv_string(jsonv_get(&v, "name"), ""), "a \"quoted\"\n\tname \xc3\xa9"));
    CHECK(jsonv_number(jsonv_get(&v, "third")) == 1.0 / 3.0); /* lossless */
    CHECK(strstr(buf, "0.1,") != NULL);                        /* and short */
    CHECK(jsonv_get(&v, "nan")->type == JSONV_NULL && isnan(jsonv_number(jsonv_get(&v, "nan"))));
    CHECK(jsonv_get(&v, "inf")->type == JSONV_NULL);
    CHECK(jsonv_is_true(jsonv_get(&v, "yes")));
    CHECK(jsonv_len(jsonv_get(&v, "ci")) == 2 && jsonv_number(jsonv_at(jsonv_get(&v, "ci"), 1)) == 0.75);
    CHECK(jsonv_get(&v, "no_ci")->type == JSONV_NULL);
    const jsonv *list = jsonv_get(&v, "list");
    CHECK(jsonv_len(list) == 3 && jsonv_at(list, 0)->type == JSONV_OBJ && jsonv_at(list, 1)->type == JSONV_ARR);
    CHECK(jsonv_number(jsonv_at(list, 2)) == -3);
    CHECK(jsonv_path(&v, "list.x") == NULL && jsonv_get(&v, "missing") == NULL);
    /* Write the tree back and parse again: same values. */
    char *buf2 = NULL;
    size_t len2 = 0;
    f = open_memstream(&buf2, &len2);
    jsonv_write(f, &v, 2);
    fclose(f);
    jsonv v2;
    CHECK(jsonv_parse("mem2", buf2, len2, &v2, &err) == FA_OK);
    CHECK(jsonv_number(jsonv_get(&v2, "third")) == 1.0 / 3.0);
    CHECK(!strcmp(jsonv_string(jsonv_get(&v2, "name"), ""), jsonv_string(jsonv_get(&v, "name"), "x")));
    jsonv_free(&v2);
    jsonv_free(&v);
    free(buf);
    free(buf2);
}

static void test_json_reader(void) {
    jsonv v;
    fa_error err;
    const char *ok = "\xEF\xBB\xBF {\"a\": [1, -2.5e3, 0], \"u\": \"\\u00e9\\ud83d\\ude00\\/\", \"e\": {}}";
    CHECK(jsonv_parse("ok", ok, strlen(ok), &v, &err) == FA_OK);
    CHECK(jsonv_number(jsonv_at(jsonv_get(&v, "a"), 1)) == -2500.0);
    CHECK(!strcmp(jsonv_string(jsonv_get(&v, "u"), ""), "\xc3\xa9\xf0\x9f\x98\x80/"));
    CHECK(jsonv_len(jsonv_get(&v, "e")) == 0);
    jsonv_free(&v);
    struct {
        const char *text, *why;
    } bad[] = {
        {"{\"a\": 1,}", "expected a member name"},
        {"[1 2]", "expected ',' or ']'"},
        {"{\"a\" 1}", "expected ':'"},
        {"\"abc", "unterminated string"},
        {"01", "trailing characters"},
        {"-", "bad number"},
        {"1.", "bad number"},
        {"nul", "unexpected character"},
        {"\"a\\qb\"", "bad escape"},
        {"\"\\u12\"", "bad \\u escape"},
        {"\"tab\there\"", "control character"},
        {"", "unexpected end"},
        {"{\"a\": [1, 2]} x", "trailing characters"},
        {"[1,\n2,\n@]", "line 3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fa_status st = jsonv_parse("bad.json", bad[i].text, strlen(bad[i].text), &v, &err);
        CHECK_MSG(st == FA_ERR_FORMAT && strstr(err.msg, bad[i].why) && strstr(err.msg, "bad.json"),
                  "'%s' -> %s", bad[i].text, err.msg);
    }
    /* Hostile nesting is refused, not a stack overflow. */
    size_t depth = 100000;
    char *deep = malloc(depth + 1);
    memset(deep, '[', depth);
    deep[depth] = '\0';
    CHECK(jsonv_parse("deep", deep, depth, &v, &err) == FA_ERR_FORMAT && strstr(err.msg, "too deep"));
    free(deep);
    CHECK(jsonv_read_file("/nonexistent.json", &v, &err) == FA_ERR_NOT_FOUND);
}

static void test_strmap(void) {
    strmap m;
    CHECK(strmap_init(&m, 4));
    enum { N = 20000 };
    static char keys[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        CHECK(strmap_put(&m, keys[i], (size_t)i, NULL) == 1);
    }
    size_t v, old;
    CHECK(m.n == N);
    CHECK(strmap_get(&m, "k12345", &v) && v == 12345);
    CHECK(!strmap_get(&m, "k20000", &v));
    CHECK(strmap_put(&m, "k7", 99, &old) == 0 && old == 7);
    CHECK(strmap_get(&m, "k7", &v) && v == 7);
    strmap_free(&m);
    strmap empty;
    memset(&empty, 0, sizeof empty);
    CHECK(!strmap_get(&empty, "x", &v));
}

int main(void) {
    test_sha256();
    test_json_roundtrip();
    test_json_reader();
    test_strmap();
    return fa_test_finish("test_stats_io");
}
