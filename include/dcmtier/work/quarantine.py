"""Copies of the sources that failed, each beside a reason file, under ``quarantine/``.

A copy is named by its file key (``<SOPInstanceUID>.dcm``, else ``<content hash>.dcm``), never
by its original name, which may carry a patient name; the reason file names it the same way
and holds no path (``dcmtier locate KEY`` gives an operator the landing location). A copy
never replaces a different file: a second file under the same key (a SOP Instance UID sent
twice with other contents) is kept as ``<key>.<content hash>.dcm``.
"""

from __future__ import annotations

import filecmp
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from dcmtier.outputs import uid_name
from dcmtier.records import FAILED, Study, TierResult, Unidentified, file_key
from dcmtier.work.layout import Layout

UNIDENTIFIED = "_unidentified"  # quarantine folder for files without a readable Study UID


def quarantine_unidentified(item: Unidentified, layout: Layout) -> Path | None:
    """Copy a local file that belongs to no study to ``quarantine/_unidentified/``."""
    if item.path is None:
        return None
    details = {"reason": item.reason, "tiers": {}}
    return _write_quarantine(layout.quarantine / UNIDENTIFIED, item.path, item.key, details)


def quarantine_failed(study: Study, results: list[TierResult], layout: Layout) -> Path | None:
    """Copy a source that failed any tier to ``quarantine/<study>/`` with its reasons."""
    failed = {r.tier: r.reason for r in results if r.status == FAILED}
    if not failed or results[0].path is None:
        return None
    path = Path(results[0].path)
    reason = next(iter(failed.values()))
    details = {"reason": reason, "tiers": failed, "sop_uid": study.sop_uids.get(path) or None}
    folder = layout.quarantine / uid_name(study.uid)
    return _write_quarantine(folder, path, results[0].source, details)


def _write_quarantine(folder: Path, path: Path, key: str, details: dict[str, Any]) -> Path:
    """Copy ``path`` in as ``<key>.dcm`` beside ``<key>.reason.json``; return the copy.

    The copy is made under a temporary name and linked into place, which fails rather than
    replace an existing file: the same contents already there are that copy again (a rerun),
    other contents take the name ``<key>.<content hash>.dcm``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as out:
            if path.is_file():
                with path.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        copy = _place(tmp, folder, key)
    finally:
        tmp.unlink(missing_ok=True)
    stem = copy.name.removesuffix(".dcm")
    record = {"file_key": key, "copy": copy.name, **details}
    reason = folder / f"{stem}.reason.json"
    reason.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return copy


def _place(tmp: Path, folder: Path, key: str) -> Path:
    for name in (f"{key}.dcm", f"{key}.{file_key(tmp)}.dcm"):
        target = folder / name
        try:
            os.link(tmp, target)
            return target
        except FileExistsError:
            if filecmp.cmp(tmp, target, shallow=False):
                return target
    raise FileExistsError(f"quarantine {folder.name}: two different copies of {key} already")
