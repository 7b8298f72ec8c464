/* exec.h - runs a graph on oneDNN for one batch size and precision.
 *
 * An executor is created once per (graph, batch, precision, mode); it creates
 * every oneDNN primitive once, plans activation memory by liveness, and is
 * then run many times. Inputs and outputs cross this boundary as plain fp32
 * NCHW; inside, layouts are whatever the primitives prefer (blocked, bf16).
 *
 * Modes:
 *  - training = 0: BN uses running statistics, dropout is identity,
 *    training-only outputs (Inception aux) are not computed.
 *  - training = 1: BN uses batch statistics (biased variance to normalise)
 *    and updates the graph's running_mean/var (unbiased variance, momentum)
 *    and num_batches_tracked in exec_forward.
 *  - keep_for_backward = 1: activations and workspaces needed by
 *    exec_backward are kept. Allowed with training = 0 too (Grad-CAM on a
 *    model in eval mode).
 *
 * Precision bf16: fp32 master weights in the graph; the executor converts
 * them to bf16 for compute, computes activations in bf16 and accumulates
 * gradients into the graph's fp32 grad buffers. exec_bf16_supported() tells
 * whether the CPU runs bf16 natively (AVX512-BF16/AMX); if it does not, bf16
 * still works through oneDNN's emulation or exec_create reports
 * FA_ERR_UNSUPPORTED with a reason, never garbage.
 */
#ifndef FA_EXEC_H
#define FA_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"
#include "engine/graph.h"

typedef enum fa_precision { FA_PRECISION_FP32 = 0, FA_PRECISION_BF16 = 1 } fa_precision;

/* Hooks for data-parallel training: the engine stays free of MPI; the
 * trainer's distribution layer (src/train/dist.c) implements them. Every
 * member may be NULL. They are called on the thread that runs the executor,
 * in the same order on every process that runs the same graph.
 *
 * bn_stats (training executors): synchronised BatchNorm. After a BatchNorm
 *   node has computed its batch statistics, mean and var (biased) hold the
 *   node's local values over *count values per channel; the hook replaces
 *   them by the statistics of the union of all processes' batches and *count
 *   by that union's size. The node normalises with them, updates the running
 *   statistics with the unbiased global variance, and in backward calls
 * bn_grad_sums with sums[0..C) = local sum(dy * xhat) and sums[C..2C) =
 *   local sum(dy); the hook replaces them by the sums over all processes, and
 *   the input gradient uses them with the global count. The BatchNorm weight
 *   and bias gradients keep the LOCAL sums, so that the usual gradient
 *   all-reduce (a sum) gives the global ones exactly once.
 * grads_done (training executors): after each node's backward, in the
 *   backward order, with the graph parameter indices (trainable, with a
 *   gradient) whose gradient that node has just finished accumulating; lets
 *   a gradient all-reduce start while backward goes on. */
typedef struct exec_hooks {
    void *ctx;
    fa_status (*bn_stats)(void *ctx, int channels, double *count, float *mean, float *var, fa_error *err);
    fa_status (*bn_grad_sums)(void *ctx, int channels, float *sums, fa_error *err);
    fa_status (*grads_done)(void *ctx, const int *params, int n, fa_error *err);
} exec_hooks;

typedef struct exec_options {
    int batch;
    fa_precision precision;
    int training;
    int keep_for_backward;
    uint64_t seed; /* dropout RNG */
} exec_options;

typedef struct fa_exec fa_exec;

/* The graph is borrowed and must outlive the executor; its parameters are read
 * at every exec_forward (so optimiser updates are seen) and its gradients are
 * accumulated by exec_backward. */
fa_status exec_create(fa_exec **out, fa_graph *g, const exec_options *o, fa_error *err);
void exec_free(fa_exec *e);

/* input: batch x C x H x W fp32 NCHW (the graph's input shape). */
fa_status exec_forward(fa_exec *e, const float *input, fa_error *err);

/* Copy a computed value (an output or any named/kept value) to dst as fp32
 * NCHW, batch x C x H x W. Values other than outputs are only available when
 * requested with exec_keep_value, or, with keep_for_backward, when they are
 * named (graph_set_name); others give FA_ERR_NOT_FOUND (their memory is
 * reused). */
fa_status exec_read_value(fa_exec *e, graph_value v, float *dst, fa_error *err);
fa_status exec_read_output(fa_exec *e, const char *name, float *dst, fa_error *err);
/* Keep value v alive after each forward so that exec_read_value can read it
 * (named values of a keep_for_backward executor are kept anyway). Called
 * after a forward, it takes effect from the next exec_forward. */
fa_status exec_keep_value(fa_exec *e, graph_value v, fa_error *err);

/* Backward from the given output gradients (fp32 NCHW, one per named output;
 * a NULL entry means zero). Accumulates (+=) into the graph's grad buffers.
 * Requires keep_for_backward. */
fa_status exec_backward(fa_exec *e, int n, const char *const *output_names,
                        const float *const *output_grads, fa_error *err);

/* Request that the gradient with respect to value v be kept by the next
 * exec_backward (Grad-CAM), then read it as fp32 NCHW. */
fa_status exec_keep_value_grad(fa_exec *e, graph_value v, fa_error *err);
fa_status exec_read_value_grad(fa_exec *e, graph_value v, float *dst, fa_error *err);

/* Install hooks (copied; h->ctx is borrowed and must outlive their use;
 * NULL removes them). Only for training executors with keep_for_backward.
 * Setting or clearing bn_stats re-creates the BatchNorm nodes (synchronised
 * ones run a second normalisation pass with the global statistics and keep
 * one more buffer during their backward) and re-plans memory at the next
 * exec_forward. */
fa_status exec_set_hooks(fa_exec *e, const exec_hooks *h, fa_error *err);

/* Weight cache. Off (default): every exec_forward converts the graph's fp32
 * weights into the compute layout/precision, so any change to the graph's
 * parameters is seen. On: the converted weights are kept between forwards
 * (more memory: one converted copy of every convolution/linear weight) and
 * converted again only after exec_params_changed(e); the caller must call it
 * after anything writes the parameters (optim_sgd_step, weight loading).
 * Meant for inference and for gradient accumulation within one optimiser
 * step. Switching it re-plans memory at the next exec_forward. */
fa_status exec_set_weight_cache(fa_exec *e, int on, fa_error *err);
void exec_params_changed(fa_exec *e);

/* Bytes of activation, workspace and scratch memory held by the executor. */
size_t exec_memory_bytes(const fa_exec *e);

/* 1 if the CPU has native bf16 (AVX512-BF16 or AMX) as oneDNN sees it. */
int exec_bf16_supported(void);

/* Number of OpenMP threads oneDNN uses (0 = leave the default). */
void exec_set_threads(int n);

#endif
