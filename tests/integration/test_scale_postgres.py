"""The landing index, claims under concurrency and the backlog view, on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from dcmtier.catalogue import Catalogue, JobContext
from dcmtier.catalogue.landing import FileHeader
from dcmtier.catalogue.selection import Selection
from dcmtier.discovery.index import index_landing, scopes_of
from dcmtier.sample import write_ct_series
from dcmtier.tiers import get_tier

pytestmark = pytest.mark.postgres

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
SCOPE = "s3://archive/landing/"
TIERS = ("j2k-lossless", "j2k-r20")


def _headers(studies: int, files: int, *, day: date = date(2024, 5, 1)) -> list[FileHeader]:
    return [_header(s, f, day) for s in range(studies) for f in range(files)]


def _header(s: int, f: int, day: date) -> FileHeader:
    arrived, sop_uid = NOW - timedelta(days=1), f"1.2.3.{s}.1.{f}"
    return FileHeader(f"{SCOPE}{s:05d}/{f:03d}.dcm", 1000, arrived, sop_uid, f"etag{s}-{f}",
                      study_uid=f"1.2.3.{s}", series_uid=f"1.2.3.{s}.1", sop_uid=sop_uid,
                      study_date=day + timedelta(days=s % 3), modality="CT")  # fmt: skip


def _selection(run_id: str, capacity: int, **kwargs: object) -> Selection:
    base: dict[str, object] = {
        "scopes": [SCOPE], "tiers": TIERS, "run_id": run_id, "now": NOW,
        "settled_before": NOW - timedelta(minutes=5), "capacity": capacity,
        "expires_at": NOW + timedelta(hours=1),
    }  # fmt: skip
    return Selection(**{**base, **kwargs})  # type: ignore[arg-type]


def test_the_index_reads_only_new_files_and_marks_vanished_ones_on_postgres(
    pg_catalogue: Catalogue, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    for n in range(4):
        write_ct_series(root / f"s{n}", slices=3, rows=8, columns=8, seed=n)
    first = index_landing(str(root), pg_catalogue)
    assert (first.headers_read, first.files_new) == (12, 12)
    assert index_landing(str(root), pg_catalogue).headers_read == 0
    write_ct_series(root / "s9", slices=3, rows=8, columns=8, seed=9)
    for path in (root / "s0").iterdir():
        path.unlink()
    third = index_landing(str(root), pg_catalogue)
    assert (third.headers_read, third.files_new, third.files_gone) == (3, 3, 3)
    assert pg_catalogue.landing_study_count(scopes_of(str(root))) == 4


def test_concurrent_runs_never_claim_the_same_study_tier(pg_catalogue: Catalogue) -> None:
    pg_catalogue.update_landing(_headers(60, 2), [], [SCOPE], NOW)
    url = pg_catalogue.engine.url.render_as_string(hide_password=False)
    runs = [f"backfill__{n}" for n in range(4)]
    start = threading.Barrier(len(runs), timeout=300)
    taken: dict[str, dict[str, list[str]]] = {}
    errors: list[BaseException] = []

    def plan(run_id: str) -> None:
        try:
            catalogue = Catalogue.connect(url)
        except BaseException as exc:  # e.g. "too many clients": the others must not wait
            start.abort()
            errors.append(exc)
            return
        try:
            start.wait()
            taken[run_id] = catalogue.claim_work(_selection(run_id, capacity=20)).pairs
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            catalogue.close()

    threads = [threading.Thread(target=plan, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    pairs = [(s, t) for got in taken.values() for s, tiers in got.items() for t in tiers]
    assert len(pairs) == len(set(pairs)) == 60 * len(TIERS)  # every pair once, none twice
    assert all(len(got) <= 20 for got in taken.values())
    with pg_catalogue.engine.connect() as connection:
        query = text("SELECT run_id, count(*) FROM claims GROUP BY 1")
        owners = {run: count for run, count in connection.execute(query)}
    assert owners == {r: sum(len(t) for t in taken[r].values()) for r in runs if taken[r]}


def test_expired_claims_are_taken_over_and_released_ones_free_the_pair(
    pg_catalogue: Catalogue,
) -> None:
    pg_catalogue.update_landing(_headers(2, 1), [], [SCOPE], NOW)
    assert len(pg_catalogue.claim_work(_selection("a", 5)).pairs) == 2
    assert pg_catalogue.claim_work(_selection("b", 5)).pairs == {}
    later = NOW + timedelta(hours=2)
    hour = timedelta(hours=1)
    moved = pg_catalogue.claim_work(_selection("b", 5, now=later, expires_at=later + hour))
    assert len(moved.pairs) == 2
    assert pg_catalogue.release_claims("a") == 0  # nothing of "a" left
    assert pg_catalogue.release_claims("b", [("1.2.3.0", "j2k-r20")]) == 1
    again = pg_catalogue.claim_work(_selection("c", 5, now=later, expires_at=later + hour))
    assert again.pairs == {"1.2.3.0": ["j2k-r20"]}


def test_the_backlog_view_lists_studies_with_tiers_never_attempted(
    pg_catalogue: Catalogue,
) -> None:
    pg_catalogue.update_landing(_headers(3, 2), [], [SCOPE], NOW)
    first = pg_catalogue.claim_work(_selection("a", capacity=1))
    assert first.waiting == 2
    count, rows = pg_catalogue.backlog()
    assert count == 3 and {r["tiers_pending"] for r in rows} == {2}
    assert rows[0]["study_date"] == date(2024, 5, 1) and rows[0]["arrival"] == NOW - timedelta(1)
    with pg_catalogue.engine.begin() as connection:
        connection.execute(text("INSERT INTO studies VALUES ('1.2.3.0', 'CT', :t, :t)"), {"t": NOW})
    pg_catalogue.start_job("1.2.3.0", get_tier("j2k-r20"), JobContext.cli("a"), {})
    count, rows = pg_catalogue.backlog()
    pending = {r["study_uid"]: r["tiers_pending"] for r in rows}
    assert pending == {"1.2.3.0": 1, "1.2.3.1": 2, "1.2.3.2": 2}
    with pg_catalogue.engine.connect() as connection:
        columns = list(connection.execute(text("SELECT * FROM backlog LIMIT 0")).keys())
    assert columns == ["study_uid", "study_date", "arrival", "tiers_pending", "waiting_since"]


def test_a_backlog_run_takes_the_interval_first_then_earlier_days_newest_first(
    pg_catalogue: Catalogue,
) -> None:
    pg_catalogue.update_landing(_headers(9, 1), [], [SCOPE], NOW)  # 3 studies a day, May 1-3
    day = datetime(2024, 5, 3, tzinfo=UTC)
    got = pg_catalogue.claim_work(
        _selection("r", 5, select_by="study_date", interval=(day, day + timedelta(days=1)))
    )
    dates = {s: int(s.rsplit(".", 1)[1]) % 3 for s in got.pairs}
    assert list(dates.values()) == [2, 2, 2, 1, 1]  # May 3 (the interval), then May 2
    assert got.waiting == 4


def _attempts(catalogue: Catalogue, statuses: dict[str, str], run_id: str = "a") -> None:
    """An attempt at j2k-r20 of each study, left as its status (``lapsed``: running, its
    lease expired a minute ago; ``running``: under this process's live lease)."""
    for study_uid, status in statuses.items():
        with catalogue.engine.begin() as connection:
            connection.execute(text("INSERT INTO studies VALUES (:s, 'CT', :t, :t)"),
                               {"s": study_uid, "t": NOW})  # fmt: skip
        job = catalogue.start_job(study_uid, get_tier("j2k-r20"), JobContext.cli(run_id), {})
        values = {
            "lapsed": "lease_expires_at = now() - interval '1 minute'",
            "running": "lease_expires_at = now() + interval '1 hour'",
        }.get(status, f"status = '{status}'")
        with catalogue.engine.begin() as connection:
            connection.execute(text(f"UPDATE jobs SET {values} WHERE id = :i"), {"i": job})


def test_the_backlog_view_counts_unfinished_attempts_as_pending_on_postgres(
    pg_catalogue: Catalogue,
) -> None:
    pg_catalogue.update_landing(_headers(6, 1), [], [SCOPE], NOW)
    pg_catalogue.claim_work(_selection("a", capacity=6))  # records the tiers asked for
    _attempts(pg_catalogue, {
        "1.2.3.0": "interrupted", "1.2.3.1": "abandoned", "1.2.3.2": "lapsed",
        "1.2.3.3": "rejected", "1.2.3.4": "running", "1.2.3.5": "failed",
    })  # fmt: skip
    pending = {r["study_uid"]: r["tiers_pending"] for r in pg_catalogue.backlog()[1]}
    # j2k-lossless was never attempted anywhere; j2k-r20 is pending where it never finished
    assert pending == {"1.2.3.0": 2, "1.2.3.1": 2, "1.2.3.2": 2, "1.2.3.3": 1, "1.2.3.4": 1,
                       "1.2.3.5": 1}  # fmt: skip


def test_a_gone_runs_claims_are_released_and_its_unfinished_pairs_taken_on_postgres(
    pg_catalogue: Catalogue,
) -> None:
    pg_catalogue.update_landing(_headers(2, 1), [], [SCOPE], NOW)
    held = pg_catalogue.claim_work(_selection("a", 5, tiers=("j2k-r20",)))
    assert set(held.pairs) == {"1.2.3.0", "1.2.3.1"}
    _attempts(pg_catalogue, {"1.2.3.0": "interrupted"})  # "a" was stopped, nothing else runs
    after = pg_catalogue.claim_work(_selection("b", 5, tiers=("j2k-r20",)))
    assert after.released == {"a": 2}
    assert after.pairs == {"1.2.3.0": ["j2k-r20"], "1.2.3.1": ["j2k-r20"]}
