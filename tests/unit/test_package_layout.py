"""The package's layout is its architecture: stages import downwards only, with no circle.

Every import counts, at module level, inside functions and under ``TYPE_CHECKING``: a circle
hidden in a function still ties two modules together for a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "dcmtier"
DAGS = PACKAGE.parents[1] / "dags"
ROOT_LIMIT = 12

SHARED = frozenset(
    {"records", "descriptors", "tiers", "errors", "versions", "owner", "outputs", "__init__"}
)
# What each stage may import besides itself (docs/contributors.md "Code map" says the same).
ALLOWED: dict[str, frozenset[str]] = {
    "records": frozenset(),
    "descriptors": frozenset(),
    "errors": frozenset(),
    "versions": frozenset(),
    "outputs": frozenset({"records"}),
    "tiers": frozenset({"errors"}),
    "owner": frozenset({"errors", "outputs"}),
    "sample": frozenset(),
    "__init__": frozenset(),
    "codec": SHARED,
    "measure": SHARED,
    "packaging": SHARED,
    "catalogue": SHARED,
    # object storage sits below discovery (manifests, staging) and work (publishing), which
    # may not import each other; like the catalogue, it needs only the root modules
    "storage": SHARED,
    "discovery": SHARED | {"catalogue", "storage"},
    "work": SHARED | {"codec", "measure", "packaging", "catalogue", "storage"},
    "orchestration": SHARED
    | {"discovery", "work", "codec", "measure", "packaging", "catalogue", "storage", "viewer"},
    "commands": SHARED
    | {"cli", "sample", "codec", "measure", "packaging", "catalogue", "discovery", "work"}
    | {"bench", "storage", "viewer"},
    "bench": SHARED
    | {"sample", "codec", "measure", "packaging", "catalogue", "discovery", "work"}
    | {"orchestration", "storage"},
    "cli": SHARED | {"commands"},
    # what a web viewer sees of each tier: its codecs run in Node.js on the outputs
    "viewer": SHARED | {"codec", "catalogue", "storage"},
    # the Airflow plugin's pages: they read the catalogue and the Parquet dataset, and decode
    # files (codec) for the difference image, local or on a store (storage); nothing imports
    # them but plugins/
    "ui": SHARED | {"catalogue", "measure", "codec", "storage"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path, name: str) -> Iterator[str]:
    """The package's modules that ``path`` imports, wherever the import statement is."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("dcmtier"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("dcmtier"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in MODULES else target


def _graph() -> dict[str, set[str]]:
    return {
        name: {t for t in _imports(path, name) if t in MODULES and t != name}
        for name, path in MODULES.items()
    }


def _unit(module: str) -> str:
    """The stage a module belongs to: its subpackage, or its own name at the root."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_another_that_imports_it_back_even_inside_a_function() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_each_module_imports_only_its_own_stage_and_the_stages_below(module: str) -> None:
    unit = _unit(module)
    allowed = ALLOWED[unit] | {unit}
    wrong = sorted(t for t in _graph()[module] if _unit(t) not in allowed)
    assert not wrong, f"{module} ({unit}) may import {sorted(allowed)}, not {wrong}"


def test_the_root_holds_few_modules_and_no_benchmark() -> None:
    root = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_LIMIT, root
    assert not [name for name in root if name.startswith("bench")]
    assert (PACKAGE / "bench").is_dir()


def test_the_product_never_imports_the_benchmark() -> None:
    users = sorted(
        m
        for m, targets in _graph().items()
        if any(_unit(t) == "bench" for t in targets) and _unit(m) not in {"bench"}
    )
    assert users == ["dcmtier.commands.bench"]


def test_the_dag_imports_only_the_tier_table_and_the_orchestration_stage() -> None:
    for path in DAGS.glob("*.py"):
        targets = {t for t in _imports(path, "dags") if t.startswith("dcmtier")}
        assert {_unit(t) for t in targets} <= {"tiers", "orchestration"}, (path.name, targets)


def test_the_plugins_import_only_the_ui_stage() -> None:
    for path in (PACKAGE.parents[1] / "plugins").glob("*.py"):
        targets = {t for t in _imports(path, "plugins") if t.startswith("dcmtier")}
        assert targets and {_unit(t) for t in targets} == {"ui"}, (path.name, targets)


def test_nothing_in_the_package_imports_the_ui() -> None:
    users = sorted(m for m, targets in _graph().items()
                   if any(_unit(t) == "ui" for t in targets) and _unit(m) != "ui")  # fmt: skip
    assert users == []


def test_every_stage_has_a_test_folder_that_mirrors_it() -> None:
    tests = Path(__file__).parent
    for sub in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        assert (tests / sub.name).is_dir(), f"tests/unit/{sub.name}/ is missing"
