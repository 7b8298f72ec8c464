#!/usr/bin/env python3
"""serve_make_dicom.py - small synthetic radiographs for the serve tests,
written with pydicom (an implementation independent of DCMTK, which the node
uses to receive them).

usage: serve_make_dicom.py OUT_DIR --n N [--studies S] [--size PX] [--seed K]
                           [--kind chest|hip|ct|processing] [--modality CR|DX]
                           [--prefix UIDROOT]

Each file is OUT_DIR/img_NNNN.dcm: a grey 16-bit "chest" (noise, two dark
lungs, bright diaphragm; every third image gets a bright crescent of "free
air"), PA view, body part CHEST, with unique SOP Instance UIDs under
--prefix and N images spread over S studies (patients P0000..).
--kind hip / ct / processing make images the chest gate must refuse.
"""
import argparse
import os

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROC = "1.2.840.10008.5.1.4.1.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def image(rng, size, positive):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = 0.3 + 0.1 * yy + 0.05 * rng.random((size, size))
    for cx in (0.3, 0.7):
        img[((xx - cx) / 0.17) ** 2 + ((yy - 0.45) / 0.3) ** 2 < 1] -= 0.12
    img[yy > 0.72 + 0.05 * np.cos((xx - 0.5) * 6)] += 0.3
    if positive:
        img[((xx - 0.3) / 0.12) ** 2 + ((yy - 0.66) / 0.03) ** 2 < 1] += 0.4
    return np.clip(img * 4000, 0, 4095).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--studies", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kind", default="chest", choices=["chest", "hip", "ct", "processing"])
    ap.add_argument("--modality", default="CR", choices=["CR", "DX"])
    ap.add_argument("--prefix", default="1.2.826.0.1.3680043.9.7777")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    studies = a.studies or a.n
    for i in range(a.n):
        st = i % studies
        cls = {"chest": CR if a.modality == "CR" else DX, "hip": CR, "ct": CT, "processing": DX_PROC}[a.kind]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = cls
        meta.MediaStorageSOPInstanceUID = f"{a.prefix}.{a.seed}.3.{i + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = os.path.join(a.out, f"img_{i:04d}.dcm")
        ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = cls
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = f"{a.prefix}.{a.seed}.1.{st + 1}"
        ds.SeriesInstanceUID = f"{a.prefix}.{a.seed}.2.{st + 1}"
        ds.PatientID = f"P{a.seed:02d}{st:04d}"
        ds.PatientName = f"Test^{st}"
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "M"
        ds.StudyDate = "20260101"
        ds.StudyTime = "120000"
        ds.AccessionNumber = f"A{st:06d}"
        ds.StudyID = str(st + 1)
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber = "1"
        ds.InstanceNumber = str(i + 1)
        ds.Modality = {"chest": a.modality, "hip": "CR", "ct": "CT", "processing": "DX"}[a.kind]
        ds.BodyPartExamined = "HIP" if a.kind == "hip" else "CHEST"
        ds.ViewPosition = "PA"
        ds.Manufacturer = "pydicom-synth"
        if a.kind == "processing":
            ds.PresentationIntentType = "FOR PROCESSING"
        elif ds.Modality == "DX":
            ds.PresentationIntentType = "FOR PRESENTATION"
        px = image(rng, a.size, i % 3 == 0)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = px.shape
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = px.tobytes()
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        ds.save_as(path, write_like_original=False)


if __name__ == "__main__":
    main()
