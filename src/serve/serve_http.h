/* serve_http.h - the worklist over HTTP (libmicrohttpd): GET /api/worklist
 * (JSON), GET / (HTML page), GET /heatmap/<SOP UID>.png, GET /api/health.
 * Bearer-token authentication whenever a token is configured (required off
 * loopback). The ordering rule lives here as a pure function.
 */
#ifndef FA_SERVE_HTTP_H
#define FA_SERVE_HTTP_H

#include "serve/serve.h"
#include "serve/serve_db.h"

/* Priority order of the worklist, in place (docs/serve.md):
 *   tier 0 "overdue": waiting >= max_wait_s, oldest first (escalation: no
 *          study waits longer than max_wait_s behind newer ones);
 *   tier 1 "suspected": decision 1, highest score first, then oldest;
 *   tier 2 "routine": everything else (not suspected, not yet scored),
 *          oldest first (first come, first read).
 * Ties end on the study UID, so the order is total and stable. */
void serve_worklist_order(serve_study *v, int n, double now, double max_wait_s);
/* Tier of one study as above (0, 1, 2). */
int serve_worklist_tier(const serve_study *s, double now, double max_wait_s);

typedef struct serve_http serve_http;

/* Start the HTTP daemon on c->http_bind:c->http_port with its own threads.
 * db and heatmap_dir are borrowed and must outlive it. */
fa_status serve_http_start(serve_http **out, const serve_config *c, serve_db *db, const char *heatmap_dir,
                           fa_error *err);
void serve_http_stop(serve_http *h);

#endif
