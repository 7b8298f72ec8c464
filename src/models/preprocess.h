/* preprocess.h - from a display-ready grey image to the network's input.
 *
 * The one place where pixels become a tensor, shared by predict, training,
 * evaluation and the triage service so that they can never disagree: the
 * 16-bit grey value is scaled to [0, 1] (v / 65535, which equals v8 / 255 for
 * 8-bit sources stored as v8 * 257), replicated to three channels and
 * normalised with the ImageNet mean and standard deviation, as torchvision's
 * ToTensor + Normalize do for a grey image converted to RGB.
 */
#ifndef FA_PREPROCESS_H
#define FA_PREPROCESS_H

#include "core/fa_status.h"
#include "data/image.h"

#define PREPROCESS_CHANNELS 3

extern const float preprocess_imagenet_mean[PREPROCESS_CHANNELS];
extern const float preprocess_imagenet_std[PREPROCESS_CHANNELS];

/* Write the 3 x height x width fp32 CHW tensor of im into dst (caller-owned,
 * 3*width*height floats). The image must already be width x height:
 * FA_ERR_SHAPE otherwise (the caller adds the file name to the message). */
fa_status preprocess_image(const fa_image *im, int width, int height, float *dst, fa_error *err);

/* Scale one 16-bit grey value to [0, 1], exactly as preprocess_image does. */
float preprocess_unit(uint16_t v);

#endif
