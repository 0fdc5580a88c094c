"""The bodies of the DAG's tasks: read the Airflow context once, then call the package.

Kept in the package (not in ``dags/``) so that the DAG file only wires, and imported lazily by
the tasks so that parsing the DAG never loads numpy, pydicom or pyarrow.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmtier.catalogue import Catalogue, JobContext
from dcmtier.catalogue.hook import CatalogueHook
from dcmtier.codec.candidates import Candidates
from dcmtier.discovery.landing import location_scope
from dcmtier.discovery.plan import Plan, PlanRequest, plan, read_plan
from dcmtier.discovery.units import UNIT_SECONDS
from dcmtier.errors import Interrupted, StorageError
from dcmtier.orchestration.names import COMPRESS_TASKS
from dcmtier.orchestration.units import outcome_words, prepare_unit, run_unit, summarise
from dcmtier.records import SKIPPED
from dcmtier.storage.dicomweb import is_dicomweb
from dcmtier.storage.store import configure, connection_options, read_text
from dcmtier.work.cache import drop_study
from dcmtier.work.interrupt import signals_interrupt
from dcmtier.work.publish import OutputRoot
from dcmtier.work.quarantine import quarantine_unidentified

log = logging.getLogger(__name__)

LAYER_CACHE_ENV = "DCMTIER_LAYER_CACHE"  # store (default) or worker, for a remote output root

INTERVAL_RUN_TYPES = frozenset({"scheduled", "backfill"})  # manual runs take every study
MB = 10**6  # the unit of the ``large_instance_mb`` param


def discover_task(context: Mapping[str, Any]) -> dict[str, Any]:
    """Plan the run: the work units (ids and study counts) and tier names to map over."""
    params = context["params"]
    root = _output(params)
    catalogue = Catalogue.connect(_ready_catalogue(root))
    request = PlanRequest(
        landing=str(params["landing"]),
        output=root.location,
        tiers=list(params["tiers"]),
        run_id=str(context["run_id"]),
        now=datetime.now(UTC),
        interval=_interval(context),
        select_by=str(params["select_by"]),
        reprocess=str(params["reprocess"]),
        settle_seconds=int(params["settle_seconds"]),
        max_studies_per_run=int(params["max_studies_per_run"]),
        max_map_length=_max_map_length(),
        strategy=str(params.get("strategy", "layered")),
        listing_prefix=str(params.get("listing_prefix") or ""),
        unit_seconds=float(params.get("unit_seconds", UNIT_SECONDS)),
        study_uids=tuple(str(uid) for uid in params.get("study_uids") or ()),
        large_instance_bytes=round(float(params.get("large_instance_mb") or 0) * MB),
    )
    try:
        result = plan(request, catalogue)
        catalogue.record_unidentified(location_scope(request.landing), result.unidentified)
    finally:
        catalogue.close()
    for item in result.unidentified:
        if item.status != SKIPPED:  # not DICOM, a DICOMDIR: no fault, nothing to quarantine
            quarantine_unidentified(item, root.layout)  # local files; named by key
    if root.publisher is not None:
        root.publisher.publish_unidentified()
    _log_plan(result)
    return result.for_xcom()


def _log_plan(result: Plan) -> None:
    if result.abandoned:  # attempts whose owner died: their pairs are planned again
        log.warning("%d attempt(s) abandoned by their owner, marked so: %s",
                    len(result.abandoned), result.abandoned)  # fmt: skip
    for run_id, count in sorted(result.selected.released.items()):
        log.warning("run %s is gone (an attempt never finished, none running): its %d "
                    "claim(s) released", run_id, count)  # fmt: skip
    log.info("discovery: %s", result.summary())
    if result.backlog_taken:
        log.info("taken from the backlog of earlier intervals: %s", ", ".join(result.backlog_taken))


def encode_task(unit: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Encode the layered J2K codestreams of each study of a unit once, for its tier tasks."""
    root = _output(context["params"])
    summary = prepare_unit(
        str(unit["id"]), output=root, run_id=str(context["run_id"]),
        catalogue_url=_catalogue_url(root),
    )  # fmt: skip
    log.info("layered encode: %s", summary)
    return summary


def compress_task(unit: Mapping[str, Any], tier: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Run one tier for each study of a work unit, one after another; the unit's counts for
    XCom (its per-study results, under ``pairs``, go to the task's lineage only)."""
    ti = context["ti"]
    job = JobContext(
        dag_id=str(ti.dag_id),
        run_id=str(ti.run_id),
        task_id=str(ti.task_id),
        map_index=int(ti.map_index),
        try_number=int(ti.try_number),
    )
    root = _output(context["params"])
    name = str(unit["id"])
    try:
        with signals_interrupt():
            result = run_unit(
                name,
                tier,
                output=root,
                context=job,
                catalogue_url=_catalogue_url(root),
                jobs=int(os.environ.get("DCMTIER_JOBS", "1")),
                on_gate_failure=str(context["params"].get("on_gate_failure") or "fallback"),
                candidates=_candidates(context["params"]),
            )
    except Interrupted as exc:  # the attempt is marked interrupted; Airflow ends the task
        from airflow.sdk.exceptions import AirflowTaskTerminated

        raise AirflowTaskTerminated(f"unit {name} x {tier}: {exc}") from exc
    log.info(
        "unit %s %s: %s, pixel bytes %d -> %d", name, tier, result["statuses"],
        result["pixel_bytes_in"], result["pixel_bytes_out"],
    )  # fmt: skip
    _describe_asset_events(context, result)
    _label_outcome(context, result)
    return result


def _candidates(params: Mapping[str, Any]) -> Candidates:
    """The choosing tiers' codecs from the ``candidates`` and ``viewers`` params (empty: all)."""
    return Candidates.parse(params.get("candidates") or None, params.get("viewers") or None)


def _describe_asset_events(context: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Say in each outlet asset event which unit and tier changed, with counts, and where the
    list of its study x tier packages is (``changes``): the extra stays small however many
    studies the unit has."""
    events = context.get("outlet_events")
    task = context.get("task")
    if events is None or task is None:
        return
    extra = {k: result[k] for k in ("unit", "tier", "studies", "statuses", "changes")}
    extra["run_id"] = str(context.get("run_id") or "")
    for asset in getattr(task, "outlets", None) or []:
        events[asset].extra.update(extra)


def _label_outcome(context: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Append the outcome to the task's grid label ("u0042 · 37 studies · j2k-r20 · 2
    partial").

    Airflow renders ``map_index_template`` again once the task body returns, from the context
    as the task left it; the words added contain no template syntax.
    """
    outcome = outcome_words(result)
    template = context.get("map_index_template")
    if template and isinstance(context, MutableMapping):
        context["map_index_template"] = f"{template} · {outcome}"
    for line in result["not_clean"]:
        log.warning("not clean: %s", line)


def summary_task(
    results: Sequence[Mapping[str, Any] | None], context: Mapping[str, Any]
) -> dict[str, Any]:
    """Log the run's totals; fail (so the run shows failed) when a compress task failed.

    The summary runs whatever happened upstream, and a run's state follows its last task:
    without this check a run with a failed study x tier would look successful. When every
    compress task succeeded, the run's studies' layered caches are deleted; otherwise they
    are kept for the retry (cleared with downstream, this task runs again and deletes them).
    Gate outcomes (frames that fell back, outputs rejected or kept) are quality results,
    counted in the totals' ``gate_outcomes``: a compress task never fails for them, so neither
    does the run.
    """
    totals = summarise(list(results))
    totals["not_clean"] = not_clean(list(results))
    ti = context["ti"]
    totals.update(_close_run(_output(context["params"]), str(ti.run_id)))
    log.info("run summary: %s", totals)
    for line in totals["not_clean"]:
        log.warning("not clean: %s", line)
    failed = int(
        ti.get_ti_count(
            dag_id=ti.dag_id,
            task_ids=list(COMPRESS_TASKS),
            run_ids=[ti.run_id],
            states=["failed", "upstream_failed"],
        )
    )
    if not failed:
        _drop_layered_caches(_output(context["params"]), str(ti.run_id))
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"{failed} study x tier task(s) failed: fix the cause, then clear them "
            "(with downstream) to retry only those"
        )
    return totals


def _drop_layered_caches(root: OutputRoot, run_id: str) -> None:
    """Every tier task of the run's studies is done: nothing will cut from their caches again
    (on an object store, the cache kept there goes too)."""
    planned = read_plan(root.location, run_id) or {}
    for study_uid in sorted(str(uid) for uid in planned.get("studies") or ()):
        dropped = drop_study(root.layout, study_uid)
        if dropped is not None:
            log.info("layered cache of study %s deleted (%d bytes)", study_uid, dropped.bytes)
        if root.store is not None and root.layer_cache == "store":
            root.drop_layers(study_uid, on_store=True)


def not_clean(results: Sequence[Mapping[str, Any] | None]) -> list[str]:
    """One line per study x tier that did not come out clean: "…UID · tier · partial 7/10"
    (up to ``units.NOT_CLEAN_IN_XCOM`` a unit x tier)."""
    return [line for r in results if r for line in r.get("not_clean") or ()]


def _close_run(root: OutputRoot, run_id: str) -> dict[str, Any]:
    """Release the run's remaining claims; what was planned, and what waits for later runs."""
    planned = read_plan(root.location, run_id) or {"studies": [], "summary": {}}
    catalogue = Catalogue.connect(_catalogue_url(root))
    try:
        released = catalogue.release_claims(run_id)
        waiting, oldest_rows = catalogue.backlog(limit=1)
    finally:
        catalogue.close()
    if oldest_rows:
        oldest = oldest_rows[0]
        log.warning(
            "backlog: %d studies in the landing area have tiers not done (oldest: study "
            "%s, StudyDate %s, waiting since %s); later runs take them",
            waiting, oldest["study_uid"], oldest["study_date"], oldest["waiting_since"],
        )  # fmt: skip
    return {
        "planned_studies": len(planned["studies"]),
        "planned_pairs": planned["summary"].get("work_pairs", 0),
        "backlog_taken": len(planned.get("backlog_taken", [])),
        "claims_released": released,
        "backlog_studies": waiting,
    }


def _output(params: Mapping[str, Any]) -> OutputRoot:
    """The output root of the run: a local folder, or an object store (with the storage
    connection named in the params, if any, and this worker's scratch)."""
    _use_storage_connection(str(params.get("storage_conn_id") or ""))
    if any(is_dicomweb(str(params.get(name) or "")) for name in ("landing", "publish_to")):
        _use_dicomweb_connection(str(params.get("dicomweb_conn_id") or ""))
    location = str(params["output"])
    if "://" not in location:
        location = str(Path(location).expanduser().absolute())
    layer_cache = os.environ.get(LAYER_CACHE_ENV, "store")
    return OutputRoot.of(location, layer_cache=layer_cache)


def _use_storage_connection(conn_id: str) -> None:
    """Open object stores with the credentials and endpoint of an Airflow connection."""
    if not conn_id:
        return
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    protocol, options = connection_options(
        str(conn.conn_type), conn.login, conn.password, dict(conn.extra_dejson or {})
    )
    configure(protocol, options)


def _use_dicomweb_connection(conn_id: str) -> None:
    """Talk to DICOMweb servers (a landing area, ``publish_to``) with the credentials of an
    Airflow HTTP connection: login and password (basic), or ``{"token": ...}`` in its extra
    (bearer). They stay in this process: never in a log, XCom or the catalogue. Looked up
    only by a run that talks to one: ``$DCMTIER_DICOMWEB_CONN_ID``, the param's default, may
    name it in a deployment whose runs do not."""
    if not conn_id:
        return
    from airflow.sdk import BaseHook

    from dcmtier.storage.dicomweb import configure, connection_credentials

    conn = BaseHook.get_connection(conn_id)
    configure(connection_credentials(conn.login, conn.password, dict(conn.extra_dejson or {})))


def publish_task(plan: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Store the run's studies' ``publish_tiers`` into the archive ``publish_to`` (STOW-RS);
    nothing to do when ``publish_to`` is empty. Fails when an instance was not stored, so that
    the run shows it; a rerun of the task sends only what the archive still lacks."""
    from dcmtier.catalogue import Catalogue
    from dcmtier.work.stow import publish_tiers

    params = context["params"]
    to, tiers = str(params.get("publish_to") or ""), list(params.get("publish_tiers") or [])
    root = _output(params)
    planned = read_plan(root.location, str(context["run_id"])) or {}  # XCom holds no studies
    studies = [str(uid) for uid in planned.get("studies") or ()]
    if not to or not tiers or not studies:
        return {"published": False, "reason": "publish_to, publish_tiers or studies empty"}
    catalogue = Catalogue.connect(_catalogue_url(root))
    try:
        stats = publish_tiers(catalogue, tiers, to, studies=studies)
    finally:
        catalogue.close()
    log.info("published: %s", stats.as_dict())
    if stats.failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"{stats.failed} instance(s) not stored by {stats.destination}: "
            + "; ".join(stats.failures[:5])
        )
    return {"published": True, **stats.as_dict()}


def viewer_check_task(plan: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Decode the first ``viewer_check_studies`` of the run's studies (by UID), every tier the
    run made, with the web viewers' codecs (``dcmtier viewer-check``) and record the rows in
    the catalogue; counts only for XCom. Off (nothing done) when the param is 0. Fails without
    a retry when Node.js or the codec packages are missing: the operator asked for the check."""
    params = context["params"]
    wanted = int(params.get("viewer_check_studies") or 0)
    if wanted <= 0:
        return {"checked": False, "reason": "viewer_check_studies is 0 (off)"}
    root = _output(params)
    planned = read_plan(root.location, str(context["run_id"])) or {}  # XCom holds no studies
    studies = sorted(str(uid) for uid in planned.get("studies") or ())[:wanted]
    if not studies:
        return {"checked": False, "reason": "the run has no studies"}
    from dcmtier.viewer.node import ViewerUnavailable
    from dcmtier.viewer.runs import check_studies

    try:
        counts = check_studies(
            root.location, studies, [str(t) for t in plan["tiers"]], _catalogue_url(root)
        )
    except ViewerUnavailable as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"viewer check: {exc}") from exc
    log.info("viewer check of %d studies: %s", len(studies), counts)
    return {"checked": True, "studies": len(studies), **counts}


def _interval(context: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    run = context.get("dag_run")
    run_type = str(getattr(run, "run_type", "") or "").lower().rsplit(".", 1)[-1]
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if run_type not in INTERVAL_RUN_TYPES or start is None or end is None:
        return None
    return _utc(start), _utc(end)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _max_map_length() -> int:
    try:
        from airflow.configuration import conf
    except ImportError:  # a task-SDK-only worker
        from airflow.sdk.configuration import conf  # type: ignore[no-redef]
    return int(conf.getint("core", "max_map_length", fallback=1024))


def _catalogue_url(root: OutputRoot) -> str:
    """The ``dcmtier_catalogue`` connection, else $DCMTIER_CATALOGUE_URL, else SQLite (a local
    output root only)."""
    return CatalogueHook().get_url(root.data_dir)


def _ready_catalogue(root: OutputRoot) -> str:
    """The catalogue URL; the embedded SQLite default is migrated on first use."""
    url = _catalogue_url(root)
    output = root.layout.root
    if url.startswith("sqlite") and url.endswith(str(output / "catalogue.db")):
        output.mkdir(parents=True, exist_ok=True)
        Catalogue.upgrade(url)
    return url


def changed_packages(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """Each study x tier package that the asset events which triggered a downstream run
    announce, logged one per line: a work unit's event names the list of its packages
    (``changes``, a JSON file beside the run's plan), read here."""
    changes: list[dict[str, Any]] = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            extra = dict(event.extra or {})
            changes += _listed_changes(extra) if "changes" in extra else [extra]
    for change in changes:
        log.info(
            "changed: study %s tier %s (%s) package sha256 %s",
            change.get("study_uid"), change.get("tier"), change.get("status"),
            change.get("package_sha256"),
        )  # fmt: skip
    return changes


def _listed_changes(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        return [dict(c) for c in json.loads(read_text(str(extra["changes"])))["changes"]]
    except (OSError, ValueError, KeyError, StorageError) as exc:
        log.warning("unit %s x %s: its list of changes is unreadable (%s)",
                    extra.get("unit"), extra.get("tier"), exc)  # fmt: skip
        return []
