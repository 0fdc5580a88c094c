"""Owners, leases, holds and retries of the catalogue, on SQLite with real processes."""

from __future__ import annotations

import logging
import multiprocessing
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from dcmtier import owner
from dcmtier.catalogue import Catalogue, CatalogueError, JobContext
from dcmtier.catalogue.models import Job, utcnow
from dcmtier.catalogue.retry import Retry
from dcmtier.discovery.files import discover
from dcmtier.discovery.plan import PlanRequest, plan
from dcmtier.tiers import get_tier
from tests.integration.catalogue_cases import view

TIER = get_tier("j2k-lossless")


def _started_job(catalogue: Catalogue, small_landing: Path) -> tuple[str, int]:
    (study,), _ = discover([small_landing])
    catalogue.record_study(study)
    return study.uid, catalogue.start_job(study.uid, TIER, JobContext.cli("r1"), {})


def _set_owner(catalogue: Catalogue, job_id: int, **values: object) -> None:
    with catalogue.engine.begin() as connection:
        connection.execute(update(Job).where(Job.id == job_id).values(**values))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_job_records_its_owner_and_a_lease(catalogue: Catalogue, small_landing: Path) -> None:
    _, job_id = _started_job(catalogue, small_landing)
    with catalogue.engine.connect() as connection:
        row = connection.execute(Job.__table__.select().where(Job.id == job_id)).one()
    me = owner.current()
    assert (row.owner_host, row.owner_pid, row.owner_start) == (me.host, me.pid, me.start)
    left = (row.lease_expires_at.replace(tzinfo=utcnow().tzinfo) - utcnow()).total_seconds()
    assert catalogue.lease_s - 5 < left <= catalogue.lease_s


def test_a_running_job_of_a_dead_process_is_abandoned_listed_and_planned_again(
    catalogue: Catalogue, small_landing: Path, tmp_path: Path
) -> None:
    study_uid, job_id = _started_job(catalogue, small_landing)
    assert catalogue.pair_status([study_uid], [TIER.name]) == {(study_uid, TIER.name): "running"}
    _set_owner(catalogue, job_id, owner_pid=_dead_pid())

    assert catalogue.pair_status([study_uid], [TIER.name]) == {(study_uid, TIER.name): "abandoned"}
    request = PlanRequest(
        landing=str(small_landing), output=tmp_path / "out", tiers=[TIER.name], run_id="next",
        now=utcnow(), settle_seconds=0,
    )  # fmt: skip
    planned = plan(request, catalogue)  # its lease is still live: the dead pid decides
    assert planned.abandoned == [job_id]
    assert planned.pairs == {study_uid: [TIER.name]}

    (failure,) = view(catalogue, "failures")
    assert failure["status"] == "abandoned" and failure["tier"] == TIER.name
    assert "is no longer running" in failure["reason"]
    assert catalogue.reap() == []


def test_an_expired_lease_on_another_host_shows_in_failures_before_any_run_marks_it(
    catalogue: Catalogue, small_landing: Path
) -> None:
    study_uid, job_id = _started_job(catalogue, small_landing)
    _set_owner(catalogue, job_id, owner_host="elsewhere", owner_pid=7)
    assert view(catalogue, "failures") == []
    _set_owner(catalogue, job_id, lease_expires_at=utcnow() - timedelta(seconds=1))

    (failure,) = view(catalogue, "failures")
    assert (failure["status"], failure["study_uid"]) == ("abandoned", study_uid)
    assert "owner elsewhere pid 7 stopped renewing its lease" in failure["reason"]
    assert catalogue.pair_status([study_uid], [TIER.name])[(study_uid, TIER.name)] == "abandoned"


def test_a_renewed_lease_keeps_a_job_of_another_host_running(
    catalogue: Catalogue, small_landing: Path
) -> None:
    study_uid, job_id = _started_job(catalogue, small_landing)
    _set_owner(catalogue, job_id, owner_host="elsewhere", lease_expires_at=utcnow())
    assert catalogue.renew([job_id]) == 1
    assert catalogue.pair_status([study_uid], [TIER.name])[(study_uid, TIER.name)] == "running"


def test_interrupted_jobs_are_listed_until_a_later_attempt_finishes(
    catalogue: Catalogue, small_landing: Path
) -> None:
    study_uid, job_id = _started_job(catalogue, small_landing)
    catalogue.interrupt_jobs([job_id], "interrupted by SIGTERM")
    (failure,) = view(catalogue, "failures")
    assert (failure["status"], failure["reason"]) == ("interrupted", "interrupted by SIGTERM")
    assert catalogue.pair_status([study_uid], [TIER.name])[(study_uid, TIER.name)] == "interrupted"


def _upgrade(url: str) -> None:
    Catalogue.upgrade(url)


def test_first_use_by_several_processes_at_once_creates_the_schema_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh/catalogue.db"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_upgrade, args=(url,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    Catalogue.connect(url).close()


def _hold_in_child(url: str, pair: tuple[str, str], answer: multiprocessing.Queue[bool]) -> None:
    holds = Catalogue(Catalogue.connect(url).engine).holds()
    answer.put(holds.try_hold(pair))


def test_a_pair_is_held_by_one_process_at_a_time_and_freed_when_it_ends(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/catalogue.db"
    context = multiprocessing.get_context("fork")
    answer: multiprocessing.Queue[bool] = context.Queue()
    holds = catalogue.holds()
    pair = ("1.2.3", TIER.name)
    assert holds.try_hold(pair)
    child = context.Process(target=_hold_in_child, args=(url, pair, answer))
    child.start()
    child.join(60)
    assert answer.get(timeout=5) is False
    holds.release(pair)
    for _ in range(2):  # the child's hold ends with the child
        child = context.Process(target=_hold_in_child, args=(url, pair, answer))
        child.start()
        child.join(60)
        assert answer.get(timeout=5) is True


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_an_unreachable_catalogue_is_retried_then_reported_in_one_line(
    catalogue: Catalogue,
) -> None:
    from dcmtier.catalogue.engine import make_engine

    kept = _Kept()
    logging.getLogger("dcmtier.catalogue.retry").addHandler(kept)

    engine = make_engine(f"postgresql://nobody@127.0.0.1:{_closed_port()}/none")
    down = Catalogue(engine, retry=Retry(budget_s=1.0, first_s=0.1), lease_s=60)
    started = time.monotonic()
    with pytest.raises(CatalogueError) as caught:
        down.pair_status(["1.2.3"], [TIER.name])
    assert 0.7 < time.monotonic() - started < 5
    message = str(caught.value)
    assert "unreachable, reading attempts" in message and "attempts over" in message
    assert "\n" not in message
    logging.getLogger("dcmtier.catalogue.retry").removeHandler(kept)
    assert len([m for m in kept.messages if "retry" in m]) >= 3


def test_a_permanent_error_is_not_retried(catalogue: Catalogue) -> None:
    slow = Catalogue(catalogue.engine, retry=Retry(budget_s=30), lease_s=60)
    started = time.monotonic()
    with pytest.raises(CatalogueError, match="no job 999"):
        slow.fail_job(999, "x")
    assert time.monotonic() - started < 2
