/* serve_node.c - the triage node: the SCP's hooks (allow-lists, chest gate,
 * the durable-acknowledge sequence), the scoring workers and the senders of
 * results to the PACS, wired together by serve_run.
 *
 * Durable acknowledge (the C-STORE-RSP is sent only after on_store returns):
 *   DCMTK writes spool/N.part -> fsync it -> read and check its header ->
 *   rename to store/<SOP UID>.dcm -> fsync store/ -> INSERT + COMMIT (WAL,
 *   synchronous=FULL) -> status 0x0000.
 * A crash anywhere before the COMMIT leaves no row, the peer got no success,
 * and its resend redoes everything (the rename overwrites). A resend of a
 * recorded instance is acknowledged without touching anything.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fa_progress.h"
#include "data/dicom.h"
#include "data/image.h"
#include "data/manifest.h"
#include "data/resize.h"
#include "eval/cam.h"
#include "core/digest.h"
#include "serve/serve.h"
#include "serve/serve_db.h"
#include "serve/serve_http.h"
#include "train/tpredict.h"

/* DIMSE statuses this node answers (docs/serve.md). */
#define SERVE_ST_SUCCESS 0x0000u
#define SERVE_ST_OUT_OF_RESOURCES 0xA700u /* disk/database failure, object over max_object_mb */
#define SERVE_ST_MISMATCH 0xA900u         /* dataset does not match the command's SOP class/instance */
#define SERVE_ST_CANNOT_UNDERSTAND 0xC000u /* unreadable / malformed object, invalid UID */
#define SERVE_ST_NOT_CHEST 0xC010u        /* refused by the chest gate (not a frontal chest radiograph) */
#define SERVE_ST_CLASS_REFUSED 0x0122u    /* SOP class not supported */

typedef struct serve_node {
    const serve_config *c;
    serve_db *db;
    char store_dir[SERVE_STR + 16], spool_dir[SERVE_STR + 16], results_dir[SERVE_STR + 16],
        heatmap_dir[SERVE_STR + 16];
    const char *sop_classes[4];
    int n_sop_classes;
    dicom_net_scp_opts scp_opts;
    /* log */
    pthread_mutex_t log_mu;
    fa_jsonl log;
    /* store serialisation: duplicate check + rename + commit of one UID at a time */
    pthread_mutex_t store_mu;
    /* wake-ups */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, send_cv;
    volatile int stop;
    volatile int *ext_stop; /* the caller's flag (signal handler) */
    /* model identity (from the checkpoint, read once) */
    char model_name[256], model_version[128];
    int fatal;
    fa_error fatal_err;
} serve_node;

static void node_log(serve_node *n, const char *event, const char *calling_ae, const char *host, const char *sop,
                     const char *detail) {
    pthread_mutex_lock(&n->log_mu);
    fa_jsonl_begin(&n->log, event);
    if (calling_ae) fa_jsonl_str(&n->log, "calling_ae", calling_ae);
    if (host) fa_jsonl_str(&n->log, "host", host);
    if (sop) fa_jsonl_str(&n->log, "sop_uid", sop);
    if (detail && *detail) fa_jsonl_str(&n->log, "detail", detail);
    fa_jsonl_end(&n->log);
    /* stderr gets events a person should see; a failed stop is reported
     * once by the command's own error line. */
    int failed_stop = !strcmp(event, "stopped") && detail && *detail;
    if (!n->c->quiet && !failed_stop && strcmp(event, "stored") && strcmp(event, "scored") && strcmp(event, "sent") &&
        strcmp(event, "duplicate"))
        fprintf(stderr, "freeair serve: %s%s%s%s%s\n", event, sop ? " " : "", sop ? sop : "",
                detail && *detail ? ": " : "", detail ? detail : "");
    pthread_mutex_unlock(&n->log_mu);
}

static int fsync_file(const char *path, int dir) {
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* SCP hooks                                                                 */

static void scp_log(void *user, const char *event, const dicom_net_peer *p, const char *detail) {
    node_log(user, event, p ? p->calling_ae : NULL, p ? p->host : NULL, NULL, detail);
}

static dicom_net_verdict scp_accept(void *user, const dicom_net_peer *p) {
    serve_node *n = user;
    if (!serve_host_allowed(n->c, p->host)) return DICOM_NET_REJECT_HOST;
    if (strcmp(p->called_ae, n->c->ae_title)) return DICOM_NET_REJECT_CALLED_AE;
    for (int i = 0; i < n->c->n_allowed_aes; i++)
        if (!strcmp(n->c->allowed_aes[i], "*") || !strcmp(n->c->allowed_aes[i], p->calling_ae))
            return DICOM_NET_ACCEPT;
    return DICOM_NET_REJECT_CALLING_AE;
}

static unsigned refuse(serve_node *n, const dicom_net_object *o, unsigned status, char *comment, size_t cap,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(comment, cap, fmt, ap);
    va_end(ap);
    char detail[400];
    snprintf(detail, sizeof detail, "status 0x%04X: %s", status, comment);
    node_log(n, "store_refused", o->peer->calling_ae, o->peer->host,
             serve_uid_valid(o->sop_instance_uid) ? o->sop_instance_uid : NULL, detail);
    return status;
}

static unsigned scp_store(void *user, const dicom_net_object *o, char *comment, size_t cap) {
    serve_node *n = user;
    if (!serve_uid_valid(o->sop_instance_uid))
        return refuse(n, o, SERVE_ST_CANNOT_UNDERSTAND, comment, cap, "invalid SOP Instance UID");
    int class_ok = 0;
    for (int i = 0; i < n->n_sop_classes; i++) class_ok |= !strcmp(o->sop_class_uid, n->sop_classes[i]);
    if (!class_ok) return refuse(n, o, SERVE_ST_CLASS_REFUSED, comment, cap, "SOP class %.64s not accepted", o->sop_class_uid);
    if (fsync_file(o->path, 0) != 0)
        return refuse(n, o, SERVE_ST_OUT_OF_RESOURCES, comment, cap, "cannot fsync: %s", strerror(errno));
    dicom_header h;
    fa_error err = {0};
    if (dicom_read_header(o->path, &h, &err) != FA_OK)
        return refuse(n, o, SERVE_ST_CANNOT_UNDERSTAND, comment, cap, "malformed object: %s", err.msg);
    if (strcmp(h.sop_uid, o->sop_instance_uid) || strcmp(h.sop_class_uid, o->sop_class_uid))
        return refuse(n, o, SERVE_ST_MISMATCH, comment, cap, "dataset UIDs differ from the C-STORE command");
    if (!h.has_pixel_data) return refuse(n, o, SERVE_ST_CANNOT_UNDERSTAND, comment, cap, "no pixel data");
    if (!serve_uid_valid(h.study_uid))
        return refuse(n, o, SERVE_ST_CANNOT_UNDERSTAND, comment, cap, "invalid or missing Study Instance UID");
    /* The chest gate, on the header values (secondary captures carry no
     * modality of their own worth gating on: OT passes when configured). */
    char view[DICOM_STR];
    manifest_view(&h, view, sizeof view);
    const char *cells[MANIFEST_N_COLS];
    for (int i = 0; i < MANIFEST_N_COLS; i++) cells[i] = "";
    int is_sc = !strcmp(h.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
    cells[MANIFEST_COL_MODALITY] = is_sc ? "" : h.modality;
    cells[MANIFEST_COL_BODY_PART] = h.body_part;
    cells[MANIFEST_COL_VIEW] = view;
    cells[MANIFEST_COL_PRESENTATION_INTENT] = h.presentation_intent;
    char reason[512];
    if (manifest_gate(cells, reason, sizeof reason) > 0)
        return refuse(n, o, SERVE_ST_NOT_CHEST, comment, cap, "chest gate: %s", reason);

    serve_instance in;
    memset(&in, 0, sizeof in);
    snprintf(in.sop_uid, sizeof in.sop_uid, "%.64s", h.sop_uid);
    snprintf(in.sop_class, sizeof in.sop_class, "%.64s", h.sop_class_uid);
    snprintf(in.study_uid, sizeof in.study_uid, "%.64s", h.study_uid);
    snprintf(in.series_uid, sizeof in.series_uid, "%.64s", h.series_uid);
    snprintf(in.patient_id, sizeof in.patient_id, "%.64s", h.patient_id);
    snprintf(in.calling_ae, sizeof in.calling_ae, "%s", o->peer->calling_ae);
    snprintf(in.path, sizeof in.path, "%.400s/%.64s.dcm", n->store_dir, h.sop_uid);
    in.bytes = o->bytes;

    pthread_mutex_lock(&n->store_mu);
    int has = serve_db_has(n->db, in.sop_uid, &err);
    if (has < 0) {
        pthread_mutex_unlock(&n->store_mu);
        return refuse(n, o, SERVE_ST_OUT_OF_RESOURCES, comment, cap, "database: %s", err.msg);
    }
    if (has == 1) {
        pthread_mutex_unlock(&n->store_mu);
        node_log(n, "duplicate", o->peer->calling_ae, o->peer->host, in.sop_uid, "already stored; acknowledged");
        return SERVE_ST_SUCCESS;
    }
    if (rename(o->path, in.path) != 0 || fsync_file(n->store_dir, 1) != 0) {
        int e = errno;
        pthread_mutex_unlock(&n->store_mu);
        return refuse(n, o, SERVE_ST_OUT_OF_RESOURCES, comment, cap, "cannot store: %s", strerror(e));
    }
    in.received_at = serve_db_now();
    if (serve_db_insert(n->db, &in, &err) != FA_OK) {
        unlink(in.path);
        pthread_mutex_unlock(&n->store_mu);
        return refuse(n, o, SERVE_ST_OUT_OF_RESOURCES, comment, cap, "database: %s", err.msg);
    }
    pthread_mutex_unlock(&n->store_mu);
    char detail[64];
    snprintf(detail, sizeof detail, "%lld bytes", o->bytes);
    node_log(n, "stored", o->peer->calling_ae, o->peer->host, in.sop_uid, detail);
    pthread_mutex_lock(&n->mu);
    pthread_cond_signal(&n->work_cv);
    pthread_mutex_unlock(&n->mu);
    return SERVE_ST_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Scoring workers                                                           */

static void wait_cv(serve_node *n, pthread_cond_t *cv, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&n->mu);
    if (!n->stop) pthread_cond_timedwait(cv, &n->mu, &ts);
    pthread_mutex_unlock(&n->mu);
}

/* Heatmap overlay at preview size: the grey image box-filtered down and the
 * map resized to the same geometry. *rgb is allocated (free()). */
static fa_status make_overlay(const serve_config *c, const fa_image *im, const cam_result *res, uint8_t **rgb, int *ow,
                              int *oh, fa_error *err) {
    *rgb = NULL;
    cam_fit_dims(im->width, im->height, c->heatmap_max_side, ow, oh);
    fa_image small = {0};
    fa_status st = resize_image(im, &small, *ow, *oh, RESIZE_BOX, err);
    if (st != FA_OK) return st;
    float *map = fa_malloc_array((size_t)*ow * (size_t)*oh, sizeof *map);
    *rgb = fa_malloc_array((size_t)*ow * (size_t)*oh, 3);
    if (!map || !*rgb) {
        st = fa_error_set(err, FA_ERR_NOMEM, "heatmap: out of memory");
    } else {
        st = cam_resize_map(res->map, res->w, res->h, map, *ow, *oh, err);
        if (st == FA_OK) cam_overlay_rgb(small.pixels, map, *ow, *oh, CAM_COLORMAP_JET, 0.4f, *rgb);
    }
    free(map);
    image_free(&small);
    if (st != FA_OK) {
        free(*rgb);
        *rgb = NULL;
    }
    return st;
}

typedef struct worker_models {
    tpredict_model *tm;
    cam_model *cm;
} worker_models;

static fa_status score_one(serve_node *n, worker_models *wm, const serve_instance *in, fa_error *err) {
    const serve_config *c = n->c;
    double t0 = fa_now_seconds();
    serve_score sc;
    memset(&sc, 0, sizeof sc);
    fa_status st = tpredict_load(wm->tm, in->path, 0, err);
    double prob = NAN;
    if (st == FA_OK) st = tpredict_run(wm->tm, 1, &prob, err);
    if (st != FA_OK) return st;
    if (isnan(prob)) return fa_error_set(err, FA_ERR_NUMERIC, "%s: the model gave no finite score", in->path);
    const ckpt_info *info = tpredict_info(wm->tm);
    sc.score = prob;
    sc.threshold = !isnan(info->threshold) ? info->threshold : c->threshold;
    sc.decision = isnan(sc.threshold) ? -1 : prob >= sc.threshold;
    snprintf(sc.model, sizeof sc.model, "%s", n->model_name);

    dicom_net_result r;
    r.score = prob;
    r.decision = sc.decision;
    r.threshold = sc.threshold;
    r.threshold_rule = !isnan(info->threshold) ? info->threshold_rule : isnan(c->threshold) ? "" : "configured";
    r.model_name = n->model_name;
    r.model_version = n->model_version;
    r.device_ae = c->ae_title;

    char sr_path[SERVE_STR + 100], sc_path[SERVE_STR + 100];
    snprintf(sr_path, sizeof sr_path, "%s/%s.sr.dcm", n->results_dir, in->sop_uid);
    snprintf(sc_path, sizeof sc_path, "%s/%s.sc.dcm", n->results_dir, in->sop_uid);
    int have_sc = 0;
    if (wm->cm) {
        fa_image im = {0};
        char warn[256] = "";
        st = image_load(in->path, &im, warn, sizeof warn, err);
        cam_result res;
        memset(&res, 0, sizeof res);
        if (st == FA_OK) st = cam_model_explain(wm->cm, &im, CAM_METHOD_GRADCAM, &res, err);
        uint8_t *rgb = NULL;
        int ow = 0, oh = 0;
        if (st == FA_OK) st = make_overlay(c, &im, &res, &rgb, &ow, &oh, err);
        if (st == FA_OK) {
            char png[SERVE_STR + 100];
            snprintf(png, sizeof png, "%s/%s.png", n->heatmap_dir, in->sop_uid);
            st = cam_write_png_rgb(png, rgb, ow, oh, err);
            if (st == FA_OK) snprintf(sc.heatmap, sizeof sc.heatmap, "%s.png", in->sop_uid);
        }
        if (st == FA_OK && c->send_sc) {
            char uid[65];
            st = dicom_net_write_sc(in->path, &r, rgb, ow, oh, sc_path, uid, err);
            have_sc = st == FA_OK;
        }
        free(rgb);
        cam_result_free(&res);
        image_free(&im);
        if (st != FA_OK) return st;
    }
    char uid[65];
    int have_sr = 0;
    if (c->send_sr) {
        st = dicom_net_write_sr(in->path, &r, sr_path, uid, err);
        if (st != FA_OK) return st;
        have_sr = 1;
    }
    sc.score_ms = (fa_now_seconds() - t0) * 1000.0;
    int to_pacs = c->dest_host[0] != '\0';
    st = serve_db_scored(n->db, in->sop_uid, &sc, to_pacs && have_sr ? sr_path : NULL,
                         to_pacs && have_sc ? sc_path : NULL, err);
    if (st != FA_OK) return st;
    char detail[160];
    snprintf(detail, sizeof detail, "score %.4f decision %d in %.0f ms", prob, sc.decision, sc.score_ms);
    node_log(n, "scored", in->calling_ae, NULL, in->sop_uid, detail);
    pthread_mutex_lock(&n->mu);
    pthread_cond_broadcast(&n->send_cv);
    pthread_mutex_unlock(&n->mu);
    return FA_OK;
}

static void *worker_main(void *arg) {
    serve_node *n = arg;
    omp_set_num_threads(n->c->threads_per_worker);
    worker_models wm = {0};
    fa_error err = {0};
    fa_status st = tpredict_open(&wm.tm, n->c->model, 1, FA_PRECISION_FP32, &err);
    if (st == FA_OK && n->c->cam) st = cam_model_open(&wm.cm, n->c->model, NULL, &err);
    if (st != FA_OK) {
        node_log(n, "worker_failed", NULL, NULL, NULL, err.msg);
        pthread_mutex_lock(&n->mu);
        n->fatal = 1;
        n->fatal_err = err;
        n->stop = 1;
        *n->ext_stop = 1;
        pthread_cond_broadcast(&n->work_cv);
        pthread_cond_broadcast(&n->send_cv);
        pthread_mutex_unlock(&n->mu);
        tpredict_close(wm.tm);
        return NULL;
    }
    while (!n->stop) {
        serve_instance in;
        int got = serve_db_claim(n->db, &in, &err);
        if (got < 0) {
            node_log(n, "db_error", NULL, NULL, NULL, err.msg);
            wait_cv(n, &n->work_cv, 1.0);
            continue;
        }
        if (got == 0) {
            wait_cv(n, &n->work_cv, 0.5);
            continue;
        }
        fa_error e2 = {0};
        if (score_one(n, &wm, &in, &e2) != FA_OK) {
            node_log(n, "score_failed", in.calling_ae, NULL, in.sop_uid, e2.msg);
            serve_db_failed(n->db, in.sop_uid, e2.msg, &err);
        }
    }
    cam_model_close(wm.cm);
    tpredict_close(wm.tm);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Senders                                                                   */

static void *sender_main(void *arg) {
    serve_node *n = arg;
    const serve_config *c = n->c;
    dicom_net_scu_opts so;
    so.host = c->dest_host;
    so.port = c->dest_port;
    so.calling_ae = c->ae_title;
    so.called_ae = c->dest_ae;
    so.timeout_s = c->dimse_timeout_s;
    so.max_pdu = c->max_pdu;
    while (!n->stop) {
        serve_outgoing o;
        fa_error err = {0};
        /* the lease outlives one attempt (association + transfer timeouts) */
        int got = serve_db_next_outgoing(n->db, serve_db_now(), 3.0 * c->dimse_timeout_s + 10, &o, &err);
        if (got <= 0) {
            if (got < 0) node_log(n, "db_error", NULL, NULL, NULL, err.msg);
            wait_cv(n, &n->send_cv, 0.2);
            continue;
        }
        unsigned status = 0;
        fa_error serr = {0};
        fa_status st = dicom_net_send_file(&so, o.path, &status, &serr);
        if (st == FA_OK) {
            serve_db_outgoing_done(n->db, &o, 1, serve_db_now(), 0, NULL, &err);
            node_log(n, "sent", NULL, NULL, o.sop_uid, o.kind);
        } else {
            double backoff = c->retry_initial_s * pow(2.0, o.attempts < 30 ? o.attempts : 30);
            if (backoff > c->retry_max_s) backoff = c->retry_max_s;
            int give_up = c->retry_max_attempts > 0 && o.attempts + 1 >= c->retry_max_attempts;
            serve_db_outgoing_done(n->db, &o, 0, serve_db_now() + backoff, give_up, serr.msg, &err);
            char detail[FA_ERROR_MSG_MAX + 64];
            snprintf(detail, sizeof detail, "%s attempt %d%s: %s", o.kind, o.attempts + 1,
                     give_up ? " (giving up)" : "", serr.msg);
            node_log(n, give_up ? "send_failed" : "send_retry", NULL, NULL, o.sop_uid, detail);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Run                                                                       */

static fa_status make_dir(const char *path, fa_error *err) {
    if (mkdir(path, 0750) != 0 && errno != EEXIST) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return fa_error_set(err, FA_ERR_IO, "%s: not a directory", path);
    return FA_OK;
}

/* Partial files of a previous run were never acknowledged: drop them. */
static void clean_spool(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".part")) {
            char p[SERVE_STR + 300];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

static fa_status model_identity(serve_node *n, fa_error *err) {
    tpredict_model *tm = NULL;
    fa_status st = tpredict_open(&tm, n->c->model, 1, FA_PRECISION_FP32, err);
    if (st != FA_OK) return st;
    const ckpt_info *info = tpredict_info(tm);
    const char *path = tpredict_path(tm);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char hex[65] = "";
    st = digest_sha256_file(path, hex, err);
    if (st == FA_OK) {
        snprintf(n->model_name, sizeof n->model_name, "freeair %s %dpx (%s, epoch %d)", info->arch, info->image_size,
                 base, info->epoch);
        snprintf(n->model_version, sizeof n->model_version, "sha256:%.16s", hex);
        if (isnan(info->threshold) && isnan(n->c->threshold))
            node_log(n, "warning", NULL, NULL, NULL,
                     "no operating point in the checkpoint or the config: decisions are -1, ordering by score");
    }
    tpredict_close(tm);
    return st;
}

fa_status serve_run(const serve_config *c, volatile int *stop, fa_error *err) {
    serve_node *n = calloc(1, sizeof *n);
    if (!n) return fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    n->c = c;
    n->ext_stop = stop;
    pthread_mutex_init(&n->log_mu, NULL);
    pthread_mutex_init(&n->store_mu, NULL);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->work_cv, NULL);
    pthread_cond_init(&n->send_cv, NULL);
    n->sop_classes[n->n_sop_classes++] = "1.2.840.10008.5.1.4.1.1.1";   /* CR */
    n->sop_classes[n->n_sop_classes++] = "1.2.840.10008.5.1.4.1.1.1.1"; /* DX for presentation */
    if (c->accept_secondary_capture) n->sop_classes[n->n_sop_classes++] = "1.2.840.10008.5.1.4.1.1.7";
    snprintf(n->store_dir, sizeof n->store_dir, "%s/store", c->data_dir);
    snprintf(n->spool_dir, sizeof n->spool_dir, "%s/spool", c->data_dir);
    snprintf(n->results_dir, sizeof n->results_dir, "%s/results", c->data_dir);
    snprintf(n->heatmap_dir, sizeof n->heatmap_dir, "%s/heatmaps", c->data_dir);
    char path[SERVE_STR + 32];
    dicom_net_scp *scp = NULL;
    serve_http *http = NULL;
    pthread_t *threads = NULL;
    int n_threads = 0;
    fa_status st = make_dir(c->data_dir, err);
    if (st == FA_OK) st = make_dir(n->store_dir, err);
    if (st == FA_OK) st = make_dir(n->spool_dir, err);
    if (st == FA_OK) st = make_dir(n->results_dir, err);
    if (st == FA_OK) st = make_dir(n->heatmap_dir, err);
    if (st == FA_OK) {
        clean_spool(n->spool_dir);
        snprintf(path, sizeof path, "%s/serve.jsonl", c->data_dir);
        if (fa_jsonl_open(&n->log, path) != 0) st = fa_error_set(err, FA_ERR_IO, "%s: cannot open the log", path);
    }
    if (st == FA_OK) {
        snprintf(path, sizeof path, "%s/serve.db", c->data_dir);
        st = serve_db_open(&n->db, path, err);
    }
    if (st == FA_OK) st = model_identity(n, err);
    if (st == FA_OK) {
        /* The listener first: it re-binds a socket descriptor and must do so
         * before any other thread of ours exists. */
        dicom_net_scp_opts o;
        memset(&o, 0, sizeof o);
        o.bind_addr = c->bind_addr;
        o.port = c->port;
        o.max_associations = c->max_associations;
        o.max_pdu = c->max_pdu;
        o.max_object_bytes = c->max_object_bytes;
        o.acse_timeout_s = c->acse_timeout_s;
        o.dimse_timeout_s = c->dimse_timeout_s;
        o.sop_classes = n->sop_classes;
        o.n_sop_classes = n->n_sop_classes;
        o.spool_dir = n->spool_dir;
        if (c->tls_key[0]) {
            o.tls_key = c->tls_key;
            o.tls_cert = c->tls_cert;
            o.tls_ca = c->tls_ca;
        }
        o.on_accept = scp_accept;
        o.on_store = scp_store;
        o.on_log = scp_log;
        o.user = n;
        n->scp_opts = o; /* the SCP borrows its options: the node outlives it */
        st = dicom_net_scp_open(&scp, &n->scp_opts, err);
    }
    if (st == FA_OK) {
        threads = calloc((size_t)(c->workers + c->senders), sizeof *threads);
        if (!threads) st = fa_error_set(err, FA_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == FA_OK && i < c->workers; i++) {
        if (pthread_create(&threads[n_threads], NULL, worker_main, n) != 0)
            st = fa_error_set(err, FA_ERR_INTERNAL, "cannot start a worker thread");
        else n_threads++;
    }
    for (int i = 0; st == FA_OK && c->dest_host[0] && i < c->senders; i++) {
        if (pthread_create(&threads[n_threads], NULL, sender_main, n) != 0)
            st = fa_error_set(err, FA_ERR_INTERNAL, "cannot start a sender thread");
        else n_threads++;
    }
    if (st == FA_OK && c->http_port) st = serve_http_start(&http, c, n->db, n->heatmap_dir, err);
    if (st == FA_OK) {
        char detail[600];
        snprintf(detail, sizeof detail, "AE %s on %s:%d%s, HTTP %s:%d, model %s", c->ae_title, c->bind_addr, c->port,
                 c->tls_key[0] ? " (TLS)" : "", c->http_port ? c->http_bind : "-", c->http_port, n->model_name);
        node_log(n, "started", NULL, NULL, NULL, detail);
        /* The listener polls the caller's flag, which a failing worker
         * also raises (n->ext_stop). */
        st = dicom_net_scp_run(scp, stop, err);
    }
    /* shutdown */
    pthread_mutex_lock(&n->mu);
    n->stop = 1;
    pthread_cond_broadcast(&n->work_cv);
    pthread_cond_broadcast(&n->send_cv);
    pthread_mutex_unlock(&n->mu);
    for (int i = 0; i < n_threads; i++) pthread_join(threads[i], NULL);
    free(threads);
    serve_http_stop(http);
    dicom_net_scp_close(scp);
    if (st == FA_OK && n->fatal) {
        *err = n->fatal_err;
        st = err->code != FA_OK ? err->code : FA_ERR_INTERNAL;
    }
    if (n->log.f) node_log(n, "stopped", NULL, NULL, NULL, st == FA_OK ? "" : err->msg);
    serve_db_close(n->db);
    fa_jsonl_close(&n->log);
    pthread_cond_destroy(&n->work_cv);
    pthread_cond_destroy(&n->send_cv);
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->store_mu);
    pthread_mutex_destroy(&n->log_mu);
    free(n);
    return st;
}
