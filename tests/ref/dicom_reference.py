#!/usr/bin/python3
"""dicom_reference.py - independent reference for freeair's DICOM decoding.

Stored values come from GDCM's Python binding (its own DICOM parser, its own
IJG JPEG copies, system CharLS and OpenJPEG), attributes from pydicom, and the
grey pipeline is re-implemented here from PS3.3 C.11 (and cross-checked
against pydicom's apply_voi_lut where the two define the same thing).

Subcommands (exit 0 = agreement, 1 = mismatch, 3 = reference cannot decode);
`batch FILE` runs one subcommand per line of FILE in one process (imports
are slow) and exits 1 if any line failed; its extra line form
`undecodable DICOM` asserts that GDCM cannot decode the file either.
  raw      DICOM OURS_RAW.png            stored values vs GDCM, tolerance by
                                         transfer syntax
  display  DICOM OURS_DISPLAY.png OURS_RAW.png [modality|display]
                                         pipeline vs this script's PS3.3 code,
                                         fed with GDCM's values for lossless
                                         files and with freeair's raw stage
                                         for lossy ones (so the codec and the
                                         pipeline are judged separately)
  fixtures DIR                           write synthetic DICOM fixtures with
                                         known stored values and expected
                                         stage outputs (DIR/expect/*.npy)
  fixture-check DIR NAME STAGE OURS.png  compare a fixture's stage output
  pil-grey IMAGE OURS.png                PNG/JPEG: freeair's grey vs PIL's
                                         convert("L") x257 (or 16-bit grey)
  info     DICOM INFO.txt                `freeair decode --info` vs pydicom
  j2k      [--lossy] SRC.dcm DST.dcm     re-encode with GDCM's JPEG 2000
                                         encoder (fixtures for the J2K path)
  images   DIR                           write PNG/JPEG fixtures with PIL
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image

LOSSLESS = {
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
}
JPEG_LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
JLS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSY = "1.2.840.10008.1.2.4.91"

# Lossy JPEG: two conforming IDCTs may differ by a few levels per sample
# (ISO 10918-2 allows it); DCMTK and GDCM ship different IJG builds.
JPEG_MEAN_ABS_FRAC = 0.002   # mean |diff| <= 0.2 % of the stored range
JPEG_MAX_ABS_FRAC = 0.02     # max  |diff| <= 2 % of the stored range
J2K_MAX_ABS = 1              # same OpenJPEG underneath; allow rounding only


class Mismatch(Exception):
    pass


class Undecodable(Exception):
    pass


def fail(msg):
    raise Mismatch(msg)


def read_png(path):
    return np.array(Image.open(path)).astype(np.int64)


def gdcm_stored(path):
    """Stored values of frame 0 as int64 (masked to BitsStored, signed when
    PixelRepresentation is 1), the pydicom data set and the transfer syntax."""
    import gdcm
    import pydicom
    gdcm.Trace.WarningOff()
    gdcm.Trace.ErrorOff()
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    r = gdcm.ImageReader()
    r.SetFileName(path)
    if not r.Read():
        return None, ds, None
    img = r.GetImage()
    cols, rows = img.GetDimension(0), img.GetDimension(1)
    pf = img.GetPixelFormat()
    ts = img.GetTransferSyntax().GetString()
    ts = ts.strip("\0 ") if ts else ""
    if img.GetTransferSyntax().IsEncapsulated():
        # GetBuffer hands back a buffer even when the codec failed (966.dcm);
        # a transfer-syntax change reports the failure.
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.ExplicitVRLittleEndian))
        change.SetInput(img)
        if not change.Change():
            return None, ds, ts
        img = change.GetOutput()
    buf = img.GetBuffer()
    if not buf:
        return None, ds, ts
    raw = buf.encode("utf-8", "surrogateescape") if isinstance(buf, str) else bytes(buf)
    ba, bs, hb = pf.GetBitsAllocated(), pf.GetBitsStored(), pf.GetHighBit()
    spp = pf.GetSamplesPerPixel()
    dt = np.uint8 if ba == 8 else np.uint16
    a = np.frombuffer(raw, dtype=dt).astype(np.int64)
    need = rows * cols * spp
    if a.size < need:
        return None, ds, ts
    a = a[:need]
    a = (a >> (hb + 1 - bs)) & ((1 << bs) - 1)
    if spp == 1:
        if int(ds.get("PixelRepresentation", 0)) == 1:
            a = np.where(a >= (1 << (bs - 1)), a - (1 << bs), a)
        a = a.reshape(rows, cols)
    else:
        pc = int(img.GetPlanarConfiguration())  # of GDCM's decoded buffer
        pm = str(img.GetPhotometricInterpretation()).strip()
        a = a.reshape(3, rows, cols).transpose(1, 2, 0) if pc == 1 else a.reshape(rows, cols, 3)
        if pm.startswith("YBR"):
            a = a[:, :, 0]
        else:
            a = (a[:, :, 0] * 19595 + a[:, :, 1] * 38470 + a[:, :, 2] * 7471 + 0x8000) >> 16
    return a, ds, ts


def stored_range(bs, pr):
    return (-(1 << (bs - 1)), (1 << (bs - 1)) - 1) if pr else (0, (1 << bs) - 1)


def lut_of(item, pr):
    desc = [int(v) for v in item.LUTDescriptor]
    n = 65536 if desc[0] == 0 else desc[0]
    first = desc[1]
    if (pr or item["LUTDescriptor"].VR == "SS") and first > 32767:
        first -= 65536
    bits = desc[2]
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype="<u2" if len(data) >= 2 * n else np.uint8)
    data = np.asarray(data, dtype=np.int64)[:n]
    return data, first, bits


def lut_apply(lut, first, x):
    idx = np.clip(np.floor(x + 0.5) - first, 0, len(lut) - 1).astype(np.int64)
    return lut[idx].astype(np.float64)


def modality(ds, s, bs, pr):
    """Modality LUT output (float) and the lowest value the stored range can give."""
    seq = ds.get("ModalityLUTSequence")
    if seq:
        lut, first, _ = lut_of(seq[0], pr)
        return lut_apply(lut, first, s), 0.0
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    icpt = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if slope == 0.0:
        slope = 1.0
    lo, hi = stored_range(bs, pr)
    return slope * s.astype(np.float64) + icpt, min(slope * lo + icpt, slope * hi + icpt)


def first_value(v):
    try:
        return float(v[0])
    except TypeError:
        return float(v)


def window(fn, c, w, x):
    """PS3.3 C.11.2.1.2, output 0..65535 (unrounded)."""
    ymax = 65535.0
    if fn == "LINEAR_EXACT":
        y = ((x - c) / w + 0.5) * ymax
        return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, ymax, y))
    if fn == "SIGMOID":
        return ymax / (1.0 + np.exp(-4.0 * (x - c) / w))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) * ymax
    return np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, ymax, y))


def round16(y):
    return np.clip(np.floor(np.nan_to_num(y, nan=0.0) + 0.5), 0, 65535).astype(np.int64)


def reference_stage(ds, s, stage):
    """freeair's documented pipeline, written independently from dicom.c."""
    bs = int(ds.BitsStored)
    pr = int(ds.get("PixelRepresentation", 0))
    spp = int(ds.get("SamplesPerPixel", 1))
    lo_s, _ = stored_range(bs, pr if spp == 1 else 0)
    if stage == "raw":
        return s - lo_s, "raw"
    m, mmin = modality(ds, s, bs, pr)
    if stage == "modality":
        return round16(m - mmin), "modality"
    how = ""
    if spp == 3:
        lo, hi = stored_range(bs, 0)
        y, how = (m - lo) / (hi - lo) * 65535.0, "colour"
    else:
        fn = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip()
        if fn not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            fn = "LINEAR"
        c = ds.get("WindowCenter")
        w = ds.get("WindowWidth")
        ok = c is not None and w is not None and c != "" and w != ""
        if ok:
            c, w = first_value(c), first_value(w)
            ok = w > 0 and not (fn == "LINEAR" and w < 1)
        if ok:
            y, how = window(fn, c, w, m), "window-" + fn
        elif ds.get("VOILUTSequence"):
            lut, first, bits = lut_of(ds.VOILUTSequence[0], pr)
            y, how = lut_apply(lut, first, m) * (65535.0 / ((1 << bits) - 1)), "voi-lut"
        else:
            vals = m
            pad = ds.get("PixelPaddingValue")
            if pad is not None:
                pad = int(pad)
                if pr and pad > 32767:
                    pad -= 65536
                keep = s != pad
                if keep.any():
                    vals = m[keep]
            v = np.sort(vals.ravel())
            n = v.size
            lo, hi = v[int(math.floor(0.005 * (n - 1)))], v[int(math.ceil(0.995 * (n - 1)))]
            if hi <= lo:
                hi = lo + 1
            y, how = (m - lo) / (hi - lo) * 65535.0, "auto-window"
    y = round16(y)
    shape = str(ds.get("PresentationLUTShape", "") or "").strip()
    pm = str(ds.get("PhotometricInterpretation", "")).strip()
    if pm == "MONOCHROME1" or shape == "INVERSE":
        y, how = 65535 - y, how + "+inverted"
    return y, how


def pydicom_window_check(ds, s):
    """Cross-check this script's window formula against pydicom's
    apply_voi_lut (rescaled from its output range to 0..65535)."""
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    if ds.get("WindowCenter") is None or ds.get("ModalityLUTSequence") or int(ds.get("SamplesPerPixel", 1)) != 1:
        return
    fn = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip()
    if fn not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        return
    bs, pr = int(ds.BitsStored), int(ds.get("PixelRepresentation", 0))
    arr = apply_modality_lut(s.astype(np.float64), ds)
    py = apply_voi_lut(arr, ds, index=0, prefer_lut=False)
    # pydicom's output range: the stored range, rescaled when rescale is present.
    lo, hi = stored_range(bs, pr)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        sl, ic = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = sorted((lo * sl + ic, hi * sl + ic))
    scaled = round16((py - lo) / (hi - lo) * 65535.0)
    ours, _ = reference_stage(ds, s, "display")
    pm = str(ds.get("PhotometricInterpretation", "")).strip()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip()
    if pm == "MONOCHROME1" or shape == "INVERSE":
        ours = 65535 - ours
    d = np.abs(scaled - ours).max()
    if d > 1:
        fail("reference window formula disagrees with pydicom.apply_voi_lut by %d" % d)


def jls_near(path):
    """NEAR parameter from the first JPEG-LS scan header of frame 0."""
    import pydicom
    from pydicom.encaps import generate_pixel_data_frame
    ds = pydicom.dcmread(path)
    frame = next(generate_pixel_data_frame(ds.PixelData, int(ds.get("NumberOfFrames", 1) or 1)))
    i = frame.find(b"\xff\xda")
    if i < 0:
        return None
    ns = frame[i + 4]
    return frame[i + 5 + 2 * ns]


def cmd_raw(path, ours_png):
    s, ds, ts = gdcm_stored(path)
    if s is None:
        raise Undecodable(path)
    exp, _ = reference_stage(ds, s, "raw")
    got = read_png(ours_png)
    if got.shape != exp.shape:
        fail("%s: shape %s vs GDCM %s" % (path, got.shape, exp.shape))
    d = np.abs(got - exp)
    bs = int(ds.BitsStored)
    rng = (1 << bs) - 1
    tag = "ts=%s max=%d mean=%.4f" % (ts, d.max(), d.mean())
    if ts in LOSSLESS:
        if d.max() != 0:
            fail("%s: lossless but differs from GDCM (%s)" % (path, tag))
    elif ts in JPEG_LOSSY:
        if d.mean() > JPEG_MEAN_ABS_FRAC * rng or d.max() > JPEG_MAX_ABS_FRAC * rng:
            fail("%s: lossy JPEG outside bounds mean<=%.3f max<=%.1f (%s)" %
                 (path, JPEG_MEAN_ABS_FRAC * rng, JPEG_MAX_ABS_FRAC * rng, tag))
    elif ts == JLS_NEAR:
        near = jls_near(path)
        if near is None or d.max() > near:
            fail("%s: JPEG-LS near-lossless beyond NEAR=%s (%s)" % (path, near, tag))
        tag += " NEAR=%d" % near
    elif ts == J2K_LOSSY:
        if d.max() > J2K_MAX_ABS:
            fail("%s: JPEG 2000 lossy differs from GDCM/OpenJPEG by more than %d (%s)" % (path, J2K_MAX_ABS, tag))
    else:
        fail("%s: no tolerance defined for transfer syntax %s" % (path, ts))
    print("ok raw %s %s" % (path, tag))


def cmd_display(path, ours_png, ours_raw_png, stage="display"):
    s, ds, ts = gdcm_stored(path)
    if s is None:
        raise Undecodable(path)
    src = "gdcm"
    if ts not in LOSSLESS:
        # Judge the pipeline on freeair's own decoded values; the codec is
        # judged by `raw`.
        lo_s, _ = stored_range(int(ds.BitsStored), int(ds.get("PixelRepresentation", 0)))
        s, src = read_png(ours_raw_png) + lo_s, "freeair-raw"
    exp, how = reference_stage(ds, s, stage)
    got = read_png(ours_png)
    if got.shape != exp.shape:
        fail("%s: shape %s vs %s" % (path, got.shape, exp.shape))
    d = np.abs(got - exp)
    if d.max() > 1:
        fail("%s: %s stage (%s) differs by up to %d (mean %.3f)" % (path, stage, how, d.max(), d.mean()))
    if stage == "display":
        pydicom_window_check(ds, s)
    print("ok %s %s %s values=%s max=%d" % (stage, path, how, src, d.max()))


# ------------------------------------------------------------ fixtures ---

def _base(rows, cols, bs, pr, pm="MONOCHROME2", ba=16):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "FIXTURE"
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = pm
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = ba, bs, bs - 1
    ds.PixelRepresentation = pr
    ds.PixelSpacing = [0.15, 0.2]
    return ds


def _pixels(ds, words):
    ba = int(ds.BitsAllocated)
    dt = np.uint8 if ba == 8 else "<u2"
    ds.PixelData = np.asarray(words).astype(np.int64).astype(np.uint64).astype(dt).tobytes()


def _pattern(rows, cols, lo, hi, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    base = lo + (hi - lo) * (0.5 + 0.45 * np.sin(x / 7.0) * np.cos(y / 5.0))
    v = np.round(base + rng.normal(0, (hi - lo) * 0.03, size=(rows, cols)))
    v = np.clip(v, lo, hi).astype(np.int64)
    v[0, 0], v[0, 1] = lo, hi
    return v


def cmd_fixtures(out):
    """Each fixture: a DICOM file, its known stored values and the expected
    raw/modality/display outputs per this script's pipeline."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    os.makedirs(os.path.join(out, "expect"), exist_ok=True)
    made = {}

    def save(name, ds, s):
        p = os.path.join(out, name + ".dcm")
        ds.save_as(p, write_like_original=False)
        for st in ("raw", "modality", "display"):
            e, how = reference_stage(ds, s, st)
            np.save(os.path.join(out, "expect", "%s.%s.npy" % (name, st)), e)
            made.setdefault(name, {})[st] = how

    # Signed 12-bit, rescale 0.5/-100, LINEAR_EXACT window.
    ds = _base(40, 52, 12, 1)
    s = _pattern(40, 52, -2048, 2047, 1)
    _pixels(ds, s & 0xFFF)
    ds.RescaleSlope, ds.RescaleIntercept = "0.5", "-100"
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = "150", "700", "LINEAR_EXACT"
    save("signed_rescale_linear_exact", ds, s)

    # Unsigned 16-bit, SIGMOID window, MONOCHROME1.
    ds = _base(33, 47, 16, 0, "MONOCHROME1")
    s = _pattern(33, 47, 0, 65535, 2)
    _pixels(ds, s)
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = ["30000", "1000"], ["20000", "10"], "SIGMOID"
    save("u16_sigmoid_mono1", ds, s)

    # 12 bits stored with junk in the 4 unused high bits; LINEAR window.
    ds = _base(30, 30, 12, 0)
    s = _pattern(30, 30, 0, 4095, 3)
    junk = np.random.default_rng(4).integers(0, 16, size=s.shape) << 12
    _pixels(ds, s | junk)
    ds.WindowCenter, ds.WindowWidth = "2000.5", "1001"
    save("u12_junk_high_bits", ds, s)

    # High bit not at BitsStored-1: 12 bits stored in bits 4..15.
    ds = _base(20, 28, 12, 0)
    ds.HighBit = 15
    s = _pattern(20, 28, 0, 4095, 5)
    _pixels(ds, s << 4)
    ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    save("u12_high_bit_15", ds, s)

    # VOI LUT Sequence (gamma curve), no window.
    ds = _base(36, 24, 12, 0)
    s = _pattern(36, 24, 0, 4095, 6)
    _pixels(ds, s)
    item = Dataset()
    item.LUTDescriptor = [3000, 500, 16]
    item.LUTData = [int(round(65535 * (i / 2999.0) ** 0.6)) for i in range(3000)]
    item["LUTDescriptor"].VR = "US"
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = Sequence([item])
    save("voi_lut_sequence", ds, s)

    # Modality LUT Sequence then a LINEAR window on its output.
    ds = _base(26, 30, 10, 0)
    s = _pattern(26, 30, 0, 1023, 7)
    _pixels(ds, s)
    item = Dataset()
    item.LUTDescriptor = [1024, 0, 12]
    item.LUTData = [int(4095 * (1 - math.exp(-i / 300.0)) / (1 - math.exp(-1023 / 300.0))) for i in range(1024)]
    item["LUTDescriptor"].VR = "US"
    item["LUTData"].VR = "US"
    item.ModalityLUTType = "OD"
    ds.ModalityLUTSequence = Sequence([item])
    ds.WindowCenter, ds.WindowWidth = "2000", "3000"
    save("modality_lut_sequence", ds, s)

    # MONOCHROME2 + Presentation LUT Shape INVERSE, no window: auto window.
    ds = _base(50, 44, 14, 0)
    s = _pattern(50, 44, 100, 16000, 8)
    _pixels(ds, s)
    ds.PresentationLUTShape = "INVERSE"
    save("mono2_inverse_auto", ds, s)

    # MONOCHROME1 with padding (excluded from the auto window), signed 16.
    ds = _base(48, 40, 16, 1, "MONOCHROME1")
    s = _pattern(48, 40, -3000, 9000, 9)
    s[:, :6] = -32768
    _pixels(ds, s & 0xFFFF)
    ds.PixelPaddingValue = -32768
    ds["PixelPaddingValue"].VR = "SS"
    save("mono1_padding_auto", ds, s)

    # 8-bit allocated, 8 stored, MONOCHROME2, no window.
    ds = _base(17, 23, 8, 0, ba=8)
    s = _pattern(17, 23, 0, 255, 10)
    _pixels(ds, s)
    save("u8_auto", ds, s)

    # RGB native, interleaved and planar: grey by PIL's luma.
    rgb = np.stack([_pattern(18, 22, 0, 255, 11 + k) for k in range(3)], axis=-1)
    grey = (rgb[:, :, 0] * 19595 + rgb[:, :, 1] * 38470 + rgb[:, :, 2] * 7471 + 0x8000) >> 16
    for planar in (0, 1):
        ds = _base(18, 22, 8, 0, "RGB", ba=8)
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, planar
        data = rgb.transpose(2, 0, 1) if planar else rgb
        ds.PixelData = data.astype(np.uint8).tobytes()
        save("rgb_planar%d" % planar, ds, grey)

    # YBR_FULL (interleaved) and native YBR_FULL_422 (Y1 Y2 Cb Cr per pixel
    # pair): grey is the Y sample.
    ybr = np.stack([_pattern(14, 20, 0, 255, 40 + k) for k in range(3)], axis=-1)
    ds = _base(14, 20, 8, 0, "YBR_FULL", ba=8)
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.PixelData = ybr.astype(np.uint8).tobytes()
    save("ybr_full", ds, ybr[:, :, 0])
    ds = _base(14, 20, 8, 0, "YBR_FULL_422", ba=8)
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    y = ybr[:, :, 0].reshape(14, 10, 2)
    cb = ybr[:, 0::2, 1].reshape(14, 10, 1)
    cr = ybr[:, 0::2, 2].reshape(14, 10, 1)
    ds.PixelData = np.concatenate([y, cb, cr], axis=2).astype(np.uint8).tobytes()
    save("ybr_full_422", ds, ybr[:, :, 0])

    # Three frames: frame 0 is decoded.
    ds = _base(12, 16, 16, 0)
    frames = [_pattern(12, 16, 0, 60000, 20 + k) for k in range(3)]
    ds.NumberOfFrames = 3
    ds.PixelData = np.stack(frames).astype("<u2").tobytes()
    ds.WindowCenter, ds.WindowWidth = "30000", "40000"
    save("multiframe3", ds, frames[0])

    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(made, f, indent=1, sort_keys=True)

    # Broken ones (no expectations: freeair must refuse them cleanly).
    ds = _base(64, 64, 16, 0)
    _pixels(ds, _pattern(64, 64, 0, 4000, 30))
    p = os.path.join(out, "bad_truncated.dcm")
    ds.save_as(p, write_like_original=False)
    with open(p, "rb+") as f:
        f.truncate(os.path.getsize(p) - 3000)
    ds = _base(64, 64, 16, 0)
    _pixels(ds, _pattern(32, 32, 0, 4000, 31))  # a quarter of the pixels declared
    ds.save_as(os.path.join(out, "bad_short_pixel_data.dcm"), write_like_original=False)
    ds = _base(65535, 65535, 16, 0)
    ds.PixelData = b"\0" * 64
    ds.save_as(os.path.join(out, "bad_absurd_size.dcm"), write_like_original=False)
    ds = _base(8, 8, 16, 0)
    ds.BitsStored = 20
    ds.PixelData = b"\0" * 128
    ds.save_as(os.path.join(out, "bad_bits_stored.dcm"), write_like_original=False)
    ds = _base(8, 8, 16, 0)
    ds.BitsAllocated = 32
    ds.PixelData = b"\0" * 256
    ds.save_as(os.path.join(out, "bad_bits_allocated32.dcm"), write_like_original=False)
    open(os.path.join(out, "bad_empty.dcm"), "wb").close()
    with open(os.path.join(out, "bad_text.dcm"), "w") as f:
        f.write("this is not a DICOM file\n" * 20)
    with open(os.path.join(out, "bad_preamble_only.dcm"), "wb") as f:
        f.write(b"\0" * 128 + b"DICM")
    print("fixtures: %s" % ", ".join(sorted(made)))


def cmd_fixture_check(out, name, stage, ours_png):
    exp = np.load(os.path.join(out, "expect", "%s.%s.npy" % (name, stage)))
    got = read_png(ours_png)
    if got.shape != exp.shape:
        fail("%s %s: shape %s vs %s" % (name, stage, got.shape, exp.shape))
    tol = 0 if stage == "raw" else 1
    d = np.abs(got - exp)
    if d.max() > tol:
        fail("%s %s: differs by up to %d (tolerance %d)" % (name, stage, d.max(), tol))
    print("ok fixture %s %s max=%d" % (name, stage, d.max()))


def cmd_pil_grey(path, ours_png):
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I"):
        exp = np.array(im).astype(np.int64)
    else:
        exp = np.array(im.convert("L")).astype(np.int64) * 257
    got = read_png(ours_png)
    if got.shape != exp.shape:
        fail("%s: shape %s vs PIL %s" % (path, got.shape, exp.shape))
    d = np.abs(got - exp).max()
    tol = 257 * 1 if path.lower().endswith((".jpg", ".jpeg")) else 0  # libjpeg vs PIL's libjpeg: allow 1 level
    if d > tol:
        fail("%s: differs from PIL by %d" % (path, d))
    print("ok pil %s max=%d" % (path, d))


def cmd_undecodable(path):
    s, _, ts = gdcm_stored(path)
    if s is not None:
        fail("%s: GDCM decodes it (ts=%s) but it was expected to be broken" % (path, ts))
    print("ok undecodable %s" % path)


def cmd_info(path, info_txt):
    import pydicom
    ds = pydicom.dcmread(path, force=True, defer_size="4 KB")
    got = {}
    with open(info_txt, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition(": ")
            got[k] = v
    def s(kw):
        v = ds.get(kw, "")
        if isinstance(v, pydicom.multival.MultiValue):
            v = "\\".join(str(x) for x in v)
        return str(v).strip()
    checks = {
        "patient_id": s("PatientID"), "sop_uid": s("SOPInstanceUID"), "modality": s("Modality"),
        "body_part": s("BodyPartExamined"), "view_position": s("ViewPosition"),
        "patient_position": s("PatientPosition"), "photometric": s("PhotometricInterpretation"),
        "manufacturer": s("Manufacturer"), "image_type": s("ImageType"),
        "rows": str(int(ds.get("Rows", 0) or 0)), "columns": str(int(ds.get("Columns", 0) or 0)),
        "bits_stored": str(int(ds.get("BitsStored", ds.get("BitsAllocated", 0)) or 0)),
        "has_pixel_data": "1" if "PixelData" in ds else "0",
    }
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        checks["transfer_syntax"] = str(meta.TransferSyntaxUID)
    for k, v in checks.items():
        if all(ord(c) < 128 for c in v) and got.get(k) != v:
            fail("%s: --info %s=%r, pydicom %r" % (path, k, got.get(k), v))
    print("ok info %s" % path)


def cmd_j2k(src, dst, lossy=False):
    import gdcm
    r = gdcm.ImageReader()
    r.SetFileName(src)
    if not r.Read():
        fail("GDCM cannot read " + src)
    change = gdcm.ImageChangeTransferSyntax()
    ts = gdcm.TransferSyntax.JPEG2000 if lossy else gdcm.TransferSyntax.JPEG2000Lossless
    change.SetTransferSyntax(gdcm.TransferSyntax(ts))
    if lossy:
        codec = gdcm.JPEG2000Codec()
        codec.SetRate(0, 10.0)
        codec.SetReversible(False)
        change.SetUserCodec(codec)
    change.SetInput(r.GetImage())
    if not change.Change():
        fail("GDCM cannot encode JPEG 2000 from " + src)
    w = gdcm.ImageWriter()
    w.SetFileName(dst)
    w.SetFile(r.GetFile())
    w.SetImage(change.GetOutput())
    if not w.Write():
        fail("GDCM cannot write " + dst)
    print("ok j2k %s" % dst)


def cmd_images(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:37, 0:53]
    rgb = np.stack([(x * 4 + y) % 256, (x * 2 + y * 5) % 256, (255 - x * 3) % 256], -1).astype(np.uint8)
    Image.fromarray(rgb).save(os.path.join(out, "rgb.png"))
    Image.fromarray(rgb).convert("RGBA").save(os.path.join(out, "rgba.png"))
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=17).save(os.path.join(out, "palette.png"))
    Image.fromarray(rgb[:, :, 1]).save(os.path.join(out, "grey8.png"))
    g16 = (rng.integers(0, 65536, size=(29, 31))).astype(np.uint16)
    Image.fromarray(g16).save(os.path.join(out, "grey16.png"))
    Image.fromarray(rgb[:, :, 0]).save(os.path.join(out, "grey.jpg"), quality=92)
    Image.fromarray(rgb).save(os.path.join(out, "colour.jpg"), quality=92)
    print("ok images %s" % out)


def cmd_batch(jobfile):
    bad = 0
    n = 0
    with open(jobfile) as f:
        for line in f:
            args = line.split()
            if not args:
                continue
            n += 1
            try:
                rc = run_one(["dicom_reference.py"] + args)
                if rc:
                    bad += 1
            except Mismatch as e:
                print("MISMATCH: %s" % e)
                bad += 1
            except Undecodable as e:
                print("MISMATCH: reference cannot decode %s" % e)
                bad += 1
            except Exception as e:  # a crash in the reference is a failure too
                print("ERROR: %s: %r" % (" ".join(args), e))
                bad += 1
            sys.stdout.flush()
    print("batch: %d checks, %d failed" % (n, bad))
    return 1 if bad or n == 0 else 0


def main(argv):
    try:
        return run_one(argv)
    except Mismatch as e:
        print("MISMATCH: %s" % e)
        return 1
    except Undecodable as e:
        print("reference cannot decode %s" % e)
        return 3


def run_one(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = argv[1]
    if cmd == "batch" and len(argv) == 3:
        return cmd_batch(argv[2])
    if cmd == "undecodable" and len(argv) == 3:
        cmd_undecodable(argv[2])
    elif cmd == "info" and len(argv) == 4:
        cmd_info(argv[2], argv[3])
    elif cmd == "j2k" and len(argv) == 4:
        cmd_j2k(argv[2], argv[3])
    elif cmd == "j2k" and len(argv) == 5 and argv[2] == "--lossy":
        cmd_j2k(argv[3], argv[4], True)
    elif cmd == "images" and len(argv) == 3:
        cmd_images(argv[2])
    elif cmd == "raw" and len(argv) == 4:
        cmd_raw(argv[2], argv[3])
    elif cmd == "display" and len(argv) in (5, 6):
        cmd_display(argv[2], argv[3], argv[4], argv[5] if len(argv) == 6 else "display")
    elif cmd == "fixtures" and len(argv) == 3:
        cmd_fixtures(argv[2])
    elif cmd == "fixture-check" and len(argv) == 6:
        cmd_fixture_check(argv[2], argv[3], argv[4], argv[5])
    elif cmd == "pil-grey" and len(argv) == 4:
        cmd_pil_grey(argv[2], argv[3])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
