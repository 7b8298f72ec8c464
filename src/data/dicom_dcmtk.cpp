/* dicom_dcmtk.cpp - the one DCMTK shim: reads DICOM headers, decodes the
 * first frame's stored values (native, RLE, JPEG, JPEG-LS through DCMTK's
 * codecs; JPEG 2000 fragments handed to OpenJPEG in jpeg2000.c) and collects
 * the attributes of the grey pipeline, which dicom.c applies in plain C.
 *
 * Everything DCMTK stays inside this file; callers see dicom.h and
 * dicom_shim.h. Codecs are registered once (std::call_once) so parallel
 * header scans and decodes are safe. DCMTK's own loggers for the modules used
 * here are switched off (library code must not print); set
 * FREEAIR_DCMTK_LOG=1 to see them when debugging a file.
 *
 * Files are loaded with a 4 KiB max read length: larger values (pixel data,
 * big LUTs) stay on disk until asked for, so header reads never touch the
 * pixels and decodes read each byte once.
 */
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include "data/dicom.h"
#include "data/dicom_shim.h"
#include "data/image.h"
#include "data/jpeg2000.h"
}

namespace {

std::once_flag g_init_once;

void shim_init() {
    std::call_once(g_init_once, [] {
        if (!std::getenv("FREEAIR_DCMTK_LOG")) {
            static const char *const names[] = {"dcmtk.dcmdata", "dcmtk.dcmjpeg", "dcmtk.dcmjpls"};
            for (const char *n : names) OFLog::getLogger(n).setLogLevel(OFLogger::OFF_LOG_LEVEL);
        }
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
    });
}

/* Values past this size stay in the file until read. */
const Uint32 kMaxReadLength = 4096;

/* Copy a (possibly multi-valued) string attribute: trimmed, control bytes
 * replaced so a hostile value cannot split a CSV row or a log line. */
void get_str(DcmItem *ds, const DcmTagKey &tag, char *dst, size_t cap) {
    dst[0] = '\0';
    OFString s;
    if (ds->findAndGetOFStringArray(tag, s).bad()) return;
    size_t b = 0, e = s.length();
    while (b < e && (s[b] == ' ' || s[b] == '\0')) b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\0')) e--;
    size_t n = e - b < cap - 1 ? e - b : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[b + i];
        dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    dst[n] = '\0';
}

int get_u16(DcmItem *ds, const DcmTagKey &tag, int dflt) {
    Uint16 v;
    if (ds->findAndGetUint16(tag, v).good()) return v;
    Sint16 s;
    if (ds->findAndGetSint16(tag, s).good()) return s;
    return dflt;
}

int get_f64(DcmItem *ds, const DcmTagKey &tag, unsigned long pos, double *out) {
    Float64 v;
    if (ds->findAndGetFloat64(tag, v, pos).good() && std::isfinite(v)) {
        *out = v;
        return 1;
    }
    return 0;
}

/* Stat first, for a precise reason (missing, directory, empty), then refuse
 * what is not DICOM before DCMTK's auto-detection guesses at it. */
fa_status open_check(const char *path, fa_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, std::strerror(errno));
    if (S_ISDIR(st.st_mode)) return fa_error_set(err, FA_ERR_IO, "%s: is a directory", path);
    if (st.st_size == 0) return fa_error_set(err, FA_ERR_FORMAT, "%s: empty file", path);
    if (image_detect_format(path) != IMAGE_FORMAT_DICOM)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: not a DICOM file (no DICM preamble or data set start)", path);
    return FA_OK;
}

/* Values longer than kMaxReadLength are loaded lazily, and DCMTK allocates
 * the declared length before it finds the file too short; a hostile header
 * could so ask for gigabytes. Every declared length is held against the size
 * of the file read (for deflated data, the inflated one). */
fa_status check_value_lengths(const char *source, const char *path, DcmFileFormat &ff, fa_error *err) {
    struct stat st;
    if (stat(source, &st) != 0) return fa_error_set(err, FA_ERR_IO, "%s: %s", source, std::strerror(errno));
    DcmDataset *ds = ff.getDataset();
    unsigned long long limit = (unsigned long long)st.st_size;
    DcmStack stack;
    while (ds->nextObject(stack, OFTrue).good()) {
        DcmObject *o = stack.top();
        if (!o || !o->isLeaf()) continue;
        Uint32 len = o->getLength();
        if (len == DCM_UndefinedLength) continue;
        if ((unsigned long long)len > limit) {
            DcmTag tag = o->getTag();
            return fa_error_set(err, FA_ERR_FORMAT,
                                "%s: element (%04x,%04x) declares %lu bytes, more than the file holds (%llu)", path,
                                tag.getGTag(), tag.getETag(), (unsigned long)len, (unsigned long long)st.st_size);
        }
    }
    return FA_OK;
}

/* A temporary file that is removed when the guard goes out of scope; it must
 * outlive the DcmFileFormat read from it, whose large values stay in the
 * file until used. */
struct temp_file {
    std::string path;
    temp_file() = default;
    temp_file(const temp_file &) = delete;
    temp_file &operator=(const temp_file &) = delete;
    ~temp_file() {
        if (!path.empty()) unlink(path.c_str());
    }
};

const char kDeflatedUid[] = "1.2.840.10008.1.2.1.99";
const char kExplicitLeUid[] = "1.2.840.10008.1.2.1";

uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
uint32_t le32(const unsigned char *p) { return le16(p) | (le16(p + 2) << 16); }

/* DCMTK reads a deflated data set as a stream it cannot seek in: every value
 * is loaded at once, and its declared length is allocated before the stream
 * turns out too short (a 2 KB file could ask for 4 GiB). So freeair inflates
 * the data set first (zlib; raw deflate as the standard says, or a zlib
 * stream as some writers make) into a temporary explicit-VR file, bounded by
 * deflate's largest ratio; reading that file gets DCMTK's usual checks of
 * lengths against the file size. *deflated = 0 and nothing is written for
 * any other file. */
fa_status inflate_if_deflated(const char *path, temp_file &tmp, int *deflated, fa_error *err) {
    *deflated = 0;
    FILE *f = std::fopen(path, "rb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, std::strerror(errno));
    std::vector<unsigned char> head(132);
    size_t got = std::fread(head.data(), 1, head.size(), f);
    if (got < 132 || std::memcmp(&head[128], "DICM", 4) != 0) {
        std::fclose(f);
        return FA_OK; /* no meta header: DCMTK cannot detect deflate either */
    }
    /* the meta group, always explicit VR little endian */
    std::vector<unsigned char> meta;
    bool is_deflated = false;
    unsigned char e[12];
    for (;;) {
        long at = std::ftell(f);
        if (std::fread(e, 1, 8, f) != 8 || le16(e) != 0x0002) {
            std::fseek(f, at, SEEK_SET);
            break;
        }
        bool long_vr = !std::memcmp(e + 4, "OB", 2) || !std::memcmp(e + 4, "OW", 2) ||
                       !std::memcmp(e + 4, "UN", 2) || !std::memcmp(e + 4, "SQ", 2) || !std::memcmp(e + 4, "UT", 2);
        uint32_t len = le16(e + 6);
        size_t hdr = 8;
        if (long_vr) {
            if (std::fread(e + 8, 1, 4, f) != 4) break;
            len = le32(e + 8);
            hdr = 12;
        }
        if (len > (1u << 20)) {
            std::fclose(f);
            return fa_error_set(err, FA_ERR_FORMAT, "%s: meta header element (0002,%04x) of %lu bytes", path,
                                le16(e + 2), (unsigned long)len);
        }
        std::vector<unsigned char> val(len);
        if (len && std::fread(val.data(), 1, len, f) != len) {
            std::fclose(f);
            return FA_OK; /* truncated meta: DCMTK says so */
        }
        uint32_t el = le16(e + 2);
        if (el == 0x0000) continue; /* group length: recomputed below */
        if (el == 0x0010) {
            std::string uid(val.begin(), val.end());
            while (!uid.empty() && (uid.back() == '\0' || uid.back() == ' ')) uid.pop_back();
            if (uid != kDeflatedUid) {
                std::fclose(f);
                return FA_OK;
            }
            is_deflated = true;
            const size_t n = sizeof kExplicitLeUid; /* with its NUL: even length */
            unsigned char ts[8] = {0x02, 0x00, 0x10, 0x00, 'U', 'I', (unsigned char)n, 0};
            meta.insert(meta.end(), ts, ts + 8);
            meta.insert(meta.end(), kExplicitLeUid, kExplicitLeUid + n);
            continue;
        }
        meta.insert(meta.end(), e, e + hdr);
        meta.insert(meta.end(), val.begin(), val.end());
    }
    if (!is_deflated) {
        std::fclose(f);
        return FA_OK;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        std::fclose(f);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", path, std::strerror(errno));
    }
    const unsigned long long limit = ((unsigned long long)st.st_size + 1024) * 1032ull;
    const char *dir = std::getenv("TMPDIR");
    std::string templ = std::string(dir && *dir ? dir : "/tmp") + "/freeair-inflated-XXXXXX";
    std::vector<char> name(templ.begin(), templ.end());
    name.push_back('\0');
    int fd = mkstemp(name.data());
    if (fd < 0) {
        std::fclose(f);
        return fa_error_set(err, FA_ERR_IO, "%s: temporary file for inflating: %s", path, std::strerror(errno));
    }
    tmp.path = name.data();
    FILE *out = fdopen(fd, "wb");
    if (!out) {
        close(fd);
        std::fclose(f);
        return fa_error_set(err, FA_ERR_IO, "%s: %s", tmp.path.c_str(), std::strerror(errno));
    }
    unsigned char group_len[12] = {0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0};
    uint32_t ml = (uint32_t)meta.size();
    for (int i = 0; i < 4; i++) group_len[8 + i] = (unsigned char)(ml >> (8 * i));
    std::fwrite(head.data(), 1, 132, out);
    std::fwrite(group_len, 1, 12, out);
    std::fwrite(meta.data(), 1, meta.size(), out);

    const long data_at = std::ftell(f);
    fa_status rc = FA_OK;
    for (int attempt = 0; attempt < 2 && rc == FA_OK; attempt++) {
        /* raw deflate first; on a data error at once, a zlib/gzip stream */
        z_stream z;
        std::memset(&z, 0, sizeof z);
        if (inflateInit2(&z, attempt == 0 ? -MAX_WBITS : MAX_WBITS + 32) != Z_OK) {
            rc = fa_error_set(err, FA_ERR_NOMEM, "%s: zlib could not start", path);
            break;
        }
        std::fseek(f, data_at, SEEK_SET);
        std::fseek(out, (long)(144 + meta.size()), SEEK_SET);
        unsigned char in[1 << 15], buf[1 << 16];
        unsigned long long total = 0;
        int zr = Z_OK;
        bool retry = false;
        while (zr != Z_STREAM_END) {
            if (z.avail_in == 0) {
                z.avail_in = (uInt)std::fread(in, 1, sizeof in, f);
                z.next_in = in;
                if (z.avail_in == 0) break; /* input ended: DCMTK reports the truncation */
            }
            z.next_out = buf;
            z.avail_out = sizeof buf;
            zr = inflate(&z, Z_NO_FLUSH);
            if (zr == Z_DATA_ERROR && attempt == 0 && total == 0 && z.avail_out == sizeof buf) {
                retry = true;
                break;
            }
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                rc = fa_error_set(err, FA_ERR_FORMAT, "%s: deflated data set is corrupt (zlib: %s)", path,
                                  z.msg ? z.msg : "error");
                break;
            }
            size_t have = sizeof buf - z.avail_out;
            total += have;
            if (total > limit) {
                rc = fa_error_set(err, FA_ERR_FORMAT, "%s: deflated data set inflates beyond %llu bytes", path,
                                  limit);
                break;
            }
            if (have && std::fwrite(buf, 1, have, out) != have) {
                rc = fa_error_set(err, FA_ERR_IO, "%s: writing %s: %s", path, tmp.path.c_str(),
                                  std::strerror(errno));
                break;
            }
            if (zr == Z_BUF_ERROR && z.avail_in != 0) {
                rc = fa_error_set(err, FA_ERR_FORMAT, "%s: deflated data set is corrupt", path);
                break;
            }
        }
        inflateEnd(&z);
        if (!retry) break;
    }
    std::fclose(f);
    if (std::fclose(out) != 0 && rc == FA_OK)
        rc = fa_error_set(err, FA_ERR_IO, "%s: writing %s: %s", path, tmp.path.c_str(), std::strerror(errno));
    if (rc == FA_OK) *deflated = 1;
    return rc;
}

fa_status load_file(const char *path, DcmFileFormat &ff, temp_file &tmp, fa_error *err) {
    fa_status rc = open_check(path, err);
    if (rc != FA_OK) return rc;
    shim_init();
    int deflated = 0;
    if ((rc = inflate_if_deflated(path, tmp, &deflated, err)) != FA_OK) return rc;
    const char *source = deflated ? tmp.path.c_str() : path;
    OFCondition c = ff.loadFile(source, EXS_Unknown, EGL_noChange, kMaxReadLength, ERM_autoDetect);
    if (deflated && c.good()) ff.getMetaInfo()->putAndInsertString(DCM_TransferSyntaxUID, kDeflatedUid);
    if (c == EC_StreamNotifyClient || c == EC_PrematureSequDelimitationItem)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: truncated DICOM file (ends inside an element)", path);
    if (c.bad()) return fa_error_set(err, FA_ERR_FORMAT, "%s: unreadable DICOM: %s", path, c.text());
    return check_value_lengths(source, path, ff, err);
}

void fill_header(DcmFileFormat &ff, dicom_header *h) {
    std::memset(h, 0, sizeof *h);
    DcmDataset *ds = ff.getDataset();
    get_str(ds, DCM_PatientID, h->patient_id, DICOM_STR);
    get_str(ds, DCM_StudyInstanceUID, h->study_uid, DICOM_STR);
    get_str(ds, DCM_SeriesInstanceUID, h->series_uid, DICOM_STR);
    get_str(ds, DCM_SOPInstanceUID, h->sop_uid, DICOM_STR);
    get_str(ds, DCM_SOPClassUID, h->sop_class_uid, DICOM_STR);
    if (!h->sop_uid[0]) get_str(ff.getMetaInfo(), DCM_MediaStorageSOPInstanceUID, h->sop_uid, DICOM_STR);
    if (!h->sop_class_uid[0]) get_str(ff.getMetaInfo(), DCM_MediaStorageSOPClassUID, h->sop_class_uid, DICOM_STR);
    get_str(ds, DCM_Modality, h->modality, DICOM_STR);
    get_str(ds, DCM_BodyPartExamined, h->body_part, DICOM_STR);
    get_str(ds, DCM_ViewPosition, h->view_position, DICOM_STR);
    get_str(ds, DCM_PatientPosition, h->patient_position, DICOM_STR);
    get_str(ds, DCM_SeriesDescription, h->series_description, DICOM_STR);
    get_str(ds, DCM_StudyDescription, h->study_description, DICOM_STR);
    get_str(ds, DCM_Manufacturer, h->manufacturer, DICOM_STR);
    get_str(ds, DCM_ManufacturerModelName, h->model, DICOM_STR);
    get_str(ds, DCM_StationName, h->station, DICOM_STR);
    get_str(ds, DCM_InstitutionName, h->institution, DICOM_STR);
    get_str(ds, DCM_PatientSex, h->sex, DICOM_STR);
    get_str(ds, DCM_PatientAge, h->age, DICOM_STR);
    get_str(ds, DCM_PatientBirthDate, h->birth_date, DICOM_STR);
    get_str(ds, DCM_AcquisitionDate, h->acquisition_date, DICOM_STR);
    if (!h->acquisition_date[0]) get_str(ds, DCM_StudyDate, h->acquisition_date, DICOM_STR);
    get_str(ds, DCM_PhotometricInterpretation, h->photometric, DICOM_STR);
    get_str(ds, DCM_PresentationIntentType, h->presentation_intent, DICOM_STR);
    get_str(ds, DCM_ImageType, h->image_type, DICOM_STR);
    get_str(ff.getMetaInfo(), DCM_TransferSyntaxUID, h->transfer_syntax, DICOM_STR);
    if (!h->transfer_syntax[0]) {
        /* No meta header: report what DCMTK detected while parsing. */
        DcmXfer x(ds->getOriginalXfer());
        if (x.getXfer() != EXS_Unknown) std::snprintf(h->transfer_syntax, DICOM_STR, "%s", x.getXferID());
    }
    h->rows = get_u16(ds, DCM_Rows, 0);
    h->columns = get_u16(ds, DCM_Columns, 0);
    h->bits_allocated = get_u16(ds, DCM_BitsAllocated, 0);
    h->bits_stored = get_u16(ds, DCM_BitsStored, h->bits_allocated);
    h->high_bit = get_u16(ds, DCM_HighBit, h->bits_stored - 1);
    h->pixel_representation = get_u16(ds, DCM_PixelRepresentation, 0);
    h->samples_per_pixel = get_u16(ds, DCM_SamplesPerPixel, 1);
    Sint32 frames = 1;
    if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
    h->number_of_frames = frames;
    double r, c;
    if (get_f64(ds, DCM_PixelSpacing, 0, &r) && get_f64(ds, DCM_PixelSpacing, 1, &c)) {
        h->pixel_spacing_row = r;
        h->pixel_spacing_col = c;
    } else if (get_f64(ds, DCM_ImagerPixelSpacing, 0, &r) && get_f64(ds, DCM_ImagerPixelSpacing, 1, &c)) {
        h->pixel_spacing_row = r;
        h->pixel_spacing_col = c;
    }
    h->has_pixel_data = ds->tagExists(DCM_PixelData) ? 1 : 0;
}

/* First item of a Modality/VOI LUT Sequence into `lut`. Returns 0 (with a
 * warning) when the item is malformed, so the caller can fall back. */
int read_lut(DcmItem *ds, const DcmTagKey &seq, int pixel_rep, const char *path, const char *what, dicom_lut *lut,
             char *warning, size_t cap) {
    std::memset(lut, 0, sizeof *lut);
    DcmItem *item = NULL;
    if (ds->findAndGetSequenceItem(seq, item, 0).bad() || !item) return 0;
    DcmElement *desc = NULL;
    if (item->findAndGetElement(DCM_LUTDescriptor, desc).bad() || !desc || desc->getVM() < 3) {
        image_warn(warning, cap, "%s: %s without a valid LUT Descriptor ignored", path, what);
        return 0;
    }
    int d[3];
    int is_ss = desc->getVR() == EVR_SS;
    for (unsigned long i = 0; i < 3; i++) {
        Uint16 u;
        Sint16 s;
        if (desc->getUint16(u, i).good())
            d[i] = u;
        else if (desc->getSint16(s, i).good())
            d[i] = (Uint16)s, is_ss = 1;
        else {
            image_warn(warning, cap, "%s: %s descriptor unreadable, ignored", path, what);
            return 0;
        }
    }
    int n = d[0] == 0 ? 65536 : d[0];
    int first = (is_ss || pixel_rep == 1) && d[1] > 32767 ? d[1] - 65536 : d[1];
    int bits = d[2];
    if (bits < 1 || bits > 16) {
        image_warn(warning, cap, "%s: %s with %d-bit entries ignored", path, what, bits);
        return 0;
    }
    const Uint16 *data = NULL;
    unsigned long count = 0;
    if (item->findAndGetUint16Array(DCM_LUTData, data, &count).bad() || !data) {
        const Uint8 *bytes = NULL;
        if (item->findAndGetUint8Array(DCM_LUTData, bytes, &count).bad() || !bytes || count < (unsigned long)n) {
            image_warn(warning, cap, "%s: %s without LUT Data ignored", path, what);
            return 0;
        }
        lut->data = (uint16_t *)fa_malloc_array((size_t)n, sizeof(uint16_t));
        if (!lut->data) return 0;
        for (int i = 0; i < n; i++) lut->data[i] = bytes[i];
    } else {
        lut->data = (uint16_t *)fa_malloc_array((size_t)n, sizeof(uint16_t));
        if (!lut->data) return 0;
        if (count >= (unsigned long)n) {
            std::memcpy(lut->data, data, (size_t)n * sizeof(uint16_t));
        } else if (bits <= 8 && count * 2 >= (unsigned long)n) {
            /* 8-bit entries packed two per 16-bit word (PS3.3 C.11.1.1.1). */
            for (int i = 0; i < n; i++) lut->data[i] = (uint16_t)((data[i / 2] >> (8 * (i % 2))) & 0xff);
        } else {
            std::free(lut->data);
            lut->data = NULL;
            image_warn(warning, cap, "%s: %s has %lu entries, descriptor says %d; ignored", path, what, count, n);
            return 0;
        }
    }
    lut->n = n;
    lut->first = first;
    lut->bits = bits;
    return 1;
}

/* Map a decoded sample word to the stored value: take bits_stored bits
 * ending at high_bit, sign-extend for two's complement. */
inline int32_t stored_value(uint32_t word, int shift, uint32_t mask, int pixel_rep, int bits_stored) {
    uint32_t v = (word >> shift) & mask;
    if (pixel_rep && (v >> (bits_stored - 1)) & 1u) return (int32_t)v - (int32_t)(mask + 1u);
    return (int32_t)v;
}

inline int32_t luma(int32_t r, int32_t g, int32_t b) {
    return (int32_t)image_luma((unsigned)r, (unsigned)g, (unsigned)b);
}

/* Collect the encapsulated fragments of frame 0 (one J2K codestream). */
fa_status first_frame_fragments(const char *path, DcmPixelData *pix, E_TransferSyntax xfer, int frames,
                                std::vector<unsigned char> &out, fa_error *err) {
    DcmPixelSequence *seq = NULL;
    if (pix->getEncapsulatedRepresentation(xfer, NULL, seq).bad() || !seq)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: encapsulated pixel data without fragments", path);
    unsigned long nitems = seq->card();
    if (nitems < 2) return fa_error_set(err, FA_ERR_FORMAT, "%s: encapsulated pixel data has no fragment", path);
    /* The end of frame 0 in the fragment stream, from the basic offset
     * table when there is more than one frame and the table is filled. */
    unsigned long long frame_end = ~0ull;
    DcmPixelItem *bot = NULL;
    if (frames > 1 && seq->getItem(bot, 0).good() && bot && bot->getLength() >= 8) {
        Uint8 *b = NULL;
        if (bot->getUint8Array(b).good() && b)
            frame_end = (unsigned long long)b[4] | ((unsigned long long)b[5] << 8) |
                        ((unsigned long long)b[6] << 16) | ((unsigned long long)b[7] << 24);
    }
    unsigned long long offset = 0;
    for (unsigned long i = 1; i < nitems; i++) {
        if (offset >= frame_end) break;
        DcmPixelItem *item = NULL;
        if (seq->getItem(item, i).bad() || !item)
            return fa_error_set(err, FA_ERR_FORMAT, "%s: pixel data fragment %lu unreadable", path, i);
        Uint32 len = item->getLength();
        Uint8 *p = NULL;
        if (len > 0) {
            OFCondition c = item->getUint8Array(p);
            if (c.bad() || !p)
                return fa_error_set(err, FA_ERR_FORMAT, "%s: pixel data fragment %lu unreadable: %s", path, i,
                                    c.bad() ? c.text() : "no data");
            if (out.size() + len > ((size_t)1 << 31))
                return fa_error_set(err, FA_ERR_FORMAT, "%s: JPEG 2000 frame larger than 2 GiB", path);
            out.insert(out.end(), p, p + len);
        }
        offset += 8ull + len;
        /* Without a usable offset table, a multi-frame file's first frame
         * ends with the first fragment that ends in an EOC marker. */
        if (frames > 1 && frame_end == ~0ull && out.size() >= 2 && out[out.size() - 2] == 0xff &&
            (out.back() == 0xd9))
            break;
    }
    if (out.empty()) return fa_error_set(err, FA_ERR_FORMAT, "%s: empty JPEG 2000 frame", path);
    return FA_OK;
}

/* The bytes of the first fragment of encapsulated pixel data (item 0 is the
 * offset table); false when there is none. */
bool first_fragment(DcmPixelData *pix, E_TransferSyntax xfer, Uint8 **p, size_t *n) {
    DcmPixelSequence *seq = NULL;
    DcmPixelItem *item = NULL;
    if (pix->getEncapsulatedRepresentation(xfer, NULL, seq).bad() || !seq || seq->card() < 2 ||
        seq->getItem(item, 1).bad() || !item || item->getLength() == 0 || item->getUint8Array(*p).bad() || !*p)
        return false;
    *n = item->getLength();
    return true;
}

/* IJG sizes its buffers from the JPEG frame header, not from DICOM's
 * Rows/Columns (a progressive frame holds 2 bytes per pixel for the whole
 * image), so a codestream claiming 40000x40000 inside a small file would
 * make it allocate gigabytes. The SOF/SOF55 header of the first fragment must
 * agree with Rows/Columns before any decoder sees it. A header that is not in
 * the first fragment is left to the decoder. */
fa_status jpeg_frame_header_check(const char *path, DcmPixelData *pix, E_TransferSyntax xfer, int rows, int cols,
                                  fa_error *err) {
    Uint8 *p = NULL;
    size_t n = 0;
    if (!first_fragment(pix, xfer, &p, &n) || n < 4) return FA_OK;
    if (p[0] != 0xff || p[1] != 0xd8) return FA_OK;
    size_t i = 2;
    while (i + 4 <= n) {
        if (p[i] != 0xff) return FA_OK;
        unsigned m = p[i + 1];
        if (m == 0xff) { /* fill byte */
            i++;
            continue;
        }
        size_t len = ((size_t)p[i + 2] << 8) | p[i + 3];
        bool sof = (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) || m == 0xf7;
        if (sof) {
            if (i + 9 > n || len < 7) return FA_OK;
            int h = (p[i + 5] << 8) | p[i + 6], w = (p[i + 7] << 8) | p[i + 8];
            if (h != rows || w != cols)
                return fa_error_set(err, FA_ERR_FORMAT, "%s: JPEG frame header says %dx%d, the DICOM header %dx%d",
                                    path, w, h, cols, rows);
            return FA_OK;
        }
        if (m == 0xda || len < 2) return FA_OK; /* scan data before a frame header: decoder decides */
        i += 2 + len;
    }
    return FA_OK;
}

/* DCMTK's RLE decoder (3.6.7) trusts the segment offsets of the RLE header
 * and reads wherever they point: a hostile offset reads outside the
 * fragment (found by fuzz_dicom). The header is checked here first: a frame
 * is one fragment (PS3.5 A.4.2), holding 1 to 15 segments, one per byte of
 * each sample, at increasing offsets from 64 inside it. */
fa_status rle_header_check(const char *path, DcmPixelData *pix, E_TransferSyntax xfer, int spp, int bytes,
                           fa_error *err) {
    Uint8 *p = NULL;
    size_t n = 0;
    if (!first_fragment(pix, xfer, &p, &n) || n < 64)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: RLE pixel data without a fragment holding a 64-byte header",
                            path);
    const uint32_t segments = le32(p);
    if (segments < 1 || segments > 15 || segments != (uint32_t)(spp * bytes))
        return fa_error_set(err, FA_ERR_FORMAT, "%s: RLE header has %lu segments, the image needs %d", path,
                            (unsigned long)segments, spp * bytes);
    uint32_t prev = 63;
    for (uint32_t i = 0; i < segments; i++) {
        uint32_t off = le32(p + 4 + 4 * i);
        if (off <= prev || off >= n)
            return fa_error_set(err, FA_ERR_FORMAT,
                                "%s: RLE segment %lu starts at %lu, outside its fragment (64..%zu, increasing)", path,
                                (unsigned long)i + 1, (unsigned long)off, n - 1);
        prev = off;
    }
    return FA_OK;
}

bool is_j2k(E_TransferSyntax x) {
    return x == EXS_JPEG2000LosslessOnly || x == EXS_JPEG2000 || x == EXS_JPEG2000MulticomponentLosslessOnly ||
           x == EXS_JPEG2000Multicomponent;
}

/* Attributes of the grey pipeline, after the pixels are in `raw`. */
void read_pipeline_attributes(DcmDataset *ds, const char *path, dicom_raw *raw, char *warning, size_t cap) {
    double slope = 1.0, intercept = 0.0;
    int has_slope = get_f64(ds, DCM_RescaleSlope, 0, &slope);
    int has_icpt = get_f64(ds, DCM_RescaleIntercept, 0, &intercept);
    if (has_slope && slope == 0.0) {
        image_warn(warning, cap, "%s: Rescale Slope 0 ignored", path);
        slope = 1.0;
    }
    raw->has_rescale = has_slope || has_icpt;
    raw->slope = slope;
    raw->intercept = intercept;
    if (read_lut(ds, DCM_ModalityLUTSequence, raw->pixel_rep, path, "Modality LUT Sequence", &raw->modality_lut,
                 warning, cap) &&
        raw->has_rescale) {
        image_warn(warning, cap, "%s: both Modality LUT Sequence and rescale present; using the LUT", path);
    }

    double c, w;
    if (get_f64(ds, DCM_WindowCenter, 0, &c) && get_f64(ds, DCM_WindowWidth, 0, &w)) {
        char fn[DICOM_STR];
        get_str(ds, DCM_VOILUTFunction, fn, sizeof fn);
        dicom_voi_function f = DICOM_VOI_LINEAR;
        if (!std::strcmp(fn, "LINEAR_EXACT"))
            f = DICOM_VOI_LINEAR_EXACT;
        else if (!std::strcmp(fn, "SIGMOID"))
            f = DICOM_VOI_SIGMOID;
        else if (fn[0] && std::strcmp(fn, "LINEAR"))
            image_warn(warning, cap, "%s: unknown VOI LUT Function '%s', using LINEAR", path, fn);
        if ((f == DICOM_VOI_LINEAR && w < 1.0) || w <= 0.0) {
            image_warn(warning, cap, "%s: window width %g is invalid, window ignored", path, w);
        } else {
            raw->has_window = 1;
            raw->window_center = c;
            raw->window_width = w;
            raw->voi_function = f;
        }
    }
    read_lut(ds, DCM_VOILUTSequence, raw->pixel_rep, path, "VOI LUT Sequence", &raw->voi_lut, warning, cap);

    char shape[DICOM_STR];
    get_str(ds, DCM_PresentationLUTShape, shape, sizeof shape);
    raw->presentation_inverse = !std::strcmp(shape, "INVERSE");

    DcmElement *pad = NULL;
    if (ds->findAndGetElement(DCM_PixelPaddingValue, pad).good() && pad) {
        Uint16 u;
        Sint16 s;
        if (pad->getVR() == EVR_SS && pad->getSint16(s).good())
            raw->has_padding = 1, raw->padding_value = s;
        else if (pad->getUint16(u).good())
            raw->has_padding = 1, raw->padding_value = raw->pixel_rep && u > 32767 ? (int32_t)u - 65536 : u;
    }
}

} // namespace

extern "C" void dicom_raw_free(dicom_raw *raw) {
    if (!raw) return;
    std::free(raw->values);
    std::free(raw->modality_lut.data);
    std::free(raw->voi_lut.data);
    std::memset(raw, 0, sizeof *raw);
}

extern "C" fa_status dicom_read_header(const char *path, dicom_header *out, fa_error *err) {
    std::memset(out, 0, sizeof *out);
    try {
        temp_file tmp; /* outlives ff */
        DcmFileFormat ff;
        fa_status rc = load_file(path, ff, tmp, err);
        if (rc != FA_OK) return rc;
        fill_header(ff, out);
        return FA_OK;
    } catch (const std::exception &e) {
        return fa_error_set(err, FA_ERR_BACKEND, "%s: DCMTK failed: %s", path, e.what());
    }
}

namespace {

fa_status shim_load(const char *path, dicom_raw *raw, char *warning, size_t cap, fa_error *err) {
    temp_file tmp; /* outlives ff */
    DcmFileFormat ff;
    fa_status rc = load_file(path, ff, tmp, err);
    if (rc != FA_OK) return rc;
    dicom_header h;
    fill_header(ff, &h);
    DcmDataset *ds = ff.getDataset();

    DcmElement *elem = NULL;
    if (ds->findAndGetElement(DCM_PixelData, elem).bad() || !elem) {
        if (ds->tagExists(DCM_FloatPixelData) || ds->tagExists(DCM_DoubleFloatPixelData))
            return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: float pixel data is not supported", path);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: no Pixel Data (header-only object)", path);
    }
    if (elem->ident() != EVR_PixelData)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: Pixel Data element of unexpected type", path);
    DcmPixelData *pix = static_cast<DcmPixelData *>(elem);

    if (h.rows < 1 || h.columns < 1)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: Rows/Columns missing or zero (%dx%d)", path, h.columns, h.rows);
    if (h.bits_allocated != 8 && h.bits_allocated != 16)
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: Bits Allocated %d (8 or 16 supported)", path,
                            h.bits_allocated);
    const int native = !DcmXfer(ds->getOriginalXfer()).isEncapsulated();
    if (native) {
        /* Declared size against what is there, in 64 bits, before any size
         * goes through DCMTK's 32-bit frame arithmetic. */
        unsigned long long need = (unsigned long long)h.rows * (unsigned long long)h.columns *
                                  (unsigned long long)(h.samples_per_pixel > 0 ? h.samples_per_pixel : 1) *
                                  (unsigned long long)(h.bits_allocated / 8);
        if (h.samples_per_pixel == 3 && !std::strcmp(h.photometric, "YBR_FULL_422")) need = need * 2 / 3;
        if ((unsigned long long)pix->getLength() < need)
            return fa_error_set(err, FA_ERR_FORMAT, "%s: Pixel Data holds %lu bytes, the header needs %llu", path,
                                (unsigned long)pix->getLength(), need);
    }
    if ((unsigned long long)h.rows * (unsigned long long)h.columns > FA_IMAGE_MAX_PIXELS)
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: image %dx%d exceeds the pixel limit", path, h.columns,
                            h.rows);
    if (h.bits_stored < 1 || h.bits_stored > h.bits_allocated || h.high_bit < h.bits_stored - 1 ||
        h.high_bit >= h.bits_allocated)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: inconsistent Bits Stored %d / High Bit %d / Bits Allocated %d",
                            path, h.bits_stored, h.high_bit, h.bits_allocated);
    if (h.pixel_representation != 0 && h.pixel_representation != 1)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: Pixel Representation %d", path, h.pixel_representation);
    const char *pm = h.photometric;
    int mono = !std::strcmp(pm, "MONOCHROME1") || !std::strcmp(pm, "MONOCHROME2");
    if (h.samples_per_pixel == 1) {
        if (!mono) {
            if (!std::strcmp(pm, "PALETTE COLOR"))
                return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: PALETTE COLOR images are not supported", path);
            if (pm[0]) image_warn(warning, cap, "%s: Photometric Interpretation '%s' read as MONOCHROME2", path, pm);
        }
    } else if (h.samples_per_pixel == 3) {
        if (mono) return fa_error_set(err, FA_ERR_FORMAT, "%s: %s with 3 samples per pixel", path, pm);
    } else {
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: %d samples per pixel", path, h.samples_per_pixel);
    }

    const size_t npix = (size_t)h.rows * (size_t)h.columns;
    const int spp = h.samples_per_pixel;
    const int shift = h.high_bit + 1 - h.bits_stored;
    const uint32_t mask = h.bits_stored == 32 ? 0xffffffffu : ((1u << h.bits_stored) - 1u);
    std::memset(raw, 0, sizeof *raw);
    raw->rows = h.rows;
    raw->cols = h.columns;
    raw->bits_stored = h.bits_stored;
    raw->pixel_rep = h.pixel_representation;
    raw->monochrome1 = !std::strcmp(pm, "MONOCHROME1");
    raw->spacing_row_mm = h.pixel_spacing_row;
    raw->spacing_col_mm = h.pixel_spacing_col;
    raw->values = (int32_t *)fa_malloc_array(npix, sizeof(int32_t));
    if (!raw->values) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for %zu pixels", path, npix);

    E_TransferSyntax xfer = ds->getOriginalXfer();
    std::string colour_model = pm;
    if (is_j2k(xfer)) {
        std::vector<unsigned char> cs;
        if ((rc = first_frame_fragments(path, pix, xfer, h.number_of_frames, cs, err)) != FA_OK) return rc;
        j2k_image jim;
        if ((rc = j2k_decode(cs.data(), cs.size(), path, h.columns, h.rows, &jim, err)) != FA_OK) return rc;
        if (jim.ncomp != spp) {
            int n = jim.ncomp;
            j2k_free(&jim);
            return fa_error_set(err, FA_ERR_FORMAT, "%s: JPEG 2000 has %d components, Samples per Pixel is %d", path,
                                n, spp);
        }
        if (jim.sgnd[0] != raw->pixel_rep || jim.prec[0] != h.bits_stored)
            image_warn(warning, cap, "%s: JPEG 2000 says %d-bit %s, header %d-bit %s; header followed", path,
                       jim.prec[0], jim.sgnd[0] ? "signed" : "unsigned", h.bits_stored,
                       raw->pixel_rep ? "signed" : "unsigned");
        /* Re-read each sample in the header's representation: identity when
         * the two agree, the header's bit pattern when they do not. */
        for (size_t i = 0; i < npix; i++) {
            if (spp == 1) {
                raw->values[i] = stored_value((uint32_t)jim.data[i], 0, mask, raw->pixel_rep, h.bits_stored);
            } else {
                int32_t r = (int32_t)((uint32_t)jim.data[i] & mask), g = (int32_t)((uint32_t)jim.data[npix + i] & mask),
                        b = (int32_t)((uint32_t)jim.data[2 * npix + i] & mask);
                raw->values[i] = luma(r, g, b);
            }
        }
        j2k_free(&jim);
        if (spp == 3) colour_model = "RGB"; /* OpenJPEG undoes the RCT/ICT */
    } else {
        if (!native && xfer != EXS_RLELossless &&
            (rc = jpeg_frame_header_check(path, pix, xfer, h.rows, h.columns, err)) != FA_OK)
            return rc;
        if (xfer == EXS_RLELossless &&
            (rc = rle_header_check(path, pix, xfer, spp, h.bits_allocated / 8, err)) != FA_OK)
            return rc;
        Uint32 frame_size = 0;
        OFCondition c = pix->getUncompressedFrameSize(ds, frame_size);
        if (c.bad() || frame_size == 0)
            return fa_error_set(err, FA_ERR_FORMAT, "%s: cannot size the pixel data: %s", path,
                                c.bad() ? c.text() : "zero");
        int ybr422_native = native && spp == 3 && !std::strcmp(pm, "YBR_FULL_422");
        std::vector<unsigned char> buf(((size_t)frame_size + 1) & ~(size_t)1);
        OFString model;
        if (ybr422_native) {
            /* Y1 Y2 Cb Cr per pair of pixels; grey is the Y samples. */
            Uint8 *p = NULL;
            if (h.bits_allocated != 8 || pix->getUint8Array(p).bad() || !p)
                return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: native YBR_FULL_422 with %d bits", path,
                                    h.bits_allocated);
            for (size_t i = 0; i < npix; i++)
                raw->values[i] = stored_value(p[(i / 2) * 4 + (i % 2)], shift, mask, 0, h.bits_stored);
            colour_model = "YBR_FULL_422";
        } else {
            Uint32 start = 0;
            c = pix->getUncompressedFrame(ds, 0, start, buf.data(), (Uint32)buf.size(), model, NULL);
            if (c.bad()) {
                DcmXfer dx(xfer);
                if (dx.isEncapsulated() && c == EC_CannotChangeRepresentation)
                    return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: no decoder for transfer syntax %s", path,
                                        dx.getXferName());
                return fa_error_set(err, FA_ERR_FORMAT, "%s: pixel data cannot be decoded (%s): %s", path,
                                    dx.getXferName(), c.text());
            }
            if (spp == 3) colour_model = model.c_str();
            int planar = get_u16(ds, DCM_PlanarConfiguration, 0) == 1;
            const int bytes = h.bits_allocated / 8;
            auto word = [&](size_t sample) -> uint32_t {
                return bytes == 1 ? buf[sample] : ((const Uint16 *)(const void *)buf.data())[sample];
            };
            if (spp == 1) {
                for (size_t i = 0; i < npix; i++)
                    raw->values[i] = stored_value(word(i), shift, mask, raw->pixel_rep, h.bits_stored);
            } else {
                const int ybr = colour_model.rfind("YBR_FULL", 0) == 0;
                for (size_t i = 0; i < npix; i++) {
                    size_t i0 = planar ? i : 3 * i, step = planar ? npix : 1;
                    int32_t r = stored_value(word(i0), shift, mask, 0, h.bits_stored);
                    if (ybr) {
                        raw->values[i] = r; /* Y is the luma already */
                    } else {
                        int32_t g = stored_value(word(i0 + step), shift, mask, 0, h.bits_stored);
                        int32_t b = stored_value(word(i0 + 2 * step), shift, mask, 0, h.bits_stored);
                        raw->values[i] = luma(r, g, b);
                    }
                }
            }
        }
    }
    if (spp == 3) {
        raw->from_colour = 1;
        raw->pixel_rep = 0;
        image_warn(warning, cap, "%s: colour image (%s) converted to grey", path, colour_model.c_str());
    }
    read_pipeline_attributes(ds, path, raw, warning, cap);
    return FA_OK;
}

} // namespace

extern "C" fa_status dicom_shim_load(const char *path, dicom_raw *out, char *warning, size_t warning_cap,
                                     fa_error *err) {
    std::memset(out, 0, sizeof *out);
    fa_status rc;
    try {
        rc = shim_load(path, out, warning, warning_cap, err);
    } catch (const std::bad_alloc &) {
        rc = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    } catch (const std::exception &e) {
        rc = fa_error_set(err, FA_ERR_BACKEND, "%s: DCMTK failed: %s", path, e.what());
    }
    if (rc != FA_OK) dicom_raw_free(out);
    return rc;
}
