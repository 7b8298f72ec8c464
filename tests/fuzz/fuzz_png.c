/* fuzz_png.c - libFuzzer target for the PNG path (and, through image_load's
 * content sniffing, JPEG): arbitrary bytes must load or be refused with a
 * message, never crash, leak or hang. */
#include <stdint.h>
#include <string.h>

#include "data/image.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(data, size, ".png");
    if (!path) return 0;
    fa_image im;
    fa_error err;
    int depth = 0;
    if (image_read_png(path, &im, &depth, &err) == FA_OK) {
        if (!im.pixels || (depth != 8 && depth != 16)) __builtin_trap();
        image_free(&im);
    } else if (im.pixels || !strstr(err.msg, path)) {
        __builtin_trap();
    }
    char warn[256] = "";
    if (image_load(path, &im, warn, sizeof warn, &err) == FA_OK) image_free(&im);
    return 0;
}
