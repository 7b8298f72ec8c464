/* test_weights_graph.c - loading and saving graph parameters by torchvision
 * name: exact round trip, ImageNet head dropping, and mismatch reporting.
 *
 * Properties checked: a saved graph loads back bit for bit (counters
 * included); a 1000-class file loads into a 1-output model only when the head
 * may be dropped, which then covers Inception's AuxLogits.fc too; every other
 * mismatch (missing, unexpected, wrong shape, wrong dtype) fails without
 * touching the graph and names the file and the tensors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "engine/graph.h"
#include "engine/weights.h"
#include "models/model.h"

FA_TEST_MAIN_STATE

static char g_dir[256];

static fa_graph *build(const char *arch, int classes, uint64_t seed) {
    model_options o = model_default_options();
    o.num_classes = classes;
    fa_graph *g = NULL;
    fa_error err = {0};
    if (model_build(&g, arch, &o, &err) || model_init_weights(g, arch, seed, &err)) {
        fprintf(stderr, "%s: %s\n", arch, err.msg);
        exit(1);
    }
    return g;
}

static void save(fa_graph *g, const char *path, const char *skip, const char *extra) {
    fa_error err = {0};
    weights_writer *w = weights_writer_create();
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (skip && !strcmp(p->name, skip)) continue;
        fa_status st = p->kind == GRAPH_PARAM_COUNTER
                           ? weights_writer_add_i64(w, p->name, 0, NULL, &p->count, &err)
                           : weights_writer_add_f32(w, p->name, p->ndim, p->shape, p->data, &err);
        CHECK(st == FA_OK);
    }
    if (extra) {
        int64_t one = 1;
        float v = 1.0f;
        CHECK(weights_writer_add_f32(w, extra, 1, &one, &v, &err) == FA_OK);
    }
    CHECK_MSG(weights_writer_save(w, path, &err) == FA_OK, "%s", err.msg);
    weights_writer_free(w);
}

static int same_params(fa_graph *a, fa_graph *b, const char *except_prefix) {
    int differ = 0;
    for (int i = 0; i < graph_param_count(a); i++) {
        graph_param *pa = graph_param_at(a, i), *pb = graph_param_find(b, pa->name);
        if (except_prefix && strstr(pa->name, except_prefix)) continue;
        if (!pb) {
            differ++;
            continue;
        }
        if (pa->kind == GRAPH_PARAM_COUNTER) differ += pa->count != pb->count;
        else differ += memcmp(pa->data, pb->data, (size_t)pa->numel * sizeof(float)) != 0;
    }
    return differ;
}

static fa_status load(fa_graph *g, const char *path, const char *drop, int allow_missing, int *dropped,
                      fa_error *err) {
    weights_file *f = NULL;
    fa_status st = weights_open(&f, path, err);
    if (st) return st;
    weights_load_opts o = {drop, allow_missing};
    st = weights_load_graph(g, f, &o, dropped, err);
    weights_close(f);
    return st;
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/fa_weights_graph_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", g_dir);
    fa_error err = {0};
    int dropped = -1;

    /* Round trip through weights_writer_add_graph, counters included. */
    fa_graph *a = build("resnet18", 1, 1), *b = build("resnet18", 1, 2);
    graph_param_find(a, "layer2.0.bn1.num_batches_tracked")->count = 12345;
    weights_writer *w = weights_writer_create();
    CHECK(weights_writer_add_graph(w, a, &err) == FA_OK);
    CHECK(weights_writer_save(w, path, &err) == FA_OK);
    weights_writer_free(w);
    CHECK(same_params(a, b, NULL) > 0);
    CHECK_MSG(load(b, path, NULL, 0, &dropped, &err) == FA_OK, "%s", err.msg);
    CHECK(dropped == 0);
    CHECK(same_params(a, b, NULL) == 0);
    weights_file *f = NULL;
    CHECK(weights_open(&f, path, &err) == FA_OK);
    if (f) {
        const weights_tensor *t = weights_find(f, "bn1.num_batches_tracked");
        CHECK(t && t->dtype == WEIGHTS_I64 && t->ndim == 0);
        weights_close(f);
    }

    /* ImageNet-style 1000-class file into a 1-output model. */
    fa_graph *imagenet = build("resnet18", 1000, 3);
    save(imagenet, path, NULL, NULL);
    fa_graph *c = build("resnet18", 1, 4), *c0 = build("resnet18", 1, 4);
    CHECK(load(c, path, NULL, 0, &dropped, &err) == FA_ERR_SHAPE);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "fc.weight") && strstr(err.msg, "[1000, 512]"));
    CHECK(strstr(err.msg, "fc.bias") != NULL);
    CHECK(same_params(c, c0, NULL) == 0); /* failed load leaves the graph alone */
    CHECK_MSG(load(c, path, "fc", 0, &dropped, &err) == FA_OK, "%s", err.msg);
    CHECK(dropped == 1);
    CHECK(same_params(imagenet, c, "fc.") == 0);
    /* The head kept its own values, ready for model_init_head. */
    CHECK(!memcmp(graph_param_find(c, "fc.weight")->data, graph_param_find(c0, "fc.weight")->data, 512 * 4));
    /* A matching head is loaded, not dropped. */
    save(a, path, NULL, NULL);
    CHECK(load(c, path, "fc", 0, &dropped, &err) == FA_OK && dropped == 0);
    CHECK(same_params(a, c, NULL) == 0);

    /* Inception: the aux head's fc goes with the main head. */
    fa_graph *inc1000 = build("inception_v3", 1000, 5), *inc1 = build("inception_v3", 1, 6);
    save(inc1000, path, NULL, NULL);
    CHECK(load(inc1, path, NULL, 0, &dropped, &err) == FA_ERR_SHAPE);
    CHECK(strstr(err.msg, "AuxLogits.fc.weight") != NULL);
    CHECK_MSG(load(inc1, path, "fc", 0, &dropped, &err) == FA_OK, "%s", err.msg);
    CHECK(dropped == 1);
    CHECK(same_params(inc1000, inc1, "fc.") == 0);
    graph_free(inc1000);
    graph_free(inc1);

    /* Missing tensor; tolerated only for counters when asked. */
    save(a, path, "layer3.1.conv2.weight", NULL);
    CHECK(load(c, path, NULL, 0, &dropped, &err) == FA_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "missing 'layer3.1.conv2.weight'") != NULL);
    save(a, path, "layer3.1.bn2.num_batches_tracked", NULL);
    CHECK(load(c, path, NULL, 0, &dropped, &err) == FA_ERR_NOT_FOUND);
    CHECK(load(c, path, NULL, 1, &dropped, &err) == FA_OK);
    /* Unexpected tensors are errors, except optimiser state. */
    save(a, path, NULL, "layer9.0.conv1.weight");
    CHECK(load(c, path, NULL, 0, &dropped, &err) == FA_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "unexpected 'layer9.0.conv1.weight'") != NULL);
    save(a, path, NULL, "optim.momentum.fc.weight");
    CHECK(load(c, path, NULL, 0, &dropped, &err) == FA_OK);
    /* A different architecture: one line, many mismatches, summarised. */
    fa_graph *r50 = build("resnet50", 1, 7);
    save(r50, path, NULL, NULL);
    CHECK(load(c, path, "fc", 0, &dropped, &err) == FA_ERR_SHAPE);
    CHECK(strstr(err.msg, "more") != NULL && strchr(err.msg, '\n') == NULL);
    graph_free(r50);

    /* A float parameter stored as I64 is refused. */
    {
        weights_writer *iw = weights_writer_create();
        for (int i = 0; i < graph_param_count(a); i++) {
            graph_param *p = graph_param_at(a, i);
            int64_t z = 0;
            if (!strcmp(p->name, "fc.bias")) CHECK(weights_writer_add_i64(iw, p->name, 1, p->shape, &z, &err) == 0);
            else if (p->kind == GRAPH_PARAM_COUNTER)
                CHECK(weights_writer_add_i64(iw, p->name, 0, NULL, &p->count, &err) == 0);
            else CHECK(weights_writer_add_f32(iw, p->name, p->ndim, p->shape, p->data, &err) == 0);
        }
        CHECK(weights_writer_save(iw, path, &err) == FA_OK);
        weights_writer_free(iw);
        CHECK(load(c, path, NULL, 0, &dropped, &err) == FA_ERR_SHAPE);
        CHECK(strstr(err.msg, "'fc.bias' is I64") != NULL);
    }

    graph_free(a);
    graph_free(b);
    graph_free(c);
    graph_free(c0);
    graph_free(imagenet);
    unlink(path);
    rmdir(g_dir);
    return fa_test_finish("test_weights_graph");
}
