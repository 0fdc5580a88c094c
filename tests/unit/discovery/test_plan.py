"""Discovery: headers only, studies grouped by UID, settled, selected by interval, capped."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest

from dcmtier.catalogue import Catalogue
from dcmtier.discovery.landing import list_files, stage
from dcmtier.discovery.plan import PlanRequest, plan
from dcmtier.errors import ConfigError
from dcmtier.sample import write_ct_series

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def _study(root: Path, name: str, *, seed: int, study_date: str, arrived: datetime) -> list[Path]:
    files = write_ct_series(root / name, slices=2, rows=32, columns=32, seed=seed,
                            study_date=study_date)  # fmt: skip
    for path in files:
        os.utime(path, (arrived.timestamp(), arrived.timestamp()))
    return files


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    _study(root, "jan", seed=1, study_date="20240105", arrived=NOW - timedelta(days=2))
    _study(root, "feb", seed=2, study_date="20240210", arrived=NOW - timedelta(hours=30))
    _study(root, "new", seed=3, study_date="20240309", arrived=NOW - timedelta(seconds=30))
    (root / "junk.bin").write_bytes(b"\x00" * 300)
    return root


def _request(landing: Path, tmp_path: Path, **kwargs: object) -> PlanRequest:
    base: dict[str, object] = {
        "landing": str(landing), "output": tmp_path / "out", "tiers": ["j2k-lossless", "j2k-r20"],
        "run_id": "manual__1", "now": NOW, "settle_seconds": 300,
    }  # fmt: skip
    return PlanRequest(**{**base, **kwargs})  # type: ignore[arg-type]


def test_a_manual_run_takes_every_settled_study_with_one_item_per_tier(
    landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    result = plan(_request(landing, tmp_path), catalogue)
    assert result.studies_seen == 3
    assert len(result.unsettled) == 1  # "new" arrived 30 s ago
    assert len(result.items) == 2 * 2
    assert {i["tier"] for i in result.items} == {"j2k-lossless", "j2k-r20"}
    junk = landing / "junk.bin"
    key = hashlib.sha256(junk.read_bytes()).hexdigest()[:32]
    assert [(u.key, u.uri) for u in result.unidentified] == [(key, junk.as_uri())]
    assert result.unidentified[0].reason.startswith(f"{key}: ")
    item = result.items[0]
    manifest = json.loads(Path(item["manifest"]).read_text())
    assert manifest["study_uid"] == item["study_uid"]
    assert len(manifest["files"]) == 2
    assert str(landing) not in Path(item["manifest"]).read_text()  # keys and location ids only
    assert all(f["key"] == f["sop_uid"] for f in manifest["files"])
    located = catalogue.locations(f["location"] for f in manifest["files"])
    assert {Path(uri[len("file://") :]).parent.parent for _, uri in located.values()} == {landing}
    assert item["label"].endswith("· j2k-lossless") or item["label"].endswith("· j2k-r20")
    assert "pixel" not in json.dumps(result.items)  # references only


def _planned_files(result: Any, catalogue: Catalogue) -> set[Path]:
    """Where the items' files are, through the catalogue as the compress task finds them."""
    entries = [
        e for i in result.items for e in json.loads(Path(i["manifest"]).read_text())["files"]
    ]
    found = catalogue.locations(int(e["location"]) for e in entries)
    return {Path(uri.removeprefix("file://")) for _, uri in found.values()}


def _planned_folders(result: Any, catalogue: Catalogue) -> set[str]:
    return {path.parent.name for path in _planned_files(result, catalogue)}


def test_arrival_selects_the_interval_and_earlier_studies_not_yet_done(
    landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    day = (NOW - timedelta(days=2)).replace(hour=0, minute=0)
    first = (day, day + timedelta(days=1))
    result = plan(_request(landing, tmp_path, interval=first, run_id="scheduled__1"), catalogue)
    assert _planned_folders(result, catalogue) == {"jan"}
    assert result.outside_interval == 1  # "feb" arrived after this interval
    # the next interval also takes "jan" again while nothing recorded it as done (no catalogue)
    second = (first[1], first[1] + timedelta(days=1))
    result = plan(_request(landing, tmp_path, interval=second, run_id="scheduled__2"), catalogue)
    assert _planned_folders(result, catalogue) == {"jan", "feb"}
    # reprocessing everything stays within the interval
    result = plan(
        _request(landing, tmp_path, interval=second, run_id="s3", reprocess="all"), catalogue
    )
    assert _planned_folders(result, catalogue) == {"feb"}


def test_study_date_selects_by_the_header_date_for_backfills(
    landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    start = datetime(2024, 2, 10, tzinfo=UTC)
    req = _request(landing, tmp_path, interval=(start, start + timedelta(days=1)),
                   select_by="study_date")  # fmt: skip
    result = plan(req, catalogue)
    files = _planned_files(result, catalogue)
    assert files and all(f.parent.name == "feb" for f in files)


def test_more_studies_than_the_cap_are_left_for_the_next_run(
    landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    result = plan(_request(landing, tmp_path, max_studies_per_run=1), catalogue)
    assert len({i["study_uid"] for i in result.items}) == 1
    assert len(result.deferred) == 1


def test_the_cap_never_exceeds_max_map_length(
    landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    result = plan(_request(landing, tmp_path, max_map_length=3), catalogue)  # 2 tiers: 1 study fits
    assert len(result.items) == 2
    assert len(result.deferred) == 1


def test_bad_params_are_config_errors(landing: Path, tmp_path: Path, catalogue: Catalogue) -> None:
    with pytest.raises(ConfigError, match="select_by"):
        _request(landing, tmp_path, select_by="mtime")
    with pytest.raises(ConfigError, match="unknown tier"):
        _request(landing, tmp_path, tiers=["j2k-r7"])


def test_a_remote_landing_area_is_listed_and_staged_through_fsspec(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    local = write_ct_series(tmp_path / "src", slices=2, rows=32, columns=32, seed=9)
    fs = fsspec.filesystem("memory")
    for path in local:
        fs.pipe(f"/landing/s/{path.name}", path.read_bytes())
    files = list_files("memory://landing")
    assert [f.uri.rsplit("/", 1)[-1] for f in files] == [p.name for p in local]
    assert all(f.uri.startswith("memory://") and f.size > 0 for f in files)
    staged = stage([f.uri for f in files], tmp_path / "staging")
    assert [p.read_bytes() for p in staged] == [p.read_bytes() for p in local]
    later = datetime.now(UTC) + timedelta(hours=1)  # everything has settled by then
    request = PlanRequest(landing="memory://landing", output=tmp_path / "out",
                          tiers=["j2k-r20"], run_id="m", now=later)  # fmt: skip
    result = plan(request, catalogue)
    assert len(result.items) == 1
