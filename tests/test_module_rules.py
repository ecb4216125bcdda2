"""Rules of the code's layout, read from the source: the packages import one another
without cycles, and only `shared/settings.py` reads the environment (a command may still
write it, to configure the processes it starts)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "shared", "worker", "paysys", "migrations")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The first-party modules `name` imports anywhere in it (in functions too: a cycle
    through a lazy import is still a cycle, only a later one)."""

    def module_of(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets += [f"{base}.{alias.name}" for alias in node.names]
    found = {module_of(target) for target in targets}
    return {module for module in found if module is not None and module != name}


def cycle_from(
    node: str, graph: dict[str, set[str]], path: list[str], clear: set[str]
) -> list[str] | None:
    """A cycle reachable from `node` along `path`, as a path back to where it starts;
    `clear` collects the modules from which none is reachable."""
    if node in path:
        return [*path[path.index(node) :], node]
    if node in clear:
        return None
    path.append(node)
    for following in sorted(graph[node]):
        if (found := cycle_from(following, graph, path, clear)) is not None:
            return found
    path.pop()
    clear.add(node)
    return None


def cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    clear: set[str] = set()
    for start in sorted(graph):
        if (cycle := cycle_from(start, graph, [], clear)) is not None:
            yield cycle
            clear.update(cycle)  # one report for each cycle's modules


def test_no_import_cycles() -> None:
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    found = [" -> ".join(cycle) for cycle in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def environment_reads(tree: ast.AST) -> Iterator[int]:
    """Lines that read `os.environ` (or call `os.getenv`); assigning an item is a write."""
    writes = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute | ast.Name) or id(node) in writes:
            continue
        if ast.unparse(node) in ("os.environ", "environ", "os.getenv", "getenv"):
            yield node.lineno


def test_only_the_settings_read_the_environment() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules().values()
        if path != ROOT / "shared" / "settings.py"
        for line in environment_reads(ast.parse(path.read_text()))
    ]
    assert not readers, readers
