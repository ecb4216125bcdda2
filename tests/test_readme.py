"""The README as a newcomer uses it: its Python example runs as written, and its command
table names every command `paysys --help` lists."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import click
import pytest

from paysys.cli import main
from tests.conftest import Stack, make_api

README = (Path(__file__).parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_python_example_runs_as_written(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [code] = re.findall(r"```python\n(.*?)```", section("From Python"), re.DOTALL)
    # In a folder where `make run` runs: its development key in .paysys/.
    api = make_api(stack)
    (tmp_path / ".paysys").mkdir()
    (tmp_path / ".paysys" / "dev-api-key").write_text(api.api_key + "\n")
    api.close()
    monkeypatch.chdir(tmp_path)
    code = code.replace("http://127.0.0.1:8000", stack.base_url)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 (the README's own code)
    assert printed.getvalue().split("\n") == [
        "succeeded",
        "20.00 15.00 5.00",
        "captured",
        "12.00",
        "",
    ]


def test_the_command_table_names_every_command() -> None:
    table = section("Command line")
    listed = set(re.findall(r"^\| `paysys ([a-z-]+)", table, re.MULTILINE))
    commands = set(main.commands)
    assert commands - listed == set(), "commands missing from the README's table"
    for name, command in main.commands.items():
        if isinstance(command, click.Group):
            for sub in command.commands:
                assert f"`paysys {name} {sub}" in table, f"paysys {name} {sub}"
