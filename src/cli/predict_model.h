/* predict_model.h - entry point of `freeair predict --model CHECKPOINT`
 * (src/cli/predict_model.c); cmd_predict.c forwards to it when --model is
 * among the options. Returns the process exit status like every cmd_*. */
#ifndef FA_CLI_PREDICT_MODEL_H
#define FA_CLI_PREDICT_MODEL_H

int cmd_predict_model(int argc, char **argv);

#endif
