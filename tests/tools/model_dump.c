/* model_dump.c - print a model graph's parameters and named values, for
 * comparison with torchvision's state_dict and module output shapes
 * (tests/integration/test_parity_names.sh).
 *
 * usage: model_dump ARCH [SIZE] [--no-aux] [--init SEED]
 * Output lines: "param NAME KIND D0 D1 ..." (KIND trainable|buffer|counter)
 * and "value NAME C H W" for every named value and output. With --init, also
 * "stat NAME MEAN STD MIN MAX" of each parameter after model_init_weights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/graph.h"
#include "models/model.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: model_dump ARCH [SIZE] [--no-aux] [--init SEED]\n");
        return 2;
    }
    model_options o = model_default_options();
    long long seed = -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--no-aux")) o.aux_logits = 0;
        else if (!strcmp(argv[i], "--init") && i + 1 < argc) seed = atoll(argv[++i]);
        else o.image_size = atoi(argv[i]);
    }
    fa_graph *g = NULL;
    fa_error err = {0};
    if (model_build(&g, argv[1], &o, &err)) {
        fprintf(stderr, "model_dump: %s\n", err.msg);
        return 1;
    }
    static const char *const kinds[] = {"trainable", "buffer", "counter"};
    for (int i = 0; i < graph_param_count(g); i++) {
        const graph_param *p = graph_param_at(g, i);
        printf("param %s %s", p->name, kinds[p->kind]);
        for (int d = 0; d < p->ndim; d++) printf(" %lld", (long long)p->shape[d]);
        printf("\n");
    }
    for (int v = 0; v < graph_value_count(g); v++) {
        const char *name = graph_value_name(g, v);
        if (!name[0]) continue;
        int c, h, w;
        graph_value_shape(g, v, &c, &h, &w);
        printf("value %s %d %d %d\n", name, c, h, w);
    }
    static const char *const outs[] = {"logits", "aux_logits"};
    for (int k = 0; k < 2; k++) {
        graph_value v = graph_find(g, outs[k]);
        if (v < 0) continue;
        int c, h, w;
        graph_value_shape(g, v, &c, &h, &w);
        printf("value %s %d %d %d\n", outs[k], c, h, w);
    }
    if (seed >= 0) {
        if (model_init_weights(g, argv[1], (uint64_t)seed, &err)) {
            fprintf(stderr, "model_dump: %s\n", err.msg);
            graph_free(g);
            return 1;
        }
        for (int i = 0; i < graph_param_count(g); i++) {
            const graph_param *p = graph_param_at(g, i);
            if (p->kind == GRAPH_PARAM_COUNTER) continue;
            double s = 0, s2 = 0, mn = INFINITY, mx = -INFINITY;
            for (int64_t j = 0; j < p->numel; j++) {
                double x = p->data[j];
                s += x;
                s2 += x * x;
                if (x < mn) mn = x;
                if (x > mx) mx = x;
            }
            double mean = s / (double)p->numel;
            double var = p->numel > 1 ? (s2 - s * mean) / (double)(p->numel - 1) : 0.0;
            printf("stat %s %.9g %.9g %.9g %.9g\n", p->name, mean, sqrt(var > 0 ? var : 0), mn, mx);
        }
    }
    graph_free(g);
    return 0;
}
