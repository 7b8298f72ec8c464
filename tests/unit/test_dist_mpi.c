/* test_dist_mpi.c - dist.h's collectives on 2 real MPI ranks. Run with no
 * arguments (as tests/run.sh does), it starts itself under
 * `mpirun -np 2` (bounded by timeout) and fails when any rank fails. On the
 * ranks, each collective is checked against a closed form both ranks can
 * compute alone:
 *  - gradient all-reduce in tiny buckets (many buckets, one partial) = the
 *    sum of the ranks' gradients, in the same order on both ranks;
 *  - BatchNorm running statistics after A_0 and A_1 micro-batch updates =
 *    the same updates applied one after another in one process, counters
 *    summed;
 *  - status agreement names the failing rank; broadcast makes rank 1 equal
 *    rank 0; the checksum comparison stops both ranks on a difference;
 *  - gather of unequal shares in rank order; sum of doubles;
 *  - the all-reduce overlapped with backward (dist_grads_*, fed by the
 *    executor hook as backward would, last parameter first) gives the same
 *    bits as dist_allreduce_grads with the same buckets, starts buckets
 *    early, and completes when one rank never armed (its step failed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/graph.h"
#include "engine/optim.h"
#include "train/dist.h"

FA_TEST_MAIN_STATE

static fa_graph *small_graph(void) {
    fa_graph *g = graph_create(3, 4, 4);
    graph_conv_opts co = {5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1};
    graph_value v = graph_conv2d(g, "conv1", graph_input(g), &co);
    v = graph_batch_norm(g, "bn1", v, 1e-5f, 0.1f);
    v = graph_global_avg_pool(g, v);
    graph_linear(g, "fc", v, 1);
    return g;
}

/* The stat that micro-batch i of rank r "measured" for element k. */
static float stat(int r, int i, int64_t k) { return 0.25f * (float)(r + 1) + 0.01f * (float)(i * 7 + k % 13); }

static int run_rank(void) {
    fa_error err;
    dist *d = NULL;
    CHECK(dist_init(&d, &err) == FA_OK);
    if (!d) return 1;
    const int rank = dist_rank(d), size = dist_size(d);
    CHECK(size == 2);
    fa_graph *g = small_graph();
    CHECK(graph_status(g, &err) == FA_OK);

    /* gradients: rank r holds (r + 1) * (k + 1) / 8 (exact in fp32) */
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        for (int64_t k = 0; p->grad && k < p->numel; k++) p->grad[k] = (float)(rank + 1) * (float)(k + 1) / 8.0f;
    }
    int64_t bytes = 0;
    CHECK(dist_allreduce_grads(d, g, 28, &bytes, &err) == FA_OK); /* 7 floats per bucket */
    CHECK(bytes == 4 * graph_trainable_numel(g));
    int bad = 0;
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        for (int64_t k = 0; p->grad && k < p->numel; k++) bad += p->grad[k] != 3.0f * (float)(k + 1) / 8.0f;
    }
    CHECK_MSG(bad == 0, "%d gradient values are not the sum over ranks", bad);

    /* overlapped all-reduce: inexact values, so that only the same
     * reduction gives the same bits */
    int np = graph_param_count(g);
    int64_t ntr = graph_trainable_numel(g);
    float *want = malloc((size_t)ntr * sizeof *want), *init = malloc((size_t)ntr * sizeof *init);
    CHECK(want && init);
    int64_t o = 0;
    for (int i = 0; i < np; i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE || !p->grad) continue;
        for (int64_t k = 0; k < p->numel; k++, o++) init[o] = p->grad[k] = 0.1f * (float)(rank + 1) / (float)(3 + k + i);
    }
    CHECK(dist_allreduce_grads(d, g, 28, NULL, &err) == FA_OK);
    o = 0;
    for (int i = 0; i < np; i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE || !p->grad) continue;
        memcpy(want + o, p->grad, (size_t)p->numel * sizeof(float));
        memcpy(p->grad, init + o, (size_t)p->numel * sizeof(float));
        o += p->numel;
    }
    exec_hooks h;
    dist_exec_hooks(d, 0, &h);
    CHECK(h.grads_done && !h.bn_stats && dist_overlap(d));
    for (int round = 0; round < 2; round++) {
        /* round 1: rank 1's step "failed" before its last micro-batch: it
         * never arms; rank 0 reports half of the parameters */
        int arm = round == 0 || rank == 0;
        if (arm) CHECK(dist_grads_arm(d, g, 28, &err) == FA_OK);
        int reported = 0;
        for (int i = np - 1; arm && i >= 0; i--) {
            graph_param *p = graph_param_at(g, i);
            if (p->kind != GRAPH_PARAM_TRAINABLE || !p->grad) continue;
            if (round == 1 && reported * 2 >= 3) break;
            CHECK(h.grads_done(h.ctx, &i, 1, &err) == FA_OK);
            reported++;
        }
        CHECK(dist_grads_start(d, g, 28, &err) == FA_OK);
        int early = -1;
        int64_t b2 = 0;
        CHECK(dist_grads_wait(d, g, &b2, &early, &err) == FA_OK);
        CHECK(b2 == 4 * ntr);
        if (round == 0) CHECK_MSG(early > 0, "no bucket started from the hook");
        int diff = 0;
        o = 0;
        for (int i = 0; i < np; i++) {
            graph_param *p = graph_param_at(g, i);
            if (p->kind != GRAPH_PARAM_TRAINABLE || !p->grad) continue;
            diff += memcmp(p->grad, want + o, (size_t)p->numel * sizeof(float)) != 0;
            memcpy(p->grad, init + o, (size_t)p->numel * sizeof(float));
            o += p->numel;
        }
        CHECK_MSG(diff == 0, "round %d: %d gradients differ from dist_allreduce_grads", round, diff);
    }
    free(want);
    free(init);

    /* BatchNorm: same r0 everywhere; rank r applies A_r updates with its
     * stats; the combination must equal all updates in rank order */
    const double m = 0.1;
    const int A[2] = {2, 3};
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_BUFFER)
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = 1.0f + 0.1f * (float)k;
        if (p->kind == GRAPH_PARAM_COUNTER) p->count = 10;
    }
    CHECK(dist_bn_snapshot(d, g, &err) == FA_OK);
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind == GRAPH_PARAM_BUFFER)
            for (int64_t k = 0; k < p->numel; k++)
                for (int u = 0; u < A[rank]; u++)
                    p->data[k] = (float)((1 - m) * p->data[k] + m * stat(rank, u, k));
        if (p->kind == GRAPH_PARAM_COUNTER) p->count += A[rank];
    }
    CHECK(dist_bn_combine(d, g, A, m, &err) == FA_OK);
    graph_param *rv = graph_param_find(g, "bn1.running_var"), *nb = graph_param_find(g, "bn1.num_batches_tracked");
    CHECK(rv && nb && nb->count == 15);
    for (int64_t k = 0; rv && k < rv->numel; k++) {
        double r = 1.0 + 0.1 * (double)k;
        for (int rr = 0; rr < 2; rr++)
            for (int u = 0; u < A[rr]; u++) r = (1 - m) * r + m * stat(rr, u, k);
        CHECK_CLOSE(rv->data[k], r, 1e-6, 1e-6);
    }

    /* status agreement */
    fa_status st = dist_agree(d, rank == 1 ? FA_ERR_IO : FA_OK, "the test", &err);
    CHECK(st == FA_ERR_IO);
    if (rank == 0) CHECK_MSG(strstr(err.msg, "rank 1") != NULL, "message: %s", err.msg);
    CHECK(dist_failed_together(d));
    CHECK(dist_agree(d, FA_OK, "the test", &err) == FA_OK);

    /* broadcast, then checksums agree; a difference stops both ranks */
    graph_param *w = graph_param_find(g, "conv1.weight");
    for (int64_t k = 0; k < w->numel; k++) w->data[k] = (float)(rank * 100 + k);
    CHECK(dist_broadcast_state(d, g, NULL, &err) == FA_OK);
    CHECK(w->data[7] == 7.0f);
    CHECK(dist_check_params(d, g, "in the test", &err) == FA_OK);
    if (rank == 1) w->data[3] += 1e-3f;
    st = dist_check_params(d, g, "in the test", &err);
    CHECK(st != FA_OK);
    CHECK_MSG(strstr(err.msg, "differ across ranks in the test") != NULL, "message: %s", err.msg);

    /* gather of unequal shares, and a sum */
    int counts[2] = {2, 1};
    float mine[2] = {(float)rank + 0.5f, (float)rank + 0.75f}, all[3] = {0};
    CHECK(dist_allgather_floats(d, mine, counts[rank], counts, all, &err) == FA_OK);
    CHECK(all[0] == 0.5f && all[1] == 0.75f && all[2] == 1.5f);
    double s[2] = {1.0 + rank, -0.5};
    CHECK(dist_sum(d, s, 2, &err) == FA_OK && s[0] == 3.0 && s[1] == -1.0);

    graph_free(g);
    dist_finalize(d);
    char name[32];
    snprintf(name, sizeof name, "dist_mpi rank %d", rank);
    return fa_test_finish(name);
}

int main(int argc, char **argv) {
    (void)argc;
    if (getenv("OMPI_COMM_WORLD_SIZE")) return run_rank();
    /* the launcher: argv[0] is a path to this binary (tests/run.sh runs it
     * by path); LeakSanitizer is off on the ranks (Open MPI's plugins leak) */
    const char *san = getenv("FREEAIR_SANITIZE");
    const char *asan = getenv("ASAN_OPTIONS");
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd,
                     "OMP_NUM_THREADS=1 timeout 120 mpirun --oversubscribe --allow-run-as-root %s%s%s%s -np 2 '%s'",
                     san && !strcmp(san, "1") ? "-x ASAN_OPTIONS=" : "", san && !strcmp(san, "1") && asan ? asan : "",
                     san && !strcmp(san, "1") && asan ? ":" : "", san && !strcmp(san, "1") ? "detect_leaks=0" : "",
                     argv[0]);
    CHECK(n > 0 && (size_t)n < sizeof cmd && !strchr(argv[0], '\''));
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "`%s` exited with status %d", cmd, rc);
    return fa_test_finish("dist_mpi");
}
