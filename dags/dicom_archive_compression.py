"""
### dicom_archive_compression

Turns the DICOM studies that land in **landing** into rate-tiered JPEG 2000 (HTJ2K, JPEG-LS)
copies under **output** (a folder or an object store URL): `derived/`, `quality/`
(Parquet), `packages/` (ZIP per study × tier), `quarantine/`, with lineage and savings in the
`dcmtier_catalogue` connection (else
`$DCMTIER_CATALOGUE_URL`, else SQLite `<output>/catalogue.db`).

`discover` updates the catalogue's landing index (headers read only for new or changed files),
then chooses in SQL the settled studies of the run's data interval by arrival time or StudyDate,
then the backlog of earlier intervals (a manual run takes every settled study), skipping study ×
tier pairs already done unless `reprocess` says otherwise (an attempt `abandoned` by a dead
owner or `interrupted` is never done), up to `max_studies_per_run` studies (only `study_uids`
when given); it claims those pairs so that no concurrent run takes them, and packs the studies
into **work units** of about `unit_seconds` of estimated work each (`0`: one study a unit; a
study is never split). `encode` runs once per unit, `compress` once per unit × tier (named
"u0042 · 37 studies · j2k-r20", the outcome appended after the run: "· 2 partial"); inside a
unit the studies run one after another, each its own attempt in the catalogue. With
`large_instance_mb` set, the studies holding a larger landing file are packed into units of
their own that `encode_large` and `compress_large` run, the same work in the pool
`$DCMTIER_LARGE_POOL` (a task's pool is fixed when the DAG is parsed; see
docs/operators/memory.md); without it those two tasks expand to nothing and are skipped.
A failed instance is quarantined and the study × tier reports `partial`; an infrastructure
error (output not writable, catalogue unreachable) fails the unit's task once its other
studies are done, and it retries with exponential backoff: a retry, or clearing the task,
redoes only the unit's studies not done. A frame that breaks its tier's quality gate is a
quality outcome handled by `on_gate_failure` (fallback, reject or keep): it is never retried
and never fails the run.
`candidates` and `viewers` keep the tiers that choose a codec per instance to the codecs the
deployed viewers decode (`viewers: ["cornerstone-5.6.8"]`: no JPEG XL). Retry
one study × tier with a manual run: conf `{"study_uids": ["<uid>"], "tiers": ["j2k-r20"],
"reprocess": "all"}` (or `"failed"`); up to `DCMTIER_MAX_ACTIVE_RUNS` (3) non-backfill runs run
at once (claims keep them apart), so it does not wait behind a scheduled run, and backfill runs
are counted apart by Airflow. `summary` logs the run's totals and the backlog, and releases the
run's claims. `publish`, when `publish_to` names a DICOMweb archive, stores the run's studies'
`publish_tiers` there with STOW-RS (what the archive holds already is not sent again; recorded
in the catalogue's `publications`). `viewer_check`, when `viewer_check_studies` is above 0,
decodes that many of the run's studies, every tier, with the web viewers' codecs (`dcmtier
viewer-check`) and records the rows in the catalogue (`viewer_checks`, `delivery_by_tier`);
its XCom holds counts only. **landing** may itself be a DICOMweb archive
(`dicomweb+https://host/dicom-web`): studies are searched with QIDO-RS and retrieved with
WADO-RS; credentials from the `dicomweb_conn_id` HTTP connection. Each `compress` instance emits
`dcmtier_packages` and `dcmtier_quality` asset events whose `extra` names the unit, tier, counts
and a JSON list of each study × tier package (`dcmtier_packages_changed` is an example consumer
that reads it), and, where an OpenLineage transport is configured, `discover` and `compress`
report their datasets (landing study in; derived series, Parquet partition and ZIP out).

Backfill an archive by study date:
`airflow backfill create --dag-id dicom_archive_compression --from-date 2024-01-01
--to-date 2024-01-31 --dag-run-conf '{"select_by": "study_date"}'`
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task

from dcmtier.orchestration.assets import PACKAGES_ASSET, QUALITY_ASSET
from dcmtier.orchestration.names import COMPRESS_LARGE, ENCODE_LARGE
from dcmtier.orchestration.operators import lineage_task
from dcmtier.tiers import CANDIDATE_FAMILIES, DEFAULT_TIERS, TIERS, VIEWER_FAMILIES

QUALITY_DATASET = Asset(name=QUALITY_ASSET[0], uri=QUALITY_ASSET[1])
PACKAGES = Asset(name=PACKAGES_ASSET[0], uri=PACKAGES_ASSET[1])
POOL = os.environ.get("DCMTIER_POOL", "dcmtier")
# The large units' tasks: a mapped task's pool and pool slots are fixed when the DAG is parsed
# (per task, not per mapped instance), so the environment names them, the run's params the
# threshold. Each large task takes LARGE_SLOTS of the pool's slots.
LARGE_POOL = os.environ.get("DCMTIER_LARGE_POOL", POOL)
LARGE_SLOTS = int(os.environ.get("DCMTIER_LARGE_TASK_SLOTS", "1"))
UNIT = "{% set u = task.op_kwargs['unit'] %}{{ u['id'] }} · {{ u['studies'] }} " \
       "{{ 'study' if u['studies'] == 1 else 'studies' }}"  # fmt: skip
LABEL = UNIT + " · {{ task.op_kwargs['tier'] }}"
RETRIES = int(os.environ.get("DCMTIER_TASK_RETRIES", "3"))
# Claims keep concurrent runs apart, so a manual run (an operator's retry) need not queue behind
# a scheduled one; Airflow counts backfill runs apart (per backfill, its own max_active_runs).
MAX_ACTIVE_RUNS = int(os.environ.get("DCMTIER_MAX_ACTIVE_RUNS", "3"))


def _listed(name: str) -> list[str]:
    """A comma-separated environment variable as a param's default list (unset: empty)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


PARAMS = {
    "landing": Param(
        os.environ.get("DCMTIER_LANDING", "./landing"),
        type="string",
        description="Where new studies land: a local path, an fsspec URL (s3://, gs://, ...) or "
        "a DICOMweb archive (dicomweb+https://host/dicom-web).",
    ),
    "output": Param(
        os.environ.get("DCMTIER_DATA_DIR", "./data"),
        type="string",
        description="Where derived/, quality/, packages/ and quarantine/ go: a local folder, "
        "or an object store URL (s3://bucket/prefix, gs://, az://); each study x tier is "
        "published whole.",
    ),
    "storage_conn_id": Param(
        "",
        type="string",
        description="Airflow connection (aws, google_cloud_platform or wasb) with the object "
        "store's credentials and endpoint; empty: the store's standard environment variables.",
    ),
    "dicomweb_conn_id": Param(
        os.environ.get("DCMTIER_DICOMWEB_CONN_ID", ""),
        type="string",
        description="Airflow HTTP connection with a DICOMweb server's credentials (login and "
        'password: basic; extra {"token": ...}: bearer), looked up only when landing or '
        "publish_to is a dicomweb+http(s):// URL; empty: $DCMTIER_DICOMWEB_USER/_PASSWORD or "
        "$DCMTIER_DICOMWEB_TOKEN.",
    ),
    "tiers": Param(
        list(DEFAULT_TIERS),
        type="array",
        items={"type": "string", "enum": list(TIERS)},
        description="Tiers to make for each study (default: lossless plus the 12 J2K rates).",
    ),
    "select_by": Param(
        "arrival",
        enum=["arrival", "study_date"],
        description="arrival: files that arrived in the run's interval; study_date: StudyDate "
        "in the interval (archive backfills). Manual runs take every settled study not yet done.",
    ),
    "reprocess": Param(
        "none",
        enum=["none", "failed", "all"],
        description="none: only study × tier pairs never done (an abandoned or interrupted "
        "attempt is not done; a rejected one, a gate outcome, is); failed: also failed or "
        "partial ones; all: everything selected but pairs still running.",
    ),
    "strategy": Param(
        "layered",
        enum=["layered", "per_tier"],
        description="layered: one JPEG 2000 encode per study with a quality layer per rate, "
        "each tier cut from it; per_tier: one encode per tier.",
    ),
    "on_gate_failure": Param(
        "fallback",
        enum=["fallback", "reject", "keep"],
        description="A frame that breaks its tier's quality gate is a quality outcome, never a "
        "failure. fallback: recode it at the highest ratio meeting the gate (the output keeps "
        "its tier); reject: do not keep the instance's output; keep: keep it, flagged.",
    ),
    "candidates": Param(
        _listed("DCMTIER_CANDIDATES"),
        type="array",
        items={"type": "string", "enum": list(CANDIDATE_FAMILIES)},
        description="The codecs maxerr20, maxerr150 and best-lossless may choose from, e.g. "
        '["htj2k", "jls", "j2k"] (no JPEG XL); empty: all of theirs. Ties go to the faster '
        "decoder.",
    ),
    "viewers": Param(
        _listed("DCMTIER_VIEWERS"),
        type="array",
        items={"type": "string", "enum": list(VIEWER_FAMILIES)},
        description="Keep the codec-choosing tiers to what these web viewers decode "
        "(cornerstone-5.6.8, OHIF's pin, has no JPEG XL decoder); empty: no viewer limit.",
    ),
    "settle_seconds": Param(
        300,
        type="integer",
        minimum=0,
        description="A study is settled when no file arrived for this long.",
    ),
    "max_studies_per_run": Param(
        1000,
        type="integer",
        minimum=1,
        description="More studies than this (or than [core] max_map_length) wait for a later "
        "run, which takes them from its backlog.",
    ),
    "unit_seconds": Param(
        120,
        type="number",
        minimum=0,
        description="Pack the run's studies into work units of about this many seconds of "
        "estimated work per tier task (a study is never split); 0: one study a unit.",
    ),
    "large_instance_mb": Param(
        0,
        type="number",
        minimum=0,
        description="Studies holding a landing file larger than this many MB (10^6 bytes) are "
        "packed into work units of their own, run by encode_large and compress_large in the "
        "pool $DCMTIER_LARGE_POOL names (default: the dcmtier pool), each task taking "
        "$DCMTIER_LARGE_TASK_SLOTS of its slots: a worker slot there needs about 250 MB plus "
        "2x the largest instance's pixel data (operators/memory.md); 0: no study is large.",
    ),
    "study_uids": Param(
        [],
        type="array",
        items={"type": "string"},
        description="Only these StudyInstanceUIDs (an operator's retry of one study); empty: "
        "every study the run selects.",
    ),
    "listing_prefix": Param(
        "",
        type="string",
        description="For a landing area laid out by date: a strftime template of the folders "
        "to list for the run's interval (e.g. %Y/%m/%d); empty lists everything.",
    ),
    "publish_to": Param(
        "",
        type="string",
        description="A DICOMweb archive (dicomweb+https://host/dicom-web) to store the run's "
        "publish_tiers into with STOW-RS once its studies are done; empty: publish nothing.",
    ),
    "viewer_check_studies": Param(
        0,
        type="integer",
        minimum=0,
        description="After compress, decode every frame of this many of the run's studies (the "
        "first by UID), each tier the run made, with the web viewers' own codecs (dcmtier "
        "viewer-check; needs Node.js 20+ and make install) and record the rows in the "
        "catalogue (viewer_checks, delivery_by_tier); 0: off.",
    ),
    "publish_tiers": Param(
        [],
        type="array",
        items={"type": "string", "enum": list(TIERS)},
        description="Tiers stored into publish_to (e.g. a preview tier where viewers look).",
    ),
}


@dag(
    dag_id="dicom_archive_compression",
    # a data interval per day: what `select_by` filters on, and what backfills walk through
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2020, 1, 1),
    catchup=False,
    max_active_runs=MAX_ACTIVE_RUNS,
    params=PARAMS,
    tags=["dicom", "compression", "dcmtier"],
    doc_md=__doc__,
    default_args={
        "retries": RETRIES,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
    },
)
def dicom_archive_compression() -> None:
    @lineage_task
    def discover() -> dict[str, Any]:
        from dcmtier.orchestration.tasks import discover_task

        return discover_task(get_current_context())

    @task
    def units(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return [u for u in plan["units"] if not u.get("large")]  # ids and study counts

    # a list of its own: Airflow maps over a task's return value only
    @task
    def large_units(plan: dict[str, Any]) -> list[dict[str, Any]]:
        return [u for u in plan["units"] if u.get("large")]

    @task
    def tiers(plan: dict[str, Any]) -> list[str]:
        return list(plan["tiers"])

    # multiple_outputs=False: a dict result is one XCom, not one per key (`lineage_task`)
    @task(pool=POOL, map_index_template=UNIT, multiple_outputs=False)
    def encode(unit: dict[str, Any]) -> dict[str, Any]:
        from dcmtier.orchestration.tasks import encode_task

        return encode_task(unit, get_current_context())

    @lineage_task(
        pool=POOL,
        map_index_template=LABEL,
        outlets=[QUALITY_DATASET, PACKAGES],
        trigger_rule="all_done",  # without a layered encode, a tier task encodes by itself
    )
    def compress(unit: dict[str, Any], tier: str) -> dict[str, Any]:
        from dcmtier.orchestration.tasks import compress_task

        return compress_task(unit, tier, get_current_context())

    @task(trigger_rule="all_done", multiple_outputs=False)
    def publish(plan: dict[str, Any]) -> dict[str, Any]:
        from dcmtier.orchestration.tasks import publish_task

        return publish_task(plan, get_current_context())

    @task(trigger_rule="all_done", multiple_outputs=False)
    def viewer_check(plan: dict[str, Any]) -> dict[str, Any]:
        from dcmtier.orchestration.tasks import viewer_check_task

        return viewer_check_task(plan, get_current_context())

    @task(trigger_rule="all_done", multiple_outputs=False)
    def summary(results: list[dict[str, Any] | None]) -> dict[str, Any]:
        from dcmtier.orchestration.tasks import summary_task

        return summary_task(results, get_current_context())

    work = discover()
    keys, large, names = units(work), large_units(work), tiers(work)
    layers = encode.expand(unit=keys)
    # units x tiers: each list stays under [core] max_map_length, their product need not
    results = compress.expand(unit=keys, tier=names)
    layers >> results
    big = {"pool": LARGE_POOL, "pool_slots": LARGE_SLOTS}  # the same tasks, in the large pool
    large_layers = encode.override(task_id=ENCODE_LARGE, **big).expand(unit=large)
    large_results = compress.override(task_id=COMPRESS_LARGE, **big).expand(unit=large, tier=names)
    large_layers >> large_results
    [results, large_results] >> publish(work)
    [results, large_results] >> viewer_check(work)
    summary(results.concat(large_results))


dicom_archive_compression()
