"""Tests of dcmtier.packaging.package: deterministic, verifiable, atomic ZIPs per study and tier."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dcmtier.packaging.package import (
    MANIFEST_NAME,
    PackageError,
    PackageInfo,
    PackageMember,
    verify_package,
    write_package,
)
from dcmtier.records import KEY_DIGITS
from tests.support import dead_owner_token, live_owner_token

SOURCES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")
STUDY = "1.2.826.0.1.3680043.8.498.1"
CREATED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
SOFTWARE = {"dcmtier": "0.1.0", "openjpeg": "2.5.2"}
ZIP64_VERSION = 45
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def _testdata(name: str) -> Path:
    found = get_testdata_file(name)
    assert found is not None, name
    return Path(found)


def _members() -> list[PackageMember]:
    members = []
    for number, name in enumerate(SOURCES, start=1):
        path = _testdata(name)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        members.append(
            PackageMember(path, ds.SeriesInstanceUID, f"2.25.{1000 + number}", ds.SOPInstanceUID)
        )
    return members


def _write(dest: Path, members: list[PackageMember], **options: Any) -> PackageInfo:
    return write_package(
        dest,
        members,
        study_uid=STUDY,
        tier="j2k-r20",
        codec="j2k",
        target_ratio=20.0,
        software=SOFTWARE,
        created_at=CREATED,
        **options,
    )


def _local_header(zip_path: Path, name: str) -> tuple[Any, ...]:
    """Signature, version needed, flags, method, time, date, CRC, sizes, name and extra lengths."""
    with zipfile.ZipFile(zip_path) as zf:
        offset = zf.getinfo(name).header_offset
    with zip_path.open("rb") as f:
        f.seek(offset)
        return LOCAL_HEADER.unpack(f.read(LOCAL_HEADER.size))


def _data_offset(zip_path: Path, name: str) -> int:
    with zipfile.ZipFile(zip_path) as zf:
        offset = zf.getinfo(name).header_offset
    fields = _local_header(zip_path, name)
    return int(offset + LOCAL_HEADER.size + fields[9] + fields[10])


def _rewrite(src: Path, dest: Path, replace: dict[str, bytes]) -> None:
    """Copy a ZIP entry by entry, swapping the data of the entries named in ``replace``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info)))
        for name, data in replace.items():
            if name not in zin.namelist():
                zout.writestr(name, data)


def test_the_same_inputs_give_a_byte_identical_zip_whatever_the_member_order(
    tmp_path: Path,
) -> None:
    first = _write(tmp_path / "a" / "j2k-r20.zip", _members())
    second = _write(tmp_path / "b" / "j2k-r20.zip", list(reversed(_members())))

    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.bytes == first.path.stat().st_size


def test_another_created_at_gives_another_zip(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.zip", _members())
    later = write_package(
        tmp_path / "b.zip",
        _members(),
        study_uid=STUDY,
        tier="j2k-r20",
        codec="j2k",
        target_ratio=20.0,
        software=SOFTWARE,
        created_at=CREATED + timedelta(seconds=1),
    )

    assert first.sha256 != later.sha256


def test_members_are_named_by_series_and_sop_uid_sorted_with_fixed_metadata(
    tmp_path: Path,
) -> None:
    members = _members()
    info = _write(tmp_path / "p.zip", members)

    with zipfile.ZipFile(info.path) as zf:
        infos = zf.infolist()
    expected = sorted(f"{m.series_uid}/{m.sop_uid}.dcm" for m in members)
    assert [i.filename for i in infos] == [*expected, MANIFEST_NAME]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.create_system for i in infos} == {3}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert info.member_count == len(members)


def test_the_manifest_records_the_study_and_each_members_sha256_and_size(tmp_path: Path) -> None:
    members = _members()
    info = _write(tmp_path / "p.zip", members)

    with zipfile.ZipFile(info.path) as zf:
        manifest = json.loads(zf.read(MANIFEST_NAME))
    assert manifest == info.manifest
    assert manifest["study_uid"] == STUDY
    assert manifest["tier"] == "j2k-r20"
    assert manifest["codec"] == "j2k"
    assert manifest["target_ratio"] == 20.0
    assert manifest["created_at"] == "2024-05-06T07:08:09Z"
    assert manifest["software"] == SOFTWARE
    by_source = {entry["source_sop_uid"]: entry for entry in manifest["members"]}
    for member in members:
        entry = by_source[member.source_sop_uid]
        data = member.path.read_bytes()
        assert entry["name"] == member.name
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_created_at_in_another_timezone_is_recorded_in_utc(tmp_path: Path) -> None:
    local = CREATED.astimezone(timezone(timedelta(hours=2)))
    info = write_package(
        tmp_path / "p.zip",
        _members(),
        study_uid=STUDY,
        tier="j2k-lossless",
        codec="j2k",
        target_ratio=None,
        software=SOFTWARE,
        created_at=local,
    )

    assert info.manifest["created_at"] == "2024-05-06T07:08:09Z"
    assert info.manifest["target_ratio"] is None


def test_verify_package_accepts_what_write_package_wrote(tmp_path: Path) -> None:
    written = _write(tmp_path / "p.zip", _members())

    assert verify_package(written.path) == written


def test_verify_package_names_a_member_whose_stored_bytes_were_flipped(tmp_path: Path) -> None:
    members = _members()
    info = _write(tmp_path / "p.zip", members, compresslevel=0)
    victim = members[1].name
    raw = bytearray(info.path.read_bytes())
    raw[_data_offset(info.path, victim) + 200] ^= 0xFF
    info.path.write_bytes(bytes(raw))

    with pytest.raises(PackageError, match=victim):
        verify_package(info.path)


def test_verify_package_names_a_member_that_differs_from_the_manifest(tmp_path: Path) -> None:
    members = _members()
    info = _write(tmp_path / "p.zip", members)
    tampered = tmp_path / "tampered.zip"
    _rewrite(info.path, tampered, {members[0].name: b"not the original instance"})

    with pytest.raises(PackageError, match=f"member {members[0].name} does not match"):
        verify_package(tampered)


def test_verify_package_refuses_a_member_the_manifest_does_not_list(tmp_path: Path) -> None:
    info = _write(tmp_path / "p.zip", _members())
    extended = tmp_path / "extended.zip"
    _rewrite(info.path, extended, {"1.2.3/4.5.6.dcm": b"smuggled"})

    with pytest.raises(PackageError, match=r"not listed: \['1.2.3/4.5.6.dcm'\]"):
        verify_package(extended)


def test_verify_package_refuses_a_zip_without_manifest(tmp_path: Path) -> None:
    path = tmp_path / "bare.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("1.2/3.4.dcm", b"x")

    with pytest.raises(PackageError, match=r"no manifest\.json"):
        verify_package(path)


def test_verify_package_refuses_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "not.zip"
    path.write_bytes(b"PK but not really")

    with pytest.raises(PackageError, match="not a readable ZIP"):
        verify_package(path)


def test_a_failed_write_leaves_the_previous_zip_intact_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    dest = tmp_path / STUDY / "j2k-r20.zip"
    before = _write(dest, _members()).path.read_bytes()
    # Its series UID sorts last, so the failure comes after other members were written.
    missing = PackageMember(tmp_path / "gone.dcm", "9.9", "9.9.1", "9.9.2")

    with pytest.raises(PackageError, match=r"9\.9/9\.9\.1\.dcm"):
        _write(dest, [*_members(), missing])

    assert dest.read_bytes() == before
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_a_failed_first_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    dest = tmp_path / "j2k-r20.zip"
    missing = PackageMember(tmp_path / "gone.dcm", "9.9", "9.9.1", "9.9.2")

    with pytest.raises(PackageError):
        _write(dest, [missing])

    assert list(tmp_path.iterdir()) == []


def test_a_temporary_file_left_by_a_killed_writer_is_removed(tmp_path: Path) -> None:
    dest = tmp_path / "j2k-r20.zip"
    stale = tmp_path / f".j2k-r20.zip{dead_owner_token()}k1ll3d.tmp"
    stale.write_bytes(b"half a zip")

    _write(dest, _members())

    assert not stale.exists()


def test_a_live_writers_temporary_file_is_left_alone(tmp_path: Path) -> None:
    dest = tmp_path / "j2k-r20.zip"
    other = tmp_path / f".j2k-r20.zip{live_owner_token()}writing.tmp"
    other.write_bytes(b"another run's zip, being written")

    _write(dest, _members())

    assert other.read_bytes() == b"another run's zip, being written"


def test_the_package_is_readable_by_others(tmp_path: Path) -> None:
    info = _write(tmp_path / "p.zip", _members())

    assert info.path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("level", "compress_type"),
    [(0, zipfile.ZIP_STORED), (1, zipfile.ZIP_DEFLATED), (9, zipfile.ZIP_DEFLATED)],
    ids=["0-stores", "1-deflates", "9-deflates"],
)
def test_compresslevel_chooses_stored_or_deflated_members(
    tmp_path: Path, level: int, compress_type: int
) -> None:
    info = _write(tmp_path / "p.zip", _members(), compresslevel=level)

    with zipfile.ZipFile(info.path) as zf:
        infos = zf.infolist()
    assert {i.compress_type for i in infos} == {compress_type}
    if level == 0:
        assert all(i.compress_size == i.file_size for i in infos)
    assert verify_package(info.path) == info


def test_a_higher_compresslevel_gives_a_zip_no_larger_and_stored_is_largest(
    tmp_path: Path,
) -> None:
    sizes = {
        level: _write(tmp_path / f"{level}.zip", _members(), compresslevel=level).bytes
        for level in (0, 1, 9)
    }

    assert sizes[9] <= sizes[1] < sizes[0]


@pytest.mark.parametrize("level", [-1, 10], ids=["negative", "above-9"])
def test_a_compresslevel_outside_0_to_9_is_refused(tmp_path: Path, level: int) -> None:
    with pytest.raises(ValueError, match="compresslevel"):
        _write(tmp_path / "p.zip", _members(), compresslevel=level)
    assert list(tmp_path.iterdir()) == []


def test_members_at_or_above_the_zip64_size_get_zip64_headers(tmp_path: Path) -> None:
    members = _members()
    small = _write(tmp_path / "small.zip", members)
    forced = _write(tmp_path / "zip64.zip", members, zip64_from_bytes=1)

    for member in members:
        assert _local_header(small.path, member.name)[1] < ZIP64_VERSION
        assert _local_header(forced.path, member.name)[1] == ZIP64_VERSION
    assert verify_package(forced.path) == forced
    with zipfile.ZipFile(forced.path) as zf:
        assert zf.read(members[0].name) == members[0].path.read_bytes()


def test_two_members_with_the_same_name_are_refused(tmp_path: Path) -> None:
    members = _members()

    with pytest.raises(PackageError, match="share the name"):
        _write(tmp_path / "p.zip", [*members, members[0]])


@pytest.mark.parametrize(
    "bad_uid", ["../../etc", "1.2/3", "1." + "2" * 70], ids=["dotdot", "slash", "long"]
)
def test_a_uid_that_cannot_name_a_file_is_named_by_its_hash_and_recorded_as_found(
    tmp_path: Path, bad_uid: str
) -> None:
    member = PackageMember(_testdata("CT_small.dcm"), bad_uid, "1.2.3", "1.2.4")

    info = _write(tmp_path / "p.zip", [member])

    (entry,) = info.manifest["members"]
    assert entry["series_uid"] == bad_uid
    folder, name = entry["name"].split("/")
    assert folder.startswith("x") and len(folder) == 1 + KEY_DIGITS and name == "1.2.3.dcm"
    assert verify_package(info.path) == info


def test_a_hex_uid_from_an_anonymiser_names_its_member_as_it_is(tmp_path: Path) -> None:
    hex_uid = "0123456789abcdef" * 4  # 64 hex digits: not a DICOM UID, yet a safe name
    member = PackageMember(_testdata("CT_small.dcm"), "1.2.3", hex_uid, "1.2.4")

    info = _write(tmp_path / "p.zip", [member])

    assert info.manifest["members"][0]["name"] == f"1.2.3/{hex_uid}.dcm"


def test_an_empty_uid_is_refused(tmp_path: Path) -> None:
    member = PackageMember(_testdata("CT_small.dcm"), "", "1.2.3", "1.2.4")

    with pytest.raises(ValueError, match="not a UID"):
        _write(tmp_path / "p.zip", [member])


def test_a_naive_created_at_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        write_package(
            tmp_path / "p.zip",
            _members(),
            study_uid=STUDY,
            tier="j2k-r20",
            codec="j2k",
            target_ratio=20.0,
            software=SOFTWARE,
            created_at=datetime(2024, 5, 6),  # naive on purpose
        )
