/* serve_conf.c - configuration of the triage node: defaults, the
 * "key = value" file, and the small validators (allow-lists, UIDs) that the
 * node applies to everything a peer sends. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve/serve.h"

void serve_config_defaults(serve_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->ae_title, sizeof c->ae_title, "FREEAIR");
    snprintf(c->bind_addr, sizeof c->bind_addr, "127.0.0.1");
    c->port = 11112;
    snprintf(c->allowed_hosts[0], sizeof c->allowed_hosts[0], "127.0.0.1");
    c->n_allowed_hosts = 1;
    c->max_associations = 8;
    c->max_pdu = 65536;
    c->max_object_bytes = 64LL << 20;
    c->acse_timeout_s = 30;
    c->dimse_timeout_s = 60;
    snprintf(c->data_dir, sizeof c->data_dir, "freeair-serve");
    c->threshold = NAN;
    c->workers = 1;
    c->threads_per_worker = 1;
    c->cam = 1;
    c->heatmap_max_side = 512;
    c->dest_port = 104;
    snprintf(c->dest_ae, sizeof c->dest_ae, "PACS");
    c->send_sr = 1;
    c->send_sc = 1;
    c->senders = 1;
    c->retry_initial_s = 2;
    c->retry_max_s = 300;
    snprintf(c->http_bind, sizeof c->http_bind, "127.0.0.1");
    c->http_port = 0;
    c->max_wait_s = 30 * 60;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static int parse_int(const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return 0;
    *out = x;
    return 1;
}

static int parse_double(const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) return 0;
    *out = x;
    return 1;
}

static int parse_bool(const char *v, int *out) {
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) *out = 1;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) *out = 0;
    else return 0;
    return 1;
}

/* AE titles: 1..16 printable ASCII characters, no backslash. */
static int ae_valid(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 16) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\') return 0;
    return 1;
}

static int host_entry_valid(const char *s) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        long long len;
        if (!parse_int(slash + 1, 0, 32, &len)) return 0;
    }
    struct in_addr a;
    return inet_pton(AF_INET, buf, &a) == 1;
}

int serve_is_loopback(const char *addr) {
    struct in_addr a;
    if (inet_pton(AF_INET, addr, &a) != 1) return 0;
    return (ntohl(a.s_addr) >> 24) == 127;
}

int serve_host_allowed(const serve_config *c, const char *addr) {
    struct in_addr a;
    if (inet_pton(AF_INET, addr, &a) != 1) return 0;
    uint32_t ip = ntohl(a.s_addr);
    for (int i = 0; i < c->n_allowed_hosts; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", c->allowed_hosts[i]);
        int len = 32;
        char *slash = strchr(buf, '/');
        if (slash) {
            *slash = '\0';
            len = atoi(slash + 1);
        }
        struct in_addr n;
        if (inet_pton(AF_INET, buf, &n) != 1) continue;
        uint32_t mask = len == 0 ? 0 : 0xffffffffu << (32 - len);
        if ((ip & mask) == (ntohl(n.s_addr) & mask)) return 1;
    }
    return 0;
}

int serve_uid_valid(const char *uid) {
    size_t n = strlen(uid);
    if (n < 1 || n > 64) return 0;
    size_t comp = 0;
    char first = 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = uid[i];
        if (ch == '.' || ch == '\0') {
            if (comp == 0) return 0;
            if (comp > 1 && first == '0') return 0;
            comp = 0;
            continue;
        }
        if (ch < '0' || ch > '9') return 0;
        if (comp == 0) first = ch;
        comp++;
    }
    return 1;
}

/* Split a comma/space separated list into fixed slots. */
static int parse_list(char *v, char (*slots)[17], char (*hslots)[64], int *n) {
    *n = 0;
    for (char *tok = strtok(v, ", \t"); tok; tok = strtok(NULL, ", \t")) {
        if (*n >= SERVE_LIST_MAX) return 0;
        if (slots) {
            if (strcmp(tok, "*") && !ae_valid(tok)) return 0;
            snprintf(slots[*n], 17, "%s", tok);
        } else {
            if (!host_entry_valid(tok)) return 0;
            snprintf(hslots[*n], 64, "%s", tok);
        }
        (*n)++;
    }
    return 1;
}

fa_status serve_config_load(serve_config *c, const char *path, fa_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    char line[2048];
    int ln = 0;
    fa_status st = FA_OK;
    while (st == FA_OK && fgets(line, sizeof line, f)) {
        ln++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s:%d: expected key = value", path, ln);
            break;
        }
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        long long i;
        double d;
        int ok = 1;
#define STR(key, dst)                                                                                              \
    else if (!strcmp(k, key)) ok = strlen(v) < sizeof(dst) && (snprintf(dst, sizeof(dst), "%s", v), 1);
#define INT(key, dst, lo, hi) else if (!strcmp(k, key)) ok = parse_int(v, lo, hi, &i) && ((dst) = i, 1);
#define DBL(key, dst, lo, hi) else if (!strcmp(k, key)) ok = parse_double(v, lo, hi, &d) && ((dst) = d, 1);
#define BOOL(key, dst) else if (!strcmp(k, key)) ok = parse_bool(v, &(dst));
        if (!strcmp(k, "ae_title")) ok = ae_valid(v) && (snprintf(c->ae_title, sizeof c->ae_title, "%s", v), 1);
        STR("bind", c->bind_addr)
        INT("port", c->port, 1, 65535)
        else if (!strcmp(k, "allowed_aes")) ok = parse_list(v, c->allowed_aes, NULL, &c->n_allowed_aes);
        else if (!strcmp(k, "allowed_hosts")) ok = parse_list(v, NULL, c->allowed_hosts, &c->n_allowed_hosts);
        INT("max_associations", c->max_associations, 1, 1000)
        INT("max_pdu", c->max_pdu, 4096, 131072)
        else if (!strcmp(k, "max_object_mb")) ok = parse_double(v, 0.001, 4096, &d) &&
                                                   (c->max_object_bytes = (long long)(d * 1048576.0), 1);
        INT("acse_timeout", c->acse_timeout_s, 1, 3600)
        INT("dimse_timeout", c->dimse_timeout_s, 1, 3600)
        BOOL("accept_secondary_capture", c->accept_secondary_capture)
        STR("tls_key", c->tls_key)
        STR("tls_cert", c->tls_cert)
        STR("tls_ca", c->tls_ca)
        STR("data_dir", c->data_dir)
        STR("model", c->model)
        else if (!strcmp(k, "threshold")) ok = (!strcasecmp(v, "none") && (c->threshold = NAN, 1)) ||
                                               (parse_double(v, 0, 1, &d) && (c->threshold = d, 1));
        INT("workers", c->workers, 1, 64)
        INT("threads_per_worker", c->threads_per_worker, 1, 256)
        BOOL("cam", c->cam)
        INT("heatmap_max_side", c->heatmap_max_side, 16, 4096)
        else if (!strcmp(k, "destination")) {
            /* host:port; "" or "none" = no PACS */
            if (!*v || !strcasecmp(v, "none")) c->dest_host[0] = '\0';
            else {
                char *colon = strrchr(v, ':');
                ok = colon && colon != v && (size_t)(colon - v) < sizeof c->dest_host;
                if (ok) {
                    *colon = '\0';
                    ok = parse_int(colon + 1, 1, 65535, &i);
                    if (ok) {
                        snprintf(c->dest_host, sizeof c->dest_host, "%s", v);
                        c->dest_port = (int)i;
                    }
                }
            }
        }
        else if (!strcmp(k, "destination_ae")) ok = ae_valid(v) && (snprintf(c->dest_ae, sizeof c->dest_ae, "%s", v), 1);
        BOOL("send_sr", c->send_sr)
        BOOL("send_sc", c->send_sc)
        INT("senders", c->senders, 1, 16)
        DBL("retry_initial", c->retry_initial_s, 0.01, 86400)
        DBL("retry_max", c->retry_max_s, 0.01, 86400)
        INT("retry_max_attempts", c->retry_max_attempts, 0, 1000000)
        STR("http_bind", c->http_bind)
        INT("http_port", c->http_port, 0, 65535)
        STR("http_token", c->http_token)
        else if (!strcmp(k, "max_wait_minutes")) ok = parse_double(v, 0, 7 * 24 * 60, &d) && (c->max_wait_s = d * 60, 1);
        BOOL("quiet", c->quiet)
        else {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s:%d: unknown key '%s'", path, ln, k);
            break;
        }
#undef STR
#undef INT
#undef DBL
#undef BOOL
        if (!ok) st = fa_error_set(err, FA_ERR_ARG, "%s:%d: bad value for %s: '%s'", path, ln, k, v);
    }
    fclose(f);
    if (st != FA_OK) return st;
    struct in_addr a;
    if (inet_pton(AF_INET, c->bind_addr, &a) != 1)
        return fa_error_set(err, FA_ERR_ARG, "%s: bind '%s' is not a numeric IPv4 address", path, c->bind_addr);
    if (c->http_port && inet_pton(AF_INET, c->http_bind, &a) != 1)
        return fa_error_set(err, FA_ERR_ARG, "%s: http_bind '%s' is not a numeric IPv4 address", path, c->http_bind);
    if (c->http_port && !serve_is_loopback(c->http_bind) && strlen(c->http_token) < 16)
        return fa_error_set(err, FA_ERR_ARG,
                            "%s: http_bind %s is not loopback: set http_token (16 characters or more)", path,
                            c->http_bind);
    if (c->n_allowed_aes == 0)
        return fa_error_set(err, FA_ERR_ARG, "%s: allowed_aes is empty (list the modalities, or '*')", path);
    int n_tls = !!c->tls_key[0] + !!c->tls_cert[0] + !!c->tls_ca[0];
    if (n_tls != 0 && n_tls != 3)
        return fa_error_set(err, FA_ERR_ARG, "%s: TLS needs tls_key, tls_cert and tls_ca together", path);
    if (strlen(c->data_dir) > 300) return fa_error_set(err, FA_ERR_ARG, "%s: data_dir longer than 300 characters", path);
    if (!c->model[0]) return fa_error_set(err, FA_ERR_ARG, "%s: model (checkpoint) is required", path);
    if (c->retry_max_s < c->retry_initial_s) c->retry_max_s = c->retry_initial_s;
    return FA_OK;
}
