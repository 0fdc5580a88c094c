"""The DAG's tier tasks share one read of their study's sources (``work.sources``): the
encode task keeps them in ``cache/sources/<study>.bin``, each tier task maps it instead of
reading, parsing and hashing every source again, and writes the same bytes as without it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dcmtier.catalogue import Catalogue, JobContext
from dcmtier.catalogue.models import Instance
from dcmtier.codec.pixels import SourceImage
from dcmtier.discovery.plan import Plan, PlanRequest, plan
from dcmtier.orchestration import items
from dcmtier.orchestration.items import prepare_layers, run_pair
from dcmtier.sample import write_ct_series
from dcmtier.work import compress, sources
from dcmtier.work.cache import cached_studies, drop_study
from dcmtier.work.layout import Layout

TIERS = ("j2k-lossless", "j2k-r10", "j2k-r20", "htj2k-lossless")


def _landing(root: Path) -> None:
    write_ct_series(root / "a", slices=3, rows=64, columns=64, seed=11)
    write_ct_series(root / "b", slices=2, rows=64, columns=64, seed=12, signed=False)


def _encoded(landing: Path | str, out: Path, url: str, catalogue: Catalogue) -> Plan:
    """What the DAG's discover and encode tasks call: the plan, each study's layers and cache."""
    request = PlanRequest(landing=str(landing), output=out, tiers=list(TIERS), run_id="dag",
                          now=datetime.now(UTC), settle_seconds=0)  # fmt: skip
    planned = plan(request, catalogue)
    for study_uid in planned.studies:
        prepare_layers(study_uid, output=out, run_id="dag", catalogue_url=url)
    return planned


def _dag(landing: Path, out: Path, url: str, catalogue: Catalogue) -> list[str]:
    """What the DAG's discover, encode and compress tasks call, one study x tier a task."""
    planned = _encoded(landing, out, url, catalogue)
    pairs = [(s, t) for s in planned.studies for t in planned.tiers]
    for index, (study_uid, tier) in enumerate(pairs):
        context = JobContext("dicom_archive_compression", "dag", "compress", index, 1)
        assert run_pair(study_uid, tier, output=out, context=context, catalogue_url=url)
    return list(planned.studies)


def _digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "derived").rglob("*.dcm"))
    }


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The sources a tier task reads from their files (not from the cache)."""
    read: list[Path] = []
    real: Callable[[Path], SourceImage] = compress.read_source

    def counted(path: Path) -> SourceImage:
        read.append(path)
        return real(path)

    monkeypatch.setattr(compress, "read_source", counted)
    return read


def _url(tmp_path: Path, name: str) -> tuple[str, Catalogue]:
    url = f"sqlite:///{tmp_path}/{name}.db"
    Catalogue.upgrade(url)
    return url, Catalogue.connect(url)


def test_tier_tasks_read_no_source_and_write_the_same_bytes_as_without_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    _landing(landing)
    url, catalogue = _url(tmp_path, "shared")
    read = _counting(monkeypatch)
    studies = _dag(landing, tmp_path / "shared", url, catalogue)
    assert read == []  # every tier task took every source from the cache
    layout = Layout(tmp_path / "shared")
    assert sorted(p.name for p in layout.source_cache.iterdir()) == sorted(
        f"{s}.bin" for s in studies
    )
    with monkeypatch.context() as patch:  # main's behaviour: each tier task reads the sources
        patch.setattr(items, "_shares_sources", lambda root, manifest: False)
        url2, catalogue2 = _url(tmp_path, "apart")
        _dag(landing, tmp_path / "apart", url2, catalogue2)
    assert len(read) == 5 * len(TIERS)
    assert not Layout(tmp_path / "apart").source_cache.exists()
    shared, apart = _digests(tmp_path / "shared"), _digests(tmp_path / "apart")
    assert len(shared) == 5 * len(TIERS) and shared == apart
    rows = []
    for opened in (catalogue, catalogue2):
        with Session(opened.engine) as session:
            found = session.scalars(select(Instance).order_by(Instance.sop_uid)).all()
            rows.append([(i.sop_uid, i.bytes, i.sha256, i.rows, i.frames) for i in found])
        opened.close()
    assert rows[0] == rows[1] and len(rows[0]) == 5


def test_a_source_changed_since_the_encode_task_is_read_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    _landing(landing)
    url, catalogue = _url(tmp_path, "cat")
    out = tmp_path / "out"
    planned = _encoded(landing, out, url, catalogue)
    touched = landing / "a" / "CT0002.dcm"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    read = _counting(monkeypatch)
    for index, study_uid in enumerate(planned.studies):
        context = JobContext("dicom_archive_compression", "dag", "compress", index, 1)
        assert run_pair(study_uid, "j2k-r20", output=out, context=context, catalogue_url=url)
    catalogue.close()
    assert [p.resolve() for p in read] == [touched.resolve()]


def test_a_damaged_cache_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = tmp_path / "landing"
    _landing(landing)
    url, catalogue = _url(tmp_path, "cat")
    out = tmp_path / "out"
    planned = _encoded(landing, out, url, catalogue)
    for cached in Layout(out).source_cache.iterdir():
        cached.write_bytes(cached.read_bytes()[:-10])  # cut short: its index is gone
    sources._OPEN.clear()
    read = _counting(monkeypatch)
    context = JobContext("dicom_archive_compression", "dag", "compress", 0, 1)
    result = run_pair(planned.studies[0], "j2k-r20", output=out, context=context,
                      catalogue_url=url)  # fmt: skip
    catalogue.close()
    assert result is not None and result["status"] == "ok" and len(read) == 3


def test_the_source_cache_is_listed_and_dropped_with_the_layered_cache(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _landing(landing)
    url, catalogue = _url(tmp_path, "cat")
    out = tmp_path / "out"
    request = PlanRequest(landing=str(landing), output=out, tiers=list(TIERS), run_id="dag",
                          now=datetime.now(UTC), settle_seconds=0)  # fmt: skip
    planned = plan(request, catalogue)
    catalogue.close()
    study_uid = planned.studies[0]
    summary = prepare_layers(study_uid, output=out, run_id="dag", catalogue_url=url)
    assert summary["sources_cached"] == summary["encoded"] > 0
    layout = Layout(out)
    (listed,) = cached_studies(layout)
    assert listed.study_uid == study_uid
    assert listed.bytes > (layout.source_cache / f"{study_uid}.bin").stat().st_size
    dropped = drop_study(layout, study_uid)
    assert dropped is not None and dropped.bytes == listed.bytes
    assert cached_studies(layout) == [] and not any(layout.source_cache.iterdir())


def test_tier_tasks_on_a_dicomweb_landing_take_their_sources_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each task retrieves the study again (WADO-RS gives no modification time): each copy
    takes the instance's arrival from the landing index, so the cache's size-and-time check
    holds, and packages record the same source time however often a study is retrieved."""
    from tests.orthanc import credentials_env, running_orthanc

    for name, value in credentials_env().items():
        monkeypatch.setenv(name, value)
    landing = tmp_path / "landing"
    _landing(landing)
    url, catalogue = _url(tmp_path, "cat")
    out = tmp_path / "out"
    with running_orthanc(tmp_path / "pacs") as server:
        server.upload(*sorted(landing.rglob("*.dcm")))
        planned = _encoded(server.url, out, url, catalogue)
        read = _counting(monkeypatch)
        for index, study_uid in enumerate(planned.studies):
            context = JobContext("dicom_archive_compression", "dag", "compress", index, 1)
            for tier in ("j2k-lossless", "j2k-r20"):
                assert run_pair(study_uid, tier, output=out, context=context, catalogue_url=url)
    arrivals = [
        datetime.fromisoformat(str(row[0])).replace(tzinfo=UTC)
        for row in catalogue.engine.connect().exec_driver_sql("SELECT modified FROM landing_files")
    ]
    catalogue.close()
    assert read == []  # every source from the cache the encode task wrote
    assert len(arrivals) == 5
    assert list((out / "staging").iterdir()) == []  # each task's retrievals gone, no run folder
    from dcmtier.packaging.package import read_manifest

    for package in (out / "packages").rglob("*.zip"):
        created = read_manifest(package)["created_at"]
        assert created in {f"{a:%Y-%m-%dT%H:%M:%S}Z" for a in arrivals}, created
