/* test_models_preprocess.c - grey image to normalised tensor.
 *
 * Reference: torchvision's ToTensor + Normalize on a grey image replicated to
 * RGB, i.e. (v8 / 255.0f - mean[c]) / std[c] in fp32 for 8-bit sources
 * (stored as v8 * 257) and v16 / 65535 for 16-bit ones.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fa_test.h"
#include "models/preprocess.h"

FA_TEST_MAIN_STATE

int main(void) {
    fa_image im;
    memset(&im, 0, sizeof im);
    fa_error err = {0};
    CHECK(image_alloc(&im, 16, 16, &err) == FA_OK);
    for (int i = 0; i < 256; i++) im.pixels[i] = (uint16_t)(i * 257);
    float *t = malloc(3 * 256 * sizeof(float));
    CHECK(preprocess_image(&im, 16, 16, t, &err) == FA_OK);
    int exact8 = 0;
    for (int i = 0; i < 256; i++) {
        float u = (float)i / 255.0f; /* ToTensor */
        exact8 += preprocess_unit(im.pixels[i]) == u;
        for (int c = 0; c < 3; c++) {
            float want = (u - preprocess_imagenet_mean[c]) / preprocess_imagenet_std[c];
            CHECK_MSG(t[c * 256 + i] == want, "value %d channel %d: %.9g vs %.9g", i, c, t[c * 256 + i], want);
        }
    }
    CHECK_MSG(exact8 == 256, "%d of 256 8-bit values equal v/255", exact8);
    /* 16-bit extremes and the ImageNet constants. */
    CHECK(preprocess_unit(0) == 0.0f && preprocess_unit(65535) == 1.0f);
    CHECK_CLOSE(preprocess_unit(32768), 32768.0 / 65535.0, 1e-7, 0);
    CHECK(preprocess_imagenet_mean[1] == 0.456f && preprocess_imagenet_std[2] == 0.225f);
    /* Wrong size: FA_ERR_SHAPE with both sizes in the message. */
    CHECK(preprocess_image(&im, 16, 17, t, &err) == FA_ERR_SHAPE);
    CHECK(strstr(err.msg, "16x16") && strstr(err.msg, "16x17"));
    CHECK(preprocess_image(NULL, 16, 16, t, &err) == FA_ERR_ARG);
    image_free(&im);
    free(t);
    return fa_test_finish("test_models_preprocess");
}
