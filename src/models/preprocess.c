/* preprocess.c - grey image to normalised 3-channel tensor (see preprocess.h). */
#include "models/preprocess.h"

#include <stddef.h>

const float preprocess_imagenet_mean[PREPROCESS_CHANNELS] = {0.485f, 0.456f, 0.406f};
const float preprocess_imagenet_std[PREPROCESS_CHANNELS] = {0.229f, 0.224f, 0.225f};

float preprocess_unit(uint16_t v) {
    /* Divide in double and round once: for an 8-bit source (v = v8 * 257)
     * this gives exactly the float that v8 / 255.0f gives, so PNG8 inputs
     * match torchvision's ToTensor bit for bit. */
    return (float)((double)v / 65535.0);
}

fa_status preprocess_image(const fa_image *im, int width, int height, float *dst, fa_error *err) {
    if (!im || !im->pixels || !dst) return fa_error_set(err, FA_ERR_ARG, "preprocess: no image");
    if (im->width != width || im->height != height)
        return fa_error_set(err, FA_ERR_SHAPE, "image is %dx%d, the model expects %dx%d", im->width, im->height,
                            width, height);
    size_t plane = (size_t)width * (size_t)height;
    /* A 65536-entry table would be faster for big batches; the division is
     * not the bottleneck next to the network. */
    for (size_t i = 0; i < plane; i++) {
        float u = preprocess_unit(im->pixels[i]);
        for (int c = 0; c < PREPROCESS_CHANNELS; c++)
            dst[(size_t)c * plane + i] = (u - preprocess_imagenet_mean[c]) / preprocess_imagenet_std[c];
    }
    return FA_OK;
}
