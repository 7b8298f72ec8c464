/* fuzz_safetensors.c - libFuzzer target for the safetensors parser.
 *
 * Any input must be either refused with a message or parsed into tensors
 * whose byte ranges lie inside the buffer; every accepted tensor is then
 * converted to fp32 (and to int64) so that the conversion paths run on
 * hostile data under ASan/UBSan too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    weights_file *f = NULL;
    fa_error err = {0};
    if (weights_parse_buffer(&f, "fuzz", data, size, &err) != FA_OK) {
        if (f || !err.msg[0]) abort(); /* refusals carry a reason and no file */
        return 0;
    }
    for (int i = 0; i < weights_count(f); i++) {
        const weights_tensor *t = weights_at(f, i);
        int64_t n = weights_numel(t);
        if (n < 0 || (size_t)n * weights_dtype_size(t->dtype) != t->nbytes || t->offset + t->nbytes > size)
            abort();
        /* Parsed sizes are bounded by the input, so this cannot be huge. */
        float *fv = malloc((size_t)n * sizeof(float) + 1);
        int64_t *iv = malloc((size_t)n * sizeof(int64_t) + 1);
        if (fv && iv) {
            if (weights_read_f32(f, t, fv, &err) != FA_OK) abort();
            (void)weights_read_i64(f, t, iv, &err); /* may refuse non-integers */
        }
        free(fv);
        free(iv);
        if (weights_find(f, t->name) == NULL) abort();
    }
    (void)weights_metadata(f, "arch");
    weights_close(f);
    return 0;
}
