"""Argument types and options that several sub-commands share."""

from __future__ import annotations

import argparse
from typing import Any


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
