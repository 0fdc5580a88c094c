"""A study x tier's output is the whole study as known, never a subset.

The instances a study x tier is known to have are the members of its existing package. An
attempt that processes only some of the study's files (one file sent again, a study that
grew) makes those and carries the other members over: each member's derived file is checked
against the SHA-256 in the manifest and, when missing or changed, restored from the old ZIP
(whose bytes are checked too); its quality rows are kept from the old Parquet partition, and
its catalogue rows stay as the earlier attempt wrote them. A known member that can be
neither checked nor restored is reported ``failed`` with a reason, never dropped silently.

After the package is written, ``remove_unpackaged`` removes every derived file of the study x
tier that is not in it: nothing derived stays on disk outside a package and the records.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcmtier import owner
from dcmtier.measure.store import read_partition
from dcmtier.outputs import uid_name
from dcmtier.packaging.package import PackageError, PackageMember, read_manifest
from dcmtier.records import FAILED
from dcmtier.work.layout import Layout
from dcmtier.work.writing import output_path

log = logging.getLogger(__name__)


@dataclass
class Carried:
    """Known members kept from the existing package, with their quality rows."""

    members: list[PackageMember] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sop_uids(self) -> list[str]:
        return sorted(m.source_sop_uid for m in self.members)


def carry_over(layout: Layout, study_uid: str, tier: str, made: Collection[str]) -> Carried:
    """Members of the existing package whose source this attempt did not process."""
    carried = Carried()
    package = layout.package(study_uid, tier)
    if not package.exists():
        return carried
    try:
        manifest = read_manifest(package)
    except PackageError as exc:
        carried.failures.append(_failure(None, f"the earlier package cannot be read: {exc}"))
        return carried
    known = [m for m in manifest["members"] if str(m.get("source_sop_uid")) not in made]
    if not known:
        return carried
    rows = _rows_by_source(layout, tier, study_uid)
    for entry in known:
        source = str(entry["source_sop_uid"])
        target = output_path(
            layout.derived, tier, study_uid, str(entry["series_uid"]), str(entry["sop_uid"])
        )
        problem = _checked_or_restored(target, package, entry)
        if problem:
            carried.failures.append(_failure(source, f"{source}: not carried over: {problem}"))
            continue
        carried.members.append(
            PackageMember(target, str(entry["series_uid"]), str(entry["sop_uid"]), source)
        )
        carried.rows += rows.get(source, [])
    log.info("study %s [%s]: %d known instances carried over", study_uid, tier, len(known))
    return carried


def remove_unpackaged(layout: Layout, study_uid: str, tier: str, keep: Collection[Path]) -> int:
    """Remove the study x tier's derived files not in ``keep``; return how many."""
    folder = layout.derived / tier / uid_name(study_uid)
    if not folder.is_dir():
        return 0
    kept = {p.absolute() for p in keep}
    removed = 0
    for path in sorted(folder.rglob("*.dcm")):
        if path.name.startswith(".") or path.absolute() in kept:
            continue  # temporary files belong to their writer
        path.unlink(missing_ok=True)
        removed += 1
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    if removed:
        log.info("study %s [%s]: %d derived files in no package removed", study_uid, tier, removed)
    return removed


def _checked_or_restored(target: Path, package: Path, entry: dict[str, Any]) -> str | None:
    """None when ``target`` holds the member's bytes (restored from the ZIP if need be)."""
    want = str(entry.get("sha256"))
    if target.is_file() and _sha256(target) == want:
        return None
    try:
        with zipfile.ZipFile(package) as zf:
            data = zf.read(str(entry["name"]))
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        return f"derived file changed or missing, and the package member unreadable ({exc})"
    if hashlib.sha256(data).hexdigest() != want:
        return "derived file and package member both differ from the manifest's SHA-256"
    with owner.replacing(target) as temp:  # named for this process; follows the umask
        temp.file.write(data)
    log.warning(
        "restored %s from its package (the derived file was missing or changed)", entry["name"]
    )
    return None


def _rows_by_source(layout: Layout, tier: str, study_uid: str) -> dict[str, list[dict[str, Any]]]:
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in read_partition(layout.quality, tier=tier, study_uid=uid_name(study_uid)):
        by_source[str(row["source_sop_uid"])].append(row)
    return by_source


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _failure(sop_uid: str | None, reason: str) -> dict[str, Any]:
    return {"source": None, "sop_uid": sop_uid, "status": FAILED, "reason": reason, "rule": None}
