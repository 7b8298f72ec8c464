/* test_dist_local.c - the one-rank side of dist.h, which every `freeair
 * train` without mpirun goes through: no MPI initialisation at all, size 1,
 * collectives are identities (agree returns the local status, gradients and
 * BatchNorm statistics untouched, gather copies), and the parameter checksum
 * sees a change in any parameter, buffer or counter. The multi-rank side is
 * tested under mpirun by tests/integration/test_mpi_*.sh. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "engine/graph.h"
#include "train/dist.h"

FA_TEST_MAIN_STATE

int main(void) {
    /* a test binary run by tests/run.sh is never under mpirun */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_RANK");
    fa_error err;
    dist *d = NULL;
    CHECK(dist_init(&d, &err) == FA_OK);
    CHECK(d && dist_size(d) == 1 && dist_rank(d) == 0);
    int inited = 1;
    MPI_Initialized(&inited);
    CHECK_MSG(inited == 0, "MPI was initialised outside mpirun");

    fa_graph *g = graph_create(3, 4, 4);
    graph_conv_opts co = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0};
    graph_value v = graph_conv2d(g, "conv1", graph_input(g), &co);
    v = graph_batch_norm(g, "bn1", v, 1e-5f, 0.1f);
    CHECK(graph_status(g, &err) == FA_OK);
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        for (int64_t k = 0; p->data && k < p->numel; k++) p->data[k] = 0.01f * (float)(k + i);
        for (int64_t k = 0; p->grad && k < p->numel; k++) p->grad[k] = 0.5f + (float)k;
    }

    CHECK(dist_agree(d, FA_ERR_IO, "x", &err) == FA_ERR_IO);
    CHECK(dist_agree(d, FA_OK, "x", &err) == FA_OK);
    CHECK(!dist_failed_together(d));
    int64_t bytes = 0;
    CHECK(dist_allreduce_grads(d, g, 64, &bytes, &err) == FA_OK);
    CHECK(bytes == 4 * graph_trainable_numel(g));
    graph_param *w = graph_param_find(g, "conv1.weight");
    CHECK(w && w->grad[3] == 3.5f);
    double s[2] = {1.5, -2};
    CHECK(dist_sum(d, s, 2, &err) == FA_OK && s[0] == 1.5 && s[1] == -2);
    float mine[3] = {1, 2, 3}, all[3] = {0};
    int counts[1] = {3};
    CHECK(dist_allgather_floats(d, mine, 3, counts, all, &err) == FA_OK && !memcmp(mine, all, sizeof all));
    int units[1] = {2};
    graph_param *rm = graph_param_find(g, "bn1.running_mean");
    float before = rm->data[1];
    CHECK(dist_bn_snapshot(d, g, &err) == FA_OK);
    CHECK(dist_bn_combine(d, g, units, 0.1, &err) == FA_OK && rm->data[1] == before);

    uint64_t h0 = dist_param_checksum(g);
    CHECK(h0 == dist_param_checksum(g));
    w->data[5] += 1e-6f;
    uint64_t h1 = dist_param_checksum(g);
    CHECK(h1 != h0);
    graph_param *nb = graph_param_find(g, "bn1.num_batches_tracked");
    CHECK(nb && nb->kind == GRAPH_PARAM_COUNTER);
    nb->count++;
    CHECK(dist_param_checksum(g) != h1);
    CHECK(dist_check_params(d, g, "now", &err) == FA_OK);

    graph_free(g);
    dist_finalize(d);
    return fa_test_finish("dist_local");
}
