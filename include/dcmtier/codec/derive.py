"""The output instance: header rules of PS3.3 C.7.6.1.1.5 and PS3.5 A.4.

The rules are set out in docs/concepts/dicom-output.md. Everything here is a pure function of
the source header, the tier and the encoded frames, so a rerun writes the same bytes.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable, Sequence

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from dcmtier import __version__
from dcmtier.codec import syntaxes
from dcmtier.codec.backends import Encoded
from dcmtier.codec.pixels import DROPPED_TAGS, copy_header
from dcmtier.tiers import Tier

ENTROPY_VERSION = "dcmtier-derived-uid-v1"  # bump only if derived UIDs must change
EXTENDED_OFFSETS_ABOVE = 2**32 - 2**20  # the Basic Offset Table's 32-bit offsets run out
UNCOMPRESSED_PREDECESSOR = ("121320", "Uncompressed predecessor")
PROCESSING_SOURCE = ("121322", "Source image for image processing operation")
LOSSY_COMPRESSION = ("113040", "Lossy Compression")
FILE_META_VERSION, MEDIA_CLASS, MEDIA_INSTANCE = Tag(0x00020001), Tag(0x00020002), Tag(0x00020003)
TRANSFER_SYNTAX, IMPLEMENTATION_CLASS = Tag(0x00020010), Tag(0x00020012)
IMPLEMENTATION_VERSION = Tag(0x00020013)


def derived_uid(source_uid: str, tier: Tier) -> str:
    """Deterministic SOP Instance UID of a lossy derivative: same source and tier, same UID.

    A name-based UUID (RFC 9562 version 5) of the source UID and the tier's parameters, in
    the ``2.25`` arc (PS3.5 B.2), so no organisation root is needed.
    """
    params = json.dumps(tier.parameters(), sort_keys=True)
    name = "\n".join((ENTROPY_VERSION, source_uid, params))
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


def build_output(
    header: Dataset,
    frames: Sequence[Encoded],
    tier: Tier,
    *,
    achieved_ratio: float,
    lossy_source: bool,
    pixel_data: bool = True,
) -> Dataset:
    """Return the output dataset: ``header`` (a source's, its pixel data and encapsulation
    elements left out) plus encapsulated ``frames`` (without Pixel Data when ``pixel_data`` is
    false: `dcmtier.codec.part10` adds it). ``header`` itself is not changed."""
    ds = copy_header(header, drop=DROPPED_TAGS)
    first = frames[0]
    ds.PhotometricInterpretation = first.photometric
    ds.BitsStored = first.bits_stored
    ds.HighBit = first.bits_stored - 1
    if int(ds.SamplesPerPixel) > 1:
        ds.PlanarConfiguration = 0
    if first.offset:
        _to_unsigned(ds, first.offset)
    if pixel_data:
        encapsulate_frames(ds, [f.data for f in frames])
    if not tier.lossless:
        _mark_lossy(ds, header, tier, achieved_ratio, lossy_source)
    ds.file_meta = _file_meta(ds, tier.transfer_syntax)
    return ds


def basic_offsets(frames: Sequence[bytes]) -> bool:
    """True when the Basic Offset Table addresses ``frames`` (else: Extended Offset Table)."""
    return sum(len(f) + 8 for f in frames) < EXTENDED_OFFSETS_ABOVE


def encapsulate_frames(ds: Dataset, frames: list[bytes]) -> None:
    """Set ``ds``'s Pixel Data to ``frames``, encapsulated (PS3.5 A.4)."""
    if basic_offsets(frames):
        ds.PixelData = encapsulate(frames, fragments_per_frame=1, has_bot=True)
    else:
        data, offsets, lengths = encapsulate_extended(frames)
        ds.PixelData = data
        ds.ExtendedOffsetTable = offsets
        ds.ExtendedOffsetTableLengths = lengths
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


# Attributes in stored-value units that an offset moves (PS3.3 C.7.6.3, C.7.5.1.1.2).
STORED_VALUE_KEYWORDS = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
)


def _to_unsigned(ds: Dataset, offset: int) -> None:
    """Signed stored values coded as value + ``offset``: say so, and keep modality values.

    The codestream holds unsigned samples, so Pixel Representation becomes 0; Rescale
    Intercept drops by offset x slope, so stored x slope + intercept (HU for CT) is the same
    number for every pixel; values given in stored-value units move with the pixels (US VR).
    The codec refuses sources without a Rescale Intercept before it gets here.
    """
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.RescaleIntercept) - offset * slope
    ds.RescaleIntercept = f"{intercept:.16g}"[:16]
    if ds.get("RescaleSlope") is None:
        ds.RescaleSlope = 1
    ds.PixelRepresentation = 0
    for keyword in STORED_VALUE_KEYWORDS:
        if keyword in ds:
            ds[keyword].VR = "US"
            ds[keyword].value = int(ds[keyword].value) + offset


def _mark_lossy(ds: Dataset, header: Dataset, tier: Tier, ratio: float, lossy_source: bool) -> None:
    source_uid = str(header.SOPInstanceUID)
    ds.SOPInstanceUID = derived_uid(source_uid, tier)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*_values(header, "LossyImageCompressionRatio"), f"{ratio:.2f}"]
    ds.LossyImageCompressionMethod = [
        *_values(header, "LossyImageCompressionMethod"),
        tier.codec.lossy_method,
    ]
    image_type = [str(v) for v in _values(header, "ImageType")] or ["ORIGINAL", "SECONDARY"]
    ds.ImageType = ["DERIVED", *image_type[1:]] if len(image_type) > 1 else ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = _description(header, tier, ratio)
    purpose = PROCESSING_SOURCE if lossy_source else UNCOMPRESSED_PREDECESSOR
    ds.SourceImageSequence = DicomSequence([_reference(header, purpose)])
    codes = [item for item in header.get("DerivationCodeSequence", []) if not _is_lossy_code(item)]
    ds.DerivationCodeSequence = DicomSequence(
        [*map(copy.deepcopy, codes), _code(*LOSSY_COMPRESSION)]
    )


def _description(header: Dataset, tier: Tier, ratio: float) -> str:
    ours = (
        f"Lossy compression {tier.codec.description} {ratio:.2f}:1 of stored pixel bytes "
        f"(tier {tier.name}, {tier.describe_target()}) by dcmtier {__version__}"
    )
    earlier = str(header.get("DerivationDescription", "") or "")
    return (f"{earlier}; {ours}" if earlier else ours)[-1024:]


def _reference(header: Dataset, purpose: tuple[str, str]) -> Dataset:
    return _item(
        ReferencedSOPClassUID=header.SOPClassUID,
        ReferencedSOPInstanceUID=header.SOPInstanceUID,
        PurposeOfReferenceCodeSequence=DicomSequence([_code(*purpose)]),
    )


def _code(value: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator="DCM", CodeMeaning=meaning)


def _item(**values: object) -> Dataset:
    """A new sequence item holding ``values``: the elements setting each keyword would make
    (its dictionary VR), put in at once (half the time, per lossy output)."""
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    for keyword, value in values.items():
        tag = Tag(keyword)
        elements[tag] = DataElement(tag, dictionary_VR(tag), value)
    return Dataset(elements)


def _is_lossy_code(item: Dataset) -> bool:
    return bool(item.get("CodeValue") == LOSSY_COMPRESSION[0])


def _values(ds: Dataset, keyword: str) -> list[object]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _file_meta(ds: Dataset, syntax: str) -> FileMetaDataset:
    """The File Meta elements pydicom's writer would complete, made at once (setting them one
    by one through ``FileMetaDataset`` checks each: three times the cost)."""
    syntaxes.register()  # JPEG XL syntaxes: pydicom 3.0.2 cannot write them otherwise
    values = (
        (FILE_META_VERSION, "OB", b"\x00\x01"),  # what pydicom's writer would add
        (MEDIA_CLASS, "UI", ds.SOPClassUID),
        (MEDIA_INSTANCE, "UI", ds.SOPInstanceUID),
        (TRANSFER_SYNTAX, "UI", UID(syntax)),
        (IMPLEMENTATION_CLASS, "UI", PYDICOM_IMPLEMENTATION_UID),  # as pydicom's writer
        (IMPLEMENTATION_VERSION, "SH", f"DCMTIER_{__version__}"[:16]),
    )
    return FileMetaDataset({tag: DataElement(tag, vr, value) for tag, vr, value in values})
