"""Argument types and options that several sub-commands share."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue


def positive(text: str) -> int:
    """An integer of at least 1 (argparse turns the error into a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def add_jobs(parser: Any) -> None:
    """``--jobs N``: worker processes, at least 1; all cores when not given."""
    parser.add_argument(
        "--jobs", type=positive, metavar="N", help="worker processes (default: all cores)"
    )


def add_gate_option(parser: Any, *, extra: str = "") -> None:
    """``--on-gate-failure``, shared with ``dcmtier compress``."""
    parser.add_argument(
        "--on-gate-failure", choices=("fallback", "reject", "keep"), metavar="ACTION",
        help="what happens to a frame that breaks its tier's quality gate, for every tier "
        "(overrides the policy file): fallback (recode at the highest ratio meeting the gate; "
        "the default), reject (keep no output for the instance) or keep (kept, flagged)"
        + extra,
    )  # fmt: skip


def add_catalogue_arguments(parser: Any) -> None:
    """``--out DIR`` (the output root, whose catalogue.db is the embedded catalogue) and
    ``--catalogue URL`` (another one), for every command that reads or writes the catalogue
    without writing outputs."""
    parser.add_argument(
        "--out", default=".", metavar="DIR",
        help="the output root of `dcmtier process` (or the DAG's output): its catalogue.db is "
        "the embedded catalogue (default: .)",
    )  # fmt: skip
    add_catalogue_url(parser)


def add_catalogue_url(parser: Any) -> None:
    """``--catalogue URL``: a catalogue other than the output root's embedded one."""
    parser.add_argument(
        "--catalogue", metavar="URL",
        help="another catalogue, a database URL (default: $DCMTIER_CATALOGUE_URL, else "
        "OUT/catalogue.db)",
    )  # fmt: skip


def catalogue_url(explicit: str | None, out: str) -> str:
    """The catalogue a command uses: ``explicit``, else ``$DCMTIER_CATALOGUE_URL``, else the
    embedded ``OUT/catalogue.db`` (which an output root on an object store cannot hold)."""
    from dcmtier.catalogue.engine import ENV_URL, resolve_url
    from dcmtier.work.publish import OutputRoot

    named = explicit or os.environ.get(ENV_URL)
    return resolve_url(explicit, OutputRoot.of(out).data_dir(named))


def open_catalogue(explicit: str | None, out: str) -> Catalogue:
    """The catalogue to record into; only the embedded default is created and migrated here."""
    from dcmtier.catalogue import Catalogue
    from dcmtier.catalogue.engine import is_default

    url = catalogue_url(explicit, out)
    if is_default(explicit):
        Catalogue.upgrade(url)
    return Catalogue.connect(url)


def check_output(out: Path, sources: list[Path]) -> None:
    """Refuse an output that is a file or inside a source folder; make sure it is writable.

    Raises ``ConfigError`` (usage) or ``OSError`` (the folder cannot be written). Messages
    name ``out`` (the operator's choice) but never a source folder, whose name may carry a
    patient's.
    """
    import tempfile

    from dcmtier.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    for number, source in enumerate(sources, start=1):
        if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
            raise ConfigError(
                f"--out {out} is inside source folder {number} (SRC): outputs would be read "
                "as inputs on the next run; choose a folder outside it"
            )
    out.mkdir(parents=True, exist_ok=True)
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".dcmtier-probe.")
    except OSError as exc:
        raise OSError(
            exc.errno, f"output folder is not writable ({exc.strerror})", str(out)
        ) from exc
    os.close(fd)
    os.unlink(probe)
