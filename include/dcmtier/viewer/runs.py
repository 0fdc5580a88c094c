"""The viewer check of a pipeline run: some of the run's studies decoded by each viewer, per
tier, recorded in the catalogue, summed up in counts (what the DAG's ``viewer_check`` task
keeps in XCom: no UID, no path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dcmtier.viewer.check import CheckOptions, check


def check_studies(
    root: str, study_uids: Sequence[str], tiers: Sequence[str], catalogue: str
) -> dict[str, int]:
    """Check ``tiers`` of ``study_uids`` under the output root ``root`` (every frame of each),
    record the (tier, viewer) rows in ``catalogue`` (table ``viewer_checks``, each replacing
    that tier x viewer's previous check) and count them; ``ViewerUnavailable`` when Node.js
    or the codec packages are missing."""
    from dcmtier.catalogue.delivery import record_viewer_checks

    options = CheckOptions(
        tiers=tuple(tiers), studies=len(study_uids), catalogue=catalogue,
        study_uids=tuple(study_uids),
    )  # fmt: skip
    rows = list(check(root, options))
    if rows:
        record_viewer_checks(catalogue, rows)
    return counts(rows)


def counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many (tier, viewer) rows, tiers and frames, and how the rows came out: decodable or
    not, and lossless rows a viewer decodes but not bit-exact (none is expected)."""
    return {
        "rows": len(rows),
        "tiers": len({row["tier"] for row in rows}),
        "frames": sum(int(row["frames"]) for row in rows),
        "decodable": sum(1 for row in rows if row["decodable"]),
        "not_decodable": sum(1 for row in rows if not row["decodable"]),
        "not_bit_exact": sum(
            1 for row in rows if row["lossless"] and row["decodable"] and not row["bit_exact"]
        ),
    }
