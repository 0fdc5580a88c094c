"""Test support: reference files, the skip-or-fail-in-CI rule, and independent decoders.

The decoders are GDCM's gdcmconv, OpenJPEG's opj_decompress and libjxl's djxl.

GDCM and OpenJPEG's tools share no code with the encoders dcmtier calls (pylibjpeg-openjpeg,
OpenJPH, pyjpegls). djxl is the JPEG XL reference decoder: the same project as the libjxl 0.11
inside imagecodecs, but Debian's separate build of release 0.7, so it checks that the files
decode with an older, independently built decoder as archives will have it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames


def reference_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing"
    return Path(str(path))


def in_ci() -> bool:
    """True under ``CI=true``, where everything the tests need is installed and running."""
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the calling test on a developer's machine; fail it under ``CI=true``.

    For what a developer may lack (a PostgreSQL server, root for a tmpfs, chromium) but CI has:
    there a missing piece is a broken environment, never a reason to pass silently.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run)")
    pytest.skip(reason)


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


def _decode_each_frame(
    path: Path, workdir: Path, suffix: str, argv: Callable[[Path, Path], list[str]], out: str
) -> tuple[Dataset, list[Path]]:
    """Write each encapsulated frame of ``path`` into ``workdir`` as ``*.<suffix>``, run the
    decoder command ``argv(codestream, output)`` on it; the header and each ``*.<out>`` file."""
    ds = dcmread(path)
    frames = int(ds.get("NumberOfFrames") or 1)
    outputs: list[Path] = []
    for index, codestream in enumerate(generate_frames(ds.PixelData, number_of_frames=frames)):
        coded = workdir / f"{path.stem}.{index}.{suffix}"
        decoded = workdir / f"{path.stem}.{index}.{out}"
        coded.write_bytes(codestream)
        subprocess.run(argv(coded, decoded), check=True, capture_output=True)
        outputs.append(decoded)
    return ds, outputs


def _opj_decompress(coded: Path, decoded: Path) -> list[str]:
    return [require_tool("opj_decompress"), "-i", str(coded), "-o", str(decoded)]


def _djxl(coded: Path, decoded: Path) -> list[str]:
    return [require_tool("djxl"), str(coded), str(decoded), "--quiet"]


def openjpeg_frames(path: Path, workdir: Path) -> list[np.ndarray]:
    """Decode each J2K/HTJ2K frame with ``opj_decompress`` into raw little-endian samples."""
    ds, raws = _decode_each_frame(path, workdir, "j2k", _opj_decompress, "rawl")
    signed = int(ds.PixelRepresentation) == 1
    size = 1 if int(ds.BitsAllocated) <= 8 else 2
    dtype = np.dtype(f"<{'i' if signed else 'u'}{size}")
    stored, samples = int(ds.BitsStored), int(ds.SamplesPerPixel)
    out: list[np.ndarray] = []
    for raw in raws:
        planes = np.fromfile(raw, dtype=dtype)
        if signed and stored < 8 * size:  # opj_decompress writes the bits without sign extension
            shift = 8 * size - stored
            planes = (planes << shift) >> shift
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
    colour = int(dcmread(path, stop_before_pixels=True).SamplesPerPixel) == 3
    _, pnms = _decode_each_frame(path, workdir, "jxl", _djxl, "ppm" if colour else "pgm")
    return [_read_pnm(pnm) for pnm in pnms]


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
    _, jpegs = _decode_each_frame(path, workdir, "jxl", _djxl, "jpg")
    return [jpeg.read_bytes() for jpeg in jpegs]


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
