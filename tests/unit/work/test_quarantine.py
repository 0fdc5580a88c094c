"""Quarantine names copies by file key, never by the original name, and never overwrites."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydicom import dcmread

from dcmtier.discovery.files import discover
from dcmtier.records import FAILED, Study, TierResult
from dcmtier.sample import write_ct_series
from dcmtier.work.layout import Layout
from dcmtier.work.quarantine import UNIDENTIFIED, quarantine_failed, quarantine_unidentified


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def test_three_same_named_files_from_three_folders_make_three_copies(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    for index, folder in enumerate(("DOE_JANE", "DOE_JOHN", "ROE_RICHARD")):
        (landing / folder).mkdir(parents=True)
        # a Part 10 preamble, then nothing readable: a broken DICOM file, not a text file
        (landing / folder / "export.dcm").write_bytes(b"\0" * 128 + b"DICM" + bytes([index]))
    _, unidentified = discover([landing])
    layout = Layout(tmp_path / "out")
    for item in unidentified:
        quarantine_unidentified(item, layout)
        quarantine_unidentified(item, layout)  # a rerun adds nothing
    folder = layout.quarantine / UNIDENTIFIED
    copies = sorted(folder.glob("*.dcm"))
    sources = sorted((landing).rglob("export.dcm"))
    assert sorted(p.read_bytes() for p in copies) == sorted(p.read_bytes() for p in sources)
    assert {p.name for p in copies} == {f"{_key(p.read_bytes())}.dcm" for p in sources}
    for reason in folder.glob("*.reason.json"):
        text = reason.read_text()
        assert "export" not in text and "DOE" not in text and str(landing) not in text
        record = json.loads(text)
        assert record["reason"].startswith(f"{record['file_key']}: no readable StudyInstanceUID")
    assert not list(folder.glob(".*"))  # no temporary file left


def test_a_second_file_under_the_same_key_is_kept_beside_the_first(tmp_path: Path) -> None:
    first, second = (
        write_ct_series(tmp_path / name, slices=1, rows=32, columns=32, seed=seed)[0]
        for name, seed in (("a", 1), ("b", 2))
    )
    ds = dcmread(second)  # the same instance UIDs as the first, other pixels
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = dcmread(first).SOPInstanceUID
    ds.StudyInstanceUID = dcmread(first).StudyInstanceUID
    ds.save_as(second)
    sop_uid = str(ds.SOPInstanceUID)
    study = Study(str(ds.StudyInstanceUID), (first, second), {first: sop_uid, second: sop_uid})
    layout = Layout(tmp_path / "out")
    copies = []
    for path in (first, second, first):
        result = TierResult(sop_uid, "j2k-r20", FAILED, reason=f"{sop_uid}: bad", path=str(path))
        copies.append(quarantine_failed(study, [result], layout))
    assert copies[0] == copies[2] == layout.quarantine / study.uid / f"{sop_uid}.dcm"
    assert copies[1] == layout.quarantine / study.uid / f"{sop_uid}.{_key(second.read_bytes())}.dcm"
    assert [c.read_bytes() for c in copies[:2] if c] == [first.read_bytes(), second.read_bytes()]
    reasons = sorted(p.name for p in (layout.quarantine / study.uid).glob("*.reason.json"))
    assert reasons == sorted(f"{c.name.removesuffix('.dcm')}.reason.json" for c in copies[:2] if c)
