/* test_serve_rules.c - the triage node's pure rules: UID validation (what may
 * name a file), the host allow-list with CIDR blocks, loopback detection, the
 * configuration file (values, unknown keys, unsafe HTTP exposure) and the
 * worklist ordering rule with its maximum-wait escalation, checked against a
 * brute-force statement of the rule (every adjacent pair in order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "serve/serve.h"
#include "serve/serve_db.h"
#include "serve/serve_http.h"

FA_TEST_MAIN_STATE

static void test_uids(void) {
    CHECK(serve_uid_valid("1.2.840.10008.5.1.4.1.1.1"));
    CHECK(serve_uid_valid("0"));
    CHECK(serve_uid_valid("1.0.2"));
    CHECK(!serve_uid_valid(""));
    CHECK(!serve_uid_valid("1..2"));
    CHECK(!serve_uid_valid(".1.2"));
    CHECK(!serve_uid_valid("1.2."));
    CHECK(!serve_uid_valid("1.02"));
    CHECK(!serve_uid_valid("1.2.abc"));
    CHECK(!serve_uid_valid("../../etc/passwd"));
    CHECK(!serve_uid_valid("1.2/3"));
    CHECK(!serve_uid_valid("1.2 3"));
    char u[80];
    memset(u, '1', 64);
    u[64] = '\0';
    CHECK(serve_uid_valid(u));
    u[64] = '1';
    u[65] = '\0';
    CHECK(!serve_uid_valid(u));
}

static void test_hosts(void) {
    serve_config c;
    serve_config_defaults(&c);
    CHECK(serve_host_allowed(&c, "127.0.0.1"));
    CHECK(!serve_host_allowed(&c, "127.0.0.2"));
    snprintf(c.allowed_hosts[0], sizeof c.allowed_hosts[0], "10.20.0.0/16");
    snprintf(c.allowed_hosts[1], sizeof c.allowed_hosts[1], "192.168.1.7");
    c.n_allowed_hosts = 2;
    CHECK(serve_host_allowed(&c, "10.20.255.1"));
    CHECK(!serve_host_allowed(&c, "10.21.0.1"));
    CHECK(serve_host_allowed(&c, "192.168.1.7"));
    CHECK(!serve_host_allowed(&c, "192.168.1.8"));
    CHECK(!serve_host_allowed(&c, "not-an-address"));
    CHECK(!serve_host_allowed(&c, ""));
    CHECK(serve_is_loopback("127.0.0.1") && serve_is_loopback("127.9.9.9"));
    CHECK(!serve_is_loopback("0.0.0.0") && !serve_is_loopback("10.0.0.1") && !serve_is_loopback("localhost"));
}

static int load(const char *text, serve_config *c, fa_error *err) {
    char path[] = "/tmp/test_serve_rules_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    serve_config_defaults(c);
    int st = serve_config_load(c, path, err);
    unlink(path);
    return st;
}

static void test_config(void) {
    serve_config c;
    fa_error err = {0};
    CHECK(load("model = /m\nallowed_aes = A1, B2\nallowed_hosts = 127.0.0.0/8 10.0.0.1\nport = 4242\n"
               "max_object_mb = 1.5\ndestination = 127.0.0.1:104\nmax_wait_minutes = 2 # comment\n",
               &c, &err) == FA_OK);
    CHECK(c.n_allowed_aes == 2 && !strcmp(c.allowed_aes[1], "B2"));
    CHECK(c.n_allowed_hosts == 2 && c.port == 4242);
    CHECK(c.max_object_bytes == (long long)(1.5 * 1048576));
    CHECK(!strcmp(c.dest_host, "127.0.0.1") && c.dest_port == 104);
    CHECK_CLOSE(c.max_wait_s, 120.0, 1e-9, 0);
    CHECK(load("model = /m\nallowed_aes = A\nbogus = 1\n", &c, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, ":3:") && strstr(err.msg, "bogus"));
    CHECK(load("model = /m\nallowed_aes = A\nport = 70000\n", &c, &err) == FA_ERR_ARG);
    CHECK(load("model = /m\nallowed_aes = WAY-TOO-LONG-AE-TITLE\n", &c, &err) == FA_ERR_ARG);
    CHECK(load("model = /m\nallowed_aes = A\nallowed_hosts = 300.1.1.1\n", &c, &err) == FA_ERR_ARG);
    CHECK(load("model = /m\n", &c, &err) == FA_ERR_ARG); /* no allowed AE */
    CHECK(load("allowed_aes = A\n", &c, &err) == FA_ERR_ARG); /* no model */
    /* HTTP off loopback needs a long token */
    CHECK(load("model = /m\nallowed_aes = A\nhttp_port = 8080\nhttp_bind = 0.0.0.0\n", &c, &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "http_token") != NULL);
    CHECK(load("model = /m\nallowed_aes = A\nhttp_port = 8080\nhttp_bind = 0.0.0.0\nhttp_token = 0123456789abcdef\n", &c,
               &err) == FA_OK);
}

/* The rule stated pairwise: a must not come after b. */
static int before(const serve_study *a, const serve_study *b, double now, double mw) {
    int ta = serve_worklist_tier(a, now, mw), tb = serve_worklist_tier(b, now, mw);
    if (ta != tb) return ta < tb;
    if (ta == 1 && a->score != b->score) return a->score > b->score;
    if (a->first_received != b->first_received) return a->first_received < b->first_received;
    return strcmp(a->study_uid, b->study_uid) <= 0;
}

static void test_order(void) {
    enum { N = 200 };
    serve_study v[N];
    srand(7);
    double now = 10000, mw = 600;
    for (int i = 0; i < N; i++) {
        memset(&v[i], 0, sizeof v[i]);
        snprintf(v[i].study_uid, sizeof v[i].study_uid, "1.2.%d", i);
        v[i].first_received = now - (rand() % 1200);
        int k = rand() % 3;
        v[i].decision = k == 0 ? 1 : k == 1 ? 0 : -1;
        v[i].score = v[i].decision < 0 ? NAN : (rand() % 1000) / 1000.0;
    }
    serve_worklist_order(v, N, now, mw);
    for (int i = 0; i + 1 < N; i++) CHECK_MSG(before(&v[i], &v[i + 1], now, mw), "position %d", i);
    /* escalation: an old negative study beats a fresh high-score positive */
    serve_study two[2];
    memset(two, 0, sizeof two);
    snprintf(two[0].study_uid, sizeof two[0].study_uid, "1.9");
    two[0].first_received = now - 10;
    two[0].decision = 1;
    two[0].score = 0.99;
    snprintf(two[1].study_uid, sizeof two[1].study_uid, "1.8");
    two[1].first_received = now - 601;
    two[1].decision = 0;
    two[1].score = 0.01;
    serve_worklist_order(two, 2, now, mw);
    CHECK(!strcmp(two[0].study_uid, "1.8"));
    /* before escalation the positive leads */
    serve_worklist_order(two, 2, now - 300, mw);
    CHECK(!strcmp(two[0].study_uid, "1.9"));
}

int main(void) {
    test_uids();
    test_hosts();
    test_config();
    test_order();
    return fa_test_finish("test_serve_rules");
}
