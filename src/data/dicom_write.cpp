/* dicom_write.cpp - the writing half of the DCMTK shim: grey single-frame
 * images as DICOM Part-10 files, uncompressed or through DCMTK's lossless
 * encoders (RLE, JPEG process 14 SV1, JPEG-LS).
 *
 * Everything DCMTK stays inside this file; callers see dicom.h. Encoders are
 * registered once (std::call_once), so images may be written from several
 * threads. Output is deterministic: DCMTK adds no time stamps or UIDs of its
 * own here (lossless encoders keep the SOP Instance UID), and the caller can
 * fix the implementation class UID and version name of the meta header.
 */
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpath.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <dcmtk/oflog/oflog.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

extern "C" {
#include "data/dicom.h"
}

namespace {

std::once_flag g_write_once;

void write_init() {
    std::call_once(g_write_once, [] {
        if (!std::getenv("FREEAIR_DCMTK_LOG")) {
            static const char *const names[] = {"dcmtk.dcmdata", "dcmtk.dcmjpeg", "dcmtk.dcmjpls"};
            for (const char *n : names) OFLog::getLogger(n).setLogLevel(OFLogger::OFF_LOG_LEVEL);
        }
        /* Lossless only: keep the SOP Instance UID, no colour conversion. */
        DJEncoderRegistration::registerCodecs(ECC_monochrome, EUC_never);
        DJLSEncoderRegistration::registerCodecs(0, 0, 0, 0, OFFalse, 0, OFTrue, EJLSUC_never);
        DcmRLEEncoderRegistration::registerCodecs(OFFalse);
    });
}

E_TransferSyntax xfer_of(dicom_write_syntax s) {
    switch (s) {
    case DICOM_WRITE_EXPLICIT_LE: return EXS_LittleEndianExplicit;
    case DICOM_WRITE_RLE: return EXS_RLELossless;
    case DICOM_WRITE_JPEG_LOSSLESS: return EXS_JPEGProcess14SV1;
    case DICOM_WRITE_JPEG_LS: return EXS_JPEGLSLossless;
    default: return EXS_Unknown;
    }
}

/* Set one attribute (keyword, tag or sequence path), creating it. */
fa_status put_elem(DcmDataset *ds, const dicom_write_elem *e, const char *path, fa_error *err) {
    DcmPathProcessor proc;
    OFCondition cond = proc.findOrCreatePath(ds, e->path, OFTrue);
    if (cond.bad())
        return fa_error_set(err, FA_ERR_ARG, "%s: attribute %s: %s", path, e->path, cond.text());
    OFList<DcmPath *> results;
    if (proc.getResults(results) == 0)
        return fa_error_set(err, FA_ERR_ARG, "%s: attribute %s: not created", path, e->path);
    for (OFListIterator(DcmPath *) it = results.begin(); it != results.end(); ++it) {
        DcmPathNode *node = (*it)->back();
        DcmObject *obj = node ? node->m_obj : NULL;
        /* an empty value on a sequence leaves it empty (type-2 sequences) */
        if (obj && !obj->isLeaf() && (!e->value || !e->value[0])) continue;
        if (!obj || !obj->isLeaf())
            return fa_error_set(err, FA_ERR_ARG, "%s: attribute %s is not an element", path, e->path);
        DcmElement *el = OFstatic_cast(DcmElement *, obj);
        cond = el->putString(e->value ? e->value : "");
        if (cond.bad())
            return fa_error_set(err, FA_ERR_BACKEND, "%s: attribute %s = \"%s\": %s", path, e->path,
                                e->value ? e->value : "", cond.text());
    }
    return FA_OK;
}

} // namespace

extern "C" const char *dicom_write_syntax_uid(dicom_write_syntax s) {
    E_TransferSyntax x = xfer_of(s);
    if (x == EXS_Unknown) return "";
    return DcmXfer(x).getXferID();
}

extern "C" fa_status dicom_write_image(const char *path, const dicom_write_spec *spec, const uint16_t *pixels,
                                       fa_error *err) {
    if (!path || !spec || !pixels) return fa_error_set(err, FA_ERR_ARG, "dicom write: missing argument");
    if (spec->rows < 1 || spec->rows > 65535 || spec->columns < 1 || spec->columns > 65535)
        return fa_error_set(err, FA_ERR_ARG, "%s: bad matrix %dx%d", path, spec->columns, spec->rows);
    if (spec->bits_stored < 1 || spec->bits_stored > 16)
        return fa_error_set(err, FA_ERR_ARG, "%s: bits stored %d outside 1..16", path, spec->bits_stored);
    E_TransferSyntax xfer = xfer_of(spec->syntax);
    if (xfer == EXS_Unknown) return fa_error_set(err, FA_ERR_ARG, "%s: unknown transfer syntax %d", path, (int)spec->syntax);
    const char *photo = spec->photometric ? spec->photometric : "MONOCHROME2";
    if (strcmp(photo, "MONOCHROME1") && strcmp(photo, "MONOCHROME2"))
        return fa_error_set(err, FA_ERR_ARG, "%s: photometric %s is not grey", path, photo);
    size_t n = (size_t)spec->rows * (size_t)spec->columns;
    unsigned maxv = (1u << spec->bits_stored) - 1;
    for (size_t i = 0; i < n; i++)
        if (pixels[i] > maxv)
            return fa_error_set(err, FA_ERR_ARG, "%s: pixel %zu value %u exceeds %d bits stored", path, i,
                                (unsigned)pixels[i], spec->bits_stored);
    write_init();

    DcmFileFormat ff;
    DcmDataset *ds = ff.getDataset();
    for (int i = 0; i < spec->n_elems; i++) {
        fa_status st = put_elem(ds, &spec->elems[i], path, err);
        if (st) return st;
    }
    OFString sop_class, sop_inst;
    if (ds->findAndGetOFString(DCM_SOPClassUID, sop_class).bad() || sop_class.empty() ||
        ds->findAndGetOFString(DCM_SOPInstanceUID, sop_inst).bad() || sop_inst.empty())
        return fa_error_set(err, FA_ERR_ARG, "%s: SOPClassUID and SOPInstanceUID are required", path);

    OFCondition c = EC_Normal;
    if (c.good()) c = ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    if (c.good()) c = ds->putAndInsertString(DCM_PhotometricInterpretation, photo);
    if (c.good()) c = ds->putAndInsertUint16(DCM_Rows, (Uint16)spec->rows);
    if (c.good()) c = ds->putAndInsertUint16(DCM_Columns, (Uint16)spec->columns);
    if (c.good()) c = ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    if (c.good()) c = ds->putAndInsertUint16(DCM_BitsStored, (Uint16)spec->bits_stored);
    if (c.good()) c = ds->putAndInsertUint16(DCM_HighBit, (Uint16)(spec->bits_stored - 1));
    if (c.good()) c = ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
    if (c.good()) c = ds->putAndInsertUint16Array(DCM_PixelData, pixels, (unsigned long)n);
    if (c.bad()) return fa_error_set(err, FA_ERR_BACKEND, "%s: pixel module: %s", path, c.text());

    if (xfer != EXS_LittleEndianExplicit) {
        DJ_RPLossless jpeg_param(1, 0);
        DJLSRepresentationParameter jls_param(0, OFTrue);
        DcmRLERepresentationParameter rle_param;
        const DcmRepresentationParameter *param = NULL;
        if (xfer == EXS_JPEGProcess14SV1) param = &jpeg_param;
        else if (xfer == EXS_JPEGLSLossless) param = &jls_param;
        else param = &rle_param;
        c = ds->chooseRepresentation(xfer, param);
        if (c.bad() || !ds->canWriteXfer(xfer))
            return fa_error_set(err, FA_ERR_BACKEND, "%s: encoding to %s failed: %s", path,
                                DcmXfer(xfer).getXferName(), c.bad() ? c.text() : "no representation");
    }

    /* DCMTK's EWM_fileformat mode always stamps its own implementation class
     * UID and version; when the caller fixes them, build the whole meta
     * header here and tell DCMTK not to touch it. */
    E_FileWriteMode mode = EWM_fileformat;
    if (spec->implementation_class_uid || spec->implementation_version) {
        DcmMetaInfo *meta = ff.getMetaInfo();
        const Uint8 version[2] = {0, 1};
        c = meta->putAndInsertUint8Array(DCM_FileMetaInformationVersion, version, 2);
        if (c.good()) c = meta->putAndInsertString(DCM_MediaStorageSOPClassUID, sop_class.c_str());
        if (c.good()) c = meta->putAndInsertString(DCM_MediaStorageSOPInstanceUID, sop_inst.c_str());
        if (c.good()) c = meta->putAndInsertString(DCM_TransferSyntaxUID, DcmXfer(xfer).getXferID());
        if (c.good())
            c = meta->putAndInsertString(DCM_ImplementationClassUID, spec->implementation_class_uid
                                                                         ? spec->implementation_class_uid
                                                                         : OFFIS_IMPLEMENTATION_CLASS_UID);
        if (c.good())
            c = meta->putAndInsertString(DCM_ImplementationVersionName, spec->implementation_version
                                                                            ? spec->implementation_version
                                                                            : OFFIS_DTK_IMPLEMENTATION_VERSION_NAME);
        if (c.good()) {
            /* group length: every element after it, explicit VR little endian */
            Uint32 len = 0;
            for (unsigned long i = 0; i < meta->card(); i++) {
                DcmObject *o = meta->getElement(i);
                if (o->getTag() == DCM_FileMetaInformationGroupLength) continue;
                len += o->calcElementLength(EXS_LittleEndianExplicit, EET_ExplicitLength);
            }
            c = meta->putAndInsertUint32(DCM_FileMetaInformationGroupLength, len);
        }
        if (c.bad()) return fa_error_set(err, FA_ERR_BACKEND, "%s: file meta information: %s", path, c.text());
        mode = EWM_dontUpdateMeta;
    }

    std::string tmp = std::string(path) + ".tmp";
    c = ff.saveFile(tmp.c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0, mode);
    if (c.bad()) {
        std::remove(tmp.c_str());
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, c.text());
    }
    if (std::rename(tmp.c_str(), path) != 0) {
        int e = errno;
        std::remove(tmp.c_str());
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(e));
    }
    return FA_OK;
}
