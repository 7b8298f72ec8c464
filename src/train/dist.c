/* dist.c - the MPI side of data-parallel training (see dist.h): every MPI
 * call of freeair is here, each collective guarded by the watchdog. */
#include "train/dist.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#define DIST_DEFAULT_TIMEOUT_S 600.0
#define DIST_DEFAULT_BUCKET (8u << 20)

struct dist {
    int rank, size;
    int mpi; /* MPI_Init was called by us */
    int failed_together;
    /* watchdog: one collective at a time is "in flight" since busy_since */
    pthread_t watchdog;
    int watchdog_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    double busy_since; /* 0 = idle */
    const char *busy_what;
    double timeout_s;
    /* BN snapshot */
    double *bn_snap;
    int64_t bn_n;
    /* synchronised BatchNorm scratch (2C + 1 doubles) */
    double *sbn;
    int sbn_n;
    /* overlapped gradient all-reduce (dist_grads_*) */
    int overlap;        /* install the grads_done hook */
    int ov_state;       /* 0 idle, 1 armed, 2 all started */
    fa_graph *ov_g;
    int ov_np;          /* graph parameters when planned */
    int64_t ov_total, ov_bucket, ov_nb, ov_next; /* ov_next: next bucket to start (descending) */
    int ov_early;
    float *ov_buf;
    MPI_Request *ov_req;
    int64_t *ov_off;     /* per parameter: packed offset, -1 = not reduced */
    int64_t *ov_pending; /* per bucket: floats not packed yet */
    unsigned char *ov_packed;
};

static int dist_mpi_used; /* MPI can be initialised once per process */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The watchdog only reads the clock and, on timeout, prints and aborts: a
 * rank that died or hangs would otherwise leave the others blocked forever
 * inside a collective. */
static void *watchdog_main(void *arg) {
    dist *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        if (d->stop) break;
        if (d->busy_since > 0 && now_s() - d->busy_since > d->timeout_s) {
            fprintf(stderr,
                    "freeair train: rank %d of %d: %s did not complete within %.0f s (another rank died or hangs; "
                    "FREEAIR_DIST_TIMEOUT); aborting the job, the last checkpoint stays valid\n",
                    d->rank, d->size, d->busy_what ? d->busy_what : "a collective", d->timeout_s);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void busy_begin(dist *d, const char *what) {
    pthread_mutex_lock(&d->mu);
    d->busy_since = now_s();
    d->busy_what = what;
    pthread_mutex_unlock(&d->mu);
}

static void busy_end(dist *d) {
    pthread_mutex_lock(&d->mu);
    d->busy_since = 0;
    d->busy_what = NULL;
    pthread_mutex_unlock(&d->mu);
}

static fa_status mpi_fail(dist *d, int rc, const char *what, fa_error *err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return fa_error_set(err, FA_ERR_BACKEND, "MPI rank %d: %s failed: %s", d->rank, what, msg);
}

static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

fa_status dist_init(dist **out, fa_error *err) {
    *out = NULL;
    dist *d = calloc(1, sizeof *d);
    if (!d) return fa_error_set(err, FA_ERR_NOMEM, "distributed training: out of memory");
    d->size = 1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->timeout_s = DIST_DEFAULT_TIMEOUT_S;
    const char *ov = getenv("FREEAIR_DIST_OVERLAP");
    d->overlap = !(ov && !strcmp(ov, "0"));
    const char *to = getenv("FREEAIR_DIST_TIMEOUT");
    if (to && *to) {
        char *end = NULL;
        double v = strtod(to, &end);
        if (!end || *end || !(v > 0) || v > 1e7) {
            dist_finalize(d);
            return fa_error_set(err, FA_ERR_ARG, "FREEAIR_DIST_TIMEOUT: '%s' is not a number of seconds > 0", to);
        }
        d->timeout_s = v;
    }
    if (!launched_by_mpirun()) {
        *out = d;
        return FA_OK;
    }
    if (dist_mpi_used) {
        dist_finalize(d);
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "MPI: already initialised and finalised in this process");
    }
    dist_mpi_used = 1;
    int provided = 0;
    /* the watchdog thread may call MPI_Abort while the main thread is inside
     * a collective */
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) {
        dist_finalize(d);
        return fa_error_set(err, FA_ERR_BACKEND, "MPI_Init_thread failed (error %d)", rc);
    }
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    if (d->size > 1) {
        if (pthread_create(&d->watchdog, NULL, watchdog_main, d) != 0) {
            dist_finalize(d);
            return fa_error_set(err, FA_ERR_INTERNAL, "distributed training: cannot start the watchdog thread");
        }
        d->watchdog_running = 1;
    }
    *out = d;
    return FA_OK;
}

void dist_finalize(dist *d) {
    if (!d) return;
    if (d->watchdog_running) {
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->watchdog, NULL);
    }
    if (d->mpi) MPI_Finalize();
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->bn_snap);
    free(d->sbn);
    free(d->ov_buf);
    free(d->ov_req);
    free(d->ov_off);
    free(d->ov_pending);
    free(d->ov_packed);
    free(d);
}

int dist_rank(const dist *d) { return d ? d->rank : 0; }
int dist_size(const dist *d) { return d ? d->size : 1; }
int dist_failed_together(const dist *d) { return d && d->failed_together; }

void dist_abort(dist *d, const char *msg) {
    if (!d || !d->mpi) return;
    fprintf(stderr, "freeair train: rank %d of %d: %s; aborting the job\n", d->rank, d->size, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

fa_status dist_agree(dist *d, fa_status local, const char *what, fa_error *err) {
    if (!d || d->size == 1) return local;
    int *codes = fa_malloc_array((size_t)d->size, sizeof *codes);
    if (!codes) {
        dist_abort(d, "out of memory");
        return fa_error_set(err, FA_ERR_NOMEM, "distributed training: out of memory");
    }
    int mine = (int)local;
    busy_begin(d, what);
    int rc = MPI_Allgather(&mine, 1, MPI_INT, codes, 1, MPI_INT, MPI_COMM_WORLD);
    busy_end(d);
    if (rc != MPI_SUCCESS) {
        free(codes);
        return mpi_fail(d, rc, what, err);
    }
    fa_status st = FA_OK;
    if (local != FA_OK) st = local;
    else
        for (int r = 0; r < d->size; r++)
            if (codes[r] != FA_OK) {
                st = (fa_status)codes[r];
                fa_error_set(err, st, "rank %d of %d failed during %s (%s; its own message is on its stderr)", r,
                             d->size, what, fa_status_name(st));
                break;
            }
    free(codes);
    if (st != FA_OK) d->failed_together = 1;
    return st;
}

/* Broadcast n floats from rank 0 in chunks that fit an int count. */
static int bcast_floats(float *p, int64_t n) {
    const int64_t chunk = 1 << 28;
    for (int64_t o = 0; o < n; o += chunk) {
        int k = (int)(n - o < chunk ? n - o : chunk);
        int rc = MPI_Bcast(p + o, k, MPI_FLOAT, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

fa_status dist_broadcast_state(dist *d, fa_graph *g, optim_sgd *opt, fa_error *err) {
    if (!d || d->size == 1) return FA_OK;
    int has_mom = optim_sgd_has_momentum(opt);
    busy_begin(d, "the parameter broadcast");
    int rc = MPI_Bcast(&has_mom, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int i = 0; rc == MPI_SUCCESS && i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_COUNTER) {
            long long c = (long long)p->count;
            rc = MPI_Bcast(&c, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
            p->count = (int64_t)c;
            continue;
        }
        if (p->data) rc = bcast_floats(p->data, p->numel);
        float *m = has_mom && p->kind == GRAPH_PARAM_TRAINABLE ? optim_sgd_momentum(opt, i) : NULL;
        int have = m != NULL, all = 0;
        /* momentum buffers exist on every rank or on none (same state) */
        if (rc == MPI_SUCCESS) rc = MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS && all) rc = bcast_floats(m, p->numel);
    }
    busy_end(d);
    return rc == MPI_SUCCESS ? FA_OK : mpi_fail(d, rc, "the parameter broadcast", err);
}

fa_status dist_allreduce_grads(dist *d, fa_graph *g, size_t bucket_bytes, int64_t *bytes, fa_error *err) {
    int64_t total = 0;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_TRAINABLE && p->grad) total += p->numel;
    }
    if (bytes) *bytes = total * (int64_t)sizeof(float);
    if (!d || d->size == 1 || total == 0) return FA_OK;
    if (bucket_bytes == 0) bucket_bytes = DIST_DEFAULT_BUCKET;
    int64_t bucket = (int64_t)(bucket_bytes / sizeof(float));
    if (bucket < 1) bucket = 1;
    if (bucket > (1 << 28)) bucket = 1 << 28;
    int64_t nb = (total + bucket - 1) / bucket;
    float *buf = fa_malloc_array((size_t)total, sizeof *buf);
    MPI_Request *req = fa_malloc_array((size_t)nb, sizeof *req);
    if (!buf || !req) {
        free(buf);
        free(req);
        return fa_error_set(err, FA_ERR_NOMEM, "gradient all-reduce: out of memory for %lld floats", (long long)total);
    }
    /* Pack in graph order and start each bucket's all-reduce as soon as it
     * is full, so packing overlaps communication. The executor has no
     * per-layer hook, so this runs after the whole backward pass. */
    busy_begin(d, "the gradient all-reduce");
    int rc = MPI_SUCCESS;
    int64_t filled = 0, started = 0;
    for (int i = 0; rc == MPI_SUCCESS && i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE || !p->grad) continue;
        memcpy(buf + filled, p->grad, (size_t)p->numel * sizeof(float));
        filled += p->numel;
        while (rc == MPI_SUCCESS && (started + 1) * bucket <= filled) {
            rc = MPI_Iallreduce(MPI_IN_PLACE, buf + started * bucket, (int)bucket, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                &req[started]);
            started++;
        }
    }
    if (rc == MPI_SUCCESS && started < nb) {
        int64_t off = started * bucket;
        rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)(total - off), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                            &req[started]);
        started++;
    }
    if (rc == MPI_SUCCESS) rc = MPI_Waitall((int)started, req, MPI_STATUSES_IGNORE);
    busy_end(d);
    if (rc == MPI_SUCCESS) {
        int64_t o = 0;
        for (int i = 0; i < graph_param_count(g); i++) {
            graph_param *p = graph_param_at(g, i);
            if (p->kind != GRAPH_PARAM_TRAINABLE || !p->grad) continue;
            memcpy(p->grad, buf + o, (size_t)p->numel * sizeof(float));
            o += p->numel;
        }
    }
    free(buf);
    free(req);
    return rc == MPI_SUCCESS ? FA_OK : mpi_fail(d, rc, "the gradient all-reduce", err);
}

/* ---- overlapped gradient all-reduce ------------------------------------ */

/* Bucket plan: the same packing and cuts as dist_allreduce_grads. */
static fa_status ov_plan(dist *d, fa_graph *g, size_t bucket_bytes, fa_error *err) {
    int np = graph_param_count(g);
    int64_t total = 0;
    for (int i = 0; i < np; i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_TRAINABLE && p->grad) total += p->numel;
    }
    if (bucket_bytes == 0) bucket_bytes = DIST_DEFAULT_BUCKET;
    int64_t bucket = (int64_t)(bucket_bytes / sizeof(float));
    if (bucket < 1) bucket = 1;
    if (bucket > (1 << 28)) bucket = 1 << 28;
    int64_t nb = (total + bucket - 1) / bucket;
    if (d->ov_g != g || d->ov_np != np || d->ov_total != total || d->ov_bucket != bucket) {
        free(d->ov_buf);
        free(d->ov_req);
        free(d->ov_off);
        free(d->ov_pending);
        free(d->ov_packed);
        d->ov_buf = fa_malloc_array((size_t)(total ? total : 1), sizeof *d->ov_buf);
        d->ov_req = fa_malloc_array((size_t)(nb ? nb : 1), sizeof *d->ov_req);
        d->ov_pending = fa_malloc_array((size_t)(nb ? nb : 1), sizeof *d->ov_pending);
        d->ov_off = fa_malloc_array((size_t)(np ? np : 1), sizeof *d->ov_off);
        d->ov_packed = fa_malloc_array((size_t)(np ? np : 1), 1);
        d->ov_g = NULL;
        if (!d->ov_buf || !d->ov_req || !d->ov_pending || !d->ov_off || !d->ov_packed)
            return fa_error_set(err, FA_ERR_NOMEM, "gradient all-reduce: out of memory for %lld floats",
                                (long long)total);
        int64_t o = 0;
        for (int i = 0; i < np; i++) {
            graph_param *p = graph_param_at(g, i);
            d->ov_off[i] = p->kind == GRAPH_PARAM_TRAINABLE && p->grad ? o : -1;
            if (d->ov_off[i] >= 0) o += p->numel;
        }
        d->ov_g = g;
        d->ov_np = np;
        d->ov_total = total;
        d->ov_bucket = bucket;
        d->ov_nb = nb;
    }
    for (int64_t b = 0; b < nb; b++) {
        d->ov_pending[b] = (b + 1) * bucket <= total ? bucket : total - b * bucket;
        d->ov_req[b] = MPI_REQUEST_NULL;
    }
    memset(d->ov_packed, 0, (size_t)(np ? np : 1));
    d->ov_next = nb - 1;
    d->ov_early = 0;
    return FA_OK;
}

static void ov_pack(dist *d, int i) {
    if (i < 0 || i >= d->ov_np || d->ov_off[i] < 0 || d->ov_packed[i]) return;
    graph_param *p = graph_param_at(d->ov_g, i);
    int64_t off = d->ov_off[i], end = off + p->numel;
    memcpy(d->ov_buf + off, p->grad, (size_t)p->numel * sizeof(float));
    d->ov_packed[i] = 1;
    for (int64_t b = off / d->ov_bucket; b < d->ov_nb && b * d->ov_bucket < end; b++) {
        int64_t lo = b * d->ov_bucket > off ? b * d->ov_bucket : off;
        int64_t hi = (b + 1) * d->ov_bucket < end ? (b + 1) * d->ov_bucket : end;
        d->ov_pending[b] -= hi - lo;
    }
}

/* Start buckets from ov_next down while they are complete (all = start
 * them regardless). Descending order on every rank. */
static int ov_start(dist *d, int all) {
    int rc = MPI_SUCCESS;
    while (rc == MPI_SUCCESS && d->ov_next >= 0 && (all || d->ov_pending[d->ov_next] == 0)) {
        int64_t b = d->ov_next, off = b * d->ov_bucket;
        int64_t n = off + d->ov_bucket <= d->ov_total ? d->ov_bucket : d->ov_total - off;
        rc = MPI_Iallreduce(MPI_IN_PLACE, d->ov_buf + off, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &d->ov_req[b]);
        d->ov_next--;
        if (!all) d->ov_early++;
    }
    return rc;
}

static fa_status ov_grads_done(void *ctx, const int *params, int n, fa_error *err) {
    dist *d = ctx;
    if (d->ov_state != 1) return FA_OK; /* not the step's last backward */
    for (int k = 0; k < n; k++) ov_pack(d, params[k]);
    int rc = ov_start(d, 0);
    /* Open MPI moves non-blocking collectives on only inside MPI calls. */
    int flag = 0;
    if (rc == MPI_SUCCESS && d->ov_next + 1 < d->ov_nb)
        rc = MPI_Testall((int)(d->ov_nb - d->ov_next - 1), d->ov_req + d->ov_next + 1, &flag, MPI_STATUSES_IGNORE);
    return rc == MPI_SUCCESS ? FA_OK : mpi_fail(d, rc, "the gradient all-reduce", err);
}

fa_status dist_grads_arm(dist *d, fa_graph *g, size_t bucket_bytes, fa_error *err) {
    if (!d || d->size == 1) return FA_OK;
    if (d->ov_state != 0) return fa_error_set(err, FA_ERR_INTERNAL, "gradient all-reduce: armed twice");
    fa_status st = ov_plan(d, g, bucket_bytes, err);
    if (st == FA_OK) d->ov_state = 1;
    return st;
}

fa_status dist_grads_start(dist *d, fa_graph *g, size_t bucket_bytes, fa_error *err) {
    if (!d || d->size == 1) return FA_OK;
    if (d->ov_state == 0) {
        fa_status st = dist_grads_arm(d, g, bucket_bytes, err);
        if (st != FA_OK) return st;
    }
    if (d->ov_state != 1 || d->ov_g != g)
        return fa_error_set(err, FA_ERR_INTERNAL, "gradient all-reduce: started twice");
    for (int i = 0; i < d->ov_np; i++) ov_pack(d, i);
    int rc = ov_start(d, 1);
    d->ov_state = 2;
    return rc == MPI_SUCCESS ? FA_OK : mpi_fail(d, rc, "the gradient all-reduce", err);
}

fa_status dist_grads_wait(dist *d, fa_graph *g, int64_t *bytes, int *early, fa_error *err) {
    if (early) *early = 0;
    if (!d || d->size == 1) {
        if (bytes) dist_allreduce_grads(d, g, 0, bytes, err);
        return FA_OK;
    }
    if (d->ov_state != 2 || d->ov_g != g)
        return fa_error_set(err, FA_ERR_INTERNAL, "gradient all-reduce: wait without start");
    busy_begin(d, "the gradient all-reduce");
    int rc = MPI_Waitall((int)d->ov_nb, d->ov_req, MPI_STATUSES_IGNORE);
    busy_end(d);
    d->ov_state = 0;
    if (bytes) *bytes = d->ov_total * (int64_t)sizeof(float);
    if (early) *early = d->ov_early;
    if (rc != MPI_SUCCESS) return mpi_fail(d, rc, "the gradient all-reduce", err);
    for (int i = 0; i < d->ov_np; i++) {
        if (d->ov_off[i] < 0) continue;
        graph_param *p = graph_param_at(g, i);
        memcpy(p->grad, d->ov_buf + d->ov_off[i], (size_t)p->numel * sizeof(float));
    }
    return FA_OK;
}

/* ---- synchronised BatchNorm --------------------------------------------- */

static double *sbn_scratch(dist *d, int n) {
    if (n > d->sbn_n) {
        free(d->sbn);
        d->sbn = fa_malloc_array((size_t)n, sizeof *d->sbn);
        d->sbn_n = d->sbn ? n : 0;
    }
    return d->sbn;
}

/* Count, sum and sum of squares per channel, summed over ranks in double
 * (as torch.nn.SyncBatchNorm combines per-rank mean/variance by counts):
 * the global mean and biased variance follow. */
static fa_status sbn_stats(void *ctx, int C, double *count, float *mean, float *var, fa_error *err) {
    dist *d = ctx;
    double *v = sbn_scratch(d, 2 * C + 1);
    if (!v) return fa_error_set(err, FA_ERR_NOMEM, "synchronised BatchNorm: out of memory");
    double n = *count;
    for (int c = 0; c < C; c++) {
        double m = mean[c];
        v[c] = n * m;
        v[C + c] = n * ((double)var[c] + m * m);
    }
    v[2 * C] = n;
    busy_begin(d, "the synchronised BatchNorm statistics");
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2 * C + 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    busy_end(d);
    if (rc != MPI_SUCCESS) return mpi_fail(d, rc, "the synchronised BatchNorm statistics", err);
    double N = v[2 * C];
    for (int c = 0; c < C; c++) {
        double m = v[c] / N, s2 = v[C + c] / N - m * m;
        mean[c] = (float)m;
        var[c] = (float)(s2 > 0 ? s2 : 0);
    }
    *count = N;
    return FA_OK;
}

static fa_status sbn_grad_sums(void *ctx, int C, float *sums, fa_error *err) {
    dist *d = ctx;
    double *v = sbn_scratch(d, 2 * C);
    if (!v) return fa_error_set(err, FA_ERR_NOMEM, "synchronised BatchNorm: out of memory");
    for (int k = 0; k < 2 * C; k++) v[k] = sums[k];
    busy_begin(d, "the synchronised BatchNorm gradient sums");
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2 * C, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    busy_end(d);
    if (rc != MPI_SUCCESS) return mpi_fail(d, rc, "the synchronised BatchNorm gradient sums", err);
    for (int k = 0; k < 2 * C; k++) sums[k] = (float)v[k];
    return FA_OK;
}

void dist_exec_hooks(dist *d, int sync_bn, exec_hooks *h) {
    memset(h, 0, sizeof *h);
    if (!d || d->size == 1) return;
    h->ctx = d;
    if (sync_bn) {
        h->bn_stats = sbn_stats;
        h->bn_grad_sums = sbn_grad_sums;
    }
    if (d->overlap) h->grads_done = ov_grads_done;
}

int dist_overlap(const dist *d) { return d && d->size > 1 && d->overlap; }

fa_status dist_sum(dist *d, double *v, int n, fa_error *err) {
    if (!d || d->size == 1) return FA_OK;
    busy_begin(d, "a sum over ranks");
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    busy_end(d);
    return rc == MPI_SUCCESS ? FA_OK : mpi_fail(d, rc, "a sum over ranks", err);
}

static int64_t bn_count(fa_graph *g) {
    int64_t n = 0;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_BUFFER && p->data) n += p->numel;
        else if (p->kind == GRAPH_PARAM_COUNTER) n += 1;
    }
    return n;
}

fa_status dist_bn_snapshot(dist *d, fa_graph *g, fa_error *err) {
    if (!d || d->size == 1) return FA_OK;
    int64_t n = bn_count(g);
    if (!d->bn_snap || d->bn_n != n) {
        free(d->bn_snap);
        d->bn_snap = fa_malloc_array((size_t)(n ? n : 1), sizeof *d->bn_snap);
        d->bn_n = n;
        if (!d->bn_snap) return fa_error_set(err, FA_ERR_NOMEM, "BatchNorm statistics: out of memory");
    }
    int64_t o = 0;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_BUFFER && p->data)
            for (int64_t k = 0; k < p->numel; k++) d->bn_snap[o++] = p->data[k];
        else if (p->kind == GRAPH_PARAM_COUNTER) d->bn_snap[o++] = (double)p->count;
    }
    return FA_OK;
}

fa_status dist_bn_combine(dist *d, fa_graph *g, const int *units, double momentum, fa_error *err) {
    if (!d || d->size == 1) return FA_OK;
    int64_t n = bn_count(g);
    if (!d->bn_snap || d->bn_n != n)
        return fa_error_set(err, FA_ERR_INTERNAL, "BatchNorm statistics: no snapshot before the step");
    if (n == 0) return FA_OK;
    const double keep = 1.0 - momentum;
    int total = 0, after = 0;
    for (int r = 0; r < d->size; r++) total += units[r];
    for (int r = d->rank + 1; r < d->size; r++) after += units[r];
    const double w_after = pow(keep, after), w_mine = pow(keep, units[d->rank]), w_all = pow(keep, total);
    double *buf = fa_malloc_array((size_t)n, sizeof *buf);
    if (!buf) return fa_error_set(err, FA_ERR_NOMEM, "BatchNorm statistics: out of memory");
    int64_t o = 0;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_BUFFER && p->data) {
            for (int64_t k = 0; k < p->numel; k++, o++) {
                double r0 = d->bn_snap[o];
                buf[o] = w_after * ((double)p->data[k] - w_mine * r0) + (d->rank == 0 ? w_all * r0 : 0.0);
            }
        } else if (p->kind == GRAPH_PARAM_COUNTER) {
            buf[o] = (double)p->count - d->bn_snap[o];
            o++;
        }
    }
    busy_begin(d, "the BatchNorm statistics all-reduce");
    int rc = MPI_SUCCESS;
    const int64_t chunk = 1 << 27;
    for (int64_t s = 0; rc == MPI_SUCCESS && s < n; s += chunk)
        rc = MPI_Allreduce(MPI_IN_PLACE, buf + s, (int)(n - s < chunk ? n - s : chunk), MPI_DOUBLE, MPI_SUM,
                           MPI_COMM_WORLD);
    busy_end(d);
    if (rc == MPI_SUCCESS) {
        o = 0;
        for (int i = 0; i < graph_param_count(g); i++) {
            graph_param *p = graph_param_at(g, i);
            if (p->kind == GRAPH_PARAM_BUFFER && p->data) {
                for (int64_t k = 0; k < p->numel; k++, o++) p->data[k] = (float)buf[o];
            } else if (p->kind == GRAPH_PARAM_COUNTER) {
                p->count = (int64_t)llround(d->bn_snap[o] + buf[o]);
                o++;
            }
        }
    }
    free(buf);
    return rc == MPI_SUCCESS ? FA_OK : mpi_fail(d, rc, "the BatchNorm statistics all-reduce", err);
}

fa_status dist_allgather_floats(dist *d, const float *mine, int n_mine, const int *counts, float *all,
                                fa_error *err) {
    if (!d || d->size == 1) {
        if (n_mine > 0) memcpy(all, mine, (size_t)n_mine * sizeof *all);
        return FA_OK;
    }
    int *displs = fa_malloc_array((size_t)d->size, sizeof *displs);
    if (!displs) return fa_error_set(err, FA_ERR_NOMEM, "gather: out of memory");
    int o = 0;
    for (int r = 0; r < d->size; r++) {
        displs[r] = o;
        o += counts[r];
    }
    busy_begin(d, "the validation gather");
    int rc = MPI_Allgatherv(mine, n_mine, MPI_FLOAT, all, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    busy_end(d);
    free(displs);
    return rc == MPI_SUCCESS ? FA_OK : mpi_fail(d, rc, "the validation gather", err);
}

uint64_t dist_param_checksum(fa_graph *g) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        const unsigned char *b;
        size_t nbytes;
        if (p->kind == GRAPH_PARAM_COUNTER) {
            b = (const unsigned char *)&p->count;
            nbytes = sizeof p->count;
        } else {
            if (!p->data) continue;
            b = (const unsigned char *)p->data;
            nbytes = (size_t)p->numel * sizeof(float);
        }
        for (size_t k = 0; k < nbytes; k++) {
            h ^= b[k];
            h *= 1099511628211ull;
        }
    }
    return h;
}

fa_status dist_check_params(dist *d, fa_graph *g, const char *when, fa_error *err) {
    if (!d || d->size == 1) return FA_OK;
    unsigned long long mine = (unsigned long long)dist_param_checksum(g);
    unsigned long long *all = fa_malloc_array((size_t)d->size, sizeof *all);
    if (!all) return fa_error_set(err, FA_ERR_NOMEM, "parameter check: out of memory");
    busy_begin(d, "the parameter checksum");
    int rc = MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    busy_end(d);
    fa_status st = FA_OK;
    if (rc != MPI_SUCCESS) st = mpi_fail(d, rc, "the parameter checksum", err);
    for (int r = 1; st == FA_OK && r < d->size; r++)
        if (all[r] != all[0]) {
            st = fa_error_set(err, FA_ERR_INTERNAL,
                              "parameters differ across ranks %s: rank %d checksum %016llx, rank 0 %016llx; training "
                              "stopped (the ranks no longer train one model)",
                              when, r, all[r], all[0]);
            d->failed_together = 1;
        }
    free(all);
    return st;
}
