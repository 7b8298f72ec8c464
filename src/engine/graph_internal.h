/* graph_internal.h - the graph's node records, shared by graph.c and the
 * executor (exec.c) only; model builders use graph.h.
 *
 * Nodes are stored in creation order, which is a topological order because
 * every op can only consume values that already exist. Node i produces value
 * i; node 0 is the graph input.
 */
#ifndef FA_GRAPH_INTERNAL_H
#define FA_GRAPH_INTERNAL_H

#include "engine/graph.h"

/* Indices into graph_node.param; -1 when the op has no such parameter. */
enum {
    GRAPH_P_WEIGHT = 0,
    GRAPH_P_BIAS,
    GRAPH_P_RUNNING_MEAN,
    GRAPH_P_RUNNING_VAR,
    GRAPH_P_NUM_BATCHES,
    GRAPH_P_COUNT
};

typedef struct graph_node {
    graph_op op;
    int c, h, w;              /* output shape without batch */
    int n_in;
    graph_value *in;          /* n_in input values (owned) */
    char name[GRAPH_NAME_MAX];   /* value name from graph_set_name ("" if none) */
    char module[GRAPH_NAME_MAX]; /* module path of parametrised ops ("" otherwise) */
    graph_conv_opts conv;     /* GRAPH_OP_CONV2D */
    graph_pool_opts pool;     /* GRAPH_OP_MAX_POOL / GRAPH_OP_AVG_POOL */
    float eps, momentum;      /* GRAPH_OP_BATCH_NORM */
    float p;                  /* GRAPH_OP_DROPOUT */
    float *affine_scale;      /* GRAPH_OP_CHANNEL_AFFINE: c floats (owned) */
    float *affine_shift;
    int param[GRAPH_P_COUNT]; /* indices into the graph's parameter list */
} graph_node;

typedef struct graph_output {
    char name[GRAPH_NAME_MAX];
    graph_value v;
    int training_only;
} graph_output;

/* Read-only access for the executor. */
int graph_node_count(const fa_graph *g);
const graph_node *graph_node_at(const fa_graph *g, int i);
int graph_output_count(const fa_graph *g);
const graph_output *graph_output_at(const fa_graph *g, int i);

#endif
