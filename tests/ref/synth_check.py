#!/usr/bin/env python3
"""synth_check.py - independent checks of a cohort written by `freeair synth`.

Uses pydicom (headers), GDCM through pydicom (JPEG lossless, JPEG-LS), pydicom's
own RLE decoder, and PIL (mask PNGs) - none of freeair's code.

  synth_check.py files DIR DIR_EXPLICIT
      every manifest row: the DICOM header read by pydicom matches the
      standard manifest columns; the pixels decode (GDCM/RLE) to exactly the
      values of the same cohort written uncompressed (DIR_EXPLICIT); masks of
      positives exist, lie below the recorded diaphragm polylines and inside
      free_air_bbox; negatives have no mask.
  synth_check.py composition MANIFEST paper|small|tiny
      counts against the study's Table 1 (paper: exact; small/tiny: the same
      proportions within rounding), patient consistency, ages per class/sex.
Exits 1 with a message per failure.
"""
import csv
import math
import os
import sys
from collections import defaultdict

failures = []


def fail(msg):
    failures.append(msg)
    if len(failures) <= 30:
        print("FAIL:", msg, file=sys.stderr)


def read_manifest(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def polyline(s):
    return [tuple(float(v) for v in p.split(":")) for p in s.split(";") if p]


def dome_y(pts, x):
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        lo, hi = min(x0, x1), max(x0, x1)
        if lo <= x <= hi:
            t = (x - x0) / (x1 - x0) if x1 != x0 else 0.0
            return y0 + t * (y1 - y0)
    return None


def check_files(d, d_explicit):
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.pixel_data_handlers import gdcm_handler, numpy_handler, rle_handler

    # independent decoders only (no pylibjpeg/jpeg_ls plug-ins)
    pydicom.config.pixel_data_handlers = [numpy_handler, rle_handler, gdcm_handler]
    rows = read_manifest(os.path.join(d, "manifest.csv"))
    if not rows:
        fail("empty manifest")
    seen_ts = set()
    for r in rows:
        p = os.path.join(d, r["path"])
        ds = pydicom.dcmread(p)
        ts = str(ds.file_meta.TransferSyntaxUID)
        seen_ts.add(ts)
        expect = {
            "patient_id": str(ds.PatientID),
            "study_uid": str(ds.StudyInstanceUID),
            "series_uid": str(ds.SeriesInstanceUID),
            "sop_uid": str(ds.SOPInstanceUID),
            "modality": str(ds.Modality),
            "body_part": str(ds.BodyPartExamined),
            "view": str(ds.ViewPosition),
            "manufacturer": str(ds.Manufacturer),
            "model": str(ds.ManufacturerModelName),
            "station": str(ds.StationName),
            "institution": str(ds.InstitutionName),
            "sex": str(ds.PatientSex),
            "age": str(int(str(ds.PatientAge)[:3])),
            "acquisition_date": str(ds.AcquisitionDate),
            "rows": str(ds.Rows),
            "columns": str(ds.Columns),
            "pixel_spacing": "%.6g\\%.6g" % (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
            "bits_stored": str(ds.BitsStored),
            "photometric": str(ds.PhotometricInterpretation),
            "transfer_syntax": ts,
            "presentation_intent": str(ds.get("PresentationIntentType", "")),
        }
        for k, v in expect.items():
            if r[k] != v:
                fail("%s: %s manifest %r, file %r" % (r["path"], k, r[k], v))
        if str(ds.file_meta.MediaStorageSOPInstanceUID) != str(ds.SOPInstanceUID):
            fail("%s: meta SOP instance differs" % r["path"])
        if not str(ds.SOPInstanceUID).startswith("2.25.") or len(str(ds.SOPInstanceUID)) > 64:
            fail("%s: SOP instance UID %s" % (r["path"], ds.SOPInstanceUID))
        # photometric and presentation LUT agree (DX)
        if r["modality"] == "DX":
            want = "INVERSE" if r["photometric"] == "MONOCHROME1" else "IDENTITY"
            if str(ds.PresentationLUTShape) != want:
                fail("%s: PresentationLUTShape %s" % (r["path"], ds.PresentationLUTShape))
        a = ds.pixel_array
        b = pydicom.dcmread(os.path.join(d_explicit, r["path"])).pixel_array
        if a.shape != b.shape or not np.array_equal(a, b):
            fail("%s (%s): pixels differ from the uncompressed copy" % (r["path"], ts))
        if int(a.max()) >= (1 << int(ds.BitsStored)):
            fail("%s: value above bits stored" % r["path"])
        # truth mask
        label = int(r["label"])
        mpath = r["free_air_mask"]
        if label:
            if not mpath:
                fail("%s: positive without mask path" % r["path"])
                continue
            m = np.array(Image.open(os.path.join(d, mpath)))
            if m.shape != a.shape:
                fail("%s: mask shape %s" % (r["path"], m.shape))
                continue
            ys, xs = np.nonzero(m)
            if len(xs) == 0:
                fail("%s: empty mask" % r["path"])
                continue
            domes = [polyline(r["dome_right"]), polyline(r["dome_left"])]
            above = 0
            for x, y in zip(xs, ys):
                cands = [dome_y(pts, x + 0.5) for pts in domes]
                cands = [c for c in cands if c is not None]
                if not cands or (y + 0.5) - min(cands, key=lambda c: abs(y + 0.5 - c)) < -1.0:
                    above += 1
            if above:
                fail("%s: %d mask pixels above the diaphragm" % (r["path"], above))
            x0, y0, x1, y1 = (int(v) for v in r["free_air_bbox"].split())
            if xs.min() < x0 or xs.max() > x1 or ys.min() < y0 or ys.max() > y1:
                fail("%s: mask outside free_air_bbox" % r["path"])
            if xs.min() > x0 + 2 or xs.max() < x1 - 2 or ys.min() > y0 + 2 or ys.max() < y1 - 2:
                fail("%s: free_air_bbox %s loose around the mask (%d %d %d %d)" %
                     (r["path"], r["free_air_bbox"], xs.min(), ys.min(), xs.max(), ys.max()))
        else:
            if mpath or r["free_air_bbox"] or r["free_air_side"] != "none":
                fail("%s: negative with free-air truth" % r["path"])
    need = {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80"}
    if not need <= seen_ts:
        fail("transfer syntaxes missing: %s" % sorted(need - seen_ts))
    print("files: %d checked, syntaxes %s" % (len(rows), sorted(seen_ts)))


PAPER = dict(n=1287, pos=634, patients=1124, fixed=969, portable=318, philips=1145, academic=1061, ap=554,
             male=697, pos_male=344, neg_male=353, postop=182, pool_pos=420, pool_neg=465)
AGES = {(0, "M"): (61.82, 17.79), (0, "F"): (58.98, 19.89), (1, "M"): (61.06, 17.44), (1, "F"): (65.09, 16.09)}


def check_composition(path, preset):
    rows = read_manifest(path)
    c = defaultdict(int)
    by_patient = defaultdict(list)
    ages = defaultdict(list)
    for r in rows:
        label = int(r["label"])
        philips = "philips" in r["manufacturer"].lower()
        academic = r["hospital_type"] == "academic"
        fixed = r["unit"] == "fixed"
        c["n"] += 1
        c["pos"] += label
        c["fixed"] += fixed
        c["portable"] += not fixed
        c["philips"] += philips
        c["academic"] += academic
        c["ap"] += r["view"] == "AP"
        c["male"] += r["sex"] == "M"
        c["pos_male"] += label and r["sex"] == "M"
        c["neg_male"] += (not label) and r["sex"] == "M"
        c["postop"] += label and r["postoperative"] == "1"
        pool = fixed and philips and academic
        c["pool_pos"] += pool and label
        c["pool_neg"] += pool and not label
        by_patient[r["patient_id"]].append((r["sex"], r["age"], label, r["hospital"], pool))
        ages[(label, r["sex"])].append(float(r["age"]))
        if r["status"] != "ok" or r["body_part"] != "CHEST" or r["view"] not in ("AP", "PA"):
            fail("%s: status/body part/view %s %s %s" % (r["path"], r["status"], r["body_part"], r["view"]))
        if r["unit"] == "portable" and r["view"] != "AP":
            fail("%s: portable PA" % r["path"])
    c["patients"] = len(by_patient)
    for pid, imgs in by_patient.items():
        if len(set(imgs)) != 1:
            fail("patient %s: repeat images disagree %s" % (pid, imgs))
    hospitals = {r["hospital"] for r in rows}
    scale = c["n"] / 1287.0
    if preset == "paper":
        for k, v in PAPER.items():
            if c[k] != v:
                fail("paper %s: %d, Table 1 says %d" % (k, c[k], v))
        if len(hospitals) != 13:
            fail("paper: %d hospitals" % len(hospitals))
        for (label, sex), (m, sd) in AGES.items():
            a = ages[(label, sex)]
            mean = sum(a) / len(a)
            s = math.sqrt(sum((x - mean) ** 2 for x in a) / (len(a) - 1))
            if abs(mean - m) > 0.3 or abs(s - sd) > 0.5:
                fail("paper ages label %d %s: %.2f+/-%.2f vs %.2f+/-%.2f" % (label, sex, mean, s, m, sd))
    else:
        want_n = {"small": 360, "tiny": 40}[preset]
        if c["n"] != want_n:
            fail("%s: %d images" % (preset, c["n"]))
        for k, v in PAPER.items():
            if abs(c[k] - v * scale) > 1.5 + 0.02 * v * scale:
                fail("%s %s: %d vs %.1f" % (preset, k, c[k], v * scale))
    print("composition %s: %s" % (preset, dict(c)))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "files":
        check_files(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "composition":
        check_composition(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if failures:
        print("%d failure(s)" % len(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
