"""One ZIP per study and tier: the derived instances plus a ``manifest.json`` that lists them.

A package at ``<packages_root>/<StudyInstanceUID>/<tier>.zip`` holds one member per derived
instance, named ``<SeriesInstanceUID>/<SOPInstanceUID>.dcm``, and ends with ``manifest.json``
(study, tier, codec, target ratio, creation time, software versions, and per member its name,
UIDs, size and SHA-256).

Packages are

- deterministic: the same members and arguments give a byte-identical ZIP. Members are sorted
  by name, every entry carries the same timestamp (1980-01-01, the ZIP epoch) and Unix mode, and
  the manifest is JSON with sorted keys whose only time is the caller's ``created_at``;
- streamed: each member is copied in chunks and hashed on the way, so a study larger than memory
  packages without being loaded;
- atomic: the ZIP is written to a hidden temporary file beside ``dest``, named for the writing
  process, and moved over it (``owner.replacing``); on any error the temporary file is removed
  and an earlier ZIP stays intact. Temporary files of other live writers are left alone.

JPEG 2000 and JPEG-LS codestreams barely deflate: ``compresslevel=0`` stores members
uncompressed (``ZIP_STORED``), which costs a few percent in size and saves the CPU time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from dcmtier import owner
from dcmtier.outputs import uid_name

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = "dcmtier-package/1"
# Members at or above this size are written with ZIP64 headers. zipfile itself demands ZIP64
# from 2 GiB / 1.05 (deflate can expand incompressible data); 1 GiB leaves a wide margin.
ZIP64_MEMBER_BYTES: Final = 1 << 30

_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
_UNIX: Final = 3  # ZipInfo.create_system for Unix, so external_attr reads as a Unix mode
_MEMBER_MODE: Final = (0o100644 & 0xFFFF) << 16  # regular file, rw-r--r--
_CHUNK_BYTES: Final = 1 << 20


class PackageError(Exception):
    """A package cannot be written, or a written package does not match its manifest."""


@dataclass(frozen=True)
class PackageMember:
    """One derived instance to put in a package.

    Attributes
    ----------
    path : Path
        The derived DICOM file on disk.
    series_uid : str
        Series Instance UID; the member's folder inside the ZIP.
    sop_uid : str
        SOP Instance UID of the derived instance; the member's file name inside the ZIP.
    source_sop_uid : str
        SOP Instance UID of the instance it was derived from.
    """

    path: Path
    series_uid: str
    sop_uid: str
    source_sop_uid: str

    @property
    def name(self) -> str:
        """The member's name inside the ZIP: ``<SeriesInstanceUID>/<SOPInstanceUID>.dcm``.

        A UID that cannot name a file (not letters, digits, ``.``, ``-``, ``_``, or longer
        than 64) is named by its hash (``outputs.uid_name``); the manifest keeps it as found.
        """
        return f"{uid_name(self.series_uid)}/{uid_name(self.sop_uid)}.dcm"


@dataclass(frozen=True)
class PackageInfo:
    """What a written or verified package contains.

    Attributes
    ----------
    path : Path
        The ZIP file.
    bytes : int
        Size of the ZIP file.
    sha256 : str
        Hex SHA-256 of the whole ZIP file.
    member_count : int
        Number of DICOM members (``manifest.json`` not counted).
    manifest : dict
        The parsed ``manifest.json``.
    """

    path: Path
    bytes: int
    sha256: str
    member_count: int
    manifest: dict[str, Any]


def write_package(
    dest: Path,
    members: Iterable[PackageMember],
    *,
    study_uid: str,
    tier: str,
    codec: str,
    target_ratio: float | None,
    software: Mapping[str, str],
    created_at: datetime,
    compresslevel: int = 6,
    zip64_from_bytes: int = ZIP64_MEMBER_BYTES,
) -> PackageInfo:
    """Write the package of one study and tier, atomically and deterministically.

    Parameters
    ----------
    dest : Path
        Where the ZIP goes, normally ``<packages_root>/<StudyInstanceUID>/<tier>.zip``; its
        folder is created if needed and an existing file there is replaced.
    members : Iterable[PackageMember]
        The derived instances, in any order.
    study_uid, tier, codec : str
        Recorded in the manifest.
    target_ratio : float or None
        The tier's nominal ratio; None for lossless tiers.
    software : Mapping[str, str]
        Package name to version, recorded in the manifest.
    created_at : datetime
        Timezone-aware creation time written to the manifest (as UTC). Passing the same value
        again reproduces the same bytes.
    compresslevel : int
        Deflate level 1-9, or 0 to store members uncompressed.
    zip64_from_bytes : int
        Members at least this large get ZIP64 headers.

    Returns
    -------
    PackageInfo
        The written ZIP's size, SHA-256, member count and manifest.

    Raises
    ------
    PackageError
        A member file cannot be read, or two members share a name.
    OSError
        The ZIP cannot be written (a full disk, an unwritable folder); it names ``dest``.
    ValueError
        An argument is malformed: an empty UID, a naive ``created_at``, ``compresslevel``
        outside 0-9.
    """
    ordered = _sorted_members(members)
    header = _manifest_header(
        study_uid=study_uid,
        tier=tier,
        codec=codec,
        target_ratio=target_ratio,
        software=software,
        created_at=created_at,
    )
    compression = _compression(compresslevel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _atomic_file(dest) as out, zipfile.ZipFile(out, "w", allowZip64=True) as zf:
            entries = [_add_member(zf, m, compression, zip64_from_bytes) for m in ordered]
            owner.checkpoint("package")  # fault-injection tests stop here, mid-ZIP
            manifest = {**header, "members": entries}
            _add_manifest(zf, manifest, compression)
    except OSError as exc:  # writing, not reading a member (that is a PackageError)
        raise OSError(exc.errno, f"cannot write package: {exc.strerror or exc}", str(dest)) from exc
    size, digest = _file_digest(dest)
    return PackageInfo(dest, size, digest, len(entries), manifest)


def verify_package(path: Path) -> PackageInfo:
    """Re-read a package and check every member against its manifest.

    Parameters
    ----------
    path : Path
        A ZIP written by `write_package`.

    Returns
    -------
    PackageInfo
        The package's size, SHA-256, member count and manifest.

    Raises
    ------
    PackageError
        The file is not a readable ZIP, has no valid manifest, has members the manifest does
        not list (or lacks some it lists), or a member's size, SHA-256 or CRC does not match;
        the message names the member.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = _read_manifest(zf, path)
            expected = _expected_members(manifest, zf, path)
            for name, entry in expected.items():
                _check_member(zf, name, entry, path)
    except zipfile.BadZipFile as exc:
        raise PackageError(f"{path} is not a readable ZIP file: {exc}") from exc
    size, digest = _file_digest(path)
    return PackageInfo(path, size, digest, len(expected), manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a package, without checking its members.

    Raises
    ------
    PackageError
        The file is not a readable ZIP or has no valid manifest.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_manifest(zf, path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError(f"{path} is not a readable ZIP file: {exc}") from exc


def _sorted_members(members: Iterable[PackageMember]) -> list[PackageMember]:
    ordered = sorted(members, key=lambda m: m.name)
    for member in ordered:
        for uid in (member.series_uid, member.sop_uid, member.source_sop_uid):
            _check_uid(uid)
    names = [m.name for m in ordered]
    duplicates = sorted({n for n, m in itertools.pairwise(names) if n == m})
    if duplicates:
        raise PackageError(f"two members share the name(s) {duplicates}; pass each once")
    return ordered


def _check_uid(uid: str) -> None:
    # Recorded as found (real archives hold UIDs that are not DICOM UIDs); member names go
    # through uid_name, so no UID can steer a path inside the ZIP.
    if not isinstance(uid, str) or not uid.strip():
        raise ValueError(f"{uid!r} is not a UID: an instance needs a non-empty one")


def _manifest_header(
    *,
    study_uid: str,
    tier: str,
    codec: str,
    target_ratio: float | None,
    software: Mapping[str, str],
    created_at: datetime,
) -> dict[str, Any]:
    _check_uid(study_uid)
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware, e.g. datetime.now(UTC)")
    return {
        "format": MANIFEST_FORMAT,
        "study_uid": study_uid,
        "tier": tier,
        "codec": codec,
        "target_ratio": target_ratio,
        "created_at": created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "software": dict(software),
    }


def _compression(compresslevel: int) -> tuple[int, int | None]:
    if not 0 <= compresslevel <= 9:
        raise ValueError(f"compresslevel must be 0 (store) to 9, not {compresslevel}")
    if compresslevel == 0:
        return zipfile.ZIP_STORED, None
    return zipfile.ZIP_DEFLATED, compresslevel


def _zipinfo(name: str, compression: tuple[int, int | None]) -> zipfile.ZipInfo:
    zinfo = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    zinfo.create_system = _UNIX
    zinfo.external_attr = _MEMBER_MODE
    zinfo.compress_type, level = compression
    # ZipFile.open(zinfo, "w") takes the level from the ZipInfo, not from ZipFile(compresslevel=);
    # the attribute is public only from Python 3.13 on.
    setattr(zinfo, "compress_level" if sys.version_info >= (3, 13) else "_compresslevel", level)
    return zinfo


def _add_member(
    zf: zipfile.ZipFile,
    member: PackageMember,
    compression: tuple[int, int | None],
    zip64_from_bytes: int,
) -> dict[str, Any]:
    zinfo = _zipinfo(member.name, compression)
    try:
        src = member.path.open("rb")
    except OSError as exc:
        raise PackageError(f"cannot read member {member.name}: {exc.strerror or exc}") from exc
    with src:
        zip64 = os.fstat(src.fileno()).st_size >= zip64_from_bytes
        with zf.open(zinfo, "w", force_zip64=zip64) as dst:
            size, digest = _copy_hashing(src, dst, name=member.name)
    return {
        "name": member.name,
        "series_uid": member.series_uid,
        "sop_uid": member.sop_uid,
        "source_sop_uid": member.source_sop_uid,
        "bytes": size,
        "sha256": digest,
    }


def _copy_hashing(
    src: IO[bytes], dst: IO[bytes] | None, *, name: str | None = None
) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` (if any) in chunks; return the byte count and hex SHA-256.

    With ``name``, a read error is a ``PackageError`` about that member; write errors stay
    ``OSError`` (the package's disk, not the member).
    """
    digest = hashlib.sha256()
    size = 0
    while True:
        try:
            chunk = src.read(_CHUNK_BYTES)
        except OSError as exc:
            if name is None:
                raise
            raise PackageError(f"cannot read member {name}: {exc.strerror or exc}") from exc
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
        if dst is not None:
            dst.write(chunk)
    return size, digest.hexdigest()


def _add_manifest(
    zf: zipfile.ZipFile, manifest: Mapping[str, Any], compression: tuple[int, int | None]
) -> None:
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    with zf.open(_zipinfo(MANIFEST_NAME, compression), "w") as dst:
        dst.write((text + "\n").encode("ascii"))


@contextmanager
def _atomic_file(dest: Path) -> Iterator[IO[bytes]]:
    """Yield a temporary file beside ``dest`` that replaces it only if the block succeeds.

    The temporary file is named for this process (`dcmtier.owner`): temporary files of other
    live writers of the same package are left alone, those of dead ones removed.
    """
    owner.remove_dead_temps(dest.parent)  # a killed writer cannot clean up after itself
    with owner.replacing(dest) as temp:
        yield temp.file
        temp.file.flush()
        os.fsync(temp.file.fileno())


def _file_digest(path: Path) -> tuple[int, str]:
    with path.open("rb") as src:
        return _copy_hashing(src, None)


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read(MANIFEST_NAME))
    except KeyError as exc:
        raise PackageError(f"{path} has no {MANIFEST_NAME}") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PackageError(f"{path}: {MANIFEST_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("members"), list):
        raise PackageError(f"{path}: {MANIFEST_NAME} has no 'members' list")
    return manifest


def _expected_members(
    manifest: Mapping[str, Any], zf: zipfile.ZipFile, path: Path
) -> dict[str, dict[str, Any]]:
    expected = {str(entry.get("name")): entry for entry in manifest["members"]}
    present = set(zf.namelist()) - {MANIFEST_NAME}
    missing = sorted(set(expected) - present)
    unlisted = sorted(present - set(expected))
    if missing or unlisted:
        raise PackageError(
            f"{path}: members listed in {MANIFEST_NAME} but absent: {missing}; "
            f"present but not listed: {unlisted}"
        )
    return expected


def _check_member(zf: zipfile.ZipFile, name: str, entry: Mapping[str, Any], path: Path) -> None:
    try:
        with zf.open(name) as src:
            size, digest = _copy_hashing(src, None)
    except zipfile.BadZipFile as exc:  # raised on a CRC mismatch
        raise PackageError(f"{path}: member {name} is corrupt: {exc}") from exc
    if size != entry.get("bytes") or digest != entry.get("sha256"):
        raise PackageError(
            f"{path}: member {name} does not match {MANIFEST_NAME}: {size} bytes, sha256 "
            f"{digest}; manifest says {entry.get('bytes')} bytes, sha256 {entry.get('sha256')}"
        )
