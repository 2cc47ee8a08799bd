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


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_uses_public_names_only(script: Path):
    private = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("adaptive_zoo"):
            private += [f"{node.module}" for part in node.module.split(".") if part.startswith("_")]
            private += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Import):
            private += [alias.name for alias in node.names
                        if alias.name.startswith("adaptive_zoo") and any(p.startswith("_") for p in alias.name.split("."))]
    assert not private, f"{script.name} imports private names: {private}"
