/* serve_http.c - worklist HTTP API and page on libmicrohttpd, and the
 * worklist ordering rule (serve_http.h). Everything shown comes from peers
 * (patient IDs, UIDs): it is escaped for HTML and JSON, and a UID in a URL
 * is validated before it becomes part of a file name. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fa_progress.h"
#include "serve/serve_http.h"

struct serve_http {
    struct MHD_Daemon *d;
    const serve_config *c;
    serve_db *db;
    const char *heatmap_dir;
};

int serve_worklist_tier(const serve_study *s, double now, double max_wait_s) {
    if (now - s->first_received >= max_wait_s) return 0;
    if (s->decision == 1) return 1;
    return 2;
}

typedef struct order_ctx {
    double now, max_wait;
} order_ctx;

static int cmp_study(const void *pa, const void *pb, void *arg) {
    const serve_study *a = pa, *b = pb;
    const order_ctx *o = arg;
    int ta = serve_worklist_tier(a, o->now, o->max_wait), tb = serve_worklist_tier(b, o->now, o->max_wait);
    if (ta != tb) return ta < tb ? -1 : 1;
    if (ta == 1) {
        double sa = isnan(a->score) ? -1 : a->score, sb = isnan(b->score) ? -1 : b->score;
        if (sa != sb) return sa > sb ? -1 : 1;
    }
    if (a->first_received != b->first_received) return a->first_received < b->first_received ? -1 : 1;
    return strcmp(a->study_uid, b->study_uid);
}

void serve_worklist_order(serve_study *v, int n, double now, double max_wait_s) {
    order_ctx o = {now, max_wait_s};
    qsort_r(v, (size_t)n, sizeof *v, cmp_study, &o);
}

static const char *const k_tier_names[] = {"overdue", "suspected", "routine"};

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned code, const char *type, char *buf, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned code, const char *text) {
    char *b = strdup(text);
    if (!b) return MHD_NO;
    return send_buf(conn, code, "text/plain; charset=utf-8", b, strlen(b));
}

/* Constant-time comparison so the token cannot be guessed byte by byte. */
static int token_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la && i < lb; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static int authorised(struct serve_http *h, struct MHD_Connection *conn) {
    if (!h->c->http_token[0]) return 1;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (auth && !strncmp(auth, "Bearer ", 7) && token_equal(auth + 7, h->c->http_token)) return 1;
    const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
    return q && token_equal(q, h->c->http_token);
}

static void fmt_wait(char *buf, size_t cap, double s) {
    long t = (long)s;
    if (t < 0) t = 0;
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

static enum MHD_Result page_worklist(struct serve_http *h, struct MHD_Connection *conn, int json) {
    serve_study *v = NULL;
    int n = 0;
    fa_error err = {0};
    if (serve_db_studies(h->db, &v, &n, &err) != FA_OK) return send_text(conn, 500, err.msg);
    double now = serve_db_now();
    serve_worklist_order(v, n, now, h->c->max_wait_s);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        free(v);
        return MHD_NO;
    }
    if (json) {
        fprintf(f, "{\"schema\":\"freeair.serve.worklist/1\",\"generated_unix\":%.3f,\"max_wait_s\":%.1f,"
                   "\"studies\":[",
                now, h->c->max_wait_s);
        for (int i = 0; i < n; i++) {
            serve_study *s = &v[i];
            fprintf(f, "%s{\"rank\":%d,\"study_uid\":", i ? "," : "", i + 1);
            fa_json_write_string(f, s->study_uid);
            fputs(",\"patient_id\":", f);
            fa_json_write_string(f, s->patient_id);
            fprintf(f, ",\"tier\":\"%s\",\"images\":%d,\"scored\":%d,", k_tier_names[serve_worklist_tier(s, now, h->c->max_wait_s)],
                    s->n_images, s->n_scored);
            if (isnan(s->score)) fputs("\"score\":null,", f);
            else fprintf(f, "\"score\":%.6f,", s->score);
            fprintf(f, "\"decision\":%d,\"waiting_s\":%.1f,\"received_unix\":%.3f,\"reported\":%s,\"heatmap\":",
                    s->decision, now - s->first_received, s->first_received, s->reported ? "true" : "false");
            if (s->has_heatmap && s->top_sop[0]) fprintf(f, "\"/heatmap/%s.png\"}", s->top_sop);
            else fputs("null}", f);
        }
        fputs("]}\n", f);
        fclose(f);
        free(v);
        return send_buf(conn, 200, "application/json", buf, len);
    }
    const char *tok = h->c->http_token[0] ? MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token") : NULL;
    fputs("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=10>"
          "<title>freeair triage worklist</title><style>"
          "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
          "table{border-collapse:collapse;width:100%}th,td{padding:6px 10px;border-bottom:1px solid #ddd;"
          "text-align:left;vertical-align:middle}th{background:#f3f3f3}"
          ".overdue{background:#fff3cd}.suspected{background:#fde2e1}.pos{color:#b00020;font-weight:bold}"
          "img{height:72px;border:1px solid #ccc}.small{color:#666;font-size:12px}</style></head><body>",
          f);
    fprintf(f, "<h1>Triage worklist: suspected pneumoperitoneum first</h1><p class=small>%d studies. Order: overdue"
               " (waiting &ge; %g min) oldest first; then suspected by score; then the rest oldest first.</p>",
            n, h->c->max_wait_s / 60.0);
    fputs("<table><thead><tr><th>#</th><th>Priority</th><th>Patient</th><th>Study</th><th>Score</th>"
          "<th>Decision</th><th>Waiting</th><th>Images</th><th>Heatmap</th></tr></thead><tbody>",
          f);
    for (int i = 0; i < n; i++) {
        serve_study *s = &v[i];
        int tier = serve_worklist_tier(s, now, h->c->max_wait_s);
        char wait[32];
        fmt_wait(wait, sizeof wait, now - s->first_received);
        fprintf(f, "<tr class=%s><td>%d</td><td>%s</td><td>", k_tier_names[tier], i + 1, k_tier_names[tier]);
        html_escape(f, s->patient_id);
        fputs("</td><td class=small>", f);
        html_escape(f, s->study_uid);
        if (isnan(s->score)) fputs("</td><td>pending</td>", f);
        else fprintf(f, "</td><td>%.3f</td>", s->score);
        fprintf(f, "<td%s>%s</td><td>%s</td><td>%d/%d</td><td>", s->decision == 1 ? " class=pos" : "",
                s->decision == 1 ? "SUSPECTED" : s->decision == 0 ? "not suspected" : "-", wait, s->n_scored,
                s->n_images);
        if (s->has_heatmap && s->top_sop[0]) {
            fprintf(f, "<img alt=heatmap src=\"/heatmap/%s.png", s->top_sop);
            if (tok) {
                fputs("?token=", f);
                html_escape(f, tok);
            }
            fputs("\">", f);
        }
        fputs("</td></tr>", f);
    }
    fputs("</tbody></table></body></html>\n", f);
    fclose(f);
    free(v);
    return send_buf(conn, 200, "text/html; charset=utf-8", buf, len);
}

static enum MHD_Result page_health(struct serve_http *h, struct MHD_Connection *conn) {
    serve_counts c;
    fa_error err = {0};
    if (serve_db_counts(h->db, &c, &err) != FA_OK) return send_text(conn, 500, err.msg);
    char *b = NULL;
    if (asprintf(&b,
                 "{\"ok\":true,\"instances\":{\"received\":%lld,\"scoring\":%lld,\"scored\":%lld,\"error\":%lld},"
                 "\"outbox\":{\"pending\":%lld,\"sent\":%lld,\"failed\":%lld}}\n",
                 c.received, c.scoring, c.scored, c.error, c.pending, c.sent, c.failed) < 0)
        return MHD_NO;
    return send_buf(conn, 200, "application/json", b, strlen(b));
}

static enum MHD_Result page_heatmap(struct serve_http *h, struct MHD_Connection *conn, const char *name) {
    char uid[80];
    size_t l = strlen(name);
    if (l < 5 || l - 4 >= sizeof uid || strcmp(name + l - 4, ".png")) return send_text(conn, 404, "not found\n");
    memcpy(uid, name, l - 4);
    uid[l - 4] = '\0';
    if (!serve_uid_valid(uid)) return send_text(conn, 404, "not found\n");
    char path[SERVE_STR + 100];
    snprintf(path, sizeof path, "%s/%s.png", h->heatmap_dir, uid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) return send_text(conn, 404, "not found\n");
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return send_text(conn, 500, "cannot read\n");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "image/png");
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    struct serve_http *h = cls;
    (void)version;
    (void)upload_data;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) return send_text(conn, 405, "method not allowed\n");
    if (*upload_data_size) return send_text(conn, 400, "no body expected\n");
    (void)con_cls;
    if (!authorised(h, conn)) {
        char *b = strdup("unauthorised: send Authorization: Bearer <token>\n");
        if (!b) return MHD_NO;
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(b), b, MHD_RESPMEM_MUST_FREE);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
        enum MHD_Result ret = MHD_queue_response(conn, 401, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return page_worklist(h, conn, 0);
    if (!strcmp(url, "/api/worklist")) return page_worklist(h, conn, 1);
    if (!strcmp(url, "/api/health")) return page_health(h, conn);
    if (!strncmp(url, "/heatmap/", 9)) return page_heatmap(h, conn, url + 9);
    return send_text(conn, 404, "not found\n");
}

fa_status serve_http_start(serve_http **out, const serve_config *c, serve_db *db, const char *heatmap_dir,
                           fa_error *err) {
    *out = NULL;
    serve_http *h = calloc(1, sizeof *h);
    if (!h) return fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    h->c = c;
    h->db = db;
    h->heatmap_dir = heatmap_dir;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->http_port);
    if (inet_pton(AF_INET, c->http_bind, &sa.sin_addr) != 1) {
        free(h);
        return fa_error_set(err, FA_ERR_ARG, "http_bind '%s' is not a numeric IPv4 address", c->http_bind);
    }
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)c->http_port, NULL, NULL,
                            handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)15, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return fa_error_set(err, FA_ERR_IO, "%s:%d: cannot start the HTTP server (port in use?)", c->http_bind,
                            c->http_port);
    }
    *out = h;
    return FA_OK;
}

void serve_http_stop(serve_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
