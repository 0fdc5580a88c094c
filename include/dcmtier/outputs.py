"""How dcmtier names the folders and files it writes from UIDs, and the mode they get.

Source files themselves are named by their file key (``dcmtier.records.file_key``); these two
rules cover what is written:

- ``uid_name``: a UID becomes a file or ZIP member name as it is when it is made only of
  letters, digits, ``.``, ``-`` and ``_`` (DICOM UIDs, and the 64-hex-digit "UIDs" some
  anonymisers write) and at most 64 characters; anything else (a separator, a space, a
  longer value) is named ``x`` + a hash of the UID's text, so no header can steer a path;
- ``output_mode``: files dcmtier writes through temporary files (which ``mkstemp`` makes
  owner-only) get ``0o666 & ~umask``, as a plain ``open`` would give them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Final

from dcmtier.records import KEY_DIGITS

_SAFE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def uid_name(uid: str) -> str:
    """A name safe for a file, folder or ZIP member that stands for ``uid``."""
    if _SAFE_NAME.match(uid) and uid not in (".", ".."):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:KEY_DIGITS]


def output_mode(*, directory: bool = False) -> int:
    """``0o666`` (``0o777`` for a folder) less the process's umask (read on each call: ~20 us,
    and a umask may change)."""
    return (0o777 if directory else 0o666) & ~_umask()


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
