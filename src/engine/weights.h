/* weights.h - safetensors reading and writing for graph parameters and
 * checkpoints.
 *
 * Format: 8-byte little-endian header length, a JSON header mapping tensor
 * names to {dtype, shape, data_offsets} plus an optional "__metadata__" map of
 * strings, then the raw data. Every length and offset read from a file is
 * overflow- and bounds-checked before use. Supported dtypes: F32, F16, BF16
 * (converted to fp32 on load) and I64 (num_batches_tracked).
 */
#ifndef FA_WEIGHTS_H
#define FA_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"
#include "engine/graph.h"

typedef enum weights_dtype { WEIGHTS_F32, WEIGHTS_F16, WEIGHTS_BF16, WEIGHTS_I64 } weights_dtype;

typedef struct weights_tensor {
    char *name;
    weights_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t offset; /* into the data section */
    size_t nbytes;
} weights_tensor;

typedef struct weights_file weights_file; /* a parsed, fully read file */

fa_status weights_open(weights_file **out, const char *path, fa_error *err);
void weights_close(weights_file *f);
int weights_count(const weights_file *f);
const weights_tensor *weights_at(const weights_file *f, int i);
const weights_tensor *weights_find(const weights_file *f, const char *name);
/* Convert tensor to fp32 (I64 converted too); dst has numel floats. */
fa_status weights_read_f32(const weights_file *f, const weights_tensor *t, float *dst, fa_error *err);
/* Exact integers (I64 tensors; F32/F16/BF16 tensors holding whole numbers
 * are accepted too): num_batches_tracked, step counters. */
fa_status weights_read_i64(const weights_file *f, const weights_tensor *t, int64_t *dst, fa_error *err);
/* Parse an in-memory safetensors image (copied; name is used in messages):
 * the fuzzing entry point, same checks as weights_open. */
fa_status weights_parse_buffer(weights_file **out, const char *name, const void *data, size_t len,
                               fa_error *err);
/* Path (or buffer name) the file was opened from. */
const char *weights_path(const weights_file *f);
/* Number of elements of a parsed tensor (product of its shape; 1 for []). */
int64_t weights_numel(const weights_tensor *t);
/* "F32", "F16", "BF16", "I64"; bytes per element. */
const char *weights_dtype_name(weights_dtype d);
size_t weights_dtype_size(weights_dtype d);
/* IEEE half and bfloat16 to fp32 (exact: every value is representable). */
float weights_f16_to_f32(uint16_t h);
float weights_bf16_to_f32(uint16_t b);
/* Extra tensors (e.g. optimiser momentum "optim.momentum.<param>") live in
 * the same file; metadata value for key, or NULL. */
const char *weights_metadata(const weights_file *f, const char *key);

typedef struct weights_load_opts {
    /* Prefix of the head to skip when it does not match ("fc", "classifier");
     * NULL = every tensor must match. A parameter is in the head when its
     * module path is the prefix or ends with ".<prefix>" (so Inception's
     * "AuxLogits.fc" goes with "fc"); a head that is missing or mismatched in
     * the file is skipped as a whole and left for model_init_head. */
    const char *drop_head_prefix;
    int allow_missing_buffers; /* tolerate missing num_batches_tracked */
} weights_load_opts;

/* Load every graph parameter from f (all-or-nothing). File tensors named
 * "optim.*" are ignored; any other tensor the graph lacks is a mismatch.
 * Mismatched names or shapes give
 * FA_ERR_SHAPE/FA_ERR_NOT_FOUND with a message listing the mismatches.
 * *head_dropped is set to 1 when the head was skipped (may be NULL). */
fa_status weights_load_graph(fa_graph *g, const weights_file *f, const weights_load_opts *o,
                             int *head_dropped, fa_error *err);

/* Writing: collect tensors, then write atomically (temp file in the same
 * directory, fsync, rename, fsync directory). Data is copied at add time. */
typedef struct weights_writer weights_writer;
weights_writer *weights_writer_create(void);
void weights_writer_free(weights_writer *w);
fa_status weights_writer_add_f32(weights_writer *w, const char *name, int ndim, const int64_t *shape,
                                 const float *data, fa_error *err);
fa_status weights_writer_add_i64(weights_writer *w, const char *name, int ndim, const int64_t *shape,
                                 const int64_t *data, fa_error *err);
fa_status weights_writer_add_graph(weights_writer *w, fa_graph *g, fa_error *err);
fa_status weights_writer_set_metadata(weights_writer *w, const char *key, const char *value, fa_error *err);
fa_status weights_writer_save(weights_writer *w, const char *path, fa_error *err);

#endif
