"""Reading a source instance: its pixel layout and frames of stored values (its header checked
by `dcmtier.codec.header`, frames pydicom decodes through `dcmtier.codec.decoding`).

Frames come out as pydicom decodes them (colour as RGB, PALETTE COLOR as indices), with the
values as stored in the file: never masked to Bits Stored. Before any frame is encoded,
``read_source`` settles the precision the values need (``SourceImage.settle_bits``): unsigned
values above Bits Stored (old scanners, overlays in the high bits) widen the coded precision,
so a lossless tier keeps them bit for bit and the output's Bits Stored says so; signed values
are sign-extended from Bits Stored, and bits above it that are neither zero nor the sign fail
the instance. Nothing is changed silently.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRLittleEndian

from dcmtier.codec import syntaxes
from dcmtier.codec.backends import FrameSpec
from dcmtier.codec.decoding import iter_decoded
from dcmtier.codec.header import check_rescale, frame_spec, int_attr
from dcmtier.errors import InvalidInput, NoPixelData, one_line

PIXEL_DATA = Tag(0x7FE0, 0x0010)
# Elements that describe the source's encapsulation or padding and must not be carried over.
DROPPED_TAGS = frozenset(
    {PIXEL_DATA, Tag(0x7FE0, 0x0001), Tag(0x7FE0, 0x0002), Tag(0xFFFC, 0xFFFC)}
)
LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.203",
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),
    }
)
NATIVE_LITTLE_ENDIAN = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
CACHE_LIMIT = 256 * 2**20  # frames up to this size are decoded once and kept for every tier


@dataclass(frozen=True)
class FileRange:
    """``length`` bytes of the file at ``path`` from ``offset``: native pixel data left on
    disk and read a frame at a time (`SourceImage.native`), so a large instance is never
    whole in memory."""

    path: Path
    offset: int
    length: int

    def __len__(self) -> int:
        return self.length

    def read(self, start: int, count: int) -> bytes:
        """``count`` bytes from ``start`` within the range; raises ``InvalidInput`` if the file
        is shorter than the range (it changed since it was read)."""
        with self.path.open("rb") as handle:
            data = os.pread(handle.fileno(), count, self.offset + start)
        if len(data) != count:
            raise InvalidInput(f"{self.path}: pixel data ends early (the file changed)")
        return data

    def chunks(self, size: int = 8 * 2**20) -> Iterator[bytes]:
        """The range's bytes, ``size`` at a time."""
        for start in range(0, self.length, size):
            yield self.read(start, min(size, self.length - start))


def native_chunks(native: memoryview | FileRange) -> Iterator[bytes | memoryview]:
    """Native pixel data's bytes in pieces, wherever they are (a cache writes them)."""
    if isinstance(native, FileRange):
        yield from native.chunks()
    else:
        yield native


@dataclass
class SourceImage:
    """One readable source instance with pixel data."""

    path: Path
    dataset: Dataset
    spec: FrameSpec
    frames: int
    transfer_syntax: str
    file_bytes: int
    bits_declared: int = 0  # Bits Stored as the header says (spec.bits_stored may be wider)
    _cache: list[np.ndarray] | None = None
    _settled: bool = False
    # where the stored values are, when read by `read_source`'s fast path (the dataset then
    # has no Pixel Data element): a range of the file, or a view of a cache mapped in memory
    native: memoryview | FileRange | None = None

    def __post_init__(self) -> None:
        self.bits_declared = self.bits_declared or self.spec.bits_stored

    @property
    def widened(self) -> bool:
        """True when stored values above Bits Stored made the coded precision wider."""
        return self.spec.bits_stored > self.bits_declared

    @property
    def sop_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def study_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.dataset.SeriesInstanceUID)

    @property
    def modality(self) -> str:
        return str(self.dataset.get("Modality", "") or "")

    @property
    def pixel_bytes(self) -> int:
        """Uncompressed stored pixel bytes of all frames (1-bit data packed)."""
        s = self.spec
        return (s.rows * s.columns * s.samples * self.frames * s.bits_allocated + 7) // 8

    @property
    def lossy_history(self) -> bool:
        return (
            self.dataset.get("LossyImageCompression") == "01"
            or self.transfer_syntax in LOSSY_SYNTAXES
        )

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Frames of stored values; cached when small, else decoded again on each call."""
        if self._cache is not None:
            yield from self._cache
            return
        keep = self.pixel_bytes * 2 <= CACHE_LIMIT
        frames: list[np.ndarray] = []
        for raw in self._decode():
            frame = self._stored(raw)
            if keep:
                frames.append(frame)
            yield frame
        if keep:
            self._cache = frames

    def codestreams(self) -> Iterator[bytes]:
        """Each frame's codestream as the source stores it (encapsulated sources only)."""
        ds = self.dataset
        if not ds["PixelData"].is_undefined_length:
            raise InvalidInput(f"{self.path}: pixel data is not encapsulated")
        extended = None
        if "ExtendedOffsetTable" in ds:
            extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        try:
            yield from generate_frames(
                ds.PixelData, number_of_frames=self.frames, extended_offsets=extended
            )
        except (ValueError, TypeError, IndexError) as exc:
            raise InvalidInput(
                f"{self.path}: encapsulated pixel data cannot be split into frames: {one_line(exc)}"
            ) from exc

    @property
    def codestream_spec(self) -> FrameSpec:
        """The frame layout the stored codestreams describe: colour as the header says it."""
        return dataclasses.replace(
            self.spec, photometric=str(self.dataset.PhotometricInterpretation)
        )

    def settle_bits(self) -> None:
        """Widen the coded precision to what unsigned stored values need; fail stray bits.

        Raises ``InvalidInput`` for signed values whose bits above Bits Stored are neither
        zero nor the sign extension: no precision keeps both their sign and their value.
        """
        s = self.spec
        width = 8 * s.dtype.itemsize
        if self._settled or s.bits_allocated == 1 or s.bits_stored >= width:
            self._settled = True
            return
        top, stray, frames = 0, 0, []
        keep = self.pixel_bytes * 2 <= CACHE_LIMIT
        for raw in self._decode():
            if s.signed and fits_bits(raw, s):
                frame = raw  # already sign-extended: nothing stray, nothing to copy
            elif s.signed:
                extended = fit_bits(raw, s)
                high = np.asarray(~((1 << s.bits_stored) - 1), raw.dtype)
                stray += int(np.count_nonzero((raw != extended) & ((raw & high) != 0)))
                frame = extended
            else:
                top = max(top, int(raw.max(initial=0)))
                frame = raw
            if keep:
                frames.append(frame)
        if stray:
            raise InvalidInput(
                f"{self.path}: {stray} signed stored values have bits above Bits Stored "
                f"{s.bits_stored} that are neither zero nor the sign: they cannot be kept"
            )
        self._cache = frames if keep else None
        if top.bit_length() > s.bits_stored:
            self.spec = dataclasses.replace(s, bits_stored=top.bit_length())
        self._settled = True

    def _stored(self, raw: np.ndarray) -> np.ndarray:
        """Signed values sign-extended from the declared Bits Stored; unsigned ones as stored."""
        if not self.spec.signed:
            return raw
        declared = dataclasses.replace(self.spec, bits_stored=self.bits_declared)
        return raw if fits_bits(raw, declared) else fit_bits(raw, declared)

    def _decode(self) -> Iterator[np.ndarray]:
        if self._native_little_endian():
            yield from self._read_native()
            return
        try:
            for frame in iter_decoded(self.dataset):
                # native byte order: big-endian sources decode to big-endian arrays
                yield np.ascontiguousarray(frame, dtype=self.spec.dtype)
        except (ValueError, RuntimeError, TypeError, IndexError, NotImplementedError) as exc:
            raise InvalidInput(
                f"{self.path}: pixel data cannot be decoded: {one_line(exc)}"
            ) from exc

    def _native_little_endian(self) -> bool:
        """Uncompressed little-endian greyscale of 8 or 16 bits: read without pydicom's pipeline.

        The common archive input (CT, MR); saves ~0.5 ms a 512x512 frame. Everything else
        (colour, 1-bit, big endian, encapsulated) goes through pydicom.
        """
        s = self.spec
        if self.native is not None:
            return True
        return (
            self.transfer_syntax in NATIVE_LITTLE_ENDIAN
            and s.samples == 1
            and s.bits_allocated in (8, 16)
            and not self.dataset["PixelData"].is_undefined_length
        )

    def _read_native(self) -> Iterator[np.ndarray]:
        s = self.spec
        count = s.rows * s.columns * self.frames
        data = self.native if self.native is not None else self.dataset.PixelData
        if len(data) < count * s.dtype.itemsize:
            raise InvalidInput(
                f"{self.path}: pixel data cannot be decoded: {len(data)} bytes of pixel data, "
                f"{count * s.dtype.itemsize} expected"
            )
        dtype = s.dtype.newbyteorder("<")
        if isinstance(data, FileRange):  # one frame read at a time, by its offset
            size = s.rows * s.columns * dtype.itemsize
            for index in range(self.frames):
                raw = data.read(index * size, size)
                yield np.frombuffer(raw, dtype=dtype).reshape(s.rows, s.columns)
            return
        values = np.frombuffer(data, dtype=dtype, count=count)
        for frame in values.reshape(self.frames, s.rows, s.columns):
            if self.native is not None:
                yield frame  # a read-only view of the file's bytes: no copy
            else:
                yield np.array(frame, dtype=s.dtype)  # a writeable copy


def read_source(path: Path) -> SourceImage:
    """Read and check one file; raise ``InvalidInput`` or ``NoPixelData`` naming it.

    The common archive file (explicit VR little endian, native pixel data ending the file) is
    read up to its Pixel Data: pydicom parses the header, and each frame is read from the file
    by its offset when it is wanted (``SourceImage.native``, a `FileRange`), so memory holds
    one frame of it at a time. Any other file is parsed whole by pydicom.
    """
    syntaxes.register()  # dcmtier's own outputs may be JPEG XL, which pydicom 3.0 lacks
    source = _read_fast(path)
    if source is not None:
        check_rescale(path, source.dataset)
        source.settle_bits()
        return source
    ds = _read(path)
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not syntax:
        raise InvalidInput(f"{path}: File Meta Information has no Transfer Syntax UID")
    missing = [name for name in REQUIRED_UIDS if not ds.get(name)]
    if missing:
        raise InvalidInput(f"{path}: missing {', '.join(missing)}")
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise InvalidInput(f"{path}: unsupported layout: floating-point pixel data")
        raise NoPixelData(f"{path}: no pixel data ({ds.get('Modality', 'unknown modality')})")
    spec = frame_spec(path, ds)
    check_rescale(path, ds)
    frames = int_attr(path, ds, "NumberOfFrames", default=1)
    source = SourceImage(path, ds, spec, frames, str(syntax), path.stat().st_size)
    source.settle_bits()
    return source


def metadata(ds: Dataset) -> Dataset:
    """A copy of the header without pixel data or encapsulation-specific elements."""
    return copy_header(ds, drop=DROPPED_TAGS)


def copy_header(ds: Dataset, *, drop: frozenset[BaseTag] = frozenset()) -> Dataset:
    """A copy of ``ds`` without the ``drop`` tags, safe to change without touching ``ds``.

    Parsed top-level elements are copied one by one (values are replaced, never changed in
    place, by the output header's rules), sequences deeply; a whole-dataset deep copy cost
    ~2.5 ms per CT instance, as much as HTJ2K's encode. From an explicit VR little endian
    dataset (what dcmtier writes), elements not yet parsed stay raw (immutable, so shared) and
    the encoding is recorded, so pydicom writes their bytes as they are instead of parsing and
    encoding each value again (~1 ms per CT instance). From any other encoding every element
    is parsed here, as pydicom must re-encode it anyway.

    A plain public element goes straight into the new dataset's mapping (what
    ``Dataset.__setitem__`` would do for it, at a third of the cost); private elements and
    sequences go through ``__setitem__``, which records private creators and the pixel
    representation nested items need.
    """
    keep_raw = ds.original_encoding == (False, True)
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    out = Dataset(elements)  # ``out`` holds this very mapping
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset parses every element)
        if tag in drop:
            continue
        elem = ds.get_item(tag) if keep_raw else ds[tag]
        if isinstance(elem, DataElement):
            elem = copy.deepcopy(elem) if elem.VR == "SQ" else copy.copy(elem)
        if tag.group & 1 or elem.VR == "SQ":
            out[tag] = elem
        else:
            elements[tag] = elem
    if keep_raw:
        out.set_original_encoding(False, True, ds.original_character_set)
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta
    return out


def fits_bits(frame: np.ndarray, spec: FrameSpec) -> bool:
    """True when every value of ``frame`` is already within Bits Stored (`fit_bits` would
    return the same values)."""
    width = 8 * frame.dtype.itemsize
    if spec.bits_allocated == 1 or spec.bits_stored >= width:
        return True
    if spec.signed:
        low, high = -(1 << (spec.bits_stored - 1)), (1 << (spec.bits_stored - 1)) - 1
        return bool(frame.min() >= low and frame.max() <= high)
    return bool(frame.max() < (1 << spec.bits_stored))


def fit_bits(frame: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """Mask unsigned, sign-extend signed values to Bits Stored (idempotent for clean data)."""
    width = 8 * frame.dtype.itemsize
    if spec.bits_allocated == 1 or spec.bits_stored >= width:
        return frame
    if spec.signed:
        shift = width - spec.bits_stored
        extended: np.ndarray = (frame.astype(spec.dtype) << shift) >> shift
        return extended
    masked: np.ndarray = frame & np.asarray((1 << spec.bits_stored) - 1, frame.dtype)
    return masked


PIXEL_DATA_OB = b"\xe0\x7f\x10\x00OB\x00\x00"
PIXEL_DATA_OW = b"\xe0\x7f\x10\x00OW\x00\x00"


def _read_fast(path: Path) -> SourceImage | None:
    """A source read up to its pixels: an explicit VR little endian file of 8- or 16-bit
    greyscale whose Pixel Data (native, defined length) is its last element. None for any
    other file, or any doubt: `_read` then parses it whole and names what is wrong."""
    try:
        with path.open("rb") as handle:
            ds = dcmread(handle, stop_before_pixels=True)
            size = os.fstat(handle.fileno()).st_size
            native = _native_pixels(handle, path, size, ds)
        if native is None or any(not ds.get(name) for name in REQUIRED_UIDS):
            return None
        spec = frame_spec(path, ds)
        frames = int_attr(path, ds, "NumberOfFrames", default=1)
    except Exception:  # `_read` reads it again and names the fault
        return None
    if spec.samples != 1 or spec.bits_allocated not in (8, 16):
        return None
    syntax = str(ds.file_meta.TransferSyntaxUID)
    return SourceImage(path, ds, spec, frames, syntax, size, native=native)


def _native_pixels(handle: BinaryIO, path: Path, size: int, ds: Dataset) -> FileRange | None:
    """The value of native Pixel Data whose element starts at ``handle``'s position, as a
    range of the file; elements after it (trailing padding) are added to ``ds`` as pydicom
    reads them."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax != ExplicitVRLittleEndian or ds.original_encoding != (False, True):
        return None
    at = handle.tell()
    element = handle.read(12)
    if element[:8] not in (PIXEL_DATA_OB, PIXEL_DATA_OW) or len(element) < 12:
        return None
    (length,) = struct.unpack_from("<I", element, 8)
    end = at + 12 + length
    if length == 0xFFFFFFFF or end > size:
        return None  # encapsulated or truncated
    if end < size:
        handle.seek(end)
        tail = read_dataset(io.BytesIO(handle.read()), is_implicit_VR=False, is_little_endian=True)
        for tag in tail.keys():  # noqa: SIM118 (iterating a Dataset parses every element)
            ds[tag] = tail.get_item(tag)
    return FileRange(path, at + 12, length)


def _read(path: Path) -> Dataset:
    try:
        return dcmread(path)
    except InvalidDicomError as exc:
        raise InvalidInput(f"{path}: not a DICOM Part 10 file: {one_line(exc)}") from exc
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{path}: is a directory") from exc
    except (EOFError, ValueError, OSError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path}: truncated or malformed DICOM: {one_line(exc)}") from exc
