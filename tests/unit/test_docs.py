"""The docs stay true: generated reference pages equal the code's, every relative link resolves,
and the analysts' example queries run against a freshly processed sample."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
ANALYSTS = REPO / "docs" / "analysts.md"
PAGES = sorted([REPO / "README.md", REPO / "bench" / "README.md", *(REPO / "docs").rglob("*.md")])
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_ENV = re.compile(r"\bDCMTIER_[A-Z][A-Z0-9_]*")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", module)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


def test_the_generated_reference_pages_are_what_the_code_says() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, text in GEN.generate().items()
        if not path.is_file() or path.read_text() != text
    ]
    assert not stale, f"{stale} differ from the code: run `make docs` and commit them"


def test_the_cli_reference_lists_every_option_of_every_command() -> None:
    from dcmtier.cli import COMMANDS, build_parser

    page = (REPO / "docs" / "reference" / "cli.md").read_text()
    for name in COMMANDS:
        sub = next(
            a.choices[name]
            for a in build_parser(name)._actions
            if hasattr(a, "choices") and isinstance(a.choices, dict)
        )
        section = page.split(f"## `dcmtier {name}`\n", 1)[1].split("\n## `dcmtier ", 1)[0]
        assert f"usage: dcmtier {name}" in section
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section or f", {option}" in section, (name, option)


def _mentioned_variables() -> set[str]:
    found: set[str] = set()
    for source in GEN.ENVIRONMENT_SOURCES:
        path = REPO / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if (
                file.suffix in {".py", ".sh", ".yaml", ".yml", ""}
                and "__pycache__" not in file.parts
            ):
                found |= set(_ENV.findall(file.read_text(errors="replace")))
    return found


def test_the_environment_page_names_exactly_the_variables_the_code_reads() -> None:
    mentioned = _mentioned_variables()
    assert "DCMTIER_CATALOGUE_URL" in mentioned  # the scan sees the code
    undocumented = sorted(mentioned - set(GEN.ENVIRONMENT))
    assert undocumented == [], "add them to ENVIRONMENT in scripts/gen_docs.py"
    assert sorted(set(GEN.ENVIRONMENT) - mentioned) == [], "documented but read nowhere"


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text.replace("`", "")).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in _FENCE.sub("", path.read_text()).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def _links() -> Iterator[tuple[str, str]]:
    for page in PAGES:
        for target in _LINK.findall(_prose(page.read_text())):
            if not re.match(r"[a-z]+:", target):
                yield str(page.relative_to(REPO)), target


def test_the_slugs_are_githubs() -> None:
    assert slug("Airflow's UI on your machine: `make ui`") == "airflows-ui-on-your-machine-make-ui"
    assert slug("Per-file overhead (issue #17)") == "per-file-overhead-issue-17"


@pytest.mark.parametrize(("page", "target"), sorted(set(_links())), ids=str)
def test_every_relative_link_resolves(page: str, target: str) -> None:
    path, _, anchor = target.partition("#")
    resolved = (REPO / page).parent / path if path else REPO / page
    assert resolved.exists(), f"{page}: {target} does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in anchors(resolved), f"{page}: no #{anchor} in {path or page}"


def test_the_readme_is_read_in_five_minutes() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for command in ("make demo", "make test", "make test-fast", "docs/ui-overview.png"):
        assert command in readme


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(ANALYSTS.read_text()) if lang == language]


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample CT processed into two tiers: its output root (catalogue.db, quality/)."""
    from dcmtier.cli import main

    root = tmp_path_factory.mktemp("docs")
    assert main(["sample", str(root / "landing"), "--slices", "3", "--size", "64"]) == 0
    out = root / "out"
    options = ["--tier", "j2k-lossless", "--tier", "j2k-r20", "--jobs", "1"]
    with pytest.MonkeyPatch.context() as patch:  # the embedded catalogue, OUT/catalogue.db
        patch.delenv("DCMTIER_CATALOGUE_URL", raising=False)
        assert main(["process", str(root / "landing"), "--out", str(out), *options]) == 0
    return out


def _statements(block: str) -> list[str]:
    code = "\n".join(line.split("--", 1)[0] for line in block.splitlines())
    return [s.strip() for s in code.split(";") if s.strip()]


def _on_sample(text: str, out: Path) -> str:
    return re.sub(r"\b(?:OUT|data)/quality/", f"{out}/quality/", text)


def test_the_analysts_sql_runs_on_the_catalogue_and_duckdb_on_the_parquet(processed: Path) -> None:
    import duckdb

    catalogue = sqlite3.connect(processed / "catalogue.db")
    ran = {"catalogue": 0, "parquet": 0}
    for block in _blocks("sql"):
        for statement in _statements(block):
            if "read_parquet(" in statement:
                relation = duckdb.sql(_on_sample(statement, processed))
                assert relation is not None and relation.fetchall(), statement  # rows found
                ran["parquet"] += 1
            else:
                catalogue.execute(statement).fetchall()  # some select nothing on this sample
                ran["catalogue"] += 1
    catalogue.close()
    assert ran["catalogue"] >= 4 and ran["parquet"] >= 2, ran


def test_the_analysts_polars_example_runs_on_the_parquet(processed: Path) -> None:
    blocks = [b for b in _blocks("python") if "polars" in b]
    assert blocks
    for block in blocks:
        # the example's own code, on the sample: statements, then the expression it shows
        setup, expression = _on_sample(block, processed).rstrip().split("\n(", 1)
        scope: dict[str, object] = {}
        exec(setup, scope)
        frame = eval("(" + expression, scope)
        assert frame.height > 0 and "file_bytes_in" in frame.columns


def test_the_pages_the_code_and_the_makefile_point_to_exist() -> None:
    pointed: set[str] = set()
    for folder in ("include", "dags", "plugins", "scripts", "tests", "Makefile"):
        path = REPO / folder
        for file in [path] if path.is_file() else path.rglob("*.py"):
            pointed |= set(re.findall(r"\b(?:docs|bench)/[\w/.-]*?\.md\b", file.read_text()))
    assert "docs/concepts/jpeg-xl.md" in pointed  # the search sees the code
    assert sorted(page for page in pointed if not (REPO / page).is_file()) == []


def test_the_analysts_view_table_lists_each_views_columns(processed: Path) -> None:
    catalogue = sqlite3.connect(processed / "catalogue.db")
    listed = re.findall(r"^\| `(\w+)` \| ([a-z_, ]+) \|$", ANALYSTS.read_text(), re.M)
    assert len(listed) >= 6
    for view, columns in listed:
        actual = [row[1] for row in catalogue.execute(f"PRAGMA table_info({view})")]
        assert columns.split(", ") == actual, view
    catalogue.close()


def test_the_operators_params_table_names_every_param_of_the_dag() -> None:
    dag = (REPO / "dags" / "dicom_archive_compression.py").read_text()
    params = [row[0] for row in GEN._param_rows(dag)]
    assert "settle_seconds" in params  # the DAG's params were read
    table = (REPO / "docs" / "operators" / "pipeline.md").read_text().split("## Params", 1)[1]
    listed = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert [p for p in params if p not in listed] == [], "add them to operators/pipeline.md"
