"""OpenLineage datasets and facets, and asset-event extras, for the DAG's tasks.

``task_lineage`` turns what a task returned into the inputs and outputs of its OpenLineage
COMPLETE event (``operators.LineagePythonOperator`` hands them to the provider); ``asset_extra``
(`dcmtier.orchestration.events`, free of OpenLineage's imports) what a work unit lists for the
``changes`` its ``dcmtier_packages`` and ``dcmtier_quality`` asset events point at. Datasets are
named by UIDs and tier only: a landing file's name can carry a patient's name, so no event ever
holds one.

Naming (https://openlineage.io/docs/spec/naming): the namespace is the landing area's or the
output's URI (``file:///data/landing``, ``s3://bucket/prefix``); names are relative to it:
``studies/<StudyInstanceUID>`` (input), ``derived/<tier>/<study>/<series>``,
``quality/tier=<tier>/study=<study>``, ``packages/<study>/<tier>.zip`` (outputs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    DatasetFacet,
    data_quality_assertions_dataset,
    output_statistics_output_dataset,
    schema_dataset,
)

from dcmtier.measure.gates import Gate, gate_for
from dcmtier.orchestration.events import namespace
from dcmtier.orchestration.names import COMPRESS_TASKS
from dcmtier.tiers import get_tier

FACET_KEY = "dcmtier_compression"
FACET_SCHEMA = "dcmtier://facets/1-0-0/DcmtierCompressionFacet.json"  # shipped beside this module


@attr.define
class DcmtierCompressionFacet(DatasetFacet):
    """What one study x tier cost and kept: the dcmtier facet on each output dataset."""

    study_uid: str
    tier: str
    codec: str
    status: str
    target_ratio: float | None
    achieved_ratio: float | None  # pixel bytes in / out of the instances kept
    bytes_in: int  # pixel bytes
    bytes_out: int
    file_bytes_in: int
    file_bytes_out: int
    instances: int
    psnr_min_db: float | None  # None when every frame is identical (PSNR infinite) or none kept
    ssim_min: float | None

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA


def task_lineage(
    task_id: str, result: Any, params: Mapping[str, Any]
) -> tuple[list[InputDataset], list[OutputDataset]] | None:
    """Inputs and outputs for a task's COMPLETE event; None for tasks without lineage."""
    landing, output = str(params.get("landing", "")), str(params.get("output", ""))
    if task_id == "discover" and landing:
        return [InputDataset(namespace=namespace(landing), name="/")], []
    if task_id in COMPRESS_TASKS and isinstance(result, Mapping) and landing and output:
        inputs: list[InputDataset] = []
        outputs: list[OutputDataset] = []
        for pair in result.get("pairs", [result]):  # a work unit's study x tier results
            found = compress_lineage(pair, landing=landing, output=output)
            inputs += found[0]
            outputs += found[1]
        return inputs, outputs
    return None


def compress_lineage(
    result: Mapping[str, Any], *, landing: str, output: str
) -> tuple[list[InputDataset], list[OutputDataset]]:
    """The study's landing dataset in; derived series, Parquet partition and package out."""
    study, tier = str(result["study_uid"]), str(result["tier"])
    out = namespace(output)
    table = _partition(result.get("quality_partition"))
    facet: dict[str, DatasetFacet] = {FACET_KEY: _compression_facet(result, table)}
    inputs = [InputDataset(namespace=namespace(landing), name=f"studies/{study}")]
    outputs = [
        OutputDataset(namespace=out, name=f"derived/{tier}/{study}/{series}", facets=facet)
        for series in _column_values(table, "series_uid")
    ]
    if result.get("quality_partition"):
        quality = {
            "schema": _schema_facet(table),
            "dataQualityAssertions": _assertions(tier, table),
        }
        rows = 0 if table is None else int(table.num_rows)
        outputs.append(
            OutputDataset(
                namespace=out,
                name=f"quality/tier={tier}/study={study}",
                facets={**facet, **quality},
                outputFacets={"outputStatistics": _statistics(rowCount=rows)},
            )
        )
    if result.get("package"):
        size = int(result.get("package_bytes") or 0)
        outputs.append(
            OutputDataset(
                namespace=out,
                name=f"packages/{study}/{tier}.zip",
                facets=facet,
                outputFacets={"outputStatistics": _statistics(size=size, fileCount=1)},
            )
        )
    return inputs, outputs


def _statistics(
    *, rowCount: int | None = None, size: int | None = None, fileCount: int | None = None
) -> Any:
    return output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=rowCount, size=size, fileCount=fileCount
    )


def _partition(path: object) -> Any:
    """The study x tier's Parquet partition (a file or its folder) as a table, None if absent."""
    import pyarrow.parquet as pq

    if path and "://" in str(path):  # published to an object store
        import fsspec

        with fsspec.open(str(path), "rb") as handle:
            return pq.read_table(handle)
    if not path or not Path(str(path)).exists():
        return None
    return pq.read_table(str(path))


def _column_values(table: Any, column: str) -> list[str]:
    if table is None or column not in table.column_names:
        return []
    return sorted({str(v) for v in table.column(column).to_pylist() if v})


def _finite(values: list[Any], pick: Any) -> float | None:
    kept = [float(v) for v in values if v is not None and not math.isinf(float(v))]
    return round(pick(kept), 6) if kept else None


def _compression_facet(result: Mapping[str, Any], table: Any) -> DcmtierCompressionFacet:
    tier = get_tier(str(result["tier"]))
    pixel_in, pixel_out = int(result["pixel_bytes_in"]), int(result["pixel_bytes_out"])
    psnr = [] if table is None else table.column("psnr_db").to_pylist()
    ssim = [] if table is None else table.column("ssim").to_pylist()
    return DcmtierCompressionFacet(
        study_uid=str(result["study_uid"]),
        tier=tier.name,
        codec=tier.codec.label,
        status=str(result["status"]),
        target_ratio=tier.target_ratio,
        achieved_ratio=round(pixel_in / pixel_out, 4) if pixel_out else None,
        bytes_in=pixel_in,
        bytes_out=pixel_out,
        file_bytes_in=int(result["file_bytes_in"]),
        file_bytes_out=int(result["file_bytes_out"]),
        instances=int(result["instances"]),
        psnr_min_db=_finite(psnr, min),
        ssim_min=_finite(ssim, min),
    )


def _schema_facet(table: Any) -> schema_dataset.SchemaDatasetFacet:
    fields = [] if table is None else list(table.schema)
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=f.name, type=str(f.type)) for f in fields
        ]
    )


def _assertions(tier_name: str, table: Any) -> DatasetFacet:
    """The tier's quality gate as assertions, each with its limit and the worst value measured.

    Lossless tiers assert a zero difference (verified bit for bit when written); a
    quality-targeted tier its bound (``gate_for``). Frames of outputs rejected by the gate
    (``gate_action`` reject) are not in the output, so not in the assertions; frames kept and
    flagged (keep) are, and fail them. PSNR and SSIM are the columns the gate judges, against
    each frame's data range (``psnr_db_range``, ``ssim_range``); a partition written before
    they existed asserts its nominal ``psnr_db`` and ``ssim``.
    """
    tier = get_tier(tier_name)
    gate = Gate(max_abs_diff=0.0) if tier.lossless else gate_for(tier)
    rows: list[dict[str, Any]] = []
    psnr, ssim = "psnr_db_range", "ssim_range"
    if table is not None:
        if psnr not in table.column_names:
            psnr, ssim = "psnr_db", "ssim"
        columns = ["unit", "max_abs_diff", psnr, ssim]
        kept = "gate_action" in table.column_names
        rows = [
            r
            for r in table.select([*columns, *(["gate_action"] if kept else [])]).to_pylist()
            if r.get("gate_action") != "reject"
        ]
    checks = []
    if gate is not None and gate.max_abs_diff is not None:
        limit, unit = gate.max_abs_diff, gate.diff_unit or "modality unit"
        diffs = [r["max_abs_diff"] for r in rows if gate.diff_unit in (None, r["unit"])]
        worst = max(diffs, default=None)
        ok = worst is None or worst <= limit
        checks.append(
            _assertion(f"max_abs_diff <= {limit:g} {unit}", "max_abs_diff", worst, limit, ok)
        )
    minima = {} if gate is None else {psnr: gate.min_psnr_db, ssim: gate.min_ssim}
    for column, least in minima.items():
        if least is None:
            continue
        lowest = _finite([r[column] for r in rows], min)
        ok = lowest is None or lowest >= least
        checks.append(_assertion(f"{column} >= {least:g}", column, lowest, least, ok))
    facet = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=checks)
    return facet  # type: ignore[return-value]  # an input-dataset facet, here on an output


def _assertion(
    text: str, column: str, actual: float | None, expected: float, ok: bool
) -> data_quality_assertions_dataset.Assertion:
    return data_quality_assertions_dataset.Assertion(
        assertion=text,
        success=ok,
        column=column,
        severity="error",
        name=f"dcmtier_gate_{column}",
        expected=f"{expected:g}",
        actual=None if actual is None else f"{actual:g}",
    )
