"""Planning a run on the landing index: settled studies of the interval, then the backlog of
earlier intervals, not done, not claimed by another run, up to the run's capacity. Manifests,
XCom and reasons name files by key; the catalogue's ``file_locations`` says where they are."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pytest
from sqlalchemy import update

from dcmtier.catalogue import Catalogue, JobContext
from dcmtier.catalogue.models import Job
from dcmtier.discovery.landing import list_files, stage
from dcmtier.discovery.plan import PlanRequest, plan, read_manifest, read_plan
from dcmtier.errors import ConfigError
from dcmtier.sample import write_ct_series
from dcmtier.tiers import get_tier

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
TIERS = ["j2k-lossless", "j2k-r20"]


def _study(root: Path, name: str, *, seed: int, study_date: str, arrived: datetime) -> list[Path]:
    files = write_ct_series(root / name, slices=2, rows=32, columns=32, seed=seed,
                            study_date=study_date)  # fmt: skip
    for path in files:
        os.utime(path, (arrived.timestamp(), arrived.timestamp()))
    return files


@pytest.fixture
def dated_landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    _study(root, "jan", seed=1, study_date="20240105", arrived=NOW - timedelta(days=2))
    _study(root, "feb", seed=2, study_date="20240210", arrived=NOW - timedelta(hours=30))
    _study(root, "new", seed=3, study_date="20240309", arrived=NOW - timedelta(seconds=30))
    (root / "junk.bin").write_bytes(b"\x00" * 300)
    return root


def _request(landing: Path, tmp_path: Path, **kwargs: object) -> PlanRequest:
    base: dict[str, object] = {
        "landing": str(landing), "output": tmp_path / "out", "tiers": TIERS,
        "run_id": "manual__1", "now": NOW, "settle_seconds": 300,
    }  # fmt: skip
    return PlanRequest(**{**base, **kwargs})  # type: ignore[arg-type]


def _folders(result: object, out: Path, run_id: str, catalogue: Catalogue) -> set[str]:
    """The study folders of the run's planned files, found through the catalogue as the compress
    task finds them (manifests hold location ids, not paths)."""
    studies = result.studies  # type: ignore[attr-defined]
    entries = [e for uid in studies for e in read_manifest(out, run_id, uid)["files"]]
    found = catalogue.locations(int(e["location"]) for e in entries)
    assert len(found) == len(entries)
    return {Path(uri.removeprefix("file://")).parent.name for _, uri in found.values()}


def _finish(catalogue: Catalogue, landing: Path, run_id: str, pairs: dict[str, list[str]]) -> None:
    """Record an ok attempt for every pair (what the compress tasks would do)."""
    from dcmtier.discovery.files import discover

    studies = {s.uid: s for s in discover([landing])[0]}
    for uid, tiers in pairs.items():
        catalogue.record_study(studies[uid])
        for tier in tiers:
            job = catalogue.start_job(uid, get_tier(tier), JobContext.cli(run_id), {})
            with catalogue.engine.begin() as connection:
                from sqlalchemy import text

                connection.execute(text("UPDATE jobs SET status = 'ok' WHERE id = :i"), {"i": job})
        catalogue.release_claims(run_id, [(uid, t) for t in tiers])


def test_a_manual_run_takes_every_settled_study_and_maps_keys_only(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    result = plan(_request(dated_landing, tmp_path), catalogue)
    assert result.selected.studies_present == 3
    assert result.selected.unsettled == 1  # "new" arrived 30 s ago
    assert len(result.studies) == 2 and result.tiers == TIERS
    assert all(tiers == TIERS for tiers in result.pairs.values())
    junk = dated_landing / "junk.bin"
    key = hashlib.sha256(junk.read_bytes()).hexdigest()[:32]
    assert [(u.key, u.uri) for u in result.unidentified] == [(key, junk.as_uri())]
    assert result.unidentified[0].reason.startswith(f"{key}: ")
    assert "junk" not in result.unidentified[0].reason
    manifest = read_manifest(tmp_path / "out", "manual__1", result.studies[0])
    assert manifest["study_uid"] == result.studies[0] and manifest["tiers"] == TIERS
    assert len(manifest["files"]) == 2 and len({f["sop_uid"] for f in manifest["files"]}) == 2
    assert all(f["key"] == f["sop_uid"] for f in manifest["files"])
    for written in (tmp_path / "out" / "work").rglob("*.json"):
        assert str(dated_landing) not in written.read_text()  # keys and location ids only
    located = catalogue.locations(f["location"] for f in manifest["files"])
    assert {Path(uri.removeprefix("file://")).parent.parent for _, uri in located.values()} == {
        dated_landing
    }
    xcom = json.dumps(result.for_xcom())
    assert "landing" not in xcom and "/" not in json.dumps(result.studies)  # keys, no paths
    assert read_plan(tmp_path / "out", "manual__1")["studies"] == result.studies


def test_arrival_takes_the_interval_then_the_backlog_of_earlier_intervals(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    day = (NOW - timedelta(days=1)).replace(hour=0, minute=0)
    out = tmp_path / "out"
    result = plan(_request(dated_landing, tmp_path, interval=(day, day + timedelta(days=1)),
                           run_id="scheduled__2"), catalogue)  # fmt: skip
    assert _folders(result, out, "scheduled__2", catalogue) == {"jan", "feb"}
    assert result.backlog_taken == [u for u in result.studies if u != result.studies[0]]
    assert result.selected.groups[result.studies[0]] == 0  # the interval's study comes first
    # reprocessing everything stays within the interval (the backlog is for work never done)
    catalogue.release_claims("scheduled__2")
    interval = (day, day + timedelta(days=1))
    again = plan(
        _request(
            dated_landing, tmp_path, interval=interval, run_id="scheduled__3", reprocess="all"
        ),
        catalogue,
    )
    assert _folders(again, out, "scheduled__3", catalogue) == {"feb"}


def test_study_date_selects_by_the_header_date_for_backfills(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    start = datetime(2024, 1, 5, tzinfo=UTC)
    req = _request(dated_landing, tmp_path, interval=(start, start + timedelta(days=1)),
                   select_by="study_date", run_id="backfill__0105")  # fmt: skip
    result = plan(req, catalogue)
    assert _folders(result, tmp_path / "out", "backfill__0105", catalogue) == {"jan"}
    assert result.selected.later == 1  # "feb" is a later interval's (and "new" not settled)


def test_claimed_pairs_are_not_planned_by_another_run_until_released_or_expired(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    first = plan(_request(dated_landing, tmp_path, run_id="a", claim_hours=1), catalogue)
    assert len(first.studies) == 2
    second = plan(_request(dated_landing, tmp_path, run_id="b"), catalogue)
    assert second.studies == [] and second.selected.waiting == 0
    # a retried discovery of the same run plans the same pairs again
    retried = plan(_request(dated_landing, tmp_path, run_id="a", claim_hours=1), catalogue)
    assert retried.pairs == first.pairs
    later = plan(
        _request(dated_landing, tmp_path, run_id="c", now=NOW + timedelta(hours=2)), catalogue
    )
    # the claims expired ("new" has settled by then too)
    assert set(first.pairs) < set(later.pairs) and len(later.pairs) == 3
    assert catalogue.release_claims("c") == 6
    assert plan(_request(dated_landing, tmp_path, run_id="d"), catalogue).pairs == first.pairs


def test_done_pairs_are_skipped_and_only_the_missing_tier_is_planned(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    first = plan(_request(dated_landing, tmp_path, run_id="a", tiers=TIERS[:1]), catalogue)
    _finish(catalogue, dated_landing, "a", first.pairs)
    second = plan(_request(dated_landing, tmp_path, run_id="b"), catalogue)
    assert second.tiers == TIERS[1:] and set(second.studies) == set(first.studies)
    _finish(catalogue, dated_landing, "b", second.pairs)
    assert plan(_request(dated_landing, tmp_path, run_id="c"), catalogue).studies == []


def test_a_capped_run_leaves_the_rest_waiting_and_the_next_run_takes_it(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    first = plan(_request(dated_landing, tmp_path, run_id="a", max_studies_per_run=1), catalogue)
    assert len(first.studies) == 1 and first.selected.waiting == 1
    count, rows = catalogue.backlog()
    assert count == 3  # "new" is in the landing area too, unsettled; nothing attempted yet
    assert {r["tiers_pending"] for r in rows} == {2}
    _finish(catalogue, dated_landing, "a", first.pairs)
    second = plan(_request(dated_landing, tmp_path, run_id="b", max_studies_per_run=1), catalogue)
    assert len(second.studies) == 1 and second.studies != first.studies
    assert catalogue.backlog()[0] == 2


def test_the_capacity_never_exceeds_max_map_length(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    result = plan(_request(dated_landing, tmp_path, max_map_length=1), catalogue)
    assert len(result.studies) == 1 and result.selected.waiting == 1


def test_bad_params_are_config_errors(dated_landing: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="select_by"):
        _request(dated_landing, tmp_path, select_by="mtime")
    with pytest.raises(ConfigError, match="unknown tier"):
        _request(dated_landing, tmp_path, tiers=["j2k-r7"])
    with pytest.raises(ConfigError, match="max_studies_per_run"):
        _request(dated_landing, tmp_path, max_studies_per_run=0)


def test_a_date_laid_out_landing_area_is_listed_by_the_intervals_prefixes(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    root = tmp_path / "landing"
    _study(root / "2024" / "03" / "08", "a", seed=4, study_date="20240308",
           arrived=NOW - timedelta(days=2))  # fmt: skip
    _study(root / "2024" / "03" / "09", "b", seed=5, study_date="20240309",
           arrived=NOW - timedelta(days=1))  # fmt: skip
    day = datetime(2024, 3, 9, tzinfo=UTC)
    interval = (day, day + timedelta(days=1))
    request = _request(root, tmp_path, interval=interval, listing_prefix="%Y/%m/%d",
                       select_by="study_date")  # fmt: skip
    result = plan(request, catalogue)
    assert result.index.files_listed == 2  # only 2024/03/09 was listed
    assert _folders(result, tmp_path / "out", "manual__1", catalogue) == {"b"}


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
    assert len(result.studies) == 1 and result.index.headers_read == 2
    entries = read_manifest(tmp_path / "out", "m", result.studies[0])["files"]
    located = catalogue.locations(int(e["location"]) for e in entries)
    assert sorted(uri for _, uri in located.values()) == [f.uri for f in files]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _attempt(catalogue: Catalogue, landing: Path, run_id: str, uid: str, status: str) -> int:
    """An attempt at ``uid`` x the first tier, left as ``status`` the way it gets there: a dead
    owner (``abandoned``, marked by the next plan), SIGTERM (``interrupted``), still running
    (this process owns it, under a live lease), or finished."""
    from dcmtier.discovery.files import discover

    (study,) = [s for s in discover([landing])[0] if s.uid == uid]
    catalogue.record_study(study)
    job = catalogue.start_job(uid, get_tier(TIERS[0]), JobContext.cli(run_id), {})
    values: dict[str, object] = {}
    if status == "abandoned":
        values = {"owner_pid": _dead_pid()}
    elif status == "interrupted":
        catalogue.interrupt_jobs([job], "interrupted by SIGTERM")
    elif status != "running":
        values = {"status": status, "finished_at": datetime.now(UTC)}
    if values:
        with catalogue.engine.begin() as connection:
            connection.execute(update(Job).where(Job.id == job).values(**values))
    return job


def _two_studies_attempted(
    catalogue: Catalogue, landing: Path, tmp_path: Path, status: str
) -> tuple[str, str]:
    """Plan run "a" on the first tier; the first study's attempt ends ``status``, the second's
    ``ok``, and run "a" ends (its claims released). The two study UIDs."""
    first = plan(_request(landing, tmp_path, run_id="a", tiers=TIERS[:1]), catalogue)
    uid, other = first.studies
    _attempt(catalogue, landing, "a", uid, status)
    _attempt(catalogue, landing, "a", other, "ok")
    catalogue.release_claims("a")
    return uid, other


@pytest.mark.parametrize(
    ("status", "not_done"),
    [("abandoned", True), ("interrupted", True), ("running", False), ("ok", False),
     ("partial", False), ("failed", False), ("rejected", False)],
)  # fmt: skip
def test_only_an_attempt_that_never_finished_is_planned_again_and_waits_in_the_backlog(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue, status: str, not_done: bool
) -> None:
    uid, _ = _two_studies_attempted(catalogue, dated_landing, tmp_path, status)
    waiting = {r["study_uid"]: r["tiers_pending"] for r in catalogue.backlog()[1]}
    # an abandoned attempt reads so once a run has marked it; the others at once
    assert (uid in waiting) is (not_done and status != "abandoned")

    again = plan(_request(dated_landing, tmp_path, run_id="b", tiers=TIERS[:1]), catalogue)

    assert again.pairs == ({uid: TIERS[:1]} if not_done else {})
    assert len(again.abandoned) == (status == "abandoned")
    count, rows = catalogue.backlog()
    waiting = {r["study_uid"]: r["tiers_pending"] for r in rows}
    assert waiting.get(uid) == (1 if not_done else None)
    assert count == 1 + not_done  # "new", unsettled and never attempted, waits too


@pytest.mark.parametrize(
    ("status", "reprocess", "again"),
    [("rejected", "failed", False), ("rejected", "all", True), ("partial", "failed", True),
     ("failed", "failed", True), ("running", "all", False), ("interrupted", "none", True)],
)  # fmt: skip
def test_reprocess_retakes_finished_statuses_and_rejected_only_with_all(
    *, dated_landing: Path, tmp_path: Path, catalogue: Catalogue, status: str, reprocess: str,
    again: bool,
) -> None:  # fmt: skip
    uid, other = _two_studies_attempted(catalogue, dated_landing, tmp_path, status)
    request = _request(dated_landing, tmp_path, run_id="b", tiers=TIERS[:1], reprocess=reprocess)
    planned = set(plan(request, catalogue).pairs)
    assert (uid in planned) is again
    assert (other in planned) is (reprocess == "all")  # its attempt is ok


def test_a_running_attempt_whose_lease_lapses_by_the_runs_time_is_planned_again(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    uid, _ = _two_studies_attempted(catalogue, dated_landing, tmp_path, "running")
    request = _request(dated_landing, tmp_path, run_id="b", tiers=TIERS[:1])
    assert uid not in plan(request, catalogue).pairs  # its owner (this process) renews it
    catalogue.release_claims("b")
    lapsed = _request(dated_landing, tmp_path, run_id="c", tiers=TIERS[:1],
                      now=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    assert uid in plan(lapsed, catalogue).pairs


def test_the_claims_of_a_run_that_is_gone_are_released_for_the_next_run(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    first = plan(_request(dated_landing, tmp_path, run_id="a", tiers=TIERS[:1]), catalogue)
    uid, other = first.studies
    job = _attempt(catalogue, dated_landing, "a", uid, "running")
    # run "a" is alive (an attempt running under a live lease): its claims hold
    assert (
        plan(_request(dated_landing, tmp_path, run_id="b", tiers=TIERS[:1]), catalogue).pairs == {}
    )

    with catalogue.engine.begin() as connection:  # killed: its owner is gone
        connection.execute(update(Job).where(Job.id == job).values(owner_pid=_dead_pid()))
    after = plan(_request(dated_landing, tmp_path, run_id="c", tiers=TIERS[:1]), catalogue)

    assert after.abandoned == [job]
    assert after.selected.released == {"a": 2}
    assert after.pairs == {uid: TIERS[:1], other: TIERS[:1]}
    assert after.summary()["claims_released"] == 2


def test_study_uids_restrict_the_run_to_those_studies(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    everything = plan(_request(dated_landing, tmp_path, run_id="manual__all"), catalogue)
    catalogue.release_claims("manual__all")
    one = everything.studies[1]
    result = plan(_request(dated_landing, tmp_path, run_id="manual__one", study_uids=[one],
                           tiers=TIERS[1:], reprocess="all"), catalogue)  # fmt: skip
    assert result.pairs == {one: TIERS[1:]}
    assert result.selected.studies_present == 1  # the others are not even counted
    assert [u.for_xcom() for u in result.units] == [{"id": "u0000", "studies": 1}]


def test_units_are_written_to_the_work_folder_and_xcom_holds_ids_and_counts_only(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    from dcmtier.discovery.plan import read_unit

    request = _request(dated_landing, tmp_path, run_id="manual__a", settle_seconds=0)
    packed = plan(request, catalogue)
    xcom = packed.for_xcom()
    assert xcom["units"] == [{"id": "u0000", "studies": 3}]  # three tiny studies, one unit
    assert not any(uid in json.dumps(xcom) for uid in packed.studies)
    assert read_unit(tmp_path / "out", "manual__a", "u0000") == packed.studies
    assert xcom["summary"]["cost_model"]["fitted_from"] == 0  # no history: the defaults
    catalogue.release_claims("manual__a")
    single = plan(_request(dated_landing, tmp_path, run_id="manual__b", settle_seconds=0,
                           unit_seconds=0, reprocess="all"), catalogue)  # fmt: skip
    assert [u.studies for u in single.units] == [(uid,) for uid in single.studies]
    with pytest.raises(ConfigError, match="unit_seconds"):
        _request(dated_landing, tmp_path, unit_seconds=-1)


def test_units_are_packed_by_the_latest_estimates_cost_model(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    from dcmtier.catalogue.estimates import save

    total = {"scope": "total", "studies": 3, "source_bytes": 1, "cost_study_s": 50.0,
             "cost_byte_s": 0.0, "cost_instance_s": 0.0}  # fmt: skip
    with catalogue.engine.begin() as connection:
        save(connection, "e1", datetime.now(UTC), [total],
             {"sample_studies": 3, "seed": 0, "slots": 1})  # fmt: skip
    packed = plan(_request(dated_landing, tmp_path, run_id="manual__e", settle_seconds=0,
                           unit_seconds=120), catalogue)  # fmt: skip
    # 50 s a study by the estimate: two studies a unit, not the three of the defaults
    assert [u.for_xcom()["studies"] for u in packed.units] == [2, 1]
    assert packed.cost.study_s == 50.0 and packed.cost.fitted_from == 0


def test_the_slowest_tiers_come_first_by_their_recorded_attempts(
    dated_landing: Path, tmp_path: Path, catalogue: Catalogue
) -> None:
    from sqlalchemy import text

    first = plan(_request(dated_landing, tmp_path, run_id="manual__t1", settle_seconds=0),
                 catalogue)  # fmt: skip
    assert first.tiers == TIERS  # nothing recorded yet: the order asked
    _finish(catalogue, dated_landing, "manual__t1", first.pairs)
    # the last tier took 9 s an attempt, the others 1 s
    with catalogue.engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET finished_at = started_at + "
                                "(CASE WHEN tier = :slow THEN 9 ELSE 1 END) * interval '1 second'"
                                if catalogue.engine.dialect.name == "postgresql" else
                                "UPDATE jobs SET finished_at = datetime(started_at, CASE WHEN "
                                "tier = :slow THEN '+9 seconds' ELSE '+1 seconds' END)"),
                           {"slow": TIERS[-1]})  # fmt: skip
    again = plan(_request(dated_landing, tmp_path, run_id="manual__t2", settle_seconds=0,
                          reprocess="all"), catalogue)  # fmt: skip
    assert again.tiers == [TIERS[-1], *TIERS[:-1]]
    assert again.for_xcom()["tiers"] == again.tiers
    catalogue.release_claims("manual__t2")
    single = plan(_request(dated_landing, tmp_path, run_id="manual__t3", settle_seconds=0,
                           unit_seconds=0, reprocess="all"), catalogue)  # fmt: skip
    assert single.tiers == TIERS
