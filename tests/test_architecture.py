"""The package's floors (ARCHITECTURE.md): every import, lazy ones inside functions included, goes to the same
floor or one below, and no chain of imports comes back to where it started. And the repository's shape: a
newcomer's path (everything outside records/) stays under 200 tracked files."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "t2s_fast"

# From the ground up. A module's floor is that of its longest listed prefix; each stage's cli.py (and the
# top-level CLI) sits on the CLI floor, above every stage it parses flags for.
FLOORS = {
    0: ("errors", "paths", "jsonl", "dtypes", "distributed", "hub", "runinfo", "prompt", "schema", "dialects",
        "gguf_models", "models", "configs", "adapters", "__init__"),
    1: ("sql",),
    2: ("data", "generate", "schema_values"),
    3: ("train", "rl"),
    4: ("evaluate", "infer", "merge"),
    5: ("sweep", "demo", "pipeline"),
    6: ("cli", "__main__", "cli_options"),  # and every stage's cli.py
    7: ("benchmarks",),
}


def floor_of(module: str) -> int:
    parts = module.split(".")[1:]  # without "t2s_fast"
    if not parts:
        return 0
    if parts[0] in FLOORS[7]:  # the benchmarks, their own CLI included, measure everything below
        return 7
    if parts[-1] == "cli":
        return 6
    for floor, names in FLOORS.items():
        if parts[0] in names:
            return floor
    raise AssertionError(f"t2s_fast.{'.'.join(parts)} is on no floor: add it to FLOORS (and ARCHITECTURE.md)")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every t2s_fast module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("t2s_fast"):
            found.add(node.module)
            # `from t2s_fast.train import flops`: the names may be modules of that package
            folder = PACKAGE.parent.joinpath(*node.module.split("."))
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (folder / f"{a.name}.py").is_file() or (folder / a.name).is_dir())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("t2s_fast"))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def climbs(graph: dict[str, set[str]]) -> list[str]:
    return [f"{a} (floor {floor_of(a)}) imports {b} (floor {floor_of(b)})"
            for a, targets in sorted(graph.items()) for b in sorted(targets) if floor_of(b) > floor_of(a)]


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One chain of imports that comes back to its start, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (circle := visit(start)):
            return circle
    return None


def test_every_module_is_on_a_floor_and_imports_only_down():
    upward = climbs(import_graph())
    assert not upward, "imports that climb back up:\n" + "\n".join(upward)


def test_no_import_circle():
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_checks_catch_a_climb_and_a_circle():
    """Fed made-up graphs, both checks fail as they should (and the reader sees lazy imports)."""
    assert climbs({"t2s_fast.sql.executor": {"t2s_fast.train.trainer"}}) == [
        "t2s_fast.sql.executor (floor 1) imports t2s_fast.train.trainer (floor 3)"]
    assert climbs({"t2s_fast.train.cli": {"t2s_fast.evaluate.harness"}}) == []  # a stage's CLI sits above them all
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    imports = imports_of(PACKAGE / "evaluate" / "harness.py")
    assert "t2s_fast.evaluate.generation" in imports and "t2s_fast.evaluate.report" in imports  # lazy one too


def test_the_newcomers_path_stays_under_200_tracked_files():
    """Past results and their drivers go under records/; the product (README, docs/, configs/, bench/, t2s_fast/,
    tests/) stays small enough to read in an hour."""
    root = PACKAGE.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    outside = [f for f in tracked if not f.startswith("records/")]
    assert len(outside) < 200, f"{len(outside)} tracked files outside records/: move past results under records/"
