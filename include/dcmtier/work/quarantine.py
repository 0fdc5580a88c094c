"""Copies of the sources that failed, each beside a reason file, under ``quarantine/``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dcmtier.outputs import uid_name
from dcmtier.records import FAILED, Study, TierResult, Unidentified
from dcmtier.work.layout import Layout

UNIDENTIFIED = "_unidentified"  # quarantine folder for files without a readable Study UID


def quarantine_unidentified(item: Unidentified, layout: Layout) -> None:
    folder = layout.quarantine / UNIDENTIFIED
    _write_quarantine(folder, item.path, None, {"reason": item.reason, "tiers": {}})


def quarantine_failed(study: Study, results: list[TierResult], layout: Layout) -> None:
    """Copy a source that failed any tier to ``quarantine/<study>/`` with its reasons."""
    failed = {r.tier: r.reason for r in results if r.status == FAILED}
    if not failed:
        return
    path = Path(results[0].source)
    reason = next(iter(failed.values()))
    details = {"reason": reason, "tiers": failed}
    folder = layout.quarantine / uid_name(study.uid)
    _write_quarantine(folder, path, study.sop_uids.get(path), details)


def _write_quarantine(
    folder: Path, path: Path, sop_uid: str | None, details: dict[str, Any]
) -> None:
    """Copy ``path`` in as ``<SOPInstanceUID>.dcm`` (else its own name) beside a reason file."""
    name = uid_name(sop_uid) if sop_uid else path.name
    copy = folder / (f"{name}.dcm" if sop_uid else path.name)
    folder.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        shutil.copyfile(path, copy)
    record = {"source": str(path), "copy": copy.name, **details}
    (folder / f"{name}.reason.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
