"""The bodies of the DAG's tasks: read the Airflow context once, then call the package.

Kept in the package (not in ``dags/``) so that the DAG file only wires, and imported lazily by
the tasks so that parsing the DAG never loads numpy, pydicom or pyarrow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmtier.catalogue import Catalogue, JobContext
from dcmtier.catalogue.hook import CatalogueHook
from dcmtier.discovery.landing import location_scope
from dcmtier.discovery.plan import Plan, PlanRequest, plan, read_plan
from dcmtier.errors import Interrupted
from dcmtier.orchestration.items import prepare_layers, run_pair, summarise
from dcmtier.orchestration.lineage import asset_extra
from dcmtier.records import SKIPPED, STUDY_OK, outcome_text
from dcmtier.storage.store import configure, connection_options
from dcmtier.work.cache import drop_study
from dcmtier.work.interrupt import signals_interrupt
from dcmtier.work.publish import OutputRoot
from dcmtier.work.quarantine import quarantine_unidentified

log = logging.getLogger(__name__)

LAYER_CACHE_ENV = "DCMTIER_LAYER_CACHE"  # store (default) or worker, for a remote output root

INTERVAL_RUN_TYPES = frozenset({"scheduled", "backfill"})  # manual runs take every study


def discover_task(context: Mapping[str, Any]) -> dict[str, Any]:
    """Plan the run: the study UIDs and tier names to map over (keys only, never pixels)."""
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


def encode_task(study_uid: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Encode one study's layered J2K codestreams once, for its tier tasks to cut."""
    root = _output(context["params"])
    summary = prepare_layers(
        study_uid, output=root, run_id=str(context["run_id"]),
        catalogue_url=_catalogue_url(root),
    )  # fmt: skip
    log.info("layered encode: %s", summary)
    return summary


def compress_task(study_uid: str, tier: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Run the unit of work for one study x tier and return its summary for XCom; skip a pair
    of the studies x tiers cross product that the run's plan does not hold."""
    ti = context["ti"]
    job = JobContext(
        dag_id=str(ti.dag_id),
        run_id=str(ti.run_id),
        task_id=str(ti.task_id),
        map_index=int(ti.map_index),
        try_number=int(ti.try_number),
    )
    root = _output(context["params"])
    try:
        with signals_interrupt():
            result = run_pair(
                study_uid,
                tier,
                output=root,
                context=job,
                catalogue_url=_catalogue_url(root),
                jobs=int(os.environ.get("DCMTIER_JOBS", "1")),
                on_gate_failure=str(context["params"].get("on_gate_failure") or "fallback"),
            )
    except Interrupted as exc:  # the attempt is marked interrupted; Airflow ends the task
        from airflow.sdk.exceptions import AirflowTaskTerminated

        raise AirflowTaskTerminated(f"study {study_uid} x {tier}: {exc}") from exc
    if result is None:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(
            f"study {study_uid} x {tier} is not in this run's plan (done already, or claimed "
            "by another run)"
        )
    log.info(
        "%s %s: %s %s, pixel bytes %d -> %d",
        result["study_uid"], result["tier"], result["status"], result["counts"],
        result["pixel_bytes_in"], result["pixel_bytes_out"],
    )  # fmt: skip
    _describe_asset_events(context, result)
    _label_outcome(context, result)
    return result


def _describe_asset_events(context: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Say in each outlet asset event which study, tier and package changed."""
    events = context.get("outlet_events")
    task = context.get("task")
    if events is None or task is None:
        return
    extra = asset_extra(result)
    for asset in getattr(task, "outlets", None) or []:
        events[asset].extra.update(extra)


def _label_outcome(context: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Append the outcome to the task's grid label ("…UID · j2k-r20 · partial 7/10").

    Airflow renders ``map_index_template`` again once the task body returns, from the context
    as the task left it; the words added contain no template syntax.
    """
    outcome = outcome_text(result["status"], result["counts"], int(result["instances"]))
    template = context.get("map_index_template")
    if template and isinstance(context, MutableMapping):
        context["map_index_template"] = f"{template} · {outcome}"
    if result["status"] != STUDY_OK:
        log.warning("%s %s: %s", result["study_uid"], result["tier"], outcome)


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
            task_ids=["compress"],
            run_ids=[ti.run_id],
            states=["failed", "upstream_failed"],
        )
    )
    if not failed:
        _drop_layered_caches(results, _output(context["params"]))
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"{failed} study x tier task(s) failed: fix the cause, then clear them "
            "(with downstream) to retry only those"
        )
    return totals


def _drop_layered_caches(results: Sequence[Mapping[str, Any] | None], root: OutputRoot) -> None:
    """Every tier task of these studies is done: nothing will cut from their caches again
    (on an object store, the cache kept there goes too)."""
    for study_uid in sorted({str(r["study_uid"]) for r in results if r}):
        dropped = drop_study(root.layout, study_uid)
        if dropped is not None:
            log.info("layered cache of study %s deleted (%d bytes)", study_uid, dropped.bytes)
        if root.store is not None and root.layer_cache == "store":
            root.drop_layers(study_uid, on_store=True)


def not_clean(results: Sequence[Mapping[str, Any] | None]) -> list[str]:
    """One line per study x tier that did not come out clean: "…UID · tier · partial 7/10"."""
    return [
        f"…{r['study_uid'][-12:]} · {r['tier']} · "
        + outcome_text(r["status"], r["counts"], int(r["instances"]))
        for r in results
        if r and r["status"] != STUDY_OK
    ]


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
    (bearer). They stay in this process: never in a log, XCom or the catalogue."""
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
    if not to or not tiers or not plan.get("studies"):
        return {"published": False, "reason": "publish_to, publish_tiers or studies empty"}
    root = _output(params)
    catalogue = Catalogue.connect(_catalogue_url(root))
    try:
        stats = publish_tiers(catalogue, tiers, to, studies=list(plan["studies"]))
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
    """The ``extra`` of each asset event that triggered a downstream run, logged one per line."""
    changes = [
        dict(event.extra or {})
        for events in (triggering_asset_events or {}).values()
        for event in events
    ]
    for change in changes:
        log.info(
            "changed: study %s tier %s (%s) package sha256 %s",
            change.get("study_uid"), change.get("tier"), change.get("status"),
            change.get("package_sha256"),
        )  # fmt: skip
    return changes
