"""Decoding a dataset's pixel data with pydicom: trying its plugins in turn, and JPEG XL
(which pydicom 3.0.2 does not decode) turned first into something it does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import iter_pixels
from pydicom.uid import UID, ExplicitVRLittleEndian

from dcmtier.codec import syntaxes
from dcmtier.codec.backends import backend, jpegxl_jpeg
from dcmtier.codec.header import frame_spec

DECODING_PLUGINS = ("", "pylibjpeg", "pyjpegls", "gdcm")


def iter_decoded(ds: Dataset, plugins: Sequence[str] = DECODING_PLUGINS) -> Iterator[np.ndarray]:
    """Frames as pydicom decodes them, trying the next plugin when one fails on frame 0.

    python-gdcm, when installed, comes first for some syntaxes and fails on signed JPEG-LS
    ("output array is read-only"); pylibjpeg and pyjpegls decode those. ``plugins`` is the
    order to try ("" lets pydicom choose).
    """
    failure: Exception | None = None
    for plugin in plugins:
        # correct_unused_bits=False: the values as stored; SourceImage decides what they need
        frames = iter_pixels(ds, decoding_plugin=plugin, correct_unused_bits=False)
        try:
            first = next(frames)
        except StopIteration:
            return
        except Exception as exc:  # each plugin raises its own types
            failure = exc
            continue
        yield first
        yield from frames
        return
    assert failure is not None
    raise failure


def jpeg_xl_as_decodable(ds: Dataset) -> Dataset:
    """``ds`` with JPEG XL Pixel Data turned into something pydicom 3.0.2 can decode.

    JPEG XL Lossless / JPEG XL frames become native little-endian stored values (decoded by
    libjxl); JPEG XL JPEG Recompression frames become the JPEG bitstreams they rebuild, under
    the JPEG syntax their SOF marker names, in a new dataset: ``ds`` is left as it was. Any
    other dataset is returned as it is.
    """
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in {e.uid for e in syntaxes.SYNTAXES}:
        return ds
    out = _own_elements(ds)
    out.file_meta = FileMetaDataset(_own_elements(ds.file_meta))
    frames = int(ds.get("NumberOfFrames") or 1)
    codestreams = list(generate_frames(ds.PixelData, number_of_frames=frames))
    if syntax == syntaxes.JPEG_XL_JPEG_RECOMPRESSION.uid:
        jpegs = [jpegxl_jpeg.decode(c).tobytes() for c in codestreams]
        extended = b"\xff\xc1" in jpegs[0][: jpegs[0].find(b"\xff\xda")]
        out.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4." + ("51" if extended else "50"))
        out.PixelData = encapsulate(jpegs)
        return out
    spec = frame_spec(Path("<dataset>"), ds)
    decoded = [backend("jxl").decode(c, spec) for c in codestreams]
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.PixelData = np.stack(decoded).astype(spec.dtype.newbyteorder("<")).tobytes()
    out["PixelData"].VR = "OB" if spec.bits_allocated <= 8 else "OW"
    out["PixelData"].is_undefined_length = False
    return out


def _own_elements(ds: Dataset) -> Dataset:
    """``ds`` with an element table and elements of its own, values shared, encoding and
    character set as read (``copy.copy`` of a pydicom Dataset shares its elements: setting one
    in the copy set it in ``ds``)."""
    # get_item keeps an element not yet read as it is; iterating a Dataset reads every one
    out = Dataset({tag: copy.copy(ds.get_item(tag)) for tag in ds.keys()})  # noqa: SIM118
    is_implicit, is_little = ds.original_encoding
    out.set_original_encoding(is_implicit, is_little, ds.original_character_set)
    return out
