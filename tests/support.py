"""Test support: reference files, and independent decoders to check outputs with.

The decoders are GDCM's gdcmconv, OpenJPEG's opj_decompress and libjxl's djxl.

GDCM and OpenJPEG's tools share no code with the encoders dcmtier calls (pylibjpeg-openjpeg,
OpenJPH, pyjpegls). djxl is the JPEG XL reference decoder: the same project as the libjxl 0.11
inside imagecodecs, but Debian's separate build of release 0.7, so it checks that the files
decode with an older, independently built decoder as archives will have it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames


def reference_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing"
    return Path(str(path))


def require_tool(name: str) -> str:
    """The path of a command-line tool the tests need; CI installs it (.ci/run)."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `apt-get install` as .ci/run does")
    return found


def gdcm_frames(path: Path, workdir: Path) -> list[np.ndarray]:
    """Decode with ``gdcmconv --raw`` and read the uncompressed result."""
    out = workdir / f"{path.stem}.raw.dcm"
    subprocess.run(
        [require_tool("gdcmconv"), "--raw", str(path), str(out)],
        check=True,
        capture_output=True,
    )
    ds = dcmread(out)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    return list(arr) if frames > 1 else [arr]


def openjpeg_frames(path: Path, workdir: Path) -> list[np.ndarray]:
    """Decode each J2K/HTJ2K frame with ``opj_decompress`` into raw little-endian samples."""
    ds = dcmread(path)
    frames = int(ds.get("NumberOfFrames") or 1)
    signed = int(ds.PixelRepresentation) == 1
    out: list[np.ndarray] = []
    for index, codestream in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
        j2k = workdir / f"{path.stem}.{index}.j2k"
        raw = workdir / f"{path.stem}.{index}.rawl"
        j2k.write_bytes(codestream)
        subprocess.run(
            [require_tool("opj_decompress"), "-i", str(j2k), "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        size = 1 if int(ds.BitsAllocated) <= 8 else 2
        dtype = np.dtype(f"<{'i' if signed else 'u'}{size}")
        planes = np.fromfile(raw, dtype=dtype)
        stored = int(ds.BitsStored)
        if signed and stored < 8 * size:  # opj_decompress writes the bits without sign extension
            shift = 8 * size - stored
            planes = (planes << shift) >> shift
        samples = int(ds.SamplesPerPixel)
        shaped = planes.reshape(samples, int(ds.Rows), int(ds.Columns))
        out.append(np.moveaxis(shaped, 0, -1) if samples > 1 else shaped[0])
    return out


def dciodvfy_errors(path: Path) -> set[str]:
    """The error lines dicom3tools' dciodvfy reports for ``path``."""
    proc = subprocess.run(
        [require_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    return {line.strip() for line in lines if line.startswith("Error")}


def djxl_frames(path: Path, workdir: Path) -> list[np.ndarray]:
    """Decode each JPEG XL frame with libjxl's ``djxl`` (Debian libjxl-tools) via PNM.

    The samples are the codestream's, i.e. what the output's header describes (unsigned).
    djxl 0.7 writes a bit depth between 9 and 15 bits as 16-bit samples scaled to 0..65535
    while declaring maxval 2^bits - 1; the scaling is undone (it is exact: one step of the
    declared depth is more than one 16-bit step).
    """
    ds = dcmread(path)
    frames = int(ds.get("NumberOfFrames") or 1)
    colour = int(ds.SamplesPerPixel) == 3
    out: list[np.ndarray] = []
    for index, codestream in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
        jxl = workdir / f"{path.stem}.{index}.jxl"
        pnm = workdir / f"{path.stem}.{index}.{'ppm' if colour else 'pgm'}"
        jxl.write_bytes(codestream)
        subprocess.run(
            [require_tool("djxl"), str(jxl), str(pnm), "--quiet"], check=True, capture_output=True
        )
        out.append(_read_pnm(pnm))
    return out


def _read_pnm(path: Path) -> np.ndarray:
    magic, size, maxval, data = path.read_bytes().split(b"\n", 3)
    columns, rows = map(int, size.split())
    top = int(maxval)
    samples = 3 if magic == b"P6" else 1
    values = np.frombuffer(data, dtype=">u2" if top > 255 else "u1")
    values = values[: rows * columns * samples].reshape(
        (rows, columns, samples)[: 3 - (samples == 1)]
    )
    if 255 < top < 65535:
        return np.rint(values.astype(np.float64) * top / 65535).astype(np.uint16)
    return values.astype(np.uint16 if top > 255 else np.uint8)


def djxl_jpeg(path: Path, workdir: Path) -> list[bytes]:
    """The JPEG bitstream ``djxl`` rebuilds from each JPEG XL JPEG Recompression frame."""
    ds = dcmread(path)
    frames = int(ds.get("NumberOfFrames") or 1)
    out: list[bytes] = []
    for index, codestream in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
        jxl = workdir / f"{path.stem}.{index}.jxl"
        jpg = workdir / f"{path.stem}.{index}.jpg"
        jxl.write_bytes(codestream)
        subprocess.run(
            [require_tool("djxl"), str(jxl), str(jpg), "--quiet"], check=True, capture_output=True
        )
        out.append(jpg.read_bytes())
    return out


def dead_owner_token() -> str:
    """The temp-name token of a process of this host that has ended (`dcmtier.owner`)."""
    import sys

    from dcmtier import owner

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return owner.Owner(owner.current().host, child.pid, 1).token


def live_owner_token() -> str:
    """The temp-name token of a live process other than this one (pytest's parent)."""
    import os

    from dcmtier import owner

    parent = os.getppid()
    return owner.Owner(owner.current().host, parent, owner._start_ticks(parent) or 0).token
