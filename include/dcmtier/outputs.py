"""How dcmtier names instances and files it writes: by UID, else by a content hash, with the
mode the process's umask gives.

One place for these rules, so that every stage (work, packaging, quarantine, discovery) names
the same instance the same way:

- ``file_key``: a file without a usable UID is named by the first 16 hex digits of the
  SHA-256 of its bytes (its content, never its path or name);
- ``uid_name``: a UID becomes a file or ZIP member name as it is when it is made only of
  letters, digits, ``.``, ``-`` and ``_`` (DICOM UIDs, and the 64-hex-digit "UIDs" some
  anonymisers write) and at most 64 characters; anything else (a separator, a space, a
  longer value) is named ``x`` + its own hash, so no header can steer a path;
- ``output_mode``: files dcmtier writes through temporary files (which ``mkstemp`` makes
  owner-only) get ``0o666 & ~umask``, as a plain ``open`` would give them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Final

KEY_DIGITS: Final = 16
_SAFE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DICOM_UID: Final = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def file_key(path: Path) -> str:
    """The file's key: the first 16 hex digits of the SHA-256 of its bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:KEY_DIGITS]


def is_dicom_uid(uid: str) -> bool:
    """A valid DICOM UID (PS3.5 9.1): dot-separated numbers, no leading zeros, <= 64 chars."""
    return len(uid) <= 64 and bool(_DICOM_UID.match(uid))


def uid_name(uid: str) -> str:
    """A name safe for a file, folder or ZIP member that stands for ``uid``."""
    if _SAFE_NAME.match(uid) and uid not in (".", ".."):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:KEY_DIGITS]


def output_mode() -> int:
    """``0o666`` less the process's umask (read on each call: ~20 us, and a umask may change)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux 4.7+: read it without changing it (os.umask would race other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current
