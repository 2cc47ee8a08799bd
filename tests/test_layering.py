"""Imports inside adaptive_zoo run one way, checked on the source (`ast`), without importing anything.

    data  <-  models  <-  {training, evaluation}  <-  recipes  <-  cli
    utilities (settings, progress, backbones, hashing, hub) sit beside data: they import only each other and data.

* data imports nothing of adaptive_zoo but itself and `progress`;
* each model family folder (models/<family>/) is self-contained Hub code: it imports nothing of adaptive_zoo
  outside its folder, its modeling file only torch, transformers, the standard library and its sibling config;
  models/__init__.py may import the family folders;
* training and evaluation import data, models, utilities and themselves, never each other (but for the
  `KNOWN_EXCEPTIONS` below);
* recipes import anything but cli; nothing imports cli.

And no import sits inside a function outside models/ unless `LAZY_IMPORTS` lists it with its reason: an import
in a function hides a dependency (and a cycle) from readers and from this test's reader alike.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "adaptive_zoo"

# Which top-level modules/packages of adaptive_zoo make up each layer.
LAYERS: dict[str, set[str]] = {
    "data": {"data"},
    "utilities": {"settings", "progress", "backbones", "hashing", "hub"},
    "models": {"models"},
    "training": {"training"},
    "evaluation": {"evaluation"},
    "recipes": {"recipes", "calibrate", "benchmark", "methods", "loadtest"},
    "cli": {"cli"},
    "package": {"__init__"},  # adaptive_zoo/__init__.py: registers the methods (and their models) on import
}
# What each layer may import besides itself: layers, or single top-level modules (data may use `progress` only).
MAY_IMPORT: dict[str, set[str]] = {
    "data": {"progress"},
    "utilities": {"data"},
    "models": set(),
    "training": {"data", "utilities", "models"},
    "evaluation": {"data", "utilities", "models"},
    "recipes": {"data", "utilities", "models", "training", "evaluation"},
    "cli": {"data", "utilities", "models", "training", "evaluation", "recipes"},
    "package": {"recipes"},
}
# Imports against the direction, tolerated for now: (importing module, imported name) -> why.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}
# Imports allowed inside a function outside models/: (module, imported name or its prefix) -> why it is lazy.
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    ("adaptive_zoo.hashing", "sklearn"): "scikit-learn is heavy (~0.8 s) and only the clustered hash needs it",
    ("adaptive_zoo.evaluation.text_metrics", "evaluate"): "heavy (~0.5 s); only ROUGE/BLEU scores need it",
    ("adaptive_zoo.evaluation.plots", "matplotlib"): "~0.25 s on every CLI start; only a finished run's plots need it",
    ("adaptive_zoo.evaluation.explain", "matplotlib"): "~0.25 s on every CLI start; only `explain`'s PNG needs it",
}
# What the self-contained Hub code may import from outside the standard library.
HUB_CODE_THIRD_PARTY = {"modeling": {"torch", "transformers"}, "configuration": {"transformers", "huggingface_hub"}}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported (a module of adaptive_zoo when it is one)
    name: str  # what is imported: the module, or module.attribute
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted((SOURCE / PACKAGE).rglob("*.py"))}


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, bool]:
    inside: dict[ast.AST, bool] = {}

    def visit(node: ast.AST, in_function: bool) -> None:
        inside[node] = in_function
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    visit(tree, False)
    return inside


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    in_function = _enclosing_functions(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, alias.name, node.lineno, in_function[node]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            for alias in node.names:
                name = f"{target}.{alias.name}"
                # `from . import bundled` imports the module adaptive_zoo.data.bundled
                found.append(Import(module, name if name in MODULES else target, name, node.lineno, in_function[node]))
    return found


ALL_IMPORTS = [found for module in MODULES for found in imports_of(module)]


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module: str) -> str:
    unit = unit_of(module)
    for layer, units in LAYERS.items():
        if unit in units:
            return layer
    raise AssertionError(f"{module}: its top-level part {unit!r} is in no layer of LAYERS; add it there.")


def hub_code_problem(found: Import) -> str | None:
    """Why an import of a model family's folder breaks its self-containment; None if it does not."""
    parts = found.module.split(".")
    ours = found.target == PACKAGE or found.target.startswith(f"{PACKAGE}.")
    if parts == [PACKAGE, "models"]:  # models/__init__.py: registers the family folders with transformers
        if ours and not found.target.startswith(f"{PACKAGE}.models."):
            return f"models/__init__.py imports {found.target}, outside models/"
        return None
    family = ".".join(parts[:3])
    if ours:
        if found.target != family and not found.target.startswith(family + "."):
            return f"a model family folder imports {found.target}, outside its own folder {family}"
        stem = parts[3].split("_")[0] if len(parts) > 3 else None
        if stem == "modeling" and not found.target.startswith(f"{family}.configuration_"):
            return f"a modeling file imports {found.target}, not its sibling config"
        return None
    root = found.target.split(".")[0]
    stem = parts[3].split("_")[0] if len(parts) > 3 else None
    if root in sys.stdlib_module_names or stem not in HUB_CODE_THIRD_PARTY or root in HUB_CODE_THIRD_PARTY[stem]:
        return None
    return f"Hub code ({stem} file) imports {root}, which a Hub folder cannot count on"


def layering_problem(found: Import) -> str | None:
    """Why an import goes against the direction; None if it does not."""
    if not found.target.startswith(f"{PACKAGE}.") and found.target != PACKAGE:
        return hub_code_problem(found) if unit_of(found.module) == "models" else None
    if unit_of(found.module) == "models":
        return hub_code_problem(found)
    if (found.module, found.name) in KNOWN_EXCEPTIONS:
        return None
    source, target = layer_of(found.module), layer_of(found.target)
    if target == "cli":
        return "nothing imports the CLI"
    if source == target or target in MAY_IMPORT[source] or unit_of(found.target) in MAY_IMPORT[source]:
        return None
    return f"the {source} layer imports the {target} layer ({found.target})"


def is_allowed_lazy(found: Import) -> bool:
    return any(found.module == module and (found.name == name or found.name.startswith(name + "."))
               for module, name in LAZY_IMPORTS)


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_run_one_way():
    problems = [f"{found.module}:{found.line}: {problem}" for found in ALL_IMPORTS
                if (problem := layering_problem(found)) is not None]
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_no_import_inside_a_function_outside_models():
    hidden = [f"{found.module}:{found.line}: {found.name}" for found in ALL_IMPORTS
              if found.in_function and unit_of(found.module) != "models" and not is_allowed_lazy(found)]
    assert not hidden, ("imports inside functions (move them to the module top, or list them in LAZY_IMPORTS with "
                        "the reason they must be lazy):\n" + "\n".join(hidden))


@pytest.mark.parametrize("entry", sorted(KNOWN_EXCEPTIONS))
def test_known_exceptions_are_still_needed(entry):
    module, name = entry
    assert any((found.module, found.name) == entry for found in ALL_IMPORTS), (
        f"{module} no longer imports {name}: remove the entry from KNOWN_EXCEPTIONS")


@pytest.mark.parametrize("entry", sorted(LAZY_IMPORTS))
def test_lazy_imports_are_still_there(entry):
    module, name = entry
    assert any(found.in_function and is_allowed_lazy(found) and (found.module, name) == entry
               and (found.name == name or found.name.startswith(name + ".")) for found in ALL_IMPORTS), (
        f"{module} no longer imports {name} in a function: remove the entry from LAZY_IMPORTS")


# -- the checker itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module, target, name, expected", [
    ("adaptive_zoo.training.adapler", "adaptive_zoo.evaluation.classification",
     "adaptive_zoo.evaluation.classification.predict_with_flops", "the training layer imports the evaluation layer"),
    ("adaptive_zoo.evaluation.seq2seq", "adaptive_zoo.training.common",
     "adaptive_zoo.training.common.check_texts", "the evaluation layer imports the training layer"),
    ("adaptive_zoo.data.registry", "adaptive_zoo.hub.folder", "adaptive_zoo.hub.folder.check_hub_folder",
     "the data layer imports the utilities layer"),
    ("adaptive_zoo.hashing", "adaptive_zoo.training.common", "adaptive_zoo.training.common.set_trainable",
     "the utilities layer imports the training layer"),
    ("adaptive_zoo.recipes", "adaptive_zoo.cli", "adaptive_zoo.cli.main", "nothing imports the CLI"),
    ("adaptive_zoo.models.dat.modeling_dat", "adaptive_zoo.progress", "adaptive_zoo.progress.announce",
     "outside its own folder"),
    ("adaptive_zoo.models.dat.modeling_dat", "adaptive_zoo.models.deebert.modeling_deebert",
     "adaptive_zoo.models.deebert.modeling_deebert.prediction_entropy", "outside its own folder"),
    ("adaptive_zoo.models.dat.modeling_dat", "numpy", "numpy", "imports numpy"),
])
def test_the_checker_catches_imports_against_the_direction(module, target, name, expected):
    problem = layering_problem(Import(module, target, name, 1, False))
    assert problem is not None and expected in problem, problem


@pytest.mark.parametrize("module, target, name", [
    ("adaptive_zoo.data.registry", "adaptive_zoo.progress", "adaptive_zoo.progress.announce"),
    ("adaptive_zoo.evaluation.classification", "adaptive_zoo.data.text", "adaptive_zoo.data.text.check_texts"),
    ("adaptive_zoo.training.deebert", "adaptive_zoo.backbones", "adaptive_zoo.backbones.resolve_base_model"),
    ("adaptive_zoo.backbones", "adaptive_zoo.hub.folder", "adaptive_zoo.hub.folder.check_weights_intact"),
    ("adaptive_zoo.calibrate", "adaptive_zoo.recipes", "adaptive_zoo.recipes.RESULTS_FILE"),
    ("adaptive_zoo.models", "adaptive_zoo.models.dat", "adaptive_zoo.models.dat.DepthAdaptiveTransformer"),
    ("adaptive_zoo.models.dat.modeling_dat", "adaptive_zoo.models.dat.configuration_dat",
     "adaptive_zoo.models.dat.configuration_dat.DepthAdaptiveTransformerConfig"),
])
def test_the_checker_lets_imports_along_the_direction_pass(module, target, name):
    assert layering_problem(Import(module, target, name, 1, False)) is None


def test_relative_imports_resolve_to_modules_of_the_package():
    names = {(found.target, found.name) for found in imports_of("adaptive_zoo.data.registry")}
    assert ("adaptive_zoo.data.bundled", "adaptive_zoo.data.bundled") in names  # from . import bundled
    assert ("adaptive_zoo.data.splits", "adaptive_zoo.data.splits.ensure_splits") in names
