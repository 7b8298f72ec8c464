/* dist.h - data-parallel training across processes with MPI (Open MPI):
 * process group, gradient all-reduce in buckets, BatchNorm running-statistics
 * composition, parameter broadcast and checksums, status agreement between
 * ranks and a watchdog that ends a job whose collective hangs. Every MPI call
 * of freeair lives in dist.c.
 *
 * MPI is initialised only when the process was started by mpirun/mpiexec
 * (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK in the environment); otherwise
 * dist_init gives a one-rank group that makes no MPI call at all, so
 * `freeair train` without mpirun behaves exactly as before.
 *
 * Collective functions must be called by every rank in the same order. The
 * watchdog aborts the whole job (MPI_Abort) when one collective waits longer
 * than FREEAIR_DIST_TIMEOUT seconds (default 600): a rank died or hangs.
 * See docs/distributed.md for the semantics.
 */
#ifndef FA_DIST_H
#define FA_DIST_H

#include <stdint.h>

#include "core/fa_status.h"
#include "engine/exec.h"
#include "engine/graph.h"
#include "engine/optim.h"

typedef struct dist dist;

/* Join the job's process group (or make a one-rank group outside mpirun).
 * *out is owned by the caller (dist_finalize). MPI can be initialised once
 * per process: a second dist_init under mpirun after dist_finalize fails with
 * FA_ERR_UNSUPPORTED; a failing MPI_Init_thread gives FA_ERR_BACKEND. */
fa_status dist_init(dist **out, fa_error *err);
/* Stop the watchdog, MPI_Finalize (when initialised), free. NULL is fine. */
void dist_finalize(dist *d);

int dist_rank(const dist *d);
int dist_size(const dist *d);
/* 1 when a failure was agreed by all ranks (dist_agree / dist_check_params
 * returned an error): every rank leaves in step and may finalize normally. */
int dist_failed_together(const dist *d);

/* End the whole job now: prints "freeair: rank R: msg" to stderr and calls
 * MPI_Abort. For failures other ranks do not know about (they would wait in
 * their next collective). Outside MPI it only returns. */
void dist_abort(dist *d, const char *msg);

/* Collective. Returns local (with its message) when this rank failed; else
 * the status of the lowest failing rank with "rank R failed (...)"; FA_OK when
 * every rank passed FA_OK. */
fa_status dist_agree(dist *d, fa_status local, const char *what, fa_error *err);

/* Collective: copy rank 0's parameters, buffers, counters and (where
 * started) momentum buffers to every rank. */
fa_status dist_broadcast_state(dist *d, fa_graph *g, optim_sgd *opt, fa_error *err);

/* Collective: sum the trainable gradients over ranks in buckets of
 * bucket_bytes (0 = 8 MiB), in graph order on every rank. The callers scale
 * each micro-batch's loss by n_c / (global batch), so the sum is the
 * gradient of the global mean loss. *bytes (may be NULL) gets the payload
 * size of one all-reduce. */
fa_status dist_allreduce_grads(dist *d, fa_graph *g, size_t bucket_bytes, int64_t *bytes, fa_error *err);

/* The same all-reduce, overlapped with the backward pass of a step's last
 * micro-batch. Every rank calls, in this order:
 *   dist_grads_arm   before that micro-batch (local): plans the buckets,
 *                    which are those of dist_allreduce_grads (graph order,
 *                    bucket_bytes, 0 = 8 MiB);
 *   (backward, where the executor's grads_done hook - dist_exec_hooks -
 *    packs each finished parameter gradient and starts the all-reduce of
 *    every complete bucket: the last bucket first, strictly in descending
 *    bucket order, so the start order is the same on every rank)
 *   dist_grads_start after the micro-batches, also on a rank whose step
 *                    failed (it arms when needed, so bucket_bytes must be
 *                    the same as arm's): packs the rest and starts
 *                    every bucket not started yet, in the same order;
 *   dist_grads_wait  collective: waits for all buckets and copies the sums
 *                    back into the gradients; *bytes and *early (may be
 *                    NULL) get the payload and the number of buckets that
 *                    were started during the backward pass.
 * The sums are bit-identical to dist_allreduce_grads' (same buckets, same
 * counts, same reduction). Blocking collectives (dist_agree, dist_sum) may
 * run between start and wait. With FREEAIR_DIST_OVERLAP=0 in the
 * environment the hook is not installed and everything starts in
 * dist_grads_start (for comparison and measurement). One rank: no-ops. */
fa_status dist_grads_arm(dist *d, fa_graph *g, size_t bucket_bytes, fa_error *err);
fa_status dist_grads_start(dist *d, fa_graph *g, size_t bucket_bytes, fa_error *err);
fa_status dist_grads_wait(dist *d, fa_graph *g, int64_t *bytes, int *early, fa_error *err);

/* Executor hooks of this process group (exec_set_hooks): sync_bn = 1 adds
 * the synchronised-BatchNorm pair (per-channel count, sum and sum of squares
 * all-reduced in double in forward; the two gradient sums in backward);
 * the grads_done hook of the overlapped all-reduce is added unless
 * FREEAIR_DIST_OVERLAP=0. One rank: every member NULL (nothing changes).
 * The hooks are collectives: every rank must run the same passes. */
void dist_exec_hooks(dist *d, int sync_bn, exec_hooks *h);
/* 1 when the grads_done hook is installed by dist_exec_hooks. */
int dist_overlap(const dist *d);

/* Collective: element-wise sum of n doubles, in place. */
fa_status dist_sum(dist *d, double *v, int n, fa_error *err);

/* BatchNorm running statistics. dist_bn_snapshot (local) records the
 * buffers and counters before a step; dist_bn_combine (collective) replaces
 * them with the result of applying every rank's micro-batch updates one
 * after another in rank order, as one process accumulating the same
 * micro-batches would: with momentum m and A_j micro-batches on rank j,
 *   r = (1-m)^(sum A) r0 + sum_j (1-m)^(sum_{i>j} A_i) (r_j - (1-m)^(A_j) r0),
 * and num_batches_tracked = count0 + sum_j (count_j - count0).
 * units[j] = A_j for every rank j; momentum is the BN momentum (0.1 in all
 * torchvision models). */
fa_status dist_bn_snapshot(dist *d, fa_graph *g, fa_error *err);
fa_status dist_bn_combine(dist *d, fa_graph *g, const int *units, double momentum, fa_error *err);

/* Collective: every rank passes its n_mine floats; all (sum of counts[])
 * gets them concatenated in rank order. counts[j] = rank j's count. */
fa_status dist_allgather_floats(dist *d, const float *mine, int n_mine, const int *counts, float *all,
                                fa_error *err);

/* Checksum of all parameter values, buffers and counters (FNV-1a over the
 * bytes): equal on two ranks iff, barring collisions, the models are equal. */
uint64_t dist_param_checksum(fa_graph *g);

/* Collective: compare the ranks' checksums; a difference is an error naming
 * the first differing rank and `when` (e.g. "after epoch 3"). */
fa_status dist_check_params(dist *d, fa_graph *g, const char *when, fa_error *err);

#endif
