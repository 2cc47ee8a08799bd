"""The one-off scripts in investigations/ keep the folder's rules (its README), checked on the source with `ast`:
every script is listed in the README's index, states its command in its docstring, and imports only public names
of adaptive_zoo (no module or name with a leading underscore), so a refactor of private code cannot silently
break them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[1] / "investigations"
SCRIPTS = sorted(FOLDER.glob("*.py"))


def test_the_folder_has_scripts():
    assert SCRIPTS, f"no scripts found in {FOLDER}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_is_indexed_and_documented(script: Path):
    assert f"| `{script.name}` |" in (FOLDER / "README.md").read_text(), f"{script.name} is missing from the index"
    docstring = ast.get_docstring(ast.parse(script.read_text())) or ""
    assert f"investigations/{script.name}" in docstring, f"{script.name}'s docstring does not give its command"


def is_private(dotted_name: str) -> bool:
    return any(part.startswith("_") for part in dotted_name.split("."))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_uses_public_names_only(script: Path):
    imported = []  # every dotted name of adaptive_zoo the script imports
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("adaptive_zoo"):
            imported += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names if alias.name.startswith("adaptive_zoo")]
    private = [name for name in imported if is_private(name)]
    assert not private, f"{script.name} imports private names: {private}"
