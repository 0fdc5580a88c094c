"""The repository stands alone: no file points at material only its developers have.

The domain facts live in ``docs/concepts/``; a pointer to the developers' private notes (a
shared folder beside the checkout, a reference file in it) would leave a reader of the project
with a dangling reference.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
# Built from parts so that this file does not contain what it looks for.
FORBIDDEN = ("REFERENCE" + ".md", ".." + "/shared")


def _repository_files() -> list[Path]:
    """Tracked files plus new ones git does not ignore (so an uncommitted file counts too)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        skip_or_fail(f"cannot list the repository's files with git: {exc}")
    names = {name for name in listed.stdout.decode().split("\0") if name}
    return sorted(REPO / name for name in names if (REPO / name).is_file())


def _mentions(path: Path) -> list[str]:
    data = path.read_bytes()
    return [needle for needle in FORBIDDEN if needle.encode() in data]


def test_no_file_in_the_repository_points_at_the_developers_private_reference() -> None:
    files = _repository_files()
    assert len(files) > 100, f"only {len(files)} files listed: is this the repository?"
    assert REPO / "README.md" in files and REPO / "docs/concepts/README.md" in files
    offenders = {str(p.relative_to(REPO)): found for p in files if (found := _mentions(p))}
    assert offenders == {}


@pytest.mark.parametrize("needle", FORBIDDEN, ids=["reference-file", "shared-folder"])
def test_the_search_finds_a_planted_mention(needle: str, tmp_path: Path) -> None:
    planted = tmp_path / "planted.md"
    planted.write_text(f"see {needle} section 4\n")
    assert _mentions(planted) == [needle]


def test_the_concept_pages_the_code_points_to_exist() -> None:
    pointed = set()
    for path in _repository_files():
        if path.suffix in {".py", ".html", ".md"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            pointed |= set(_concept_pages(text))
    assert pointed, "no file points at docs/concepts/: the search is broken"
    missing = sorted(page for page in pointed if not (REPO / page).is_file())
    assert missing == []


def _concept_pages(text: str) -> list[str]:
    return re.findall(r"docs/concepts/[a-z-]+\.md", text)
