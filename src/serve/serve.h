/* serve.h - the triage node behind `freeair serve --config FILE` (issue 11):
 * a DICOM C-STORE/C-ECHO SCP that makes every acknowledged instance durable,
 * a worker pool that scores it with a training checkpoint and Grad-CAM, an
 * outgoing queue that C-STOREs a Structured Report and a heatmap secondary
 * capture to the PACS with retries, and an HTTP worklist ordered by
 * suspicion with a maximum-wait escalation. docs/serve.md is the manual.
 *
 * Modules (one prefix each): serve_conf (configuration), serve_db (SQLite
 * state: instances, outgoing queue), serve_node (SCP hooks, workers, sender),
 * serve_http (worklist API and page).
 */
#ifndef FA_SERVE_H
#define FA_SERVE_H

#include <stddef.h>

#include "core/fa_status.h"

#define SERVE_LIST_MAX 32
#define SERVE_STR 512

typedef struct serve_config {
    /* DICOM listener */
    char ae_title[17];
    char bind_addr[64];
    int port;
    char allowed_aes[SERVE_LIST_MAX][17]; /* "*" allows any */
    int n_allowed_aes;
    char allowed_hosts[SERVE_LIST_MAX][64]; /* a.b.c.d or a.b.c.d/len */
    int n_allowed_hosts;
    int max_associations;
    unsigned max_pdu;
    long long max_object_bytes;
    int acse_timeout_s, dimse_timeout_s;
    int accept_secondary_capture;
    /* TLS with required client certificates: all three PEM paths, or none */
    char tls_key[SERVE_STR], tls_cert[SERVE_STR], tls_ca[SERVE_STR];
    /* state */
    char data_dir[SERVE_STR];
    /* scoring */
    char model[SERVE_STR];
    double threshold;     /* used only when the checkpoint holds none; NaN = none */
    int workers;
    int threads_per_worker;
    int cam;              /* compute Grad-CAM and the secondary capture */
    int heatmap_max_side;
    /* results to PACS */
    char dest_host[64];   /* "" = keep results locally only */
    int dest_port;
    char dest_ae[17];
    int send_sr, send_sc;
    int senders;
    double retry_initial_s, retry_max_s;
    int retry_max_attempts; /* 0 = forever */
    /* worklist */
    char http_bind[64];
    int http_port;        /* 0 = no HTTP */
    char http_token[128];
    double max_wait_s;    /* escalation: studies waiting longer come first */
    /* logging */
    int quiet;
} serve_config;

/* Defaults (documented in docs/serve.md and configs/serve.conf). */
void serve_config_defaults(serve_config *c);

/* Read "key = value" lines ('#' comments) over the current values. Unknown
 * keys, bad values and unsafe combinations (HTTP bound off loopback without
 * a token) are errors naming the file and line. */
fa_status serve_config_load(serve_config *c, const char *path, fa_error *err);

/* 1 when the numeric IPv4 address lies in 127.0.0.0/8. */
int serve_is_loopback(const char *addr);

/* 1 when addr (numeric IPv4) matches one of the allow-list entries
 * ("a.b.c.d" or "a.b.c.d/len"). */
int serve_host_allowed(const serve_config *c, const char *addr);

/* 1 when the string is a syntactically valid UID: 1..64 characters of digits
 * and dots, no empty component, no leading zero in a multi-digit component. */
int serve_uid_valid(const char *uid);

/* Run the node until *stop is set (signal handler) or a fatal error. Opens
 * data_dir (created) with serve.db, store/, spool/, results/, heatmaps/ and
 * serve.jsonl; scores what a previous run left unscored and resends what it
 * left unsent. */
fa_status serve_run(const serve_config *c, volatile int *stop, fa_error *err);

#endif
