"""An output's Part 10 bytes as pieces: preamble, File Meta, dataset, encapsulated frames.

pydicom's writer re-encodes every element of every file (~1 ms a CT header); here each
element is encoded by pydicom's own ``write_data_element`` once per series and tier, and
again only for an instance whose element differs from the one before it (SOP Instance UID,
Instance Number, position, ratio...): the other elements' bytes are reused. The encapsulated
Pixel Data is laid out as ``pydicom.encaps.encapsulate(frames, has_bot=True)`` lays it out:
the header up to the Basic Offset Table in one buffer, then each frame's codestream as it is
(`Part10.pieces`), so a large instance is written without a second copy of its frames.
`encode` applies only where the result is pydicom's own (`can_encode`);
`tests/unit/codec/test_part10.py` and the byte-identity tests hold it to
``Dataset.save_as(enforce_file_format=True)``, and the first instance of each series and tier
is checked against it at run time too (on stand-in frames above ``AGREE_LIMIT``).
"""

from __future__ import annotations

import copy
import logging
import struct
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset, validate_file_meta
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import IS, DSfloat

from dcmtier.codec.derive import basic_offsets
from dcmtier.codec.pixels import copy_header

log = logging.getLogger(__name__)

PREAMBLE = b"\x00" * 128 + b"DICM"
PIXEL_DATA_HEADER = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
ITEM = b"\xfe\xff\x00\xe0"
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
ITEM_DELIMITER = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
GROUP_LENGTH = BaseTag(0x00020000)
# what validate_file_meta adds when missing (and the Media Storage UIDs dcmwrite keeps)
VALIDATED = (0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013)
TEMPLATES = 64  # series x tier templates kept per process (a worker sees a few at a time)


AGREE_LIMIT = 16 * 2**20  # above this many bytes of frames, the run-time check uses stand-ins


@dataclass
class Part10:
    """A whole output file as pieces: ``head`` (preamble to the Basic Offset Table), then each
    frame's item and codestream, then the sequence delimiter. It is written and checked piece
    by piece (`pieces`), so no buffer ever holds the file whole."""

    head: bytes
    frames: Sequence[bytes]

    def pieces(self) -> Iterator[bytes]:
        """The file's bytes in order: the head, each frame's item header, codestream and pad."""
        yield self.head
        for frame in self.frames:
            padded = len(frame) + len(frame) % 2
            yield ITEM + struct.pack("<I", padded)
            yield frame
            if len(frame) % 2:
                yield b"\x00"
        yield SEQUENCE_DELIMITER

    @property
    def size(self) -> int:
        """The file's length in bytes."""
        items = sum(8 + len(f) + len(f) % 2 for f in self.frames)
        return len(self.head) + items + len(SEQUENCE_DELIMITER)

    @property
    def data(self) -> bytes:
        """The file's bytes in one buffer (tests; small outputs)."""
        return b"".join(self.pieces())


def can_encode(ds: Dataset, frames: Sequence[bytes]) -> bool:
    """True when `encode` writes what ``ds.save_as(enforce_file_format=True)`` would.

    ``ds`` is an output of `dcmtier.codec.derive.build_output` without Pixel Data: explicit VR
    little endian elements pydicom writes as they are (no character set or encoding change),
    and frames the Basic Offset Table can address.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_implicit_VR or not syntax.is_little_endian:
        return False
    if "PixelData" in ds or ds.original_encoding != (False, True):
        return False
    if ds.original_character_set != ds._character_set:
        return False
    return basic_offsets(frames)


class Encoder:
    """Element bytes of the last output of each series x tier, reused where values repeat."""

    def __init__(self, size: int = TEMPLATES) -> None:
        self._templates: OrderedDict[Hashable, _Template] = OrderedDict()
        self._size = size

    def encode(self, ds: Dataset, frames: Sequence[bytes], *, template: Hashable) -> Part10 | None:
        """The Part 10 bytes of ``ds`` (see `can_encode`) with ``frames`` as its Pixel Data.

        ``template`` names the series and tier. The first output of a template is checked
        against pydicom's writer; if they disagree, this and every later output of the
        template return None (the caller writes with pydicom instead) and a warning says so.
        """
        charset = ds.get("SpecificCharacterSet")
        key = (template, _value_key(charset) if charset is not None else None)
        known = self._templates.pop(key, None)
        found = known or _Template()
        self._templates[key] = found
        while len(self._templates) > self._size:
            self._templates.popitem(last=False)
        if found.disagrees:
            return None
        buffer = bytearray(PREAMBLE)
        buffer += _file_meta(ds.file_meta, ds, found)
        encodings = charset if charset is not None else "iso8859"
        for tag in sorted(ds.keys()):
            if tag.element == 0 and tag.group > 6:
                continue  # pydicom writes no retired group length
            buffer += found.element(ds.get_item(tag), encodings)
        part = Part10(bytes(buffer + _pixel_data_head(frames)), frames)
        if known is None and not _agrees_at_start(ds, part):
            found.disagrees = True
            log.warning("series %s: pydicom writes these outputs (the encoder disagreed)",
                        ds.get("SeriesInstanceUID"))  # fmt: skip
            return None
        return part


class _Template:
    def __init__(self) -> None:
        # (tag path, item index...) -> (what decided the bytes, the bytes)
        self.elements: dict[Hashable, tuple[Hashable, bytes]] = {}
        self.disagrees = False

    def element(
        self, elem: DataElement | RawDataElement, encodings: Any, where: tuple[int, ...] = ()
    ) -> bytes:
        """``elem``'s bytes as ``write_data_element`` writes them; a sequence of items made
        here (derived, not read) is laid out here with its elements' bytes reused too."""
        path = (*where, elem.tag)
        key = _element_key(elem)
        known = self.elements.get(path)
        if key is not None and known is not None and known[0] == key:
            return known[1]
        if isinstance(elem, DataElement) and elem.VR == "SQ" and _plain_items(elem.value):
            data = self._sequence(elem, encodings, path)
        else:
            data = _encode_element(elem, encodings)
        if key is not None:
            self.elements[path] = (key, data)
        return data

    def _sequence(self, elem: DataElement, encodings: Any, path: tuple[int, ...]) -> bytes:
        """As ``write_data_element`` and ``write_sequence_item`` write a sequence whose items
        hold parsed elements only (`_plain_items`)."""
        value = bytearray()
        for index, item in enumerate(elem.value):
            body = b"".join(
                self.element(item[tag], encodings, (*path, index))
                for tag in sorted(item.keys())
                if not (tag.element == 0 and tag.group > 6)
            )
            if item.is_undefined_length_sequence_item:
                value += ITEM + b"\xff\xff\xff\xff" + body + ITEM_DELIMITER
            else:
                value += ITEM + struct.pack("<I", len(body)) + body
        tag = struct.pack("<HH", elem.tag.group, elem.tag.element)
        if elem.is_undefined_length:
            return tag + b"SQ\x00\x00\xff\xff\xff\xff" + value + SEQUENCE_DELIMITER
        return tag + b"SQ\x00\x00" + struct.pack("<I", len(value)) + value


def _plain_items(items: DicomSequence) -> bool:
    """Items made in memory: parsed elements of two-letter VRs, no character set of their own
    (pydicom re-encodes such items element by element; see ``write_dataset``)."""
    for item in items:
        if not isinstance(item, Dataset) or "SpecificCharacterSet" in item:
            return False
        for tag in item.keys():  # noqa: SIM118 (iterating a Dataset parses every element)
            elem = item.get_item(tag)
            if not isinstance(elem, DataElement) or len(elem.VR) != 2 or elem.is_buffered:
                return False
    return True


def _encode_element(elem: DataElement | RawDataElement, encodings: Any) -> bytes:
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_data_element(out, elem, encodings)
    return out.getvalue()


def _file_meta(meta: Dataset, ds: Dataset, template: _Template) -> bytes:
    """What ``dcmwrite(enforce_file_format=True)`` writes for ``meta``: a copy with the SOP
    Class and Instance UIDs of ``ds``, completed by ``validate_file_meta``, group length
    first (a copy is made only where one of those changes something)."""
    class_uid, instance_uid = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
    stale = (class_uid and meta.get("MediaStorageSOPClassUID") != class_uid) or (
        instance_uid and meta.get("MediaStorageSOPInstanceUID") != instance_uid
    )
    if stale or any(tag not in meta for tag in VALIDATED):
        meta = _copy_meta(meta)  # pydicom's writer too changes a copy, never the caller's
        if class_uid and meta.get("MediaStorageSOPClassUID") != class_uid:
            meta.MediaStorageSOPClassUID = class_uid
        if instance_uid and meta.get("MediaStorageSOPInstanceUID") != instance_uid:
            meta.MediaStorageSOPInstanceUID = instance_uid
        validate_file_meta(meta, enforce_standard=True)
    body = b"".join(
        template.element(meta.get_item(tag), "iso8859")
        for tag in sorted(meta.keys())
        if tag != GROUP_LENGTH
    )
    length = DataElement(GROUP_LENGTH, "UL", len(body))
    return template.element(length, "iso8859") + body


def _copy_meta(meta: Dataset) -> FileMetaDataset:
    copied = FileMetaDataset()
    for tag in meta.keys():  # noqa: SIM118 (iterating a Dataset parses every element)
        copied[tag] = copy.copy(meta.get_item(tag))
    return copied


def _pixel_data_head(frames: Sequence[bytes]) -> bytes:
    """Pixel Data's element header and Basic Offset Table, as pydicom's
    ``encapsulate(frames, 1, has_bot=True)`` and ``write_data_element`` lay them out (the
    frames' items follow, `Part10.pieces`)."""
    table = struct.pack(f"<I{len(frames)}I", 4 * len(frames), *_offsets(frames))
    return PIXEL_DATA_HEADER + ITEM + table


def _agrees_at_start(ds: Dataset, part: Part10) -> bool:
    """`agrees` for the first output of a template. Above ``AGREE_LIMIT`` bytes of frames
    the check runs on stand-in frames of one or two bytes (the parity of each frame's length
    kept, so the items' padding is checked too): the header and the encapsulation's layout
    are what may differ from pydicom's, and pydicom's writer would otherwise hold three
    copies of a large instance's codestreams."""
    if sum(len(f) for f in part.frames) <= AGREE_LIMIT:
        return agrees(ds, part.data, part.frames)
    stand_ins = [b"\x00" * (2 - len(f) % 2) for f in part.frames]
    head = part.head[: -len(_pixel_data_head(part.frames))] + _pixel_data_head(stand_ins)
    return agrees(ds, Part10(head, stand_ins).data, stand_ins)


def _offsets(frames: Sequence[bytes]) -> list[int]:
    offsets, at = [], 0
    for frame in frames:
        offsets.append(at)
        at += 8 + len(frame) + len(frame) % 2
    return offsets


def _element_key(elem: DataElement | RawDataElement) -> Hashable | None:
    """What decides an element's bytes, where it is cheap to tell; None: encode it again."""
    if isinstance(elem, RawDataElement):
        return ("raw", elem.VR, elem.length, elem.value)
    if elem.is_buffered:
        return None
    value = _value_key(elem.value)
    return None if value is None else (elem.VR, elem.is_undefined_length, value)


def _value_key(value: object) -> Hashable | None:
    if value is None or type(value) in (str, int, bytes, UID):
        return (type(value).__name__, value)
    if isinstance(value, DSfloat | IS) and hasattr(value, "original_string"):
        return ("number", value.original_string)
    if isinstance(value, MultiValue | list):
        items = tuple(_value_key(v) for v in value)
        return None if any(i is None for i in items) else ("multi", items)
    if isinstance(value, DicomSequence):
        return _sequence_key(value)
    return None


def _sequence_key(value: DicomSequence) -> Hashable | None:
    items: list[Hashable] = []
    for item in value:
        if not isinstance(item, Dataset) or "SpecificCharacterSet" in item:
            return None
        elements: list[Hashable] = [item.is_undefined_length_sequence_item]
        for tag in item.keys():  # noqa: SIM118 (iterating a Dataset parses every element)
            key = _element_key(item.get_item(tag))
            if key is None:
                return None
            elements.append((int(tag), key))
        items.append(tuple(elements))
    return ("sequence", tuple(items))


def pydicom_bytes(ds: Dataset, frames: Sequence[bytes]) -> bytes:
    """What ``save_as(enforce_file_format=True)`` writes for ``ds`` with ``frames``."""
    full = copy_header(ds)
    full.PixelData = encapsulate(list(frames), fragments_per_frame=1, has_bot=True)
    full["PixelData"].VR = "OB"
    full["PixelData"].is_undefined_length = True
    expected = BytesIO()
    full.save_as(expected, enforce_file_format=True)
    return expected.getvalue()


def agrees(ds: Dataset, data: bytes | bytearray, frames: Sequence[bytes]) -> bool:
    """True when ``data`` is what pydicom writes for ``ds`` with ``frames``."""
    return pydicom_bytes(ds, frames) == data
