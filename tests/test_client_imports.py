"""`paysys.client` is for programs that talk to paysys over HTTP: it must import with
httpx alone, loading nothing of the server nor any other of paysys's dependencies."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_PACKAGES = {"api", "shared", "worker", "migrations"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependencies() -> set[str]:
    """The distributions paysys depends on, but httpx (which the client needs)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        normalized(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }
    return names - {"httpx"}


def loaded_by(statement: str) -> set[str]:
    """The modules that a fresh interpreter has loaded after `statement`."""
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(run.stdout.split())


def test_the_client_imports_with_httpx_alone() -> None:
    # httpx loads its command line's libraries (click, rich) when they are installed.
    added = loaded_by("import paysys.client") - loaded_by("import httpx")
    top = {name.partition(".")[0] for name in added}
    owners = importlib.metadata.packages_distributions()
    of_dependencies = {
        module
        for module in top
        if {normalized(dist) for dist in owners.get(module, [])} & dependencies()
    }
    assert not of_dependencies, f"importing paysys.client loads {sorted(of_dependencies)}"
    assert not top & SERVER_PACKAGES, (
        f"importing paysys.client loads {sorted(top & SERVER_PACKAGES)}"
    )
    paysys_modules = {name for name in added if name.startswith("paysys.")}
    assert all(name.startswith("paysys.client") for name in paysys_modules), paysys_modules
    # The check knows the server's dependencies, and finds the modules of installed ones.
    assert {"fastapi", "asyncpg", "celery", "sqlalchemy"} <= dependencies()
    assert "fastapi" in owners and "paysys.client.models" in added
