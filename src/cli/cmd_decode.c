/* cmd_decode.c - `freeair decode`: one DICOM/PNG/JPEG file to a 16-bit grey
 * PNG at a chosen stage of the grey pipeline, or its header as key: value
 * lines. The converter for users and the hook of the pixel tests. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "data/dicom.h"
#include "data/image.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair decode FILE [--stage raw|modality|display] -o OUT.png\n"
            "       freeair decode FILE --info\n"
            "\n"
            "Writes a 16-bit grey PNG of the first frame:\n"
            "  raw       stored values (signed values offset by 2^(BitsStored-1))\n"
            "  modality  after the Modality LUT / rescale, minus its lowest possible value\n"
            "  display   after VOI (window, VOI LUT or automatic 0.5-99.5%% window) and\n"
            "            MONOCHROME1/INVERSE inversion: bone bright, 0..65535 (default)\n"
            "PNG and JPEG inputs are always written at the display stage (8-bit x257).\n"
            "--info prints the DICOM header fields used by the manifest.\n");
}

static void print_info(const dicom_header *h) {
    printf("patient_id: %s\nstudy_uid: %s\nseries_uid: %s\nsop_uid: %s\nsop_class_uid: %s\n", h->patient_id,
           h->study_uid, h->series_uid, h->sop_uid, h->sop_class_uid);
    printf("modality: %s\nbody_part: %s\nview_position: %s\npatient_position: %s\n", h->modality, h->body_part,
           h->view_position, h->patient_position);
    printf("series_description: %s\nstudy_description: %s\n", h->series_description, h->study_description);
    printf("manufacturer: %s\nmodel: %s\nstation: %s\ninstitution: %s\n", h->manufacturer, h->model, h->station,
           h->institution);
    printf("sex: %s\nage: %s\nbirth_date: %s\nacquisition_date: %s\n", h->sex, h->age, h->birth_date,
           h->acquisition_date);
    printf("photometric: %s\ntransfer_syntax: %s\npresentation_intent: %s\nimage_type: %s\n", h->photometric,
           h->transfer_syntax, h->presentation_intent, h->image_type);
    printf("rows: %d\ncolumns: %d\nbits_allocated: %d\nbits_stored: %d\nhigh_bit: %d\n", h->rows, h->columns,
           h->bits_allocated, h->bits_stored, h->high_bit);
    printf("pixel_representation: %d\nsamples_per_pixel: %d\nnumber_of_frames: %d\n", h->pixel_representation,
           h->samples_per_pixel, h->number_of_frames);
    printf("pixel_spacing: %g\\%g\nhas_pixel_data: %d\n", h->pixel_spacing_row, h->pixel_spacing_col,
           h->has_pixel_data);
}

int cmd_decode(int argc, char **argv) {
    const char *in = NULL, *outp = NULL, *stage_s = "display";
    int info = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--stage") && i + 1 < argc) {
            stage_s = argv[++i];
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            outp = argv[++i];
        } else if (!strcmp(argv[i], "--info")) {
            info = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "freeair decode: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!in) {
            in = argv[i];
        } else {
            fprintf(stderr, "freeair decode: more than one input file\n");
            return 2;
        }
    }
    dicom_stage stage;
    if (!strcmp(stage_s, "raw"))
        stage = DICOM_STAGE_RAW;
    else if (!strcmp(stage_s, "modality"))
        stage = DICOM_STAGE_MODALITY;
    else if (!strcmp(stage_s, "display"))
        stage = DICOM_STAGE_DISPLAY;
    else {
        fprintf(stderr, "freeair decode: --stage must be raw, modality or display, not '%s'\n", stage_s);
        return 2;
    }
    if (!in || (!info && !outp)) {
        usage(stderr);
        return 2;
    }
    fa_error err;
    fa_error_clear(&err);
    image_format fmt = image_detect_format(in);
    if (info) {
        if (fmt != IMAGE_FORMAT_DICOM) {
            fa_image im;
            char warn[512] = "";
            if (image_load(in, &im, warn, sizeof warn, &err) != FA_OK) return cli_fail("decode", &err);
            printf("format: %s\nrows: %d\ncolumns: %d\n", fmt == IMAGE_FORMAT_PNG ? "png" : "jpeg", im.height,
                   im.width);
            image_free(&im);
            return 0;
        }
        dicom_header h;
        if (dicom_read_header(in, &h, &err) != FA_OK) return cli_fail("decode", &err);
        print_info(&h);
        if (!outp) return 0;
    }
    fa_image im;
    char warn[1024] = "";
    fa_status rc = fmt == IMAGE_FORMAT_DICOM ? dicom_decode(in, stage, &im, warn, sizeof warn, &err)
                                             : image_load(in, &im, warn, sizeof warn, &err);
    if (warn[0]) fprintf(stderr, "freeair decode: warning: %s\n", warn);
    if (rc != FA_OK) return cli_fail("decode", &err);
    rc = image_write_png16(outp, &im, &err);
    image_free(&im);
    if (rc != FA_OK) return cli_fail("decode", &err);
    return 0;
}
