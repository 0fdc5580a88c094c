"""A landing area made like a real archive's: the headers and files that stop naive tools.

``messy_landing`` writes, beside one clean study, files generated with pydicom and
``dcmtier.sample`` (plus pydicom's bundled test files) that carry what real archives
hold: UIDs that are not DICOM UIDs (64 hex digits), the same SOP Instance UID twice with
identical and with differing pixel data, a DICOMDIR, a text file, Rows 0, Rescale Slope 0 and
unsigned stored values above Bits Stored. Real scanner files (pydicom's ``CT_small.dcm`` and
``MR_small.dcm``) stand beside them: the CT also re-sent in another transfer syntax (RLE
Lossless: the same instance twice), the MR with its UIDs rewritten as an anonymiser's hex.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless

from dcmtier.sample import write_ct_series

SIZE = 64


@dataclass(frozen=True)
class Messy:
    """What was planted, by study UID and SOP Instance UID."""

    root: Path
    clean_study: str
    hex_study: str
    mixed_study: str  # holds every per-instance problem beside good slices
    scanner_study: str  # a real CT, and the same instance again in another transfer syntax
    scanner_sop: str
    duplicate_sop: str  # two files, identical pixel data
    conflict_sop: str  # two files, different pixel data
    rows_zero_sop: str
    slope_zero_sop: str
    above_bits_sop: str
    above_bits_values: np.ndarray


def hex_uid(text: str) -> str:
    """What some anonymisers write instead of a UID: 64 hex digits."""
    return hashlib.sha256(text.encode()).hexdigest()


def messy_landing(root: Path) -> Messy:
    clean = write_ct_series(root / "clean", slices=3, rows=SIZE, columns=SIZE, seed=11)
    hex_files = write_ct_series(root / "hex", slices=3, rows=SIZE, columns=SIZE, seed=12)
    hex_study = hex_uid("study")
    hex_files.append(root / "hex" / "MR_small.dcm")  # a real scanner file, anonymised so
    shutil.copy(str(get_testdata_file("MR_small.dcm")), hex_files[-1])
    for index, path in enumerate(hex_files):
        ds = dcmread(path)
        ds.StudyInstanceUID = hex_study
        ds.SeriesInstanceUID = hex_uid("series")
        ds.SOPInstanceUID = hex_uid(f"sop{index}")
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(path)
    mixed = write_ct_series(
        root / "mixed", slices=8, rows=SIZE, columns=SIZE, seed=13, signed=False
    )
    duplicate, conflict = mixed[0], mixed[1]
    shutil.copy(duplicate, root / "mixed" / "resent.dcm")  # the same instance sent twice
    other = dcmread(mixed[2])
    other.SOPInstanceUID = dcmread(conflict).SOPInstanceUID  # another image, the same UID
    other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
    other.save_as(root / "mixed" / "clash.dcm")
    rows_zero = _edit(mixed[3], Rows=0)
    slope_zero = _edit(mixed[4], RescaleSlope=0)
    above = dcmread(mixed[5])
    values = above.pixel_array.astype(np.uint16)
    values[:4, :4] = 5000  # above Bits Stored 12: an old scanner's overlay bit
    above.PixelData = values.tobytes()
    above.save_as(mixed[5])
    scanner = dcmread(get_testdata_file("CT_small.dcm"))
    (root / "scanner").mkdir()
    scanner.save_as(root / "scanner" / "CT_small.dcm")
    # the same instance, sent again in another transfer syntax (and its UID kept: pydicom
    # would make a new one)
    scanner.compress(RLELossless, generate_instance_uid=False)
    scanner.save_as(root / "scanner" / "CT_small_rle.dcm")
    shutil.copy(str(get_testdata_file("DICOMDIR")), root / "DICOMDIR")
    (root / "README.txt").write_text("exported by a scanner console\n")
    return Messy(
        root=root,
        clean_study=str(dcmread(clean[0]).StudyInstanceUID),
        hex_study=hex_study,
        mixed_study=str(dcmread(mixed[0]).StudyInstanceUID),
        scanner_study=str(scanner.StudyInstanceUID),
        scanner_sop=str(scanner.SOPInstanceUID),
        duplicate_sop=str(dcmread(duplicate).SOPInstanceUID),
        conflict_sop=str(dcmread(conflict).SOPInstanceUID),
        rows_zero_sop=rows_zero,
        slope_zero_sop=slope_zero,
        above_bits_sop=str(above.SOPInstanceUID),
        above_bits_values=values,
    )


def _edit(path: Path, **values: object) -> str:
    ds = dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return str(ds.SOPInstanceUID)
