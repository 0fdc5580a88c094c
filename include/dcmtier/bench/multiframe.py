"""A synthetic multi-frame instance written frame by frame (never whole in memory).

``write_multiframe`` writes an explicit VR little endian X-Ray Angiographic (or, with
``tomo=True``, Breast Tomosynthesis) object: a phantom image shifted one column per frame with
a little noise, so that lossless coding compresses it about as a real cine does. The header is
written by pydicom; the native Pixel Data follows it, one frame at a time, so an instance of
several GB needs no more than one frame of memory to write. The same arguments write the same
bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from dcmtier.sample import ct_phantom

XA_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"
TOMO_STORAGE = "1.2.840.10008.5.1.4.1.1.13.1.3"
PIXEL_DATA_OW = b"\xe0\x7f\x10\x00OW\x00\x00"


def write_multiframe(
    path: Path,
    *,
    frames: int,
    rows: int = 512,
    columns: int = 512,
    bits_stored: int = 12,
    seed: int = 0,
    tomo: bool = False,
) -> int:
    """Write the instance to ``path``; return its pixel data size in bytes."""
    ds = _header(frames, rows, columns, bits_stored, seed=seed, tomo=tomo)
    buffer = DicomBytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    length = frames * rows * columns * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(buffer.getvalue())
        out.write(PIXEL_DATA_OW + struct.pack("<I", length))
        for frame in _frames(frames, rows, columns, bits_stored, seed):
            out.write(frame.astype("<u2").tobytes())
    return length


def _frames(
    frames: int, rows: int, columns: int, bits_stored: int, seed: int
) -> Iterator[np.ndarray]:
    top = (1 << bits_stored) - 1
    hu = ct_phantom(min(rows, 1024), min(columns, 1024), z=0.5, seed=seed).astype(np.float32)
    scaled = (hu - hu.min()) / max(float(hu.max() - hu.min()), 1.0) * (top * 0.8)
    base = np.resize(scaled, (rows, columns)) if scaled.shape != (rows, columns) else scaled
    rng = np.random.default_rng(seed)
    for index in range(frames):
        noise = rng.normal(0.0, 4.0, (rows, columns)).astype(np.float32)
        frame = np.roll(base, index, axis=1) + noise
        yield np.clip(np.rint(frame), 0, top).astype(np.uint16)


def _header(frames: int, rows: int, columns: int, bits: int, *, seed: int, tomo: bool) -> Dataset:
    sop_class = UID(TOMO_STORAGE if tomo else XA_STORAGE)
    params = [str(v) for v in (frames, rows, columns, bits, seed, tomo)]
    study = generate_uid(entropy_srcs=["dcmtier-multiframe", "study", *params])
    series = generate_uid(entropy_srcs=[study, "series"])
    sop = generate_uid(entropy_srcs=[series, "instance"])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName = ds.PatientID = "SAMPLE^MULTIFRAME"
    ds.StudyDate = ds.SeriesDate = "20240115"
    ds.Modality = "MG" if tomo else "XA"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    return ds
