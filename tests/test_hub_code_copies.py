"""Hub code is one self-contained folder per method (`trust_remote_code` loads a folder, not the package), so a
helper several modeling files need is copied into each, transformers-style, under a `# Copied from
adaptive_zoo.models.<method>.<module>.<name>` comment. This test fails as soon as a copy drifts from its source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "src" / "adaptive_zoo" / "models"
MARKER = "# Copied from adaptive_zoo.models."


def definitions(path: Path) -> dict[str, str]:
    """Top-level function and class sources of a file, by name."""
    text = path.read_text()
    return {node.name: ast.get_source_segment(text, node) for node in ast.parse(text).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def copies() -> list[tuple[Path, str, str]]:
    """(file, copied name, source reference) for every marked copy in the Hub code."""
    found = []
    for path in sorted(MODELS.glob("*/*.py")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines[:-1]):
            if line.startswith(MARKER):
                name = ast.parse(lines[index + 1] + "\n    pass").body[0].name if lines[index + 1].startswith(
                    ("def ", "class ")) else None
                found.append((path, name, line[len("# Copied from "):].strip()))
    return found


def test_there_are_marked_copies():
    assert copies(), "no '# Copied from' markers found: the scan is broken"


@pytest.mark.parametrize("path, name, reference", copies(), ids=lambda value: str(value).split("/")[-1])
def test_copy_equals_its_source(path, name, reference):
    assert name is not None, f"{path}: a '# Copied from' marker must sit right above a def or class"
    module, source_name = reference.rsplit(".", 1)
    source_file = MODELS.parent.parent / (module.replace(".", "/") + ".py")
    assert source_file.is_file(), f"{path}: {reference} names no file"
    assert source_name == name, f"{path}: the copy of {reference} is named {name}"
    assert definitions(path)[name] == definitions(source_file)[name], (
        f"{path}:{name} drifted from {reference}: change the source and every copy together"
    )
